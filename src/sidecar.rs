//! `run`: starts the sidecar's tasks against one database and stops them gracefully.

use crate::config::Config;
use crate::db::{self, Db, DbError};
use crate::endpoints::EndpointCache;
use crate::guard::AddressPolicy;
use crate::limits::Limits;
use crate::recorder::{self, DueTimer, Record};
use crate::schedule::Backoff;
use crate::sender::Sender;
use crate::throttle::Throttle;
use crate::{claim, listener};
use std::sync::atomic::AtomicI64;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, Notify, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Why `run` could not start (after start-up it never fails).
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("database unreachable after {waited_ms} ms: {source}")]
    Unreachable { waited_ms: u64, source: DbError },
    #[error("{0}")]
    Database(#[from] DbError),
    #[error("cannot build the HTTP client: {0}")]
    Http(#[from] reqwest::Error),
    #[error("{0}")]
    Config(#[from] crate::config::ConfigError),
}

/// The handles every task shares.
pub(crate) struct Ctx {
    pub config: Config,
    pub db: Db,
    /// This process's lease owner name.
    pub replica: String,
    /// The next claim's lease token.
    pub next_lease: AtomicI64,
    pub endpoints: EndpointCache,
    pub sender: Sender,
    pub records: mpsc::Sender<Record>,
    /// Free request slots, over all endpoints.
    pub capacity: Arc<Semaphore>,
    /// Per-endpoint in-flight counts and rate buckets.
    pub limits: Arc<Limits>,
    /// Held by the claim being made (fan-out or due), see `claim.rs`.
    pub claim_lock: tokio::sync::Mutex<()>,
    /// Wakes the fan-out loop (outbox insert, reconnect).
    pub wake: Arc<Notify>,
    pub due: Arc<DueTimer>,
    pub backoff: Backoff,
    /// Stop claiming.
    pub shutdown: CancellationToken,
    /// Grace period over: drop requests still in flight.
    pub abandon: CancellationToken,
    pub tracker: TaskTracker,
}

/// A name for this process's leases: host, pid and a random part.
fn replica_name() -> String {
    let host = std::fs::read_to_string("/etc/hostname").map(|h| h.trim().to_owned()).unwrap_or_default();
    format!("{}-{}-{:08x}", if host.is_empty() { "tailhook" } else { &host }, std::process::id(), rand::random::<u32>())
}

/// Waits for the database at start-up, saying so at most once a second.
async fn connect(config: &Config) -> Result<Db, RunError> {
    let db = Db::new(&config.database)?;
    let throttle = Throttle::new(Duration::from_secs(1));
    let start = tokio::time::Instant::now();
    let limit = Duration::from_millis(config.database.startup_timeout_ms);
    loop {
        match db.ping().await {
            Ok(()) => return Ok(db),
            Err(source) if start.elapsed() >= limit => {
                return Err(RunError::Unreachable { waited_ms: config.database.startup_timeout_ms, source })
            }
            Err(error) => {
                if throttle.allow().is_some() {
                    tracing::warn!(%error, url = %config.database.url.redacted(), "database unreachable; retrying");
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        }
    }
}

/// Runs the sidecar until `shutdown` is cancelled, then stops gracefully:
/// no new claims, in-flight requests get `delivery.shutdown_grace_ms`,
/// results are written and leases not used are released.
pub async fn run(config: Config, shutdown: CancellationToken) -> Result<(), RunError> {
    let db = connect(&config).await?;
    if config.database.auto_migrate {
        let mut client = db.client().await?;
        let applied = db::migrate(&mut client).await?;
        if !applied.is_empty() {
            tracing::info!(?applied, "migrations applied");
        }
    }
    let resolved = config
        .endpoints
        .iter()
        .enumerate()
        .map(|(i, e)| e.resolve(i, config.delivery.https_only))
        .collect::<Result<Vec<_>, _>>()?;
    db.sync_config_endpoints(&resolved).await?;

    let policy = AddressPolicy {
        allow_private_networks: config.delivery.allow_private_networks,
        allowed: config.allowed_cidrs(),
    };
    let endpoints = EndpointCache::new(config.delivery.clone());
    endpoints.refresh(&db).await?;
    let (records, records_rx) = mpsc::channel(config.delivery.concurrency.max(64));
    let replica = replica_name();
    let due = Arc::new(DueTimer::default());
    let ctx = Arc::new(Ctx {
        limits: Arc::new(Limits::new(config.delivery.max_in_flight, due.clone())),
        claim_lock: tokio::sync::Mutex::new(()),
        sender: Sender::new(&config.delivery, policy)?,
        capacity: Arc::new(Semaphore::new(config.delivery.concurrency)),
        backoff: Backoff { initial_ms: config.delivery.backoff_initial_ms, max_ms: config.delivery.backoff_max_ms },
        wake: Arc::new(Notify::new()),
        due,
        shutdown: shutdown.clone(),
        abandon: CancellationToken::new(),
        tracker: TaskTracker::new(),
        records,
        endpoints,
        replica: replica.clone(),
        next_lease: AtomicI64::new(1),
        db: db.clone(),
        config,
    });
    tracing::info!(replica = %ctx.replica, endpoints = ctx.endpoints.enabled_count(), "tailhook running");

    let recorder = tokio::spawn({
        let (db, replica, due, abandon) = (db.clone(), replica.clone(), ctx.due.clone(), ctx.abandon.clone());
        let delivery = ctx.config.delivery.clone();
        async move { recorder::run(db, replica, &delivery, records_rx, &due, abandon).await }
    });
    let listener = ctx.config.database.listen.then(|| {
        let pg = db::pg_config(&ctx.config.database);
        let (wake, stop) = (ctx.wake.clone(), shutdown.clone());
        tokio::spawn(async move {
            match pg {
                Ok(pg) => listener::run(pg, wake, stop).await,
                Err(e) => tracing::error!(error = %e, "cannot LISTEN; polling only"),
            }
        })
    });
    let refresher = tokio::spawn(refresh_endpoints(ctx.clone()));
    let fan_out = tokio::spawn(claim::fan_out_loop(ctx.clone()));
    let due = tokio::spawn(claim::due_loop(ctx.clone()));
    ctx.wake.notify_one();

    shutdown.cancelled().await;
    tracing::info!("shutting down: no new claims");
    let _ = tokio::join!(fan_out, due, refresher);
    if let Some(l) = listener {
        let _ = l.await;
    }
    ctx.tracker.close();
    let grace = Duration::from_millis(ctx.config.delivery.shutdown_grace_ms);
    if tokio::time::timeout(grace, ctx.tracker.wait()).await.is_err() {
        tracing::warn!(in_flight = ctx.tracker.len(), "grace period over; abandoning requests still in flight");
        ctx.abandon.cancel();
        ctx.tracker.wait().await;
    }
    // Every worker has finished; dropping the last handle closes the channel
    // and the recorder exits after writing what it holds.
    let abandon = ctx.abandon.clone();
    drop(ctx);
    let abandon_later = tokio::spawn(async move {
        tokio::time::sleep(grace).await;
        abandon.cancel();
    });
    let _ = recorder.await;
    abandon_later.abort();
    let release = tokio::time::timeout(Duration::from_secs(5), db.release_all(&replica)).await;
    match release.unwrap_or(Err(DbError::Timeout(Duration::from_secs(5)))) {
        Ok(0) => {}
        Ok(n) => tracing::info!(released = n, "released unfinished leases"),
        Err(error) => tracing::warn!(%error, "cannot release leases; they expire on their own"),
    }
    tracing::info!("stopped");
    Ok(())
}

/// Notices endpoint changes made with SQL within a second.
async fn refresh_endpoints(ctx: Arc<Ctx>) {
    let throttle = Throttle::new(Duration::from_secs(10));
    loop {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = ctx.shutdown.cancelled() => return,
        }
        match ctx.endpoints.refresh(&ctx.db).await {
            Ok(true) => tracing::info!(enabled = ctx.endpoints.enabled_count(), "endpoints reloaded"),
            Ok(false) => {}
            Err(error) => {
                if let Some(skipped) = throttle.allow() {
                    tracing::warn!(%error, skipped, "cannot reload endpoints");
                }
            }
        }
    }
}
