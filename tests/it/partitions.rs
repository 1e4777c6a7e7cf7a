//! Time partitions: created ahead by the sidecar, rows past them reported and moved, old periods dropped with what must be kept, replicas racing, and an existing installation converted under a writer and resumed.

use crate::support::*;
use std::time::Duration;

/// A config with one-second periods (so periods come and go within a test).
fn one_second_periods(db: &TestDb) -> tailhook::Config {
    let mut c = db.config();
    c.retention.partition_interval = "1 second".to_owned();
    c
}

/// The range partitions of `table`: (name, lower bound as text or NULL, upper bound).
async fn bounds(client: &tokio_postgres::Client, table: &str) -> Vec<(String, Option<String>, String)> {
    client
        .query("SELECT name, lo::text, hi::text FROM tailhook.partition_bounds($1) ORDER BY hi", &[&table])
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect()
}

/// Seconds from now to the end of `table`'s last partition.
async fn prepared_ahead(client: &tokio_postgres::Client, table: &str) -> f64 {
    client
        .query_one(
            "SELECT coalesce(extract(epoch FROM max(hi) - now())::float8, -1) FROM tailhook.partition_bounds($1)",
            &[&table],
        )
        .await
        .unwrap()
        .get(0)
}

/// The partitions of each table follow each other without gap or overlap,
/// and the three tables share them (read in one statement: one snapshot).
async fn assert_contiguous_and_shared(client: &tokio_postgres::Client) {
    let row = client
        .query_one(
            "SELECT (SELECT array_agg(coalesce(lo::text, 'MINVALUE') || '|' || hi::text ORDER BY hi) FROM tailhook.partition_bounds('outbox')),
                    (SELECT array_agg(coalesce(lo::text, 'MINVALUE') || '|' || hi::text ORDER BY hi) FROM tailhook.partition_bounds('deliveries')),
                    (SELECT array_agg(coalesce(lo::text, 'MINVALUE') || '|' || hi::text ORDER BY hi) FROM tailhook.partition_bounds('attempts'))",
            &[],
        )
        .await
        .unwrap();
    let list = |i: usize| row.get::<_, Option<Vec<String>>>(i).unwrap_or_default();
    let (outbox, deliveries, attempts) = (list(0), list(1), list(2));
    assert!(!outbox.is_empty(), "periods are prepared");
    assert_eq!(deliveries, outbox, "deliveries have the outbox's periods");
    assert_eq!(attempts, outbox, "attempts have the outbox's periods");
    for pair in outbox.windows(2) {
        let (end, start) = (pair[0].split_once('|').unwrap().1, pair[1].split_once('|').unwrap().0);
        assert_eq!(start, end, "no gap or overlap: {pair:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partitions_are_created_ahead_and_rows_past_them_are_reported_then_moved() {
    let db = TestDb::new().await;
    let client = db.migrate().await;
    // A fresh install is partitioned, with a DEFAULT partition and no period yet.
    let kind: String = client
        .query_one("SELECT relkind::text FROM pg_class WHERE oid = 'tailhook.deliveries'::regclass", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(kind, "p");
    assert!(bounds(&client, "outbox").await.is_empty());

    let sidecar = Sidecar::start(one_second_periods(&db));
    wait_for("three periods prepared ahead", Duration::from_secs(20), || async {
        prepared_ahead(&client, "outbox").await >= 2.0
            && prepared_ahead(&client, "deliveries").await >= 2.0
            && prepared_ahead(&client, "attempts").await >= 2.0
    })
    .await;
    assert_contiguous_and_shared(&client).await;

    // An event published far ahead of the prepared range (a clock skew, a
    // created_at set by hand) still goes in, into the DEFAULT partition...
    client
        .batch_execute(
            "INSERT INTO tailhook.outbox (event_type, payload, created_at, dispatched_at)
             VALUES ('future.event', '{}', now() + interval '8 seconds', now())",
        )
        .await
        .expect("an insert never fails for want of a partition");
    let strays: i64 = client
        .query_one("SELECT strays FROM tailhook.partition_strays() WHERE tbl = 'outbox'", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(strays, 1, "the row is reported as sitting in the DEFAULT partition");
    // ...and is moved into its own partition once the sidecar prepares its period.
    wait_for("the row moved into its period's partition", Duration::from_secs(30), || async {
        let at: Vec<String> = client
            .query("SELECT tableoid::regclass::text FROM tailhook.outbox WHERE event_type = 'future.event'", &[])
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        assert_eq!(at.len(), 1, "the row is neither lost nor doubled: {at:?}");
        at[0].starts_with("tailhook.outbox_p")
    })
    .await;
    let strays: i64 =
        client.query_one("SELECT sum(strays)::bigint FROM tailhook.partition_strays()", &[]).await.unwrap().get(0);
    assert_eq!(strays, 0);
    assert_contiguous_and_shared(&client).await;
    sidecar.stop().await;
}

/// `tailhook migrate` prepares the periods ahead itself: events an
/// application publishes between the migration and the sidecar's start land
/// in their own partitions, so the sidecar's first claims never wait for rows
/// to be moved out of the DEFAULT partitions (bench throughput found 40,256
/// rows moved under ACCESS EXCLUSIVE at start-up).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_prepares_the_periods_ahead_so_events_published_before_the_sidecar_start_in_their_own() {
    let db = TestDb::new().await;
    let out = tailhook(
        &["migrate"],
        &[("TAILHOOK_DATABASE__URL", &db.url), ("TAILHOOK_RETENTION__PARTITION_INTERVAL", "1 hour")],
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let client = db.client().await;
    assert!(prepared_ahead(&client, "outbox").await >= 2.0 * 3600.0, "two hours or more prepared ahead");
    assert_contiguous_and_shared(&client).await;
    let at: String = client
        .query_one(
            "INSERT INTO tailhook.outbox (event_type, payload) VALUES ('early.event', '{}') RETURNING tableoid::regclass::text",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(at.starts_with("tailhook.outbox_p"), "in its period's partition, not {at}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_drops_old_periods_and_keeps_unfinished_failed_and_their_events() {
    let db = TestDb::new().await;
    let client = db.migrate().await;
    let receiver = Receiver::start(|path, _| if path == "/ok" { Reply::ok() } else { Reply::status(500) }).await;
    add_endpoint(&client, "ok", &receiver.url("/ok"), &[SECRET]).await;
    client
        .batch_execute(&format!(
            "INSERT INTO tailhook.endpoints (name, url, event_types, max_attempts) VALUES ('fail', '{fail}', '{{f.*}}', 1);
             INSERT INTO tailhook.endpoints (name, url, event_types, paused_until) VALUES
                 ('paused', '{paused}', '{{p.*}}', now() + interval '1 day')",
            fail = receiver.url("/fail"),
            paused = receiver.url("/paused"),
        ))
        .await
        .unwrap();
    let mut config = one_second_periods(&db);
    config.retention.succeeded_after_ms = 1_000;
    config.retention.failed_after_ms = 3_600_000;
    config.retention.interval_ms = 200;
    let sidecar = Sidecar::start(config);
    wait_for("periods prepared", Duration::from_secs(20), || async { prepared_ahead(&client, "outbox").await >= 2.0 })
        .await;

    // Succeeded (o.*: ok only), failed (f.*: ok and fail) and pending (p.*: ok and paused).
    client
        .batch_execute(
            "INSERT INTO tailhook.outbox (event_type, payload) SELECT 'o.event', '{}' FROM generate_series(1, 20);
             INSERT INTO tailhook.outbox (event_type, payload) VALUES ('f.event', '{}'), ('p.event', '{}')",
        )
        .await
        .unwrap();
    let period: String = client
        .query_one("SELECT tableoid::regclass::text FROM tailhook.outbox WHERE event_type = 'f.event'", &[])
        .await
        .unwrap()
        .get(0);
    assert!(period.starts_with("tailhook.outbox_p"), "published into a period's partition: {period}");

    // The period is dropped whole once its end is a second old...
    wait_for("the events' period dropped", Duration::from_secs(30), || async {
        client.query_one("SELECT to_regclass($1) IS NULL", &[&period]).await.unwrap().get::<_, bool>(0)
    })
    .await;
    // ...the succeeded deliveries with it, and the events left with none
    // (a delivery still pending when its period went was kept, and goes
    // from the DEFAULT partition once it succeeded and aged):
    wait_for("succeeded deliveries and their events gone", Duration::from_secs(30), || async {
        db.count("SELECT count(*) FROM tailhook.outbox WHERE event_type = 'o.event'").await == 0
    })
    .await;
    let row = client
        .query_one(
            "SELECT (SELECT count(*) FROM tailhook.deliveries d JOIN tailhook.endpoints e ON e.id = d.endpoint_id
                      WHERE e.name = 'ok'),
                    (SELECT string_agg(e.name || ':' || d.status || ':' || d.attempts, ',' ORDER BY e.name)
                       FROM tailhook.deliveries d JOIN tailhook.endpoints e ON e.id = d.endpoint_id
                      WHERE e.name <> 'ok'),
                    (SELECT count(*) FROM tailhook.attempts a JOIN tailhook.deliveries d ON d.id = a.delivery_id
                       JOIN tailhook.endpoints e ON e.id = d.endpoint_id WHERE e.name = 'fail'),
                    (SELECT string_agg(event_type || '@' || tableoid::regclass::text, ',' ORDER BY event_type)
                       FROM tailhook.outbox),
                    (SELECT count(*) FROM tailhook.deliveries_undated WHERE status IN ('failed', 'pending'))",
            &[],
        )
        .await
        .unwrap();
    // Succeeded ones went with the period; the failed one (kept for
    // failed_after_ms) with its attempt, the pending one, and both events
    // were kept: the deliveries moved to the undated partition, the events
    // to the outbox's DEFAULT partition.
    assert_eq!(row.get::<_, i64>(0), 0, "succeeded deliveries dropped");
    assert_eq!(row.get::<_, Option<String>>(1).as_deref(), Some("fail:failed:1,paused:pending:0"));
    assert_eq!(row.get::<_, i64>(2), 1, "the failed delivery keeps its attempt");
    assert_eq!(
        row.get::<_, Option<String>>(3).as_deref(),
        Some("f.event@tailhook.outbox_default,p.event@tailhook.outbox_default")
    );
    assert_eq!(row.get::<_, i64>(4), 2);

    // The kept pending delivery is still delivered once its endpoint resumes.
    client.batch_execute("UPDATE tailhook.endpoints SET paused_until = NULL WHERE name = 'paused'").await.unwrap();
    wait_for("the kept pending delivery attempted", Duration::from_secs(20), || async {
        db.count(
            "SELECT count(*) FROM tailhook.deliveries d JOIN tailhook.endpoints e ON e.id = d.endpoint_id
              WHERE e.name = 'paused' AND d.attempts > 0",
        )
        .await
            == 1
    })
    .await;
    sidecar.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_racing_partition_maintenance_leave_one_contiguous_set() {
    let db = TestDb::new().await;
    let client = db.migrate().await;
    let receiver = Receiver::start(|_, _| Reply::ok()).await;
    add_endpoint(&client, "ok", &receiver.url("/ok"), &[SECRET]).await;
    let mut config = one_second_periods(&db);
    config.retention.succeeded_after_ms = 1_000;
    config.retention.interval_ms = 100;
    let replicas: Vec<Sidecar> = (0..3).map(|_| Sidecar::start(config.clone())).collect();
    // Direct callers race the replicas too (each under the partition lock).
    let racers: Vec<_> = (0..4)
        .map(|_| {
            let url = db.url.clone();
            tokio::spawn(async move {
                let client = connect(&url).await;
                for _ in 0..40 {
                    let r = client
                        .batch_execute(
                            "BEGIN;
                             SELECT tailhook.partitions_prepare(interval '1 second', 3) WHERE pg_try_advisory_xact_lock(7368004);
                             COMMIT",
                        )
                        .await;
                    // A table busy past lock_timeout, or a deadlock with a
                    // reader, ends a round (the next one tries again);
                    // nothing else may go wrong.
                    if let Err(e) = r {
                        use tokio_postgres::error::SqlState;
                        assert!(
                            [Some(&SqlState::LOCK_NOT_AVAILABLE), Some(&SqlState::T_R_DEADLOCK_DETECTED)].contains(&e.code()),
                            "{}",
                            report(&e)
                        );
                        client.batch_execute("ROLLBACK").await.unwrap();
                    }
                    tokio::time::sleep(Duration::from_millis(25)).await;
                }
            })
        })
        .collect();
    for i in 0..30 {
        client
            .batch_execute(&format!("INSERT INTO tailhook.outbox (event_type, payload) VALUES ('race.{i}', '{{}}')"))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for r in racers {
        r.await.unwrap();
    }
    wait_for("the 30 events delivered", Duration::from_secs(30), || async { receiver.count() >= 30 }).await;
    assert_contiguous_and_shared(&client).await;
    assert!(prepared_ahead(&client, "outbox").await >= 1.0);
    let strays: i64 =
        client.query_one("SELECT sum(strays)::bigint FROM tailhook.partition_strays()", &[]).await.unwrap().get(0);
    assert_eq!(strays, 0, "no row left in a DEFAULT partition");
    // Every event was delivered once (none lost to a drop, none doubled).
    let per_id = receiver.per_id();
    assert!(per_id.values().all(|n| *n == 1), "{per_id:?}");
    assert_eq!(receiver.count(), 30, "each of the 30 events delivered once");
    for r in replicas {
        assert!(r.is_running());
        r.stop().await;
    }
}

/// Applies the migrations before version 31 as `migrate --print-sql` prints
/// them, with psql (an existing, unpartitioned installation).
fn install_before_partitions(db: &TestDb) {
    let before = tailhook::db::MIGRATIONS.iter().position(|m| m.0 == 31).unwrap();
    let script = tailhook::db::print_sql(&tailhook::db::MIGRATIONS[..before]);
    let mut psql = std::process::Command::new("psql")
        .args([db.url.as_str(), "-q", "-v", "ON_ERROR_STOP=1", "-f", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("psql");
    use std::io::Write;
    psql.stdin.take().unwrap().write_all(script.as_bytes()).unwrap();
    assert!(psql.wait().unwrap().success(), "the printed steps apply");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_installation_is_converted_under_a_writer_that_never_waits_past_its_lock_timeout() {
    let db = TestDb::new().await;
    install_before_partitions(&db);
    let client = db.client().await;
    // 1,000,000 existing deliveries (100,000 events to 10 endpoints), one
    // attempt per event's first delivery.
    client
        .batch_execute(
            "INSERT INTO tailhook.endpoints (name, url) SELECT 'e' || i, 'http://127.0.0.1:9/' FROM generate_series(1, 10) i;
             INSERT INTO tailhook.outbox (event_type, payload, dispatched_at, created_at)
             SELECT 'old.event', '{}', now() - interval '1 hour', now() - interval '1 hour' FROM generate_series(1, 100000);
             INSERT INTO tailhook.deliveries (outbox_id, endpoint_id, status, attempts, completed_at)
             SELECT o.id, e.id, 'succeeded', 1, now() - interval '1 hour' FROM tailhook.outbox o, tailhook.endpoints e;
             INSERT INTO tailhook.attempts (delivery_id, attempt, started_at, duration_ms, status_code)
             SELECT d.id, 1, now(), 1, 200 FROM tailhook.deliveries d WHERE d.endpoint_id = (SELECT min(id) FROM tailhook.endpoints);
             ANALYZE",
        )
        .await
        .unwrap();
    assert_eq!(db.count("SELECT count(*) FROM tailhook.deliveries").await, 1_000_000);

    // The writer: an event and its delivery per transaction, lock_timeout 2s.
    let stop = tokio_util::sync::CancellationToken::new();
    let writer = {
        let (url, stop) = (db.url.clone(), stop.clone());
        tokio::spawn(async move {
            let client = connect(&url).await;
            client.batch_execute("SET lock_timeout = '2s'").await.unwrap();
            let (mut ok, mut failed, mut slowest) = (0u64, Vec::new(), Duration::ZERO);
            while !stop.is_cancelled() {
                let started = std::time::Instant::now();
                let r = client
                    .batch_execute(
                        "BEGIN;
                         WITH o AS (INSERT INTO tailhook.outbox (event_type, payload, dispatched_at) VALUES ('new.event', '{}', now())
                                    RETURNING id)
                         INSERT INTO tailhook.deliveries (outbox_id, endpoint_id) SELECT o.id, (SELECT min(id) FROM tailhook.endpoints) FROM o;
                         COMMIT",
                    )
                    .await;
                slowest = slowest.max(started.elapsed());
                match r {
                    Ok(()) => ok += 1,
                    Err(e) => {
                        failed.push(report(&e));
                        let _ = client.batch_execute("ROLLBACK").await;
                    }
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            (ok, failed, slowest)
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut migrator = db.client().await;
    let started = std::time::Instant::now();
    tailhook::db::migrate(&mut migrator).await.expect("the conversion");
    let took = started.elapsed();
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.cancel();
    let (ok, failed, slowest) = writer.await.unwrap();
    eprintln!(
        "conversion of 1,000,000 deliveries took {took:?}; the writer made {ok} inserts, the slowest in {slowest:?}"
    );
    assert!(failed.is_empty(), "no insert failed: {failed:?}");
    assert!(ok > 10, "the writer kept writing ({ok} inserts during a {took:?} conversion)");
    assert!(slowest < Duration::from_secs(1), "no insert waited a second: the slowest took {slowest:?}");

    // The old rows are the legacy partition, the new ones alongside.
    let row = client
        .query_one(
            "SELECT (SELECT count(*) FROM tailhook.deliveries), (SELECT count(*) FROM tailhook.deliveries_legacy),
                    (SELECT relkind::text FROM pg_class WHERE oid = 'tailhook.deliveries'::regclass),
                    (SELECT count(*) FROM tailhook.attempts), (SELECT count(*) FROM tailhook.outbox)",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, i64>(0), 1_000_000 + ok as i64);
    assert_eq!(row.get::<_, String>(2), "p");
    assert_eq!(row.get::<_, i64>(3), 100_000);
    assert_eq!(row.get::<_, i64>(4), 100_000 + ok as i64);
    assert!(row.get::<_, i64>(1) >= 1_000_000);
    // Identities continue, keys hold.
    let err = client
        .batch_execute(
            "INSERT INTO tailhook.deliveries (outbox_id, endpoint_id, event_at)
             SELECT outbox_id, endpoint_id, event_at FROM tailhook.deliveries ORDER BY id LIMIT 1",
        )
        .await
        .expect_err("(event, endpoint) stays unique");
    assert!(
        report(&err).contains("deliveries_outbox_endpoint_unique") || report(&err).contains("deliveries_legacy_unique"),
        "{}",
        report(&err)
    );
    let err = client
        .batch_execute("INSERT INTO tailhook.outbox (event_id, event_type, payload) SELECT event_id, 'x', '{}' FROM tailhook.outbox LIMIT 1")
        .await
        .expect_err("event_id stays unique");
    assert!(report(&err).contains("outbox_event_id_key"), "{}", report(&err));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_conversion_is_resumed_by_running_migrate_again() {
    let db = TestDb::new().await;
    install_before_partitions(&db);
    let client = db.client().await;
    client
        .batch_execute(
            "INSERT INTO tailhook.endpoints (name, url) VALUES ('e', 'http://127.0.0.1:9/');
             INSERT INTO tailhook.outbox (event_type, payload, dispatched_at) SELECT 'old.event', '{}', now() FROM generate_series(1, 1000);
             INSERT INTO tailhook.deliveries (outbox_id, endpoint_id, status, completed_at)
             SELECT o.id, e.id, 'succeeded', now() FROM tailhook.outbox o, tailhook.endpoints e;",
        )
        .await
        .unwrap();
    // The conversion stops after the outbox's swap (a crash, a lost connection).
    let (_, _, sql) = tailhook::db::MIGRATIONS.iter().find(|m| m.0 == 31).copied().unwrap();
    let steps = tailhook::db::statements(sql);
    let swap = steps.iter().position(|s| s.contains("partition_convert_swap('outbox')")).unwrap();
    for step in &steps[..=swap] {
        client.batch_execute(step).await.unwrap_or_else(|e| panic!("{step}: {}", report(&e)));
    }
    let kinds: Vec<String> = client
        .query(
            "SELECT relname || ':' || relkind::text FROM pg_class WHERE oid IN
                ('tailhook.outbox'::regclass, 'tailhook.deliveries'::regclass) ORDER BY relname",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(kinds, ["deliveries:r", "outbox:p"], "half converted");
    // Writes go on meanwhile.
    client
        .batch_execute(
            "WITH o AS (INSERT INTO tailhook.outbox (event_type, payload) VALUES ('mid.event', '{}') RETURNING id)
             INSERT INTO tailhook.deliveries (outbox_id, endpoint_id) SELECT o.id, (SELECT id FROM tailhook.endpoints) FROM o",
        )
        .await
        .unwrap();
    let mut migrator = db.client().await;
    let applied = tailhook::db::migrate(&mut migrator).await.expect("migrate resumes");
    assert_eq!(applied, [31]);
    let row = client
        .query_one(
            "SELECT (SELECT string_agg(relname || ':' || relkind::text, ',' ORDER BY relname) FROM pg_class
                      WHERE relnamespace = 'tailhook'::regnamespace AND relname IN ('outbox', 'deliveries', 'attempts')),
                    (SELECT count(*) FROM tailhook.deliveries), (SELECT count(*) FROM tailhook.outbox)",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "attempts:p,deliveries:p,outbox:p");
    assert_eq!((row.get::<_, i64>(1), row.get::<_, i64>(2)), (1001, 1001));
    // And again: nothing left to do.
    assert!(tailhook::db::migrate(&mut migrator).await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sidecar_role_that_owns_no_table_maintains_and_drops_partitions() {
    let db = TestDb::new().await;
    let client = db.migrate().await;
    let role = format!("{}_sidecar", db.name());
    client.batch_execute(&format!("CREATE ROLE {role}; SELECT tailhook.grant_sidecar('{role}')")).await.unwrap();
    client.batch_execute(&format!("SET ROLE {role}")).await.unwrap();
    for sql in [
        "BEGIN; SELECT pg_try_advisory_xact_lock(7368004); SELECT tailhook.partitions_prepare(interval '1 second', 3); COMMIT",
        "SELECT * FROM tailhook.partition_strays()",
        "BEGIN; SELECT tailhook.partitions_drop(0, 0); COMMIT",
    ] {
        client.batch_execute(sql).await.unwrap_or_else(|e| panic!("{sql}: {}", report(&e)));
    }
    // What only the sidecar kind may run: another role may not.
    client.batch_execute(&format!("RESET ROLE; CREATE ROLE {role}_other; SET ROLE {role}_other")).await.unwrap();
    let err = client
        .batch_execute("SELECT tailhook.partitions_drop(0, 0)")
        .await
        .expect_err("a role without the sidecar kind cannot drop partitions");
    assert_eq!(err.code(), Some(&tokio_postgres::error::SqlState::INSUFFICIENT_PRIVILEGE), "{}", report(&err));
    client
        .batch_execute(&format!("RESET ROLE; DROP OWNED BY {role}, {role}_other; DROP ROLE {role}, {role}_other"))
        .await
        .unwrap();
}

/// The partitions of `table` whose scans ran in an EXPLAIN (ANALYZE) plan
/// (text format): every scan node on a partition of `table` not marked
/// "never executed" (pruned at run time) names its partition.
fn partitions_read(plan: &[String], table: &str) -> std::collections::BTreeSet<String> {
    partitions_scanned(plan, table, false)
}

/// The partitions of `table` the plan sets up a scan of, run or not (those
/// pruned when the executor starts do not appear at all).
fn partitions_set_up(plan: &[String], table: &str) -> std::collections::BTreeSet<String> {
    partitions_scanned(plan, table, true)
}

fn partitions_scanned(plan: &[String], table: &str, even_unrun: bool) -> std::collections::BTreeSet<String> {
    let on = format!(" on {table}_");
    plan.iter()
        // (A bitmap index scan names the index; its heap scan, the partition.)
        .filter(|l| l.contains("Scan") && !l.contains("Bitmap Index Scan"))
        .filter(|l| even_unrun || !l.contains("never executed"))
        .filter_map(|l| l.split(on.as_str()).nth(1))
        .map(|rest| format!("{table}_{}", rest.split_whitespace().next().unwrap_or_default()))
        .collect()
}

/// Issue 23 (the partitioned layout's costs): the result write and a lease's
/// release find their deliveries by (id, event_at), the event_at the claim
/// returned, so in the generic plan the sidecar runs, PostgreSQL prunes every
/// other partition at run time: one partition's key is read per result, not
/// every partition's (with 7 periods, 500 lookups by id alone took 2.5 ms
/// against 0.2-0.6 ms unpartitioned).
#[tokio::test]
async fn result_writes_and_releases_read_one_partition_in_their_generic_plan() {
    let db = TestDb::new().await;
    let client = db.migrate().await;
    client.batch_execute("SELECT tailhook.partitions_prepare(interval '1 hour', 6)").await.unwrap();
    add_endpoint(&client, "a", "http://127.0.0.1:9/a", &[]).await;
    // One event in each of 7 periods.
    client
        .execute(
            "INSERT INTO tailhook.outbox (event_type, payload, created_at)
             SELECT 'e', '{}', now() + g * interval '1 hour' FROM generate_series(0, 6) g",
            &[],
        )
        .await
        .unwrap();
    // And 2,000 deliveries per period in flight, leased by 10 other replicas
    // (statistics say the tables are busy, as in production).
    client
        .batch_execute(
            "INSERT INTO tailhook.outbox (event_type, payload, created_at, dispatched_at)
             SELECT 'e', '{}', now() + (g % 7) * interval '1 hour', now() FROM generate_series(1, 14000) g;
             INSERT INTO tailhook.deliveries (outbox_id, endpoint_id, status, attempts, event_at,
                                              next_attempt_at, locked_until, locked_by, lease)
             SELECT o.id, (SELECT id FROM tailhook.endpoints), 'pending', 0, o.created_at,
                    now(), now() + interval '1 hour', 'other' || (o.id % 10), o.id
               FROM tailhook.outbox o WHERE o.dispatched_at IS NOT NULL;
             ANALYZE tailhook.outbox, tailhook.deliveries, tailhook.attempts",
        )
        .await
        .unwrap();
    let pool = tailhook::db::Db::new(&db.config().database).unwrap();
    let lease = tailhook::db::Lease {
        replica: "r",
        token: 1,
        default_timeout_ms: 60_000,
        margin_ms: 0,
        max_payload_bytes: 1 << 20,
        claim_bytes: 16 << 20,
    };
    let rooms = tailhook::db::Rooms { default_room: 10, ..tailhook::db::Rooms::default() };
    let rows = pool.dispatch(10, 10, lease, &rooms, false, &[]).await.unwrap();
    assert_eq!(rows.len(), 7);
    let row = &rows[3];
    let (id, event_at) = (row.delivery_id.unwrap(), row.event_at.expect("the claim returns event_at"));
    let event_at: String = client.query_one("SELECT $1::timestamptz::text", &[&event_at]).await.unwrap().get(0);
    let found = client
        .query_one(
            "SELECT (SELECT tableoid::regclass::text FROM tailhook.deliveries WHERE id = $1),
                    (SELECT count(DISTINCT tableoid) FROM tailhook.deliveries WHERE locked_by = 'r')",
            &[&id],
        )
        .await
        .unwrap();
    let partition = found.get::<_, String>(0).trim_start_matches("tailhook.").to_owned();
    assert_eq!(found.get::<_, i64>(1), 7, "one delivery in each of 7 partitions");

    let explain = async |statement: &str, args: &str| -> Vec<String> {
        // The pipeline's own settings (src/db/queries.rs: PIPELINE_BEGIN).
        client.batch_execute(concat!("BEGIN;", include_str!("../../sql/queries/generic_plans.sql"))).await.unwrap();
        client.batch_execute(&format!("PREPARE s AS {statement}")).await.unwrap();
        let plan = client
            .query(&format!("EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) EXECUTE s({args})"), &[])
            .await
            .unwrap()
            .iter()
            .map(|r| r.get::<_, String>(0))
            .collect();
        client.batch_execute("ROLLBACK; DEALLOCATE s").await.unwrap();
        plan
    };
    let result_args = format!(
        "'r', ARRAY[{id}]::bigint[], ARRAY[1], ARRAY['succeeded'], ARRAY[NULL]::bigint[], ARRAY[200],
         ARRAY[NULL]::text[], ARRAY[NULL]::text[], ARRAY[now()], ARRAY[1], ARRAY[NULL]::text[], ARRAY[NULL]::text[],
         ARRAY[1]::bigint[], ARRAY['{event_at}']::timestamptz[]"
    );
    let plan = explain(
        include_str!("../../sql/queries/record_results.sql"),
        &format!("{result_args}, '{event_at}', '{event_at}'"),
    )
    .await;
    assert_eq!(
        partitions_set_up(&plan, "deliveries"),
        std::collections::BTreeSet::from([partition.clone()]),
        "the result write sets up its batch's partition only (the others pruned as the executor starts):\n{}",
        plan.join("\n")
    );
    // The results it did not apply are written by record_results_unapplied.sql,
    // by id in every partition, and only for those (a moved delivery below).
    let release_args = format!("'r', ARRAY[{id}]::bigint[], ARRAY[1]::bigint[], ARRAY['{event_at}']::timestamptz[]");
    let plan = explain(include_str!("../../sql/queries/release_leases.sql"), &release_args).await;
    assert_eq!(
        partitions_read(&plan, "deliveries"),
        std::collections::BTreeSet::from([partition]),
        "a release reads its delivery's partition only:\n{}",
        plan.join("\n")
    );

    // The fan-out marks its claimed rows dispatched by (id, created_at): one
    // event, one outbox partition read, not every period's key.
    client
        .execute(
            "INSERT INTO tailhook.outbox (event_type, payload, created_at) VALUES ('e', '{}', now() + interval '3 hours')",
            &[],
        )
        .await
        .unwrap();
    let dispatch_args = "1, 'r', 60000, 0, 2, ARRAY[]::bigint[], ARRAY[]::int[], 10, 1048576, 16777216, 10,
                         ARRAY[]::bigint[], 100, 1000";
    let plan = explain(include_str!("../../sql/queries/dispatch.sql"), dispatch_args).await;
    assert_eq!(
        partitions_read(&plan, "outbox").len(),
        1,
        "the fan-out reads its event's outbox partition only:\n{}",
        plan.join("\n")
    );
    // So does the due claim (a retry): its event is read by (id, created_at).
    client
        .batch_execute(
            "UPDATE tailhook.deliveries SET locked_until = NULL, locked_by = NULL, lease = NULL, status = 'retrying'
              WHERE id = (SELECT min(id) FROM tailhook.deliveries WHERE event_at > now() + interval '150 minutes')",
        )
        .await
        .unwrap();
    let due_args = "1, 'r', 60000, 0, 3, 10, ARRAY[]::bigint[], ARRAY[]::int[], 10, 1048576, 16777216, 60000";
    let plan = explain(include_str!("../../sql/queries/claim_due.sql"), due_args).await;
    assert_eq!(
        partitions_read(&plan, "outbox").len(),
        1,
        "the due claim reads its event's outbox partition only:\n{}",
        plan.join("\n")
    );

    // And the write itself applies under the lease (the same statement).
    let result = tailhook::db::ResultBatch {
        delivery_id: vec![id],
        event_at: vec![row.event_at.unwrap()],
        attempt: vec![1],
        status: vec!["succeeded"],
        delay_ms: vec![None],
        status_code: vec![Some(200)],
        error_kind: vec![None],
        error: vec![None],
        last_error: vec![None],
        lease: vec![1],
        started_at: vec![std::time::SystemTime::now()],
        duration_ms: vec![1],
        response_body: vec![None],
    };
    assert!(pool.record_results("r", &result).await.unwrap().is_empty(), "applied under its lease");
    let status: String =
        client.query_one("SELECT status FROM tailhook.deliveries WHERE id = $1", &[&id]).await.unwrap().get(0);
    assert_eq!(status, "succeeded");

    // A delivery retention moved while it was being sent (kept out of a
    // dropped period: event_at '-infinity', the undated partition) is still
    // held under its lease: its result applies, found by id alone.
    let moved = rows[4].delivery_id.unwrap();
    client.execute("UPDATE tailhook.deliveries SET event_at = '-infinity' WHERE id = $1", &[&moved]).await.unwrap();
    let result =
        tailhook::db::ResultBatch { delivery_id: vec![moved], event_at: vec![rows[4].event_at.unwrap()], ..result };
    assert!(pool.record_results("r", &result).await.unwrap().is_empty(), "applied, not late");
    let row = client
        .query_one(
            "SELECT d.status, d.locked_by, (SELECT count(*) FROM tailhook.attempts_undated a WHERE a.delivery_id = d.id)
               FROM tailhook.deliveries_undated d WHERE d.id = $1",
            &[&moved],
        )
        .await
        .unwrap();
    assert_eq!(
        (row.get::<_, String>(0), row.get::<_, Option<String>>(1), row.get::<_, i64>(2)),
        ("succeeded".to_owned(), None, 1),
        "finished, lease cleared, its attempt beside it"
    );
}

/// Issue 23 (the partitioned layout's costs): event_id stays unique across
/// partitions at every isolation level. Two REPEATABLE READ transactions
/// insert the same explicit event_id, each with its snapshot taken before
/// the other's insert: exactly one commits (the second waits on
/// tailhook.event_ids' key, then fails as a unique index fails), and
/// `publish_with_id` in the same race returns false instead of failing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_repeatable_read_writers_of_one_event_id_commit_once() {
    let db = TestDb::new().await;
    let client = db.migrate().await;
    client.batch_execute("SELECT tailhook.partitions_prepare(interval '1 hour', 3)").await.unwrap();
    let (a, b) = (connect(&db.url).await, connect(&db.url).await);
    let insert = "INSERT INTO tailhook.outbox (event_id, event_type, payload)
                  VALUES ('0190a5e0-0000-7000-8000-000000000001', 'e', '{}')";
    for c in [&a, &b] {
        c.batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT count(*) FROM tailhook.outbox").await.unwrap();
    }
    a.batch_execute(insert).await.unwrap();
    let second = tokio::spawn(async move {
        let r = b.batch_execute(insert).await;
        let r = match r {
            Ok(()) => b.batch_execute("COMMIT").await,
            Err(e) => {
                b.batch_execute("ROLLBACK").await.unwrap();
                Err(e)
            }
        };
        r.map_err(|e| report(&e))
    });
    a.batch_execute("COMMIT").await.unwrap();
    let err = second.await.unwrap().expect_err("the second writer fails");
    assert!(err.contains("outbox_event_id_key"), "{err}");
    assert_eq!(
        db.count("SELECT count(*) FROM tailhook.outbox WHERE event_id = '0190a5e0-0000-7000-8000-000000000001'").await,
        1,
        "exactly one committed"
    );

    // publish_with_id racing the same way: the second returns false.
    let (a, b) = (connect(&db.url).await, connect(&db.url).await);
    let publish = "SELECT tailhook.publish_with_id('0190a5e0-0000-7000-8000-000000000002', 'e', '{}')";
    for c in [&a, &b] {
        c.batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT count(*) FROM tailhook.outbox").await.unwrap();
    }
    assert!(a.query_one(publish, &[]).await.unwrap().get::<_, bool>(0));
    let second = tokio::spawn(async move {
        let published: bool = b.query_one(publish, &[]).await.unwrap().get(0);
        b.batch_execute("COMMIT").await.unwrap();
        published
    });
    a.batch_execute("COMMIT").await.unwrap();
    assert!(!second.await.unwrap(), "the second publish inserts nothing");
    assert_eq!(
        db.count("SELECT count(*) FROM tailhook.outbox WHERE event_id = '0190a5e0-0000-7000-8000-000000000002'").await,
        1
    );
    // And once the first is committed, the same id is refused at once.
    assert!(!client.query_one(publish, &[]).await.unwrap().get::<_, bool>(0));
    let err = client.batch_execute(insert).await.expect_err("a committed id is refused");
    assert!(report(&err).contains("outbox_event_id_key"), "{}", report(&err));
}

/// tailhook.event_ids follows the outbox: a deleted or truncated event's id
/// can be published again, and the ids of events gone with a dropped period
/// go with it while those of the events it kept stay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_ids_leave_with_their_events() {
    let db = TestDb::new().await;
    let client = db.migrate().await;
    let publish = |id: &'static str| {
        format!("INSERT INTO tailhook.outbox (event_id, event_type, payload) VALUES ('{id}', 'e', '{{}}')")
    };
    client.batch_execute(&publish("0190a5e0-0000-7000-8000-00000000000a")).await.unwrap();
    client.batch_execute("DELETE FROM tailhook.outbox").await.unwrap();
    client.batch_execute(&publish("0190a5e0-0000-7000-8000-00000000000a")).await.unwrap();
    client.batch_execute("TRUNCATE tailhook.outbox CASCADE").await.unwrap();
    client.batch_execute(&publish("0190a5e0-0000-7000-8000-00000000000a")).await.unwrap();
    assert_eq!(db.count("SELECT count(*) FROM tailhook.event_ids").await, 1);

    // Periods of one second: an old period's events go, one undispatched
    // event of it is kept (with its id); the dropped ids are expired.
    client.batch_execute("TRUNCATE tailhook.outbox CASCADE").await.unwrap();
    client.batch_execute("SELECT tailhook.partitions_prepare(interval '1 second', 3)").await.unwrap();
    client
        .batch_execute(
            "INSERT INTO tailhook.outbox (event_type, payload, dispatched_at) SELECT 'e', '{}', now() FROM generate_series(1, 10);
             INSERT INTO tailhook.outbox (event_id, event_type, payload) VALUES ('0190a5e0-0000-7000-8000-00000000000b', 'e', '{}')",
        )
        .await
        .unwrap();
    assert_eq!(db.count("SELECT count(*) FROM tailhook.event_ids").await, 11);
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        client.batch_execute("SELECT tailhook.partitions_prepare(interval '1 second', 3)").await.unwrap();
        client.batch_execute("SELECT tailhook.partitions_drop(0, 0)").await.unwrap();
        let left = db.count("SELECT count(*) FROM tailhook.outbox").await;
        // (An id made a few ms after its event's created_at may fall in
        // the next period: it goes with that one.)
        if left == 1 && db.count("SELECT count(*) FROM tailhook.event_ids").await == 1 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the period is dropped ({left} events left)");
        tokio::task::yield_now().await;
    }
    // tailhook's own ids went with the period's event_ids partition; the
    // kept event's (a publisher's id of 2024, in a DEFAULT chunk) stays.
    assert_eq!(
        db.count("SELECT count(*) FROM tailhook.event_ids").await,
        1,
        "the dropped events' ids went with their period"
    );
    let removed: i64 = client.query_one("SELECT tailhook.event_ids_expire(5000)", &[]).await.unwrap().get(0);
    assert_eq!(removed, 0, "nothing left for retention's batches");
    assert_eq!(db.count("SELECT count(*) FROM tailhook.event_ids_dropped").await, 0, "every dropped period done");
    let kept: String = client.query_one("SELECT event_id::text FROM tailhook.event_ids", &[]).await.unwrap().get(0);
    assert_eq!(kept, "0190a5e0-0000-7000-8000-00000000000b", "the kept event's id stays");
    let err = client.batch_execute(&publish("0190a5e0-0000-7000-8000-00000000000b")).await.expect_err("still unique");
    assert!(report(&err).contains("outbox_event_id_key"), "{}", report(&err));
}

/// Retention's walk over outbox rows without deliveries reads only the rows
/// below the managed periods (kept events, a legacy partition): the periods'
/// events go with their partitions. It read every period before, a hash
/// anti join over every deliveries partition (2.5 s a call at 2,000 events/s).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retentions_outbox_walk_reads_no_managed_period() {
    let db = TestDb::new().await;
    let client = db.migrate().await;
    client.batch_execute("SELECT tailhook.partitions_prepare(interval '1 hour', 6)").await.unwrap();
    add_endpoint(&client, "a", "http://127.0.0.1:9/a", &[]).await;
    // 14,000 dispatched events in the current period, half of them with a
    // delivery, and 10 old ones below the periods (in the DEFAULT partition,
    // as retention leaves kept events), none with a delivery.
    client
        .batch_execute(
            "INSERT INTO tailhook.outbox (event_type, payload, created_at, dispatched_at)
             SELECT 'e', '{}', lo, lo FROM (SELECT min(lo) AS lo FROM tailhook.partition_bounds('outbox')) b,
                    generate_series(1, 14000) g;
             INSERT INTO tailhook.deliveries (outbox_id, endpoint_id, status, attempts, event_at, completed_at)
             SELECT o.id, (SELECT id FROM tailhook.endpoints), 'succeeded', 1, o.created_at, now()
               FROM tailhook.outbox o WHERE o.id % 2 = 0;
             INSERT INTO tailhook.outbox (event_type, payload, created_at, dispatched_at)
             SELECT 'kept', '{}', now() - interval '2 days', now() - interval '2 days' FROM generate_series(1, 10);
             ANALYZE tailhook.outbox, tailhook.deliveries",
        )
        .await
        .unwrap();
    client.batch_execute("BEGIN; SET LOCAL plan_cache_mode = force_generic_plan").await.unwrap();
    client
        .batch_execute(&format!("PREPARE walk AS {}", include_str!("../../sql/queries/retention_outbox.sql")))
        .await
        .unwrap();
    let plan: Vec<String> = client
        .query("EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) EXECUTE walk(0, 0, 100000)", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get::<_, String>(0))
        .collect();
    client.batch_execute("ROLLBACK; DEALLOCATE walk").await.unwrap();
    let period_scans: Vec<&String> = plan
        .iter()
        .filter(|l| l.contains("Scan") && l.contains(" on outbox_p") && !l.contains("never executed"))
        .collect();
    assert!(period_scans.is_empty(), "the walk reads a managed period:\n{}", plan.join("\n"));
    // A candidate's deliveries are looked for in every partition (a delivery
    // written by hand may carry any event_at), one probe per candidate: no
    // period's deliveries are read.
    let read_rows =
        |l: &&String| l.contains(" on deliveries_p") && !l.contains("actual rows=0 ") && !l.contains("never executed");
    assert!(!plan.iter().any(|l| read_rows(&l)), "the walk reads a period's deliveries:\n{}", plan.join("\n"));
    // And it still removes the old events below the periods, and only those.
    let pool = tailhook::db::Db::new(&db.config().database).unwrap();
    let step = pool
        .retention_outbox(0, tailhook::db::Ages { succeeded_ms: 0, failed_ms: 0, batch: 1000 })
        .await
        .unwrap()
        .unwrap();
    assert_eq!(step.removed, 10);
    assert_eq!(db.count("SELECT count(*) FROM tailhook.outbox").await, 14000);
}

/// One step of partition maintenance and retention with one-second
/// periods: prepares the next ones, drops what is old enough (nothing kept).
async fn prepare_and_drop(client: &tokio_postgres::Client) {
    client.batch_execute("SELECT tailhook.partitions_prepare(interval '1 second', 3)").await.unwrap();
    client.batch_execute("SELECT tailhook.partitions_drop(0, 0)").await.unwrap();
}

/// Steps [`prepare_and_drop`] until `done` holds; fails past 20 s.
async fn drop_periods_until(client: &tokio_postgres::Client, what: &str, done: &str) {
    wait_for(what, Duration::from_secs(20), || async {
        prepare_and_drop(client).await;
        client.query_one(done, &[]).await.unwrap().get::<_, bool>(0)
    })
    .await;
}

/// Rows deleted from tailhook.event_ids and its partitions (pg_stat_user_tables),
/// read once the statistics of `client`'s session show at least `inserted`
/// rows inserted into them (its counters are flushed together: the deletes
/// before those inserts are counted by then).
async fn event_ids_deleted(db: &TestDb, client: &tokio_postgres::Client, inserted: i64) -> i64 {
    client.batch_execute("SELECT pg_stat_force_next_flush()").await.unwrap();
    let reader = db.client().await;
    let stats =
        "SELECT coalesce(sum(n_tup_ins), 0)::bigint, coalesce(sum(n_tup_del), 0)::bigint FROM pg_stat_user_tables
                  WHERE schemaname = 'tailhook' AND relname LIKE 'event\\_ids%' AND relname <> 'event_ids_dropped'";
    let counted = std::cell::Cell::new((0i64, 0i64));
    let flushed = poll_until(Duration::from_secs(20), || async {
        let row = reader.query_one(stats, &[]).await.unwrap();
        counted.set((row.get(0), row.get(1)));
        counted.get().0 >= inserted
    })
    .await;
    let (ins, del) = counted.get();
    assert!(flushed, "statistics flushed ({ins} of {inserted} inserts counted)");
    del
}

/// Issue 23's target, "no dead tuples left by retention": with tailhook's
/// own ids (UUIDv7 made at insert), the ids of a dropped period's events go
/// with its event_ids partition; retention deletes no event_ids row (it
/// deleted one per event before), the dropped events' ids are gone and a
/// kept event's id still blocks a duplicate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_deletes_no_event_id_of_tailhooks_own_ids() {
    let db = TestDb::new().await;
    let client = db.migrate().await;
    client.batch_execute("SELECT tailhook.partitions_prepare(interval '1 second', 3)").await.unwrap();
    client
        .batch_execute(
            "INSERT INTO tailhook.outbox (event_type, payload, dispatched_at) SELECT 'gone', '{}', now() FROM generate_series(1, 50);
             INSERT INTO tailhook.outbox (event_type, payload) VALUES ('kept', '{}')",
        )
        .await
        .unwrap();
    let kept: String = client
        .query_one("SELECT event_id::text FROM tailhook.outbox WHERE event_type = 'kept'", &[])
        .await
        .unwrap()
        .get(0);
    // Retention's steps: drop what is old enough, then remove the dropped
    // events' ids left behind, until they are all gone (an id made a few ms
    // after its event's created_at may fall in the next period: it goes
    // with that one).
    let removed = std::cell::Cell::new(0i64);
    wait_for("the events' periods dropped, with their ids", Duration::from_secs(20), || async {
        prepare_and_drop(&client).await;
        let expired: i64 = client.query_one("SELECT tailhook.event_ids_expire(5000)", &[]).await.unwrap().get(0);
        removed.set(removed.get() + expired);
        let done = "SELECT NOT EXISTS (SELECT 1 FROM tailhook.outbox WHERE event_type = 'gone')
                       AND (SELECT count(*) FROM tailhook.event_ids) = 1";
        client.query_one(done, &[]).await.unwrap().get::<_, bool>(0)
    })
    .await;
    assert_eq!(removed.get(), 0, "no id left for retention's batches");
    let ids: Vec<String> = client
        .query("SELECT event_id::text FROM tailhook.event_ids", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(ids, [kept.as_str()], "the dropped events' ids are gone, the kept event's stays");
    let err = client
        .batch_execute(&format!(
            "INSERT INTO tailhook.outbox (event_id, event_type, payload) VALUES ('{kept}', 'again', '{{}}')"
        ))
        .await
        .expect_err("the kept event's id still blocks a duplicate");
    assert!(report(&err).contains("outbox_event_id_key"), "{}", report(&err));
    // Five more events after it all, so that the counters read include the drops'.
    client
        .batch_execute(
            "INSERT INTO tailhook.outbox (event_type, payload) SELECT 'marker', '{}' FROM generate_series(1, 5)",
        )
        .await
        .unwrap();
    assert_eq!(event_ids_deleted(&db, &client, 6).await, 0, "retention deleted no event_ids row");
}

/// A random (version 4) id a publisher sets lives in event_ids' DEFAULT
/// partition: unique across periods, kept while its event is, removed by
/// retention's batches once its event went with a dropped period.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publishers_random_id_is_unique_across_periods_and_leaves_with_its_event() {
    let db = TestDb::new().await;
    let client = db.migrate().await;
    client.batch_execute("SELECT tailhook.partitions_prepare(interval '1 second', 3)").await.unwrap();
    let (gone, kept) = ("4f6c1b2e-8a3d-4c5e-9f70-0123456789ab", "d1e2f3a4-b5c6-4d7e-8f90-a1b2c3d4e5f6");
    client
        .batch_execute(&format!(
            "INSERT INTO tailhook.outbox (event_id, event_type, payload, dispatched_at) VALUES ('{gone}', 'gone', '{{}}', now());
             INSERT INTO tailhook.outbox (event_id, event_type, payload) VALUES ('{kept}', 'kept', '{{}}')"
        ))
        .await
        .unwrap();
    let publish = |id: &str| {
        format!("INSERT INTO tailhook.outbox (event_id, event_type, payload) VALUES ('{id}', 'again', '{{}}')")
    };
    // A later period: the same ids are refused still.
    wait_for("a later period", Duration::from_secs(10), || async {
        client
            .query_one(
                "SELECT date_trunc('second', now()) > (SELECT date_trunc('second', max(created_at)) FROM tailhook.outbox)",
                &[],
            )
            .await
            .unwrap()
            .get::<_, bool>(0)
    })
    .await;
    for id in [gone, kept] {
        let err = client.batch_execute(&publish(id)).await.expect_err("unique across periods");
        assert!(report(&err).contains("outbox_event_id_key"), "{}", report(&err));
    }
    drop_periods_until(
        &client,
        "the events' period dropped",
        "SELECT NOT EXISTS (SELECT 1 FROM tailhook.outbox WHERE event_type = 'gone')",
    )
    .await;
    // The gone event's id waits for retention's batches (in the DEFAULT chunk).
    let at: String = client
        .query_one("SELECT tableoid::regclass::text FROM tailhook.event_ids WHERE event_id = $1::text::uuid", &[&gone])
        .await
        .unwrap()
        .get(0);
    assert_eq!(at, "tailhook.event_ids_y_late");
    let removed: i64 = client.query_one("SELECT tailhook.event_ids_expire(5000)", &[]).await.unwrap().get(0);
    assert_eq!(removed, 1, "the gone event's id removed");
    client.batch_execute(&publish(gone)).await.expect("a gone event's id may be published again");
    let err = client.batch_execute(&publish(kept)).await.expect_err("the kept event's id still blocks a duplicate");
    assert!(report(&err).contains("outbox_event_id_key"), "{}", report(&err));
}

/// Preparing a period attaches its event_ids partition, and PostgreSQL then
/// scans event_ids' DEFAULT partition for rows of the new range: only the
/// chunk of the period's year is scanned (its CHECK constraint is what lets
/// PostgreSQL skip the others), never the chunk of random version 4 ids.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preparing_a_period_scans_one_chunk_of_event_ids_default_not_the_random_ids() {
    let db = TestDb::new().await;
    let client = db.migrate().await;
    client
        .batch_execute(
            "INSERT INTO tailhook.event_ids (event_id, created_at) SELECT gen_random_uuid(), now() FROM generate_series(1, 1000000)",
        )
        .await
        .unwrap();
    let this_year = "'event_ids_y' || extract(year FROM now() AT TIME ZONE 'UTC')";
    let late = db.count("SELECT count(*) FROM tailhook.event_ids_y_late").await;
    assert!(late > 990_000, "random version 4 ids are mostly past 2040: {late}");
    let scans = format!(
        "SELECT (SELECT seq_scan FROM pg_stat_user_tables WHERE schemaname = 'tailhook' AND relname = 'event_ids_y_late'),
                (SELECT seq_scan FROM pg_stat_user_tables WHERE schemaname = 'tailhook' AND relname = 'event_ids_y_early'),
                (SELECT seq_scan FROM pg_stat_user_tables WHERE schemaname = 'tailhook' AND relname = {this_year})"
    );
    client.batch_execute("SELECT pg_stat_force_next_flush()").await.unwrap();
    let reader = db.client().await;
    let read = async || {
        let row = reader.query_one(&scans, &[]).await.unwrap();
        (row.get::<_, i64>(0), row.get::<_, i64>(1), row.get::<_, i64>(2))
    };
    let before = read().await;
    let started = std::time::Instant::now();
    let created: i32 = client
        .query_one("SELECT created FROM tailhook.partitions_prepare(interval '1 hour', 3)", &[])
        .await
        .unwrap()
        .get(0);
    let took = started.elapsed();
    eprintln!("prepare with 1,000,000 random ids in event_ids' DEFAULT partition: {created} partitions in {took:?}");
    assert!(created >= 8, "periods prepared: {created}");
    client.batch_execute("SELECT pg_stat_force_next_flush()").await.unwrap();
    // The year's chunk is scanned once per attach (the check this test
    // relies on is counted)...
    let last = std::cell::Cell::new(before);
    let counted = poll_until(Duration::from_secs(20), || async {
        last.set(read().await);
        last.get().2 > before.2
    })
    .await;
    let after = last.get();
    assert!(counted, "the year's chunk scan counted: {before:?} {after:?}");
    // ...the random ids' chunks never.
    assert_eq!(
        (after.0, after.1),
        (before.0, before.1),
        "the random ids' chunks are not scanned: {before:?} {after:?}"
    );
}

/// An id whose event outlives the id's period (a publisher's version 7 id
/// from a slow clock: its time earlier than the event's created_at) is put
/// back when that period is dropped and still blocks a duplicate; it leaves
/// once its event went with its own period.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_id_whose_event_outlives_its_period_still_blocks_a_duplicate() {
    let db = TestDb::new().await;
    let client = db.migrate().await;
    client.batch_execute("SELECT tailhook.partitions_prepare(interval '1 second', 3)").await.unwrap();
    // The id's time: the start of the first period, once it is two seconds old.
    let (first, lo): (String, String) = client
        .query_one("SELECT name, lo::text FROM tailhook.partition_bounds('outbox') ORDER BY lo LIMIT 1", &[])
        .await
        .map(|r| (r.get(0), r.get(1)))
        .unwrap();
    wait_for("the first period two seconds old", Duration::from_secs(10), || async {
        client
            .query_one("SELECT now() > $1::text::timestamptz + interval '2 seconds'", &[&lo])
            .await
            .unwrap()
            .get::<_, bool>(0)
    })
    .await;
    client.batch_execute("SELECT tailhook.partitions_prepare(interval '1 second', 3)").await.unwrap();
    let id: String =
        client.query_one("SELECT tailhook.uuid_at($1::text::timestamptz)::text", &[&lo]).await.unwrap().get(0);
    client
        .batch_execute(&format!(
            "INSERT INTO tailhook.outbox (event_id, event_type, payload, dispatched_at) VALUES ('{id}', 'slow.clock', '{{}}', now())"
        ))
        .await
        .unwrap();
    let ids_part = first.replacen("outbox", "event_ids", 1);
    let at: String = client
        .query_one("SELECT tableoid::regclass::text FROM tailhook.event_ids WHERE event_id = $1::text::uuid", &[&id])
        .await
        .unwrap()
        .get(0);
    assert_eq!(at, format!("tailhook.{ids_part}"), "the id lives in its time's period");
    // Drop that period only (the event's is younger).
    client.batch_execute("SELECT tailhook.partitions_drop(0, 0)").await.unwrap();
    assert!(client
        .query_one("SELECT to_regclass($1) IS NULL", &[&format!("tailhook.{ids_part}")])
        .await
        .unwrap()
        .get::<_, bool>(0));
    assert_eq!(
        db.count("SELECT count(*) FROM tailhook.outbox WHERE event_type = 'slow.clock'").await,
        1,
        "the event lives on"
    );
    let publish =
        format!("INSERT INTO tailhook.outbox (event_id, event_type, payload) VALUES ('{id}', 'again', '{{}}')");
    let err = client.batch_execute(&publish).await.expect_err("its id still blocks a duplicate");
    assert!(report(&err).contains("outbox_event_id_key"), "{}", report(&err));
    // Once the event's own period is dropped, its id goes too.
    drop_periods_until(
        &client,
        "the event's period dropped",
        "SELECT NOT EXISTS (SELECT 1 FROM tailhook.outbox WHERE event_type = 'slow.clock')",
    )
    .await;
    let removed: i64 = client.query_one("SELECT tailhook.event_ids_expire(5000)", &[]).await.unwrap().get(0);
    assert_eq!(removed, 1, "the id removed once its event is gone");
    client.batch_execute(&publish).await.expect("and may be published again");
}

/// An id of a period not prepared yet (a publisher's UUIDv7 from the
/// future) waits in event_ids' DEFAULT partition; preparing its period moves
/// it into the period's partition (the ATTACH would fail on it otherwise),
/// and it stays unique.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_id_from_a_period_not_prepared_yet_is_moved_into_it_when_prepared() {
    let db = TestDb::new().await;
    let client = db.migrate().await;
    client.batch_execute("SELECT tailhook.partitions_prepare(interval '1 hour', 1)").await.unwrap();
    let id: String =
        client.query_one("SELECT tailhook.uuid_at(now() + interval '150 minutes')::text", &[]).await.unwrap().get(0);
    let publish =
        format!("INSERT INTO tailhook.outbox (event_id, event_type, payload) VALUES ('{id}', 'future.id', '{{}}')");
    client.batch_execute(&publish).await.unwrap();
    let at = async || -> String {
        client
            .query_one(
                "SELECT tableoid::regclass::text FROM tailhook.event_ids WHERE event_id = $1::text::uuid",
                &[&id],
            )
            .await
            .unwrap()
            .get(0)
    };
    assert!(at().await.starts_with("tailhook.event_ids_y2"), "in the DEFAULT partition's year chunk: {}", at().await);
    let moved: i64 = client
        .query_one("SELECT moved FROM tailhook.partitions_prepare(interval '1 hour', 4)", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(moved, 1);
    assert!(at().await.starts_with("tailhook.event_ids_p"), "in its period's partition: {}", at().await);
    let err = client.batch_execute(&publish).await.expect_err("still unique");
    assert!(report(&err).contains("outbox_event_id_key"), "{}", report(&err));
}

/// Retention's and partition maintenance's transactions run without JIT
/// (their lock statement turns it off for the transaction only): their
/// generic plans over many partitions cost past jit_above_cost, and
/// compiling them took seconds a call (bench sustained).
#[tokio::test]
async fn retention_and_maintenance_transactions_run_without_jit() {
    let db = TestDb::new().await;
    let mut client = db.migrate().await;
    client.batch_execute("SET jit = on").await.unwrap();
    for lock in
        [include_str!("../../sql/queries/retention_lock.sql"), include_str!("../../sql/queries/partitions_lock.sql")]
    {
        let tx = client.transaction().await.unwrap();
        assert!(tx.query_one(lock, &[]).await.unwrap().get::<_, bool>(0), "the lock is free");
        let jit: String = tx.query_one("SELECT current_setting('jit')", &[]).await.unwrap().get(0);
        assert_eq!(jit, "off", "{lock}");
        tx.commit().await.unwrap();
        let jit: String = client.query_one("SELECT current_setting('jit')", &[]).await.unwrap().get(0);
        assert_eq!(jit, "on", "the session's own setting is left as it was");
    }
}
