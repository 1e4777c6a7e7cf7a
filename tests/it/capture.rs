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

/// Expands everything change capture staged (what the sidecar does before
/// each fan-out); returns how many changed rows it took.
async fn expand(client: &tokio_postgres::Client) -> i64 {
    client.query_one("SELECT tailhook.expand_captures()", &[]).await.unwrap().get(0)
}

/// Statements staged for `table` and not expanded yet.
async fn staged(client: &tokio_postgres::Client, table: &str) -> i64 {
    let sql = format!(
        "SELECT format('SELECT count(*) FROM tailhook.%I', 'capture_' || '{table}'::regclass::oid || '_staged')"
    );
    let count: String = client.query_one(&sql, &[]).await.unwrap().get(0);
    client.query_one(&count, &[]).await.unwrap().get(0)
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
    assert_eq!(staged(&client, "orders").await, 4, "one staged row per committed statement, none for the rollback");
    assert_eq!(db.count("SELECT count(*) FROM tailhook.outbox").await, 0, "nothing in the outbox before expansion");
    assert_eq!(expand(&client).await, 5, "2 inserted + 1 + 1 updated + 1 deleted rows");
    assert_eq!(staged(&client, "orders").await, 0);
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
    expand(&client).await;
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
async fn a_bulk_statement_is_one_trigger_call_staged_in_rows_of_100000_then_expanded_in_full() {
    let db = TestDb::new().await;
    let client = db.migrate().await;
    client
        .batch_execute(&format!(
            "{ORDERS};
             INSERT INTO orders SELECT g, 'a' || g % 7, 'new', NULL FROM generate_series(1, 150000) g;
             SELECT tailhook.capture('orders', 'order', tenant_column => 'account_id');"
        ))
        .await
        .unwrap();
    // The current transaction's own function counters: the generated trigger
    // function, and the outbox's per-statement NOTIFY trigger (it would count
    // an INSERT into the outbox); then the staged rows, still in the transaction.
    let row = client
        .simple_query(
            "BEGIN;
             SET LOCAL track_functions = 'pl';
             UPDATE orders SET status = 'paid';
             SELECT pg_stat_get_xact_function_calls(f.oid) || ',' || coalesce(pg_stat_get_xact_function_calls('tailhook.notify_outbox'::regproc), 0)
                    || ',' || (SELECT count(*) FROM tailhook.outbox)
               FROM pg_proc f JOIN tailhook.capture_config c ON f.proname = c.function_name;",
        )
        .await
        .unwrap();
    let staged_in_tx = staged(&client, "orders").await;
    client.batch_execute("COMMIT").await.unwrap();
    let calls = row
        .iter()
        .find_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).map(str::to_owned),
            _ => None,
        })
        .expect("the counters");
    assert_eq!(calls, "1,0,0", "one trigger call, no outbox INSERT for 150,000 rows");
    assert_eq!(staged_in_tx, 2, "two staged rows for the statement: 100,000 rows, then 50,000");
    // Expanded in slices of at most 30,000 rows (as the sidecar takes a large one).
    let mut slices = Vec::new();
    loop {
        let rows: i64 = client.query_one("SELECT tailhook.expand_captures(30000)", &[]).await.unwrap().get(0);
        if rows == 0 {
            break;
        }
        slices.push(rows);
    }
    assert_eq!(slices, [30_000; 5], "a slice may end one staged row and start the next");
    assert_eq!(staged(&client, "orders").await, 0);
    assert_eq!(db.count("SELECT count(*) FROM tailhook.outbox WHERE event_type = 'order.updated'").await, 150_000);
    assert_eq!(
        db.count("SELECT count(DISTINCT ordering_key) FROM tailhook.outbox WHERE payload #>> '{new,status}' = 'paid' AND payload #>> '{old,status}' = 'new' AND payload #>> '{new,id}' = ordering_key AND tenant = payload #>> '{new,account_id}'").await,
        150_000,
        "each row's own old and new, key and tenant"
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
    expand(&client).await;
    let types: Vec<String> = events(&client).await.into_iter().map(|e| e.0).collect();
    assert_eq!(types, ["order.inserted", "sale.deleted"]);

    let removed: bool = client.query_one("SELECT tailhook.uncapture('orders')", &[]).await.unwrap().get(0);
    assert!(removed);
    client.batch_execute("INSERT INTO orders VALUES (3, 'a', 'new', NULL); DELETE FROM orders").await.unwrap();
    assert_eq!(expand(&client).await, 0, "nothing staged");
    assert_eq!(triggers().await, 0);
    assert_eq!(db.count("SELECT count(*) FROM tailhook.outbox").await, 2, "history kept, nothing new");
    assert_eq!(db.count("SELECT count(*) FROM tailhook.captures").await, 0);
    assert_eq!(
        db.count("SELECT count(*) FROM pg_proc WHERE proname ~ '^capture_[0-9]+(_expand)?$'").await,
        0,
        "no function left"
    );
    assert_eq!(
        db.count("SELECT count(*) FROM pg_class WHERE relname ~ '^capture_[0-9]+_(staged|columns)$'").await
            + db.count("SELECT count(*) FROM pg_type WHERE typname ~ '^capture_[0-9]+_row$'").await,
        0,
        "no staging table, pin view or row domain left"
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
    expand(&client).await;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn staged_changes_survive_until_expanded_and_uncapture_publishes_them() {
    let db = TestDb::new().await;
    let client = db.migrate().await;
    client
        .batch_execute(&format!(
            "{ORDERS};
             SELECT tailhook.capture('orders', 'order', columns => '{{id,status}}');
             INSERT INTO orders VALUES (1, 'a', 'new', 'x'), (2, 'a', 'new', 'x');
             UPDATE orders SET status = 'paid' WHERE id = 1;"
        ))
        .await
        .unwrap();
    drop(client);
    // Another session, later: still staged, nothing published yet.
    let client = db.client().await;
    assert_eq!(staged(&client, "orders").await, 2);
    assert_eq!(db.count("SELECT count(*) FROM tailhook.outbox").await, 0);
    // uncapture expands what is staged before it removes the staging table.
    let removed: bool = client.query_one("SELECT tailhook.uncapture('orders')", &[]).await.unwrap().get(0);
    assert!(removed);
    let got: Vec<(String, Option<String>, Value)> =
        events(&client).await.into_iter().map(|(ty, _, key, payload)| (ty, key, payload)).collect();
    let t = "public.orders";
    assert_eq!(
        got,
        [
            (
                "order.inserted".into(),
                Some("1".into()),
                json!({"table": t, "operation": "insert", "new": {"id": 1, "status": "new"}, "old": null})
            ),
            (
                "order.inserted".into(),
                Some("2".into()),
                json!({"table": t, "operation": "insert", "new": {"id": 2, "status": "new"}, "old": null})
            ),
            (
                "order.updated".into(),
                Some("1".into()),
                json!({"table": t, "operation": "update", "new": {"id": 1, "status": "paid"}, "old": {"id": 1, "status": "new"}})
            ),
        ]
    );
    assert_eq!(db.count("SELECT count(*) FROM pg_class WHERE relname ~ '^capture_[0-9]+_staged$'").await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rows_changes_keep_their_order_across_statements_transactions_and_tables() {
    let db = TestDb::new().await;
    let client = db.migrate().await;
    client
        .batch_execute(
            "CREATE TABLE counters (id int PRIMARY KEY, v int NOT NULL);
             CREATE TABLE other (id int PRIMARY KEY, v int NOT NULL);
             SELECT tailhook.capture('counters', 'row');
             SELECT tailhook.capture('other', 'other');
             INSERT INTO counters VALUES (1, 0);
             INSERT INTO other VALUES (1, 0);
             INSERT INTO counters VALUES (2, 0);",
        )
        .await
        .unwrap();
    // Two transactions change row 1 in turn: the second waits for the first's
    // row lock, and an expansion meanwhile does not see the first's change.
    let first = db.client().await;
    first.batch_execute("BEGIN; UPDATE counters SET v = 1 WHERE id = 1").await.unwrap();
    let second = db.client().await;
    let second_pid: i32 = second.query_one("SELECT pg_backend_pid()", &[]).await.unwrap().get(0);
    let waiting = tokio::spawn(async move { second.batch_execute("UPDATE counters SET v = 2 WHERE id = 1").await });
    wait_for("the second UPDATE waits for the row lock", Duration::from_secs(10), || async {
        client
            .query_one(
                "SELECT wait_event_type IS NOT DISTINCT FROM 'Lock' FROM pg_stat_activity WHERE pid = $1",
                &[&second_pid],
            )
            .await
            .unwrap()
            .get(0)
    })
    .await;
    assert_eq!(expand(&client).await, 3, "the three committed inserts only");
    first.batch_execute("COMMIT").await.unwrap();
    waiting.await.unwrap().unwrap();
    assert_eq!(expand(&client).await, 2);
    let got: Vec<(String, Option<String>, Value, Value)> = events(&client)
        .await
        .into_iter()
        .map(|(ty, _, key, p)| (ty, key, p["old"]["v"].clone(), p["new"]["v"].clone()))
        .collect();
    let e = |ty: &str, key: &str, old: Value, new: Value| (ty.to_owned(), Some(key.to_owned()), old, new);
    assert_eq!(
        got,
        [
            e("row.inserted", "1", Value::Null, json!(0)),
            e("other.inserted", "1", Value::Null, json!(0)),
            e("row.inserted", "2", Value::Null, json!(0)),
            e("row.updated", "1", json!(0), json!(1)),
            e("row.updated", "1", json!(1), json!(2)),
        ],
        "outbox order is the order of the statements, across tables"
    );
}

/// An error's message and detail, as PostgreSQL wrote them.
fn db_error(err: tokio_postgres::Error) -> String {
    let e = err.as_db_error().unwrap_or_else(|| panic!("not a database error: {err:?}"));
    format!("{} {}", e.message(), e.detail().unwrap_or_default())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ddl_on_a_captured_table_never_breaks_its_writes_and_what_would_break_capture_is_refused() {
    let db = TestDb::new().await;
    let client = db.migrate().await;
    client
        .batch_execute(&format!(
            "{ORDERS};
             SELECT tailhook.capture('orders', 'order', columns => '{{id,status}}', tenant_column => 'account_id');
             INSERT INTO orders VALUES (1, 'a', 'new', 'x');"
        ))
        .await
        .unwrap();
    // Columns not captured come and go; writes and staged rows keep working.
    client
        .batch_execute(
            "ALTER TABLE orders ADD COLUMN extra int;
             INSERT INTO orders VALUES (2, 'a', 'new', 'x', 8);
             ALTER TABLE orders DROP COLUMN card_secret;
             UPDATE orders SET status = 'paid' WHERE id = 1;",
        )
        .await
        .unwrap();
    // What would break the capture is refused by PostgreSQL, naming why.
    let refused = [
        ("ALTER TABLE orders DROP COLUMN status", "depends on"),
        ("ALTER TABLE orders DROP COLUMN account_id", "depends on"),
        ("ALTER TABLE orders ALTER COLUMN status TYPE varchar(10)", "used by a view or rule"),
        ("ALTER TABLE orders ALTER COLUMN extra TYPE bigint", "uses its row type"),
        ("ALTER TABLE orders ADD COLUMN d int NOT NULL DEFAULT 0", "uses its row type"),
        ("DROP TABLE orders", "depends on"),
    ];
    for (sql, why) in refused {
        let text = db_error(client.batch_execute(sql).await.expect_err(sql));
        assert!(text.contains(why) && text.contains("capture_"), "{sql}: {text}");
    }
    // Such a change goes through in one transaction that captures again,
    // missing no change (what was staged is expanded by uncapture first).
    client
        .batch_execute(
            "BEGIN;
             SELECT tailhook.uncapture('orders');
             ALTER TABLE orders ALTER COLUMN extra TYPE bigint, ADD COLUMN d int NOT NULL DEFAULT 0;
             SELECT tailhook.capture('orders', 'order', columns => '{id,status}', tenant_column => 'account_id');
             COMMIT;",
        )
        .await
        .unwrap();
    assert_eq!(db.count("SELECT count(*) FROM tailhook.outbox").await, 3, "uncapture expanded the three staged rows");
    client.batch_execute("DELETE FROM tailhook.outbox").await.unwrap();
    // Renaming the table (and its schema) breaks nothing; the payload names it anew.
    client
        .batch_execute(
            "CREATE SCHEMA shop; ALTER TABLE orders RENAME TO sales; ALTER TABLE sales SET SCHEMA shop;
             INSERT INTO shop.sales VALUES (3, 'b', 'new', 9, 1);
             UPDATE shop.sales SET status = 'paid', d = 2 WHERE id = 3;",
        )
        .await
        .unwrap();
    assert_eq!(expand(&client).await, 2);
    let got: Vec<(String, Option<String>, Value)> =
        events(&client).await.into_iter().map(|(ty, tenant, _, p)| (ty, tenant, p)).collect();
    assert_eq!(
        got,
        [
            (
                "order.inserted".into(),
                Some("b".into()),
                json!({"table": "shop.sales", "operation": "insert", "new": {"id": 3, "status": "new"}, "old": null})
            ),
            (
                "order.updated".into(),
                Some("b".into()),
                json!({"table": "shop.sales", "operation": "update", "new": {"id": 3, "status": "paid"}, "old": {"id": 3, "status": "new"}})
            ),
        ]
    );
    // Renaming a captured column: writes go on; their expansion waits, staged,
    // until `capture` is run again with the new name.
    client
        .batch_execute(
            "DELETE FROM tailhook.outbox;
             ALTER TABLE shop.sales RENAME COLUMN status TO state;
             UPDATE shop.sales SET state = 'sent' WHERE id = 3;",
        )
        .await
        .unwrap();
    assert_eq!(expand(&client).await, 0, "cannot be expanded with the old column name");
    assert_eq!(staged(&client, "shop.sales").await, 1, "kept, not lost");
    let err = client.batch_execute("SELECT tailhook.uncapture('shop.sales')").await.expect_err("refused");
    assert!(db_error(err).contains("cannot be expanded"));
    client
        .batch_execute(
            "SELECT tailhook.capture('shop.sales', 'order', columns => '{id,state}', tenant_column => 'account_id')",
        )
        .await
        .unwrap();
    assert_eq!(staged(&client, "shop.sales").await, 0);
    let got: Vec<Value> = events(&client).await.into_iter().map(|e| e.3).collect();
    assert_eq!(
        got,
        [
            json!({"table": "shop.sales", "operation": "update", "new": {"id": 3, "state": "sent"}, "old": {"id": 3, "state": "paid"}})
        ]
    );
}

/// A database with the schema as it was before `version`, applied by hand
/// and recorded (as `migrate` records it, in a table of its own making), and
/// `orders` captured under it with one row inserted.
async fn orders_captured_before(version: i32) -> (TestDb, tokio_postgres::Client) {
    let db = TestDb::new().await;
    let client = db.client().await;
    client
        .batch_execute(
            "CREATE SCHEMA tailhook;
             CREATE TABLE tailhook.schema_migrations (version int PRIMARY KEY, name text NOT NULL,
                                                      applied_at timestamptz NOT NULL DEFAULT now());",
        )
        .await
        .unwrap();
    for (v, name, sql) in tailhook::db::MIGRATIONS.iter().filter(|m| m.0 < version) {
        apply_migration_by_hand(&client, *v, sql).await;
        client
            .execute("INSERT INTO tailhook.schema_migrations (version, name) VALUES ($1, $2)", &[v, name])
            .await
            .unwrap();
    }
    client
        .batch_execute(&format!(
            "{ORDERS};
             SELECT tailhook.capture('orders', 'order', columns => '{{id,status}}', tenant_column => 'account_id');
             INSERT INTO orders VALUES (1, 'a', 'new', 'x');"
        ))
        .await
        .unwrap();
    (db, client)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tables_captured_under_0012_are_upgraded_by_the_migration_and_re_runs_lose_nothing() {
    let (db, mut client) = orders_captured_before(15).await;
    assert_eq!(db.count("SELECT count(*) FROM tailhook.outbox").await, 1, "0012's trigger writes the outbox");
    let later: Vec<i32> = tailhook::db::MIGRATIONS.iter().map(|m| m.0).filter(|v| *v >= 15).collect();
    assert_eq!(tailhook::db::migrate(&mut client).await.unwrap(), later);
    client.batch_execute("UPDATE orders SET status = 'paid'").await.unwrap();
    assert_eq!(staged(&client, "orders").await, 1, "the same capture, now staged");
    // Re-running every file by hand, and migrate, with a statement staged.
    apply_every_migration_by_hand(&client).await;
    tailhook::db::migrate(&mut client).await.unwrap();
    assert_eq!(staged(&client, "orders").await, 1);
    assert_eq!(expand(&client).await, 1);
    let got = events(&client).await;
    assert_eq!(got.len(), 2);
    assert_eq!(
        got[1],
        (
            "order.updated".into(),
            Some("a".into()),
            Some("1".into()),
            json!({"table": "public.orders", "operation": "update", "new": {"id": 1, "status": "paid"}, "old": {"id": 1, "status": "new"}})
        ),
        "options unchanged by the upgrade"
    );
}

/// The settings of the generated trigger function (one table captured).
async fn writer_settings(client: &tokio_postgres::Client) -> String {
    client
        .query_one(
            "SELECT array_to_string(p.proconfig, ' ') FROM pg_proc p
               JOIN tailhook.capture_config c ON p.proname = c.function_name AND p.pronamespace = 'tailhook'::regnamespace",
            &[],
        )
        .await
        .unwrap()
        .get(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tables_captured_before_0018_get_the_writer_that_slices_large_statements_without_sorting() {
    let (db, mut client) = orders_captured_before(18).await;
    // The generated trigger function's settings: 0018's runs with sorting
    // off, so a large statement's slices are grouped by hashing, in scan order.
    let before = writer_settings(&client).await;
    assert!(!before.contains("enable_sort=off"), "0015's writer: {before}");
    let later: Vec<i32> = tailhook::db::MIGRATIONS.iter().map(|m| m.0).filter(|v| *v >= 18).collect();
    assert_eq!(tailhook::db::migrate(&mut client).await.unwrap(), later);
    let after = writer_settings(&client).await;
    assert!(after.contains("enable_sort=off"), "after migrate: {after}");
    // A statement of 200,001 rows: three slices, each row's old and new
    // paired, also when the grouping spills all but the first to disk.
    client
        .batch_execute(
            "INSERT INTO orders SELECT g, 'b', 'new', NULL FROM generate_series(2, 200001) g;
             SET work_mem = '64kB';
             UPDATE orders SET status = 'paid';
             RESET work_mem;",
        )
        .await
        .unwrap();
    assert_eq!(staged(&client, "orders").await, 2 + 3, "the INSERT's two slices, then the UPDATE's three");
    while expand(&client).await > 0 {}
    assert_eq!(
        db.count("SELECT count(*) FROM tailhook.outbox WHERE event_type = 'order.updated' AND payload #>> '{new,id}' = payload #>> '{old,id}' AND payload #>> '{new,status}' = 'paid' AND payload #>> '{old,status}' = 'new' AND ordering_key = payload #>> '{new,id}'").await,
        200_001,
        "options unchanged, every pair the same row's"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn captured_changes_are_expanded_on_their_notification_and_outbox_inserts_never_cost_an_expansion() {
    let db = TestDb::new().await;
    let receiver = Receiver::start(|_, _| Reply::ok()).await;
    let client = db.migrate().await;
    client
        .batch_execute(&format!(
            "ALTER DATABASE {} SET track_functions = 'pl';
             CREATE TABLE counters (id int PRIMARY KEY, v int NOT NULL);
             SELECT tailhook.capture('counters', 'row', operations => '{{insert}}');",
            db.name()
        ))
        .await
        .unwrap();
    add_endpoint(&client, "all", &receiver.url("/all"), &[]).await;
    // No poll within the test: only notifications can wake the fan-out.
    let mut config = db.config();
    config.database.poll_interval_ms = 600_000;
    let sidecar = Sidecar::start(config);
    let delivered = |n: usize| {
        let receiver = &receiver;
        async move {
            wait_for(&format!("{n} requests"), Duration::from_secs(20), || async { receiver.received().len() >= n })
                .await
        }
    };
    // Twenty outbox inserts, each delivered before the next: twenty wake-ups.
    for n in 1..=20 {
        client.execute("INSERT INTO tailhook.outbox (event_type, payload) VALUES ('plain', '{}')", &[]).await.unwrap();
        delivered(n).await;
    }
    // A captured statement is expanded and delivered on its own notification.
    client.batch_execute("INSERT INTO counters VALUES (1, 1)").await.unwrap();
    delivered(21).await;
    assert_eq!(receiver.received()[20].json()["type"], "row.inserted");
    sidecar.stop().await;
    // A backend reports its function counts when it exits, before it leaves pg_stat_activity.
    let count = |sql: &'static str| {
        let client = &client;
        async move { client.query_one(sql, &[]).await.unwrap().get::<_, i64>(0) }
    };
    wait_for("the sidecar's sessions ended", Duration::from_secs(20), || async {
        count("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()")
            .await
            == 0
    })
    .await;
    let calls = count(
        "SELECT coalesce(sum(calls), 0)::bigint FROM pg_stat_user_functions
         WHERE schemaname = 'tailhook' AND funcname = 'expand_captures'",
    )
    .await;
    // At start (the sidecar's and the listener's wake-ups, possibly merged) and for the captured statement.
    assert!(
        (1..=3).contains(&calls),
        "expand_captures called {calls} times for 20 outbox inserts and 1 captured statement"
    );
}
