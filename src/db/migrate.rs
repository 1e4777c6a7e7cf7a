//! Applies the numbered plain-SQL migrations in `sql/`, once each, under an advisory lock, or prints them as steps for another migration tool.

use super::typed::typed;
use super::DbError;
use std::time::Duration;
use tokio_postgres::Client;

/// (version, name, SQL) in order. Each file is also safe to run by hand.
pub const MIGRATIONS: &[(i32, &str, &str)] = &[
    (1, "schema", include_str!("../../sql/0001_schema.sql")),
    (2, "breaker", include_str!("../../sql/0002_breaker.sql")),
    (3, "ordering", include_str!("../../sql/0003_ordering.sql")),
    (4, "endpoint_bounds", include_str!("../../sql/0004_endpoint_bounds.sql")),
    (5, "replicas", include_str!("../../sql/0005_replicas.sql")),
    (6, "retention", include_str!("../../sql/0006_retention.sql")),
    (7, "status", include_str!("../../sql/0007_status.sql")),
    (8, "auto_disabled", include_str!("../../sql/0008_auto_disabled.sql")),
    (9, "key_heads", include_str!("../../sql/0009_key_heads.sql")),
    (10, "concurrent_indexes", include_str!("../../sql/0010_concurrent_indexes.sql")),
    (11, "event_id_v7", include_str!("../../sql/0011_event_id_v7.sql")),
    (12, "capture", include_str!("../../sql/0012_capture.sql")),
    (13, "operational_events", include_str!("../../sql/0013_operational_events.sql")),
    // Versions are applied by set membership, never by position, so a gap
    // (or a lower number arriving after a higher one) is fine.
    (14, "transforms", include_str!("../../sql/0014_transforms.sql")),
    (15, "capture_staging", include_str!("../../sql/0015_capture_staging.sql")),
    (16, "claim_rows", include_str!("../../sql/0016_claim_rows.sql")),
    (17, "publish_plan", include_str!("../../sql/0017_publish_plan.sql")),
    (18, "capture_slices", include_str!("../../sql/0018_capture_slices.sql")),
    (19, "sql_privileges", include_str!("../../sql/0019_sql_privileges.sql")),
    (20, "filter_bounds", include_str!("../../sql/0020_filter_bounds.sql")),
    (21, "privileges", include_str!("../../sql/0021_privileges.sql")),
    (22, "transform_claims", include_str!("../../sql/0022_transform_claims.sql")),
    (23, "legacy_signatures", include_str!("../../sql/0023_legacy_signatures.sql")),
    (24, "endpoint_backoff", include_str!("../../sql/0024_endpoint_backoff.sql")),
    (25, "trace_context", include_str!("../../sql/0025_trace_context.sql")),
    (26, "endpoint_tls", include_str!("../../sql/0026_endpoint_tls.sql")),
    (27, "api_tokens", include_str!("../../sql/0027_api_tokens.sql")),
    (29, "redelivered_by", include_str!("../../sql/0029_redelivered_by.sql")),
    (30, "portal", include_str!("../../sql/0030_portal.sql")),
    (31, "partitions", include_str!("../../sql/0031_partitions.sql")),
];

/// A file holding this line runs outside a transaction, one statement at a
/// time (`CREATE INDEX CONCURRENTLY` cannot run inside one).
pub const OUTSIDE_A_TRANSACTION: &str = "-- tailhook: outside a transaction";

/// A file holding this line (version 10's concurrent index builds) is
/// skipped once `tailhook.deliveries` is partitioned (version 31): its
/// indexes are then the partitioned table's, and PostgreSQL builds no index
/// `CONCURRENTLY` on a partitioned table. Each printed step of such a file
/// carries the line, for the tool applying the script (see [`print_sql`]).
pub const SKIP_ONCE_PARTITIONED: &str = "-- tailhook: skip once tailhook.deliveries is partitioned";

/// Whether `sql` is a file [`SKIP_ONCE_PARTITIONED`] applies to.
pub fn skips_once_partitioned(sql: &str) -> bool {
    sql.lines().any(|line| line.trim() == SKIP_ONCE_PARTITIONED)
}

const PREPARE: &str = include_str!("../../sql/queries/migrations_prepare.sql");
const APPLIED: &str = include_str!("../../sql/queries/migrations_applied.sql");
const RECORD: &str = include_str!("../../sql/queries/migrations_record.sql");
const BUILDING: &str = include_str!("../../sql/queries/migrations_building.sql");
const TABLE_EXISTS: &str = include_str!("../../sql/queries/migrations_table_exists.sql");
const PRINT_STEP: &str = include_str!("../../sql/queries/migrations_print_step.sql");
const PRINT_RECORD: &str = include_str!("../../sql/queries/migrations_print_record.sql");
const QUIET: &str = include_str!("../../sql/queries/migrations_quiet.sql");
const PARTITIONED: &str = include_str!("../../sql/queries/migrations_partitioned.sql");
const RESTORE_MESSAGES: &str = include_str!("../../sql/queries/migrations_restore_messages.sql");

/// Every line that begins a step of [`print_sql`]'s script starts so.
pub const STEP_MARKER: &str = "-- tailhook step ";
const REGRANT: &str = include_str!("../../sql/queries/migrations_regrant.sql");

/// The version that creates `tailhook.regrant()`.
const ROLE_GRANTS: i32 = 21;

/// How often a migrator looks whether another one's index build is over.
const BUILD_POLL: Duration = Duration::from_millis(200);

/// Brings the schema up to date. Pending files run in one transaction, under
/// a transaction-scoped advisory lock: replicas starting at once queue on it
/// and the later ones find nothing left to do. A file marked
/// [`OUTSIDE_A_TRANSACTION`] ends that transaction: it runs after the files
/// before it are committed, statement by statement and without the lock
/// (a migrator waiting on the lock would hold a snapshot that a concurrent
/// index build waits for), so every statement in it is idempotent and safe
/// beside another migrator running it; it is recorded, under the lock, once
/// it ran to the end. A migrator starts no transaction while another one's
/// index build is under way, and runs its transaction again if it was still
/// chosen as a deadlock's victim. Returns the versions applied by this call.
pub async fn migrate(client: &mut Client) -> Result<Vec<i32>, DbError> {
    let mut done = Vec::new();
    let mut deadlocks = 0;
    loop {
        // Another migrator may still be building an outside file's indexes:
        // a transaction here that locks their table would deadlock with the
        // build, which waits for this transaction's snapshot.
        wait_for_index_builds(client).await?;
        let outside = match apply_in_one_transaction(client).await {
            Ok((applied, outside)) => {
                done.extend(applied);
                outside
            }
            // The deadlock's victim rolled back whole: nothing was applied.
            Err(e) if e.code() == Some(DEADLOCK) && deadlocks < OUTSIDE_TRIES => {
                deadlocks += 1;
                tracing::debug!(error = %e, "migration deadlocked with another migrator's index build; running it again");
                continue;
            }
            Err(e) => return Err(e),
        };
        let Some((version, name, sql)) = outside else { return Ok(done) };
        run_outside_a_transaction(client, version, name, sql).await?;
        let tx = client.transaction().await?;
        tx.batch_execute(PREPARE).await?;
        if !applied(&tx).await?.contains(&version) {
            tx.execute_typed(RECORD, &typed(&[&version, &name])).await?;
            done.push(version);
        }
        tx.commit().await?;
    }
}

/// SQLSTATE deadlock_detected.
const DEADLOCK: &str = "40P01";

/// Applies the pending files up to the first one that runs outside a
/// transaction, in one transaction under the migration lock; returns the
/// versions it applied (once committed) and that outside file, if any.
async fn apply_in_one_transaction(
    client: &mut Client,
) -> Result<(Vec<i32>, Option<(i32, &'static str, &'static str)>), DbError> {
    let tx = client.transaction().await?;
    tx.batch_execute(PREPARE).await?;
    let done_before = applied(&tx).await?;
    let (mut done, mut outside) = (Vec::new(), None);
    for &(version, name, sql) in MIGRATIONS {
        if done_before.contains(&version) {
            continue;
        }
        if runs_outside_a_transaction(sql) {
            outside = Some((version, name, sql));
            break;
        }
        tx.batch_execute(sql).await.map_err(|source| DbError::Migration { version, name, source })?;
        tx.execute_typed(RECORD, &typed(&[&version, &name])).await?;
        done.push(version);
    }
    if !done.is_empty() && (done_before.contains(&ROLE_GRANTS) || done.contains(&ROLE_GRANTS)) {
        tx.query_typed(REGRANT, &[]).await?;
    }
    tx.commit().await?;
    Ok((done, outside))
}

/// Waits while an index is being built on one of tailhook's tables (by
/// another migrator running a file outside a transaction).
async fn wait_for_index_builds(client: &Client) -> Result<(), DbError> {
    while client.query_typed(BUILDING, &[]).await?.first().is_some_and(|r| r.get::<_, bool>(0)) {
        tokio::time::sleep(BUILD_POLL).await;
    }
    Ok(())
}

/// The migrations this database has not recorded yet, in order, read
/// without writing anything (no schema or table is created, no lock taken).
pub async fn pending(client: &Client) -> Result<Vec<(i32, &'static str, &'static str)>, DbError> {
    let exists: bool = client.query_typed(TABLE_EXISTS, &[]).await?.first().is_some_and(|r| r.get(0));
    let done: Vec<i32> = if exists {
        client.query_typed(APPLIED, &[]).await?.iter().map(|r| r.try_get(0)).collect::<Result<_, _>>()?
    } else {
        Vec::new()
    };
    Ok(MIGRATIONS.iter().copied().filter(|m| !done.contains(&m.0)).collect())
}

/// A script that applies `steps` as `tailhook migrate` would, for another
/// migration tool or a test fixture to run: each step begins with a line
/// starting with [`STEP_MARKER`] that ends in `: transactional` or
/// `: outside a transaction`. A transactional step is one statement (a `DO`
/// block) that takes tailhook's migration lock, does nothing if
/// `tailhook.schema_migrations` already lists its version, and otherwise
/// applies the file and records it: it may run inside the tool's transaction
/// or on its own. A file that runs outside a transaction becomes one step per
/// statement, each to run on its own in autocommit, then a transactional step
/// recording it. So the script is safe to apply twice, or after `tailhook
/// migrate` got further, and leaves the bookkeeping as `migrate` would.
pub fn print_sql(steps: &[(i32, &str, &str)]) -> String {
    let latest = MIGRATIONS.last().map_or(0, |m| m.0);
    let mut out = format!(
        "-- tailhook {} schema steps ({} pending; the latest version is {latest}).\n\
         -- Run them in order. A step marked `transactional` is one statement and\n\
         -- may run inside your tool's transaction; each step marked `outside a\n\
         -- transaction` must run on its own in autocommit. `psql -v ON_ERROR_STOP=1\n\
         -- -f` runs the whole file correctly. Applying it again changes nothing,\n\
         -- except that a step holding the line `{SKIP_ONCE_PARTITIONED}`\n\
         -- must then be left out: once `SELECT relkind FROM pg_class WHERE oid =\n\
         -- 'tailhook.deliveries'::regclass` says 'p' (PostgreSQL builds no index\n\
         -- CONCURRENTLY on a partitioned table; version 31 built them).\n\
         -- The line below, before the first step, only keeps psql from printing\n\
         -- the statements' \"does not exist, skipping\" notices.\n\
         SET client_min_messages = warning;\n",
        env!("CARGO_PKG_VERSION"),
        steps.len(),
    );
    let prepare = PREPARE.trim_end();
    for &(version, name, sql) in steps {
        let name = name.replace('\'', "''");
        let fill = |template: &str, sql: &str| {
            template
                .replace("{version}", &version.to_string())
                .replace("{name}", &name)
                .replace("{prepare}", prepare)
                .replace("{sql}", sql)
        };
        out.push('\n');
        if runs_outside_a_transaction(sql) {
            let statements = statements(sql);
            for (i, statement) in statements.iter().enumerate() {
                let n = statements.len();
                let skip =
                    if skips_once_partitioned(sql) { format!("{SKIP_ONCE_PARTITIONED}\n") } else { String::new() };
                out.push_str(&format!(
                    "{STEP_MARKER}{version} {name} ({} of {n}): outside a transaction\n{skip}{statement}\n\n",
                    i + 1
                ));
            }
            out.push_str(&fill(PRINT_RECORD, ""));
        } else {
            out.push_str(&fill(PRINT_STEP, sql.trim_end()));
        }
    }
    out
}

async fn applied(tx: &tokio_postgres::Transaction<'_>) -> Result<Vec<i32>, DbError> {
    let rows = tx.query_typed(APPLIED, &[]).await?;
    Ok(rows.iter().map(|r| r.try_get(0)).collect::<Result<Vec<i32>, _>>()?)
}

/// Runs the file with the session's `client_min_messages` at `warning` (its
/// `IF EXISTS` notices are noise on a first start), put back as it was
/// afterwards: there is no transaction to scope the setting to. (Behind a
/// transaction-mode pooler each statement may land on another server
/// connection; the worst that does is leave one at `warning`.)
///
/// Runs each statement on its own, first waiting for any index build
/// another migrator has under way on tailhook's tables. Concurrent builds
/// can still collide (two migrators starting together: a name taken
/// meanwhile, a deadlock between two concurrent builds, an index not valid
/// yet); the loser waits for the other's build to end and runs the file again
/// (its statements are idempotent), up to [`OUTSIDE_TRIES`] times.
async fn run_outside_a_transaction(
    client: &Client,
    version: i32,
    name: &'static str,
    sql: &str,
) -> Result<(), DbError> {
    let previous: String = match client.query_typed(QUIET, &[]).await?.first() {
        Some(row) => row.try_get(0)?,
        None => "notice".into(),
    };
    let result = run_statements_outside(client, version, name, sql).await;
    let restored = match client.is_closed() {
        true => Ok(()),
        false => client.query_typed(RESTORE_MESSAGES, &typed(&[&previous])).await.map(drop).map_err(DbError::from),
    };
    result.and(restored)
}

/// [`run_outside_a_transaction`]'s statements, retried after a collision.
async fn run_statements_outside(client: &Client, version: i32, name: &'static str, sql: &str) -> Result<(), DbError> {
    let mut tries = 0;
    loop {
        wait_for_index_builds(client).await?;
        // Another migrator ran the file to its end and recorded it meanwhile
        // (and may have gone further: after version 31 partitioned
        // tailhook.deliveries, version 10's concurrent builds cannot run).
        if recorded_meanwhile(client, version).await? {
            return Ok(());
        }
        if skips_once_partitioned(sql) && partitioned(client).await? {
            tracing::info!(version, name, "skipped: tailhook.deliveries is partitioned (version 31 has these indexes)");
            return Ok(());
        }
        tries += 1;
        let mut result = Ok(());
        for statement in statements(sql) {
            if let Err(source) = client.batch_execute(statement).await {
                result = Err(DbError::Migration { version, name, source });
                break;
            }
        }
        match result {
            Err(error) if tries >= OUTSIDE_TRIES || client.is_closed() => return Err(error),
            Err(error) => {
                tracing::debug!(%error, version, "migration collided with another migrator's; running it again")
            }
            Ok(()) => return Ok(()),
        }
    }
}

/// Whether `tailhook.deliveries` is a partitioned table (see [`SKIP_ONCE_PARTITIONED`]).
pub async fn partitioned(client: &Client) -> Result<bool, DbError> {
    Ok(client.query_typed(PARTITIONED, &[]).await?.first().map(|r| r.try_get(0)).transpose()?.unwrap_or(false))
}

/// Whether `version` is recorded (read outside any transaction).
async fn recorded_meanwhile(client: &Client, version: i32) -> Result<bool, DbError> {
    let rows = client.query_typed(APPLIED, &[]).await?;
    Ok(rows.iter().any(|r| r.try_get::<_, i32>(0).is_ok_and(|v| v == version)))
}

/// Runs of a file outside a transaction before its error is final.
const OUTSIDE_TRIES: u32 = 20;

fn runs_outside_a_transaction(sql: &str) -> bool {
    sql.lines().any(|line| line.trim() == OUTSIDE_A_TRANSACTION)
}

/// The statements of a SQL file, split at each `;` outside comments, quotes
/// and dollar quotes; empty ones (only comments or space) left out.
pub fn statements(sql: &str) -> Vec<&str> {
    let bytes = sql.as_bytes();
    let (mut out, mut start, mut i) = (Vec::new(), 0, 0);
    let mut meaningful = false;
    while i < bytes.len() {
        match bytes[i] {
            b'-' if bytes.get(i + 1) == Some(&b'-') => {
                i = sql[i..].find('\n').map_or(bytes.len(), |n| i + n);
                continue;
            }
            quote @ (b'\'' | b'"') => {
                meaningful = true;
                i = sql[i + 1..].find(quote as char).map_or(bytes.len(), |n| i + 1 + n + 1);
                continue;
            }
            b'$' => {
                meaningful = true;
                let tag_len = sql[i + 1..].find(|c: char| !(c.is_alphanumeric() || c == '_')).unwrap_or(0);
                if sql[i + 1 + tag_len..].starts_with('$') {
                    let tag = &sql[i..i + tag_len + 2];
                    let body = i + tag.len();
                    i = sql[body..].find(tag).map_or(bytes.len(), |n| body + n + tag.len());
                    continue;
                }
            }
            b';' => {
                if meaningful {
                    out.push(sql[start..=i].trim());
                }
                start = i + 1;
                meaningful = false;
            }
            c if !c.is_ascii_whitespace() => meaningful = true,
            _ => {}
        }
        i += 1;
    }
    if meaningful {
        out.push(sql[start..].trim());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_split_at_semicolons_outside_comments_quotes_and_dollar_quotes() {
        let cases: &[(&str, &[&str])] = &[
            ("SELECT 1; SELECT 2;", &["SELECT 1;", "SELECT 2;"]),
            ("-- a; comment\nSELECT 1;\n-- trailing; comment\n", &["-- a; comment\nSELECT 1;"]),
            ("SELECT ';', \"a;b\";", &["SELECT ';', \"a;b\";"]),
            ("DO $$ BEGIN PERFORM 1; END $$;\nSELECT 2", &["DO $$ BEGIN PERFORM 1; END $$;", "SELECT 2"]),
            ("DO $do$ BEGIN EXECUTE $f$x;$f$; END $do$;", &["DO $do$ BEGIN EXECUTE $f$x;$f$; END $do$;"]),
            ("SELECT $1::int;", &["SELECT $1::int;"]),
            ("  \n-- only a comment\n", &[]),
        ];
        for (sql, expected) in cases {
            assert_eq!(statements(sql), *expected, "{sql}");
        }
    }

    #[test]
    fn printed_steps_quote_every_file_safely() {
        let script = print_sql(MIGRATIONS);
        for (version, _, sql) in MIGRATIONS {
            // The dollar quotes the script wraps files in never occur in one.
            assert!(!sql.contains("$tailhook_"), "version {version} holds a tag print_sql quotes with");
        }
        // Flyway replaces `${name}` placeholders anywhere in a script.
        assert!(!script.contains("${"), "a Flyway placeholder");
        let markers: Vec<&str> = script.lines().filter(|l| l.starts_with(STEP_MARKER)).collect();
        let transactional = markers.iter().filter(|l| l.ends_with(": transactional")).count();
        let outside = markers.iter().filter(|l| l.ends_with(": outside a transaction")).count();
        assert_eq!(transactional, MIGRATIONS.len(), "one transactional step per file (or per file's record)");
        let statements_outside: usize =
            MIGRATIONS.iter().filter(|m| runs_outside_a_transaction(m.2)).map(|m| statements(m.2).len()).sum();
        assert_eq!(outside, statements_outside);
        assert_eq!(markers.len(), transactional + outside);
    }

    #[test]
    fn only_files_that_say_so_run_outside_a_transaction() {
        let outside: Vec<i32> =
            MIGRATIONS.iter().filter(|(_, _, sql)| runs_outside_a_transaction(sql)).map(|m| m.0).collect();
        assert_eq!(outside, [10, 31]);
        for (_, _, sql) in MIGRATIONS.iter().filter(|(_, _, sql)| !runs_outside_a_transaction(sql)) {
            assert!(!sql.to_uppercase().contains("CONCURRENTLY IF"), "a concurrent build in a transaction");
        }
    }
}
