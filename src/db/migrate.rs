//! Applies the numbered plain-SQL migrations in `sql/`, once each, under an advisory lock.

use super::typed::typed;
use super::DbError;
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
    (12, "capture", include_str!("../../sql/0012_capture.sql")),
    (13, "operational_events", include_str!("../../sql/0013_operational_events.sql")),
];

const PREPARE: &str = include_str!("../../sql/queries/migrations_prepare.sql");
const APPLIED: &str = include_str!("../../sql/queries/migrations_applied.sql");
const RECORD: &str = include_str!("../../sql/queries/migrations_record.sql");

/// Brings the schema up to date in one transaction. Replicas starting at once
/// queue on the advisory lock; the later ones find nothing left to do.
/// Returns the versions applied by this call.
pub async fn migrate(client: &mut Client) -> Result<Vec<i32>, DbError> {
    let tx = client.transaction().await?;
    tx.batch_execute(PREPARE).await?;
    let applied = tx.query_typed(APPLIED, &[]).await?.iter().map(|r| r.try_get(0)).collect::<Result<Vec<i32>, _>>()?;
    let mut done = Vec::new();
    for &(version, name, sql) in MIGRATIONS {
        if applied.contains(&version) {
            continue;
        }
        tx.batch_execute(sql).await.map_err(|source| DbError::Migration { version, name, source })?;
        tx.execute_typed(RECORD, &typed(&[&version, &name])).await?;
        done.push(version);
    }
    tx.commit().await?;
    Ok(done)
}
