//! Takes libpq's TLS keys (`sslmode`, `sslrootcert`, `sslcert`, `sslkey`) out of a connection string, URL or key=value.
//!
//! tokio-postgres knows only `sslmode` = disable, prefer or require and
//! refuses the other keys, so they are read here and the rest of the string
//! is handed to `tokio_postgres::Config` unchanged.

use percent_encoding::percent_decode_str;

/// libpq's `sslmode`, without `allow`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SslMode {
    /// Never TLS.
    Disable,
    /// TLS if the server offers it, no verification (libpq's default).
    #[default]
    Prefer,
    /// TLS or fail; no verification unless a root certificate is given.
    Require,
    /// TLS, certificate chain checked against the root certificate, host name not.
    VerifyCa,
    /// TLS, chain and host name checked.
    VerifyFull,
}

impl SslMode {
    fn parse(value: &str) -> Result<Self, String> {
        Ok(match value {
            "disable" => Self::Disable,
            "prefer" => Self::Prefer,
            "require" => Self::Require,
            "verify-ca" => Self::VerifyCa,
            "verify-full" => Self::VerifyFull,
            "allow" => return Err("sslmode `allow` is not supported; use `prefer`".into()),
            other => {
                return Err(format!("sslmode `{other}` is not one of disable, prefer, require, verify-ca, verify-full"))
            }
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Disable => "disable",
            Self::Prefer => "prefer",
            Self::Require => "require",
            Self::VerifyCa => "verify-ca",
            Self::VerifyFull => "verify-full",
        }
    }
}

/// The TLS settings of a connection string.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsParams {
    pub mode: SslMode,
    /// PEM file of trusted roots, or `system` for the built-in Mozilla roots.
    pub root_cert: Option<String>,
    /// PEM file of the client certificate (chain).
    pub cert: Option<String>,
    /// PEM file of the client certificate's private key.
    pub key: Option<String>,
}

const TLS_KEYS: [&str; 4] = ["sslmode", "sslrootcert", "sslcert", "sslkey"];

/// The keys a `key=value` connection string may hold: tokio-postgres's and
/// the TLS keys read here. A word that is none of them is most likely part of
/// a value holding an unquoted space (`password=a b`), so errors never quote it.
pub const KEYS: [&str; 22] = [
    "user",
    "password",
    "dbname",
    "options",
    "application_name",
    "sslmode",
    "sslnegotiation",
    "host",
    "hostaddr",
    "port",
    "connect_timeout",
    "tcp_user_timeout",
    "keepalives",
    "keepalives_idle",
    "keepalives_interval",
    "keepalives_retries",
    "target_session_attrs",
    "channel_binding",
    "load_balance_hosts",
    "sslrootcert",
    "sslcert",
    "sslkey",
];

impl TlsParams {
    fn set(&mut self, key: &str, value: String) -> Result<(), String> {
        match key {
            "sslmode" => self.mode = SslMode::parse(&value)?,
            "sslrootcert" => self.root_cert = Some(value),
            "sslcert" => self.cert = Some(value),
            "sslkey" => self.key = Some(value),
            _ => {}
        }
        Ok(())
    }
}

/// Splits a connection string into the part tokio-postgres understands and
/// the TLS settings. Later occurrences of a key win, as in libpq.
pub fn split(conn: &str) -> Result<(String, TlsParams), String> {
    if conn.starts_with("postgres://") || conn.starts_with("postgresql://") {
        split_url(conn)
    } else {
        split_key_value(conn)
    }
}

fn split_url(url: &str) -> Result<(String, TlsParams), String> {
    let mut tls = TlsParams::default();
    let Some((base, query)) = url.split_once('?') else {
        return Ok((url.to_owned(), tls));
    };
    let mut kept = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let key = percent_decode_str(key).decode_utf8().map_err(|_| "connection URL is not UTF-8".to_owned())?;
        if TLS_KEYS.contains(&key.as_ref()) {
            let value =
                percent_decode_str(value).decode_utf8().map_err(|_| format!("value of `{key}` is not UTF-8"))?;
            tls.set(&key, value.into_owned())?;
        } else {
            kept.push(pair);
        }
    }
    let rest = if kept.is_empty() { base.to_owned() } else { format!("{base}?{}", kept.join("&")) };
    Ok((rest, tls))
}

fn split_key_value(conn: &str) -> Result<(String, TlsParams), String> {
    let mut tls = TlsParams::default();
    let mut kept = Vec::new();
    for (key, value) in key_values(conn)? {
        if TLS_KEYS.contains(&key.as_str()) {
            tls.set(&key, value)?;
        } else {
            kept.push(format!("{key}='{}'", value.replace('\\', "\\\\").replace('\'', "\\'")));
        }
    }
    Ok((kept.join(" "), tls))
}

/// libpq's `key = value` syntax: values may be single-quoted, and a
/// backslash escapes the next character. Errors name a known key or a word's
/// position, never the text of a value (it may be part of a password).
fn key_values(conn: &str) -> Result<Vec<(String, String)>, String> {
    let mut pairs = Vec::new();
    let mut chars = conn.chars().peekable();
    for word in 1.. {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.peek().is_none() {
            break;
        }
        let mut key = String::new();
        while let Some(c) = chars.next_if(|c| *c != '=' && !c.is_whitespace()) {
            key.push(c);
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.next() != Some('=') || !KEYS.contains(&key.as_str()) {
            let known =
                if KEYS.contains(&key.as_str()) { format!("`{key}` (word {word})") } else { format!("word {word}") };
            return Err(format!(
                "{known} is not a known `key=value` pair; a value holding a space must be single-quoted (key='a b')"
            ));
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let mut value = String::new();
        if chars.next_if_eq(&'\'').is_some() {
            loop {
                match chars.next() {
                    None => return Err(format!("unterminated quoted value of `{key}`")),
                    Some('\'') => break,
                    Some('\\') => value.extend(chars.next()),
                    Some(c) => value.push(c),
                }
            }
        } else {
            while let Some(c) = chars.next_if(|c| !c.is_whitespace()) {
                if c == '\\' {
                    value.extend(chars.next());
                } else {
                    value.push(c);
                }
            }
        }
        pairs.push((key, value));
    }
    Ok(pairs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tls(mode: SslMode, root: Option<&str>, cert: Option<&str>, key: Option<&str>) -> TlsParams {
        TlsParams { mode, root_cert: root.map(Into::into), cert: cert.map(Into::into), key: key.map(Into::into) }
    }

    #[test]
    fn splits_tls_keys_out() {
        use SslMode::*;
        let cases = [
            ("postgres://u@h/db", "postgres://u@h/db", tls(Prefer, None, None, None)),
            ("postgres://u@h/db?sslmode=require", "postgres://u@h/db", tls(Require, None, None, None)),
            (
                "postgresql://u:p%40ss@h:6432/db?application_name=x&sslmode=verify-full&sslrootcert=%2Fetc%2Fca.pem&connect_timeout=3",
                "postgresql://u:p%40ss@h:6432/db?application_name=x&connect_timeout=3",
                tls(VerifyFull, Some("/etc/ca.pem"), None, None),
            ),
            (
                "postgres://h/db?sslcert=/c.pem&sslkey=/k.pem&sslmode=verify-ca&sslmode=disable",
                "postgres://h/db",
                tls(Disable, None, Some("/c.pem"), Some("/k.pem")),
            ),
            ("host=h user=u", "host='h' user='u'", tls(Prefer, None, None, None)),
            (
                "host=h sslmode = verify-full  sslrootcert='/my certs/ca.pem' password='it\\'s' dbname=d\\ b",
                "host='h' password='it\\'s' dbname='d b'",
                tls(VerifyFull, Some("/my certs/ca.pem"), None, None),
            ),
            ("sslmode=require", "", tls(Require, None, None, None)),
        ];
        for (input, rest, expected) in cases {
            let (got_rest, got_tls) = split(input).unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(got_rest, rest, "{input}");
            assert_eq!(got_tls, expected, "{input}");
        }
    }

    #[test]
    fn the_rest_still_parses_as_tokio_postgres_config() {
        let (rest, _) = split("host=h password='it\\'s a secret' dbname=d sslmode=verify-full").unwrap();
        let config: tokio_postgres::Config = rest.parse().unwrap();
        assert_eq!(config.get_password(), Some(&b"it's a secret"[..]));
        assert_eq!(config.get_dbname(), Some("d"));
    }

    #[test]
    fn errors_quote_no_part_of_a_value() {
        for conn in [
            "host=db user=app password=hunter 2secret dbname=app",
            "host=db password=hunter 2secret",
            "host=db password=hunter 2secret=x",
            "password=hunter\\ 2secret oops",
            "host=db password='hunter 2secret",
            "host=db password=hunter 2secret='x",
        ] {
            let err = split(conn).unwrap_err();
            for fragment in ["hunter", "2secret", "oops"] {
                assert!(!err.contains(fragment), "{conn}: {err}");
            }
        }
    }

    #[test]
    fn refuses_what_it_cannot_honour() {
        let cases = [
            ("postgres://h/db?sslmode=allow", "sslmode `allow` is not supported"),
            ("host=h sslmode=verify", "sslmode `verify` is not one of"),
            ("host=h sslrootcert='/x", "unterminated quoted value of `sslrootcert`"),
            ("host h", "`host` (word 1) is not a known `key=value` pair"),
        ];
        for (input, expected) in cases {
            let err = split(input).unwrap_err();
            assert!(err.starts_with(expected), "{input}: {err}");
        }
    }
}
