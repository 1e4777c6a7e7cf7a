//! Retention: under sustained load the tables stay bounded, nothing unfinished is deleted, one replica deletes at a time, and claims keep their pace.

use crate::support::*;
use std::collections::HashSet;
use std::time::{Duration, Instant};

/// A config with a short retention.
fn short_retention(db: &TestDb) -> tailhook::Config {
    let mut c = db.config();
    c.retention.succeeded_after_ms = 1_000;
    c.retention.failed_after_ms = 1_500;
    c.retention.interval_ms = 200;
    c.retention.batch_size = 500;
    // Periods of a second: what the sidecar writes lives in partitions
    // dropped whole within the test (rows written by hand without event_at
    // live in the DEFAULT partition and are deleted row by row).
    c.retention.partition_interval = "1 second".to_owned();
    c
}

/// Row counts of the three tables.
async fn sizes(client: &tokio_postgres::Client) -> (i64, i64, i64) {
    let row = client
        .query_one(
            "SELECT (SELECT count(*) FROM tailhook.outbox), (SELECT count(*) FROM tailhook.deliveries),
                    (SELECT count(*) FROM tailhook.attempts)",
            &[],
        )
        .await
        .unwrap();
    (row.get(0), row.get(1), row.get(2))
}

/// `n` finished deliveries completed a day ago, each with one attempt, to
/// endpoint `endpoint_id`; one outbox row per delivery.
async fn old_finished(client: &tokio_postgres::Client, endpoint_id: i64, n: i64) {
    client
        .batch_execute(&format!(
            "WITH o AS (
                 INSERT INTO tailhook.outbox (event_type, payload, created_at, dispatched_at)
                 SELECT 'old.event', '{{}}', now() - interval '1 day', now() - interval '1 day'
                   FROM generate_series(1, {n})
                 RETURNING id),
             d AS (
                 INSERT INTO tailhook.deliveries (outbox_id, endpoint_id, status, attempts, next_attempt_at, completed_at)
                 SELECT o.id, {endpoint_id}, 'succeeded', 1, now() - interval '1 day', now() - interval '1 day' FROM o
                 RETURNING id)
             INSERT INTO tailhook.attempts (delivery_id, attempt, started_at, duration_ms, status_code)
             SELECT id, 1, now() - interval '1 day', 3, 200 FROM d"
        ))
        .await
        .expect("old finished rows");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tables_stay_bounded_under_load_and_unfinished_work_is_never_deleted() {
    let db = TestDb::new().await;
    let client = db.migrate().await;
    let receiver = Receiver::start(|path, _| if path == "/ok" { Reply::ok() } else { Reply::status(500) }).await;
    // ok: every event, answered 200 (finished: succeeded).
    // fail: `f.*`, 500 with one attempt (finished: failed).
    // retry: `r.*`, 500 with attempts left (unfinished: retrying).
    // paused: `p.*`, paused for a day (unfinished: pending, never leased).
    add_endpoint(&client, "ok", &receiver.url("/ok"), &[SECRET]).await;
    client
        .batch_execute(&format!(
            "INSERT INTO tailhook.endpoints (name, url, event_types, max_attempts) VALUES
                 ('fail', '{fail}', '{{f.*}}', 1), ('retry', '{retry}', '{{r.*}}', 1000);
             INSERT INTO tailhook.endpoints (name, url, event_types, paused_until) VALUES
                 ('paused', '{paused}', '{{p.*}}', now() + interval '1 day')",
            fail = receiver.url("/fail"),
            retry = receiver.url("/retry"),
            paused = receiver.url("/paused"),
        ))
        .await
        .unwrap();
    let sidecar = Sidecar::start(short_retention(&db));

    // About 400 events a second for 8 s, in batches of 20: most go to `ok`
    // only, every tenth also to `fail`; a few to `retry` and `paused`.
    let publisher = {
        let url = db.url.clone();
        tokio::spawn(async move {
            let client = connect(&url).await;
            let mut unfinished = Vec::new();
            let mut published = 0i64;
            let start = Instant::now();
            let mut round = 0;
            while start.elapsed() < Duration::from_secs(8) {
                client
                    .execute(
                        "INSERT INTO tailhook.outbox (event_type, payload)
                         SELECT CASE WHEN g % 10 = 0 THEN 'f.x' ELSE 'o.x' END, jsonb_build_object('n', g)
                           FROM generate_series(1, 20) g",
                        &[],
                    )
                    .await
                    .unwrap();
                published += 20;
                if round % 10 == 0 {
                    for t in ["r.x", "p.x"] {
                        let id: String =
                            client.query_one("SELECT tailhook.publish($1, '{}')::text", &[&t]).await.unwrap().get(0);
                        unfinished.push(id);
                        published += 1;
                    }
                }
                round += 1;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            (published, unfinished)
        })
    };

    // Sample the table sizes while events flow.
    let start = Instant::now();
    let mut samples = Vec::new();
    while !publisher.is_finished() {
        let (outbox, deliveries, attempts) = sizes(&client).await;
        let created: i64 =
            client.query_one("SELECT coalesce(max(id), 0) FROM tailhook.deliveries", &[]).await.unwrap().get(0);
        samples.push((start.elapsed().as_millis(), outbox, deliveries, attempts, created));
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let (published, unfinished) = publisher.await.unwrap();
    for s in &samples {
        println!(
            "t={:>5} ms outbox={:>5} deliveries={:>5} attempts={:>5} deliveries created={:>5}",
            s.0, s.1, s.2, s.3, s.4
        );
    }
    // A finished row lives up to succeeded_after_ms plus one period (its
    // period is dropped whole once its end is that old): about 2.2 s of
    // traffic here, well below what was created from 6 s on.
    let late: Vec<_> = samples.iter().filter(|s| s.0 >= 6_000).collect();
    assert!(!late.is_empty());
    for s in &late {
        assert!(s.2 * 2 < s.4, "deliveries kept ({}) stay well below deliveries created ({})", s.2, s.4);
        assert!(s.1 * 2 < published, "outbox rows kept ({}) stay well below events published ({published})", s.1);
    }

    // Every event reached `ok` once or more: nothing was deleted before it was sent.
    let ok_ids: HashSet<String> =
        receiver.received().iter().filter(|r| r.path == "/ok").map(|r| r.webhook_id()).collect();
    let total_events = published as usize;
    let client2 = db.client().await;
    wait_for("every event delivered to `ok`", Duration::from_secs(30), || async {
        receiver.received().iter().filter(|r| r.path == "/ok").map(|r| r.webhook_id()).collect::<HashSet<_>>().len()
            >= total_events
    })
    .await;
    assert!(ok_ids.len() <= total_events);

    // Once the load stops, every finished delivery is deleted with its
    // attempts and its event; the unfinished ones and their events stay.
    wait_for("only unfinished work left", Duration::from_secs(30), || async {
        let (outbox, deliveries, _) = sizes(&client2).await;
        outbox == unfinished.len() as i64 && deliveries == unfinished.len() as i64
    })
    .await;
    let kept: Vec<String> = client
        .query(
            "SELECT o.event_id::text FROM tailhook.outbox o JOIN tailhook.deliveries d ON d.outbox_id = o.id
              WHERE d.status IN ('pending', 'retrying')",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    let kept: HashSet<String> = kept.into_iter().collect();
    assert_eq!(
        kept,
        unfinished.iter().cloned().collect::<HashSet<_>>(),
        "every unfinished delivery and its event stay"
    );
    let orphans = db
        .count("SELECT count(*) FROM tailhook.attempts a WHERE NOT EXISTS (SELECT 1 FROM tailhook.deliveries d WHERE d.id = a.delivery_id)")
        .await;
    assert_eq!(orphans, 0, "attempts go with their delivery");
    let retry_attempts = db
        .count("SELECT count(*) FROM tailhook.attempts a JOIN tailhook.deliveries d ON d.id = a.delivery_id WHERE d.status = 'retrying'")
        .await;
    assert!(retry_attempts > 0, "a retrying delivery keeps its attempts");
    sidecar.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_replica_deletes_at_a_time_and_leased_rows_are_left_alone() {
    let db = TestDb::new().await;
    let client = db.migrate().await;
    let receiver =
        Receiver::start(
            |path, _| {
                if path == "/slow" {
                    Reply::ok().after(Duration::from_millis(1_500))
                } else {
                    Reply::ok()
                }
            },
        )
        .await;
    let ok = add_endpoint(&client, "ok", &receiver.url("/ok"), &[SECRET]).await;
    client
        .execute(
            "INSERT INTO tailhook.endpoints (name, url, event_types, timeout_ms) VALUES ('slow', $1, '{slow}', 5000)",
            &[&receiver.url("/slow")],
        )
        .await
        .unwrap();
    old_finished(&client, ok, 3_000).await;

    // Another replica's retention holds the lock: nobody else deletes.
    let holder = db.client().await;
    holder.execute("SELECT pg_advisory_lock(7368003)", &[]).await.unwrap();
    let mut config = short_retention(&db);
    config.retention.interval_ms = 100;
    let a = Sidecar::start(config.clone());
    let b = Sidecar::start(config);
    // Both replicas run (a fresh event is delivered), and retention has had
    // many turns (100 ms each) while the lock was held elsewhere.
    client.execute("SELECT tailhook.publish('fresh', '{}')", &[]).await.unwrap();
    wait_for("a fresh event delivered", Duration::from_secs(10), || async {
        receiver.received().iter().any(|r| r.path == "/ok")
    })
    .await;
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    assert_eq!(
        db.count("SELECT count(*) FROM tailhook.deliveries WHERE completed_at < now() - interval '1 hour'").await,
        3_000,
        "no replica deletes while another holds the retention lock"
    );

    // A delivery cancelled while its request is in flight stays leased
    // until its lease ends, and is kept while leased however old it looks.
    let slow_id: String = client.query_one("SELECT tailhook.publish('slow', '{}')::text", &[]).await.unwrap().get(0);
    wait_for("the slow request in flight", Duration::from_secs(10), || async {
        receiver.received().iter().any(|r| r.path == "/slow")
    })
    .await;
    let cancelled = client
        .execute(
            "UPDATE tailhook.deliveries SET status = 'cancelled', completed_at = now() - interval '1 day'
              WHERE locked_until > now() AND endpoint_id = (SELECT id FROM tailhook.endpoints WHERE name = 'slow')
                AND outbox_id = (SELECT id FROM tailhook.outbox WHERE event_id = $1::text::uuid)",
            &[&slow_id],
        )
        .await
        .unwrap();
    assert_eq!(cancelled, 1);

    holder.execute("SELECT pg_advisory_unlock(7368003)", &[]).await.unwrap();
    wait_for("the old rows deleted", Duration::from_secs(30), || async {
        db.count("SELECT count(*) FROM tailhook.deliveries WHERE completed_at < now() - interval '1 hour' AND status = 'succeeded'").await == 0
    })
    .await;
    assert_eq!(db.count("SELECT count(*) FROM tailhook.outbox WHERE event_type = 'old.event'").await, 0);
    let slow_left =
        format!("SELECT count(*) FROM tailhook.delivery_log WHERE event_id = '{slow_id}' AND endpoint = 'slow'");
    assert_eq!(db.count(&slow_left).await, 1, "the leased cancelled delivery is still there");
    // Its lease ends (timeout 5 s + margin 1 s): then it goes too.
    wait_for("the cancelled delivery deleted after its lease", Duration::from_secs(20), || async {
        db.count(&slow_left).await == 0
    })
    .await;
    a.stop().await;
    b.stop().await;
}

/// Publishes `n` events at once and returns deliveries per second until all
/// of them succeeded.
async fn delivery_rate(db: &TestDb, client: &tokio_postgres::Client, phase: &str, n: i64) -> f64 {
    let start = Instant::now();
    client
        .execute(
            "INSERT INTO tailhook.outbox (event_type, payload) SELECT $1, jsonb_build_object('n', g) FROM generate_series(1, $2::bigint) g",
            &[&phase, &n],
        )
        .await
        .unwrap();
    let done = format!(
        "SELECT count(*) FROM tailhook.deliveries d JOIN tailhook.outbox o ON o.id = d.outbox_id
          WHERE o.event_type = '{phase}' AND d.status = 'succeeded'"
    );
    wait_for(&format!("phase {phase} delivered"), Duration::from_secs(60), || async { db.count(&done).await == n })
        .await;
    n as f64 / start.elapsed().as_secs_f64()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claims_keep_their_pace_while_retention_deletes() {
    let db = TestDb::new().await;
    let client = db.migrate().await;
    let receiver = Receiver::ok().await;
    let ok = add_endpoint(&client, "ok", &receiver.url("/ok"), &[SECRET]).await;
    const BACKLOG: i64 = 150_000;
    old_finished(&client, ok, BACKLOG).await;
    for table in ["outbox", "deliveries", "attempts"] {
        client.batch_execute(&format!("VACUUM ANALYZE tailhook.{table}")).await.unwrap();
    }

    // Retention on, but blocked by the lock whenever a phase is "without".
    // Only the backlog is old enough to go: new deliveries are kept an hour.
    let holder = db.client().await;
    holder.execute("SELECT pg_advisory_lock(7368003)", &[]).await.unwrap();
    let mut config = db.config();
    config.retention.succeeded_after_ms = 3_600_000;
    config.retention.interval_ms = 100;
    let sidecar = Sidecar::start(config);
    let old = "SELECT count(*) FROM tailhook.deliveries WHERE completed_at < now() - interval '1 hour'";
    delivery_rate(&db, &client, "warm-up", 500).await;

    const EVENTS: i64 = 3_000;
    let (mut without, mut with) = (Vec::new(), Vec::new());
    for round in 0..2 {
        without.push(delivery_rate(&db, &client, &format!("without-{round}"), EVENTS).await);
        holder.execute("SELECT pg_advisory_unlock(7368003)", &[]).await.unwrap();
        let before = db.count(old).await;
        wait_for("retention deleting", Duration::from_secs(10), || async { db.count(old).await < before }).await;
        with.push(delivery_rate(&db, &client, &format!("with-{round}"), EVENTS).await);
        let left = db.count(old).await;
        assert!(left > 0, "retention was still deleting when the phase ended (backlog too small to measure)");
        println!("round {round}: backlog {before} -> {left} old deliveries during the phase with retention");
        holder.execute("SELECT pg_advisory_lock(7368003)", &[]).await.unwrap();
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    println!(
        "deliveries/s without retention {:?} (mean {:.0}), while retention deletes {:?} (mean {:.0}): ratio {:.2}",
        without.iter().map(|r| r.round()).collect::<Vec<_>>(),
        mean(&without),
        with.iter().map(|r| r.round()).collect::<Vec<_>>(),
        mean(&with),
        mean(&with) / mean(&without)
    );
    // A shared, noisy 2-core machine: a loose bound that still catches
    // retention stalling claims (lock waits, long transactions).
    assert!(mean(&with) >= 0.5 * mean(&without), "claims slowed by more than half while retention deletes");
    holder.execute("SELECT pg_advisory_unlock(7368003)", &[]).await.unwrap();
    sidecar.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_that_matched_no_endpoint_are_deleted_once_old() {
    let db = TestDb::new().await;
    let client = db.migrate().await;
    let receiver = Receiver::ok().await;
    let ok = add_endpoint(&client, "ok", &receiver.url("/ok"), &[SECRET]).await;
    client.execute("UPDATE tailhook.endpoints SET event_types = '{wanted}' WHERE id = $1", &[&ok]).await.unwrap();
    // Orphans left by a deleted endpoint: old events whose deliveries are gone.
    client
        .execute(
            "INSERT INTO tailhook.outbox (event_type, payload, created_at, dispatched_at)
             SELECT 'orphan', '{}', now() - interval '1 day', now() - interval '1 day' FROM generate_series(1, 700)",
            &[],
        )
        .await
        .unwrap();
    let mut config = short_retention(&db);
    config.retention.batch_size = 300; // the walk crosses several windows
    let sidecar = Sidecar::start(config);
    // Events nobody subscribes to, published while it runs, in two waves so
    // the walk goes on from where it stopped.
    for wave in 0..2 {
        client
            .execute(
                "INSERT INTO tailhook.outbox (event_type, payload) SELECT 'unwanted', '{}' FROM generate_series(1, 1000)",
                &[],
            )
            .await
            .unwrap();
        client.execute("SELECT tailhook.publish('wanted', '{}')", &[]).await.unwrap();
        wait_for(&format!("wave {wave}: events without deliveries deleted"), Duration::from_secs(20), || async {
            db.count("SELECT count(*) FROM tailhook.outbox WHERE event_type IN ('unwanted', 'orphan')").await == 0
        })
        .await;
    }
    // The wanted events were delivered (and then deleted with their deliveries).
    wait_for("everything deleted", Duration::from_secs(20), || async {
        db.count("SELECT count(*) FROM tailhook.outbox").await == 0
    })
    .await;
    assert_eq!(receiver.per_id().len(), 2, "both wanted events were delivered");
    sidecar.stop().await;
}
