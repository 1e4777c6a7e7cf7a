//! What an endpoint may hold (URL, event types, secrets, headers, limits and their maxima), checked alike for the config file and for rows written with SQL.
//!
//! `sql/0004_endpoint_bounds.sql` holds the same bounds as CHECK constraints
//! (`sql/0021_privileges.sql` lets secrets and header values be sealed, and
//! bounds a sealed value by what it holds); these checks run on the opened
//! values, and also cover rows written before those constraints existed.

use crate::pipeline::signing::SigningKey;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::Url;
use std::fmt;

pub const MAX_URL_BYTES: usize = 2_048;
pub const MAX_EVENT_TYPES: usize = 100;
pub const MAX_SECRETS: usize = 10;
pub const MAX_HEADERS: usize = 32;
/// For each header's name and each value.
pub const MAX_HEADER_BYTES: usize = 4_096;
/// For all of an endpoint's headers together, names and values.
pub const MAX_HEADERS_TOTAL_BYTES: usize = 16_384;

/// A per-endpoint number: greater than 0 and at most `max`.
#[derive(Debug, Clone, Copy)]
pub struct Limit {
    pub field: &'static str,
    pub max: u32,
}

pub const MAX_ATTEMPTS: Limit = Limit { field: "max_attempts", max: 1_000 };
pub const TIMEOUT_MS: Limit = Limit { field: "timeout_ms", max: 60_000 };
pub const RATE_LIMIT_PER_SEC: Limit = Limit { field: "rate_limit_per_sec", max: 10_000 };
pub const MAX_IN_FLIGHT: Limit = Limit { field: "max_in_flight", max: 1_000 };

impl Limit {
    /// `None` stays `None` (the configured default applies).
    pub fn check(self, value: Option<i64>) -> Result<Option<u32>, Problem> {
        match value {
            None => Ok(None),
            Some(v) if v <= 0 => Err(Problem::new(self.field, "must be greater than 0")),
            Some(v) if v > i64::from(self.max) => {
                Err(Problem::new(self.field, format!("{v} is over the maximum of {}", self.max)))
            }
            Some(v) => Ok(Some(v as u32)),
        }
    }
}

/// Why one field of an endpoint is unusable. Never contains a secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub field: &'static str,
    pub reason: String,
}

impl Problem {
    pub fn new(field: &'static str, reason: impl Into<String>) -> Self {
        Self { field, reason: reason.into() }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.reason)
    }
}

/// An `http` or `https` URL with a host, in the normalised form that is
/// stored (`https:h/x` becomes `https://h/x`, which the table's CHECK takes).
pub fn url(text: &str, https_only: bool) -> Result<Url, Problem> {
    let problem = |reason: String| Problem::new("url", reason);
    let url = Url::parse(text).map_err(|e| problem(format!("not a URL: {e}")))?;
    match url.scheme() {
        "https" => {}
        "http" if !https_only => {}
        "http" => return Err(problem("must be https (delivery.https_only is set)".into())),
        other => return Err(problem(format!("scheme `{other}` is not http or https"))),
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(problem("has no host".into()));
    }
    if url.as_str().len() > MAX_URL_BYTES {
        return Err(problem(format!("is longer than {MAX_URL_BYTES} bytes")));
    }
    Ok(url)
}

/// 1 to [`MAX_EVENT_TYPES`] non-empty patterns.
pub fn event_types<S: AsRef<str>>(patterns: &[S]) -> Result<(), Problem> {
    if patterns.is_empty() || patterns.iter().any(|p| p.as_ref().is_empty()) {
        return Err(Problem::new("event_types", "must list at least one non-empty type (`*` for all)"));
    }
    if patterns.len() > MAX_EVENT_TYPES {
        return Err(Problem::new("event_types", format!("lists more than {MAX_EVENT_TYPES} patterns")));
    }
    Ok(())
}

/// Signing keys from `whsec_` secrets (a `None` is a NULL array element).
pub fn secrets<'a>(secrets: impl IntoIterator<Item = Option<&'a str>>) -> Result<Vec<SigningKey>, Problem> {
    let mut keys = Vec::new();
    for (i, secret) in secrets.into_iter().enumerate() {
        if i == MAX_SECRETS {
            return Err(Problem::new("secrets", format!("lists more than {MAX_SECRETS} secrets")));
        }
        let secret = secret.ok_or_else(|| Problem::new("secrets", format!("secrets[{}] is NULL", i + 1)))?;
        let key =
            SigningKey::from_whsec(secret).map_err(|e| Problem::new("secrets", format!("secrets[{}]: {e}", i + 1)))?;
        keys.push(key);
    }
    Ok(keys)
}

/// Headers tailhook sets itself; an endpoint's own headers cannot replace them.
pub const RESERVED_HEADERS: &[&str] =
    &["content-type", "content-length", "host", "user-agent", "transfer-encoding", "connection"];

/// Why one custom header is unusable, or `None` when it is fine.
pub fn header_problem(name: &str, value: &str) -> Option<String> {
    let lower = name.to_ascii_lowercase();
    if RESERVED_HEADERS.contains(&lower.as_str()) || lower.starts_with("webhook-") {
        return Some(format!("header `{name}` is set by tailhook and cannot be overridden"));
    }
    if name.len() > MAX_HEADER_BYTES || value.len() > MAX_HEADER_BYTES {
        return Some(format!("header `{}` is longer than 4 KiB", truncate(name, 64)));
    }
    if HeaderName::from_bytes(name.as_bytes()).is_err() {
        return Some(format!("header name `{}` is not valid HTTP", truncate(name, 64)));
    }
    if HeaderValue::from_str(value).is_err() {
        return Some(format!("header `{name}` has a value that is not valid HTTP"));
    }
    None
}

/// The endpoint's own headers, checked one by one and together. Every value
/// is marked sensitive, so it never shows in `Debug` output.
pub fn headers<'a>(headers: impl IntoIterator<Item = (&'a str, &'a str)>) -> Result<HeaderMap, Problem> {
    let mut map = HeaderMap::new();
    let mut total = 0;
    for (i, (name, value)) in headers.into_iter().enumerate() {
        if i == MAX_HEADERS {
            return Err(Problem::new("headers", format!("has more than {MAX_HEADERS} headers")));
        }
        if let Some(problem) = header_problem(name, value) {
            return Err(Problem::new("headers", problem));
        }
        total += name.len() + value.len();
        if total > MAX_HEADERS_TOTAL_BYTES {
            return Err(Problem::new("headers", "are longer than 16 KiB together"));
        }
        // Both parse: header_problem checked them.
        if let (Ok(n), Ok(mut v)) = (HeaderName::from_bytes(name.as_bytes()), HeaderValue::from_str(value)) {
            v.set_sensitive(true);
            map.insert(n, v);
        }
    }
    Ok(map)
}

/// A header name as messages show it: at most 64 characters.
pub fn shown(name: &str) -> String {
    truncate(name, 64)
}

/// At most `max` characters of `text`, for naming hostile input in messages.
fn truncate(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &text[..i]),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_take_one_to_max() {
        let cases = [
            (None, Ok(None)),
            (Some(1), Ok(Some(1))),
            (Some(60_000), Ok(Some(60_000))),
            (Some(0), Err("timeout_ms: must be greater than 0")),
            (Some(-5), Err("timeout_ms: must be greater than 0")),
            (Some(60_001), Err("timeout_ms: 60001 is over the maximum of 60000")),
            (Some(i64::from(i32::MAX)), Err("timeout_ms: 2147483647 is over the maximum of 60000")),
        ];
        for (value, expected) in cases {
            let got = TIMEOUT_MS.check(value).map_err(|p| p.to_string());
            assert_eq!(got, expected.map_err(str::to_owned), "{value:?}");
        }
    }

    #[test]
    fn urls_are_normalised_and_checked() {
        assert_eq!(url("https:hooks.example.com/x", false).unwrap().as_str(), "https://hooks.example.com/x");
        assert_eq!(url("HTTP://Example.com", false).unwrap().as_str(), "http://example.com/");
        for (bad, https_only, reason) in [
            ("ftp://x", false, "scheme `ftp`"),
            ("http://x", true, "must be https"),
            ("nope", false, "not a URL"),
            ("http://", false, "not a URL"),
        ] {
            let p = url(bad, https_only).unwrap_err();
            assert!(p.reason.contains(reason), "{bad}: {p}");
        }
        let long = format!("https://h/{}", "a".repeat(MAX_URL_BYTES));
        assert!(url(&long, false).unwrap_err().reason.contains("longer than 2048"));
    }

    #[test]
    fn headers_are_bounded() {
        let many: Vec<(String, String)> = (0..=MAX_HEADERS).map(|i| (format!("x-h{i}"), "v".into())).collect();
        let p = headers(many.iter().map(|(n, v)| (n.as_str(), v.as_str()))).unwrap_err();
        assert_eq!(p.reason, "has more than 32 headers");
        let big = "v".repeat(4_000);
        let fat: Vec<(String, &str)> = (0..5).map(|i| (format!("x-h{i}"), big.as_str())).collect();
        let p = headers(fat.iter().map(|(n, v)| (n.as_str(), *v))).unwrap_err();
        assert_eq!(p.reason, "are longer than 16 KiB together");
        let ok = headers([("x-team", "payments")]).unwrap();
        assert!(ok["x-team"].is_sensitive());
        assert!(format!("{ok:?}").contains("Sensitive") && !format!("{ok:?}").contains("payments"));
    }

    #[test]
    fn secrets_never_show_in_problems() {
        let weak = "whsec_YWJj";
        let p = secrets([Some(weak)]).unwrap_err();
        assert_eq!(
            p.to_string(),
            "secrets: secrets[1]: secret decodes to 3 bytes; Standard Webhooks secrets are 24 to 64 random bytes"
        );
        assert_eq!(secrets([None]).unwrap_err().reason, "secrets[1] is NULL");
        let good = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        assert_eq!(secrets(std::iter::repeat_n(Some(good), MAX_SECRETS)).unwrap().len(), MAX_SECRETS);
        assert!(secrets(std::iter::repeat_n(Some(good), MAX_SECRETS + 1)).is_err());
    }

    proptest::proptest! {
        /// A header is accepted only if it is valid HTTP and not one of
        /// tailhook's own; never a panic, never a CR or LF through.
        #[test]
        fn accepted_headers_are_valid_http(name in "\\PC{0,24}|[a-zA-Z-]{1,24}", value in "\\PC{0,48}|.*[\r\n].*") {
            match headers([(name.as_str(), value.as_str())]) {
                Ok(map) => {
                    proptest::prop_assert!(HeaderName::from_bytes(name.as_bytes()).is_ok());
                    proptest::prop_assert!(!value.contains(['\r', '\n']));
                    proptest::prop_assert!(!RESERVED_HEADERS.contains(&name.to_ascii_lowercase().as_str()));
                    proptest::prop_assert_eq!(map.len(), 1);
                }
                Err(p) => proptest::prop_assert_eq!(p.field, "headers"),
            }
        }
    }
}
