//! Endpoint secrets and header values sealed at rest under `[secrets] keys`: SQL-written plaintext sealed in place, rotation, unopenable rows, config endpoints, signatures unchanged.

use crate::support::{self, Receiver, Sidecar, TestDb, SECRET};
use std::time::Duration;
use tailhook::config::sealed::Keys;
use tailhook::secret::Secret;

const KEY_A: &str = "/WOQKFKFX/00vYLi5/B1QeyXGmXYsflU8qvAPElmv78=";
const KEY_B: &str = "RmQACYYketVaSOzh6W2gxVOupthHdjFf53XHIxlQcG0=";
/// A key the sidecar is never given.
const KEY_C: &str = "RKPx3jc6gNk/VHeMbbcqUXpohp6QKTqhpXuLSY5a+PA=";
const HEADER_VALUE: &str = "k-secret-header-1";

fn keys(texts: &[&str]) -> Keys {
    Keys::parse(&texts.iter().map(|t| Secret::new(*t)).collect::<Vec<_>>()).unwrap()
}

fn id_of(key: &str) -> String {
    keys(&[key]).sealing_id().unwrap().to_owned()
}

fn config(db: &TestDb, sealing: &[&str]) -> tailhook::Config {
    let mut c = db.config();
    c.secrets.keys = sealing.iter().map(|k| Secret::new(*k)).collect();
    c
}

/// Adds an endpoint with a plaintext secret and two headers, as SQL users do.
async fn add_plaintext_endpoint(client: &tokio_postgres::Client, name: &str, url: &str) {
    client
        .execute(
            "INSERT INTO tailhook.endpoints (name, url, secrets, headers)
             VALUES ($1, $2, ARRAY[$3], jsonb_build_object('x-api-key', $4::text, 'x-team', 'pay'))",
            &[&name, &url, &SECRET, &HEADER_VALUE],
        )
        .await
        .unwrap();
}

/// The endpoint's stored secrets and headers, as text.
async fn stored(db: &TestDb, name: &str) -> (Vec<String>, serde_json::Value) {
    let row = db
        .client()
        .await
        .query_one("SELECT secrets, headers::text FROM tailhook.endpoints WHERE name = $1", &[&name])
        .await
        .unwrap();
    (row.get(0), serde_json::from_str(row.get::<_, &str>(1)).unwrap())
}

/// Whether every secret and header value of the endpoint is sealed under `key`.
async fn sealed_under(db: &TestDb, name: &str, key: &str) -> bool {
    let prefix = format!("enc:v1:{}:", id_of(key));
    let (secrets, headers) = stored(db, name).await;
    !secrets.is_empty()
        && secrets.iter().all(|s| s.starts_with(&prefix))
        && headers.as_object().unwrap().values().all(|v| v.as_str().unwrap().starts_with(&prefix))
}

async fn wait_running(db: &TestDb) {
    support::wait_for("the sidecar's heartbeat", Duration::from_secs(10), || async {
        db.count("SELECT count(*) FROM tailhook.replicas").await > 0
    })
    .await;
}

/// Publishes one event and checks that `path` received it signed with the
/// plaintext secret and carrying the plaintext header value.
async fn delivered_signed(db: &TestDb, receiver: &Receiver, endpoint: &str, path: &str) {
    let before = receiver.received().iter().filter(|r| r.path == path).count();
    db.client().await.execute("SELECT tailhook.publish('order.paid', '{\"n\": 1}')", &[]).await.unwrap();
    support::wait_for("a delivery to the endpoint", Duration::from_secs(15), || async {
        receiver.received().iter().filter(|r| r.path == path).count() > before
    })
    .await;
    let got = receiver.received().into_iter().filter(|r| r.path == path).nth(before).unwrap();
    support::verify(SECRET, &got.headers, &got.body).unwrap_or_else(|e| panic!("{endpoint}: {e}"));
    assert_eq!(got.headers.get("x-api-key").unwrap(), HEADER_VALUE, "{endpoint}: the header's plaintext is sent");
}

#[tokio::test]
async fn plaintext_written_with_sql_is_sealed_in_place_within_a_second_and_still_signs() {
    let db = TestDb::new().await;
    let admin = db.migrate().await;
    let receiver = Receiver::ok().await;
    let sidecar = Sidecar::start(config(&db, &[KEY_A]));
    wait_running(&db).await;

    add_plaintext_endpoint(&admin, "billing", &receiver.url("/billing")).await;
    let written = std::time::Instant::now();
    support::wait_for("the row sealed under key A", Duration::from_secs(3), || sealed_under(&db, "billing", KEY_A))
        .await;
    let took = written.elapsed();
    assert!(took < Duration::from_millis(2_500), "sealed after {took:?}");
    let row: String = admin
        .query_one("SELECT to_jsonb(e)::text FROM tailhook.endpoints e WHERE name = 'billing'", &[])
        .await
        .unwrap()
        .get(0);
    assert!(!row.contains("MfKQ9r8") && !row.contains(HEADER_VALUE), "plaintext left in the row: {row}");
    let (_, headers) = stored(&db, "billing").await;
    assert!(headers.get("x-team").is_some(), "header names stay readable");

    delivered_signed(&db, &receiver, "billing", "/billing").await;
    sidecar.stop().await;
}

#[tokio::test]
async fn a_new_first_key_reseals_every_row_and_old_keys_can_then_be_removed() {
    let db = TestDb::new().await;
    let admin = db.migrate().await;
    let receiver = Receiver::ok().await;
    add_plaintext_endpoint(&admin, "billing", &receiver.url("/billing")).await;
    add_plaintext_endpoint(&admin, "crm", &receiver.url("/crm")).await;

    let sidecar = Sidecar::start(config(&db, &[KEY_A]));
    support::wait_for("rows sealed under A", Duration::from_secs(5), || async {
        sealed_under(&db, "billing", KEY_A).await && sealed_under(&db, "crm", KEY_A).await
    })
    .await;
    sidecar.stop().await;

    // Rotation: the new key first, the old one still listed to open.
    let sidecar = Sidecar::start(config(&db, &[KEY_B, KEY_A]));
    support::wait_for("rows sealed under B", Duration::from_secs(5), || async {
        sealed_under(&db, "billing", KEY_B).await && sealed_under(&db, "crm", KEY_B).await
    })
    .await;
    delivered_signed(&db, &receiver, "billing", "/billing").await;
    sidecar.stop().await;
    let left = db
        .count(&format!(
            "SELECT count(*) FROM tailhook.endpoints e
              WHERE EXISTS (SELECT 1 FROM unnest(e.secrets) s WHERE s LIKE 'enc:v1:{}:%')
                 OR EXISTS (SELECT 1 FROM jsonb_each_text(e.headers) h WHERE h.value LIKE 'enc:v1:{}:%')",
            id_of(KEY_A),
            id_of(KEY_A)
        ))
        .await;
    assert_eq!(left, 0, "no row still needs the old key");

    // The old key removed: everything still opens.
    let sidecar = Sidecar::start(config(&db, &[KEY_B]));
    wait_running(&db).await;
    delivered_signed(&db, &receiver, "crm", "/crm").await;
    let invalid = db.count("SELECT count(*) FROM tailhook.endpoints WHERE invalid_reason IS NOT NULL").await;
    assert_eq!(invalid, 0);
    sidecar.stop().await;
}

#[tokio::test]
async fn a_value_no_key_opens_makes_only_its_endpoint_invalid_naming_the_column() {
    let db = TestDb::new().await;
    let admin = db.migrate().await;
    let receiver = Receiver::ok().await;
    add_plaintext_endpoint(&admin, "good", &receiver.url("/good")).await;
    let foreign = keys(&[KEY_C]);
    let sealed_secret = foreign.seal(SECRET).unwrap();
    let sealed_header = foreign.seal(HEADER_VALUE).unwrap();
    admin
        .execute(
            "INSERT INTO tailhook.endpoints (name, url, secrets) VALUES ('lost-secret', $1, ARRAY[$2])",
            &[&receiver.url("/lost-secret"), &sealed_secret],
        )
        .await
        .unwrap();
    admin
        .execute(
            "INSERT INTO tailhook.endpoints (name, url, headers) VALUES ('lost-header', $1, jsonb_build_object('x-api-key', $2::text))",
            &[&receiver.url("/lost-header"), &sealed_header],
        )
        .await
        .unwrap();
    // Altered ciphertext under a key the sidecar has.
    let mut altered = keys(&[KEY_A]).seal(SECRET).unwrap();
    let last = altered.pop().unwrap();
    altered.push(if last == 'A' { 'B' } else { 'A' });
    admin
        .execute(
            "INSERT INTO tailhook.endpoints (name, url, secrets) VALUES ('altered', $1, ARRAY[$2])",
            &[&receiver.url("/altered"), &altered],
        )
        .await
        .unwrap();

    let sidecar = Sidecar::start(config(&db, &[KEY_A]));
    wait_running(&db).await;
    let reason = |name: &'static str| {
        let db = &db;
        async move {
            db.client()
                .await
                .query_one("SELECT invalid_reason FROM tailhook.endpoints WHERE name = $1", &[&name])
                .await
                .unwrap()
                .get::<_, Option<String>>(0)
        }
    };
    support::wait_for("the three endpoints marked invalid", Duration::from_secs(5), || async {
        reason("lost-secret").await.is_some()
            && reason("lost-header").await.is_some()
            && reason("altered").await.is_some()
    })
    .await;
    let c_id = id_of(KEY_C);
    assert_eq!(
        reason("lost-secret").await.unwrap(),
        format!("secrets: secrets[1] is sealed under key {c_id}, which is not among secrets.keys")
    );
    assert_eq!(
        reason("lost-header").await.unwrap(),
        format!("headers: the value of header `x-api-key` is sealed under key {c_id}, which is not among secrets.keys")
    );
    assert!(reason("altered").await.unwrap().starts_with("secrets: secrets[1] cannot be opened with key"));
    assert_eq!(reason("good").await, None);
    for name in ["lost-secret", "lost-header", "altered"] {
        let text = reason(name).await.unwrap();
        assert!(!text.contains("MfKQ9r8") && !text.contains(HEADER_VALUE) && !text.contains("enc:v1"), "{text}");
    }

    delivered_signed(&db, &receiver, "good", "/good").await;
    support::wait_for("the invalid endpoints' deliveries failed", Duration::from_secs(10), || async {
        db.count(
            "SELECT count(*) FROM tailhook.deliveries d JOIN tailhook.endpoints e ON e.id = d.endpoint_id
                   WHERE e.name <> 'good' AND d.status = 'failed'",
        )
        .await
            == 3
    })
    .await;
    assert!(receiver.received().iter().all(|r| r.path == "/good"), "nothing sent to an endpoint that cannot be opened");
    let (secrets, _) = stored(&db, "lost-secret").await;
    assert_eq!(secrets, [sealed_secret], "a value no key opens is left as it is");
    sidecar.stop().await;
}

#[tokio::test]
async fn config_file_endpoints_are_stored_sealed_and_unchanged_across_restarts() {
    let db = TestDb::new().await;
    db.migrate().await;
    let receiver = Receiver::ok().await;
    let mut c = config(&db, &[KEY_A]);
    c.endpoints = tailhook::Config::from_toml(&format!(
        "[[endpoints]]\nname = \"declared\"\nurl = \"{}\"\nsecret = \"{SECRET}\"\nheaders = {{ \"x-api-key\" = \"{HEADER_VALUE}\", \"x-team\" = \"pay\" }}",
        receiver.url("/declared")
    ))
    .unwrap()
    .endpoints;

    let sidecar = Sidecar::start(c.clone());
    wait_running(&db).await;
    assert!(sealed_under(&db, "declared", KEY_A).await, "{:?}", stored(&db, "declared").await);
    let snapshot =
        "SELECT secrets::text || headers::text || updated_at::text FROM tailhook.endpoints WHERE name = 'declared'";
    let first: String = db.client().await.query_one(snapshot, &[]).await.unwrap().get(0);
    delivered_signed(&db, &receiver, "declared", "/declared").await;
    sidecar.stop().await;

    db.client().await.execute("DELETE FROM tailhook.replicas", &[]).await.unwrap();
    let sidecar = Sidecar::start(c);
    wait_running(&db).await;
    let again: String = db.client().await.query_one(snapshot, &[]).await.unwrap().get(0);
    assert_eq!(again, first, "an unchanged endpoint keeps its sealed bytes and its updated_at");
    sidecar.stop().await;
}

#[tokio::test]
async fn without_keys_values_stay_as_written_and_requests_are_signed() {
    let db = TestDb::new().await;
    let admin = db.migrate().await;
    let receiver = Receiver::ok().await;
    add_plaintext_endpoint(&admin, "plain", &receiver.url("/plain")).await;
    let sidecar = Sidecar::start(config(&db, &[]));
    wait_running(&db).await;
    delivered_signed(&db, &receiver, "plain", "/plain").await;
    assert_eq!(stored(&db, "plain").await.0, [SECRET], "kept in plaintext, as before");
    sidecar.stop().await;
}

#[tokio::test]
async fn the_table_accepts_sealed_values_within_the_bounds_of_what_they_hold() {
    let db = TestDb::new().await;
    let admin = db.migrate().await;
    let k = keys(&[KEY_A]);
    let insert = "INSERT INTO tailhook.endpoints (name, url, secrets, headers) VALUES ($1, 'https://h.example.com/', $2, $3::text::jsonb)";
    let ok_secret = k.seal(SECRET).unwrap();
    let ok_header = serde_json::json!({ "x-api-key": k.seal(HEADER_VALUE).unwrap() }).to_string();
    admin.execute(insert, &[&"sealed", &vec![ok_secret.clone(), SECRET.to_owned()], &ok_header]).await.unwrap();

    let short = k.seal("whsec_YWJj").unwrap();
    let big_header = serde_json::json!({ "x-big": k.seal(&"v".repeat(4_097)).unwrap() }).to_string();
    let many = serde_json::Value::Object(
        (0..5).map(|i| (format!("x-h{i}"), k.seal(&"v".repeat(4_000)).unwrap().into())).collect(),
    )
    .to_string();
    let id = &ok_secret[7..15];
    let cases: [(&str, Vec<String>, String); 5] = [
        ("too short inside", vec![short], "{}".into()),
        ("not base64", vec![format!("enc:v1:{id}:!!!!")], "{}".into()),
        ("bad key id", vec![format!("enc:v1:XYZ:{}", &ok_secret[16..])], "{}".into()),
        ("header over 4 KiB inside", vec![], big_header),
        ("headers over 16 KiB inside", vec![], many),
    ];
    for (what, secrets, headers) in cases {
        let e = admin.execute(insert, &[&what, &secrets, &headers]).await.unwrap_err();
        assert_eq!(e.code().map(|c| c.code()), Some("23514"), "{what}: {e}");
    }
}

#[test]
fn check_config_prints_no_key_and_names_a_bad_one() {
    let ok = support::tailhook(&["check-config"], &[("TAILHOOK_SECRETS__KEYS", &format!("{KEY_B},{KEY_A}"))]);
    let out = String::from_utf8_lossy(&ok.stdout);
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
    assert!(
        out.contains("[secrets]") && out.contains("keys = [\n    \"[redacted]\",\n    \"[redacted]\",\n]"),
        "{out}"
    );
    assert!(!out.contains(&KEY_A[..12]) && !out.contains(&KEY_B[..12]), "{out}");

    let bad = support::tailhook(&["check-config"], &[("TAILHOOK_SECRETS__KEYS", &format!("{KEY_A} c2VjcmV0LXNob3J0"))]);
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(!bad.status.success());
    assert!(err.contains("config key `secrets.keys[1]`: is not the base64 of 32 bytes"), "{err}");
    assert!(!err.contains("c2VjcmV0") && !err.contains(&KEY_A[..12]), "{err}");
}

#[tokio::test]
async fn a_config_endpoint_tailhook_disabled_stays_disabled_when_keys_are_added_then_rotated() {
    let db = TestDb::new().await;
    let admin = db.migrate().await;
    let receiver = Receiver::ok().await;
    let declared = tailhook::Config::from_toml(&format!(
        "[[endpoints]]\nname = \"gone\"\nurl = \"{}\"\nsecret = \"{SECRET}\"\nheaders = {{ \"x-api-key\" = \"{HEADER_VALUE}\" }}",
        receiver.url("/gone")
    ))
    .unwrap()
    .endpoints;
    let start = |sealing: &[&str]| {
        let mut c = config(&db, sealing);
        c.endpoints = declared.clone();
        Sidecar::start(c)
    };
    let sidecar = start(&[]);
    wait_running(&db).await;
    sidecar.stop().await;
    assert_eq!(stored(&db, "gone").await.0, [SECRET]);
    // As after a 410 Gone.
    admin
        .execute(
            "UPDATE tailhook.endpoints SET enabled = false, auto_disabled = true,
                    disabled_reason = 'answered 410 Gone at 2026-12-07 01:00:00+00' WHERE name = 'gone'",
            &[],
        )
        .await
        .unwrap();
    let disabled = || async {
        db.count("SELECT count(*) FROM tailhook.endpoints WHERE name = 'gone' AND NOT enabled AND auto_disabled").await
            == 1
    };

    for keys in [&[KEY_A][..], &[KEY_B, KEY_A]] {
        let sidecar = start(keys);
        support::wait_for("the values sealed under the first key", Duration::from_secs(5), || {
            sealed_under(&db, "gone", keys[0])
        })
        .await;
        assert!(disabled().await, "{} key(s) re-enabled an endpoint tailhook disabled", keys.len());
        sidecar.stop().await;
    }
}
