//! The console's endpoint pages over HTTP: every form (create with the secret shown once, edit, pause, resume, enable, rotate, send test, delete) against a real sidecar and PostgreSQL, CSRF and read-only refusals, another tenant's endpoint a 404 under a tenant scope, no secret or header value on any page; and the first user's fixes (an event routed to no endpoint, a redelivery waiting for its attempt, who redelivered, Resume for a paused endpoint).

use crate::support::console::{self, csrf_of, get, post};
use crate::support::*;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tailhook::manage::Scope;
use tailhook::serve::console::{router, Console, Scoped};

/// A form field or a header.
type Pair<'a> = (&'a str, &'a str);

/// The value of a form's Location header.
fn location(r: &reqwest::Response) -> String {
    r.headers().get("location").map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default()
}

/// The `whsec_` secret in `<pre id="secret">` of a page.
fn secret_of(html: &str) -> String {
    let at =
        html.find("id=\"secret\">").unwrap_or_else(|| panic!("no secret shown in {html}")) + "id=\"secret\">".len();
    html[at..at + html[at..].find('<').unwrap()].to_owned()
}

/// POST a form and read the page it answers with.
async fn submit(url: &str, form: &[Pair<'_>]) -> (u16, String, String) {
    let r = post(url, form, &[]).await;
    let (status, to) = (r.status().as_u16(), location(&r));
    (status, to, r.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoint_pages_create_edit_pause_resume_enable_rotate_test_and_delete() {
    let db = TestDb::new().await;
    let client = db.migrate().await;
    let receiver = Receiver::ok().await;
    let (sidecar, base) = console::start(db.config()).await;
    let (status, home) = get(&format!("{base}/"), &[]).await;
    assert_eq!(status, 200);
    assert!(home.contains("href=\"/endpoints/new\""), "the overview offers New endpoint: {home}");
    let (status, form) = get(&format!("{base}/endpoints/new"), &[]).await;
    assert_eq!(status, 200, "{form}");
    let csrf = csrf_of(&form);
    let url = receiver.url("/hooks/path-token-8c1f?key=query-token-77aa");
    let create = format!("{base}/endpoints/new");
    let fields = |name: &'static str, url: &str| -> Vec<(String, String)> {
        [
            ("csrf", csrf.as_str()),
            ("name", name),
            ("url", url),
            ("tenant", "acme"),
            ("event_types", "invoice.*, order.created"),
            ("headers", "X-Api-Key: header-value-secret-51d0"),
            ("max_attempts", "4"),
            ("standard_signature", "on"),
        ]
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
    };
    let send = |v: Vec<(String, String)>| {
        let create = create.clone();
        async move {
            let refs: Vec<Pair> = v.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            submit(&create, &refs).await
        }
    };

    // Refused: no CSRF token, another site.
    let mut no_csrf = fields("orders", &url);
    no_csrf.retain(|(k, _)| k != "csrf");
    assert_eq!(send(no_csrf).await.0, 403);
    let owned = fields("orders", &url);
    let refs: Vec<Pair> = owned.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let cross = post(&create, &refs, &[("sec-fetch-site", "cross-site")]).await;
    assert_eq!(cross.status(), 403);
    assert_eq!(db.count("SELECT count(*) FROM tailhook.endpoints").await, 0, "nothing created when refused");

    // A field breaking a rule: shown beside it, the URL and header values not echoed.
    let mut bad = fields("orders", &url);
    bad.push(("filter_path".into(), "$.amount >>> 3".into()));
    let (status, _, page) = send(bad).await;
    assert_eq!(status, 422, "{page}");
    assert!(page.contains("class=\"field-error\""), "{page}");
    assert!(page.contains("Not saved: filter_path"), "{page}");
    for secret in ["path-token-8c1f", "query-token-77aa", "header-value-secret-51d0"] {
        assert!(!page.contains(secret), "{secret} echoed: {page}");
    }
    assert_eq!(db.count("SELECT count(*) FROM tailhook.endpoints").await, 0);

    // Created: the secret shown once, the one stored.
    let (status, _, page) = send(fields("orders", &url)).await;
    assert_eq!(status, 201, "{page}");
    let secret = secret_of(&page);
    assert!(secret.starts_with("whsec_"), "{secret}");
    let row = client
        .query_one(
            "SELECT secrets, tenant, event_types, headers->>'X-Api-Key', max_attempts, url FROM tailhook.endpoints WHERE name = 'orders'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, Vec<String>>(0), std::slice::from_ref(&secret));
    assert_eq!(row.get::<_, Option<String>>(1).as_deref(), Some("acme"));
    assert_eq!(row.get::<_, Vec<String>>(2), ["invoice.*", "order.created"]);
    assert_eq!(row.get::<_, Option<String>>(3).as_deref(), Some("header-value-secret-51d0"));
    assert_eq!((row.get::<_, Option<i32>>(4), row.get::<_, String>(5)), (Some(4), url.clone()));
    let (status, _, page) = send(fields("orders", &url)).await;
    assert_eq!(status, 422, "a taken name: {page}");
    assert!(page.contains("an endpoint with this name exists"), "{page}");

    // Its page: settings and state, no secret, no header value, no URL path.
    let page_url = format!("{base}/endpoints/orders");
    let (status, page) = get(&page_url, &[]).await;
    assert_eq!(status, 200, "{page}");
    for shown in ["X-Api-Key", "invoice.*, order.created", "acme", "up to 4 attempts", "Recent deliveries", "enabled"] {
        assert!(page.contains(shown), "{shown}: {page}");
    }
    assert!(page.contains("href=\"/deliveries?endpoint=orders\""), "{page}");
    for secret in ["path-token-8c1f", "query-token-77aa", "header-value-secret-51d0", &secret, "whsec_"] {
        assert!(!page.contains(secret), "{secret} shown: {page}");
    }
    let (_, home) = get(&format!("{base}/"), &[]).await;
    assert!(home.contains("href=\"/endpoints/orders\""), "the overview links the page: {home}");

    // Edit: the fields given change; the URL and headers stay when left empty.
    let (status, edit) = get(&format!("{page_url}/edit"), &[]).await;
    assert_eq!(status, 200, "{edit}");
    assert!(!edit.contains("header-value-secret-51d0") && !edit.contains("path-token-8c1f"), "{edit}");
    let edit_url = format!("{page_url}/edit");
    let (status, to, page) = submit(
        &edit_url,
        &[
            ("csrf", &csrf),
            ("tenant", "acme"),
            ("event_types", "order.*"),
            ("timeout_ms", "2500"),
            ("ordered", "on"),
            ("standard_signature", "on"),
        ],
    )
    .await;
    assert_eq!((status, to.as_str()), (303, "/endpoints/orders?notice=saved"), "{page}");
    let row = client
        .query_one(
            "SELECT event_types, timeout_ms, ordered, headers->>'X-Api-Key', url, max_attempts FROM tailhook.endpoints WHERE name = 'orders'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, Vec<String>>(0), ["order.*"]);
    assert_eq!((row.get::<_, Option<i32>>(1), row.get::<_, bool>(2)), (Some(2500), true));
    assert_eq!(row.get::<_, Option<String>>(3).as_deref(), Some("header-value-secret-51d0"));
    assert_eq!(row.get::<_, String>(4), url);
    assert_eq!(row.get::<_, Option<i32>>(5), None, "an emptied number goes back to the default");
    let (status, _, page) = submit(
        &edit_url,
        &[("csrf", &csrf), ("event_types", "*"), ("backoff_initial_ms", "5000"), ("backoff_max_ms", "10")],
    )
    .await;
    assert_eq!(status, 422, "{page}");
    assert!(page.contains("Not saved: backoff_max_ms"), "{page}");
    let (_, page) = get(&format!("{page_url}?notice=saved"), &[]).await;
    assert!(page.contains("Endpoint saved."), "{page}");

    // Pause, then Resume.
    let (status, to, _) = submit(&format!("{page_url}/pause"), &[("csrf", &csrf), ("minutes", "60")]).await;
    assert_eq!((status, to.as_str()), (303, "/endpoints/orders?notice=paused&n=60"));
    let paused = "SELECT count(*) FROM tailhook.endpoints WHERE name = 'orders' AND paused_until > now() + interval '55 minutes'";
    assert_eq!(db.count(paused).await, 1);
    let (_, page) = get(&page_url, &[]).await;
    assert!(page.contains(">Resume</button>") && page.contains("paused until"), "{page}");
    assert!(page.contains(" UTC (59m") || page.contains(" UTC (1h"), "readable: {page}");
    let (status, _, _) = submit(&format!("{page_url}/resume"), &[("csrf", &csrf)]).await;
    assert_eq!(status, 303);
    assert_eq!(
        db.count("SELECT count(*) FROM tailhook.endpoints WHERE name = 'orders' AND paused_until > now()").await,
        0
    );

    // Enable: a disabled endpoint says why and offers Enable.
    client
        .execute(
            "UPDATE tailhook.endpoints SET enabled = false, auto_disabled = true, disabled_reason = 'answered 410 Gone' WHERE name = 'orders'",
            &[],
        )
        .await
        .unwrap();
    let (_, page) = get(&page_url, &[]).await;
    assert!(page.contains("disabled automatically: answered 410 Gone") && page.contains(">Enable</button>"), "{page}");
    let (status, to, _) = submit(&format!("{page_url}/enable"), &[("csrf", &csrf)]).await;
    assert_eq!((status, to.as_str()), (303, "/endpoints/orders?notice=enabled"));
    assert_eq!(db.count("SELECT count(*) FROM tailhook.endpoints WHERE name = 'orders' AND enabled").await, 1);

    // Rotate: a new secret shown once; the old one kept for the overlap.
    let (status, _, page) = submit(&format!("{page_url}/rotate"), &[("csrf", &csrf), ("overlap_hours", "24")]).await;
    assert_eq!(status, 200, "{page}");
    let rotated = secret_of(&page);
    assert!(rotated != secret && rotated.starts_with("whsec_"));
    assert!(page.contains("The older ones sign them too until"), "{page}");
    let secrets: Vec<String> =
        client.query_one("SELECT secrets FROM tailhook.endpoints WHERE name = 'orders'", &[]).await.unwrap().get(0);
    assert_eq!(secrets, [rotated.clone(), secret.clone()]);
    let retiring =
        "SELECT count(*) FROM tailhook.secret_retirements r JOIN tailhook.endpoints e ON e.id = r.endpoint_id \
                    WHERE e.name = 'orders' AND r.retire_at > now() + interval '23 hours'";
    assert_eq!(db.count(retiring).await, 1);

    // Send test: one signed request, with the new secret.
    let (status, _, page) = submit(&format!("{page_url}/test"), &[("csrf", &csrf)]).await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("HTTP 200"), "{page}");
    let got = receiver.received();
    assert_eq!(got.len(), 1);
    verify(&rotated, &got[0].headers, &got[0].body).unwrap();

    // Delete: a confirmation page; the wrong name keeps it; the right one deletes.
    let (status, page) = get(&format!("{page_url}/delete"), &[]).await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("name=\"confirm\""), "{page}");
    let (status, _, _) = submit(&format!("{page_url}/delete"), &[("csrf", &csrf), ("confirm", "order")]).await;
    assert_eq!(status, 400);
    assert_eq!(db.count("SELECT count(*) FROM tailhook.endpoints").await, 1);
    let (status, _, _) = submit(&format!("{page_url}/delete"), &[("confirm", "orders")]).await;
    assert_eq!(status, 403, "no CSRF token");
    let (status, to, _) = submit(&format!("{page_url}/delete"), &[("csrf", &csrf), ("confirm", "orders")]).await;
    assert_eq!((status, to.as_str()), (303, "/?notice=deleted"));
    assert_eq!(db.count("SELECT count(*) FROM tailhook.endpoints").await, 0);
    let (status, _) = get(&page_url, &[]).await;
    assert_eq!(status, 404);

    // An endpoint named `new` has its page, apart from the form.
    add_endpoint(&client, "new", "http://127.0.0.1:9/n", &[SECRET]).await;
    let (_, home) = get(&format!("{base}/"), &[]).await;
    assert!(home.contains("href=\"/endpoints/%6Eew\""), "{home}");
    let (status, page) = get(&format!("{base}/endpoints/%6Eew"), &[]).await;
    assert!(status == 200 && page.contains("Endpoint new"), "{page}");
    sidecar.stop().await;
}

/// A console in this process whose every request has `scoped` as its scope
/// (what the tenant portal's entry point does), on a free loopback port.
async fn scoped_console(db: &TestDb, scoped: Scoped) -> (String, tokio::task::JoinHandle<()>) {
    let config = db.config();
    let pool = tailhook::db::Db::new(&config.database).unwrap();
    let transforms =
        Arc::new(tailhook::transform::Transforms::new(&config.transform, config.delivery.max_payload_bytes));
    let console = Arc::new(Console::new(pool, Arc::new(config), None, Arc::new(|| {}), transforms));
    let app = router(console).layer(axum::Extension(scoped));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let server = tokio::spawn(async move {
        axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>()).await.unwrap();
    });
    (base, server)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_scope_reaches_its_own_endpoints_only_and_a_read_only_one_changes_nothing() {
    let db = TestDb::new().await;
    let client = db.migrate().await;
    add_endpoint(&client, "acme-hook", "http://127.0.0.1:9/acme", &[SECRET]).await;
    add_endpoint(&client, "globex-hook", "http://127.0.0.1:9/globex", &[SECRET]).await;
    client
        .batch_execute(
            "UPDATE tailhook.endpoints SET tenant = 'acme' WHERE name = 'acme-hook';
             UPDATE tailhook.endpoints SET tenant = 'globex' WHERE name = 'globex-hook';",
        )
        .await
        .unwrap();
    let acme = Scoped { scope: Scope { tenant: Some("acme".into()) }, read_only: false };
    let (base, server) = scoped_console(&db, acme).await;
    let (status, page) = get(&format!("{base}/endpoints/acme-hook"), &[]).await;
    assert_eq!(status, 200, "{page}");
    let csrf = csrf_of(&page);
    let (status, page) = get(&format!("{base}/endpoints/globex-hook"), &[]).await;
    assert_eq!(status, 404, "another tenant's endpoint is missing: {page}");
    assert!(!page.contains("globex"), "{page}");
    let (status, _) = get(&format!("{base}/endpoints/globex-hook/edit"), &[]).await;
    assert_eq!(status, 404);
    let (status, _) = get(&format!("{base}/endpoints/globex-hook/delete"), &[]).await;
    assert_eq!(status, 404);
    let untouched = "SELECT count(*) FROM tailhook.endpoints WHERE name = 'globex-hook' AND enabled \
                     AND paused_until IS NULL AND timeout_ms IS NULL AND cardinality(secrets) = 1";
    let globex = format!("{base}/endpoints/globex-hook");
    for (path, fields) in [
        ("pause", vec![("minutes", "15")]),
        ("resume", vec![]),
        ("enable", vec![]),
        ("rotate", vec![("overlap_hours", "1")]),
        ("test", vec![]),
        ("edit", vec![("event_types", "*"), ("timeout_ms", "999")]),
        ("delete", vec![("confirm", "globex-hook")]),
    ] {
        let mut form = vec![("csrf", csrf.as_str())];
        form.extend(fields);
        let (status, _, page) = submit(&format!("{globex}/{path}"), &form).await;
        assert_eq!(status, 404, "{path}: {page}");
        assert_eq!(db.count(untouched).await, 1, "{path} changed another tenant's endpoint");
    }
    for (action, field) in [("enable", "endpoint"), ("pause", "endpoint"), ("test", "endpoint")] {
        let (status, _, _) =
            submit(&format!("{base}/actions/{action}"), &[("csrf", &csrf), (field, "globex-hook"), ("minutes", "15")])
                .await;
        assert_eq!(status, 404, "/actions/{action}");
    }
    assert_eq!(db.count(untouched).await, 1);
    // Created under the scope: the scope's tenant, whatever the form says.
    let (status, _, page) = submit(
        &format!("{base}/endpoints/new"),
        &[("csrf", &csrf), ("name", "acme-two"), ("url", "http://127.0.0.1:9/two"), ("tenant", "globex")],
    )
    .await;
    assert_eq!(status, 201, "{page}");
    assert_eq!(
        db.count("SELECT count(*) FROM tailhook.endpoints WHERE name = 'acme-two' AND tenant = 'acme'").await,
        1
    );
    let (_, form) = get(&format!("{base}/endpoints/new"), &[]).await;
    assert!(!form.contains("name=\"tenant\""), "a scoped form has no tenant field: {form}");
    server.abort();

    // Read-only: pages yes, forms and actions no.
    let read_only = Scoped { scope: Scope { tenant: Some("acme".into()) }, read_only: true };
    let (base, server) = scoped_console(&db, read_only).await;
    let (status, page) = get(&format!("{base}/endpoints/acme-hook"), &[]).await;
    assert_eq!(status, 200);
    assert!(!page.contains("method=\"post\"") && !page.contains("Delete"), "no form on a read-only page: {page}");
    for path in ["/endpoints/new", "/endpoints/acme-hook/edit", "/endpoints/acme-hook/delete"] {
        assert_eq!(get(&format!("{base}{path}"), &[]).await.0, 403, "{path}");
    }
    for (path, fields) in [
        ("/endpoints/acme-hook/pause", vec![("minutes", "15")]),
        ("/endpoints/acme-hook/rotate", vec![("overlap_hours", "1")]),
        ("/endpoints/acme-hook/delete", vec![("confirm", "acme-hook")]),
        ("/endpoints/new", vec![("name", "x"), ("url", "http://127.0.0.1:9/x")]),
        ("/actions/pause", vec![("endpoint", "acme-hook"), ("minutes", "15")]),
    ] {
        let mut form = vec![("csrf", csrf.as_str())];
        form.extend(fields);
        let (status, _, _) = submit(&format!("{base}{path}"), &form).await;
        assert_eq!(status, 403, "{path}");
    }
    let acme_untouched = "SELECT count(*) FROM tailhook.endpoints WHERE name = 'acme-hook' AND paused_until IS NULL \
                          AND cardinality(secrets) = 1";
    assert_eq!(db.count(acme_untouched).await, 1);
    assert_eq!(db.count("SELECT count(*) FROM tailhook.endpoints").await, 3);
    server.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_routed_to_no_endpoint_says_so() {
    let db = TestDb::new().await;
    let client = db.migrate().await;
    add_endpoint(&client, "invoices", "http://127.0.0.1:9/i", &[SECRET]).await;
    client.execute("UPDATE tailhook.endpoints SET event_types = '{invoice.*}'", &[]).await.unwrap();
    let (sidecar, base) = console::start(db.config()).await;
    let id: String =
        client.query_one("SELECT tailhook.publish('order.created', '{}')::text", &[]).await.unwrap().get(0);
    wait_for("the event is routed", Duration::from_secs(15), || async {
        db.count("SELECT count(*) FROM tailhook.outbox WHERE dispatched_at IS NOT NULL").await == 1
    })
    .await;
    let (status, page) = get(&format!("{base}/deliveries?event_id={id}"), &[]).await;
    assert_eq!(status, 200);
    assert!(page.contains("was published, routed to no endpoint"), "{page}");
    assert!(!page.contains("No delivery matches"), "{page}");
    // An id nobody published still finds nothing.
    let (_, page) = get(&format!("{base}/deliveries?event_id=0193a3c4-1b2c-7d3e-8f40-123456789abc"), &[]).await;
    assert!(page.contains("No delivery matches"), "{page}");
    sidecar.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redelivery_waiting_for_its_attempt_is_not_retrying_and_its_attempts_say_who_asked() {
    let db = TestDb::new().await;
    let client = db.migrate().await;
    let receiver = Receiver::start(|_, seen| if seen >= 2 { Reply::ok() } else { Reply::status(500) }).await;
    add_endpoint(&client, "down", &receiver.url("/down"), &[SECRET]).await;
    client.execute("UPDATE tailhook.endpoints SET max_attempts = 2", &[]).await.unwrap();
    let (sidecar, base) = console::start(db.config()).await;
    client.execute("SELECT tailhook.publish('invoice.paid', '{}')", &[]).await.unwrap();
    wait_settled(&db, 1, Duration::from_secs(15)).await;
    let id = db.count("SELECT id FROM tailhook.deliveries WHERE status = 'failed'").await;
    // Paused, so the redelivery waits and the page can be seen before its attempt.
    client.execute("UPDATE tailhook.endpoints SET paused_until = now() + interval '1 hour'", &[]).await.unwrap();
    let page_url = format!("{base}/deliveries/{id}");
    let csrf = csrf_of(&get(&page_url, &[]).await.1);
    let r = post(
        &format!("{base}/actions/redeliver"),
        &[("csrf", &csrf), ("id", &id.to_string()), ("back", &format!("/deliveries/{id}"))],
        &[],
    )
    .await;
    assert_eq!(r.status(), 303);
    let (_, page) = get(&page_url, &[]).await;
    let status = &page[page.find("<dd class=\"status\">").expect("a status")..];
    let status = &status[..status.find("</dd>").unwrap()];
    assert!(status.contains(">redelivered</span>") && !status.contains("retrying"), "{status}");
    assert!(page.contains("error before the redelivery") && page.contains("gave up after 2 attempts"), "{page}");
    assert!(page.contains("by console (loopback) from 127.0.0.1"), "{page}");
    // Resumed: the attempt it brings is marked with who asked.
    client.execute("UPDATE tailhook.endpoints SET paused_until = NULL", &[]).await.unwrap();
    wait_for("the redelivered attempt", Duration::from_secs(15), || async {
        db.count("SELECT count(*) FROM tailhook.attempts WHERE attempt = 3").await == 1
    })
    .await;
    let by: Vec<Option<String>> = client
        .query("SELECT requested_by FROM tailhook.attempts ORDER BY attempt", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(by[..2], [None, None], "the schedule's attempts");
    assert_eq!(by[2].as_deref(), Some("console (loopback) from 127.0.0.1"));
    let (_, page) = get(&page_url, &[]).await;
    assert!(page.contains("redelivery by console (loopback) from 127.0.0.1") && page.contains(">schedule<"), "{page}");
    // The CLI records itself too (paused again, so no attempt takes the row meanwhile).
    client.execute("UPDATE tailhook.endpoints SET paused_until = now() + interval '1 hour'", &[]).await.unwrap();
    let out =
        tailhook(&["redeliver", "--id", &id.to_string()], &[("TAILHOOK_DATABASE__URL", &db.url), ("USER", "alice")]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let by: String = client.query_one("SELECT redelivered_by FROM tailhook.deliveries", &[]).await.unwrap().get(0);
    assert_eq!(by, "cli (user alice)");
    // The API: the token's id, never the token.
    let token: String = client.query_one("SELECT tailhook.create_api_token('write', NULL)", &[]).await.unwrap().get(0);
    let token_id = db.count("SELECT max(id) FROM tailhook.api_tokens").await;
    let r = console::client()
        .post(format!("{base}/api/v1/deliveries/{id}/redeliver"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let by: String = client.query_one("SELECT redelivered_by FROM tailhook.deliveries", &[]).await.unwrap().get(0);
    assert_eq!(by, format!("api token #{token_id}"));
    // And SQL's tailhook.redeliver: the role.
    client.execute("SELECT tailhook.redeliver($1)", &[&id]).await.unwrap();
    let by: String = client.query_one("SELECT redelivered_by FROM tailhook.deliveries", &[]).await.unwrap().get(0);
    assert_eq!(by, "sql (role postgres)");
    sidecar.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_endpoint_offers_resume_with_a_readable_time() {
    let db = TestDb::new().await;
    let client = db.migrate().await;
    add_endpoint(&client, "resting", "http://127.0.0.1:9/r", &[SECRET]).await;
    client
        .execute("UPDATE tailhook.endpoints SET paused_until = now() + interval '2 hours 10 minutes'", &[])
        .await
        .unwrap();
    let (sidecar, base) = console::start(db.config()).await;
    let (_, page) = get(&format!("{base}/"), &[]).await;
    let row = &page[page.find("href=\"/endpoints/resting\"").expect("the row")..];
    let row = &row[..row.find("</tr>").unwrap()];
    assert!(row.contains(">Resume</button>") && !row.contains("Re-enable"), "{row}");
    let label = &row[row.find("paused until").unwrap()..];
    let label = &label[..label.find('<').unwrap()];
    assert!(label.contains(" UTC (2h 9m left)") || label.contains(" UTC (2h 10m left)"), "{label}");
    let iso = label.as_bytes().windows(3).any(|w| w[0].is_ascii_digit() && w[1] == b'T' && w[2].is_ascii_digit());
    assert!(!iso && !label.ends_with('Z'), "no RFC 3339 stamp: {label}");
    assert!(page.contains(".st.paused{white-space:nowrap}"), "a pause's label does not wrap");
    let csrf = csrf_of(&page);
    let r = post(&format!("{base}/endpoints/resting/resume"), &[("csrf", &csrf), ("back", "/")], &[]).await;
    assert_eq!(location(&r), "/?notice=resumed");
    assert_eq!(db.count("SELECT count(*) FROM tailhook.endpoints WHERE paused_until > now()").await, 0);
    let (_, page) = get(&format!("{base}/?notice=resumed"), &[]).await;
    assert!(page.contains("Pause ended"), "{page}");
    sidecar.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hostile_endpoint_row_is_shown_as_text_without_its_secrets() {
    let db = TestDb::new().await;
    let client = db.migrate().await;
    let name = "<script>alert(1)</script>/../x?y#z";
    add_endpoint(
        &client,
        name,
        "https://user:pass-4f1e@receiver.example/path-token-93c2?q=query-token-0b7d",
        &[SECRET],
    )
    .await;
    client
        .execute(
            "UPDATE tailhook.endpoints SET headers = '{\"X-<b>Sig\": \"header-value-7d21\"}',
                    transform = '#{ token: \"transform-literal-5e3a\" }', tenant = '<i>acme</i>',
                    legacy_signature = '{\"header\": \"X-Legacy-Sig\", \"algorithm\": \"sha256\", \"encoding\": \"hex\"}',
                    legacy_secret = 'legacy-secret-value-61aa'",
            &[],
        )
        .await
        .unwrap();
    let (sidecar, base) = console::start(db.config()).await;
    let (_, home) = get(&format!("{base}/"), &[]).await;
    let href = "/endpoints/%3Cscript%3Ealert%281%29%3C%2Fscript%3E%2F%2E%2E%2Fx%3Fy%23z";
    assert!(home.contains(&format!("href=\"{href}\"")), "{home}");
    for path in [href.to_owned(), format!("{href}/edit"), format!("{href}/delete")] {
        let (status, page) = get(&format!("{base}{path}"), &[]).await;
        assert_eq!(status, 200, "{path}: {page}");
        assert!(!page.contains("<script>alert") && !page.contains("<b>Sig") && !page.contains("<i>acme"), "{page}");
        for secret in [
            SECRET,
            "pass-4f1e",
            "path-token-93c2",
            "query-token-0b7d",
            "header-value-7d21",
            "transform-literal-5e3a",
            "legacy-secret-value-61aa",
        ] {
            assert!(!page.contains(secret), "{path} shows {secret}: {page}");
        }
    }
    let (_, page) = get(&format!("{base}{href}"), &[]).await;
    assert!(page.contains("https://receiver.example") && page.contains("X-Legacy-Sig"), "{page}");
    assert!(page.contains("&lt;script&gt;alert(1)&lt;/script&gt;/../x?y#z"), "{page}");
    sidecar.stop().await;
}
