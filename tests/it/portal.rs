//! The tenant portal: a signed link opens the console for one tenant; every page and action stays within it, expired, altered and read-only links are refused, the SQL function and the CLI make links that work, and a tenant uses it in headless Chromium inside the host application's frame.

use crate::support::browser::{save_screenshot, Driver};
use crate::support::console::{self, client, csrf_of, get, post};
use crate::support::proxy::{server_addr, Proxy};
use crate::support::role::Role;
use crate::support::*;
use fantoccini::Locator;
use std::path::Path;
use std::time::{Duration, SystemTime};
use tailhook::manage::portal::{mint, LinkKey};
use tailhook::secret::Secret;

/// The portal key every test configures (through this variable).
const KEY_VAR: &str = "PORTAL_IT_KEY";
const KEY: &str = "portal-it-key-0123456789abcdefghijklmnop";

fn key() -> LinkKey {
    LinkKey::derive(&Secret::new(KEY))
}

/// The path of a link for `tenant` made now.
fn link(tenant: &str, ttl: Duration, read_only: bool) -> String {
    format!("/portal/{}", mint(&key(), tenant, ttl, read_only, SystemTime::now()).unwrap())
}

/// Two tenants' endpoints and one for every tenant, each tenant's event
/// delivered: `acme-orders` succeeded, `acme-down` failed (its receiver
/// answers 500 to an event's first request only), `globex-orders` succeeded,
/// `everyone` (no tenant) got both events.
struct World {
    db: TestDb,
    receiver: Receiver,
    sidecar: Sidecar,
    base: String,
    acme_event: String,
    globex_event: String,
}

impl World {
    async fn new(frame_ancestors: &[&str]) -> Self {
        Self::start(frame_ancestors, None).await
    }

    /// With the sidecar reaching PostgreSQL through `via`, when given.
    async fn start(frame_ancestors: &[&str], via: Option<&Proxy>) -> Self {
        std::env::set_var(KEY_VAR, KEY);
        let db = TestDb::new().await;
        let client = db.migrate().await;
        let receiver = Receiver::start(|path, seen| match path {
            "/down" if seen == 0 => Reply::status(500).body("down for now"),
            _ => Reply::ok(),
        })
        .await;
        for (name, path) in
            [("acme-orders", "/acme"), ("acme-down", "/down"), ("globex-orders", "/globex"), ("everyone", "/all")]
        {
            add_endpoint(&client, name, &receiver.url(path), &[SECRET]).await;
        }
        client
            .batch_execute(
                "UPDATE tailhook.endpoints SET tenant = 'acme' WHERE name LIKE 'acme-%';
                 UPDATE tailhook.endpoints SET tenant = 'globex' WHERE name = 'globex-orders';
                 UPDATE tailhook.endpoints SET max_attempts = 1 WHERE name = 'acme-down';",
            )
            .await
            .unwrap();
        let publish = |tenant: &'static str| {
            let client = &client;
            async move {
                client
                    .query_one("SELECT tailhook.publish('order.paid', '{\"n\": 1}', $1)::text", &[&tenant])
                    .await
                    .unwrap()
                    .get::<_, String>(0)
            }
        };
        let (acme_event, globex_event) = (publish("acme").await, publish("globex").await);
        let mut config = db.config();
        config.server.portal_key_env = KEY_VAR.into();
        config.server.portal_frame_ancestors = frame_ancestors.iter().map(|s| (*s).to_owned()).collect();
        config.delivery.backoff_initial_ms = 100;
        if let Some(proxy) = via {
            config.database.url = tailhook::secret::DatabaseUrl::new(format!(
                "postgres://postgres@127.0.0.1:{}/{}?sslmode=disable",
                proxy.addr.port(),
                db.name()
            ));
        }
        let (sidecar, base) = console::start(config).await;
        wait_settled(&db, 5, Duration::from_secs(15)).await;
        Self { db, receiver, sidecar, base, acme_event, globex_event }
    }

    /// The delivery of `tenant`'s event to `endpoint`.
    async fn delivery(&self, endpoint: &str, tenant: &str) -> i64 {
        self.db
            .client()
            .await
            .query_one(
                "SELECT d.id FROM tailhook.deliveries d JOIN tailhook.endpoints e ON e.id = d.endpoint_id
                   JOIN tailhook.outbox o ON o.id = d.outbox_id WHERE e.name = $1 AND o.tenant = $2",
                &[&endpoint, &tenant],
            )
            .await
            .unwrap()
            .get(0)
    }

    /// Everything an action could change, to compare before and after.
    async fn snapshot(&self) -> String {
        self.db
            .client()
            .await
            .query_one(
                "SELECT concat((SELECT string_agg(concat_ws(',', name, enabled, paused_until, tenant), ';' ORDER BY name)
                                  FROM tailhook.endpoints), '|',
                               (SELECT string_agg(concat_ws(',', id, status, attempts, next_attempt_at), ';' ORDER BY id)
                                  FROM tailhook.deliveries))",
                &[],
            )
            .await
            .unwrap()
            .get(0)
    }
}

/// Delivery ids linked from a page.
fn delivery_ids(html: &str) -> Vec<i64> {
    let mut ids: Vec<i64> = html
        .split("/deliveries/")
        .skip(1)
        .filter_map(|rest| rest[..rest.find('"').unwrap_or(0)].parse().ok())
        .collect();
    ids.sort_unstable();
    ids.dedup();
    ids
}

/// (succeeded, failed) summed over the page's per-minute charts.
fn chart_totals(html: &str) -> (i64, i64) {
    html.split("last hour: ").skip(1).fold((0, 0), |(s, f), rest| {
        let mut words = rest.split([' ', ',']).filter(|w| !w.is_empty());
        let ok: i64 = words.next().and_then(|w| w.parse().ok()).unwrap_or(0);
        let _ = words.next();
        let bad: i64 = words.next().and_then(|w| w.parse().ok()).unwrap_or(0);
        (s + ok, f + bad)
    })
}

/// Headers a browser sends with a form posted from the portal's own page.
fn same_origin(base: &str) -> [(&'static str, &str); 2] {
    [("sec-fetch-site", "same-origin"), ("origin", base)]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_portal_link_reaches_only_its_tenants_endpoints_events_and_deliveries() {
    let w = World::new(&[]).await;
    let base = &w.base;
    let acme = format!("{base}{}", link("acme", Duration::from_secs(600), false));
    let (acme_ok, acme_down) = (w.delivery("acme-orders", "acme").await, w.delivery("acme-down", "acme").await);
    let (globex_d, everyone_acme, everyone_globex) = (
        w.delivery("globex-orders", "globex").await,
        w.delivery("everyone", "acme").await,
        w.delivery("everyone", "globex").await,
    );

    // The overview: its endpoints only; the chart counts only their deliveries.
    let (status, page) = get(&format!("{acme}/"), &[]).await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("acme-orders") && page.contains("acme-down"), "{page}");
    for foreign in ["globex", "everyone", "/login", "Sign in"] {
        assert!(!page.contains(foreign), "{foreign} on the portal's overview: {page}");
    }
    assert_eq!(chart_totals(&page), (1, 1), "acme's one success and one failure: {page}");
    let (_, operator) = get(&format!("{base}/"), &[]).await;
    assert_eq!(chart_totals(&operator), (4, 1), "the operator's overview counts every endpoint's");
    // Every link and form of the page stays under the link.
    assert!(
        !page.contains("href=\"/\"") && !page.contains("href=\"/deliveries") && !page.contains("action=\"/actions")
    );

    // The search: its deliveries only, whatever the filters say.
    let search = |query: String| {
        let url = format!("{acme}/deliveries{query}");
        async move {
            let (status, page) = get(&url, &[]).await;
            assert_eq!(status, 200, "{url}: {page}");
            assert!(!page.contains("name=\"tenant\""), "no tenant filter in the portal: {page}");
            delivery_ids(&page)
        }
    };
    assert_eq!(search(String::new()).await, vec![acme_ok, acme_down]);
    assert_eq!(search(format!("?event_id={}", w.acme_event)).await, vec![acme_ok, acme_down]);
    for escape in [
        format!("?event_id={}", w.globex_event),
        "?endpoint=globex-orders".to_owned(),
        "?endpoint=everyone".to_owned(),
        format!("?tenant=globex&event_id={}", w.globex_event),
        format!("?below={}", globex_d + 1),
    ] {
        let found = search(escape.clone()).await;
        assert!(found.iter().all(|id| [acme_ok, acme_down].contains(id)), "{escape}: {found:?}");
    }
    assert_eq!(search("?tenant=globex".into()).await, vec![acme_ok, acme_down], "the scope overrides a tenant filter");

    // Delivery pages: another tenant's, or its events' deliveries to an endpoint not its own, are 404.
    for id in [globex_d, everyone_acme, everyone_globex, 999_999] {
        let (status, page) = get(&format!("{acme}/deliveries/{id}"), &[]).await;
        assert_eq!(status, 404, "delivery {id}: {page}");
        assert!(!page.contains("globex") && !page.contains("everyone"), "{page}");
    }
    let (status, own) = get(&format!("{acme}/deliveries/{acme_down}"), &[]).await;
    assert_eq!(status, 200, "{own}");
    assert!(own.contains("acme-down") && own.contains(&format!("action=\"{}", acme.strip_prefix(base).unwrap())));

    // Actions on what is not its own: 404, nothing changed, nothing sent.
    let csrf = csrf_of(&page);
    let headers = same_origin(base);
    let before = (w.snapshot().await, w.receiver.count());
    let attempts: [(&str, Vec<(&str, String)>); 6] = [
        ("redeliver", vec![("id", globex_d.to_string())]),
        ("redeliver", vec![("id", acme_down.to_string()), ("id", everyone_globex.to_string())]),
        ("pause", vec![("endpoint", "globex-orders".into()), ("minutes", "15".into())]),
        ("enable", vec![("endpoint", "everyone".into())]),
        ("test", vec![("endpoint", "globex-orders".into())]),
        ("test", vec![("endpoint", "everyone".into())]),
    ];
    for (action, fields) in &attempts {
        let mut form: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
        form.push(("csrf", &csrf));
        let response = post(&format!("{acme}/actions/{action}"), &form, &headers).await;
        assert_eq!(response.status(), 404, "{action} {fields:?}");
    }
    // The endpoint pages: another tenant's endpoint, or one without a tenant, does not exist.
    for name in ["globex-orders", "everyone"] {
        for page in ["", "/edit", "/delete"] {
            let (status, shown) = get(&format!("{acme}/endpoints/{name}{page}"), &[]).await;
            assert_eq!(status, 404, "{name}{page}: {shown}");
        }
        for (action, extra) in [
            ("pause", ("minutes", "15")),
            ("resume", ("", "")),
            ("enable", ("", "")),
            ("rotate", ("overlap_hours", "1")),
            ("test", ("", "")),
            ("delete", ("confirm", name)),
            ("edit", ("url", "http://127.0.0.1:9/stolen")),
        ] {
            let form = [("csrf", csrf.as_str()), extra];
            let response = post(&format!("{acme}/endpoints/{name}/{action}"), &form, &headers).await;
            assert_eq!(response.status(), 404, "{name} {action}");
        }
    }
    // Creating one with another tenant's name in the form makes it this tenant's.
    let create =
        [("csrf", csrf.as_str()), ("name", "acme-made"), ("url", "http://127.0.0.1:9/made"), ("tenant", "globex")];
    let response = post(&format!("{acme}/endpoints/new"), &create, &headers).await;
    assert_eq!(response.status(), 201, "{}", response.text().await.unwrap());
    assert_eq!(
        w.db.count("SELECT count(*) FROM tailhook.endpoints WHERE name = 'acme-made' AND tenant = 'acme'").await,
        1
    );
    w.db.client().await.execute("DELETE FROM tailhook.endpoints WHERE name = 'acme-made'", &[]).await.unwrap();
    assert_eq!((w.snapshot().await, w.receiver.count()), before, "a refused action changed something");

    // The operator's CSRF token is not the portal's, and the other way round.
    let operator_csrf = csrf_of(&operator);
    assert_ne!(operator_csrf, csrf);
    assert!(!page.contains(&operator_csrf), "the operator's CSRF token on a tenant's page");
    let wrong = [("endpoint", "acme-orders"), ("minutes", "15"), ("csrf", operator_csrf.as_str())];
    assert_eq!(post(&format!("{acme}/actions/pause"), &wrong, &headers).await.status(), 403);
    let wrong = [("endpoint", "acme-orders"), ("minutes", "15"), ("csrf", csrf.as_str())];
    assert_eq!(post(&format!("{base}/actions/pause"), &wrong, &headers).await.status(), 403);
    assert_eq!(w.snapshot().await, before.0);
    // No sign-in and nothing else of the operator's under the portal.
    for path in ["/login", "/api/v1/status", "/metrics"] {
        let (status, _) = get(&format!("{acme}{path}"), &[]).await;
        assert_eq!(status, 404, "{path}");
    }

    // Its own: pause, test, redeliver; redirects stay under the link.
    let pause = [("endpoint", "acme-orders"), ("minutes", "15"), ("csrf", csrf.as_str())];
    let response = post(&format!("{acme}/actions/pause"), &pause, &headers).await;
    assert_eq!(response.status(), 303);
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    assert!(acme.ends_with(location.split("/?").next().unwrap()), "{location}");
    assert_eq!(w.db.count("SELECT count(*) FROM tailhook.endpoints WHERE paused_until > now()").await, 1);
    let test = [("endpoint", "acme-orders"), ("csrf", csrf.as_str())];
    let response = post(&format!("{acme}/actions/test"), &test, &headers).await;
    assert_eq!(response.status(), 200);
    let shown = response.text().await.unwrap();
    assert!(shown.contains("HTTP 200"), "{shown}");
    assert!(w.receiver.received().iter().any(|r| r.path == "/acme" && r.json()["type"] == "tailhook.test"));
    let redeliver =
        [("id", acme_down.to_string()), ("csrf", csrf.clone()), ("back", format!("/deliveries/{acme_down}"))];
    let form: Vec<(&str, &str)> = redeliver.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let response = post(&format!("{acme}/actions/redeliver"), &form, &headers).await;
    assert_eq!(response.status(), 303);
    let location = response.headers()["location"].to_str().unwrap();
    assert!(
        location.starts_with(&format!("{}/deliveries/{acme_down}?", acme.strip_prefix(base).unwrap())),
        "{location}"
    );
    wait_for("the redelivery succeeds", Duration::from_secs(15), || async {
        w.db.count(&format!("SELECT count(*) FROM tailhook.deliveries WHERE id = {acme_down} AND status = 'succeeded'"))
            .await
            == 1
    })
    .await;
    let (_, shown) = get(&format!("{acme}/deliveries/{acme_down}"), &[]).await;
    assert!(shown.contains("redelivery by console, tenant acme (portal link)"), "its own request as recorded: {shown}");

    // The operator's redelivery: the tenant sees that the operator asked, not from where.
    let operator_form = [("id", acme_ok.to_string()), ("csrf", operator_csrf.clone())];
    let form: Vec<(&str, &str)> = operator_form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    assert_eq!(post(&format!("{base}/actions/redeliver"), &form, &headers).await.status(), 303);
    // (acme-orders is paused: the redelivery waits; the delivery records who asked.)
    let by = format!(
        "SELECT count(*) FROM tailhook.deliveries WHERE id = {acme_ok} AND redelivered_by LIKE 'console (loopback)%'"
    );
    assert_eq!(w.db.count(&by).await, 1);
    let (_, shown) = get(&format!("{acme}/deliveries/{acme_ok}"), &[]).await;
    assert!(shown.contains("by the operator") && !shown.contains("console (loopback)"), "{shown}");
    let (_, operator_view) = get(&format!("{base}/deliveries/{acme_ok}"), &[]).await;
    assert!(operator_view.contains("console (loopback)"), "the operator sees who: {operator_view}");
    w.sidecar.stop().await;
}

/// The ids a page's "Older deliveries" (or any other) link starts below.
fn below_ids(html: &str) -> Vec<i64> {
    html.split("below=")
        .skip(1)
        .filter_map(|rest| rest[..rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len())].parse().ok())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_portal_search_pages_over_its_own_rows_only_and_a_redelivery_with_a_foreign_id_changes_nothing() {
    let proxy = Proxy::start(server_addr()).await;
    let w = World::start(&[], Some(&proxy)).await;
    let base = &w.base;
    let acme = format!("{base}{}", link("acme", Duration::from_secs(600), false));
    // 60 more acme events, each delivered to `everyone` (failed, not acme's)
    // and then to `acme-orders` (succeeded): more hidden rows than a page holds.
    w.db.client()
        .await
        .batch_execute(
            "WITH ev AS (INSERT INTO tailhook.outbox (event_type, payload, tenant, dispatched_at)
                         SELECT 'audit.entry', '{}', 'acme', now() FROM generate_series(1, 60) RETURNING id)
             INSERT INTO tailhook.deliveries (outbox_id, endpoint_id, status, attempts, next_attempt_at, completed_at)
             SELECT ev.id, e.id, CASE e.name WHEN 'everyone' THEN 'failed' ELSE 'succeeded' END, 1, NULL, now()
               FROM ev CROSS JOIN tailhook.endpoints e
              WHERE e.name IN ('everyone', 'acme-orders')
              ORDER BY ev.id, e.name DESC",
        )
        .await
        .unwrap();
    let ids = |endpoint: &str| {
        let sql = format!(
            "SELECT coalesce(array_agg(d.id ORDER BY d.id), '{{}}') FROM tailhook.deliveries d
               JOIN tailhook.endpoints e ON e.id = d.endpoint_id WHERE e.name = '{endpoint}'"
        );
        let db = &w.db;
        async move { db.client().await.query_one(&sql, &[]).await.unwrap().get::<_, Vec<i64>>(0) }
    };
    let mut own = ids("acme-orders").await;
    own.extend(ids("acme-down").await);
    own.sort_unstable();
    let (hidden, globex) = (ids("everyone").await, ids("globex-orders").await);
    assert_eq!((own.len(), hidden.len()), (62, 62));

    // A search only hidden rows match: nothing shown, and no link below any id.
    let (status, page) = get(&format!("{acme}/deliveries?endpoint=everyone&status=failed"), &[]).await;
    assert_eq!(status, 200, "{page}");
    assert!(delivery_ids(&page).is_empty(), "{page}");
    assert_eq!(below_ids(&page), Vec::<i64>::new(), "a link past hidden deliveries: {page}");

    // Paging through all of it (pages of 50): only its own ids, each once,
    // every page's link below one of its own.
    let (mut seen, mut below, mut pages) = (Vec::new(), None::<i64>, 0);
    loop {
        let query = below.map(|b| format!("?below={b}")).unwrap_or_default();
        let (status, page) = get(&format!("{acme}/deliveries{query}"), &[]).await;
        assert_eq!(status, 200, "{page}");
        pages += 1;
        let found = delivery_ids(&page);
        assert!(found.iter().all(|id| own.contains(id)), "page {pages}: {found:?}");
        seen.extend(found);
        let next: Vec<i64> = below_ids(&page).into_iter().filter(|id| Some(*id) != below).collect();
        assert!(next.iter().all(|id| own.contains(id)), "page {pages} links below a foreign id: {next:?}");
        match next.first() {
            Some(next) if pages < 10 => below = Some(*next),
            _ => break,
        }
    }
    seen.sort_unstable();
    assert_eq!(seen, own, "every own delivery, once, in {pages} pages");

    // Redeliver: its own ids and one not, first, amid or last of 1,000
    // (the most a form may tick): 404, nothing changed, and the scope is
    // checked in a few statements, not one per id (reads the sidecar sent
    // PostgreSQL during the request, its background work included).
    let csrf = csrf_of(&page_of(&acme).await);
    let headers = same_origin(base);
    let before = w.snapshot().await;
    for foreign in [hidden[0], globex[0], 999_999] {
        for at in [0, 500, 999] {
            let mut form: Vec<(&str, String)> = own.iter().cycle().take(999).map(|id| ("id", id.to_string())).collect();
            form.insert(at, ("id", foreign.to_string()));
            form.push(("csrf", csrf.clone()));
            let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let sent = proxy.sent();
            let response = post(&format!("{acme}/actions/redeliver"), &form, &headers).await;
            let sent = proxy.sent() - sent;
            assert_eq!(response.status(), 404, "with {foreign} at {at}");
            assert!(sent < 100, "with {foreign} at {at}: {sent} reads sent to PostgreSQL");
            assert_eq!(w.snapshot().await, before, "with {foreign} at {at}");
        }
    }
    let mut form: Vec<(&str, String)> = own.iter().map(|id| ("id", id.to_string())).collect();
    form.push(("csrf", csrf.clone()));
    let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let response = post(&format!("{acme}/actions/redeliver"), &form, &headers).await;
    assert_eq!(response.status(), 303);
    let location = response.headers()["location"].to_str().unwrap();
    assert!(location.ends_with("notice=redelivered&n=62&of=62"), "{location}");
    let list = own.iter().map(i64::to_string).collect::<Vec<_>>().join(",");
    assert_eq!(
        w.db.count(&format!(
            "SELECT count(*) FROM tailhook.deliveries WHERE id IN ({list}) AND redelivered_by IS NOT NULL"
        ))
        .await,
        62
    );
    assert_eq!(
        w.db.count(
            "SELECT count(*) FROM tailhook.deliveries d JOIN tailhook.endpoints e ON e.id = d.endpoint_id
                     WHERE e.name IN ('everyone', 'globex-orders') AND d.redelivered_by IS NOT NULL"
        )
        .await,
        0
    );
    w.sidecar.stop().await;
}

/// The portal's overview page.
async fn page_of(link: &str) -> String {
    get(&format!("{link}/"), &[]).await.1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_altered_and_read_only_links_are_refused() {
    let w = World::new(&["https://app.example"]).await;
    let base = &w.base;
    let acme_down = w.delivery("acme-down", "acme").await;
    let pages = ["/".to_owned(), "/deliveries".to_owned(), format!("/deliveries/{acme_down}")];

    // Expired: made two hours ago for one hour.
    let old =
        mint(&key(), "acme", Duration::from_secs(3600), false, SystemTime::now() - Duration::from_secs(7200)).unwrap();
    // Altered: the tenant, the expiry, the flag; or signed with another key.
    let read_only = mint(&key(), "acme", Duration::from_secs(600), true, SystemTime::now()).unwrap();
    let parts: Vec<&str> = read_only.split('.').collect();
    let with = |i: usize, v: &str| {
        let mut p = parts.clone();
        p[i] = v;
        p.join(".")
    };
    let globex_hex: String = b"globex".iter().map(|b| format!("{b:02x}")).collect();
    let later = (parts[2].parse::<u64>().unwrap() + 86_400).to_string();
    let other_key = LinkKey::derive(&Secret::new("another-portal-key-0123456789abcdefghij"));
    let forged = mint(&other_key, "acme", Duration::from_secs(600), false, SystemTime::now()).unwrap();
    let before = (w.snapshot().await, w.receiver.count());
    for (why, token) in [
        ("expired", old.clone()),
        ("tenant changed", with(1, &globex_hex)),
        ("expiry changed", with(2, &later)),
        ("flag changed", with(3, "w")),
        ("another key", forged),
        ("not a link", "acme".to_owned()),
    ] {
        for path in &pages {
            let (status, page) = get(&format!("{base}/portal/{token}{path}"), &[]).await;
            assert_eq!(status, 403, "{why} {path}: {page}");
            assert!(!page.contains("acme-orders") && !page.contains("globex-orders"), "{why}: {page}");
            assert!(!page.contains("href="), "a refused link leads nowhere (not to the operator's pages): {page}");
            if why == "expired" {
                assert!(page.contains("expired"), "{page}");
            }
        }
        let response = post(
            &format!("{base}/portal/{token}/actions/test"),
            &[("endpoint", "acme-orders"), ("csrf", "x")],
            &same_origin(base),
        )
        .await;
        assert_eq!(response.status(), 403, "{why}");
    }

    // Read-only: every page, no action form, every action refused.
    let ro = format!("{base}/portal/{read_only}");
    let mut csrf = None;
    for path in &pages {
        let (status, page) = get(&format!("{ro}{path}"), &[]).await;
        assert_eq!(status, 200, "{path}: {page}");
        assert!(page.contains("acme-"), "{page}");
        assert!(
            !page.contains("Redeliver") && !page.contains("Send test") && !page.contains("Pause"),
            "{path}: {page}"
        );
        if page.contains("name=\"csrf\"") {
            csrf = Some(csrf_of(&page));
        }
    }
    let csrf = csrf.unwrap_or_default();
    let (status, page) = get(&format!("{ro}/endpoints/acme-orders"), &[]).await;
    assert_eq!(status, 200, "{page}");
    assert!(!page.contains("Send test") && !page.contains("Edit") && !page.contains("Delete"), "{page}");
    let (status, _) = get(&format!("{ro}/endpoints/new"), &[]).await;
    assert_eq!(status, 403, "no new endpoint form for a read-only link");
    for action in ["pause", "resume", "enable", "rotate", "test", "delete", "edit"] {
        let form = [("csrf", csrf.as_str()), ("minutes", "15"), ("overlap_hours", "1"), ("confirm", "acme-orders")];
        let response = post(&format!("{ro}/endpoints/acme-orders/{action}"), &form, &same_origin(base)).await;
        assert_eq!(response.status(), 403, "{action}");
    }
    let create = [("csrf", csrf.as_str()), ("name", "acme-ro"), ("url", "http://127.0.0.1:9/ro")];
    assert_eq!(post(&format!("{ro}/endpoints/new"), &create, &same_origin(base)).await.status(), 403);
    let id = acme_down.to_string();
    for (action, fields) in [
        ("redeliver", vec![("id", id.as_str())]),
        ("pause", vec![("endpoint", "acme-orders"), ("minutes", "15")]),
        ("enable", vec![("endpoint", "acme-down")]),
        ("test", vec![("endpoint", "acme-orders")]),
    ] {
        let mut form = fields.clone();
        form.push(("csrf", &csrf));
        let response = post(&format!("{ro}/actions/{action}"), &form, &same_origin(base)).await;
        assert_eq!(response.status(), 403, "{action}");
        assert!(response.text().await.unwrap().contains("read-only"), "{action}");
    }
    assert_eq!((w.snapshot().await, w.receiver.count()), before, "a refused link changed something");

    // A link without its trailing slash is sent to it; the portal may be framed by the configured origin only.
    let response = client().get(&ro).send().await.unwrap();
    assert_eq!(
        (response.status().as_u16(), response.headers()["location"].to_str().unwrap()),
        (303, &*format!("/portal/{read_only}/"))
    );
    let response = client()
        .get(format!("{ro}/"))
        .header("sec-fetch-site", "cross-site")
        .header("sec-fetch-dest", "iframe")
        .header("sec-fetch-mode", "navigate")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "the host application's frame opens the portal");
    let csp = response.headers()["content-security-policy"].to_str().unwrap().to_owned();
    assert!(csp.contains("frame-ancestors https://app.example;"), "{csp}");
    assert!(response.headers().get("x-frame-options").is_none());
    assert_eq!(response.headers()["referrer-policy"], "same-origin", "the link never leaves in a Referer");
    let response = client().get(format!("{base}/")).send().await.unwrap();
    let csp = response.headers()["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("frame-ancestors 'none'") && response.headers()["x-frame-options"] == "DENY", "{csp}");
    let (status, _) = get(
        &format!("{ro}/"),
        &[("sec-fetch-site", "cross-site"), ("sec-fetch-dest", "image"), ("sec-fetch-mode", "no-cors")],
    )
    .await;
    assert_eq!(status, 403, "an image another site loads is refused");
    w.sidecar.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sql_function_and_the_cli_make_links_that_work_and_a_new_key_refuses_old_links() {
    let db = TestDb::new().await;
    let client = db.migrate().await;
    add_endpoint(&client, "acme-orders", "http://127.0.0.1:9/acme", &[SECRET]).await;
    add_endpoint(&client, "globex-orders", "http://127.0.0.1:9/globex", &[SECRET]).await;
    client.batch_execute("UPDATE tailhook.endpoints SET tenant = split_part(name, '-', 1)").await.unwrap();
    // Before any sidecar stored a key, SQL cannot sign.
    let err = client.query_one("SELECT tailhook.portal_link('acme')", &[]).await.unwrap_err();
    assert!(message(&err).contains("server.portal_key_env"), "{err:?}");

    let start = |key: &'static str| {
        let port = free_port();
        let listen = format!("127.0.0.1:{port}");
        let sidecar = Binary::run(
            "",
            &[
                ("TAILHOOK_DATABASE__URL", db.url.as_str()),
                ("TAILHOOK_SERVER__LISTEN", &listen),
                ("TAILHOOK_SERVER__PORTAL_KEY_ENV", "IT_PORTAL_KEY"),
                ("IT_PORTAL_KEY", key),
            ],
        );
        (sidecar, format!("http://127.0.0.1:{port}"))
    };
    let (sidecar, base) = start(KEY);
    console::wait_until_up(&base).await;
    wait_for("the sidecar stored the link key", Duration::from_secs(10), || async {
        db.count("SELECT count(*) FROM tailhook.portal_key").await == 1
    })
    .await;

    // SQL: a role given grant_portal_minter (the host application's web
    // role) may mint; a publisher may not (a link is a tenant's admin
    // screen, more than publishing), nor a history reader.
    let minter = Role::new(&db, "portal_minter").await;
    let publisher = Role::new(&db, "publisher").await;
    let reader = Role::new(&db, "history_reader").await;
    for (kind, role) in [("portal_minter", &minter), ("publisher", &publisher), ("history_reader", &reader)] {
        client.execute(&format!("SELECT tailhook.grant_{kind}('{}')", role.name), &[]).await.unwrap();
    }
    client.execute("SELECT tailhook.regrant()", &[]).await.unwrap();
    let path: String = minter
        .client()
        .await
        .query_one("SELECT tailhook.portal_link('acme', interval '5 minutes', true)", &[])
        .await
        .unwrap()
        .get(0);
    let (status, page) = get(&format!("{base}{path}"), &[]).await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("acme-orders") && !page.contains("globex-orders") && page.contains("read-only"), "{page}");
    for role in [&publisher, &reader] {
        let denied = role.client().await.query_one("SELECT tailhook.portal_link('acme')", &[]).await.unwrap_err();
        assert!(message(&denied).contains("permission denied"), "{}: {denied:?}", role.name);
    }
    for bad in [
        "SELECT tailhook.portal_link('')",
        "SELECT tailhook.portal_link('acme', interval '25 hours')",
        "SELECT tailhook.portal_link('acme', interval '-1 minute')",
    ] {
        let err = client.query_one(bad, &[]).await.unwrap_err();
        assert!(message(&err).contains("tailhook.portal_link"), "{bad}: {err:?}");
    }
    // The owner cannot read the configured key: only the derived one is stored.
    let stored: String =
        client.query_one("SELECT encode(key, 'hex') FROM tailhook.portal_key", &[]).await.unwrap().get(0);
    assert_eq!(stored, key().hex());
    assert!(!stored.contains(&KEY.bytes().map(|b| format!("{b:02x}")).collect::<String>()));

    // The CLI signs with the configured key, no database needed.
    let cli = |args: &[&str], key: Option<&str>| {
        let mut cmd = tailhook_command();
        cmd.arg("portal-link").args(args).env("TAILHOOK_DATABASE__URL", "postgres://127.0.0.1:1/nothing");
        if let Some(key) = key {
            cmd.env("TAILHOOK_SERVER__PORTAL_KEY_ENV", "IT_PORTAL_KEY").env("IT_PORTAL_KEY", key);
        }
        cmd.output().expect("tailhook portal-link")
    };
    let out = cli(&["--tenant", "globex", "--ttl", "10m", "--base-url", &base], Some(KEY));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let url = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    assert!(url.starts_with(&format!("{base}/portal/v1.")) && url.ends_with('/'), "{url}");
    let (status, page) = get(&url, &[]).await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("globex-orders") && !page.contains("acme-orders") && page.contains("Send test"), "{page}");
    let out = cli(&["--tenant", "globex"], None);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("server.portal_key_env"));
    let out = cli(&["--tenant", "globex", "--ttl", "2d"], Some(KEY));
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stderr));
    let out = cli(&["--tenant", "globex"], Some("short"));
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("server.portal_key_env"));

    // A new key: links signed with the old one are refused, SQL signs with the new one.
    let (_, log) = sidecar.stop();
    let token = url.trim_end_matches('/').rsplit('/').next().unwrap().to_owned();
    let (sql_token, cli_token) = (path.trim_matches('/').rsplit('/').next().unwrap().to_owned(), token);
    for secret in [&sql_token, &cli_token] {
        let signature = secret.rsplit('.').next().unwrap();
        assert!(!log.contains(signature), "a link in the log: {log}");
    }
    let (sidecar, base) = start("a-rotated-portal-key-0123456789abcdefghij");
    console::wait_until_up(&base).await;
    wait_for("the sidecar stored the new link key", Duration::from_secs(10), || async {
        db.count(&format!("SELECT count(*) FROM tailhook.portal_key WHERE encode(key, 'hex') <> '{stored}'")).await == 1
    })
    .await;
    for old in [&sql_token, &cli_token] {
        let (status, _) = get(&format!("{base}/portal/{old}/"), &[]).await;
        assert_eq!(status, 403, "an old link after the key changed");
    }
    let path: String = client.query_one("SELECT tailhook.portal_link('acme')", &[]).await.unwrap().get(0);
    let (status, page) = get(&format!("{base}{path}"), &[]).await;
    assert_eq!((status, page.contains("acme-orders")), (200, true), "{page}");
    let (_, log) = sidecar.stop();
    assert!(log.contains("tenant portal link refused"), "refusals are logged: {log}");
    assert!(!log.contains(path.trim_matches('/').rsplit('.').next().unwrap()), "a link in the log: {log}");
}

/// A database error's message.
fn message(e: &tokio_postgres::Error) -> String {
    e.as_db_error().map(|d| d.message().to_owned()).unwrap_or_else(|| e.to_string())
}

/// The ```lang blocks of docs/guide/portal.md not marked `# not run:`, in order.
fn guide_blocks(lang: &str) -> Vec<String> {
    let text = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/guide/portal.md")).unwrap();
    let fence = format!("```{lang}");
    let mut blocks = Vec::new();
    let mut current: Option<Vec<&str>> = None;
    for line in text.lines() {
        match (&mut current, line.trim()) {
            (None, open) if open == fence => current = Some(Vec::new()),
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_portal_guides_sql_cli_and_curl_examples_run() {
    let w = World::new(&[]).await;
    // The SQL example (marked `-- tested: portal-guide`): its path opens acme's portal.
    let sql = guide_blocks("sql");
    assert_eq!(sql.len(), 1, "{sql:?}");
    assert!(sql[0].starts_with(&format!("-- tested: {}", "portal-guide")));
    let client = w.db.client().await;
    let rows = client.simple_query(&sql[0]).await.unwrap();
    let path = rows
        .iter()
        .find_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).map(str::to_owned),
            _ => None,
        })
        .unwrap();
    let (status, page) = get(&format!("{}{path}", w.base), &[]).await;
    assert_eq!((status, page.contains("acme-orders"), page.contains("globex")), (200, true, false), "{page}");
    let blocks = guide_blocks("sh");
    assert!(blocks.len() >= 2, "the guide's examples: {}", blocks.len());
    let bin = Path::new(env!("CARGO_BIN_EXE_tailhook")).parent().unwrap().to_owned();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());
    for block in blocks {
        let out = tokio::process::Command::new("bash")
            .args(["-euo", "pipefail", "-c", &block])
            .env("PATH", &path)
            .env("PORTAL_BASE_URL", &w.base)
            .env("TAILHOOK_DATABASE__URL", &w.db.url)
            .env("TAILHOOK_SERVER__PORTAL_KEY_ENV", KEY_VAR)
            .env(KEY_VAR, KEY)
            .env_remove("DATABASE_URL")
            .current_dir(env!("CARGO_TARGET_TMPDIR"))
            .output()
            .await
            .expect("bash");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{block}\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    }
    w.sidecar.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_in_a_browser_inside_the_host_apps_frame_sends_a_test_and_redelivers_a_failure() {
    // The host application's page, on another site (localhost is not 127.0.0.1's site), frames the portal.
    let w = World::new(&["http://localhost:*"]).await;
    let acme_down = w.delivery("acme-down", "acme").await;
    let portal = format!("{}{}/", w.base, link("acme", Duration::from_secs(600), false));
    let host_page = format!("<!doctype html><title>Host app</title><h1>Your webhooks</h1><iframe id=portal src=\"{portal}\" width=1330 height=640></iframe>");
    let host =
        Receiver::start(move |_, _| Reply::ok().header("content-type", "text/html").body(host_page.clone())).await;
    let host_url = format!("http://localhost:{}/settings/webhooks", host.addr.port());
    let driver = Driver::start().await;
    let c = driver.session().await;
    c.goto(&host_url).await.unwrap();
    let frame = c.find(Locator::Css("iframe#portal")).await.unwrap();
    frame.enter_frame().await.unwrap();
    let patience = Duration::from_secs(15);
    wait_for("the portal's overview in the frame", patience, || async {
        c.find(Locator::XPath("//td[.//a[normalize-space()='acme-down']]")).await.is_ok()
    })
    .await;
    let text = c.find(Locator::Css("body")).await.unwrap().text().await.unwrap();
    assert!(!text.contains("globex") && !text.contains("everyone"), "{text}");
    c.enter_parent_frame().await.unwrap();
    save_screenshot("portal-overview-in-frame.png", &c.screenshot().await.unwrap());
    c.find(Locator::Css("iframe#portal")).await.unwrap().enter_frame().await.unwrap();

    // Add an endpoint: it is the tenant's, whatever the form could say.
    c.find(Locator::LinkText("New endpoint")).await.unwrap().click().await.unwrap();
    wait_for("the new endpoint form", patience, || async { c.find(Locator::Css("form.endpoint")).await.is_ok() }).await;
    assert!(c.find(Locator::Css("input[name=tenant]")).await.is_err(), "no tenant field in the portal");
    c.find(Locator::Css("input[name=name]")).await.unwrap().send_keys("acme-new").await.unwrap();
    c.find(Locator::Css("input[name=url]")).await.unwrap().send_keys(&w.receiver.url("/new")).await.unwrap();
    c.find(Locator::XPath("//button[normalize-space()='Create endpoint']")).await.unwrap().click().await.unwrap();
    wait_for("the secret, shown once", patience, || async { c.find(Locator::Css("pre#secret")).await.is_ok() }).await;
    assert_eq!(
        w.db.count("SELECT count(*) FROM tailhook.endpoints WHERE name = 'acme-new' AND tenant = 'acme'").await,
        1
    );

    // Send a test to it from its page.
    c.find(Locator::LinkText("Go to the endpoint")).await.unwrap().click().await.unwrap();
    wait_for("the endpoint's page", patience, || async {
        c.find(Locator::XPath("//button[normalize-space()='Send test']")).await.is_ok()
    })
    .await;
    c.find(Locator::XPath("//button[normalize-space()='Send test']")).await.unwrap().click().await.unwrap();
    wait_for("the test's result", patience, || async {
        match c.find(Locator::Css("dd.result")).await {
            Ok(e) => e.text().await.is_ok_and(|t| t.contains("HTTP 200")),
            Err(_) => false,
        }
    })
    .await;
    assert!(w.receiver.received().iter().any(|r| r.path == "/new" && r.json()["type"] == "tailhook.test"));

    // Find the failure, open it, redeliver it.
    c.find(Locator::LinkText("Deliveries")).await.unwrap().click().await.unwrap();
    wait_for("the deliveries", patience, || async { c.find(Locator::Css("table.deliveries")).await.is_ok() }).await;
    c.find(Locator::XPath(&format!("//a[normalize-space()='#{acme_down}']"))).await.unwrap().click().await.unwrap();
    wait_for("the delivery page", patience, || async { c.find(Locator::Css("button#redeliver")).await.is_ok() }).await;
    let status = c.find(Locator::Css("dl.delivery .st")).await.unwrap().text().await.unwrap();
    assert_eq!(status, "failed");
    c.find(Locator::Css("button#redeliver")).await.unwrap().click().await.unwrap();
    wait_for("the redelivery notice in the frame", patience, || async {
        match c.find(Locator::Css("p.notice")).await {
            Ok(e) => e.text().await.is_ok_and(|t| t.contains("Redelivered 1 delivery")),
            Err(_) => false,
        }
    })
    .await;
    wait_for("the redelivery succeeded", patience, || async {
        w.db.count(&format!("SELECT count(*) FROM tailhook.deliveries WHERE id = {acme_down} AND status = 'succeeded'"))
            .await
            == 1
    })
    .await;
    // Its own link in the frame (the page's address stays under the portal link) shows it.
    c.find(Locator::Css("dl.delivery dd a")).await.unwrap().click().await.unwrap();
    wait_for("the search shows it succeeded", patience, || async {
        let row =
            format!("//table[contains(@class,'deliveries')]/tbody/tr[td[2]/a[normalize-space()='#{acme_down}']]/td[7]");
        match c.find(Locator::XPath(&row)).await {
            Ok(e) => e.text().await.is_ok_and(|t| t == "succeeded"),
            Err(_) => false,
        }
    })
    .await;
    c.enter_parent_frame().await.unwrap();
    let png = c.screenshot().await.unwrap();
    save_screenshot("portal-in-frame.png", &png);

    // In the same browser, a link past its expiry and one whose tenant was
    // changed to another's open nothing: a refusal, no link, no tenant's data.
    let expired =
        mint(&key(), "acme", Duration::from_secs(60), false, SystemTime::now() - Duration::from_secs(3600)).unwrap();
    let acme_hex: String = b"acme".iter().map(|b| format!("{b:02x}")).collect();
    let globex_hex: String = b"globex".iter().map(|b| format!("{b:02x}")).collect();
    let live = mint(&key(), "acme", Duration::from_secs(600), false, SystemTime::now()).unwrap();
    let changed = live.replacen(&format!("v1.{acme_hex}."), &format!("v1.{globex_hex}."), 1);
    assert_ne!(changed, live);
    for (why, token) in [("expired", expired), ("tenant changed", changed)] {
        c.goto(&format!("{}/portal/{token}/", w.base)).await.unwrap();
        let text = c.find(Locator::Css("body")).await.unwrap().text().await.unwrap();
        assert!(text.contains("ask the application that sent you here for a new link"), "{why}: {text}");
        assert!(!text.contains("acme-") && !text.contains("globex-"), "{why}: {text}");
        assert!(c.find(Locator::Css("a")).await.is_err(), "{why}: a refused link leads nowhere");
    }
    c.close().await.unwrap();
    w.sidecar.stop().await;
}

/// A replica started without the portal key (or with the console off) leaves
/// the stored link key alone, so links minted in SQL keep working; taking
/// SQL's minting away is `tailhook.set_portal_key(NULL)`, by hand.
#[tokio::test]
async fn a_replica_without_the_portal_key_leaves_the_stored_key_alone() {
    let w = World::new(&[]).await;
    wait_for("the link key stored", Duration::from_secs(10), || async {
        w.db.count("SELECT count(*) FROM tailhook.portal_key").await == 1
    })
    .await;
    let (other, other_base) = console::start(w.db.config()).await;
    console::wait_until_up(&other_base).await;
    assert_eq!(w.db.count("SELECT count(*) FROM tailhook.portal_key").await, 1, "the key is still there");
    let path: String = w.db.client().await.query_one("SELECT tailhook.portal_link('acme')", &[]).await.unwrap().get(0);
    let (status, page) = get(&format!("{}{path}", w.base), &[]).await;
    assert_eq!(status, 200, "{page}");
    other.stop().await;
    w.sidecar.stop().await;
}
