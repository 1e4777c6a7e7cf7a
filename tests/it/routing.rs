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
