//! Who may use the console: loopback or the admin token for every page, a GET another site starts refused, and for actions also a same-origin request carrying the CSRF token.
//!
//! The rules, in the order they are checked:
//! - A GET another site starts (`Sec-Fetch-Site` other than `same-origin`
//!   or `none`) is refused unless it is a top-level navigation (a link
//!   followed: `Sec-Fetch-Mode: navigate`, `Sec-Fetch-Dest: document`),
//!   which opens the page but runs no endpoint transform on it.
//! - A request carrying the admin token (`Authorization: Bearer <token>`),
//!   or the session cookie the login form sets, may read and act, from
//!   anywhere. The cookie is not the token: it is the time it was issued and
//!   an HMAC-SHA256 of that time keyed by the token, good for
//!   [`SESSION_LIFETIME`]. Both are compared in constant time.
//! - Otherwise a request from a loopback address may read and act, if its
//!   `Host` is a loopback name too: a page on another site whose name was
//!   made to resolve to 127.0.0.1 (DNS rebinding) sends its own name as
//!   `Host`, and is refused.
//! - Everything else is refused: 401 with a login form when a token is
//!   configured, 403 saying how to configure one otherwise.
//!
//! Actions are POSTs and must also come from the console's own pages: a
//! `Sec-Fetch-Site` other than `same-origin` or an `Origin` other than the
//! `Host` is refused, and the form must carry this process's CSRF token.

use crate::config::secret::Secret;
use axum::http::{header, HeaderMap};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::net::IpAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use subtle::ConstantTimeEq;

/// The cookie the login form sets: a session derived from the token.
pub const COOKIE: &str = "tailhook_session";

/// How long a sign-in lasts.
pub const SESSION_LIFETIME: Duration = Duration::from_secs(12 * 3600);

/// How a request was let in, for the log of actions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Loopback,
    Token,
    /// A tenant portal link (`/portal/<token>/`).
    Portal,
}

impl Access {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Loopback => "loopback",
            Self::Token => "admin token",
            Self::Portal => "portal link",
        }
    }
}

/// Why a request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denied {
    /// A token is configured and the request has none (or a wrong one).
    NeedToken,
    /// No token is configured and the request is not from loopback.
    LoopbackOnly,
}

/// Decides whether a request may use the console. `token_ok`: it carries
/// the admin token or a valid session; `token_configured`: there is one.
pub fn decide(peer: IpAddr, host: Option<&str>, token_ok: bool, token_configured: bool) -> Result<Access, Denied> {
    if token_ok {
        return Ok(Access::Token);
    }
    if is_loopback(peer) && host.is_some_and(loopback_host) {
        return Ok(Access::Loopback);
    }
    Err(if token_configured { Denied::NeedToken } else { Denied::LoopbackOnly })
}

/// What a request presents to stand for the admin token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    /// `Authorization: Bearer <token>`.
    Bearer(String),
    /// The session cookie's value.
    Session(String),
}

/// Whether a credential stands for the admin token: `Some(true)` it does,
/// `Some(false)` it is a wrong guess (counted by the sign-in throttle),
/// `None` it is an authentic session that has expired (not a guess).
pub fn check_credential(credential: &Credential, admin: &Secret, now: SystemTime) -> Option<bool> {
    match credential {
        Credential::Bearer(token) => Some(tokens_equal(token, admin.expose())),
        Credential::Session(value) => {
            let Some((issued, mac)) = value.split_once('.') else { return Some(false) };
            let (Ok(issued), Ok(mac)) = (issued.parse::<u64>(), hex_decode(mac)) else { return Some(false) };
            if session_mac(admin, issued).verify_slice(&mac).is_err() {
                return Some(false);
            }
            let now = now.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
            // Issued in the future (beyond a minute of clock skew between replicas) or too long ago.
            (issued <= now + 60 && now.saturating_sub(issued) < SESSION_LIFETIME.as_secs()).then_some(true)
        }
    }
}

/// A new session value for a browser that signed in with the token.
pub fn new_session(admin: &Secret, now: SystemTime) -> String {
    let issued = now.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
    let mac = session_mac(admin, issued).finalize().into_bytes();
    format!("{issued}.{}", mac.iter().map(|b| format!("{b:02x}")).collect::<String>())
}

fn session_mac(admin: &Secret, issued: u64) -> Hmac<Sha256> {
    // HMAC takes a key of any length.
    let mut mac = Hmac::<Sha256>::new_from_slice(admin.expose().as_bytes()).expect("HMAC takes any key length");
    mac.update(format!("tailhook console session {issued}").as_bytes());
    mac
}

fn hex_decode(text: &str) -> Result<Vec<u8>, ()> {
    if text.len() % 2 != 0 || !text.is_ascii() {
        return Err(());
    }
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(&text[i..i + 2], 16).map_err(|_| ())).collect()
}

/// Equal, in time that depends only on the lengths.
pub fn tokens_equal(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// Loopback, IPv4-mapped IPv6 included.
pub fn is_loopback(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback(),
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(v6.is_loopback(), |v4| v4.is_loopback()),
    }
}

/// A `Host` header naming this machine: `localhost`, a loopback address,
/// with or without a port.
pub fn loopback_host(host: &str) -> bool {
    let name = crate::serve::host::name(host);
    name.eq_ignore_ascii_case("localhost") || name.parse::<IpAddr>().is_ok_and(is_loopback)
}

/// What a request presents: `Authorization: Bearer`, else the session cookie.
pub fn credential(headers: &HeaderMap) -> Option<Credential> {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(|t| Credential::Bearer(t.trim().to_owned()));
    bearer.or_else(|| {
        headers.get_all(header::COOKIE).iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(';')).find_map(
            |pair| {
                let (name, value) = pair.trim().split_once('=')?;
                (name == COOKIE).then(|| Credential::Session(value.to_owned()))
            },
        )
    })
}

/// The `Set-Cookie` value that keeps a session for this browser:
/// not readable by scripts, never sent with a request another site starts,
/// and sent over HTTPS only when the console is served over HTTPS.
pub fn login_cookie(session: &str, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!("{COOKIE}={session}; Path=/; Max-Age={}; HttpOnly; SameSite=Strict{secure}", SESSION_LIFETIME.as_secs())
}

/// Whether the browser reached the console over HTTPS: its `Origin` (sent
/// with the login form) says `https`, or a proxy in front says so
/// (`X-Forwarded-Proto`, `Forwarded: proto=https`).
pub fn over_tls(headers: &HeaderMap) -> bool {
    let get = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_ascii_lowercase();
    get("origin").starts_with("https://")
        || get("x-forwarded-proto").split(',').next().is_some_and(|p| p.trim() == "https")
        || get("forwarded").split([';', ',']).any(|p| p.trim() == "proto=https")
}

/// Who started a GET, from the `Sec-Fetch-*` headers browsers send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fetch {
    /// The console's own pages, an address typed or bookmarked (`none`), or
    /// a client that is not a browser (no such header).
    Console,
    /// A link on another site followed: the page opens, runs no transform.
    Navigation,
    /// A fetch, image, frame or script another site started.
    Refused(String),
}

pub fn fetch_of(headers: &HeaderMap) -> Fetch {
    let get = |name: &str| headers.get(name).map(|v| v.to_str().unwrap_or("(not text)"));
    match get("sec-fetch-site") {
        None | Some("same-origin") | Some("none") => Fetch::Console,
        Some(_) if get("sec-fetch-mode") == Some("navigate") && get("sec-fetch-dest") == Some("document") => {
            Fetch::Navigation
        }
        Some(site) => Fetch::Refused(format!("a request another site started (Sec-Fetch-Site: {site})")),
    }
}

/// Refuses a request another site started: `Sec-Fetch-Site` (sent by
/// browsers) must be `same-origin`, and `Origin`, when sent, must be this
/// `Host`. Requests without either (command-line clients) pass here; they
/// still need the CSRF token.
pub fn same_origin(headers: &HeaderMap) -> Result<(), String> {
    let get = |name: &str| headers.get(name).map(|v| v.to_str().unwrap_or("(not text)"));
    if let Some(site) = get("sec-fetch-site") {
        if site != "same-origin" {
            return Err(format!("a request from another site (Sec-Fetch-Site: {site})"));
        }
    }
    if let Some(origin) = get("origin") {
        let host = get("host").unwrap_or_default();
        let ours = ["http", "https"].iter().any(|scheme| origin.eq_ignore_ascii_case(&format!("{scheme}://{host}")));
        if !ours {
            return Err(format!("a request from another origin ({origin})"));
        }
    }
    Ok(())
}

/// A fresh CSRF token for this process: 32 random bytes as hex.
pub fn new_csrf_token() -> String {
    rand::random::<[u8; 32]>().iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (name, value) in pairs {
            h.append(*name, HeaderValue::from_str(value).unwrap());
        }
        h
    }

    #[test]
    fn who_gets_in() {
        let local: IpAddr = "127.0.0.1".parse().unwrap();
        let mapped: IpAddr = "::ffff:127.0.0.1".parse().unwrap();
        let remote: IpAddr = "192.0.2.7".parse().unwrap();
        let cases = [
            (local, Some("127.0.0.1:10025"), false, false, Ok(Access::Loopback)),
            (mapped, Some("localhost:10025"), false, false, Ok(Access::Loopback)),
            ("::1".parse().unwrap(), Some("[::1]:10025"), false, true, Ok(Access::Loopback)),
            // DNS rebinding: loopback peer, foreign Host.
            (local, Some("evil.example:10025"), false, false, Err(Denied::LoopbackOnly)),
            (local, Some("evil.example:10025"), false, true, Err(Denied::NeedToken)),
            (local, None, false, false, Err(Denied::LoopbackOnly)),
            (remote, Some("127.0.0.1"), false, false, Err(Denied::LoopbackOnly)),
            (remote, Some("tailhook:10025"), true, true, Ok(Access::Token)),
            (remote, Some("tailhook:10025"), false, true, Err(Denied::NeedToken)),
        ];
        for (peer, host, ok, configured, expected) in cases {
            assert_eq!(decide(peer, host, ok, configured), expected, "{peer} {host:?} {ok}");
        }
    }

    #[test]
    fn credentials_bearer_and_sessions() {
        let admin = Secret::new("0123456789abcdef-token");
        let now = SystemTime::now();
        let bearer = |t: &str| Credential::Bearer(t.to_owned());
        assert_eq!(check_credential(&bearer("0123456789abcdef-token"), &admin, now), Some(true));
        assert_eq!(check_credential(&bearer("0123456789abcdef-tokeN"), &admin, now), Some(false));
        assert_eq!(check_credential(&bearer("0123456789abcdef"), &admin, now), Some(false));
        let session = new_session(&admin, now);
        assert!(!session.contains("0123456789abcdef"), "{session}");
        let s = |v: &str| Credential::Session(v.to_owned());
        assert_eq!(check_credential(&s(&session), &admin, now), Some(true));
        assert_eq!(check_credential(&s(&session), &Secret::new("another-token-0123456"), now), Some(false));
        let later = now + SESSION_LIFETIME + Duration::from_secs(1);
        assert_eq!(check_credential(&s(&session), &admin, later), None, "expired, not a guess");
        let earlier = now - Duration::from_secs(3600);
        assert_eq!(check_credential(&s(&session), &admin, earlier), None, "issued in the future");
        let (issued, mac) = session.split_once('.').unwrap();
        let moved = format!("{}.{mac}", issued.parse::<u64>().unwrap() + 1);
        for forged in [moved.as_str(), "0123456789abcdef-token", "", ".", "1.zz", &format!("{session}0")] {
            assert_eq!(check_credential(&s(forged), &admin, now), Some(false), "{forged}");
        }
    }

    #[test]
    fn loopback_host_names() {
        for host in ["localhost", "LOCALHOST:80", "127.0.0.1", "127.1.2.3:10025", "[::1]:10025", "[::ffff:127.0.0.1]"] {
            assert!(loopback_host(host), "{host}");
        }
        for host in ["example.com", "localhost.example.com:10025", "10.0.0.1:10025", "[2001:db8::1]:80", "", "0.0.0.0"]
        {
            assert!(!loopback_host(host), "{host}");
        }
    }

    #[test]
    fn credentials_come_from_the_header_or_the_cookie() {
        let bearer = credential(&headers(&[("authorization", "Bearer abc")]));
        assert_eq!(bearer, Some(Credential::Bearer("abc".into())));
        let cookie = login_cookie("12.ab", false);
        let pair = cookie.split(';').next().unwrap().to_owned();
        let got = credential(&headers(&[("cookie", &format!("x=1; {pair}"))]));
        assert_eq!(got, Some(Credential::Session("12.ab".into())));
        assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict") && !cookie.contains("Secure"));
        assert!(login_cookie("12.ab", true).ends_with("; Secure"));
        assert_eq!(credential(&headers(&[("authorization", "Basic abc")])), None);
        assert_eq!(credential(&headers(&[("cookie", "tailhook_admin=abc")])), None);
        assert_eq!(credential(&headers(&[])), None);
    }

    #[test]
    fn tls_is_read_from_the_origin_or_the_proxy() {
        assert!(over_tls(&headers(&[("origin", "https://console.example")])));
        assert!(over_tls(&headers(&[("x-forwarded-proto", "https")])));
        assert!(over_tls(&headers(&[("forwarded", "for=1.2.3.4;proto=https;by=x")])));
        assert!(!over_tls(&headers(&[("origin", "http://127.0.0.1:10025")])));
        assert!(!over_tls(&headers(&[])));
    }

    #[test]
    fn gets_another_site_starts_are_refused_but_links_open() {
        let fetch = |site: &str, mode: &str, dest: &str| {
            fetch_of(&headers(&[("sec-fetch-site", site), ("sec-fetch-mode", mode), ("sec-fetch-dest", dest)]))
        };
        assert_eq!(fetch_of(&headers(&[])), Fetch::Console);
        assert_eq!(fetch("same-origin", "cors", "empty"), Fetch::Console);
        assert_eq!(fetch("none", "navigate", "document"), Fetch::Console);
        assert_eq!(fetch("cross-site", "navigate", "document"), Fetch::Navigation);
        assert_eq!(fetch("same-site", "navigate", "document"), Fetch::Navigation);
        for (site, mode, dest) in [
            ("cross-site", "no-cors", "empty"),
            ("cross-site", "navigate", "iframe"),
            ("same-site", "cors", "empty"),
            ("cross-site", "no-cors", "image"),
            ("weird", "navigate", "frame"),
        ] {
            assert!(matches!(fetch(site, mode, dest), Fetch::Refused(_)), "{site} {mode} {dest}");
        }
    }

    #[test]
    fn cross_site_requests_are_refused() {
        let ok = [
            headers(&[]),
            headers(&[
                ("sec-fetch-site", "same-origin"),
                ("origin", "http://127.0.0.1:10025"),
                ("host", "127.0.0.1:10025"),
            ]),
            headers(&[("origin", "https://console.example"), ("host", "console.example")]),
        ];
        for h in ok {
            assert_eq!(same_origin(&h), Ok(()), "{h:?}");
        }
        let refused = [
            headers(&[("sec-fetch-site", "cross-site")]),
            headers(&[("sec-fetch-site", "same-site")]),
            headers(&[("sec-fetch-site", "none")]),
            headers(&[("origin", "http://evil.example"), ("host", "127.0.0.1:10025")]),
            headers(&[("origin", "null"), ("host", "127.0.0.1:10025")]),
        ];
        for h in refused {
            assert!(same_origin(&h).is_err(), "{h:?}");
        }
    }

    #[test]
    fn csrf_tokens_are_fresh_hex() {
        let (a, b) = (new_csrf_token(), new_csrf_token());
        assert_eq!(a.len(), 64);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
        assert!(tokens_equal(&a, &a.clone()) && !tokens_equal(&a, &b) && !tokens_equal(&a, &a[1..]));
    }
}
