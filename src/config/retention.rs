//! `[retention]`: how long finished work is kept, and how it is deleted.

use super::{invalid, positive, ConfigError};
use serde::{Deserialize, Serialize};

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
        positive("retention.batch_size", u64::from(self.batch_size))?;
        if self.batch_size > MAX_RETENTION_BATCH {
            return Err(invalid("retention.batch_size", format!("must be at most {MAX_RETENTION_BATCH}")));
        }
        Ok(())
    }
}

impl Default for RetentionConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            succeeded_after_ms: 7 * 24 * 3_600_000,
            failed_after_ms: 30 * 24 * 3_600_000,
            interval_ms: 10_000,
            batch_size: 1_000,
        }
    }
}

/// Largest `retention.batch_size`: a batch is one short transaction.
pub const MAX_RETENTION_BATCH: u32 = 5_000;
