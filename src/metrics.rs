//! The sidecar's Prometheus metrics: a registry of its own (never process-global), filled by the pipeline, with the SQL-backed gauges refreshed at most every few seconds.

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Label pairs; values are endpoint names and fixed words only, so the
/// number of series stays bounded by the number of endpoints.
pub type Labels = Vec<(&'static str, String)>;

type HistogramFamily = Family<Labels, Histogram, fn() -> Histogram>;

fn seconds_histogram() -> Histogram {
    // 1 ms to about 33 s.
    Histogram::new(exponential_buckets(0.001, 2.0, 16))
}

/// Every metric of one sidecar.
pub struct Metrics {
    registry: Registry,
    pub events_dispatched: Counter,
    /// `endpoint`, `outcome`: succeeded, failed (gave up), retrying.
    pub deliveries: Family<Labels, Counter>,
    /// `endpoint`, `error_kind` (`none` for a 2xx).
    pub attempts: Family<Labels, Counter>,
    pub attempt_duration: HistogramFamily,
    pub in_flight: Family<Labels, Gauge>,
    /// `claim`: fan_out or due.
    pub claim_duration: HistogramFamily,
    pub record_duration: Histogram,
    /// `operation`: claim, record, heartbeat, endpoints, metrics.
    pub database_errors: Family<Labels, Counter>,
    /// `table`.
    pub retention_deleted: Family<Labels, Counter>,
    /// Partitions retention dropped (three per period).
    pub retention_partitions_dropped: Counter,
    /// `table`: rows in the DEFAULT partition whose period tailhook manages.
    pub partition_default_rows: Family<Labels, Gauge>,
    /// Refreshed from SQL (see `metrics_gauges.sql`).
    pub outbox_lag: Gauge<f64, AtomicU64>,
    pub oldest_pending: Gauge<f64, AtomicU64>,
    pub pending: Family<Labels, Gauge>,
    /// `state`: active, paused, disabled, invalid.
    pub endpoints: Family<Labels, Gauge>,
    /// Spans not exported, by `reason`: queue_full, export_failed, export_timeout.
    pub trace_spans_dropped: Family<Labels, Counter>,
    pub trace_spans_exported: Counter,
    /// Totals for the periodic log summary.
    pub delivered_total: AtomicU64,
    pub failed_total: AtomicU64,
}

/// Endpoint states as counted by `tailhook_endpoints`.
pub const ENDPOINT_STATES: [&str; 4] = ["active", "paused", "disabled", "invalid"];

/// How often the SQL-backed gauges may be refreshed at most.
pub const GAUGE_REFRESH: Duration = Duration::from_secs(5);

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let build_info = Family::<Labels, Gauge>::default();
        build_info.get_or_create(&vec![("version", env!("CARGO_PKG_VERSION").to_owned())]).set(1);
        registry.register("tailhook_build_info", "tailhook's version (always 1)", build_info);
        let m = Self {
            events_dispatched: Counter::default(),
            deliveries: Family::default(),
            attempts: Family::default(),
            attempt_duration: Family::new_with_constructor(seconds_histogram),
            in_flight: Family::default(),
            claim_duration: Family::new_with_constructor(seconds_histogram),
            record_duration: seconds_histogram(),
            database_errors: Family::default(),
            retention_deleted: Family::default(),
            retention_partitions_dropped: Counter::default(),
            partition_default_rows: Family::default(),
            outbox_lag: Gauge::default(),
            oldest_pending: Gauge::default(),
            pending: Family::default(),
            endpoints: Family::default(),
            trace_spans_dropped: Family::default(),
            trace_spans_exported: Counter::default(),
            delivered_total: AtomicU64::new(0),
            failed_total: AtomicU64::new(0),
            registry,
        };
        m.register()
    }

    fn register(mut self) -> Self {
        let r = &mut self.registry;
        r.register(
            "tailhook_events_dispatched",
            "Outbox rows fanned out to deliveries",
            self.events_dispatched.clone(),
        );
        r.register(
            "tailhook_deliveries",
            "Delivery results by endpoint: succeeded, failed (gave up) or retrying",
            self.deliveries.clone(),
        );
        r.register("tailhook_attempts", "HTTP attempts by endpoint and error kind (none: 2xx)", self.attempts.clone());
        r.register("tailhook_attempt_duration_seconds", "Duration of HTTP attempts", self.attempt_duration.clone());
        r.register("tailhook_requests_in_flight", "Requests in flight by endpoint", self.in_flight.clone());
        r.register(
            "tailhook_claim_duration_seconds",
            "Duration of claims (fan_out or due)",
            self.claim_duration.clone(),
        );
        r.register(
            "tailhook_record_duration_seconds",
            "Duration of batched result writes",
            self.record_duration.clone(),
        );
        r.register("tailhook_database_errors", "Failed database operations by operation", self.database_errors.clone());
        r.register("tailhook_retention_deleted", "Rows removed by retention, by table", self.retention_deleted.clone());
        r.register(
            "tailhook_retention_partitions_dropped",
            "Partitions retention dropped whole (three per period)",
            self.retention_partitions_dropped.clone(),
        );
        r.register(
            "tailhook_partition_default_rows",
            "Rows in a table's DEFAULT partition written past the prepared partitions, by table",
            self.partition_default_rows.clone(),
        );
        r.register("tailhook_outbox_lag_seconds", "Age of the oldest undispatched outbox row", self.outbox_lag.clone());
        r.register(
            "tailhook_oldest_pending_seconds",
            "Age of the oldest delivery not attempted yet",
            self.oldest_pending.clone(),
        );
        r.register("tailhook_deliveries_pending", "Pending and retrying deliveries by endpoint", self.pending.clone());
        r.register("tailhook_endpoints", "Endpoints by state", self.endpoints.clone());
        r.register(
            "tailhook_trace_spans_dropped",
            "Spans not exported (queue_full, export_failed, export_timeout)",
            self.trace_spans_dropped.clone(),
        );
        r.register(
            "tailhook_trace_spans_exported",
            "Spans the OTLP collector accepted",
            self.trace_spans_exported.clone(),
        );
        self
    }

    /// One attempt's result.
    pub fn attempt(&self, endpoint: &str, error_kind: Option<&'static str>, outcome: &'static str, seconds: f64) {
        let name = endpoint.to_owned();
        self.attempts
            .get_or_create(&vec![("endpoint", name.clone()), ("error_kind", error_kind.unwrap_or("none").into())])
            .inc();
        self.attempt_duration.get_or_create(&vec![("endpoint", name.clone())]).observe(seconds);
        self.deliveries.get_or_create(&vec![("endpoint", name), ("outcome", outcome.into())]).inc();
        match outcome {
            "succeeded" => self.delivered_total.fetch_add(1, Ordering::Relaxed),
            "failed" => self.failed_total.fetch_add(1, Ordering::Relaxed),
            _ => 0,
        };
    }

    pub fn trace_spans_dropped(&self, reason: &'static str, n: u64) {
        self.trace_spans_dropped.get_or_create(&vec![("reason", reason.into())]).inc_by(n);
    }

    pub fn trace_spans_exported(&self, n: u64) {
        self.trace_spans_exported.inc_by(n);
    }

    pub fn database_error(&self, operation: &'static str) {
        self.database_errors.get_or_create(&vec![("operation", operation.into())]).inc();
    }

    /// Requests in flight to `endpoint`; decremented when the guard drops.
    pub fn in_flight(&self, endpoint: &str) -> InFlight {
        let gauge = self.in_flight.get_or_create(&vec![("endpoint", endpoint.to_owned())]).clone();
        gauge.inc();
        InFlight(gauge)
    }

    /// Sets the SQL-backed gauges from one refresh.
    pub fn set_gauges(&self, g: &Gauges) {
        self.outbox_lag.set(g.outbox_lag_seconds);
        self.oldest_pending.set(g.oldest_pending_seconds);
        self.pending.clear();
        for (name, pending) in &g.pending {
            self.pending.get_or_create(&vec![("endpoint", name.clone())]).set(*pending);
        }
        for state in ENDPOINT_STATES {
            let n = g.states.iter().filter(|s| s.as_str() == state).count() as i64;
            self.endpoints.get_or_create(&vec![("state", state.into())]).set(n);
        }
    }

    /// The text exposition.
    pub fn encode(&self) -> String {
        let mut text = String::with_capacity(8 * 1024);
        // Writing to a String cannot fail.
        let _ = encode(&mut text, &self.registry);
        text
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// Counts one request in flight while it lives.
pub struct InFlight(Gauge);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// What one refresh of the SQL-backed gauges read.
#[derive(Debug, Default)]
pub struct Gauges {
    pub outbox_lag_seconds: f64,
    pub oldest_pending_seconds: f64,
    /// Endpoint name → pending and retrying deliveries.
    pub pending: Vec<(String, i64)>,
    /// One state per endpoint.
    pub states: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_names_and_labels() {
        let m = Metrics::new();
        m.attempt("billing", None, "succeeded", 0.01);
        m.attempt("billing", Some("http_status"), "retrying", 0.02);
        m.events_dispatched.inc();
        let g = Gauges { pending: vec![("billing".into(), 3)], states: vec!["paused".into()], ..Gauges::default() };
        m.set_gauges(&g);
        {
            let _guard = m.in_flight("billing");
            assert!(m.encode().contains("tailhook_requests_in_flight{endpoint=\"billing\"} 1"));
        }
        let text = m.encode();
        for line in [
            "tailhook_events_dispatched_total 1",
            "tailhook_deliveries_total{endpoint=\"billing\",outcome=\"succeeded\"} 1",
            "tailhook_deliveries_total{endpoint=\"billing\",outcome=\"retrying\"} 1",
            "tailhook_attempts_total{endpoint=\"billing\",error_kind=\"http_status\"} 1",
            "tailhook_attempt_duration_seconds_count{endpoint=\"billing\"} 2",
            "tailhook_deliveries_pending{endpoint=\"billing\"} 3",
            "tailhook_endpoints{state=\"paused\"} 1",
            "tailhook_endpoints{state=\"active\"} 0",
            "tailhook_requests_in_flight{endpoint=\"billing\"} 0",
        ] {
            assert!(text.lines().any(|l| l == line), "missing `{line}` in\n{text}");
        }
        assert!(text.contains("tailhook_build_info{version=\""));
    }
}
