//! The JSON API (`/api/v1`) against a real sidecar and PostgreSQL: each route's answers and errors, scopes, tenant isolation route by route, secret rotation's overlap, idempotent publish, tokens kept out of the log, and the OpenAPI document kept equal to `docs/openapi.json`.

use crate::support::console::{start, wait_until_up};
use crate::support::*;
use serde_json::{json, Value};
use std::path::Path;
use std::time::Duration;

const OPENAPI_FILE: &str = "docs/openapi.json";

/// One request; the status and the JSON body (`null` when empty).
async fn call(base: &str, method: &str, path: &str, token: Option<&str>, body: Option<Value>) -> (u16, Value) {
    let client = reqwest::Client::new();
    let url = format!("{base}/api/v1{path}");
    let mut request = client.request(method.parse().unwrap(), &url);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(body) = body {
        request = request.header("content-type", "application/json").body(body.to_string());
    }
    let response = request.send().await.unwrap_or_else(|e| panic!("{method} {url}: {e}"));
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (status, if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap_or(Value::String(text)) })
}

/// A token made with the SQL function.
async fn token(client: &tokio_postgres::Client, scope: &str, tenant: Option<&str>) -> String {
    client
        .query_one("SELECT tailhook.create_api_token($1, $2)", &[&scope, &tenant])
        .await
        .expect("create_api_token")
        .get(0)
}

async fn sidecar(db: &TestDb) -> (Sidecar, String) {
    let mut config = db.config();
    config.delivery.backoff_initial_ms = 60_000;
    start(config).await
}

#[tokio::test]
async fn endpoint_routes_answer_and_refuse_with_codes_fields_and_rules() {
    let db = TestDb::new().await;
    let client = db.migrate().await;
    let receiver = Receiver::ok().await;
    let admin = token(&client, "admin", None).await;
    let (sidecar, base) = sidecar(&db).await;
    let t = Some(admin.as_str());

    let (status, body) = call(&base, "GET", "/endpoints", None, None).await;
    assert_eq!((status, body["code"].as_str()), (401, Some("unauthorized")), "no token");

    let (status, created) = call(
        &base,
        "POST",
        "/endpoints",
        t,
        Some(json!({
            "name": "orders", "url": receiver.url("/hook?key=sekret"), "event_types": ["order.*"],
            "headers": {"X-Api-Key": "header-value-secret"}, "max_attempts": 5,
        })),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let secret = created["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("whsec_"), "a `tailhook secret` secret: {secret}");
    let (status, got) = call(&base, "GET", "/endpoints/orders", t, None).await;
    assert_eq!(status, 200);
    let text = got.to_string();
    for hidden in [secret.as_str(), "header-value-secret", "sekret", "/hook"] {
        assert!(!text.contains(hidden), "GET shows no secret, header value or URL path: {text}");
    }
    assert_eq!((got["secrets"].as_i64(), got["header_names"].clone()), (Some(1), json!(["X-Api-Key"])));

    // Refusals name the field and the rule: the trigger's, the constraints', rules.rs's, the API's own.
    for (body, code, field, rule) in [
        (json!({"name": "b", "url": "ftp://x"}), 422, "url", "endpoints_url_http"),
        (json!({"name": "b", "url": "http://x", "timeout_ms": 600000}), 422, "timeout_ms", "endpoints_timeout_ms_max"),
        (json!({"name": "b", "url": "http://x", "event_types": []}), 422, "event_types", "endpoints_event_types_valid"),
        (
            json!({"name": "b", "url": "http://x", "filter": {"a": {"b": {"c": {"d": {"e": {"f": {"g": {"h": {"i": 1}}}}}}}}}}),
            422,
            "filter",
            "endpoints_filter_valid",
        ),
        (json!({"name": "b", "url": "http://x", "filter_path": "$$$"}), 422, "filter_path", "jsonpath_syntax"),
        (
            json!({"name": "b", "url": "http://x", "filter_path": "$".repeat(2000)}),
            422,
            "filter_path",
            "endpoints_filter_path_valid",
        ),
        (json!({"name": "b", "url": "http://x", "secrets": ["whsec_x"]}), 422, "secrets", "unknown_field"),
        (json!({"name": "b", "url": "http://x", "max_attempts": "5"}), 422, "max_attempts", "type"),
        (json!({"url": "http://x"}), 422, "name", "required"),
        (json!({"name": "orders", "url": "http://x"}), 409, "", ""),
    ] {
        let (status, error) = call(&base, "POST", "/endpoints", t, Some(body.clone())).await;
        assert_eq!(status, code, "{body} → {error}");
        if code == 422 {
            assert_eq!(
                (error["code"].as_str(), error["field"].as_str(), error["rule"].as_str()),
                (Some("invalid"), Some(field), Some(rule)),
                "{body} → {error}"
            );
        } else {
            assert_eq!(error["code"], "name_taken");
        }
    }
    let (status, error) = call(&base, "POST", "/endpoints", t, Some(Value::String("{not json".into()))).await;
    assert_eq!((status, error["code"].as_str()), (400, Some("invalid_json")));
    let huge = json!({"name": "big", "url": "http://x", "transform": "x".repeat(1 << 20)});
    let (status, error) = call(&base, "POST", "/endpoints", t, Some(huge)).await;
    assert_eq!((status, error["code"].as_str()), (413, Some("too_large")));

    // Update, pause, resume, enable.
    let (status, updated) =
        call(&base, "PATCH", "/endpoints/orders", t, Some(json!({"timeout_ms": 1500, "tenant": null}))).await;
    assert_eq!((status, updated["timeout_ms"].as_i64(), updated["max_attempts"].as_i64()), (200, Some(1500), Some(5)));
    let (status, error) = call(&base, "PATCH", "/endpoints/orders", t, Some(json!({"max_in_flight": 0}))).await;
    assert_eq!(
        (status, error["field"].as_str(), error["rule"].as_str()),
        (422, Some("max_in_flight"), Some("endpoints_max_in_flight_positive"))
    );
    let (status, error) = call(&base, "PATCH", "/endpoints/orders", t, Some(json!({"name": "renamed"}))).await;
    assert_eq!((status, error["field"].as_str()), (422, Some("name")));
    let (status, paused) = call(&base, "POST", "/endpoints/orders/pause", t, Some(json!({"seconds": 600}))).await;
    assert!(status == 200 && paused["paused_until"].is_string(), "{paused}");
    let (status, error) = call(&base, "POST", "/endpoints/orders/pause", t, Some(json!({"seconds": 0}))).await;
    assert_eq!((status, error["field"].as_str()), (422, Some("seconds")));
    let (status, resumed) = call(&base, "POST", "/endpoints/orders/resume", t, None).await;
    assert_eq!((status, resumed["paused_until"].clone()), (200, Value::Null));
    client.execute("UPDATE tailhook.endpoints SET enabled = false, disabled_reason = 'test'", &[]).await.unwrap();
    let (status, enabled) = call(&base, "POST", "/endpoints/orders/enable", t, None).await;
    assert_eq!((status, enabled["enabled"].as_bool()), (200, Some(true)));

    // Send a test: signed with the secret the create returned.
    let (status, tested) = call(&base, "POST", "/endpoints/orders/test", t, None).await;
    assert_eq!(
        (status, tested["succeeded"].as_bool(), tested["status_code"].as_i64()),
        (200, Some(true), Some(200)),
        "{tested}"
    );
    let request = receiver.received().pop().expect("the test request");
    verify(&secret, &request.headers, &request.body).expect("signed with the returned secret");

    // List: filters and keyset paging.
    for name in ["p1", "p2", "p3"] {
        let (status, _) = call(
            &base,
            "POST",
            "/endpoints",
            t,
            Some(json!({"name": name, "url": "http://127.0.0.1:9/", "tenant": "acme"})),
        )
        .await;
        assert_eq!(status, 201);
    }
    let (_, page) = call(&base, "GET", "/endpoints?tenant=acme&limit=2", t, None).await;
    let names: Vec<&str> = page["endpoints"].as_array().unwrap().iter().map(|e| e["name"].as_str().unwrap()).collect();
    assert_eq!((names, page["next_after"].as_str()), (vec!["p1", "p2"], Some("p2")));
    let (_, page) = call(&base, "GET", "/endpoints?tenant=acme&limit=2&after=p2", t, None).await;
    assert_eq!(page["endpoints"].as_array().unwrap().len(), 1);
    let (status, error) = call(&base, "GET", "/endpoints?limit=many", t, None).await;
    assert_eq!((status, error["field"].as_str()), (422, Some("limit")));

    // Delete, then it is gone; a config-managed endpoint is changed in the file only.
    let (status, _) = call(&base, "DELETE", "/endpoints/p3", t, None).await;
    assert_eq!(status, 204);
    let (status, error) = call(&base, "GET", "/endpoints/p3", t, None).await;
    assert_eq!((status, error["code"].as_str()), (404, Some("not_found")));
    client.execute("UPDATE tailhook.endpoints SET managed_by = 'config' WHERE name = 'p2'", &[]).await.unwrap();
    let (status, error) = call(&base, "PATCH", "/endpoints/p2", t, Some(json!({"timeout_ms": 10}))).await;
    assert_eq!((status, error["code"].as_str()), (409, Some("managed_by_config")));

    let (status, report) = call(&base, "GET", "/status", t, None).await;
    assert_eq!((status, report["endpoints"].as_array().map(Vec::len)), (200, Some(3)));
    let (status, error) = call(&base, "GET", "/nowhere", t, None).await;
    assert_eq!((status, error["code"].as_str()), (404, Some("not_found")));
    sidecar.stop().await;
}

#[tokio::test]
async fn a_read_token_cannot_write_and_a_write_token_cannot_delete() {
    let db = TestDb::new().await;
    let client = db.migrate().await;
    add_endpoint(&client, "ep", "http://127.0.0.1:9/", &[SECRET]).await;
    let (read, write) = (token(&client, "read", None).await, token(&client, "write", None).await);
    let (sidecar, base) = sidecar(&db).await;
    let (status, _) = call(&base, "GET", "/endpoints/ep", Some(&read), None).await;
    assert_eq!(status, 200);
    for (method, path, body) in [
        ("POST", "/endpoints", Some(json!({"name": "x", "url": "http://x"}))),
        ("PATCH", "/endpoints/ep", Some(json!({"timeout_ms": 5}))),
        ("POST", "/endpoints/ep/pause", Some(json!({"seconds": 5}))),
        ("POST", "/endpoints/ep/rotate-secret", None),
        ("POST", "/events", Some(json!({"event_type": "a", "payload": {}}))),
        ("DELETE", "/endpoints/ep", None),
    ] {
        let (status, error) = call(&base, method, path, Some(&read), body).await;
        assert_eq!((status, error["code"].as_str()), (403, Some("forbidden")), "{method} {path}");
    }
    let (status, _) = call(&base, "DELETE", "/endpoints/ep", Some(&write), None).await;
    assert_eq!(status, 403, "deleting needs admin");
    let (status, _) = call(&base, "POST", "/deliveries/redeliver", Some(&write), Some(json!({}))).await;
    assert_eq!(status, 403, "redelivering by query needs admin");
    assert_eq!(
        db.count("SELECT count(*) FROM tailhook.endpoints WHERE timeout_ms IS NULL AND paused_until IS NULL").await,
        1
    );
    sidecar.stop().await;
}

/// Everything the database holds that a route could change, as text.
async fn snapshot(client: &tokio_postgres::Client) -> String {
    let row = client
        .query_one(
            "SELECT (SELECT string_agg(format('%s %s %s %s %s %s %s', name, url, secrets, enabled, paused_until, timeout_ms, updated_at), ';' ORDER BY id) FROM tailhook.endpoints)
                 || (SELECT coalesce(string_agg(format('%s %s %s', id, status, next_attempt_at), ';' ORDER BY id), '') FROM tailhook.deliveries)
                 || (SELECT count(*)::text FROM tailhook.outbox)",
            &[],
        )
        .await
        .unwrap();
    row.get(0)
}

#[tokio::test]
async fn a_tenant_token_gets_404_for_another_tenants_ids_on_every_route_and_changes_nothing() {
    let db = TestDb::new().await;
    let client = db.migrate().await;
    client
        .batch_execute(&format!(
            "INSERT INTO tailhook.endpoints (name, url, tenant, secrets) VALUES
                 ('a-ep', 'http://127.0.0.1:9/a', 'a', '{{{SECRET}}}'), ('b-ep', 'http://127.0.0.1:9/b', 'b', '{{{SECRET}}}')"
        ))
        .await
        .unwrap();
    let (sidecar, base) = sidecar(&db).await;
    let root = token(&client, "admin", None).await;
    let a = token(&client, "admin", Some("a")).await;
    let (status, event) =
        call(&base, "POST", "/events", Some(&root), Some(json!({"event_type": "x", "payload": {}, "tenant": "b"})))
            .await;
    assert_eq!(status, 201);
    let b_event = event["event_id"].as_str().unwrap().to_owned();
    let client2 = db.client().await;
    wait_for("b's delivery", Duration::from_secs(10), || async {
        client2.query_one("SELECT count(*) FROM tailhook.deliveries", &[]).await.unwrap().get::<_, i64>(0) == 1
    })
    .await;
    wait_for("b's first attempt (the next is a minute away)", Duration::from_secs(10), || async {
        client2
            .query_one("SELECT count(*) FROM tailhook.deliveries WHERE attempts = 1 AND locked_until IS NULL", &[])
            .await
            .unwrap()
            .get::<_, i64>(0)
            == 1
    })
    .await;
    let b_delivery: i64 = client.query_one("SELECT id FROM tailhook.deliveries", &[]).await.unwrap().get(0);
    let (_, missing) = call(&base, "GET", "/endpoints/no-such-endpoint", Some(&a), None).await;
    let before = snapshot(&client).await;
    let routes: Vec<(&str, String, Option<Value>)> = vec![
        ("GET", "/endpoints/b-ep".into(), None),
        ("PATCH", "/endpoints/b-ep".into(), Some(json!({"timeout_ms": 10}))),
        ("DELETE", "/endpoints/b-ep".into(), None),
        ("POST", "/endpoints/b-ep/enable".into(), None),
        ("POST", "/endpoints/b-ep/pause".into(), Some(json!({"seconds": 60}))),
        ("POST", "/endpoints/b-ep/resume".into(), None),
        ("POST", "/endpoints/b-ep/rotate-secret".into(), Some(json!({"overlap_seconds": 60}))),
        ("POST", "/endpoints/b-ep/test".into(), None),
        ("GET", format!("/events/{b_event}"), None),
        ("GET", format!("/deliveries/{b_delivery}"), None),
        ("POST", format!("/deliveries/{b_delivery}/redeliver"), None),
        ("POST", "/deliveries/redeliver".into(), Some(json!({"endpoint": "b-ep", "status": "pending"}))),
    ];
    for (method, path, body) in routes {
        let (status, answer) = call(&base, method, &path, Some(&a), body).await;
        assert_eq!((status, &answer), (404, &missing), "{method} {path}: the same answer as a missing id");
    }
    // Lists and searches leave b out; a write cannot name b.
    let (_, list) = call(&base, "GET", "/endpoints", Some(&a), None).await;
    assert_eq!(
        list["endpoints"].as_array().unwrap().iter().map(|e| e["name"].clone()).collect::<Vec<_>>(),
        vec![json!("a-ep")]
    );
    let (_, found) = call(&base, "GET", "/deliveries?tenant=b", Some(&a), None).await;
    assert_eq!(found["deliveries"], json!([]));
    let (_, found) = call(&base, "GET", &format!("/deliveries?event_id={b_event}"), Some(&a), None).await;
    assert_eq!(found["deliveries"], json!([]));
    let (_, report) = call(&base, "GET", "/status", Some(&a), None).await;
    assert_eq!(report["endpoints"].as_array().unwrap().len(), 1);
    let (status, error) =
        call(&base, "POST", "/endpoints", Some(&a), Some(json!({"name": "c", "url": "http://x", "tenant": "b"}))).await;
    assert_eq!((status, error["field"].as_str()), (422, Some("tenant")));
    let (status, error) =
        call(&base, "POST", "/events", Some(&a), Some(json!({"event_type": "x", "payload": {}, "tenant": "b"}))).await;
    assert_eq!((status, error["field"].as_str()), (422, Some("tenant")));
    assert_eq!(snapshot(&client).await, before, "nothing of b changed");
    // Its own endpoint it may change; a create gets its tenant.
    let (status, created) =
        call(&base, "POST", "/endpoints", Some(&a), Some(json!({"name": "a2", "url": "http://127.0.0.1:9/"}))).await;
    assert_eq!((status, created["endpoint"]["tenant"].as_str()), (201, Some("a")));

    // A search pages over its own rows only: a's events also reached an
    // endpoint without a tenant (not a's), and no page, one row each, shows
    // or points below one of those deliveries.
    client
        .batch_execute(&format!(
            "INSERT INTO tailhook.endpoints (name, url, secrets) VALUES ('ops', 'http://127.0.0.1:9/ops', '{{{SECRET}}}');
             WITH ev AS (INSERT INTO tailhook.outbox (event_type, payload, tenant, dispatched_at)
                         SELECT 'x', '{{}}', 'a', now() FROM generate_series(1, 3) RETURNING id)
             INSERT INTO tailhook.deliveries (outbox_id, endpoint_id, status, attempts, next_attempt_at, completed_at)
             SELECT ev.id, e.id, CASE e.name WHEN 'ops' THEN 'failed' ELSE 'succeeded' END, 1, NULL, now()
               FROM ev CROSS JOIN tailhook.endpoints e WHERE e.name IN ('ops', 'a-ep') ORDER BY ev.id, e.name DESC"
        ))
        .await
        .unwrap();
    let ids = |name: &'static str| {
        let client = &client;
        async move {
            let sql = "SELECT array_agg(d.id ORDER BY d.id DESC) FROM tailhook.deliveries d
                         JOIN tailhook.endpoints e ON e.id = d.endpoint_id WHERE e.name = $1";
            client.query_one(sql, &[&name]).await.unwrap().get::<_, Vec<i64>>(0)
        }
    };
    let (own, hidden) = (ids("a-ep").await, ids("ops").await);
    let (_, found) = call(&base, "GET", "/deliveries?endpoint=ops&status=failed", Some(&a), None).await;
    assert_eq!((&found["deliveries"], &found["next_below"]), (&json!([]), &Value::Null), "{found}");
    let (mut seen, mut below) = (Vec::new(), String::new());
    for _ in 0..10 {
        let (status, found) = call(&base, "GET", &format!("/deliveries?limit=1{below}"), Some(&a), None).await;
        assert_eq!(status, 200, "{found}");
        for d in found["deliveries"].as_array().unwrap() {
            assert_eq!(d["endpoint"], "a-ep", "{found}");
            seen.push(d["id"].as_i64().unwrap());
        }
        match found["next_below"].as_i64() {
            Some(next) => {
                assert!(!hidden.contains(&next), "a page points below a hidden delivery: {found}");
                below = format!("&below={next}");
            }
            None => break,
        }
    }
    assert_eq!(seen, own, "each of its own deliveries once, newest first");
    sidecar.stop().await;
}

#[tokio::test]
async fn publish_is_idempotent_by_event_id_and_deliveries_are_found_and_redelivered() {
    let db = TestDb::new().await;
    let client = db.migrate().await;
    let receiver = Receiver::start(|_, _| Reply::status(500)).await;
    add_endpoint(&client, "flaky", &receiver.url("/"), &[SECRET]).await;
    client.execute("UPDATE tailhook.endpoints SET max_attempts = 1", &[]).await.unwrap();
    let admin = token(&client, "admin", None).await;
    let (sidecar, base) = sidecar(&db).await;
    let t = Some(admin.as_str());
    let event =
        json!({"event_id": "0190a000-0000-7000-8000-0000000000aa", "event_type": "order.paid", "payload": {"n": 1}});
    let (status, first) = call(&base, "POST", "/events", t, Some(event.clone())).await;
    assert_eq!(status, 201, "{first}");
    let (status, again) = call(&base, "POST", "/events", t, Some(event.clone())).await;
    assert_eq!((status, &again["event_id"]), (200, &first["event_id"]), "the same id again: nothing new");
    let mut changed = event.clone();
    changed["payload"] = json!({"n": 2});
    let (status, error) = call(&base, "POST", "/events", t, Some(changed)).await;
    assert_eq!((status, error["code"].as_str()), (409, Some("event_id_taken")));
    let (status, error) =
        call(&base, "POST", "/events", t, Some(json!({"event_type": "tailhook.endpoint.disabled", "payload": {}})))
            .await;
    assert_eq!((status, error["rule"].as_str()), (422, Some("event_type_reserved")));
    assert_eq!(db.count("SELECT count(*) FROM tailhook.outbox").await, 1);

    wait_settled(&db, 1, Duration::from_secs(15)).await;
    let (_, found) = call(&base, "GET", "/deliveries?status=failed&event_type=order.paid", t, None).await;
    let id = found["deliveries"][0]["id"].as_i64().expect("the failed delivery");
    let (status, delivery) = call(&base, "GET", &format!("/deliveries/{id}"), t, None).await;
    assert_eq!((status, delivery["attempt_log"][0]["status_code"].as_i64()), (200, Some(500)), "{delivery}");
    let (_, got) = call(&base, "GET", "/events/0190a000-0000-7000-8000-0000000000aa", t, None).await;
    assert_eq!(got["deliveries"][0]["status"], "failed");
    let (status, redelivered) = call(&base, "POST", &format!("/deliveries/{id}/redeliver"), t, None).await;
    assert_eq!((status, redelivered["redelivered"].as_i64()), (200, Some(1)));
    wait_for("a second attempt", Duration::from_secs(10), || async { receiver.count() >= 2 }).await;
    wait_settled(&db, 1, Duration::from_secs(15)).await;
    let (status, redelivered) =
        call(&base, "POST", "/deliveries/redeliver", t, Some(json!({"endpoint": "flaky"}))).await;
    assert_eq!((status, redelivered["redelivered"].as_i64()), (200, Some(1)));
    let (status, _) = call(&base, "GET", "/deliveries/999999", t, None).await;
    assert_eq!(status, 404);
    let (status, _) = call(&base, "GET", "/events/not-a-uuid", t, None).await;
    assert_eq!(status, 404);
    sidecar.stop().await;
}

#[tokio::test]
async fn a_rotated_secret_keeps_the_old_one_signing_for_the_overlap_only() {
    let db = TestDb::new().await;
    let client = db.migrate().await;
    let receiver = Receiver::ok().await;
    let admin = token(&client, "admin", None).await;
    let (sidecar, base) = sidecar(&db).await;
    let t = Some(admin.as_str());
    let (_, created) = call(&base, "POST", "/endpoints", t, Some(json!({"name": "r", "url": receiver.url("/")}))).await;
    let old = created["secret"].as_str().unwrap().to_owned();
    let (status, rotated) =
        call(&base, "POST", "/endpoints/r/rotate-secret", t, Some(json!({"overlap_seconds": 4}))).await;
    assert_eq!(status, 200, "{rotated}");
    let new = rotated["secret"].as_str().unwrap().to_owned();
    assert_ne!(old, new);
    // Publishes one event and waits for its request; whether `secret` signed it.
    let signed_by = |secret: String| {
        let (base, admin, receiver) = (base.clone(), admin.clone(), &receiver);
        async move {
            let before = receiver.count();
            call(&base, "POST", "/events", Some(&admin), Some(json!({"event_type": "e", "payload": {}}))).await;
            wait_for("the delivery", Duration::from_secs(10), || async { receiver.count() > before }).await;
            let got = receiver.received().pop().unwrap();
            (verify(&secret, &got.headers, &got.body).is_ok(), got)
        }
    };
    // The endpoint refresher reloads within a second: the new secret signs soon, beside the old.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let during = loop {
        let (yes, got) = signed_by(new.clone()).await;
        if yes {
            break got;
        }
        assert!(tokio::time::Instant::now() < deadline, "the new secret signs within 10 s of the rotation");
    };
    verify(&old, &during.headers, &during.body).expect("the old secret signs during the overlap");
    // After the overlap (4 s) the old secret is dropped, and stops signing.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    let last = loop {
        let (yes, got) = signed_by(old.clone()).await;
        if !yes {
            break got;
        }
        assert!(tokio::time::Instant::now() < deadline, "the old secret stops signing within 15 s");
    };
    verify(&new, &last.headers, &last.body).expect("the new secret signs after the overlap");
    assert_eq!(db.count("SELECT cardinality(secrets)::bigint FROM tailhook.endpoints").await, 1);
    sidecar.stop().await;
}

#[tokio::test]
async fn tokens_stay_out_of_the_log_and_wrong_ones_are_throttled_and_revocable() {
    let db = TestDb::new().await;
    db.migrate().await;
    let url = db.config().database.url.expose().to_owned();
    let env = [("DATABASE_URL", url.as_str())];
    let made = tailhook(&["token", "create", "--scope", "write", "--name", "ci"], &env);
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    let token = String::from_utf8(made.stdout).unwrap().trim().to_owned();
    assert!(tailhook::manage::tokens::well_formed(&token), "{token}");
    let listed = String::from_utf8(tailhook(&["token", "list"], &env).stdout).unwrap();
    assert!(listed.contains("ci") && listed.contains(&token[..12]) && !listed.contains(&token[12..]), "{listed}");
    let port = free_port();
    let binary = Binary::run(
        &format!("[server]\nlisten = \"127.0.0.1:{port}\"\n[log]\nlevel = \"debug\"\n"),
        &[("DATABASE_URL", url.as_str()), ("TAILHOOK_SERVER__LISTEN", &format!("127.0.0.1:{port}"))],
    );
    let base = format!("http://127.0.0.1:{port}");
    wait_until_up(&base).await;
    let (status, _) =
        call(&base, "POST", "/events", Some(&token), Some(json!({"event_type": "e", "payload": {}}))).await;
    assert_eq!(status, 201);
    let wrong = format!("thk_{}", "ab".repeat(32));
    for _ in 0..5 {
        let (status, error) = call(&base, "GET", "/status", Some(&wrong), None).await;
        assert_eq!((status, error["code"].as_str()), (401, Some("unauthorized")));
    }
    let (status, error) = call(&base, "GET", "/status", Some(&token), None).await;
    assert_eq!(
        (status, error["code"].as_str()),
        (429, Some("too_many_attempts")),
        "the peer is paused, right token or not"
    );
    let revoked = tailhook(&["token", "revoke", "ci"], &env);
    assert!(revoked.status.success());
    let (_, log) = binary.stop();
    for secret in [&token, &token[12..], &wrong, &wrong[12..]] {
        assert!(!log.contains(secret), "a token in the log:\n{log}");
    }
    assert!(log.contains("API request refused") && log.contains("API authentication throttled"), "{log}");
    let unknown = tailhook(&["token", "revoke", "nobody"], &env);
    assert_eq!(unknown.status.code(), Some(2));
}

#[tokio::test]
async fn a_revoked_or_expired_token_is_refused() {
    let db = TestDb::new().await;
    let client = db.migrate().await;
    let live = token(&client, "read", None).await;
    let revoked = token(&client, "read", None).await;
    let expired: String =
        client.query_one("SELECT tailhook.create_api_token('read', NULL, NULL, '1 second')", &[]).await.unwrap().get(0);
    client.execute("SELECT tailhook.revoke_api_token(substr($1, 1, 12))", &[&revoked]).await.unwrap();
    client
        .execute(
            "UPDATE tailhook.api_tokens SET expires_at = now() - interval '1 minute' WHERE expires_at IS NOT NULL",
            &[],
        )
        .await
        .unwrap();
    let (sidecar, base) = sidecar(&db).await;
    assert_eq!(call(&base, "GET", "/status", Some(&live), None).await.0, 200);
    assert_eq!(call(&base, "GET", "/status", Some(&revoked), None).await.0, 401);
    assert_eq!(call(&base, "GET", "/status", Some(&expired), None).await.0, 401);
    assert_eq!(db.count("SELECT count(*) FROM tailhook.api_tokens WHERE hash IS NOT NULL AND prefix <> ''").await, 3);
    let stored = db.count(&format!("SELECT count(*) FROM tailhook.api_tokens WHERE prefix || '' = '{live}'")).await;
    assert_eq!(stored, 0, "the token itself is not stored");
    sidecar.stop().await;
}

#[tokio::test]
async fn the_served_openapi_document_is_the_committed_one() {
    let document = serde_json::to_string_pretty(&tailhook::serve::api::document()).unwrap() + "\n";
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(OPENAPI_FILE);
    if std::env::var_os("TAILHOOK_BLESS").is_some_and(|v| v == "1") {
        std::fs::write(&path, &document).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == document,
        "{OPENAPI_FILE} differs from the served document; write it again with TAILHOOK_BLESS=1 cargo test --test it api::"
    );
    let db = TestDb::new().await;
    db.migrate().await;
    let (sidecar, base) = sidecar(&db).await;
    let (status, served) = call(&base, "GET", "/openapi.json", None, None).await;
    assert_eq!(status, 200, "the document needs no token");
    assert_eq!(served, serde_json::from_str::<Value>(&committed).unwrap());
    assert_eq!(served["openapi"], "3.1.0");
    sidecar.stop().await;
}

/// The ```sh blocks of docs/guide/api.md not marked `# not run:`, in order.
fn guide_curl_blocks() -> Vec<String> {
    let text = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/guide/api.md")).unwrap();
    let mut blocks = Vec::new();
    let mut current: Option<Vec<&str>> = None;
    for line in text.lines() {
        match (&mut current, line.trim()) {
            (None, "```sh") => current = Some(Vec::new()),
            (Some(block), "```") => {
                let body = block.join("\n");
                if !body.trim_start().starts_with("# not run:") {
                    blocks.push(body);
                }
                current = None;
            }
            (Some(block), _) => block.push(line),
            (None, _) => {}
        }
    }
    blocks
}

#[tokio::test]
async fn the_api_guides_curl_examples_run() {
    let db = TestDb::new().await;
    let client = db.migrate().await;
    let receiver = Receiver::ok().await;
    let admin = token(&client, "admin", None).await;
    let (sidecar, base) = sidecar(&db).await;
    let blocks = guide_curl_blocks();
    assert!(blocks.len() >= 6, "the guide's curl examples: {}", blocks.len());
    for block in blocks {
        let out = tokio::process::Command::new("bash")
            .args(["-euo", "pipefail", "-c", &block])
            .env("TAILHOOK_URL", &base)
            .env("TOKEN", &admin)
            .env("RECEIVER_URL", receiver.url("/orders"))
            .output()
            .await
            .expect("bash");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{block}\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    }
    let types: Vec<Value> = receiver.received().iter().map(|r| r.json()["type"].clone()).collect();
    assert!(types.contains(&json!("tailhook.test")), "the test request reached the receiver: {types:?}");
    assert_eq!(db.count("SELECT count(*) FROM tailhook.outbox WHERE event_type = 'order.paid'").await, 1);
    sidecar.stop().await;
}

#[tokio::test]
async fn with_sealing_keys_api_secrets_are_sealed_at_rest_and_still_sign() {
    let db = TestDb::new().await;
    let client = db.migrate().await;
    let receiver = Receiver::ok().await;
    let admin = token(&client, "admin", None).await;
    let mut config = db.config();
    config.secrets.keys = vec![tailhook::secret::Secret::new("/WOQKFKFX/00vYLi5/B1QeyXGmXYsflU8qvAPElmv78=")];
    let (sidecar, base) = start(config).await;
    let t = Some(admin.as_str());
    let (status, created) = call(
        &base,
        "POST",
        "/endpoints",
        t,
        Some(json!({"name": "s", "url": receiver.url("/"), "headers": {"X-K": "header-secret"}})),
    )
    .await;
    assert_eq!(status, 201);
    let (_, rotated) =
        call(&base, "POST", "/endpoints/s/rotate-secret", t, Some(json!({"overlap_seconds": 600}))).await;
    let (first, second) =
        (created["secret"].as_str().unwrap().to_owned(), rotated["secret"].as_str().unwrap().to_owned());
    wait_for("both secrets and the header value sealed in place", Duration::from_secs(10), || async {
        db.count("SELECT count(*) FROM tailhook.endpoints, unnest(secrets) s WHERE s LIKE 'enc:v1:%' AND headers->>'X-K' LIKE 'enc:v1:%'").await == 2
    })
    .await;
    call(&base, "POST", "/events", t, Some(json!({"event_type": "e", "payload": {}}))).await;
    wait_for("the delivery", Duration::from_secs(10), || async { receiver.count() == 1 }).await;
    let got = receiver.received().pop().unwrap();
    verify(&first, &got.headers, &got.body).expect("the first secret, sealed, still signs");
    verify(&second, &got.headers, &got.body).expect("the rotated one too");
    sidecar.stop().await;
}

/// A team moving its webhook module onto tailhook creates its customers'
/// endpoints through the API with the signature their receivers already
/// check: the legacy secret is written, never read back nor echoed in an
/// error, and the request carries the header the receiver's own code checks.
#[tokio::test]
async fn the_api_writes_a_compatibility_signature_and_never_shows_its_secret() {
    use hmac::{Hmac, Mac};
    const LEGACY: &str = "timetracker-legacy-key-0123456789";
    let db = TestDb::new().await;
    let client = db.migrate().await;
    let receiver = Receiver::ok().await;
    let admin = token(&client, "admin", None).await;
    let (sidecar, base) = sidecar(&db).await;
    let t = Some(admin.as_str());
    let signature = json!({"header": "X-TimeTracker-Signature", "prefix": "sha256="});

    for (body, field) in [
        (json!({"name": "b", "url": "http://x", "legacy_signature": signature}), "legacy_secret"),
        (json!({"name": "b", "url": "http://x", "legacy_secret": LEGACY}), "legacy_signature"),
        (
            json!({"name": "b", "url": "http://x", "legacy_signature": {"header": "webhook-signature"}, "legacy_secret": LEGACY}),
            "legacy_signature",
        ),
        (
            json!({"name": "b", "url": "http://x", "legacy_signature": signature, "legacy_secret": "short"}),
            "legacy_secret",
        ),
    ] {
        let (status, error) = call(&base, "POST", "/endpoints", t, Some(body.clone())).await;
        assert_eq!(
            (status, error["code"].as_str(), error["field"].as_str()),
            (422, Some("invalid"), Some(field)),
            "{body} → {error}"
        );
        assert!(!error.to_string().contains(LEGACY), "the secret is not echoed: {error}");
    }

    let (status, created) = call(
        &base,
        "POST",
        "/endpoints",
        t,
        Some(json!({"name": "tt", "url": receiver.url("/tt"), "legacy_signature": signature, "legacy_secret": LEGACY})),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let (_, got) = call(&base, "GET", "/endpoints/tt", t, None).await;
    assert_eq!(got["legacy_signature"]["header"], "X-TimeTracker-Signature", "{got}");
    assert!(!got.to_string().contains(LEGACY) && got.get("legacy_secret").is_none(), "never read back: {got}");

    let (status, _) =
        call(&base, "POST", "/events", t, Some(json!({"event_type": "timer.stopped", "payload": {"id": 7}}))).await;
    assert_eq!(status, 201);
    wait_for("the delivery", Duration::from_secs(10), || async { receiver.count() >= 1 }).await;
    let request = receiver.received().remove(0);
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(LEGACY.as_bytes()).unwrap();
    mac.update(&request.body);
    let expected =
        format!("sha256={}", mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect::<String>());
    assert_eq!(request.headers.get("x-timetracker-signature").and_then(|v| v.to_str().ok()), Some(expected.as_str()));

    // Turned off again through the API: both columns cleared together.
    let (status, updated) =
        call(&base, "PATCH", "/endpoints/tt", t, Some(json!({"legacy_signature": null, "legacy_secret": null}))).await;
    assert_eq!((status, &updated["legacy_signature"]), (200, &Value::Null), "{updated}");
    sidecar.stop().await;
}

/// A tenant's token sees who asked for a redelivery only when it was that
/// tenant; the operator's requests (SQL, the console, another token) read
/// "the operator", never a role, an address or a token id.
#[tokio::test]
async fn a_tenant_token_sees_the_operators_redeliveries_as_the_operator() {
    let db = TestDb::new().await;
    let client = db.migrate().await;
    let receiver = Receiver::start(|_, seen| if seen == 0 { Reply::status(500) } else { Reply::ok() }).await;
    add_endpoint(&client, "acme-hook", &receiver.url("/"), &[SECRET]).await;
    client.execute("UPDATE tailhook.endpoints SET max_attempts = 1, tenant = 'acme'", &[]).await.unwrap();
    let admin = token(&client, "admin", None).await;
    let acme = token(&client, "write", Some("acme")).await;
    let (sidecar, base) = sidecar(&db).await;
    client.execute("SELECT tailhook.publish('order.paid', '{}', 'acme')", &[]).await.unwrap();
    wait_settled(&db, 1, Duration::from_secs(15)).await;
    let id: i64 = client.query_one("SELECT id FROM tailhook.deliveries", &[]).await.unwrap().get(0);
    assert!(client.query_one("SELECT tailhook.redeliver($1)", &[&id]).await.unwrap().get::<_, bool>(0));
    wait_for("the redelivered attempt", Duration::from_secs(10), || async {
        db.count("SELECT count(*) FROM tailhook.attempts WHERE requested_by IS NOT NULL").await == 1
    })
    .await;

    let by = |delivery: &Value| delivery["attempt_log"][0]["requested_by"].as_str().map(str::to_owned);
    let (_, seen_by_admin) = call(&base, "GET", &format!("/deliveries/{id}"), Some(&admin), None).await;
    assert!(by(&seen_by_admin).is_some_and(|b| b.starts_with("sql (role ")), "{seen_by_admin}");
    let (status, seen_by_acme) = call(&base, "GET", &format!("/deliveries/{id}"), Some(&acme), None).await;
    assert_eq!((status, by(&seen_by_acme).as_deref()), (200, Some("the operator")), "{seen_by_acme}");
    assert!(!seen_by_acme.to_string().contains("role"), "{seen_by_acme}");

    // Its own request, through its own token, it sees as recorded.
    client.execute("UPDATE tailhook.deliveries SET status = 'failed', completed_at = now()", &[]).await.unwrap();
    let (status, _) = call(&base, "POST", &format!("/deliveries/{id}/redeliver"), Some(&acme), None).await;
    assert_eq!(status, 200);
    wait_for("the tenant's redelivered attempt", Duration::from_secs(10), || async {
        db.count("SELECT count(*) FROM tailhook.attempts WHERE requested_by LIKE 'api token%'").await == 1
    })
    .await;
    let (_, seen_by_acme) = call(&base, "GET", &format!("/deliveries/{id}"), Some(&acme), None).await;
    assert!(
        by(&seen_by_acme).is_some_and(|b| b.starts_with("api token #") && b.ends_with("(tenant acme)")),
        "{seen_by_acme}"
    );
    sidecar.stop().await;
}
