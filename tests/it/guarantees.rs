//! Delivery guarantees under stress: row locks held by others, results known at shutdown, restarts.

use crate::support::*;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_transaction_on_one_endpoint_row_never_holds_back_the_others() {
    let db = TestDb::new().await;
    let receiver = Receiver::start(|path, _| if path == "/a" { Reply::status(500) } else { Reply::ok() }).await;
    let client = db.migrate().await;
    let a = add_endpoint(&client, "a", &receiver.url("/a"), &[]).await;
    add_endpoint(&client, "b", &receiver.url("/b"), &[]).await;
    client.execute("UPDATE tailhook.endpoints SET max_attempts = 1000 WHERE id = $1", &[&a]).await.unwrap();
    let mut config = db.config();
    config.delivery.backoff_initial_ms = 50;
    config.delivery.backoff_max_ms = 200;
    // Health is written for every batch (the breaker never pauses `a` here).
    config.delivery.breaker_min_failures = 1_000_000;
    let sidecar = Sidecar::start(config);
    let operator = db.client().await;
    for round in 1..=20_i64 {
        // An operator's forgotten transaction holds `a`'s row.
        operator
            .batch_execute("BEGIN; UPDATE tailhook.endpoints SET headers = headers WHERE name = 'a'")
            .await
            .unwrap();
        client
            .execute(
                "INSERT INTO tailhook.outbox (event_type, payload) SELECT 't', '{}' FROM generate_series(1, 60)",
                &[],
            )
            .await
            .unwrap();
        let goal = round * 60;
        wait_for(&format!("round {round}: `b` delivered and recorded"), Duration::from_secs(8), || async {
            succeeded(&db, "b").await == goal
        })
        .await;
        operator.batch_execute("ROLLBACK").await.unwrap();
    }
    sidecar.stop().await;
    // `a`'s failures were counted all the same, once the lock was gone.
    let failures: i32 = client
        .query_one("SELECT consecutive_failures FROM tailhook.endpoints WHERE id = $1", &[&a])
        .await
        .unwrap()
        .get(0);
    let failed_attempts = db.count("SELECT count(*) FROM tailhook.attempts WHERE error_kind IS NOT NULL").await;
    assert_eq!(i64::from(failures), failed_attempts, "every failure counted exactly once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn results_known_at_shutdown_are_written_even_when_a_request_outlives_the_grace_period() {
    use crate::support::proxy::{server_addr, Proxy};
    let db = TestDb::new().await;
    let receiver = Receiver::start(|path, _| match path {
        "/slow" => Reply::ok().after(Duration::from_secs(30)),
        _ => Reply::ok().after(Duration::from_millis(500)),
    })
    .await;
    let client = db.migrate().await;
    add_endpoint(&client, "fast", &receiver.url("/fast"), &[]).await;
    let slow = add_endpoint(&client, "slow", &receiver.url("/slow"), &[]).await;
    client
        .execute("UPDATE tailhook.endpoints SET event_types = '{slow}', timeout_ms = 60000 WHERE id = $1", &[&slow])
        .await
        .unwrap();
    client.execute("UPDATE tailhook.endpoints SET event_types = '{fast}' WHERE name = 'fast'", &[]).await.unwrap();
    // Through a proxy of the test's own, so the result writes can be held.
    let proxy = Proxy::start(server_addr()).await;
    let mut url = url::Url::parse(&db.url).unwrap();
    url.set_port(Some(proxy.addr.port())).unwrap();
    let mut config = db.config();
    config.database.url = tailhook::secret::DatabaseUrl::new(url.as_str());
    config.database.statement_timeout_ms = 1_000;
    config.delivery.shutdown_grace_ms = 1_000;
    config.delivery.lease_margin_ms = 5_000;
    let sidecar = Sidecar::start(config);
    client.execute("SELECT tailhook.publish('slow', '{}')", &[]).await.unwrap();
    client
        .execute(
            "INSERT INTO tailhook.outbox (event_type, payload) SELECT 'fast', '{}' FROM generate_series(1, 100)",
            &[],
        )
        .await
        .unwrap();
    wait_for("every request in flight", Duration::from_secs(10), || async { receiver.count() == 101 }).await;
    // The fast requests answer 2xx 500 ms after arriving, while their results
    // cannot be written; the slow one outlives the 1 s grace period.
    proxy.blackhole();
    sidecar.shutdown.cancel();
    tokio::time::sleep(Duration::from_millis(1_500)).await; // the grace period ends while the database is cut off
    proxy.restore();
    sidecar.stop().await;
    assert_eq!(
        db.count("SELECT count(*) FROM tailhook.deliveries d JOIN tailhook.attempts a ON a.delivery_id = d.id WHERE d.status = 'succeeded'").await,
        100,
        "every 2xx that finished in time is recorded"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn automatic_disabling_survives_restarts_until_an_operator_or_a_config_change_re_enables() {
    let db = TestDb::new().await;
    // Only the old address is gone: once re-enabled at the new one, the
    // pending deliveries succeed there instead of disabling it again.
    let receiver = Receiver::start(|path, _| if path == "/gone" { Reply::status(410) } else { Reply::ok() }).await;
    let client = db.migrate().await;
    let config_for = |path: &str| {
        let mut config = db.config();
        config.endpoints =
            tailhook::Config::from_toml(&format!("[[endpoints]]\nname = \"gone\"\nurl = \"{}\"\n", receiver.url(path)))
                .unwrap()
                .endpoints;
        config
    };
    let state = || async {
        let row = db
            .client()
            .await
            .query_opt("SELECT enabled, disabled_reason FROM tailhook.endpoints WHERE name = 'gone'", &[])
            .await
            .unwrap();
        row.map(|row| (row.get::<_, bool>(0), row.get::<_, Option<String>>(1)))
    };
    let answered_gone =
        || async { matches!(state().await, Some((false, Some(r))) if r.starts_with("answered 410 Gone")) };
    let disable_with_a_410 = |path: &'static str| {
        let (client, config) = (&client, config_for(path));
        async move {
            let sidecar = Sidecar::start(config);
            client.execute("SELECT tailhook.publish('t', '{}')", &[]).await.unwrap();
            wait_for("disabled after a 410", Duration::from_secs(10), &answered_gone).await;
            sidecar.stop().await;
        }
    };
    disable_with_a_410("/gone").await;
    let sent = receiver.count();

    // A restart with the same configuration keeps it disabled: nothing is sent.
    let sidecar = Sidecar::start(config_for("/gone"));
    client.execute("SELECT tailhook.publish('t', '{}')", &[]).await.unwrap();
    wait_for("the new event dispatched", Duration::from_secs(10), || async {
        db.count("SELECT count(*) FROM tailhook.outbox WHERE dispatched_at IS NULL").await == 0
    })
    .await;
    sidecar.stop().await;
    assert!(answered_gone().await, "still disabled, with its reason");
    assert_eq!(receiver.count(), sent, "nothing sent to a gone endpoint after a restart");

    // An operator re-enables it.
    let out = tailhook(&["enable", "gone"], &[("DATABASE_URL", &db.url)]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(state().await, Some((true, None)));
    let out = tailhook(&["enable", "nope"], &[("DATABASE_URL", &db.url)]);
    assert_eq!(out.status.code(), Some(2));

    // Disabled again; a changed configuration re-enables it.
    disable_with_a_410("/gone").await;
    let sidecar = Sidecar::start(config_for("/moved"));
    wait_for("re-enabled by the new configuration", Duration::from_secs(10), || async {
        state().await == Some((true, None))
    })
    .await;
    wait_for("the waiting deliveries sent to the new address", Duration::from_secs(10), || async {
        db.count("SELECT count(*) FROM tailhook.deliveries WHERE status = 'pending'").await == 0
    })
    .await;
    sidecar.stop().await;
    assert_eq!(state().await, Some((true, None)), "stays enabled");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orphaned_deliveries_end_cancelled_with_a_reason() {
    let db = TestDb::new().await;
    let receiver = Receiver::start(|_, _| Reply::status(500)).await;
    let client = db.migrate().await;
    let ep = add_endpoint(&client, "ep", &receiver.url("/ep"), &[]).await;
    client.execute("UPDATE tailhook.endpoints SET max_attempts = 1000 WHERE id = $1", &[&ep]).await.unwrap();
    let mut config = db.config();
    config.retention.interval_ms = 200;
    let sidecar = Sidecar::start(config);
    client
        .execute("INSERT INTO tailhook.outbox (event_type, payload) SELECT 't', '{}' FROM generate_series(1, 5)", &[])
        .await
        .unwrap();
    wait_for("five deliveries retrying", Duration::from_secs(10), || async {
        db.count("SELECT count(*) FROM tailhook.deliveries WHERE status = 'retrying'").await == 5
    })
    .await;
    // TRUNCATE fires no DELETE trigger: the deliveries outlive their events.
    client.batch_execute("TRUNCATE tailhook.outbox").await.unwrap();
    // A fan-out that still saw an endpoint being deleted leaves a delivery
    // for an endpoint that no longer exists.
    client
        .batch_execute(
            "INSERT INTO tailhook.outbox (event_type, payload, dispatched_at) VALUES ('t', '{}', now());
             INSERT INTO tailhook.deliveries (outbox_id, endpoint_id, status)
               SELECT max(id), 999999, 'pending' FROM tailhook.outbox",
        )
        .await
        .unwrap();
    wait_for("every orphan cancelled", Duration::from_secs(15), || async {
        db.count("SELECT count(*) FROM tailhook.deliveries WHERE status = 'cancelled' AND last_error LIKE '%no longer exists%'")
            .await
            == 6
    })
    .await;
    sidecar.stop().await;
    assert_eq!(db.count("SELECT count(*) FROM tailhook.deliveries WHERE status IN ('pending', 'retrying')").await, 0);
}

/// Issue 9, items 2 and 9(b): replica `a` is cut off from the database with
/// 30 requests in flight; replica `b` takes them over and sends them again;
/// then `a` reconnects and writes what its requests got. Each endpoint shows
/// one case of a late result: `/ok` a late 2xx (both answers 2xx), `/flaky`
/// a late 2xx for a delivery the new holder failed (it finishes it), `/gone`
/// a late 410 Gone (it must not disable the endpoint, and counts nowhere).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn late_results_after_a_takeover_keep_their_attempt_rows_finish_on_a_2xx_and_count_nowhere() {
    use crate::support::proxy::{server_addr, Proxy};
    let db = TestDb::new().await;
    let receiver = Receiver::start(|path, seen| {
        let reply = match (path, seen) {
            (_, 0) if path != "/gone" => Reply::ok(),
            ("/gone", 0) => Reply::status(410),
            ("/flaky", _) => Reply::status(503).header("retry-after", "60"),
            _ => Reply::ok(),
        };
        reply.after(Duration::from_millis(300))
    })
    .await;
    let client = db.migrate().await;
    for name in ["ok", "flaky", "gone"] {
        add_endpoint(&client, name, &receiver.url(&format!("/{name}")), &[]).await;
    }
    let proxy = Proxy::start(server_addr()).await;
    let mut url = url::Url::parse(&db.url).unwrap();
    url.set_port(Some(proxy.addr.port())).unwrap();
    let mut config = db.config();
    // The new holder's failure on `/flaky` is retried much later than this test lasts.
    config.delivery.backoff_initial_ms = 60_000;
    config.delivery.backoff_max_ms = 60_000;
    let mut config_a = config.clone();
    config_a.database.url = tailhook::secret::DatabaseUrl::new(url.as_str());
    config_a.database.statement_timeout_ms = 1_000;
    let a = Sidecar::start(config_a);
    client
        .execute("INSERT INTO tailhook.outbox (event_type, payload) SELECT 't', '{}' FROM generate_series(1, 10)", &[])
        .await
        .unwrap();
    wait_for("30 requests in flight from `a`", Duration::from_secs(10), || async { receiver.count() == 30 }).await;
    // Their answers come 300 ms later, when `a` can no longer write them.
    proxy.blackhole();
    let b = Sidecar::start(config);
    wait_for("`b` took every delivery over and wrote its results", Duration::from_secs(10), || async {
        receiver.count() == 60
            && db.count("SELECT count(*) FROM tailhook.deliveries WHERE locked_by IS NULL AND attempts = 1").await == 30
    })
    .await;
    proxy.restore();
    // `a` reconnects and writes its late results (within its retry backoff).
    poll_until(Duration::from_secs(10), || async { db.count("SELECT count(*) FROM tailhook.attempts").await >= 60 })
        .await;
    a.stop().await;
    b.stop().await;

    let seen = receiver.per_id();
    let rows = db
        .client()
        .await
        .query(
            "SELECT o.event_id::text, count(a.id) FROM tailhook.outbox o
               JOIN tailhook.deliveries d ON d.outbox_id = o.id
               LEFT JOIN tailhook.attempts a ON a.delivery_id = d.id GROUP BY 1",
            &[],
        )
        .await
        .unwrap();
    let recorded: std::collections::HashMap<String, usize> =
        rows.iter().map(|r| (r.get::<_, String>(0), r.get::<_, i64>(1) as usize)).collect();
    assert_eq!(
        receiver.count(),
        60,
        "one duplicate for each of the 30 requests in flight when `a` was cut off, no more"
    );
    assert_eq!(recorded, seen, "every request the receiver saw has its attempt row (by webhook-id)");
    let state = |name: &'static str| {
        let db = &db;
        async move {
            let row = db
                .client()
                .await
                .query_one(
                    "SELECT e.enabled, e.consecutive_failures, count(*) FILTER (WHERE d.status = 'succeeded')
                       FROM tailhook.endpoints e JOIN tailhook.deliveries d ON d.endpoint_id = e.id
                      WHERE e.name = $1 GROUP BY e.id",
                    &[&name],
                )
                .await
                .unwrap();
            (row.get::<_, bool>(0), row.get::<_, i32>(1), row.get::<_, i64>(2))
        }
    };
    assert_eq!(state("ok").await, (true, 0, 10), "late 2xx for succeeded deliveries change nothing");
    assert_eq!(
        state("flaky").await,
        (true, 10, 10),
        "a late 2xx finishes a delivery the new holder failed; only the holder's 10 failures count"
    );
    assert_eq!(
        state("gone").await,
        (true, 0, 10),
        "a late 410 Gone neither disables the endpoint nor counts as a failure"
    );
}

/// Issue 9, item 2: the recorder cannot write for three lease periods (an
/// operator's `CREATE INDEX` on `tailhook.attempts` takes the same lock as
/// this `LOCK TABLE`), while the claims still work. The replica must not
/// lease its own deliveries again and re-send them meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_recorder_never_sends_its_own_unrecorded_deliveries_again() {
    let db = TestDb::new().await;
    let receiver = Receiver::ok().await;
    let client = db.migrate().await;
    add_endpoint(&client, "ep", &receiver.url("/ep"), &[]).await;
    let mut config = db.config();
    // Leases of one second.
    config.delivery.timeout_ms = 500;
    config.delivery.lease_margin_ms = 500;
    config.database.poll_interval_ms = 200;
    config.database.statement_timeout_ms = 1_000;
    let sidecar = Sidecar::start(config);
    let locker = db.client().await;
    locker.batch_execute("BEGIN; LOCK TABLE tailhook.attempts IN SHARE MODE").await.unwrap();
    client
        .execute("INSERT INTO tailhook.outbox (event_type, payload) SELECT 't', '{}' FROM generate_series(1, 20)", &[])
        .await
        .unwrap();
    wait_for("20 requests answered", Duration::from_secs(10), || async { receiver.count() >= 20 }).await;
    wait_for("every lease expired with its result unwritten", Duration::from_secs(5), || async {
        db.count("SELECT count(*) FROM tailhook.deliveries WHERE status = 'pending' AND (locked_until IS NULL OR locked_until < now())").await == 20
    })
    .await;
    // Three lease periods with the recorder stuck.
    tokio::time::sleep(Duration::from_secs(3)).await;
    locker.batch_execute("ROLLBACK").await.unwrap();
    wait_settled(&db, 20, Duration::from_secs(10)).await;
    poll_until(Duration::from_secs(5), || async {
        db.count("SELECT count(*) FROM tailhook.attempts").await >= receiver.count() as i64
    })
    .await;
    sidecar.stop().await;
    let attempts = db.count("SELECT count(*) FROM tailhook.attempts").await;
    assert_eq!(
        (receiver.count(), attempts),
        (20, 20),
        "(requests sent, attempt rows): each delivery sent once and recorded"
    );
}

/// Issue 9, item 9(c): a delivery cancelled while its request is in flight
/// stays cancelled, and the request, which was made, keeps its attempt row.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delivery_cancelled_mid_flight_stays_cancelled_and_keeps_its_attempt_row() {
    let db = TestDb::new().await;
    let receiver = Receiver::start(|_, _| Reply::ok().after(Duration::from_millis(500))).await;
    let client = db.migrate().await;
    add_endpoint(&client, "ep", &receiver.url("/ep"), &[]).await;
    let sidecar = Sidecar::start(db.config());
    client.execute("SELECT tailhook.publish('t', '{}')", &[]).await.unwrap();
    wait_for("the request in flight", Duration::from_secs(10), || async { receiver.count() == 1 }).await;
    client.execute("UPDATE tailhook.deliveries SET status = 'cancelled'", &[]).await.unwrap();
    poll_until(Duration::from_secs(5), || async { db.count("SELECT count(*) FROM tailhook.attempts").await > 0 }).await;
    sidecar.stop().await;
    let row = client
        .query_one(
            "SELECT d.status, (SELECT count(*) FROM tailhook.attempts a WHERE a.delivery_id = d.id AND a.status_code = 200)
               FROM tailhook.deliveries d",
            &[],
        )
        .await
        .unwrap();
    assert_eq!((row.get::<_, String>(0), row.get::<_, i64>(1)), ("cancelled".to_owned(), 1));
}
