//! Trace context end to end: a published or captured `traceparent` down to the header the receiver got, through the attempt span an OTLP/HTTP collector (decoding the official protobuf definitions) received; and a collector black-holed or down never stops deliveries.

use crate::support::proxy::Proxy;
use crate::support::receiver::Receiver;
use crate::support::*;
use axum::body::Bytes;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use prost::Message;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tailhook::config::secret::CredentialUrl;

const PUBLISHER_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PUBLISHER_SPAN: &str = "00f067aa0ba902b7";

/// One span as the collector decoded it.
#[derive(Debug, Clone)]
struct Span {
    name: String,
    trace_id: String,
    span_id: String,
    parent_span_id: String,
    attributes: Vec<(String, String)>,
    service: String,
}

impl Span {
    fn attr(&self, key: &str) -> Option<&str> {
        self.attributes.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }
}

/// An OTLP/HTTP collector on 127.0.0.1:0: `POST /v1/traces`, protobuf.
#[derive(Clone)]
struct Collector {
    addr: std::net::SocketAddr,
    spans: Arc<Mutex<Vec<Span>>>,
}

fn text(v: &Option<opentelemetry_proto::tonic::common::v1::AnyValue>) -> String {
    match v.as_ref().and_then(|v| v.value.as_ref()) {
        Some(Value::StringValue(s)) => s.clone(),
        Some(Value::IntValue(i)) => i.to_string(),
        Some(Value::BoolValue(b)) => b.to_string(),
        Some(Value::DoubleValue(d)) => d.to_string(),
        other => format!("{other:?}"),
    }
}

impl Collector {
    async fn start() -> Self {
        let spans: Arc<Mutex<Vec<Span>>> = Arc::default();
        let store = spans.clone();
        let app = axum::Router::new().route(
            "/v1/traces",
            axum::routing::post(move |headers: axum::http::HeaderMap, body: Bytes| {
                let store = store.clone();
                async move {
                    assert_eq!(headers.get("content-type").unwrap(), "application/x-protobuf");
                    let request = ExportTraceServiceRequest::decode(body).expect("OTLP protobuf");
                    let mut got = store.lock().unwrap();
                    for rs in request.resource_spans {
                        let service = rs
                            .resource
                            .iter()
                            .flat_map(|r| r.attributes.iter())
                            .find(|a| a.key == "service.name")
                            .map(|a| text(&a.value))
                            .unwrap_or_default();
                        for ss in rs.scope_spans {
                            for s in ss.spans {
                                got.push(Span {
                                    name: s.name,
                                    trace_id: hex(&s.trace_id),
                                    span_id: hex(&s.span_id),
                                    parent_span_id: hex(&s.parent_span_id),
                                    attributes: s.attributes.iter().map(|a| (a.key.clone(), text(&a.value))).collect(),
                                    service: service.clone(),
                                });
                            }
                        }
                    }
                    // An empty ExportTraceServiceResponse.
                    ([("content-type", "application/x-protobuf")], Vec::<u8>::new())
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { addr, spans }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn spans(&self) -> Vec<Span> {
        self.spans.lock().unwrap().clone()
    }

    fn attempts(&self) -> Vec<Span> {
        self.spans().into_iter().filter(|s| s.name == "webhook attempt").collect()
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `(trace id, parent id, flags)` of a received `traceparent`.
fn traceparent(r: &crate::support::receiver::Received) -> Option<(String, String, String)> {
    let v = r.headers.get("traceparent")?.to_str().unwrap().to_owned();
    let parts: Vec<&str> = v.split('-').collect();
    assert_eq!((parts.len(), parts[0]), (4, "00"), "{v}");
    Some((parts[1].to_owned(), parts[2].to_owned(), parts[3].to_owned()))
}

async fn metric(port: u16, name: &str) -> f64 {
    let text = reqwest::get(format!("http://127.0.0.1:{port}/metrics")).await.unwrap().text().await.unwrap();
    text.lines().filter(|l| l.starts_with(name)).filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok()).sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_published_traceparent_reaches_the_receiver_through_the_exported_attempt_span() {
    let db = TestDb::new().await;
    let client = db.migrate().await;
    let receiver = Receiver::ok().await;
    let collector = Collector::start().await;
    add_endpoint(&client, "orders", &receiver.url("/hook/secret-path?token=hunter2"), &[SECRET]).await;
    let published = format!("00-{PUBLISHER_TRACE}-{PUBLISHER_SPAN}-01");
    let event_id: String = client
        .query_one(
            "SELECT tailhook.publish('order.paid', '{}', traceparent => $1, tracestate => 'congo=t61rcWkgMzE')::text",
            &[&published],
        )
        .await
        .unwrap()
        .get(0);
    let mut config = db.config();
    config.tracing.otlp_endpoint = Some(CredentialUrl::new(collector.url()));
    config.tracing.service_name = Some("hooks-test".into());
    config.tracing.internal_sample_ratio = 1.0;
    let sidecar = Sidecar::start(config);
    wait_for("the attempt span and a claim and a result write span", Duration::from_secs(20), || async {
        let spans = collector.spans();
        !collector.attempts().is_empty()
            && spans.iter().any(|s| s.name == "tailhook.claim")
            && spans.iter().any(|s| s.name == "tailhook.record_results")
    })
    .await;
    sidecar.stop().await;

    let got = receiver.received();
    assert_eq!(got.len(), 1);
    let (trace_id, parent, flags) = traceparent(&got[0]).expect("a traceparent header");
    assert_eq!(got[0].headers.get("tracestate").unwrap(), "congo=t61rcWkgMzE", "tracestate passed through");
    let attempts = collector.attempts();
    assert_eq!(attempts.len(), 1, "{attempts:?}");
    let span = &attempts[0];
    assert_eq!(trace_id, PUBLISHER_TRACE, "the publisher's trace");
    assert_eq!(span.trace_id, PUBLISHER_TRACE);
    assert_eq!(parent, span.span_id, "the receiver's parent is the exported attempt span");
    assert_eq!(span.parent_span_id, PUBLISHER_SPAN, "the attempt span's parent is the publisher's span");
    assert_eq!(flags, "01");
    assert_eq!(span.service, "hooks-test");
    assert_eq!(span.attr("tailhook.endpoint"), Some("orders"));
    assert_eq!(span.attr("tailhook.event_type"), Some("order.paid"));
    assert_eq!(span.attr("tailhook.event_id"), Some(event_id.as_str()));
    assert_eq!(span.attr("tailhook.attempt"), Some("1"));
    assert_eq!(span.attr("http.response.status_code"), Some("200"));
    assert_eq!(span.attr("server.address"), Some("127.0.0.1"));
    for (key, value) in collector.spans().iter().flat_map(|s| s.attributes.clone()) {
        for secret in ["secret-path", "hunter2", "/hook", SECRET] {
            assert!(!value.contains(secret), "{key} = {value} shows {secret}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_without_context_is_a_trace_of_its_own_and_an_endpoint_can_turn_propagation_off() {
    let db = TestDb::new().await;
    let client = db.migrate().await;
    let receiver = Receiver::ok().await;
    let collector = Collector::start().await;
    add_endpoint(&client, "on", &receiver.url("/on"), &[SECRET]).await;
    let off = add_endpoint(&client, "off", &receiver.url("/off"), &[SECRET]).await;
    client.execute("UPDATE tailhook.endpoints SET propagate_trace = false WHERE id = $1", &[&off]).await.unwrap();
    let event_id: String =
        client.query_one("SELECT tailhook.publish('order.paid', '{}')::text", &[]).await.unwrap().get(0);
    let mut config = db.config();
    config.tracing.otlp_endpoint = Some(CredentialUrl::new(collector.url()));
    let sidecar = Sidecar::start(config);
    wait_for("both deliveries and both attempt spans", Duration::from_secs(20), || async {
        receiver.count() == 2 && collector.attempts().len() == 2
    })
    .await;
    sidecar.stop().await;

    let got = receiver.received();
    let on = got.iter().find(|r| r.path == "/on").unwrap();
    let off = got.iter().find(|r| r.path == "/off").unwrap();
    assert!(off.headers.get("traceparent").is_none() && off.headers.get("tracestate").is_none(), "{off:?}");
    let (trace_id, parent, flags) = traceparent(on).expect("a traceparent header");
    assert_eq!(trace_id, event_id.replace('-', ""), "a fresh trace, named by the event id");
    assert_eq!(flags, "01", "sampled: recorded and exported");
    let spans = collector.attempts();
    let span = spans.iter().find(|s| s.attr("tailhook.endpoint") == Some("on")).unwrap();
    assert_eq!((span.trace_id.as_str(), span.span_id.as_str()), (trace_id.as_str(), parent.as_str()));
    assert_eq!(span.parent_span_id, "", "the attempt starts the trace");
    let quiet = spans.iter().find(|s| s.attr("tailhook.endpoint") == Some("off")).unwrap();
    assert_eq!(quiet.trace_id, trace_id, "every attempt of the event is in one trace");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_captured_tables_writes_carry_the_transactions_trace_context_and_a_malformed_one_is_ignored() {
    let db = TestDb::new().await;
    let client = db.migrate().await;
    let receiver = Receiver::ok().await;
    add_endpoint(&client, "rows", &receiver.url("/rows"), &[SECRET]).await;
    client
        .batch_execute(&format!(
            "CREATE TABLE public.orders (id int PRIMARY KEY, total int);
             SELECT tailhook.capture('public.orders', 'order');
             BEGIN;
             SET LOCAL tailhook.traceparent = '00-{PUBLISHER_TRACE}-{PUBLISHER_SPAN}-01';
             SET LOCAL tailhook.tracestate = 'rojo=00f067aa0ba902b7';
             INSERT INTO public.orders VALUES (1, 10), (2, 20);
             COMMIT;
             BEGIN;
             SET LOCAL tailhook.traceparent = 'not-a-traceparent';
             INSERT INTO public.orders VALUES (3, 30);
             COMMIT;
             INSERT INTO public.orders VALUES (4, 40);"
        ))
        .await
        .unwrap();
    let sidecar = Sidecar::start(db.config());
    wait_for("four captured events delivered", Duration::from_secs(20), || async { receiver.count() == 4 }).await;
    sidecar.stop().await;
    for r in receiver.received() {
        let id = r.json()["data"]["new"]["id"].as_i64().unwrap();
        let (trace_id, parent, flags) = traceparent(&r).expect("a traceparent header");
        if id <= 2 {
            assert_eq!(trace_id, PUBLISHER_TRACE, "row {id}");
            assert_ne!(parent, PUBLISHER_SPAN, "row {id}: the attempt is the parent, not the publisher");
            assert_eq!(flags, "01", "row {id}: the publisher's sampled flag (nothing exported)");
            assert_eq!(r.headers.get("tracestate").unwrap(), "rojo=00f067aa0ba902b7");
        } else {
            assert_eq!(trace_id, r.webhook_id().trim_start_matches("msg_").replace('-', ""), "row {id}: own trace");
            assert!(r.headers.get("tracestate").is_none());
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_refuses_a_malformed_trace_context_naming_the_parameter() {
    let db = TestDb::new().await;
    let client = db.migrate().await;
    let cases = [
        ("'00-abc-def-01', NULL", "traceparent must be W3C trace context"),
        (&format!("'00-{}-{PUBLISHER_SPAN}-01', NULL", "0".repeat(32)) as &str, "trace id must not be all zeros"),
        (&format!("'00-{PUBLISHER_TRACE}-{PUBLISHER_SPAN}-01', E'a=\\n'"), "tracestate must be"),
        ("NULL, 'a=b'", "tracestate is set without a traceparent"),
    ];
    for (args, says) in cases {
        let sql = format!("SELECT tailhook.publish('t', '{{}}', NULL, NULL, {args})");
        let err = client.batch_execute(&sql).await.expect_err(&sql);
        let shown = report(&err);
        assert!(shown.contains("tailhook.publish: ") && shown.contains(says), "{sql}: {shown}");
    }
    // Rows written directly are held to the same rules.
    let err = client
        .batch_execute("INSERT INTO tailhook.outbox (event_type, payload, traceparent) VALUES ('t', '{}', 'x')")
        .await
        .unwrap_err();
    assert!(report(&err).contains("outbox_trace_context_valid"), "{}", report(&err));
    // A malformed setting is ignored by publish: the event gets a trace of its own.
    client
        .batch_execute("BEGIN; SET LOCAL tailhook.traceparent = 'nope'; SELECT tailhook.publish('t', '{}'); COMMIT;")
        .await
        .unwrap();
    assert_eq!(db.count("SELECT count(*) FROM tailhook.outbox WHERE traceparent IS NULL").await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_collector_black_holed_or_down_never_stops_deliveries_and_dropped_spans_are_counted() {
    let db = TestDb::new().await;
    let client = db.migrate().await;
    let receiver = Receiver::ok().await;
    add_endpoint(&client, "busy", &receiver.url("/busy"), &[SECRET]).await;
    let collector = Collector::start().await;
    let proxy = Proxy::start(collector.addr).await;
    proxy.blackhole();
    let down = free_port();
    let mut sent = 0;
    for (name, url) in [("black-holed", format!("http://{}", proxy.addr)), ("down", format!("http://127.0.0.1:{down}"))]
    {
        client
            .execute(
                "INSERT INTO tailhook.outbox (event_type, payload) SELECT 't', '{}' FROM generate_series(1, 300)",
                &[],
            )
            .await
            .unwrap();
        sent += 300;
        let port = free_port();
        let mut config = db.config();
        config.server.listen = format!("127.0.0.1:{port}");
        config.tracing.otlp_endpoint = Some(CredentialUrl::new(url));
        config.tracing.queue_size = 16;
        config.tracing.export_timeout_ms = 3_000;
        let sidecar = Sidecar::start(config);
        // Well within one export timeout per batch: nothing waits on the collector.
        wait_settled(&db, sent, Duration::from_secs(20)).await;
        assert_eq!(receiver.count() as i64, sent, "{name}: every event delivered");
        let dropped = |port| async move { metric(port, "tailhook_trace_spans_dropped_total").await };
        wait_for(&format!("{name}: dropped spans counted"), Duration::from_secs(15), || async {
            dropped(port).await >= 300.0 - 16.0
        })
        .await;
        assert_eq!(metric(port, "tailhook_trace_spans_exported_total").await, 0.0, "{name}");
        sidecar.stop().await;
    }
    assert!(collector.spans().is_empty(), "nothing reached the collector through the black hole");
}
