//! `[delivery]`: the defaults every endpoint delivers with, the destination policy and the pipeline's sizes.

use super::rules;
use super::secret::CredentialUrl;
use super::{invalid, positive, ConfigError};
use crate::guard::Cidr;
use serde::{Deserialize, Serialize};
use std::time::Duration;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DeliveryConfig {
    pub max_attempts: u32,
    pub timeout_ms: u64,
    pub backoff_initial_ms: u64,
    pub backoff_max_ms: u64,
    pub allow_private_networks: bool,
    pub allowed_cidrs: Vec<String>,
    pub https_only: bool,
    pub max_payload_bytes: usize,
    pub max_response_bytes: usize,
    pub shutdown_grace_ms: u64,
    /// Requests in flight at once, over all endpoints.
    pub concurrency: usize,
    /// Most outbox rows or due deliveries taken by one claim.
    pub batch_size: usize,
    /// Added to an endpoint's timeout to make its lease (at most 30 000).
    pub lease_margin_ms: u64,
    /// Requests in flight to one endpoint, for endpoints without their own.
    pub max_in_flight: u32,
    /// Requests started per second to one endpoint, for endpoints without
    /// their own; 0 means no limit.
    pub rate_limit_per_sec: u32,
    /// The circuit breaker opens when an endpoint has failed for at least this
    /// long without a success...
    pub breaker_after_ms: u64,
    /// ...and at least this many times.
    pub breaker_min_failures: u32,
    /// An endpoint failing this long without a success is disabled.
    pub disable_after_failing_ms: u64,
    /// An HTTP proxy (`http://[user:password@]host:port`) every request goes
    /// through, as a CONNECT tunnel to the address tailhook checked; "": none.
    pub proxy: CredentialUrl,
    /// Destinations reached without the proxy: `*`, `example.com` (and the
    /// names under it), `*.example.com` (names under it only), or an IP network.
    pub proxy_bypass: Vec<String>,
}

impl DeliveryConfig {
    /// `[delivery]`'s keys within their bounds (the endpoint rules' for the defaults they give).
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        positive("delivery.backoff_initial_ms", self.backoff_initial_ms)?;
        positive("delivery.concurrency", self.concurrency as u64)?;
        positive("delivery.batch_size", self.batch_size as u64)?;
        positive("delivery.max_payload_bytes", self.max_payload_bytes as u64)?;
        if self.max_payload_bytes > MAX_PAYLOAD_BYTES {
            return Err(invalid("delivery.max_payload_bytes", format!("must be at most {MAX_PAYLOAD_BYTES}")));
        }
        for (limit, value) in [
            (rules::MAX_ATTEMPTS, u64::from(self.max_attempts)),
            (rules::TIMEOUT_MS, self.timeout_ms),
            (rules::MAX_IN_FLIGHT, u64::from(self.max_in_flight)),
            (rules::BACKOFF_INITIAL_MS, self.backoff_initial_ms),
            (rules::BACKOFF_MAX_MS, self.backoff_max_ms),
        ] {
            let key = format!("delivery.{}", limit.field);
            limit.check(Some(value.min(i64::MAX as u64) as i64)).map_err(|p| invalid(key, p.reason))?;
        }
        if self.rate_limit_per_sec > 0 {
            rules::RATE_LIMIT_PER_SEC
                .check(Some(i64::from(self.rate_limit_per_sec)))
                .map_err(|p| invalid("delivery.rate_limit_per_sec", p.reason))?;
        }
        if self.concurrency > MAX_CONCURRENCY {
            return Err(invalid("delivery.concurrency", format!("must be at most {MAX_CONCURRENCY}")));
        }
        positive("delivery.breaker_min_failures", u64::from(self.breaker_min_failures))?;
        positive("delivery.disable_after_failing_ms", self.disable_after_failing_ms)?;
        if self.backoff_max_ms < self.backoff_initial_ms {
            return Err(invalid("delivery.backoff_max_ms", "must be at least delivery.backoff_initial_ms"));
        }
        if self.lease_margin_ms > 30_000 {
            return Err(invalid("delivery.lease_margin_ms", "must be at most 30000"));
        }
        for (i, cidr) in self.allowed_cidrs.iter().enumerate() {
            cidr.parse::<Cidr>().map_err(|e| invalid(format!("delivery.allowed_cidrs[{i}]"), e))?;
        }
        crate::egress::Egress::parse(self.proxy.expose(), &self.proxy_bypass)
            .map_err(|(key, reason)| invalid(key, reason))?;
        Ok(())
    }
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        Self {
            max_attempts: 18,
            timeout_ms: 10_000,
            backoff_initial_ms: 5_000,
            backoff_max_ms: 21_600_000,
            allow_private_networks: false,
            allowed_cidrs: Vec::new(),
            https_only: false,
            max_payload_bytes: 1_048_576,
            max_response_bytes: 4_096,
            shutdown_grace_ms: 15_000,
            concurrency: 512,
            batch_size: 1_000,
            lease_margin_ms: 30_000,
            max_in_flight: 256,
            rate_limit_per_sec: 0,
            breaker_after_ms: 60_000,
            breaker_min_failures: 10,
            disable_after_failing_ms: 5 * 24 * 3_600_000,
            proxy: CredentialUrl::default(),
            proxy_bypass: Vec::new(),
        }
    }
}

/// Largest `delivery.max_payload_bytes` (64 MiB).
pub const MAX_PAYLOAD_BYTES: usize = 64 << 20;

/// Most requests in flight at once over all endpoints.
pub const MAX_CONCURRENCY: usize = 10_000;

impl DeliveryConfig {
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }
}
