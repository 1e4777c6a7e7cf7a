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

/// Hides the password of a `postgres://user:password@host` URL or of a
/// `key=value` connection string.
fn redact_password(conn: &str) -> String {
    if let Some(scheme_end) = conn.find("://") {
        let rest = &conn[scheme_end + 3..];
        let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
        if let Some(at) = rest[..authority_end].rfind('@') {
            if let Some(colon) = rest[..at].find(':') {
                let start = scheme_end + 3 + colon + 1;
                let end = scheme_end + 3 + at;
                return format!("{}{REDACTED}{}", &conn[..start], &conn[end..]);
            }
        }
        // A password can also come as a query parameter.
        return redact_key_value(conn, "password=", '&');
    }
    redact_key_value(conn, "password=", ' ')
}

fn redact_key_value(conn: &str, key: &str, separator: char) -> String {
    let Some(pos) = conn.find(key) else {
        return conn.to_owned();
    };
    let value_start = pos + key.len();
    let value_end = conn[value_start..].find(separator).map_or(conn.len(), |i| value_start + i);
    format!("{}{REDACTED}{}", &conn[..value_start], &conn[value_end..])
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
    fn database_url_redaction() {
        let cases = [
            ("postgres://u:hunter2@db:5432/app", "postgres://u:[redacted]@db:5432/app"),
            ("postgres://u@db/app", "postgres://u@db/app"),
            ("postgres://db/app?password=hunter2&x=1", "postgres://db/app?password=[redacted]&x=1"),
            ("host=db user=u password=hunter2 dbname=app", "host=db user=u password=[redacted] dbname=app"),
            ("postgres://u:p%40ss@db/app", "postgres://u:[redacted]@db/app"),
        ];
        for (input, expected) in cases {
            assert_eq!(DatabaseUrl::new(input).redacted(), expected, "{input}");
        }
    }
}
