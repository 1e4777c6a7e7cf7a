//! The HTTP side of one attempt: redirects, Retry-After, destination checks, deadlines, caps and refusals.

use crate::support::*;
use std::time::Duration;

/// Runs one event to one endpoint until settled; returns (status, attempts, last_error)
/// and the attempt rows (status_code, error_kind, error, response_body).
async fn deliver_one(
    db: &TestDb,
    config: tailhook::Config,
    url: &str,
    endpoint_sql: &str,
) -> ((String, i32, Option<String>), Vec<(Option<i32>, Option<String>, Option<String>, Option<String>)>) {
    let client = db.migrate().await;
    let id = add_endpoint(&client, "ep", url, &[]).await;
    if !endpoint_sql.is_empty() {
        client.execute(endpoint_sql, &[&id]).await.unwrap();
    }
    let sidecar = Sidecar::start(config);
    client.execute("SELECT tailhook.publish('t', '{\"k\": 1}')", &[]).await.unwrap();
    wait_settled(db, 1, Duration::from_secs(20)).await;
    sidecar.stop().await;
    let d = client.query_one("SELECT status, attempts, last_error FROM tailhook.deliveries", &[]).await.unwrap();
    let attempts = client
        .query("SELECT status_code, error_kind, error, response_body FROM tailhook.attempts ORDER BY attempt", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
        .collect();
    ((d.get(0), d.get(1), d.get(2)), attempts)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirects_are_failures_and_never_followed() {
    let db = TestDb::new().await;
    let receiver = Receiver::start(|path, _| match path {
        "/moved" => Reply::status(302).header("location", "/target"),
        _ => Reply::ok(),
    })
    .await;
    let (delivery, attempts) = deliver_one(
        &db,
        db.config(),
        &receiver.url("/moved"),
        "UPDATE tailhook.endpoints SET max_attempts = 2 WHERE id = $1",
    )
    .await;
    assert_eq!(delivery.0, "failed");
    assert_eq!(attempts.len(), 2);
    assert_eq!(attempts[0].0, Some(302));
    assert_eq!(attempts[0].1.as_deref(), Some("redirect"));
    assert!(receiver.received().iter().all(|r| r.path == "/moved"), "the redirect target was never requested");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_on_429_delays_the_next_attempt() {
    let db = TestDb::new().await;
    let receiver =
        Receiver::start(|_, seen| if seen == 0 { Reply::status(429).header("retry-after", "2") } else { Reply::ok() })
            .await;
    let mut config = db.config();
    config.delivery.backoff_initial_ms = 50;
    config.delivery.backoff_max_ms = 5_000;
    let (delivery, _) = deliver_one(&db, config, &receiver.url("/busy"), "").await;
    assert_eq!((delivery.0.as_str(), delivery.1), ("succeeded", 2));
    let r = receiver.received();
    let gap = r[1].at - r[0].at;
    assert!(gap >= Duration::from_millis(1_900), "waited only {gap:?} despite Retry-After: 2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_is_capped_at_backoff_max() {
    let db = TestDb::new().await;
    let receiver =
        Receiver::start(
            |_, seen| {
                if seen == 0 {
                    Reply::status(503).header("retry-after", "3600")
                } else {
                    Reply::ok()
                }
            },
        )
        .await;
    let mut config = db.config();
    config.delivery.backoff_initial_ms = 50;
    config.delivery.backoff_max_ms = 500;
    let (delivery, _) = deliver_one(&db, config, &receiver.url("/busy"), "").await;
    assert_eq!((delivery.0.as_str(), delivery.1), ("succeeded", 2));
    let r = receiver.received();
    assert!(r[1].at - r[0].at < Duration::from_secs(5), "an hour's Retry-After was capped");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loopback_destinations_are_refused_unless_allowed() {
    let db = TestDb::new().await;
    let receiver = Receiver::ok().await;
    let client = db.migrate().await;
    let literal = receiver.url("/x");
    let by_name = format!("http://localhost:{}/x", receiver.addr.port());
    let mapped = format!("http://[::ffff:127.0.0.1]:{}/x", receiver.addr.port());
    for (name, url) in [("literal", &literal), ("by-name", &by_name), ("mapped", &mapped)] {
        add_endpoint(&client, name, url, &[]).await;
    }
    let mut config = db.config();
    config.delivery.allow_private_networks = false;
    let sidecar = Sidecar::start(config);
    client.execute("SELECT tailhook.publish('t', '{}')", &[]).await.unwrap();
    wait_settled(&db, 3, Duration::from_secs(10)).await;
    sidecar.stop().await;
    let rows = client
        .query(
            "SELECT e.name, d.status, d.attempts, a.error_kind, a.error
               FROM tailhook.deliveries d JOIN tailhook.endpoints e ON e.id = d.endpoint_id
               JOIN tailhook.attempts a ON a.delivery_id = d.id ORDER BY e.name",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(rows.len(), 3);
    for row in rows {
        let name: String = row.get(0);
        assert_eq!(row.get::<_, String>(1), "failed", "{name}: failed at once");
        assert_eq!(row.get::<_, i32>(2), 1, "{name}: one attempt");
        assert_eq!(row.get::<_, Option<String>>(3).as_deref(), Some("blocked_address"), "{name}");
        let error: String = row.get(4);
        assert!(error.contains("loopback address"), "{name}: says which class: {error}");
        assert!(
            error.contains(
                "set delivery.allow_private_networks = true (TAILHOOK_DELIVERY__ALLOW_PRIVATE_NETWORKS=true)"
            ),
            "{name}: names the setting that allows it: {error}"
        );
        // A literal address is the endpoint's own; the address a name
        // resolves to is not told (it may be an internal one).
        assert_eq!(error.contains("127.0.0.1"), name != "by-name", "{name}: {error}");
    }
    assert_eq!(receiver.count(), 0, "nothing reached the receiver");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allowed_cidrs_opt_a_private_range_in() {
    let db = TestDb::new().await;
    let receiver = Receiver::ok().await;
    let mut config = db.config();
    config.delivery.allow_private_networks = false;
    config.delivery.allowed_cidrs = vec!["127.0.0.0/8".into()];
    let (delivery, _) = deliver_one(&db, config, &receiver.url("/x"), "").await;
    assert_eq!(delivery.0, "succeeded");
    assert_eq!(receiver.count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_deadline_covers_a_receiver_that_never_finishes() {
    let db = TestDb::new().await;
    let receiver = Receiver::start(|_, _| Reply::ok().after(Duration::from_secs(30))).await;
    let mut config = db.config();
    config.delivery.timeout_ms = 500;
    let (delivery, attempts) = deliver_one(
        &db,
        config,
        &receiver.url("/slow"),
        "UPDATE tailhook.endpoints SET max_attempts = 1 WHERE id = $1",
    )
    .await;
    assert_eq!(delivery.0, "failed");
    assert_eq!(attempts[0].1.as_deref(), Some("timeout"));
    assert_eq!(attempts[0].2.as_deref(), Some("no complete response within 500 ms"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_deadline_covers_a_body_that_trickles() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let db = TestDb::new().await;
    // A raw server that sends headers at once, then one body byte every 100 ms.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/trickle", listener.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = vec![0u8; 65536];
                let _ = socket.read(&mut buf).await;
                let _ = socket.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 1000\r\n\r\n").await;
                for _ in 0..1000 {
                    if socket.write_all(b"x").await.is_err() {
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            });
        }
    });
    let mut config = db.config();
    config.delivery.timeout_ms = 600;
    config.delivery.max_response_bytes = 100_000;
    let started = tokio::time::Instant::now();
    let (delivery, attempts) =
        deliver_one(&db, config, &url, "UPDATE tailhook.endpoints SET max_attempts = 1 WHERE id = $1").await;
    assert_eq!(delivery.0, "failed");
    assert_eq!(attempts[0].1.as_deref(), Some("timeout"), "{attempts:?}");
    assert!(started.elapsed() < Duration::from_secs(15));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_response_body_is_stored_only_up_to_the_cap() {
    let db = TestDb::new().await;
    let receiver = Receiver::start(|_, _| Reply::ok().body("y".repeat(50_000))).await;
    let mut config = db.config();
    config.delivery.max_response_bytes = 100;
    let (delivery, attempts) = deliver_one(&db, config, &receiver.url("/big"), "").await;
    assert_eq!(delivery.0, "succeeded");
    assert_eq!(attempts[0].3.as_deref(), Some("y".repeat(100).as_str()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_that_can_never_succeed_fail_at_once() {
    let receiver = Receiver::ok().await;
    // (constraint the row breaks, dropped first as for a row written before
    // it existed; SQL; max_payload_bytes; error_kind; what last_error names)
    let cases = [
        (
            "",
            "UPDATE tailhook.endpoints SET headers = '{\"x-bad\": \"a\\r\\nb\"}' WHERE id = $1",
            1_000_000,
            "invalid_request",
            "x-bad",
        ),
        (
            "",
            "UPDATE tailhook.endpoints SET headers = '{\"webhook-id\": \"spoof\"}' WHERE id = $1",
            1_000_000,
            "invalid_request",
            "webhook-id",
        ),
        (
            "endpoints_secrets_valid",
            "UPDATE tailhook.endpoints SET secrets = '{whsec_***}' WHERE id = $1",
            1_000_000,
            "invalid_request",
            "secrets[1]",
        ),
        (
            "endpoints_headers_valid",
            "UPDATE tailhook.endpoints SET headers = jsonb_build_object('x-big', repeat('a', 4097)) WHERE id = $1",
            1_000_000,
            "invalid_request",
            "longer than 4 KiB",
        ),
        (
            "endpoints_secrets_valid",
            "UPDATE tailhook.endpoints SET secrets = '{NULL}' WHERE id = $1",
            1_000_000,
            "invalid_request",
            "secrets[1] is NULL",
        ),
        ("", "", 10, "payload_too_large", "max_payload_bytes"),
    ];
    for (constraint, sql, max_payload, kind, mentions) in cases {
        let db = TestDb::new().await;
        if !constraint.is_empty() {
            let client = db.migrate().await;
            // (and written before the trigger validating rows existed, version 23)
            let drop = format!(
                "ALTER TABLE tailhook.endpoints DROP CONSTRAINT {constraint};
                 ALTER TABLE tailhook.endpoints DISABLE TRIGGER endpoints_validate"
            );
            client.batch_execute(&drop).await.unwrap();
        }
        let mut config = db.config();
        config.delivery.max_payload_bytes = max_payload;
        let (delivery, attempts) = deliver_one(&db, config, &receiver.url("/never"), sql).await;
        assert_eq!((delivery.0.as_str(), delivery.1), ("failed", 1), "{kind}");
        assert_eq!(attempts[0].1.as_deref(), Some(kind));
        assert!(delivery.2.as_deref().unwrap().contains(mentions), "{kind}: {:?}", delivery.2);
    }
    assert_eq!(receiver.count(), 0, "nothing was sent");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_refused_is_retried_as_connect() {
    let db = TestDb::new().await;
    // A port with nothing listening.
    let port = free_port();
    let (delivery, attempts) = deliver_one(
        &db,
        db.config(),
        &format!("http://127.0.0.1:{port}/"),
        "UPDATE tailhook.endpoints SET max_attempts = 2 WHERE id = $1",
    )
    .await;
    assert_eq!((delivery.0.as_str(), delivery.1), ("failed", 2));
    assert!(attempts.iter().all(|a| a.1.as_deref() == Some("connect") && a.0.is_none()), "{attempts:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gone_disables_the_endpoint_and_its_deliveries_wait_for_re_enabling() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    let db = TestDb::new().await;
    let alive = Arc::new(AtomicBool::new(false));
    let flag = alive.clone();
    let receiver =
        Receiver::start(move |_, _| if flag.load(Ordering::SeqCst) { Reply::ok() } else { Reply::status(410) }).await;
    let client = db.migrate().await;
    let id = add_endpoint(&client, "gone", &receiver.url("/gone"), &[]).await;
    let sidecar = Sidecar::start(db.config());
    for _ in 0..5 {
        client.execute("SELECT tailhook.publish('t', '{}')", &[]).await.unwrap();
    }
    wait_for("the endpoint disabled", Duration::from_secs(5), || async {
        db.count("SELECT count(*) FROM tailhook.endpoints WHERE NOT enabled AND disabled_reason LIKE 'answered 410 Gone at %'").await == 1
    })
    .await;
    wait_for("all five events fanned out", Duration::from_secs(5), || async {
        db.count("SELECT count(*) FROM tailhook.deliveries").await == 5
    })
    .await;
    let sent_while_gone = receiver.count();
    assert!(sent_while_gone >= 1);
    assert_eq!(
        db.count("SELECT count(*) FROM tailhook.deliveries WHERE status IN ('pending', 'retrying')").await,
        5,
        "nothing failed"
    );
    let reason: String = client
        .query_one("SELECT last_error FROM tailhook.deliveries WHERE attempts = 1 LIMIT 1", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(reason, "HTTP 410 Gone: endpoint disabled");

    alive.store(true, Ordering::SeqCst);
    client
        .execute("UPDATE tailhook.endpoints SET enabled = true, disabled_reason = NULL WHERE id = $1", &[&id])
        .await
        .unwrap();
    wait_settled(&db, 5, Duration::from_secs(10)).await;
    sidecar.stop().await;
    assert_eq!(db.count("SELECT count(*) FROM tailhook.deliveries WHERE status = 'succeeded'").await, 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotated_secrets_each_verify_and_auth_settings_set_authorization() {
    const OLD: &str = "whsec_c2Vjb25kLWtleS1mb3Itcm90YXRpb24h";
    std::env::set_var("IT_ROTATION_SECRET", SECRET);
    std::env::set_var("IT_BEARER_TOKEN", "t0ken");
    std::env::set_var("IT_BASIC_PASSWORD", "pa:ss");
    let db = TestDb::new().await;
    let receiver = Receiver::ok().await;
    db.migrate().await;
    let mut config = db.config();
    config.endpoints = tailhook::Config::from_toml(&format!(
        r#"
        [[endpoints]]
        name = "rotating"
        url = "{rotating}"
        secrets = ["{OLD}"]
        secret_env = "IT_ROTATION_SECRET"
        bearer_token_env = "IT_BEARER_TOKEN"
        [[endpoints]]
        name = "basic"
        url = "{basic}"
        secret = "{SECRET}"
        basic_auth_user = "hook"
        basic_auth_password_env = "IT_BASIC_PASSWORD"
        "#,
        rotating = receiver.url("/rotating"),
        basic = receiver.url("/basic"),
    ))
    .unwrap()
    .endpoints;
    let sidecar = Sidecar::start(config);
    db.client().await.execute("SELECT tailhook.publish('t', '{}')", &[]).await.unwrap();
    wait_settled(&db, 2, Duration::from_secs(10)).await;
    sidecar.stop().await;
    let received = receiver.received();
    let rotating = received.iter().find(|r| r.path == "/rotating").unwrap();
    assert_eq!(rotating.headers["webhook-signature"].to_str().unwrap().split(' ').count(), 2);
    verify(OLD, &rotating.headers, &rotating.body).expect("a receiver holding only the old secret verifies");
    verify(SECRET, &rotating.headers, &rotating.body).expect("a receiver holding only the new secret verifies");
    assert_eq!(rotating.headers["authorization"], "Bearer t0ken");
    let basic = received.iter().find(|r| r.path == "/basic").unwrap();
    // base64("hook:pa:ss")
    assert_eq!(basic.headers["authorization"], "Basic aG9vazpwYTpzcw==");
    verify(SECRET, &basic.headers, &basic.body).unwrap();
    assert!(verify(OLD, &basic.headers, &basic.body).is_err(), "a wrong secret does not verify");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_file_endpoints_override_timeout_max_attempts_and_backoff() {
    let db = TestDb::new().await;
    let receiver = Receiver::start(|_, _| Reply::ok().after(Duration::from_secs(1))).await;
    db.migrate().await;
    let mut config = db.config();
    config.delivery.timeout_ms = 5_000;
    config.endpoints = tailhook::Config::from_toml(&format!(
        "[[endpoints]]\nname = \"impatient\"\nurl = \"{}\"\ntimeout_ms = 300\nmax_attempts = 2\n\
         backoff_initial_ms = 700\nbackoff_max_ms = 700\n",
        receiver.url("/slow")
    ))
    .unwrap()
    .endpoints;
    let sidecar = Sidecar::start(config);
    db.client().await.execute("SELECT tailhook.publish('t', '{}')", &[]).await.unwrap();
    wait_settled(&db, 1, Duration::from_secs(10)).await;
    sidecar.stop().await;
    let client = db.client().await;
    let row = client.query_one("SELECT status, attempts, last_error FROM tailhook.deliveries", &[]).await.unwrap();
    assert_eq!(row.get::<_, String>(0), "failed");
    assert_eq!(row.get::<_, i32>(1), 2, "the endpoint's max_attempts, not the default 18");
    assert_eq!(
        row.get::<_, String>(2),
        "no complete response within 300 ms (gave up after 2 attempts)",
        "the endpoint's timeout, not the default 5 s"
    );
    let row = client
        .query_one(
            "SELECT e.backoff_initial_ms, e.backoff_max_ms,
                    extract(epoch FROM max(a.started_at) - min(a.started_at))::float8 * 1000
               FROM tailhook.endpoints e JOIN tailhook.deliveries d ON d.endpoint_id = e.id
               JOIN tailhook.attempts a ON a.delivery_id = d.id
              GROUP BY e.id",
            &[],
        )
        .await
        .unwrap();
    assert_eq!((row.get::<_, Option<i32>>(0), row.get::<_, Option<i32>>(1)), (Some(700), Some(700)));
    // The first attempt's 300 ms, then at least 700 ms less 20% jitter (the default here is 100 ms).
    let gap: f64 = row.get(2);
    assert!(gap >= 300.0 + 560.0, "the second attempt came {gap} ms after the first");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_as_an_http_date_is_honoured_and_a_malformed_one_ignored() {
    let db = TestDb::new().await;
    let receiver = Receiver::start(|path, seen| match (path, seen) {
        ("/date", 0) => {
            let at = std::time::SystemTime::now() + Duration::from_secs(3);
            Reply::status(503).header("retry-after", httpdate::fmt_http_date(at))
        }
        ("/garbage", 0) => Reply::status(429).header("retry-after", "soon-ish"),
        _ => Reply::ok(),
    })
    .await;
    let client = db.migrate().await;
    add_endpoint(&client, "date", &receiver.url("/date"), &[]).await;
    add_endpoint(&client, "garbage", &receiver.url("/garbage"), &[]).await;
    let mut config = db.config();
    config.delivery.backoff_initial_ms = 100;
    config.delivery.backoff_max_ms = 10_000;
    let sidecar = Sidecar::start(config);
    client.execute("SELECT tailhook.publish('t', '{}')", &[]).await.unwrap();
    wait_settled(&db, 2, Duration::from_secs(15)).await;
    sidecar.stop().await;
    let gap = |path: &str| {
        let r: Vec<_> = receiver.received().into_iter().filter(|r| r.path == path).collect();
        assert_eq!(r.len(), 2, "{path}");
        r[1].at - r[0].at
    };
    // HTTP-dates have one-second resolution: 3 s ahead is at least 2 s.
    assert!(gap("/date") >= Duration::from_secs(2), "HTTP-date Retry-After: {:?}", gap("/date"));
    assert!(gap("/garbage") < Duration::from_secs(2), "malformed Retry-After ignored: {:?}", gap("/garbage"));
}
