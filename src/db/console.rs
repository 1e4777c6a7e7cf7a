//! Typed wrappers around the console's statements (`sql/queries/console_*.sql`), one function per file.

use super::typed::Param;
use super::{Db, DbError};
use tokio_postgres::Row;

const MINUTES: &str = include_str!("../../sql/queries/console_minutes.sql");
const FAILED_DAY: &str = include_str!("../../sql/queries/console_failed_day.sql");
const LATENCY: &str = include_str!("../../sql/queries/console_latency.sql");
const BOUNDS: &str = include_str!("../../sql/queries/console_bounds.sql");
const SEARCH: &str = include_str!("../../sql/queries/console_search.sql");
const SEARCH_EVENT: &str = include_str!("../../sql/queries/console_search_event.sql");
const DELIVERY: &str = include_str!("../../sql/queries/console_delivery.sql");
const ATTEMPTS: &str = include_str!("../../sql/queries/console_attempts.sql");
const PAUSE: &str = include_str!("../../sql/queries/console_pause.sql");
const ENDPOINT: &str = include_str!("../../sql/queries/console_endpoint.sql");

/// Deliveries finished in one minute of the last hour (minute 0 the oldest, 59 now).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Minute {
    pub endpoint_id: i64,
    pub minute: i32,
    pub succeeded: i64,
    pub failed: i64,
}

/// Attempt durations in the last hour, from a bounded sample (`console_latency.sql`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Latency {
    pub endpoint_id: i64,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub sampled: i64,
}

/// What the search filters on; `None` is "any".
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Search {
    pub event_id: Option<String>,
    pub endpoint: Option<String>,
    pub event_type: Option<String>,
    pub tenant: Option<String>,
    pub status: Option<String>,
    /// Deliveries created at or after (PostgreSQL timestamp syntax).
    pub since: Option<String>,
    /// Deliveries created before.
    pub until: Option<String>,
    /// Keyset: only ids below this (`None`: the newest).
    pub below: Option<i64>,
    /// The endpoints' tenant (a tenant-bound scope's): deliveries to its own endpoints only.
    pub owner: Option<String>,
}

/// One row of the search results.
#[derive(Debug, Clone)]
pub struct Found {
    pub id: i64,
    pub event_id: String,
    pub event_type: String,
    pub tenant: Option<String>,
    pub endpoint: String,
    pub status: String,
    pub attempts: i32,
    pub last_status_code: Option<i32>,
    pub created_at: String,
    pub next_attempt_at: Option<String>,
}

/// A page of search results, and where the next one starts.
#[derive(Debug, Clone, Default)]
pub struct Page {
    pub rows: Vec<Found>,
    /// The next page's `below`; `None` when nothing older is left.
    pub next_below: Option<i64>,
    /// The lowest id this page read down to (`None` for an event id search).
    pub scanned_to: Option<i64>,
}

/// A delivery with its event and endpoint, for its page.
#[derive(Debug, Clone)]
pub struct DeliveryView {
    pub id: i64,
    pub event_id: String,
    pub event_type: String,
    pub tenant: Option<String>,
    pub ordering_key: Option<String>,
    pub published_at: String,
    pub endpoint: String,
    /// As stored: redact before showing.
    pub url: String,
    pub status: String,
    pub attempts: i32,
    pub next_attempt_at: Option<String>,
    pub in_flight: bool,
    pub last_status_code: Option<i32>,
    pub last_error: Option<String>,
    pub created_at: String,
    pub completed_at: Option<String>,
    pub payload_bytes: i32,
    /// Pretty-printed, or cut when over the limit.
    pub payload: String,
    pub secrets: i32,
    pub header_names: Vec<String>,
    /// The endpoint's transform, as it is now.
    pub transform: Option<String>,
    /// With a transform: the payload's exact text (absent when too large).
    pub payload_text: Option<String>,
    /// The envelope's `timestamp`.
    pub timestamp: String,
    /// Who redelivered it last, and when (UTC); `None`: never by hand.
    pub redelivered_by: Option<String>,
    pub redelivered_at: Option<String>,
    /// Redelivered and no attempt made since: about to be sent.
    pub redelivery_waiting: bool,
}

/// One attempt on the delivery page.
#[derive(Debug, Clone)]
pub struct AttemptView {
    pub attempt: i32,
    pub started_at: String,
    pub duration_ms: i32,
    pub status_code: Option<i32>,
    pub error_kind: Option<String>,
    pub error: Option<String>,
    pub response_body: Option<String>,
    /// Who redelivered the delivery by hand before this attempt (`None`: a scheduled attempt).
    pub requested_by: Option<String>,
}

impl Found {
    fn decode(r: &Row) -> Result<Self, DbError> {
        Ok(Self {
            id: r.try_get(0)?,
            event_id: r.try_get(1)?,
            event_type: r.try_get(2)?,
            tenant: r.try_get(3)?,
            endpoint: r.try_get(4)?,
            status: r.try_get(5)?,
            attempts: r.try_get(6)?,
            last_status_code: r.try_get(7)?,
            created_at: r.try_get(8)?,
            next_attempt_at: r.try_get(9)?,
        })
    }
}

impl Db {
    /// Deliveries finished per minute over the last hour, for these endpoints.
    pub async fn console_minutes(&self, endpoints: &[i64]) -> Result<Vec<Minute>, DbError> {
        self.with_client(async |client| {
            let ids = endpoints.to_vec();
            let params: [&dyn Param; 1] = [&ids];
            let rows = self.rows(&*client, MINUTES, &params).await?;
            rows.iter()
                .map(|r| {
                    Ok(Minute {
                        endpoint_id: r.try_get(0)?,
                        minute: r.try_get(1)?,
                        succeeded: r.try_get(2)?,
                        failed: r.try_get(3)?,
                    })
                })
                .collect()
        })
        .await
    }

    /// Deliveries that gave up in the last 24 hours, by endpoint id (only endpoints with some).
    pub async fn console_failed_day(&self, endpoints: &[i64]) -> Result<Vec<(i64, i64)>, DbError> {
        self.with_client(async |client| {
            let ids = endpoints.to_vec();
            let params: [&dyn Param; 1] = [&ids];
            let rows = self.rows(&*client, FAILED_DAY, &params).await?;
            rows.iter().map(|r| Ok((r.try_get(0)?, r.try_get(1)?))).collect()
        })
        .await
    }

    /// p50/p95 attempt durations over the last hour, for these endpoints.
    pub async fn console_latency(&self, endpoints: &[i64]) -> Result<Vec<Latency>, DbError> {
        self.with_client(async |client| {
            let ids = endpoints.to_vec();
            let params: [&dyn Param; 1] = [&ids];
            let rows = self.rows(&*client, LATENCY, &params).await?;
            rows.iter()
                .map(|r| {
                    Ok(Latency {
                        endpoint_id: r.try_get(0)?,
                        p50_ms: r.try_get(1)?,
                        p95_ms: r.try_get(2)?,
                        sampled: r.try_get(3)?,
                    })
                })
                .collect()
        })
        .await
    }

    /// One page of search results: by event id through its unique index,
    /// otherwise newest first reading at most `window` ids per page.
    pub async fn console_search(&self, s: &Search, window: i64, limit: i64) -> Result<Page, DbError> {
        self.with_client(async |client| {
            if let Some(event_id) = &s.event_id {
                let params: [&dyn Param; 8] =
                    [event_id, &s.endpoint, &s.event_type, &s.tenant, &s.status, &s.since, &s.until, &s.owner];
                let rows = self.rows(&*client, SEARCH_EVENT, &params).await?;
                let rows = rows.iter().map(Found::decode).collect::<Result<_, _>>()?;
                return Ok(Page { rows, next_below: None, scanned_to: None });
            }
            let (above, lowest): (i64, i64) = {
                let r = self.one(&*client, BOUNDS, &[]).await?;
                (r.try_get(0)?, r.try_get(1)?)
            };
            // Clamped, so no id a user types makes the arithmetic below overflow.
            let below = s.below.unwrap_or(above).clamp(1, above);
            let params: [&dyn Param; 10] = [
                &s.endpoint,
                &s.event_type,
                &s.tenant,
                &s.status,
                &s.since,
                &s.until,
                &below,
                &window,
                &limit,
                &s.owner,
            ];
            let found = self.rows(&*client, SEARCH, &params).await?;
            let rows: Vec<Found> = found.iter().map(Found::decode).collect::<Result<_, _>>()?;
            let floor = below - window;
            let next_below = match rows.last() {
                Some(last) if rows.len() as i64 >= limit => Some(last.id),
                _ if floor > lowest => Some(floor),
                _ => None,
            };
            Ok(Page { rows, next_below, scanned_to: Some(floor) })
        })
        .await
    }

    /// A delivery with its event and endpoint; `None` when there is none.
    pub async fn console_delivery(
        &self,
        id: i64,
        payload_limit: i32,
        max_payload_bytes: i32,
    ) -> Result<Option<DeliveryView>, DbError> {
        self.with_client(async |client| {
            let params: [&dyn Param; 3] = [&id, &payload_limit, &max_payload_bytes];
            let rows = self.rows(&*client, DELIVERY, &params).await?;
            let Some(r) = rows.first() else { return Ok(None) };
            Ok(Some(DeliveryView {
                id: r.try_get(0)?,
                event_id: r.try_get(1)?,
                event_type: r.try_get(2)?,
                tenant: r.try_get(3)?,
                ordering_key: r.try_get(4)?,
                published_at: r.try_get(5)?,
                endpoint: r.try_get(6)?,
                url: r.try_get(7)?,
                status: r.try_get(8)?,
                attempts: r.try_get(9)?,
                next_attempt_at: r.try_get(10)?,
                in_flight: r.try_get(11)?,
                last_status_code: r.try_get(12)?,
                last_error: r.try_get(13)?,
                created_at: r.try_get(14)?,
                completed_at: r.try_get(15)?,
                payload_bytes: r.try_get(16)?,
                payload: r.try_get(17)?,
                secrets: r.try_get(18)?,
                header_names: r.try_get(19)?,
                transform: r.try_get(20)?,
                payload_text: r.try_get(21)?,
                timestamp: r.try_get(22)?,
                redelivered_by: r.try_get(23)?,
                redelivered_at: r.try_get(24)?,
                redelivery_waiting: r.try_get(25)?,
            }))
        })
        .await
    }

    /// A delivery's attempts, newest first, at most `limit`.
    pub async fn console_attempts(&self, delivery: i64, limit: i64) -> Result<Vec<AttemptView>, DbError> {
        self.with_client(async |client| {
            let params: [&dyn Param; 2] = [&delivery, &limit];
            let rows = self.rows(&*client, ATTEMPTS, &params).await?;
            rows.iter()
                .map(|r| {
                    Ok(AttemptView {
                        attempt: r.try_get(0)?,
                        started_at: r.try_get(1)?,
                        duration_ms: r.try_get(2)?,
                        status_code: r.try_get(3)?,
                        error_kind: r.try_get(4)?,
                        error: r.try_get(5)?,
                        response_body: r.try_get(6)?,
                        requested_by: r.try_get(7)?,
                    })
                })
                .collect()
        })
        .await
    }

    /// Pauses an endpoint for `secs`; returns until when, `None` for an unknown name.
    pub async fn console_pause(&self, endpoint: &str, secs: i32) -> Result<Option<String>, DbError> {
        self.with_client(async |client| {
            let params: [&dyn Param; 2] = [&endpoint, &secs];
            let rows = self.rows(&*client, PAUSE, &params).await?;
            rows.first().map(|r| r.try_get(0)).transpose().map_err(DbError::from)
        })
        .await
    }

    /// The endpoint page's extra facts (`console_endpoint.sql`) as JSON, when
    /// the endpoint is within `tenant` (`None`: any).
    pub async fn console_endpoint(
        &self,
        name: &str,
        tenant: Option<&str>,
    ) -> Result<Option<serde_json::Value>, DbError> {
        self.with_client(async |client| {
            let params: [&dyn Param; 2] = [&name, &tenant];
            let rows = self.rows(&*client, ENDPOINT, &params).await?;
            let Some(row) = rows.first() else { return Ok(None) };
            let text: String = row.try_get(0)?;
            serde_json::from_str(&text)
                .map(Some)
                .map_err(|e| DbError::Url(format!("the database returned invalid JSON: {e}")))
        })
        .await
    }
}
