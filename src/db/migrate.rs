//! Applies the numbered plain-SQL migrations in `sql/`, once each, under an advisory lock.

use super::DbError;
use tokio_postgres::Client;

/// (version, name, SQL) in order. Each file is also safe to run by hand.
pub const MIGRATIONS: &[(i32, &str, &str)] = &[
    (1, "schema", include_str!("../../sql/0001_schema.sql")),
    (2, "breaker", include_str!("../../sql/0002_breaker.sql")),
    (3, "ordering", include_str!("../../sql/0003_ordering.sql")),
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
    let applied: Vec<i32> = tx.query(APPLIED, &[]).await?.iter().map(|r| r.get(0)).collect();
    let mut done = Vec::new();
    for &(version, name, sql) in MIGRATIONS {
        if applied.contains(&version) {
            continue;
        }
        tx.batch_execute(sql).await.map_err(|source| DbError::Migration { version, name, source })?;
        tx.execute(RECORD, &[&version, &name]).await?;
        done.push(version);
    }
    tx.commit().await?;
    Ok(done)
}
