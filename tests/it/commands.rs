//! The operator commands through the real binary: `status`, `send-test` and `demo`.

use crate::support::*;
use serde_json::Value;
use std::time::Duration;

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_shows_backlog_recent_outcomes_age_and_state_per_endpoint() {
    let db = TestDb::new().await;
    let client = db.migrate().await;
    let receiver = Receiver::start(|path, _| if path == "/down" { Reply::status(500) } else { Reply::ok() }).await;
    add_endpoint(&client, "ok", &receiver.url("/ok"), &[SECRET]).await;
    add_endpoint(&client, "down", &receiver.url("/down"), &[SECRET]).await;
    client.execute("UPDATE tailhook.endpoints SET max_attempts = 1 WHERE name = 'down'", &[]).await.unwrap();
    // Real deliveries: three succeed to `ok`, three fail to `down`.
    let sidecar = Sidecar::start(db.config());
    client.batch_execute("SELECT tailhook.publish('t', '{}') FROM generate_series(1, 3)").await.unwrap();
    wait_settled(&db, 6, Duration::from_secs(15)).await;
    sidecar.stop().await;
    // History outside the window, a backlog whose oldest event is an hour
    // old, and endpoints in every state.
    client
        .batch_execute(
            "INSERT INTO tailhook.outbox (event_type, payload, created_at, dispatched_at)
               VALUES ('old', '{}', now() - interval '3 days', now()),
                      ('late', '{}', now() - interval '1 hour', now()),
                      ('later', '{}', now() - interval '1 minute', now());
             INSERT INTO tailhook.deliveries (outbox_id, endpoint_id, status, attempts, completed_at)
               SELECT o.id, e.id, CASE e.name WHEN 'ok' THEN 'succeeded' ELSE 'failed' END, 1, now() - interval '2 days'
                 FROM tailhook.outbox o, tailhook.endpoints e WHERE o.event_type = 'old';
             INSERT INTO tailhook.deliveries (outbox_id, endpoint_id, status, attempts, next_attempt_at)
               SELECT o.id, e.id, CASE o.event_type WHEN 'late' THEN 'retrying' ELSE 'pending' END, 0, now() + interval '1 hour'
                 FROM tailhook.outbox o, tailhook.endpoints e WHERE o.event_type IN ('late', 'later') AND e.name = 'ok';
             INSERT INTO tailhook.endpoints (name, url, paused_until) VALUES ('paused', 'http://p', now() + interval '1 hour');
             INSERT INTO tailhook.endpoints (name, url, enabled, disabled_reason)
               VALUES ('off', 'http://o', false, 'answered 410 Gone at 2026-11-22 10:00:00+00');
             INSERT INTO tailhook.endpoints (name, url, invalid_reason) VALUES ('broken', 'http://b', 'url: bad host');",
        )
        .await
        .unwrap();

    let out = tailhook(&["status", "--json"], &[("DATABASE_URL", &db.url)]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let report: Value = serde_json::from_slice(&out.stdout).expect("status --json prints JSON");
    assert_eq!(report["window"], "24h");
    let rows = report["endpoints"].as_array().unwrap();
    let names: Vec<&str> = rows.iter().map(|r| r["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["broken", "down", "off", "ok", "paused"], "one row per endpoint, by name");
    let row = |name: &str| rows.iter().find(|r| r["name"] == name).unwrap().clone();

    let ok = row("ok");
    assert_eq!((ok["pending"].as_i64(), ok["retrying"].as_i64()), (Some(1), Some(1)));
    assert_eq!(ok["succeeded_in_window"], 3, "the success two days ago is outside the window");
    assert_eq!((ok["failed"].as_i64(), ok["success_rate_in_window"].as_f64()), (Some(0), Some(1.0)));
    let age = ok["oldest_undelivered_age_secs"].as_i64().unwrap();
    assert!((3600..3700).contains(&age), "the oldest undelivered event is an hour old: {age}");
    assert_eq!(ok["state"], "enabled");

    let down = row("down");
    assert_eq!(down["failed"], 4, "every failed delivery still recorded");
    assert_eq!(down["failed_in_window"], 3);
    assert_eq!(down["succeeded_in_window"], 0);
    assert_eq!(down["success_rate_in_window"], 0.0, "finished deliveries, not attempts");
    assert_eq!(down["oldest_undelivered_age_secs"], Value::Null, "nothing undelivered");

    assert_eq!(row("paused")["state"], "paused");
    assert!(row("paused")["paused_until"].as_str().unwrap().ends_with('Z'));
    assert_eq!(
        (row("off")["state"].as_str(), row("off")["disabled_reason"].as_str()),
        (Some("disabled"), Some("answered 410 Gone at 2026-11-22 10:00:00+00"))
    );
    assert_eq!(
        (row("broken")["state"].as_str(), row("broken")["invalid_reason"].as_str()),
        (Some("invalid"), Some("url: bad host"))
    );
    assert_eq!(row("broken")["success_rate_in_window"], Value::Null, "no finished delivery: no rate");

    // The table says the same.
    let out = tailhook(&["status"], &[("DATABASE_URL", &db.url)]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let table = text(&out.stdout);
    let cells = |name: &str| -> Vec<String> {
        let line =
            table.lines().find(|l| l.contains(&format!(" {name} "))).unwrap_or_else(|| panic!("{name}: {table}"));
        line.split(['│', '┆']).map(str::trim).filter(|c| !c.is_empty()).map(str::to_owned).collect()
    };
    assert_eq!(cells("ok"), ["ok", "1", "1", "0", "3", "100.0 %", "1h 0m", "enabled"]);
    assert_eq!(cells("down"), ["down", "0", "0", "4", "0", "0.0 %", "-", "enabled"]);
    assert!(cells("paused")[7].starts_with("paused until 20"), "{table}");
    assert_eq!(cells("off")[7], "disabled: answered 410 Gone at 2026-11-22 10:00:00+00");
    assert_eq!(cells("broken")[7], "invalid: url: bad host");
    assert!(table.contains("succeeded (24h)") && table.contains("not attempts"), "{table}");

    // A window that is not an interval is bad input.
    let out = tailhook(&["status", "--window", "fortnight-ish"], &[("DATABASE_URL", &db.url)]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).starts_with("tailhook: invalid --window `fortnight-ish`"), "{}", text(&out.stderr));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_test_sends_one_signed_request_through_the_sender_and_records_nothing() {
    let db = TestDb::new().await;
    let client = db.migrate().await;
    let receiver = Receiver::start(|path, _| match path {
        "/ok" => Reply::ok().body("thanks\nreceived"),
        "/slow" => Reply::ok().after(Duration::from_secs(3)),
        _ => Reply::status(500).body("boom"),
    })
    .await;
    add_endpoint(&client, "ok", &receiver.url("/ok"), &[SECRET]).await;
    add_endpoint(&client, "down", &receiver.url("/down"), &[SECRET]).await;
    add_endpoint(&client, "slow", &receiver.url("/slow"), &[SECRET]).await;
    client
        .batch_execute(
            "UPDATE tailhook.endpoints SET headers = '{\"x-team\": \"payments\"}' WHERE name = 'ok';
             UPDATE tailhook.endpoints SET timeout_ms = 300 WHERE name = 'slow';",
        )
        .await
        .unwrap();
    let open = [("DATABASE_URL", db.url.as_str()), ("TAILHOOK_DELIVERY__ALLOW_PRIVATE_NETWORKS", "true")];

    // A 2xx: exit 0, the status, latency and the start of the response.
    let out = tailhook(&["send-test", "ok", "--event-type", "invoice.paid", "--data", r#"{"amount": 5}"#], &open);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    assert!(stdout.contains("HTTP 200 in "), "{stdout}");
    assert!(stdout.contains("response: thanks received"), "{stdout}");
    let got = receiver.received();
    assert_eq!(got.len(), 1, "exactly one request");
    verify(SECRET, &got[0].headers, &got[0].body).expect("signed the Standard Webhooks way");
    assert_eq!(got[0].headers.get("x-team").unwrap(), "payments", "the endpoint's own headers");
    let body = got[0].json();
    assert_eq!((body["type"].as_str(), &body["data"]), (Some("invoice.paid"), &serde_json::json!({"amount": 5})));
    assert!(stdout.contains(&format!("webhook-id {}", got[0].webhook_id())), "{stdout}");

    // A non-2xx: exit 1, the response shown, one line on stderr.
    let out = tailhook(&["send-test", "down"], &open);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stdout).contains("HTTP 500 in ") && text(&out.stdout).contains("response: boom"));
    let err = text(&out.stderr);
    assert_eq!(err.trim(), "tailhook: test request to `down` failed (http_status): HTTP 500");
    assert_eq!(receiver.received()[1].json()["type"], "tailhook.test", "the default event type");

    // The endpoint's timeout is the one deadline.
    let out = tailhook(&["send-test", "slow"], &open);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("failed (timeout): no complete response within 300 ms"),
        "{}",
        text(&out.stderr)
    );

    // The destination policy applies: without the opt-in, loopback is refused and nothing is sent.
    let before = receiver.count();
    let out = tailhook(&["send-test", "ok"], &[("DATABASE_URL", &db.url)]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(err.contains("(blocked_address)") && err.contains("delivery.allow_private_networks = true"), "{err}");
    assert_eq!(receiver.count(), before);

    // Bad input exits 2.
    for (args, expected) in [
        (&["send-test", "nope"][..], "tailhook: no endpoint named `nope`"),
        (
            &["send-test", "ok", "--data", "{amount"][..],
            "tailhook: --data is not JSON: key must be a string at line 1 column 2",
        ),
    ] {
        let out = tailhook(args, &open);
        assert_eq!((out.status.code(), text(&out.stderr).trim()), (Some(2), expected), "{args:?}");
    }

    assert_eq!(db.count("SELECT count(*) FROM tailhook.deliveries").await, 0, "nothing recorded");
    assert_eq!(db.count("SELECT count(*) FROM tailhook.attempts").await, 0, "nothing recorded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_delivers_retries_verifies_signatures_and_drops_its_database_within_30_s() {
    let server = server();
    let started = std::time::Instant::now();
    let out = tokio::task::spawn_blocking({
        let url = server.admin_url.clone();
        move || tailhook(&["demo"], &[("DATABASE_URL", &url)])
    })
    .await
    .unwrap();
    let elapsed = started.elapsed();
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    assert!(elapsed < Duration::from_secs(30), "took {elapsed:?}");
    for expected in [
        "retrying: attempt 1 got HTTP 503",
        "retrying: attempt 2 got HTTP 503",
        "succeeded (HTTP 200) after 3 attempts",
        "all 6 deliveries succeeded: 6 retries on the way, and all 12 requests carried a Standard Webhooks signature the receiver verified",
        "FROM tailhook.attempts a",
    ] {
        assert!(stdout.contains(expected), "`{expected}` in:\n{stdout}");
    }
    assert_eq!(stdout.matches("signature verified").count(), 12, "the receiver verified each request:\n{stdout}");
    assert!(!stdout.contains("INVALID"), "{stdout}");
    let database = stdout
        .split_whitespace()
        .find(|w| w.starts_with("tailhook_demo_"))
        .unwrap_or_else(|| panic!("the demo names its database:\n{stdout}"))
        .to_owned();
    assert!(stdout.contains(&format!("dropped database {database}")), "{stdout}");
    let admin = connect(&server.admin_url).await;
    let left: i64 =
        admin.query_one("SELECT count(*) FROM pg_database WHERE datname = $1", &[&database]).await.unwrap().get(0);
    assert_eq!(left, 0, "{database} is gone");
}

/// `status` must stay cheap on large tables: every figure comes from an
/// index whose predicate the query matches, so with sequential scans priced
/// out (as they are on a large table) the plan range-scans them and never
/// reads an endpoint's whole history.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_query_is_answered_from_partial_indexes() {
    let db = TestDb::new().await;
    let client = db.migrate().await;
    let sql = include_str!("../../sql/queries/endpoint_status.sql");
    client
        .batch_execute(
            "INSERT INTO tailhook.endpoints (name, url) VALUES ('a', 'http://a'), ('b', 'http://b');
             INSERT INTO tailhook.deliveries (outbox_id, endpoint_id, status, attempts, completed_at)
               SELECT g, e.id, CASE WHEN g % 100 = 0 THEN 'failed' ELSE 'succeeded' END, 1,
                      now() - g * interval '30 seconds'
                 FROM generate_series(1, 20000) g, tailhook.endpoints e;
             INSERT INTO tailhook.deliveries (outbox_id, endpoint_id, status)
               SELECT g, e.id, 'pending' FROM generate_series(20001, 20100) g, tailhook.endpoints e;",
        )
        .await
        .unwrap();
    client.batch_execute("VACUUM ANALYZE tailhook.deliveries").await.unwrap();
    client
        .batch_execute(&format!("SET enable_seqscan = off; PREPARE status(text, text, bigint, text) AS {sql};"))
        .await
        .unwrap();
    let plan: String = client
        .query("EXPLAIN (COSTS OFF) EXECUTE status('24h', '', NULL, NULL)", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get::<_, String>(0) + "\n")
        .collect();
    // Rows written without event_at live in the undated partition, whose
    // indexes are named after the partitioned table's (sql/0031_partitions.sql).
    for index in [
        "deliveries_undated_due",
        "Index Only Scan using deliveries_undated_succeeded",
        "Index Only Scan using deliveries_undated_failed",
    ] {
        assert!(plan.contains(index), "{index} in:\n{plan}");
    }
    assert!(!plan.contains("Seq Scan on deliveries"), "{plan}");
}
