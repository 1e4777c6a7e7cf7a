//! The console in a real browser (headless Chromium through WebDriver): the endpoints after successes, retries and failures, a search by event id, a delivery, and Redeliver bringing a new attempt; a page on another site cannot make it run a transform.

use crate::support::browser::{save_screenshot, Driver};
use crate::support::*;
use fantoccini::{Client, Locator};
use std::time::Duration;

/// How long the browser may take to show what the test waits for.
const PATIENCE: Duration = Duration::from_secs(15);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_in_a_browser_overview_search_delivery_and_redeliver() {
    let db = TestDb::new().await;
    let client = db.migrate().await;
    // good: 200. flaky: 500 once per event, then 200. down: 500 twice per
    // event (its two attempts), then 200: only a redelivery gets through.
    let receiver = Receiver::start(|path, seen| match path {
        "/good" => Reply::ok().body("thanks"),
        "/flaky" if seen > 0 => Reply::ok(),
        "/down" if seen >= 2 => Reply::ok().body("back up"),
        _ => Reply::status(500).body("upstream exploded"),
    })
    .await;
    for name in ["good", "flaky", "down"] {
        add_endpoint(&client, name, &receiver.url(&format!("/{name}")), &[SECRET]).await;
    }
    client
        .batch_execute(
            "UPDATE tailhook.endpoints SET max_attempts = 2 WHERE name = 'down';
             INSERT INTO tailhook.endpoints (name, url, enabled, disabled_reason, auto_disabled)
             VALUES ('archive', 'http://127.0.0.1:9/archive', false, 'answered 410 Gone at 2026-11-20 10:00:00+00', true);",
        )
        .await
        .unwrap();
    // An hour of history before this run, so the chart has a shape: 300
    // events to good and flaky, five of flaky's given up on.
    client
        .batch_execute(
            "INSERT INTO tailhook.outbox (event_type, payload, tenant, created_at, dispatched_at)
             SELECT 'invoice.paid', jsonb_build_object('n', i), 'acme', t, t
               FROM generate_series(1, 300) i, LATERAL (SELECT now() - make_interval(mins => 2 + floor(54 * sqrt(i / 300.0))::int, secs => i % 60) AS t) t;
             INSERT INTO tailhook.deliveries (outbox_id, endpoint_id, status, attempts, next_attempt_at, created_at, completed_at)
             SELECT o.id, e.id, CASE WHEN e.name = 'flaky' AND o.id % 60 = 0 THEN 'failed' ELSE 'succeeded' END, 1,
                    NULL, o.created_at, o.created_at
               FROM tailhook.outbox o, tailhook.endpoints e WHERE e.name IN ('good', 'flaky');",
        )
        .await
        .unwrap();
    let mut config = db.config();
    config.delivery.backoff_initial_ms = 200;
    let (sidecar, base) = console::start(config).await;
    let mut events = Vec::new();
    for n in 0..6 {
        let event_type = if n % 2 == 0 { "invoice.paid" } else { "order.created" };
        let id: String = client
            .query_one(
                "SELECT tailhook.publish($1, jsonb_build_object('n', $2::int, 'amount', 1999), 'acme')::text",
                &[&event_type, &n],
            )
            .await
            .unwrap()
            .get(0);
        events.push(id);
    }
    wait_settled(&db, 600 + 18, Duration::from_secs(30)).await;

    let driver = Driver::start().await;
    let browser = driver.session().await;
    let started = std::time::Instant::now();
    let scenario = tokio::spawn(scenario(browser.clone(), base, events[0].clone()));
    let outcome = scenario.await;
    let _ = browser.close().await;
    drop(driver);
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
    eprintln!("browser scenario took {:?}", started.elapsed());
    sidecar.stop().await;
    assert_eq!(deliveries_of(&db, "down", "succeeded").await, 1, "the redelivered one");
}

/// Waits for an element; fails with the page's URL and source.
async fn element(c: &Client, css: &str) -> fantoccini::elements::Element {
    match c.wait().at_most(PATIENCE).for_element(Locator::Css(css)).await {
        Ok(element) => element,
        Err(e) => panic!(
            "no {css} after {PATIENCE:?} ({e}) at {:?}:\n{}",
            c.current_url().await.map(|u| u.to_string()),
            c.source().await.unwrap_or_default()
        ),
    }
}

/// The text of each cell of the row whose first cell is `name`.
async fn row(c: &Client, table: &str, column: usize, name: &str) -> Vec<String> {
    let xpath = format!("//table[contains(@class,'{table}')]/tbody/tr[td[{column}][normalize-space()='{name}']]/td");
    let mut cells = Vec::new();
    for cell in c.find_all(Locator::XPath(&xpath)).await.unwrap() {
        cells.push(cell.text().await.unwrap().trim().to_owned());
    }
    assert!(!cells.is_empty(), "no row {name} in table {table}:\n{}", c.source().await.unwrap_or_default());
    cells
}

async fn scenario(c: Client, base: String, event: String) {
    // The endpoints: states, backlog, failures, success rates and the chart.
    c.goto(&format!("{base}/")).await.unwrap();
    element(&c, "table.endpoints").await;
    let good = row(&c, "endpoints", 1, "good").await;
    let flaky = row(&c, "endpoints", 1, "flaky").await;
    let down = row(&c, "endpoints", 1, "down").await;
    let archive = row(&c, "endpoints", 1, "archive").await;
    // endpoint, state, pending, retrying, failed 1 h, failed 24 h, success 1 h, p50/p95, oldest, chart, actions
    assert_eq!(&good[1..7], ["enabled", "0", "0", "0", "0", "100.0 %"], "{good:?}");
    // 301 succeeded (295 before, 6 now) and 5 failed: 98.4 %.
    assert_eq!(&flaky[1..7], ["enabled", "0", "0", "5", "5", "98.4 %"], "{flaky:?}");
    assert_eq!(&down[1..7], ["enabled", "0", "0", "6", "6", "0.0 %"], "{down:?}");
    assert!(archive[1].starts_with("disabled: answered 410 Gone"), "{archive:?}");
    assert!(good[7].ends_with(" ms") && down[7].ends_with(" ms"), "{good:?} {down:?}");
    let bars = c.find_all(Locator::Css("svg.chart rect.bad")).await.unwrap();
    assert!(!bars.is_empty(), "the chart shows the failures");
    c.find(Locator::XPath("//tr[td[1][normalize-space()='archive']]//button[normalize-space()='Re-enable']"))
        .await
        .expect("a disabled endpoint offers Re-enable");
    save_screenshot("console-endpoints.png", &c.screenshot().await.unwrap());

    // Search by event id (the receiver's webhook-id), from the box in the header.
    let search = c.find(Locator::Css("header input[name=event_id]")).await.unwrap();
    search.send_keys(&format!("{event}\u{E007}")).await.unwrap();
    element(&c, "table.deliveries").await;
    assert!(c.current_url().await.unwrap().as_str().contains(&format!("event_id={event}")));
    let rows = c.find_all(Locator::Css("table.deliveries tbody tr")).await.unwrap();
    assert_eq!(rows.len(), 3, "one delivery per endpoint");
    let down = row(&c, "deliveries", 6, "down").await;
    assert_eq!((down[2].as_str(), down[6].as_str(), down[7].as_str()), (event.as_str(), "failed", "2"), "{down:?}");
    save_screenshot("console-search.png", &c.screenshot().await.unwrap());

    // Its delivery to `down`: two failed attempts with the response stored.
    c.find(Locator::XPath("//table[contains(@class,'deliveries')]/tbody/tr[td[6][normalize-space()='down']]/td[2]/a"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    element(&c, "table.attempts").await;
    let attempts = c.find_all(Locator::Css("table.attempts tbody tr")).await.unwrap();
    assert_eq!(attempts.len(), 2);
    let last = row(&c, "attempts", 1, "2").await;
    assert_eq!((last[3].as_str(), last[4].as_str(), last[6].as_str()), ("500", "http_status", "schedule"));
    assert_eq!(last[7], "upstream exploded");
    let payload = c.find(Locator::Css("pre.payload")).await.unwrap().text().await.unwrap();
    assert!(payload.contains("\"amount\": 1999"), "pretty-printed: {payload}");

    // Redeliver: the page comes back saying so, and the new attempt appears.
    c.find(Locator::Css("button#redeliver")).await.unwrap().click().await.unwrap();
    let notice = element(&c, "p.notice").await;
    assert_eq!(notice.text().await.unwrap(), "Redelivered 1 delivery.");
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let rows = c.find_all(Locator::Css("table.attempts tbody tr")).await.unwrap();
        let status = c.find(Locator::Css("dl.delivery .st")).await.unwrap().text().await.unwrap();
        if rows.len() == 3 && status == "succeeded" {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no third attempt after {PATIENCE:?}: {} rows, {status}",
            rows.len()
        );
        // The page is server-rendered: look again, as a person would.
        c.refresh().await.unwrap();
    }
    let third = row(&c, "attempts", 1, "3").await;
    assert_eq!((third[3].as_str(), third[4].as_str(), third[7].as_str()), ("200", "", "back up"), "{third:?}");
    assert!(third[6].starts_with("redelivery by console (loopback) from 127.0.0.1"), "{third:?}");
    save_screenshot("console-delivery.png", &c.screenshot().await.unwrap());
}

/// One request the browser made to the console, as the recording proxy saw it.
#[derive(Debug, Clone)]
struct Seen {
    path: String,
    site: String,
    mode: String,
    status: u16,
    transformed: bool,
}

/// Marker the endpoint's transform puts in the body it makes.
const MARKER: &str = "ran-the-transform-7";

/// A proxy on 127.0.0.1 in front of the console recording what the browser
/// sent (`Sec-Fetch-*`) and what the console answered.
async fn recording_proxy(console: String) -> (String, std::sync::Arc<std::sync::Mutex<Vec<Seen>>>) {
    use axum::extract::{Request, State};
    use axum::response::IntoResponse;
    type Log = std::sync::Arc<std::sync::Mutex<Vec<Seen>>>;
    let log: Log = Default::default();
    async fn forward(State((console, log)): State<(String, Log)>, request: Request) -> axum::response::Response {
        let (request, _) = request.into_parts();
        let header = |name: &str| {
            request.headers.get(name).map(|v| v.to_str().unwrap_or_default().to_owned()).unwrap_or_default()
        };
        let (site, mode) = (header("sec-fetch-site"), header("sec-fetch-mode"));
        let path = request.uri.path_and_query().map(|p| p.to_string()).unwrap_or_default();
        let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
        let mut upstream = client.request(request.method.clone(), format!("{console}{path}"));
        for (name, value) in &request.headers {
            if name != "host" {
                upstream = upstream.header(name, value);
            }
        }
        let response = upstream.send().await.unwrap();
        let status = response.status().as_u16();
        let content_type = response.headers().get("content-type").cloned();
        let body = response.text().await.unwrap();
        let transformed = body.contains(MARKER);
        log.lock().unwrap().push(Seen { path, site, mode, status, transformed });
        let mut out = (axum::http::StatusCode::from_u16(status).unwrap(), body).into_response();
        if let Some(content_type) = content_type {
            out.headers_mut().insert("content-type", content_type);
        }
        out
    }
    let app = axum::Router::new().fallback(forward).with_state((console, log.clone()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}"), log)
}

/// A page on another site (`localhost` is another site than `127.0.0.1`):
/// a script fetching the delivery page, and a link to it.
async fn other_site(target: String) -> String {
    let html = format!(
        r#"<!doctype html><title>other site</title>
<a id="go" href="{target}">the delivery</a>
<script>
fetch("{target}", {{mode: "no-cors", credentials: "include"}})
  .then(() => {{ document.title = "fetched"; }}, () => {{ document.title = "fetched"; }});
</script>"#
    );
    let app = axum::Router::new().fallback(move || {
        let html = html.clone();
        async move { ([("content-type", "text/html; charset=utf-8")], html) }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://localhost:{port}/")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_on_another_site_cannot_make_the_console_run_a_transform() {
    let db = TestDb::new().await;
    let (sidecar, base, delivery, _receiver) = console::transformed_delivery(&db).await;
    let (proxy, seen) = recording_proxy(base).await;
    let target = format!("{proxy}/deliveries/{delivery}");
    let page = other_site(target.clone()).await;

    let driver = Driver::start().await;
    let browser = driver.session().await;
    let scenario = tokio::spawn(async move {
        let c = browser.clone();
        let path = format!("/deliveries/{delivery}");
        let requests = |mode: &'static str| {
            let (seen, path) = (seen.clone(), path.clone());
            move || {
                seen.lock().unwrap().iter().filter(|s| s.path == path && s.mode == mode).cloned().collect::<Vec<_>>()
            }
        };
        // The other site's script fetches the page: Chromium says cross-site, the console refuses.
        c.goto(&page).await.unwrap();
        let fetched = requests("no-cors");
        wait_for("the other site's fetch", PATIENCE, || {
            let done = !fetched().is_empty();
            async move { done }
        })
        .await;
        for s in fetched() {
            assert_eq!((s.site.as_str(), s.status, s.transformed), ("cross-site", 403, false), "{s:?}");
        }
        // Its link followed: the page opens, without running the transform.
        c.find(Locator::Css("a#go")).await.unwrap().click().await.unwrap();
        element(&c, "dl.delivery").await;
        assert!(c.find(Locator::Css("pre.transformed")).await.is_err(), "the transform ran for another site's link");
        let navigated = requests("navigate")();
        assert_eq!(navigated.len(), 1, "{navigated:?}");
        assert_eq!(
            (navigated[0].site.as_str(), navigated[0].status, navigated[0].transformed),
            ("cross-site", 200, false)
        );
        // The console's own link runs it.
        c.find(Locator::LinkText("Show the body sent")).await.unwrap().click().await.unwrap();
        let body = element(&c, "pre.transformed").await.text().await.unwrap();
        assert!(body.contains(MARKER), "{body}");
        let last = requests("navigate")().pop().unwrap();
        assert_eq!((last.site.as_str(), last.status, last.transformed), ("same-origin", 200, true), "{last:?}");
    });
    let outcome = scenario.await;
    drop(driver);
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
    sidecar.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endpoint_created_through_the_form_is_listed_with_its_secret_shown_once() {
    let db = TestDb::new().await;
    let client = db.migrate().await;
    let receiver = Receiver::ok().await;
    let (sidecar, base) = console::start(db.config()).await;
    let url = receiver.url("/billing");
    let driver = Driver::start().await;
    let browser = driver.session().await;
    let scenario = tokio::spawn({
        let c = browser.clone();
        async move {
            c.goto(&format!("{base}/")).await.unwrap();
            c.find(Locator::LinkText("New endpoint")).await.unwrap().click().await.unwrap();
            let form = element(&c, "form.endpoint").await;
            for (field, value) in [("name", "billing"), ("url", url.as_str()), ("tenant", "acme")] {
                form.find(Locator::Css(&format!("input[name={field}]"))).await.unwrap().send_keys(value).await.unwrap();
            }
            let types = form.find(Locator::Css("input[name=event_types]")).await.unwrap();
            types.clear().await.unwrap();
            types.send_keys("invoice.*").await.unwrap();
            form.find(Locator::Css("textarea[name=headers]"))
                .await
                .unwrap()
                .send_keys("X-Team: payments")
                .await
                .unwrap();
            form.find(Locator::Css("button[type=submit]")).await.unwrap().click().await.unwrap();
            let secret = element(&c, "pre#secret").await.text().await.unwrap();
            assert!(secret.starts_with("whsec_"), "{secret}");
            save_screenshot("console-endpoint-created.png", &c.screenshot().await.unwrap());
            // Listed on the overview, and its page shows it without the secret.
            c.find(Locator::LinkText("Back to the endpoints")).await.unwrap().click().await.unwrap();
            element(&c, "table.endpoints").await;
            let billing = row(&c, "endpoints", 1, "billing").await;
            assert_eq!(billing[1], "enabled", "{billing:?}");
            c.find(Locator::LinkText("billing")).await.unwrap().click().await.unwrap();
            let settings = element(&c, "dl.settings").await.text().await.unwrap();
            assert!(
                settings.contains("invoice.*") && settings.contains("X-Team") && settings.contains("acme"),
                "{settings}"
            );
            let source = c.source().await.unwrap();
            assert!(!source.contains(&secret) && !source.contains("payments"), "secret or header value shown");
            save_screenshot("console-endpoint.png", &c.screenshot().await.unwrap());
            // Send test from its page: the receiver gets it.
            c.find(Locator::XPath("//button[normalize-space()='Send test']")).await.unwrap().click().await.unwrap();
            let result = element(&c, "dd.result").await.text().await.unwrap();
            assert!(result.starts_with("HTTP 200"), "{result}");
            secret
        }
    });
    let outcome = scenario.await;
    let _ = browser.close().await;
    drop(driver);
    let secret = match outcome {
        Ok(secret) => secret,
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    };
    let stored: Vec<String> =
        client.query_one("SELECT secrets FROM tailhook.endpoints WHERE name = 'billing'", &[]).await.unwrap().get(0);
    assert_eq!(stored, std::slice::from_ref(&secret));
    let got = receiver.received();
    assert_eq!(got.len(), 1, "the test request");
    verify(&secret, &got[0].headers, &got[0].body).unwrap();
    assert_eq!(got[0].headers["x-team"], "payments");
    sidecar.stop().await;
}
