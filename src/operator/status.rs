//! `tailhook status`: one row per endpoint (backlog, recent outcomes, state), as a table or as JSON.
//!
//! Counting every succeeded delivery of a busy endpoint would read millions
//! of rows, so finished deliveries are counted within a window by completion
//! time (default 24 h), from partial indexes of succeeded and of failed
//! deliveries on (endpoint, completion time): the cost follows recent
//! traffic, not retained history. `failed` is the exception: every failed
//! delivery still in the table, since each one is something an operator may
//! want to redeliver (they are few, and their index counts them). The success rate is over finished deliveries in the
//! window (succeeded / (succeeded + failed)), not over attempts: a delivery
//! that succeeded on its third attempt counts once, as a success.

use crate::db::{Capture, Db, DbError, EndpointStatus};
use serde::Serialize;

/// Why `status` stopped.
#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    /// `--window` is not an interval (exit 2).
    #[error("invalid --window `{0}`: {1}")]
    BadWindow(String, String),
    #[error("{0}")]
    Database(#[from] DbError),
}

/// What `--json` prints.
#[derive(Debug, Serialize)]
pub struct Report {
    /// The window the `*_in_window` figures and the success rate cover.
    pub window: String,
    pub endpoints: Vec<Row>,
    /// Tables whose changes are published (`tailhook.capture`).
    pub captures: Vec<Capture>,
}

/// One endpoint, as `--json` prints it.
#[derive(Debug, Serialize)]
pub struct Row {
    pub name: String,
    /// `enabled`, `paused`, `disabled` or `invalid` (the first that applies,
    /// in the order disabled, invalid, paused).
    pub state: &'static str,
    pub paused_until: Option<String>,
    pub disabled_reason: Option<String>,
    pub invalid_reason: Option<String>,
    pub pending: i64,
    pub retrying: i64,
    pub failed: i64,
    pub failed_in_window: i64,
    pub succeeded_in_window: i64,
    /// succeeded / (succeeded + failed) among deliveries finished in the
    /// window; `null` when none finished.
    pub success_rate_in_window: Option<f64>,
    pub oldest_undelivered_age_secs: Option<i64>,
}

impl From<EndpointStatus> for Row {
    fn from(s: EndpointStatus) -> Self {
        let state = if !s.enabled {
            "disabled"
        } else if s.invalid_reason.is_some() {
            "invalid"
        } else if s.paused_until.is_some() {
            "paused"
        } else {
            "enabled"
        };
        let finished = s.succeeded_in_window + s.failed_in_window;
        Self {
            name: s.name,
            state,
            paused_until: s.paused_until,
            disabled_reason: s.disabled_reason,
            invalid_reason: s.invalid_reason,
            pending: s.pending,
            retrying: s.retrying,
            failed: s.failed,
            failed_in_window: s.failed_in_window,
            succeeded_in_window: s.succeeded_in_window,
            success_rate_in_window: (finished > 0).then(|| s.succeeded_in_window as f64 / finished as f64),
            oldest_undelivered_age_secs: s.oldest_undelivered_secs,
        }
    }
}

/// Reads every endpoint's figures.
pub async fn report(db: &Db, window: &str) -> Result<Report, StatusError> {
    let rows = db.endpoint_status(window, "", None).await.map_err(|e| match (e.code(), &e) {
        // invalid_datetime_format, interval_field_overflow
        (Some("22007" | "22015"), DbError::Query(pg)) => {
            StatusError::BadWindow(window.to_owned(), crate::db::describe(pg))
        }
        _ => StatusError::Database(e),
    })?;
    let captures = db.captures().await?;
    Ok(Report { window: window.to_owned(), endpoints: rows.into_iter().map(Row::from).collect(), captures })
}

/// The report as a terminal table.
pub fn table(report: &Report) -> String {
    use comfy_table::{presets::UTF8_FULL_CONDENSED, CellAlignment, Table};
    if report.endpoints.is_empty() {
        return format!(
            "no endpoints yet: add one with INSERT INTO tailhook.endpoints (name, url, secrets) ... \
             or an [[endpoints]] entry in config.toml\n{}",
            captures(&report.captures)
        );
    }
    let w = &report.window;
    let mut table = Table::new();
    table.load_style(UTF8_FULL_CONDENSED).set_header(vec![
        "endpoint".to_owned(),
        "pending".to_owned(),
        "retrying".to_owned(),
        "failed".to_owned(),
        format!("succeeded ({w})"),
        format!("success rate ({w})"),
        "oldest undelivered".to_owned(),
        "state".to_owned(),
    ]);
    for r in &report.endpoints {
        let state = match r.state {
            "disabled" => format!("disabled: {}", r.disabled_reason.as_deref().unwrap_or("by a user")),
            "invalid" => format!("invalid: {}", r.invalid_reason.as_deref().unwrap_or_default()),
            "paused" => format!("paused until {}", r.paused_until.as_deref().unwrap_or_default()),
            other => other.to_owned(),
        };
        table.add_row(vec![
            r.name.clone(),
            r.pending.to_string(),
            r.retrying.to_string(),
            r.failed.to_string(),
            r.succeeded_in_window.to_string(),
            r.success_rate_in_window.map_or("-".to_owned(), |rate| format!("{:.1} %", rate * 100.0)),
            r.oldest_undelivered_age_secs.map_or("-".to_owned(), age),
            state,
        ]);
    }
    for column in 1..=6 {
        if let Some(c) = table.column_mut(column) {
            c.set_cell_alignment(CellAlignment::Right);
        }
    }
    format!(
        "{table}\nfailed: every failed delivery still recorded; succeeded and success rate: deliveries \
         finished in the last {w} (succeeded / (succeeded + failed), not attempts)\n{}",
        captures(&report.captures)
    )
}

/// The captured tables, one line each (nothing when there is none).
fn captures(list: &[Capture]) -> String {
    let mut out = String::new();
    if !list.is_empty() {
        out.push_str("\ncaptured tables (tailhook.captures):\n");
    }
    for c in list {
        out.push_str(&format!(
            "  {} -> {}.* on {}; columns: {}; tenant: {}; key: {}\n",
            c.table,
            c.event_type,
            c.operations.join(", "),
            c.columns.as_ref().map_or("all".to_owned(), |c| c.join(", ")),
            c.tenant_column.as_deref().unwrap_or("-"),
            c.key_column
        ));
    }
    out
}

/// An age in its two largest units: `45s`, `3m 20s`, `2h 5m`, `3d 4h`.
pub fn age(secs: i64) -> String {
    let secs = secs.max(0);
    let (d, h, m, s) = (secs / 86_400, secs / 3_600 % 24, secs / 60 % 60, secs % 60);
    match () {
        _ if d > 0 => format!("{d}d {h}h"),
        _ if h > 0 => format!("{h}h {m}m"),
        _ if m > 0 => format!("{m}m {s}s"),
        _ => format!("{s}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_show_their_two_largest_units() {
        for (secs, text) in [(0, "0s"), (45, "45s"), (200, "3m 20s"), (7_500, "2h 5m"), (273_600, "3d 4h"), (-3, "0s")]
        {
            assert_eq!(age(secs), text, "{secs}");
        }
    }

    #[test]
    fn state_takes_disabled_then_invalid_then_paused() {
        let base = EndpointStatus {
            name: "a".into(),
            enabled: true,
            disabled_reason: None,
            invalid_reason: None,
            paused_until: None,
            pending: 0,
            retrying: 0,
            failed: 0,
            failed_in_window: 1,
            succeeded_in_window: 3,
            oldest_undelivered_secs: None,
            id: 1,
        };
        let paused = EndpointStatus { paused_until: Some("2030-01-01T00:00:00Z".into()), ..base.clone() };
        let invalid = EndpointStatus { invalid_reason: Some("url: bad".into()), ..paused.clone() };
        let disabled = EndpointStatus { enabled: false, ..invalid.clone() };
        for (status, state) in [(base, "enabled"), (paused, "paused"), (invalid, "invalid"), (disabled, "disabled")] {
            let row = Row::from(status);
            assert_eq!(row.state, state);
            assert_eq!(row.success_rate_in_window, Some(0.75));
        }
    }
}
