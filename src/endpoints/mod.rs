//! The in-memory view of `tailhook.endpoints`: parsed and checked once, refreshed within a second of any SQL change.

use crate::config::rules::{self, Problem};
use crate::config::DeliveryConfig;
use crate::db::{Db, DbError, EndpointFields, EndpointRow};
use crate::pipeline::signing::SigningKey;
use crate::pipeline::transform::{Script, Transforms};
use reqwest::header::HeaderMap;
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
    /// The script making the body this endpoint receives; `None`: the envelope.
    pub transform: Option<Arc<Script>>,
    /// Whether its `filter` and `filter_path` keep the bounds on filters
    /// (`rules`); when not, the fan-out never evaluates them.
    pub filters_ok: bool,
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
    /// Never fails: a row tailhook cannot use becomes an endpoint whose
    /// `target` says why (its deliveries then fail as `invalid_request`).
    /// The transform is compiled here, unless `previous` (the same
    /// endpoint's last version) has the same script already compiled.
    pub fn from_row(
        row: EndpointRow,
        defaults: &DeliveryConfig,
        transforms: &Transforms,
        previous: Option<&Endpoint>,
    ) -> Self {
        // Filters first: a row beyond their bounds is named for them, and
        // never has them evaluated, whatever else is wrong with it (nor does
        // a row whose columns cannot be read: its filters are unknown).
        let filters = row.fields.as_ref().map_or(Ok(()), |f| check_filters(f).map_err(|p| p.to_string()));
        let filters_ok = filters.is_ok() && row.fields.is_ok();
        let checked = filters.and(row.fields).and_then(|f| {
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
            Ok(((target, limits, ordered), transform)) => (Ok(target), limits, ordered, transform),
            Err(problem) => (Err(problem), [None; 4], false, None),
        };
        let [timeout_ms, max_attempts, max_in_flight, rate_limit_per_sec] = limits;
        Self {
            name: row.name,
            enabled: row.enabled,
            timeout: timeout_ms.map_or(defaults.timeout(), |ms| Duration::from_millis(ms.into())),
            max_attempts: max_attempts.unwrap_or(defaults.max_attempts),
            max_in_flight: max_in_flight.unwrap_or(defaults.max_in_flight),
            rate_limit_per_sec: rate_limit_per_sec.or(Some(defaults.rate_limit_per_sec)).filter(|r| *r > 0),
            ordered,
            transform,
            filters_ok,
            target,
        }
    }

    /// Why no request can be built for it, if so.
    pub fn problem(&self) -> Option<&str> {
        self.target.as_ref().err().map(String::as_str)
    }

    /// Whether requests to it go out unsigned.
    fn unsigned(&self) -> bool {
        self.target.as_ref().is_ok_and(|t| t.keys.is_empty())
    }
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
/// are timeout_ms, max_attempts, max_in_flight and rate_limit_per_sec.
fn check(f: EndpointFields, defaults: &DeliveryConfig) -> Result<(Target, [Option<u32>; 4], bool), Problem> {
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
    let limits = [
        rules::TIMEOUT_MS.check(f.timeout_ms.map(i64::from))?,
        rules::MAX_ATTEMPTS.check(f.max_attempts.map(i64::from))?,
        rules::MAX_IN_FLIGHT.check(f.max_in_flight.map(i64::from))?,
        rules::RATE_LIMIT_PER_SEC.check(f.rate_limit_per_sec.map(i64::from))?,
    ];
    Ok((Target { url, keys, headers }, limits, f.ordered))
}

/// Endpoints by id, swapped whole on change.
pub struct EndpointCache {
    defaults: DeliveryConfig,
    transforms: Arc<Transforms>,
    current: RwLock<Arc<HashMap<i64, Arc<Endpoint>>>>,
    /// The table's fingerprint at the last reload, and the `invalid_reason`
    /// values still to be written (id → reason).
    state: tokio::sync::Mutex<(String, HashMap<i64, Option<String>>)>,
}

impl EndpointCache {
    pub fn new(defaults: DeliveryConfig, transforms: Arc<Transforms>) -> Self {
        Self { defaults, transforms, current: RwLock::default(), state: tokio::sync::Mutex::default() }
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
            for row in rows {
                let (id, stored) = (row.id, row.invalid_reason.clone());
                let old = before.get(&id);
                let ep = Endpoint::from_row(row, &self.defaults, &self.transforms, old.map(|o| &**o));
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
            *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(map);
            *known = now;
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

#[cfg(test)]
mod tests {
    use super::*;

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
                ordered: false,
                event_types: vec![Some("*".into())],
                transform: transform.map(str::to_owned),
                filter: None,
                filter_path: None,
            }),
        }
    }

    #[test]
    fn a_script_is_compiled_once_per_version_and_a_bad_one_makes_the_endpoint_invalid() {
        let (defaults, transforms) = (DeliveryConfig::default(), Transforms::new(&Default::default(), 1 << 20));
        let first = Endpoint::from_row(row(Some("event.data")), &defaults, &transforms, None);
        let same = Endpoint::from_row(row(Some("event.data")), &defaults, &transforms, Some(&first));
        let (a, b) = (first.transform.as_ref().unwrap(), same.transform.as_ref().unwrap());
        assert!(Arc::ptr_eq(a, b), "an unchanged script is not compiled again");
        let changed = Endpoint::from_row(row(Some("event.type")), &defaults, &transforms, Some(&same));
        assert_eq!(changed.transform.as_ref().unwrap().source, "event.type");
        assert!(changed.problem().is_none());
        let none = Endpoint::from_row(row(None), &defaults, &transforms, Some(&changed));
        assert!(none.transform.is_none());
        let broken = Endpoint::from_row(row(Some("#{ text: ")), &defaults, &transforms, None);
        let problem = broken.problem().unwrap();
        assert!(problem.starts_with("transform does not compile: "), "{problem}");
        assert!(broken.transform.is_none());
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
            Endpoint::from_row(r, &defaults, &transforms, None)
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
        assert!(!Endpoint::from_row(unreadable, &defaults, &transforms, None).filters_ok);
    }
}
