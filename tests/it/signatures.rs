//! Compatibility (legacy) signatures per endpoint, verified by the receiver-side code the webhook modules use (Python, run here); Standard Webhooks headers on by default and off when turned off; the legacy secret sealed at rest; bad rows refused naming the column without echoing the row.

use crate::support::{self, Receiver, Sidecar, TestDb, SECRET};
use std::time::Duration;
use tailhook::secret::Secret;

/// The receivers' own verification, as each module writes it (Python
/// `hmac.compare_digest`). Reads `[[module, secret, header value, body
/// base64], ...]` on stdin, prints one `true`/`false` per case.
const VERIFIERS: &str = r#"
import base64, hashlib, hmac, json, sys, time

# GitHub's documented algorithm ("Validating webhook deliveries").
def github(payload_body, secret_token, signature_header):
    if not signature_header:
        return False
    hash_object = hmac.new(secret_token.encode('utf-8'), msg=payload_body, digestmod=hashlib.sha256)
    expected_signature = "sha256=" + hash_object.hexdigest()
    return hmac.compare_digest(expected_signature, signature_header)

# Shopify's documented Python example (X-Shopify-Hmac-Sha256, base64).
def shopify(data, secret, hmac_header):
    digest = hmac.new(secret.encode('utf-8'), data, digestmod=hashlib.sha256).digest()
    computed_hmac = base64.b64encode(digest)
    return hmac.compare_digest(computed_hmac, hmac_header.encode('utf-8'))

# A Django module's receiver (Cidadao / TimeTracker): `sha256=<hex>`.
def cidadao(body, secret, received):
    expected = 'sha256=' + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, received)

# The timestamped form, as Stripe-style receivers check it.
def timestamped(body, secret, header, tolerance=300):
    parts = dict(item.split('=', 1) for item in header.split(','))
    signed_payload = parts['t'].encode() + b'.' + body
    expected = hmac.new(secret.encode(), signed_payload, hashlib.sha256).hexdigest()
    if abs(time.time() - int(parts['t'])) > tolerance:
        return False
    return hmac.compare_digest(expected, parts['v1'])

# IntelliDocs' receiver: the signature is over the payload as its sender
# serialised it, json.dumps(payload, sort_keys=True), so it re-serialises.
def intellidocs(request_body, secret, signature):
    payload = json.loads(request_body)
    expected = hmac.new(secret.encode('utf-8'), json.dumps(payload, sort_keys=True).encode('utf-8'), hashlib.sha256).hexdigest()
    return hmac.compare_digest(f'sha256={expected}', signature)

# The same receiver written over the raw body instead (what GitHub-style code does).
def raw_body_is_python_form(body, secret, header):
    return body == json.dumps(json.loads(body), sort_keys=True).encode()

def sha512_hex(body, secret, received):
    expected = hmac.new(secret.encode(), body, hashlib.sha512).hexdigest()
    return hmac.compare_digest(expected, received)

checks = {
    'github': lambda body, secret, header: github(body, secret, header),
    'shopify': shopify, 'cidadao': cidadao, 'timestamped': timestamped, 'sha512': sha512_hex,
    'intellidocs': intellidocs, 'python_form': raw_body_is_python_form,
}
cases = json.load(sys.stdin)
print(json.dumps([checks[m](base64.b64decode(b), s, h) for m, s, h, b in cases]))
"#;

/// Runs [`VERIFIERS`] with python3 on `(module, secret, header value, body)`.
fn python_verifies(cases: &[(&str, &str, &str, &[u8])]) -> Vec<bool> {
    use base64::Engine;
    use std::io::Write;
    let input: Vec<serde_json::Value> = cases
        .iter()
        .map(|(m, s, h, b)| serde_json::json!([m, s, h, base64::engine::general_purpose::STANDARD.encode(b)]))
        .collect();
    let mut child = std::process::Command::new("python3")
        .args(["-c", VERIFIERS])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("python3");
    child.stdin.take().unwrap().write_all(serde_json::to_string(&input).unwrap().as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "python3: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

const GITHUB_SECRET: &str = "It's a Secret to Everybody";
const SHOPIFY_SECRET: &str = "shpss_legacy_secret_0123";
const CIDADAO_SECRET: &str = "your-secret-key-here";
const STRIPE_SECRET: &str = "whsec_not_standard_webhooks_1";
const SHA512_SECRET: &str = "sixteen-bytes-at-least";

async fn add_legacy(
    client: &tokio_postgres::Client,
    name: &str,
    url: &str,
    signature: serde_json::Value,
    secret: &str,
    standard: bool,
) {
    client
        .execute(
            "INSERT INTO tailhook.endpoints (name, url, secrets, legacy_signature, legacy_secret, standard_signature)
             VALUES ($1, $2, ARRAY[$3], $4::text::jsonb, $5, $6)",
            &[&name, &url, &SECRET, &signature.to_string(), &secret, &standard],
        )
        .await
        .unwrap();
}

fn header<'a>(got: &'a support::receiver::Received, name: &str) -> &'a str {
    got.headers.get(name).unwrap_or_else(|| panic!("no {name} header")).to_str().unwrap()
}

#[tokio::test]
async fn each_legacy_form_verifies_with_the_receivers_own_code_beside_standard_webhooks() {
    let db = TestDb::new().await;
    let admin = db.migrate().await;
    let receiver = Receiver::ok().await;
    use serde_json::json;
    add_legacy(
        &admin,
        "github",
        &receiver.url("/github"),
        json!({"header": "X-Hub-Signature-256", "prefix": "sha256="}),
        GITHUB_SECRET,
        true,
    )
    .await;
    add_legacy(
        &admin,
        "shopify",
        &receiver.url("/shopify"),
        json!({"header": "X-Shopify-Hmac-Sha256", "algorithm": "sha256", "encoding": "base64"}),
        SHOPIFY_SECRET,
        true,
    )
    .await;
    add_legacy(
        &admin,
        "cidadao",
        &receiver.url("/cidadao"),
        json!({"header": "X-Cidadao-Signature", "prefix": "sha256=", "encoding": "hex"}),
        CIDADAO_SECRET,
        false,
    )
    .await;
    add_legacy(
        &admin,
        "stripe",
        &receiver.url("/stripe"),
        json!({"header": "X-Signature", "format": "timestamped"}),
        STRIPE_SECRET,
        true,
    )
    .await;
    add_legacy(
        &admin,
        "sha512",
        &receiver.url("/sha512"),
        json!({"header": "X-Signature-512", "algorithm": "sha512"}),
        SHA512_SECRET,
        true,
    )
    .await;
    // Signed over the body actually sent: here, what a transform makes.
    add_legacy(
        &admin,
        "transformed",
        &receiver.url("/transformed"),
        json!({"header": "X-Hub-Signature-256", "prefix": "sha256="}),
        GITHUB_SECRET,
        true,
    )
    .await;
    admin
        .execute(
            "UPDATE tailhook.endpoints SET transform = '#{ text: \"paid \" + event.data.n }' WHERE name = 'transformed'",
            &[],
        )
        .await
        .unwrap();

    let sidecar = Sidecar::start(db.config());
    admin.execute("SELECT tailhook.publish('order.paid', '{\"n\": 1, \"note\": \"café ☃\"}')", &[]).await.unwrap();
    let paths = ["/github", "/shopify", "/cidadao", "/stripe", "/sha512", "/transformed"];
    support::wait_for("one request to each endpoint", Duration::from_secs(15), || async {
        let got = receiver.received();
        paths.iter().all(|p| got.iter().any(|r| r.path == *p))
    })
    .await;
    sidecar.stop().await;
    let got = receiver.received();
    let at = |path: &str| got.iter().find(|r| r.path == path).unwrap();
    let (github, shopify, cidadao, stripe, sha512, transformed) =
        (at("/github"), at("/shopify"), at("/cidadao"), at("/stripe"), at("/sha512"), at("/transformed"));
    assert!(stripe.headers.get("x-signature").unwrap().to_str().unwrap().starts_with("t="));
    assert_eq!(transformed.json(), json!({"text": "paid 1"}), "the transform made the body");

    let verified = python_verifies(&[
        ("github", GITHUB_SECRET, header(github, "x-hub-signature-256"), &github.body),
        ("shopify", SHOPIFY_SECRET, header(shopify, "x-shopify-hmac-sha256"), &shopify.body),
        ("cidadao", CIDADAO_SECRET, header(cidadao, "x-cidadao-signature"), &cidadao.body),
        ("timestamped", STRIPE_SECRET, header(stripe, "x-signature"), &stripe.body),
        ("sha512", SHA512_SECRET, header(sha512, "x-signature-512"), &sha512.body),
        ("github", GITHUB_SECRET, header(transformed, "x-hub-signature-256"), &transformed.body),
        // A wrong legacy secret, and a body changed by one byte, fail.
        ("github", "It's a Secret to Everybody!", header(github, "x-hub-signature-256"), &github.body),
        ("shopify", CIDADAO_SECRET, header(shopify, "x-shopify-hmac-sha256"), &shopify.body),
        ("timestamped", SHA512_SECRET, header(stripe, "x-signature"), &stripe.body),
        ("sha512", GITHUB_SECRET, header(sha512, "x-signature-512"), &sha512.body),
        ("cidadao", CIDADAO_SECRET, header(cidadao, "x-cidadao-signature"), &[&cidadao.body[..], b" "].concat()),
    ]);
    assert_eq!(verified, [true, true, true, true, true, true, false, false, false, false, false]);

    // Standard Webhooks headers are still sent by default, and verify...
    for r in [github, shopify, stripe, sha512, transformed] {
        support::verify(SECRET, &r.headers, &r.body).unwrap_or_else(|e| panic!("{}: {e}", r.path));
    }
    // ...and are absent where the endpoint turned them off.
    for name in ["webhook-id", "webhook-timestamp", "webhook-signature"] {
        assert!(cidadao.headers.get(name).is_none(), "{name} sent although standard_signature is false");
    }
}

#[tokio::test]
async fn the_legacy_secret_is_sealed_at_rest_and_still_signs() {
    const KEY: &str = "/WOQKFKFX/00vYLi5/B1QeyXGmXYsflU8qvAPElmv78=";
    let db = TestDb::new().await;
    let admin = db.migrate().await;
    let receiver = Receiver::ok().await;
    let signature = serde_json::json!({"header": "X-Hub-Signature-256", "prefix": "sha256="});
    add_legacy(&admin, "github", &receiver.url("/github"), signature, GITHUB_SECRET, true).await;
    let mut config = db.config();
    config.secrets.keys = vec![Secret::new(KEY)];
    let sidecar = Sidecar::start(config);
    support::wait_for("the legacy secret sealed", Duration::from_secs(5), || async {
        db.count("SELECT count(*) FROM tailhook.endpoints WHERE legacy_secret LIKE 'enc:v1:%'").await == 1
    })
    .await;
    let row: String = admin
        .query_one("SELECT to_jsonb(e)::text FROM tailhook.endpoints e WHERE name = 'github'", &[])
        .await
        .unwrap()
        .get(0);
    assert!(!row.contains("Secret to Everybody"), "plaintext left in the row: {row}");
    admin.execute("SELECT tailhook.publish('order.paid', '{\"n\": 1}')", &[]).await.unwrap();
    support::wait_for("a delivery", Duration::from_secs(15), || async { !receiver.received().is_empty() }).await;
    sidecar.stop().await;
    let got = &receiver.received()[0];
    let verified = python_verifies(&[("github", GITHUB_SECRET, header(got, "x-hub-signature-256"), &got.body)]);
    assert_eq!(verified, [true], "signed with the plaintext legacy secret");
}

#[tokio::test]
async fn config_file_endpoints_take_a_legacy_signature_and_secret_from_the_environment() {
    let db = TestDb::new().await;
    let admin = db.migrate().await;
    let receiver = Receiver::ok().await;
    std::env::set_var("IT_LEGACY_SECRET", CIDADAO_SECRET);
    let file = tailhook::Config::from_toml(&format!(
        r#"[[endpoints]]
name = "timetracker"
url = "{}"
legacy_signature = {{ header = "X-TimeTracker-Signature", prefix = "sha256=" }}
legacy_secret_env = "IT_LEGACY_SECRET"
standard_signature = false
"#,
        receiver.url("/tt")
    ))
    .unwrap();
    let mut config = db.config();
    config.endpoints = file.endpoints;
    let sidecar = Sidecar::start(config);
    support::wait_for("the endpoint synced", Duration::from_secs(10), || async {
        db.count("SELECT count(*) FROM tailhook.endpoints WHERE name = 'timetracker'").await == 1
    })
    .await;
    admin.execute("SELECT tailhook.publish('order.paid', '{\"n\": 1}')", &[]).await.unwrap();
    support::wait_for("a delivery", Duration::from_secs(15), || async { !receiver.received().is_empty() }).await;
    sidecar.stop().await;
    let got = &receiver.received()[0];
    assert!(got.headers.get("webhook-signature").is_none());
    let verified = python_verifies(&[("cidadao", CIDADAO_SECRET, header(got, "x-timetracker-signature"), &got.body)]);
    assert_eq!(verified, [true]);
}

#[tokio::test]
async fn intellidocs_verification_over_json_dumps_sort_keys_passes_with_body_python_sorted() {
    const INTELLIDOCS_SECRET: &str = "intellidocs-webhook-secret";
    let db = TestDb::new().await;
    let admin = db.migrate().await;
    let receiver = Receiver::ok().await;
    let signature =
        |body: &str| serde_json::json!({"header": "X-IntelliDocs-Signature", "prefix": "sha256=", "body": body});
    add_legacy(&admin, "sorted", &receiver.url("/sorted"), signature("python_sorted"), INTELLIDOCS_SECRET, true).await;
    // Without the option: the body as tailhook writes it (serde's form).
    add_legacy(&admin, "as-is", &receiver.url("/as-is"), signature("unchanged"), INTELLIDOCS_SECRET, true).await;
    let sidecar = Sidecar::start(db.config());
    // Non-ASCII (BMP and beyond), floats in several notations, an integer
    // beyond 64 bits, keys out of order, nested values.
    admin
        .execute(
            "SELECT tailhook.publish('document.signed', $1::text::jsonb)",
            &[&r#"{"title": "Überweisung ☃ 😀", "z": 1.5e-7, "amount": 12.50,
                   "ratio": 0.30000000000000004, "big": 123456789012345678901234567890, "tiny": 2.5e-300,
                   "nested": {"b": [1.0, 2.25, 1e16, -0.0], "a": null, "quote": "a \"b\" \\ c\n\u0007"}}"#],
        )
        .await
        .unwrap();
    support::wait_for("both requests", Duration::from_secs(15), || async { receiver.received().len() >= 2 }).await;
    sidecar.stop().await;
    let got = receiver.received();
    let at = |path: &str| got.iter().find(|r| r.path == path).unwrap();
    let (sorted, as_is) = (at("/sorted"), at("/as-is"));
    assert_eq!(sorted.json(), as_is.json(), "the same JSON value either way");
    let verified = python_verifies(&[
        ("intellidocs", INTELLIDOCS_SECRET, header(sorted, "x-intellidocs-signature"), &sorted.body),
        ("python_form", "", "", &sorted.body),
        ("github", INTELLIDOCS_SECRET, header(sorted, "x-intellidocs-signature"), &sorted.body),
        ("intellidocs", "wrong-intellidocs-secret", header(sorted, "x-intellidocs-signature"), &sorted.body),
        ("intellidocs", INTELLIDOCS_SECRET, header(as_is, "x-intellidocs-signature"), &as_is.body),
    ]);
    assert_eq!(verified, [true, true, true, false, false], "sorted ok ×3, wrong secret, and the unchanged body fails");
    support::verify(SECRET, &sorted.headers, &sorted.body).expect("Standard Webhooks over the same bytes");
}

/// Every way the row could reach the writer's error log: message, detail,
/// hint, and the error's whole `Debug` and `Display` forms.
fn full_text(e: &tokio_postgres::Error) -> String {
    let db = e.as_db_error().expect("a database error");
    format!("{} | {:?} | {:?} | {e} | {e:?}", db.message(), db.detail(), db.hint())
}

#[tokio::test]
async fn a_bad_row_written_with_sql_is_refused_naming_the_column_without_echoing_the_row() {
    let db = TestDb::new().await;
    let admin = db.migrate().await;
    let url = "https://hooks.example.com/path-token-4711";
    let good_secret = SECRET;
    // (column, statement, values that must not show)
    let insert = "INSERT INTO tailhook.endpoints (name, url, secrets, headers, legacy_signature, legacy_secret)
                  VALUES ($1, $2, $3, $4::text::jsonb, $5::text::jsonb, $6)";
    let header_value = "hdr-value-9931";
    let headers = serde_json::json!({"x-api-key": header_value}).to_string();
    let cases: Vec<(&str, [Option<String>; 6])> = vec![
        (
            "secrets",
            [
                Some("ep-a".into()),
                Some(url.into()),
                Some("your-secret-key-here".into()),
                Some(headers.clone()),
                None,
                None,
            ],
        ),
        (
            "headers",
            [
                Some("ep-b".into()),
                Some(url.into()),
                Some(good_secret.into()),
                Some(serde_json::json!({"x-api-key": 5, "x-other": header_value}).to_string()),
                None,
                None,
            ],
        ),
        (
            "url",
            [
                Some("ep-c".into()),
                Some("ftp://files.example.com/drop-token-1".into()),
                Some(good_secret.into()),
                Some(headers.clone()),
                None,
                None,
            ],
        ),
        (
            "legacy_secret",
            [
                Some("ep-d".into()),
                Some(url.into()),
                Some(good_secret.into()),
                Some(headers.clone()),
                Some(r#"{"header": "X-Hub-Signature-256"}"#.into()),
                Some("short-secret".into()),
            ],
        ),
        (
            "legacy_signature",
            [
                Some("ep-e".into()),
                Some(url.into()),
                Some(good_secret.into()),
                Some(headers.clone()),
                Some(r#"{"header": "webhook-signature"}"#.into()),
                Some("a-long-enough-legacy-secret".into()),
            ],
        ),
    ];
    for (column, values) in &cases {
        let [name, url, secret, headers, legacy_signature, legacy_secret] = values;
        let secrets: Vec<&str> = secret.iter().map(String::as_str).collect();
        let e = admin
            .execute(insert, &[name, url, &secrets, headers, legacy_signature, legacy_secret])
            .await
            .expect_err(column);
        let dbe = e.as_db_error().unwrap();
        assert_eq!(dbe.code(), &tokio_postgres::error::SqlState::CHECK_VIOLATION, "{column}");
        assert_eq!(dbe.column(), Some(*column), "{column}");
        assert!(dbe.message().contains(&format!("{column}:")), "{column}: {}", dbe.message());
        assert_eq!(dbe.detail(), None, "{column}");
        let text = full_text(&e);
        for value in values.iter().flatten().filter(|v| !v.starts_with("ep-") && !v.starts_with("{\"header")) {
            assert!(!text.contains(value.as_str()), "{column}: `{value}` shown in {text}");
        }
        for shown in [header_value, "path-token", "drop-token", "your-secret", "MfKQ9r8"] {
            assert!(!text.contains(shown), "{column}: `{shown}` shown in {text}");
        }
    }
    // An UPDATE is checked the same way.
    admin
        .execute("INSERT INTO tailhook.endpoints (name, url, secrets) VALUES ('ok', $1, ARRAY[$2])", &[&url, &SECRET])
        .await
        .unwrap();
    let e = admin
        .execute("UPDATE tailhook.endpoints SET secrets = ARRAY['your-secret-key-here'] WHERE name = 'ok'", &[])
        .await
        .unwrap_err();
    assert_eq!(e.as_db_error().unwrap().column(), Some("secrets"));
    let text = full_text(&e);
    assert!(!text.contains("your-secret") && !text.contains("path-token"), "{text}");
    // A NULL where NOT NULL holds: PostgreSQL's own error would show the row too.
    let e = admin
        .execute(
            "INSERT INTO tailhook.endpoints (name, url, secrets, headers) VALUES ('n', $1, NULL, $2::text::jsonb)",
            &[&url, &headers],
        )
        .await
        .unwrap_err();
    let dbe = e.as_db_error().unwrap();
    assert_eq!(dbe.code(), &tokio_postgres::error::SqlState::NOT_NULL_VIOLATION);
    assert_eq!((dbe.column(), dbe.detail()), (Some("secrets"), None));
    let text = full_text(&e);
    assert!(!text.contains(header_value) && !text.contains("path-token"), "{text}");
}

/// `legacy_signature` and `legacy_secret` are judged alike by the table
/// (`tailhook.legacy_signature_problem`, `tailhook.legacy_secret_valid`) and
/// by tailhook (`rules::legacy`, which the config file and loaded rows use).
#[tokio::test]
async fn the_table_and_the_config_rules_agree_on_legacy_signatures() {
    let db = TestDb::new().await;
    let admin = db.migrate().await;
    let secret = "sixteen-bytes-ok";
    let signatures = [
        r#"{"header": "X-Hub-Signature-256", "prefix": "sha256="}"#,
        r#"{"header": "x", "algorithm": "sha512", "encoding": "base64", "format": "timestamped", "body": "python_sorted"}"#,
        r#"{"header": "X-Sig", "prefix": ""}"#,
        r#"{"header": "X-Sig", "prefix": "~!#$%^&*()_+{}|:<>?"}"#,
        r#"{}"#,
        r#"[]"#,
        r#""X-Sig""#,
        r#"{"header": ""}"#,
        r#"{"header": 5}"#,
        r#"{"header": "X Sig"}"#,
        r#"{"header": "X-Sig:"}"#,
        r#"{"header": "Webhook-Signature"}"#,
        r#"{"header": "content-type"}"#,
        r#"{"header": "Host"}"#,
        r#"{"header": "X-Sig", "algorithm": "SHA256"}"#,
        r#"{"header": "X-Sig", "algorithm": "md5"}"#,
        r#"{"header": "X-Sig", "encoding": "base32"}"#,
        r#"{"header": "X-Sig", "format": "stripe"}"#,
        r#"{"header": "X-Sig", "body": "sorted"}"#,
        r#"{"header": "X-Sig", "prefix": "sha256= "}"#,
        r#"{"header": "X-Sig", "prefix": "é"}"#,
        r#"{"header": "X-Sig", "prefix": 1}"#,
        r#"{"header": "X-Sig", "extra": 1}"#,
    ];
    let long_header = format!(r#"{{"header": "{}"}}"#, "x".repeat(129));
    let max_header = format!(r#"{{"header": "{}"}}"#, "x".repeat(128));
    let long_prefix = format!(r#"{{"header": "X-Sig", "prefix": "{}"}}"#, "p".repeat(65));
    for text in signatures.iter().copied().chain([long_header.as_str(), max_header.as_str(), long_prefix.as_str()]) {
        let value: serde_json::Value = serde_json::from_str(text).unwrap();
        let problem: Option<String> = admin
            .query_one("SELECT tailhook.legacy_signature_problem($1::text::jsonb)", &[&text])
            .await
            .unwrap()
            .get(0);
        let rust = tailhook::config::rules::legacy(Some(&value), Some(secret));
        assert_eq!(problem.is_none(), rust.is_ok(), "{text}: SQL {problem:?}, rules {:?}", rust.err());
    }
    let signature = serde_json::json!({"header": "X-Sig"});
    for len in [0, 15, 16, 200, 256, 257] {
        let secret = "s".repeat(len);
        let sql: bool = admin.query_one("SELECT tailhook.legacy_secret_valid($1)", &[&secret]).await.unwrap().get(0);
        let rust = tailhook::config::rules::legacy(Some(&signature), Some(&secret));
        assert_eq!(sql, rust.is_ok(), "{len} bytes");
        assert_eq!(sql, (16..=256).contains(&len), "{len} bytes");
    }
    // Multi-byte characters count as bytes on both sides.
    let secret = "é".repeat(8);
    let sql: bool = admin.query_one("SELECT tailhook.legacy_secret_valid($1)", &[&secret]).await.unwrap().get(0);
    assert!(sql && tailhook::config::rules::legacy(Some(&signature), Some(&secret)).is_ok());
}
