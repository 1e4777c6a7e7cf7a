//! The delivery console at `/`: server-rendered pages (endpoints, delivery search, one delivery) and the actions, all behind the rules of `access.rs`.
//!
//! Pages are HTML from `maud` templates compiled into the binary, with a
//! small inline style sheet and no script: every value spliced into a page
//! is escaped by the template engine, and the `Content-Security-Policy`
//! forbids scripts anyway, so a payload or a name holding `<script>` is
//! text. Every list is read through an index and paged by keyset (see the
//! `console_*.sql` files). Secrets, header values and signatures are never
//! read for a page; endpoint URLs are shown redacted.

mod access;
mod actions;
mod chart;
mod delivery;
mod layout;
mod overview;
mod search;

use crate::config::secret::Secret;
use crate::config::Config;
use crate::db::{Db, DbError};
use access::{Access, Denied};
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use maud::html;
use std::net::SocketAddr;
use std::sync::Arc;

/// What the console reads and acts with.
pub struct Console {
    pub db: Db,
    /// For the test request: the delivery policy `send-test` uses.
    pub config: Arc<Config>,
    /// From `server.admin_token_env`; `None`: loopback only.
    pub admin_token: Option<Secret>,
    /// Put in every form and checked on every action; new for each process.
    pub csrf: String,
    /// Wakes the claim of due deliveries, so a redelivery goes now rather
    /// than at the next poll.
    pub kick: Arc<dyn Fn() + Send + Sync>,
    /// Runs endpoints' transforms for the delivery page (the sidecar's engine).
    pub transforms: Arc<crate::pipeline::transform::Transforms>,
}

impl Console {
    /// `transforms`: the sidecar's engine, so the page's runs share its bound.
    pub fn new(
        db: Db,
        config: Arc<Config>,
        admin_token: Option<Secret>,
        kick: Arc<dyn Fn() + Send + Sync>,
        transforms: Arc<crate::pipeline::transform::Transforms>,
    ) -> Self {
        Self { db, config, admin_token, csrf: access::new_csrf_token(), kick, transforms }
    }
}

/// Who asked, for the log of actions.
#[derive(Debug, Clone, Copy)]
pub struct Who {
    pub peer: SocketAddr,
    pub access: Access,
}

/// The console's routes; the listener must be served with `ConnectInfo<SocketAddr>`.
pub fn router(console: Arc<Console>) -> Router {
    let guarded = Router::new()
        .route("/", get(overview::page))
        .route("/deliveries", get(search::page))
        .route("/deliveries/{id}", get(delivery::page))
        .route("/actions/redeliver", post(actions::redeliver))
        .route("/actions/enable", post(actions::enable))
        .route("/actions/pause", post(actions::pause))
        .route("/actions/test", post(actions::test))
        .route_layer(axum::middleware::from_fn_with_state(console.clone(), guard));
    Router::new()
        .route("/login", get(actions::login_form).post(actions::login))
        .merge(guarded)
        .layer(axum::middleware::from_fn(headers))
        .with_state(console)
}

/// Lets in loopback and admin-token requests (see `access.rs`), and tells
/// the handler who asked.
async fn guard(State(console): State<Arc<Console>>, mut request: Request, next: Next) -> Response {
    let peer = request.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0);
    let Some(peer) = peer else {
        return failure(StatusCode::INTERNAL_SERVER_ERROR, "the listener does not say who is asking");
    };
    let headers = request.headers();
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    let token = access::presented_token(headers);
    match access::decide(peer.ip(), host, token.as_deref(), console.admin_token.as_ref()) {
        Ok(access) => {
            request.extensions_mut().insert(Who { peer, access });
            next.run(request).await
        }
        Err(Denied::NeedToken) => {
            let page = layout::page(
                "Sign in",
                None,
                html! { p { "This console needs the admin token here. " a href="/login" { "Sign in" } } },
            );
            (StatusCode::UNAUTHORIZED, page).into_response()
        }
        Err(Denied::LoopbackOnly) => failure(
            StatusCode::FORBIDDEN,
            "the console answers requests from this machine (loopback) only; to use it from elsewhere, \
             set server.admin_token_env to the name of an environment variable holding a token",
        ),
    }
}

/// Headers on every console response: no script, no framing, no caching,
/// no referrer to other sites (URLs carry search terms; `no-referrer` would make
/// browsers send `Origin: null` with the console's own forms).
async fn headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let h = response.headers_mut();
    for (name, value) in [
        (
            "content-security-policy",
            "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; form-action 'self'; \
             frame-ancestors 'none'; base-uri 'none'",
        ),
        ("x-frame-options", "DENY"),
        ("x-content-type-options", "nosniff"),
        ("referrer-policy", "same-origin"),
        ("cache-control", "no-store"),
    ] {
        h.insert(name, HeaderValue::from_static(value));
    }
    response
}

/// A page saying what went wrong.
fn failure(status: StatusCode, why: &str) -> Response {
    let title = status.canonical_reason().unwrap_or("Error");
    (
        status,
        layout::page(title, Some(html! { p.error { (why) } }), html! { p { a href="/" { "Back to the endpoints" } } }),
    )
        .into_response()
}

/// A database failure as a page (503: it may pass).
fn database_failure(e: &DbError) -> Response {
    tracing::warn!(error = %e, "the console cannot read the database");
    failure(StatusCode::SERVICE_UNAVAILABLE, &e.to_string())
}
