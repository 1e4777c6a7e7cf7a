//! Hostile or mistaken input: a bad row, payload or setting affects only itself, and no secret reaches a log.

use crate::support::*;
use std::time::Duration;

/// The constraint a statement broke, if it failed with one.
async fn refused_by(client: &tokio_postgres::Client, sql: &str) -> String {
    let err = client.execute(sql, &[]).await.expect_err(sql);
    err.as_db_error().and_then(|e| e.constraint()).unwrap_or_default().to_owned()
}

async fn invalid_reason(db: &TestDb, endpoint: &str) -> Option<String> {
    db.client()
        .await
        .query_one("SELECT invalid_reason FROM tailhook.endpoints WHERE name = $1", &[&endpoint])
        .await
        .unwrap()
        .get(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_schema_refuses_malformed_and_unbounded_endpoint_rows() {
    let db = TestDb::new().await;
    let client = db.migrate().await;
    let insert = |columns: &str, values: &str| {
        format!("INSERT INTO tailhook.endpoints (name, url, {columns}) VALUES ('x', 'http://x', {values})")
    };
    let cases = [
        (insert("secrets", &format!("'{{{{{SECRET}}},{{{SECRET}}}}}'")), "endpoints_secrets_valid"),
        (insert("secrets", "'{whsec_YWJj}'"), "endpoints_secrets_valid"),
        (insert("secrets", "'{MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw}'"), "endpoints_secrets_valid"),
        (insert("secrets", "'{NULL}'"), "endpoints_secrets_valid"),
        (insert("secrets", &format!("array_fill('{SECRET}'::text, ARRAY[11])")), "endpoints_secrets_valid"),
        (insert("event_types", "'{{a},{b}}'"), "endpoints_event_types_valid"),
        (insert("event_types", "'{}'"), "endpoints_event_types_valid"),
        (insert("event_types", "'{\"\"}'"), "endpoints_event_types_valid"),
        (insert("headers", "'{\"x\": 1}'"), "endpoints_headers_valid"),
        (
            insert("headers", "(SELECT jsonb_object_agg('x-h' || g, 'v') FROM generate_series(1, 1000) g)"),
            "endpoints_headers_valid",
        ),
        (insert("timeout_ms", "2147483647"), "endpoints_timeout_ms_max"),
        (insert("max_in_flight", "100000"), "endpoints_max_in_flight_max"),
        (insert("rate_limit_per_sec", "1000000"), "endpoints_rate_limit_max"),
        (insert("max_attempts", "100000"), "endpoints_max_attempts_max"),
        (insert("backoff_initial_ms", "0"), "endpoints_backoff_initial_ms_positive"),
        (insert("backoff_initial_ms", "86400001"), "endpoints_backoff_initial_ms_max"),
        (insert("backoff_max_ms", "-1"), "endpoints_backoff_max_ms_positive"),
        (insert("backoff_max_ms", "604800001"), "endpoints_backoff_max_ms_max"),
        (insert("backoff_initial_ms, backoff_max_ms", "2000, 1000"), "endpoints_backoff_max_ms_at_least_initial"),
        (
            "INSERT INTO tailhook.endpoints (name, url) VALUES ('x', 'http://x/' || repeat('a', 3000))".into(),
            "endpoints_url_length",
        ),
    ];
    for (sql, constraint) in &cases {
        assert_eq!(refused_by(&client, sql).await, *constraint, "{sql}");
    }
    // The largest values allowed are taken.
    client
        .execute(
            &insert(
                "secrets, timeout_ms, max_in_flight, rate_limit_per_sec, max_attempts, backoff_initial_ms, backoff_max_ms",
                &format!("ARRAY['{SECRET}'], 60000, 1000, 10000, 1000, 86400000, 604800000"),
            ),
            &[],
        )
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_endpoint_row_is_marked_invalid_and_every_other_endpoint_keeps_flowing() {
    let db = TestDb::new().await;
    let receiver = Receiver::ok().await;
    let client = db.migrate().await;
    // Rows written before the schema had its constraints (and the trigger
    // validating rows, version 23) can hold anything.
    client
        .batch_execute(
            "ALTER TABLE tailhook.endpoints DISABLE TRIGGER endpoints_validate;
             ALTER TABLE tailhook.endpoints DROP CONSTRAINT IF EXISTS endpoints_secrets_valid;
             ALTER TABLE tailhook.endpoints DROP CONSTRAINT IF EXISTS endpoints_event_types_valid;
             ALTER TABLE tailhook.endpoints DROP CONSTRAINT IF EXISTS endpoints_timeout_ms_max;",
        )
        .await
        .unwrap();
    let two_d = format!("{{{{{SECRET}}},{{{SECRET}}}}}");
    client
        .execute(
            "INSERT INTO tailhook.endpoints (name, url, secrets) VALUES ('two-d', $1, $2::text::text[])",
            &[&receiver.url("/two-d"), &two_d],
        )
        .await
        .unwrap();
    add_endpoint(&client, "weak", &receiver.url("/weak"), &["whsec_YWJj"]).await;
    let huge = add_endpoint(&client, "huge-timeout", &receiver.url("/huge"), &[]).await;
    client.execute("UPDATE tailhook.endpoints SET timeout_ms = 2147483647 WHERE id = $1", &[&huge]).await.unwrap();
    add_endpoint(&client, "good", &receiver.url("/good"), &[SECRET]).await;

    // It starts (a panic here used to crash-loop it) and delivers to the good one.
    let sidecar = Sidecar::start(db.config());
    client
        .execute("INSERT INTO tailhook.outbox (event_type, payload) SELECT 't', '{}' FROM generate_series(1, 20)", &[])
        .await
        .unwrap();
    wait_settled(&db, 80, Duration::from_secs(15)).await;
    assert_eq!(deliveries_of(&db, "good", "succeeded").await, 20);
    let expected = [
        ("two-d", "secrets must be a one-dimensional array"),
        ("weak", "secrets: secrets[1]: secret decodes to 3 bytes; Standard Webhooks secrets are 24 to 64 random bytes"),
        ("huge-timeout", "timeout_ms: 2147483647 is over the maximum of 60000"),
    ];
    for (name, reason) in expected {
        assert_eq!(deliveries_of(&db, name, "failed").await, 20, "{name}");
        wait_for("the reason stored", Duration::from_secs(5), || async {
            invalid_reason(&db, name).await.as_deref() == Some(reason)
        })
        .await;
        let (kind, last_error): (String, String) = {
            let row = client
                .query_one(
                    "SELECT a.error_kind, d.last_error FROM tailhook.deliveries d
                       JOIN tailhook.endpoints e ON e.id = d.endpoint_id
                       JOIN tailhook.attempts a ON a.delivery_id = d.id WHERE e.name = $1 LIMIT 1",
                    &[&name],
                )
                .await
                .unwrap();
            (row.get(0), row.get(1))
        };
        assert_eq!(kind, "invalid_request", "{name}");
        assert!(last_error.starts_with(reason), "{name}: {last_error}");
    }
    assert!(!receiver.received().iter().any(|r| r.path != "/good"), "nothing sent to an invalid endpoint");

    // A malformed row added while running affects only itself too.
    client
        .execute(
            "INSERT INTO tailhook.endpoints (name, url, event_types) VALUES ('two-d-types', $1, '{{*},{*}}')",
            &[&receiver.url("/types")],
        )
        .await
        .unwrap();
    wait_for("the new row marked invalid", Duration::from_secs(5), || async {
        invalid_reason(&db, "two-d-types").await.as_deref() == Some("event_types must be a one-dimensional array")
    })
    .await;
    // Fixing a row clears its reason, and its next events are delivered.
    client.execute("UPDATE tailhook.endpoints SET secrets = ARRAY[$1] WHERE name = 'two-d'", &[&SECRET]).await.unwrap();
    wait_for("the reason cleared", Duration::from_secs(5), || async { invalid_reason(&db, "two-d").await.is_none() })
        .await;
    client.execute("SELECT tailhook.publish('t', '{}')", &[]).await.unwrap();
    wait_for("the fixed endpoint served", Duration::from_secs(10), || async {
        deliveries_of(&db, "two-d", "succeeded").await == 1 && deliveries_of(&db, "good", "succeeded").await == 21
    })
    .await;
    sidecar.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_reaches_the_log_at_trace_level() {
    use base64::Engine;
    let db = TestDb::new().await;
    let receiver = Receiver::ok().await;
    let client = db.migrate().await;
    const SQL_SECRET: &str = "whsec_c2VjcmV0LWZyb20tc3FsLW5vdC1pbi1sb2dzIQ==";
    let sql_signed = add_endpoint(&client, "sql-signed", &receiver.url("/sql"), &[SQL_SECRET]).await;
    client
        .execute(
            "UPDATE tailhook.endpoints SET headers = '{\"authorization\": \"Bearer sql-header-secret-5\"}' WHERE id = $1",
            &[&sql_signed],
        )
        .await
        .unwrap();
    add_endpoint(&client, "unsigned", &receiver.url("/unsigned"), &[]).await;
    let mut url = url::Url::parse(&db.url).unwrap();
    url.set_password(Some("db-password-secret-4")).unwrap();
    let config = format!(
        r#"
[database]
url = "{url}"
[delivery]
allow_private_networks = true
[log]
level = "trace"
[[endpoints]]
name = "signed"
url = "{signed}"
secret = "{SECRET}"
headers = {{ "x-api-key" = "header-secret-1" }}
[[endpoints]]
name = "bearer"
url = "{bearer}"
bearer_token_env = "IT_BEARER_TOKEN"
[[endpoints]]
name = "basic"
url = "{basic}"
basic_auth_user = "alice"
basic_auth_password_env = "IT_BASIC_PASSWORD"
"#,
        signed = receiver.url("/signed"),
        bearer = receiver.url("/bearer"),
        basic = receiver.url("/basic"),
    );
    let sidecar = Binary::run(
        &config,
        &[("RUST_LOG", "trace"), ("IT_BEARER_TOKEN", "bearer-secret-2"), ("IT_BASIC_PASSWORD", "basic-secret-3")],
    );
    wait_for("the sidecar running", Duration::from_secs(15), || async {
        db.count("SELECT count(*) FROM tailhook.endpoints WHERE managed_by = 'config'").await == 3
    })
    .await;
    for _ in 0..5 {
        client.execute("SELECT tailhook.publish('t', '{\"k\": 1}')", &[]).await.unwrap();
    }
    wait_settled(&db, 25, Duration::from_secs(15)).await;
    // Two reloads: the warning about the unsigned endpoint is not repeated.
    for n in 1..=2 {
        client
            .execute("UPDATE tailhook.endpoints SET max_attempts = $1 WHERE id = $2", &[&(n + 5), &sql_signed])
            .await
            .unwrap();
        wait_for("a reload", Duration::from_secs(5), || {
            let reloads = sidecar.stderr().matches("endpoints reloaded").count();
            async move { reloads >= n as usize }
        })
        .await;
    }
    let (code, log) = sidecar.stop();
    assert_eq!(code, Some(0), "{log}");
    assert!(log.contains("DEBUG"), "tailhook's own lines below INFO are written: {log}");

    let basic = base64::engine::general_purpose::STANDARD.encode("alice:basic-secret-3");
    let mut secrets = vec![
        SECRET.to_owned(),
        SECRET.trim_start_matches("whsec_").to_owned(),
        SQL_SECRET.trim_start_matches("whsec_").to_owned(),
        "header-secret-1".into(),
        "bearer-secret-2".into(),
        "basic-secret-3".into(),
        basic,
        "db-password-secret-4".into(),
        "sql-header-secret-5".into(),
    ];
    let received = receiver.received();
    assert_eq!(received.len(), 25);
    for r in &received {
        if let Some(signature) = r.headers.get("webhook-signature") {
            for entry in signature.to_str().unwrap().split(' ') {
                secrets.push(entry.trim_start_matches("v1,").to_owned());
            }
        }
    }
    assert!(secrets.len() > 9, "signatures were sent");
    for secret in &secrets {
        assert!(!log.contains(secret.as_str()), "the log holds `{secret}`");
    }
    // Three endpoints have no secret (bearer and basic only authenticate);
    // each is warned about once over three loads of the table.
    let warned = |name: &str| {
        let field = format!("endpoint={name}");
        let names = |l: &&str| l.split_whitespace().any(|w| w == field);
        log.lines().filter(|l| l.contains("endpoint has no secret")).filter(names).count()
    };
    assert_eq!([warned("unsigned"), warned("bearer"), warned("basic"), warned("signed")], [1, 1, 1, 0], "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payloads_over_the_limit_are_never_fetched_and_normal_events_keep_flowing() {
    let db = TestDb::new().await;
    let receiver = Receiver::ok().await;
    let client = db.migrate().await;
    for name in ["a", "b", "c", "d"] {
        add_endpoint(&client, name, &receiver.url(&format!("/{name}")), &[]).await;
    }
    let sidecar = Binary::run(
        &format!("[database]\nurl = \"{}\"\n[delivery]\nallow_private_networks = true\n", db.url),
        &[("TAILHOOK_LOG__LEVEL", "warn")],
    );
    // 140 small events first, for the process's own peak; then as many
    // again, 3 of them of 20 MB (compressible, so small on disk).
    let publish = |first: i64, last: i64| {
        let client = &client;
        async move {
            client
                .execute(
                    "INSERT INTO tailhook.outbox (event_type, payload)
                     SELECT 't', CASE WHEN g > 140 AND g % 47 = 0 THEN jsonb_build_object('blob', repeat(md5(g::text), 625000))
                                      ELSE jsonb_build_object('n', g) END
                       FROM generate_series($1::bigint, $2::bigint) g",
                    &[&first, &last],
                )
                .await
                .unwrap();
        }
    };
    publish(1, 140).await;
    wait_settled(&db, 560, Duration::from_secs(30)).await;
    let before_mib = sidecar.peak_rss_kib() / 1024;
    publish(141, 280).await;
    wait_settled(&db, 1120, Duration::from_secs(60)).await;
    let peak_mib = sidecar.peak_rss_kib() / 1024;
    eprintln!("peak RSS: {before_mib} MiB with small events, {peak_mib} MiB after three 20 MB payloads to 4 endpoints");
    let (code, log) = sidecar.stop();
    assert_eq!(code, Some(0), "{log}");
    let too_large = client
        .query(
            "SELECT d.status, d.attempts, a.error_kind, a.error FROM tailhook.deliveries d
               JOIN tailhook.attempts a ON a.delivery_id = d.id WHERE a.error_kind IS NOT NULL",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(too_large.len(), 12, "3 events × 4 endpoints");
    for row in too_large {
        assert_eq!((row.get::<_, &str>(0), row.get::<_, i32>(1)), ("failed", 1));
        assert_eq!(row.get::<_, &str>(2), "payload_too_large");
        let error: &str = row.get(3);
        assert!(error.starts_with("payload is 20000012 bytes"), "{error}");
        assert!(error.contains("over delivery.max_payload_bytes (1048576)"), "{error}");
    }
    assert_eq!(db.count("SELECT count(*) FROM tailhook.deliveries WHERE status = 'succeeded'").await, 1108);
    assert!(receiver.received().iter().all(|r| r.body.len() < 1024), "no large body was sent");
    // One 20 MB payload fetched even once would add at least 40 MiB (its
    // text and the body built from it); the old code peaked at 492 MiB here.
    assert!(
        peak_mib < before_mib + 16,
        "peak RSS grew from {before_mib} to {peak_mib} MiB: a large payload was fetched"
    );
}

/// A server that accepts connections and never answers.
async fn black_hole() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    url
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_black_hole_endpoints_cannot_starve_a_third() {
    let db = TestDb::new().await;
    let receiver = Receiver::ok().await;
    let client = db.migrate().await;
    let hole = black_hole().await;
    for name in ["hole-1", "hole-2"] {
        let id = add_endpoint(&client, name, &hole, &[]).await;
        // The largest values the schema allows.
        client
            .execute("UPDATE tailhook.endpoints SET timeout_ms = 60000, max_in_flight = 1000 WHERE id = $1", &[&id])
            .await
            .unwrap();
    }
    add_endpoint(&client, "healthy", &receiver.url("/healthy"), &[]).await;
    let mut config = db.config();
    config.delivery.concurrency = 64;
    let sidecar = Sidecar::start(config);
    client
        .execute("INSERT INTO tailhook.outbox (event_type, payload) SELECT 't', '{}' FROM generate_series(1, 300)", &[])
        .await
        .unwrap();
    wait_for("the healthy endpoint got all 300", Duration::from_secs(15), || async {
        deliveries_of(&db, "healthy", "succeeded").await == 300
    })
    .await;
    sidecar.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeouts_count_toward_the_circuit_breaker() {
    let db = TestDb::new().await;
    let client = db.migrate().await;
    let id = add_endpoint(&client, "hole", &black_hole().await, &[]).await;
    client.execute("UPDATE tailhook.endpoints SET timeout_ms = 200 WHERE id = $1", &[&id]).await.unwrap();
    let mut config = db.config();
    config.delivery.breaker_after_ms = 500;
    config.delivery.breaker_min_failures = 3;
    config.delivery.backoff_initial_ms = 50;
    let sidecar = Sidecar::start(config);
    client
        .execute("INSERT INTO tailhook.outbox (event_type, payload) SELECT 't', '{}' FROM generate_series(1, 20)", &[])
        .await
        .unwrap();
    wait_for("the breaker open", Duration::from_secs(15), || async {
        db.count("SELECT count(*) FROM tailhook.endpoints WHERE paused_until > now()").await == 1
    })
    .await;
    sidecar.stop().await;
    assert!(db.count("SELECT count(*) FROM tailhook.attempts WHERE error_kind = 'timeout'").await >= 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_config_url_is_stored_normalised_and_database_errors_carry_no_row_image() {
    let db = TestDb::new().await;
    let client = db.migrate().await;
    let mut config = db.config();
    config.endpoints = tailhook::Config::from_toml(&format!(
        "[[endpoints]]\nname = \"odd\"\nurl = \"https:hooks.example.com/x\"\nsecret = \"{SECRET}\"\n"
    ))
    .unwrap()
    .endpoints;
    let sidecar = Sidecar::start(config);
    wait_for("the endpoint stored", Duration::from_secs(10), || async {
        db.count("SELECT count(*) FROM tailhook.endpoints WHERE url = 'https://hooks.example.com/x'").await == 1
    })
    .await;
    sidecar.stop().await;

    // PostgreSQL's own words and SQLSTATE, without DETAIL's copy of the row.
    client.batch_execute("CREATE TABLE leak (secret text CHECK (secret = 'ok'))").await.unwrap();
    let err = client.execute("INSERT INTO leak VALUES ('hunter2')", &[]).await.unwrap_err();
    assert!(err.as_db_error().unwrap().detail().unwrap().contains("hunter2"), "PostgreSQL sent a row image");
    let shown = tailhook::db::DbError::from(err).to_string();
    assert_eq!(
        shown,
        "database error: new row for relation \"leak\" violates check constraint \"leak_secret_check\" (SQLSTATE 23514)"
    );
}
