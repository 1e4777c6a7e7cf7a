//! The in-memory view of `tailhook.endpoints`: parsed and checked once, refreshed within a second of any SQL change.

use crate::config::{header_problem, DeliveryConfig};
use crate::db::{Db, DbError, EndpointRow};
use crate::signing::SigningKey;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::Url;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// Everything needed to send to one endpoint.
#[derive(Debug)]
pub struct Endpoint {
    pub name: String,
    pub enabled: bool,
    pub timeout: Duration,
    pub max_attempts: u32,
    pub max_in_flight: u32,
    pub rate_limit_per_sec: Option<u32>,
    pub ordered: bool,
    /// Where and how to send, or why no request can be built
    /// (the delivery then fails at once as `invalid_request`).
    pub target: Result<Target, String>,
}

#[derive(Debug)]
pub struct Target {
    pub url: Url,
    pub keys: Vec<SigningKey>,
    pub headers: HeaderMap,
}

impl Endpoint {
    pub fn from_row(row: EndpointRow, defaults: &DeliveryConfig) -> Self {
        let target = build_target(&row, defaults.https_only);
        Self {
            name: row.name,
            enabled: row.enabled,
            timeout: row
                .timeout_ms
                .and_then(|ms| u64::try_from(ms).ok())
                .map_or(defaults.timeout(), Duration::from_millis),
            max_attempts: row.max_attempts.and_then(|n| u32::try_from(n).ok()).unwrap_or(defaults.max_attempts),
            max_in_flight: row.max_in_flight.and_then(|n| u32::try_from(n).ok()).unwrap_or(defaults.max_in_flight),
            rate_limit_per_sec: row
                .rate_limit_per_sec
                .and_then(|n| u32::try_from(n).ok())
                .or(Some(defaults.rate_limit_per_sec))
                .filter(|r| *r > 0),
            ordered: row.ordered,
            target,
        }
    }
}

fn build_target(row: &EndpointRow, https_only: bool) -> Result<Target, String> {
    let url = Url::parse(&row.url).map_err(|e| format!("url is not valid: {e}"))?;
    match url.scheme() {
        "https" => {}
        "http" if !https_only => {}
        "http" => return Err("url must be https (delivery.https_only is set)".into()),
        other => return Err(format!("url scheme `{other}` is not http or https")),
    }
    let mut keys = Vec::with_capacity(row.secrets.len());
    for (i, secret) in row.secrets.iter().enumerate() {
        let secret = secret.as_deref().ok_or_else(|| format!("secrets[{}] is NULL", i + 1))?;
        keys.push(SigningKey::from_whsec(secret).map_err(|e| format!("secrets[{}]: {e}", i + 1))?);
    }
    let parsed: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(&row.headers).map_err(|e| format!("headers are not a JSON object: {e}"))?;
    let mut headers = HeaderMap::with_capacity(parsed.len());
    for (name, value) in parsed {
        let serde_json::Value::String(value) = value else {
            return Err(format!("header `{name}` must have a string value"));
        };
        if let Some(problem) = header_problem(&name, &value) {
            return Err(problem);
        }
        // Both parse: header_problem checked them.
        if let (Ok(n), Ok(v)) = (HeaderName::from_bytes(name.as_bytes()), HeaderValue::from_str(&value)) {
            let mut v = v;
            v.set_sensitive(true);
            headers.insert(n, v);
        }
    }
    Ok(Target { url, keys, headers })
}

/// Endpoints by id, swapped whole on change.
pub struct EndpointCache {
    defaults: DeliveryConfig,
    current: RwLock<Arc<HashMap<i64, Arc<Endpoint>>>>,
    fingerprint: tokio::sync::Mutex<String>,
}

impl EndpointCache {
    pub fn new(defaults: DeliveryConfig) -> Self {
        Self { defaults, current: RwLock::default(), fingerprint: tokio::sync::Mutex::default() }
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

    /// Endpoints currently enabled (used to size fan-out claims).
    pub fn enabled_count(&self) -> usize {
        self.current.read().unwrap_or_else(|e| e.into_inner()).values().filter(|e| e.enabled).count()
    }

    /// Reloads when the table changed since the last look; returns whether it did.
    pub async fn refresh(&self, db: &Db) -> Result<bool, DbError> {
        let mut known = self.fingerprint.lock().await;
        let now = db.endpoints_fingerprint().await?;
        if *known == now {
            return Ok(false);
        }
        let rows = db.load_endpoints().await?;
        let map: HashMap<i64, Arc<Endpoint>> =
            rows.into_iter().map(|r| (r.id, Arc::new(Endpoint::from_row(r, &self.defaults)))).collect();
        for ep in map.values() {
            if let Err(problem) = &ep.target {
                tracing::warn!(endpoint = %ep.name, %problem, "endpoint cannot be sent to; its deliveries will fail");
            }
        }
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(map);
        *known = now;
        Ok(true)
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
