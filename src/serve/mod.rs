//! The HTTP listener (`[server] listen`): `/healthz` (the process answers), `/readyz` (the database answers and LISTEN is up), `/metrics` (Prometheus text), the delivery console at `/` and the JSON API at `/api/v1`.
//!
//! `/readyz` and `/metrics` answer only a `Host` that is an IP address,
//! `localhost` or a name in `server.allowed_hosts` (see `host.rs`): endpoint
//! names and database errors are not for a page that rebound its DNS name to
//! this machine. `/healthz` says `ok` to anyone.

pub mod api;
pub mod console;
pub mod host;

use crate::db::Db;
use crate::metrics::{Metrics, GAUGE_REFRESH};
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// How long `/readyz` waits for the database.
const READY_TIMEOUT: Duration = Duration::from_secs(2);

/// What the listener reads.
pub struct Probes {
    pub db: Db,
    /// Whether `database.listen` is on (then `/readyz` needs the LISTEN connection).
    pub listen: bool,
    /// Set while the LISTEN connection is up.
    pub listening: Arc<AtomicBool>,
    pub metrics: Arc<Metrics>,
    /// `server.allowed_hosts`: names `/readyz` and `/metrics` answer.
    pub allowed_hosts: Vec<String>,
    /// When the SQL-backed gauges were last refreshed.
    refreshed: tokio::sync::Mutex<Option<Instant>>,
}

impl Probes {
    pub fn new(
        db: Db,
        listen: bool,
        listening: Arc<AtomicBool>,
        metrics: Arc<Metrics>,
        allowed_hosts: Vec<String>,
    ) -> Self {
        Self { db, listen, listening, metrics, allowed_hosts, refreshed: tokio::sync::Mutex::new(None) }
    }
}

/// Serves until `stop` on an already bound listener; the console too when given.
pub async fn serve(
    listener: tokio::net::TcpListener,
    probes: Arc<Probes>,
    console: Option<Arc<console::Console>>,
    api: Option<Arc<api::Api>>,
    stop: CancellationToken,
) {
    let guarded = axum::Router::new()
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route_layer(axum::middleware::from_fn_with_state(probes.clone(), known_host));
    let mut app = axum::Router::new().route("/healthz", get(healthz)).merge(guarded).with_state(probes);
    if let Some(console) = console {
        app = app.merge(console::router(console));
    }
    if let Some(api) = api {
        app = app.merge(api::router(api));
    }
    let app = app.into_make_service_with_connect_info::<std::net::SocketAddr>();
    if let Err(error) = axum::serve(listener, app).with_graceful_shutdown(stop.cancelled_owned()).await {
        tracing::error!(%error, "the HTTP listener failed");
    }
}

/// Refuses a `Host` that is not an address, `localhost` or allowed (see `host.rs`).
async fn known_host(
    State(p): State<Arc<Probes>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .or_else(|| request.uri().authority().map(|a| a.as_str()));
    if host::probe_allowed(host, &p.allowed_hosts) {
        return next.run(request).await;
    }
    let why = "refused: /metrics and /readyz answer a Host that is an IP address, localhost, or a name listed in \
               server.allowed_hosts (a page whose DNS name was made to point here must not read them)\n";
    (StatusCode::FORBIDDEN, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], why).into_response()
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(p): State<Arc<Probes>>) -> Response {
    let database = match tokio::time::timeout(READY_TIMEOUT, p.db.ping()).await {
        Ok(Ok(())) => "ok".to_owned(),
        Ok(Err(e)) => format!("down: {e}"),
        Err(_) => format!("down: no answer within {} ms", READY_TIMEOUT.as_millis()),
    };
    let listen = match (p.listen, p.listening.load(Ordering::SeqCst)) {
        (false, _) => "off (database.listen = false)",
        (true, true) => "ok",
        (true, false) => "down: the LISTEN connection is reconnecting",
    };
    let ready = database == "ok" && !listen.starts_with("down");
    let status = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, axum::Json(serde_json::json!({ "database": database, "listen": listen }))).into_response()
}

async fn metrics(State(p): State<Arc<Probes>>) -> Response {
    {
        let mut refreshed = p.refreshed.lock().await;
        if refreshed.is_none_or(|at| at.elapsed() >= GAUGE_REFRESH) {
            match p.db.metrics_gauges().await {
                Ok(gauges) => p.metrics.set_gauges(&gauges),
                Err(error) => {
                    p.metrics.database_error("metrics");
                    tracing::warn!(%error, "cannot refresh the gauges read from the database");
                }
            }
            *refreshed = Some(Instant::now());
        }
    }
    let content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8";
    ([(header::CONTENT_TYPE, content_type)], p.metrics.encode()).into_response()
}
