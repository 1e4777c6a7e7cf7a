//! The schema installed by another migration tool from `tailhook migrate --print-sql`, step by step.

use crate::support::*;
use std::time::Duration;

/// One step of the printed script: its marker line's version, whether it
/// runs outside a transaction, and its text (marker line included).
struct Step {
    version: i32,
    outside: bool,
    sql: String,
}

/// `tailhook migrate --print-sql [extra]` against `db`, split at the step markers as a tool would.
fn printed_steps(db: &TestDb, extra: &[&str]) -> Vec<Step> {
    let args: Vec<&str> = ["migrate", "--print-sql"].iter().chain(extra).copied().collect();
    let out = tailhook(&args, &[("DATABASE_URL", &db.url)]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let script = String::from_utf8(out.stdout).unwrap();
    let mut steps: Vec<Step> = Vec::new();
    for line in script.split_inclusive('\n') {
        if let Some(rest) = line.strip_prefix(tailhook::db::STEP_MARKER) {
            let version = rest.split(' ').next().unwrap().parse().expect("a version after the marker");
            let outside = match rest.trim_end().rsplit_once(": ") {
                Some((_, "outside a transaction")) => true,
                Some((_, "transactional")) => false,
                _ => panic!("a step marker without its kind: {line}"),
            };
            steps.push(Step { version, outside, sql: String::new() });
        }
        if let Some(step) = steps.last_mut() {
            step.sql.push_str(line);
        }
    }
    steps
}

/// Applies steps as Alembic or Django would: consecutive transactional
/// steps inside one transaction of the tool's, each step outside a
/// transaction on its own.
async fn apply_as_a_tool(client: &mut tokio_postgres::Client, steps: &[Step]) {
    let mut i = 0;
    while i < steps.len() {
        // As the script's preamble says: a step marked so is left out once
        // tailhook.deliveries is partitioned (version 10, after 31).
        if steps[i].sql.contains(tailhook::db::SKIP_ONCE_PARTITIONED) && deliveries_partitioned(client).await {
            i += 1;
            continue;
        }
        if steps[i].outside {
            client.batch_execute(&steps[i].sql).await.unwrap_or_else(|e| panic!("step {}: {e}", steps[i].version));
            i += 1;
            continue;
        }
        let tx = client.transaction().await.unwrap();
        while i < steps.len() && !steps[i].outside {
            tx.batch_execute(&steps[i].sql).await.unwrap_or_else(|e| panic!("step {}: {e}", steps[i].version));
            i += 1;
        }
        tx.commit().await.unwrap();
    }
}

async fn recorded(client: &tokio_postgres::Client) -> Vec<(i32, String)> {
    let rows =
        client.query("SELECT version, name FROM tailhook.schema_migrations ORDER BY version", &[]).await.unwrap();
    rows.iter().map(|r| (r.get(0), r.get(1))).collect()
}

/// Every function, view, trigger and index definition in the schema, and
/// when each version was recorded: one line each.
async fn fingerprint(client: &tokio_postgres::Client) -> Vec<String> {
    let rows = client
        .query(
            "SELECT pg_get_functiondef(p.oid) FROM pg_proc p
              WHERE p.pronamespace = 'tailhook'::regnamespace AND p.prokind = 'f'
             UNION ALL
             SELECT c.relname || ': ' || pg_get_viewdef(c.oid) FROM pg_class c
              WHERE c.relnamespace = 'tailhook'::regnamespace AND c.relkind = 'v'
             UNION ALL
             SELECT pg_get_triggerdef(t.oid) FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
              WHERE c.relnamespace = 'tailhook'::regnamespace AND NOT t.tgisinternal
             UNION ALL
             SELECT indexdef FROM pg_indexes WHERE schemaname = 'tailhook'
             UNION ALL
             SELECT version || ' applied at ' || applied_at FROM tailhook.schema_migrations
             ORDER BY 1",
            &[],
        )
        .await
        .unwrap();
    rows.iter().map(|r| r.get(0)).collect()
}

/// Fails naming the first line of each definition that changed.
fn assert_unchanged(before: &[String], after: &[String], what: &str) {
    let changed: Vec<&str> = after
        .iter()
        .filter(|d| !before.contains(d))
        .chain(before.iter().filter(|d| !after.contains(d)))
        .map(|d| d.lines().next().unwrap_or_default())
        .collect();
    assert!(changed.is_empty(), "{what} changed: {changed:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn printed_sql_applied_by_another_tool_is_a_schema_migrate_accepts_and_the_sidecar_delivers_with_it() {
    let db = TestDb::new().await;
    let mut client = db.client().await;
    let steps = printed_steps(&db, &[]);
    let first_steps: Vec<i32> = steps.iter().filter(|s| !s.outside).map(|s| s.version).collect();
    let every: Vec<i32> = tailhook::db::MIGRATIONS.iter().map(|m| m.0).collect();
    assert_eq!(first_steps, every, "a fresh database gets every version, in order");
    apply_as_a_tool(&mut client, &steps).await;
    let names: Vec<(i32, String)> = tailhook::db::MIGRATIONS.iter().map(|m| (m.0, m.1.to_owned())).collect();
    assert_eq!(recorded(&client).await, names, "the bookkeeping `tailhook migrate` keeps");

    let migrate = tailhook(&["migrate"], &[("DATABASE_URL", &db.url)]);
    let said = String::from_utf8_lossy(&migrate.stdout);
    assert!(said.starts_with("schema is up to date"), "{said}{}", String::from_utf8_lossy(&migrate.stderr));
    assert!(printed_steps(&db, &[]).is_empty(), "nothing left to print");

    // Applying it all again (the tool's fixture run twice) turns nothing
    // back, nor does an old script's part (an earlier tailhook's steps, run
    // by the tool after the schema went further: version 15 defines
    // tailhook.capture, which 18 replaced).
    // (Version 10's steps skip themselves by their marker line once 31 has
    // partitioned tailhook.deliveries: see apply_as_a_tool.)
    let before = fingerprint(&client).await;
    apply_as_a_tool(&mut client, &printed_steps(&db, &["--all"])).await;
    apply_as_a_tool(&mut client, &steps).await;
    assert_unchanged(&before, &fingerprint(&client).await, "applying the script again");
    let old: Vec<Step> = printed_steps(&db, &["--all"]).into_iter().filter(|s| s.version <= 15).collect();
    apply_as_a_tool(&mut client, &old).await;
    assert_unchanged(&before, &fingerprint(&client).await, "applying an old script's steps");

    let receiver = Receiver::ok().await;
    add_endpoint(&client, "ep", &receiver.url("/hook"), &[SECRET]).await;
    let mut config = db.config();
    config.database.auto_migrate = false;
    let sidecar = Sidecar::start(config);
    client.execute("SELECT tailhook.publish('invoice.paid', '{\"n\": 1}')", &[]).await.unwrap();
    wait_for("the event delivered", Duration::from_secs(20), || async { receiver.count() == 1 }).await;
    wait_settled(&db, 1, Duration::from_secs(20)).await;
    sidecar.stop().await;
    assert_eq!(db.count("SELECT count(*) FROM tailhook.deliveries WHERE status = 'succeeded'").await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn printing_against_a_partly_migrated_database_emits_only_the_rest() {
    let db = TestDb::new().await;
    let mut client = db.client().await;
    let all = printed_steps(&db, &[]);
    let upto_9: Vec<Step> = all.into_iter().filter(|s| s.version <= 9).collect();
    apply_as_a_tool(&mut client, &upto_9).await;
    assert_eq!(recorded(&client).await.len(), 9);

    let rest = printed_steps(&db, &[]);
    let versions: Vec<i32> = rest.iter().filter(|s| !s.outside).map(|s| s.version).collect();
    let expected: Vec<i32> = tailhook::db::MIGRATIONS.iter().map(|m| m.0).filter(|v| *v > 9).collect();
    assert_eq!(versions, expected);
    assert!(rest[0].outside && rest[0].version == 10, "version 10 runs outside a transaction first");
    apply_as_a_tool(&mut client, &rest).await;
    assert_eq!(recorded(&client).await.len(), tailhook::db::MIGRATIONS.len());
    let migrate = tailhook(&["migrate"], &[("DATABASE_URL", &db.url)]);
    assert!(String::from_utf8_lossy(&migrate.stdout).starts_with("schema is up to date"));
}
