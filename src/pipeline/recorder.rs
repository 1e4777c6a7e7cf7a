//! Writes attempt results back in batches (one statement per batch) and gives back leases that will not be used.

use crate::config::DeliveryConfig;
use crate::db::{Db, DbError, EventAt, HealthBatch, ResultBatch};
use crate::log_throttle::Throttle;
use crate::metrics::Metrics;
use crate::pipeline::outcome::Next;
use crate::pipeline::sender::Attempt;
use backon::{BackoffBuilder, ExponentialBuilder};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, watch, Notify};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Most results written by one statement.
const MAX_BATCH: usize = 1_000;

/// Longest the first result of a short batch waits for more before the
/// batch is written, when something waits on one of its writes: the next
/// delivery of an ordered endpoint's key is scheduled only once the one
/// ahead is written (`sql/0009_key_heads.sql`), and a released lease only
/// once it is given back. At 1,000 events/s this took result writes from
/// 0.43–0.51 to 0.13 per event (see bench/results/2026-11-24-b21e114.md).
const LINGER: Duration = Duration::from_millis(5);

/// The same when nothing waits on the write but the delivery's own record:
/// the request is answered and its slot given back when the result is
/// queued, a retry's wait starts from the write (a few ms on a backoff of
/// seconds), and a crash before the write only re-sends what a crash during
/// the request would. At low rates results then share writes (one
/// statement, one commit and one WAL flush for several, at 200 events/s
/// about four instead of one); the cost is that long more before `status`
/// and the console show the result. At most a quarter of the lease time kept
/// for writing a result (`worker::record_reserve`), and only after a short
/// batch: after a full one (a burst) the next waits [`LINGER`] at most.
const LINGER_QUIET: Duration = Duration::from_millis(20);

/// A batch this large is written at once: results are arriving faster than
/// single writes would take them, and a wait would only idle the recorder
/// (lingering for every batch cost 5–15 % of bulk throughput).
const LINGER_FILL: usize = 32;

/// What workers hand to the recorder.
#[derive(Debug)]
pub enum Record {
    /// An attempt was made: store it and the delivery's next state.
    /// `event_at` is the delivery's partition key, as its claim returned it.
    /// `ordered`: its endpoint is ordered (a key's next delivery may wait on this write).
    Done {
        delivery_id: i64,
        event_at: EventAt,
        endpoint_id: i64,
        lease: i64,
        attempt: u32,
        next: Next,
        attempt_info: Attempt,
        ordered: bool,
    },
    /// The delivery was not attempted: give its lease back now.
    Release { delivery_id: i64, event_at: EventAt, lease: i64 },
}

impl Record {
    /// Whether more than its own record waits on this write (see [`LINGER`]).
    fn awaited(&self) -> bool {
        match self {
            Record::Done { ordered, .. } => *ordered,
            Record::Release { .. } => true,
        }
    }
}

/// How long a short batch lingers when nothing waits on it: [`LINGER_QUIET`],
/// at most a quarter of `reserve` (the lease time workers keep for the
/// write, `worker::record_reserve`), and never less than [`LINGER`].
fn quiet_linger(reserve: Duration) -> Duration {
    LINGER_QUIET.min(reserve / 4).max(LINGER)
}

/// The linger of the batch after one of `previous` results: `quiet` at a low
/// rate (the last batch was short, or there was none), [`LINGER`] after a
/// full batch, so that a burst's stray short batch goes as soon as before.
fn linger_after(previous: usize, quiet: Duration) -> Duration {
    if previous < LINGER_FILL {
        quiet
    } else {
        LINGER
    }
}

/// Moments at which retries this replica scheduled become due, so the
/// due-claim loop wakes for them instead of waiting for the next poll.
/// Bounded: retries beyond the cap are still found by polling.
#[derive(Debug, Default)]
pub struct DueTimer {
    wakes: Mutex<BinaryHeap<Reverse<Instant>>>,
    pub changed: Notify,
}

/// Most wake-ups remembered at once.
const MAX_WAKES: usize = 10_000;

impl DueTimer {
    /// Call once the retry is written: the row is due `delay` from now.
    pub fn schedule(&self, delay: Duration) {
        let at = Instant::now() + delay + Duration::from_millis(2);
        let mut wakes = self.wakes.lock().unwrap_or_else(|e| e.into_inner());
        if wakes.len() >= MAX_WAKES {
            // Full (one half-failing endpoint can fill it with retries hours
            // away): keep the soonest, so an immediate wake-up (a deferred
            // fan-out, an endpoint with room again, a probe) is never lost.
            let mut all = std::mem::take(&mut *wakes).into_vec();
            let latest = all.iter().enumerate().max_by_key(|(_, Reverse(t))| *t).map(|(i, Reverse(t))| (i, *t));
            match latest {
                Some((i, t)) if at < t => {
                    all.swap_remove(i);
                }
                _ => {
                    *wakes = all.into();
                    return;
                }
            }
            *wakes = all.into();
        }
        let sooner = wakes.peek().is_none_or(|Reverse(first)| at < *first);
        wakes.push(Reverse(at));
        if sooner {
            self.changed.notify_one();
        }
    }

    /// When to look next: now if a scheduled retry is due (it is consumed),
    /// else the next scheduled one or `fallback`, whichever is sooner.
    pub fn next_wake(&self, fallback: Instant) -> Instant {
        let now = Instant::now();
        let mut wakes = self.wakes.lock().unwrap_or_else(|e| e.into_inner());
        let mut due = false;
        while wakes.peek().is_some_and(|Reverse(at)| *at <= now) {
            wakes.pop();
            due = true;
        }
        match (due, wakes.peek()) {
            (true, _) => now,
            (false, Some(Reverse(at))) => (*at).min(fallback),
            (false, None) => fallback,
        }
    }
}

/// Whether this replica holds results it has not managed to write for a
/// while (the database unreachable, or a write stuck behind a lock). While
/// it does, claims wait (see `claim.rs`): a claim could otherwise lease one
/// of those deliveries again once its lease expired and send it a second
/// time, once per lease period for as long as the write is stuck.
#[derive(Debug)]
pub struct Stall {
    stalled: watch::Sender<bool>,
    /// How long a write may take before it counts as stalled.
    after: Duration,
}

impl Stall {
    /// `after`: the lease time a worker keeps for writing its result.
    pub fn new(after: Duration) -> Self {
        Self { stalled: watch::Sender::new(false), after }
    }

    pub fn is_stalled(&self) -> bool {
        *self.stalled.borrow()
    }

    /// Returns once results are being written again.
    pub async fn cleared(&self) {
        let _ = self.stalled.subscribe().wait_for(|stalled| !stalled).await;
    }

    fn set(&self, stalled: bool) {
        self.stalled.send_if_modified(|s| std::mem::replace(s, stalled) != stalled);
    }
}

/// What a result says about its endpoint, counted only once the write shows
/// that its lease was still held.
struct Health {
    delivery_id: i64,
    lease: i64,
    endpoint_id: i64,
    /// `Some(true)` a success, `Some(false)` a retryable failure, `None` a
    /// refused request (it says nothing about the receiver).
    ok: Option<bool>,
    gone: bool,
}

/// What the recorder writes with and tells.
pub struct Recorder {
    pub db: Db,
    pub replica: String,
    /// The breaker's thresholds.
    pub delivery: DeliveryConfig,
    pub due: Arc<DueTimer>,
    pub stall: Arc<Stall>,
    pub metrics: Arc<Metrics>,
    /// Result writes' spans (at `tracing.internal_sample_ratio`).
    pub tracer: Arc<crate::pipeline::trace::Tracer>,
}

/// Runs until every sender of `rx` is gone, writing what arrives in batches.
/// Database errors are retried until `give_up` fires (unrecorded results are
/// then redelivered after their leases expire: at-least-once).
pub async fn run(recorder: Recorder, mut rx: mpsc::Receiver<Record>, give_up: CancellationToken) {
    let throttle = Throttle::new(Duration::from_secs(1));
    let mut records = Vec::with_capacity(MAX_BATCH);
    let mut pending = Pending::default();
    // The stall's threshold is the lease time workers keep for the write.
    let quiet = quiet_linger(recorder.stall.after);
    let mut previous = 0;
    loop {
        previous = gather(&mut rx, &mut records, linger_after(previous, quiet)).await;
        if previous == 0 {
            break;
        }
        pending.take(&mut records);
        let results = pending.batch.len();
        let mut backoff = ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(50))
            .with_max_delay(Duration::from_secs(5))
            .without_max_times()
            .build();
        let started = Instant::now();
        loop {
            let write = pending.write(&recorder);
            // A write that takes longer than the lease time workers keep for
            // it stalls the claims until it is done.
            let stall = &recorder.stall;
            let stalled_at = started + stall.after;
            let write = async {
                tokio::pin!(write);
                loop {
                    tokio::select! {
                        result = &mut write => return result,
                        _ = tokio::time::sleep_until(stalled_at), if !stall.is_stalled() => stall.set(true),
                    }
                }
            };
            let result = tokio::select! {
                biased;
                _ = give_up.cancelled() => {
                    tracing::warn!(results, "shutting down with unrecorded results; they will be redelivered");
                    break;
                }
                result = write => result,
            };
            let Err(error) = result else {
                // Stalled until every result waiting behind this batch is
                // written too: their leases may have expired meanwhile.
                if rx.is_empty() {
                    stall.set(false);
                }
                let took = started.elapsed();
                recorder.metrics.record_duration.observe(took.as_secs_f64());
                if recorder.tracer.sample_internal() {
                    let results = opentelemetry::KeyValue::new("tailhook.results", results as i64);
                    recorder.tracer.internal(
                        "tailhook.record_results",
                        std::time::SystemTime::now() - took,
                        took,
                        vec![results],
                    );
                }
                // Written: the retries are due from now on the database's clock.
                pending.retries.drain(..).for_each(|delay| recorder.due.schedule(delay));
                tracing::debug!(
                    results,
                    released = pending.release_ids.len(),
                    took_us = started.elapsed().as_micros() as u64,
                    "recorded"
                );
                break;
            };
            stall.set(true);
            recorder.metrics.database_error("record");
            if let Some(skipped) = throttle.allow() {
                tracing::warn!(%error, results, skipped, "cannot record results; retrying");
            }
            let delay = backoff.next().unwrap_or(Duration::from_secs(5));
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = give_up.cancelled() => {
                    tracing::warn!(results, "shutting down with unrecorded results; they will be redelivered");
                    break;
                }
            }
        }
    }
}

/// What the recorder has to write for one batch, in four writes: the
/// results, the endpoints' health, the endpoints that answered 410, the
/// leases given back. A write done is not redone when a later one fails and
/// the batch is tried again, so no result's health counts twice.
#[derive(Default)]
struct Pending {
    batch: ResultBatch,
    /// What each result says about its endpoint, counted once it is written.
    said: Vec<Health>,
    /// Delays of the retries in `batch`, scheduled once it is written.
    retries: Vec<Duration>,
    release_ids: Vec<i64>,
    release_leases: Vec<i64>,
    release_event_at: Vec<EventAt>,
    /// Bookkeeping skipped because someone else held an endpoint's row (see
    /// `endpoints_health.sql`): carried into the next batch, never waited for.
    health: HealthBatch,
    gone: Vec<i64>,
    results_written: bool,
    health_written: bool,
    gone_written: bool,
}

impl Pending {
    /// Starts the next batch with `records` (drained); keeps what was carried.
    fn take(&mut self, records: &mut Vec<Record>) {
        let (health, gone) = (std::mem::take(&mut self.health), std::mem::take(&mut self.gone));
        *self = Pending { health, gone, ..Pending::default() };
        for record in records.drain(..) {
            match record {
                Record::Done { delivery_id, event_at, endpoint_id, lease, attempt, next, attempt_info, ordered: _ } => {
                    let outcome = &attempt_info.outcome;
                    let ok = match outcome.error_kind {
                        None => Some(true),
                        Some(kind) if !kind.is_permanent() => Some(false),
                        Some(_) => None,
                    };
                    self.said.push(Health { delivery_id, lease, endpoint_id, ok, gone: outcome.endpoint_gone() });
                    if let Next::Retry { delay } = next {
                        self.retries.push(delay);
                    }
                    self.batch.lease.push(lease);
                    self.batch.event_at.push(event_at);
                    push_result(&mut self.batch, delivery_id, attempt, &next, attempt_info)
                }
                Record::Release { delivery_id, event_at, lease } => {
                    self.release_ids.push(delivery_id);
                    self.release_leases.push(lease);
                    self.release_event_at.push(event_at);
                }
            }
        }
    }

    /// The writes not done yet, in order.
    async fn write(&mut self, r: &Recorder) -> Result<(), DbError> {
        self.write_results(r).await?;
        self.write_health(r).await?;
        self.disable_gone(r).await?;
        self.release(r).await
    }

    /// The results, and what the ones whose lease was still held say about
    /// their endpoints (late results keep their attempt rows, not counted).
    async fn write_results(&mut self, r: &Recorder) -> Result<(), DbError> {
        if !self.results_written && !self.batch.is_empty() {
            let late: HashSet<(i64, i64)> = r.db.record_results(&r.replica, &self.batch).await?.into_iter().collect();
            if !late.is_empty() {
                tracing::info!(
                    results = late.len(),
                    "results written after their lease was lost: attempt rows kept, not counted for health"
                );
            }
            for h in self.said.iter().filter(|h| !late.contains(&(h.delivery_id, h.lease))) {
                if let Some(ok) = h.ok {
                    self.health.add(h.endpoint_id, ok);
                }
                if h.gone && !self.gone.contains(&h.endpoint_id) {
                    self.gone.push(h.endpoint_id);
                }
            }
        }
        self.results_written = true;
        Ok(())
    }

    /// The endpoints' success and failure counts, pausing, resuming or
    /// disabling them (the circuit breaker).
    async fn write_health(&mut self, r: &Recorder) -> Result<(), DbError> {
        if !self.health_written && !self.health.endpoint_id.is_empty() {
            let changes = r.db.endpoint_health(&self.health, &r.delivery).await?;
            self.health = self.health.only(&changes.skipped);
            for endpoint in &changes.paused {
                tracing::info!(%endpoint, "endpoint paused: failing too long (circuit breaker); one probe goes when the pause ends");
            }
            for endpoint in &changes.resumed {
                tracing::info!(%endpoint, "endpoint resumed: a delivery succeeded after its pause");
            }
            for endpoint in &changes.disabled {
                tracing::error!(%endpoint, "endpoint disabled: failing too long without a success; re-enable it to resume");
            }
        }
        self.health_written = true;
        Ok(())
    }

    /// Disables the endpoints that answered 410 Gone.
    async fn disable_gone(&mut self, r: &Recorder) -> Result<(), DbError> {
        if !self.gone_written && !self.gone.is_empty() {
            let skipped = r.db.disable_gone(&self.gone).await?;
            self.gone.retain(|id| !skipped.contains(id));
            if !self.gone.is_empty() {
                tracing::warn!(endpoints = ?self.gone, "endpoint answered 410 Gone; disabled");
            }
            self.gone = skipped;
        }
        self.gone_written = true;
        Ok(())
    }

    /// Gives back the leases of deliveries not attempted.
    async fn release(&self, r: &Recorder) -> Result<(), DbError> {
        if !self.release_ids.is_empty() {
            r.db.release(&r.replica, &self.release_ids, &self.release_leases, &self.release_event_at).await?;
        }
        Ok(())
    }
}

/// Fills `records` from `rx`: waits for a first record, takes what is
/// queued (up to [`MAX_BATCH`]), then, while the batch is short of
/// [`LINGER_FILL`], waits for more: up to `quiet` from the first record
/// while nothing in the batch is awaited by more than its own record, up to
/// [`LINGER`] from the first once something is. Returns how many it holds,
/// 0 once every sender is gone and nothing is left.
async fn gather(rx: &mut mpsc::Receiver<Record>, records: &mut Vec<Record>, quiet: Duration) -> usize {
    if rx.recv_many(records, MAX_BATCH).await == 0 {
        return 0;
    }
    let first = Instant::now();
    while records.len() < LINGER_FILL {
        let awaited = records.iter().any(Record::awaited);
        let deadline = first + if awaited { LINGER } else { quiet };
        match tokio::time::timeout_at(deadline, rx.recv_many(records, MAX_BATCH - records.len())).await {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
    }
    records.len()
}

fn push_result(b: &mut ResultBatch, delivery_id: i64, attempt: u32, next: &Next, info: Attempt) {
    let outcome = info.outcome;
    let (delay_ms, last_error) = match next {
        Next::Succeeded => (None, None),
        Next::Retry { delay } => (Some(delay.as_millis() as i64), outcome.error.clone()),
        Next::Failed { reason } => (None, Some(reason.clone())),
    };
    b.delivery_id.push(delivery_id);
    b.attempt.push(attempt as i32);
    b.status.push(next.status());
    b.delay_ms.push(delay_ms);
    b.status_code.push(outcome.status_code.map(i32::from));
    b.error_kind.push(outcome.error_kind.map(|k| k.as_str()));
    b.error.push(outcome.error);
    b.last_error.push(last_error);
    b.started_at.push(info.started_at);
    b.duration_ms.push(info.duration.as_millis().min(i32::MAX as u128) as i32);
    b.response_body.push(outcome.response_body);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn release(delivery_id: i64) -> Record {
        Record::Release { delivery_id, event_at: EventAt::NegInfinity, lease: 1 }
    }

    /// A result; `ordered`: its endpoint is ordered.
    fn done(delivery_id: i64, ordered: bool) -> Record {
        let outcome = crate::pipeline::outcome::Outcome::failed(crate::pipeline::outcome::ErrorKind::Timeout, "t");
        let attempt_info = Attempt { outcome, started_at: std::time::SystemTime::now(), duration: Duration::ZERO };
        let next = Next::Retry { delay: Duration::from_secs(1) };
        Record::Done {
            delivery_id,
            event_at: EventAt::NegInfinity,
            endpoint_id: 1,
            lease: 1,
            attempt: 1,
            next,
            attempt_info,
            ordered,
        }
    }

    const QUIET: Duration = LINGER_QUIET;

    #[tokio::test(start_paused = true)]
    async fn results_nobody_waits_for_linger_longer_and_an_awaited_one_cuts_the_wait_short() {
        let (tx, mut rx) = mpsc::channel(2 * MAX_BATCH);
        let mut records = Vec::new();
        // Results of unordered endpoints 0, 12 and 30 ms apart: the first
        // two share a batch written once the first waited the quiet linger.
        let sender = tx.clone();
        tokio::spawn(async move {
            sender.send(done(1, false)).await.unwrap();
            tokio::time::sleep(Duration::from_millis(12)).await;
            sender.send(done(2, false)).await.unwrap();
            tokio::time::sleep(Duration::from_millis(18)).await;
            sender.send(done(3, false)).await.unwrap();
        });
        let started = Instant::now();
        assert_eq!(gather(&mut rx, &mut records, QUIET).await, 2);
        assert_eq!(started.elapsed(), QUIET, "written when the first had waited the quiet linger");
        records.clear();
        assert_eq!(gather(&mut rx, &mut records, QUIET).await, 1);
        records.clear();

        // An ordered endpoint's result arriving 3 ms after an unordered one:
        // the batch goes LINGER after its first record, not QUIET.
        let sender = tx.clone();
        tokio::spawn(async move {
            sender.send(done(4, false)).await.unwrap();
            tokio::time::sleep(Duration::from_millis(3)).await;
            sender.send(done(5, true)).await.unwrap();
            tokio::time::sleep(Duration::from_millis(10)).await;
            sender.send(done(6, false)).await.unwrap();
        });
        let started = Instant::now();
        assert_eq!(gather(&mut rx, &mut records, QUIET).await, 2);
        assert_eq!(started.elapsed(), LINGER);
        records.clear();
        assert_eq!(gather(&mut rx, &mut records, QUIET).await, 1);
    }

    #[test]
    fn the_quiet_linger_stays_within_a_quarter_of_the_write_reserve() {
        use crate::pipeline::worker::record_reserve;
        assert_eq!(quiet_linger(record_reserve(30_000)), LINGER_QUIET);
        // A 60 ms margin keeps 30 ms for the write: 7.5 ms of linger.
        assert_eq!(quiet_linger(record_reserve(60)), Duration::from_micros(7_500));
        // Never below the short linger.
        assert_eq!(quiet_linger(record_reserve(0)), LINGER);
        // Only after a short batch (or none): after a full one, the short linger.
        assert_eq!(linger_after(0, LINGER_QUIET), LINGER_QUIET);
        assert_eq!(linger_after(LINGER_FILL - 1, LINGER_QUIET), LINGER_QUIET);
        assert_eq!(linger_after(LINGER_FILL, LINGER_QUIET), LINGER);
    }

    #[tokio::test(start_paused = true)]
    async fn results_arriving_within_the_linger_share_a_batch_and_a_large_batch_goes_at_once() {
        let (tx, mut rx) = mpsc::channel(2 * MAX_BATCH);
        let mut records = Vec::new();
        // One now, one 3 ms later, one 9 ms later: the first two share a batch.
        let sender = tx.clone();
        tokio::spawn(async move {
            sender.send(release(1)).await.unwrap();
            tokio::time::sleep(Duration::from_millis(3)).await;
            sender.send(release(2)).await.unwrap();
            tokio::time::sleep(Duration::from_millis(6)).await;
            sender.send(release(3)).await.unwrap();
        });
        let started = Instant::now();
        assert_eq!(gather(&mut rx, &mut records, QUIET).await, 2);
        assert_eq!(started.elapsed(), LINGER, "written when the first had waited the linger");
        records.clear();
        assert_eq!(gather(&mut rx, &mut records, QUIET).await, 1);
        records.clear();

        // A batch of at least LINGER_FILL is written without waiting, with
        // all that is queued up to MAX_BATCH.
        for id in 0..LINGER_FILL as i64 {
            tx.send(release(id)).await.unwrap();
        }
        let started = Instant::now();
        assert_eq!(gather(&mut rx, &mut records, QUIET).await, LINGER_FILL);
        assert_eq!(started.elapsed(), Duration::ZERO);
        records.clear();
        for id in 0..MAX_BATCH as i64 + 1 {
            tx.send(release(id)).await.unwrap();
        }
        assert_eq!(gather(&mut rx, &mut records, QUIET).await, MAX_BATCH);
        assert_eq!(started.elapsed(), Duration::ZERO);
        records.clear();

        // Senders gone: what is left, then nothing.
        drop(tx);
        assert_eq!(gather(&mut rx, &mut records, QUIET).await, 1);
        records.clear();
        assert_eq!(gather(&mut rx, &mut records, QUIET).await, 0);
    }

    #[test]
    fn an_immediate_wake_up_is_never_dropped_when_the_timer_is_full() {
        let timer = DueTimer::default();
        for _ in 0..MAX_WAKES {
            timer.schedule(Duration::from_secs(3_600));
        }
        timer.schedule(Duration::ZERO);
        // Counted before next_wake, which consumes the wake-up once it is due
        // (2 ms later: on a loaded machine that may be before it is read).
        assert_eq!(timer.wakes.lock().unwrap().len(), MAX_WAKES, "still bounded");
        let fallback = Instant::now() + Duration::from_secs(60);
        let wake = timer.next_wake(fallback);
        // The timer adds 2 ms to every wake-up.
        assert!(wake <= Instant::now() + Duration::from_millis(10), "due now, not in {:?}", wake - Instant::now());
    }
}
