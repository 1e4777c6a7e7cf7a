//! Who may use the console: loopback or the admin token for every page, and for actions also a same-origin request carrying the CSRF token.
//!
//! The rules, in the order they are checked:
//! - A request carrying the admin token (`Authorization: Bearer <token>`,
//!   or the cookie the login form sets) may read and act, from anywhere.
//!   Tokens are compared in constant time.
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
use std::net::IpAddr;
use subtle::ConstantTimeEq;

/// The cookie the login form sets (the token itself, percent-encoded).
pub const COOKIE: &str = "tailhook_admin";

/// How a request was let in, for the log of actions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Loopback,
    Token,
}

impl Access {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Loopback => "loopback",
            Self::Token => "admin token",
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

/// Decides whether a request may use the console.
pub fn decide(
    peer: IpAddr,
    host: Option<&str>,
    presented: Option<&str>,
    admin: Option<&Secret>,
) -> Result<Access, Denied> {
    if let (Some(given), Some(admin)) = (presented, admin) {
        if tokens_equal(given, admin.expose()) {
            return Ok(Access::Token);
        }
    }
    if is_loopback(peer) && host.is_some_and(loopback_host) {
        return Ok(Access::Loopback);
    }
    Err(if admin.is_some() { Denied::NeedToken } else { Denied::LoopbackOnly })
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
    let name = if let Some(rest) = host.strip_prefix('[') {
        rest.split(']').next().unwrap_or_default()
    } else {
        host.rsplit_once(':')
            .map_or(host, |(name, port)| if port.bytes().all(|b| b.is_ascii_digit()) { name } else { host })
    };
    name.eq_ignore_ascii_case("localhost") || name.parse::<IpAddr>().is_ok_and(is_loopback)
}

/// The token a request carries: `Authorization: Bearer`, else the login cookie.
pub fn presented_token(headers: &HeaderMap) -> Option<String> {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(|t| t.trim().to_owned());
    bearer.or_else(|| {
        headers.get_all(header::COOKIE).iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(';')).find_map(
            |pair| {
                let (name, value) = pair.trim().split_once('=')?;
                (name == COOKIE).then(|| percent_encoding::percent_decode_str(value).decode_utf8_lossy().into_owned())
            },
        )
    })
}

/// The `Set-Cookie` value that keeps `token` for this browser session:
/// not readable by scripts, never sent with a request another site starts.
pub fn login_cookie(token: &str) -> String {
    let value = percent_encoding::utf8_percent_encode(token, percent_encoding::NON_ALPHANUMERIC);
    format!("{COOKIE}={value}; Path=/; HttpOnly; SameSite=Strict")
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
        let admin = Secret::new("0123456789abcdef-token");
        let local: IpAddr = "127.0.0.1".parse().unwrap();
        let mapped: IpAddr = "::ffff:127.0.0.1".parse().unwrap();
        let remote: IpAddr = "192.0.2.7".parse().unwrap();
        let cases = [
            (local, Some("127.0.0.1:9187"), None, None, Ok(Access::Loopback)),
            (mapped, Some("localhost:9187"), None, None, Ok(Access::Loopback)),
            ("::1".parse().unwrap(), Some("[::1]:9187"), None, Some(&admin), Ok(Access::Loopback)),
            // DNS rebinding: loopback peer, foreign Host.
            (local, Some("evil.example:9187"), None, None, Err(Denied::LoopbackOnly)),
            (local, Some("evil.example:9187"), None, Some(&admin), Err(Denied::NeedToken)),
            (local, None, None, None, Err(Denied::LoopbackOnly)),
            (remote, Some("127.0.0.1"), None, None, Err(Denied::LoopbackOnly)),
            (remote, Some("tailhook:9187"), Some("0123456789abcdef-token"), Some(&admin), Ok(Access::Token)),
            (remote, Some("tailhook:9187"), Some("0123456789abcdef-tokeN"), Some(&admin), Err(Denied::NeedToken)),
            (remote, Some("tailhook:9187"), Some("0123456789abcdef"), Some(&admin), Err(Denied::NeedToken)),
            (remote, Some("tailhook:9187"), Some("anything"), None, Err(Denied::LoopbackOnly)),
        ];
        for (peer, host, token, admin, expected) in cases {
            assert_eq!(decide(peer, host, token, admin), expected, "{peer} {host:?} {token:?}");
        }
    }

    #[test]
    fn loopback_host_names() {
        for host in ["localhost", "LOCALHOST:80", "127.0.0.1", "127.1.2.3:9187", "[::1]:9187", "[::ffff:127.0.0.1]"] {
            assert!(loopback_host(host), "{host}");
        }
        for host in ["example.com", "localhost.example.com:9187", "10.0.0.1:9187", "[2001:db8::1]:80", "", "0.0.0.0"] {
            assert!(!loopback_host(host), "{host}");
        }
    }

    #[test]
    fn tokens_come_from_the_header_or_the_cookie() {
        assert_eq!(presented_token(&headers(&[("authorization", "Bearer abc")])).as_deref(), Some("abc"));
        let cookie = login_cookie("a b;c=d");
        let value = cookie.split(';').next().unwrap().to_owned();
        assert_eq!(presented_token(&headers(&[("cookie", &format!("x=1; {value}"))])).as_deref(), Some("a b;c=d"));
        assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"));
        assert_eq!(presented_token(&headers(&[("authorization", "Basic abc")])), None);
        assert_eq!(presented_token(&headers(&[])), None);
    }

    #[test]
    fn cross_site_requests_are_refused() {
        let ok = [
            headers(&[]),
            headers(&[
                ("sec-fetch-site", "same-origin"),
                ("origin", "http://127.0.0.1:9187"),
                ("host", "127.0.0.1:9187"),
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
            headers(&[("origin", "http://evil.example"), ("host", "127.0.0.1:9187")]),
            headers(&[("origin", "null"), ("host", "127.0.0.1:9187")]),
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
