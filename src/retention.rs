//! Retention: drops whole partitions once their period is old enough, and deletes finished deliveries, their attempts and emptied outbox rows outside them in small batches, one replica at a time.
//!
//! Each run first drops the periods (the outbox's, deliveries', attempts'
//! and event ids' partitions of the same time range) whose end is
//! `succeeded_after_ms` old, one period per short transaction under the
//! partition advisory lock; the few rows the rules below still keep are
//! copied back first and land in the undated and DEFAULT partitions
//! (tailhook.partitions_drop, sql/0031_partitions.sql). Rows outside the
//! managed periods (those, and the legacy partition of a converted
//! installation) are deleted row by row as before:
//! Each run (every `retention.interval_ms`) deletes batch after batch, each
//! batch one short transaction that first takes the retention advisory lock
//! without waiting: when another replica holds it, this run ends at once (the
//! other replica is doing the work). Nothing unfinished is ever deleted: only
//! `succeeded`, `failed` and `cancelled` deliveries that are not leased, and
//! outbox rows once none of their deliveries is left. Each run also cancels
//! deliveries of endpoints that no longer exist (see `cancel_orphans.sql`).

use crate::config::RetentionConfig;
use crate::db::{Ages, Db, DbError};
use crate::log_throttle::Throttle;
use crate::metrics::Metrics;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Runs retention every `interval_ms` until `shutdown`. Never returns early;
/// database errors are logged (at most every 10 s) and retried next run.
pub(crate) async fn run(db: Db, config: RetentionConfig, metrics: Arc<Metrics>, shutdown: CancellationToken) {
    let throttle = Throttle::new(Duration::from_secs(10));
    let ages = Ages {
        succeeded_ms: config.succeeded_after_ms.min(i64::MAX as u64) as i64,
        failed_ms: config.failed_after_ms.min(i64::MAX as u64) as i64,
        batch: i64::from(config.batch_size),
    };
    let mut walk = Walk::default();
    let mut every = tokio::time::interval(Duration::from_millis(config.interval_ms));
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = every.tick() => {}
            _ = shutdown.cancelled() => return,
        }
        if let Err(error) = run_once(&db, ages, &mut walk, &metrics, &shutdown).await {
            if let Some(skipped) = throttle.allow() {
                tracing::warn!(%error, skipped, "retention: cannot delete old rows; retrying next run");
            }
        }
    }
}

/// The walk over outbox rows that have no delivery: where it stands, kept
/// between runs (a restart walks from the start again, once).
#[derive(Debug, Default)]
struct Walk {
    after: i64,
}

/// One run: deliveries first (their emptied outbox rows go with them), then
/// the walk over outbox rows without deliveries.
async fn run_once(
    db: &Db,
    ages: Ages,
    walk: &mut Walk,
    metrics: &Metrics,
    shutdown: &CancellationToken,
) -> Result<(), DbError> {
    drop_partitions(db, ages, metrics, shutdown).await?;
    // The ids of events gone with dropped periods left in tailhook.event_ids'
    // DEFAULT partition (publishers' own ids; tailhook's went with the period).
    while !shutdown.is_cancelled() {
        let started = tokio::time::Instant::now();
        match db.retention_event_ids(ages.batch).await? {
            Some(removed) if removed >= ages.batch => rest(started, shutdown).await,
            _ => break,
        }
    }
    let orphans = db.cancel_orphans().await?;
    if orphans > 0 {
        tracing::info!(orphans, "cancelled deliveries whose endpoint no longer exists");
    }
    let mut total = crate::db::Removed::default();
    while !shutdown.is_cancelled() {
        let started = tokio::time::Instant::now();
        let Some(removed) = db.retention_batch(ages).await? else {
            tracing::debug!("retention: another replica is deleting");
            return Ok(());
        };
        count(metrics, removed);
        total.deliveries += removed.deliveries;
        total.attempts += removed.attempts;
        total.outbox += removed.outbox;
        if removed.deliveries < ages.batch {
            break;
        }
        rest(started, shutdown).await;
    }
    while !shutdown.is_cancelled() {
        let started = tokio::time::Instant::now();
        let Some(step) = db.retention_outbox(walk.after, ages).await? else {
            return Ok(());
        };
        count(metrics, crate::db::Removed { outbox: step.removed, ..Default::default() });
        total.outbox += step.removed;
        walk.after = step.next_after;
        if step.done {
            break;
        }
        rest(started, shutdown).await;
    }
    if total != crate::db::Removed::default() {
        tracing::debug!(
            deliveries = total.deliveries,
            attempts = total.attempts,
            outbox = total.outbox,
            "retention: old rows deleted"
        );
    }
    Ok(())
}

/// Drops old periods one at a time until none is old enough, another replica
/// holds the partition lock, or a table stays busy past lock_timeout (then
/// next run).
async fn drop_partitions(db: &Db, ages: Ages, metrics: &Metrics, shutdown: &CancellationToken) -> Result<(), DbError> {
    while !shutdown.is_cancelled() {
        let dropped = match db.partitions_drop(ages.succeeded_ms, ages.failed_ms).await {
            Ok(Some(d)) if d.dropped > 0 => d,
            Ok(_) => return Ok(()),
            Err(e)
                if matches!(
                    e.code(),
                    Some(crate::partitions::LOCK_NOT_AVAILABLE | crate::partitions::DEADLOCK_DETECTED)
                ) =>
            {
                tracing::debug!(error = %e, "retention: a table was busy; dropping its old partitions next run");
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        metrics.retention_partitions_dropped.inc_by(dropped.dropped as u64);
        tracing::info!(partitions = dropped.dropped, kept = dropped.kept, "retention: old partitions dropped");
    }
    Ok(())
}

/// Between two full batches, waits as long as the last one took: a backlog
/// (the first run on a large table, a burst) is worked off at no more than
/// half of one database connection's time, leaving the rest to claims.
async fn rest(batch_started: tokio::time::Instant, shutdown: &CancellationToken) {
    tokio::select! {
        _ = tokio::time::sleep(batch_started.elapsed()) => {}
        _ = shutdown.cancelled() => {}
    }
}

/// `tailhook_retention_deleted_total{table}`: rows removed, per table.
fn count(metrics: &Metrics, removed: crate::db::Removed) {
    for (table, n) in [("deliveries", removed.deliveries), ("attempts", removed.attempts), ("outbox", removed.outbox)] {
        if n > 0 {
            metrics.retention_deleted.get_or_create(&vec![("table", table.to_owned())]).inc_by(n as u64);
        }
    }
}
