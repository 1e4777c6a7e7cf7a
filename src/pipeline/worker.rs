//! One delivery attempt, from lease to queued result; a slot of the global concurrency budget while it runs.

use crate::db::EventAt;
use crate::pipeline::endpoints::Endpoint;
use crate::pipeline::limits::Limits;
use crate::pipeline::outcome::{next_state, ErrorKind, Next, Outcome};
use crate::pipeline::recorder::Record;
use crate::pipeline::sender::{Attempt, Event};
use crate::pipeline::trace::AttemptFields;
use crate::pipeline::Ctx;
use crate::transform::{Ran, Script};
use bytes::Bytes;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;
use tokio::time::Instant;

/// Lease time kept in reserve after the HTTP deadline, for writing the
/// result: half the lease margin, at most this.
const RECORD_RESERVE: Duration = Duration::from_secs(1);

/// The lease time kept for writing a result, for a given lease margin.
pub fn record_reserve(lease_margin_ms: u64) -> Duration {
    RECORD_RESERVE.min(Duration::from_millis(lease_margin_ms / 2))
}

/// A unit of the concurrency budget and of its endpoint's in-flight limit,
/// both given back when dropped.
pub struct Slot {
    capacity: Arc<Semaphore>,
    limits: Arc<Limits>,
    endpoint_id: i64,
}

impl Slot {
    /// Wraps a permit the caller has already taken (and forgotten), and
    /// counts the delivery as started for its endpoint.
    pub fn new(capacity: Arc<Semaphore>, limits: Arc<Limits>, endpoint_id: i64) -> Self {
        limits.started(endpoint_id);
        Self { capacity, limits, endpoint_id }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.capacity.add_permits(1);
        self.limits.finished(self.endpoint_id);
    }
}

/// A leased delivery to attempt.
pub struct Job {
    pub delivery_id: i64,
    /// The delivery's partition key, as the claim returned it.
    pub event_at: EventAt,
    pub endpoint_id: i64,
    /// The number this attempt will have (1 for the first).
    pub attempt: u32,
    /// The claim's lease token.
    pub lease: i64,
    /// When the lease runs out (measured from before the claim was sent).
    pub lease_deadline: Instant,
    pub event: Arc<Event>,
    pub slot: Slot,
    /// What the endpoint's transform made of the event, when it ran before
    /// the attempt (with the deliveries of the same claim), and with which script.
    pub transformed: Option<(Arc<Script>, Ran)>,
    /// Claimed before without a result while its endpoint had a transform:
    /// the process holding it died, perhaps running the script (see
    /// sql/0022_transform_claims.sql). Failed as `transform`, not run again.
    pub died_transforming: bool,
}

/// Most deliveries of one endpoint transformed in one hand-off to a script
/// runner; several chunks of one claim run on several runners at once.
const TRANSFORM_CHUNK: usize = 32;

/// Starts one task per job. The jobs of an endpoint with a transform are
/// first transformed together, in chunks (one thread hand-off per chunk
/// rather than per delivery, and the script stays hot in the cache); the
/// others start at once.
pub fn start(ctx: &Arc<Ctx>, jobs: Vec<Job>) {
    let mut scripted: HashMap<i64, (Arc<Script>, String, Vec<Job>)> = HashMap::new();
    for job in jobs {
        let endpoint = ctx.endpoints.get(job.endpoint_id).filter(|_| job.event.body.is_ok());
        match endpoint.and_then(|ep| Some((ep.transform.clone()?, ep))) {
            // Not run again: `attempt` records the failure.
            Some(_) if job.died_transforming => {
                ctx.tracker.spawn(run(ctx.clone(), job));
            }
            Some((script, ep)) => {
                scripted.entry(job.endpoint_id).or_insert_with(|| (script, ep.name.clone(), Vec::new())).2.push(job)
            }
            None => {
                ctx.tracker.spawn(run(ctx.clone(), job));
            }
        }
    }
    for (script, name, jobs) in scripted.into_values() {
        let mut jobs = jobs.into_iter().peekable();
        while jobs.peek().is_some() {
            let chunk: Vec<Job> = jobs.by_ref().take(TRANSFORM_CHUNK).collect();
            ctx.tracker.spawn(transform_then_run(ctx.clone(), script.clone(), name.clone(), chunk));
        }
    }
}

/// Transforms the events of `jobs` (all for one endpoint, whose script is
/// `script`) in one hand-off, then starts each attempt with its body.
async fn transform_then_run(ctx: Arc<Ctx>, script: Arc<Script>, endpoint: String, jobs: Vec<Job>) {
    let inputs = jobs
        .iter()
        .filter_map(|job| job.event.body.as_ref().ok().map(|body| (body.clone(), job.event.tenant.clone())))
        .collect();
    let ran = tokio::select! {
        biased;
        _ = ctx.abandon.cancelled() => return,
        ran = ctx.transforms.run_many(script.clone(), &endpoint, inputs) => ran,
    };
    let mut ran = ran.into_iter();
    for mut job in jobs {
        // Every job here has a body (see `start`), so results pair up in order.
        job.transformed = ran.next().map(|ran| (script.clone(), ran));
        ctx.tracker.spawn(run(ctx.clone(), job));
    }
}

/// Runs the endpoint's transform on the event (unless it already ran with
/// this script): the event with the body to send, or the failed attempt
/// (`error_kind = 'transform'`) to record.
async fn transform(
    ctx: &Ctx,
    endpoint: &Endpoint,
    script: &Arc<Script>,
    event: &Event,
    body: &Bytes,
    ran: Option<(Arc<Script>, Ran)>,
) -> Result<Event, Attempt> {
    let ran = match ran {
        Some((ran_with, ran)) if Arc::ptr_eq(&ran_with, script) => ran,
        // The endpoint changed since the claim (or it had no script then).
        _ => {
            let input = vec![(body.clone(), event.tenant.clone())];
            ctx.transforms.run_many(script.clone(), &endpoint.name, input).await.pop().unwrap_or_else(Ran::failed)
        }
    };
    match ran.result {
        Ok(body) => Ok(event.with_body(body)),
        Err(e) => Err(Attempt {
            outcome: Outcome::failed(ErrorKind::Transform, e.to_string()),
            started_at: ran.started_at,
            duration: ran.took,
        }),
    }
}

/// Runs one attempt; gives up at once when the grace period is over (the
/// lease is then released at shutdown or expires).
pub async fn run(ctx: Arc<Ctx>, job: Job) {
    tokio::select! {
        biased;
        _ = ctx.abandon.cancelled() => {}
        _ = attempt(&ctx, job) => {}
    }
}

async fn attempt(ctx: &Ctx, job: Job) {
    let Job {
        delivery_id,
        event_at,
        endpoint_id,
        attempt,
        lease,
        lease_deadline,
        event,
        slot,
        transformed,
        died_transforming,
    } = job;
    let release = || async { ctx.records.send(Record::Release { delivery_id, event_at, lease }).await };
    let endpoint = match ctx.endpoints.get_or_refresh(endpoint_id, &ctx.db).await {
        Some(ep) if ep.enabled => ep,
        // Disabled (or deleted) since the claim: leave the delivery for later.
        _ => {
            let _ = release().await;
            return;
        }
    };
    // The body this endpoint receives: the envelope, or what its transform
    // makes of it (signed, sent and recorded like any other body).
    let transformed = match (&endpoint.transform, &event.body) {
        (Some(_), Ok(_)) if died_transforming => Some(Err(Attempt {
            outcome: Outcome::failed(
                ErrorKind::Transform,
                "transform: the process holding this delivery stopped without a result while its endpoint had a \
                 transform (the script may crash the process); not run again",
            ),
            started_at: std::time::SystemTime::now(),
            duration: Duration::ZERO,
        })),
        (Some(script), Ok(body)) => Some(transform(ctx, &endpoint, script, &event, body, transformed).await),
        _ => None,
    };
    // The attempt's span: the parent named in its `traceparent`.
    let span = ctx.tracer.attempt(&event.trace);
    let attempt_info = match transformed {
        Some(Err(failed)) => failed,
        transformed => {
            let sent = match &transformed {
                Some(Ok(sent)) => sent,
                _ => &*event,
            };
            // Never send past the lease: another replica may take the delivery then.
            let reserve = record_reserve(ctx.config.delivery.lease_margin_ms);
            let left = lease_deadline.saturating_duration_since(Instant::now()).saturating_sub(reserve);
            let timeout = endpoint.timeout.min(left);
            if timeout < Duration::from_millis(100) {
                let _ = release().await;
                return;
            }
            let _in_flight = ctx.metrics.in_flight(&endpoint.name);
            let propagation = span.propagation(&event.trace);
            ctx.sender.send(&endpoint, sent, timeout, Some(&propagation)).await
        }
    };
    let fields = AttemptFields {
        endpoint: &endpoint.name,
        host: endpoint.target.as_ref().ok().and_then(|t| t.url.host_str()),
        event_type: &event.event_type,
        event_id: &event.event_id,
        delivery_id,
        attempt,
    };
    ctx.tracer.end_attempt(span, &event.trace, &fields, &attempt_info);
    let jitter = rand::random::<f64>() * 2.0 - 1.0;
    let next = next_state(&attempt_info.outcome, attempt, endpoint.max_attempts, &endpoint.backoff, jitter);
    let kind = attempt_info.outcome.error_kind.map(|k| k.as_str());
    ctx.metrics.attempt(&endpoint.name, kind, next.status(), attempt_info.duration.as_secs_f64());
    let error = attempt_info.outcome.error.as_deref().unwrap_or("");
    match &next {
        Next::Failed { reason } => {
            if let Some(failed) = ctx.log_lines.gave_up.allow(&endpoint.name) {
                tracing::warn!(endpoint = %endpoint.name, failed, event_id = %event.event_id, %reason, "deliveries failed (gave up)")
            }
        }
        Next::Retry { delay } => {
            tracing::debug!(
                endpoint = %endpoint.name, event_id = %event.event_id, delivery_id, attempt, error,
                retry_in_ms = delay.as_millis() as u64, "attempt failed; will retry"
            );
            if let Some(failures) = ctx.log_lines.attempts_failing.allow(&endpoint.name) {
                tracing::warn!(endpoint = %endpoint.name, failures, last_error = error, "attempts failing; retrying")
            }
        }
        Next::Succeeded => {}
    }
    // The slot is held until the result is queued, so results never pile up
    // faster than the recorder can take them.
    let ordered = endpoint.ordered;
    let record = Record::Done { delivery_id, event_at, endpoint_id, lease, attempt, next, attempt_info, ordered };
    let _ = ctx.records.send(record).await;
    drop(slot);
}
