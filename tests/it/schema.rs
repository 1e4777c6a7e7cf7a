//! The SQL contract: migrations, constraints, the NOTIFY trigger, and the redelivery functions.

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrations_are_safe_concurrently_and_a_no_op_when_re_run() {
    let db = TestDb::new().await;
    let mut runs = Vec::new();
    for _ in 0..4 {
        let url = db.url.clone();
        runs.push(tokio::spawn(async move {
            let mut client = connect(&url).await;
            tailhook::db::migrate(&mut client).await.expect("migrate")
        }));
    }
    let mut applied = Vec::new();
    for run in runs {
        applied.extend(run.await.unwrap());
    }
    let latest: Vec<i32> = tailhook::db::MIGRATIONS.iter().map(|m| m.0).collect();
    assert_eq!(applied, latest, "each version applied exactly once over all runs");
    let mut client = db.client().await;
    assert!(tailhook::db::migrate(&mut client).await.unwrap().is_empty());
    assert_eq!(db.count("SELECT count(*) FROM tailhook.schema_migrations").await, latest.len() as i64);
    // Every file is also safe to apply by hand again, as another migration tool might.
    for (_, _, sql) in tailhook::db::MIGRATIONS {
        client.batch_execute(sql).await.expect("re-applying a migration file");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn constraints_reject_what_cannot_work() {
    let db = TestDb::new().await;
    let client = db.migrate().await;
    let bad = [
        ("INSERT INTO tailhook.outbox (event_type, payload) VALUES ('', '{}')", "outbox_event_type_not_empty"),
        ("INSERT INTO tailhook.endpoints (name, url) VALUES ('a', 'ftp://x')", "endpoints_url_http"),
        ("INSERT INTO tailhook.endpoints (name, url) VALUES ('a', 'http://')", "endpoints_url_http"),
        (
            "INSERT INTO tailhook.endpoints (name, url, headers) VALUES ('a', 'http://x', '[]')",
            "endpoints_headers_object",
        ),
        (
            "INSERT INTO tailhook.endpoints (name, url, timeout_ms) VALUES ('a', 'http://x', 0)",
            "endpoints_timeout_ms_positive",
        ),
    ];
    for (sql, constraint) in bad {
        let err = client.execute(sql, &[]).await.expect_err(sql);
        let msg = err.as_db_error().map(|e| e.constraint().unwrap_or_default().to_owned()).unwrap_or_default();
        assert_eq!(msg, constraint, "{sql}");
    }
    client
        .execute("INSERT INTO tailhook.endpoints (name, url) VALUES ('ok', 'HTTPS://example.com/x')", &[])
        .await
        .unwrap();
    let id: String = client.query_one("SELECT tailhook.publish('a', '{}')::text", &[]).await.unwrap().get(0);
    assert_eq!(id.len(), 36, "publish returns the event's uuid");
    // The wake-up trigger fires once per statement, not once per row.
    let row_level: i64 =
        db.count("SELECT count(*) FROM pg_trigger WHERE tgname = 'outbox_notify' AND (tgtype & 1) = 1").await;
    assert_eq!(row_level, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_type_patterns_match_as_documented() {
    let db = TestDb::new().await;
    let client = db.migrate().await;
    let cases: &[(&[&str], &str, bool)] = &[
        (&["*"], "anything.at.all", true),
        (&["a.*"], "a.b", true),
        (&["a.*"], "a.b.c", true),
        (&["a.*"], "a", false),
        (&["a.*"], "ab.c", false),
        (&["a.b"], "a.b", true),
        (&["a.b"], "a.bc", false),
        (&["x", "a.*"], "a.z", true),
        (&[], "a", false),
        (&["a%"], "ab", false),
        // tailhook's operational events only for patterns that name them.
        (&["*"], "tailhook.endpoint.disabled", false),
        (&["*"], "tailhook.test", true),
        (&["*", "tailhook.*"], "tailhook.delivery.failed", true),
        (&["tailhook.endpoint.*"], "tailhook.endpoint.paused", true),
        (&["tailhook.endpoint.*"], "tailhook.delivery.failed", false),
        (&["tailhook.delivery.failed"], "tailhook.delivery.failed", true),
    ];
    for (patterns, event_type, expected) in cases {
        let got: bool = client
            .query_one("SELECT tailhook.event_type_matches($1, $2)", &[patterns, event_type])
            .await
            .unwrap()
            .get(0);
        assert_eq!(got, *expected, "{patterns:?} vs {event_type}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redeliver_functions_put_deliveries_back_and_keep_history() {
    let db = TestDb::new().await;
    let client = db.migrate().await;
    client.execute("INSERT INTO tailhook.endpoints (name, url) VALUES ('ep', 'http://x')", &[]).await.unwrap();
    client
        .batch_execute(
            "INSERT INTO tailhook.outbox (event_type, payload, dispatched_at) SELECT 't', '{}', now() FROM generate_series(1, 3);
             INSERT INTO tailhook.deliveries (outbox_id, endpoint_id, status, attempts, next_attempt_at, completed_at, last_error)
               SELECT o.id, e.id, 'failed', 18, NULL, now() - (o.id || ' hours')::interval, 'HTTP 500'
               FROM tailhook.outbox o, tailhook.endpoints e;
             INSERT INTO tailhook.attempts (delivery_id, attempt, started_at, duration_ms, status_code, error_kind)
               SELECT id, 18, now(), 5, 500, 'http_status' FROM tailhook.deliveries;",
        )
        .await
        .unwrap();
    let first: i64 = client.query_one("SELECT min(id) FROM tailhook.deliveries", &[]).await.unwrap().get(0);
    assert!(client.query_one("SELECT tailhook.redeliver($1)", &[&first]).await.unwrap().get::<_, bool>(0));
    assert!(!client.query_one("SELECT tailhook.redeliver(-1)", &[]).await.unwrap().get::<_, bool>(0));
    // Completed within the last 2.5 hours: the ones failed 2 h ago (1 h ago was already redelivered).
    let n: i64 = client
        .query_one("SELECT tailhook.redeliver_failed('ep', now() - interval '150 minutes')", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 1);
    let due = db
        .count("SELECT count(*) FROM tailhook.deliveries WHERE status = 'retrying' AND next_attempt_at <= now() AND completed_at IS NULL")
        .await;
    assert_eq!(due, 2);
    assert_eq!(db.count("SELECT count(*) FROM tailhook.attempts").await, 3, "history kept");
    let stats = client
        .query_one(
            "SELECT delivered, failed, retrying, delivery_success_rate::float8 FROM tailhook.endpoint_stats WHERE name = 'ep'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!((stats.get::<_, i64>(0), stats.get::<_, i64>(1), stats.get::<_, i64>(2)), (0, 1, 2));
    assert_eq!(stats.get::<_, Option<f64>>(3), Some(0.0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_an_endpoint_or_an_event_deletes_its_deliveries_and_attempts() {
    let db = TestDb::new().await;
    let client = db.migrate().await;
    client
        .batch_execute(
            "INSERT INTO tailhook.endpoints (name, url) VALUES ('a', 'http://a'), ('b', 'http://b');
             INSERT INTO tailhook.outbox (event_type, payload) SELECT 't', '{}' FROM generate_series(1, 3);
             INSERT INTO tailhook.deliveries (outbox_id, endpoint_id) SELECT o.id, e.id FROM tailhook.outbox o, tailhook.endpoints e;
             INSERT INTO tailhook.attempts (delivery_id, attempt, started_at, duration_ms) SELECT id, 1, now(), 1 FROM tailhook.deliveries;",
        )
        .await
        .unwrap();
    let counts = || async {
        (
            db.count("SELECT count(*) FROM tailhook.deliveries").await,
            db.count("SELECT count(*) FROM tailhook.attempts").await,
        )
    };
    assert_eq!(counts().await, (6, 6));
    client.execute("DELETE FROM tailhook.endpoints WHERE name = 'a'", &[]).await.unwrap();
    assert_eq!(counts().await, (3, 3), "endpoint a's deliveries and attempts are gone");
    client.execute("DELETE FROM tailhook.outbox WHERE id = (SELECT min(id) FROM tailhook.outbox)", &[]).await.unwrap();
    assert_eq!(counts().await, (2, 2), "the event's delivery and attempt are gone");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_throwaway_cluster_starts_from_local_binaries_and_takes_the_schema() {
    // The path a machine without a running PostgreSQL takes. The cluster is
    // stopped and deleted by its watchdog when this test process exits.
    let pg =
        tokio::task::spawn_blocking(tailhook::local_pg::start_throwaway).await.unwrap().expect("throwaway cluster");
    assert!(pg.origin.starts_with("throwaway cluster in "), "{}", pg.origin);
    let mut client = connect(&pg.admin_url).await;
    let all: Vec<i32> = tailhook::db::MIGRATIONS.iter().map(|m| m.0).collect();
    assert_eq!(tailhook::db::migrate(&mut client).await.unwrap(), all);
    let dir = pg.origin.trim_start_matches("throwaway cluster in ");
    assert!(std::path::Path::new(dir).join("data").is_dir());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_result_never_completes_a_delivery_claimed_again() {
    use tailhook::db::{Db, Lease, ResultBatch, Rooms};
    let db = TestDb::new().await;
    let client = db.migrate().await;
    client.execute("INSERT INTO tailhook.endpoints (name, url) VALUES ('ep', 'http://x')", &[]).await.unwrap();
    client.execute("SELECT tailhook.publish('t', '{}')", &[]).await.unwrap();
    let pool = Db::new(&db.config().database).unwrap();
    let lease = |token| Lease {
        replica: "r1",
        token,
        default_timeout_ms: 1_000,
        margin_ms: 0,
        max_payload_bytes: 1 << 20,
        claim_bytes: 16 << 20,
    };
    let rooms = Rooms { default_room: 10, ..Rooms::default() };
    let first = pool.dispatch(10, lease(1), &rooms, false).await.unwrap();
    let id = first[0].delivery_id.unwrap();
    // The lease expires and the same replica claims the delivery again.
    client.execute("UPDATE tailhook.deliveries SET locked_until = now() - interval '1 s'", &[]).await.unwrap();
    let again = pool.claim_due(10, 10, lease(2), &rooms).await.unwrap();
    assert_eq!(again.len(), 1);

    let result = |lease: i64, status_code: i32| ResultBatch {
        delivery_id: vec![id],
        attempt: vec![1],
        status: vec!["succeeded"],
        delay_ms: vec![None],
        status_code: vec![Some(status_code)],
        error_kind: vec![None],
        error: vec![None],
        last_error: vec![None],
        lease: vec![lease],
        started_at: vec![std::time::SystemTime::now()],
        duration_ms: vec![1],
        response_body: vec![None],
    };
    assert_eq!(pool.record_results("r1", &result(1, 201)).await.unwrap(), 0, "the first claim's result is stale");
    assert_eq!(db.count("SELECT count(*) FROM tailhook.deliveries WHERE status = 'pending'").await, 1);
    assert_eq!(pool.record_results("r1", &result(2, 202)).await.unwrap(), 1, "the current claim completes it");
    assert_eq!(db.count("SELECT count(*) FROM tailhook.attempts WHERE status_code = 202").await, 1);
    assert_eq!(db.count("SELECT count(*) FROM tailhook.attempts").await, 1);
    assert_eq!(pool.record_results("r2", &result(2, 203)).await.unwrap(), 0, "another replica's result is ignored");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelled_deliveries_stay_cancelled_and_redeliver_leaves_live_leases_alone() {
    use tailhook::db::{Db, Lease, ResultBatch, Rooms};
    let db = TestDb::new().await;
    let client = db.migrate().await;
    client.execute("INSERT INTO tailhook.endpoints (name, url) VALUES ('ep', 'http://x')", &[]).await.unwrap();
    client
        .execute("INSERT INTO tailhook.outbox (event_type, payload) VALUES ('t', '{}'), ('t', '{}')", &[])
        .await
        .unwrap();
    let pool = Db::new(&db.config().database).unwrap();
    let lease = Lease {
        replica: "r1",
        token: 7,
        default_timeout_ms: 60_000,
        margin_ms: 0,
        max_payload_bytes: 1 << 20,
        claim_bytes: 16 << 20,
    };
    let rows = pool.dispatch(10, lease, &Rooms { default_room: 10, ..Rooms::default() }, false).await.unwrap();
    let (first, second) = (rows[0].delivery_id.unwrap(), rows[1].delivery_id.unwrap());

    // Being sent: redeliver() must not clear the lease (it would be sent twice at once).
    let redelivered: bool = client.query_one("SELECT tailhook.redeliver($1)", &[&first]).await.unwrap().get(0);
    assert!(!redelivered);
    assert_eq!(db.count("SELECT count(*) FROM tailhook.deliveries WHERE locked_by = 'r1'").await, 2);

    // Cancelled while in flight: the late result does not bring it back.
    client.execute("UPDATE tailhook.deliveries SET status = 'cancelled' WHERE id = $1", &[&second]).await.unwrap();
    let result = ResultBatch {
        delivery_id: vec![second],
        attempt: vec![1],
        status: vec!["retrying"],
        delay_ms: vec![Some(1_000)],
        status_code: vec![Some(500)],
        error_kind: vec![Some("http_status")],
        error: vec![Some("HTTP 500".into())],
        last_error: vec![Some("HTTP 500".into())],
        lease: vec![7],
        started_at: vec![std::time::SystemTime::now()],
        duration_ms: vec![1],
        response_body: vec![None],
    };
    assert_eq!(pool.record_results("r1", &result).await.unwrap(), 0);
    let status: String =
        client.query_one("SELECT status FROM tailhook.deliveries WHERE id = $1", &[&second]).await.unwrap().get(0);
    assert_eq!(status, "cancelled");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_claims_take_one_probe_in_total_when_a_pause_ends() {
    use tailhook::db::{Db, Lease, Rooms};
    let db = TestDb::new().await;
    let client = db.migrate().await;
    let id: i64 = client
        .query_one("INSERT INTO tailhook.endpoints (name, url) VALUES ('ep', 'http://x') RETURNING id", &[])
        .await
        .unwrap()
        .get(0);
    client
        .batch_execute(
            "INSERT INTO tailhook.outbox (event_type, payload, dispatched_at) SELECT 't', '{}', now() FROM generate_series(1, 100);
             INSERT INTO tailhook.deliveries (outbox_id, endpoint_id) SELECT o.id, e.id FROM tailhook.outbox o, tailhook.endpoints e;",
        )
        .await
        .unwrap();
    let (one, two) = (Db::new(&db.config().database).unwrap(), Db::new(&db.config().database).unwrap());
    let rooms = Rooms { default_room: 50, ..Rooms::default() };
    for round in 0..30 {
        client
            .execute("UPDATE tailhook.deliveries SET locked_until = NULL, locked_by = NULL, lease = NULL", &[])
            .await
            .unwrap();
        client
            .execute("UPDATE tailhook.endpoints SET paused_until = now() - interval '1 ms' WHERE id = $1", &[&id])
            .await
            .unwrap();
        let lease = |replica, token| Lease {
            replica,
            token,
            default_timeout_ms: 10_000,
            margin_ms: 0,
            max_payload_bytes: 1 << 20,
            claim_bytes: 16 << 20,
        };
        let (a, b) = tokio::join!(
            one.claim_due(50, 50, lease("a", round), &rooms),
            two.claim_due(50, 50, lease("b", round), &rooms)
        );
        let probes = a.unwrap().len() + b.unwrap().len();
        assert_eq!(probes, 1, "round {round}: {probes} probes");
    }
}
