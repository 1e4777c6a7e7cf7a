//! `[server]`: the HTTP listener's address, the console and its admin token, the host names `/metrics` answers.

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
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:10025".into(),
            console: true,
            admin_token_env: String::new(),
            allowed_hosts: Vec::new(),
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
        Ok(())
    }
}
