//! Configuration: built-in defaults, `config.toml`, `DATABASE_URL` and `TAILHOOK_<SECTION>__<KEY>`, validated with the key named.

pub mod conninfo;
pub mod rules;
pub mod sealed;
pub mod secret;

pub use crate::transform::{TransformConfig, MAX_TRANSFORM_CALL_DEPTH};

use crate::config::secret::{DatabaseUrl, Secret};
use crate::guard::Cidr;
use figment::providers::{Env, Format, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A configuration problem, always naming the key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config key `{key}`: {reason}")]
    Invalid { key: String, reason: String },
    #[error("config file {}: {reason}", path.display())]
    File { path: PathBuf, reason: String },
    /// An endpoint's `*_env` key names a variable that is not set.
    #[error("config key `{key}`: environment variable {var} is not set")]
    Unset { key: String, var: String },
}

/// How much of the file's `[[endpoints]]` a command needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// Every endpoint resolved, every variable its `*_env` keys name set
    /// (`run` upserts them; `check-config` checks them).
    Endpoints,
    /// The rest of the configuration: a command that acts on the database or
    /// on one endpoint's row does not need another endpoint's secrets, so an
    /// unset `*_env` variable is no error for it (every other rule still is).
    DatabaseOnly,
}

fn invalid(key: impl Into<String>, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid { key: key.into(), reason: reason.into() }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub database: DatabaseConfig,
    pub delivery: DeliveryConfig,
    pub log: LogConfig,
    pub server: ServerConfig,
    pub retention: RetentionConfig,
    pub transform: TransformConfig,
    pub secrets: SecretsConfig,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub endpoints: Vec<EndpointConfig>,
}

/// `[secrets]`: the keys that seal endpoint secrets and header values in
/// the database (see `sealed.rs`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SecretsConfig {
    /// Base64 of 32 random bytes each; the first seals, every one opens.
    /// Empty: values stay as written (plaintext). From the environment as
    /// one string, keys separated by commas or spaces.
    #[serde(deserialize_with = "one_or_many_keys")]
    pub keys: Vec<Secret>,
}

impl SecretsConfig {
    /// The parsed keys (checked when the configuration was loaded).
    pub fn keys(&self) -> Result<sealed::Keys, ConfigError> {
        sealed::Keys::parse(&self.keys).map_err(|(i, reason)| invalid(format!("secrets.keys[{i}]"), reason))
    }
}

/// A list of keys, or one string of keys separated by commas or whitespace
/// (how an environment variable gives them).
fn one_or_many_keys<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<Secret>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(Secret),
        Many(Vec<Secret>),
    }
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::One(text) => text
            .expose()
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|k| !k.is_empty())
            .map(Secret::new)
            .collect(),
        OneOrMany::Many(keys) => keys,
    })
}

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
    fn validate(&self) -> Result<(), ConfigError> {
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
    fn validate(&self) -> Result<(), ConfigError> {
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

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DeliveryConfig {
    pub max_attempts: u32,
    pub timeout_ms: u64,
    pub backoff_initial_ms: u64,
    pub backoff_max_ms: u64,
    pub allow_private_networks: bool,
    pub allowed_cidrs: Vec<String>,
    pub https_only: bool,
    pub max_payload_bytes: usize,
    pub max_response_bytes: usize,
    pub shutdown_grace_ms: u64,
    /// Requests in flight at once, over all endpoints.
    pub concurrency: usize,
    /// Most outbox rows or due deliveries taken by one claim.
    pub batch_size: usize,
    /// Added to an endpoint's timeout to make its lease (at most 30 000).
    pub lease_margin_ms: u64,
    /// Requests in flight to one endpoint, for endpoints without their own.
    pub max_in_flight: u32,
    /// Requests started per second to one endpoint, for endpoints without
    /// their own; 0 means no limit.
    pub rate_limit_per_sec: u32,
    /// The circuit breaker opens when an endpoint has failed for at least this
    /// long without a success...
    pub breaker_after_ms: u64,
    /// ...and at least this many times.
    pub breaker_min_failures: u32,
    /// An endpoint failing this long without a success is disabled.
    pub disable_after_failing_ms: u64,
}

impl DeliveryConfig {
    /// `[delivery]`'s keys within their bounds (the endpoint rules' for the defaults they give).
    fn validate(&self) -> Result<(), ConfigError> {
        positive("delivery.backoff_initial_ms", self.backoff_initial_ms)?;
        positive("delivery.concurrency", self.concurrency as u64)?;
        positive("delivery.batch_size", self.batch_size as u64)?;
        positive("delivery.max_payload_bytes", self.max_payload_bytes as u64)?;
        if self.max_payload_bytes > MAX_PAYLOAD_BYTES {
            return Err(invalid("delivery.max_payload_bytes", format!("must be at most {MAX_PAYLOAD_BYTES}")));
        }
        for (limit, value) in [
            (rules::MAX_ATTEMPTS, u64::from(self.max_attempts)),
            (rules::TIMEOUT_MS, self.timeout_ms),
            (rules::MAX_IN_FLIGHT, u64::from(self.max_in_flight)),
            (rules::BACKOFF_INITIAL_MS, self.backoff_initial_ms),
            (rules::BACKOFF_MAX_MS, self.backoff_max_ms),
        ] {
            let key = format!("delivery.{}", limit.field);
            limit.check(Some(value.min(i64::MAX as u64) as i64)).map_err(|p| invalid(key, p.reason))?;
        }
        if self.rate_limit_per_sec > 0 {
            rules::RATE_LIMIT_PER_SEC
                .check(Some(i64::from(self.rate_limit_per_sec)))
                .map_err(|p| invalid("delivery.rate_limit_per_sec", p.reason))?;
        }
        if self.concurrency > MAX_CONCURRENCY {
            return Err(invalid("delivery.concurrency", format!("must be at most {MAX_CONCURRENCY}")));
        }
        positive("delivery.breaker_min_failures", u64::from(self.breaker_min_failures))?;
        positive("delivery.disable_after_failing_ms", self.disable_after_failing_ms)?;
        if self.backoff_max_ms < self.backoff_initial_ms {
            return Err(invalid("delivery.backoff_max_ms", "must be at least delivery.backoff_initial_ms"));
        }
        if self.lease_margin_ms > 30_000 {
            return Err(invalid("delivery.lease_margin_ms", "must be at most 30000"));
        }
        for (i, cidr) in self.allowed_cidrs.iter().enumerate() {
            cidr.parse::<Cidr>().map_err(|e| invalid(format!("delivery.allowed_cidrs[{i}]"), e))?;
        }
        Ok(())
    }
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        Self {
            max_attempts: 18,
            timeout_ms: 10_000,
            backoff_initial_ms: 5_000,
            backoff_max_ms: 21_600_000,
            allow_private_networks: false,
            allowed_cidrs: Vec::new(),
            https_only: false,
            max_payload_bytes: 1_048_576,
            max_response_bytes: 4_096,
            shutdown_grace_ms: 15_000,
            concurrency: 512,
            batch_size: 1_000,
            lease_margin_ms: 30_000,
            max_in_flight: 256,
            rate_limit_per_sec: 0,
            breaker_after_ms: 60_000,
            breaker_min_failures: 10,
            disable_after_failing_ms: 5 * 24 * 3_600_000,
        }
    }
}

/// `[retention]`: how long finished work is kept, and how it is deleted.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetentionConfig {
    /// `false`: this replica never deletes anything (another replica, or
    /// your own job, may).
    pub enabled: bool,
    /// Succeeded deliveries (and their attempts) are deleted this long after
    /// they completed; so are outbox rows that never had a delivery, this
    /// long after they were dispatched.
    pub succeeded_after_ms: u64,
    /// Failed and cancelled deliveries are deleted this long after they
    /// completed (cancelled: after retention first saw them cancelled).
    pub failed_after_ms: u64,
    /// How often retention runs; each run deletes batch by batch until
    /// nothing old enough is left.
    pub interval_ms: u64,
    /// Deliveries deleted per transaction.
    pub batch_size: u32,
}

impl RetentionConfig {
    /// `[retention]`'s keys within their bounds.
    fn validate(&self) -> Result<(), ConfigError> {
        for (key, ms) in [
            ("retention.succeeded_after_ms", self.succeeded_after_ms),
            ("retention.failed_after_ms", self.failed_after_ms),
            ("retention.interval_ms", self.interval_ms),
        ] {
            positive(key, ms)?;
            if ms > i64::MAX as u64 {
                return Err(invalid(key, "is too large"));
            }
        }
        positive("retention.batch_size", u64::from(self.batch_size))?;
        if self.batch_size > MAX_RETENTION_BATCH {
            return Err(invalid("retention.batch_size", format!("must be at most {MAX_RETENTION_BATCH}")));
        }
        Ok(())
    }
}

impl Default for RetentionConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            succeeded_after_ms: 7 * 24 * 3_600_000,
            failed_after_ms: 30 * 24 * 3_600_000,
            interval_ms: 10_000,
            batch_size: 1_000,
        }
    }
}

/// `[transform]`'s keys within their bounds.
fn validate_transform(t: &TransformConfig) -> Result<(), ConfigError> {
    for (key, value, max) in [
        ("transform.max_operations", t.max_operations, 1_000_000_000),
        ("transform.max_call_depth", t.max_call_depth as u64, MAX_TRANSFORM_CALL_DEPTH as u64),
        ("transform.max_expr_depth", t.max_expr_depth as u64, 1_000),
        ("transform.max_string_bytes", t.max_string_bytes as u64, MAX_PAYLOAD_BYTES as u64),
        // Each level a value can nest takes runner stack (see transform/mod.rs).
        ("transform.max_array_len", t.max_array_len as u64, 100_000),
        ("transform.max_map_len", t.max_map_len as u64, 100_000),
        ("transform.max_variables", t.max_variables as u64, 100_000),
        ("transform.timeout_ms", t.timeout_ms, 60_000),
        ("transform.max_memory_bytes", t.max_memory_bytes as u64, 4 << 30),
    ] {
        positive(key, value)?;
        if value > max {
            return Err(invalid(key, format!("{value} is over the maximum of {max}")));
        }
    }
    if t.concurrency > 1_024 {
        return Err(invalid("transform.concurrency", format!("{} is over the maximum of 1024", t.concurrency)));
    }
    Ok(())
}

/// Largest `retention.batch_size`: a batch is one short transaction.
pub const MAX_RETENTION_BATCH: u32 = 5_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// A `tracing` filter such as `info` or `tailhook=debug`; `RUST_LOG` wins when set.
    pub level: String,
    pub format: LogFormat,
    /// How often an INFO line sums up deliveries; 0 turns it off.
    pub summary_interval_ms: u64,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self { level: "info".into(), format: LogFormat::Text, summary_interval_ms: 60_000 }
    }
}

/// An `[[endpoints]]` entry: the columns of `tailhook.endpoints` plus secret
/// sources. Printed (`Serialize`, `Debug`) without credentials: the URL as
/// scheme, host and port only, and header names without their values.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EndpointConfig {
    pub name: String,
    #[serde(serialize_with = "redacted_url")]
    pub url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    #[serde(default = "all_event_types")]
    pub event_types: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter_path: Option<String>,
    #[serde(default, serialize_with = "redacted_headers")]
    pub headers: BTreeMap<String, String>,
    #[serde(default = "yes")]
    pub enabled: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_attempts: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit_per_sec: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_in_flight: Option<i32>,
    /// This endpoint's retry schedule; unset: `delivery.backoff_*`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backoff_initial_ms: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backoff_max_ms: Option<i32>,
    #[serde(default)]
    pub ordered: bool,
    /// A script (Rhai) whose last expression is the body this endpoint receives.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transform: Option<String>,
    /// A file holding the script, relative to the config file's folder.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transform_file: Option<PathBuf>,
    /// The text read from `transform_file`.
    #[serde(skip)]
    pub transform_read: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<Secret>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secrets: Vec<Secret>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_env: Option<String>,
    /// One extra signature header beside the Standard Webhooks ones (a
    /// table: header, algorithm, encoding, prefix, format), keyed by the
    /// secret in `legacy_secret_env`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub legacy_signature: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub legacy_secret_env: Option<String>,
    /// Whether the Standard Webhooks headers are sent.
    #[serde(default = "yes")]
    pub standard_signature: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bearer_token_env: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub basic_auth_user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub basic_auth_password_env: Option<String>,
}

impl std::fmt::Debug for EndpointConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&serde_json::to_string(self).map_err(|_| std::fmt::Error)?)
    }
}

fn redacted_url<S: serde::Serializer>(url: &str, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&crate::config::secret::endpoint_origin(url))
}

/// Header names only: any header may carry a credential, whatever its name
/// (`X-Webhook-Hmac`, `X-Api-Sig`), so no value is printed.
fn redacted_headers<S: serde::Serializer>(headers: &BTreeMap<String, String>, s: S) -> Result<S::Ok, S::Error> {
    s.collect_map(headers.keys().map(|name| (name, "[redacted]")))
}

fn all_event_types() -> Vec<String> {
    vec!["*".into()]
}

fn yes() -> bool {
    true
}

/// Where the config file is: `--config`, else `TAILHOOK_CONFIG` (both
/// named explicitly, so the file must exist), else `./config.toml` (which
/// may be absent: built-in defaults).
pub fn config_path(flag: Option<&Path>) -> (PathBuf, bool) {
    match flag.map(Path::to_path_buf).or_else(|| std::env::var_os("TAILHOOK_CONFIG").map(PathBuf::from)) {
        Some(named) => (named, true),
        None => (PathBuf::from("config.toml"), false),
    }
}

impl Config {
    /// Loads defaults, then the file, then `DATABASE_URL`, then
    /// `TAILHOOK_<SECTION>__<KEY>` variables, and validates the result. A
    /// missing file is an error when `required` (it was named explicitly: a
    /// typo must never mean built-in defaults pointed at a shared database).
    pub fn load(path: &Path, required: bool) -> Result<Self, ConfigError> {
        Self::load_for(path, required, Need::Endpoints)
    }

    /// [`Config::load`] for a command that needs only what `need` says.
    pub fn load_for(path: &Path, required: bool, need: Need) -> Result<Self, ConfigError> {
        let mut figment = Figment::new();
        match std::fs::metadata(path) {
            Ok(_) => {
                std::fs::read_to_string(path)
                    .map_err(|e| ConfigError::File { path: path.to_owned(), reason: e.to_string() })?;
                figment = figment.merge(Toml::file_exact(path));
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(ConfigError::File { path: path.to_owned(), reason: "it does not exist (named by --config or TAILHOOK_CONFIG; only the implicit ./config.toml may be missing)".into() })
            }
            Err(e) => return Err(ConfigError::File { path: path.to_owned(), reason: e.to_string() }),
        }
        figment = figment
            .merge(Env::raw().only(&["DATABASE_URL"]).map(|_| "database.url".into()))
            .merge(Env::prefixed("TAILHOOK_").ignore(&["CONFIG"]).split("__"));
        Self::from_figment(figment, path.parent().unwrap_or(Path::new("")), need)
    }

    /// Parses a configuration from TOML text alone (no file, no environment);
    /// `transform_file` paths are relative to the working directory.
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        Self::from_figment(Figment::new().merge(Toml::string(text)), Path::new(""), Need::Endpoints)
    }

    /// `folder`: where the config file is (relative `transform_file` paths start there).
    fn from_figment(figment: Figment, folder: &Path, need: Need) -> Result<Self, ConfigError> {
        let mut config: Config = figment.extract().map_err(describe_figment_error)?;
        for (i, ep) in config.endpoints.iter_mut().enumerate() {
            let Some(file) = &ep.transform_file else { continue };
            let key = format!("endpoints[{i}].transform_file");
            if ep.transform.is_some() {
                return Err(invalid(key, "cannot be combined with transform"));
            }
            let path = folder.join(file);
            let text = std::fs::read_to_string(&path)
                .map_err(|e| invalid(&key, format!("cannot read {}: {e}", path.display())))?;
            ep.transform_read = Some(text);
        }
        config.validate(need)?;
        Ok(config)
    }

    /// The effective configuration as TOML, secrets redacted.
    pub fn redacted_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_else(|e| format!("# cannot print config: {e}"))
    }

    fn validate(&self, need: Need) -> Result<(), ConfigError> {
        self.database.validate()?;
        self.delivery.validate()?;
        check_log_filter(&self.log.level).map_err(|reason| invalid("log.level", reason))?;
        self.server.validate()?;
        self.retention.validate()?;
        validate_endpoints(&self.endpoints, self.delivery.https_only, need)?;
        validate_transform(&self.transform)?;
        self.secrets.keys()?;
        compile_scripts(&self.endpoints, &self.transform, self.delivery.max_payload_bytes)
    }

    pub fn allowed_cidrs(&self) -> Vec<Cidr> {
        self.delivery.allowed_cidrs.iter().filter_map(|c| c.parse().ok()).collect()
    }
}

/// A `tracing` filter whose every directive is a level or `target=level`.
/// (A bare word is a valid filter meaning "everything of target `word`", so
/// a typo such as `infoo` would silently turn every log line off.)
fn check_log_filter(filter: &str) -> Result<(), String> {
    const LEVELS: [&str; 6] = ["off", "error", "warn", "info", "debug", "trace"];
    tracing_subscriber::EnvFilter::try_new(filter).map_err(|e| format!("not a log filter: {e}"))?;
    for directive in filter.split(',').map(str::trim).filter(|d| !d.is_empty()) {
        if !directive.contains(['=', '[']) && !LEVELS.contains(&directive.to_ascii_lowercase().as_str()) {
            return Err(format!("`{directive}` is not a level ({}) nor `target=level`", LEVELS.join(", ")));
        }
    }
    Ok(())
}

/// Largest `delivery.max_payload_bytes` (64 MiB).
pub const MAX_PAYLOAD_BYTES: usize = 64 << 20;

/// Most requests in flight at once over all endpoints.
pub const MAX_CONCURRENCY: usize = 10_000;

fn positive(key: &str, value: u64) -> Result<(), ConfigError> {
    if value == 0 {
        return Err(invalid(key, "must be greater than 0"));
    }
    Ok(())
}

/// Turns figment's error into one line naming the full key.
fn describe_figment_error(err: figment::Error) -> ConfigError {
    use figment::error::Kind;
    let mut key = String::new();
    for part in &err.path {
        if part.parse::<usize>().is_ok() {
            key.push_str(&format!("[{part}]"));
        } else {
            key = join_key(&key, part);
        }
    }
    let reason = match &err.kind {
        Kind::UnknownField(field, _) => {
            key = join_key(&key, field);
            "unknown key".to_owned()
        }
        Kind::MissingField(field) => {
            key = join_key(&key, field);
            "is required".to_owned()
        }
        other => other.to_string(),
    };
    let source = err
        .metadata
        .as_ref()
        .map(|m| match &m.source {
            Some(src) => format!(" (from {src})"),
            None => format!(" (from {})", m.name),
        })
        .unwrap_or_default();
    invalid(if key.is_empty() { "<root>".to_owned() } else { key }, format!("{reason}{source}"))
}

fn join_key(path: &str, field: &str) -> String {
    if path.is_empty() {
        field.to_owned()
    } else if path == field || path.ends_with(&format!(".{field}")) {
        path.to_owned()
    } else {
        format!("{path}.{field}")
    }
}

/// An endpoint from the file, with its secrets read and checked, ready to upsert.
#[derive(Debug, Clone)]
pub struct ResolvedEndpoint {
    pub config: EndpointConfig,
    /// The URL in its normalised form, as stored.
    pub url: String,
    pub secrets: Vec<Secret>,
    pub headers: BTreeMap<String, Secret>,
    pub legacy_secret: Option<Secret>,
}

impl EndpointConfig {
    /// The transform's text: `transform`, or what `transform_file` holds.
    pub fn script(&self) -> Option<&str> {
        self.transform.as_deref().or(self.transform_read.as_deref())
    }

    /// Reads the secrets it names from the environment and checks every field.
    pub fn resolve(&self, index: usize, https_only: bool) -> Result<ResolvedEndpoint, ConfigError> {
        let key = |field: &str| format!("endpoints[{index}].{field}");
        if self.name.is_empty() {
            return Err(invalid(key("name"), "must not be empty"));
        }
        let url = rules::url(&self.url, https_only).map_err(|p| invalid(key(p.field), p.reason))?;
        rules::event_types(&self.event_types).map_err(|p| invalid(key(p.field), p.reason))?;
        for (limit, value) in [
            (rules::MAX_ATTEMPTS, self.max_attempts),
            (rules::TIMEOUT_MS, self.timeout_ms),
            (rules::RATE_LIMIT_PER_SEC, self.rate_limit_per_sec),
            (rules::MAX_IN_FLIGHT, self.max_in_flight),
        ] {
            limit.check(value.map(i64::from)).map_err(|p| invalid(key(p.field), p.reason))?;
        }
        rules::backoff(self.backoff_initial_ms.map(i64::from), self.backoff_max_ms.map(i64::from))
            .map_err(|p| invalid(key(p.field), p.reason))?;
        if let Some(filter) = &self.filter {
            if !filter.is_object() {
                return Err(invalid(key("filter"), "must be a table (JSON object)"));
            }
            rules::filter(filter).map_err(|p| invalid(key(p.field), p.reason))?;
        }
        if let Some(path) = &self.filter_path {
            rules::filter_path(path).map_err(|p| invalid(key(p.field), p.reason))?;
        }

        let mut secrets: Vec<Secret> = self.secret.iter().chain(&self.secrets).cloned().collect();
        if let Some(var) = &self.secret_env {
            secrets.push(Secret::new(read_env(var, &key("secret_env"))?));
        }
        rules::secrets(secrets.iter().map(|s| Some(s.expose()))).map_err(|p| invalid(key(p.field), p.reason))?;

        let mut headers = BTreeMap::new();
        for (name, value) in &self.headers {
            headers.insert(name.to_ascii_lowercase(), Secret::new(value.clone()));
        }
        let authorization = match (&self.bearer_token_env, &self.basic_auth_user, &self.basic_auth_password_env) {
            (Some(_), Some(_), _) => {
                return Err(invalid(key("bearer_token_env"), "cannot be combined with basic_auth_user"))
            }
            (Some(var), None, _) => Some(format!("Bearer {}", read_env(var, &key("bearer_token_env"))?)),
            (None, Some(user), password_var) => {
                use base64::Engine;
                let password = match password_var {
                    Some(var) => read_env(var, &key("basic_auth_password_env"))?,
                    None => String::new(),
                };
                let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
                Some(format!("Basic {token}"))
            }
            (None, None, Some(_)) => return Err(invalid(key("basic_auth_password_env"), "needs basic_auth_user")),
            (None, None, None) => None,
        };
        if let Some(value) = authorization {
            if headers.contains_key("authorization") {
                return Err(invalid(key("headers"), "sets `authorization` and an auth option at once"));
            }
            if let Some(problem) = rules::header_problem("authorization", &value) {
                return Err(invalid(key("bearer_token_env"), problem));
            }
            headers.insert("authorization".into(), Secret::new(value));
        }
        // Checked as stored: together, with the auth header included.
        rules::headers(headers.iter().map(|(n, v)| (n.as_str(), v.expose())))
            .map_err(|p| invalid(key(p.field), p.reason))?;
        let legacy_secret = match &self.legacy_secret_env {
            Some(var) => Some(Secret::new(read_env(var, &key("legacy_secret_env"))?)),
            None => None,
        };
        let legacy = rules::legacy(self.legacy_signature.as_ref(), legacy_secret.as_ref().map(Secret::expose))
            .map_err(|p| {
                invalid(key(if p.field == "legacy_secret" { "legacy_secret_env" } else { p.field }), p.reason)
            })?;
        if let Some(signer) = &legacy {
            if headers.contains_key(signer.header.as_str()) {
                return Err(invalid(key("legacy_signature"), "names a header that `headers` sets too"));
            }
        }
        Ok(ResolvedEndpoint { config: self.clone(), url: url.into(), secrets, headers, legacy_secret })
    }
}

/// Names unique, and each endpoint resolved (with `Need::DatabaseOnly`, an
/// unset `*_env` variable is no error).
fn validate_endpoints(endpoints: &[EndpointConfig], https_only: bool, need: Need) -> Result<(), ConfigError> {
    let mut names = std::collections::HashSet::new();
    for (i, ep) in endpoints.iter().enumerate() {
        if !names.insert(ep.name.as_str()) {
            return Err(invalid(format!("endpoints[{i}].name"), format!("`{}` is declared twice", ep.name)));
        }
        match ep.resolve(i, https_only) {
            Ok(_) => {}
            Err(ConfigError::Unset { .. }) if need == Need::DatabaseOnly => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Every endpoint's transform compiles, under `[transform]`'s bounds.
fn compile_scripts(
    endpoints: &[EndpointConfig],
    limits: &TransformConfig,
    max_payload_bytes: usize,
) -> Result<(), ConfigError> {
    if endpoints.iter().any(|ep| ep.script().is_some()) {
        let transforms = crate::transform::Transforms::new(limits, max_payload_bytes);
        for (i, ep) in endpoints.iter().enumerate() {
            if let Some(script) = ep.script() {
                let field = if ep.transform_file.is_some() { "transform_file" } else { "transform" };
                transforms.compile(script).map_err(|reason| invalid(format!("endpoints[{i}].{field}"), reason))?;
            }
        }
    }
    Ok(())
}

fn read_env(var: &str, key: &str) -> Result<String, ConfigError> {
    match std::env::var(var) {
        Ok(v) if !v.is_empty() => Ok(v),
        _ => Err(ConfigError::Unset { key: key.to_owned(), var: var.to_owned() }),
    }
}

impl DeliveryConfig {
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error_of(toml: &str) -> String {
        Config::from_toml(toml).unwrap_err().to_string()
    }

    #[test]
    fn defaults_without_a_file() {
        let c = Config::from_toml("").unwrap();
        assert_eq!(c.delivery.max_attempts, 18);
        assert_eq!(c.delivery.timeout_ms, 10_000);
        assert_eq!(c.database.url.expose(), "postgres://postgres@localhost:5432/postgres");
        assert!(c.endpoints.is_empty());
        assert!(c.retention.enabled);
        assert_eq!(c.retention.succeeded_after_ms, 604_800_000);
        assert_eq!(c.retention.failed_after_ms, 2_592_000_000);
    }

    #[test]
    fn errors_name_the_key() {
        let cases = [
            ("[delivery]\ntimeout_msx = 5", "config key `delivery.timeout_msx`: unknown key"),
            ("[nope]\na = 1", "config key `nope`: unknown key"),
            ("[delivery]\ntimeout_ms = \"soon\"", "config key `delivery.timeout_ms`"),
            ("[delivery]\ntimeout_ms = 0", "config key `delivery.timeout_ms`: must be greater than 0"),
            ("[delivery]\nallowed_cidrs = [\"10.0.0.0/99\"]", "config key `delivery.allowed_cidrs[0]`"),
            ("[log]\nformat = \"xml\"", "config key `log.format`"),
            ("[retention]\ninterval_ms = 0", "config key `retention.interval_ms`: must be greater than 0"),
            ("[retention]\nsucceeded_after_ms = 0", "config key `retention.succeeded_after_ms`: must be greater"),
            ("[retention]\nbatch_size = 100000", "config key `retention.batch_size`: must be at most 5000"),
            ("[retention]\nkeep_days = 3", "config key `retention.keep_days`: unknown key"),
            ("[database]\nkeepalive_idle_ms = 10", "config key `database.keepalive_idle_ms`: must be at least 1000"),
            ("[database]\nkeepalive_interval_ms = 0", "config key `database.keepalive_interval_ms`"),
            ("[database]\nkeepalive_retries = 0", "config key `database.keepalive_retries`: must be greater than 0"),
            ("[database]\ntcp_user_timeout_ms = -1", "config key `database.tcp_user_timeout_ms`"),
            ("[database]\nkeepalive_count = 3", "config key `database.keepalive_count`: unknown key"),
            (
                "[database]\nurl = \"postgres://h/db?sslmode=verify\"",
                "config key `database.url`: not a PostgreSQL connection string: sslmode `verify`",
            ),
            ("[[endpoints]]\nname = \"a\"\nurl = \"ftp://x\"", "config key `endpoints[0].url`"),
            ("[[endpoints]]\nname = \"a\"", "config key `endpoints[0].url`: is required"),
            (
                "[[endpoints]]\nname = \"a\"\nurl = \"http://x\"\nbackoff_initial_ms = 0",
                "config key `endpoints[0].backoff_initial_ms`: must be greater than 0",
            ),
            (
                "[[endpoints]]\nname = \"a\"\nurl = \"http://x\"\nbackoff_max_ms = 604800001",
                "config key `endpoints[0].backoff_max_ms`: 604800001 is over the maximum of 604800000",
            ),
            (
                "[[endpoints]]\nname = \"a\"\nurl = \"http://x\"\nbackoff_initial_ms = 2000\nbackoff_max_ms = 1000",
                "config key `endpoints[0].backoff_max_ms`: 1000 is less than backoff_initial_ms (2000)",
            ),
            ("[delivery]\nbackoff_max_ms = 604800001", "config key `delivery.backoff_max_ms`: 604800001 is over"),
            (
                "[[endpoints]]\nname = \"a\"\nurl = \"http://x\"\nsecret = \"whsec_!!\"",
                "config key `endpoints[0].secrets`",
            ),
            (
                "[[endpoints]]\nname = \"a\"\nurl = \"http://x\"\nheaders = { \"webhook-id\" = \"x\" }",
                "config key `endpoints[0].headers`: header `webhook-id` is set by tailhook",
            ),
            (
                "[[endpoints]]\nname = \"a\"\nurl = \"http://x\"\nsecret_env = \"TAILHOOK_TEST_UNSET_VAR\"",
                "config key `endpoints[0].secret_env`: environment variable TAILHOOK_TEST_UNSET_VAR is not set",
            ),
            (
                "[[endpoints]]\nname = \"a\"\nurl = \"http://x\"\n[[endpoints]]\nname = \"a\"\nurl = \"http://y\"",
                "config key `endpoints[1].name`: `a` is declared twice",
            ),
        ];
        for (toml, expected) in cases {
            let got = error_of(toml);
            assert!(got.starts_with(expected), "{toml:?}\n got: {got}\nwant: {expected}");
        }
    }

    #[test]
    fn libpq_tls_keys_are_accepted_in_the_url() {
        for url in [
            "postgres://u@db/app?sslmode=verify-full&sslrootcert=/etc/ca.pem&sslcert=/c.pem&sslkey=/k.pem",
            "host=db dbname=app sslmode=verify-ca sslrootcert='/etc/ca.pem'",
        ] {
            let c = Config::from_toml(&format!("[database]\nurl = \"{url}\"")).unwrap_or_else(|e| panic!("{url}: {e}"));
            assert_eq!(c.database.url.expose(), url);
        }
    }

    #[test]
    fn printed_config_hides_secrets() {
        let c = Config::from_toml(
            "[database]\nurl = \"postgres://u:hunter2@db/app\"\n[[endpoints]]\nname = \"a\"\nurl = \"http://x\"\nsecret = \"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\"",
        )
        .unwrap();
        let printed = c.redacted_toml();
        assert!(!printed.contains("hunter2"), "{printed}");
        assert!(!printed.contains("MfKQ9r8"), "{printed}");
        assert!(printed.contains("[redacted]"), "{printed}");
        assert!(!format!("{c:?}").contains("hunter2"));
    }

    #[test]
    fn printed_endpoints_hide_credentials_in_urls_and_headers() {
        let c = Config::from_toml(
            r#"
[[endpoints]]
name = "a"
url = "https://user:pw-in-url@hooks.example.com/x?token=tok-in-query&v=2"
headers = { authorization = "Bearer sk_live_abc", "x-api-key" = "key-123", "x-team" = "payments", "X-Webhook-Hmac" = "hmac-1" }
"#,
        )
        .unwrap();
        for printed in [c.redacted_toml(), format!("{c:?}")] {
            for secret in
                ["pw-in-url", "tok-in-query", "sk_live_abc", "key-123", "hmac-1", "payments", "v=2", "user@", "/x"]
            {
                assert!(!printed.contains(secret), "{secret} in {printed}");
            }
            assert!(printed.contains("x-team") && printed.contains("X-Webhook-Hmac"), "header names shown: {printed}");
            assert!(printed.contains("\"https://hooks.example.com\""), "{printed}");
        }
    }

    #[test]
    fn sealing_keys_are_a_list_or_one_string_and_never_printed() {
        let (a, b) = ("q83vEjRWeJCrze8SNFZ4kKvN7xI0VniQq83vEjRWeJA=", "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=");
        for toml in [format!("[secrets]\nkeys = [\"{a}\", \"{b}\"]"), format!("[secrets]\nkeys = \"{a}, {b}\"")] {
            let c = Config::from_toml(&toml).unwrap();
            assert_eq!(c.secrets.keys.iter().map(Secret::expose).collect::<Vec<_>>(), [a, b]);
            assert_eq!(c.secrets.keys().unwrap().sealing_id(), keys_id(a).as_deref());
            let printed = format!("{}{c:?}", c.redacted_toml());
            assert!(!printed.contains(&a[..10]) && !printed.contains(&b[..10]), "{printed}");
        }
        let cases = [
            (
                format!("[secrets]\nkeys = [\"{a}\", \"c2hvcnQ=\"]"),
                "config key `secrets.keys[1]`: is not the base64 of 32 bytes",
            ),
            (
                format!("[secrets]\nkeys = \"{a} {a}\""),
                "config key `secrets.keys[1]`: is the same key as secrets.keys[0]",
            ),
            ("[secrets]\nkey = 1".into(), "config key `secrets.key`: unknown key"),
        ];
        for (toml, expected) in cases {
            let got = error_of(&toml);
            assert!(got.starts_with(expected), "{toml}: {got}");
            assert!(!got.contains("c2hvcnQ") && !got.contains(&a[..10]), "{got}");
        }
        assert!(Config::from_toml("").unwrap().secrets.keys().unwrap().is_empty());
    }

    fn keys_id(key: &str) -> Option<String> {
        sealed::Keys::parse(&[Secret::new(key)]).ok()?.sealing_id().map(str::to_owned)
    }

    #[test]
    fn bearer_token_becomes_authorization() {
        std::env::set_var("UNIT_TEST_BEARER_TOKEN", "tok123");
        let c = Config::from_toml(
            "[[endpoints]]\nname = \"a\"\nurl = \"http://x\"\nbearer_token_env = \"UNIT_TEST_BEARER_TOKEN\"",
        )
        .unwrap();
        let resolved = c.endpoints[0].resolve(0, false).unwrap();
        assert_eq!(resolved.headers["authorization"].expose(), "Bearer tok123");
    }

    #[test]
    fn legacy_signatures_are_checked_by_the_rules_naming_the_key() {
        std::env::set_var("CONFIG_TEST_LEGACY_SECRET", "your-secret-key-here");
        std::env::set_var("CONFIG_TEST_SHORT_SECRET", "short-secret");
        let endpoint = |extra: &str| format!("[[endpoints]]\nname = \"a\"\nurl = \"http://x\"\n{extra}\n");
        let env = "legacy_secret_env = \"CONFIG_TEST_LEGACY_SECRET\"";
        let cases = [
            (
                "legacy_signature = { header = \"X-Hub-Signature-256\" }".to_owned(),
                "config key `endpoints[0].legacy_secret_env`: is required with legacy_signature",
            ),
            (env.to_owned(), "config key `endpoints[0].legacy_signature`: is required with legacy_secret"),
            (
                format!("legacy_signature = {{ header = \"Webhook-Signature\" }}\n{env}"),
                "config key `endpoints[0].legacy_signature`: header is set by tailhook and cannot be used",
            ),
            (
                format!("legacy_signature = {{ header = \"X Sig\" }}\n{env}"),
                "config key `endpoints[0].legacy_signature`: header is not an HTTP header name",
            ),
            (
                format!("legacy_signature = {{ header = \"X-Sig\", algorithm = \"md5\" }}\n{env}"),
                "config key `endpoints[0].legacy_signature`: algorithm must be \"sha256\" or \"sha512\"",
            ),
            (
                format!("legacy_signature = {{ header = \"X-Sig\", encoding = \"base32\" }}\n{env}"),
                "config key `endpoints[0].legacy_signature`: encoding must be",
            ),
            (
                format!("legacy_signature = {{ header = \"X-Sig\", format = \"stripe\" }}\n{env}"),
                "config key `endpoints[0].legacy_signature`: format must be",
            ),
            (
                format!("legacy_signature = {{ header = \"X-Sig\", sign = \"body\" }}\n{env}"),
                "config key `endpoints[0].legacy_signature`: has the key `sign`",
            ),
            (
                format!("legacy_signature = {{ header = \"X-Sig\" }}\nheaders = {{ \"x-sig\" = \"v\" }}\n{env}"),
                "config key `endpoints[0].legacy_signature`: names a header that `headers` sets too",
            ),
            (
                "legacy_signature = { header = \"X-Sig\" }\nlegacy_secret_env = \"CONFIG_TEST_SHORT_SECRET\""
                    .to_owned(),
                "config key `endpoints[0].legacy_secret_env`: is 12 bytes; it must be 16 to 256 bytes",
            ),
        ];
        for (extra, expected) in cases {
            let error = error_of(&endpoint(&extra));
            assert!(error.starts_with(expected), "{extra}: {error}");
            assert!(!error.contains("your-secret") && !error.contains("short-secret"), "{error}");
        }
        let ok = Config::from_toml(&endpoint(&format!(
            "legacy_signature = {{ header = \"X-Hub-Signature-256\", prefix = \"sha256=\" }}\n{env}\nstandard_signature = false"
        )))
        .unwrap();
        assert!(!ok.endpoints[0].standard_signature);
        let resolved = ok.endpoints[0].resolve(0, false).unwrap();
        assert_eq!(resolved.legacy_secret.as_ref().map(Secret::expose), Some("your-secret-key-here"));
        assert!(!ok.redacted_toml().contains("your-secret"), "{}", ok.redacted_toml());
        assert!(!format!("{resolved:?}").contains("your-secret"));
    }

    #[test]
    fn filters_beyond_the_bounds_are_refused_naming_the_key() {
        let endpoint = |extra: &str| format!("[[endpoints]]\nname = \"a\"\nurl = \"http://x\"\n{extra}\n");
        assert_eq!(
            Config::from_toml(&endpoint("filter_path = '$.a == $.b'")).unwrap_err().to_string(),
            "config key `endpoints[0].filter_path`: compares two values from the payload; \
             one side of a comparison must be a literal"
        );
        let values: Vec<String> = (0..65).map(|i| i.to_string()).collect();
        let filter = format!("filter = {{ a = [{}] }}", values.join(", "));
        assert_eq!(
            Config::from_toml(&endpoint(&filter)).unwrap_err().to_string(),
            "config key `endpoints[0].filter`: holds more than 64 values"
        );
        let c = Config::from_toml(&endpoint(
            "filter_path = 'exists($.** ? (@.flag == true))'\nfilter = { currency = \"EUR\" }",
        ))
        .unwrap();
        assert!(c.endpoints[0].resolve(0, false).is_ok());
    }

    proptest::proptest! {
        /// Any text is a configuration or one error naming a key.
        #[test]
        fn any_text_parses_or_names_a_key(text in "\\PC{0,120}") {
            if let Err(e) = Config::from_toml(&text) {
                proptest::prop_assert!(e.to_string().starts_with("config key `"), "{}", e);
            }
        }

        /// A value of any type under any key: accepted, or refused naming
        /// that key (or its unknown section).
        #[test]
        fn every_key_is_checked(
            section in "database|delivery|log|nope",
            key in "timeout_ms|max_in_flight|concurrency|pool_size|level|format|listen|url|max_payload_bytes|bogus",
            value in "0|-?[1-9][0-9]{0,11}|true|\"[a-z]{0,8}\"",
        ) {
            if let Err(e) = Config::from_toml(&format!("[{section}]\n{key} = {value}\n")) {
                let e = e.to_string();
                let named = e.starts_with(&format!("config key `{section}.{key}`")) || e.starts_with(&format!("config key `{section}`"));
                proptest::prop_assert!(named, "{}", e);
            }
        }

        #[test]
        fn timeouts_up_to_the_maximum_round_trip(ms in 1u64..=60_000, over in 60_001u64..10_000_000) {
            let ok = Config::from_toml(&format!("[delivery]\ntimeout_ms = {ms}")).unwrap();
            proptest::prop_assert_eq!(ok.delivery.timeout_ms, ms);
            let err = Config::from_toml(&format!("[delivery]\ntimeout_ms = {over}")).unwrap_err().to_string();
            proptest::prop_assert_eq!(err, format!("config key `delivery.timeout_ms`: {over} is over the maximum of 60000"));
        }
    }
}
