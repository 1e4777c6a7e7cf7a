//! The in-memory view of `tailhook.endpoints`: parsed and checked once, refreshed within a second of any SQL change.

use crate::config::rules::{self, Problem};
use crate::config::sealed::{Keys, Standing};
use crate::config::DeliveryConfig;
use crate::db::{Db, DbError, EndpointFields, EndpointRow};
use crate::egress::{endpoint_tls, EndpointTls};
use crate::pipeline::schedule::Backoff;
use crate::signing::{LegacySigner, SigningKey};
use crate::transform::{Script, Transforms};
use reqwest::header::HeaderMap;
use reqwest::Url;
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// Everything needed to send to one endpoint.
#[derive(Debug)]
pub struct Endpoint {
    pub name: String,
    pub enabled: bool,
    pub timeout: Duration,
    pub max_attempts: u32,
    /// Its retry schedule: its own values, else `[delivery]`'s.
    pub backoff: Backoff,
    pub max_in_flight: u32,
    pub rate_limit_per_sec: Option<u32>,
    pub ordered: bool,
    /// The script making the body this endpoint receives; `None`: the envelope.
    pub transform: Option<Arc<Script>>,
    /// Whether its `filter` and `filter_path` keep the bounds on filters
    /// (`rules`); when not, the fan-out never evaluates them.
    pub filters_ok: bool,
    /// Where and how to send, or why no request can be built
    /// (the delivery then fails at once as `invalid_request`).
    pub target: Result<Target, String>,
    /// The row's secrets and header values as they should be stored (sealed
    /// under the first key) when they are not stored so yet.
    pub reseal: Option<Reseal>,
}

/// Stored values to replace, if they are still the ones read. `Debug`
/// shows none of them (the values read may be plaintext).
pub struct Reseal {
    pub secrets_before: Vec<Option<String>>,
    pub headers_before: String,
    pub legacy_before: Option<String>,
    pub tls_key_before: Option<String>,
    pub secrets: Vec<String>,
    pub headers: String,
    pub legacy: Option<String>,
    pub tls_key: Option<String>,
}

pub struct Target {
    pub url: Url,
    pub keys: Vec<SigningKey>,
    pub headers: HeaderMap,
    /// The compatibility signature header, if the endpoint adds one.
    pub legacy: Option<LegacySigner>,
    /// Whether the Standard Webhooks headers are sent.
    pub standard: bool,
    /// Its own TLS (client certificate, extra CAs), if it has any.
    pub tls: Option<Arc<EndpointTls>>,
    /// Whether requests carry the event's trace context.
    pub propagate_trace: bool,
}

/// The URL as scheme, host and port, header names only: `Debug` output
/// ends up in logs and panics, and the rest of either can be a credential.
impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Target")
            .field("url", &crate::config::secret::endpoint_origin(self.url.as_str()))
            .field("keys", &self.keys.len())
            .field("headers", &self.headers.keys().collect::<Vec<_>>())
            .field("legacy", &self.legacy)
            .field("standard", &self.standard)
            .field("tls", &self.tls.is_some())
            .field("propagate_trace", &self.propagate_trace)
            .finish()
    }
}

impl Endpoint {
    /// Never fails: a row tailhook cannot use becomes an endpoint whose
    /// `target` says why (its deliveries then fail as `invalid_request`).
    /// The transform is compiled here, unless `previous` (the same
    /// endpoint's last version) has the same script already compiled.
    pub fn from_row(
        row: EndpointRow,
        defaults: &DeliveryConfig,
        transforms: &Transforms,
        keys: &Keys,
        previous: Option<&Endpoint>,
    ) -> Self {
        let mut reseal = None;
        // Filters first: a row beyond their bounds is named for them, and
        // never has them evaluated, whatever else is wrong with it (nor does
        // a row whose columns cannot be read: its filters are unknown).
        let filters = row.fields.as_ref().map_or(Ok(()), |f| check_filters(f).map_err(|p| p.to_string()));
        let filters_ok = filters.is_ok() && row.fields.is_ok();
        let checked = filters.and(row.fields).and_then(|mut f| {
            reseal = open(&mut f, keys).map_err(|p| p.to_string())?;
            let transform = match f.transform.as_deref() {
                None => None,
                Some(source) => match previous.and_then(|p| p.transform.as_ref()).filter(|t| t.source == source) {
                    Some(same) => Some(same.clone()),
                    None => Some(transforms.compile(source).map_err(|reason| format!("transform {reason}"))?),
                },
            };
            check(f, defaults).map(|c| (c, transform)).map_err(|p| p.to_string())
        });
        let (target, limits, ordered, transform) = match checked {
            Ok(((mut target, limits, ordered), transform)) => {
                // The same settings as the last version: keep its clients (and their connections).
                let before = previous.and_then(|p| p.target.as_ref().ok()).and_then(|t| t.tls.as_ref());
                if let (Some(now), Some(before)) = (&target.tls, before) {
                    if now.fingerprint == before.fingerprint {
                        target.tls = Some(before.clone());
                    }
                }
                (Ok(target), limits, ordered, transform)
            }
            Err(problem) => {
                reseal = None;
                (Err(problem), [None; 6], false, None)
            }
        };
        let [timeout_ms, max_attempts, max_in_flight, rate_limit_per_sec, backoff_initial_ms, backoff_max_ms] = limits;
        Self {
            name: row.name,
            enabled: row.enabled,
            timeout: timeout_ms.map_or(defaults.timeout(), |ms| Duration::from_millis(ms.into())),
            max_attempts: max_attempts.unwrap_or(defaults.max_attempts),
            backoff: Backoff {
                initial_ms: backoff_initial_ms.map_or(defaults.backoff_initial_ms, u64::from),
                max_ms: backoff_max_ms.map_or(defaults.backoff_max_ms, u64::from),
            },
            max_in_flight: max_in_flight.unwrap_or(defaults.max_in_flight),
            rate_limit_per_sec: rate_limit_per_sec.or(Some(defaults.rate_limit_per_sec)).filter(|r| *r > 0),
            ordered,
            transform,
            filters_ok,
            target,
            reseal,
        }
    }

    /// Why no request can be built for it, if so.
    pub fn problem(&self) -> Option<&str> {
        self.target.as_ref().err().map(String::as_str)
    }

    /// Whether requests to it go out unsigned.
    fn unsigned(&self) -> bool {
        self.target.as_ref().is_ok_and(|t| (t.keys.is_empty() || !t.standard) && t.legacy.is_none())
    }
}

impl std::fmt::Debug for Reseal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Reseal([redacted])")
    }
}

/// Replaces the row's stored secrets and header values with their plaintext
/// (opened with `keys`); returns what to store instead when any of them is
/// not sealed under the first key (none without keys). A value no key opens
/// is a problem naming its column (and header), never its content.
fn open(f: &mut EndpointFields, keys: &Keys) -> Result<Option<Reseal>, Problem> {
    let mut stale = false;
    let mut secrets = Vec::with_capacity(f.secrets.len());
    for (i, stored) in f.secrets.iter().enumerate() {
        secrets.push(match stored {
            None => None,
            Some(stored) => {
                let (plain, standing) =
                    keys.open(stored).map_err(|e| Problem::new("secrets", format!("secrets[{}] {e}", i + 1)))?;
                stale |= standing != Standing::Current;
                Some(plain)
            }
        });
    }
    let legacy = match &f.legacy_secret {
        None => None,
        Some(stored) => {
            let (plain, standing) = keys.open(stored).map_err(|e| Problem::new("legacy_secret", e.to_string()))?;
            stale |= standing != Standing::Current;
            Some(plain)
        }
    };
    let tls_key = match &f.tls_client_key {
        None => None,
        Some(stored) => {
            let (plain, standing) = keys.open(stored).map_err(|e| Problem::new("tls_client_key", e.to_string()))?;
            stale |= standing != Standing::Current;
            Some(plain)
        }
    };
    let mut headers = None;
    if f.headers.contains(crate::config::sealed::PREFIX) || !keys.is_empty() {
        if let Ok(stored) = serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(&f.headers) {
            let mut plain = stored.clone();
            for (name, value) in plain.iter_mut() {
                let serde_json::Value::String(text) = value else { continue };
                let (opened, standing) = keys.open(text).map_err(|e| {
                    Problem::new("headers", format!("the value of header `{}` {e}", rules::shown(name)))
                })?;
                stale |= standing != Standing::Current;
                *text = opened;
            }
            headers = Some((stored, plain));
        }
    }
    let reseal = match &headers {
        Some((stored, plain)) if stale && !keys.is_empty() && secrets.iter().all(Option::is_some) => {
            let sealed: serde_json::Map<String, serde_json::Value> = plain
                .iter()
                .map(|(name, value)| match (value, stored.get(name).and_then(|v| v.as_str())) {
                    (serde_json::Value::String(text), before) => (name.clone(), keys.store(text, before).into()),
                    (other, _) => (name.clone(), other.clone()),
                })
                .collect();
            let secrets = secrets
                .iter()
                .zip(&f.secrets)
                .map(|(plain, before)| keys.store(plain.as_deref().unwrap_or_default(), before.as_deref()))
                .collect();
            Some(Reseal {
                secrets_before: f.secrets.clone(),
                headers_before: f.headers.clone(),
                legacy_before: f.legacy_secret.clone(),
                tls_key_before: f.tls_client_key.clone(),
                secrets,
                headers: serde_json::Value::Object(sealed).to_string(),
                legacy: legacy.as_deref().map(|plain| keys.store(plain, f.legacy_secret.as_deref())),
                tls_key: tls_key.as_deref().map(|plain| keys.store(plain, f.tls_client_key.as_deref())),
            })
        }
        _ => None,
    };
    f.secrets = secrets;
    f.legacy_secret = legacy;
    f.tls_client_key = tls_key;
    if let Some((_, plain)) = headers {
        f.headers = serde_json::Value::Object(plain).to_string();
    }
    Ok(reseal)
}

/// The row's filters, as PostgreSQL prints them, checked as the config
/// file's are (`rules`).
fn check_filters(f: &EndpointFields) -> Result<(), Problem> {
    if let Some(text) = &f.filter {
        let value: serde_json::Value =
            serde_json::from_str(text).map_err(|e| Problem::new("filter", format!("cannot be read: {e}")))?;
        rules::filter(&value)?;
    }
    if let Some(path) = &f.filter_path {
        rules::filter_path(path)?;
    }
    Ok(())
}

/// The row's values, checked as the config file's are (`rules`); the limits
/// are timeout_ms, max_attempts, max_in_flight, rate_limit_per_sec,
/// backoff_initial_ms and backoff_max_ms.
fn check(f: EndpointFields, defaults: &DeliveryConfig) -> Result<(Target, [Option<u32>; 6], bool), Problem> {
    let url = rules::url(&f.url, defaults.https_only)?;
    if f.event_types.iter().any(Option::is_none) {
        return Err(Problem::new("event_types", "must not contain NULL"));
    }
    rules::event_types(&f.event_types.iter().flatten().collect::<Vec<_>>())?;
    let keys = rules::secrets(f.secrets.iter().map(Option::as_deref))?;
    let parsed: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(&f.headers).map_err(|e| Problem::new("headers", format!("are not a JSON object: {e}")))?;
    let mut pairs = Vec::with_capacity(parsed.len());
    for (name, value) in &parsed {
        let serde_json::Value::String(value) = value else {
            return Err(Problem::new("headers", format!("header `{name}` must have a string value")));
        };
        pairs.push((name.as_str(), value.as_str()));
    }
    let headers = rules::headers(pairs)?;
    let signature = match &f.legacy_signature {
        None => None,
        Some(text) => Some(
            serde_json::from_str::<serde_json::Value>(text)
                .map_err(|e| Problem::new("legacy_signature", format!("cannot be read: {e}")))?,
        ),
    };
    let legacy = rules::legacy(signature.as_ref(), f.legacy_secret.as_deref())?;
    if legacy.as_ref().is_some_and(|l| headers.contains_key(&l.header)) {
        return Err(Problem::new("legacy_signature", "names a header that `headers` sets too"));
    }
    let [backoff_initial_ms, backoff_max_ms] =
        rules::backoff(f.backoff_initial_ms.map(i64::from), f.backoff_max_ms.map(i64::from))?;
    let tls = endpoint_tls(f.tls_client_cert.as_deref(), f.tls_client_key.as_deref(), f.tls_ca_bundle.as_deref())?;
    let limits = [
        rules::TIMEOUT_MS.check(f.timeout_ms.map(i64::from))?,
        rules::MAX_ATTEMPTS.check(f.max_attempts.map(i64::from))?,
        rules::MAX_IN_FLIGHT.check(f.max_in_flight.map(i64::from))?,
        rules::RATE_LIMIT_PER_SEC.check(f.rate_limit_per_sec.map(i64::from))?,
        backoff_initial_ms,
        backoff_max_ms,
    ];
    let tls = tls.map(Arc::new);
    let target =
        Target { url, keys, headers, legacy, standard: f.standard_signature, tls, propagate_trace: f.propagate_trace };
    Ok((target, limits, f.ordered))
}

/// Endpoints by id, swapped whole on change.
pub struct EndpointCache {
    defaults: DeliveryConfig,
    transforms: Arc<Transforms>,
    keys: Keys,
    /// Whether the warning about values stored in plaintext was logged.
    warned_plaintext: std::sync::atomic::AtomicBool,
    current: RwLock<Arc<HashMap<i64, Arc<Endpoint>>>>,
    /// The table's fingerprint at the last reload, and the `invalid_reason`
    /// values still to be written (id → reason).
    state: tokio::sync::Mutex<(String, HashMap<i64, Option<String>>)>,
}

impl EndpointCache {
    pub fn new(defaults: DeliveryConfig, transforms: Arc<Transforms>, keys: Keys) -> Self {
        Self {
            defaults,
            transforms,
            keys,
            warned_plaintext: Default::default(),
            current: RwLock::default(),
            state: tokio::sync::Mutex::default(),
        }
    }

    /// Every endpoint, as of the last refresh.
    pub fn all(&self) -> Arc<HashMap<i64, Arc<Endpoint>>> {
        self.current.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn get(&self, id: i64) -> Option<Arc<Endpoint>> {
        self.current.read().unwrap_or_else(|e| e.into_inner()).get(&id).cloned()
    }

    /// Whether any enabled endpoint is ordered (fan-outs then take turns).
    pub fn any_ordered(&self) -> bool {
        self.current.read().unwrap_or_else(|e| e.into_inner()).values().any(|e| e.enabled && e.ordered)
    }

    /// Enabled endpoints whose filters the fan-out must not evaluate (beyond
    /// the bounds on filters: rows written before them).
    pub fn skip_filters(&self) -> Vec<i64> {
        let current = self.current.read().unwrap_or_else(|e| e.into_inner());
        current.iter().filter(|(_, e)| e.enabled && !e.filters_ok).map(|(id, _)| *id).collect()
    }

    /// Endpoints currently enabled (used to size fan-out claims).
    pub fn enabled_count(&self) -> usize {
        self.current.read().unwrap_or_else(|e| e.into_inner()).values().filter(|e| e.enabled).count()
    }

    /// Reloads when the table changed since the last look; returns whether it
    /// did. A problem with an endpoint is logged once, when it appears, and
    /// stored in its `invalid_reason`.
    pub async fn refresh(&self, db: &Db) -> Result<bool, DbError> {
        let mut state = self.state.lock().await;
        let (known, unsaved) = &mut *state;
        let now = db.endpoints_fingerprint().await?;
        let reload = *known != now;
        if reload {
            let rows = db.load_endpoints().await?;
            let before = self.all();
            unsaved.clear();
            let mut map = HashMap::with_capacity(rows.len());
            let (mut resealed, mut unsealed) = (0, false);
            for row in rows {
                let (id, stored) = (row.id, row.invalid_reason.clone());
                if self.keys.is_empty() && holds_plaintext(&row) && !self.warned_plaintext.swap(true, Ordering::Relaxed)
                {
                    tracing::warn!(
                        "secrets.keys is not set: endpoint secrets and header values are stored in plaintext \
                         (set TAILHOOK_SECRETS__KEYS to seal them)"
                    );
                }
                let old = before.get(&id);
                let mut ep = Endpoint::from_row(row, &self.defaults, &self.transforms, &self.keys, old.map(|o| &**o));
                if let Some(r) = ep.reseal.take() {
                    let before = (
                        r.secrets_before.as_slice(),
                        r.headers_before.as_str(),
                        r.legacy_before.as_deref(),
                        r.tls_key_before.as_deref(),
                    );
                    let after = (r.secrets.as_slice(), r.headers.as_str(), r.legacy.as_deref(), r.tls_key.as_deref());
                    match db.reseal_endpoint(id, before, after).await {
                        Ok(true) => resealed += 1,
                        // Changed or locked meanwhile: the next refresh reloads and looks again.
                        Ok(false) => unsealed = true,
                        Err(error) => {
                            unsealed = true;
                            tracing::warn!(endpoint = %ep.name, %error, "cannot seal the endpoint's secrets");
                        }
                    }
                }
                if ep.problem() != stored.as_deref() {
                    unsaved.insert(id, ep.problem().map(str::to_owned));
                }
                if let Some(problem) = ep.problem().filter(|p| old.and_then(|o| o.problem()) != Some(*p)) {
                    tracing::warn!(endpoint = %ep.name, %problem, "endpoint is invalid; its deliveries fail until the row is fixed");
                } else if ep.unsigned() && !old.is_some_and(|o| o.unsigned()) {
                    tracing::warn!(endpoint = %ep.name, "endpoint has no secret; its requests are sent unsigned");
                }
                map.insert(id, Arc::new(ep));
            }
            if resealed > 0 {
                let key = self.keys.sealing_id().unwrap_or_default();
                tracing::info!(
                    endpoints = resealed,
                    key,
                    "sealed endpoint secrets and header values under the first key"
                );
            }
            *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(map);
            *known = if unsealed { String::new() } else { now };
        }
        if !unsaved.is_empty() {
            let (ids, reasons): (Vec<i64>, Vec<Option<String>>) = unsaved.iter().map(|(k, v)| (*k, v.clone())).unzip();
            for id in db.mark_invalid(&ids, &reasons).await? {
                unsaved.remove(&id);
            }
        }
        Ok(reload)
    }

    /// The endpoint, reloading once if it is not known yet (added a moment ago).
    pub async fn get_or_refresh(&self, id: i64, db: &Db) -> Option<Arc<Endpoint>> {
        if let Some(ep) = self.get(id) {
            return Some(ep);
        }
        if let Err(e) = self.refresh(db).await {
            tracing::warn!(error = %e, "cannot reload endpoints");
        }
        self.get(id)
    }
}

/// Whether a row holds a secret or a header value that is not sealed.
fn holds_plaintext(row: &EndpointRow) -> bool {
    row.fields.as_ref().is_ok_and(|f| {
        let sealed = |v: &str| v.starts_with(crate::config::sealed::PREFIX);
        f.secrets.iter().flatten().chain(&f.legacy_secret).chain(&f.tls_client_key).any(|s| !sealed(s))
            || serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(&f.headers)
                .is_ok_and(|h| h.values().any(|v| v.as_str().is_some_and(|v| !sealed(v))))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_shows_no_url_path_nor_header_value() {
        let target = Target {
            url: Url::parse("https://user@hooks.slack.com/services/T000/B000/path-token").unwrap(),
            keys: Vec::new(),
            headers: rules::headers([("x-webhook-hmac", "hmac-value")]).unwrap(),
            legacy: rules::legacy(
                Some(&serde_json::json!({"header": "X-Hub-Signature-256", "prefix": "sha256="})),
                Some("legacy-secret-value"),
            )
            .unwrap(),
            standard: true,
            tls: None,
            propagate_trace: true,
        };
        let shown = format!("{target:?}");
        assert!(shown.contains("https://hooks.slack.com") && shown.contains("x-webhook-hmac"), "{shown}");
        for secret in ["user", "path-token", "/services", "hmac-value", "legacy-secret"] {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
    }

    fn row(transform: Option<&str>) -> EndpointRow {
        EndpointRow {
            id: 1,
            name: "chat".into(),
            enabled: true,
            invalid_reason: None,
            fields: Ok(EndpointFields {
                url: "https://chat.example.com/hook".into(),
                secrets: Vec::new(),
                headers: "{}".into(),
                timeout_ms: None,
                max_attempts: None,
                max_in_flight: None,
                rate_limit_per_sec: None,
                backoff_initial_ms: None,
                backoff_max_ms: None,
                ordered: false,
                event_types: vec![Some("*".into())],
                transform: transform.map(str::to_owned),
                filter: None,
                filter_path: None,
                legacy_signature: None,
                legacy_secret: None,
                standard_signature: true,
                tls_client_cert: None,
                tls_client_key: None,
                tls_ca_bundle: None,
                propagate_trace: true,
            }),
        }
    }

    fn tls_row(cert: &str, key: &str) -> EndpointRow {
        let mut r = row(None);
        if let Ok(f) = r.fields.as_mut() {
            f.tls_client_cert = Some(cert.to_owned());
            f.tls_client_key = Some(key.to_owned());
        }
        r
    }

    #[test]
    fn an_endpoints_tls_clients_are_kept_while_its_pem_is_unchanged_and_a_bad_key_makes_only_it_invalid() {
        let (defaults, transforms, keys) =
            (DeliveryConfig::default(), Transforms::new(&Default::default(), 1 << 20), Keys::default());
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["client".to_owned()]).unwrap().self_signed(&key).unwrap().pem();
        let key = key.serialize_pem();
        let first = Endpoint::from_row(tls_row(&cert, &key), &defaults, &transforms, &keys, None);
        let same = Endpoint::from_row(tls_row(&cert, &key), &defaults, &transforms, &keys, Some(&first));
        let tls = |e: &Endpoint| e.target.as_ref().unwrap().tls.clone().unwrap();
        assert!(Arc::ptr_eq(&tls(&first), &tls(&same)), "the same PEM keeps the same clients");
        let other_key = rcgen::KeyPair::generate().unwrap();
        let other = rcgen::CertificateParams::new(vec!["client".to_owned()]).unwrap().self_signed(&other_key).unwrap();
        let changed = Endpoint::from_row(
            tls_row(&other.pem(), &other_key.serialize_pem()),
            &defaults,
            &transforms,
            &keys,
            Some(&same),
        );
        assert!(!Arc::ptr_eq(&tls(&same), &tls(&changed)), "a new certificate, new clients");
        let mismatched =
            Endpoint::from_row(tls_row(&cert, &other_key.serialize_pem()), &defaults, &transforms, &keys, None);
        let problem = mismatched.problem().unwrap_or_default();
        assert!(problem.starts_with("tls_client_key: "), "{problem}");
        let body = key.lines().nth(1).unwrap();
        assert!(!problem.contains(body) && !format!("{first:?}").contains(body), "the key is never shown");
    }

    #[test]
    fn a_script_is_compiled_once_per_version_and_a_bad_one_makes_the_endpoint_invalid() {
        let (defaults, transforms) = (DeliveryConfig::default(), Transforms::new(&Default::default(), 1 << 20));
        let first = Endpoint::from_row(row(Some("event.data")), &defaults, &transforms, &Keys::default(), None);
        let same = Endpoint::from_row(row(Some("event.data")), &defaults, &transforms, &Keys::default(), Some(&first));
        let (a, b) = (first.transform.as_ref().unwrap(), same.transform.as_ref().unwrap());
        assert!(Arc::ptr_eq(a, b), "an unchanged script is not compiled again");
        let changed =
            Endpoint::from_row(row(Some("event.type")), &defaults, &transforms, &Keys::default(), Some(&same));
        assert_eq!(changed.transform.as_ref().unwrap().source, "event.type");
        assert!(changed.problem().is_none());
        let none = Endpoint::from_row(row(None), &defaults, &transforms, &Keys::default(), Some(&changed));
        assert!(none.transform.is_none());
        let broken = Endpoint::from_row(row(Some("#{ text: ")), &defaults, &transforms, &Keys::default(), None);
        let problem = broken.problem().unwrap();
        assert!(problem.starts_with("transform does not compile: "), "{problem}");
        assert!(broken.transform.is_none());
    }

    fn keys(texts: &[&str]) -> Keys {
        let texts: Vec<_> = texts.iter().map(|t| crate::config::secret::Secret::new(*t)).collect();
        Keys::parse(&texts).unwrap()
    }

    const OLD: &str = "q83vEjRWeJCrze8SNFZ4kKvN7xI0VniQq83vEjRWeJA=";
    const NEW: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

    fn sealed_row(secrets: Vec<Option<String>>, headers: serde_json::Value) -> EndpointRow {
        let mut r = row(None);
        if let Ok(f) = &mut r.fields {
            f.secrets = secrets;
            f.headers = headers.to_string();
        }
        r
    }

    #[test]
    fn values_are_opened_once_when_loaded_and_what_is_not_under_the_first_key_is_sealed_again() {
        let (defaults, transforms) = (DeliveryConfig::default(), Transforms::new(&Default::default(), 1 << 20));
        let old = keys(&[OLD]);
        let rotated = keys(&[NEW, OLD]);
        let secret = old.seal(SECRET).unwrap();
        let header = old.seal("Bearer t").unwrap();
        let load = |r, k: &Keys| Endpoint::from_row(r, &defaults, &transforms, k, None);

        // Under the second key, beside a plaintext header: opened, and all sealed again under the first.
        let ep = load(
            sealed_row(vec![Some(secret.clone())], serde_json::json!({"authorization": header, "x-team": "pay"})),
            &rotated,
        );
        let target = ep.target.as_ref().unwrap();
        assert_eq!(target.keys.len(), 1);
        assert_eq!(target.headers["authorization"], "Bearer t");
        assert_eq!(target.headers["x-team"], "pay");
        let reseal = ep.reseal.as_ref().unwrap();
        assert_eq!(reseal.secrets_before, [Some(secret.clone())]);
        assert_eq!(rotated.open(&reseal.secrets[0]), Ok((SECRET.to_owned(), Standing::Current)));
        let headers: serde_json::Value = serde_json::from_str(&reseal.headers).unwrap();
        assert_eq!(rotated.open(headers["x-team"].as_str().unwrap()).unwrap(), ("pay".to_owned(), Standing::Current));
        assert!(!format!("{ep:?}").contains("MfKQ9r8"), "Debug shows no secret");

        // Everything under the first key already: nothing to write.
        let current = rotated.seal(SECRET).unwrap();
        assert!(load(sealed_row(vec![Some(current)], serde_json::json!({})), &rotated).reseal.is_none());
        // No keys: plaintext is used as is and stays.
        let plain = load(sealed_row(vec![Some(SECRET.into())], serde_json::json!({"x": "y"})), &Keys::default());
        assert!(plain.problem().is_none() && plain.reseal.is_none());

        // Sealed, but no key opens it: the endpoint is invalid, naming the column.
        let no_keys = load(sealed_row(vec![Some(secret.clone())], serde_json::json!({})), &Keys::default());
        assert_eq!(no_keys.problem(), Some("secrets: secrets[1] is sealed but secrets.keys is not set"));
        assert!(no_keys.reseal.is_none());
        let other = load(sealed_row(vec![], serde_json::json!({"x-api-key": header})), &keys(&[NEW]));
        let problem = other.problem().unwrap();
        assert!(problem.starts_with("headers: the value of header `x-api-key` is sealed under key "), "{problem}");
        // A bad plaintext secret is refused as before, and not sealed.
        let weak = load(sealed_row(vec![Some("whsec_YWJj".into())], serde_json::json!({})), &rotated);
        assert!(weak.problem().unwrap().starts_with("secrets: secrets[1]: secret decodes to 3 bytes"));
        assert!(weak.reseal.is_none());
    }

    #[test]
    fn legacy_signatures_are_checked_when_loaded_and_their_secret_sealed() {
        let (defaults, transforms) = (DeliveryConfig::default(), Transforms::new(&Default::default(), 1 << 20));
        let with = |signature: Option<&str>, secret: Option<&str>, headers: &str, keys: &Keys| {
            let mut r = row(None);
            if let Ok(f) = &mut r.fields {
                f.legacy_signature = signature.map(str::to_owned);
                f.legacy_secret = secret.map(str::to_owned);
                f.headers = headers.into();
                f.standard_signature = false;
            }
            Endpoint::from_row(r, &defaults, &transforms, keys, None)
        };
        let github = Some(r#"{"header": "X-Hub-Signature-256", "prefix": "sha256="}"#);
        let ok = with(github, Some("your-secret-key-here"), "{}", &Keys::default());
        let target = ok.target.as_ref().unwrap();
        assert!(!target.standard && target.legacy.as_ref().unwrap().header == "x-hub-signature-256");
        assert!(!ok.unsigned(), "the legacy header signs it");
        let problem = |e: &Endpoint| e.problem().map(str::to_owned).unwrap_or_default();
        let short = with(github, Some("short-secret"), "{}", &Keys::default());
        assert_eq!(problem(&short), "legacy_secret: is 12 bytes; it must be 16 to 256 bytes");
        let lone = with(github, None, "{}", &Keys::default());
        assert_eq!(problem(&lone), "legacy_secret: is required with legacy_signature");
        let clash = with(github, Some("your-secret-key-here"), r#"{"X-Hub-Signature-256": "x"}"#, &Keys::default());
        assert_eq!(problem(&clash), "legacy_signature: names a header that `headers` sets too");
        let unreadable = with(Some("{"), Some("your-secret-key-here"), "{}", &Keys::default());
        assert!(problem(&unreadable).starts_with("legacy_signature: cannot be read"));
        // With keys: a plaintext legacy secret is to be sealed; one sealed under an unknown key names the column.
        let sealing = keys(&[NEW]);
        let plain = with(github, Some("your-secret-key-here"), "{}", &sealing);
        let reseal = plain.reseal.as_ref().expect("sealed in place");
        let sealed = reseal.legacy.as_deref().unwrap();
        assert_eq!(sealing.open(sealed), Ok(("your-secret-key-here".to_owned(), Standing::Current)));
        let opened = with(github, Some(sealed), "{}", &sealing);
        assert!(opened.reseal.is_none() && opened.problem().is_none());
        let unknown = with(github, Some(sealed), "{}", &keys(&[OLD]));
        assert!(problem(&unknown).starts_with("legacy_secret: is sealed under key "), "{}", problem(&unknown));
        assert!(!format!("{plain:?}{opened:?}").contains("your-secret"));
    }

    #[test]
    fn an_endpoints_backoff_columns_make_its_schedule_and_null_takes_the_configured_one() {
        let (defaults, transforms) = (DeliveryConfig::default(), Transforms::new(&Default::default(), 1 << 20));
        let with = |initial: Option<i32>, max: Option<i32>| {
            let mut r = row(None);
            if let Ok(f) = &mut r.fields {
                f.backoff_initial_ms = initial;
                f.backoff_max_ms = max;
            }
            Endpoint::from_row(r, &defaults, &transforms, &Keys::default(), None)
        };
        let configured = Backoff { initial_ms: defaults.backoff_initial_ms, max_ms: defaults.backoff_max_ms };
        assert_eq!(with(None, None).backoff, configured);
        assert_eq!(with(Some(250), Some(1_000)).backoff, Backoff { initial_ms: 250, max_ms: 1_000 });
        assert_eq!(with(Some(60_000), None).backoff, Backoff { initial_ms: 60_000, max_ms: defaults.backoff_max_ms });
        assert_eq!(with(None, Some(2_000)).backoff, Backoff { initial_ms: defaults.backoff_initial_ms, max_ms: 2_000 });
        // Out of bounds (a row written before the constraints): invalid, naming the column; the schedule is the configured one.
        let reversed = with(Some(2_000), Some(1_000));
        assert_eq!(reversed.problem(), Some("backoff_max_ms: 1000 is less than backoff_initial_ms (2000)"));
        assert_eq!(reversed.backoff, configured);
        assert_eq!(with(Some(0), None).problem(), Some("backoff_initial_ms: must be greater than 0"));
    }

    #[test]
    fn filters_beyond_the_bounds_make_the_endpoint_invalid_and_are_never_evaluated() {
        let (defaults, transforms) = (DeliveryConfig::default(), Transforms::new(&Default::default(), 1 << 20));
        let with = |filter: Option<&str>, filter_path: Option<&str>| {
            let mut r = row(None);
            if let Ok(f) = &mut r.fields {
                f.filter = filter.map(str::to_owned);
                f.filter_path = filter_path.map(str::to_owned);
                // also broken otherwise: the filters are named first
                f.url = "ftp://x".into();
            }
            Endpoint::from_row(r, &defaults, &transforms, &Keys::default(), None)
        };
        let deep = with(None, Some(r#"exists ($.**?(exists ($.**?(@ == "x"))))"#));
        assert!(!deep.filters_ok);
        assert!(deep.problem().unwrap().starts_with("filter_path: uses `$` inside a filter"), "{:?}", deep.problem());
        let wide = with(Some(&format!("[{}]", vec!["1"; 65].join(", "))), None);
        assert_eq!((wide.filters_ok, wide.problem()), (false, Some("filter: holds more than 64 values")));
        let fine = with(Some(r#"{"currency": "EUR"}"#), Some(r#"$."amount" > 100"#));
        assert!(fine.filters_ok);
        assert!(fine.problem().unwrap().starts_with("url: "));
        let mut unreadable = row(None);
        unreadable.fields = Err("event_types must be a one-dimensional array".into());
        assert!(!Endpoint::from_row(unreadable, &defaults, &transforms, &Keys::default(), None).filters_ok);
    }
}
