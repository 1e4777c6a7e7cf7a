//! `[[endpoints]]`: each entry, printed without credentials, resolved (secrets read from the environment, every rule checked) and its script compiled.

use super::secret::Secret;
use super::{invalid, read_env, rules, ConfigError, Need, TransformConfig};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;

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
    /// Whether attempts carry the event's trace context (`traceparent`,
    /// `tracestate`).
    #[serde(default = "yes")]
    pub propagate_trace: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bearer_token_env: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub basic_auth_user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub basic_auth_password_env: Option<String>,
    /// The client certificate (PEM, with its chain) this endpoint presents,
    /// from a file (relative to the config file's folder) or a variable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_client_cert_file: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_client_cert_env: Option<String>,
    /// Its private key (PEM): a secret, sealed at rest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_client_key_file: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_client_key_env: Option<String>,
    /// CA certificates (PEM) trusted for this endpoint's server, beside the public roots.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_ca_bundle_file: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_ca_bundle_env: Option<String>,
    /// What the `tls_*_file` keys' files hold: certificate, key, CA bundle.
    #[serde(skip)]
    pub tls_files_read: (Option<String>, Option<Secret>, Option<String>),
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

/// An endpoint from the file, with its secrets read and checked, ready to upsert.
#[derive(Debug, Clone)]
pub struct ResolvedEndpoint {
    pub config: EndpointConfig,
    /// The URL in its normalised form, as stored.
    pub url: String,
    pub secrets: Vec<Secret>,
    pub headers: BTreeMap<String, Secret>,
    pub legacy_secret: Option<Secret>,
    /// PEM text: the client certificate, its key, and the extra CAs.
    pub tls_client_cert: Option<String>,
    pub tls_client_key: Option<Secret>,
    pub tls_ca_bundle: Option<String>,
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
        let (tls_client_cert, tls_client_key, tls_ca_bundle) = self.tls(index)?;
        Ok(ResolvedEndpoint {
            config: self.clone(),
            url: url.into(),
            secrets,
            headers,
            legacy_secret,
            tls_client_cert,
            tls_client_key,
            tls_ca_bundle,
        })
    }

    /// The TLS settings' PEM text, from their files or variables, checked
    /// as an endpoint row's are; errors name the key used, never the text.
    #[allow(clippy::type_complexity)]
    fn tls(&self, index: usize) -> Result<(Option<String>, Option<Secret>, Option<String>), ConfigError> {
        let key = |field: &str| format!("endpoints[{index}].{field}");
        let pick = |name: &str, file: &Option<PathBuf>, read: &Option<String>, env: &Option<String>| match (file, env) {
            (Some(_), Some(_)) => {
                Err(invalid(key(&format!("{name}_env")), format!("cannot be combined with {name}_file")))
            }
            (Some(_), None) => Ok(read.clone()),
            (None, Some(var)) => read_env(var, &key(&format!("{name}_env"))).map(Some),
            (None, None) => Ok(None),
        };
        let (cert_read, key_read, ca_read) = &self.tls_files_read;
        let cert = pick("tls_client_cert", &self.tls_client_cert_file, cert_read, &self.tls_client_cert_env)?;
        let key_text = key_read.as_ref().map(|k| k.expose().to_owned());
        let private =
            pick("tls_client_key", &self.tls_client_key_file, &key_text, &self.tls_client_key_env)?.map(Secret::new);
        let ca = pick("tls_ca_bundle", &self.tls_ca_bundle_file, ca_read, &self.tls_ca_bundle_env)?;
        crate::egress::endpoint_tls(cert.as_deref(), private.as_ref().map(Secret::expose), ca.as_deref()).map_err(
            |p| {
                let file = match p.field {
                    "tls_client_cert" => &self.tls_client_cert_file,
                    "tls_client_key" => &self.tls_client_key_file,
                    _ => &self.tls_ca_bundle_file,
                };
                let suffix = if file.is_some() { "_file" } else { "_env" };
                invalid(key(&format!("{}{suffix}", p.field)), p.reason)
            },
        )?;
        Ok((cert, private, ca))
    }
}

/// Names unique, and each endpoint resolved (with `Need::DatabaseOnly`, an
/// unset `*_env` variable is no error).
pub(super) fn validate_endpoints(
    endpoints: &[EndpointConfig],
    https_only: bool,
    need: Need,
) -> Result<(), ConfigError> {
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
pub(super) fn compile_scripts(
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
