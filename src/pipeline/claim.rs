//! The two claim loops: fan-out of new outbox rows, and leasing of due deliveries; both start workers.

use crate::db::{ClaimedRow, DbError, Lease, Rooms};
use crate::log_throttle::Throttle;
use crate::pipeline::recorder::Record;
use crate::pipeline::sender::Event;
use crate::pipeline::worker::{self, Job, Slot};
use crate::pipeline::Ctx;
use backon::{BackoffBuilder, ExponentialBuilder};
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// New outbox rows become deliveries, already leased to this replica.
    FanOut,
    /// Retries that are due, and work whose lease expired.
    Due,
}

/// Deliveries per outbox row in recent fan-outs: how many rows a fan-out
/// should lock to fill its slots. Rows routed to one tenant endpoint each
/// give 1 however many endpoints exist; rows sent to every one of 4
/// endpoints give 4. Only a guess: `dispatch.sql` itself takes no more rows
/// than fit the slots and leases no more deliveries than there are slots, so
/// a wrong guess costs a smaller or an extra claim, never an over-commitment.
#[derive(Debug, Clone, Copy, PartialEq)]
struct FanOutFactor(f64);

impl FanOutFactor {
    /// Before any fan-out, as if every row went to every enabled endpoint
    /// (the cautious guess: the first claims are small, not huge).
    fn new(enabled_endpoints: usize) -> Self {
        Self(enabled_endpoints.max(1) as f64)
    }

    /// Rows to lock for `deliveries` slots, between 1 and `max_rows`.
    fn rows_for(self, deliveries: usize, max_rows: usize) -> usize {
        ((deliveries as f64 / self.0).ceil() as usize).clamp(1, max_rows.max(1))
    }

    /// Learns from a fan-out that took `rows` rows making `deliveries`
    /// deliveries: a higher factor is taken at once (so the next claim does
    /// not route many rows it cannot take), a lower one approached
    /// geometrically (1,000 endpoints to tenant routing in about six claims).
    /// Rows matching no endpoint count as a small fraction, never zero.
    fn observe(&mut self, rows: usize, deliveries: usize, max_rows: usize) {
        if rows == 0 {
            return;
        }
        let seen = (deliveries as f64 / rows as f64).max(1.0 / max_rows.max(1) as f64);
        self.0 = if seen >= self.0 { seen } else { (self.0 * seen).sqrt() };
    }
}

/// Fans out outbox rows whenever the listener wakes it, and at every poll.
pub async fn fan_out_loop(ctx: Arc<Ctx>) {
    let poll = Duration::from_millis(ctx.config.database.poll_interval_ms);
    let mut factor = None;
    let throttle = Throttle::new(Duration::from_secs(10));
    loop {
        let polled = tokio::select! {
            biased;
            _ = ctx.shutdown.cancelled() => return,
            _ = ctx.wake.notified() => false,
            _ = tokio::time::sleep(poll) => true,
        };
        let staged = ctx.wake.take_staged();
        if staged {
            expand_captures(&ctx, &throttle).await;
        }
        let factor = factor.get_or_insert_with(|| FanOutFactor::new(ctx.endpoints.enabled_count()));
        drain(&ctx, Kind::FanOut, factor).await;
        if polled && !staged {
            // The poll's look for staged changes whose notification was lost
            // comes after its fan-out, never before one: what it expands
            // notifies the listener like any outbox insert, and is fanned out
            // at the wake-up that follows.
            expand_captures(&ctx, &throttle).await;
        }
    }
}

/// Changed rows expanded per call: what one call takes stays well inside the
/// statement deadline (about 1.5 s per 100,000 rows on a small machine, see
/// bench/results/2026-11-25-032f23c.md), and a larger staged statement is taken in slices.
const EXPAND_ROWS: i32 = 50_000;

/// Turns what change capture staged into outbox rows before the fan-out
/// claims them (`sql/0015_capture_staging.sql`): when a staging statement's
/// notification (or a reconnect) asked for it, and after every poll's fan-out. One
/// indexed probe per captured table when nothing is staged, none when
/// nothing is captured. A full call wakes this loop again at once, so a
/// large statement is expanded slice by slice with fan-outs in between.
async fn expand_captures(ctx: &Ctx, throttle: &Throttle) {
    match ctx.db.expand_captures(EXPAND_ROWS).await {
        Ok(rows) if rows >= EXPAND_ROWS as i64 => ctx.wake.staged(),
        Ok(rows) => {
            if rows > 0 {
                tracing::debug!(rows, "captured changes expanded");
            }
        }
        Err(error) => {
            ctx.metrics.database_error("expand_captures");
            if let Some(skipped) = throttle.allow() {
                tracing::warn!(%error, skipped, "expanding captured changes failed; retrying at the next wake-up");
            }
        }
    }
}

/// Leases due deliveries at every poll, and when a retry this replica
/// scheduled comes due.
pub async fn due_loop(ctx: Arc<Ctx>) {
    let poll = Duration::from_millis(ctx.config.database.poll_interval_ms);
    let mut next_poll = Instant::now();
    loop {
        let wake_at = ctx.due.next_wake(next_poll);
        tokio::select! {
            biased;
            _ = ctx.shutdown.cancelled() => return,
            _ = ctx.due.changed.notified() => continue,
            _ = tokio::time::sleep_until(wake_at) => {}
        }
        if Instant::now() >= next_poll {
            next_poll = Instant::now() + poll;
        }
        drain(&ctx, Kind::Due, &mut FanOutFactor::new(1)).await;
    }
}

/// Claims batches until one comes back short (nothing more to do now).
/// `factor` sizes fan-outs and learns from each (unused by the due claim).
async fn drain(ctx: &Arc<Ctx>, kind: Kind, factor: &mut FanOutFactor) {
    let throttle = Throttle::new(Duration::from_secs(1));
    let mut backoff = ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(100))
        .with_max_delay(Duration::from_secs(5))
        .without_max_times()
        .build();
    loop {
        if !recorder_keeps_up(ctx, kind).await {
            return;
        }
        let Some(reserved) = reserve(ctx).await else { return };
        if ctx.shutdown.is_cancelled() {
            ctx.capacity.add_permits(reserved);
            return;
        }
        // One claim at a time, so the rooms it is given stay true until its
        // deliveries are counted as started.
        let one_claim = ctx.claim_lock.lock().await;
        let rooms = ctx.limits.rooms(&ctx.endpoints.all());
        let ask = Ask::new(ctx, kind, factor, reserved, &rooms);
        let lease = lease(ctx);
        let started = Instant::now();
        let rows = match claim(ctx, &ask, lease, &rooms).await {
            Ok(rows) => rows,
            Err(error) => {
                drop(one_claim);
                ctx.metrics.database_error("claim");
                ctx.capacity.add_permits(reserved);
                if let Some(skipped) = throttle.allow() {
                    tracing::warn!(%error, skipped, claim = ?kind, "claim failed; retrying");
                }
                let delay = backoff.next().unwrap_or(Duration::from_secs(5));
                tokio::select! {
                    _ = tokio::time::sleep(delay) => continue,
                    _ = ctx.shutdown.cancelled() => return,
                }
            }
        };
        let full = claimed(ctx, &ask, factor, &rows, started);
        note_backlogs(ctx, kind, &rows, &rooms);
        start_workers(ctx, rows, reserved, lease.token, started).await;
        drop(one_claim);
        if !full || ctx.shutdown.is_cancelled() {
            return;
        }
    }
}

/// Waits while results wait to be written: claims nothing until they are
/// (see `recorder::Stall`). `false` on shutdown.
async fn recorder_keeps_up(ctx: &Ctx, kind: Kind) -> bool {
    if ctx.stall.is_stalled() {
        tracing::debug!(claim = ?kind, "results wait to be written; claims wait for them");
        tokio::select! {
            _ = ctx.stall.cleared() => {}
            _ = ctx.shutdown.cancelled() => return false,
        }
    }
    true
}

/// What one claim asks for.
struct Ask {
    kind: Kind,
    /// Request slots reserved for it.
    reserved: usize,
    /// Most deliveries it may lease.
    max_deliveries: usize,
    /// Most rows it takes (outbox rows for a fan-out, deliveries when due).
    limit: usize,
}

impl Ask {
    fn new(ctx: &Ctx, kind: Kind, factor: &FanOutFactor, reserved: usize, rooms: &Rooms) -> Self {
        // Fan-out: no more deliveries than the free slots, and than all
        // endpoints together can start (deliveries beyond an endpoint's room
        // wait unleased for the due claim), as rows by the observed fan-out.
        // Due: every free slot, each endpoint capped by its own room in SQL.
        let max_deliveries = reserved.min(rooms.total()).max(1);
        let limit = match kind {
            Kind::FanOut => factor.rows_for(max_deliveries, ctx.config.delivery.batch_size),
            Kind::Due => reserved,
        };
        Ask { kind, reserved, max_deliveries, limit }
    }
}

/// A new lease for this replica's next claim.
fn lease(ctx: &Ctx) -> Lease<'_> {
    Lease {
        replica: &ctx.replica,
        token: ctx.next_lease.fetch_add(1, Ordering::Relaxed),
        default_timeout_ms: ctx.config.delivery.timeout_ms as i32,
        margin_ms: ctx.config.delivery.lease_margin_ms as i32,
        max_payload_bytes: ctx.config.delivery.max_payload_bytes as i32,
        claim_bytes: CLAIM_BYTES.max(ctx.config.delivery.max_payload_bytes as i64),
    }
}

/// One claim statement: `dispatch.sql` for a fan-out, `claim_due.sql` when due.
async fn claim(ctx: &Ctx, ask: &Ask, lease: Lease<'_>, rooms: &Rooms) -> Result<Vec<ClaimedRow>, DbError> {
    let (limit, max_deliveries) = (ask.limit as i64, ask.max_deliveries as i64);
    match ask.kind {
        Kind::FanOut => {
            let (ordered, skip_filters) = (ctx.endpoints.any_ordered(), ctx.endpoints.skip_filters());
            ctx.db.dispatch(limit, max_deliveries, lease, rooms, ordered, &skip_filters).await
        }
        Kind::Due => ctx.db.claim_due(limit, limit, lease, rooms).await,
    }
}

/// Counts what a claim took (the fan-out factor learns from it, the log and
/// metrics say it); `true` when more may be waiting: it took all the rows
/// it asked for, or stopped because its deliveries filled the slots.
fn claimed(ctx: &Ctx, ask: &Ask, factor: &mut FanOutFactor, rows: &[ClaimedRow], started: Instant) -> bool {
    let kind = ask.kind;
    let taken = match kind {
        Kind::FanOut => count_outbox_rows(rows),
        Kind::Due => rows.len(),
    };
    let deliveries = rows.iter().filter(|r| r.delivery_id.is_some()).count();
    let full = taken >= ask.limit || (kind == Kind::FanOut && deliveries >= ask.max_deliveries);
    if kind == Kind::FanOut {
        factor.observe(taken, deliveries, ctx.config.delivery.batch_size);
    }
    let took = started.elapsed();
    let (reserved, limit) = (ask.reserved, ask.limit);
    tracing::debug!(claim = ?kind, reserved, limit, taken, deliveries, took_us = took.as_micros() as u64, "claimed");
    let name = if kind == Kind::FanOut { "fan_out" } else { "due" };
    ctx.metrics.claim_duration.get_or_create(&vec![("claim", name.to_owned())]).observe(took.as_secs_f64());
    if ctx.tracer.sample_internal() {
        use opentelemetry::KeyValue;
        let attributes = vec![
            KeyValue::new("tailhook.claim", name),
            KeyValue::new("tailhook.rows", taken as i64),
            KeyValue::new("tailhook.deliveries", deliveries as i64),
        ];
        ctx.tracer.internal("tailhook.claim", std::time::SystemTime::now() - took, took, attributes);
    }
    if kind == Kind::FanOut {
        ctx.metrics.events_dispatched.inc_by(taken as u64);
    }
    full
}

/// A claim takes rows until their payloads add up to this many bytes (and at
/// least one row), so a batch of large events cannot fill the memory.
const CLAIM_BYTES: i64 = 16 << 20;

/// Longest a claim waits for more free slots when most are busy.
const GATHER: Duration = Duration::from_millis(2);

/// Waits for a free slot, then takes every free slot up to a batch. When most
/// slots are busy it waits up to [`GATHER`] for a quarter of them, so a busy
/// pipeline makes a few large claims rather than many tiny ones (an idle one
/// claims at once). `None` on shutdown. The permits are forgotten here and
/// come back through each job's [`Slot`] (or `add_permits` when unused).
async fn reserve(ctx: &Ctx) -> Option<usize> {
    let batch = ctx.config.delivery.batch_size;
    let worthwhile = (ctx.config.delivery.concurrency / 4).clamp(1, batch);
    let first = tokio::select! {
        biased;
        _ = ctx.shutdown.cancelled() => return None,
        permit = ctx.capacity.acquire() => permit.ok()?,
    };
    first.forget();
    let mut reserved = 1;
    if ctx.capacity.available_permits() + 1 < worthwhile {
        if let Ok(Ok(more)) = tokio::time::timeout(GATHER, ctx.capacity.acquire_many((worthwhile - 1) as u32)).await {
            more.forget();
            reserved = worthwhile;
        }
    }
    let extra = ctx.capacity.available_permits().min(batch - reserved);
    if extra > 0 {
        if let Ok(more) = ctx.capacity.try_acquire_many(extra as u32) {
            more.forget();
            reserved += extra;
        }
    }
    Some(reserved)
}

/// Marks endpoints with deliveries waiting for room, so their finishing
/// requests wake the due claim: after a fan-out, those it left unleased;
/// after a due claim, those that took all they could (more may be due).
fn note_backlogs(ctx: &Ctx, kind: Kind, rows: &[ClaimedRow], rooms: &Rooms) {
    match kind {
        Kind::FanOut => {
            let mut deferred = false;
            for row in rows.iter().filter(|r| r.delivery_id.is_some() && r.lease_ms.is_none()) {
                if let Some(id) = row.endpoint_id {
                    ctx.limits.set_backlog(id, true);
                    deferred = true;
                }
            }
            if deferred {
                // Ordered or beyond room: the due claim decides what goes now.
                ctx.due.schedule(Duration::ZERO);
            }
        }
        Kind::Due => {
            let mut taken: HashMap<i64, i32> = HashMap::new();
            for id in rows.iter().filter_map(|r| r.endpoint_id) {
                *taken.entry(id).or_default() += 1;
            }
            for (&id, &room) in rooms.endpoint_ids.iter().zip(&rooms.room) {
                if room > 0 {
                    ctx.limits.set_backlog(id, taken.get(&id).copied().unwrap_or(0) >= room);
                }
            }
        }
    }
}

/// A due claim that finds this many claims without a result (itself
/// included) fails the delivery, if its endpoint has a transform (see
/// sql/0022_transform_claims.sql).
const DIED_AFTER_CLAIMS: i16 = 2;

fn count_outbox_rows(rows: &[ClaimedRow]) -> usize {
    let mut count = 0;
    let mut last = None;
    for row in rows {
        if last != Some(row.outbox_id) {
            count += 1;
            last = Some(row.outbox_id);
        }
    }
    count
}

/// One worker per claimed delivery; an event fanned out to several endpoints
/// is built once, from the payload carried by its first leased row (absent
/// when the payload is over `max_payload_bytes`: the attempt then fails as
/// too large). `claimed_at` is when the claim was sent, so lease deadlines
/// computed from it are never later than the database's.
async fn start_workers(ctx: &Arc<Ctx>, rows: Vec<ClaimedRow>, mut reserved: usize, lease: i64, claimed_at: Instant) {
    let max_payload_bytes = ctx.config.delivery.max_payload_bytes as i64;
    let mut event: Option<(i64, Arc<Event>)> = None;
    let mut jobs = Vec::with_capacity(rows.len());
    for row in rows {
        let (Some(delivery_id), Some(endpoint_id), Some(lease_ms), Some(event_at)) =
            (row.delivery_id, row.endpoint_id, row.lease_ms, row.event_at)
        else {
            continue; // an outbox row with no delivery to send now
        };
        let shared = match (&event, row.payload) {
            (Some((id, e)), _) if *id == row.outbox_id => Some(e.clone()),
            (_, Some(payload)) => Some(Arc::new(
                Event::new(row.event_id, &row.event_type, &row.created_at, &payload)
                    .with_tenant(row.tenant)
                    .with_trace(row.traceparent.as_deref(), row.tracestate.as_deref()),
            )),
            (_, None) if row.payload_bytes > max_payload_bytes => Some(Arc::new(
                Event::too_large(row.event_id, &row.event_type, row.payload_bytes as usize)
                    .with_trace(row.traceparent.as_deref(), row.tracestate.as_deref()),
            )),
            (_, None) => None,
        };
        let Some(shared) = shared else {
            tracing::error!(delivery_id, "claim returned a delivery without its payload; releasing it");
            let _ = ctx.records.send(Record::Release { delivery_id, event_at, lease }).await;
            continue;
        };
        event = Some((row.outbox_id, shared.clone()));
        if reserved == 0 {
            // More deliveries than slots (endpoints were added since the
            // count): hand the lease back rather than wait under the claim lock.
            let _ = ctx.records.send(Record::Release { delivery_id, event_at, lease }).await;
            continue;
        }
        reserved -= 1;
        let job = Job {
            delivery_id,
            event_at,
            endpoint_id,
            attempt: row.attempts as u32 + 1,
            lease,
            lease_deadline: claimed_at + Duration::from_millis(lease_ms.max(0) as u64),
            event: shared,
            slot: Slot::new(ctx.capacity.clone(), ctx.limits.clone(), endpoint_id),
            transformed: None,
            died_transforming: row.transform_claims >= DIED_AFTER_CLAIMS,
        };
        jobs.push(job);
    }
    ctx.capacity.add_permits(reserved);
    worker::start(ctx, jobs);
}

#[cfg(test)]
mod tests {
    use super::FanOutFactor;

    #[test]
    fn fan_out_claims_lock_as_many_rows_as_fill_the_slots() {
        // (factor, slots, max rows, rows to lock)
        let cases = [(1.0, 512, 1000, 512), (4.0, 512, 1000, 128), (1000.0, 512, 1000, 1), (0.25, 512, 1000, 1000)];
        for (factor, slots, max_rows, rows) in cases {
            assert_eq!(FanOutFactor(factor).rows_for(slots, max_rows), rows, "{factor} {slots}");
        }
    }

    #[test]
    fn the_factor_rises_at_once_and_falls_within_a_few_claims() {
        // Starts as if every row went to each of 1,000 endpoints; rows are
        // routed by tenant (one delivery each).
        let mut factor = FanOutFactor::new(1000);
        let mut claims = 0;
        while factor.rows_for(512, 1000) < 400 {
            let rows = factor.rows_for(512, 1000);
            factor.observe(rows, rows, 1000);
            claims += 1;
        }
        assert!(claims <= 6, "{claims} claims to learn tenant routing");
        // One claim of rows sent to every endpoint: the next locks one row.
        factor.observe(2, 2000, 1000);
        assert_eq!(factor.rows_for(512, 1000), 1);
        // Rows that match nothing never make the factor zero.
        let mut factor = FanOutFactor::new(1);
        for _ in 0..20 {
            factor.observe(1000, 0, 1000);
        }
        assert_eq!(factor.rows_for(512, 1000), 1000);
        assert!(factor.0 > 0.0);
    }
}
