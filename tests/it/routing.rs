//! Fan-out: which endpoints each event reaches (tenant, event types, payload filters), table-driven.

use crate::support::*;
use std::collections::BTreeSet;
use std::time::Duration;

/// (name, tenant, event_types, filter, filter_path, enabled)
type EndpointSpec<'a> = (&'a str, Option<&'a str>, &'a [&'a str], Option<&'a str>, Option<&'a str>, bool);
/// (event_type, tenant, payload, the endpoints it must reach)
type EventSpec<'a> = (&'a str, Option<&'a str>, &'a str, &'a [&'a str]);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_reach_exactly_the_matching_enabled_endpoints() {
    let db = TestDb::new().await;
    let receiver = Receiver::ok().await;
    let client = db.migrate().await;
    let url = receiver.url("/r");
    let endpoints: &[EndpointSpec] = &[
        ("all", None, &["*"], None, None, true),
        ("invoices", None, &["invoice.*"], None, None, true),
        ("exact", None, &["invoice.paid"], None, None, true),
        ("acme", Some("acme"), &["*"], None, None, true),
        ("big", None, &["*"], None, Some("$.amount > 100"), true),
        ("eur", None, &["*"], Some(r#"{"currency": "EUR"}"#), None, true),
        ("off", None, &["*"], None, None, false),
        ("two", None, &["user.created", "user.deleted"], None, None, true),
    ];
    for (name, tenant, types, filter, path, enabled) in endpoints {
        client
            .execute(
                "INSERT INTO tailhook.endpoints (name, url, tenant, event_types, filter, filter_path, enabled)
                 VALUES ($1, $2, $3, $4, $5::text::jsonb, $6::text::jsonpath, $7)",
                &[name, &url, tenant, types, filter, path, enabled],
            )
            .await
            .unwrap();
    }
    let events: &[EventSpec] = &[
        ("invoice.paid", None, r#"{"amount": 5}"#, &["all", "exact", "invoices"]),
        ("invoice.paid.late", None, "{}", &["all", "invoices"]),
        ("invoice", None, "{}", &["all"]),
        ("invoicex.paid", None, "{}", &["all"]),
        ("invoice.paid", Some("acme"), r#"{"amount": 500}"#, &["acme", "all", "big", "exact", "invoices"]),
        ("x", Some("other"), r#"{"currency": "EUR", "amount": "n/a"}"#, &["all", "eur"]),
        ("user.deleted", None, r#"{"amount": 101}"#, &["all", "big", "two"]),
        ("user.updated", None, "[1, 2]", &["all"]),
    ];
    let sidecar = Sidecar::start(db.config());
    let mut ids = Vec::new();
    for (event_type, tenant, payload, _) in events {
        let id: String = client
            .query_one("SELECT tailhook.publish($1, $2::text::jsonb, $3)::text", &[event_type, payload, tenant])
            .await
            .unwrap()
            .get(0);
        ids.push(id);
    }
    let expected_total: usize = events.iter().map(|e| e.3.len()).sum();
    wait_settled(&db, expected_total as i64, Duration::from_secs(20)).await;
    sidecar.stop().await;
    for ((event_type, tenant, payload, expected), id) in events.iter().zip(&ids) {
        let got: BTreeSet<String> = client
            .query(
                "SELECT e.name FROM tailhook.deliveries d JOIN tailhook.endpoints e ON e.id = d.endpoint_id
                   JOIN tailhook.outbox o ON o.id = d.outbox_id WHERE o.event_id::text = $1",
                &[id],
            )
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        let want: BTreeSet<String> = expected.iter().map(|s| s.to_string()).collect();
        assert_eq!(got, want, "{event_type} tenant={tenant:?} payload={payload}");
    }
    assert_eq!(receiver.count(), expected_total);
    assert_eq!(db.count("SELECT count(*) FROM tailhook.deliveries WHERE status <> 'succeeded'").await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disabled_endpoint_keeps_its_pending_deliveries_until_re_enabled() {
    let db = TestDb::new().await;
    let receiver = Receiver::start(|_, _| Reply::status(500)).await;
    let client = db.migrate().await;
    let id = add_endpoint(&client, "ep", &receiver.url("/x"), &[]).await;
    let mut config = db.config();
    config.delivery.backoff_initial_ms = 1_000;
    let sidecar = Sidecar::start(config);
    client.execute("SELECT tailhook.publish('first', '{}')", &[]).await.unwrap();
    wait_for("a failed first attempt", Duration::from_secs(5), || async { receiver.count() == 1 }).await;
    client.execute("UPDATE tailhook.endpoints SET enabled = false WHERE id = $1", &[&id]).await.unwrap();
    client.execute("SELECT tailhook.publish('while-disabled', '{}')", &[]).await.unwrap();
    // Well past the retry delay: nothing more is sent while disabled.
    wait_for("the event published while disabled is dispatched", Duration::from_secs(5), || async {
        db.count("SELECT count(*) FROM tailhook.outbox WHERE dispatched_at IS NULL").await == 0
    })
    .await;
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    assert_eq!(receiver.count(), 1, "no attempt while disabled");
    assert_eq!(
        db.count("SELECT count(*) FROM tailhook.deliveries").await,
        1,
        "no delivery for the event published while disabled"
    );
    assert_eq!(db.count("SELECT count(*) FROM tailhook.deliveries WHERE status = 'retrying'").await, 1);
    client.execute("UPDATE tailhook.endpoints SET enabled = true WHERE id = $1", &[&id]).await.unwrap();
    wait_for("retried once re-enabled", Duration::from_secs(5), || async { receiver.count() >= 2 }).await;
    sidecar.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_endpoint_gets_its_new_events_when_the_pause_ends() {
    let db = TestDb::new().await;
    let receiver = Receiver::ok().await;
    let client = db.migrate().await;
    let paused = add_endpoint(&client, "paused", &receiver.url("/paused"), &[]).await;
    add_endpoint(&client, "other", &receiver.url("/other"), &[]).await;
    // The longest timeout allowed must not break fan-out for everyone.
    client
        .execute(
            "UPDATE tailhook.endpoints SET paused_until = now() + interval '1 hour', timeout_ms = 60000 WHERE id = $1",
            &[&paused],
        )
        .await
        .unwrap();
    let sidecar = Sidecar::start(db.config());
    client.execute("SELECT tailhook.publish('t', '{}')", &[]).await.unwrap();
    wait_for("the other endpoint served", Duration::from_secs(5), || async { receiver.count() == 1 }).await;
    let row = client
        .query_one(
            "SELECT status, attempts, locked_until IS NULL FROM tailhook.deliveries WHERE endpoint_id = $1",
            &[&paused],
        )
        .await
        .unwrap();
    assert_eq!((row.get::<_, String>(0), row.get::<_, i32>(1), row.get::<_, bool>(2)), ("pending".into(), 0, true));
    client.execute("UPDATE tailhook.endpoints SET paused_until = NULL WHERE id = $1", &[&paused]).await.unwrap();
    wait_settled(&db, 2, Duration::from_secs(5)).await;
    sidecar.stop().await;
    assert_eq!(receiver.received().iter().filter(|r| r.path == "/paused").count(), 1);
}

/// `exists($.** ? (...))` nested `levels` deep: each level walks the whole
/// payload again for every node of the level above (issue 29, finding 3);
/// nothing matches, so no level stops early.
fn nested_descent(levels: usize) -> String {
    let mut path = r#"@ == "never""#.to_owned();
    for _ in 0..levels {
        path = format!("exists($.** ? ({path}))");
    }
    path
}

/// A row written before tailhook bounded filters (or by a writer who got
/// past the bounds): migrations up to the one that bounds them, the row,
/// then the rest.
async fn with_a_row_from_before_the_bounds(db: &TestDb, insert: &str) -> tokio_postgres::Client {
    let client = db.client().await;
    for (version, _, sql) in tailhook::db::MIGRATIONS.iter().filter(|m| m.0 < 20) {
        apply_migration_by_hand(&client, *version, sql).await;
    }
    client.batch_execute(insert).await.unwrap();
    db.migrate().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_costly_filter_path_on_one_tenants_endpoint_never_delays_another_tenants_events() {
    let db = TestDb::new().await;
    let receiver = Receiver::ok().await;
    let hostile = format!(
        "INSERT INTO tailhook.endpoints (name, url, tenant, filter_path) VALUES ('evil', '{}', 'evil', '{}')",
        receiver.url("/evil"),
        nested_descent(9)
    );
    let client = with_a_row_from_before_the_bounds(&db, &hostile).await;
    client
        .execute(
            "INSERT INTO tailhook.endpoints (name, url, tenant) VALUES ('good', $1, 'good')",
            &[&receiver.url("/good")],
        )
        .await
        .unwrap();
    let mut config = db.config();
    // Today's code fails within this deadline rather than the default 30 s.
    config.database.statement_timeout_ms = 5_000;
    let sidecar = Sidecar::start(config);
    client.execute("SELECT tailhook.publish('warm', '{}', 'good')", &[]).await.unwrap();
    wait_for("the sidecar is up", Duration::from_secs(10), || async {
        receiver.received().iter().any(|r| r.path == "/good")
    })
    .await;
    // A payload of nine nodes: nine levels of `.**` would visit about 9^9.
    let payload = r#"{"a": {"b": {"c": [1, 2, {"d": 3}]}}, "e": 4}"#;
    client.execute("SELECT tailhook.publish('order.paid', $1::text::jsonb, 'evil')", &[&payload]).await.unwrap();
    for _ in 0..5 {
        client.execute("SELECT tailhook.publish('order.paid', $1::text::jsonb, 'good')", &[&payload]).await.unwrap();
    }
    // Far below the statement deadline: the other tenant waits for nothing.
    let served = poll_until(Duration::from_secs(2), || async {
        receiver.received().iter().filter(|r| r.path == "/good").count() == 6
    })
    .await;
    let got = receiver.received().iter().filter(|r| r.path == "/good").count();
    assert!(served, "the other tenant's endpoint got {got} of 6 events within 2 s");
    // The row breaking the bounds is marked invalid, naming the column; its
    // filter is never evaluated, and its delivery fails with that reason.
    wait_for("the hostile endpoint's delivery failed", Duration::from_secs(5), || async {
        deliveries_of(&db, "evil", "failed").await == 1
    })
    .await;
    let reason: Option<String> = client
        .query_one("SELECT invalid_reason FROM tailhook.endpoints WHERE name = 'evil'", &[])
        .await
        .unwrap()
        .get(0);
    let reason = reason.unwrap_or_default();
    assert!(reason.starts_with("filter_path: "), "{reason}");
    sidecar.stop().await;
    assert!(!receiver.received().iter().any(|r| r.path == "/evil"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_filter_path_beyond_the_bounds_is_refused_when_written() {
    let db = TestDb::new().await;
    let client = db.migrate().await;
    let insert = |path: String| {
        let client = &client;
        async move {
            client
                .execute(
                    "INSERT INTO tailhook.endpoints (name, url, filter_path)
                     VALUES ('e' || md5(random()::text), 'http://127.0.0.1:1/x', $1::text::jsonpath)",
                    &[&path],
                )
                .await
        }
    };
    let refused = [
        (nested_descent(9), "`$` inside a filter"),
        ("$.** ? (exists(@.** ? (@ == 1)))".to_owned(), "`.**` more than once"),
        ("$.a ? (@.b == $.c)".to_owned(), "`$` inside a filter"),
        ("$.a == $.b".to_owned(), "one side of a comparison must be a literal"),
        ("$.a == $x".to_owned(), "variable"),
        ("$.a[0,0,0,0][0,0,0,0]".to_owned(), "several subscripts"),
        (format!("$.a == \"{}\"", "x".repeat(2_000)), "longer than 1024 bytes"),
        ("$.a ? (exists(@.b ? (exists(@.c ? (@ == 1)))))".to_owned(), "nests filters and exists() more than 3"),
        (format!("${} == 1", ".a".repeat(17)), "more than 16 steps"),
    ];
    for (path, rule) in refused {
        let error = insert(path.clone()).await.expect_err(&path);
        let db_error = error.as_db_error().unwrap_or_else(|| panic!("{path}: {error}"));
        let message = db_error.message();
        assert!(message.starts_with("filter_path: ") && message.contains(rule), "{path}: {message}");
        assert_eq!(db_error.column(), Some("filter_path"), "{path}");
    }
    // The jsonb filter is bounded too (containment compares each of its values).
    let many: String = format!("{{\"a\": [{}]}}", vec!["1"; 65].join(", "));
    let error = client
        .execute(
            "INSERT INTO tailhook.endpoints (name, url, filter) VALUES ('f', 'http://127.0.0.1:1/x', $1::text::jsonb)",
            &[&many],
        )
        .await
        .unwrap_err();
    let db_error = error.as_db_error().unwrap();
    assert_eq!((db_error.message(), db_error.column()), ("filter: holds more than 64 values", Some("filter")));
    for path in ["$.amount > 100", r#"$.items[*] ? (@.sku == "x")"#, "exists($.** ? (@.flag == true))"] {
        insert(path.to_owned()).await.unwrap_or_else(|e| panic!("{path}: {e}"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_filter_path_failing_on_a_payload_fails_only_that_delivery() {
    let db = TestDb::new().await;
    let receiver = Receiver::ok().await;
    let client = db.migrate().await;
    // Each within the bounds, each raising an error on some payload.
    let endpoints = [
        // a date compared with a time with a zone: an error silent mode keeps
        ("dated", r#"$.at.datetime() < "2030-01-01T00:00:00+00:00".datetime()"#),
        // a payload nested deeper than `.**` can recurse: stack depth exceeded
        ("deep", "exists($.** ? (@ == 2))"),
        // errors silent mode turns into "no match"
        ("typed", r#"$.n + "x" == 1"#),
        ("strict", "strict $.missing == 1"),
    ];
    for (name, path) in endpoints {
        client
            .execute(
                "INSERT INTO tailhook.endpoints (name, url, filter_path) VALUES ($1, $2, $3::text::jsonpath)",
                &[&name, &receiver.url(&format!("/{name}")), &path],
            )
            .await
            .unwrap();
    }
    client
        .execute("INSERT INTO tailhook.endpoints (name, url) VALUES ('plain', $1)", &[&receiver.url("/plain")])
        .await
        .unwrap();
    let deep = format!("{}2{}", "[".repeat(12_000), "]".repeat(12_000));
    let payloads =
        [r#"{"at": "2020-01-01", "n": 1}"#.to_owned(), deep, r#"{"at": "2020-01-01T00:00:00+00:00"}"#.to_owned()];
    for payload in &payloads {
        client.execute("SELECT tailhook.publish('t', $1::text::jsonb)", &[payload]).await.unwrap();
    }
    let sidecar = Sidecar::start(db.config());
    wait_for("the endpoint without a filter got every event", Duration::from_secs(10), || async {
        receiver.received().iter().filter(|r| r.path == "/plain").count() == 3
    })
    .await;
    // The one event each filter can evaluate and match reaches it.
    wait_for("the matching events delivered", Duration::from_secs(5), || async { succeeded(&db, "dated").await == 1 })
        .await;
    wait_settled(&db, 5, Duration::from_secs(5)).await;
    sidecar.stop().await;
    let failed = client
        .query(
            "SELECT e.name, d.last_error FROM tailhook.deliveries d JOIN tailhook.endpoints e ON e.id = d.endpoint_id
              WHERE d.status = 'failed' ORDER BY e.name",
            &[],
        )
        .await
        .unwrap();
    let failed: Vec<(String, String)> =
        failed.iter().map(|r| (r.get(0), r.get::<_, Option<String>>(1).unwrap_or_default())).collect();
    assert_eq!(failed.iter().map(|f| f.0.as_str()).collect::<Vec<_>>(), ["dated", "deep"], "{failed:?}");
    for (name, error) in &failed {
        assert!(error.starts_with("filter_path could not be evaluated: "), "{name}: {error}");
    }
    assert!(failed[0].1.contains("time zone"), "{failed:?}");
    assert!(failed[1].1.contains("stack depth"), "{failed:?}");
    for name in ["typed", "strict", "deep"] {
        assert_eq!(succeeded(&db, name).await, 0, "{name}");
    }
    assert_eq!(db.count("SELECT count(*) FROM tailhook.deliveries").await, 3 + 1 + 2);
}

/// A random jsonpath from pieces that exercise every rule (some of which
/// PostgreSQL refuses as syntax; those are skipped).
fn random_path(rng: &mut impl rand::Rng, depth: usize) -> String {
    const STEPS: &[&str] =
        &[".a", ".*", ".**", "[*]", "[0]", "[0 to last]", ".size()", "[0,1]", ".\"k y\"", "[$.i]", ".keyvalue()"];
    const PREDICATES: &[&str] = &[
        "@ == 1",
        "@.b == \"x\"",
        "1 < @.c",
        "@ == $.c",
        "@.x == @.y",
        "@ like_regex \"^a\"",
        "@ starts with \"a\"",
        "@.n + 1 > 2",
        "@ == $v",
        "(@ == \"$\" || @ != \"?(\")",
    ];
    let mut path = String::from(if rng.gen_bool(0.2) { "lax $" } else { "$" });
    for _ in 0..rng.gen_range(0..5) {
        if depth < 5 && rng.gen_bool(0.25) {
            let inner = match rng.gen_range(0..3) {
                0 => PREDICATES[rng.gen_range(0..PREDICATES.len())].to_owned(),
                1 => format!("exists({})", random_path(rng, depth + 1).replacen('$', "@", 1)),
                _ => format!("exists({})", random_path(rng, depth + 1)),
            };
            path.push_str(&format!(" ? ({inner})"));
        } else {
            path.push_str(STEPS[rng.gen_range(0..STEPS.len())]);
        }
    }
    if depth == 0 {
        match rng.gen_range(0..5) {
            0 => path.push_str(" == 1"),
            1 => path = format!("exists({path})"),
            2 => path.push_str(" == $.z"),
            3 => path = format!("{path} > 1 && $.q == \"w\""),
            _ => {}
        }
    }
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_database_and_tailhook_apply_the_same_bounds_to_filters() {
    use rand::SeedableRng;
    let db = TestDb::new().await;
    let client = db.migrate().await;
    let seed = rand::random::<u64>();
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let (mut compared, mut refused) = (0, 0);
    for _ in 0..600 {
        let raw = random_path(&mut rng, 0);
        let Ok(row) = client
            .query_one(
                "SELECT $1::text::jsonpath::text, tailhook.filter_path_problem($1::text::jsonpath::text)",
                &[&raw],
            )
            .await
        else {
            continue; // not a jsonpath PostgreSQL takes
        };
        let (stored, by_sql): (String, Option<String>) = (row.get(0), row.get(1));
        // The same message on the stored form, and the same verdict on the
        // text as written (what a config file holds).
        let by_rust = tailhook::config::rules::filter_path(&stored).err().map(|p| p.to_string());
        assert_eq!(by_rust, by_sql, "seed {seed}: {raw} stored as {stored}");
        let as_written = tailhook::config::rules::filter_path(&raw).err().map(|p| p.to_string());
        assert_eq!(as_written.is_some(), by_sql.is_some(), "seed {seed}: {raw}: {as_written:?} / {by_sql:?}");
        compared += 1;
        refused += usize::from(by_sql.is_some());
    }
    eprintln!("seed {seed}: {compared} paths compared, {refused} refused");
    assert!(compared > 300 && refused > 50 && compared - refused > 50, "{compared} compared, {refused} refused");
    for text in [
        r#"{"currency": "EUR", "customer": {"plan": "pro"}, "tags": ["vip"]}"#,
        r#"{"a": {"b": {"c": {"d": {"e": {"f": {"g": {"h": 1}}}}}}}}"#,
        r#"{"a": {"b": {"c": {"d": {"e": {"f": {"g": {"h": {"i": 1}}}}}}}}}"#,
        r#"{"a": {"b": {"c": {"d": {"e": {"f": {"g": {"h": [1]}}}}}}}}"#,
        r#"{"a": {"b": {"c": {"d": {"e": {"f": {"g": {"h": [1]}}}}}}}, "x": "long"}"#,
        r#"[1, 2, 3]"#,
    ] {
        let by_sql: Option<String> =
            client.query_one("SELECT tailhook.filter_problem($1::text::jsonb)", &[&text]).await.unwrap().get(0);
        let by_rust =
            tailhook::config::rules::filter(&serde_json::from_str(text).unwrap()).err().map(|p| p.to_string());
        assert_eq!(by_rust, by_sql, "{text}");
    }
    for (values, long) in [(63, 1_024), (64, 1_024), (65, 1_024), (3, 1_025)] {
        let text = format!(r#"{{"k": [{}], "s": "{}"}}"#, vec!["1"; values - 2].join(","), "x".repeat(long));
        let by_sql: Option<String> =
            client.query_one("SELECT tailhook.filter_problem($1::text::jsonb)", &[&text]).await.unwrap().get(0);
        let by_rust =
            tailhook::config::rules::filter(&serde_json::from_str(&text).unwrap()).err().map(|p| p.to_string());
        assert_eq!(by_rust, by_sql, "{values} values, a string of {long}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_filter_path_over_its_budget_fails_its_own_deliveries_and_delays_no_one() {
    let db = TestDb::new().await;
    let receiver = Receiver::ok().await;
    let client = db.migrate().await;
    // Within the bounds, and still a walk of the whole payload per event,
    // on each of one tenant's five endpoints.
    client
        .execute(
            "INSERT INTO tailhook.endpoints (name, url, tenant, filter_path)
             SELECT 'heavy' || g, $1, 'heavy', 'exists($.** ? (@ == \"never\"))' FROM generate_series(1, 5) g",
            &[&receiver.url("/heavy")],
        )
        .await
        .unwrap();
    client
        .execute(
            "INSERT INTO tailhook.endpoints (name, url, tenant) VALUES ('light', $1, 'light')",
            &[&receiver.url("/light")],
        )
        .await
        .unwrap();
    let mut config = db.config();
    // Filters get 2000/40 = 50 ms an endpoint, 500 ms together, per claim.
    config.database.statement_timeout_ms = 2_000;
    let sidecar = Sidecar::start(config);
    client.execute("SELECT tailhook.publish('warm', '{}', 'light')", &[]).await.unwrap();
    wait_for("the sidecar is up", Duration::from_secs(10), || async {
        receiver.received().iter().any(|r| r.path == "/light")
    })
    .await;
    // Forty payloads of 100 KB (34,500 numbers, about 10 ms of `.**` each,
    // 2 s for the five endpoints), then the other tenant's, in one transaction.
    client
        .batch_execute(
            "BEGIN;
             SELECT tailhook.publish('big', (SELECT jsonb_agg(1) FROM generate_series(1, 34500)), 'heavy')
               FROM generate_series(1, 40);
             SELECT tailhook.publish('small', '{}', 'light') FROM generate_series(1, 5);
             COMMIT;",
        )
        .await
        .unwrap();
    let served = poll_until(Duration::from_secs(3), || async {
        receiver.received().iter().filter(|r| r.path == "/light").count() == 6
    })
    .await;
    let got = receiver.received().iter().filter(|r| r.path == "/light").count();
    assert!(served, "the other tenant's endpoint got {got} of 6 events within 3 s");
    wait_for("every heavy event dispatched", Duration::from_secs(10), || async {
        db.count("SELECT count(*) FROM tailhook.outbox WHERE dispatched_at IS NULL").await == 0
    })
    .await;
    sidecar.stop().await;
    // Those it had no time for failed, saying why; none waits.
    let rows = client
        .query(
            "SELECT d.status, d.last_error FROM tailhook.deliveries d JOIN tailhook.endpoints e ON e.id = d.endpoint_id
              WHERE e.tenant = 'heavy'",
            &[],
        )
        .await
        .unwrap();
    assert!(!rows.is_empty() && rows.len() < 200, "{} of 200 over the budget", rows.len());
    for row in rows {
        let (status, error): (String, Option<String>) = (row.get(0), row.get(1));
        assert_eq!(status, "failed");
        let error = error.unwrap_or_default();
        assert!(error.starts_with("filter_path not evaluated: this endpoint's filter took over 50 ms"), "{error}");
    }
    assert!(!receiver.received().iter().any(|r| r.path == "/heavy"));
}
