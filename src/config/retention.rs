//! `[retention]`: how long finished work is kept, and how it is deleted.

use super::{invalid, positive, ConfigError};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// `[retention]`: how long finished work is kept, and how it is deleted.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetentionConfig {
    /// `false`: this replica never deletes anything (another replica, or
    /// your own job, may).
    pub enabled: bool,
    /// Succeeded deliveries (and their attempts) are deleted this long after
    /// they completed; so are outbox rows that never had a delivery, this
    /// long after they were dispatched.
    pub succeeded_after_ms: u64,
    /// Failed and cancelled deliveries are deleted this long after they
    /// completed (cancelled: after retention first saw them cancelled).
    pub failed_after_ms: u64,
    /// How often retention runs; each run deletes batch by batch until
    /// nothing old enough is left.
    pub interval_ms: u64,
    /// Deliveries deleted per transaction.
    pub batch_size: u32,
    /// Width of the periods the outbox, deliveries and attempts are
    /// partitioned by (sql/0031_partitions.sql): a whole number of seconds,
    /// minutes, hours or days, like `1 day` or `15 minutes`. A period's
    /// partitions are dropped once its end is `succeeded_after_ms` old.
    pub partition_interval: String,
}

impl RetentionConfig {
    /// `[retention]`'s keys within their bounds.
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        for (key, ms) in [
            ("retention.succeeded_after_ms", self.succeeded_after_ms),
            ("retention.failed_after_ms", self.failed_after_ms),
            ("retention.interval_ms", self.interval_ms),
        ] {
            positive(key, ms)?;
            if ms > i64::MAX as u64 {
                return Err(invalid(key, "is too large"));
            }
        }
        self.partition_width()?;
        positive("retention.batch_size", u64::from(self.batch_size))?;
        if self.batch_size > MAX_RETENTION_BATCH {
            return Err(invalid("retention.batch_size", format!("must be at most {MAX_RETENTION_BATCH}")));
        }
        Ok(())
    }
}

impl RetentionConfig {
    /// `partition_interval` as a duration (see [`parse_interval`]).
    pub fn partition_width(&self) -> Result<Duration, ConfigError> {
        parse_interval(&self.partition_interval).map_err(|why| invalid("retention.partition_interval", why))
    }
}

/// Smallest and largest `retention.partition_interval`.
pub const MIN_PARTITION_INTERVAL: Duration = Duration::from_secs(1);
pub const MAX_PARTITION_INTERVAL: Duration = Duration::from_secs(31 * 86_400);

/// `<whole number> <unit>`, the unit one of s, sec, second(s), m, min,
/// minute(s), h, hour(s), d, day(s); between one second and 31 days.
pub fn parse_interval(text: &str) -> Result<Duration, String> {
    const SHAPE: &str = "must be a whole number of seconds, minutes, hours or days, like \"1 day\" or \"15 minutes\"";
    let text = text.trim();
    let digits = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(digits);
    let number: u64 = number.parse().map_err(|_| SHAPE.to_owned())?;
    let unit_secs: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "s" | "sec" | "secs" | "second" | "seconds" => 1,
        "m" | "min" | "mins" | "minute" | "minutes" => 60,
        "h" | "hour" | "hours" => 3_600,
        "d" | "day" | "days" => 86_400,
        _ => return Err(SHAPE.to_owned()),
    };
    let width = Duration::from_secs(number.saturating_mul(unit_secs));
    if width < MIN_PARTITION_INTERVAL {
        return Err("must be at least 1 second".to_owned());
    }
    if width > MAX_PARTITION_INTERVAL {
        return Err("must be at most 31 days".to_owned());
    }
    Ok(width)
}

impl Default for RetentionConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            succeeded_after_ms: 7 * 24 * 3_600_000,
            failed_after_ms: 30 * 24 * 3_600_000,
            interval_ms: 10_000,
            batch_size: 1_000,
            partition_interval: "1 day".to_owned(),
        }
    }
}

/// Largest `retention.batch_size`: a batch is one short transaction.
pub const MAX_RETENTION_BATCH: u32 = 5_000;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_intervals_parse_in_whole_units_within_bounds() {
        for (text, secs) in
            [("1 day", 86_400), ("1 hour", 3_600), ("1 minute", 60), ("15m", 900), ("30 s", 30), (" 2 Days ", 172_800)]
        {
            assert_eq!(parse_interval(text), Ok(Duration::from_secs(secs)), "{text}");
        }
        for (text, why) in [
            ("0 s", "at least 1 second"),
            ("32 days", "at most 31 days"),
            ("1.5 hours", "whole number"),
            ("day", "whole number"),
            ("1 week", "whole number"),
            ("", "whole number"),
        ] {
            let err = parse_interval(text).unwrap_err();
            assert!(err.contains(why), "{text}: {err}");
        }
    }
}
