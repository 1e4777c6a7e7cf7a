//! Deliveries: search (the console's search), get one with its attempts, redeliver one or a selection, and the per-endpoint status.

use super::{ManageError, Scope};
use crate::db::{Db, Found, Search, Selection};
use crate::operator::redeliver::{redeliver as redeliver_selection, RedeliverError};
use crate::operator::status::Row;
use serde_json::{json, Value};
use std::collections::HashSet;

/// Ids the search reads per page (as the console's).
const WINDOW: i64 = 50_000;
/// Rows a page holds at most.
pub const MAX_PAGE: i64 = 200;
/// Attempts shown with a delivery.
const ATTEMPTS: i64 = 100;

fn found(f: Found) -> Value {
    json!({
        "id": f.id, "event_id": f.event_id, "event_type": f.event_type, "tenant": f.tenant,
        "endpoint": f.endpoint, "status": f.status, "attempts": f.attempts,
        "last_status_code": f.last_status_code, "created_at": f.created_at, "next_attempt_at": f.next_attempt_at,
    })
}

/// One page of the console's search (newest first); the next page's `below`.
/// A tenant-bound scope sees its events' deliveries to its own endpoints
/// only, filtered in the query, so `next_below` never points past its own rows.
pub async fn search(
    db: &Db,
    scope: &Scope,
    mut s: Search,
    limit: i64,
) -> Result<(Vec<Value>, Option<i64>), ManageError> {
    if let Some(t) = scope.tenant() {
        s.tenant = Some(t.to_owned());
        s.owner = Some(t.to_owned());
    }
    if let Some(id) = &s.event_id {
        if !super::events::is_uuid(id) {
            return Ok((Vec::new(), None));
        }
    }
    let page = db.console_search(&s, WINDOW, limit.clamp(1, MAX_PAGE)).await.map_err(|e| match e.code() {
        // invalid_datetime_format, datetime_field_overflow
        Some("22007" | "22008") => ManageError::invalid("since", "timestamp", "since and until must be timestamps"),
        _ => ManageError::from(e),
    })?;
    Ok((page.rows.into_iter().map(found).collect(), page.next_below))
}

/// Who asked for a redelivery, as `scope` may see it: a tenant sees its own
/// requests (through its portal or its API token) as recorded, and anyone
/// else's (the operator's console, SQL, the CLI, another token) only as
/// "the operator", never their address, role or token id.
pub fn requester_shown<'a>(scope: &Scope, by: &'a str) -> &'a str {
    let Some(tenant) = scope.tenant() else { return by };
    let own_portal = by.starts_with(&format!("console, tenant {tenant} ("));
    let own_token = by.starts_with("api token #") && by.ends_with(&format!(" (tenant {tenant})"));
    if own_portal || own_token {
        by
    } else {
        "the operator"
    }
}

/// A delivery with its attempts, newest first.
pub async fn get(db: &Db, scope: &Scope, id: i64) -> Result<Value, ManageError> {
    let mut delivery = db.api_delivery_get(id, scope.tenant()).await?.ok_or(ManageError::NotFound)?;
    let attempts: Vec<Value> = db
        .console_attempts(id, ATTEMPTS)
        .await?
        .into_iter()
        .map(|a| {
            json!({
                "attempt": a.attempt, "started_at": a.started_at, "duration_ms": a.duration_ms,
                "status_code": a.status_code, "error_kind": a.error_kind, "error": a.error,
                "response_body": a.response_body,
                "requested_by": a.requested_by.as_deref().map(|by| requester_shown(scope, by)),
            })
        })
        .collect();
    delivery["attempt_log"] = Value::Array(attempts);
    Ok(delivery)
}

/// Puts deliveries back to be sent now (`tailhook redeliver`); how many.
/// With a tenant-bound scope a selection must name one of its endpoints.
pub async fn redeliver(db: &Db, scope: &Scope, selection: Selection) -> Result<u64, ManageError> {
    if let Some(ids) = &selection.ids {
        // Another tenant's id answers as a missing one (which
        // `redeliver_selection` refuses, unscoped); all checked in one statement.
        if let Some(tenant) = scope.tenant() {
            if db.api_deliveries_unseen(ids, tenant).await? > 0 {
                return Err(ManageError::NotFound);
            }
        }
    } else if scope.tenant().is_some() {
        let Some(endpoint) = &selection.endpoint else {
            return Err(ManageError::invalid(
                "endpoint",
                "token_tenant",
                "a tenant's token must name one of its endpoints",
            ));
        };
        db.api_endpoint_state(endpoint, scope.tenant()).await?.ok_or(ManageError::NotFound)?;
    }
    redeliver_selection(db, &selection, false).await.map_err(|e| match e {
        RedeliverError::BadInput(why) if why.starts_with("no ") => ManageError::NotFound,
        RedeliverError::BadInput(why) => ManageError::invalid("since", "timestamp", why),
        RedeliverError::Database(e) => ManageError::from(e),
    })
}

/// `tailhook status --json`'s rows, for the scope's endpoints; `window` a PostgreSQL interval.
pub async fn status(db: &Db, scope: &Scope, window: &str) -> Result<Vec<Row>, ManageError> {
    let rows = db.endpoint_status(window, "", None).await.map_err(|e| match e.code() {
        Some("22007" | "22015" | "22P02" | "22008") => {
            ManageError::invalid("window", "interval", "must be a PostgreSQL interval, e.g. 24h")
        }
        _ => ManageError::from(e),
    })?;
    let own: Option<HashSet<i64>> = match scope.tenant() {
        Some(t) => Some(db.api_tenant_endpoints(t).await?.into_iter().map(|(id, _)| id).collect()),
        None => None,
    };
    Ok(rows.into_iter().filter(|r| own.as_ref().is_none_or(|own| own.contains(&r.id))).map(Row::from).collect())
}
