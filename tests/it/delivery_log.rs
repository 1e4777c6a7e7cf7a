//! Tracing deliveries in SQL: `tailhook.delivery_log` by event id and by endpoint (index-backed), and `endpoint_stats`' two success rates.

use crate::support::*;
use std::time::Duration;

/// A `numeric` rate, read as text (the tests have no decimal crate).
type Rate = Option<String>;

/// endpoint, status, attempts, last status code, last error kind.
type Outcome = (String, String, i32, Option<i32>, Option<String>);

/// name, delivered, failed, delivery rate, attempts in 1 h, failed attempts in 1 h, attempt rate.
type Stats = (String, i64, i64, Rate, i64, i64, Rate);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delivery_log_answers_did_endpoint_x_get_event_y_and_stats_say_what_they_count() {
    let db = TestDb::new().await;
    let client = db.migrate().await;
    // good answers 200; flaky 500 the first time, then 200; down always 500
    // (3 attempts, then failed).
    let receiver = Receiver::start(|path, seen| match path {
        "/good" => Reply::ok(),
        "/flaky" if seen > 0 => Reply::ok(),
        _ => Reply::status(500).body("broken"),
    })
    .await;
    add_endpoint(&client, "good", &receiver.url("/good"), &[SECRET]).await;
    add_endpoint(&client, "flaky", &receiver.url("/flaky"), &[SECRET]).await;
    let down = add_endpoint(&client, "down", &receiver.url("/down"), &[SECRET]).await;
    client.execute("UPDATE tailhook.endpoints SET max_attempts = 3 WHERE id = $1", &[&down]).await.unwrap();

    let mut config = db.config();
    config.delivery.backoff_initial_ms = 300;
    let sidecar = Sidecar::start(config);
    let mut events = Vec::new();
    for n in 0..3 {
        let id: String = client
            .query_one("SELECT tailhook.publish('invoice.paid', jsonb_build_object('n', $1::int), 'acme')::text", &[&n])
            .await
            .unwrap()
            .get(0);
        events.push(id);
    }

    // While `down` is retrying: the log shows why and when it goes next, and
    // the attempt rate already shows the failures (no delivery has finished).
    wait_for("down retrying", Duration::from_secs(10), || async {
        db.count("SELECT count(*) FROM tailhook.delivery_log WHERE endpoint = 'down' AND status = 'retrying'").await > 0
    })
    .await;
    let row = client
        .query_one(
            "SELECT next_attempt_at IS NOT NULL, last_status_code, last_error_kind, last_error
               FROM tailhook.delivery_log WHERE endpoint = 'down' AND status = 'retrying' LIMIT 1",
            &[],
        )
        .await
        .unwrap();
    assert!(row.get::<_, bool>(0), "a retrying delivery shows its next attempt time");
    assert_eq!(row.get::<_, Option<i32>>(1), Some(500));
    assert_eq!(row.get::<_, Option<String>>(2).as_deref(), Some("http_status"));
    assert!(row.get::<_, Option<String>>(3).is_some());
    let row = client
        .query_one("SELECT delivery_success_rate::text, attempt_success_rate_1h::text FROM tailhook.endpoint_stats WHERE name = 'down'", &[])
        .await
        .unwrap();
    let (delivery_rate, attempt_rate): (Rate, Rate) = (row.get(0), row.get(1));
    assert_eq!(delivery_rate, None, "no delivery of `down` has finished yet");
    assert_eq!(attempt_rate.as_deref(), Some("0.0000"), "every attempt so far failed");

    wait_settled(&db, 9, Duration::from_secs(30)).await;
    sidecar.stop().await;

    // Each event: one row per endpoint, with its event, tenant, outcome and last attempt.
    for event in &events {
        let rows = client
            .query(
                "SELECT endpoint, status, attempts, last_status_code, last_error_kind, event_type, tenant,
                        last_attempt_at IS NOT NULL, next_attempt_at IS NULL, completed_at IS NOT NULL
                   FROM tailhook.delivery_log WHERE event_id = $1::text::uuid ORDER BY endpoint",
                &[event],
            )
            .await
            .unwrap();
        let got: Vec<Outcome> = rows.iter().map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4))).collect();
        assert_eq!(
            got,
            vec![
                ("down".into(), "failed".into(), 3, Some(500), Some("http_status".into())),
                ("flaky".into(), "succeeded".into(), 2, Some(200), None),
                ("good".into(), "succeeded".into(), 1, Some(200), None),
            ],
            "event {event}"
        );
        for r in &rows {
            assert_eq!(r.get::<_, String>(5), "invoice.paid");
            assert_eq!(r.get::<_, Option<String>>(6).as_deref(), Some("acme"));
            assert!(r.get::<_, bool>(7) && r.get::<_, bool>(8) && r.get::<_, bool>(9));
        }
    }
    // A receiver's webhook-id is the event_id: every request received is in the log.
    for r in receiver.received() {
        let endpoint = r.path.trim_start_matches('/').to_owned();
        let n = client
            .query_one(
                "SELECT count(*) FROM tailhook.delivery_log WHERE event_id = $1::text::uuid AND endpoint = $2",
                &[&r.webhook_id(), &endpoint],
            )
            .await
            .unwrap()
            .get::<_, i64>(0);
        assert_eq!(n, 1, "request to {endpoint} with webhook-id {}", r.webhook_id());
    }

    // endpoint_stats: finished deliveries and attempts, counted apart.
    let stats: Vec<Stats> = client
        .query(
            "SELECT name, delivered, failed, delivery_success_rate::text, attempts_1h, failed_attempts_1h,
                    attempt_success_rate_1h::text
               FROM tailhook.endpoint_stats ORDER BY name",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4), r.get(5), r.get(6)))
        .collect();
    let rate = |s: &str| Some(s.to_owned());
    assert_eq!(
        stats,
        vec![
            ("down".into(), 0, 3, rate("0.0000"), 9, 9, rate("0.0000")),
            ("flaky".into(), 3, 0, rate("1.0000"), 6, 3, rate("0.5000")),
            ("good".into(), 3, 0, rate("1.0000"), 3, 0, rate("1.0000")),
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delivery_log_lookups_use_indexes() {
    let db = TestDb::new().await;
    let client = db.migrate().await;
    let a = add_endpoint(&client, "a", "http://127.0.0.1:9/a", &[SECRET]).await;
    let b = add_endpoint(&client, "b", "http://127.0.0.1:9/b", &[SECRET]).await;
    // 20,000 events with a delivery each to a and b, one attempt each.
    client
        .batch_execute(&format!(
            "INSERT INTO tailhook.outbox (event_type, payload, dispatched_at) SELECT 'x', '{{}}', now() FROM generate_series(1, 20000);
             INSERT INTO tailhook.deliveries (outbox_id, endpoint_id, status, attempts, completed_at)
             SELECT o.id, e, 'succeeded', 1, now() FROM tailhook.outbox o, unnest(ARRAY[{a}, {b}]::bigint[]) e;
             INSERT INTO tailhook.attempts (delivery_id, attempt, started_at, duration_ms, status_code)
             SELECT id, 1, now(), 1, 200 FROM tailhook.deliveries;
             ANALYZE tailhook.outbox; ANALYZE tailhook.deliveries; ANALYZE tailhook.attempts; ANALYZE tailhook.endpoints;"
        ))
        .await
        .unwrap();
    let event: String = client
        .query_one("SELECT event_id::text FROM tailhook.outbox ORDER BY id OFFSET 777 LIMIT 1", &[])
        .await
        .unwrap()
        .get(0);
    let lookups = [
        format!("SELECT * FROM tailhook.delivery_log WHERE event_id = '{event}'"),
        "SELECT * FROM tailhook.delivery_log WHERE endpoint = 'b' ORDER BY delivery_id DESC LIMIT 50".to_owned(),
        "SELECT * FROM tailhook.delivery_log WHERE endpoint_id = 1 AND status = 'failed'".to_owned(),
    ];
    for sql in &lookups {
        let plan: String = client
            .query(&format!("EXPLAIN {sql}"), &[])
            .await
            .unwrap()
            .iter()
            .map(|r| r.get::<_, String>(0))
            .collect::<Vec<_>>()
            .join("\n");
        for table in ["outbox", "deliveries", "attempts"] {
            let whole = read_whole(&client, &plan, table).await;
            assert!(whole.is_empty(), "{sql} reads all of {whole:?}:\n{plan}");
        }
    }
    let n = db.count(&format!("SELECT count(*) FROM tailhook.delivery_log WHERE event_id = '{event}'")).await;
    assert_eq!(n, 2);
}
