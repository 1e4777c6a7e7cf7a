//! Typed wrappers around the runtime statements in `sql/queries`, one function per file.

use super::{Db, DbError};
use crate::config::{DeliveryConfig, ResolvedEndpoint};
use crate::limits::Rooms;
use std::collections::HashMap;
use std::time::SystemTime;
use tokio_postgres::types::ToSql;
use tokio_postgres::Row;

const DISPATCH: &str = include_str!("../../sql/queries/dispatch.sql");
const CLAIM_DUE: &str = include_str!("../../sql/queries/claim_due.sql");
const RECORD_RESULTS: &str = include_str!("../../sql/queries/record_results.sql");
const RELEASE_LEASES: &str = include_str!("../../sql/queries/release_leases.sql");
const RELEASE_ALL: &str = include_str!("../../sql/queries/release_all.sql");
const ASYNC_COMMIT: &str = include_str!("../../sql/queries/async_commit.sql");
const DISPATCH_SERIALIZE: &str = include_str!("../../sql/queries/dispatch_serialize.sql");
const ENDPOINTS_FINGERPRINT: &str = include_str!("../../sql/queries/endpoints_fingerprint.sql");
const ENDPOINTS_LOAD: &str = include_str!("../../sql/queries/endpoints_load.sql");
const ENDPOINT_UPSERT: &str = include_str!("../../sql/queries/endpoint_upsert.sql");
const ENDPOINTS_HEALTH: &str = include_str!("../../sql/queries/endpoints_health.sql");
const ENDPOINTS_DISABLE_GONE: &str = include_str!("../../sql/queries/endpoints_disable_gone.sql");
const REDELIVER_BATCH: &str = include_str!("../../sql/queries/redeliver_batch.sql");
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
    pub payload: Option<String>,
    /// How long the lease lasts from the claim.
    pub lease_ms: Option<i64>,
}

impl ClaimedRow {
    fn from_row(row: &Row) -> Self {
        Self {
            delivery_id: row.get(0),
            endpoint_id: row.get(1),
            attempts: row.get(2),
            outbox_id: row.get(3),
            event_id: row.get(4),
            event_type: row.get(5),
            created_at: row.get(6),
            payload: row.get(7),
            lease_ms: row.get(8),
        }
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
}

impl ResultBatch {
    pub fn len(&self) -> usize {
        self.delivery_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.delivery_id.is_empty()
    }
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
        let i = *self.index.entry(endpoint_id).or_insert_with(|| {
            self.endpoint_id.push(endpoint_id);
            self.ok.push(0);
            self.bad.push(0);
            self.endpoint_id.len() - 1
        });
        if ok {
            self.ok[i] += 1;
        } else {
            self.bad[i] += 1;
        }
    }
}

/// What the sender needs of an endpoint row.
#[derive(Debug)]
pub struct EndpointRow {
    pub id: i64,
    pub name: String,
    pub url: String,
    /// Elements may be NULL when set with SQL.
    pub secrets: Vec<Option<String>>,
    pub headers: String,
    pub enabled: bool,
    pub timeout_ms: Option<i32>,
    pub max_attempts: Option<i32>,
    pub max_in_flight: Option<i32>,
    pub rate_limit_per_sec: Option<i32>,
    pub ordered: bool,
}

/// Which deliveries `tailhook redeliver` selects; `None` filters match all.
#[derive(Debug, Default)]
pub struct Selection {
    pub ids: Option<Vec<i64>>,
    pub endpoint: Option<String>,
    pub event_type: Option<String>,
    pub status: String,
    /// Deliveries created at or after (any PostgreSQL timestamp syntax).
    pub since: Option<String>,
    /// Deliveries created before.
    pub until: Option<String>,
}

impl Db {
    /// Fans out up to `limit` undispatched outbox rows (see `dispatch.sql`),
    /// in a transaction committed asynchronously (see `async_commit.sql`);
    /// `one_at_a_time` while any endpoint is ordered (`dispatch_serialize.sql`).
    pub async fn dispatch(
        &self,
        limit: i64,
        lease: Lease<'_>,
        rooms: &Rooms,
        one_at_a_time: bool,
    ) -> Result<Vec<ClaimedRow>, DbError> {
        self.timed(async {
            let mut client = self.client().await?;
            let tx = client.transaction().await?;
            tx.batch_execute(ASYNC_COMMIT).await?;
            if one_at_a_time {
                tx.batch_execute(DISPATCH_SERIALIZE).await?;
            }
            let stmt = tx.prepare_cached(DISPATCH).await?;
            let params: [&(dyn ToSql + Sync); 8] = [
                &limit,
                &lease.replica,
                &lease.default_timeout_ms,
                &lease.margin_ms,
                &lease.token,
                &rooms.endpoint_ids,
                &rooms.room,
                &rooms.default_room,
            ];
            let rows = tx.query(&stmt, &params).await?;
            tx.commit().await?;
            Ok(rows.iter().map(ClaimedRow::from_row).collect())
        })
        .await
    }

    /// Leases up to `limit` due deliveries, at most `per_endpoint` of any one
    /// endpoint (see `claim_due.sql`).
    pub async fn claim_due(
        &self,
        limit: i64,
        per_endpoint: i64,
        lease: Lease<'_>,
        rooms: &Rooms,
    ) -> Result<Vec<ClaimedRow>, DbError> {
        self.timed(async {
            let client = self.client().await?;
            let stmt = client.prepare_cached(CLAIM_DUE).await?;
            let params: [&(dyn ToSql + Sync); 9] = [
                &limit,
                &lease.replica,
                &lease.default_timeout_ms,
                &lease.margin_ms,
                &lease.token,
                &per_endpoint,
                &rooms.endpoint_ids,
                &rooms.room,
                &rooms.default_room,
            ];
            let rows = client.query(&stmt, &params).await?;
            Ok(rows.iter().map(ClaimedRow::from_row).collect())
        })
        .await
    }

    /// Writes a batch of attempt results; returns how many deliveries it completed
    /// (results for leases this replica no longer holds are skipped).
    pub async fn record_results(&self, replica: &str, b: &ResultBatch) -> Result<u64, DbError> {
        self.timed(async {
            let client = self.client().await?;
            let stmt = client.prepare_cached(RECORD_RESULTS).await?;
            Ok(client
                .execute(
                    &stmt,
                    &[
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
                    ],
                )
                .await?)
        })
        .await
    }

    /// Releases the given (delivery id, lease token) leases of this replica.
    pub async fn release(&self, replica: &str, ids: &[i64], leases: &[i64]) -> Result<u64, DbError> {
        self.timed(async {
            let client = self.client().await?;
            Ok(client.execute(RELEASE_LEASES, &[&replica, &ids, &leases]).await?)
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
        self.timed(async {
            let client = self.client().await?;
            let params: [&(dyn ToSql + Sync); 9] =
                [&s.ids, &s.endpoint, &s.event_type, &s.status, &s.since, &s.until, &after, &batch, &dry_run];
            let row = client.query_one(REDELIVER_BATCH, &params).await?;
            Ok((row.get(0), row.get(1)))
        })
        .await
    }

    pub async fn endpoint_exists(&self, name: &str) -> Result<bool, DbError> {
        self.timed(async { Ok(self.client().await?.query_one(ENDPOINT_EXISTS, &[&name]).await?.get(0)) }).await
    }

    /// Circuit-breaker bookkeeping (see `endpoints_health.sql`); returns the
    /// names of endpoints this batch paused and of those it disabled.
    pub async fn endpoint_health(
        &self,
        h: &HealthBatch,
        d: &DeliveryConfig,
    ) -> Result<(Vec<String>, Vec<String>), DbError> {
        self.timed(async {
            let client = self.client().await?;
            let stmt = client.prepare_cached(ENDPOINTS_HEALTH).await?;
            let (after, min, max, dead) = (
                d.breaker_after_ms as i64,
                d.breaker_min_failures as i32,
                d.backoff_max_ms as i64,
                d.disable_after_failing_ms as i64,
            );
            let params: [&(dyn ToSql + Sync); 7] = [&h.endpoint_id, &h.ok, &h.bad, &after, &min, &max, &dead];
            let (mut tripped, mut disabled) = (Vec::new(), Vec::new());
            for row in client.query(&stmt, &params).await? {
                if row.get::<_, Option<bool>>(1) == Some(true) {
                    tripped.push(row.get(0));
                }
                if row.get::<_, Option<bool>>(2) == Some(true) {
                    disabled.push(row.get(0));
                }
            }
            Ok((tripped, disabled))
        })
        .await
    }

    /// Disables endpoints that answered 410 Gone.
    pub async fn disable_gone(&self, endpoint_ids: &[i64]) -> Result<u64, DbError> {
        self.timed(async {
            let client = self.client().await?;
            Ok(client.execute(ENDPOINTS_DISABLE_GONE, &[&endpoint_ids]).await?)
        })
        .await
    }

    /// Releases every lease this replica holds (at shutdown).
    pub async fn release_all(&self, replica: &str) -> Result<u64, DbError> {
        self.timed(async {
            let client = self.client().await?;
            Ok(client.execute(RELEASE_ALL, &[&replica]).await?)
        })
        .await
    }

    /// A value that changes whenever any endpoint changes.
    pub async fn endpoints_fingerprint(&self) -> Result<String, DbError> {
        self.timed(async {
            let client = self.client().await?;
            let stmt = client.prepare_cached(ENDPOINTS_FINGERPRINT).await?;
            Ok(client.query_one(&stmt, &[]).await?.get(0))
        })
        .await
    }

    pub async fn load_endpoints(&self) -> Result<Vec<EndpointRow>, DbError> {
        self.timed(async {
            let client = self.client().await?;
            let rows = client.query(ENDPOINTS_LOAD, &[]).await?;
            Ok(rows
                .iter()
                .map(|r| EndpointRow {
                    id: r.get(0),
                    name: r.get(1),
                    url: r.get(2),
                    secrets: r.get(3),
                    headers: r.get(4),
                    enabled: r.get(5),
                    timeout_ms: r.get(6),
                    max_attempts: r.get(7),
                    max_in_flight: r.get(8),
                    rate_limit_per_sec: r.get(9),
                    ordered: r.get(10),
                })
                .collect())
        })
        .await
    }

    /// Upserts the endpoints declared in the config file and disables the
    /// config-managed ones no longer declared, in one transaction.
    pub async fn sync_config_endpoints(&self, endpoints: &[ResolvedEndpoint]) -> Result<(), DbError> {
        self.timed(async {
            let mut client = self.client().await?;
            let tx = client.transaction().await?;
            let upsert = tx.prepare(ENDPOINT_UPSERT).await?;
            for ep in endpoints {
                let c = &ep.config;
                let secrets: Vec<&str> = ep.secrets.iter().map(|s| s.expose()).collect();
                let headers: serde_json::Map<String, serde_json::Value> =
                    ep.headers.iter().map(|(k, v)| (k.clone(), v.expose().into())).collect();
                let headers = serde_json::Value::Object(headers).to_string();
                let filter = c.filter.as_ref().map(|f| f.to_string());
                tx.execute(
                    &upsert,
                    &[
                        &c.name,
                        &c.url,
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
                    ],
                )
                .await?;
            }
            let names: Vec<&str> = endpoints.iter().map(|e| e.config.name.as_str()).collect();
            tx.execute(ENDPOINTS_DISABLE_REMOVED, &[&names]).await?;
            tx.commit().await?;
            Ok(())
        })
        .await
    }
}
