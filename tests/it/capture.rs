//! Change capture (`tailhook.capture`): table changes become outbox events in the same transaction.

use crate::support::*;
use serde_json::{json, Value};
use std::time::Duration;

/// Every tailhook event's (type, tenant, ordering_key, payload), in outbox order.
async fn events(client: &tokio_postgres::Client) -> Vec<(String, Option<String>, Option<String>, Value)> {
    client
        .query("SELECT event_type, tenant, ordering_key, payload::text FROM tailhook.outbox ORDER BY id", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), serde_json::from_str(r.get(3)).unwrap()))
        .collect()
}

const ORDERS: &str = "CREATE TABLE public.orders (
    id bigint PRIMARY KEY, account_id text NOT NULL, status text NOT NULL, card_secret text)";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_operation_is_published_with_its_columns_tenant_and_key_and_only_if_committed() {
    let db = TestDb::new().await;
    let client = db.migrate().await;
    client.batch_execute(ORDERS).await.unwrap();
    client
        .batch_execute(
            "SELECT tailhook.capture('public.orders', event_type => 'order', operations => '{insert,update,delete}',
                                     columns => '{id,status}', tenant_column => 'account_id', key_column => 'id')",
        )
        .await
        .unwrap();
    client
        .batch_execute(
            "INSERT INTO orders VALUES (1, 'acme', 'new', 's3cr3t'), (2, 'zeta', 'new', 's3cr3t');
             UPDATE orders SET card_secret = 'other' WHERE id = 1; -- no captured column changes
             UPDATE orders SET status = 'paid' WHERE id = 1;
             DELETE FROM orders WHERE id = 2;",
        )
        .await
        .unwrap();
    // (a simple query's statements share one transaction: the rollback gets its own)
    client
        .batch_execute(
            "BEGIN; INSERT INTO orders VALUES (3, 'acme', 'new', NULL); UPDATE orders SET status = 'x'; ROLLBACK;",
        )
        .await
        .unwrap();
    let got = events(&client).await;
    let t = "public.orders";
    let expected = vec![
        (
            "order.inserted",
            "acme",
            "1",
            json!({"table": t, "operation": "insert", "new": {"id": 1, "status": "new"}, "old": null}),
        ),
        (
            "order.inserted",
            "zeta",
            "2",
            json!({"table": t, "operation": "insert", "new": {"id": 2, "status": "new"}, "old": null}),
        ),
        (
            "order.updated",
            "acme",
            "1",
            json!({"table": t, "operation": "update", "new": {"id": 1, "status": "paid"}, "old": {"id": 1, "status": "new"}}),
        ),
        (
            "order.deleted",
            "zeta",
            "2",
            json!({"table": t, "operation": "delete", "new": null, "old": {"id": 2, "status": "new"}}),
        ),
    ];
    let expected: Vec<_> = expected
        .into_iter()
        .map(|(ty, tenant, key, payload)| (ty.to_owned(), Some(tenant.to_owned()), Some(key.to_owned()), payload))
        .collect();
    assert_eq!(got, expected, "one event per changed row, nothing for the rolled-back transaction");
    let all = serde_json::to_string(&got.iter().map(|e| &e.3).collect::<Vec<_>>()).unwrap();
    assert!(!all.contains("s3cr3t") && !all.contains("acme\""), "columns not listed never leave the table: {all}");

    // Every column when `columns` is NULL; the primary key is the default key.
    client
        .batch_execute(
            "DELETE FROM tailhook.outbox;
             SELECT tailhook.capture('orders', 'order', operations => '{update}');
             INSERT INTO orders VALUES (4, 'acme', 'new', 'k');
             UPDATE orders SET card_secret = 'k2' WHERE id = 4;",
        )
        .await
        .unwrap();
    let got = events(&client).await;
    assert_eq!(got.len(), 1, "only updates are captured now: {got:?}");
    assert_eq!(got[0].0, "order.updated");
    assert_eq!(
        (got[0].1.as_deref(), got[0].2.as_deref()),
        (None, Some("4")),
        "no tenant column, key from the primary key"
    );
    assert_eq!(got[0].3["new"], json!({"id": 4, "account_id": "acme", "status": "new", "card_secret": "k2"}));
    assert_eq!(got[0].3["old"]["card_secret"], "k");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bulk_statement_is_one_trigger_call_and_one_outbox_insert() {
    let db = TestDb::new().await;
    let client = db.migrate().await;
    client
        .batch_execute(&format!(
            "{ORDERS};
             INSERT INTO orders SELECT g, 'a' || g % 7, 'new', NULL FROM generate_series(1, 10000) g;
             SELECT tailhook.capture('orders', 'order', tenant_column => 'account_id');"
        ))
        .await
        .unwrap();
    // The current transaction's own function counters: the generated trigger
    // function, and the outbox's per-statement NOTIFY trigger (one per INSERT statement).
    let row = client
        .simple_query(
            "BEGIN;
             SET LOCAL track_functions = 'pl';
             UPDATE orders SET status = 'paid';
             SELECT pg_stat_get_xact_function_calls(f.oid) || ',' || pg_stat_get_xact_function_calls('tailhook.notify_outbox'::regproc)
               FROM pg_proc f JOIN tailhook.capture_config c ON f.proname = c.function_name;",
        )
        .await
        .unwrap();
    client.batch_execute("COMMIT").await.unwrap();
    let calls = row
        .iter()
        .find_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).map(str::to_owned),
            _ => None,
        })
        .expect("the counters");
    assert_eq!(calls, "1,1", "one trigger call and one outbox INSERT for 10,000 rows");
    assert_eq!(db.count("SELECT count(*) FROM tailhook.outbox WHERE event_type = 'order.updated'").await, 10_000);
    assert_eq!(
        db.count("SELECT count(DISTINCT ordering_key) FROM tailhook.outbox WHERE payload #>> '{new,status}' = 'paid' AND payload #>> '{old,status}' = 'new'").await,
        10_000,
        "each row's own old and new"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn re_capture_replaces_the_triggers_and_uncapture_leaves_history_alone() {
    let db = TestDb::new().await;
    let client = db.migrate().await;
    client
        .batch_execute(&format!(
            "{ORDERS};
             SELECT tailhook.capture('orders', 'order');
             INSERT INTO orders VALUES (1, 'a', 'new', NULL);"
        ))
        .await
        .unwrap();
    let triggers = || async {
        db.count("SELECT count(*) FROM pg_trigger WHERE tgrelid = 'public.orders'::regclass AND tgname LIKE 'tailhook_capture_%'")
            .await
    };
    assert_eq!(triggers().await, 3);
    // A failed re-capture changes nothing: the old triggers stay.
    let err = client.batch_execute("SELECT tailhook.capture('orders', 'sale', columns => '{nope}')").await.unwrap_err();
    assert!(format!("{err:?}").contains("has no column nope"), "{err:?}");
    assert_eq!(triggers().await, 3);
    client.batch_execute("SELECT tailhook.capture('orders', 'sale', operations => '{delete}')").await.unwrap();
    assert_eq!(triggers().await, 1);
    let listed = client
        .query_one("SELECT table_name, event_type, operations, key_column FROM tailhook.captures", &[])
        .await
        .unwrap();
    assert_eq!(
        (
            listed.get::<_, String>(0),
            listed.get::<_, String>(1),
            listed.get::<_, Vec<String>>(2),
            listed.get::<_, String>(3)
        ),
        ("public.orders".into(), "sale".into(), vec!["delete".into()], "id".into())
    );
    let out = tailhook(&["status"], &[("DATABASE_URL", &db.url)]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("public.orders -> sale.* on delete"), "status lists the captured table: {text}");

    client
        .batch_execute("INSERT INTO orders VALUES (2, 'a', 'new', NULL); DELETE FROM orders WHERE id = 2")
        .await
        .unwrap();
    let types: Vec<String> = events(&client).await.into_iter().map(|e| e.0).collect();
    assert_eq!(types, ["order.inserted", "sale.deleted"]);

    let removed: bool = client.query_one("SELECT tailhook.uncapture('orders')", &[]).await.unwrap().get(0);
    assert!(removed);
    client.batch_execute("INSERT INTO orders VALUES (3, 'a', 'new', NULL); DELETE FROM orders").await.unwrap();
    assert_eq!(triggers().await, 0);
    assert_eq!(db.count("SELECT count(*) FROM tailhook.outbox").await, 2, "history kept, nothing new");
    assert_eq!(db.count("SELECT count(*) FROM tailhook.captures").await, 0);
    assert_eq!(
        db.count("SELECT count(*) FROM pg_proc WHERE proname ~ '^capture_[0-9]+$'").await,
        0,
        "no function left"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn capture_refuses_tables_it_cannot_handle_with_a_clear_error() {
    let db = TestDb::new().await;
    let client = db.migrate().await;
    client
        .batch_execute(
            "CREATE TABLE nokey (a int, b int);
             CREATE TABLE pair (a int, b int, PRIMARY KEY (a, b));
             CREATE TABLE keyed (id int PRIMARY KEY, other int);
             CREATE VIEW v AS SELECT 1 AS id;",
        )
        .await
        .unwrap();
    let cases = [
        ("SELECT tailhook.capture('nokey', 'x')", "nokey has no primary key; name a unique column with key_column"),
        ("SELECT tailhook.capture('pair', 'x')", "pair has a composite primary key (a, b)"),
        ("SELECT tailhook.capture('tailhook.outbox', 'x')", "tailhook.outbox is one of tailhook's own tables"),
        ("SELECT tailhook.capture('keyed', 'x', columns => '{id,nope}')", "keyed has no column nope"),
        ("SELECT tailhook.capture('keyed', 'x', tenant_column => 'Other')", "keyed has no column \"Other\""),
        ("SELECT tailhook.capture('keyed', 'x', key_column => 'other')", "key_column other of keyed is not unique"),
        ("SELECT tailhook.capture('keyed', '')", "event_type must not be empty"),
        ("SELECT tailhook.capture('keyed', 'x', operations => '{truncate}')", "operations must be a non-empty list"),
        ("SELECT tailhook.capture('v', 'x')", "v is not a table"),
        ("SELECT tailhook.capture('missing', 'x')", "relation \"missing\" does not exist"),
    ];
    for (sql, message) in cases {
        let err = client.batch_execute(sql).await.expect_err(sql);
        let text = err.as_db_error().map(|e| e.message().to_owned()).unwrap_or_default();
        assert!(text.contains(message), "{sql}: `{text}` should say `{message}`");
    }
    // A unique key_column is accepted on a table without a primary key
    // (and a table with no unique column at all can still capture inserts).
    client
        .batch_execute(
            "CREATE UNIQUE INDEX ON nokey (a);
             SELECT tailhook.capture('nokey', 'n', key_column => 'a');
             SELECT tailhook.capture('pair', 'p', operations => '{insert,delete}', key_column => 'b');",
        )
        .await
        .unwrap();
    assert_eq!(db.count("SELECT count(*) FROM pg_trigger WHERE tgname LIKE 'tailhook_capture_%'").await, 5);
    assert_eq!(db.count("SELECT count(*) FROM tailhook.outbox").await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quoted_names_other_schemas_and_re_run_migrations_keep_working() {
    let db = TestDb::new().await;
    let mut client = db.migrate().await;
    client
        .batch_execute(
            r#"CREATE SCHEMA "My Schema";
               CREATE TABLE "My Schema"."Order Items" ("Item Id" int PRIMARY KEY, "Tenant" text, tbl text, "a'b" int);
               SELECT tailhook.capture('"My Schema"."Order Items"', 'item', columns => '{Item Id,a''b,tbl}', tenant_column => 'Tenant');"#,
        )
        .await
        .unwrap();
    // Every migration file again, by hand (as another migration tool might), and `migrate`.
    apply_every_migration_by_hand(&client).await;
    tailhook::db::migrate(&mut client).await.unwrap();
    client
        .batch_execute(
            r#"INSERT INTO "My Schema"."Order Items" VALUES (7, 'T 1', 'x', 1);
               UPDATE "My Schema"."Order Items" SET tbl = 'y';"#,
        )
        .await
        .unwrap();
    let got = events(&client).await;
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!(got[0].0, "item.inserted");
    assert_eq!((got[1].1.as_deref(), got[1].2.as_deref()), (Some("T 1"), Some("7")));
    assert_eq!(
        got[1].3,
        json!({"table": "\"My Schema\".\"Order Items\"", "operation": "update",
               "new": {"Item Id": 7, "a'b": 1, "tbl": "y"}, "old": {"Item Id": 7, "a'b": 1, "tbl": "x"}})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ordered_endpoint_gets_each_rows_changes_in_order() {
    let db = TestDb::new().await;
    // Each event's first attempt fails: a row's later change must wait for the earlier one.
    let receiver = Receiver::start(|_, seen| if seen == 0 { Reply::status(500) } else { Reply::ok() }).await;
    let client = db.migrate().await;
    client
        .execute(
            "INSERT INTO tailhook.endpoints (name, url, ordered, event_types) VALUES ('rows', $1, true, '{row.*}')",
            &[&receiver.url("/rows")],
        )
        .await
        .unwrap();
    client
        .batch_execute(
            "CREATE TABLE counters (id int PRIMARY KEY, v int NOT NULL);
             SELECT tailhook.capture('counters', 'row', operations => '{insert,update}');
             INSERT INTO counters SELECT g, 0 FROM generate_series(1, 5) g;",
        )
        .await
        .unwrap();
    for _ in 0..3 {
        client.batch_execute("UPDATE counters SET v = v + 1").await.unwrap();
    }
    let sidecar = Sidecar::start(db.config());
    wait_settled(&db, 20, Duration::from_secs(20)).await;
    sidecar.stop().await;
    assert_eq!(db.count("SELECT count(*) FROM tailhook.deliveries WHERE status = 'succeeded'").await, 20);
    // Per row, every request in arrival order: each change's failed first
    // attempt and its successful retry, before the next change is tried at all.
    let mut per_row: std::collections::HashMap<i64, Vec<i64>> = Default::default();
    for r in receiver.received() {
        let data = &r.json()["data"];
        per_row.entry(data["new"]["id"].as_i64().unwrap()).or_default().push(data["new"]["v"].as_i64().unwrap());
    }
    assert_eq!(per_row.len(), 5);
    for (id, values) in per_row {
        assert_eq!(values, [0, 0, 1, 1, 2, 2, 3, 3], "row {id}");
    }
}
