//! Partition maintenance's statements (`sql/queries/partitions_*.sql`): each one short transaction under the partition advisory lock.

use super::typed::Param;
use super::{Db, DbError};

const LOCK: &str = include_str!("../../sql/queries/partitions_lock.sql");
const PREPARE: &str = include_str!("../../sql/queries/partitions_prepare.sql");
const STRAYS: &str = include_str!("../../sql/queries/partitions_strays.sql");
const DROP: &str = include_str!("../../sql/queries/partitions_drop.sql");

/// What one round of partition preparation did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Prepared {
    pub created: i32,
    /// Rows moved out of the DEFAULT partitions into new ones.
    pub moved: i64,
}

/// What one partition drop did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Dropped {
    /// Partitions dropped (three per period).
    pub dropped: i32,
    /// Rows copied back (they land in the DEFAULT partitions).
    pub kept: i64,
}

impl Db {
    /// Creates the partitions up to `ahead` periods of `width_ms` ahead;
    /// `None` when another replica holds the partition lock.
    pub async fn partitions_prepare(&self, width_ms: i64, ahead: i32) -> Result<Option<Prepared>, DbError> {
        self.with_client(async |client| {
            let tx = client.transaction().await?;
            if !self.one(&tx, LOCK, &[]).await?.try_get::<_, bool>(0)? {
                return Ok(None);
            }
            let params: [&dyn Param; 2] = [&width_ms, &ahead];
            let row = self.one(&tx, PREPARE, &params).await?;
            let prepared = Prepared { created: row.try_get(0)?, moved: row.try_get(1)? };
            tx.commit().await?;
            Ok(Some(prepared))
        })
        .await
    }

    /// Rows in each table's DEFAULT partition that belong to a managed period.
    pub async fn partition_strays(&self) -> Result<Vec<(String, i64)>, DbError> {
        self.with_client(async |client| {
            let rows = self.rows(&*client, STRAYS, &[]).await?;
            rows.iter().map(|r| Ok((r.try_get(0)?, r.try_get(1)?))).collect()
        })
        .await
    }

    /// Drops the oldest period old enough, if any; `None` when another
    /// replica holds the partition lock.
    pub async fn partitions_drop(&self, succeeded_ms: i64, failed_ms: i64) -> Result<Option<Dropped>, DbError> {
        self.with_client(async |client| {
            let tx = client.transaction().await?;
            if !self.one(&tx, LOCK, &[]).await?.try_get::<_, bool>(0)? {
                return Ok(None);
            }
            let params: [&dyn Param; 2] = [&succeeded_ms, &failed_ms];
            let row = self.one(&tx, DROP, &params).await?;
            let dropped = Dropped { dropped: row.try_get(0)?, kept: row.try_get(1)? };
            tx.commit().await?;
            Ok(Some(dropped))
        })
        .await
    }
}
