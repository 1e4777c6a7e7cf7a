//! End-to-end: committed events arrive once and verify, crashes and replicas lose nothing, SQL changes apply live.

use crate::support::*;
use std::collections::HashSet;
use std::process::Stdio;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn committed_events_arrive_once_verified_and_rolled_back_never() {
    let db = TestDb::new().await;
    let receiver = Receiver::ok().await;
    let mut client = db.migrate().await;
    add_endpoint(&client, "main", &receiver.url("/hook"), &[SECRET]).await;
    let sidecar = Sidecar::start(db.config());

    let mut committed = HashSet::new();
    for i in 0..40 {
        let tx = client.transaction().await.unwrap();
        let id: String = tx
            .query_one(
                "SELECT tailhook.publish('invoice.paid', jsonb_build_object('n', $1::int, 'note', 'é \"q\"'))::text",
                &[&i],
            )
            .await
            .unwrap()
            .get(0);
        if i % 2 == 0 {
            tx.commit().await.unwrap();
            committed.insert(id);
        } else {
            tx.rollback().await.unwrap();
        }
    }
    wait_settled(&db, 20, Duration::from_secs(20)).await;
    sidecar.stop().await;

    let received = receiver.received();
    let ids: Vec<String> = received.iter().map(|r| r.webhook_id()).collect();
    assert_eq!(ids.len(), 20, "exactly the committed events, once each");
    assert_eq!(ids.iter().cloned().collect::<HashSet<_>>(), committed);
    for r in &received {
        verify(SECRET, &r.headers, &r.body).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(r.headers["content-type"], "application/json");
        assert!(r.headers["user-agent"].to_str().unwrap().starts_with("tailhook/"));
        let body = r.json();
        assert_eq!(body["id"], r.webhook_id());
        assert_eq!(body["type"], "invoice.paid");
        assert_eq!(body["data"]["note"], "é \"q\"");
        assert!(body["timestamp"].as_str().unwrap().ends_with('Z'));
    }
    let rows = client
        .query(
            "SELECT d.status, d.attempts, d.completed_at IS NOT NULL, d.locked_until IS NULL, a.status_code, a.error_kind
               FROM tailhook.deliveries d JOIN tailhook.attempts a ON a.delivery_id = d.id",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(rows.len(), 20);
    for row in rows {
        assert_eq!(row.get::<_, String>(0), "succeeded");
        assert_eq!(row.get::<_, i32>(1), 1);
        assert!(row.get::<_, bool>(2) && row.get::<_, bool>(3));
        assert_eq!(row.get::<_, Option<i32>>(4), Some(200));
        assert_eq!(row.get::<_, Option<String>>(5), None);
    }
    assert_eq!(db.count("SELECT count(*) FROM tailhook.outbox WHERE dispatched_at IS NULL").await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_failing_twice_then_succeeding_gets_three_attempts_with_growing_delays() {
    let db = TestDb::new().await;
    let receiver = Receiver::start(|_, seen| if seen < 2 { Reply::status(500) } else { Reply::ok() }).await;
    let client = db.migrate().await;
    add_endpoint(&client, "flaky", &receiver.url("/flaky"), &[]).await;
    let mut config = db.config();
    config.delivery.backoff_initial_ms = 300;
    let sidecar = Sidecar::start(config);
    client.execute("SELECT tailhook.publish('a.b', '{}')", &[]).await.unwrap();
    wait_settled(&db, 1, Duration::from_secs(20)).await;
    sidecar.stop().await;

    let row = client
        .query_one("SELECT status, attempts, last_status_code, last_error FROM tailhook.deliveries", &[])
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "succeeded");
    assert_eq!(row.get::<_, i32>(1), 3);
    assert_eq!(row.get::<_, Option<i32>>(2), Some(200));
    assert_eq!(row.get::<_, Option<String>>(3), None);
    let attempts = client
        .query(
            "SELECT attempt, status_code, error_kind, error, extract(epoch FROM started_at)::float8
               FROM tailhook.attempts ORDER BY attempt",
            &[],
        )
        .await
        .unwrap();
    let codes: Vec<(i32, Option<i32>, Option<String>)> =
        attempts.iter().map(|r| (r.get(0), r.get(1), r.get(2))).collect();
    assert_eq!(
        codes,
        vec![
            (1, Some(500), Some("http_status".into())),
            (2, Some(500), Some("http_status".into())),
            (3, Some(200), None)
        ]
    );
    assert_eq!(attempts[0].get::<_, Option<String>>(3).as_deref(), Some("HTTP 500"));
    let t: Vec<f64> = attempts.iter().map(|r| r.get(4)).collect();
    let (first_gap, second_gap) = (t[1] - t[0], t[2] - t[1]);
    // 300 ms then 600 ms, ±20% jitter: the second is always the longer.
    assert!(first_gap >= 0.24, "first delay {first_gap}");
    assert!(second_gap > first_gap, "delays grow: {first_gap} then {second_gap}");
    assert_eq!(receiver.count(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_always_failing_receiver_ends_failed_after_max_attempts() {
    let db = TestDb::new().await;
    let receiver = Receiver::start(|_, _| Reply::status(503)).await;
    let client = db.migrate().await;
    let id = add_endpoint(&client, "down", &receiver.url("/down"), &[]).await;
    client.execute("UPDATE tailhook.endpoints SET max_attempts = 3 WHERE id = $1", &[&id]).await.unwrap();
    let sidecar = Sidecar::start(db.config());
    client.execute("SELECT tailhook.publish('a.b', '{}')", &[]).await.unwrap();
    wait_settled(&db, 1, Duration::from_secs(20)).await;
    sidecar.stop().await;

    let row = client
        .query_one(
            "SELECT status, attempts, last_error, completed_at IS NOT NULL, next_attempt_at FROM tailhook.deliveries",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "failed");
    assert_eq!(row.get::<_, i32>(1), 3);
    assert_eq!(row.get::<_, String>(2), "HTTP 503 (gave up after 3 attempts)");
    assert!(row.get::<_, bool>(3));
    assert_eq!(row.get::<_, Option<std::time::SystemTime>>(4), None);
    assert_eq!(db.count("SELECT count(*) FROM tailhook.attempts").await, 3);
    assert_eq!(receiver.count(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_batch_loses_nothing_and_bounds_duplicates() {
    const EVENTS: i64 = 3_000;
    const CONCURRENCY: usize = 32;
    let db = TestDb::new().await;
    let receiver = Receiver::start(|_, _| Reply::ok().after(Duration::from_millis(3))).await;
    let client = db.migrate().await;
    add_endpoint(&client, "main", &receiver.url("/hook"), &[]).await;
    client
        .execute("INSERT INTO tailhook.outbox (event_type, payload) SELECT 'bulk', jsonb_build_object('n', g) FROM generate_series(1, $1::bigint) g", &[&EVENTS])
        .await
        .unwrap();

    let spawn = || {
        tailhook_command()
            .arg("run")
            .env("TAILHOOK_DATABASE__URL", &db.url)
            .env("TAILHOOK_DELIVERY__ALLOW_PRIVATE_NETWORKS", "true")
            .env("TAILHOOK_DELIVERY__CONCURRENCY", CONCURRENCY.to_string())
            .env("TAILHOOK_DELIVERY__TIMEOUT_MS", "2000")
            .env("TAILHOOK_DELIVERY__LEASE_MARGIN_MS", "1000")
            .env("TAILHOOK_LOG__LEVEL", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .expect("start tailhook")
    };
    let mut child = spawn();
    wait_for("a third of the events delivered", Duration::from_secs(30), || async { receiver.count() >= 1_000 }).await;
    child.kill().expect("SIGKILL"); // std's kill() sends SIGKILL
    child.wait().unwrap();
    let at_kill = receiver.count();
    assert!(at_kill < EVENTS as usize, "killed mid-batch, not after the end ({at_kill})");

    let mut child = spawn();
    wait_settled(&db, EVENTS, Duration::from_secs(60)).await;
    child.kill().unwrap();
    child.wait().unwrap();

    let per_id = receiver.per_id();
    assert_eq!(per_id.len(), EVENTS as usize, "every event delivered");
    let duplicates: usize = per_id.values().map(|n| n - 1).sum();
    // Only what was in flight or not yet recorded at the kill can repeat:
    // the requests in flight plus the result channel and the batch being written.
    let bound = CONCURRENCY + 2 * CONCURRENCY.max(64);
    assert!(duplicates <= bound, "{duplicates} duplicates, bound {bound}");
    assert_eq!(db.count("SELECT count(*) FROM tailhook.deliveries WHERE status = 'succeeded'").await, EVENTS);
    eprintln!("sigkill: {at_kill} delivered before the kill, {duplicates} duplicates after restart");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_deliver_every_event_exactly_once() {
    const EVENTS: i64 = 2_000;
    let db = TestDb::new().await;
    let receiver = Receiver::ok().await;
    let client = db.migrate().await;
    add_endpoint(&client, "main", &receiver.url("/hook"), &[]).await;
    let mut config = db.config();
    config.delivery.batch_size = 50; // small claims, so the replicas interleave
    let a = Sidecar::start(config.clone());
    let b = Sidecar::start(config);
    for chunk in 0..20 {
        client
            .execute(
                "INSERT INTO tailhook.outbox (event_type, payload) SELECT 'bulk', jsonb_build_object('n', g) FROM generate_series(1, $1::bigint) g",
                &[&(EVENTS / 20)],
            )
            .await
            .unwrap();
        if chunk % 5 == 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    wait_settled(&db, EVENTS, Duration::from_secs(60)).await;
    a.stop().await;
    b.stop().await;

    let per_id = receiver.per_id();
    assert_eq!(per_id.len(), EVENTS as usize);
    let repeated: Vec<_> = per_id.iter().filter(|(_, n)| **n != 1).collect();
    assert!(repeated.is_empty(), "delivered more than once: {repeated:?}");
    assert_eq!(db.count("SELECT count(*) FROM tailhook.attempts").await, EVENTS);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endpoint_inserted_with_sql_receives_the_next_events() {
    let db = TestDb::new().await;
    let receiver = Receiver::ok().await;
    let client = db.migrate().await;
    let sidecar = Sidecar::start(db.config());

    // No endpoint yet: the event is dispatched with no delivery, not lost or stuck.
    client.execute("SELECT tailhook.publish('early', '{}')", &[]).await.unwrap();
    wait_for("the unmatched event dispatched", Duration::from_secs(5), || async {
        db.count("SELECT count(*) FROM tailhook.outbox WHERE dispatched_at IS NOT NULL").await == 1
    })
    .await;
    assert_eq!(db.count("SELECT count(*) FROM tailhook.deliveries").await, 0);

    add_endpoint(&client, "late", &receiver.url("/late"), &[]).await;
    client.execute("SELECT tailhook.publish('later', '{}')", &[]).await.unwrap();
    wait_for("the new endpoint receives the next event", Duration::from_secs(5), || async { receiver.count() == 1 })
        .await;
    sidecar.stop().await;
    assert_eq!(receiver.received()[0].json()["type"], "later");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_releases_unfinished_leases_and_a_restart_delivers_them() {
    let db = TestDb::new().await;
    let slow =
        Receiver::start(|_, seen| if seen == 0 { Reply::ok().after(Duration::from_secs(5)) } else { Reply::ok() })
            .await;
    let client = db.migrate().await;
    add_endpoint(&client, "slow", &slow.url("/slow"), &[]).await;
    let mut config = db.config();
    config.delivery.shutdown_grace_ms = 300;
    config.delivery.timeout_ms = 10_000;
    let sidecar = Sidecar::start(config.clone());
    for _ in 0..5 {
        client.execute("SELECT tailhook.publish('a', '{}')", &[]).await.unwrap();
    }
    wait_for("five requests in flight", Duration::from_secs(5), || async { slow.count() == 5 }).await;
    let stop_started = tokio::time::Instant::now();
    sidecar.stop().await;
    assert!(stop_started.elapsed() < Duration::from_secs(3), "stopped within the grace period");
    let row = client
        .query_one(
            "SELECT count(*) FILTER (WHERE status = 'pending' AND attempts = 0 AND locked_until IS NULL), count(*)
               FROM tailhook.deliveries",
            &[],
        )
        .await
        .unwrap();
    assert_eq!((row.get::<_, i64>(0), row.get::<_, i64>(1)), (5, 5), "leases released, nothing spent");

    let sidecar = Sidecar::start(config);
    wait_settled(&db, 5, Duration::from_secs(10)).await;
    sidecar.stop().await;
    assert_eq!(slow.count(), 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_listener_comes_back_after_its_backend_is_killed() {
    let db = TestDb::new().await;
    let receiver = Receiver::ok().await;
    let client = db.migrate().await;
    add_endpoint(&client, "main", &receiver.url("/hook"), &[]).await;
    let mut config = db.config();
    config.database.poll_interval_ms = 600_000; // only a notification can wake it
    let sidecar = Sidecar::start(config);
    let listener_pid = "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND query ILIKE 'LISTEN%'";
    wait_for("the listener connected", Duration::from_secs(5), || async {
        !client.query(listener_pid, &[]).await.unwrap().is_empty()
    })
    .await;
    client.execute("SELECT tailhook.publish('before', '{}')", &[]).await.unwrap();
    wait_for("woken by NOTIFY", Duration::from_secs(3), || async { receiver.count() == 1 }).await;

    let old: i32 = client.query_one(listener_pid, &[]).await.unwrap().get(0);
    client.execute("SELECT pg_terminate_backend($1)", &[&old]).await.unwrap();
    wait_for("a new listener", Duration::from_secs(10), || async {
        client.query(listener_pid, &[]).await.unwrap().iter().any(|r| r.get::<_, i32>(0) != old)
    })
    .await;
    client.execute("SELECT tailhook.publish('after', '{}')", &[]).await.unwrap();
    wait_for("woken by NOTIFY after reconnecting", Duration::from_secs(3), || async { receiver.count() == 2 }).await;
    sidecar.stop().await;
}

/// (name, enabled, disabled_reason, managed_by, event_types)
type EndpointState = (String, bool, Option<String>, String, Vec<String>);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_endpoints_are_upserted_and_removed_ones_disabled() {
    let db = TestDb::new().await;
    let receiver = Receiver::ok().await;
    db.migrate().await;
    let mut config = db.config();
    config.endpoints = tailhook::Config::from_toml(&format!(
        r#"
        [[endpoints]]
        name = "billing"
        url = "{}"
        event_types = ["invoice.*"]
        secret = "{SECRET}"
        headers = {{ "x-team" = "payments" }}
        [[endpoints]]
        name = "old"
        url = "{}"
        "#,
        receiver.url("/billing"),
        receiver.url("/old")
    ))
    .unwrap()
    .endpoints;
    let sidecar = Sidecar::start(config.clone());
    let client = db.client().await;
    client.execute("SELECT tailhook.publish('invoice.paid', '{}')", &[]).await.unwrap();
    wait_settled(&db, 2, Duration::from_secs(10)).await;
    sidecar.stop().await;
    let billing: Vec<_> = receiver.received().into_iter().filter(|r| r.path == "/billing").collect();
    assert_eq!(billing.len(), 1);
    assert_eq!(billing[0].headers["x-team"], "payments");
    verify(SECRET, &billing[0].headers, &billing[0].body).unwrap();

    // "old" leaves the file: disabled, not deleted; "billing" changes its types.
    config.endpoints.retain(|e| e.name == "billing");
    config.endpoints[0].event_types = vec!["refund.*".into()];
    let sidecar = Sidecar::start(config);
    wait_for("the file synced at start-up", Duration::from_secs(10), || async {
        db.count("SELECT count(*) FROM tailhook.endpoints WHERE name = 'old' AND NOT enabled").await == 1
    })
    .await;
    sidecar.stop().await;
    let rows = client
        .query(
            "SELECT name, enabled, disabled_reason, managed_by, event_types FROM tailhook.endpoints ORDER BY name",
            &[],
        )
        .await
        .unwrap();
    let got: Vec<EndpointState> = rows.iter().map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4))).collect();
    assert_eq!(
        got,
        vec![
            ("billing".into(), true, None, "config".into(), vec!["refund.*".into()]),
            ("old".into(), false, Some("removed from the config file".into()), "config".into(), vec!["*".into()]),
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endpoint_changed_with_sql_takes_effect_within_a_second() {
    let db = TestDb::new().await;
    let receiver = Receiver::ok().await;
    let client = db.migrate().await;
    let id = add_endpoint(&client, "moving", &receiver.url("/one"), &[]).await;
    let sidecar = Sidecar::start(db.config());
    client.execute("SELECT tailhook.publish('t', '{}')", &[]).await.unwrap();
    wait_for("the first event at the old url", Duration::from_secs(5), || async { receiver.count() == 1 }).await;

    client
        .execute("UPDATE tailhook.endpoints SET url = $1 WHERE id = $2", &[&receiver.url("/two"), &id])
        .await
        .unwrap();
    let changed = tokio::time::Instant::now();
    // Publish one event at a time until one arrives at the new url.
    loop {
        let before = receiver.count();
        client.execute("SELECT tailhook.publish('t', '{}')", &[]).await.unwrap();
        wait_for("the event delivered", Duration::from_secs(5), || async { receiver.count() > before }).await;
        if receiver.received().last().unwrap().path == "/two" {
            break;
        }
        assert!(
            changed.elapsed() < Duration::from_millis(1_500),
            "still sending to the old url after {:?}",
            changed.elapsed()
        );
    }
    assert!(changed.elapsed() < Duration::from_millis(1_500));
    sidecar.stop().await;
}
