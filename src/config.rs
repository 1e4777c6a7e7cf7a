//! Configuration: built-in defaults, `config.toml`, `DATABASE_URL` and `TAILHOOK_<SECTION>__<KEY>`, validated with the key named.

use crate::guard::Cidr;
use crate::secret::{DatabaseUrl, Secret};
use crate::signing::SigningKey;
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
    #[error("cannot read config file {path}: {reason}")]
    File { path: PathBuf, reason: String },
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
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub endpoints: Vec<EndpointConfig>,
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
}

impl Default for LogConfig {
    fn default() -> Self {
        Self { level: "info".into(), format: LogFormat::Text }
    }
}

/// An `[[endpoints]]` entry: the columns of `tailhook.endpoints` plus secret sources.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EndpointConfig {
    pub name: String,
    pub url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    #[serde(default = "all_event_types")]
    pub event_types: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter_path: Option<String>,
    #[serde(default)]
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
    #[serde(default)]
    pub ordered: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<Secret>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secrets: Vec<Secret>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_env: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bearer_token_env: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub basic_auth_user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub basic_auth_password_env: Option<String>,
}

fn all_event_types() -> Vec<String> {
    vec!["*".into()]
}

fn yes() -> bool {
    true
}

/// Where the config file is: `--config`, else `TAILHOOK_CONFIG`, else `./config.toml`.
pub fn config_path(flag: Option<&Path>) -> PathBuf {
    flag.map(Path::to_path_buf)
        .or_else(|| std::env::var_os("TAILHOOK_CONFIG").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("config.toml"))
}

impl Config {
    /// Loads defaults, then the file (if it exists), then `DATABASE_URL`, then
    /// `TAILHOOK_<SECTION>__<KEY>` variables, and validates the result.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let mut figment = Figment::new();
        if path.exists() {
            std::fs::read_to_string(path)
                .map_err(|e| ConfigError::File { path: path.to_owned(), reason: e.to_string() })?;
            figment = figment.merge(Toml::file_exact(path));
        }
        figment = figment
            .merge(Env::raw().only(&["DATABASE_URL"]).map(|_| "database.url".into()))
            .merge(Env::prefixed("TAILHOOK_").ignore(&["CONFIG"]).split("__"));
        Self::from_figment(figment)
    }

    /// Parses a configuration from TOML text alone (no file, no environment).
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        Self::from_figment(Figment::new().merge(Toml::string(text)))
    }

    fn from_figment(figment: Figment) -> Result<Self, ConfigError> {
        let config: Config = figment.extract().map_err(describe_figment_error)?;
        config.validate()?;
        Ok(config)
    }

    /// The effective configuration as TOML, secrets redacted.
    pub fn redacted_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_else(|e| format!("# cannot print config: {e}"))
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let db = &self.database;
        positive("database.pool_size", db.pool_size as u64)?;
        positive("database.poll_interval_ms", db.poll_interval_ms)?;
        positive("database.statement_timeout_ms", db.statement_timeout_ms)?;
        db.url
            .expose()
            .parse::<tokio_postgres::Config>()
            .map_err(|e| invalid("database.url", format!("not a PostgreSQL connection string: {e}")))?;

        let d = &self.delivery;
        positive("delivery.max_attempts", u64::from(d.max_attempts))?;
        positive("delivery.timeout_ms", d.timeout_ms)?;
        positive("delivery.backoff_initial_ms", d.backoff_initial_ms)?;
        positive("delivery.concurrency", d.concurrency as u64)?;
        positive("delivery.batch_size", d.batch_size as u64)?;
        positive("delivery.max_payload_bytes", d.max_payload_bytes as u64)?;
        positive("delivery.max_in_flight", u64::from(d.max_in_flight))?;
        positive("delivery.breaker_min_failures", u64::from(d.breaker_min_failures))?;
        positive("delivery.disable_after_failing_ms", d.disable_after_failing_ms)?;
        if d.backoff_max_ms < d.backoff_initial_ms {
            return Err(invalid("delivery.backoff_max_ms", "must be at least delivery.backoff_initial_ms"));
        }
        if d.lease_margin_ms > 30_000 {
            return Err(invalid("delivery.lease_margin_ms", "must be at most 30000"));
        }
        if d.timeout_ms > i32::MAX as u64 {
            return Err(invalid("delivery.timeout_ms", "is too large"));
        }
        for (i, cidr) in d.allowed_cidrs.iter().enumerate() {
            cidr.parse::<Cidr>().map_err(|e| invalid(format!("delivery.allowed_cidrs[{i}]"), e))?;
        }
        tracing_subscriber::EnvFilter::try_new(&self.log.level)
            .map_err(|e| invalid("log.level", format!("not a log filter: {e}")))?;

        let mut names = std::collections::HashSet::new();
        for (i, ep) in self.endpoints.iter().enumerate() {
            if !names.insert(ep.name.as_str()) {
                return Err(invalid(format!("endpoints[{i}].name"), format!("`{}` is declared twice", ep.name)));
            }
            ep.resolve(i, d.https_only)?;
        }
        Ok(())
    }

    pub fn allowed_cidrs(&self) -> Vec<Cidr> {
        self.delivery.allowed_cidrs.iter().filter_map(|c| c.parse().ok()).collect()
    }
}

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

/// Headers tailhook sets itself; an endpoint's own headers cannot replace them.
pub const RESERVED_HEADERS: &[&str] =
    &["content-type", "content-length", "host", "user-agent", "transfer-encoding", "connection"];

/// Why a custom header is unusable, or `None` when it is fine. Shared by the
/// config check and the sender (headers set with SQL are checked there).
pub fn header_problem(name: &str, value: &str) -> Option<String> {
    let lower = name.to_ascii_lowercase();
    if RESERVED_HEADERS.contains(&lower.as_str()) || lower.starts_with("webhook-") {
        return Some(format!("header `{name}` is set by tailhook and cannot be overridden"));
    }
    if name.len() > 4096 || value.len() > 4096 {
        return Some(format!("header `{name}` is longer than 4 KiB"));
    }
    if reqwest::header::HeaderName::from_bytes(name.as_bytes()).is_err() {
        return Some(format!("header name `{name}` is not valid HTTP"));
    }
    if reqwest::header::HeaderValue::from_str(value).is_err() {
        return Some(format!("header `{name}` has a value that is not valid HTTP"));
    }
    None
}

/// An endpoint from the file, with its secrets read and checked, ready to upsert.
#[derive(Debug, Clone)]
pub struct ResolvedEndpoint {
    pub config: EndpointConfig,
    pub secrets: Vec<Secret>,
    pub headers: BTreeMap<String, Secret>,
}

impl EndpointConfig {
    /// Reads the secrets it names from the environment and checks every field.
    pub fn resolve(&self, index: usize, https_only: bool) -> Result<ResolvedEndpoint, ConfigError> {
        let key = |field: &str| format!("endpoints[{index}].{field}");
        if self.name.is_empty() {
            return Err(invalid(key("name"), "must not be empty"));
        }
        let url = reqwest::Url::parse(&self.url).map_err(|e| invalid(key("url"), format!("not a URL: {e}")))?;
        match url.scheme() {
            "https" => {}
            "http" if !https_only => {}
            "http" => return Err(invalid(key("url"), "must be https (delivery.https_only is set)")),
            other => return Err(invalid(key("url"), format!("scheme `{other}` is not http or https"))),
        }
        if url.host_str().is_none() {
            return Err(invalid(key("url"), "has no host"));
        }
        if self.event_types.is_empty() || self.event_types.iter().any(String::is_empty) {
            return Err(invalid(key("event_types"), "must list at least one non-empty type (`*` for all)"));
        }
        for (field, value) in [
            ("max_attempts", self.max_attempts),
            ("timeout_ms", self.timeout_ms),
            ("rate_limit_per_sec", self.rate_limit_per_sec),
            ("max_in_flight", self.max_in_flight),
        ] {
            if value.is_some_and(|v| v <= 0) {
                return Err(invalid(key(field), "must be greater than 0"));
            }
        }
        if self.filter.as_ref().is_some_and(|f| !f.is_object()) {
            return Err(invalid(key("filter"), "must be a table (JSON object)"));
        }

        let mut secrets: Vec<Secret> = self.secret.iter().chain(&self.secrets).cloned().collect();
        if let Some(var) = &self.secret_env {
            secrets.push(Secret::new(read_env(var, &key("secret_env"))?));
        }
        for secret in &secrets {
            SigningKey::from_whsec(secret.expose()).map_err(|e| invalid(key("secrets"), e.to_string()))?;
        }

        let mut headers = BTreeMap::new();
        for (name, value) in &self.headers {
            if let Some(problem) = header_problem(name, value) {
                return Err(invalid(key("headers"), problem));
            }
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
            if let Some(problem) = header_problem("authorization", &value) {
                return Err(invalid(key("bearer_token_env"), problem));
            }
            headers.insert("authorization".into(), Secret::new(value));
        }
        Ok(ResolvedEndpoint { config: self.clone(), secrets, headers })
    }
}

fn read_env(var: &str, key: &str) -> Result<String, ConfigError> {
    match std::env::var(var) {
        Ok(v) if !v.is_empty() => Ok(v),
        _ => Err(invalid(key, format!("environment variable {var} is not set"))),
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
            ("[[endpoints]]\nname = \"a\"\nurl = \"ftp://x\"", "config key `endpoints[0].url`"),
            ("[[endpoints]]\nname = \"a\"", "config key `endpoints[0].url`: is required"),
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
    fn bearer_token_becomes_authorization() {
        std::env::set_var("UNIT_TEST_BEARER_TOKEN", "tok123");
        let c = Config::from_toml(
            "[[endpoints]]\nname = \"a\"\nurl = \"http://x\"\nbearer_token_env = \"UNIT_TEST_BEARER_TOKEN\"",
        )
        .unwrap();
        let resolved = c.endpoints[0].resolve(0, false).unwrap();
        assert_eq!(resolved.headers["authorization"].expose(), "Bearer tok123");
    }
}
