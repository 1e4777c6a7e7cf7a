//! The SQL contract: migrations, constraints, the NOTIFY trigger, and the redelivery functions.

use crate::support::*;
use std::time::Duration;

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
    // Runs interleave (one may apply the files after 10 while another builds
    // 10's indexes), so only the set matters, each version once.
    applied.sort_unstable();
    let latest: Vec<i32> = tailhook::db::MIGRATIONS.iter().map(|m| m.0).collect();
    assert_eq!(applied, latest, "each version applied exactly once over all runs");
    let mut client = db.client().await;
    assert!(tailhook::db::migrate(&mut client).await.unwrap().is_empty());
    assert_eq!(db.count("SELECT count(*) FROM tailhook.schema_migrations").await, latest.len() as i64);
    // Every file is also safe to apply by hand again, as another migration tool might.
    apply_every_migration_by_hand(&client).await;
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
async fn a_late_result_keeps_its_attempt_row_and_only_a_late_2xx_changes_the_delivery() {
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
    let first = pool.dispatch(10, 10, lease(1), &rooms, false, &[]).await.unwrap();
    let id = first[0].delivery_id.unwrap();
    let event_at = first[0].event_at.unwrap();
    let claim_again = |token| {
        let (client, pool, rooms) = (&client, &pool, &rooms);
        async move {
            // The lease expires and the same replica claims the delivery again.
            client.execute("UPDATE tailhook.deliveries SET locked_until = now() - interval '1 s'", &[]).await.unwrap();
            assert_eq!(pool.claim_due(10, 10, lease(token), rooms).await.unwrap().len(), 1);
        }
    };
    claim_again(2).await;

    let result = |lease: i64, attempt: i32, status_code: i32| {
        let ok = (200..300).contains(&status_code);
        ResultBatch {
            delivery_id: vec![id],
            event_at: vec![event_at],
            attempt: vec![attempt],
            status: vec![if ok { "succeeded" } else { "retrying" }],
            delay_ms: vec![if ok { None } else { Some(60_000) }],
            status_code: vec![Some(status_code)],
            error_kind: vec![if ok { None } else { Some("http_status") }],
            error: vec![None],
            last_error: vec![None],
            lease: vec![lease],
            started_at: vec![std::time::SystemTime::now()],
            duration_ms: vec![1],
            response_body: vec![None],
        }
    };
    let state = || async {
        let row = client
            .query_one(
                "SELECT status, last_status_code, attempts, (SELECT count(*) FROM tailhook.attempts) FROM tailhook.deliveries",
                &[],
            )
            .await
            .unwrap();
        (row.get::<_, String>(0), row.get::<_, Option<i32>>(1), row.get::<_, i32>(2), row.get::<_, i64>(3))
    };
    let late = |token| vec![(id, token)];
    assert_eq!(
        pool.record_results("r1", &result(1, 1, 500)).await.unwrap(),
        late(1),
        "the first claim's result is late"
    );
    assert_eq!(state().await, ("pending".into(), None, 0, 1), "its attempt row is kept; the state is the new holder's");
    let held = result(2, 1, 503);
    assert_eq!(pool.record_results("r1", &held).await.unwrap(), vec![], "the current claim's result is applied");
    assert_eq!(state().await, ("retrying".into(), Some(503), 1, 2));
    assert_eq!(
        pool.record_results("r1", &held).await.unwrap(),
        vec![],
        "written again after a lost answer: nothing changes"
    );
    assert_eq!(state().await, ("retrying".into(), Some(503), 1, 2), "and no second attempt row");
    assert_eq!(
        pool.record_results("r2", &result(2, 1, 500)).await.unwrap(),
        late(2),
        "another replica's result is late"
    );
    assert_eq!(state().await, ("retrying".into(), Some(503), 1, 3));

    // A late 2xx finishes a delivery still unfinished; the result of the claim
    // holding it then (in flight meanwhile) does not bring it back.
    client.execute("UPDATE tailhook.deliveries SET next_attempt_at = now()", &[]).await.unwrap();
    claim_again(3).await;
    assert_eq!(pool.record_results("r1", &result(2, 2, 204)).await.unwrap(), late(2));
    assert_eq!(state().await, ("succeeded".into(), Some(204), 2, 4));
    assert_eq!(pool.record_results("r1", &result(3, 2, 500)).await.unwrap(), late(3));
    assert_eq!(state().await, ("succeeded".into(), Some(204), 2, 5), "every request recorded, still succeeded");
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
    let rows = pool.dispatch(10, 10, lease, &Rooms { default_room: 10, ..Rooms::default() }, false, &[]).await.unwrap();
    let (first, second) = (rows[0].delivery_id.unwrap(), rows[1].delivery_id.unwrap());
    let second_event_at = rows[1].event_at.unwrap();

    // Being sent: redeliver() must not clear the lease (it would be sent twice at once).
    let redelivered: bool = client.query_one("SELECT tailhook.redeliver($1)", &[&first]).await.unwrap().get(0);
    assert!(!redelivered);
    assert_eq!(db.count("SELECT count(*) FROM tailhook.deliveries WHERE locked_by = 'r1'").await, 2);

    // Cancelled while in flight: the late result does not bring it back.
    client.execute("UPDATE tailhook.deliveries SET status = 'cancelled' WHERE id = $1", &[&second]).await.unwrap();
    let result = ResultBatch {
        delivery_id: vec![second],
        event_at: vec![second_event_at],
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
    assert_eq!(pool.record_results("r1", &result).await.unwrap(), vec![(second, 7)], "late: not applied");
    let status: String =
        client.query_one("SELECT status FROM tailhook.deliveries WHERE id = $1", &[&second]).await.unwrap().get(0);
    assert_eq!(status, "cancelled");
    // The request was made: its attempt row is kept (issue 9, item 9(c)).
    assert_eq!(db.count(&format!("SELECT count(*) FROM tailhook.attempts WHERE delivery_id = {second}")).await, 1);
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

/// Issue 9, item 9(a): a claim that cannot take a paused endpoint's probe
/// (no room for it in this replica, or its due delivery locked by someone
/// else) leaves the pause alone, so the next claim that can probes at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pause_is_renewed_only_by_the_claim_that_takes_the_probe() {
    use tailhook::db::{Db, Lease, Rooms};
    let db = TestDb::new().await;
    let client = db.migrate().await;
    let paused: i64 = client
        .query_one("INSERT INTO tailhook.endpoints (name, url) VALUES ('paused', 'http://x') RETURNING id", &[])
        .await
        .unwrap()
        .get(0);
    client.execute("INSERT INTO tailhook.endpoints (name, url) VALUES ('busy', 'http://y')", &[]).await.unwrap();
    client
        .batch_execute(
            "INSERT INTO tailhook.outbox (event_type, payload, dispatched_at) SELECT 't', '{}', now() FROM generate_series(1, 3);
             INSERT INTO tailhook.deliveries (outbox_id, endpoint_id) SELECT o.id, e.id FROM tailhook.outbox o, tailhook.endpoints e;",
        )
        .await
        .unwrap();
    let pool = Db::new(&db.config().database).unwrap();
    let lease = |token| Lease {
        replica: "r1",
        token,
        default_timeout_ms: 10_000,
        margin_ms: 0,
        max_payload_bytes: 1 << 20,
        claim_bytes: 16 << 20,
    };
    let reset = || async {
        client
            .batch_execute(
                "UPDATE tailhook.deliveries SET locked_until = NULL, locked_by = NULL, lease = NULL;
                 UPDATE tailhook.endpoints SET paused_until = now() - interval '1 ms' WHERE name = 'paused';",
            )
            .await
            .unwrap();
    };
    let pause_renewed =
        || db.count("SELECT count(*) FROM tailhook.endpoints WHERE name = 'paused' AND paused_until > now()");
    let probes = |rows: &[tailhook::db::ClaimedRow]| rows.iter().filter(|r| r.endpoint_id == Some(paused)).count();
    let room = |paused_room| Rooms { endpoint_ids: vec![paused], room: vec![paused_room], default_room: 10 };

    // No room for `paused` in this replica (its rate limit, say).
    reset().await;
    let rows = pool.claim_due(10, 10, lease(1), &room(0)).await.unwrap();
    assert_eq!((probes(&rows), rows.len()), (0, 3), "only `busy` is claimed");
    assert_eq!(pause_renewed().await, 0, "no probe taken, so the pause is not renewed");

    // Its due deliveries are locked by someone else.
    reset().await;
    let operator = db.client().await;
    operator
        .batch_execute(
            "BEGIN; SELECT 1 FROM tailhook.deliveries d JOIN tailhook.endpoints e ON e.id = d.endpoint_id
              WHERE e.name = 'paused' FOR UPDATE OF d",
        )
        .await
        .unwrap();
    let rows = pool.claim_due(10, 10, lease(2), &room(10)).await.unwrap();
    assert_eq!((probes(&rows), rows.len()), (0, 3), "only `busy` is claimed");
    assert_eq!(pause_renewed().await, 0, "no probe taken, so the pause is not renewed");
    operator.batch_execute("ROLLBACK").await.unwrap();

    // A claim that can take the probe takes one and renews the pause for its lease.
    reset().await;
    let rows = pool.claim_due(10, 10, lease(3), &room(10)).await.unwrap();
    assert_eq!(probes(&rows), 1, "one probe");
    assert_eq!(pause_renewed().await, 1, "the probe's claim renews the pause");
}

/// Issue 9, item 10: re-applying `0001_schema.sql` by hand on an up-to-date
/// schema turns back nothing that later files changed (functions, triggers,
/// views, indexes, columns).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn re_running_the_base_schema_by_hand_changes_nothing_later_files_defined() {
    const OBJECTS: &str = "
        SELECT 'function ' || p.oid::regprocedure::text, pg_get_functiondef(p.oid)
          FROM pg_proc p WHERE p.pronamespace = 'tailhook'::regnamespace
        UNION ALL
        SELECT 'trigger ' || t.tgname, pg_get_triggerdef(t.oid)
          FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
         WHERE c.relnamespace = 'tailhook'::regnamespace AND NOT t.tgisinternal
        UNION ALL
        SELECT 'view ' || c.relname, pg_get_viewdef(c.oid)
          FROM pg_class c WHERE c.relnamespace = 'tailhook'::regnamespace AND c.relkind = 'v'
        UNION ALL
        SELECT 'index ' || indexname, indexdef FROM pg_indexes WHERE schemaname = 'tailhook'
        UNION ALL
        SELECT 'column ' || table_name || '.' || column_name, data_type || ' ' || coalesce(column_default, '')
          FROM information_schema.columns WHERE table_schema = 'tailhook'
        ORDER BY 1";
    let db = TestDb::new().await;
    let client = db.migrate().await;
    let objects = || async {
        let rows = client.query(OBJECTS, &[]).await.unwrap();
        rows.iter().map(|r| (r.get::<_, String>(0), r.get::<_, String>(1))).collect::<Vec<_>>()
    };
    let migrated = objects().await;
    assert!(migrated
        .iter()
        .any(|(name, def)| name == "function tailhook.touch_updated_at()" && def.contains("invalid_reason")));
    let (_, _, base) = tailhook::db::MIGRATIONS[0];
    client.batch_execute(base).await.expect("re-applying 0001_schema.sql");
    let again = objects().await;
    let changed: Vec<_> = again.iter().filter(|o| !migrated.contains(o)).map(|(name, _)| name).collect();
    assert!(changed.is_empty(), "re-applying 0001 changed {changed:?}");
    assert_eq!(again.len(), migrated.len());
}

/// Issue 9, item 10: upgrading a database whose `deliveries` table holds
/// rows builds the indexes of versions 3, 6, 7 and 9 without blocking writes;
/// a build interrupted half-way leaves an invalid index that the next
/// migration replaces. An event trigger of the test's own holds the
/// migration at the end of its first `CREATE INDEX` (inside that build, for
/// a concurrent one) until the test lets it go.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upgrading_builds_indexes_without_blocking_writes_and_redoes_an_interrupted_build() {
    const INDEXES: &str = "
        SELECT count(*) FILTER (WHERE x.indisvalid AND c.relname IN
                   ('deliveries_ordered', 'deliveries_finished', 'deliveries_succeeded', 'deliveries_failed',
                    'deliveries_keyed_scheduled')),
               count(*) FILTER (WHERE NOT x.indisvalid OR c.relname LIKE '%invalid')
          FROM pg_index x JOIN pg_class c ON c.oid = x.indexrelid
         WHERE c.relnamespace = 'tailhook'::regnamespace";
    let db = TestDb::new().await;
    let admin = db.client().await;
    // A database at version 2, with deliveries.
    for (version, name, sql) in &tailhook::db::MIGRATIONS[..2] {
        admin.batch_execute(sql).await.unwrap();
        admin
            .execute(
                "CREATE TABLE IF NOT EXISTS tailhook.schema_migrations (version int PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())",
                &[],
            )
            .await
            .unwrap();
        admin
            .execute("INSERT INTO tailhook.schema_migrations (version, name) VALUES ($1, $2)", &[version, name])
            .await
            .unwrap();
    }
    admin
        .batch_execute(
            "INSERT INTO tailhook.deliveries (outbox_id, endpoint_id, status)
               SELECT i, 1, 'succeeded' FROM generate_series(1, 10000) i;
             CREATE FUNCTION public.hold_index_builds() RETURNS event_trigger LANGUAGE plpgsql AS
               $$ BEGIN PERFORM pg_advisory_xact_lock(7368999); END $$;
             CREATE EVENT TRIGGER hold_index_builds ON ddl_command_end WHEN TAG IN ('CREATE INDEX')
               EXECUTE FUNCTION public.hold_index_builds();
             SELECT pg_advisory_lock(7368999);",
        )
        .await
        .unwrap();
    let mut migrator = db.client().await;
    let pid: i32 = migrator.query_one("SELECT pg_backend_pid()", &[]).await.unwrap().get(0);
    let upgrade = tokio::spawn(async move { tailhook::db::migrate(&mut migrator).await.map_err(|e| e.to_string()) });
    wait_for("the migration held in its first index build", Duration::from_secs(10), || async {
        db.count(&format!("SELECT count(*) FROM pg_stat_activity WHERE pid = {pid} AND wait_event = 'advisory'")).await
            == 1
    })
    .await;
    let writer = db.client().await;
    writer.batch_execute("SET lock_timeout = '2s'").await.unwrap();
    writer
        .execute("INSERT INTO tailhook.deliveries (outbox_id, endpoint_id) VALUES (20000, 1)", &[])
        .await
        .expect("a write to deliveries while the index is built");
    let blocking = db
        .count(&format!(
            "SELECT count(*) FROM pg_locks WHERE pid = {pid} AND relation = 'tailhook.deliveries'::regclass
                AND mode IN ('ShareLock', 'ShareRowExclusiveLock', 'ExclusiveLock', 'AccessExclusiveLock')"
        ))
        .await;
    assert_eq!(blocking, 0, "the migration holds no lock that blocks writes");

    // Interrupted half-way (its connection lost): an invalid index is left behind.
    admin.execute("SELECT pg_terminate_backend($1)", &[&pid]).await.unwrap();
    let interrupted = upgrade.await.unwrap();
    assert!(interrupted.is_err(), "cancelled: {interrupted:?}");
    let state = || async {
        let row = admin.query_one(INDEXES, &[]).await.unwrap();
        (row.get::<_, i64>(0), row.get::<_, i64>(1))
    };
    assert_eq!(state().await.1, 1, "one invalid index left by the interrupted build");
    admin.batch_execute("DROP EVENT TRIGGER hold_index_builds; SELECT pg_advisory_unlock_all();").await.unwrap();
    db.migrate().await;
    assert_eq!(state().await, (5, 0), "every index valid, nothing invalid left");
    assert_eq!(db.count("SELECT count(*) FROM tailhook.deliveries").await, 10_001);
    let latest = tailhook::db::MIGRATIONS.last().unwrap().0;
    assert_eq!(db.count("SELECT max(version)::bigint FROM tailhook.schema_migrations").await, i64::from(latest));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_ids_default_to_time_ordered_uuid_version_7_and_publishers_may_set_their_own() {
    let db = TestDb::new().await;
    let client = db.migrate().await;
    // Two statements a few milliseconds apart: the second's ids sort after the first's.
    client
        .execute("INSERT INTO tailhook.outbox (event_type, payload) SELECT 't', '{}' FROM generate_series(1, 200)", &[])
        .await
        .unwrap();
    client.execute("SELECT pg_sleep(0.005)", &[]).await.unwrap();
    client
        .execute("INSERT INTO tailhook.outbox (event_type, payload) SELECT 't', '{}' FROM generate_series(1, 200)", &[])
        .await
        .unwrap();
    let own = "0b6f1f9e-4a1e-4c1e-9d1e-1e1e1e1e1e1e";
    client
        .execute(
            "INSERT INTO tailhook.outbox (event_id, event_type, payload) VALUES ($1::text::uuid, 't', '{}')",
            &[&own],
        )
        .await
        .unwrap();
    let row = client
        .query_one(
            "SELECT count(*) FILTER (WHERE substr(event_id::text, 15, 1) = '7' AND substr(event_id::text, 20, 1) IN ('8', '9', 'a', 'b')),
                    count(DISTINCT event_id),
                    -- the first 48 bits are the Unix time in milliseconds, within a second of now
                    max(abs(('x' || lpad(replace(substr(event_id::text, 1, 13), '-', ''), 16, '0'))::bit(64)::bigint
                            - (extract(epoch FROM now()) * 1000)::bigint)),
                    (SELECT max(event_id::text) FROM tailhook.outbox WHERE id <= 200) < (SELECT min(event_id::text) FROM tailhook.outbox WHERE id > 200 AND id <= 400)
               FROM tailhook.outbox WHERE id <= 400",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, i64>(0), 400, "version 7 with the RFC 9562 variant");
    assert_eq!(row.get::<_, i64>(1), 400, "unique");
    assert!(row.get::<_, i64>(2) < 1_000, "the timestamp prefix is the time of insertion");
    assert!(row.get::<_, bool>(3), "a later statement's ids sort after an earlier one's");
    let stored: String =
        client.query_one("SELECT event_id::text FROM tailhook.outbox WHERE id = 401", &[]).await.unwrap().get(0);
    assert_eq!(stored, own, "a publisher's own id is kept");
}

/// `tailhook.publish` plans its INSERT once per session and keeps the plan,
/// rather than parsing and planning its body on every call (what a
/// LANGUAGE sql function does): the session's memory holds the INSERT's
/// cached plan after a few calls.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_keeps_the_plan_of_its_insert_for_the_session() {
    let db = TestDb::new().await;
    let client = db.migrate().await;
    for n in 0..8 {
        client.execute("SELECT tailhook.publish('t', jsonb_build_object('n', $1::int))", &[&n]).await.unwrap();
    }
    let kept: Vec<String> = client
        .query(
            "SELECT name FROM pg_backend_memory_contexts
              WHERE ident LIKE 'INSERT INTO tailhook.outbox%' ORDER BY name",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(kept, ["CachedPlan", "CachedPlanSource"], "the INSERT's plan, kept for the session");
    assert_eq!(db.count("SELECT count(*) FROM tailhook.outbox").await, 8);
}
