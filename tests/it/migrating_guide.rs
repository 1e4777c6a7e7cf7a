//! docs/guide/migrating.md run as written: every ```sql block is marked `-- tested: <what>` and executed here against a legacy webhook table with sample rows, then a sidecar delivers to the imported endpoints.

use crate::support::*;
use std::collections::BTreeMap;
use std::time::Duration;
use tokio_postgres::SimpleQueryMessage;

const GUIDE: &str = include_str!("../../docs/guide/migrating.md");

/// The blocks this file runs, by their `-- tested:` label.
const RUN_HERE: &[&str] = &[
    "legacy table",
    "legacy import",
    "legacy skipped",
    "legacy body",
    "legacy signature",
    "cut over",
    "retire old",
    "legacy stats",
    "drop legacy header",
    "back to the old module",
];

/// Every ```sql block of the guide, by label; a block without a label fails.
fn guide_sql() -> BTreeMap<String, String> {
    let mut blocks = BTreeMap::new();
    let mut lines = GUIDE.lines();
    while let Some(line) = lines.next() {
        if line.trim() != "```sql" {
            continue;
        }
        let indent = line.len() - line.trim_start().len();
        let body: Vec<&str> =
            lines.by_ref().take_while(|l| l.trim() != "```").map(|l| l.get(indent..).unwrap_or("")).collect();
        let sql = body.join("\n");
        let label = body
            .first()
            .and_then(|l| l.strip_prefix("-- tested: "))
            .unwrap_or_else(|| panic!("a ```sql block of the guide is not marked `-- tested: …`:\n{sql}"));
        assert!(blocks.insert(label.trim().to_owned(), sql).is_none(), "two blocks are marked `{label}`");
    }
    blocks
}

/// Text values of the rows a statement returns.
async fn rows(client: &tokio_postgres::Client, sql: &str) -> Vec<Vec<Option<String>>> {
    let messages = client.simple_query(sql).await.unwrap_or_else(|e| panic!("{}\n{sql}", report(&e)));
    messages
        .iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(r) => Some((0..r.len()).map(|i| r.get(i).map(str::to_owned)).collect()),
            _ => None,
        })
        .collect()
}

/// user_id, url, events, secret, is_active, max_retries, retry_delay, timeout, auth_type, auth_value.
type Sample<'a> = (i64, String, &'a str, &'a str, bool, i32, i32, i32, &'a str, &'a str);

/// The legacy table of the guide with sample rows: an empty events list and
/// a bearer token, a kept whsec_ secret and basic auth, an inactive API-key
/// endpoint, a URL tailhook refuses, and values beyond tailhook's bounds.
async fn legacy(
    client: &tokio_postgres::Client,
    sql: &BTreeMap<String, String>,
    receiver: &Receiver,
    text_array: bool,
) {
    client.batch_execute(&sql["legacy table"]).await.unwrap_or_else(|e| panic!("legacy table: {}", report(&e)));
    let samples: [Sample; 5] = [
        (7, receiver.url("/hook-a"), "[]", "your-secret-key-here", true, 3, 60, 30, "bearer", "tok-123"),
        (
            8,
            receiver.url("/hook-b"),
            r#"["invoice.paid", "invoice.voided", "invoice.paid"]"#,
            SECRET,
            true,
            5,
            10,
            5,
            "Basic",
            "alice:s3cret",
        ),
        (7, receiver.url("/hook-c"), r#"["invoice.paid"]"#, "", false, 0, 1, 120, "api_key", "k-1"),
        (9, "ftp://old.example.com/hook".into(), "[]", "s", true, 3, 60, 30, "none", ""),
        (9, receiver.url("/hook-e"), "[]", "x", true, 2_000, 100_000, 1, "none", ""),
    ];
    for (user, url, events, secret, active, retries, delay, timeout, auth, value) in samples {
        client
            .execute(
                "INSERT INTO webhooks_webhook (user_id, url, events, secret, is_active, max_retries, retry_delay, timeout,
                                               auth_type, auth_value, created_at)
                 VALUES ($1, $2, $3::text::jsonb, $4, $5, $6, $7, $8, $9, $10, '2024-03-01 12:00+00')",
                &[&user, &url, &events, &secret, &active, &retries, &delay, &timeout, &auth, &value],
            )
            .await
            .unwrap();
    }
    if text_array {
        client
            .batch_execute(
                "ALTER TABLE webhooks_webhook ALTER events DROP DEFAULT,
                   ALTER events TYPE text[] USING translate(events::text, '[]', '{}')::text[],
                   ALTER events SET DEFAULT '{}'",
            )
            .await
            .unwrap();
    }
}

/// An imported endpoint row, with `url` as its path and whether `created_at` was kept.
#[derive(Debug, Clone, PartialEq)]
struct Imported {
    name: String,
    tenant: Option<String>,
    path: String,
    event_types: Vec<String>,
    enabled: bool,
    disabled_reason: Option<String>,
    limits: [i32; 4],
    headers: String,
    secrets: Vec<String>,
    created_at_kept: bool,
}

async fn imported(client: &tokio_postgres::Client) -> Vec<Imported> {
    client
        .query(
            "SELECT name, tenant, regexp_replace(url, '^https?://[^/]+', ''), event_types, enabled, disabled_reason,
                    max_attempts, backoff_initial_ms, backoff_max_ms, timeout_ms, headers::text, secrets,
                    created_at = '2024-03-01 12:00+00'
               FROM tailhook.endpoints ORDER BY name",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| Imported {
            name: r.get(0),
            tenant: r.get(1),
            path: r.get(2),
            event_types: r.get(3),
            enabled: r.get(4),
            disabled_reason: r.get(5),
            limits: [r.get(6), r.get(7), r.get(8), r.get(9)],
            headers: r.get(10),
            secrets: r.get(11),
            created_at_kept: r.get(12),
        })
        .collect()
}

/// Checks the imported rows; returns the secret minted for legacy-1.
fn check_import(got: &[Imported]) -> String {
    use base64::Engine;
    let basic = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode("alice:s3cret"));
    let cut = "imported: enable to cut over";
    let row =
        |name: &str, tenant: &str, path: &str, types: &[&str], reason: &str, limits: [i32; 4], headers: String| {
            Imported {
                name: name.into(),
                tenant: Some(tenant.into()),
                path: path.into(),
                event_types: types.iter().map(|t| t.to_string()).collect(),
                enabled: false,
                disabled_reason: Some(reason.into()),
                limits,
                headers,
                secrets: Vec::new(),
                created_at_kept: true,
            }
        };
    let without_secrets: Vec<Imported> = got.iter().map(|r| Imported { secrets: Vec::new(), ..r.clone() }).collect();
    // limits: max_attempts, backoff_initial_ms, backoff_max_ms, timeout_ms. The ftp:// row is skipped.
    assert_eq!(
        without_secrets,
        vec![
            row(
                "legacy-1",
                "7",
                "/hook-a",
                &["*"],
                cut,
                [4, 60_000, 60_000, 30_000],
                r#"{"authorization": "Bearer tok-123"}"#.into()
            ),
            row(
                "legacy-2",
                "8",
                "/hook-b",
                &["invoice.paid", "invoice.voided"],
                cut,
                [6, 10_000, 10_000, 5_000],
                format!(r#"{{"authorization": "{basic}"}}"#),
            ),
            row(
                "legacy-3",
                "7",
                "/hook-c",
                &["invoice.paid"],
                "inactive in the old module",
                [1, 1_000, 1_000, 60_000],
                r#"{"x-api-key": "k-1"}"#.into(),
            ),
            row("legacy-5", "9", "/hook-e", &["*"], cut, [1_000, 86_400_000, 86_400_000, 1_000], "{}".into()),
        ]
    );
    assert_eq!(got[1].secrets, [SECRET], "a valid whsec_ secret is kept");
    let minted: Vec<&String> = [&got[0], &got[2], &got[3]]
        .iter()
        .map(|r| {
            assert_eq!(r.secrets.len(), 1, "{}", r.name);
            &r.secrets[0]
        })
        .collect();
    for secret in &minted {
        let key =
            base64::engine::general_purpose::STANDARD.decode(secret.strip_prefix("whsec_").expect("whsec_")).unwrap();
        assert_eq!(key.len(), 48, "{secret}");
    }
    assert!(minted[0] != minted[1] && minted[1] != minted[2] && minted[0] != minted[2], "each minted secret is new");
    minted[0].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_migration_guide_imports_a_legacy_module_and_cuts_over_with_its_own_statements() {
    let sql = guide_sql();
    let labels: Vec<&str> = sql.keys().map(String::as_str).collect();
    let mut expected = RUN_HERE.to_vec();
    expected.sort();
    assert_eq!(labels, expected, "every ```sql block of the guide is run by this test");
    let receiver = Receiver::ok().await;

    // events as text[]: the same statement reads it.
    let array_db = TestDb::new().await;
    let client = array_db.migrate().await;
    legacy(&client, &sql, &receiver, true).await;
    let kind: String =
        client.query_one("SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = 'webhooks_webhook'::regclass AND attname = 'events'", &[]).await.unwrap().get(0);
    assert_eq!(kind, "text[]");
    client
        .batch_execute(&sql["legacy import"])
        .await
        .unwrap_or_else(|e| panic!("legacy import (text[]): {}", report(&e)));
    check_import(&imported(&client).await);

    // events as jsonb, as the guide's table has it.
    let db = TestDb::new().await;
    let client = db.migrate().await;
    legacy(&client, &sql, &receiver, false).await;
    client.batch_execute(&sql["legacy import"]).await.unwrap_or_else(|e| panic!("legacy import: {}", report(&e)));
    let first = imported(&client).await;
    let minted = check_import(&first);
    // Run again: nothing added, nothing changed.
    client.batch_execute(&sql["legacy import"]).await.unwrap();
    assert_eq!(imported(&client).await, first, "the import runs again without changing anything");
    assert_eq!(rows(&client, &sql["legacy skipped"]).await, vec![vec![Some("4".to_owned()), Some("9".to_owned())]]);

    client.batch_execute(&sql["legacy body"]).await.unwrap_or_else(|e| panic!("legacy body: {}", report(&e)));
    let signed = client
        .execute(&sql["legacy signature"], &[])
        .await
        .unwrap_or_else(|e| panic!("legacy signature: {}", report(&e)));
    assert_eq!(signed, 1, "only legacy-1's old secret (your-secret-key-here) is not whsec_ and long enough");
    let cut = rows(&client, &sql["cut over"]).await;
    let t = |v: &str| Some(v.to_owned());
    assert_eq!(cut, vec![vec![t("1"), t("t")], vec![t("2"), t("t")]], "the inactive legacy-3 is not cut over");

    let sidecar = Sidecar::start(db.config());
    for tenant in ["7", "8", "9"] {
        client
            .execute("SELECT tailhook.publish('invoice.paid', jsonb_build_object('invoice', $1::text), $1)", &[&tenant])
            .await
            .unwrap();
    }
    wait_for("both cut-over endpoints delivered", Duration::from_secs(20), || async {
        succeeded(&db, "legacy-1").await + succeeded(&db, "legacy-2").await == 2
    })
    .await;

    let mut got: Vec<_> = receiver.received();
    got.sort_by(|a, b| a.path.cmp(&b.path));
    let paths: Vec<&str> = got.iter().map(|r| r.path.as_str()).collect();
    assert_eq!(paths, ["/hook-a", "/hook-b"], "only the enabled endpoints, each its tenant's event");
    use base64::Engine;
    let basic = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode("alice:s3cret"));
    for (r, (auth, secret, tenant)) in
        got.iter().zip([("Bearer tok-123", minted.as_str(), "7"), (basic.as_str(), SECRET, "8")])
    {
        assert_eq!(r.headers.get("authorization").and_then(|v| v.to_str().ok()), Some(auth), "{}", r.path);
        verify(secret, &r.headers, &r.body).unwrap_or_else(|e| panic!("{}: {e}", r.path));
        // The legacy header, as the old module's receivers check it, on the endpoint that had one.
        let legacy = r.headers.get("x-cidadao-signature").and_then(|v| v.to_str().ok());
        if r.path == "/hook-a" {
            use hmac::Mac;
            let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(b"your-secret-key-here").unwrap();
            mac.update(&r.body);
            let hex: String = mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect();
            assert_eq!(legacy, Some(format!("sha256={hex}").as_str()), "{}", r.path);
        } else {
            assert_eq!(legacy, None, "{}", r.path);
        }
        let body = r.json();
        assert_eq!(body["event"], "invoice.paid", "{body}");
        assert_eq!(body["data"], serde_json::json!({ "invoice": tenant }), "{body}");
        assert!(body["timestamp"].is_string(), "{body}");
    }

    let retired =
        client.execute(&sql["retire old"], &[]).await.unwrap_or_else(|e| panic!("retire old: {}", report(&e)));
    assert_eq!(retired, 2);
    let active: Vec<(i64, bool)> = client
        .query("SELECT id, is_active FROM webhooks_webhook ORDER BY id", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(active, [(1, false), (2, false), (3, false), (4, true), (5, true)]);

    let stats = rows(&client, &sql["legacy stats"]).await;
    let delivered: Vec<(Option<String>, Option<String>)> = stats.iter().map(|r| (r[0].clone(), r[1].clone())).collect();
    assert_eq!(
        delivered,
        [(t("legacy-1"), t("1")), (t("legacy-2"), t("1")), (t("legacy-3"), t("0")), (t("legacy-5"), t("0"))]
    );

    let dropped = client
        .execute(&sql["drop legacy header"], &[])
        .await
        .unwrap_or_else(|e| panic!("drop legacy header: {}", report(&e)));
    assert_eq!(dropped, 1);
    let left: i64 = client
        .query_one(
            "SELECT count(*) FROM tailhook.endpoints WHERE legacy_signature IS NOT NULL OR legacy_secret IS NOT NULL",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(left, 0, "no endpoint keeps a legacy header or secret");
    client
        .batch_execute(&sql["back to the old module"])
        .await
        .unwrap_or_else(|e| panic!("back to the old module: {}", report(&e)));
    let state: (bool, bool) = client
        .query_one(
            "SELECT e.enabled, w.is_active FROM tailhook.endpoints e, webhooks_webhook w WHERE e.name = 'legacy-2' AND w.id = 2",
            &[],
        )
        .await
        .map(|r| (r.get(0), r.get(1)))
        .unwrap();
    assert_eq!(state, (false, true), "legacy-2 is served by the old module again");
    sidecar.stop().await;
}
