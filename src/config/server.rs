//! `[server]`: the HTTP listener's address, the console and its admin token, the host names `/metrics` answers, the tenant portal's key and who may frame it.

use super::secret::Secret;
use super::{invalid, read_env, ConfigError};
use serde::{Deserialize, Serialize};

/// The HTTP listener: `/healthz`, `/readyz`, `/metrics` and the console at `/`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address to listen on; empty turns the listener off.
    pub listen: String,
    /// Serve the delivery console at `/`.
    pub console: bool,
    /// The environment variable holding the console's admin token; empty:
    /// no token, so the console answers loopback requests only.
    pub admin_token_env: String,
    /// Host names `/metrics` and `/readyz` answer besides IP addresses and
    /// `localhost` (`*`: any); other names are refused (DNS rebinding).
    pub allowed_hosts: Vec<String>,
    /// The environment variable holding the key tenant portal links are
    /// signed with (see `manage/portal.rs`); empty: no portal.
    pub portal_key_env: String,
    /// Who may frame the tenant portal: CSP `frame-ancestors` sources such
    /// as `https://app.example`; `'none'` (the default): nobody.
    pub portal_frame_ancestors: Vec<String>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:10025".into(),
            console: true,
            admin_token_env: String::new(),
            allowed_hosts: Vec::new(),
            portal_key_env: String::new(),
            portal_frame_ancestors: vec!["'none'".into()],
        }
    }
}

impl ServerConfig {
    /// The address, or `None` when the listener is off.
    pub fn address(&self) -> Option<std::net::SocketAddr> {
        self.listen.parse().ok()
    }

    /// The console's admin token, read from `admin_token_env`; `None` when
    /// no variable is configured. A variable named but unset or empty is an
    /// error naming the key.
    pub fn admin_token(&self) -> Result<Option<Secret>, ConfigError> {
        let var = self.admin_token_env.trim();
        if var.is_empty() {
            return Ok(None);
        }
        let token = read_env(var, "server.admin_token_env")?;
        if token.len() < 16 {
            return Err(invalid(
                "server.admin_token_env",
                format!("the token in {var} must be at least 16 characters"),
            ));
        }
        Ok(Some(Secret::new(token)))
    }

    /// The key portal links are signed with, read from `portal_key_env`;
    /// `None` when no variable is configured. A variable named but unset,
    /// empty or shorter than 32 characters is an error naming the key.
    pub fn portal_key(&self) -> Result<Option<Secret>, ConfigError> {
        let var = self.portal_key_env.trim();
        if var.is_empty() {
            return Ok(None);
        }
        let key = read_env(var, "server.portal_key_env")?;
        if key.len() < 32 {
            return Err(invalid("server.portal_key_env", format!("the key in {var} must be at least 32 characters")));
        }
        Ok(Some(Secret::new(key)))
    }

    /// `portal_frame_ancestors` as the CSP directive's value.
    pub fn frame_ancestors(&self) -> String {
        if self.portal_frame_ancestors.is_empty() {
            return "'none'".into();
        }
        self.portal_frame_ancestors.join(" ")
    }

    /// `listen` an address or empty, `allowed_hosts` plain host names.
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        let listen = self.listen.trim();
        if !listen.is_empty() && listen.parse::<std::net::SocketAddr>().is_err() {
            return Err(invalid(
                "server.listen",
                format!("`{listen}` is not an address such as 127.0.0.1:10025 (\"\" turns the listener off)"),
            ));
        }
        for (i, name) in self.allowed_hosts.iter().enumerate() {
            let plain = name == "*"
                || (!name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-'));
            if !plain {
                return Err(invalid(
                    format!("server.allowed_hosts[{i}]"),
                    "must be a host name such as metrics.example (no scheme, port or path), or `*`",
                ));
            }
        }
        for (i, source) in self.portal_frame_ancestors.iter().enumerate() {
            if !frame_source(source) {
                return Err(invalid(
                    format!("server.portal_frame_ancestors[{i}]"),
                    "must be 'none', 'self' or an origin such as https://app.example (scheme, host, optional \
                     port; `*.` allowed at the start of the host, `:*` for any port)",
                ));
            }
        }
        if self.portal_frame_ancestors.len() > 1 && self.portal_frame_ancestors.iter().any(|s| s == "'none'") {
            return Err(invalid("server.portal_frame_ancestors", "'none' cannot be listed with other sources"));
        }
        Ok(())
    }
}

/// A CSP source a `frame-ancestors` may hold: `'none'`, `'self'`, or
/// `scheme://host[:port]` with nothing that could end the directive or the header.
fn frame_source(source: &str) -> bool {
    if source == "'none'" || source == "'self'" {
        return true;
    }
    let Some((scheme, rest)) = source.split_once("://") else { return false };
    let rest = rest.strip_suffix(":*").unwrap_or(rest);
    let host = rest.strip_prefix("*.").unwrap_or(rest);
    matches!(scheme, "http" | "https")
        && !host.is_empty()
        && host.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-' || b == b':')
        && !host.starts_with(['.', ':'])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_ancestors(sources: &[&str]) -> Result<(), ConfigError> {
        let config = ServerConfig {
            portal_frame_ancestors: sources.iter().map(|s| (*s).to_owned()).collect(),
            ..ServerConfig::default()
        };
        config.validate()
    }

    #[test]
    fn frame_ancestors_are_sources_that_cannot_end_the_header() {
        for good in [
            &["'none'"][..],
            &["'self'"],
            &["https://app.example", "https://*.app.example:8443"],
            &["http://localhost:*"],
        ] {
            assert!(with_ancestors(good).is_ok(), "{good:?}");
        }
        for bad in [
            &["*"][..],
            &["https://app.example; script-src *"],
            &["https://app.example/path"],
            &["javascript://x"],
            &["'none'", "https://app.example"],
            &["https://app.example\r\nSet-Cookie: x=1"],
            &["https://"],
        ] {
            let error = with_ancestors(bad).unwrap_err().to_string();
            assert!(error.contains("server.portal_frame_ancestors"), "{bad:?}: {error}");
        }
        assert_eq!(ServerConfig::default().frame_ancestors(), "'none'");
    }

    #[test]
    fn a_portal_key_named_but_unset_or_short_names_the_key() {
        let config =
            ServerConfig { portal_key_env: "TAILHOOK_UNIT_PORTAL_KEY_UNSET".into(), ..ServerConfig::default() };
        assert!(config.portal_key().unwrap_err().to_string().contains("server.portal_key_env"));
        std::env::set_var("TAILHOOK_UNIT_PORTAL_KEY_SHORT", "too short");
        let config =
            ServerConfig { portal_key_env: "TAILHOOK_UNIT_PORTAL_KEY_SHORT".into(), ..ServerConfig::default() };
        let error = config.portal_key().unwrap_err().to_string();
        assert!(error.contains("server.portal_key_env") && !error.contains("too short"), "{error}");
        assert!(ServerConfig::default().portal_key().unwrap().is_none());
    }
}
