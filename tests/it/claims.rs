//! Claim sizing with many endpoints: fan-out claims sized by what rows really fan out to, due claims by each endpoint's room.

use crate::support::*;
use std::time::Duration;
use tokio::time::Instant;

/// `n` endpoints `t1` … `tn`, each receiving only the events of its own tenant.
async fn tenant_endpoints(client: &tokio_postgres::Client, receiver: &Receiver, n: i64) {
    client
        .execute(
            "INSERT INTO tailhook.endpoints (name, url, tenant)
             SELECT 't' || g, $1 || g, 't' || g FROM generate_series(1, $2::bigint) g",
            &[&receiver.url("/t/"), &n],
        )
        .await
        .unwrap();
}

/// The most requests to `path` certainly in flight at once, for a receiver
/// that answers each after `delay`: at each arrival, the arrivals less than
/// `delay` before it (a lower bound of the true figure).
fn peak_in_flight(receiver: &Receiver, path: &str, delay: Duration) -> usize {
    let mut at: Vec<Instant> = receiver.received().iter().filter(|r| r.path == path).map(|r| r.at).collect();
    at.sort();
    let mut peak = 0;
    let mut first = 0;
    for (i, t) in at.iter().enumerate() {
        while t.duration_since(at[first]) >= delay {
            first += 1;
        }
        peak = peak.max(i + 1 - first);
    }
    peak
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_routed_by_tenant_to_a_thousand_endpoints_are_fanned_out_in_large_claims() {
    const ENDPOINTS: i64 = 1_000;
    const EVENTS: i64 = 3_000;
    let db = TestDb::new().await;
    let receiver = Receiver::ok().await;
    let client = db.migrate().await;
    tenant_endpoints(&client, &receiver, ENDPOINTS).await;
    client
        .execute(
            "INSERT INTO tailhook.outbox (event_type, payload, tenant)
             SELECT 'e', jsonb_build_object('n', g), 't' || (g % $2::bigint + 1) FROM generate_series(1, $1::bigint) g",
            &[&EVENTS, &ENDPOINTS],
        )
        .await
        .unwrap();
    let mut config = db.config();
    config.delivery.concurrency = 512;
    // Leases that outlast any stall of this busy machine: a duplicate here
    // would be a claim sized past its slots, not a lease taken over.
    config.delivery.lease_margin_ms = 30_000;
    let sidecar = Sidecar::start(config);
    wait_settled(&db, EVENTS, Duration::from_secs(60)).await;
    sidecar.stop().await;

    // A fan-out marks its rows dispatched at its transaction's now(): one
    // distinct value per claim.
    let claims = db.count("SELECT count(DISTINCT dispatched_at) FROM tailhook.outbox").await;
    eprintln!("{EVENTS} events over {ENDPOINTS} tenant endpoints: {claims} fan-out claims");
    assert!(claims <= 60, "{EVENTS} events, 512 slots, one delivery each: took {claims} fan-out claims");
    assert_eq!(db.count("SELECT count(*) FROM tailhook.deliveries WHERE status = 'succeeded'").await, EVENTS);
    assert_eq!(receiver.count(), EVENTS as usize, "each event sent once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_endpoints_due_backlog_among_a_thousand_idle_endpoints_drains_at_its_max_in_flight() {
    const BACKLOG: i64 = 10_000;
    const MAX_IN_FLIGHT: usize = 100;
    const DELAY: Duration = Duration::from_millis(300);
    let db = TestDb::new().await;
    let receiver = Receiver::start(|path, _| match path {
        "/busy" => Reply::ok().after(DELAY),
        _ => Reply::ok(),
    })
    .await;
    let client = db.migrate().await;
    tenant_endpoints(&client, &receiver, 1_000).await;
    let busy = add_endpoint(&client, "busy", &receiver.url("/busy"), &[]).await;
    let other = add_endpoint(&client, "other", &receiver.url("/other"), &[]).await;
    client
        .execute("UPDATE tailhook.endpoints SET max_in_flight = $2 WHERE id = $1", &[&busy, &(MAX_IN_FLIGHT as i32)])
        .await
        .unwrap();
    // Due deliveries (retries, redeliveries, work that waited for room), as
    // the due claim finds them: events already dispatched, deliveries unleased.
    for (endpoint, n) in [(busy, BACKLOG), (other, 100)] {
        client
            .batch_execute(&format!(
                "WITH o AS (
                     INSERT INTO tailhook.outbox (event_type, payload, dispatched_at)
                     SELECT 'backlog', jsonb_build_object('n', g), now() FROM generate_series(1, {n}) g
                     RETURNING id)
                 INSERT INTO tailhook.deliveries (outbox_id, endpoint_id, status, attempts, next_attempt_at)
                 SELECT id, {endpoint}, 'retrying', 1, now() FROM o"
            ))
            .await
            .unwrap();
    }
    let mut config = db.config();
    config.delivery.concurrency = 512;
    let sidecar = Sidecar::start(config);
    let started = Instant::now();
    poll_until(Duration::from_secs(15), || async { peak_in_flight(&receiver, "/busy", DELAY) >= MAX_IN_FLIGHT }).await;
    let reached = started.elapsed();
    let (peak, sent) = (peak_in_flight(&receiver, "/busy", DELAY), receiver.count());
    assert!(peak >= MAX_IN_FLIGHT, "after {reached:?}: at most {peak} requests in flight at once, {sent} sent");
    // Another endpoint's due work is not held back behind the big backlog.
    wait_for("the other endpoint's backlog", Duration::from_secs(10), || async {
        receiver.received().iter().filter(|r| r.path == "/other").count() >= 100
    })
    .await;
    let busy_sent = receiver.received().iter().filter(|r| r.path == "/busy").count();
    sidecar.stop().await;
    let peak = peak_in_flight(&receiver, "/busy", DELAY - Duration::from_millis(20));
    eprintln!("busy endpoint at {MAX_IN_FLIGHT} in flight after {reached:?}; {busy_sent} sent when the other finished");
    assert!(peak <= MAX_IN_FLIGHT, "max_in_flight {MAX_IN_FLIGHT} exceeded: {peak} in flight");
    assert!((busy_sent as i64) < BACKLOG, "the other endpoint was served while the backlog was still draining");
}

/// Once ANALYZE has seen an outbox of dispatched rows, PostgreSQL estimates
/// that a claim locks one row. The fan-out must still join a batch's
/// intermediate results by hashing: nested loops between them are quadratic
/// in the batch (measured on a 1,000,000-row analysed outbox: 101–108 ms to
/// fan out 512 rows that way, 18–22 ms hashed; see sql/0016_claim_rows.sql).
#[tokio::test]
async fn the_fan_out_is_planned_for_a_batch_in_an_analysed_outbox() {
    let db = TestDb::new().await;
    let client = db.migrate().await;
    client
        .batch_execute(
            "INSERT INTO tailhook.endpoints (name, url) VALUES ('a', 'http://127.0.0.1:9/a'), ('b', 'http://127.0.0.1:9/b');
             INSERT INTO tailhook.outbox (event_type, payload, dispatched_at)
                 SELECT 'old', '{}', now() FROM generate_series(1, 20000);
             ANALYZE tailhook.outbox;
             INSERT INTO tailhook.outbox (event_type, payload) SELECT 'new', '{}' FROM generate_series(1, 600);
             SET plan_cache_mode = force_generic_plan;",
        )
        .await
        .unwrap();
    client
        .batch_execute(&format!(
            "PREPARE dispatch(bigint, text, int, int, bigint, bigint[], int[], int, int, bigint, bigint, bigint[], int, int) AS {}",
            include_str!("../../sql/queries/dispatch.sql")
        ))
        .await
        .unwrap();
    // The plan as the sidecar's prepared statement gets it (generic), for a claim of 512.
    let explained = client
        .simple_query(
            "EXPLAIN (FORMAT JSON) EXECUTE dispatch(512, 'r', 10000, 5000, 1, '{}', '{}', 512, 1048576, 16777216, 512, '{}', 250, 7500)",
        )
        .await
        .unwrap();
    let text = explained
        .iter()
        .find_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(row) => row.get(0).map(str::to_owned),
            _ => None,
        })
        .expect("a plan");
    let plan: serde_json::Value = serde_json::from_str(&text).unwrap();
    let mut quadratic = Vec::new();
    nested_loops_between_ctes(&plan[0]["Plan"], &mut quadratic);
    assert!(quadratic.is_empty(), "nested loops joining the claim's own results: {quadratic:#?}");
}

/// Nested loops both of whose sides read only the statement's own CTEs.
fn nested_loops_between_ctes(node: &serde_json::Value, found: &mut Vec<String>) {
    let children: &[serde_json::Value] = node["Plans"].as_array().map(Vec::as_slice).unwrap_or_default();
    if node["Node Type"] == "Nested Loop" && children.len() == 2 && children.iter().all(reads_only_ctes) {
        let sides: Vec<String> = children
            .iter()
            .map(|c| format!("{} {}", c["Node Type"].as_str().unwrap_or("?"), c["Alias"].as_str().unwrap_or("")))
            .collect();
        found.push(sides.join(" x "));
    }
    for child in children {
        nested_loops_between_ctes(child, found);
    }
}

fn reads_only_ctes(node: &serde_json::Value) -> bool {
    match node["Plans"].as_array() {
        Some(children) if !children.is_empty() => children.iter().all(reads_only_ctes),
        _ => node["Node Type"] == "CTE Scan",
    }
}

/// The claim pool with `connections` connections, as the sidecar builds it.
fn pool_of(db: &TestDb, connections: usize) -> (tailhook::db::Db, tailhook::Config) {
    let mut config = db.config();
    config.database.pool_size = connections;
    (tailhook::db::Db::new(&config.database).unwrap(), config)
}

/// A lease of replica `r` with claim token `token`.
fn lease(token: i64) -> tailhook::db::Lease<'static> {
    tailhook::db::Lease {
        replica: "r",
        token,
        default_timeout_ms: 1_000,
        margin_ms: 0,
        max_payload_bytes: 1 << 20,
        claim_bytes: 16 << 20,
    }
}

/// The result of a first attempt that succeeded, under lease `token`.
fn success(row: &tailhook::db::ClaimedRow, token: i64) -> tailhook::db::ResultBatch {
    tailhook::db::ResultBatch {
        delivery_id: vec![row.delivery_id.unwrap()],
        event_at: vec![row.event_at.unwrap()],
        attempt: vec![1],
        status: vec!["succeeded"],
        delay_ms: vec![None],
        status_code: vec![Some(200)],
        error_kind: vec![None],
        error: vec![None],
        last_error: vec![None],
        lease: vec![token],
        started_at: vec![std::time::SystemTime::now()],
        duration_ms: vec![1],
        response_body: vec![None],
    }
}

/// Rows of `table` that sequential scans have read so far, counting every
/// statement `pool` has run (its one connection flushes its statistics
/// before it answers the flush request).
async fn rows_read_by_scans(pool: &tailhook::db::Db, db: &TestDb, table: &str) -> i64 {
    pool.client().await.unwrap().simple_query("SELECT pg_stat_force_next_flush()").await.unwrap();
    db.count(&format!("SELECT seq_tup_read FROM pg_stat_user_tables WHERE relid = '{table}'::regclass")).await
}

/// A prepared statement keeps the plan PostgreSQL made from the table sizes
/// of its first runs until ANALYZE changes the statistics (autovacuum is off
/// on the test server, and can be far behind anywhere). A sidecar started on
/// an empty outbox must not go on reading the whole outbox for every claim
/// once the outbox has grown.
#[tokio::test]
async fn claims_planned_on_an_empty_outbox_stop_reading_all_of_it_once_it_has_grown() {
    const GROWN: i64 = 5_000;
    let db = TestDb::new().await;
    let client = db.migrate().await;
    client
        .batch_execute("INSERT INTO tailhook.endpoints (name, url) VALUES ('a', 'http://127.0.0.1:9/a')")
        .await
        .unwrap();
    let (pool, _) = pool_of(&db, 1);
    let lease = lease(1);
    let rooms = tailhook::db::Rooms { endpoint_ids: Vec::new(), room: Vec::new(), default_room: GROWN as i32 };
    let publish_and_fan_out = async |events: i64| {
        client
            .execute("INSERT INTO tailhook.outbox (event_type, payload) SELECT 'e', '{}' FROM generate_series(1, $1::bigint)", &[&events])
            .await
            .unwrap();
        let rows = pool.dispatch(events, events, lease, &rooms, false, &[]).await.unwrap();
        assert_eq!(rows.len() as i64, events);
    };
    // Claims of one row while the outbox holds a few: past its fifth run,
    // the statement keeps a generic plan made for a table of a few rows.
    for _ in 0..8 {
        publish_and_fan_out(1).await;
    }
    publish_and_fan_out(GROWN).await;
    let before = rows_read_by_scans(&pool, &db, "tailhook.outbox").await;
    for _ in 0..10 {
        publish_and_fan_out(1).await;
    }
    let read = rows_read_by_scans(&pool, &db, "tailhook.outbox").await - before;
    assert!(read < GROWN, "10 one-row claims read {read} outbox rows by sequential scans ({} rows in it)", GROWN + 18);
}

/// The plans made when the rows fanned out first reach 1,024 (while the
/// tables hold about that many rows) must find a claim's outbox rows and a
/// result's delivery through their primary keys, not by reading the tables
/// whole, or every claim and result write grows dearer until the next
/// replan. The tables then grow without a replan (rows written directly).
#[tokio::test]
async fn claims_and_result_writes_planned_on_small_tables_probe_their_keys_as_the_tables_grow() {
    const SMALL: i64 = 1_100;
    const GROWN: i64 = 20_000;
    let db = TestDb::new().await;
    let client = db.migrate().await;
    let endpoint = add_endpoint(&client, "a", "http://127.0.0.1:9/a", &[]).await;
    let (pool, _) = pool_of(&db, 1);
    let rooms = tailhook::db::Rooms { default_room: SMALL as i32, ..tailhook::db::Rooms::default() };
    let mut token = 0;
    let mut publish_and_deliver = async |events: i64| {
        token += 1;
        client
            .execute("INSERT INTO tailhook.outbox (event_type, payload) SELECT 'e', '{}' FROM generate_series(1, $1::bigint)", &[&events])
            .await
            .unwrap();
        for row in pool.dispatch(events, events, lease(token), &rooms, false, &[]).await.unwrap() {
            let result = success(&row, token);
            assert!(pool.record_results("r", &result).await.unwrap().is_empty(), "written under its lease");
        }
    };
    // Past 1,024 rows fanned out the statements are prepared again, and
    // planned at their next run: for tables of about 1,100 rows.
    publish_and_deliver(SMALL).await;
    publish_and_deliver(1).await;
    client
        .execute(
            "WITH o AS (INSERT INTO tailhook.outbox (event_type, payload, dispatched_at)
                        SELECT 'e', '{}', now() FROM generate_series(1, $1::bigint) RETURNING id)
             INSERT INTO tailhook.deliveries (outbox_id, endpoint_id, status, attempts, completed_at)
             SELECT id, $2, 'succeeded', 1, now() FROM o",
            &[&GROWN, &endpoint],
        )
        .await
        .unwrap();
    let before = [
        rows_read_by_scans(&pool, &db, "tailhook.outbox").await,
        rows_read_by_scans(&pool, &db, "tailhook.deliveries").await,
    ];
    for _ in 0..10 {
        publish_and_deliver(1).await;
    }
    let after = [
        rows_read_by_scans(&pool, &db, "tailhook.outbox").await,
        rows_read_by_scans(&pool, &db, "tailhook.deliveries").await,
    ];
    let read = [after[0] - before[0], after[1] - before[1]];
    assert!(
        read[0] < GROWN && read[1] < GROWN,
        "10 one-row claims and result writes read {read:?} (outbox, deliveries) rows by sequential scans ({} rows in each)",
        GROWN + SMALL + 12
    );
}

/// The statements run for every batch (fan-out, due claim, result write,
/// breaker bookkeeping) take arrays as parameters, and a custom plan for a
/// batch of one or two rows looks cheaper to PostgreSQL than the generic
/// plan's guess of ten: left to choose, it plans them afresh on nearly every
/// call, which at low rates costs more than running them. Each connection
/// plans them once.
#[tokio::test]
async fn the_pipelines_statements_are_planned_once_per_connection_not_on_every_call() {
    use tailhook::db::{HealthBatch, Rooms};
    const CALLS: i64 = 12;
    let db = TestDb::new().await;
    let client = db.migrate().await;
    let endpoint = add_endpoint(&client, "a", "http://127.0.0.1:9/a", &[]).await;
    let (pool, config) = pool_of(&db, 1);
    let rooms = Rooms { default_room: 10, ..Rooms::default() };
    for token in 1..=CALLS {
        let lease = lease(token);
        client.execute("SELECT tailhook.publish('e', '{}')", &[]).await.unwrap();
        let claimed = pool.dispatch(1, 1, lease, &rooms, false, &[]).await.unwrap();
        let result = success(&claimed[0], token);
        assert!(pool.record_results("r", &result).await.unwrap().is_empty(), "written under its lease");
        let mut health = HealthBatch::default();
        health.add(endpoint, true);
        pool.endpoint_health(&health, &config.delivery).await.unwrap();
        assert!(pool.claim_due(10, 10, lease, &rooms).await.unwrap().is_empty(), "nothing is due");
    }
    assert_eq!(db.count("SELECT count(*) FROM tailhook.deliveries WHERE status = 'succeeded'").await, CALLS);
    // The pool's one connection: its prepared statements and how each was planned.
    let prepared = pool
        .client()
        .await
        .unwrap()
        .query("SELECT statement, generic_plans, custom_plans FROM pg_prepared_statements", &[])
        .await
        .unwrap();
    for head in
        ["-- Fan out a batch", "-- Lease a batch of due", "-- Write a batch of attempt results", "-- Circuit breaker"]
    {
        let row = prepared
            .iter()
            .find(|r| r.get::<_, String>(0).starts_with(head))
            .unwrap_or_else(|| panic!("{head}: not prepared"));
        let (generic, custom): (i64, i64) = (row.get(1), row.get(2));
        assert_eq!((generic, custom), (CALLS, 0), "{head}: (generic plans used, custom plans made) over {CALLS} calls");
    }
}

/// The usual batch of results (successes for an endpoint with nothing to
/// reset) changes no endpoint row, so the breaker's bookkeeping locks none:
/// its transaction writes nothing and its commit waits for no WAL flush, and
/// another transaction holding the row does not hold the count back.
/// Failures are still counted under the row's lock, and a success resets them.
#[tokio::test]
async fn successes_for_a_healthy_endpoint_lock_and_write_no_endpoint_row() {
    use tailhook::db::HealthBatch;
    let db = TestDb::new().await;
    let client = db.migrate().await;
    let endpoint = add_endpoint(&client, "a", "http://127.0.0.1:9/a", &[]).await;
    let (pool, config) = pool_of(&db, 1);
    let report = async |ok: bool| {
        let mut health = HealthBatch::default();
        health.add(endpoint, ok);
        pool.endpoint_health(&health, &config.delivery).await.unwrap().skipped
    };
    let row = async || -> (String, i32, bool) {
        let r = client
            .query_one(
                "SELECT xmax::text, consecutive_failures, failing_since IS NULL FROM tailhook.endpoints WHERE id = $1",
                &[&endpoint],
            )
            .await
            .unwrap();
        (r.get(0), r.get(1), r.get(2))
    };
    assert!(report(true).await.is_empty(), "counted");
    assert_eq!(
        row().await,
        ("0".to_owned(), 0, true),
        "(xmax, failures, healthy): the row was neither locked nor written"
    );

    let operator = db.client().await;
    operator.batch_execute("BEGIN; SELECT 1 FROM tailhook.endpoints FOR UPDATE").await.unwrap();
    assert!(report(true).await.is_empty(), "nothing to change: not held back by the operator's lock");
    assert_eq!(report(false).await, [endpoint], "a failure waits for the row");
    operator.batch_execute("ROLLBACK").await.unwrap();

    assert!(report(false).await.is_empty());
    let (_, failures, healthy) = row().await;
    assert_eq!((failures, healthy), (1, false), "a failure is counted under the row's lock");
    assert!(report(true).await.is_empty());
    let (_, failures, healthy) = row().await;
    assert_eq!((failures, healthy), (0, true), "a success resets it");
}

/// The pool hands out the connection used last, so at low rates one warm
/// server process serves the claims instead of each in turn.
#[tokio::test]
async fn the_pool_hands_out_the_connection_used_last() {
    let db = TestDb::new().await;
    let (pool, _) = pool_of(&db, 2);
    let pid = async |c: &deadpool_postgres::Object| -> i32 {
        c.query_one("SELECT pg_backend_pid()", &[]).await.unwrap().get(0)
    };
    let (first, last) = (pool.client().await.unwrap(), pool.client().await.unwrap());
    let (first_pid, last_pid) = (pid(&first).await, pid(&last).await);
    assert_ne!(first_pid, last_pid);
    drop(first);
    drop(last);
    for _ in 0..3 {
        let c = pool.client().await.unwrap();
        assert_eq!(pid(&c).await, last_pid, "the connection given back last, every time");
    }
}
