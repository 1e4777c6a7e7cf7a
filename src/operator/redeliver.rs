//! `tailhook redeliver`: puts the selected deliveries back to be sent now, in batches, with progress.

use crate::db::{Db, DbError, Selection};
use indicatif::{ProgressBar, ProgressStyle};

/// Why redelivery stopped.
#[derive(Debug, thiserror::Error)]
pub enum RedeliverError {
    /// The selection itself is wrong (exit 2).
    #[error("{0}")]
    BadInput(String),
    #[error("{0}")]
    Database(#[from] DbError),
}

/// Deliveries changed per statement.
const BATCH: i64 = 1_000;

/// Redelivers (or, with `dry_run`, counts) the selection; returns how many.
pub async fn redeliver(db: &Db, selection: &Selection, dry_run: bool) -> Result<u64, RedeliverError> {
    if let Some(name) = &selection.endpoint {
        if !db.endpoint_exists(name).await? {
            return Err(RedeliverError::BadInput(format!("no endpoint named `{name}`")));
        }
    }
    if let Some(ids) = &selection.ids {
        let missing = db.deliveries_missing(ids).await?;
        if !missing.is_empty() {
            let list = missing.iter().map(i64::to_string).collect::<Vec<_>>().join(", ");
            let what = if missing.len() == 1 { "no delivery has id" } else { "no deliveries have ids" };
            return Err(RedeliverError::BadInput(format!("{what} {list}; nothing was redelivered")));
        }
    }
    let total = walk(db, selection, true, None).await?;
    if dry_run || total == 0 {
        return Ok(total);
    }
    let progress = (total > BATCH as u64).then(|| {
        let bar = ProgressBar::new(total);
        if let Ok(style) = ProgressStyle::with_template("redelivering {bar:40} {pos}/{len} ({eta} left)") {
            bar.set_style(style);
        }
        bar
    });
    let done = walk(db, selection, false, progress.as_ref()).await;
    if let Some(bar) = progress {
        bar.finish_and_clear();
    }
    done
}

/// Goes through the selection in id order, one batch per statement.
async fn walk(
    db: &Db,
    selection: &Selection,
    dry_run: bool,
    progress: Option<&ProgressBar>,
) -> Result<u64, RedeliverError> {
    let mut after = 0;
    let mut total = 0;
    loop {
        let (count, last) = db.redeliver_batch(selection, after, BATCH, dry_run).await.map_err(describe)?;
        total += count as u64;
        if let Some(bar) = progress {
            bar.inc(count as u64);
        }
        if count < BATCH {
            return Ok(total);
        }
        after = last;
    }
}

/// PostgreSQL refusing a time filter is bad input naming the options.
fn describe(e: DbError) -> RedeliverError {
    match (e.code(), &e) {
        (Some("22007" | "22008"), DbError::Query(pg)) => {
            RedeliverError::BadInput(format!("invalid --since or --until: {}", crate::db::describe(pg)))
        }
        _ => RedeliverError::Database(e),
    }
}
