//! What an endpoint may hold (URL, event types, secrets, headers, limits and their maxima), checked alike for the config file and for rows written with SQL.
//!
//! `sql/0004_endpoint_bounds.sql` holds the same bounds as CHECK constraints
//! (`sql/0021_privileges.sql` lets secrets and header values be sealed, and
//! bounds a sealed value by what it holds); these checks run on the opened
//! values, and also cover rows written before those constraints existed.

use crate::signing::SigningKey;
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
/// The first retry's delay: at most one day.
pub const BACKOFF_INITIAL_MS: Limit = Limit { field: "backoff_initial_ms", max: 86_400_000 };
/// The longest delay between two attempts: at most seven days.
pub const BACKOFF_MAX_MS: Limit = Limit { field: "backoff_max_ms", max: 604_800_000 };

/// An endpoint's own retry schedule: each value within its [`Limit`], and
/// `backoff_max_ms` at least `backoff_initial_ms` when both are set (one
/// left NULL takes the configured default, and the delay never passes the
/// maximum either way).
pub fn backoff(initial_ms: Option<i64>, max_ms: Option<i64>) -> Result<[Option<u32>; 2], Problem> {
    let initial = BACKOFF_INITIAL_MS.check(initial_ms)?;
    let max = BACKOFF_MAX_MS.check(max_ms)?;
    if let (Some(i), Some(m)) = (initial, max) {
        if m < i {
            return Err(Problem::new(BACKOFF_MAX_MS.field, format!("{m} is less than backoff_initial_ms ({i})")));
        }
    }
    Ok([initial, max])
}

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

/// An endpoint's TLS columns that cannot be used.
impl From<crate::egress::Refused> for Problem {
    fn from(r: crate::egress::Refused) -> Self {
        Self { field: r.field, reason: r.reason }
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

/// Shortest and longest legacy secret, in bytes (any string: used as its bytes).
pub const LEGACY_SECRET_BYTES: std::ops::RangeInclusive<usize> = 16..=256;
/// Longest legacy signature header name, and prefix.
pub const MAX_LEGACY_HEADER_BYTES: usize = 128;
pub const MAX_LEGACY_PREFIX_BYTES: usize = 64;

/// The legacy signature an endpoint adds (`legacy_signature` and
/// `legacy_secret`, both or neither), checked as
/// `tailhook.legacy_signature_problem` and `tailhook.legacy_secret_valid`
/// check them (sql/0023_legacy_signatures.sql). Messages never hold the secret.
pub fn legacy(
    signature: Option<&serde_json::Value>,
    secret: Option<&str>,
) -> Result<Option<crate::signing::LegacySigner>, Problem> {
    use crate::signing::{Encoding, Format, LegacySigner};
    let problem = |reason: &str| Problem::new("legacy_signature", reason);
    let (signature, secret) = match (signature, secret) {
        (None, None) => return Ok(None),
        (Some(_), None) => return Err(Problem::new("legacy_secret", "is required with legacy_signature")),
        (None, Some(_)) => return Err(problem("is required with legacy_secret")),
        (Some(signature), Some(secret)) => (signature, secret),
    };
    let serde_json::Value::Object(fields) = signature else {
        return Err(problem("must be a JSON object (a table in the config file)"));
    };
    if let Some(other) =
        fields.keys().find(|k| !["header", "algorithm", "encoding", "prefix", "format", "body"].contains(&k.as_str()))
    {
        return Err(problem(&format!(
            "has the key `{}`; the keys are header, algorithm, encoding, prefix, format and body",
            shown(other)
        )));
    }
    let text = |key: &str, default: &'static str| match fields.get(key) {
        None => Ok(default.to_owned()),
        Some(serde_json::Value::String(s)) => Ok(s.clone()),
        Some(_) => Err(problem(&format!("{key} must be a string"))),
    };
    let header = text("header", "")?;
    let name = HeaderName::from_bytes(header.as_bytes())
        .ok()
        .filter(|_| (1..=MAX_LEGACY_HEADER_BYTES).contains(&header.len()));
    let Some(name) = name else {
        return Err(problem(&format!(
            "header is not an HTTP header name of 1 to {MAX_LEGACY_HEADER_BYTES} characters"
        )));
    };
    let lower = name.as_str();
    if RESERVED_HEADERS.contains(&lower) || lower.starts_with("webhook-") {
        return Err(problem("header is set by tailhook and cannot be used"));
    }
    let sha512 = match text("algorithm", "sha256")?.as_str() {
        "sha256" => false,
        "sha512" => true,
        _ => return Err(problem(r#"algorithm must be "sha256" or "sha512""#)),
    };
    let encoding = match text("encoding", "hex")?.as_str() {
        "hex" => Encoding::Hex,
        "base64" => Encoding::Base64,
        _ => return Err(problem(r#"encoding must be "hex" or "base64""#)),
    };
    let format = match text("format", "body")?.as_str() {
        "body" => Format::Body,
        "timestamped" => Format::Timestamped,
        _ => return Err(problem(r#"format must be "body" or "timestamped""#)),
    };
    let python_sorted_body = match text("body", "unchanged")?.as_str() {
        "unchanged" => false,
        "python_sorted" => true,
        _ => return Err(problem(r#"body must be "unchanged" or "python_sorted""#)),
    };
    let prefix = text("prefix", "")?;
    if prefix.len() > MAX_LEGACY_PREFIX_BYTES || !prefix.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(problem(&format!("prefix must be at most {MAX_LEGACY_PREFIX_BYTES} visible ASCII characters")));
    }
    if !LEGACY_SECRET_BYTES.contains(&secret.len()) {
        return Err(Problem::new("legacy_secret", format!("is {} bytes; it must be 16 to 256 bytes", secret.len())));
    }
    let mut signer = LegacySigner::new(name, sha512, encoding, prefix, format, secret.as_bytes());
    signer.python_sorted_body = python_sorted_body;
    Ok(Some(signer))
}

/// A header name as messages show it: at most 64 characters.
pub fn shown(name: &str) -> String {
    truncate(name, 64)
}

/// Longest `filter_path`, in bytes (of PostgreSQL's normal form for a stored row).
pub const MAX_FILTER_PATH_BYTES: usize = 1_024;
/// Most steps in a `filter_path`: `.key`, `.*`, `.**`, `[...]` and methods.
pub const MAX_FILTER_PATH_STEPS: usize = 16;
/// Deepest nesting of filters `? (...)` and `exists (...)` in one another.
pub const MAX_FILTER_PATH_NESTING: usize = 3;
/// Most values in a `filter` (each object member and array element counts).
pub const MAX_FILTER_VALUES: usize = 64;
/// Deepest nesting of a `filter`'s values.
pub const MAX_FILTER_DEPTH: usize = 8;
/// Longest key or string in a `filter`, in bytes.
pub const MAX_FILTER_STRING_BYTES: usize = 1_024;

/// A `filter_path` (SQL/JSON path) whose cost is linear in the payload: the
/// same rules as `tailhook.filter_path_problem` (sql/0020_filter_bounds.sql),
/// on the same tokens. In lax mode every step may unwrap an array, so a path
/// costs about its steps × the payload's nodes, except where one part runs
/// again for every item of another; those are refused: `$` inside a filter
/// or a subscript, a second `.**`, a comparison of two values from the
/// payload, a subscript list; and `.keyvalue()` (an object built for every
/// member). Also refuses variables (none are passed).
/// Syntax is PostgreSQL's to check (the row's jsonpath type).
pub fn filter_path(path: &str) -> Result<(), Problem> {
    let problem = |reason: String| Err(Problem::new("filter_path", reason));
    if path.len() > MAX_FILTER_PATH_BYTES {
        return problem(format!("is longer than {MAX_FILTER_PATH_BYTES} bytes"));
    }
    let tokens = match path_tokens(path) {
        Ok(tokens) => tokens,
        Err(reason) => return problem(reason.into()),
    };
    // (kind of each open bracket: filter, exists, group or subscript)
    let mut stack: Vec<u8> = Vec::new();
    let (mut steps, mut descents) = (0, 0);
    for (k, token) in tokens.iter().enumerate() {
        let before = k.checked_sub(1).map(|b| tokens[b].as_str());
        match token.as_str() {
            "(" => {
                stack.push(match before {
                    Some("?") => b'f',
                    Some("W:exists") => b'e',
                    _ => b'g',
                });
                if stack.iter().filter(|s| matches!(s, b'f' | b'e')).count() > MAX_FILTER_PATH_NESTING {
                    return problem(format!("nests filters and exists() more than {MAX_FILTER_PATH_NESTING} deep"));
                }
            }
            "[" => {
                stack.push(b'b');
                steps += 1;
            }
            ")" | "]" => {
                stack.pop();
            }
            "," => return problem("lists several subscripts in one [...]; write one condition each".into()),
            "**" => {
                descents += 1;
                if descents > 1 {
                    return problem("uses `.**` more than once".into());
                }
            }
            "." => steps += 1,
            "W:keyvalue" if before == Some(".") => {
                return problem("uses .keyvalue() (it builds an object for every member)".into())
            }
            "$" if stack.iter().any(|s| matches!(s, b'f' | b'b')) => {
                return problem(
                    "uses `$` inside a filter or a subscript (it walks the payload again for every item)".into(),
                )
            }
            _ => {}
        }
    }
    if steps > MAX_FILTER_PATH_STEPS {
        return problem(format!("has more than {MAX_FILTER_PATH_STEPS} steps (`.key`, `.*`, `.**`, `[...]`, methods)"));
    }
    let refers = |t: &str| usize::from(t == "$" || t == "@");
    for (k, token) in tokens.iter().enumerate() {
        if !matches!(token.as_str(), "==" | "!=" | "<>" | "<" | "<=" | ">" | ">=") {
            continue;
        }
        // How many `$` or `@` each side holds, within the same brackets.
        let (mut left, mut right, mut depth) = (0, 0, 0i32);
        for t in tokens[..k].iter().rev().map(String::as_str) {
            if depth == 0 && matches!(t, "(" | "[" | "&&" | "||" | "!") {
                break;
            }
            depth += match t {
                ")" | "]" => 1,
                "(" | "[" => -1,
                _ => 0,
            };
            left += refers(t);
        }
        depth = 0;
        for t in tokens[k + 1..].iter().map(String::as_str) {
            if depth == 0 && matches!(t, ")" | "]" | "&&" | "||") {
                break;
            }
            depth += match t {
                "(" | "[" => 1,
                ")" | "]" => -1,
                _ => 0,
            };
            right += refers(t);
        }
        if left > 0 && right > 0 {
            return problem("compares two values from the payload; one side of a comparison must be a literal".into());
        }
    }
    Ok(())
}

/// The tokens `tailhook.filter_path_problem` sees: `S` a string, `N` a
/// number, `W:word`, or the punctuation itself (`**`, two-character
/// operators, else one character). A variable is refused here.
fn path_tokens(path: &str) -> Result<Vec<String>, &'static str> {
    let chars: Vec<char> = path.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let ch = chars[i];
        let next = chars.get(i + 1).copied();
        if ch.is_whitespace() {
            i += 1;
        } else if ch == '"' {
            let mut j = i + 1;
            while j < chars.len() && chars[j] != '"' {
                j += if chars[j] == '\\' { 2 } else { 1 };
            }
            tokens.push("S".to_owned());
            i = j + 1;
        } else if ch == '$' && next.is_some_and(|c| c == '"' || c == '_' || c.is_ascii_alphanumeric()) {
            return Err("uses a variable ($name); none are passed");
        } else if ch.is_ascii_digit() {
            i += number_len(&chars[i..]);
            tokens.push("N".to_owned());
        } else if ch == '_' || ch.is_ascii_alphabetic() {
            let len = chars[i..].iter().take_while(|c| **c == '_' || c.is_ascii_alphanumeric()).count();
            tokens.push(format!("W:{}", chars[i..i + len].iter().collect::<String>()));
            i += len;
        } else {
            let two: String = chars[i..(i + 2).min(chars.len())].iter().collect();
            if ["**", "==", "!=", "<>", "<=", ">=", "&&", "||"].contains(&two.as_str()) {
                tokens.push(two);
                i += 2;
            } else {
                tokens.push(ch.to_string());
                i += 1;
            }
        }
    }
    Ok(tokens)
}

/// Length of the number at the start: `[0-9]+(\.[0-9]+)?([eE][+-]?[0-9]+)?`.
fn number_len(chars: &[char]) -> usize {
    let digits = |from: usize| chars[from.min(chars.len())..].iter().take_while(|c| c.is_ascii_digit()).count();
    let mut len = digits(0);
    if chars.get(len) == Some(&'.') && digits(len + 1) > 0 {
        len += 1 + digits(len + 1);
    }
    if matches!(chars.get(len), Some('e' | 'E')) {
        let sign = usize::from(matches!(chars.get(len + 1), Some('+' | '-')));
        if digits(len + 1 + sign) > 0 {
            len += 1 + sign + digits(len + 1 + sign);
        }
    }
    len
}

/// A `filter` (jsonb containment): the same rules as `tailhook.filter_problem`.
/// Containment compares each of its values with the payload's at that place,
/// so the number of values bounds the cost.
pub fn filter(filter: &serde_json::Value) -> Result<(), Problem> {
    /// (values, deepest level, longest key or string), not looking past one
    /// level beyond the limit.
    fn walk(value: &serde_json::Value, level: usize, seen: &mut (usize, usize, usize)) {
        seen.1 = seen.1.max(level);
        let children: Vec<(Option<&String>, &serde_json::Value)> = match value {
            serde_json::Value::String(s) => {
                seen.2 = seen.2.max(s.len());
                Vec::new()
            }
            serde_json::Value::Object(members) => members.iter().map(|(k, v)| (Some(k), v)).collect(),
            serde_json::Value::Array(elements) => elements.iter().map(|v| (None, v)).collect(),
            _ => Vec::new(),
        };
        if level > MAX_FILTER_DEPTH {
            return;
        }
        for (key, child) in children {
            seen.0 += 1;
            seen.2 = seen.2.max(key.map_or(0, String::len));
            walk(child, level + 1, seen);
        }
    }
    let mut seen = (0, 0, 0);
    walk(filter, 0, &mut seen);
    let (values, depth, longest) = seen;
    let reason = if depth > MAX_FILTER_DEPTH {
        format!("is nested more than {MAX_FILTER_DEPTH} deep")
    } else if values > MAX_FILTER_VALUES {
        format!("holds more than {MAX_FILTER_VALUES} values")
    } else if longest > MAX_FILTER_STRING_BYTES {
        format!("holds a key or string longer than {MAX_FILTER_STRING_BYTES} bytes")
    } else {
        return Ok(());
    };
    Err(Problem::new("filter", reason))
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
    fn an_endpoint_backoff_is_bounded_and_its_maximum_is_at_least_its_initial_delay() {
        let cases = [
            ((None, None), Ok([None, None])),
            ((Some(250), None), Ok([Some(250), None])),
            ((None, Some(1)), Ok([None, Some(1)])),
            ((Some(60_000), Some(60_000)), Ok([Some(60_000), Some(60_000)])),
            ((Some(86_400_000), Some(604_800_000)), Ok([Some(86_400_000), Some(604_800_000)])),
            ((Some(0), None), Err("backoff_initial_ms: must be greater than 0")),
            ((Some(86_400_001), None), Err("backoff_initial_ms: 86400001 is over the maximum of 86400000")),
            ((None, Some(-1)), Err("backoff_max_ms: must be greater than 0")),
            ((None, Some(604_800_001)), Err("backoff_max_ms: 604800001 is over the maximum of 604800000")),
            ((Some(2_000), Some(1_000)), Err("backoff_max_ms: 1000 is less than backoff_initial_ms (2000)")),
        ];
        for ((initial, max), expected) in cases {
            let got = backoff(initial, max).map_err(|p| p.to_string());
            assert_eq!(got, expected.map_err(str::to_owned), "{initial:?} {max:?}");
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

    #[test]
    fn realistic_filter_paths_keep_the_bounds() {
        for path in [
            "$.amount > 100",
            r#"$.items[*] ? (@.sku == "x")"#,
            "exists($.** ? (@.flag == true))",
            r#"$.customer.address.country == "DE" && $.amount >= 100"#,
            r#"$.items[*] ? (exists(@.tags[*] ? (@ == "vip")))"#,
            r#"$.email like_regex "@example\\.com$" flag "i""#,
            r#"$.at.datetime() < "2030-01-01T00:00:00+00:00".datetime()"#,
            r#"!($.status == "test") || $.total + 1 * 2 > 3"#,
            "$.items.size() > 2 && $.items[last].price < -1.5e3",
            // PostgreSQL's normal form of a stored one
            r#"$."items"[*]?(@."sku" == "x")"#,
            r#"$."$a"?(@ == "?($ == $")"#,
        ] {
            assert_eq!(filter_path(path), Ok(()), "{path}");
        }
    }

    #[test]
    fn filter_paths_beyond_the_bounds_are_refused_naming_the_rule() {
        let cases = [
            ("exists($.** ? (exists($.** ? (@ == 1))))".to_owned(), "uses `$` inside a filter"),
            ("$.** ? (exists(@.** ? (@ == 1)))".into(), "uses `.**` more than once"),
            ("$.a[$.i] == 1".into(), "uses `$` inside a filter or a subscript"),
            ("$.a == $.b".into(), "compares two values from the payload"),
            ("$.a ? (@.x == @.y)".into(), "compares two values from the payload"),
            ("$.a == $x".into(), "uses a variable"),
            (r#"$.a == $"x""#.into(), "uses a variable"),
            ("$.a[0,0,0]".into(), "lists several subscripts"),
            ("exists($.**.keyvalue() ? (@.value == 1))".into(), "uses .keyvalue()"),
            ("$.a ? (exists(@.b ? (exists(@.c ? (@ == 1)))))".into(), "nests filters and exists() more than 3 deep"),
            (format!("${} == 1", ".a".repeat(17)), "has more than 16 steps"),
            (format!(r#"$.a == "{}""#, "x".repeat(1_020)), "is longer than 1024 bytes"),
        ];
        for (path, reason) in cases {
            let problem = filter_path(&path).unwrap_err();
            assert_eq!(problem.field, "filter_path");
            assert!(problem.reason.starts_with(reason), "{path}: {problem}");
        }
        assert_eq!(filter_path(&format!("${}", ".a".repeat(16))), Ok(()));
    }

    #[test]
    fn filters_are_bounded_by_values_depth_and_strings() {
        let ok = serde_json::json!({"currency": "EUR", "customer": {"plan": "pro"}, "tags": ["vip"]});
        assert_eq!(filter(&ok), Ok(()));
        let many = serde_json::json!({ "a": (0..64).collect::<Vec<_>>() });
        assert_eq!(filter(&many).unwrap_err().reason, "holds more than 64 values");
        let fits = serde_json::json!({ "a": (0..63).collect::<Vec<_>>() });
        assert_eq!(filter(&fits), Ok(()));
        let mut deep = serde_json::json!(1);
        for _ in 0..9 {
            deep = serde_json::json!({ "a": deep });
        }
        assert_eq!(filter(&deep).unwrap_err().reason, "is nested more than 8 deep");
        assert_eq!(filter(&deep["a"]), Ok(()));
        let long = serde_json::json!({ "a": "x".repeat(1_025) });
        assert_eq!(filter(&long).unwrap_err().to_string(), "filter: holds a key or string longer than 1024 bytes");
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
