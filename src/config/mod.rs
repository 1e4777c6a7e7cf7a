//! Configuration: built-in defaults, `config.toml`, `DATABASE_URL` and `TAILHOOK_<SECTION>__<KEY>`, validated with the key named.

pub mod conninfo;
mod database;
mod delivery;
mod endpoints;
mod log;
mod otel;
mod retention;
pub mod rules;
pub mod sealed;
pub mod secret;
mod server;
mod transform;

pub use crate::transform::{TransformConfig, MAX_TRANSFORM_CALL_DEPTH};
pub use database::DatabaseConfig;
pub use delivery::{DeliveryConfig, MAX_CONCURRENCY, MAX_PAYLOAD_BYTES};
use endpoints::{compile_scripts, validate_endpoints};
pub use endpoints::{EndpointConfig, ResolvedEndpoint};
use log::check_log_filter;
pub use log::{LogConfig, LogFormat};
pub use otel::{Sampler, Tracing, TracingConfig};
pub use retention::{RetentionConfig, MAX_RETENTION_BATCH};
pub use server::ServerConfig;
use transform::validate_transform;

use crate::config::secret::Secret;
use crate::guard::Cidr;
use figment::providers::{Env, Format, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

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
    pub tracing: TracingConfig,
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
        for (i, ep) in config.endpoints.iter_mut().enumerate() {
            let read = |file: &Option<PathBuf>, field: &str| -> Result<Option<String>, ConfigError> {
                let Some(file) = file else { return Ok(None) };
                let path = folder.join(file);
                let key = format!("endpoints[{i}].{field}");
                let meta = std::fs::metadata(&path)
                    .map_err(|e| invalid(&key, format!("cannot read {}: {e}", path.display())))?;
                if meta.len() > crate::egress::MAX_CA_BUNDLE_BYTES as u64 {
                    return Err(invalid(key, format!("{} is too large", path.display())));
                }
                // The error names the file only: never what it holds.
                std::fs::read_to_string(&path)
                    .map(Some)
                    .map_err(|e| invalid(key, format!("cannot read {}: {e}", path.display())))
            };
            ep.tls_files_read = (
                read(&ep.tls_client_cert_file, "tls_client_cert_file")?,
                read(&ep.tls_client_key_file, "tls_client_key_file")?.map(Secret::new),
                read(&ep.tls_ca_bundle_file, "tls_ca_bundle_file")?,
            );
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
        self.tracing.resolve()?;
        compile_scripts(&self.endpoints, &self.transform, self.delivery.max_payload_bytes)
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

fn read_env(var: &str, key: &str) -> Result<String, ConfigError> {
    match std::env::var(var) {
        Ok(v) if !v.is_empty() => Ok(v),
        _ => Err(ConfigError::Unset { key: key.to_owned(), var: var.to_owned() }),
    }
}

#[cfg(test)]
mod tests {
    use super::secret::CredentialUrl;
    use super::*;

    fn error_of(toml: &str) -> String {
        Config::from_toml(toml).unwrap_err().to_string()
    }

    #[test]
    fn tracing_is_off_without_a_collector_and_bad_settings_name_their_key_or_variable() {
        let none = |_: &str| None;
        assert_eq!(TracingConfig::default().resolve_with(none).unwrap(), None);
        let env = |vars: &'static [(&'static str, &'static str)]| {
            move |name: &str| vars.iter().find(|(k, _)| *k == name).map(|(_, v)| v.to_string())
        };
        let on = TracingConfig::default()
            .resolve_with(env(&[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318/"),
                ("OTEL_TRACES_SAMPLER", "parentbased_traceidratio"),
                ("OTEL_TRACES_SAMPLER_ARG", "0.25"),
            ]))
            .unwrap()
            .unwrap();
        assert_eq!(on.traces_url, "http://collector:4318/v1/traces");
        assert_eq!(on.sampler, Sampler { parent_based: true, ratio: 0.25 });
        let key = TracingConfig { otlp_endpoint: Some(CredentialUrl::new("http://a:1")), ..TracingConfig::default() };
        let full = key.resolve_with(env(&[("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://b:2/x")])).unwrap().unwrap();
        assert_eq!(full.traces_url, "http://a:1/v1/traces", "the key wins over the variable");
        assert_eq!(key.resolve_with(env(&[("OTEL_SDK_DISABLED", "true")])).unwrap(), None);
        for (config, vars, says) in [
            (
                TracingConfig { sample_ratio: Some(1.5), ..key.clone() },
                &[][..],
                "`tracing.sample_ratio`: must be between 0 and 1",
            ),
            (
                TracingConfig { otlp_endpoint: Some(CredentialUrl::new("collector:4318")), ..key.clone() },
                &[][..],
                "`tracing.otlp_endpoint`",
            ),
            (TracingConfig { queue_size: 0, ..key.clone() }, &[][..], "`tracing.queue_size`: must be greater than 0"),
            (
                key.clone(),
                &[("OTEL_TRACES_SAMPLER", "sometimes")][..],
                "`OTEL_TRACES_SAMPLER`: `sometimes` is not one of",
            ),
            (
                key.clone(),
                &[("OTEL_TRACES_SAMPLER", "traceidratio"), ("OTEL_TRACES_SAMPLER_ARG", "x")][..],
                "`OTEL_TRACES_SAMPLER_ARG`",
            ),
        ] {
            let vars: &'static [(&'static str, &'static str)] = vars;
            let shown = config.resolve_with(env(vars)).unwrap_err().to_string();
            assert!(shown.contains(says), "{shown}");
        }
    }

    #[test]
    fn the_proxy_is_checked_naming_the_key_and_printed_without_its_credentials() {
        let c = Config::from_toml(
            "[delivery]\nproxy = \"http://egress:hunter2@proxy.internal:3128\"\nproxy_bypass = [\"*.internal\", \"10.0.0.0/8\"]",
        )
        .unwrap();
        for printed in [c.redacted_toml(), format!("{c:?}")] {
            assert!(!printed.contains("hunter2") && !printed.contains("egress:"), "{printed}");
            assert!(printed.contains("http://[redacted]@proxy.internal:3128"), "{printed}");
        }
        assert_eq!(
            error_of("[delivery]\nproxy = \"socks5://127.0.0.1:1080\""),
            "config key `delivery.proxy`: socks5:// proxies are not supported: tailhook needs an HTTP proxy that \
             accepts CONNECT (http://host:port), so that it can name the checked address itself"
        );
        assert!(error_of("[delivery]\nproxy_bypass = [\"ok.example\", \"not a host\"]")
            .starts_with("config key `delivery.proxy_bypass[1]`: `not a host` is not"));
    }

    #[test]
    fn the_collector_url_is_printed_without_its_credentials() {
        let c =
            Config::from_toml("[tracing]\notlp_endpoint = \"https://spans:hunter2@collector.internal:4318\"").unwrap();
        for printed in [c.redacted_toml(), format!("{c:?}")] {
            assert!(!printed.contains("hunter2") && !printed.contains("spans:"), "{printed}");
            assert!(printed.contains("https://[redacted]@collector.internal:4318"), "{printed}");
        }
    }

    #[test]
    fn an_endpoints_tls_keys_name_the_key_never_the_text() {
        let base = "[[endpoints]]\nname = \"a\"\nurl = \"https://x\"\n";
        std::env::set_var(
            "CONFIG_TEST_TLS_KEY",
            "-----BEGIN PRIVATE KEY-----\nU0VDUkVUU0VDUkVU\n-----END PRIVATE KEY-----\n",
        );
        let e = error_of(&format!("{base}tls_client_key_env = \"CONFIG_TEST_TLS_KEY\""));
        assert_eq!(e, "config key `endpoints[0].tls_client_cert_env`: is required with tls_client_key");
        std::env::set_var("CONFIG_TEST_TLS_CERT", "not pem");
        let e = error_of(&format!(
            "{base}tls_client_key_env = \"CONFIG_TEST_TLS_KEY\"\ntls_client_cert_env = \"CONFIG_TEST_TLS_CERT\""
        ));
        assert!(e.starts_with("config key `endpoints[0].tls_client_cert_env`: holds no PEM"), "{e}");
        let e = error_of(&format!("{base}tls_ca_bundle_file = \"/nonexistent/ca.crt\""));
        assert!(e.starts_with("config key `endpoints[0].tls_ca_bundle_file`: cannot read /nonexistent/ca.crt"), "{e}");
        let e = error_of(&format!(
            "{base}tls_ca_bundle_file = \"/nonexistent/ca.crt\"\ntls_ca_bundle_env = \"CONFIG_TEST_TLS_CERT\""
        ));
        assert!(e.starts_with("config key `endpoints[0].tls_ca_bundle_file`"), "the file is read first: {e}");
        assert!(!e.contains("U0VDUkVU"));
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
            (
                "[retention]\npartition_interval = \"1 week\"",
                "config key `retention.partition_interval`: must be a whole number",
            ),
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
