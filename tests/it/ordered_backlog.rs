//! A large blocked backlog of an ordered endpoint: due claims find each key's head without reading the deliveries behind it.

use crate::support::*;
use std::time::Duration;
use tailhook::db::{Db, Lease, Rooms};
use tokio::time::Instant;

/// The fastest of five due claims over every endpoint, each with room for
/// 100 (nothing is due in the database when this runs, so nothing is leased).
async fn due_claim_time(pool: &Db, endpoint_ids: &[i64]) -> Duration {
    let lease = Lease {
        replica: "timing",
        token: 1,
        default_timeout_ms: 1_000,
        margin_ms: 0,
        max_payload_bytes: 1 << 20,
        claim_bytes: 16 << 20,
    };
    let rooms = Rooms { endpoint_ids: endpoint_ids.to_vec(), room: vec![100; endpoint_ids.len()], default_room: 100 };
    let mut fastest = Duration::MAX;
    for _ in 0..5 {
        let start = Instant::now();
        let taken = pool.claim_due(500, 500, lease, &rooms).await.expect("due claim");
        fastest = fastest.min(start.elapsed());
        assert!(taken.is_empty(), "nothing is due");
    }
    fastest
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_million_waiting_keyed_deliveries_leave_another_endpoints_retries_on_time() {
    const KEYS: i64 = 1_000;
    const PER_KEY: i64 = 1_000;
    const OTHER: i64 = 200;
    let db = TestDb::new().await;
    // The other endpoint fails each event's first attempt: every one needs a retry.
    let receiver =
        Receiver::start(|path, seen| if path == "/other" && seen == 0 { Reply::status(500) } else { Reply::ok() })
            .await;
    let client = db.migrate().await;
    let ordered = add_endpoint(&client, "ordered", &receiver.url("/ordered"), &[]).await;
    let other = add_endpoint(&client, "other", &receiver.url("/other"), &[]).await;
    client
        .batch_execute(&format!(
            "UPDATE tailhook.endpoints SET ordered = true, event_types = '{{keyed}}' WHERE id = {ordered};
             UPDATE tailhook.endpoints SET event_types = '{{o}}' WHERE id = {other};"
        ))
        .await
        .unwrap();
    let pool = Db::new(&db.config().database).unwrap();
    let without = due_claim_time(&pool, &[ordered, other]).await;

    // 1,000 keys, each with its head retrying in an hour and 999 deliveries
    // waiting behind it, as a fan-out leaves them (unscheduled: see
    // `waiting_deliveries_are_unscheduled_until_their_head_finishes_whoever_finishes_it`).
    let filled = Instant::now();
    client
        .execute(
            "INSERT INTO tailhook.deliveries (outbox_id, endpoint_id, ordering_key, status, attempts, next_attempt_at)
             SELECT k * $3::bigint + s, $1, 'k' || k,
                    CASE WHEN s = 1 THEN 'retrying' ELSE 'pending' END, (s = 1)::int,
                    CASE WHEN s = 1 THEN now() + interval '1 hour' END
               FROM generate_series(1, $2::bigint) k, generate_series(1, $3::bigint) s",
            &[&ordered, &KEYS, &PER_KEY],
        )
        .await
        .unwrap();
    client.batch_execute("ANALYZE tailhook.deliveries").await.unwrap();
    let filled = filled.elapsed();
    let with = due_claim_time(&pool, &[ordered, other]).await;
    eprintln!(
        "due claim: {without:?} without the backlog, {with:?} with {} waiting (filled in {filled:?})",
        KEYS * PER_KEY
    );

    let mut config = db.config();
    config.delivery.backoff_initial_ms = 100;
    let sidecar = Sidecar::start(config);
    client
        .execute(
            "INSERT INTO tailhook.outbox (event_type, payload) SELECT 'o', '{}' FROM generate_series(1, $1::bigint)",
            &[&OTHER],
        )
        .await
        .unwrap();
    let published = Instant::now();
    wait_for("the other endpoint's retries", Duration::from_secs(20), || async {
        succeeded(&db, "other").await >= OTHER
    })
    .await;
    let took = published.elapsed();
    sidecar.stop().await;
    // How late each retry went: its start after the first attempt ended plus
    // the longest first delay (100 ms + 20 % jitter).
    let late_ms: f64 = client
        .query_one(
            "SELECT coalesce(max(extract(epoch FROM a2.started_at
                        - (a1.started_at + a1.duration_ms * interval '1 ms' + interval '120 ms')) * 1000), 0)::float8
               FROM tailhook.attempts a1
               JOIN tailhook.attempts a2 ON a2.delivery_id = a1.delivery_id AND a2.attempt = 2
              WHERE a1.attempt = 1",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    eprintln!("{OTHER} retried events delivered in {took:?}; the latest retry went {late_ms:.0} ms after it was due");
    assert_eq!(db.count("SELECT count(*) FROM tailhook.attempts a WHERE a.attempt = 2").await, OTHER);
    assert!(late_ms < 1_000.0, "a retry went {late_ms:.0} ms late");
    assert!(with < Duration::from_millis(250), "a due claim took {with:?} with the backlog ({without:?} without)");
    assert_eq!(receiver.received().iter().filter(|r| r.path == "/ordered").count(), 0, "no head was due");
}

/// next_attempt_at of the deliveries of `key`, in outbox order.
async fn schedule_of(client: &tokio_postgres::Client, key: &str) -> Vec<(String, bool)> {
    client
        .query(
            "SELECT status, next_attempt_at IS NOT NULL FROM tailhook.deliveries WHERE ordering_key = $1 ORDER BY outbox_id",
            &[&key],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiting_deliveries_are_unscheduled_until_their_head_finishes_whoever_finishes_it() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    let db = TestDb::new().await;
    let failing = Arc::new(AtomicBool::new(true));
    let fail = failing.clone();
    let receiver =
        Receiver::start(move |_, _| if fail.load(Ordering::SeqCst) { Reply::status(500) } else { Reply::ok() }).await;
    let client = db.migrate().await;
    let id = add_endpoint(&client, "ordered", &receiver.url("/ordered"), &[]).await;
    client.execute("UPDATE tailhook.endpoints SET ordered = true WHERE id = $1", &[&id]).await.unwrap();
    let mut config = db.config();
    // A failed head stays in backoff for the whole test unless something moves its key on.
    config.delivery.backoff_initial_ms = 60_000;
    config.delivery.backoff_max_ms = 60_000;
    let sidecar = Sidecar::start(config);
    client
        .batch_execute(
            "INSERT INTO tailhook.outbox (event_type, payload, ordering_key)
             SELECT 'o', jsonb_build_object('seq', s), k FROM unnest('{a,b}'::text[]) k, generate_series(1, 3) s
              ORDER BY s, k",
        )
        .await
        .unwrap();
    wait_for("both heads failed once", Duration::from_secs(10), || async {
        db.count("SELECT count(*) FROM tailhook.deliveries WHERE status = 'retrying' AND attempts = 1").await == 2
    })
    .await;
    let retrying = ("retrying".to_owned(), true);
    let waiting = ("pending".to_owned(), false);
    for key in ["a", "b"] {
        assert_eq!(schedule_of(&client, key).await, [retrying.clone(), waiting.clone(), waiting.clone()], "key {key}");
    }

    // An operator cancels a's head: its next delivery is due at once, and the
    // one after it when that succeeds. b stays blocked behind its head.
    failing.store(false, Ordering::SeqCst);
    let sent_before = receiver.count();
    client
        .execute("UPDATE tailhook.deliveries SET status = 'cancelled' WHERE ordering_key = 'a' AND attempts = 1", &[])
        .await
        .unwrap();
    wait_for("a's other two deliveries", Duration::from_secs(10), || async {
        db.count("SELECT count(*) FROM tailhook.deliveries WHERE ordering_key = 'a' AND status = 'succeeded'").await
            == 2
    })
    .await;
    let sent: Vec<i64> =
        receiver.received()[sent_before..].iter().filter_map(|r| r.json()["data"]["seq"].as_i64()).collect();
    assert_eq!(sent, [2, 3], "a's events after the cancelled one, in order, and nothing of b");
    assert_eq!(schedule_of(&client, "b").await, [retrying.clone(), waiting.clone(), waiting.clone()]);

    // Deleting b's head (here with its event) moves b on the same way.
    client
        .execute(
            "DELETE FROM tailhook.outbox WHERE id = (SELECT outbox_id FROM tailhook.deliveries
                                                       WHERE ordering_key = 'b' AND attempts = 1)",
            &[],
        )
        .await
        .unwrap();
    wait_for("b's other two deliveries", Duration::from_secs(10), || async {
        db.count("SELECT count(*) FROM tailhook.deliveries WHERE ordering_key = 'b' AND status = 'succeeded'").await
            == 2
    })
    .await;
    sidecar.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upgrading_unschedules_the_deliveries_already_waiting_behind_their_heads() {
    let db = TestDb::new().await;
    let mut client = db.client().await;
    // The schema as it was before version 9, with deliveries as that version
    // wrote them: every waiting delivery scheduled.
    for (version, _, sql) in tailhook::db::MIGRATIONS.iter().filter(|m| m.0 < 9) {
        client.batch_execute(sql).await.unwrap_or_else(|e| panic!("migration {version}: {e}"));
    }
    client
        .batch_execute(
            "INSERT INTO tailhook.endpoints (name, url, ordered) VALUES ('ordered', 'http://127.0.0.1:9/', true);
             INSERT INTO tailhook.deliveries (outbox_id, endpoint_id, ordering_key, status, attempts, next_attempt_at)
             SELECT s, 1, 'k', CASE WHEN s = 1 THEN 'retrying' ELSE 'pending' END, (s = 1)::int,
                    now() + CASE WHEN s = 1 THEN interval '1 hour' ELSE interval '0' END
               FROM generate_series(1, 3) s;
             INSERT INTO tailhook.deliveries (outbox_id, endpoint_id, status) VALUES (4, 1, 'pending');",
        )
        .await
        .unwrap();
    tailhook::db::migrate(&mut client).await.expect("migrate");
    let retrying = ("retrying".to_owned(), true);
    let waiting = ("pending".to_owned(), false);
    assert_eq!(schedule_of(&client, "k").await, [retrying, waiting.clone(), waiting]);
    assert_eq!(
        db.count("SELECT count(*) FROM tailhook.deliveries WHERE outbox_id = 4 AND next_attempt_at IS NOT NULL").await,
        1,
        "unkeyed: untouched"
    );
    // The head fails for good: the next one is due.
    client.execute("UPDATE tailhook.deliveries SET status = 'failed' WHERE outbox_id = 1", &[]).await.unwrap();
    let schedule = schedule_of(&client, "k").await;
    assert_eq!(schedule, [("failed".to_owned(), true), ("pending".to_owned(), true), ("pending".to_owned(), false)]);
}
