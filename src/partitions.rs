//! Partition maintenance: creates the outbox's, deliveries', attempts' and event ids' partitions ahead of need, and reports and repairs rows that landed in the DEFAULT partitions, one replica at a time.
//!
//! Every replica runs it (partitions must exist whether or not this replica
//! runs retention); each round is one short transaction that takes the
//! partition advisory lock without waiting, so replicas never race: the one
//! that gets it does the work, the others skip their turn. A round creates
//! the partitions up to [`AHEAD`] periods past now and moves any row of
//! those periods out of the DEFAULT partition first. Rows still in a DEFAULT
//! partition though their period is managed (written further ahead than the
//! prepared range) are counted in `tailhook_partition_default_rows` and
//! logged. Dropping old periods is retention's job (`retention.rs`).

use crate::db::{Db, DbError, Prepared};
use crate::log_throttle::Throttle;
use crate::metrics::Metrics;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Periods prepared ahead of now.
pub(crate) const AHEAD: i32 = 3;

/// How often a round runs for periods of `width`: four times a period, at
/// least every minute, at most every 250 ms.
pub(crate) fn cadence(width: Duration) -> Duration {
    (width / 4).clamp(Duration::from_millis(250), Duration::from_secs(60))
}

/// Runs a round at once, then every [`cadence`] (a second after a busy
/// table) until `shutdown`. Never returns early; errors are logged (at most
/// every 10 s) and retried.
pub(crate) async fn run(db: Db, width: Duration, metrics: Arc<Metrics>, shutdown: CancellationToken) {
    let throttle = Throttle::new(Duration::from_secs(10));
    let strays_throttle = Throttle::new(Duration::from_secs(60));
    let mut every = tokio::time::interval(cadence(width));
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = every.tick() => {}
            _ = shutdown.cancelled() => return,
        }
        if let Err(error) = round(&db, width, &metrics, &strays_throttle).await {
            // Another session held a table lock past lock_timeout (or
            // deadlocked with this round's): next round.
            if matches!(error.code(), Some(LOCK_NOT_AVAILABLE | DEADLOCK_DETECTED)) {
                tracing::debug!(%error, "partitions: a table was busy; trying again in a second");
                every.reset_after(BUSY_RETRY.min(cadence(width)));
            } else if let Some(skipped) = throttle.allow() {
                tracing::warn!(%error, skipped, "partitions: cannot prepare partitions; retrying next round");
            }
        }
    }
}

/// A round that found a table busy is tried again this soon, not a whole
/// cadence later: at start-up, events land in the DEFAULT partition (and must
/// be moved, costing WAL) until the first round succeeds.
const BUSY_RETRY: Duration = Duration::from_secs(1);

/// SQLSTATE lock_not_available (lock_timeout).
pub(crate) const LOCK_NOT_AVAILABLE: &str = "55P03";
/// SQLSTATE deadlock_detected.
pub(crate) const DEADLOCK_DETECTED: &str = "40P01";

/// Creates the periods up to [`AHEAD`] ahead of now (moving rows of those
/// periods out of the DEFAULT partitions); `None` when another replica is at
/// it. `tailhook migrate` calls it too, so that events published before the
/// sidecar starts land in their own partitions.
pub(crate) async fn prepare(db: &Db, width: Duration) -> Result<Option<Prepared>, DbError> {
    let width_ms = i64::try_from(width.as_millis()).unwrap_or(i64::MAX);
    db.partitions_prepare(width_ms, AHEAD).await
}

/// One round: count the rows in the DEFAULT partitions, then prepare (which
/// moves those whose period it creates).
async fn round(db: &Db, width: Duration, metrics: &Metrics, throttle: &Throttle) -> Result<(), DbError> {
    let strays = db.partition_strays().await?;
    let total: i64 = strays.iter().map(|s| s.1).sum();
    for (table, n) in &strays {
        metrics.partition_default_rows.get_or_create(&vec![("table", table.clone())]).set(*n);
    }
    if total > 0 {
        if let Some(skipped) = throttle.allow() {
            tracing::warn!(
                rows = total,
                skipped,
                "partitions: rows were written past the prepared partitions (into the DEFAULT partitions); \
                 they are moved into their own once their period is prepared"
            );
        }
    }
    match prepare(db, width).await? {
        None => tracing::debug!("partitions: another replica is preparing"),
        Some(p) => {
            if p.created > 0 {
                tracing::debug!(created = p.created, "partitions: created ahead");
            }
            if p.moved > 0 {
                tracing::info!(moved = p.moved, "partitions: rows moved out of the DEFAULT partitions");
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounds_run_four_times_a_period_within_bounds() {
        assert_eq!(cadence(Duration::from_secs(86_400)), Duration::from_secs(60));
        assert_eq!(cadence(Duration::from_secs(60)), Duration::from_secs(15));
        assert_eq!(cadence(Duration::from_secs(1)), Duration::from_millis(250));
    }
}
