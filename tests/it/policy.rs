//! Endpoint policies: in-flight and rate limits keep a slow or busy endpoint from hurting the others.

use crate::support::*;
use std::time::Duration;
use tokio::time::Instant;

/// Publishes `n` events of `event_type` in one statement.
async fn publish_many(client: &tokio_postgres::Client, event_type: &str, n: i64) {
    client
        .execute(
            "INSERT INTO tailhook.outbox (event_type, payload) SELECT $1, jsonb_build_object('n', g) FROM generate_series(1, $2::bigint) g",
            &[&event_type, &n],
        )
        .await
        .unwrap();
}

/// Times, from now, until `endpoint` has `n` succeeded deliveries in `db`;
/// gives up after 30 s and returns that, so the caller's comparison fails.
async fn time_until_delivered(db: &TestDb, endpoint: &str, n: i64) -> Duration {
    let start = Instant::now();
    while succeeded(db, endpoint).await < n && start.elapsed() < Duration::from_secs(30) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    start.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_endpoint_does_not_slow_a_fast_one() {
    const EVENTS: i64 = 3_000;
    let receiver = Receiver::start(|path, _| match path {
        "/slow" => Reply::ok().after(Duration::from_secs(2)),
        _ => Reply::ok(),
    })
    .await;
    // Two sidecars side by side, on two databases: the fast endpoint alone,
    // and the fast endpoint beside a slow one. Running both at once means any
    // other load on the machine weighs on both alike.
    let (alone_db, beside_db) = (TestDb::new().await, TestDb::new().await);
    let mut sidecars = Vec::new();
    for db in [&alone_db, &beside_db] {
        let client = db.migrate().await;
        for (name, types) in [("fast", "{fast}"), ("slow", "{slow}")] {
            client
                .execute(
                    "INSERT INTO tailhook.endpoints (name, url, event_types) VALUES ($1, $2, $3::text::text[])",
                    &[&name, &receiver.url(&format!("/{name}")), &types],
                )
                .await
                .unwrap();
        }
        let mut config = db.config();
        config.delivery.concurrency = 64;
        config.delivery.max_in_flight = 16; // the default for every endpoint here
        sidecars.push(Sidecar::start(config));
    }
    let (alone, beside) = (alone_db.client().await, beside_db.client().await);

    // The slow endpoint gets more than enough work to fill every slot.
    publish_many(&beside, "slow", EVENTS).await;
    wait_for("the slow endpoint busy", Duration::from_secs(10), || async {
        receiver.received().iter().filter(|r| r.path == "/slow").count() >= 16
    })
    .await;
    // Events queued before the fast ones are fanned out first (outbox order);
    // let that finish so only the sending is compared. Without isolation it
    // never finishes here (the slow endpoint holds every slot), and the
    // comparison below fails.
    let fanned_out = Instant::now();
    while beside_db.count("SELECT count(*) FROM tailhook.outbox WHERE dispatched_at IS NULL").await > 0
        && fanned_out.elapsed() < Duration::from_secs(10)
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::join!(publish_many(&alone, "fast", EVENTS), publish_many(&beside, "fast", EVENTS));
    let (alone_took, beside_took) =
        tokio::join!(time_until_delivered(&alone_db, "fast", EVENTS), time_until_delivered(&beside_db, "fast", EVENTS));
    let slow_started = receiver.received().iter().filter(|r| r.path == "/slow").count();
    for sidecar in sidecars {
        sidecar.stop().await;
    }

    eprintln!(
        "fast endpoint: {alone_took:?} alone, {beside_took:?} beside a slow one ({slow_started} slow requests started)"
    );
    // Throughput within 20 %: time at most 1/0.8 of the time alone.
    assert!(
        beside_took.as_secs_f64() <= alone_took.as_secs_f64() / 0.8,
        "fast endpoint took {beside_took:?} beside the slow one, {alone_took:?} alone"
    );
    // The slow endpoint never had more than its share of slots: 16 per 2 s.
    let rounds = (beside_took.as_secs_f64() / 2.0).ceil() as usize + 2;
    assert!(slow_started <= 16 * rounds, "{slow_started} slow requests in {rounds} rounds of 2 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_in_flight_and_rate_limit_are_enforced() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    let db = TestDb::new().await;
    let peak = Arc::new(AtomicUsize::new(0));
    let receiver = Receiver::start(|_, _| Reply::ok().after(Duration::from_millis(200))).await;
    let client = db.migrate().await;
    let limited = add_endpoint(&client, "limited", &receiver.url("/limited"), &[]).await;
    client.execute("UPDATE tailhook.endpoints SET max_in_flight = 3 WHERE id = $1", &[&limited]).await.unwrap();
    let sidecar = Sidecar::start(db.config());
    publish_many(&client, "t", 30).await;
    // Sample the receiver's view of concurrency: requests started but not yet answered.
    let sampler = {
        let (receiver, peak) = (receiver.clone(), peak.clone());
        tokio::spawn(async move {
            loop {
                let now = Instant::now();
                let open = receiver
                    .received()
                    .iter()
                    .filter(|r| now.duration_since(r.at) < Duration::from_millis(190))
                    .count();
                peak.fetch_max(open, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
    };
    wait_settled(&db, 30, Duration::from_secs(20)).await;
    sampler.abort();
    assert!(peak.load(Ordering::SeqCst) <= 3, "at most 3 in flight, saw {}", peak.load(Ordering::SeqCst));
    assert!(peak.load(Ordering::SeqCst) >= 2, "the limit is used, saw {}", peak.load(Ordering::SeqCst));

    // 5 per second: 15 more events take about 2 s beyond the first second's burst.
    // A new sidecar reads the changed endpoint at start-up.
    sidecar.stop().await;
    client
        .execute(
            "UPDATE tailhook.endpoints SET max_in_flight = NULL, rate_limit_per_sec = 5 WHERE id = $1",
            &[&limited],
        )
        .await
        .unwrap();
    let sidecar = Sidecar::start(db.config());
    let before = receiver.count();
    let start = Instant::now();
    publish_many(&client, "t", 15).await;
    wait_settled(&db, 45, Duration::from_secs(20)).await;
    let took = start.elapsed();
    sidecar.stop().await;
    assert_eq!(receiver.count() - before, 15);
    assert!(took >= Duration::from_millis(1_800), "15 requests at 5/s took only {took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_circuit_breaker_pauses_a_failing_endpoint_probes_it_and_resumes() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    let db = TestDb::new().await;
    let up = Arc::new(AtomicBool::new(false));
    let flag = up.clone();
    let receiver =
        Receiver::start(move |_, _| if flag.load(Ordering::SeqCst) { Reply::ok() } else { Reply::status(500) }).await;
    let client = db.migrate().await;
    let id = add_endpoint(&client, "flaky", &receiver.url("/flaky"), &[]).await;
    client.execute("UPDATE tailhook.endpoints SET max_attempts = 1000 WHERE id = $1", &[&id]).await.unwrap();
    let mut config = db.config();
    config.delivery.backoff_initial_ms = 50;
    config.delivery.backoff_max_ms = 3_000; // also the longest pause
    config.delivery.breaker_after_ms = 400;
    config.delivery.breaker_min_failures = 5;
    let sidecar = Sidecar::start(config);
    publish_many(&client, "t", 10).await;

    // A burst of failures shorter than breaker_after_ms does not trip it.
    wait_for("five failures", Duration::from_secs(5), || async { receiver.count() >= 5 }).await;
    let row = client
        .query_one(
            "SELECT paused_until IS NOT NULL, extract(epoch FROM now() - failing_since)::float8 FROM tailhook.endpoints WHERE id = $1",
            &[&id],
        )
        .await
        .unwrap();
    let (paused, failing_for): (bool, Option<f64>) = (row.get(0), row.get(1));
    assert!(!paused || failing_for.unwrap_or(0.0) >= 0.4, "tripped after only {failing_for:?} s");

    wait_for("the breaker open", Duration::from_secs(5), || async {
        db.count("SELECT count(*) FROM tailhook.endpoints WHERE paused_until > now() + interval '1 second'").await == 1
    })
    .await;
    // Paused: nothing is sent (the pause is 3 s; look for most of it).
    let attempts_at_pause = db.count("SELECT count(*) FROM tailhook.attempts").await;
    wait_for("requests already in flight recorded", Duration::from_secs(2), || async {
        db.count("SELECT count(*) FROM tailhook.deliveries WHERE locked_until IS NOT NULL").await == 0
    })
    .await;
    let settled = db.count("SELECT count(*) FROM tailhook.attempts").await;
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    assert_eq!(db.count("SELECT count(*) FROM tailhook.attempts").await, settled, "no attempt while paused");
    assert!(settled - attempts_at_pause <= 10, "only requests already in flight finished");
    assert_eq!(
        db.count("SELECT count(*) FROM tailhook.deliveries WHERE status = 'failed'").await,
        0,
        "pausing fails nothing"
    );

    // The receiver recovers: one probe succeeds and everything goes out.
    up.store(true, Ordering::SeqCst);
    let recovered = receiver.count();
    wait_settled(&db, 10, Duration::from_secs(15)).await;
    sidecar.stop().await;
    let after: Vec<_> = receiver.received().into_iter().skip(recovered).collect();
    assert!(after.len() >= 10, "every event delivered after recovery");
    let row = client
        .query_one("SELECT paused_until IS NULL, consecutive_failures, failing_since IS NULL FROM tailhook.endpoints WHERE id = $1", &[&id])
        .await
        .unwrap();
    assert_eq!(
        (row.get::<_, bool>(0), row.get::<_, i32>(1), row.get::<_, bool>(2)),
        (true, 0, true),
        "resumed and reset"
    );
    assert_eq!(db.count("SELECT count(*) FROM tailhook.deliveries WHERE status = 'succeeded'").await, 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endpoint_failing_too_long_without_a_success_is_disabled() {
    let db = TestDb::new().await;
    let receiver = Receiver::start(|_, _| Reply::status(503)).await;
    let client = db.migrate().await;
    let id = add_endpoint(&client, "dead", &receiver.url("/dead"), &[]).await;
    client.execute("UPDATE tailhook.endpoints SET max_attempts = 1000 WHERE id = $1", &[&id]).await.unwrap();
    let mut config = db.config();
    config.delivery.backoff_initial_ms = 50;
    config.delivery.backoff_max_ms = 200;
    config.delivery.breaker_after_ms = 60_000; // the breaker stays shut; only the disabling is under test
    config.delivery.disable_after_failing_ms = 1_000;
    let sidecar = Sidecar::start(config);
    publish_many(&client, "t", 3).await;
    wait_for("the endpoint disabled", Duration::from_secs(10), || async {
        db.count("SELECT count(*) FROM tailhook.endpoints WHERE NOT enabled AND disabled_reason LIKE 'failing since % UTC without a success'")
            .await
            == 1
    })
    .await;
    sidecar.stop().await;
    assert_eq!(
        db.count("SELECT count(*) FROM tailhook.deliveries WHERE status = 'failed'").await,
        0,
        "its deliveries wait"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ordered_endpoint_gets_each_keys_events_in_order_despite_failures_and_two_replicas() {
    use std::collections::HashMap;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    const KEYS: i64 = 20;
    const PER_KEY: i64 = 10;
    let db = TestDb::new().await;
    let requests = Arc::new(AtomicUsize::new(0));
    let counter = requests.clone();
    // About a quarter of first attempts fail, so retries must hold their key back.
    let receiver = Receiver::start(move |_, seen| {
        if seen == 0 && counter.fetch_add(1, Ordering::SeqCst) % 4 == 0 {
            Reply::status(500)
        } else {
            Reply::ok()
        }
    })
    .await;
    let client = db.migrate().await;
    let id = add_endpoint(&client, "ordered", &receiver.url("/ordered"), &[]).await;
    client.execute("UPDATE tailhook.endpoints SET ordered = true WHERE id = $1", &[&id]).await.unwrap();
    let mut config = db.config();
    config.delivery.backoff_initial_ms = 50;
    config.delivery.batch_size = 20;
    let (a, b) = (Sidecar::start(config.clone()), Sidecar::start(config));
    for round in 0..2 {
        client
            .execute(
                "INSERT INTO tailhook.outbox (event_type, payload, ordering_key)
                 SELECT 'o', jsonb_build_object('key', k, 'seq', s), 'k' || k
                   FROM generate_series($1::bigint, $2::bigint) s, generate_series(1, $3::bigint) k
                  ORDER BY s, k",
                &[&(round * PER_KEY / 2 + 1), &((round + 1) * PER_KEY / 2), &KEYS],
            )
            .await
            .unwrap();
        // Unkeyed events to the same endpoint are unordered and must not be held back.
        client.execute("SELECT tailhook.publish('u', '{\"unkeyed\": true}')", &[]).await.unwrap();
    }
    wait_settled(&db, KEYS * PER_KEY + 2, Duration::from_secs(60)).await;
    a.stop().await;
    b.stop().await;

    let mut seqs: HashMap<i64, Vec<i64>> = HashMap::new();
    for r in receiver.received() {
        let data = &r.json()["data"];
        if let (Some(key), Some(seq)) = (data["key"].as_i64(), data["seq"].as_i64()) {
            seqs.entry(key).or_default().push(seq);
        }
    }
    assert_eq!(seqs.len(), KEYS as usize);
    for (key, arrived) in &seqs {
        assert!(arrived.windows(2).all(|w| w[0] <= w[1]), "key {key} arrived out of order: {arrived:?}");
        let mut distinct = arrived.clone();
        distinct.dedup();
        assert_eq!(distinct, (1..=PER_KEY).collect::<Vec<_>>(), "key {key}: every event, in order");
    }
    assert!(receiver.count() > (KEYS * PER_KEY) as usize, "some first attempts failed and were retried");
    assert_eq!(
        db.count("SELECT count(*) FROM tailhook.deliveries WHERE status = 'succeeded'").await,
        KEYS * PER_KEY + 2
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_endpoint_is_probed_once_then_resumes_at_full_speed() {
    let db = TestDb::new().await;
    let receiver = Receiver::start(|_, _| Reply::ok().after(Duration::from_secs(1))).await;
    let client = db.migrate().await;
    let id = add_endpoint(&client, "recovering", &receiver.url("/r"), &[]).await;
    // Paused until a moment ago, with work waiting: the next thing sent is a probe.
    client
        .execute(
            "UPDATE tailhook.endpoints SET paused_until = now() + interval '500 milliseconds' WHERE id = $1",
            &[&id],
        )
        .await
        .unwrap();
    publish_many(&client, "t", 20).await;
    let (a, b) = (Sidecar::start(db.config()), Sidecar::start(db.config()));
    wait_for("the probe", Duration::from_secs(5), || async { receiver.count() >= 1 }).await;
    let first = receiver.received()[0].at;
    wait_settled(&db, 20, Duration::from_secs(20)).await;
    a.stop().await;
    b.stop().await;
    let before_answer = receiver.received().iter().filter(|r| r.at < first + Duration::from_millis(900)).count();
    assert_eq!(before_answer, 1, "one probe first, nothing else until it answers");
    assert_eq!(receiver.count(), 20, "then everything, once");
    let paused: Option<std::time::SystemTime> =
        client.query_one("SELECT paused_until FROM tailhook.endpoints WHERE id = $1", &[&id]).await.unwrap().get(0);
    assert_eq!(paused, None, "the probe's success resumed it");
}

/// The delay each retry of `endpoint`'s one delivery was given, in ms, by
/// attempts made: read from the row while it waits (the result write sets
/// `next_attempt_at = now() + delay` and `updated_at = now()` together;
/// a claim sets `locked_by`, so only unclaimed rows are read).
async fn retry_delays(client: &tokio_postgres::Client, endpoint: &str) -> Option<(i32, f64)> {
    client
        .query_opt(
            "SELECT d.attempts, extract(epoch FROM d.next_attempt_at - d.updated_at)::float8 * 1000
               FROM tailhook.deliveries d JOIN tailhook.endpoints e ON e.id = d.endpoint_id
              WHERE e.name = $1 AND d.status = 'retrying' AND d.locked_by IS NULL",
            &[&endpoint],
        )
        .await
        .unwrap()
        .map(|r| (r.get(0), r.get(1)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_endpoint_retries_on_its_own_schedule() {
    let db = TestDb::new().await;
    let client = db.migrate().await;
    let receiver = Receiver::start(|_, _| Reply::status(500)).await;
    // quick: 200 ms doubling up to 400 ms, 4 attempts; steady: a fixed
    // 1000 ms, 3 attempts (a legacy module's retry_delay); both beside the
    // configured default of 5 s, which would make every gap 5 s or more.
    let quick = add_endpoint(&client, "quick", &receiver.url("/quick"), &[SECRET]).await;
    let steady = add_endpoint(&client, "steady", &receiver.url("/steady"), &[SECRET]).await;
    for (id, initial, max, attempts) in [(quick, 200i32, 400i32, 4i32), (steady, 1_000, 1_000, 3)] {
        client
            .execute(
                "UPDATE tailhook.endpoints SET backoff_initial_ms = $2, backoff_max_ms = $3, max_attempts = $4 WHERE id = $1",
                &[&id, &initial, &max, &attempts],
            )
            .await
            .unwrap();
    }
    let mut config = db.config();
    config.delivery.backoff_initial_ms = 5_000;
    config.delivery.backoff_max_ms = 60_000;
    let sidecar = Sidecar::start(config);
    client.execute("SELECT tailhook.publish('invoice.paid', '{}')", &[]).await.unwrap();

    // Read each delay once, while the delivery waits for its next attempt.
    let mut seen: std::collections::BTreeMap<(&str, i32), f64> = Default::default();
    let deadline = Instant::now() + Duration::from_secs(30);
    let settled = loop {
        for name in ["quick", "steady"] {
            if let Some((attempts, delay)) = retry_delays(&client, name).await {
                seen.entry((name, attempts)).or_insert(delay);
            }
        }
        if deliveries_of(&db, "quick", "failed").await + deliveries_of(&db, "steady", "failed").await == 2 {
            break true;
        }
        if Instant::now() > deadline {
            break false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    sidecar.stop().await;
    assert!(settled, "both deliveries fail after their attempts; delays seen: {seen:?}");

    // Base delay after n attempts: quick 200, 400, 400 (capped); steady 1000, 1000.
    // Jitter is ±20%, and never passes the endpoint's maximum.
    let expected: [(&str, i32, f64, f64); 5] = [
        ("quick", 1, 160.0, 240.0),
        ("quick", 2, 320.0, 400.0),
        ("quick", 3, 320.0, 400.0),
        ("steady", 1, 800.0, 1_000.0),
        ("steady", 2, 800.0, 1_000.0),
    ];
    let keys: Vec<_> = seen.keys().copied().collect();
    let wanted: Vec<_> = expected.iter().map(|(n, a, _, _)| (*n, *a)).collect();
    assert_eq!(keys, wanted, "one delay read per retry: {seen:?}");
    for (name, attempts, low, high) in expected {
        let delay = seen[&(name, attempts)];
        assert!((low..=high).contains(&delay), "{name} after {attempts} attempts: {delay} ms, not in {low}..={high}");
    }
    // The attempts themselves went no sooner than scheduled.
    for (name, attempts) in [("quick", 4), ("steady", 3)] {
        let gaps: Vec<f64> = client
            .query(
                "SELECT extract(epoch FROM a.started_at - lag(a.started_at) OVER (ORDER BY a.attempt))::float8 * 1000
                   FROM tailhook.attempts a JOIN tailhook.deliveries d ON d.id = a.delivery_id
                   JOIN tailhook.endpoints e ON e.id = d.endpoint_id
                  WHERE e.name = $1 ORDER BY a.attempt",
                &[&name],
            )
            .await
            .unwrap()
            .iter()
            .skip(1)
            .map(|r| r.get(0))
            .collect();
        assert_eq!(gaps.len(), attempts - 1, "{name}: {gaps:?}");
        for (n, gap) in (1..).zip(&gaps) {
            assert!(*gap >= seen[&(name, n)] - 5.0, "{name}: attempt {} came {gap} ms after the one before", n + 1);
        }
    }
}
