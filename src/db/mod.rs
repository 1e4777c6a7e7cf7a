//! PostgreSQL access: the pool, every runtime query (compiled in from `sql/queries`), and their timeouts.

mod migrate;
mod queries;

pub use crate::limits::Rooms;
pub use migrate::{migrate, MIGRATIONS};
pub use queries::{ClaimedRow, EndpointRow, HealthBatch, Lease, ResultBatch, Selection};

use crate::config::DatabaseConfig;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use std::time::Duration;
use tokio_postgres::NoTls;

/// A database failure. Callers decide whether to retry; predicates tell why.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("database unreachable: {0}")]
    Pool(#[from] deadpool_postgres::PoolError),
    #[error("database error: {0}")]
    Query(#[from] tokio_postgres::Error),
    #[error("database did not answer within {0:?}")]
    Timeout(Duration),
    #[error("invalid database url: {0}")]
    Url(String),
    #[error("migration {version} ({name}) failed: {source}")]
    Migration { version: i32, name: &'static str, source: tokio_postgres::Error },
}

impl DbError {
    /// The SQLSTATE code, when PostgreSQL answered with an error.
    pub fn code(&self) -> Option<&str> {
        match self {
            Self::Query(e) | Self::Migration { source: e, .. } => e.code().map(|c| c.code()),
            _ => None,
        }
    }
}

/// Connection settings shared by the pool and the listener.
pub fn pg_config(config: &DatabaseConfig) -> Result<tokio_postgres::Config, DbError> {
    let mut pg: tokio_postgres::Config =
        config.url.expose().parse().map_err(|e: tokio_postgres::Error| DbError::Url(e.to_string()))?;
    if pg.get_application_name().is_none() {
        pg.application_name("tailhook");
    }
    if pg.get_connect_timeout().is_none() {
        pg.connect_timeout(Duration::from_secs(5));
    }
    pg.keepalives(true).keepalives_idle(Duration::from_secs(30));
    Ok(pg)
}

/// The pool of connections used for claims and writes.
#[derive(Clone)]
pub struct Db {
    pool: Pool,
    timeout: Duration,
}

impl Db {
    /// Builds the pool (connections are opened lazily).
    pub fn new(config: &DatabaseConfig) -> Result<Self, DbError> {
        let mut pg = pg_config(config)?;
        // Every statement has a server-side limit, and a client-side one a
        // little longer in case the connection itself stalls.
        let options = format!("-c statement_timeout={}", config.statement_timeout_ms);
        pg.options(&options);
        let manager = Manager::from_config(pg, NoTls, ManagerConfig { recycling_method: RecyclingMethod::Fast });
        let pool = Pool::builder(manager)
            .max_size(config.pool_size)
            .wait_timeout(Some(Duration::from_millis(config.statement_timeout_ms)))
            .create_timeout(Some(Duration::from_secs(10)))
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .build()
            .map_err(|e| DbError::Url(e.to_string()))?;
        Ok(Self { pool, timeout: Duration::from_millis(config.statement_timeout_ms) + Duration::from_secs(5) })
    }

    /// A pooled connection, or an error saying why none could be had.
    pub async fn client(&self) -> Result<deadpool_postgres::Object, DbError> {
        Ok(self.pool.get().await?)
    }

    /// Runs `fut` under the client-side deadline.
    pub async fn timed<T>(&self, fut: impl std::future::Future<Output = Result<T, DbError>>) -> Result<T, DbError> {
        tokio::time::timeout(self.timeout, fut).await.unwrap_or(Err(DbError::Timeout(self.timeout)))
    }

    /// Checks that the database answers.
    pub async fn ping(&self) -> Result<(), DbError> {
        self.timed(async {
            self.client().await?.simple_query("SELECT 1").await?;
            Ok(())
        })
        .await
    }
}
