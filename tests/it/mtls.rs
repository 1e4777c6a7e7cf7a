//! Client certificates and private CAs per endpoint, against an HTTPS receiver that demands a client certificate: the right one delivers, a missing or wrong one and an untrusted server fail as `tls`, the key is sealed and never shown.

use crate::support::https::{Ca, HttpsReceiver};
use crate::support::process::Binary;
use crate::support::*;
use std::time::Duration;
use tailhook::secret::Secret;

const SEALING_KEY: &str = "/WOQKFKFX/00vYLi5/B1QeyXGmXYsflU8qvAPElmv78=";

/// The base64 body of a PEM key: what must never be shown anywhere.
fn key_body(key_pem: &str) -> String {
    key_pem.lines().filter(|l| !l.starts_with("-----")).collect::<Vec<_>>().join("")[..40].to_owned()
}

async fn add_tls_endpoint(
    client: &tokio_postgres::Client,
    name: &str,
    url: &str,
    cert: Option<&str>,
    key: Option<&str>,
    ca: Option<&str>,
) {
    client
        .execute(
            "INSERT INTO tailhook.endpoints (name, url, tls_client_cert, tls_client_key, tls_ca_bundle)
             VALUES ($1, $2, $3, $4, $5)",
            &[&name, &url, &cert, &key, &ca],
        )
        .await
        .expect("insert endpoint");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_right_client_certificate_delivers_and_a_missing_wrong_or_untrusted_one_fails_as_tls() {
    let db = TestDb::new().await;
    let client = db.migrate().await;
    let (server_ca, client_ca, stranger_ca) = (Ca::new("receiver CA"), Ca::new("client CA"), Ca::new("stranger"));
    let receiver = HttpsReceiver::start(&server_ca, &client_ca).await;
    let url = receiver.url("/hook");
    let (cert, key) = client_ca.client("tailhook-client");
    let (wrong_cert, wrong_key) = stranger_ca.client("tailhook-client");
    let ca = server_ca.cert_pem.as_str();
    add_tls_endpoint(&client, "right", &url, Some(&cert), Some(&key), Some(ca)).await;
    add_tls_endpoint(&client, "missing", &url, None, None, Some(ca)).await;
    add_tls_endpoint(&client, "wrong", &url, Some(&wrong_cert), Some(&wrong_key), Some(ca)).await;
    // The right certificate, but the receiver's CA is trusted by the other endpoints only.
    add_tls_endpoint(&client, "untrusted", &url, Some(&cert), Some(&key), None).await;

    let mut config = db.config();
    config.delivery.max_attempts = 2;
    config.secrets.keys = vec![Secret::new(SEALING_KEY)];
    let sidecar = Sidecar::start(config);
    client.batch_execute("SELECT tailhook.publish('mtls.test', '{\"n\": 1}')").await.unwrap();
    wait_for("the right certificate delivered", Duration::from_secs(15), || async {
        succeeded(&db, "right").await == 1
    })
    .await;
    wait_for("the three others failed for good", Duration::from_secs(20), || async {
        db.count("SELECT count(*) FROM tailhook.deliveries WHERE status = 'failed'").await == 3
    })
    .await;
    sidecar.stop().await;

    assert_eq!(receiver.seen().len(), 1, "only the right certificate's request was answered");
    assert_eq!(receiver.seen()[0].host, format!("localhost:{}", receiver.addr.port()));
    let failures = failures(&db).await;
    for name in ["missing", "wrong", "untrusted"] {
        let mine: Vec<_> = failures.iter().filter(|f| f.0 == name).collect();
        assert_eq!(mine.len(), 2, "{name}: both attempts failed: {failures:?}");
        for (_, kind, error) in mine {
            assert_eq!(kind, "tls", "{name}: {error}");
        }
    }
    let untrusted = failures.iter().find(|f| f.0 == "untrusted").unwrap();
    assert!(untrusted.2.to_lowercase().contains("certificate"), "names the server certificate: {}", untrusted.2);

    // The key was sealed in place, and shows nowhere.
    let stored: Vec<String> = client
        .query("SELECT tls_client_key FROM tailhook.endpoints WHERE tls_client_key IS NOT NULL", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(stored.len(), 3);
    assert!(stored.iter().all(|k| k.starts_with("enc:v1:")), "every key sealed at rest");
    let view: Vec<String> = client
        .query("SELECT to_jsonb(c)::text FROM tailhook.endpoint_config c", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(view.len(), 4);
    let shown = format!("{view:?} {failures:?}");
    for secret in [key_body(&key), key_body(&wrong_key)] {
        assert!(!shown.contains(&secret), "a key shown in errors or endpoint_config");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_pem_is_refused_naming_the_column_and_one_that_slips_past_makes_only_its_endpoint_invalid() {
    let db = TestDb::new().await;
    let client = db.migrate().await;
    let secret_looking = "-----BEGIN PRIVATE KEY-----\nTOPSECRETkeymaterial\n-----END PRIVATE KEY-----\n";
    let (cert, _) = Ca::new("c").client("x");
    let refused = client
        .execute(
            "INSERT INTO tailhook.endpoints (name, url, tls_client_cert, tls_client_key)
             VALUES ('bad', 'https://localhost/x', $1, $2)",
            &[&cert, &"not a key: TOPSECRET"],
        )
        .await
        .unwrap_err();
    let db_error = refused.as_db_error().expect("a database error");
    assert_eq!(db_error.column(), Some("tls_client_key"));
    assert!(db_error.message().starts_with("tailhook.endpoints tls_client_key: must be one unencrypted PEM"));
    assert!(!format!("{refused:?}").contains("TOPSECRET"), "the value is not echoed: {refused:?}");
    let unpaired = client
        .execute(
            "INSERT INTO tailhook.endpoints (name, url, tls_client_cert) VALUES ('half', 'https://localhost/x', $1)",
            &[&cert],
        )
        .await
        .unwrap_err();
    assert_eq!(unpaired.as_db_error().unwrap().column(), Some("tls_client_key"));
    let not_pem = client
        .execute(
            "INSERT INTO tailhook.endpoints (name, url, tls_ca_bundle) VALUES ('ca', 'https://localhost/x', 'hello')",
            &[],
        )
        .await
        .unwrap_err();
    assert_eq!(not_pem.as_db_error().unwrap().column(), Some("tls_ca_bundle"));

    // PEM-shaped, but no key inside: only tailhook can tell.
    add_tls_endpoint(&client, "shaped", "https://localhost:9/x", Some(&cert), Some(secret_looking), None).await;
    let receiver = Receiver::ok().await;
    add_endpoint(&client, "plain", &receiver.url("/hook"), &[]).await;
    let sidecar = Sidecar::start(db.config());
    client.batch_execute("SELECT tailhook.publish('mtls.test', '{}')").await.unwrap();
    wait_for("the other endpoint delivered", Duration::from_secs(10), || async { succeeded(&db, "plain").await == 1 })
        .await;
    wait_for("the endpoint marked invalid", Duration::from_secs(10), || async {
        db.count(
            "SELECT count(*) FROM tailhook.endpoints WHERE name = 'shaped' AND invalid_reason LIKE 'tls_client_key: %'",
        )
        .await
            == 1
    })
    .await;
    sidecar.stop().await;
    let reasons: Vec<String> = client
        .query("SELECT coalesce(invalid_reason, '') FROM tailhook.endpoints", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(!reasons.iter().any(|r| r.contains("TOPSECRET")), "{reasons:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_config_endpoint_takes_its_certificate_from_files_and_its_key_from_a_variable_and_never_logs_it() {
    let db = TestDb::new().await;
    let client = db.migrate().await;
    let (server_ca, client_ca) = (Ca::new("receiver CA"), Ca::new("client CA"));
    let receiver = HttpsReceiver::start(&server_ca, &client_ca).await;
    let (cert, key) = client_ca.client("tailhook-client");
    let dir = std::env::temp_dir().join(format!("tailhook-mtls-{:08x}", rand::random::<u32>()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("client.crt"), &cert).unwrap();
    std::fs::write(dir.join("ca.crt"), &server_ca.cert_pem).unwrap();
    let config = format!(
        "[database]\nurl = \"{}\"\n[delivery]\nallow_private_networks = true\n[log]\nlevel = \"debug\"\n\
         [server]\nlisten = \"\"\n[secrets]\nkeys = \"{SEALING_KEY}\"\n\
         [[endpoints]]\nname = \"bank\"\nurl = \"{}\"\ntls_client_cert_file = \"{}\"\n\
         tls_client_key_env = \"TEST_MTLS_CLIENT_KEY\"\ntls_ca_bundle_file = \"{}\"\n",
        db.config().database.url.expose(),
        receiver.url("/hook"),
        dir.join("client.crt").display(),
        dir.join("ca.crt").display(),
    );
    let binary = Binary::run(&config, &[("TEST_MTLS_CLIENT_KEY", key.as_str())]);
    wait_for("the config endpoint synced", Duration::from_secs(15), || async {
        db.count("SELECT count(*) FROM tailhook.endpoints WHERE name = 'bank'").await == 1
    })
    .await;
    client.batch_execute("SELECT tailhook.publish('mtls.test', '{}')").await.unwrap();
    wait_for("delivered with the file's certificate", Duration::from_secs(15), || async {
        succeeded(&db, "bank").await == 1
    })
    .await;
    let stored: String = client.query_one("SELECT tls_client_key FROM tailhook.endpoints", &[]).await.unwrap().get(0);
    assert!(stored.starts_with("enc:v1:"), "the key is sealed at rest");
    let (_, stderr) = binary.stop();
    assert!(!stderr.contains(&key_body(&key)), "the key is never logged");
    std::fs::write(dir.join("config.toml"), &config).unwrap();
    let check = tailhook(
        &["check-config", "--config", dir.join("config.toml").to_str().unwrap()],
        &[("TEST_MTLS_CLIENT_KEY", key.as_str())],
    );
    let printed = format!("{}{}", String::from_utf8_lossy(&check.stdout), String::from_utf8_lossy(&check.stderr));
    assert!(check.status.success(), "{printed}");
    assert!(printed.contains("tls_client_key_env") && !printed.contains(&key_body(&key)), "{printed}");
    let _ = std::fs::remove_dir_all(&dir);
}
