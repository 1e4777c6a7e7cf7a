//! tailhook's own operational events (`tailhook.endpoint.*`, `tailhook.delivery.failed`) end to end.

use crate::support::*;
use serde_json::Value;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// The `tailhook.` events a path received (first arrival of each), as (type, data).
fn ops_events(receiver: &Receiver, path: &str) -> Vec<(String, Value)> {
    let mut seen = std::collections::HashSet::new();
    receiver
        .received()
        .into_iter()
        .filter(|r| r.path == path && seen.insert(r.webhook_id()))
        .map(|r| r.json())
        .filter(|b| b["type"].as_str().unwrap_or_default().starts_with("tailhook."))
        .map(|b| (b["type"].as_str().unwrap().to_owned(), b["data"].clone()))
        .collect()
}

async fn endpoint(
    client: &tokio_postgres::Client,
    name: &str,
    url: &str,
    types: &str,
    max_attempts: Option<i32>,
) -> i64 {
    client
        .query_one(
            "INSERT INTO tailhook.endpoints (name, url, event_types, max_attempts) VALUES ($1, $2, $3::text::text[], $4) RETURNING id",
            &[&name, &url, &types, &max_attempts],
        )
        .await
        .unwrap()
        .get(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disabled_and_failed_reach_subscribers_but_never_the_endpoint_they_are_about() {
    let db = TestDb::new().await;
    let receiver = Receiver::start(|path, seen| match path {
        "/gone" => Reply::status(410),
        "/fail" => Reply::status(500),
        // ops2 fails every first attempt, and has one attempt per delivery.
        "/ops2" if seen == 0 => Reply::status(503),
        _ => Reply::ok(),
    })
    .await;
    let client = db.migrate().await;
    endpoint(&client, "ops1", &receiver.url("/ops1"), "{tailhook.*}", None).await;
    let ops2 =
        endpoint(&client, "ops2", &receiver.url("/ops2"), "{tailhook.endpoint.*,tailhook.delivery.failed,x}", Some(1))
            .await;
    endpoint(&client, "all", &receiver.url("/all"), "{*}", None).await;
    let gone = endpoint(&client, "gone", &receiver.url("/gone"), "{x}", None).await;
    let url = format!("http://user:hunter2@{}/fail?token=t0ken", receiver.addr);
    let fail = endpoint(&client, "fail", &url, "{x}", Some(2)).await;
    let sidecar = Sidecar::start(db.config());
    client.execute("SELECT tailhook.publish('x', '{\"n\": 1}')", &[]).await.unwrap();

    // ops1 hears about gone (disabled), fail (failed) and ops2 (its `x` failed).
    wait_for("ops1 gets three events", Duration::from_secs(15), || async { ops_events(&receiver, "/ops1").len() >= 3 })
        .await;
    wait_for("ops2 gets two events", Duration::from_secs(15), || async { ops_events(&receiver, "/ops2").len() >= 2 })
        .await;
    sidecar.stop().await;
    let mut at_ops1 = ops_events(&receiver, "/ops1");
    at_ops1.sort_by_key(|(_, d)| d["endpoint"]["id"].as_i64());
    let about: Vec<(&str, i64)> =
        at_ops1.iter().map(|(t, d)| (t.as_str(), d["endpoint"]["id"].as_i64().unwrap())).collect();
    let mut expected = vec![
        ("tailhook.delivery.failed", ops2),
        ("tailhook.endpoint.disabled", gone),
        ("tailhook.delivery.failed", fail),
    ];
    expected.sort_by_key(|e| e.1);
    assert_eq!(about, expected, "{at_ops1:#?}");

    let data =
        |ty: &str, id: i64| at_ops1.iter().find(|(t, d)| t == ty && d["endpoint"]["id"] == id).unwrap().1.clone();
    let disabled = data("tailhook.endpoint.disabled", gone);
    assert_eq!(disabled["endpoint"]["name"], "gone");
    assert_eq!(disabled["cause"], "gone");
    assert!(disabled["reason"].as_str().unwrap().starts_with("answered 410 Gone at "), "{disabled}");
    let failed = data("tailhook.delivery.failed", fail);
    let (delivery_id, event_id): (i64, String) = client
        .query_one(
            "SELECT d.id, o.event_id::text FROM tailhook.deliveries d JOIN tailhook.outbox o ON o.id = d.outbox_id WHERE d.endpoint_id = $1",
            &[&fail],
        )
        .await
        .map(|r| (r.get(0), r.get(1)))
        .unwrap();
    assert_eq!(failed["delivery_id"], delivery_id);
    assert_eq!((failed["event_id"].as_str(), failed["event_type"].as_str()), (Some(event_id.as_str()), Some("x")));
    assert_eq!((failed["attempts"].as_i64(), failed["last_status_code"].as_i64()), (Some(2), Some(500)));
    assert!(failed["last_error"].as_str().unwrap().contains("500"), "{failed}");
    assert_eq!(failed["endpoint"]["host"], receiver.addr.to_string(), "the host, without credentials");
    let everything = serde_json::to_string(&at_ops1).unwrap();
    assert!(!everything.contains("hunter2") && !everything.contains("t0ken"), "no credentials: {everything}");

    // ops2 was sent the events about the others, never the one about itself;
    // its own failed deliveries of operational events report nothing.
    let at_ops2 = ops_events(&receiver, "/ops2");
    assert!(at_ops2.iter().all(|(_, d)| d["endpoint"]["id"] != ops2), "{at_ops2:#?}");
    assert_eq!(at_ops2.len(), 2, "disabled (gone) and failed (fail): {at_ops2:#?}");
    // `*` alone does not subscribe to tailhook's own events.
    assert!(ops_events(&receiver, "/all").is_empty());
    assert_eq!(db.count("SELECT count(*) FROM tailhook.outbox WHERE event_type LIKE 'tailhook.%'").await, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paused_resumed_and_disabled_by_the_breaker_reach_a_subscriber() {
    let db = TestDb::new().await;
    let up = Arc::new(AtomicBool::new(false));
    let flag = up.clone();
    let receiver = Receiver::start(move |path, _| match path {
        "/flaky" if !flag.load(Ordering::SeqCst) => Reply::status(500),
        "/dead" => Reply::status(503),
        _ => Reply::ok(),
    })
    .await;
    let client = db.migrate().await;
    endpoint(&client, "ops", &receiver.url("/ops"), "{tailhook.endpoint.*}", None).await;
    let flaky = endpoint(&client, "flaky", &receiver.url("/flaky"), "{x}", Some(1000)).await;
    let dead = endpoint(&client, "dead", &receiver.url("/dead"), "{y}", Some(1000)).await;
    let mut config = db.config();
    config.delivery.backoff_initial_ms = 50;
    config.delivery.backoff_max_ms = 1_000; // also the longest pause
    config.delivery.breaker_after_ms = 300;
    config.delivery.breaker_min_failures = 3;
    config.delivery.disable_after_failing_ms = 2_000;
    let sidecar = Sidecar::start(config);
    client
        .batch_execute(
            "INSERT INTO tailhook.outbox (event_type, payload) SELECT 'x', '{}' FROM generate_series(1, 5);
             INSERT INTO tailhook.outbox (event_type, payload) SELECT 'y', '{}' FROM generate_series(1, 5);",
        )
        .await
        .unwrap();
    let has = |ty: &'static str, id: i64| {
        let receiver = receiver.clone();
        move || {
            let found = ops_events(&receiver, "/ops").iter().any(|(t, d)| t == ty && d["endpoint"]["id"] == id);
            async move { found }
        }
    };
    wait_for("flaky paused", Duration::from_secs(10), has("tailhook.endpoint.paused", flaky)).await;
    up.store(true, Ordering::SeqCst);
    wait_for("flaky resumed", Duration::from_secs(10), has("tailhook.endpoint.resumed", flaky)).await;
    wait_for("dead disabled", Duration::from_secs(15), has("tailhook.endpoint.disabled", dead)).await;
    sidecar.stop().await;

    let events = ops_events(&receiver, "/ops");
    let paused =
        &events.iter().find(|(t, d)| t == "tailhook.endpoint.paused" && d["endpoint"]["id"] == flaky).unwrap().1;
    assert_eq!(paused["endpoint"]["name"], "flaky");
    assert!(paused["reason"].as_str().unwrap().starts_with("circuit breaker: every attempt failed since"), "{paused}");
    assert!(paused["paused_until"].is_string() && paused["consecutive_failures"].as_i64() >= Some(3), "{paused}");
    let disabled =
        &events.iter().find(|(t, d)| t == "tailhook.endpoint.disabled" && d["endpoint"]["id"] == dead).unwrap().1;
    assert_eq!(disabled["cause"], "failing");
    assert!(disabled["reason"].as_str().unwrap().ends_with("UTC without a success"), "{disabled}");
    let resumed =
        events.iter().filter(|(t, d)| t == "tailhook.endpoint.resumed" && d["endpoint"]["id"] == flaky).count();
    assert_eq!(resumed, 1, "one resume: {events:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_is_written_when_no_endpoint_subscribes() {
    let db = TestDb::new().await;
    let receiver =
        Receiver::start(|path, _| if path == "/gone" { Reply::status(410) } else { Reply::status(500) }).await;
    let client = db.migrate().await;
    // `*`, a tenant's endpoint subscribing by name, a disabled subscriber,
    // and the subject itself subscribing: none of them counts.
    endpoint(&client, "all", &receiver.url("/all"), "{*}", Some(1)).await;
    client
        .execute(
            "INSERT INTO tailhook.endpoints (name, url, event_types, tenant) VALUES ('tenant', $1, '{tailhook.*}', 'acme')",
            &[&receiver.url("/tenant")],
        )
        .await
        .unwrap();
    client
        .execute(
            "INSERT INTO tailhook.endpoints (name, url, event_types, enabled) VALUES ('off', $1, '{tailhook.*}', false)",
            &[&receiver.url("/off")],
        )
        .await
        .unwrap();
    endpoint(&client, "gone", &receiver.url("/gone"), "{x,tailhook.endpoint.*}", None).await;
    let sidecar = Sidecar::start(db.config());
    client.execute("SELECT tailhook.publish('x', '{}')", &[]).await.unwrap();
    wait_for("all failed and gone disabled", Duration::from_secs(15), || async {
        db.count(
            "SELECT count(*) FROM tailhook.deliveries d JOIN tailhook.endpoints e ON e.id = d.endpoint_id
              WHERE (e.name = 'all' AND d.status = 'failed') OR (e.name = 'gone' AND NOT e.enabled)",
        )
        .await
            == 2
    })
    .await;
    sidecar.stop().await;
    assert_eq!(db.count("SELECT count(*) FROM tailhook.outbox").await, 1, "only the published event");
}
