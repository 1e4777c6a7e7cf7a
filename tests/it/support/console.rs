//! The console over HTTP: a sidecar with its listener on a free loopback port, and requests with the headers a browser (or an attacker's page) would send.

use super::{add_endpoint, free_port, wait_for, wait_settled, Receiver, Sidecar, TestDb, SECRET};
use std::time::Duration;
use tailhook::Config;

/// A sidecar in this process serving the console; `base` is `http://127.0.0.1:PORT`.
pub async fn start(mut config: Config) -> (Sidecar, String) {
    let port = free_port();
    config.server.listen = format!("127.0.0.1:{port}");
    let base = format!("http://127.0.0.1:{port}");
    let sidecar = Sidecar::start(config);
    wait_until_up(&base).await;
    (sidecar, base)
}

/// Waits for `/healthz` to answer.
pub async fn wait_until_up(base: &str) {
    let url = format!("{base}/healthz");
    wait_for("the listener answers", Duration::from_secs(15), || {
        let url = url.clone();
        async move { reqwest::get(&url).await.is_ok_and(|r| r.status() == 200) }
    })
    .await;
}

/// A client that shows redirects instead of following them.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

/// GET with extra headers; status and body.
pub async fn get(url: &str, headers: &[(&str, &str)]) -> (u16, String) {
    let mut request = client().get(url);
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    let response = request.send().await.unwrap_or_else(|e| panic!("GET {url}: {e}"));
    (response.status().as_u16(), response.text().await.unwrap())
}

/// POST a form with extra headers; the response.
pub async fn post(url: &str, form: &[(&str, &str)], headers: &[(&str, &str)]) -> reqwest::Response {
    let body: String = url::form_urlencoded::Serializer::new(String::new()).extend_pairs(form).finish();
    let mut request = client().post(url).header("content-type", "application/x-www-form-urlencoded").body(body);
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    request.send().await.unwrap_or_else(|e| panic!("POST {url}: {e}"))
}

/// The CSRF token of the first form on a page.
pub fn csrf_of(html: &str) -> String {
    let at = html.find("name=\"csrf\" value=\"").unwrap_or_else(|| panic!("no CSRF field in {html}"));
    let rest = &html[at + "name=\"csrf\" value=\"".len()..];
    rest[..rest.find('"').unwrap()].to_owned()
}

/// A settled delivery of event `{"n": 7}` to endpoint `shaped`, whose
/// transform makes the body `{"marker": "ran-the-transform-7"}`, and a console
/// in front of it: (the sidecar, the console's base URL, the delivery's id,
/// the receiver it went to).
pub async fn transformed_delivery(db: &TestDb) -> (Sidecar, String, i64, Receiver) {
    let client = db.migrate().await;
    let receiver = Receiver::ok().await;
    add_endpoint(&client, "shaped", &receiver.url("/shaped"), &[SECRET]).await;
    client
        .execute(
            "UPDATE tailhook.endpoints SET transform = $1 WHERE name = 'shaped'",
            &[&"#{ marker: \"ran-the-transform-\" + event.data.n }"],
        )
        .await
        .unwrap();
    client.execute("SELECT tailhook.publish('invoice.paid', '{\"n\": 7}')", &[]).await.unwrap();
    let (sidecar, base) = start(db.config()).await;
    wait_settled(db, 1, Duration::from_secs(15)).await;
    let delivery = db.count("SELECT id FROM tailhook.deliveries").await;
    (sidecar, base, delivery, receiver)
}
