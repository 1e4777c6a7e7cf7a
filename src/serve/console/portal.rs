//! The tenant portal at `/portal/<token>/`: checks the link (`manage/portal.rs`), then serves the console's own pages and actions for the link's tenant only, with its links, forms and redirects kept under the link's path.
//!
//! The link's token is carried in the path of every page, form and redirect
//! rather than in a cookie: a portal is usually framed by the host
//! application's page on another site, where browsers send no `SameSite=Lax`
//! or `Strict` cookie and increasingly no third-party cookie at all, and a
//! `SameSite=None` cookie would need HTTPS and would be sent with requests
//! any site starts. The path works without JavaScript, in a frame or a tab,
//! and ends with the link: once it expires every page and action is
//! refused. The token never reaches another site (`Referrer-Policy:
//! same-origin`, and the pages link nowhere else) and is never logged.
//!
//! The pages are the console's (`pages()` in `mod.rs`), handed a [`Who`]
//! scoped to the tenant: they answer 404 for anything outside it. Their
//! links are absolute console paths (`href="/…"`, `action="/…"`,
//! `Location: /…`), which this module prefixes with `/portal/<token>`; page
//! text is escaped by the templates, so `href="/` appears only as markup.
//! Forms carry a CSRF token derived from the link's, never the operator's.

use super::access::{Access, Fetch};
use super::{Console, Who};
use crate::manage::portal::{check, Refused};
use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Router;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::net::SocketAddr;
use std::sync::Arc;
use tower_service::Service;

/// The console's pages, ready to serve a portal's requests.
#[derive(Clone)]
pub struct Pages {
    pub console: Arc<Console>,
    pub router: Router,
}

/// The largest page the portal rewrites (a delivery page is capped well below).
const MAX_PAGE_BYTES: usize = 16 << 20;

pub async fn serve(State(pages): State<Pages>, request: Request) -> Response {
    let console = &pages.console;
    let Some(key) = &console.portal else {
        return bare(StatusCode::NOT_FOUND, "There is no tenant portal here.");
    };
    let Some(peer) = request.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0) else {
        return bare(StatusCode::INTERNAL_SERVER_ERROR, "the listener does not say who is asking");
    };
    let path = request.uri().path().to_owned();
    let rest = path.strip_prefix("/portal/").unwrap_or_default();
    let (token, inner) = rest.find('/').map_or((rest, ""), |i| rest.split_at(i));
    let link = match check(key, token, std::time::SystemTime::now()) {
        Ok(link) => link,
        Err(why) => return refused(console, peer, why),
    };
    if inner.is_empty() {
        return Redirect::to(&format!("/portal/{token}/")).into_response();
    }
    let is_get = matches!(*request.method(), axum::http::Method::GET | axum::http::Method::HEAD);
    let fetch = if is_get { super::access::fetch_of(request.headers()) } else { Fetch::Console };
    if let Fetch::Refused(why) = &fetch {
        // The host application's frame is what a portal is for; images, scripts and fetches are not.
        let dest = request.headers().get("sec-fetch-dest").and_then(|v| v.to_str().ok());
        if !matches!(dest, Some("iframe" | "frame")) {
            return bare(StatusCode::FORBIDDEN, &format!("refused: {why}"));
        }
    }
    let prefix = format!("/portal/{token}");
    let who = Who {
        peer,
        access: Access::Portal,
        scope: crate::manage::Scope { tenant: Some(link.tenant) },
        read_only: link.read_only,
        csrf: csrf_for(&console.csrf, token),
        from_console: fetch == Fetch::Console,
    };
    let inner = match request.uri().query() {
        Some(query) => format!("{inner}?{query}"),
        None => inner.to_owned(),
    };
    let Ok(uri) = inner.parse::<Uri>() else { return bare(StatusCode::BAD_REQUEST, "not a valid address") };
    // A request of its own for the pages: the method, headers and body, and
    // only who asks (this route's own path parameters are not the page's).
    let (parts, body) = request.into_parts();
    let mut request = Request::new(body);
    *request.method_mut() = parts.method;
    *request.uri_mut() = uri;
    *request.headers_mut() = parts.headers;
    request.extensions_mut().insert(ConnectInfo(peer));
    request.extensions_mut().insert(who);
    let response = match pages.router.clone().call(request).await {
        Ok(response) => response,
        Err(never) => match never {},
    };
    under(&prefix, response).await
}

/// 403 for a link that is altered, expired or not a link; logged (throttled) without the token.
fn refused(console: &Console, peer: SocketAddr, why: Refused) -> Response {
    if let Some(suppressed) = console.refused_gets.allow() {
        tracing::warn!(%peer, %why, suppressed, "tenant portal link refused");
    }
    bare(StatusCode::FORBIDDEN, &format!("{why}: ask the application that sent you here for a new link."))
}

/// A page saying only why: no navigation (the console's would lead to the operator's pages).
fn bare(status: StatusCode, why: &str) -> Response {
    let page = maud::html! {
        (maud::DOCTYPE)
        html lang="en" {
            head { meta charset="utf-8"; title { "Webhooks" } }
            body { p.error { (why) } }
        }
    };
    (status, page).into_response()
}

/// The CSRF token of a portal link's forms: HMAC-SHA256 of the link keyed by this process's.
fn csrf_for(process_csrf: &str, token: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(process_csrf.as_bytes()).expect("HMAC takes any key length");
    mac.update(b"tailhook portal csrf ");
    mac.update(token.as_bytes());
    crate::manage::portal::hex(&mac.finalize().into_bytes())
}

/// The response with its redirect and its page's links under `prefix`.
async fn under(prefix: &str, response: Response) -> Response {
    let (mut parts, body) = response.into_parts();
    if let Some(to) = parts.headers.get(header::LOCATION).and_then(|v| v.to_str().ok()) {
        if to.starts_with('/') && !to.starts_with("//") {
            if let Ok(value) = HeaderValue::from_str(&format!("{prefix}{to}")) {
                parts.headers.insert(header::LOCATION, value);
            }
        }
    }
    let html = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/html"));
    if !html {
        return Response::from_parts(parts, body);
    }
    let Ok(bytes) = axum::body::to_bytes(body, MAX_PAGE_BYTES).await else {
        return bare(StatusCode::INTERNAL_SERVER_ERROR, "the page is too large to serve in the portal");
    };
    let page = rewrite_links(&String::from_utf8_lossy(&bytes), prefix);
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(page))
}

/// `href="/…"` and `action="/…"` under `prefix` (`"//…"` left alone).
fn rewrite_links(page: &str, prefix: &str) -> String {
    let mut out = String::with_capacity(page.len() + 1024);
    let mut rest = page;
    loop {
        let next = ["href=\"/", "action=\"/"].iter().filter_map(|m| rest.find(m).map(|i| (i, m.len()))).min();
        let Some((at, len)) = next else {
            out.push_str(rest);
            return out;
        };
        // `after` starts with the path's `/`.
        let (before, after) = rest.split_at(at + len - 1);
        out.push_str(before);
        if !after.starts_with("//") {
            out.push_str(prefix);
        }
        out.push('/');
        rest = &after[1..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_and_forms_stay_under_the_link() {
        let page = r#"<a href="/">x</a><a href="/deliveries?endpoint=a">y</a><form action="/actions/test"></form><a href="//evil.example/">z</a><p>href=&quot;/no</p><input name="back" value="/deliveries/1">"#;
        let out = rewrite_links(page, "/portal/T");
        assert_eq!(
            out,
            r#"<a href="/portal/T/">x</a><a href="/portal/T/deliveries?endpoint=a">y</a><form action="/portal/T/actions/test"></form><a href="//evil.example/">z</a><p>href=&quot;/no</p><input name="back" value="/deliveries/1">"#
        );
    }

    #[test]
    fn each_link_has_its_own_csrf_token() {
        let a = csrf_for("process", "link-a");
        assert_eq!(a.len(), 64);
        assert_ne!(a, csrf_for("process", "link-b"));
        assert_ne!(a, csrf_for("another process", "link-a"));
        assert_ne!(a, "process");
    }
}
