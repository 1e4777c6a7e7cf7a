//! The JSON API under `/api/v1`: bearer tokens (see `manage::tokens`), JSON errors with a stable `code`, bounded bodies; the work itself is `crate::manage`'s.
//!
//! This layer only parses requests, checks the token and its level, and maps
//! [`ManageError`] to a status and a JSON body. A token never reaches a log
//! line, a metric or an error: wrong ones are counted per peer by the
//! console's sign-in throttle (5 tries, then a minute's pause) and logged
//! with the peer only. A tenant-bound token's requests for another tenant's
//! ids get the same 404 body as ids that do not exist.

mod openapi;
mod routes;

pub use openapi::document;

use crate::config::Config;
use crate::db::Db;
use crate::manage::tokens::{self, Grant, Level};
use crate::manage::ManageError;
use crate::serve::console::signin::{SignInThrottle, FREE_FAILURES, PAUSE};
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::sync::Arc;

/// The largest request body read, in bytes.
pub const MAX_BODY_BYTES: usize = 1 << 20;

/// What the API reads and acts with.
pub struct Api {
    pub db: Db,
    /// For send-test (its delivery policy) and the URL rule (`delivery.https_only`).
    pub config: Arc<Config>,
    /// Wakes the claim of due deliveries after a redelivery or an enable.
    pub kick: Arc<dyn Fn() + Send + Sync>,
    /// Wrong tokens per peer.
    throttle: SignInThrottle,
}

impl Api {
    pub fn new(db: Db, config: Arc<Config>, kick: Arc<dyn Fn() + Send + Sync>) -> Self {
        Self { db, config, kick, throttle: SignInThrottle::default() }
    }
}

/// Who asked: the peer and the token's grant (never the token).
#[derive(Debug, Clone)]
pub struct Caller {
    pub peer: SocketAddr,
    pub grant: Grant,
}

impl Caller {
    /// 403 unless the token's level reaches `level`.
    fn needs(&self, level: Level) -> Result<(), Box<Response>> {
        if self.grant.level >= level {
            return Ok(());
        }
        Err(Box::new(error(
            StatusCode::FORBIDDEN,
            "forbidden",
            &format!("this needs a token of scope {} (this one is {})", level.as_str(), self.grant.level.as_str()),
            None,
        )))
    }
}

/// The API's routes; the listener must be served with `ConnectInfo<SocketAddr>`.
pub fn router(api: Arc<Api>) -> Router {
    let guarded = routes::routes().route_layer(axum::middleware::from_fn_with_state(api.clone(), authenticate));
    let v1 = Router::new()
        .route("/openapi.json", axum::routing::get(openapi_json))
        .merge(guarded)
        .fallback(not_found)
        .layer(axum::middleware::from_fn(headers))
        .with_state(api);
    Router::new().nest("/api/v1", v1)
}

async fn openapi_json() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], document().to_string()).into_response()
}

async fn not_found() -> Response {
    error(StatusCode::NOT_FOUND, "not_found", "no such route", None)
}

/// `no-store` on every answer (they may hold a new secret or token-scoped data).
async fn headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let h = response.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert("x-content-type-options", HeaderValue::from_static("nosniff"));
    response
}

/// Checks `Authorization: Bearer <token>`, holding back peers that guess.
async fn authenticate(State(api): State<Arc<Api>>, mut request: Request, next: Next) -> Response {
    let Some(peer) = request.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0) else {
        return error(StatusCode::INTERNAL_SERVER_ERROR, "internal", "the listener does not say who is asking", None);
    };
    let bearer = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    let Some(token) = bearer else {
        let mut response = error(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "send a token: Authorization: Bearer thk_... (make one with `tailhook token create`)",
            None,
        );
        response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        return response;
    };
    let now = std::time::Instant::now();
    if let Err(seconds) = api.throttle.check(peer.ip(), now) {
        let mut response = error(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_attempts",
            &format!("too many wrong tokens from this address: try again in {seconds} s"),
            None,
        );
        response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        return response;
    }
    match tokens::check(&api.db, token).await {
        Ok(Some(grant)) => {
            api.throttle.succeeded(peer.ip());
            request.extensions_mut().insert(Caller { peer, grant });
            next.run(request).await
        }
        Ok(None) => {
            let paused = api.throttle.failed(peer.ip(), now);
            tracing::warn!(peer = %peer.ip(), "API request refused: unknown, revoked or expired token");
            if paused {
                tracing::warn!(
                    peer = %peer.ip(), failures = FREE_FAILURES, pause_secs = PAUSE.as_secs(),
                    "API authentication throttled: wrong tokens; this address is refused until the pause ends"
                );
            }
            let mut response =
                error(StatusCode::UNAUTHORIZED, "unauthorized", "the token is unknown, revoked or expired", None);
            response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            response
        }
        Err(e) => failure(e),
    }
}

/// A JSON error: `code` (stable), `message`, and for a refused value its `field` and `rule`.
pub fn error(status: StatusCode, code: &str, message: &str, field_rule: Option<(&str, &str)>) -> Response {
    let mut body = json!({ "code": code, "message": message });
    if let Some((field, rule)) = field_rule {
        body["field"] = Value::from(field);
        body["rule"] = Value::from(rule);
    }
    (status, axum::Json(body)).into_response()
}

/// A [`ManageError`] as its status and JSON body.
pub fn failure(e: ManageError) -> Response {
    match e {
        ManageError::NotFound => error(StatusCode::NOT_FOUND, "not_found", "not found", None),
        ManageError::Invalid { field, rule, message } => {
            error(StatusCode::UNPROCESSABLE_ENTITY, "invalid", &format!("{field}: {message}"), Some((&field, &rule)))
        }
        ManageError::Conflict { code, message } => error(StatusCode::CONFLICT, code, &message, None),
        ManageError::Database(e) => {
            tracing::warn!(error = %e, "the API cannot reach the database");
            error(StatusCode::SERVICE_UNAVAILABLE, "unavailable", "the database did not answer; try again", None)
        }
    }
}
