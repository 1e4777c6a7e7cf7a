//! The API's handlers: parse the request, check the token's level, call `crate::manage`, answer JSON.

use super::{error, failure, Api, Caller, MAX_BODY_BYTES};
use crate::db::{EndpointFilter, Search, Selection};
use crate::manage::tokens::Level;
use crate::manage::{deliveries, endpoints, events, ManageError};
use axum::body::Body;
use axum::extract::{Extension, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::sync::Arc;

type Params = Query<HashMap<String, String>>;
/// An answer, or a refusal (boxed: a `Response` is large).
type Answer = Result<Response, Box<Response>>;
type Refused = Box<Response>;

pub fn routes() -> Router<Arc<Api>> {
    Router::new()
        .route("/status", get(status))
        .route("/endpoints", get(list_endpoints).post(create_endpoint))
        .route("/endpoints/{name}", get(get_endpoint).patch(update_endpoint).delete(delete_endpoint))
        .route("/endpoints/{name}/enable", post(enable_endpoint))
        .route("/endpoints/{name}/pause", post(pause_endpoint))
        .route("/endpoints/{name}/resume", post(resume_endpoint))
        .route("/endpoints/{name}/rotate-secret", post(rotate_secret))
        .route("/endpoints/{name}/test", post(test_endpoint))
        .route("/events", post(publish))
        .route("/events/{event_id}", get(get_event))
        .route("/deliveries", get(search))
        .route("/deliveries/redeliver", post(redeliver_query))
        .route("/deliveries/{id}", get(get_delivery))
        .route("/deliveries/{id}/redeliver", post(redeliver_one))
}

/// The body as a JSON object (an empty body is `{}`), at most [`MAX_BODY_BYTES`].
async fn object(body: Body) -> Result<Map<String, Value>, Refused> {
    let bytes = axum::body::to_bytes(body, MAX_BODY_BYTES).await.map_err(|_| {
        Box::new(error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            &format!("the body is over {MAX_BODY_BYTES} bytes"),
            None,
        ))
    })?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(Box::new(error(StatusCode::BAD_REQUEST, "invalid_json", "the body must be a JSON object", None))),
        Err(e) => {
            Err(Box::new(error(StatusCode::BAD_REQUEST, "invalid_json", &format!("the body is not JSON: {e}"), None)))
        }
    }
}

/// A query parameter, or a 422 naming it.
fn param<T: std::str::FromStr>(q: &HashMap<String, String>, name: &str, what: &str) -> Result<Option<T>, Refused> {
    match q.get(name).map(|v| v.trim()).filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(v) => v.parse().map(Some).map_err(|_| invalid(name, "type", &format!("must be {what}"))),
    }
}

fn text(q: &HashMap<String, String>, name: &str) -> Option<String> {
    q.get(name).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty())
}

fn invalid(field: &str, rule: &str, message: &str) -> Refused {
    Box::new(failure(ManageError::invalid(field, rule, message)))
}

/// A number in the body, or a 422 naming it.
fn number(body: &Map<String, Value>, field: &str, default: Option<i64>) -> Result<i64, Refused> {
    match body.get(field) {
        None => default.ok_or_else(|| invalid(field, "required", "is required")),
        Some(v) => v.as_i64().ok_or_else(|| invalid(field, "type", "must be an integer")),
    }
}

fn ok(value: Value) -> Answer {
    Ok(Json(value).into_response())
}

fn done(result: Result<Value, ManageError>) -> Answer {
    result.map(|v| Json(v).into_response()).map_err(|e| Box::new(failure(e)))
}

/// Logs a change with who asked (the token's id, never the token).
fn logged(caller: &Caller, action: &str, what: &str) {
    tracing::info!(
        peer = %caller.peer.ip(), token_id = caller.grant.token_id, tenant = caller.grant.scope.tenant(), action, what,
        "API: change made"
    );
}

fn answer(r: Answer) -> Response {
    r.unwrap_or_else(|e| *e)
}

async fn status(State(api): State<Arc<Api>>, Extension(c): Extension<Caller>, Query(q): Params) -> Response {
    answer(
        async {
            c.needs(Level::Read)?;
            let window = text(&q, "window").unwrap_or_else(|| "24h".into());
            let rows = deliveries::status(&api.db, &c.grant.scope, &window).await.map_err(failure)?;
            ok(json!({ "window": window, "endpoints": rows }))
        }
        .await,
    )
}

async fn list_endpoints(State(api): State<Arc<Api>>, Extension(c): Extension<Caller>, Query(q): Params) -> Response {
    answer(
        async {
            c.needs(Level::Read)?;
            let filter = EndpointFilter {
                tenant: text(&q, "tenant"),
                enabled: param(&q, "enabled", "true or false")?,
                event_type: text(&q, "event_type"),
                name: None,
            };
            let limit = param(&q, "limit", "an integer")?.unwrap_or(50);
            let after = text(&q, "after").unwrap_or_default();
            let (rows, next) =
                endpoints::list(&api.db, &c.grant.scope, &filter, &after, limit).await.map_err(failure)?;
            ok(json!({ "endpoints": rows, "next_after": next }))
        }
        .await,
    )
}

async fn create_endpoint(State(api): State<Arc<Api>>, Extension(c): Extension<Caller>, body: Body) -> Response {
    answer(
        async {
            c.needs(Level::Write)?;
            let fields = object(body).await?;
            let (endpoint, secret) =
                endpoints::create(&api.db, &api.config, &c.grant.scope, fields).await.map_err(failure)?;
            logged(&c, "create endpoint", endpoint["name"].as_str().unwrap_or_default());
            (api.kick)();
            Ok((StatusCode::CREATED, Json(json!({ "endpoint": endpoint, "secret": secret }))).into_response())
        }
        .await,
    )
}

async fn get_endpoint(
    State(api): State<Arc<Api>>,
    Extension(c): Extension<Caller>,
    Path(name): Path<String>,
) -> Response {
    answer(
        async {
            c.needs(Level::Read)?;
            done(endpoints::get(&api.db, &c.grant.scope, &name).await)
        }
        .await,
    )
}

async fn update_endpoint(
    State(api): State<Arc<Api>>,
    Extension(c): Extension<Caller>,
    Path(name): Path<String>,
    body: Body,
) -> Response {
    answer(
        async {
            c.needs(Level::Write)?;
            let fields = object(body).await?;
            let r = endpoints::update(&api.db, &api.config, &c.grant.scope, &name, fields).await;
            if r.is_ok() {
                logged(&c, "update endpoint", &name);
            }
            done(r)
        }
        .await,
    )
}

async fn delete_endpoint(
    State(api): State<Arc<Api>>,
    Extension(c): Extension<Caller>,
    Path(name): Path<String>,
) -> Response {
    answer(
        async {
            c.needs(Level::Admin)?;
            endpoints::delete(&api.db, &c.grant.scope, &name).await.map_err(failure)?;
            logged(&c, "delete endpoint", &name);
            Ok(StatusCode::NO_CONTENT.into_response())
        }
        .await,
    )
}

async fn enable_endpoint(
    State(api): State<Arc<Api>>,
    Extension(c): Extension<Caller>,
    Path(name): Path<String>,
) -> Response {
    answer(
        async {
            c.needs(Level::Write)?;
            let r = endpoints::enable(&api.db, &c.grant.scope, &name).await;
            if r.is_ok() {
                logged(&c, "enable endpoint", &name);
                (api.kick)();
            }
            done(r)
        }
        .await,
    )
}

async fn pause_endpoint(
    State(api): State<Arc<Api>>,
    Extension(c): Extension<Caller>,
    Path(name): Path<String>,
    body: Body,
) -> Response {
    answer(
        async {
            c.needs(Level::Write)?;
            let seconds = number(&object(body).await?, "seconds", None)?;
            let r = endpoints::pause(&api.db, &c.grant.scope, &name, seconds).await;
            if r.is_ok() {
                logged(&c, "pause endpoint", &name);
            }
            done(r)
        }
        .await,
    )
}

async fn resume_endpoint(
    State(api): State<Arc<Api>>,
    Extension(c): Extension<Caller>,
    Path(name): Path<String>,
) -> Response {
    answer(
        async {
            c.needs(Level::Write)?;
            let r = endpoints::resume(&api.db, &c.grant.scope, &name).await;
            if r.is_ok() {
                logged(&c, "resume endpoint", &name);
                (api.kick)();
            }
            done(r)
        }
        .await,
    )
}

async fn rotate_secret(
    State(api): State<Arc<Api>>,
    Extension(c): Extension<Caller>,
    Path(name): Path<String>,
    body: Body,
) -> Response {
    answer(
        async {
            c.needs(Level::Write)?;
            let overlap = number(&object(body).await?, "overlap_seconds", Some(86_400))?;
            let (secret, until) = endpoints::rotate(&api.db, &c.grant.scope, &name, overlap).await.map_err(failure)?;
            logged(&c, "rotate secret", &name);
            ok(json!({ "secret": secret, "previous_secrets_retire_at": until }))
        }
        .await,
    )
}

async fn test_endpoint(
    State(api): State<Arc<Api>>,
    Extension(c): Extension<Caller>,
    Path(name): Path<String>,
) -> Response {
    answer(
        async {
            c.needs(Level::Write)?;
            let p = endpoints::send_test(&api.db, &api.config, &c.grant.scope, &name).await.map_err(failure)?;
            logged(&c, "send test", &name);
            ok(json!({
                "endpoint": p.endpoint, "origin": p.origin, "event_id": p.event_id, "event_type": p.event_type,
                "status_code": p.status_code, "duration_ms": p.duration_ms as u64, "response": p.response,
                "error_kind": p.failure.as_ref().map(|f| f.0), "error": p.failure.as_ref().map(|f| f.1.clone()),
                "refused_before_sending": p.refused, "succeeded": p.failure.is_none(),
            }))
        }
        .await,
    )
}

async fn publish(State(api): State<Arc<Api>>, Extension(c): Extension<Caller>, body: Body) -> Response {
    answer(
        async {
            c.needs(Level::Write)?;
            let body = object(body).await?;
            let request: events::Publish = serde_json::from_value(Value::Object(body)).map_err(|e| {
                error(StatusCode::UNPROCESSABLE_ENTITY, "invalid", &e.to_string(), Some(("body", "type")))
            })?;
            let (event, created) = events::publish(&api.db, &c.grant.scope, request).await.map_err(failure)?;
            let status = if created { StatusCode::CREATED } else { StatusCode::OK };
            Ok((status, Json(event)).into_response())
        }
        .await,
    )
}

async fn get_event(State(api): State<Arc<Api>>, Extension(c): Extension<Caller>, Path(id): Path<String>) -> Response {
    answer(
        async {
            c.needs(Level::Read)?;
            done(events::get(&api.db, &c.grant.scope, &id).await)
        }
        .await,
    )
}

const STATUSES: [&str; 5] = ["pending", "retrying", "succeeded", "failed", "cancelled"];

fn delivery_status(value: Option<String>) -> Result<Option<String>, Refused> {
    match value {
        Some(s) if !STATUSES.contains(&s.as_str()) => {
            Err(invalid("status", "delivery_status", "must be pending, retrying, succeeded, failed or cancelled"))
        }
        other => Ok(other),
    }
}

async fn search(State(api): State<Arc<Api>>, Extension(c): Extension<Caller>, Query(q): Params) -> Response {
    answer(
        async {
            c.needs(Level::Read)?;
            let s = Search {
                event_id: text(&q, "event_id"),
                endpoint: text(&q, "endpoint"),
                event_type: text(&q, "event_type"),
                tenant: text(&q, "tenant"),
                status: delivery_status(text(&q, "status"))?,
                since: text(&q, "since"),
                until: text(&q, "until"),
                below: param(&q, "below", "an integer")?,
                owner: None,
            };
            let limit = param(&q, "limit", "an integer")?.unwrap_or(50);
            let (rows, next) = deliveries::search(&api.db, &c.grant.scope, s, limit).await.map_err(failure)?;
            ok(json!({ "deliveries": rows, "next_below": next }))
        }
        .await,
    )
}

fn delivery_id(id: &str) -> Result<i64, Refused> {
    id.parse().map_err(|_| Box::new(failure(ManageError::NotFound)))
}

async fn get_delivery(
    State(api): State<Arc<Api>>,
    Extension(c): Extension<Caller>,
    Path(id): Path<String>,
) -> Response {
    answer(
        async {
            c.needs(Level::Read)?;
            done(deliveries::get(&api.db, &c.grant.scope, delivery_id(&id)?).await)
        }
        .await,
    )
}

/// Who asks for a redelivery, as recorded on it: the token's id (never the token).
fn requester(c: &Caller) -> String {
    match c.grant.scope.tenant() {
        Some(tenant) => format!("api token #{} (tenant {tenant})", c.grant.token_id),
        None => format!("api token #{}", c.grant.token_id),
    }
}

async fn redeliver_one(
    State(api): State<Arc<Api>>,
    Extension(c): Extension<Caller>,
    Path(id): Path<String>,
) -> Response {
    answer(
        async {
            c.needs(Level::Write)?;
            let id = delivery_id(&id)?;
            let selection =
                Selection { ids: Some(vec![id]), requested_by: Some(requester(&c)), ..Selection::default() };
            let n = deliveries::redeliver(&api.db, &c.grant.scope, selection).await.map_err(failure)?;
            logged(&c, "redeliver", &id.to_string());
            (api.kick)();
            ok(json!({ "redelivered": n }))
        }
        .await,
    )
}

async fn redeliver_query(State(api): State<Arc<Api>>, Extension(c): Extension<Caller>, body: Body) -> Response {
    answer(
        async {
            c.needs(Level::Admin)?;
            let body = object(body).await?;
            let field = |name: &str| -> Result<Option<String>, Refused> {
                match body.get(name) {
                    None | Some(Value::Null) => Ok(None),
                    Some(Value::String(s)) => Ok(Some(s.clone())),
                    Some(_) => Err(invalid(name, "type", "must be a string")),
                }
            };
            if let Some(unknown) =
                body.keys().find(|k| !["endpoint", "event_type", "status", "since", "until"].contains(&k.as_str()))
            {
                return Err(invalid(unknown, "unknown_field", "is not a field of a redelivery"));
            }
            let selection = Selection {
                ids: None,
                endpoint: field("endpoint")?,
                event_type: field("event_type")?,
                status: Some(delivery_status(field("status")?)?.unwrap_or_else(|| "failed".into())),
                since: field("since")?,
                until: field("until")?,
                requested_by: Some(requester(&c)),
            };
            let n = deliveries::redeliver(&api.db, &c.grant.scope, selection).await.map_err(failure)?;
            logged(&c, "redeliver by query", &n.to_string());
            (api.kick)();
            ok(json!({ "redelivered": n }))
        }
        .await,
    )
}
