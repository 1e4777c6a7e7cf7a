//! The delivery console over HTTP: who may read and act, cross-site refusals, escaping, no secret on any page, and search paged by keyset through indexes.

use crate::support::console::{self, csrf_of, get, post};
use crate::support::*;
use std::time::Duration;

/// A form field or a header.
type Pair<'a> = (&'a str, &'a str);

/// Delivery ids linked from a page, in page order.
fn delivery_ids(html: &str) -> Vec<i64> {
    html.split("href=\"/deliveries/")
        .skip(1)
        .filter_map(|rest| rest[..rest.find('"').unwrap_or(0)].parse().ok())
        .collect()
}

/// The "Older deliveries" link of a search page, unescaped.
fn older_link(html: &str) -> Option<String> {
    let at = html.find("\">Older deliveries")?;
    let start = html[..at].rfind("href=\"")? + "href=\"".len();
    Some(html[start..at].replace("&amp;", "&"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_answers_loopback_or_the_admin_token_and_actions_need_same_origin_and_csrf() {
    let db = TestDb::new().await;
    let client = db.migrate().await;
    add_endpoint(&client, "paused-one", "http://127.0.0.1:9/a", &[SECRET]).await;
    client
        .execute(
            "UPDATE tailhook.endpoints SET paused_until = now() + interval '1 hour' WHERE name = 'paused-one'",
            &[],
        )
        .await
        .unwrap();
    let paused = || async {
        db.count("SELECT count(*) FROM tailhook.endpoints WHERE name = 'paused-one' AND paused_until > now()").await
            == 1
    };
    let token = "console-admin-token-5f2a9c1e77";
    let port = free_port();
    let (listen, base) = (format!("127.0.0.1:{port}"), format!("http://127.0.0.1:{port}"));
    let sidecar = Binary::run(
        "",
        &[
            ("TAILHOOK_DATABASE__URL", db.url.as_str()),
            ("TAILHOOK_SERVER__LISTEN", &listen),
            ("TAILHOOK_SERVER__ADMIN_TOKEN_ENV", "CONSOLE_TEST_TOKEN"),
            ("CONSOLE_TEST_TOKEN", token),
        ],
    );
    console::wait_until_up(&base).await;
    let home = format!("{base}/");
    // DNS rebinding: a page on another site whose name resolves to 127.0.0.1.
    let foreign = ("host", "evil.example:80");

    // Reads: loopback with a loopback Host, or the token from anywhere.
    let (status, page) = get(&home, &[]).await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("paused-one") && page.contains("paused until"), "{page}");
    for headers in [vec![foreign], vec![foreign, ("authorization", "Bearer console-admin-token-5f2a9c1e7")]] {
        for path in ["/", "/deliveries", "/deliveries/1"] {
            let (status, page) = get(&format!("{base}{path}"), &headers).await;
            assert_eq!(status, 401, "{path} {headers:?}: {page}");
            assert!(!page.contains("paused-one") && page.contains("href=\"/login\""), "{page}");
        }
    }
    let bearer = format!("Bearer {token}");
    let (status, page) = get(&home, &[foreign, ("authorization", &bearer)]).await;
    assert_eq!((status, page.contains("paused-one")), (200, true), "{page}");

    // Sign-in sets a cookie that then stands for the token; refused cross-site or wrong.
    let wrong = post(&format!("{base}/login"), &[("token", "nope")], &[foreign]).await;
    assert_eq!(wrong.status(), 401);
    let cross = post(&format!("{base}/login"), &[("token", token)], &[foreign, ("sec-fetch-site", "cross-site")]).await;
    assert_eq!(cross.status(), 403);
    let signed_in = post(&format!("{base}/login"), &[("token", token)], &[foreign]).await;
    assert_eq!(signed_in.status(), 303);
    let cookie = signed_in.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"), "{cookie}");
    let pair = cookie.split(';').next().unwrap().to_owned();
    let (status, page) = get(&home, &[foreign, ("cookie", &pair)]).await;
    assert_eq!((status, page.contains("paused-one")), (200, true));

    // Actions: the form's CSRF token, and no sign of another site.
    let csrf = csrf_of(&get(&home, &[]).await.1);
    let enable = format!("{base}/actions/enable");
    let form = [("endpoint", "paused-one"), ("csrf", csrf.as_str())];
    let refusals: [(&[Pair], &[Pair], u16); 6] = [
        (&[("endpoint", "paused-one")], &[], 403),
        (&[("endpoint", "paused-one"), ("csrf", "0000")], &[], 403),
        (&form, &[("sec-fetch-site", "cross-site")], 403),
        (&form, &[("sec-fetch-site", "same-site")], 403),
        (&form, &[("origin", "http://evil.example")], 403),
        (&form, &[foreign], 401),
    ];
    for (fields, headers, expected) in refusals {
        let response = post(&enable, fields, headers).await;
        assert_eq!(response.status().as_u16(), expected, "{fields:?} {headers:?}");
        assert!(paused().await, "refused, so still paused: {fields:?} {headers:?}");
    }
    let (status, _) = get(&enable, &[]).await;
    assert_eq!(status, 405, "actions are POSTs only");
    let origin = base.clone();
    let done = post(&enable, &form, &[("sec-fetch-site", "same-origin"), ("origin", &origin)]).await;
    assert_eq!(done.status(), 303);
    assert_eq!(done.headers()["location"], "/?notice=enabled");
    assert!(!paused().await, "re-enabled: the pause is gone");
    let (_, page) = get(&format!("{base}/?notice=enabled"), &[]).await;
    assert!(page.contains("Endpoint re-enabled"), "{page}");

    // With the token, from elsewhere: pause for 15 minutes.
    let response = post(
        &format!("{base}/actions/pause"),
        &[("endpoint", "paused-one"), ("minutes", "15"), ("csrf", &csrf)],
        &[foreign, ("authorization", &bearer)],
    )
    .await;
    assert_eq!(response.status(), 303);
    assert!(paused().await);
    let (_, log) = sidecar.stop();

    // Every action logged with who asked and what changed; refusals too; the token never.
    let line = |needles: &[&str]| log.lines().any(|l| needles.iter().all(|n| l.contains(n)));
    assert!(line(&["endpoint re-enabled", "peer=127.0.0.1:", "via=\"loopback\"", "endpoint=\"paused-one\""]), "{log}");
    assert!(line(&["endpoint paused", "via=\"admin token\"", "endpoint=\"paused-one\"", "until="]), "{log}");
    assert!(line(&["console action refused", "peer=127.0.0.1:", "CSRF token"]), "{log}");
    assert!(line(&["console action refused", "another site"]), "{log}");
    assert!(line(&["console sign-in with a wrong token"]), "{log}");
    assert!(!log.contains(token), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_can_be_turned_off_and_a_named_token_variable_must_exist() {
    let db = TestDb::new().await;
    let mut config = db.config();
    config.server.console = false;
    let (sidecar, base) = console::start(config).await;
    assert_eq!(get(&format!("{base}/"), &[]).await.0, 404);
    assert_eq!(get(&format!("{base}/deliveries"), &[]).await.0, 404);
    assert_eq!(get(&format!("{base}/healthz"), &[]).await, (200, "ok\n".to_owned()));
    sidecar.stop().await;

    let out = tailhook(
        &["run"],
        &[("DATABASE_URL", &db.url), ("TAILHOOK_SERVER__ADMIN_TOKEN_ENV", "CONSOLE_TEST_TOKEN_UNSET")],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("server.admin_token_env") && err.contains("CONSOLE_TEST_TOKEN_UNSET is not set"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_pages_escape_everything_and_show_no_secret() {
    let db = TestDb::new().await;
    let client = db.migrate().await;
    let receiver = Receiver::start(|_, _| Reply::ok().body("<img src=x onerror=alert('response')>")).await;
    let name = r#"<script>alert("name")</script>"#;
    // A Slack-style token in the path, userinfo and a query token: none of it is shown.
    let url = receiver.url("/services/T000/B000/path-token-XXXX").replace("http://", "http://hookuser:pw-secret-1@")
        + "?token=hunter2-secret";
    let origin = receiver.url("").trim_end_matches('/').to_owned();
    client
        .execute(
            "INSERT INTO tailhook.endpoints (name, url, secrets, headers)
             VALUES ($1, $2, $3, '{\"authorization\": \"Bearer sekrit-header-value\", \"x-team\": \"payments-team\",
                                   \"x-webhook-hmac\": \"hmac-header-value\"}')",
            &[&name, &url, &vec![SECRET]],
        )
        .await
        .unwrap();
    let event: String = client
        .query_one(
            "SELECT tailhook.publish('invoice.paid', '{\"note\": \"<script>alert(1)</script>\", \"amount\": 5}',
                                     '<i>acme</i>')::text",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    let (sidecar, base) = console::start(db.config()).await;
    wait_settled(&db, 1, Duration::from_secs(15)).await;
    let delivery = db.count("SELECT id FROM tailhook.deliveries").await;
    let signature = receiver.received()[0].headers["webhook-signature"].to_str().unwrap().to_owned();
    let signature = signature.trim_start_matches("v1,").to_owned();

    let mut pages = Vec::new();
    for path in [
        "/".to_owned(),
        "/deliveries".to_owned(),
        format!("/deliveries?event_id={event}"),
        "/deliveries?tenant=%3Ci%3Eacme%3C%2Fi%3E".to_owned(),
        format!("/deliveries/{delivery}"),
    ] {
        let (status, page) = get(&format!("{base}{path}"), &[]).await;
        assert_eq!(status, 200, "{path}: {page}");
        pages.push((path, page));
    }
    let csrf = csrf_of(&pages[0].1);
    let test = post(&format!("{base}/actions/test"), &[("endpoint", name), ("csrf", &csrf)], &[]).await;
    assert_eq!(test.status(), 200);
    pages.push(("test request".to_owned(), test.text().await.unwrap()));
    assert_eq!(receiver.count(), 2, "the delivery and the test request");

    for (path, page) in &pages {
        for raw in ["<script>alert", "<i>acme", "<img src=x"] {
            assert!(!page.contains(raw), "{path} shows {raw} unescaped:\n{page}");
        }
        for secret in [
            SECRET,
            "whsec_",
            "sekrit-header-value",
            "hmac-header-value",
            "payments-team",
            "pw-secret-1",
            "hookuser",
            "hunter2-secret",
            "path-token-XXXX",
            "/services/",
            &signature,
        ] {
            assert!(!page.contains(secret), "{path} shows a secret ({secret}):\n{page}");
        }
    }
    let shown =
        |i: usize, text: &str| assert!(pages[i].1.contains(text), "{} lacks {text}:\n{}", pages[i].0, pages[i].1);
    let escaped_name = "&lt;script&gt;alert(&quot;name&quot;)&lt;/script&gt;";
    for i in 0..pages.len() {
        shown(i, escaped_name);
    }
    shown(3, "&lt;i&gt;acme&lt;/i&gt;");
    // The delivery page: the payload pretty-printed and escaped, the response
    // as stored, the URL and headers without their secrets.
    shown(4, "&quot;note&quot;: &quot;&lt;script&gt;alert(1)&lt;/script&gt;&quot;");
    shown(4, "&lt;img src=x onerror=alert('response')&gt;");
    // The URL as scheme, host and port only; header names only.
    shown(4, &format!("<code>{origin}</code>"));
    shown(4, "authorization, x-team, x-webhook-hmac (values not shown)");
    shown(4, "1 secret");
    shown(5, &format!(" at {origin}"));
    shown(5, "HTTP 200 in ");
    shown(5, "&lt;img src=x onerror=alert('response')&gt;");
    sidecar.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_search_pages_by_keyset_reads_bounded_ranges_and_uses_indexes() {
    let db = TestDb::new().await;
    let client = db.migrate().await;
    let bulk = add_endpoint(&client, "bulk", "http://127.0.0.1:9/bulk", &[SECRET]).await;
    let a = add_endpoint(&client, "a", "http://127.0.0.1:9/a", &[SECRET]).await;
    let b = add_endpoint(&client, "b", "http://127.0.0.1:9/b", &[SECRET]).await;
    // 45,000 old finished deliveries (three of them tenant `rare`, far apart),
    // then 140 recent ones to a and b, one event each, one attempt each.
    client
        .batch_execute(&format!(
            "INSERT INTO tailhook.outbox (event_type, payload, tenant, created_at, dispatched_at)
             SELECT 'bulk.done', '{{}}', CASE WHEN i IN (100, 25000, 44000) THEN 'rare' END,
                    now() - interval '3 days', now() - interval '3 days'
               FROM generate_series(1, 45000) i;
             INSERT INTO tailhook.deliveries (outbox_id, endpoint_id, status, attempts, created_at, completed_at)
             SELECT id, {bulk}, 'succeeded', 1, now() - interval '3 days', now() - interval '3 days'
               FROM tailhook.outbox ORDER BY id;
             INSERT INTO tailhook.outbox (event_type, payload, tenant, created_at, dispatched_at)
             SELECT CASE WHEN i % 2 = 0 THEN 'order.paid' ELSE 'order.created' END, '{{}}',
                    CASE WHEN i % 3 = 0 THEN 't1' END,
                    now() - make_interval(mins => 140 - i), now() - make_interval(mins => 140 - i)
               FROM generate_series(1, 140) i;
             INSERT INTO tailhook.deliveries (outbox_id, endpoint_id, status, attempts, created_at, completed_at)
             SELECT o.id, CASE WHEN o.id % 7 = 0 THEN {b} ELSE {a} END,
                    CASE WHEN o.id % 10 = 0 THEN 'failed' ELSE 'succeeded' END, 1, o.created_at, o.created_at
               FROM tailhook.outbox o WHERE o.event_type <> 'bulk.done' ORDER BY o.id;
             INSERT INTO tailhook.attempts (delivery_id, attempt, started_at, duration_ms, status_code)
             SELECT id, 1, completed_at, 5, 200 FROM tailhook.deliveries;
             ANALYZE tailhook.outbox; ANALYZE tailhook.deliveries; ANALYZE tailhook.attempts; ANALYZE tailhook.endpoints;"
        ))
        .await
        .unwrap();
    let (sidecar, base) = console::start(db.config()).await;
    let ids_of = |sql: String| {
        let client = &client;
        async move { client.query(&sql, &[]).await.unwrap().iter().map(|r| r.get::<_, i64>(0)).collect::<Vec<_>>() }
    };
    let recent = "FROM tailhook.deliveries d JOIN tailhook.outbox o ON o.id = d.outbox_id \
                  JOIN tailhook.endpoints e ON e.id = d.endpoint_id WHERE o.event_type <> 'bulk.done'";

    // Newest first, 50 a page; the link to older ones carries the filters.
    let mut url = format!("{base}/deliveries?endpoint=a");
    let mut seen = Vec::new();
    let mut pages = 0;
    loop {
        let (status, page) = get(&url, &[]).await;
        assert_eq!(status, 200, "{page}");
        let ids = delivery_ids(&page);
        assert!(ids.len() <= 50);
        seen.extend(ids);
        pages += 1;
        match older_link(&page) {
            Some(link) if pages < 10 => {
                assert!(link.contains("endpoint=a"), "{link}");
                url = format!("{base}{link}");
            }
            _ => break,
        }
    }
    assert_eq!(seen, ids_of(format!("SELECT d.id {recent} AND e.name = 'a' ORDER BY d.id DESC")).await);
    assert!(pages >= 3, "{pages} pages");

    // Each filter, against the same question asked in SQL.
    let t1 = ids_of(format!("SELECT d.id {recent} AND o.tenant = 't1' ORDER BY d.id DESC")).await;
    for (query, expected) in [
        ("endpoint=b&status=failed", "e.name = 'b' AND d.status = 'failed'"),
        ("event_type=order.paid&endpoint=b", "o.event_type = 'order.paid' AND e.name = 'b'"),
        ("status=failed&endpoint=a", "d.status = 'failed' AND e.name = 'a'"),
    ] {
        let (status, page) = get(&format!("{base}/deliveries?{query}"), &[]).await;
        assert_eq!(status, 200);
        let want = ids_of(format!("SELECT d.id {recent} AND {expected} ORDER BY d.id DESC LIMIT 50")).await;
        assert!(!want.is_empty(), "{query}");
        assert_eq!(delivery_ids(&page), want, "{query}");
    }
    let (_, page) = get(&format!("{base}/deliveries?tenant=t1&endpoint=a"), &[]).await;
    let t1_a = ids_of(format!("SELECT d.id {recent} AND o.tenant = 't1' AND e.name = 'a' ORDER BY d.id DESC")).await;
    assert_eq!(delivery_ids(&page), t1_a);
    assert!(t1.len() > t1_a.len());
    let window = ids_of(format!(
        "SELECT d.id {recent} AND d.created_at >= now() - interval '30 minutes 30 seconds'
            AND d.created_at < now() - interval '10 minutes 30 seconds' ORDER BY d.id DESC"
    ))
    .await;
    let since = client.query_one("SELECT (now() - interval '30 minutes 30 seconds')::text", &[]).await.unwrap();
    let until = client.query_one("SELECT (now() - interval '10 minutes 30 seconds')::text", &[]).await.unwrap();
    let query: String = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("since", since.get(0))
        .append_pair("until", until.get(0))
        .finish();
    let (_, page) = get(&format!("{base}/deliveries?{query}"), &[]).await;
    assert_eq!(delivery_ids(&page), window);
    assert_eq!(window.len(), 20);

    // An event id: its deliveries, through the outbox's unique index.
    let event: String = client
        .query_one(&format!("SELECT o.event_id::text {recent} AND e.name = 'b' LIMIT 1"), &[])
        .await
        .unwrap()
        .get(0);
    let (_, page) = get(&format!("{base}/deliveries?event_id={event}"), &[]).await;
    let want = ids_of(format!("SELECT d.id {recent} AND o.event_id = '{event}'")).await;
    assert_eq!((delivery_ids(&page), want.len()), (want, 1));
    // An id far out of range is no error (and no overflow): nothing is below it.
    let (status, page) = get(&format!("{base}/deliveries?endpoint=a&below=-9223372036854775808"), &[]).await;
    assert_eq!((status, delivery_ids(&page).len(), older_link(&page)), (200, 0, None), "{page}");
    for bad in ["event_id=not-an-id", "status=lost", "below=x", "since=not+a+time", "endpoint=a&until=2026-13-45"] {
        let (status, page) = get(&format!("{base}/deliveries?{bad}"), &[]).await;
        assert_eq!(status, 400, "{bad}: {page}");
        assert!(page.contains("class=\"error\""), "{page}");
    }

    // A rare match: each page reads at most 20,000 ids, finds what is there and links on.
    let rare = ids_of("SELECT d.id FROM tailhook.deliveries d JOIN tailhook.outbox o ON o.id = d.outbox_id WHERE o.tenant = 'rare' ORDER BY d.id DESC".into()).await;
    let mut url = format!("{base}/deliveries?tenant=rare");
    let mut found = Vec::new();
    for _ in 0..5 {
        let (_, page) = get(&url, &[]).await;
        found.extend(delivery_ids(&page));
        match older_link(&page) {
            Some(link) => url = format!("{base}{link}"),
            None => break,
        }
    }
    assert_eq!(found, rare);
    assert!(older_link(&get(&url, &[]).await.1).is_none(), "the last page links nowhere");

    // Redeliver a selection ticked on a results page: back to that page, saying how many.
    let search = format!("{base}/deliveries?endpoint=a&status=failed");
    let page = get(&search, &[]).await.1;
    let ticked: Vec<String> = delivery_ids(&page).iter().take(2).map(i64::to_string).collect();
    let back = "/deliveries?endpoint=a&status=failed";
    let form = [("csrf", csrf_of(&page)), ("back", back.into()), ("id", ticked[0].clone()), ("id", ticked[1].clone())];
    let form: Vec<Pair> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let done = post(&format!("{base}/actions/redeliver"), &form, &[]).await;
    assert_eq!(done.status(), 303);
    assert_eq!(done.headers()["location"], format!("{back}&notice=redelivered&n=2&of=2"));
    let still_failed = db
        .count(&format!(
            "SELECT count(*) FROM tailhook.deliveries WHERE id IN ({}) AND status = 'failed'",
            ticked.join(",")
        ))
        .await;
    assert_eq!(still_failed, 0, "both put back to be sent");
    let (_, page) = get(&format!("{base}{back}&notice=redelivered&n=2&of=2"), &[]).await;
    assert!(page.contains("Redelivered 2 deliveries."), "{page}");
    let unknown = [("csrf", form[0].1), ("id", "999999999")];
    assert_eq!(post(&format!("{base}/actions/redeliver"), &unknown, &[]).await.status(), 404);
    sidecar.stop().await;

    // Every console query, as a generic plan (what a cached prepared
    // statement runs), reads no table whole. The recent events' outbox
    // period (or two, near midnight) gets the bulk's size first: a partition
    // of 140 rows is rightly read whole, one of 45,000 must not be.
    client
        .batch_execute(
            "INSERT INTO tailhook.outbox (event_type, payload, created_at, dispatched_at)
             SELECT 'bulk.done', '{}', now() - make_interval(secs => i % 8400), now() FROM generate_series(1, 45000) i;
             ANALYZE tailhook.outbox;",
        )
        .await
        .unwrap();
    let queries: [(&str, &str, String); 10] = [
        (
            "search",
            include_str!("../../sql/queries/console_search.sql"),
            "('a', 'x', 't', 'failed', NULL, NULL, 40000, 20000, 50, 't')".to_owned(),
        ),
        (
            "search_event",
            include_str!("../../sql/queries/console_search_event.sql"),
            format!("('{event}', NULL, NULL, NULL, NULL, NULL, NULL, 't')"),
        ),
        ("bounds", include_str!("../../sql/queries/console_bounds.sql"), String::new()),
        ("minutes", include_str!("../../sql/queries/console_minutes.sql"), format!("(ARRAY[{a}, {b}, {bulk}])")),
        ("failed_day", include_str!("../../sql/queries/console_failed_day.sql"), format!("(ARRAY[{a}, {b}, {bulk}])")),
        ("latency", include_str!("../../sql/queries/console_latency.sql"), format!("(ARRAY[{a}, {b}, {bulk}])")),
        ("delivery", include_str!("../../sql/queries/console_delivery.sql"), format!("({}, 65536, 1048576)", t1[0])),
        ("attempts", include_str!("../../sql/queries/console_attempts.sql"), format!("({}, 200)", t1[0])),
        ("status", include_str!("../../sql/queries/endpoint_status.sql"), "('1 hour', '', 51, NULL)".to_owned()),
        (
            "unseen",
            include_str!("../../sql/queries/api_deliveries_unseen.sql"),
            format!("(ARRAY[{}, {}], 't')", t1[0], t1[1]),
        ),
    ];
    client.batch_execute("SET plan_cache_mode = force_generic_plan").await.unwrap();
    for (name, sql, args) in queries {
        client.batch_execute(&format!("PREPARE console_{name} AS {sql}")).await.unwrap();
        let plan: String = client
            .query(&format!("EXPLAIN EXECUTE console_{name}{args}"), &[])
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"))
            .iter()
            .map(|r| r.get::<_, String>(0))
            .collect::<Vec<_>>()
            .join("\n");
        for table in ["outbox", "deliveries", "attempts"] {
            let whole = read_whole(&client, &plan, table).await;
            assert!(whole.is_empty(), "{name} reads all of {whole:?}:\n{plan}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_endpoints_are_paged_by_name() {
    let db = TestDb::new().await;
    let client = db.migrate().await;
    client
        .batch_execute(
            "INSERT INTO tailhook.endpoints (name, url)
             SELECT 'ep-' || lpad(i::text, 3, '0'), 'http://127.0.0.1:9/' || i FROM generate_series(1, 55) i",
        )
        .await
        .unwrap();
    let (sidecar, base) = console::start(db.config()).await;
    let names = |page: &str| -> Vec<String> {
        page.split("href=\"/deliveries?endpoint=")
            .skip(1)
            .map(|rest| rest[..rest.find('"').unwrap()].to_owned())
            .collect()
    };
    let (status, first) = get(&format!("{base}/"), &[]).await;
    assert_eq!(status, 200);
    let expected: Vec<String> = (1..=50).map(|i| format!("ep-{i:03}")).collect();
    assert_eq!(names(&first), expected);
    assert!(first.contains("href=\"/?after=ep-050\""), "{first}");
    let (_, second) = get(&format!("{base}/?after=ep-050"), &[]).await;
    let expected: Vec<String> = (51..=55).map(|i| format!("ep-{i:03}")).collect();
    assert_eq!(names(&second), expected);
    assert!(!second.contains("Next endpoints"), "the last page links nowhere");
    sidecar.stop().await;
}

/// GET with a client bound to `local` (another loopback address is another peer).
async fn get_from(local: &str, url: &str, headers: &[Pair<'_>]) -> reqwest::Response {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .local_address(local.parse::<std::net::IpAddr>().unwrap())
        .build()
        .unwrap();
    let mut request = client.get(url);
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    request.send().await.unwrap()
}

/// POST a form from the loopback address `local`.
async fn post_from(local: &str, url: &str, form: &[Pair<'_>], headers: &[Pair<'_>]) -> reqwest::Response {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .local_address(local.parse::<std::net::IpAddr>().unwrap())
        .build()
        .unwrap();
    let body: String = url::form_urlencoded::Serializer::new(String::new()).extend_pairs(form).finish();
    let mut request = client.post(url).header("content-type", "application/x-www-form-urlencoded").body(body);
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    request.send().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_and_readyz_refuse_a_host_that_is_not_an_address_loopback_or_allowed() {
    let db = TestDb::new().await;
    let client = db.migrate().await;
    add_endpoint(&client, "tenant-secret-name", "http://127.0.0.1:9/a", &[SECRET]).await;
    let mut config = db.config();
    config.server.allowed_hosts = vec!["metrics.example".into()];
    let (sidecar, base) = console::start(config).await;
    let port = base.rsplit(':').next().unwrap().to_owned();
    // DNS rebinding: a page on evil.example whose name now resolves to this machine.
    for host in ["evil.example", "evil.example:80", &format!("evil.example:{port}"), "localhost.evil.example", ""] {
        for path in ["/metrics", "/readyz"] {
            let (status, body) = get(&format!("{base}{path}"), &[("host", host)]).await;
            assert_eq!(status, 403, "{path} Host {host:?}: {body}");
            assert!(!body.contains("tailhook_") && !body.contains("database"), "{path}: {body}");
            assert!(body.contains("server.allowed_hosts"), "says how to allow it: {body}");
        }
        assert_eq!(get(&format!("{base}/healthz"), &[("host", host)]).await, (200, "ok\n".to_owned()));
    }
    // This machine's names, any address (a rebinding page never sends one: its
    // Host is its own name), and the names allowed in the configuration.
    for host in [
        format!("127.0.0.1:{port}"),
        format!("localhost:{port}"),
        "[::1]:10025".to_owned(),
        "10.1.2.3:10025".to_owned(),
        "[2001:db8::7]:10025".to_owned(),
        "metrics.example".to_owned(),
        format!("METRICS.example:{port}"),
    ] {
        let (status, body) = get(&format!("{base}/metrics"), &[("host", &host)]).await;
        assert_eq!(status, 200, "Host {host}: {body}");
        assert!(body.contains("tailhook_endpoints"), "{body}");
        let (status, body) = get(&format!("{base}/readyz"), &[("host", &host)]).await;
        assert_eq!(status, 200, "Host {host}: {body}");
    }
    sidecar.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_pages_refuse_cross_site_fetches_and_run_a_transform_only_for_the_console_itself() {
    let db = TestDb::new().await;
    let (sidecar, base, delivery, _receiver) = console::transformed_delivery(&db).await;
    let page = format!("{base}/deliveries/{delivery}");
    let marker = "ran-the-transform-7";

    // Fetches another site starts (script, image, frame): refused, nothing run.
    let fetch = |site: &'static str, mode: &'static str, dest: &'static str| {
        vec![("sec-fetch-site", site), ("sec-fetch-mode", mode), ("sec-fetch-dest", dest)]
    };
    for headers in [
        fetch("cross-site", "no-cors", "empty"),
        fetch("cross-site", "cors", "empty"),
        fetch("cross-site", "no-cors", "image"),
        fetch("cross-site", "navigate", "iframe"),
        fetch("same-site", "no-cors", "empty"),
        fetch("same-site", "navigate", "iframe"),
    ] {
        for url in [page.clone(), format!("{base}/"), format!("{base}/deliveries")] {
            let (status, body) = get(&url, &headers).await;
            assert_eq!(status, 403, "{url} {headers:?}: {body}");
            assert!(!body.contains(marker) && !body.contains("shaped"), "{url} {headers:?}: {body}");
        }
    }
    // A link on another site (a top-level navigation) opens the page, but
    // runs no transform: the page offers a link that does.
    for site in ["cross-site", "same-site"] {
        let (status, body) = get(&page, &fetch(site, "navigate", "document")).await;
        assert_eq!(status, 200, "{site}: {body}");
        assert!(!body.contains(marker), "{site}: the transform ran: {body}");
        assert!(body.contains(&format!("href=\"/deliveries/{delivery}\"")), "{site}: {body}");
    }
    // The console's own pages, a typed address or bookmark, and clients that
    // are not browsers: the transformed body is shown.
    for headers in [
        fetch("same-origin", "navigate", "document"),
        fetch("none", "navigate", "document"),
        fetch("same-origin", "cors", "empty"),
        vec![],
    ] {
        let (status, body) = get(&page, &headers).await;
        assert_eq!((status, body.contains(marker)), (200, true), "{headers:?}: {body}");
    }
    sidecar.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_is_throttled_per_peer_and_the_cookie_is_a_derived_session_not_the_token() {
    let db = TestDb::new().await;
    db.migrate().await;
    let token = "console-throttle-token-8c41d2e09a";
    let port = free_port();
    let (listen, base) = (format!("127.0.0.1:{port}"), format!("http://127.0.0.1:{port}"));
    let sidecar = Binary::run(
        "",
        &[
            ("TAILHOOK_DATABASE__URL", db.url.as_str()),
            ("TAILHOOK_SERVER__LISTEN", &listen),
            ("TAILHOOK_SERVER__ADMIN_TOKEN_ENV", "CONSOLE_THROTTLE_TOKEN"),
            ("CONSOLE_THROTTLE_TOKEN", token),
        ],
    );
    console::wait_until_up(&base).await;
    let login = format!("{base}/login");
    let foreign = ("host", "console.example");

    // The cookie: not the token (nor any encoding of it), HttpOnly,
    // SameSite=Strict, Secure when the console is served over TLS (as a
    // browser's Origin or a proxy's X-Forwarded-Proto says), and it lets in.
    let plain = post_from("127.0.0.2", &login, &[("token", token)], &[foreign]).await;
    assert_eq!(plain.status(), 303);
    let cookie = plain.headers()["set-cookie"].to_str().unwrap().to_owned();
    let encoded: String = url::form_urlencoded::byte_serialize(token.as_bytes()).collect();
    assert!(!cookie.contains(token) && !cookie.contains(&encoded) && !cookie.contains("8c41d2e09a"), "{cookie}");
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"), "{cookie}");
    assert!(!cookie.contains("Secure"), "plain HTTP: a Secure cookie would be dropped: {cookie}");
    let pair = cookie.split(';').next().unwrap().to_owned();
    let page = get_from("127.0.0.2", &format!("{base}/"), &[foreign, ("cookie", &pair)]).await;
    assert_eq!(page.status(), 200, "the session cookie lets in");
    let forged = pair.clone() + "0";
    let page = get_from("127.0.0.2", &format!("{base}/"), &[foreign, ("cookie", &forged)]).await;
    assert_eq!(page.status(), 401, "an altered session is refused");
    let cookie_name = pair.split('=').next().unwrap();
    for raw in
        [format!("tailhook_admin={encoded}"), format!("{cookie_name}={encoded}"), format!("{cookie_name}={token}")]
    {
        let page = get_from("127.0.0.2", &format!("{base}/"), &[foreign, ("cookie", &raw)]).await;
        assert_eq!(page.status(), 401, "the raw token is not a session: {raw}");
    }
    for tls in [[("origin", "https://console.example")], [("x-forwarded-proto", "https")]] {
        let signed_in = post_from("127.0.0.2", &login, &[("token", token)], &[&[foreign][..], &tls[..]].concat()).await;
        assert_eq!(signed_in.status(), 303, "{tls:?}");
        let cookie = signed_in.headers()["set-cookie"].to_str().unwrap().to_owned();
        assert!(cookie.contains("; Secure"), "{tls:?}: {cookie}");
    }

    // Wrong tokens from one peer: a few are answered 401, then 429 with
    // Retry-After, even for the right token; another peer is not affected.
    let mut statuses = Vec::new();
    let mut retry_after = None;
    for _ in 0..30 {
        let response = post_from("127.0.0.1", &login, &[("token", "wrong-token-guess-0000")], &[foreign]).await;
        statuses.push(response.status().as_u16());
        if response.status() == 429 {
            retry_after = response.headers().get("retry-after").map(|v| v.to_str().unwrap().parse::<u64>().unwrap());
        }
    }
    let allowed = statuses.iter().take_while(|s| **s == 401).count();
    assert!((3..=10).contains(&allowed), "{statuses:?}");
    assert!(statuses[allowed..].iter().all(|s| *s == 429), "{statuses:?}");
    assert!(retry_after.is_some_and(|s| (1..=600).contains(&s)), "{retry_after:?}");
    let right = post_from("127.0.0.1", &login, &[("token", token)], &[foreign]).await;
    assert_eq!(right.status(), 429, "while throttled, no guess is checked");
    let other = post_from("127.0.0.2", &login, &[("token", token)], &[foreign]).await;
    assert_eq!(other.status(), 303, "another peer signs in");

    let (_, log) = sidecar.stop();
    let throttled = log.lines().filter(|l| l.contains("console sign-in throttled")).count();
    assert_eq!(throttled, 1, "logged once, not per attempt:\n{log}");
    assert!(log.lines().any(|l| l.contains("console sign-in throttled") && l.contains("peer=127.0.0.1")), "{log}");
    assert!(!log.contains(token), "{log}");
}
