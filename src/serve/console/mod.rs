//! The delivery console at `/`: server-rendered pages (endpoints, delivery search, one delivery) and the actions, all behind the rules of `access.rs`.
//!
//! Pages are HTML from `maud` templates compiled into the binary, with a
//! small inline style sheet and no script: every value spliced into a page
//! is escaped by the template engine, and the `Content-Security-Policy`
//! forbids scripts anyway, so a payload or a name holding `<script>` is
//! text. Every list is read through an index and paged by keyset (see the
//! `console_*.sql` files). Secrets, header values and signatures are never
//! read for a page; endpoint URLs are shown as scheme, host and port only.

mod access;
mod actions;
mod chart;
mod delivery;
mod endpoint;
mod layout;
mod overview;
mod portal;
mod search;
pub(crate) mod signin;

use crate::config::secret::Secret;
use crate::config::Config;
use crate::db::{Db, DbError};
use access::{Access, Denied, Fetch};
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
    pub transforms: Arc<crate::transform::Transforms>,
    /// The tenant portal's link key (`server.portal_key_env`); `None`: no portal.
    portal: Option<crate::manage::portal::LinkKey>,
    /// Wrong tokens per peer (see `signin.rs`).
    signin: signin::SignInThrottle,
    /// One log line a minute about GETs another site started.
    refused_gets: crate::log_throttle::Throttle,
}

impl Console {
    /// `transforms`: the sidecar's engine, so the page's runs share its bound.
    pub fn new(
        db: Db,
        config: Arc<Config>,
        admin_token: Option<Secret>,
        kick: Arc<dyn Fn() + Send + Sync>,
        transforms: Arc<crate::transform::Transforms>,
    ) -> Self {
        Self {
            db,
            config,
            admin_token,
            csrf: access::new_csrf_token(),
            kick,
            transforms,
            portal: None,
            signin: signin::SignInThrottle::default(),
            refused_gets: crate::log_throttle::Throttle::new(std::time::Duration::from_secs(60)),
        }
    }

    /// Serves the tenant portal at `/portal/<token>/` for links signed with `key`.
    pub fn with_portal(mut self, key: Option<crate::manage::portal::LinkKey>) -> Self {
        self.portal = key;
        self
    }
}

/// Put on a request by a layer outside the console's router (never read from
/// the request itself): the scope and read-only flag `guard` gives its
/// [`Who`]; without it a request has the operator's scope (every tenant's).
/// The tenant portal (`portal.rs`) does not pass through `guard`: it makes
/// its `Who` from the link itself.
#[derive(Debug, Clone, Default)]
pub struct Scoped {
    pub scope: crate::manage::Scope,
    pub read_only: bool,
}

/// Who asked, for the log of actions, and what they may see and do.
#[derive(Debug, Clone)]
pub struct Who {
    pub peer: SocketAddr,
    pub access: Access,
    /// Whose endpoints, events and deliveries the request may reach: every
    /// tenant's for the operator; one tenant's for a tenant portal link.
    /// Every page and action reads and writes through it.
    pub scope: crate::manage::Scope,
    /// Pages only, no action (a read-only portal link).
    pub read_only: bool,
    /// The CSRF token this request's forms carry and its actions must
    /// return: the process's for the operator, one derived from the link for
    /// a portal (a tenant never sees the operator's).
    pub csrf: String,
    /// The request came from the console's own pages, an address typed or
    /// bookmarked, or a client that is not a browser; `false` for a link
    /// followed from another site (such a page runs no transform).
    pub from_console: bool,
}

/// The console's routes; the listener must be served with `ConnectInfo<SocketAddr>`.
pub fn router(console: Arc<Console>) -> Router {
    let guarded = pages().route_layer(axum::middleware::from_fn_with_state(console.clone(), guard));
    let portal = Router::new()
        .route("/portal/{*rest}", get(portal::serve).post(portal::serve))
        .with_state(portal::Pages { console: console.clone(), router: pages().with_state(console.clone()) });
    Router::new()
        .route("/login", get(actions::login_form).post(actions::login))
        .merge(guarded)
        .with_state(console.clone())
        .merge(portal)
        .layer(axum::middleware::from_fn_with_state(console, headers))
}

/// The pages and actions, for the operator (behind `guard`) and for a
/// tenant portal (behind `portal::serve`); each handler reads [`Who`].
fn pages() -> Router<Arc<Console>> {
    Router::new()
        .route("/", get(overview::page))
        .route("/deliveries", get(search::page))
        .route("/deliveries/{id}", get(delivery::page))
        .route("/actions/redeliver", post(actions::redeliver))
        .route("/actions/enable", post(actions::enable))
        .route("/actions/pause", post(actions::pause))
        .route("/actions/test", post(actions::test))
        .route("/endpoints/new", get(endpoint::new_form).post(endpoint::create))
        .route("/endpoints/{name}", get(endpoint::page))
        .route("/endpoints/{name}/edit", get(endpoint::edit_form).post(endpoint::update))
        .route("/endpoints/{name}/delete", get(endpoint::delete_form).post(endpoint::delete))
        .route("/endpoints/{name}/pause", post(endpoint::pause))
        .route("/endpoints/{name}/resume", post(endpoint::resume))
        .route("/endpoints/{name}/enable", post(endpoint::enable))
        .route("/endpoints/{name}/rotate", post(endpoint::rotate))
        .route("/endpoints/{name}/test", post(endpoint::test))
}

/// Refuses GETs another site started, lets in loopback and admin-token
/// requests (see `access.rs`), holds back peers guessing the token (see
/// `signin.rs`), and tells the handler who asked.
async fn guard(State(console): State<Arc<Console>>, mut request: Request, next: Next) -> Response {
    let peer = request.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0);
    let Some(peer) = peer else {
        return failure(StatusCode::INTERNAL_SERVER_ERROR, "the listener does not say who is asking");
    };
    let headers = request.headers();
    let is_get = matches!(*request.method(), axum::http::Method::GET | axum::http::Method::HEAD);
    let fetch = if is_get { access::fetch_of(headers) } else { Fetch::Console };
    if let Fetch::Refused(why) = fetch {
        if let Some(suppressed) = console.refused_gets.allow() {
            tracing::warn!(%peer, %why, suppressed, "console GET refused: another site started it");
        }
        return failure(StatusCode::FORBIDDEN, &format!("refused: {why}; open the console's pages directly"));
    }
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    let mut token_ok = false;
    if let (Some(credential), Some(admin)) = (access::credential(headers), &console.admin_token) {
        let now = std::time::Instant::now();
        if let Err(seconds) = console.signin.check(peer.ip(), now) {
            return too_many_attempts(seconds);
        }
        match access::check_credential(&credential, admin, std::time::SystemTime::now()) {
            Some(true) => token_ok = true,
            Some(false) if console.signin.failed(peer.ip(), now) => log_throttled(peer),
            Some(false) | None => {}
        }
    }
    let scoped = request.extensions().get::<Scoped>().cloned().unwrap_or_default();
    match access::decide(peer.ip(), host, token_ok, console.admin_token.is_some()) {
        Ok(access) => {
            request.extensions_mut().insert(Who {
                peer,
                access,
                scope: scoped.scope,
                read_only: scoped.read_only,
                csrf: console.csrf.clone(),
                from_console: fetch == Fetch::Console,
            });
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

/// 429 while a peer's credentials are not checked.
fn too_many_attempts(seconds: u64) -> Response {
    let mut response = failure(
        StatusCode::TOO_MANY_REQUESTS,
        &format!("too many wrong tokens from this address: try again in {seconds} s"),
    );
    response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    response
}

/// Once per pause of a peer.
fn log_throttled(peer: SocketAddr) {
    tracing::warn!(
        peer = %peer.ip(),
        failures = signin::FREE_FAILURES,
        pause_secs = signin::PAUSE.as_secs(),
        "console sign-in throttled: wrong tokens; this address is refused until the pause ends"
    );
}

/// Headers on every console response: no script, no framing, no caching,
/// no referrer to other sites (URLs carry search terms, and a portal's path
/// its link; `no-referrer` would make browsers send `Origin: null` with the
/// console's own forms). The portal may be framed by the origins in
/// `server.portal_frame_ancestors` (default `'none'`, as the console).
async fn headers(State(console): State<Arc<Console>>, request: Request, next: Next) -> Response {
    let in_portal = request.uri().path().starts_with("/portal/");
    let mut response = next.run(request).await;
    let h = response.headers_mut();
    let ancestors = if in_portal { console.config.server.frame_ancestors() } else { "'none'".to_owned() };
    let csp = format!(
        "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; form-action 'self'; \
         frame-ancestors {ancestors}; base-uri 'none'"
    );
    if let Ok(csp) = HeaderValue::from_str(&csp) {
        h.insert("content-security-policy", csp);
    }
    // X-Frame-Options cannot name origins: sent only when nobody may frame.
    if ancestors == "'none'" {
        h.insert("x-frame-options", HeaderValue::from_static("DENY"));
    }
    for (name, value) in
        [("x-content-type-options", "nosniff"), ("referrer-policy", "same-origin"), ("cache-control", "no-store")]
    {
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
