//! Typed wrappers around the runtime statements in `sql/queries`, one function per file.

use super::typed::Param;
use super::{Db, DbError};
use crate::config::sealed::Keys;
use crate::config::{DeliveryConfig, ResolvedEndpoint};
use std::collections::HashMap;
use std::error::Error as _;
use std::time::SystemTime;
use tokio_postgres::Row;

/// A delivery's event_at, its partition key: the event's time, or
/// `-infinity` for a delivery retention kept out of a dropped period or one
/// written by hand without it (sql/0031_partitions.sql), which `SystemTime`
/// alone cannot hold.
pub type EventAt = tokio_postgres::types::Timestamp<SystemTime>;

const DISPATCH: &str = include_str!("../../sql/queries/dispatch.sql");
/// `dispatch.sql` while no endpoint is ordered: without its lookup of each
/// key's head (see the `keys` step there).
static DISPATCH_UNORDERED: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| dispatch_unordered(DISPATCH));

/// `sql` with the text between its `-- ordered: from here` and `-- ordered:
/// to here` lines replaced by NULL.
fn dispatch_unordered(sql: &str) -> String {
    let (from, to) = ("-- ordered: from here", "-- ordered: to here");
    match (sql.find(from), sql.find(to)) {
        (Some(start), Some(end)) if start < end => format!("{}NULL::bigint{}", &sql[..start], &sql[end + to.len()..]),
        _ => sql.to_owned(),
    }
}
const METRICS_GAUGES: &str = include_str!("../../sql/queries/metrics_gauges.sql");
const REPLICA_HEARTBEAT: &str = include_str!("../../sql/queries/replica_heartbeat.sql");
const REPLICA_LEAVE: &str = include_str!("../../sql/queries/replica_leave.sql");

/// A replica whose heartbeat is this old is dead: its leases are taken over.
pub const REPLICA_TIMEOUT_MS: i32 = 2_000;
const CLAIM_DUE: &str = include_str!("../../sql/queries/claim_due.sql");
const RECORD_RESULTS: &str = include_str!("../../sql/queries/record_results.sql");
const RECORD_RESULTS_UNAPPLIED: &str = include_str!("../../sql/queries/record_results_unapplied.sql");
const RELEASE_LEASES: &str = include_str!("../../sql/queries/release_leases.sql");
const RELEASE_ALL: &str = include_str!("../../sql/queries/release_all.sql");
/// The transaction the pipeline's statements run in plans them once per
/// connection (`generic_plans.sql`); the fan-out's also commits
/// asynchronously (`async_commit.sql`), and while any endpoint is ordered
/// takes the fan-out lock (`dispatch_serialize.sql`).
const PIPELINE_BEGIN: &str = concat!("BEGIN;\n", include_str!("../../sql/queries/generic_plans.sql"), ";");
const DISPATCH_BEGIN: &str = concat!(
    "BEGIN;\n",
    include_str!("../../sql/queries/generic_plans.sql"),
    ";\n",
    include_str!("../../sql/queries/async_commit.sql"),
    ";"
);
const DISPATCH_BEGIN_SERIALIZED: &str = concat!(
    "BEGIN;\n",
    include_str!("../../sql/queries/generic_plans.sql"),
    ";\n",
    include_str!("../../sql/queries/async_commit.sql"),
    ";\n",
    include_str!("../../sql/queries/dispatch_serialize.sql"),
    ";"
);
const EXPAND_CAPTURES: &str = include_str!("../../sql/queries/expand_captures.sql");
const ENDPOINTS_FINGERPRINT: &str = include_str!("../../sql/queries/endpoints_fingerprint.sql");
const ENDPOINTS_LOAD: &str = include_str!("../../sql/queries/endpoints_load.sql");
const ENDPOINTS_MARK_INVALID: &str = include_str!("../../sql/queries/endpoints_mark_invalid.sql");
const ENDPOINT_RESEAL: &str = include_str!("../../sql/queries/endpoint_reseal.sql");
const ENDPOINT_STORED_SECRETS: &str = include_str!("../../sql/queries/endpoint_stored_secrets.sql");
const ENDPOINT_UPSERT: &str = include_str!("../../sql/queries/endpoint_upsert.sql");
const ENDPOINTS_HEALTH: &str = include_str!("../../sql/queries/endpoints_health.sql");
const ENDPOINTS_DISABLE_GONE: &str = include_str!("../../sql/queries/endpoints_disable_gone.sql");
const REDELIVER_BATCH: &str = include_str!("../../sql/queries/redeliver_batch.sql");
const CANCEL_ORPHANS: &str = include_str!("../../sql/queries/cancel_orphans.sql");
const ENDPOINT_ENABLE: &str = include_str!("../../sql/queries/endpoint_enable.sql");
const ENDPOINT_EXISTS: &str = include_str!("../../sql/queries/endpoint_exists.sql");
const ENDPOINTS_DISABLE_REMOVED: &str = include_str!("../../sql/queries/endpoints_disable_removed.sql");

/// One row of a claim: a delivery leased to this replica with its event, or
/// (fan-out only) an outbox row that matched no endpoint (`delivery_id` NULL).
#[derive(Debug)]
pub struct ClaimedRow {
    pub delivery_id: Option<i64>,
    pub endpoint_id: Option<i64>,
    pub attempts: i32,
    pub outbox_id: i64,
    pub event_id: String,
    pub event_type: String,
    pub created_at: String,
    /// The payload's JSON text, on the first leased row of each event only,
    /// and only when it is at most `max_payload_bytes` long.
    pub payload: Option<String>,
    /// The payload's length in bytes (as JSON text).
    pub payload_bytes: i64,
    /// How long the lease lasts from the claim.
    pub lease_ms: Option<i64>,
    /// The event's tenant (transforms see it).
    pub tenant: Option<String>,
    /// The event's W3C trace context, as stored.
    pub traceparent: Option<String>,
    pub tracestate: Option<String>,
    /// Due claims since the delivery's last result, for an endpoint with a
    /// transform (sql/0022_transform_claims.sql); 0 at fan-out.
    pub transform_claims: i16,
    /// The delivery's partition key (its event's time, or `-infinity` once
    /// retention kept it out of a dropped period): the result write and a
    /// release find the delivery by (id, event_at), in one partition.
    pub event_at: Option<EventAt>,
}

impl ClaimedRow {
    fn from_row(row: &Row) -> Result<Self, DbError> {
        Ok(Self {
            delivery_id: row.try_get(0)?,
            endpoint_id: row.try_get(1)?,
            attempts: row.try_get(2)?,
            outbox_id: row.try_get(3)?,
            event_id: row.try_get(4)?,
            event_type: row.try_get(5)?,
            created_at: row.try_get(6)?,
            payload: row.try_get(7)?,
            payload_bytes: row.try_get(8)?,
            lease_ms: row.try_get(9)?,
            tenant: row.try_get(10)?,
            traceparent: row.try_get("traceparent")?,
            tracestate: row.try_get("tracestate")?,
            // Only the due claim returns it.
            transform_claims: row.try_get("transform_claims").unwrap_or(0),
            event_at: row.try_get("event_at")?,
        })
    }
}

/// Parameters shared by both claims.
#[derive(Debug, Clone, Copy)]
pub struct Lease<'a> {
    pub replica: &'a str,
    /// Unique per claim within this replica.
    pub token: i64,
    pub default_timeout_ms: i32,
    pub margin_ms: i32,
    /// A payload longer than this (as JSON text) is never fetched.
    pub max_payload_bytes: i32,
    /// A claim stops once its payloads add up to this many bytes.
    pub claim_bytes: i64,
}

/// The results of a batch of attempts, one array per column.
#[derive(Debug, Default)]
pub struct ResultBatch {
    pub delivery_id: Vec<i64>,
    pub attempt: Vec<i32>,
    pub status: Vec<&'static str>,
    /// Delay before the next attempt; `None` when the delivery is finished.
    pub delay_ms: Vec<Option<i64>>,
    pub status_code: Vec<Option<i32>>,
    pub error_kind: Vec<Option<&'static str>>,
    /// The attempt's own error.
    pub error: Vec<Option<String>>,
    /// The delivery's `last_error` (for a final failure, why it gave up).
    pub last_error: Vec<Option<String>>,
    /// The claim's lease token.
    pub lease: Vec<i64>,
    pub started_at: Vec<SystemTime>,
    pub duration_ms: Vec<i32>,
    pub response_body: Vec<Option<String>>,
    /// Each delivery's event_at, as its claim returned it (its partition key).
    pub event_at: Vec<EventAt>,
}

impl ResultBatch {
    pub fn len(&self) -> usize {
        self.delivery_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.delivery_id.is_empty()
    }

    /// The results of the (delivery id, lease) pairs in `keep`.
    fn only(&self, keep: &std::collections::HashSet<(i64, i64)>) -> ResultBatch {
        let kept: Vec<usize> =
            (0..self.len()).filter(|&i| keep.contains(&(self.delivery_id[i], self.lease[i]))).collect();
        fn pick<T: Clone>(v: &[T], kept: &[usize]) -> Vec<T> {
            kept.iter().map(|&i| v[i].clone()).collect()
        }
        ResultBatch {
            delivery_id: pick(&self.delivery_id, &kept),
            attempt: pick(&self.attempt, &kept),
            status: pick(&self.status, &kept),
            delay_ms: pick(&self.delay_ms, &kept),
            status_code: pick(&self.status_code, &kept),
            error_kind: pick(&self.error_kind, &kept),
            error: pick(&self.error, &kept),
            last_error: pick(&self.last_error, &kept),
            lease: pick(&self.lease, &kept),
            started_at: pick(&self.started_at, &kept),
            duration_ms: pick(&self.duration_ms, &kept),
            response_body: pick(&self.response_body, &kept),
            event_at: pick(&self.event_at, &kept),
        }
    }

    /// The least and the greatest event_at of the batch (`-infinity` first).
    fn event_at_range(&self) -> (EventAt, EventAt) {
        let key = |t: &EventAt| match t {
            EventAt::NegInfinity => (0, SystemTime::UNIX_EPOCH),
            EventAt::Value(v) => (1, *v),
            EventAt::PosInfinity => (2, SystemTime::UNIX_EPOCH),
        };
        let least = self.event_at.iter().min_by_key(|t| key(t)).copied().unwrap_or(EventAt::NegInfinity);
        let greatest = self.event_at.iter().max_by_key(|t| key(t)).copied().unwrap_or(EventAt::PosInfinity);
        (least, greatest)
    }
}

/// Endpoints whose state a batch of results changed, by name.
#[derive(Debug, Default)]
pub struct HealthChanges {
    pub paused: Vec<String>,
    pub resumed: Vec<String>,
    pub disabled: Vec<String>,
    /// Endpoints whose row was locked by someone else: not counted yet.
    pub skipped: Vec<i64>,
}

/// Per endpoint, what a batch of results says about its health.
#[derive(Debug, Default)]
pub struct HealthBatch {
    pub endpoint_id: Vec<i64>,
    pub ok: Vec<i32>,
    /// Retryable failures (refused requests say nothing about the receiver).
    pub bad: Vec<i32>,
    /// Endpoint id → its position in the arrays.
    index: HashMap<i64, usize>,
}

impl HealthBatch {
    pub fn add(&mut self, endpoint_id: i64, ok: bool) {
        self.add_counts(endpoint_id, i32::from(ok), i32::from(!ok));
    }

    fn add_counts(&mut self, endpoint_id: i64, ok: i32, bad: i32) {
        let i = *self.index.entry(endpoint_id).or_insert_with(|| {
            self.endpoint_id.push(endpoint_id);
            self.ok.push(0);
            self.bad.push(0);
            self.endpoint_id.len() - 1
        });
        self.ok[i] += ok;
        self.bad[i] += bad;
    }

    /// The counts of these endpoints only (those left for a later batch).
    pub fn only(&self, endpoint_ids: &[i64]) -> HealthBatch {
        let mut kept = HealthBatch::default();
        for (i, id) in self.endpoint_id.iter().enumerate() {
            if endpoint_ids.contains(id) {
                kept.add_counts(*id, self.ok[i], self.bad[i]);
            }
        }
        kept
    }
}

/// An endpoint row as read: its identity, and the rest of its columns or why
/// they could not be decoded (a shape written with SQL that tailhook cannot use).
#[derive(Debug)]
pub struct EndpointRow {
    pub id: i64,
    pub name: String,
    pub enabled: bool,
    /// `invalid_reason` as stored.
    pub invalid_reason: Option<String>,
    pub fields: Result<EndpointFields, String>,
}

/// The columns of an endpoint row that configure sending.
#[derive(Debug)]
pub struct EndpointFields {
    pub url: String,
    /// Elements may be NULL when set with SQL.
    pub secrets: Vec<Option<String>>,
    pub headers: String,
    pub timeout_ms: Option<i32>,
    pub max_attempts: Option<i32>,
    pub max_in_flight: Option<i32>,
    pub rate_limit_per_sec: Option<i32>,
    /// The endpoint's retry schedule; NULL: `[delivery]`'s.
    pub backoff_initial_ms: Option<i32>,
    pub backoff_max_ms: Option<i32>,
    pub ordered: bool,
    pub event_types: Vec<Option<String>>,
    /// The script turning the event into the body sent, if any.
    pub transform: Option<String>,
    /// The jsonb containment filter and the jsonpath filter, as text.
    pub filter: Option<String>,
    pub filter_path: Option<String>,
    /// The legacy signature's description (JSON text) and its secret, as stored.
    pub legacy_signature: Option<String>,
    pub legacy_secret: Option<String>,
    /// Whether the Standard Webhooks headers are sent.
    pub standard_signature: bool,
    /// PEM text: the client certificate, its key (as stored: sealed, or
    /// plaintext), and the extra CAs trusted for the server's certificate.
    pub tls_client_cert: Option<String>,
    pub tls_client_key: Option<String>,
    pub tls_ca_bundle: Option<String>,
    /// Whether attempts carry the event's trace context.
    pub propagate_trace: bool,
}

impl EndpointRow {
    /// Never panics: a column that cannot be decoded makes the row invalid.
    fn decode(row: &Row) -> Result<Self, DbError> {
        let id: i64 = row.try_get("id")?;
        let fields = (|| {
            Ok::<_, (&str, tokio_postgres::Error)>(EndpointFields {
                url: get(row, "url")?,
                secrets: get(row, "secrets")?,
                headers: get(row, "headers")?,
                timeout_ms: get(row, "timeout_ms")?,
                max_attempts: get(row, "max_attempts")?,
                max_in_flight: get(row, "max_in_flight")?,
                rate_limit_per_sec: get(row, "rate_limit_per_sec")?,
                backoff_initial_ms: get(row, "backoff_initial_ms")?,
                backoff_max_ms: get(row, "backoff_max_ms")?,
                ordered: get(row, "ordered")?,
                event_types: get(row, "event_types")?,
                transform: get(row, "transform")?,
                filter: get(row, "filter")?,
                filter_path: get(row, "filter_path")?,
                legacy_signature: get(row, "legacy_signature")?,
                legacy_secret: get(row, "legacy_secret")?,
                standard_signature: get(row, "standard_signature")?,
                tls_client_cert: get(row, "tls_client_cert")?,
                tls_client_key: get(row, "tls_client_key")?,
                tls_ca_bundle: get(row, "tls_ca_bundle")?,
                propagate_trace: get(row, "propagate_trace")?,
            })
        })()
        .map_err(|(column, e)| match e.source().map(ToString::to_string) {
            Some(cause) if cause.contains("dimension") => format!("{column} must be a one-dimensional array"),
            Some(cause) => format!("{column} cannot be read: {cause}"),
            None => format!("{column} cannot be read"),
        });
        Ok(Self {
            id,
            name: row.try_get("name").unwrap_or_else(|_| format!("#{id}")),
            enabled: row.try_get("enabled").unwrap_or(false),
            invalid_reason: row.try_get("invalid_reason").unwrap_or_default(),
            fields,
        })
    }
}

fn get<'a, T: tokio_postgres::types::FromSql<'a>>(
    row: &'a Row,
    column: &'static str,
) -> Result<T, (&'static str, tokio_postgres::Error)> {
    row.try_get(column).map_err(|e| (column, e))
}

/// Which deliveries `tailhook redeliver` selects; `None` filters match all.
#[derive(Debug, Default)]
pub struct Selection {
    pub ids: Option<Vec<i64>>,
    pub endpoint: Option<String>,
    pub event_type: Option<String>,
    /// `None`: any status (e.g. deliveries chosen by id).
    pub status: Option<String>,
    /// Deliveries created at or after (any PostgreSQL timestamp syntax).
    pub since: Option<String>,
    /// Deliveries created before.
    pub until: Option<String>,
    /// Who asks (`cli (user alice)`, `console (admin token) from …`, `api token #7`):
    /// recorded on each delivery redelivered and on the attempts it then makes.
    pub requested_by: Option<String>,
}

/// How many more deliveries each endpoint may start now, for one claim.
#[derive(Debug, Default)]
pub struct Rooms {
    pub endpoint_ids: Vec<i64>,
    pub room: Vec<i32>,
    /// For endpoints this replica does not know yet.
    pub default_room: i32,
}

impl Rooms {
    /// Deliveries all known endpoints together may start now.
    pub fn total(&self) -> usize {
        self.room.iter().map(|&r| r.max(0) as usize).sum()
    }
}

/// Milliseconds of filter_path evaluation a fan-out gives each endpoint, and
/// all of them together (see `tailhook.filter_path_matches`): a quarter of
/// the statement deadline together, so filters alone never reach it, and a
/// fortieth of it, at most [`FILTER_BUDGET_MS`], to each.
pub fn filter_budgets(statement_timeout: std::time::Duration) -> (i32, i32) {
    let deadline_ms = statement_timeout.as_millis().min(i32::MAX as u128) as i32;
    ((deadline_ms / 40).min(FILTER_BUDGET_MS), deadline_ms / 4)
}

/// The most one endpoint's filter_path may take in one fan-out, in ms.
pub const FILTER_BUDGET_MS: i32 = 250;

impl Db {
    /// Fans out up to `limit` undispatched outbox rows, as many as make fewer
    /// than `max_deliveries` deliveries (at least one row), leasing at most
    /// `max_deliveries` (see `dispatch.sql`), in a transaction committed
    /// asynchronously (see `async_commit.sql`); `one_at_a_time` while any
    /// endpoint is ordered (`dispatch_serialize.sql`). The filters of the
    /// endpoints in `skip_filters` (rows found beyond the bounds on filters)
    /// are not evaluated.
    #[allow(clippy::too_many_arguments)]
    pub async fn dispatch(
        &self,
        limit: i64,
        max_deliveries: i64,
        lease: Lease<'_>,
        rooms: &Rooms,
        one_at_a_time: bool,
        skip_filters: &[i64],
    ) -> Result<Vec<ClaimedRow>, DbError> {
        self.with_client(async |client| {
            let (endpoint_budget_ms, claim_budget_ms) = filter_budgets(self.timeout);
            let params: [&dyn Param; 14] = [
                &limit,
                &lease.replica,
                &lease.default_timeout_ms,
                &lease.margin_ms,
                &lease.token,
                &rooms.endpoint_ids,
                &rooms.room,
                &rooms.default_room,
                &lease.max_payload_bytes,
                &lease.claim_bytes,
                &max_deliveries,
                &skip_filters,
                &endpoint_budget_ms,
                &claim_budget_ms,
            ];
            let (begin, sql) = if one_at_a_time {
                (DISPATCH_BEGIN_SERIALIZED, DISPATCH)
            } else {
                (DISPATCH_BEGIN, DISPATCH_UNORDERED.as_str())
            };
            let rows = self.rows_in_one_round_trip(client, begin, sql, &params).await?;
            self.replan_as_tables_grow(rows.len() as u64);
            rows.iter().map(ClaimedRow::from_row).collect()
        })
        .await
    }

    /// Expands up to about `max_rows` changed rows that change capture staged
    /// into outbox rows (see `expand_captures.sql`); returns how many.
    pub async fn expand_captures(&self, max_rows: i32) -> Result<i64, DbError> {
        self.with_client(async |client| Ok(self.one(&*client, EXPAND_CAPTURES, &[&max_rows]).await?.try_get(0)?)).await
    }

    /// Leases up to `limit` due deliveries, at most `per_endpoint` of any one
    /// endpoint and at most its room (see `claim_due.sql`).
    pub async fn claim_due(
        &self,
        limit: i64,
        per_endpoint: i64,
        lease: Lease<'_>,
        rooms: &Rooms,
    ) -> Result<Vec<ClaimedRow>, DbError> {
        self.with_client(async |client| {
            let params: [&dyn Param; 12] = [
                &limit,
                &lease.replica,
                &lease.default_timeout_ms,
                &lease.margin_ms,
                &lease.token,
                &per_endpoint,
                &rooms.endpoint_ids,
                &rooms.room,
                &rooms.default_room,
                &lease.max_payload_bytes,
                &lease.claim_bytes,
                &REPLICA_TIMEOUT_MS,
            ];
            let rows = self.rows_in_one_round_trip(client, PIPELINE_BEGIN, CLAIM_DUE, &params).await?;
            rows.iter().map(ClaimedRow::from_row).collect()
        })
        .await
    }

    /// Writes a batch of attempt results (see `record_results.sql`), then
    /// the few it did not apply (`record_results_unapplied.sql`); returns
    /// the late ones, as (delivery id, lease token): their lease was lost, so
    /// only their attempt rows were written (and a late 2xx finished its
    /// delivery if nothing else had).
    pub async fn record_results(&self, replica: &str, b: &ResultBatch) -> Result<Vec<(i64, i64)>, DbError> {
        let (least, greatest) = b.event_at_range();
        let unapplied = self.write_results(RECORD_RESULTS, replica, b, &[&least, &greatest]).await?;
        if unapplied.is_empty() {
            return Ok(unapplied);
        }
        let rest = b.only(&unapplied.into_iter().collect());
        self.write_results(RECORD_RESULTS_UNAPPLIED, replica, &rest, &[]).await
    }

    /// Runs one of the two result writes, with `extra` after the batch's
    /// columns; returns its (delivery id, lease) rows.
    async fn write_results(
        &self,
        sql: &str,
        replica: &str,
        b: &ResultBatch,
        extra: &[&dyn Param],
    ) -> Result<Vec<(i64, i64)>, DbError> {
        self.with_client(async |client| {
            let columns: [&dyn Param; 14] = [
                &replica,
                &b.delivery_id,
                &b.attempt,
                &b.status,
                &b.delay_ms,
                &b.status_code,
                &b.error_kind,
                &b.error,
                &b.started_at,
                &b.duration_ms,
                &b.response_body,
                &b.last_error,
                &b.lease,
                &b.event_at,
            ];
            let params: Vec<&dyn Param> = columns.iter().chain(extra).copied().collect();
            let rows = self.rows_in_one_round_trip(client, PIPELINE_BEGIN, sql, &params).await?;
            rows.iter().map(|r| Ok((r.try_get(0)?, r.try_get(1)?))).collect()
        })
        .await
    }

    /// Releases the given (delivery id, lease token) leases of this replica;
    /// `event_at` is each delivery's, as its claim returned it.
    pub async fn release(
        &self,
        replica: &str,
        ids: &[i64],
        leases: &[i64],
        event_at: &[EventAt],
    ) -> Result<u64, DbError> {
        self.with_client(async |client| {
            Ok(self.exec(&*client, RELEASE_LEASES, &[&replica, &ids, &leases, &event_at]).await?)
        })
        .await
    }

    /// One batch of redelivery (see `redeliver_batch.sql`): returns how many
    /// deliveries matched after id `after`, and the last id.
    pub async fn redeliver_batch(
        &self,
        s: &Selection,
        after: i64,
        batch: i64,
        dry_run: bool,
    ) -> Result<(i64, i64), DbError> {
        self.with_client(async |client| {
            let params: [&dyn Param; 10] = [
                &s.ids,
                &s.endpoint,
                &s.event_type,
                &s.status,
                &s.since,
                &s.until,
                &after,
                &batch,
                &dry_run,
                &s.requested_by,
            ];
            let row = self.one(&*client, REDELIVER_BATCH, &params).await?;
            Ok((row.try_get(0)?, row.try_get(1)?))
        })
        .await
    }

    /// Cancels deliveries of endpoints that no longer exist (see
    /// `cancel_orphans.sql`); returns how many.
    pub async fn cancel_orphans(&self) -> Result<i64, DbError> {
        self.with_client(async |client| Ok(self.one(&*client, CANCEL_ORPHANS, &[]).await?.try_get(0)?)).await
    }

    /// Re-enables an endpoint (see `endpoint_enable.sql`); false when there is none by that name.
    pub async fn enable_endpoint(&self, name: &str) -> Result<bool, DbError> {
        self.with_client(async |client| Ok(self.one(&*client, ENDPOINT_ENABLE, &[&name]).await?.try_get(0)?)).await
    }

    pub async fn endpoint_exists(&self, name: &str) -> Result<bool, DbError> {
        self.with_client(async |client| Ok(self.one(&*client, ENDPOINT_EXISTS, &[&name]).await?.try_get(0)?)).await
    }

    /// Circuit-breaker bookkeeping (see `endpoints_health.sql`); returns the
    /// names of endpoints this batch paused, resumed and disabled.
    pub async fn endpoint_health(&self, h: &HealthBatch, d: &DeliveryConfig) -> Result<HealthChanges, DbError> {
        self.with_client(async |client| {
            let (after, min, max, dead) = (
                d.breaker_after_ms as i64,
                d.breaker_min_failures as i32,
                d.backoff_max_ms as i64,
                d.disable_after_failing_ms as i64,
            );
            let params: [&dyn Param; 7] = [&h.endpoint_id, &h.ok, &h.bad, &after, &min, &max, &dead];
            let mut changes = HealthChanges::default();
            for row in self.rows_in_one_round_trip(client, PIPELINE_BEGIN, ENDPOINTS_HEALTH, &params).await? {
                if !row.try_get::<_, bool>("done")? {
                    changes.skipped.push(row.try_get("id")?);
                    continue;
                }
                let Some(name) = row.try_get::<_, Option<String>>("name")? else { continue };
                for (column, list) in [
                    ("tripped", &mut changes.paused),
                    ("disabled", &mut changes.disabled),
                    ("resumed", &mut changes.resumed),
                ] {
                    if row.try_get::<_, Option<bool>>(column)? == Some(true) {
                        list.push(name.clone());
                    }
                }
            }
            Ok(changes)
        })
        .await
    }

    /// Disables endpoints that answered 410 Gone; returns those skipped
    /// because someone else holds their row (to try again later).
    pub async fn disable_gone(&self, endpoint_ids: &[i64]) -> Result<Vec<i64>, DbError> {
        self.with_client(async |client| {
            let rows = self.rows(&*client, ENDPOINTS_DISABLE_GONE, &[&endpoint_ids]).await?;
            rows.iter().map(|r| Ok(r.try_get(0)?)).collect()
        })
        .await
    }

    /// The SQL-backed gauges of `/metrics` (see `metrics_gauges.sql`).
    pub async fn metrics_gauges(&self) -> Result<crate::metrics::Gauges, DbError> {
        self.with_client(async |client| {
            let mut g = crate::metrics::Gauges::default();
            for row in self.rows(&*client, METRICS_GAUGES, &[]).await? {
                g.outbox_lag_seconds = row.try_get("outbox_lag")?;
                g.oldest_pending_seconds = row.try_get("oldest_pending")?;
                if let Some(name) = row.try_get::<_, Option<String>>("name")? {
                    g.pending.push((name, row.try_get("pending")?));
                    g.states.push(row.try_get("state")?);
                }
            }
            Ok(g)
        })
        .await
    }

    /// Says this replica is alive (see `replica_heartbeat.sql`).
    pub async fn heartbeat(&self, replica: &str) -> Result<(), DbError> {
        self.with_client(async |client| {
            self.exec(&*client, REPLICA_HEARTBEAT, &[&replica, &REPLICA_TIMEOUT_MS]).await?;
            Ok(())
        })
        .await
    }

    /// Removes this replica's row (at graceful shutdown).
    pub async fn leave(&self, replica: &str) -> Result<u64, DbError> {
        self.with_client(async |client| Ok(self.exec(&*client, REPLICA_LEAVE, &[&replica]).await?)).await
    }

    /// Releases every lease this replica holds (at shutdown).
    pub async fn release_all(&self, replica: &str) -> Result<u64, DbError> {
        self.with_client(async |client| Ok(self.exec(&*client, RELEASE_ALL, &[&replica]).await?)).await
    }

    /// A value that changes whenever any endpoint changes.
    pub async fn endpoints_fingerprint(&self) -> Result<String, DbError> {
        self.with_client(async |client| Ok(self.one(&*client, ENDPOINTS_FINGERPRINT, &[]).await?.try_get(0)?)).await
    }

    pub async fn load_endpoints(&self) -> Result<Vec<EndpointRow>, DbError> {
        self.with_client(async |client| {
            let rows = self.rows(&*client, ENDPOINTS_LOAD, &[]).await?;
            rows.iter().map(EndpointRow::decode).collect()
        })
        .await
    }

    /// Stores why endpoints cannot be used (see `endpoints_mark_invalid.sql`);
    /// returns the ids written (locked rows are skipped).
    pub async fn mark_invalid(&self, ids: &[i64], reasons: &[Option<String>]) -> Result<Vec<i64>, DbError> {
        self.with_client(async |client| {
            let rows = self.rows(&*client, ENDPOINTS_MARK_INVALID, &[&ids, &reasons]).await?;
            rows.iter().map(|r| Ok(r.try_get(0)?)).collect()
        })
        .await
    }

    /// Replaces an endpoint's stored secrets and header values (`after`:
    /// secrets, headers as JSON text, legacy secret, TLS client key) if they
    /// are still `before`; whether they were (see `endpoint_reseal.sql`).
    pub async fn reseal_endpoint(
        &self,
        id: i64,
        before: (&[Option<String>], &str, Option<&str>, Option<&str>),
        after: (&[String], &str, Option<&str>, Option<&str>),
    ) -> Result<bool, DbError> {
        self.with_client(async |client| {
            let params: [&dyn Param; 9] =
                [&id, &before.0, &before.1, &after.0, &after.1, &before.2, &after.2, &before.3, &after.3];
            Ok(!self.rows(&*client, ENDPOINT_RESEAL, &params).await?.is_empty())
        })
        .await
    }

    /// Upserts the endpoints declared in the config file and disables the
    /// config-managed ones no longer declared, in one transaction.
    /// Secrets and header values are stored sealed under the first of
    /// `keys` (as written without keys); a value unchanged since the last
    /// start keeps its stored bytes, so the row does not change (the
    /// endpoint cache seals it again in place if it is not current).
    pub async fn sync_config_endpoints(&self, endpoints: &[ResolvedEndpoint], keys: &Keys) -> Result<(), DbError> {
        self.with_client(async |client| {
            let tx = client.transaction().await?;
            for ep in endpoints {
                let c = &ep.config;
                let stored = self.rows(&tx, ENDPOINT_STORED_SECRETS, &[&c.name]).await?;
                let (old_secrets, old_headers, old_legacy, old_tls_key) = match stored.first() {
                    Some(row) => (
                        row.try_get::<_, Vec<Option<String>>>(0).unwrap_or_default(),
                        row.try_get::<_, String>(1)
                            .ok()
                            .and_then(|h| serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(&h).ok())
                            .unwrap_or_default(),
                        row.try_get::<_, Option<String>>(2).ok().flatten(),
                        row.try_get::<_, Option<String>>(3).ok().flatten(),
                    ),
                    None => Default::default(),
                };
                let legacy_secret =
                    ep.legacy_secret.as_ref().map(|s| keys.unchanged_or_sealed(s.expose(), old_legacy.as_deref()));
                let tls_client_key =
                    ep.tls_client_key.as_ref().map(|s| keys.unchanged_or_sealed(s.expose(), old_tls_key.as_deref()));
                let legacy_signature = c.legacy_signature.as_ref().map(|s| s.to_string());
                let secrets: Vec<String> = ep
                    .secrets
                    .iter()
                    .enumerate()
                    .map(|(i, s)| keys.unchanged_or_sealed(s.expose(), old_secrets.get(i).and_then(Option::as_deref)))
                    .collect();
                let headers: serde_json::Map<String, serde_json::Value> = ep
                    .headers
                    .iter()
                    .map(|(k, v)| {
                        (
                            k.clone(),
                            keys.unchanged_or_sealed(v.expose(), old_headers.get(k).and_then(|o| o.as_str())).into(),
                        )
                    })
                    .collect();
                let headers = serde_json::Value::Object(headers).to_string();
                let filter = c.filter.as_ref().map(|f| f.to_string());
                let transform = c.script();
                let params: [&dyn Param; 24] = [
                    &c.name,
                    &ep.url,
                    &c.tenant,
                    &c.event_types,
                    &filter,
                    &c.filter_path,
                    &secrets,
                    &headers,
                    &c.enabled,
                    &c.max_attempts,
                    &c.timeout_ms,
                    &c.rate_limit_per_sec,
                    &c.max_in_flight,
                    &c.ordered,
                    &transform,
                    &legacy_signature,
                    &legacy_secret,
                    &c.standard_signature,
                    &c.backoff_initial_ms,
                    &c.backoff_max_ms,
                    &ep.tls_client_cert,
                    &tls_client_key,
                    &ep.tls_ca_bundle,
                    &c.propagate_trace,
                ];
                self.exec(&tx, ENDPOINT_UPSERT, &params).await?;
            }
            let names: Vec<&str> = endpoints.iter().map(|e| e.config.name.as_str()).collect();
            self.exec(&tx, ENDPOINTS_DISABLE_REMOVED, &[&names]).await?;
            tx.commit().await?;
            Ok(())
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_unordered_fan_out_drops_only_the_key_head_lookup() {
        assert_eq!(DISPATCH.matches("-- ordered: from here").count(), 1);
        assert_eq!(DISPATCH.matches("-- ordered: to here").count(), 1);
        let unordered = DISPATCH_UNORDERED.as_str();
        assert!(DISPATCH.contains("FROM tailhook.deliveries x"));
        assert!(!unordered.contains("FROM tailhook.deliveries x"), "the lookup is gone");
        assert!(unordered.contains("NULL::bigint\n           AS head_outbox_id"), "{unordered}");
        assert_eq!(
            unordered.matches("tailhook.deliveries").count() + 1,
            DISPATCH.matches("tailhook.deliveries").count()
        );
    }

    #[test]
    fn a_result_batch_keeps_the_chosen_results_and_knows_its_range() {
        use tokio_postgres::types::Timestamp;
        let at = |s: u64| Timestamp::Value(SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(s));
        let b = ResultBatch {
            delivery_id: vec![1, 2, 3],
            attempt: vec![1, 1, 2],
            status: vec!["succeeded", "retrying", "failed"],
            delay_ms: vec![None, Some(5), None],
            status_code: vec![Some(200), Some(500), None],
            error_kind: vec![None, Some("status"), Some("timeout")],
            error: vec![None, Some("e2".into()), Some("e3".into())],
            last_error: vec![None, Some("l2".into()), Some("l3".into())],
            lease: vec![10, 20, 30],
            started_at: vec![SystemTime::UNIX_EPOCH; 3],
            duration_ms: vec![1, 2, 3],
            response_body: vec![None, Some("b2".into()), None],
            event_at: vec![at(50), Timestamp::NegInfinity, at(7)],
        };
        assert_eq!(b.event_at_range(), (Timestamp::NegInfinity, at(50)));
        let rest = b.only(&[(3, 30), (2, 99)].into_iter().collect());
        assert_eq!(rest.delivery_id, [3], "the pair (2, 99) is not in the batch");
        assert_eq!((rest.attempt[0], rest.status[0], rest.lease[0]), (2, "failed", 30));
        assert_eq!((rest.error_kind[0], rest.error[0].as_deref()), (Some("timeout"), Some("e3")));
        assert_eq!((rest.last_error[0].as_deref(), rest.duration_ms[0], rest.event_at[0]), (Some("l3"), 3, at(7)));
        let mid = b.only(&[(2, 20)].into_iter().collect());
        assert_eq!(mid.event_at_range(), (Timestamp::NegInfinity, Timestamp::NegInfinity));
        assert_eq!(
            (mid.delay_ms[0], mid.status_code[0], mid.response_body[0].as_deref()),
            (Some(5), Some(500), Some("b2"))
        );
    }
}
