//! Endpoints: list, get, create (with a generated secret), update, delete, enable, pause, resume, rotate the secret, send a test.

use super::{new_secret, ManageError, Scope};
use crate::config::{rules, Config};
use crate::db::{Db, EndpointFilter};
use crate::operator::probe::{probe, Probe, SendTestError, TestRequest};
use serde_json::{Map, Value};

/// Endpoints one list page holds at most.
pub const MAX_PAGE: i64 = 200;
/// The longest pause and rotation overlap: 30 days, in seconds.
pub const MAX_SECONDS: i64 = 30 * 86_400;

/// What a field may hold, as JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Text,
    OptionalText,
    Texts,
    OptionalObject,
    Object,
    Bool,
    OptionalInt,
}

/// The fields a create or update may give (name on create only). Secrets are
/// generated and rotated, never written, except `legacy_secret`: the key a
/// team's receivers already check (docs/guide/migrating.md), written, never
/// read back; `managed_by` is always `sql`.
const FIELDS: [(&str, Kind); 19] = [
    ("name", Kind::Text),
    ("url", Kind::Text),
    ("tenant", Kind::OptionalText),
    ("event_types", Kind::Texts),
    ("filter", Kind::OptionalObject),
    ("filter_path", Kind::OptionalText),
    ("headers", Kind::Object),
    ("enabled", Kind::Bool),
    ("max_attempts", Kind::OptionalInt),
    ("timeout_ms", Kind::OptionalInt),
    ("rate_limit_per_sec", Kind::OptionalInt),
    ("max_in_flight", Kind::OptionalInt),
    ("ordered", Kind::Bool),
    ("transform", Kind::OptionalText),
    ("standard_signature", Kind::Bool),
    ("backoff_initial_ms", Kind::OptionalInt),
    ("backoff_max_ms", Kind::OptionalInt),
    ("legacy_signature", Kind::OptionalObject),
    ("legacy_secret", Kind::OptionalText),
];

fn kind_of(field: &str) -> Option<Kind> {
    FIELDS.iter().find(|(f, _)| *f == field).map(|(_, k)| *k)
}

fn fits(kind: Kind, v: &Value) -> bool {
    match kind {
        Kind::Text => v.is_string(),
        Kind::OptionalText => v.is_string() || v.is_null(),
        Kind::Texts => v.as_array().is_some_and(|a| a.iter().all(Value::is_string)),
        Kind::OptionalObject => v.is_object() || v.is_null(),
        Kind::Object => v.as_object().is_some_and(|o| o.values().all(Value::is_string)),
        Kind::Bool => v.is_boolean(),
        Kind::OptionalInt => v.is_null() || v.as_i64().is_some_and(|n| i32::try_from(n).is_ok()),
    }
}

fn expected(kind: Kind) -> &'static str {
    match kind {
        Kind::Text => "a string",
        Kind::OptionalText => "a string or null",
        Kind::Texts => "an array of strings",
        Kind::OptionalObject => "an object or null",
        Kind::Object => "an object of string values",
        Kind::Bool => "true or false",
        Kind::OptionalInt => "a 32-bit integer or null",
    }
}

/// Checks the fields' names and JSON types, the scope's tenant, and the
/// rules the database does not hold (filter, filter_path, the retry
/// schedule, the URL's form); the row's own rules are the trigger's.
fn checked(
    config: &Config,
    scope: &Scope,
    mut fields: Map<String, Value>,
    creating: bool,
) -> Result<Map<String, Value>, ManageError> {
    for (field, value) in &fields {
        let Some(kind) = kind_of(field).filter(|_| creating || field != "name") else {
            let why = if field == "name" {
                "cannot be changed"
            } else {
                "is not a field of an endpoint (or cannot be written)"
            };
            return Err(ManageError::invalid(field.clone(), "unknown_field", why));
        };
        if !fits(kind, value) {
            return Err(ManageError::invalid(field.clone(), "type", format!("must be {}", expected(kind))));
        }
    }
    if creating {
        for required in ["name", "url"] {
            if !fields.contains_key(required) {
                return Err(ManageError::invalid(required, "required", "is required"));
            }
        }
    }
    if let Some(own) = scope.tenant() {
        match fields.get("tenant") {
            Some(Value::String(t)) if t == own => {}
            None if !creating => {}
            None => {
                fields.insert("tenant".into(), Value::String(own.to_owned()));
            }
            Some(_) => return Err(ManageError::invalid("tenant", "token_tenant", "must be the token's tenant")),
        }
    }
    if let Some(Value::String(url)) = fields.get("url") {
        let url =
            rules::url(url, config.delivery.https_only).map_err(|p| ManageError::problem(p, "endpoints_url_http"))?;
        fields.insert("url".into(), Value::String(url.into()));
    }
    if let Some(filter @ Value::Object(_)) = fields.get("filter") {
        rules::filter(filter).map_err(|p| ManageError::problem(p, "endpoints_filter_valid"))?;
    }
    if let Some(Value::String(path)) = fields.get("filter_path") {
        rules::filter_path(path).map_err(|p| ManageError::problem(p, "endpoints_filter_path_valid"))?;
    }
    let int = |f: &str| fields.get(f).and_then(Value::as_i64);
    rules::backoff(int("backoff_initial_ms"), int("backoff_max_ms"))
        .map_err(|p| ManageError::problem(p, "endpoints_backoff_valid"))?;
    Ok(fields)
}

/// One page of endpoints by name after `after`, and the next page's `after`.
pub async fn list(
    db: &Db,
    scope: &Scope,
    filter: &EndpointFilter,
    after: &str,
    limit: i64,
) -> Result<(Vec<Value>, Option<String>), ManageError> {
    let limit = limit.clamp(1, MAX_PAGE);
    let rows = db.api_endpoints(scope.tenant(), after, limit, filter).await?;
    let next = (rows.len() as i64 == limit).then(|| rows.last().map(|(_, name)| name.clone())).flatten();
    Ok((rows.into_iter().map(|(v, _)| v).collect(), next))
}

/// One endpoint (no secret, no header value).
pub async fn get(db: &Db, scope: &Scope, name: &str) -> Result<Value, ManageError> {
    let filter = EndpointFilter { name: Some(name.to_owned()), ..EndpointFilter::default() };
    let rows = db.api_endpoints(scope.tenant(), "", 1, &filter).await?;
    rows.into_iter().next().map(|(v, _)| v).ok_or(ManageError::NotFound)
}

/// What the console's endpoint page shows beside [`get`]: times in UTC, a
/// pause in force, how long it has been failing, and which TLS columns,
/// legacy signature and transform are set (presence and kind only).
pub async fn facts(db: &Db, scope: &Scope, name: &str) -> Result<Value, ManageError> {
    db.console_endpoint(name, scope.tenant()).await?.ok_or(ManageError::NotFound)
}

/// Creates an endpoint with a new secret; the endpoint and the secret (shown once).
pub async fn create(
    db: &Db,
    config: &Config,
    scope: &Scope,
    fields: Map<String, Value>,
) -> Result<(Value, String), ManageError> {
    let fields = checked(config, scope, fields, true)?;
    let name = fields.get("name").and_then(Value::as_str).unwrap_or_default().to_owned();
    let secret = new_secret()?;
    db.api_endpoint_create(&Value::Object(fields).to_string(), &secret).await?;
    Ok((get(db, scope, &name).await?, secret))
}

/// An endpoint managed by the config file is changed there: the API only pauses, resumes, enables and tests it.
async fn writable(db: &Db, scope: &Scope, name: &str) -> Result<(), ManageError> {
    match db.api_endpoint_state(name, scope.tenant()).await? {
        None => Err(ManageError::NotFound),
        Some((_, managed_by)) if managed_by == "config" => Err(ManageError::Conflict {
            code: "managed_by_config",
            message: "this endpoint is declared in the config file; change it there".into(),
        }),
        Some(_) => Ok(()),
    }
}

/// Replaces the fields given; the endpoint as it is now.
pub async fn update(
    db: &Db,
    config: &Config,
    scope: &Scope,
    name: &str,
    fields: Map<String, Value>,
) -> Result<Value, ManageError> {
    writable(db, scope, name).await?;
    let fields = checked(config, scope, fields, false)?;
    if !db.api_endpoint_update(name, scope.tenant(), &Value::Object(fields).to_string()).await? {
        return Err(ManageError::NotFound);
    }
    get(db, scope, name).await
}

/// Deletes an endpoint with its deliveries and attempts.
pub async fn delete(db: &Db, scope: &Scope, name: &str) -> Result<(), ManageError> {
    writable(db, scope, name).await?;
    found(db.api_endpoint_delete(name, scope.tenant()).await?)
}

/// Re-enables an endpoint whatever disabled it (`tailhook enable`).
pub async fn enable(db: &Db, scope: &Scope, name: &str) -> Result<Value, ManageError> {
    found(db.api_endpoint_enable(name, scope.tenant()).await?)?;
    get(db, scope, name).await
}

/// Pauses deliveries to an endpoint for `seconds` (1 to [`MAX_SECONDS`]).
pub async fn pause(db: &Db, scope: &Scope, name: &str, seconds: i64) -> Result<Value, ManageError> {
    let seconds = within("seconds", seconds)?;
    found(db.api_endpoint_pause(name, scope.tenant(), Some(seconds)).await?)?;
    get(db, scope, name).await
}

/// Ends a pause now.
pub async fn resume(db: &Db, scope: &Scope, name: &str) -> Result<Value, ManageError> {
    found(db.api_endpoint_pause(name, scope.tenant(), None).await?)?;
    get(db, scope, name).await
}

/// A new secret signs from now on; the older ones sign too until `overlap_seconds` have passed (0 to [`MAX_SECONDS`]).
/// Returns the new secret (shown once) and when the older ones retire (RFC 3339).
pub async fn rotate(db: &Db, scope: &Scope, name: &str, overlap_seconds: i64) -> Result<(String, String), ManageError> {
    if !(0..=MAX_SECONDS).contains(&overlap_seconds) {
        return Err(ManageError::invalid("overlap_seconds", "range", format!("must be 0 to {MAX_SECONDS}")));
    }
    writable(db, scope, name).await?;
    let secret = new_secret()?;
    let until = db.api_endpoint_rotate(name, scope.tenant(), &secret, overlap_seconds as i32).await?;
    Ok((secret, until.ok_or(ManageError::NotFound)?))
}

/// One signed test request now (as `tailhook send-test`); nothing recorded.
pub async fn send_test(db: &Db, config: &Config, scope: &Scope, name: &str) -> Result<Probe, ManageError> {
    db.api_endpoint_state(name, scope.tenant()).await?.ok_or(ManageError::NotFound)?;
    let request =
        TestRequest { endpoint: name.to_owned(), event_type: "tailhook.test".into(), data: r#"{"test":true}"#.into() };
    probe(config, db, &request).await.map_err(|e| match e {
        SendTestError::Database(e) => ManageError::from(e),
        SendTestError::BadInput(why) | SendTestError::Failed(why) => {
            ManageError::Conflict { code: "test_not_sent", message: why }
        }
    })
}

fn within(field: &'static str, seconds: i64) -> Result<i32, ManageError> {
    if (1..=MAX_SECONDS).contains(&seconds) {
        Ok(seconds as i32)
    } else {
        Err(ManageError::invalid(field, "range", format!("must be 1 to {MAX_SECONDS}")))
    }
}

fn found(yes: bool) -> Result<(), ManageError> {
    if yes {
        Ok(())
    } else {
        Err(ManageError::NotFound)
    }
}

/// How often the secrets whose rotation overlap ended are dropped.
pub const RETIRE_EVERY: std::time::Duration = std::time::Duration::from_secs(2);

/// Drops rotated-out secrets when their overlap ends, until `stop` (the
/// endpoint refresher then reloads the endpoint and the signer stops using them).
pub async fn retire_secrets(db: Db, stop: tokio_util::sync::CancellationToken) {
    let throttle = crate::log_throttle::Throttle::new(std::time::Duration::from_secs(60));
    loop {
        tokio::select! {
            _ = tokio::time::sleep(RETIRE_EVERY) => {}
            _ = stop.cancelled() => return,
        }
        match db.api_retire_secrets().await {
            Ok(0) => {}
            Ok(n) => tracing::info!(endpoints = n, "rotated-out secrets retired: their overlap ended"),
            // undefined_function: a schema before version 27, where nothing rotates.
            Err(error) if error.code() == Some("42883") => {}
            Err(error) => {
                if let Some(skipped) = throttle.allow() {
                    tracing::warn!(%error, skipped, "cannot retire rotated-out secrets");
                }
            }
        }
    }
}
