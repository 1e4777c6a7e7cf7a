//! Operating it: the HTTP probes, metrics that match the tables, and log lines people act on.

use crate::support::proxy::{server_addr, Proxy};
use crate::support::*;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

async fn get(url: &str) -> (u16, String) {
    match reqwest::get(url).await {
        Ok(r) => (r.status().as_u16(), r.text().await.unwrap_or_default()),
        Err(_) => (0, String::new()),
    }
}

/// Metric name and sorted labels → value.
type Samples = HashMap<(String, Vec<(String, String)>), f64>;

/// Every sample of a scrape, parsed by a Prometheus text parser.
fn parse(text: &str) -> Samples {
    let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).expect("Prometheus text");
    let mut samples = HashMap::new();
    for s in scrape.samples {
        let mut labels: Vec<(String, String)> = s.labels.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        labels.sort();
        let value = match s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => v,
            prometheus_parse::Value::Histogram(buckets) => {
                // The +Inf bucket is the count.
                buckets.iter().map(|b| b.count).fold(0.0, f64::max)
            }
            prometheus_parse::Value::Summary(_) => continue,
        };
        samples.insert((s.metric, labels), value);
    }
    samples
}

fn sample(samples: &Samples, name: &str, labels: &[(&str, &str)]) -> f64 {
    let mut key: Vec<(String, String)> = labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    key.sort();
    *samples.get(&(name.to_owned(), key)).unwrap_or_else(|| panic!("no sample {name}{labels:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probes_answer_and_metrics_match_the_tables() {
    let db = TestDb::new().await;
    let receiver = Receiver::start(|path, seen| match path {
        "/flaky" if seen == 0 => Reply::status(500),
        "/dead" => Reply::status(503),
        _ => Reply::ok(),
    })
    .await;
    let client = db.migrate().await;
    for name in ["ok", "flaky", "dead"] {
        add_endpoint(&client, name, &receiver.url(&format!("/{name}")), &[SECRET]).await;
    }
    client.execute("UPDATE tailhook.endpoints SET max_attempts = 2 WHERE name = 'dead'", &[]).await.unwrap();
    // Through a proxy of the test's own, so the database can be cut off.
    let proxy = Proxy::start(server_addr()).await;
    let mut url = url::Url::parse(&db.url).unwrap();
    url.set_port(Some(proxy.addr.port())).unwrap();
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let listen = format!("127.0.0.1:{port}");
    let sidecar = Binary::run(
        "",
        &[
            ("TAILHOOK_DATABASE__URL", url.as_str()),
            ("TAILHOOK_DATABASE__STATEMENT_TIMEOUT_MS", "2000"),
            ("TAILHOOK_DELIVERY__ALLOW_PRIVATE_NETWORKS", "true"),
            ("TAILHOOK_DELIVERY__BACKOFF_INITIAL_MS", "100"),
            ("TAILHOOK_SERVER__LISTEN", &listen),
            ("TAILHOOK_LOG__LEVEL", "warn"),
        ],
    );
    wait_for("ready", Duration::from_secs(15), || {
        let url = format!("{base}/readyz");
        async move { get(&url).await.0 == 200 }
    })
    .await;
    assert_eq!(get(&format!("{base}/healthz")).await, (200, "ok\n".to_owned()));
    let ready: serde_json::Value = serde_json::from_str(&get(&format!("{base}/readyz")).await.1).unwrap();
    assert_eq!(ready, serde_json::json!({"database": "ok", "listen": "ok"}));

    client
        .execute("INSERT INTO tailhook.outbox (event_type, payload) SELECT 't', '{}' FROM generate_series(1, 10)", &[])
        .await
        .unwrap();
    wait_settled(&db, 30, Duration::from_secs(20)).await;
    let samples = parse(&get(&format!("{base}/metrics")).await.1);

    let count = |sql: String| {
        let db = &db;
        async move { db.count(&sql).await as f64 }
    };
    assert_eq!(sample(&samples, "tailhook_events_dispatched_total", &[]), 10.0);
    for endpoint in ["ok", "flaky", "dead"] {
        let of = "FROM tailhook.deliveries d JOIN tailhook.endpoints e ON e.id = d.endpoint_id";
        let attempts_of = format!("{of} JOIN tailhook.attempts a ON a.delivery_id = d.id WHERE e.name = '{endpoint}'");
        for outcome in ["succeeded", "failed"] {
            let expected =
                count(format!("SELECT count(*) {of} WHERE e.name = '{endpoint}' AND d.status = '{outcome}'")).await;
            let got = samples
                .get(&(
                    "tailhook_deliveries_total".to_owned(),
                    vec![("endpoint".into(), endpoint.into()), ("outcome".into(), outcome.into())],
                ))
                .copied()
                .unwrap_or(0.0);
            assert_eq!(got, expected, "{endpoint} {outcome}");
        }
        let attempts = count(format!("SELECT count(*) {attempts_of}")).await;
        assert_eq!(
            sample(&samples, "tailhook_attempt_duration_seconds_count", &[("endpoint", endpoint)]),
            attempts,
            "{endpoint}"
        );
        let failed_attempts = count(format!("SELECT count(*) {attempts_of} AND a.error_kind = 'http_status'")).await;
        if failed_attempts > 0.0 {
            let got =
                sample(&samples, "tailhook_attempts_total", &[("endpoint", endpoint), ("error_kind", "http_status")]);
            assert_eq!(got, failed_attempts, "{endpoint}");
        }
        assert_eq!(sample(&samples, "tailhook_deliveries_pending", &[("endpoint", endpoint)]), 0.0);
        assert_eq!(sample(&samples, "tailhook_requests_in_flight", &[("endpoint", endpoint)]), 0.0);
    }
    assert_eq!(sample(&samples, "tailhook_deliveries_total", &[("endpoint", "flaky"), ("outcome", "retrying")]), 10.0);
    assert_eq!(sample(&samples, "tailhook_endpoints", &[("state", "active")]), 3.0);
    assert_eq!(sample(&samples, "tailhook_outbox_lag_seconds", &[]), 0.0);
    assert!(sample(&samples, "tailhook_claim_duration_seconds_count", &[("claim", "fan_out")]) >= 1.0);
    assert!(sample(&samples, "tailhook_record_duration_seconds_count", &[]) >= 1.0);
    let version = env!("CARGO_PKG_VERSION");
    assert_eq!(sample(&samples, "tailhook_build_info", &[("version", version)]), 1.0);

    // The database cut off: not ready, saying why; alive all the same.
    proxy.blackhole();
    wait_for("not ready", Duration::from_secs(15), || {
        let url = format!("{base}/readyz");
        async move { get(&url).await.0 == 503 }
    })
    .await;
    let (_, body) = get(&format!("{base}/readyz")).await;
    let body: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert!(body["database"].as_str().unwrap().starts_with("down: "), "{body}");
    assert_eq!(get(&format!("{base}/healthz")).await.0, 200);
    proxy.restore();
    wait_for("ready again", Duration::from_secs(30), || {
        let url = format!("{base}/readyz");
        async move { get(&url).await.0 == 200 }
    })
    .await;
    let (code, log) = sidecar.stop();
    assert_eq!(code, Some(0), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_lines_say_what_failed_paused_and_resumed_and_sum_up() {
    let db = TestDb::new().await;
    let healthy = Arc::new(AtomicBool::new(false));
    let flag = healthy.clone();
    let receiver =
        Receiver::start(move |_, _| if flag.load(Ordering::SeqCst) { Reply::ok() } else { Reply::status(500) }).await;
    let client = db.migrate().await;
    let sidecar = Binary::run(
        "",
        &[
            ("TAILHOOK_DATABASE__URL", &db.url),
            ("TAILHOOK_DELIVERY__ALLOW_PRIVATE_NETWORKS", "true"),
            ("TAILHOOK_DELIVERY__BACKOFF_INITIAL_MS", "100"),
            ("TAILHOOK_DELIVERY__BACKOFF_MAX_MS", "300"),
            ("TAILHOOK_DELIVERY__BREAKER_AFTER_MS", "300"),
            ("TAILHOOK_DELIVERY__BREAKER_MIN_FAILURES", "4"),
            ("TAILHOOK_LOG__SUMMARY_INTERVAL_MS", "500"),
        ],
    );
    wait_for("started", Duration::from_secs(15), || {
        let started = sidecar.stderr().contains("tailhook running");
        async move { started }
    })
    .await;
    add_endpoint(&client, "flappy", &receiver.url("/flappy"), &[SECRET]).await;
    for _ in 0..4 {
        client.execute("SELECT tailhook.publish('t', '{}')", &[]).await.unwrap();
    }
    wait_for("the endpoint paused", Duration::from_secs(15), || async {
        db.count("SELECT count(*) FROM tailhook.endpoints WHERE paused_until IS NOT NULL").await == 1
    })
    .await;
    healthy.store(true, Ordering::SeqCst);
    wait_settled(&db, 4, Duration::from_secs(20)).await;
    // The summaries add up to what was delivered.
    let delivered_in_summaries = |log: &str| -> u64 {
        log.lines()
            .filter(|l| l.contains("summary of the last"))
            .filter_map(|l| l.split_whitespace().find_map(|w| w.strip_prefix("delivered=")))
            .map(|n| n.parse::<u64>().unwrap())
            .sum()
    };
    wait_for("summaries of the 4 deliveries", Duration::from_secs(5), || {
        let n = delivered_in_summaries(&sidecar.stderr());
        async move { n == 4 }
    })
    .await;
    let (code, log) = sidecar.stop();
    assert_eq!(code, Some(0), "{log}");
    let line = |needle: &str| {
        log.lines().find(|l| l.contains(needle)).unwrap_or_else(|| panic!("no `{needle}` line in\n{log}"))
    };
    assert!(line("no endpoints yet").contains("INFO"));
    let failing = line("attempts failing");
    assert!(
        failing.contains("WARN") && failing.contains("endpoint=flappy") && failing.contains("last_error=\"HTTP 500\""),
        "{failing}"
    );
    assert!(line("endpoint paused").contains("INFO") && line("endpoint paused").contains("endpoint=flappy"));
    assert!(line("endpoint resumed").contains("INFO") && line("endpoint resumed").contains("endpoint=flappy"));
    let summary = line("summary of the last");
    assert!(
        summary.contains("pending=") && summary.contains("oldest_pending_s=") && summary.contains("outbox_lag_s="),
        "{summary}"
    );
    assert!(!log.contains("NOTICE"), "no PostgreSQL notices:\n{log}");
    // One WARN line per endpoint per 10 s, however many attempts failed.
    let failing_lines = log.lines().filter(|l| l.contains("attempts failing")).count();
    let failed_attempts = db.count("SELECT count(*) FROM tailhook.attempts WHERE error_kind IS NOT NULL").await;
    assert!(failed_attempts >= 4 && failing_lines <= 2, "{failing_lines} lines for {failed_attempts} failed attempts");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_retention_counter_matches_the_rows_removed() {
    let db = TestDb::new().await;
    let receiver = Receiver::ok().await;
    let client = db.migrate().await;
    add_endpoint(&client, "ep", &receiver.url("/ep"), &[]).await;
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let sidecar = Binary::run(
        "",
        &[
            ("TAILHOOK_DATABASE__URL", &db.url),
            ("TAILHOOK_DELIVERY__ALLOW_PRIVATE_NETWORKS", "true"),
            ("TAILHOOK_RETENTION__SUCCEEDED_AFTER_MS", "1"),
            ("TAILHOOK_RETENTION__INTERVAL_MS", "100"),
            ("TAILHOOK_SERVER__LISTEN", &listen),
            ("TAILHOOK_LOG__LEVEL", "warn"),
        ],
    );
    // Dated before the periods the sidecar prepares (its partitions are
    // dropped whole, counted apart): these rows, their deliveries and their
    // attempts sit in the DEFAULT partitions, which retention deletes from
    // row by row.
    client
        .execute(
            "INSERT INTO tailhook.outbox (event_type, payload, created_at)
             SELECT 't', '{}', now() - interval '10 days' FROM generate_series(1, 20)",
            &[],
        )
        .await
        .unwrap();
    wait_for("all 20 delivered, then removed", Duration::from_secs(20), || async {
        receiver.count() == 20
            && db
                .count("SELECT (SELECT count(*) FROM tailhook.outbox) + (SELECT count(*) FROM tailhook.deliveries)")
                .await
                == 0
    })
    .await;
    let samples = parse(&get(&format!("http://{listen}/metrics")).await.1);
    for table in ["deliveries", "attempts", "outbox"] {
        assert_eq!(sample(&samples, "tailhook_retention_deleted_total", &[("table", table)]), 20.0, "{table}");
    }
    let (code, log) = sidecar.stop();
    assert_eq!(code, Some(0), "{log}");
}
