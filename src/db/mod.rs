//! PostgreSQL access: connection settings (TLS, keepalives), the pool, every runtime query (compiled in from `sql/queries`), and their deadlines.
//!
//! No start-up `options` (PgBouncer refuses them), so it works directly and
//! through PgBouncer in session or transaction mode. Each new connection's
//! `search_path` is set to `pg_catalog, pg_temp` (one `SET`), and named
//! prepared statements are cached per connection, unless
//! `database.prepared_statements = false` (a transaction-mode pooler, where
//! no session state may be left: there the statements themselves name only
//! built-ins that win over any look-alike; see `typed.rs`). Each operation has one client-side deadline
//! (`database.statement_timeout_ms`); when it passes, the server is asked to
//! cancel the statement and the connection is dropped, never pooled again.

mod console;
pub(crate) mod listener;
pub mod local_pg;
mod manage;
mod migrate;
mod operator;
mod partitions;
mod queries;
mod retention;
pub mod tls;
mod typed;

pub use console::{AttemptView, DeliveryView, Found, Latency, Minute, Page, Search};
pub use manage::{EndpointFilter, TokenInfo};
pub use migrate::{
    migrate, partitioned, pending, print_sql, skips_once_partitioned, statements, MIGRATIONS, OUTSIDE_A_TRANSACTION,
    SKIP_ONCE_PARTITIONED, STEP_MARKER,
};
pub use operator::{demo_create_database, demo_drop_database, Capture, DemoDelivery, EndpointStatus, DEMO_RECORD};
pub use partitions::{Dropped, Prepared};
pub use queries::{
    ClaimedRow, EndpointFields, EndpointRow, EventAt, HealthBatch, HealthChanges, Lease, ResultBatch, Rooms, Selection,
};
pub use retention::{Ages, OutboxStep, Removed};

use crate::config::DatabaseConfig;
use deadpool_postgres::{ClientWrapper, Hook, HookError, Manager, ManagerConfig, Object, Pool, RecyclingMethod};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tls::{MakeRustls, RustlsStream};
use tokio_postgres::{Client, Connection, Socket};

/// A database failure. Callers decide whether to retry; predicates tell why.
/// Shown with PostgreSQL's own message and SQLSTATE, never its DETAIL (which
/// can hold a copy of the row, secrets included).
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("database unreachable: {}", describe_pool(.0))]
    Pool(#[from] deadpool_postgres::PoolError),
    #[error("database error: {}", describe(.0))]
    Query(#[from] tokio_postgres::Error),
    #[error("database did not answer within {0:?}")]
    Timeout(Duration),
    #[error("invalid database url: {0}")]
    Url(String),
    #[error("migration {version} ({name}) failed: {}", describe(.source))]
    Migration { version: i32, name: &'static str, source: tokio_postgres::Error },
}

/// A named prepared statement that already exists (42P05) or has vanished
/// (26000): tailhook prepares statements only through the driver, under
/// names unique per process, so these come from a transaction-mode pooler
/// handing one server connection to several clients.
const POOLER_CODES: [&str; 2] = ["42P05", "26000"];

const POOLER_HINT: &str = "; this happens behind a transaction-mode pooler (PgBouncer pool_mode = transaction), \
     where prepared statements cannot be cached: set database.prepared_statements = false \
     (TAILHOOK_DATABASE__PREPARED_STATEMENTS=false)";

/// PostgreSQL's message and SQLSTATE for an error it sent (with the setting
/// that fixes it when only a transaction-mode pooler can cause it); otherwise the
/// driver's words with their causes (e.g. `error connecting to server:
/// Connection refused`).
pub fn describe(e: &tokio_postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        let code = db.code().code();
        let hint = if POOLER_CODES.contains(&code) { POOLER_HINT } else { "" };
        return format!("{} (SQLSTATE {code}){hint}", db.message());
    }
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

fn describe_pool(e: &deadpool_postgres::PoolError) -> String {
    match e {
        deadpool_postgres::PoolError::Backend(e) => describe(e),
        other => other.to_string(),
    }
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

/// How to open a connection: tokio-postgres's settings plus the TLS they
/// need. Shared by the pool, the LISTEN connection and the commands.
#[derive(Clone, Debug)]
pub struct Connector {
    pub pg: tokio_postgres::Config,
    pub tls: MakeRustls,
}

/// An open connection that must be polled (spawned) for the client to work.
pub type PgConnection = Connection<Socket, RustlsStream<Socket>>;

impl Connector {
    /// A connection string (URL or key=value) with libpq's TLS keys.
    pub fn from_url(url: &str) -> Result<Self, DbError> {
        let (rest, params) = crate::config::conninfo::split(url).map_err(DbError::Url)?;
        let mut pg: tokio_postgres::Config =
            rest.parse().map_err(|e: tokio_postgres::Error| DbError::Url(e.to_string()))?;
        pg.ssl_mode(match params.mode {
            crate::config::conninfo::SslMode::Disable => tokio_postgres::config::SslMode::Disable,
            crate::config::conninfo::SslMode::Prefer => tokio_postgres::config::SslMode::Prefer,
            _ => tokio_postgres::config::SslMode::Require,
        });
        if pg.get_application_name().is_none() {
            pg.application_name("tailhook");
        }
        if pg.get_connect_timeout().is_none() {
            pg.connect_timeout(Duration::from_secs(5));
        }
        let tls = MakeRustls::new(&params).map_err(DbError::Url)?;
        Ok(Self { pg, tls })
    }

    /// The configured connection string, with the `[database]` keepalive and
    /// user-timeout settings (they take precedence over the URL's).
    pub fn new(config: &DatabaseConfig) -> Result<Self, DbError> {
        let mut connector = Self::from_url(config.url.expose())?;
        connector
            .pg
            .keepalives(true)
            .keepalives_idle(Duration::from_millis(config.keepalive_idle_ms))
            .keepalives_interval(Duration::from_millis(config.keepalive_interval_ms))
            .keepalives_retries(config.keepalive_retries);
        if config.tcp_user_timeout_ms > 0 {
            connector.pg.tcp_user_timeout(Duration::from_millis(config.tcp_user_timeout_ms));
        }
        Ok(connector)
    }

    /// Opens one connection outside the pool. tokio-postgres's
    /// `connect_timeout` covers only the TCP connect; this bounds the TLS and
    /// start-up exchange too, which a half-open path would otherwise stall forever.
    pub async fn connect(&self) -> Result<(Client, PgConnection), DbError> {
        let limit = HANDSHAKE_LIMIT + self.pg.get_connect_timeout().copied().unwrap_or_default();
        match tokio::time::timeout(limit, self.pg.connect(self.tls.clone())).await {
            Ok(result) => Ok(result?),
            Err(_) => Err(DbError::Timeout(limit)),
        }
    }
}

/// The pool of connections used for claims and writes.
#[derive(Clone)]
pub struct Db {
    pool: Pool,
    tls: MakeRustls,
    timeout: Duration,
    /// `database.prepared_statements`: see `typed.rs`.
    prepared: bool,
    /// Rows fanned out through this pool, for [`Db::replan_as_tables_grow`].
    fanned_out: Arc<AtomicU64>,
}

/// Prepared statements are planned afresh when the rows fanned out reach a
/// power of two from `1 << REPLAN_FROM` to `1 << REPLAN_UNTIL`.
const REPLAN_FROM: u32 = 10;
const REPLAN_UNTIL: u32 = 20;

/// Whether going from `before` to `after` rows reaches one of those powers.
fn reaches_a_replan(before: u64, after: u64) -> bool {
    after > 0 && {
        let power = 1u64 << after.ilog2().min(REPLAN_UNTIL);
        before < power && power >= 1 << REPLAN_FROM
    }
}

/// Sets the session's search_path to `pg_catalog, pg_temp`.
pub(crate) const SESSION_SEARCH_PATH: &str = include_str!("../../sql/queries/session_search_path.sql");

/// How long TLS and start-up may take once the TCP connection is open.
const HANDSHAKE_LIMIT: Duration = Duration::from_secs(5);

/// How long a cancel request for a statement past its deadline may take.
const CANCEL_LIMIT: Duration = Duration::from_secs(5);

impl Db {
    /// Builds the pool (connections are opened lazily).
    pub fn new(config: &DatabaseConfig) -> Result<Self, DbError> {
        let connector = Connector::new(config)?;
        let timeout = Duration::from_millis(config.statement_timeout_ms);
        let create_timeout = HANDSHAKE_LIMIT + connector.pg.get_connect_timeout().copied().unwrap_or_default();
        let manager = Manager::from_config(
            connector.pg,
            connector.tls.clone(),
            ManagerConfig { recycling_method: RecyclingMethod::Fast },
        );
        let mut builder = Pool::builder(manager);
        if config.prepared_statements {
            builder = builder.post_create(Hook::async_fn(|client: &mut ClientWrapper, _| {
                Box::pin(async move { client.batch_execute(SESSION_SEARCH_PATH).await.map_err(HookError::Backend) })
            }));
        }
        let pool = builder
            .max_size(config.pool_size)
            // The connection given back last: at low rates one warm server
            // process serves the claims instead of each in turn (measured at
            // 1,000 events/s: 16 % less PostgreSQL CPU per event).
            .queue_mode(deadpool_postgres::QueueMode::Lifo)
            .wait_timeout(Some(timeout))
            .create_timeout(Some(create_timeout))
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .build()
            .map_err(|e| DbError::Url(e.to_string()))?;
        Ok(Self { pool, tls: connector.tls, timeout, prepared: config.prepared_statements, fanned_out: Arc::default() })
    }

    /// A prepared statement keeps the generic plan PostgreSQL made for it
    /// from the table sizes of that moment, until the tables' statistics
    /// change (an ANALYZE, usually autovacuum's, which may be off or far
    /// behind). A plan made while the outbox was nearly empty reads whole
    /// tables (a sequential scan and a hash join where a primary-key probe
    /// belongs), and each claim and result write then costs more with every
    /// row the tables gain: measured, a one-row fan-out planned on an empty
    /// outbox took 2.8 ms once the outbox held 20,000 rows, 0.3 ms planned
    /// afresh. So each time the rows fanned out through this pool reach a
    /// power of two from 1,024 to 1,048,576, every connection's statements
    /// are prepared again, and planned for the tables as they are by then:
    /// 11 times in a process's life, a few milliseconds each.
    fn replan_as_tables_grow(&self, rows: u64) {
        let before = self.fanned_out.fetch_add(rows, Ordering::Relaxed);
        if self.prepared && reaches_a_replan(before, before + rows) {
            tracing::debug!(fanned_out = before + rows, "tables grew: preparing statements afresh");
            self.pool.manager().statement_caches.clear();
        }
    }

    /// A pooled connection, or an error saying why none could be had. No
    /// deadline: for migrations, which may rightly take long.
    pub async fn client(&self) -> Result<Object, DbError> {
        Ok(self.pool.get().await?)
    }

    /// Runs `work` on a pooled connection under the client-side deadline
    /// (taking the connection counts). Past the deadline the statement is
    /// cancelled on the server and the connection is dropped, not pooled: a
    /// connection that did not answer in time may be dead (a half-open TCP
    /// connection after a network partition) and must not be handed out again.
    pub async fn with_client<T>(
        &self,
        work: impl AsyncFnOnce(&mut Object) -> Result<T, DbError>,
    ) -> Result<T, DbError> {
        let deadline = tokio::time::Instant::now() + self.timeout;
        let mut client = match tokio::time::timeout_at(deadline, self.pool.get()).await {
            Ok(client) => client?,
            Err(_) => return Err(DbError::Timeout(self.timeout)),
        };
        match tokio::time::timeout_at(deadline, work(&mut client)).await {
            Ok(result) => result,
            Err(_) => {
                self.abandon(client);
                Err(DbError::Timeout(self.timeout))
            }
        }
    }

    /// Takes a connection out of the pool for good, after asking the server
    /// (in the background, bounded) to cancel whatever it is running.
    /// The pool's idle connections are dropped too: one that stopped
    /// answering most likely shares a dead path with the rest (a partition,
    /// a failover), and each would cost a full deadline to find out.
    fn abandon(&self, client: Object) {
        self.pool.retain(|_, _| false);
        let cancel = client.cancel_token();
        let client = Object::take(client);
        let tls = self.tls.clone();
        tokio::spawn(async move {
            let _ = tokio::time::timeout(CANCEL_LIMIT, cancel.cancel_query(tls)).await;
            drop(client);
        });
    }

    /// Checks that the database answers.
    pub async fn ping(&self) -> Result<(), DbError> {
        self.with_client(async |client| {
            client.simple_query("SELECT 1").await?;
            Ok(())
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_are_planned_afresh_at_each_power_of_two_from_1024_to_1048576() {
        let mut replans = Vec::new();
        let mut total = 0;
        for step in [1, 1000, 23, 1, 1023, 3000, 5000, 1 << 20, 1 << 22] {
            if reaches_a_replan(total, total + step) {
                replans.push(total + step);
            }
            total += step;
        }
        // 1,024; 2,048; 4,096 and 8,192 together; then 1,048,576 (the last).
        assert_eq!(replans, [1024, 2048, 5048, 10048, 10048 + (1 << 20)]);
        assert!(!reaches_a_replan(0, 0));
        assert!(!reaches_a_replan(1 << 21, (1 << 21) + 5000), "none past 1,048,576");
    }

    #[test]
    fn keepalive_and_user_timeout_come_from_the_config() {
        let url = crate::config::secret::DatabaseUrl::new("postgres://u@h/db?keepalives_idle=7200&sslmode=disable");
        let config = DatabaseConfig { url, ..Default::default() };
        let pg = Connector::new(&config).unwrap().pg;
        assert!(pg.get_keepalives());
        assert_eq!(pg.get_keepalives_idle(), Duration::from_secs(30));
        assert_eq!(pg.get_keepalives_interval(), Some(Duration::from_secs(10)));
        assert_eq!(pg.get_keepalives_retries(), Some(3));
        assert_eq!(pg.get_tcp_user_timeout(), Some(&Duration::from_secs(30)));
        assert_eq!(pg.get_application_name(), Some("tailhook"));
        assert_eq!(pg.get_connect_timeout(), Some(&Duration::from_secs(5)));
        assert_eq!(pg.get_options(), None, "no start-up options: PgBouncer refuses them");
    }
}
