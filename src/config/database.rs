//! `[database]`: the connection string, the pool, polling and LISTEN, deadlines and keepalives.

use super::secret::DatabaseUrl;
use super::{invalid, positive, ConfigError};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseConfig {
    pub url: DatabaseUrl,
    /// LISTEN for outbox inserts; `false` polls only (transaction-mode poolers).
    pub listen: bool,
    pub auto_migrate: bool,
    pub pool_size: usize,
    pub poll_interval_ms: u64,
    pub statement_timeout_ms: u64,
    /// How long `run` keeps retrying an unreachable database at start-up.
    pub startup_timeout_ms: u64,
    /// Cache named prepared statements per connection; `false` sends every
    /// statement unnamed (PgBouncer in transaction mode).
    pub prepared_statements: bool,
    /// TCP keepalive: idle time before the first probe (whole seconds).
    pub keepalive_idle_ms: u64,
    /// TCP keepalive: time between probes (whole seconds).
    pub keepalive_interval_ms: u64,
    /// TCP keepalive: unanswered probes before the connection is dropped.
    pub keepalive_retries: u32,
    /// TCP_USER_TIMEOUT: how long sent data may stay unacknowledged; 0: the OS default.
    pub tcp_user_timeout_ms: u64,
}

impl DatabaseConfig {
    /// `[database]`'s keys, and `url` as a PostgreSQL connection string.
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        positive("database.pool_size", self.pool_size as u64)?;
        positive("database.poll_interval_ms", self.poll_interval_ms)?;
        positive("database.statement_timeout_ms", self.statement_timeout_ms)?;
        for (key, ms) in [
            ("database.keepalive_idle_ms", self.keepalive_idle_ms),
            ("database.keepalive_interval_ms", self.keepalive_interval_ms),
        ] {
            if ms < 1_000 {
                return Err(invalid(key, "must be at least 1000 (the OS counts whole seconds)"));
            }
        }
        positive("database.keepalive_retries", u64::from(self.keepalive_retries))?;
        if self.tcp_user_timeout_ms > u64::from(u32::MAX) {
            return Err(invalid("database.tcp_user_timeout_ms", "is too large"));
        }
        let (rest, _) = crate::config::conninfo::split(self.url.expose())
            .map_err(|e| invalid("database.url", format!("not a PostgreSQL connection string: {e}")))?;
        rest.parse::<tokio_postgres::Config>()
            .map_err(|e| invalid("database.url", format!("not a PostgreSQL connection string: {e}")))?;
        Ok(())
    }
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        Self {
            url: DatabaseUrl::new("postgres://postgres@localhost:5432/postgres"),
            listen: true,
            auto_migrate: true,
            pool_size: 8,
            poll_interval_ms: 1_000,
            statement_timeout_ms: 30_000,
            startup_timeout_ms: 30_000,
            prepared_statements: true,
            keepalive_idle_ms: 30_000,
            keepalive_interval_ms: 10_000,
            keepalive_retries: 3,
            tcp_user_timeout_ms: 30_000,
        }
    }
}
