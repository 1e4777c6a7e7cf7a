//! Redaction by construction: secret strings that never show in `Debug`, logs or printed config.

use serde::{Deserialize, Serialize, Serializer};
use std::fmt;

const REDACTED: &str = "[redacted]";

/// A secret value (webhook secret, token, password). `Debug` and `Serialize`
/// print `[redacted]`; only [`Secret::expose`] gives the value.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(REDACTED)
    }
}

/// A PostgreSQL connection string whose password is hidden when printed.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct DatabaseUrl(String);

impl DatabaseUrl {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The connection string with any password replaced by `[redacted]`.
    pub fn redacted(&self) -> String {
        redact_password(&self.0)
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl Serialize for DatabaseUrl {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.redacted())
    }
}

/// A URL that may carry a credential in its userinfo (`delivery.proxy`,
/// `tracing.otlp_endpoint`): user and password are hidden when printed.
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct CredentialUrl(String);

impl CredentialUrl {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The URL with any userinfo replaced by `[redacted]`.
    pub fn redacted(&self) -> String {
        let url = &self.0;
        let Some(start) = url.find("://").map(|i| i + 3) else { return url.clone() };
        let end = url[start..].find(['/', '?', '#']).map_or(url.len(), |i| start + i);
        match url[start..end].rfind('@') {
            Some(at) => format!("{}{REDACTED}{}", &url[..start], &url[start + at..]),
            None => url.clone(),
        }
    }
}

impl fmt::Debug for CredentialUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl Serialize for CredentialUrl {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.redacted())
    }
}

/// Hides the passwords of a PostgreSQL connection string, URL or libpq
/// `key=value` form.
fn redact_password(conn: &str) -> String {
    let is_password = |key: &str| matches!(key, "password" | "sslpassword");
    if conn.contains("://") {
        redact_url(conn, is_password)
    } else {
        redact_key_values(conn, is_password)
    }
}

/// An endpoint URL as it is shown anywhere outside the database (console,
/// `check-config`, `send-test`): scheme, host and port only. Userinfo, path,
/// query and fragment can each carry a credential (Slack and Discord put
/// theirs in the path, some receivers take a token as the user name), so
/// none of them is ever shown. The default port is left out, as browsers do.
pub fn endpoint_origin(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.has_host() => u.origin().ascii_serialization(),
        _ => "(not an http or https URL)".to_owned(),
    }
}

/// Hides the password in a URL's userinfo (whatever it contains: everything
/// between the first `:` after `://` and the last `@` before the query) and
/// the values of the query parameters `hide` names.
pub fn redact_url(url: &str, hide: impl Fn(&str) -> bool) -> String {
    let Some(scheme_end) = url.find("://").map(|i| i + 3) else { return url.to_owned() };
    let query_start = url[scheme_end..].find(['?', '#']).map_or(url.len(), |i| scheme_end + i);
    let mut out = String::with_capacity(url.len());
    let mut rest = scheme_end;
    out.push_str(&url[..scheme_end]);
    if let Some(at) = url[scheme_end..query_start].rfind('@').map(|i| scheme_end + i) {
        if let Some(colon) = url[scheme_end..at].find(':') {
            out.push_str(&url[scheme_end..=scheme_end + colon]);
            out.push_str(REDACTED);
            rest = at;
        }
    }
    out.push_str(&url[rest..query_start]);
    let (query, fragment) = match url[query_start..].strip_prefix('?') {
        Some(q) => q.split_once('#').map_or((q, None), |(q, f)| (q, Some(f))),
        None => ("", url[query_start..].strip_prefix('#')),
    };
    if url[query_start..].starts_with('?') {
        out.push('?');
        for (i, pair) in query.split('&').enumerate() {
            if i > 0 {
                out.push('&');
            }
            match pair.split_once('=') {
                Some((key, _)) if hide(key) => {
                    out.push_str(key);
                    out.push('=');
                    out.push_str(REDACTED);
                }
                _ => out.push_str(pair),
            }
        }
    }
    if let Some(fragment) = fragment {
        out.push('#');
        out.push_str(fragment);
    }
    out
}

/// Hides the values of the keys `hide` names in a libpq `key = value` string
/// (spaces around `=`, single-quoted values and backslash escapes as libpq
/// reads them).
fn redact_key_values(conn: &str, hide: impl Fn(&str) -> bool) -> String {
    let bytes = conn.as_bytes();
    let mut out = String::with_capacity(conn.len());
    let mut copied = 0;
    let mut i = 0;
    let skip_spaces = |mut i: usize| {
        while i < bytes.len() && bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        i
    };
    loop {
        i = skip_spaces(i);
        if i >= bytes.len() {
            break;
        }
        let key_start = i;
        while i < bytes.len() && bytes[i] != b'=' && !bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        let key = &conn[key_start..i];
        i = skip_spaces(i);
        if i >= bytes.len() || bytes[i] != b'=' || !crate::config::conninfo::KEYS.contains(&key) {
            // Not a known key=value: most likely the rest of a value holding
            // an unquoted space (`password=a b`); hide it and all after it.
            out.push_str(&conn[copied..key_start]);
            out.push_str(REDACTED);
            return out;
        }
        i = skip_spaces(i + 1);
        let value_start = i;
        if bytes.get(i) == Some(&b'\'') {
            i += 1;
            while i < bytes.len() && bytes[i] != b'\'' {
                i += if bytes[i] == b'\\' { 2 } else { 1 };
            }
            i = (i + 1).min(bytes.len());
        } else {
            while i < bytes.len() && !bytes[i].is_ascii_whitespace() {
                i += if bytes[i] == b'\\' { 2 } else { 1 };
            }
            i = i.min(bytes.len());
        }
        if hide(key) {
            out.push_str(&conn[copied..value_start]);
            out.push_str(REDACTED);
            copied = i;
        }
    }
    out.push_str(&conn[copied..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_never_prints() {
        let s = Secret::new("whsec_abc");
        assert_eq!(format!("{s:?}"), "[redacted]");
        assert_eq!(serde_json::to_string(&s).unwrap(), "\"[redacted]\"");
        assert_eq!(s.expose(), "whsec_abc");
    }

    #[test]
    fn endpoint_urls_show_scheme_host_and_port_only() {
        let cases = [
            ("https://hooks.slack.com/services/T000/B000/XXXXXXXX", "https://hooks.slack.com"),
            ("https://discord.com/api/webhooks/123/tok-en", "https://discord.com"),
            ("https://user-only-token@hooks.example.com/x", "https://hooks.example.com"),
            ("https://user:pw@hooks.example.com:8443/x?token=t#frag", "https://hooks.example.com:8443"),
            ("http://[::1]:9000/a", "http://[::1]:9000"),
            ("HTTPS://Hooks.Example.COM:443/", "https://hooks.example.com"),
            ("https://bücher.example/x", "https://xn--bcher-kva.example"),
            ("ftp://files.example/x", "(not an http or https URL)"),
            ("not a url at all, with a token", "(not an http or https URL)"),
        ];
        for (url, shown) in cases {
            assert_eq!(endpoint_origin(url), shown, "{url}");
        }
    }

    #[test]
    fn database_url_redaction() {
        let cases = [
            ("postgres://u:hunter2@db:5432/app", "postgres://u:[redacted]@db:5432/app"),
            ("postgres://u@db/app", "postgres://u@db/app"),
            ("postgres://db/app?password=hunter2&x=1", "postgres://db/app?password=[redacted]&x=1"),
            ("host=db user=u password=hunter2 dbname=app", "host=db user=u password=[redacted] dbname=app"),
            ("postgres://u:p%40ss@db/app", "postgres://u:[redacted]@db/app"),
            ("postgres://u:pa/ss@db/app", "postgres://u:[redacted]@db/app"),
            ("postgres://u:pa@ss@db/app?sslmode=require", "postgres://u:[redacted]@db/app?sslmode=require"),
            (
                "postgresql://db/app?sslpassword=k&password=p",
                "postgresql://db/app?sslpassword=[redacted]&password=[redacted]",
            ),
            ("host=db password = hunter2 user=u", "host=db password = [redacted] user=u"),
            ("host=db password='hunter 2' user=u", "host=db password=[redacted] user=u"),
            (r"password='it\'s secret' host=db", "password=[redacted] host=db"),
            (r"password=back\ slash host=db", "password=[redacted] host=db"),
            ("host=db password=", "host=db password=[redacted]"),
            ("host=db oops hunter2", "host=db [redacted]"),
            ("host=db password=hunter 2secret user=u", "host=db password=[redacted] [redacted]"),
            ("host=db password=hunter 2secret=x user=u", "host=db password=[redacted] [redacted]"),
            ("host=db password=hunter\t2secret", "host=db password=[redacted]\t[redacted]"),
        ];
        for (input, expected) in cases {
            assert_eq!(DatabaseUrl::new(input).redacted(), expected, "{input}");
        }
    }
}
