//! Retention's statements (`sql/queries/retention_*.sql`): each batch one short transaction under the retention advisory lock.

use super::typed::Param;
use super::{Db, DbError};

const LOCK: &str = include_str!("../../sql/queries/retention_lock.sql");
const STAMP_CANCELLED: &str = include_str!("../../sql/queries/retention_stamp_cancelled.sql");
const DELIVERIES: &str = include_str!("../../sql/queries/retention_deliveries.sql");
const OUTBOX: &str = include_str!("../../sql/queries/retention_outbox.sql");
const EVENT_IDS: &str = include_str!("../../sql/queries/retention_event_ids.sql");

/// What one retention batch removed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Removed {
    pub deliveries: i64,
    /// Attempt rows, counted from the deleted deliveries' `attempts`.
    pub attempts: i64,
    pub outbox: i64,
}

/// Ages and batch size of one retention run.
#[derive(Debug, Clone, Copy)]
pub struct Ages {
    pub succeeded_ms: i64,
    pub failed_ms: i64,
    pub batch: i64,
}

/// Where the walk over the outbox stands (see `retention_outbox.sql`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutboxStep {
    pub removed: i64,
    pub next_after: i64,
    /// The walk reached rows not yet old enough (or the end): stop for this run.
    pub done: bool,
}

impl Db {
    /// One batch of finished deliveries (with their attempts and emptied
    /// outbox rows), in its own transaction; `None` when another replica
    /// holds the retention lock.
    pub async fn retention_batch(&self, ages: Ages) -> Result<Option<Removed>, DbError> {
        self.with_client(async |client| {
            let tx = client.transaction().await?;
            if !self.one(&tx, LOCK, &[]).await?.try_get::<_, bool>(0)? {
                return Ok(None);
            }
            self.exec(&tx, STAMP_CANCELLED, &[&ages.batch]).await?;
            let params: [&dyn Param; 3] = [&ages.succeeded_ms, &ages.failed_ms, &ages.batch];
            let row = self.one(&tx, DELIVERIES, &params).await?;
            let removed = Removed { deliveries: row.try_get(0)?, attempts: row.try_get(1)?, outbox: row.try_get(2)? };
            tx.commit().await?;
            Ok(Some(removed))
        })
        .await
    }

    /// One window of the walk over outbox rows without deliveries, in its own
    /// transaction; `None` when another replica holds the retention lock.
    pub async fn retention_outbox(&self, after: i64, ages: Ages) -> Result<Option<OutboxStep>, DbError> {
        self.with_client(async |client| {
            let tx = client.transaction().await?;
            if !self.one(&tx, LOCK, &[]).await?.try_get::<_, bool>(0)? {
                return Ok(None);
            }
            let params: [&dyn Param; 3] = [&after, &ages.succeeded_ms, &ages.batch];
            let row = self.one(&tx, OUTBOX, &params).await?;
            let step = OutboxStep { removed: row.try_get(0)?, next_after: row.try_get(1)?, done: row.try_get(2)? };
            tx.commit().await?;
            Ok(Some(step))
        })
        .await
    }

    /// Up to `batch` ids of events gone with a dropped period removed from
    /// `tailhook.event_ids`, in its own transaction; `None` when another
    /// replica holds the retention lock.
    pub async fn retention_event_ids(&self, batch: i64) -> Result<Option<i64>, DbError> {
        self.with_client(async |client| {
            let tx = client.transaction().await?;
            if !self.one(&tx, LOCK, &[]).await?.try_get::<_, bool>(0)? {
                return Ok(None);
            }
            let batch = batch.clamp(1, i32::MAX as i64) as i32;
            let removed: i64 = self.one(&tx, EVENT_IDS, &[&batch]).await?.try_get(0)?;
            tx.commit().await?;
            Ok(Some(removed))
        })
        .await
    }
}
