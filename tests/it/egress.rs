//! Egress through an HTTP proxy (a real tinyproxy): CONNECT to the address tailhook checked, for http and https, the destination guard kept, a proxy that is down, and the bypass list.

use crate::support::https::{Ca, HttpsReceiver};
use crate::support::tinyproxy::Tinyproxy;
use crate::support::*;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_go_through_the_proxy_to_the_checked_address_keeping_the_host_name_for_tls_and_host() {
    let db = TestDb::new().await;
    let client = db.migrate().await;
    let proxy = Tinyproxy::start();
    let plain = Receiver::ok().await;
    let (server_ca, client_ca) = (Ca::new("receiver CA"), Ca::new("client CA"));
    let https = HttpsReceiver::start(&server_ca, &client_ca).await;
    let (cert, key) = client_ca.client("tailhook-client");
    let plain_url = format!("http://localhost:{}/hook", plain.addr.port());
    add_endpoint(&client, "plain", &plain_url, &[]).await;
    client
        .execute(
            "INSERT INTO tailhook.endpoints (name, url, tls_client_cert, tls_client_key, tls_ca_bundle)
             VALUES ('bank', $1, $2, $3, $4)",
            &[&https.url("/hook"), &cert, &key, &server_ca.cert_pem],
        )
        .await
        .unwrap();

    let mut config = db.config();
    config.delivery.proxy = tailhook::secret::CredentialUrl::new(proxy.url());
    let sidecar = Sidecar::start(config);
    client.batch_execute("SELECT tailhook.publish('egress.test', '{}') FROM generate_series(1, 3)").await.unwrap();
    wait_for("3 events delivered to each through the proxy", Duration::from_secs(15), || async {
        succeeded(&db, "plain").await == 3 && succeeded(&db, "bank").await == 3
    })
    .await;
    sidecar.stop().await;

    let connects = proxy.connects();
    assert!(connects.contains(&format!("127.0.0.1:{}", plain.addr.port())), "http tunnelled too: {connects:?}");
    assert!(connects.contains(&format!("127.0.0.1:{}", https.addr.port())), "{connects:?}");
    assert!(
        connects.iter().all(|c| c.starts_with("127.0.0.1:")),
        "the proxy is given the checked address: {connects:?}"
    );
    let host = plain.received()[0].headers.get("host").unwrap().to_str().unwrap().to_owned();
    assert_eq!(host, plain_url.trim_start_matches("http://").trim_end_matches("/hook"), "Host keeps the name");
    assert!(https.seen().iter().all(|s| s.host == format!("localhost:{}", https.addr.port())));
    assert!(https.seen().iter().all(|s| s.peer.ip().is_loopback()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_name_resolving_to_a_blocked_address_is_refused_through_the_proxy_too() {
    let db = TestDb::new().await;
    let client = db.migrate().await;
    let proxy = Tinyproxy::start();
    let receiver = Receiver::ok().await;
    add_endpoint(&client, "by-name", &format!("http://localhost:{}/hook", receiver.addr.port()), &[]).await;
    add_endpoint(&client, "literal", &receiver.url("/hook"), &[]).await;

    let mut config = db.config();
    config.delivery.allow_private_networks = false;
    config.delivery.proxy = tailhook::secret::CredentialUrl::new(proxy.url());
    let sidecar = Sidecar::start(config);
    client.batch_execute("SELECT tailhook.publish('egress.test', '{}')").await.unwrap();
    wait_for("both deliveries failed", Duration::from_secs(10), || async {
        deliveries_of(&db, "by-name", "failed").await == 1 && deliveries_of(&db, "literal", "failed").await == 1
    })
    .await;
    sidecar.stop().await;
    let failures = failures(&db).await;
    assert_eq!(failures.len(), 2, "refused at once, never retried: {failures:?}");
    for (name, kind, error) in &failures {
        assert_eq!(kind, "blocked_address", "{name}: {error}");
    }
    let by_name = failures.iter().find(|f| f.0 == "by-name").unwrap();
    assert!(by_name.2.starts_with("localhost resolves to a loopback address"), "{}", by_name.2);
    assert_eq!(receiver.count(), 0);
    assert!(proxy.connects().is_empty(), "the proxy was never asked: {:?}", proxy.connects());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proxy_that_is_down_fails_attempts_as_connect_which_are_retried_while_a_bypassed_endpoint_delivers() {
    let db = TestDb::new().await;
    let client = db.migrate().await;
    let proxied = Receiver::ok().await;
    let bypassed = Receiver::ok().await;
    add_endpoint(&client, "proxied", &proxied.url("/hook"), &[]).await;
    add_endpoint(&client, "bypassed", &format!("http://localhost:{}/hook", bypassed.addr.port()), &[]).await;

    let port = free_port();
    let mut config = db.config();
    config.delivery.proxy = tailhook::secret::CredentialUrl::new(format!("http://127.0.0.1:{port}"));
    config.delivery.proxy_bypass = vec!["*.internal".into(), "localhost".into()];
    config.delivery.max_attempts = 50;
    config.delivery.backoff_initial_ms = 100;
    config.delivery.backoff_max_ms = 300;
    let sidecar = Sidecar::start(config);
    client.batch_execute("SELECT tailhook.publish('egress.test', '{}')").await.unwrap();
    wait_for("the bypassed endpoint delivered", Duration::from_secs(10), || async {
        succeeded(&db, "bypassed").await == 1
    })
    .await;
    wait_for("the proxied delivery failed 3 times", Duration::from_secs(15), || async {
        failures(&db).await.iter().filter(|f| f.0 == "proxied").count() >= 3
    })
    .await;
    for (name, kind, error) in failures(&db).await {
        assert_eq!(name, "proxied");
        assert_eq!(kind, "connect", "{error}");
        assert!(error.contains("delivery.proxy"), "names the proxy: {error}");
    }
    assert_eq!(proxied.count(), 0);

    // The proxy comes up: the retries get through it.
    let proxy = Tinyproxy::start_on(port);
    wait_for("the proxied delivery succeeded", Duration::from_secs(15), || async {
        succeeded(&db, "proxied").await == 1
    })
    .await;
    sidecar.stop().await;
    assert_eq!(proxy.connects(), vec![format!("127.0.0.1:{}", proxied.addr.port())], "the bypassed one never used it");
    assert_eq!(bypassed.count(), 1);
}
