//! Typed wrappers around the statements of the operator commands (`redeliver --id`, `status`, `send-test`, `demo`), one function per SQL file.

use super::typed::Param;
use super::{Connector, Db, DbError};

const DELIVERIES_MISSING: &str = include_str!("../../sql/queries/deliveries_missing.sql");
const TEST_EVENT: &str = include_str!("../../sql/queries/test_event.sql");
const DEMO_CREATE_DATABASE: &str = include_str!("../../sql/queries/demo_create_database.sql");
const DEMO_DROP_DATABASE: &str = include_str!("../../sql/queries/demo_drop_database.sql");
const DEMO_ADD_ENDPOINT: &str = include_str!("../../sql/queries/demo_add_endpoint.sql");
const DEMO_PUBLISH: &str = include_str!("../../sql/queries/demo_publish.sql");
const DEMO_PROGRESS: &str = include_str!("../../sql/queries/demo_progress.sql");
/// Printed by the demo as the query to inspect the record, and run by it.
pub const DEMO_RECORD: &str = include_str!("../../sql/queries/demo_record.sql");
const ENDPOINT_STATUS: &str = include_str!("../../sql/queries/endpoint_status.sql");
const CAPTURES_LIST: &str = include_str!("../../sql/queries/captures_list.sql");

/// One endpoint's figures for `tailhook status` (see `endpoint_status.sql`).
#[derive(Debug, Clone)]
pub struct EndpointStatus {
    pub name: String,
    pub enabled: bool,
    pub disabled_reason: Option<String>,
    pub invalid_reason: Option<String>,
    /// RFC 3339, only while the pause lasts.
    pub paused_until: Option<String>,
    pub pending: i64,
    pub retrying: i64,
    /// Every failed delivery still in the table.
    pub failed: i64,
    /// Deliveries that finished within the window, by outcome.
    pub failed_in_window: i64,
    pub succeeded_in_window: i64,
    /// Age of the oldest event still pending or retrying to it.
    pub oldest_undelivered_secs: Option<i64>,
    pub id: i64,
}

/// A table captured with `tailhook.capture` (see `captures_list.sql`).
#[derive(Debug, Clone, serde::Serialize)]
pub struct Capture {
    pub table: String,
    pub event_type: String,
    pub operations: Vec<String>,
    /// `None`: every column.
    pub columns: Option<Vec<String>>,
    pub tenant_column: Option<String>,
    pub key_column: String,
}

/// One delivery as the demo shows it (see `demo_progress.sql`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DemoDelivery {
    pub id: i64,
    pub event_type: String,
    pub endpoint: String,
    pub status: String,
    pub attempts: i32,
    pub last_status_code: Option<i32>,
    pub last_error: Option<String>,
    pub retry_in_ms: Option<i64>,
}

impl Db {
    /// The ids among `ids` that name no delivery, in the order given.
    pub async fn deliveries_missing(&self, ids: &[i64]) -> Result<Vec<i64>, DbError> {
        self.with_client(async |client| {
            let ids = ids.to_vec();
            let params: [&dyn Param; 1] = [&ids];
            let rows = self.rows(&*client, DELIVERIES_MISSING, &params).await?;
            rows.iter().map(|r| Ok(r.try_get(0)?)).collect()
        })
        .await
    }

    /// Endpoints' figures by name, those after `after` (`""`: from the
    /// first), at most `limit` (`None`: all); `window` is a PostgreSQL interval.
    pub async fn endpoint_status(
        &self,
        window: &str,
        after: &str,
        limit: Option<i64>,
    ) -> Result<Vec<EndpointStatus>, DbError> {
        self.endpoint_status_of(window, after, limit, None).await
    }

    /// [`Db::endpoint_status`] for one tenant's endpoints only (`None`: every endpoint).
    pub async fn endpoint_status_of(
        &self,
        window: &str,
        after: &str,
        limit: Option<i64>,
        tenant: Option<&str>,
    ) -> Result<Vec<EndpointStatus>, DbError> {
        self.with_client(async |client| {
            let params: [&dyn Param; 4] = [&window, &after, &limit, &tenant];
            let rows = self.rows(&*client, ENDPOINT_STATUS, &params).await?;
            rows.iter()
                .map(|r| {
                    Ok(EndpointStatus {
                        name: r.try_get(0)?,
                        enabled: r.try_get(1)?,
                        disabled_reason: r.try_get(2)?,
                        invalid_reason: r.try_get(3)?,
                        paused_until: r.try_get(4)?,
                        pending: r.try_get(5)?,
                        retrying: r.try_get(6)?,
                        failed: r.try_get(7)?,
                        failed_in_window: r.try_get(8)?,
                        succeeded_in_window: r.try_get(9)?,
                        oldest_undelivered_secs: r.try_get(10)?,
                        id: r.try_get(11)?,
                    })
                })
                .collect()
        })
        .await
    }

    /// The captured tables, by name.
    pub async fn captures(&self) -> Result<Vec<Capture>, DbError> {
        self.with_client(async |client| {
            let rows = self.rows(&*client, CAPTURES_LIST, &[]).await?;
            rows.iter()
                .map(|r| {
                    Ok(Capture {
                        table: r.try_get(0)?,
                        event_type: r.try_get(1)?,
                        operations: r.try_get(2)?,
                        columns: r.try_get(3)?,
                        tenant_column: r.try_get(4)?,
                        key_column: r.try_get(5)?,
                    })
                })
                .collect()
        })
        .await
    }

    /// A fresh event id and the current time (RFC 3339), for `send-test`.
    pub async fn test_event(&self) -> Result<(String, String), DbError> {
        self.with_client(async |client| {
            let row = self.one(&*client, TEST_EVENT, &[]).await?;
            Ok((row.try_get(0)?, row.try_get(1)?))
        })
        .await
    }

    /// Adds an endpoint for every event (`demo_add_endpoint.sql`).
    pub async fn demo_add_endpoint(&self, name: &str, url: &str, secret: &str) -> Result<(), DbError> {
        self.with_client(async |client| {
            self.exec(&*client, DEMO_ADD_ENDPOINT, &[&name, &url, &secret]).await?;
            Ok(())
        })
        .await
    }

    /// Publishes an event; returns its event id.
    pub async fn demo_publish(&self, event_type: &str, payload: &str) -> Result<String, DbError> {
        self.with_client(async |client| {
            Ok(self.one(&*client, DEMO_PUBLISH, &[&event_type, &payload]).await?.try_get(0)?)
        })
        .await
    }

    /// Every delivery, by id.
    pub async fn demo_progress(&self) -> Result<Vec<DemoDelivery>, DbError> {
        self.with_client(async |client| {
            let rows = self.rows(&*client, DEMO_PROGRESS, &[]).await?;
            rows.iter()
                .map(|r| {
                    Ok(DemoDelivery {
                        id: r.try_get(0)?,
                        event_type: r.try_get(1)?,
                        endpoint: r.try_get(2)?,
                        status: r.try_get(3)?,
                        attempts: r.try_get(4)?,
                        last_status_code: r.try_get(5)?,
                        last_error: r.try_get(6)?,
                        retry_in_ms: r.try_get(7)?,
                    })
                })
                .collect()
        })
        .await
    }

    /// The rows of [`DEMO_RECORD`], each column as text (`-` for NULL).
    pub async fn demo_record(&self) -> Result<(Vec<String>, Vec<Vec<String>>), DbError> {
        self.with_client(async |client| {
            let rows = self.rows(&*client, DEMO_RECORD, &[]).await?;
            let header =
                rows.first().map(|r| r.columns().iter().map(|c| c.name().to_owned()).collect()).unwrap_or_default();
            let cells = rows
                .iter()
                .map(|r| {
                    let text = |i: usize| r.try_get::<_, Option<String>>(i).ok().flatten();
                    let int = |i: usize| r.try_get::<_, Option<i32>>(i).ok().flatten().map(|v| v.to_string());
                    [text(0), text(1), text(2), text(3), int(4), int(5), text(6), int(7)]
                        .into_iter()
                        .map(|c| c.unwrap_or_else(|| "-".to_owned()))
                        .collect()
                })
                .collect();
            Ok((header, cells))
        })
        .await
    }
}

/// Creates the demo's database `name` (made by the demo itself, never user
/// input: CREATE DATABASE takes no parameters), as the server's superuser on
/// the database `admin_url` names.
pub async fn demo_create_database(admin_url: &str, name: &str) -> Result<(), DbError> {
    admin(admin_url, &DEMO_CREATE_DATABASE.replace("{database}", name)).await
}

/// Drops the demo's database `name`, and any connection still open to it.
pub async fn demo_drop_database(admin_url: &str, name: &str) -> Result<(), DbError> {
    admin(admin_url, &DEMO_DROP_DATABASE.replace("{database}", name)).await
}

/// Runs one statement as the server's superuser, on the database it came with.
async fn admin(admin_url: &str, sql: &str) -> Result<(), DbError> {
    let (client, connection) = Connector::from_url(admin_url)?.connect().await?;
    let task = tokio::spawn(connection);
    let result = client.batch_execute(sql).await.map_err(DbError::from);
    drop(client);
    let _ = task.await;
    result
}
