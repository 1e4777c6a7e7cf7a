//! `[log]`: the filter, the format and the summary line's interval.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// A `tracing` filter such as `info` or `tailhook=debug`; `RUST_LOG` wins when set.
    pub level: String,
    pub format: LogFormat,
    /// How often an INFO line sums up deliveries; 0 turns it off.
    pub summary_interval_ms: u64,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self { level: "info".into(), format: LogFormat::Text, summary_interval_ms: 60_000 }
    }
}

/// A `tracing` filter whose every directive is a level or `target=level`.
/// (A bare word is a valid filter meaning "everything of target `word`", so
/// a typo such as `infoo` would silently turn every log line off.)
pub(super) fn check_log_filter(filter: &str) -> Result<(), String> {
    const LEVELS: [&str; 6] = ["off", "error", "warn", "info", "debug", "trace"];
    tracing_subscriber::EnvFilter::try_new(filter).map_err(|e| format!("not a log filter: {e}"))?;
    for directive in filter.split(',').map(str::trim).filter(|d| !d.is_empty()) {
        if !directive.contains(['=', '[']) && !LEVELS.contains(&directive.to_ascii_lowercase().as_str()) {
            return Err(format!("`{directive}` is not a level ({}) nor `target=level`", LEVELS.join(", ")));
        }
    }
    Ok(())
}
