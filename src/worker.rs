//! One delivery attempt, from lease to recorded result; a slot of the global concurrency budget while it runs.

use crate::outcome::next_state;
use crate::recorder::Record;
use crate::sender::Event;
use crate::sidecar::Ctx;
use std::sync::Arc;
use tokio::sync::Semaphore;

/// A unit of the concurrency budget, given back when dropped.
pub struct Slot(Arc<Semaphore>);

impl Slot {
    /// Wraps a permit the caller has already taken (and forgotten).
    pub fn new(capacity: Arc<Semaphore>) -> Self {
        Self(capacity)
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.add_permits(1);
    }
}

/// A leased delivery to attempt.
pub struct Job {
    pub delivery_id: i64,
    pub endpoint_id: i64,
    /// The number this attempt will have (1 for the first).
    pub attempt: u32,
    pub event: Arc<Event>,
    pub slot: Slot,
}

pub async fn run(ctx: Arc<Ctx>, job: Job) {
    let Job {
        delivery_id,
        endpoint_id,
        attempt,
        event,
        slot,
    } = job;
    let endpoint = match ctx.endpoints.get_or_refresh(endpoint_id, &ctx.db).await {
        Some(ep) if ep.enabled => ep,
        // Disabled (or deleted) since the claim: leave the delivery for later.
        _ => {
            let _ = ctx.records.send(Record::Release(delivery_id)).await;
            return;
        }
    };
    let attempt_info = tokio::select! {
        info = ctx.sender.send(&endpoint, &event) => info,
        _ = ctx.abandon.cancelled() => {
            let _ = ctx.records.send(Record::Release(delivery_id)).await;
            return;
        }
    };
    let jitter = rand::random::<f64>() * 2.0 - 1.0;
    let next = next_state(
        &attempt_info.outcome,
        attempt,
        endpoint.max_attempts,
        &ctx.backoff,
        jitter,
    );
    match &next {
        crate::outcome::Next::Failed { reason } => {
            tracing::warn!(endpoint = %endpoint.name, event_id = %event.event_id, delivery_id, attempt, %reason, "delivery failed")
        }
        crate::outcome::Next::Retry { delay } => tracing::debug!(
            endpoint = %endpoint.name, event_id = %event.event_id, delivery_id, attempt,
            error = attempt_info.outcome.error.as_deref().unwrap_or(""), retry_in_ms = delay.as_millis() as u64,
            "attempt failed; will retry"
        ),
        crate::outcome::Next::Succeeded => {}
    }
    // The slot is held until the result is queued, so results never pile up
    // faster than the recorder can take them.
    let _ = ctx
        .records
        .send(Record::Done {
            delivery_id,
            attempt,
            next,
            attempt_info,
        })
        .await;
    drop(slot);
}
