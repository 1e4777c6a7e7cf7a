//! The deliveries page: search by event id, endpoint, event type, tenant, status and creation time, newest first, paged by keyset, with a Redeliver for the rows ticked.

use super::layout::{csrf_field, label, link, page as layout_page};
use super::overview::notice_text;
use super::{database_failure, failure, Console, Who};
use crate::db::{Page, Search};
use axum::extract::{Extension, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use maud::html;
use serde::Deserialize;
use std::sync::Arc;

/// Rows per page.
pub const ROWS: i64 = 50;
/// Delivery ids one page reads at most (a range of the primary key).
pub const WINDOW: i64 = 20_000;

const STATUSES: [&str; 5] = ["pending", "retrying", "succeeded", "failed", "cancelled"];

#[derive(Debug, Default, Deserialize)]
pub struct Params {
    #[serde(default)]
    event_id: String,
    #[serde(default)]
    endpoint: String,
    #[serde(default)]
    event_type: String,
    #[serde(default)]
    tenant: String,
    #[serde(default)]
    status: String,
    #[serde(default)]
    since: String,
    #[serde(default)]
    until: String,
    #[serde(default)]
    below: String,
    #[serde(default)]
    notice: String,
    #[serde(default)]
    n: i64,
    #[serde(default)]
    of: i64,
}

impl Params {
    /// The filters as the query string of a link (without the page).
    fn filters(&self) -> [(&'static str, &str); 7] {
        [
            ("event_id", self.event_id.trim()),
            ("endpoint", &self.endpoint),
            ("event_type", &self.event_type),
            ("tenant", &self.tenant),
            ("status", &self.status),
            ("since", &self.since),
            ("until", &self.until),
        ]
    }

    /// The search to run, or why the input cannot be one.
    fn search(&self) -> Result<Search, String> {
        let given = |s: &str| Some(s.trim()).filter(|s| !s.is_empty()).map(str::to_owned);
        let event_id = given(&self.event_id);
        if let Some(id) = &event_id {
            if !is_uuid(id) {
                return Err(format!("`{id}` is not an event id (the webhook-id header: a UUID)"));
            }
        }
        let status = given(&self.status);
        if let Some(s) = &status {
            if !STATUSES.contains(&s.as_str()) {
                return Err(format!("`{s}` is not a status"));
            }
        }
        let below = match self.below.trim() {
            "" => None,
            b => Some(b.parse::<i64>().map_err(|_| format!("`{b}` is not a delivery id"))?),
        };
        Ok(Search {
            event_id,
            endpoint: given(&self.endpoint),
            event_type: given(&self.event_type),
            tenant: given(&self.tenant),
            status,
            since: given(&self.since),
            until: given(&self.until),
            below,
            owner: None,
        })
    }
}

/// 8-4-4-4-12 hex digits.
fn is_uuid(s: &str) -> bool {
    s.len() == 36
        && s.char_indices().all(|(i, c)| if [8, 13, 18, 23].contains(&i) { c == '-' } else { c.is_ascii_hexdigit() })
}

pub async fn page(
    State(console): State<Arc<Console>>,
    Extension(who): Extension<Who>,
    Query(params): Query<Params>,
) -> Response {
    let mut search = match params.search() {
        Ok(search) => search,
        Err(why) => return failure(StatusCode::BAD_REQUEST, &why),
    };
    // A portal link's tenant: events published for it, delivered to its own
    // endpoints (its events also reach endpoints without a tenant: not its),
    // both in the query, so paging never passes over another's rows.
    if let Some(tenant) = who.scope.tenant() {
        search.tenant = Some(tenant.to_owned());
        search.owner = Some(tenant.to_owned());
    }
    let found = match console.db.console_search(&search, WINDOW, ROWS).await {
        Ok(found) => found,
        // invalid_datetime_format, datetime_field_overflow
        Err(e) if matches!(e.code(), Some("22007" | "22008")) => {
            return failure(StatusCode::BAD_REQUEST, &format!("invalid time in `since` or `until`: {e}"))
        }
        Err(e) => return database_failure(&e),
    };
    // An event id that found nothing: was the event published at all, and routed?
    let event = match (&search.event_id, found.rows.is_empty()) {
        (Some(id), true) => match crate::manage::events::get(&console.db, &who.scope, id).await {
            Ok(event) => Some(event),
            Err(crate::manage::ManageError::NotFound) => None,
            Err(e) => return super::actions::refused_by_manage(e),
        },
        _ => None,
    };
    let notice = notice_text(&params.notice, params.n, params.of).map(|text| html! { p.notice { (text) } });
    layout_page("Deliveries", notice, results(&who, &params, &found, event.as_ref())).into_response()
}

/// Why a search by event id found no delivery, when the event exists.
fn event_without_deliveries(event: &serde_json::Value) -> maud::Markup {
    let text = |k: &str| event.get(k).and_then(serde_json::Value::as_str).unwrap_or("");
    let routed = event.get("dispatched_at").is_some_and(|v| !v.is_null());
    let delivered = event.get("deliveries").and_then(serde_json::Value::as_array).is_some_and(|d| !d.is_empty());
    html! {
        p.empty.event {
            @if delivered {
                "No delivery of event " code { (text("event_id")) } " matches the other filters."
            } @else if routed {
                "Event " code { (text("event_id")) } " (" (text("event_type")) ") was published, routed to no endpoint: "
                "no endpoint's event types and filter matched it when it was routed."
            } @else {
                "Event " code { (text("event_id")) } " (" (text("event_type")) ") was published and is not routed yet: "
                "the sidecar routes it to the endpoints within moments (is it running?)."
            }
        }
    }
}

fn results(who: &Who, params: &Params, found: &Page, event: Option<&serde_json::Value>) -> maud::Markup {
    let filters = params.filters();
    let here = link("/deliveries", &[filters.as_slice(), &[("below", params.below.as_str())]].concat());
    let next = found
        .next_below
        .map(|below| link("/deliveries", &[filters.as_slice(), &[("below", &below.to_string())]].concat()));
    html! {
        form.search method="get" action="/deliveries" {
            label { "event id" input name="event_id" value=(params.event_id) size="38"; }
            label { "endpoint" input name="endpoint" value=(params.endpoint); }
            label { "event type" input name="event_type" value=(params.event_type); }
            @if who.scope.tenant().is_none() {
                label { "tenant" input name="tenant" value=(params.tenant); }
            }
            label { "status" select name="status" {
                option value="" { "any" }
                @for s in STATUSES { option value=(s) selected[params.status == s] { (s) } }
            } }
            label { "created since" input name="since" value=(params.since) placeholder="2026-01-31 09:00 UTC"; }
            label { "created before" input name="until" value=(params.until) placeholder="2026-01-31 10:00 UTC"; }
            button type="submit" { "Search" }
        }
        @if let Some(event) = event {
            (event_without_deliveries(event))
        } @else if found.rows.is_empty() {
            p.empty { "No delivery matches" @if found.scanned_to.is_some() { " on this page" } "." }
        } @else {
            form method="post" action="/actions/redeliver" {
                (csrf_field(&who.csrf))
                input type="hidden" name="back" value=(here);
                table.deliveries {
                    thead { tr {
                        th { "" } th { "delivery" } th { "event id" } th { "event type" } th { "tenant" } th { "endpoint" }
                        th { "status" } th { "attempts" } th { "last code" } th { "created (UTC)" } th { "next attempt" }
                    } }
                    tbody {
                        @for r in &found.rows {
                            tr {
                                td { input type="checkbox" name="id" value=(r.id) aria-label=(format!("select delivery {}", r.id)); }
                                td { a href=(format!("/deliveries/{}", r.id)) { "#" (r.id) } }
                                td { code { (r.event_id) } }
                                td { (r.event_type) }
                                td { (r.tenant.as_deref().unwrap_or("")) }
                                td { (r.endpoint) }
                                td { (label(&r.status, &r.status)) }
                                td.n { (r.attempts) }
                                td.n { (r.last_status_code.map(|c| c.to_string()).unwrap_or_default()) }
                                td { (r.created_at) }
                                td { (r.next_attempt_at.as_deref().unwrap_or("")) }
                            }
                        }
                    }
                }
                @if !who.read_only { button type="submit" { "Redeliver selected" } }
            }
        }
        @if let Some(next) = next {
            p { a href=(next) { "Older deliveries →" } }
        }
        @if let Some(to) = found.scanned_to {
            p.muted { "Newest first. Each page reads at most " (WINDOW) " deliveries (here: ids down to " (to.max(0))
                "), so it stays fast however many are retained; a search by event id reads only that event's." }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn input_is_checked_before_any_query() {
        let p = |event_id: &str, status: &str, below: &str| Params {
            event_id: event_id.into(),
            status: status.into(),
            below: below.into(),
            ..Default::default()
        };
        let ok = p(" 0193a3c4-1b2c-7d3e-8f40-123456789abc ", "failed", "42").search().unwrap();
        assert_eq!(ok.event_id.as_deref(), Some("0193a3c4-1b2c-7d3e-8f40-123456789abc"));
        assert_eq!((ok.status.as_deref(), ok.below, ok.endpoint), (Some("failed"), Some(42), None));
        assert!(p("not-a-uuid", "", "").search().unwrap_err().contains("not an event id"));
        assert!(p("", "lost", "").search().unwrap_err().contains("not a status"));
        assert!(p("", "", "x").search().unwrap_err().contains("not a delivery id"));
    }
}
