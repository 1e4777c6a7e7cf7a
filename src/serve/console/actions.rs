//! The console's actions (redeliver, re-enable, pause, send a test) and its sign-in form: POSTs checked for their origin and CSRF token, each logged with who asked and what changed.

use super::access::{self, tokens_equal};
use super::layout::page as layout_page;
use super::{database_failure, failure, Console, Who};
use crate::db::Selection;
use crate::manage::ManageError;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, Extension, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use maud::html;
use std::net::SocketAddr;
use std::sync::Arc;

/// Deliveries one Redeliver may name.
const MAX_SELECTED: usize = 1_000;

/// A url-encoded form body.
pub(super) struct Form(Vec<(String, String)>);

impl Form {
    pub(super) fn parse(body: &[u8]) -> Self {
        Self(url::form_urlencoded::parse(body).into_owned().collect())
    }

    pub(super) fn get(&self, key: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v.trim()).filter(|v| !v.is_empty())
    }

    fn all<'a>(&'a self, key: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.0.iter().filter(move |(k, _)| k == key).map(|(_, v)| v.trim())
    }
}

/// An action must come from the console's own page: same origin, the
/// request's CSRF token (the process's, or one derived from a portal link),
/// and a `Who` that may act (not a read-only link). Refusals are logged with
/// the peer.
pub(super) fn checked(who: &Who, headers: &HeaderMap, body: &[u8]) -> Result<Form, Box<Response>> {
    let form = Form::parse(body);
    let refused = |why: String| {
        tracing::warn!(peer = %who.peer, via = who.access.as_str(), %why, "console action refused");
        Box::new(failure(StatusCode::FORBIDDEN, &format!("refused: {why}")))
    };
    access::same_origin(headers).map_err(refused)?;
    if who.read_only {
        return Err(refused("this console is read-only (a read-only link): it shows, it does not act".into()));
    }
    match form.get("csrf") {
        Some(token) if tokens_equal(token, &who.csrf) => Ok(form),
        _ => Err(refused("the form's CSRF token is missing or stale (reload the page and try again)".into())),
    }
}

/// Who asks, as a redelivery records it: how the request got in and from where.
pub(super) fn requester(who: &Who) -> String {
    match who.scope.tenant() {
        Some(tenant) => format!("console, tenant {tenant} ({}) from {}", who.access.as_str(), who.peer.ip()),
        None => format!("console ({}) from {}", who.access.as_str(), who.peer.ip()),
    }
}

/// Where to go back to after an action: a path on this console only.
pub(super) fn back(form: &Form, default: &str, notice: &str) -> String {
    let to = form.get("back").and_then(same_origin_path);
    let to = to.as_deref().unwrap_or(default);
    let joiner = if to.contains('?') { '&' } else { '?' };
    format!("{to}{joiner}{notice}")
}

/// `back` as a path a browser resolves on this console's own origin, or
/// `None`. Browsers drop tabs and newlines from a URL and read `\` as `/`,
/// so `/\t/evil.example` would mean `//evil.example` (another site): any
/// control character, space or backslash refuses it, and what is left is
/// resolved as a browser would (the WHATWG parser) and must stay on this
/// origin and not start with `//`. Percent-encoded forms stay encoded.
fn same_origin_path(back: &str) -> Option<String> {
    if !back.starts_with('/') || back.chars().any(|c| c.is_control() || c.is_whitespace() || c == '\\') {
        return None;
    }
    let base = url::Url::parse("http://console.invalid/").ok()?;
    let resolved = base.join(back).ok()?;
    if resolved.origin() != base.origin() {
        return None;
    }
    let path = &resolved[url::Position::BeforePath..];
    let again = base.join(path).ok()?;
    (path.starts_with('/') && !path.starts_with("//") && again.origin() == base.origin()).then(|| path.to_owned())
}

pub async fn redeliver(
    State(console): State<Arc<Console>>,
    Extension(who): Extension<Who>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let form = match checked(&who, &headers, &body) {
        Ok(form) => form,
        Err(refused) => return *refused,
    };
    let ids: Result<Vec<i64>, _> = form.all("id").map(str::parse::<i64>).collect();
    let Ok(ids) = ids else { return failure(StatusCode::BAD_REQUEST, "a delivery id is not a number") };
    if ids.is_empty() {
        return failure(StatusCode::BAD_REQUEST, "no delivery selected: tick at least one");
    }
    if ids.len() > MAX_SELECTED {
        return failure(StatusCode::BAD_REQUEST, &format!("at most {MAX_SELECTED} deliveries at once"));
    }
    let selection = Selection { ids: Some(ids.clone()), requested_by: Some(requester(&who)), ..Selection::default() };
    match crate::manage::deliveries::redeliver(&console.db, &who.scope, selection).await {
        Ok(n) => {
            (console.kick)();
            tracing::info!(
                peer = %who.peer, via = who.access.as_str(), action = "redeliver", ?ids, redelivered = n,
                "console: deliveries put back to be sent now"
            );
            let notice = format!("notice=redelivered&n={n}&of={}", ids.len());
            Redirect::to(&back(&form, "/deliveries", &notice)).into_response()
        }
        Err(ManageError::NotFound) => failure(StatusCode::NOT_FOUND, "no such delivery; nothing was redelivered"),
        Err(e) => refused_by_manage(e),
    }
}

pub async fn enable(
    State(console): State<Arc<Console>>,
    Extension(who): Extension<Who>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let form = match checked(&who, &headers, &body) {
        Ok(form) => form,
        Err(refused) => return *refused,
    };
    let Some(endpoint) = form.get("endpoint") else { return failure(StatusCode::BAD_REQUEST, "no endpoint named") };
    match crate::manage::endpoints::enable(&console.db, &who.scope, endpoint).await {
        Ok(_) => {
            (console.kick)();
            tracing::info!(
                peer = %who.peer, via = who.access.as_str(), action = "enable", endpoint,
                "console: endpoint re-enabled (enabled, no pause, failures forgotten)"
            );
            Redirect::to(&back(&form, "/", "notice=enabled")).into_response()
        }
        Err(e) => refused_by_manage(e),
    }
}

/// A refusal from `manage` as a page: anything out of scope reads as
/// missing (404); the message for the rest (never a secret: see [`ManageError`]).
pub(super) fn refused_by_manage(e: ManageError) -> Response {
    match e {
        ManageError::NotFound => failure(StatusCode::NOT_FOUND, "no such endpoint"),
        ManageError::Invalid { field, message, .. } => failure(StatusCode::BAD_REQUEST, &format!("{field}: {message}")),
        ManageError::Conflict { message, .. } => failure(StatusCode::CONFLICT, &message),
        ManageError::Database(e) => database_failure(&e),
    }
}

pub async fn pause(
    State(console): State<Arc<Console>>,
    Extension(who): Extension<Who>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let form = match checked(&who, &headers, &body) {
        Ok(form) => form,
        Err(refused) => return *refused,
    };
    let Some(endpoint) = form.get("endpoint") else { return failure(StatusCode::BAD_REQUEST, "no endpoint named") };
    let minutes = match form.get("minutes").map(str::parse::<i32>) {
        Some(Ok(m)) if (1..=1440).contains(&m) => m,
        _ => return failure(StatusCode::BAD_REQUEST, "minutes must be a number from 1 to 1440"),
    };
    match crate::manage::endpoints::pause(&console.db, &who.scope, endpoint, i64::from(minutes) * 60).await {
        Ok(e) => {
            let until = e.get("paused_until").and_then(serde_json::Value::as_str).unwrap_or_default();
            tracing::info!(
                peer = %who.peer, via = who.access.as_str(), action = "pause", endpoint, minutes, until,
                "console: endpoint paused"
            );
            Redirect::to(&back(&form, "/", &format!("notice=paused&n={minutes}"))).into_response()
        }
        Err(e) => refused_by_manage(e),
    }
}

/// `tailhook send-test` from the console: one signed request now, nothing recorded.
pub async fn test(
    State(console): State<Arc<Console>>,
    Extension(who): Extension<Who>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let form = match checked(&who, &headers, &body) {
        Ok(form) => form,
        Err(refused) => return *refused,
    };
    let Some(endpoint) = form.get("endpoint") else { return failure(StatusCode::BAD_REQUEST, "no endpoint named") };
    let p = match crate::manage::endpoints::send_test(&console.db, &console.config, &who.scope, endpoint).await {
        Ok(p) => p,
        Err(ManageError::Conflict { message, .. }) => return failure(StatusCode::NOT_FOUND, &message),
        Err(e) => return refused_by_manage(e),
    };
    tracing::info!(
        peer = %who.peer, via = who.access.as_str(), action = "send-test", endpoint, event_id = %p.event_id,
        status_code = p.status_code, error_kind = p.failure.as_ref().map(|f| f.0), refused_before_sending = p.refused,
        "console: test request (not recorded)"
    );
    layout_page("Test request", None, test_result(&p, "/", "Back to the endpoints")).into_response()
}

/// What a test request did, for its result page; then a link back.
pub(super) fn test_result(p: &crate::operator::probe::Probe, back: &str, back_text: &str) -> maud::Markup {
    html! {
        dl.test {
            dt { "endpoint" } dd { (p.endpoint) @if let Some(origin) = &p.origin { " at " (origin) } }
            dt { "event" } dd { (p.event_type) ", webhook-id " code { (p.event_id) } }
            dt { "result" } dd.result {
                @match (p.status_code, &p.failure) {
                    (_, Some((kind, error))) if p.refused => { "not sent: refused before sending (" (kind) "): " (error) }
                    (Some(code), None) => { "HTTP " (code) " in " (p.duration_ms) " ms" }
                    (code, Some((kind, error))) => {
                        "failed (" (kind) "): " (error) " after " (p.duration_ms) " ms"
                        @if let Some(code) = code { ", HTTP " (code) }
                    }
                    (None, None) => { "no response after " (p.duration_ms) " ms" }
                }
            }
            dt { "response" } dd { pre { (p.response.as_deref().unwrap_or("")) } }
        }
        @if p.disabled { p { "The endpoint is disabled; the test was sent anyway." } }
        p.muted { "A test request is signed and sent like a delivery but recorded nowhere: it never counts in the endpoint's history, success rate or circuit breaker." }
        p { a href=(back) { (back_text) } }
    }
}

pub async fn login_form(State(console): State<Arc<Console>>) -> Response {
    login_page(&console, None, StatusCode::OK)
}

fn login_page(console: &Console, error: Option<&str>, status: StatusCode) -> Response {
    let notice = error.map(|e| html! { p.error { (e) } });
    let content = html! {
        @if console.admin_token.is_none() {
            p { "No admin token is configured (server.admin_token_env): the console answers this machine (loopback) only." }
        } @else {
            form method="post" action="/login" {
                label { "Admin token " input type="password" name="token" autocomplete="current-password"; }
                " "
                button type="submit" { "Sign in" }
            }
            p.muted { "Signing in keeps a session cookie derived from the token (not the token) for 12 hours (HttpOnly, SameSite=Strict, Secure over HTTPS). "
                "After " (super::signin::FREE_FAILURES) " wrong tokens an address waits " (super::signin::PAUSE.as_secs()) " s. Scripts may send the token as "
                code { "Authorization: Bearer …" } " instead." }
        }
    };
    (status, layout_page("Sign in", notice, content)).into_response()
}

pub async fn login(
    State(console): State<Arc<Console>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let form = Form::parse(&body);
    if let Err(why) = access::same_origin(&headers) {
        tracing::warn!(%peer, %why, "console sign-in refused");
        return failure(StatusCode::FORBIDDEN, &format!("refused: {why}"));
    }
    let Some(admin) = &console.admin_token else {
        return login_page(&console, Some("no admin token is configured"), StatusCode::NOT_FOUND);
    };
    let now = std::time::Instant::now();
    if let Err(seconds) = console.signin.check(peer.ip(), now) {
        return super::too_many_attempts(seconds);
    }
    match form.get("token") {
        Some(token) if tokens_equal(token, admin.expose()) => {
            console.signin.succeeded(peer.ip());
            tracing::info!(%peer, "console sign-in with the admin token");
            let mut response = Redirect::to("/").into_response();
            let session = access::new_session(admin, std::time::SystemTime::now());
            if let Ok(cookie) = access::login_cookie(&session, access::over_tls(&headers)).parse() {
                response.headers_mut().insert(header::SET_COOKIE, cookie);
            }
            response
        }
        _ => {
            tracing::warn!(%peer, "console sign-in with a wrong token");
            if console.signin.failed(peer.ip(), now) {
                super::log_throttled(peer);
            }
            login_page(&console, Some("wrong token"), StatusCode::UNAUTHORIZED)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn back_stays_on_this_console() {
        let form = |back: &str| Form::parse(format!("back={}", urlencode(back)).as_bytes());
        assert_eq!(back(&form("/deliveries/7"), "/", "notice=x"), "/deliveries/7?notice=x");
        assert_eq!(back(&form("/deliveries?status=failed"), "/", "notice=x"), "/deliveries?status=failed&notice=x");
        for evil in [
            "https://evil.example/",
            "//evil.example/",
            "/\\evil.example",
            "javascript:alert(1)",
            "",
            // Browsers drop tabs and newlines from URLs and read `\` as `/`.
            "/\t/evil.example/",
            "/\n/evil.example/",
            "/\r\n/evil.example/",
            "/\t\\evil.example/",
            "\t//evil.example/",
            "/.//evil.example/",
            "/./\\evil.example/",
            "/../\t/evil.example",
            "/x/..//evil.example",
            "/\u{0}/evil.example",
            "/\u{7f}/evil.example",
            "/\u{85}/evil.example",
            "/\u{a0}/evil.example",
            "/\u{3000}/evil.example",
            "/ /evil.example",
        ] {
            let to = back(&form(evil), "/", "notice=x");
            assert_eq!(to, "/?notice=x", "{evil:?}");
        }
        // Encoded forms stay encoded: a browser does not decode them into separators.
        for (encoded, expected) in [
            ("/%2F%2Fevil.example/", "/%2F%2Fevil.example/?notice=x"),
            ("/%09/evil.example/", "/%09/evil.example/?notice=x"),
            ("/%5Cevil.example", "/%5Cevil.example?notice=x"),
        ] {
            assert_eq!(back(&form(encoded), "/", "notice=x"), expected, "{encoded}");
        }
        // Whatever comes back, a browser resolves it on this console's origin.
        let base = url::Url::parse("http://127.0.0.1:10025/deliveries/1").unwrap();
        for b in ["/deliveries/7", "/%2F%2Fx", "/\t/evil.example/", "/.//evil.example/", "/a/b/../../..//evil"] {
            let to = back(&form(b), "/", "notice=x");
            let resolved = base.join(&to).unwrap();
            assert_eq!(resolved.origin(), base.origin(), "{b:?} -> {to}");
        }
    }

    fn urlencode(s: &str) -> String {
        url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
    }

    #[test]
    fn forms_keep_repeated_fields() {
        let form = Form::parse(b"id=1&id=22&csrf=abc&endpoint=%3Cscript%3E");
        assert_eq!(form.all("id").collect::<Vec<_>>(), ["1", "22"]);
        assert_eq!((form.get("csrf"), form.get("endpoint"), form.get("nope")), (Some("abc"), Some("<script>"), None));
    }
}
