//! W3C trace context: the event's (parsed, or a trace of the event's own), the `traceparent` each attempt sends, and the OTLP export of attempt, claim and result-write spans on a bounded queue that never blocks delivery.

use crate::config::{Sampler, Tracing};
use crate::metrics::Metrics;
use crate::pipeline::sender::Attempt;
use opentelemetry::trace::{SpanContext, SpanId, SpanKind, Status, TraceFlags, TraceId, TraceState};
use opentelemetry::{InstrumentationScope, KeyValue};
use opentelemetry_otlp::{WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::trace::{SpanData, SpanEvents, SpanExporter as _, SpanLinks};
use opentelemetry_sdk::Resource;
use reqwest::header::HeaderValue;
use std::borrow::Cow;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::sync::mpsc;

/// Spans exported in one request at most.
const MAX_BATCH: usize = 512;
/// How long the exporter waits for a fuller batch.
const LINGER: Duration = Duration::from_secs(1);

/// An event's trace: the publisher's context, or one of the event's own.
#[derive(Debug, Clone)]
pub struct EventTrace {
    pub trace_id: TraceId,
    /// The publisher's span; `None`: the trace starts at the attempt.
    pub parent: Option<SpanId>,
    /// The publisher's sampled flag (false for a trace of the event's own).
    pub sampled: bool,
    /// `tracestate`, passed on as it came (only with a valid traceparent).
    pub state: Option<Arc<str>>,
}

impl EventTrace {
    /// The event's context from its columns; a missing or malformed
    /// `traceparent` (the database refuses those, but rows older than the
    /// check may hold one) gives a trace of the event's own, whose id is the
    /// event id's 128 bits (random in a UUID but for its first 48 bits), so
    /// every attempt of an event, to every endpoint, is in one trace.
    pub fn of_event(event_id: &str, traceparent: Option<&str>, tracestate: Option<&str>) -> Self {
        if let Some((trace_id, parent, flags)) = traceparent.and_then(parse_traceparent) {
            let state = tracestate.filter(|s| tracestate_ok(s)).map(Arc::from);
            return Self { trace_id, parent: Some(parent), sampled: flags & 1 == 1, state };
        }
        let hex: String = event_id.chars().filter(|c| *c != '-').collect();
        let trace_id = TraceId::from_hex(&hex)
            .ok()
            .filter(|id| hex.len() == 32 && *id != TraceId::INVALID)
            .unwrap_or_else(|| TraceId::from(rand::random::<u128>().max(1)));
        Self { trace_id, parent: None, sampled: false, state: None }
    }
}

/// `<version>-<trace id>-<parent id>-<flags>`, lowercase hex, ids not zero;
/// version ff is invalid, version 00 has exactly these fields (W3C Trace
/// Context, level 1; the same rules as `tailhook.trace_context_problem`).
pub fn parse_traceparent(value: &str) -> Option<(TraceId, SpanId, u8)> {
    let b = value.as_bytes();
    let hex = |s: &[u8]| s.iter().all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(c));
    if b.len() < 55 || b.len() > 512 || b[2] != b'-' || b[35] != b'-' || b[52] != b'-' {
        return None;
    }
    let (version, trace, parent, flags) = (&b[0..2], &b[3..35], &b[36..52], &b[53..55]);
    if !(hex(version) && hex(trace) && hex(parent) && hex(flags)) || version == b"ff" {
        return None;
    }
    if (version == b"00" && b.len() != 55) || (b.len() > 55 && b[55] != b'-') {
        return None;
    }
    let trace_id = TraceId::from_hex(&value[3..35]).ok().filter(|t| *t != TraceId::INVALID)?;
    let span_id = SpanId::from_hex(&value[36..52]).ok().filter(|s| *s != SpanId::INVALID)?;
    let flags = u8::from_str_radix(&value[53..55], 16).ok()?;
    Some((trace_id, span_id, flags))
}

/// At most 512 bytes of printable ASCII.
fn tracestate_ok(value: &str) -> bool {
    value.len() <= 512 && value.bytes().all(|b| (0x20..=0x7e).contains(&b))
}

/// The headers one attempt sends.
#[derive(Debug)]
pub struct Propagation {
    pub traceparent: HeaderValue,
    pub tracestate: Option<HeaderValue>,
}

/// One attempt's span: its id is the parent the receiver sees.
#[derive(Debug, Clone, Copy)]
pub struct AttemptSpan {
    pub span_id: SpanId,
    /// Recorded and exported.
    pub sampled: bool,
}

impl AttemptSpan {
    /// `traceparent` (and `tracestate`) naming this span in the event's trace.
    pub fn propagation(&self, event: &EventTrace) -> Propagation {
        // Sampled: recorded here, or (export off) as the publisher decided.
        let flags = if self.sampled { 1 } else { 0 };
        let traceparent = format!("00-{}-{}-{flags:02x}", event.trace_id, self.span_id);
        Propagation {
            traceparent: HeaderValue::from_str(&traceparent).unwrap_or_else(|_| HeaderValue::from_static("")),
            tracestate: event.state.as_deref().and_then(|s| HeaderValue::from_str(s).ok()),
        }
    }
}

/// What an attempt's span says about it (never a URL path, query or secret).
pub struct AttemptFields<'a> {
    pub endpoint: &'a str,
    /// The URL's host, when the endpoint has a valid URL.
    pub host: Option<&'a str>,
    pub event_type: &'a str,
    pub event_id: &'a str,
    pub delivery_id: i64,
    pub attempt: u32,
}

/// Makes spans and hands sampled ones to the exporter; without a collector
/// it only makes span ids (attempts carry `traceparent` either way).
pub struct Tracer {
    export: Option<Export>,
}

struct Export {
    queue: mpsc::Sender<SpanData>,
    sampler: Sampler,
    internal_ratio: f64,
    scope: InstrumentationScope,
    metrics: Arc<Metrics>,
}

/// Why the exporter could not be built.
#[derive(Debug, thiserror::Error)]
#[error("tracing: cannot build the OTLP exporter: {0}")]
pub struct TracerError(String);

impl Tracer {
    /// No export.
    pub fn off() -> Self {
        Self { export: None }
    }

    /// Starts the exporter task (on the current runtime) when `tracing` names
    /// a collector. The task ends when the tracer is dropped, after one last
    /// export of what is queued.
    pub fn start(
        tracing: Option<Tracing>,
        config: &crate::config::TracingConfig,
        metrics: Arc<Metrics>,
    ) -> Result<Self, TracerError> {
        let Some(tracing) = tracing else { return Ok(Self::off()) };
        let timeout = Duration::from_millis(config.export_timeout_ms);
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .build()
            .map_err(|e| TracerError(e.to_string()))?;
        let mut exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_http_client(client)
            .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
            .with_endpoint(tracing.traces_url.clone())
            .with_timeout(timeout)
            .build()
            .map_err(|e| TracerError(e.to_string()))?;
        // OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES, then the config key.
        let mut resource = Resource::builder();
        if let Some(name) = tracing.service_name.clone() {
            resource = resource.with_service_name(name);
        } else if std::env::var_os("OTEL_SERVICE_NAME").is_none() {
            resource = resource.with_service_name("tailhook");
        }
        exporter.set_resource(&resource.build());
        let (queue, spans) = mpsc::channel(config.queue_size);
        tokio::spawn(export_loop(spans, exporter, timeout, metrics.clone()));
        tracing::info!(collector = %crate::config::secret::endpoint_origin(&tracing.traces_url), "exporting spans over OTLP/HTTP");
        Ok(Self {
            export: Some(Export {
                queue,
                sampler: tracing.sampler,
                internal_ratio: config.internal_sample_ratio,
                scope: InstrumentationScope::builder("tailhook").with_version(env!("CARGO_PKG_VERSION")).build(),
                metrics,
            }),
        })
    }

    /// A new span for an attempt of the event, sampled by the sampler (the
    /// publisher's decision passes on unchanged when nothing is exported).
    pub fn attempt(&self, event: &EventTrace) -> AttemptSpan {
        let span_id = SpanId::from(rand::random::<u64>().max(1));
        let sampled = match &self.export {
            None => event.sampled,
            Some(export) => match (export.sampler.parent_based, event.parent) {
                (true, Some(_)) => event.sampled,
                _ => ratio_keeps(export.sampler.ratio, event.trace_id),
            },
        };
        AttemptSpan { span_id, sampled }
    }

    /// Queues a sampled attempt's span; never waits.
    pub fn end_attempt(&self, span: AttemptSpan, event: &EventTrace, fields: &AttemptFields<'_>, attempt: &Attempt) {
        let Some(export) = self.export.as_ref().filter(|_| span.sampled) else { return };
        // A full queue (the collector slow or gone): nothing to build.
        if export.queue.capacity() == 0 {
            export.metrics.trace_spans_dropped("queue_full", 1);
            return;
        }
        let outcome = &attempt.outcome;
        let mut attributes = Vec::with_capacity(10);
        attributes.push(KeyValue::new("http.request.method", "POST"));
        if let Some(host) = fields.host {
            attributes.push(KeyValue::new("server.address", host.to_owned()));
        }
        attributes.push(KeyValue::new("tailhook.endpoint", fields.endpoint.to_owned()));
        attributes.push(KeyValue::new("tailhook.event_type", fields.event_type.to_owned()));
        attributes.push(KeyValue::new("tailhook.event_id", fields.event_id.to_owned()));
        attributes.push(KeyValue::new("tailhook.delivery_id", fields.delivery_id));
        attributes.push(KeyValue::new("tailhook.attempt", i64::from(fields.attempt)));
        if let Some(code) = outcome.status_code {
            attributes.push(KeyValue::new("http.response.status_code", i64::from(code)));
        }
        let status = match outcome.error_kind {
            Some(kind) => {
                attributes.push(KeyValue::new("error.type", kind.as_str()));
                attributes.push(KeyValue::new("tailhook.error_kind", kind.as_str()));
                Status::error(kind.as_str())
            }
            None => Status::Unset,
        };
        let flags = TraceFlags::SAMPLED;
        let state = TraceState::NONE;
        let span = SpanData {
            span_context: SpanContext::new(event.trace_id, span.span_id, flags, false, state),
            parent_span_id: event.parent.unwrap_or(SpanId::INVALID),
            parent_span_is_remote: event.parent.is_some(),
            span_kind: SpanKind::Client,
            name: Cow::Borrowed("webhook attempt"),
            start_time: attempt.started_at,
            end_time: attempt.started_at + attempt.duration,
            attributes,
            dropped_attributes_count: 0,
            events: SpanEvents::default(),
            links: SpanLinks::default(),
            status,
            instrumentation_scope: export.scope.clone(),
        };
        export.queue_span(span);
    }

    /// Whether to time an internal operation (a claim, a result write): at
    /// `tracing.internal_sample_ratio`, only while exporting.
    pub fn sample_internal(&self) -> bool {
        self.export.as_ref().is_some_and(|e| e.internal_ratio > 0.0 && rand::random::<f64>() < e.internal_ratio)
    }

    /// Queues the span of an internal operation (a trace of its own).
    pub fn internal(&self, name: &'static str, started_at: SystemTime, took: Duration, attributes: Vec<KeyValue>) {
        let Some(export) = &self.export else { return };
        let context = SpanContext::new(
            TraceId::from(rand::random::<u128>().max(1)),
            SpanId::from(rand::random::<u64>().max(1)),
            TraceFlags::SAMPLED,
            false,
            TraceState::NONE,
        );
        export.queue_span(SpanData {
            span_context: context,
            parent_span_id: SpanId::INVALID,
            parent_span_is_remote: false,
            span_kind: SpanKind::Internal,
            name: Cow::Borrowed(name),
            start_time: started_at,
            end_time: started_at + took,
            attributes,
            dropped_attributes_count: 0,
            events: SpanEvents::default(),
            links: SpanLinks::default(),
            status: Status::Unset,
            instrumentation_scope: export.scope.clone(),
        });
    }
}

impl Export {
    fn queue_span(&self, span: SpanData) {
        if self.queue.try_send(span).is_err() {
            self.metrics.trace_spans_dropped("queue_full", 1);
        }
    }
}

/// Whether `ratio` of trace ids keeps this one: its last 7 bytes (random in
/// W3C level 2 and in UUIDs) against the ratio.
fn ratio_keeps(ratio: f64, trace_id: TraceId) -> bool {
    if ratio >= 1.0 {
        return true;
    }
    if ratio <= 0.0 {
        return false;
    }
    let low = u128::from_be_bytes(trace_id.to_bytes()) as u64 & ((1 << 56) - 1);
    (low as f64) < ratio * (1u64 << 56) as f64
}

/// Exports queued spans in batches of up to [`MAX_BATCH`], one request at a
/// time, each within `timeout`; spans whose export fails or times out are
/// dropped and counted (spans queued meanwhile wait, or are dropped when the
/// queue is full: nothing waits on the exporter).
async fn export_loop(
    mut spans: mpsc::Receiver<SpanData>,
    exporter: opentelemetry_otlp::SpanExporter,
    timeout: Duration,
    metrics: Arc<Metrics>,
) {
    let failing = crate::log_throttle::KeyedThrottle::new(Duration::from_secs(60));
    let mut batch = Vec::with_capacity(MAX_BATCH);
    loop {
        if spans.recv_many(&mut batch, MAX_BATCH).await == 0 {
            return; // the tracer is gone
        }
        let deadline = tokio::time::Instant::now() + LINGER;
        while batch.len() < MAX_BATCH {
            let room = MAX_BATCH - batch.len();
            match tokio::time::timeout_at(deadline, spans.recv_many(&mut batch, room)).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
        let n = batch.len() as u64;
        let result = tokio::time::timeout(timeout, exporter.export(std::mem::take(&mut batch))).await;
        let problem = match result {
            Ok(Ok(())) => {
                metrics.trace_spans_exported(n);
                continue;
            }
            Ok(Err(e)) => {
                metrics.trace_spans_dropped("export_failed", n);
                e.to_string()
            }
            Err(_) => {
                metrics.trace_spans_dropped("export_timeout", n);
                format!("no answer within {} ms", timeout.as_millis())
            }
        };
        if let Some(times) = failing.allow("export") {
            tracing::warn!(failures = times, error = %problem, "exporting spans failed; they are dropped");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traceparent_follows_the_w3c_rules() {
        let ok = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
        let (t, s, f) = parse_traceparent(ok).unwrap();
        assert_eq!(t.to_string(), "0af7651916cd43dd8448eb211c80319c");
        assert_eq!(s.to_string(), "b7ad6b7169203331");
        assert_eq!(f, 1);
        assert!(parse_traceparent("01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-later").is_some());
        for bad in [
            "",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-extra",
            "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            "00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01",
            "00-00000000000000000000000000000000-b7ad6b7169203331-01",
            "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b716920333-01",
            "00_0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            "01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01x",
        ] {
            assert!(parse_traceparent(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn an_event_without_context_is_a_trace_of_its_own_named_by_its_id() {
        let id = "0193a0b4-5e6f-7a8b-9c0d-1e2f3a4b5c6d";
        let t = EventTrace::of_event(id, None, Some("k=v"));
        assert_eq!(t.trace_id.to_string(), "0193a0b45e6f7a8b9c0d1e2f3a4b5c6d");
        assert!(t.parent.is_none() && t.state.is_none() && !t.sampled);
        let bad = EventTrace::of_event(id, Some("00-zz"), Some("k=v"));
        assert_eq!(bad.trace_id, t.trace_id, "a malformed traceparent is ignored");
        let with =
            EventTrace::of_event(id, Some("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"), Some("k=v"));
        assert_eq!(with.parent.unwrap().to_string(), "b7ad6b7169203331");
        assert_eq!(with.state.as_deref(), Some("k=v"));
    }

    #[test]
    fn the_header_names_the_attempt_as_parent_in_the_events_trace() {
        let event = EventTrace::of_event(
            "x",
            Some("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
            Some("congo=t61rcWkgMzE"),
        );
        let span = Tracer::off().attempt(&event);
        let p = span.propagation(&event);
        assert_eq!(p.traceparent.to_str().unwrap(), format!("00-0af7651916cd43dd8448eb211c80319c-{}-01", span.span_id));
        assert_eq!(p.tracestate.unwrap(), "congo=t61rcWkgMzE");
    }

    #[test]
    fn the_ratio_keeps_its_share_of_trace_ids() {
        let kept = (0..10_000u128).filter(|_| ratio_keeps(0.25, TraceId::from(rand::random::<u128>()))).count();
        assert!((2_000..3_000).contains(&kept), "{kept}");
        assert!(ratio_keeps(1.0, TraceId::from(5)) && !ratio_keeps(0.0, TraceId::from(u128::MAX)));
    }
}
