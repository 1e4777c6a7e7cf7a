//! `tailhook redeliver`: puts the selected deliveries back to be sent now, in batches, with progress.

use crate::db::{Db, Selection};
use indicatif::{ProgressBar, ProgressStyle};

/// Deliveries changed per statement.
const BATCH: i64 = 1_000;

/// Redelivers (or, with `dry_run`, counts) the selection; returns how many.
pub async fn redeliver(db: &Db, selection: &Selection, dry_run: bool) -> Result<u64, String> {
    if let Some(name) = &selection.endpoint {
        if !db.endpoint_exists(name).await.map_err(|e| e.to_string())? {
            return Err(format!("no endpoint named `{name}`"));
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
async fn walk(db: &Db, selection: &Selection, dry_run: bool, progress: Option<&ProgressBar>) -> Result<u64, String> {
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

/// Database errors about the time filters name the options.
fn describe(e: crate::db::DbError) -> String {
    if e.code() == Some("22007") || e.code() == Some("22008") {
        format!("invalid --since or --until: {e}")
    } else {
        e.to_string()
    }
}
