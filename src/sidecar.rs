//! `run`: starts the sidecar's tasks against one database and stops them gracefully.

use crate::config::secret::Secret;
use crate::config::Config;
use crate::db::listener::{self, Wake};
use crate::db::{self, Db, DbError};
use crate::guard::AddressPolicy;
use crate::log_throttle::Throttle;
use crate::metrics::Metrics;
use crate::pipeline::endpoints::EndpointCache;
use crate::pipeline::limits::Limits;
use crate::pipeline::recorder::{self, DueTimer, Record, Stall};
use crate::pipeline::sender::Sender;
use crate::pipeline::trace::Tracer;
use crate::pipeline::{claim, worker, Ctx, LogLines};
use crate::retention;
use crate::serve::{self, console::Console, Probes};
use crate::transform::Transforms;
use std::sync::atomic::{AtomicBool, AtomicI64};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Why `run` could not start (after start-up it never fails).
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("database unreachable after {waited_ms} ms: {source}")]
    Unreachable { waited_ms: u64, source: DbError },
    #[error("{0}")]
    Database(#[from] DbError),
    #[error("{0}")]
    Sender(#[from] crate::pipeline::sender::SenderError),
    #[error("{0}")]
    Config(#[from] crate::config::ConfigError),
    #[error("{0}")]
    Tracing(#[from] crate::pipeline::trace::TracerError),
    #[error("cannot listen on {addr} (config key `server.listen`; \"\" turns the listener off): {source}")]
    Listen { addr: std::net::SocketAddr, source: std::io::Error },
    /// A task that runs for the process's whole life ended (it panicked, or
    /// returned early): the sidecar stopped rather than run half-dead.
    #[error("stopped: {0}")]
    TaskEnded(String),
}

/// A name for this process's leases: host, pid and a random part.
fn replica_name() -> String {
    let host = std::fs::read_to_string("/etc/hostname").map(|h| h.trim().to_owned()).unwrap_or_default();
    format!("{}-{}-{:08x}", if host.is_empty() { "tailhook" } else { &host }, std::process::id(), rand::random::<u32>())
}

/// Waits for the database at start-up, saying so at most once a second;
/// `None` when `shutdown` comes first (a stop asked for while waiting).
async fn connect(config: &Config, shutdown: &CancellationToken) -> Result<Option<Db>, RunError> {
    let db = Db::new(&config.database)?;
    let throttle = Throttle::new(Duration::from_secs(1));
    let start = tokio::time::Instant::now();
    let limit = Duration::from_millis(config.database.startup_timeout_ms);
    loop {
        let answered = tokio::select! {
            answered = db.ping() => answered,
            _ = shutdown.cancelled() => return Ok(None),
        };
        match answered {
            Ok(()) => return Ok(Some(db)),
            Err(source) if start.elapsed() >= limit => {
                return Err(RunError::Unreachable { waited_ms: config.database.startup_timeout_ms, source })
            }
            Err(error) => {
                if throttle.allow().is_some() {
                    tracing::warn!(%error, url = %config.database.url.redacted(), "database unreachable; retrying");
                }
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(250)) => {}
                    _ = shutdown.cancelled() => return Ok(None),
                }
            }
        }
    }
}

/// Runs the sidecar until `shutdown` is cancelled, then stops gracefully:
/// no new claims, in-flight requests get `delivery.shutdown_grace_ms`,
/// results are written and leases not used are released.
pub async fn run(config: Config, shutdown: CancellationToken) -> Result<(), RunError> {
    // Cancelled by the caller's `shutdown`, or when a task ends unexpectedly.
    let stop = shutdown.child_token();
    let admin_token = if config.server.console { config.server.admin_token()? } else { None };
    let portal_key = if config.server.console { config.server.portal_key()? } else { None };
    let portal_key = portal_key.as_ref().map(crate::manage::portal::LinkKey::derive);
    // Bound first: a busy port is a start-up error naming the key.
    let http = match config.server.address() {
        Some(addr) => {
            Some(tokio::net::TcpListener::bind(addr).await.map_err(|source| RunError::Listen { addr, source })?)
        }
        None => None,
    };
    let Some(db) = connect(&config, &shutdown).await? else {
        tracing::info!("stopped before the database answered");
        return Ok(());
    };
    let (ctx, records_rx) = start(config, db, stop.clone()).await?;
    // The key `tailhook.portal_link` signs with. A replica without one (or
    // with the console off) leaves the stored key alone: removing it is
    // `tailhook.set_portal_key(NULL)`, by hand (docs/guide/portal.md).
    if let Some(key) = &portal_key {
        if let Err(error) = ctx.db.portal_set_key(&key.hex()).await {
            tracing::warn!(%error, "cannot store the portal link key: tailhook.portal_link will not sign with this key");
        }
    }
    let mut running = spawn(&ctx, records_rx, http, admin_token, portal_key)?;

    // Every task runs until `stop`; one that ends sooner stops the sidecar.
    // Biased: tasks end because `stop` was cancelled, and that comes first.
    let ended = tokio::select! {
        biased;
        _ = stop.cancelled() => None,
        ended = running.tasks.next_end() => Some(ended),
        result = &mut running.recorder => {
            running.recorder_done = true;
            Some(describe_end("recorder", result))
        }
    };
    if let Some(why) = &ended {
        tracing::error!(task = %why, "a task of the sidecar ended unexpectedly; stopping so the process can be restarted");
        stop.cancel();
    }
    shut_down(ctx, running).await;
    match ended {
        Some(why) => Err(RunError::TaskEnded(why)),
        None => Ok(()),
    }
}

/// Migrates when asked to, upserts the config file's endpoints, loads them
/// all, writes the first heartbeat and builds the pipeline's context; also
/// returns the receiving end of the workers' results, for the recorder.
async fn start(
    config: Config,
    db: Db,
    stop: CancellationToken,
) -> Result<(Arc<Ctx>, mpsc::Receiver<Record>), RunError> {
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
    let keys = config.secrets.keys()?;
    if let Some(key) = keys.sealing_id() {
        tracing::info!(key, "endpoint secrets and header values are sealed at rest");
    }
    db.sync_config_endpoints(&resolved, &keys).await?;

    let policy = AddressPolicy {
        allow_private_networks: config.delivery.allow_private_networks,
        allowed: config.allowed_cidrs(),
    };
    let transforms = Arc::new(Transforms::new(&config.transform, config.delivery.max_payload_bytes));
    let endpoints = EndpointCache::new(config.delivery.clone(), transforms.clone(), keys);
    endpoints.refresh(&db).await?;
    let replica = replica_name();
    db.heartbeat(&replica).await?;
    let (records, records_rx) = mpsc::channel(config.delivery.concurrency.max(64));
    let due = Arc::new(DueTimer::default());
    let metrics = Arc::new(Metrics::new());
    let tracer = Arc::new(Tracer::start(config.tracing.resolve()?, &config.tracing, metrics.clone())?);
    let ctx = Arc::new(Ctx {
        limits: Arc::new(Limits::new(config.delivery.max_in_flight, config.delivery.concurrency as u32, due.clone())),
        claim_lock: tokio::sync::Mutex::new(()),
        sender: Sender::new(&config.delivery, policy)?,
        transforms,
        capacity: Arc::new(Semaphore::new(config.delivery.concurrency)),
        wake: Arc::new(Wake::default()),
        due,
        stall: Arc::new(Stall::new(worker::record_reserve(config.delivery.lease_margin_ms))),
        shutdown: stop,
        abandon: CancellationToken::new(),
        tracker: TaskTracker::new(),
        metrics,
        log_lines: LogLines::default(),
        tracer,
        records,
        endpoints,
        replica,
        next_lease: AtomicI64::new(1),
        db,
        config,
    });
    tracing::info!(replica = %ctx.replica, endpoints = ctx.endpoints.enabled_count(), "tailhook running");
    if ctx.endpoints.all().is_empty() {
        tracing::info!(
            "no endpoints yet: add one with SQL (INSERT INTO tailhook.endpoints (name, url) VALUES ('mine', 'https://...')) \
             or an [[endpoints]] entry in config.toml; events published meanwhile are dispatched to no one"
        );
    }
    Ok((ctx, records_rx))
}

/// What runs: the recorder on its own (it outlives the other tasks at
/// shutdown), and every other long-running task by name.
struct Running {
    recorder: tokio::task::JoinHandle<()>,
    /// The recorder's handle was awaited already (it ended unexpectedly).
    recorder_done: bool,
    /// Not the workers' `abandon`: results already known are written even
    /// when a request outlives the grace period (see [`shut_down`]).
    give_up_recording: CancellationToken,
    tasks: Tasks,
}

/// Spawns the recorder, the LISTEN connection, the HTTP listener (with the
/// console when it is on), the heartbeat, the log summary, the endpoint
/// refresher, both claim loops, partition maintenance and retention; then
/// wakes the claims.
fn spawn(
    ctx: &Arc<Ctx>,
    records_rx: mpsc::Receiver<Record>,
    http: Option<tokio::net::TcpListener>,
    admin_token: Option<Secret>,
    portal_key: Option<crate::manage::portal::LinkKey>,
) -> Result<Running, RunError> {
    let stop = &ctx.shutdown;
    let db = &ctx.db;
    let give_up_recording = CancellationToken::new();
    let recorder = tokio::spawn(recorder::run(
        recorder::Recorder {
            db: db.clone(),
            replica: ctx.replica.clone(),
            delivery: ctx.config.delivery.clone(),
            due: ctx.due.clone(),
            stall: ctx.stall.clone(),
            metrics: ctx.metrics.clone(),
            tracer: ctx.tracer.clone(),
        },
        records_rx,
        give_up_recording.clone(),
    ));
    let mut tasks = Tasks::default();
    let listening = Arc::new(AtomicBool::new(false));
    if ctx.config.database.listen {
        let pg = db::Connector::new(&ctx.config.database)?;
        tasks.spawn("listener", listener::run(pg, ctx.wake.clone(), listening.clone(), stop.clone()));
    }
    if let Some(http) = http {
        let probes = Probes::new(
            db.clone(),
            ctx.config.database.listen,
            listening,
            ctx.metrics.clone(),
            ctx.config.server.allowed_hosts.clone(),
        );
        let console = ctx.config.server.console.then(|| {
            let due = ctx.due.clone();
            let kick = Arc::new(move || due.schedule(Duration::ZERO));
            let console =
                Console::new(db.clone(), Arc::new(ctx.config.clone()), admin_token, kick, ctx.transforms.clone());
            Arc::new(console.with_portal(portal_key))
        });
        let due = ctx.due.clone();
        let kick = Arc::new(move || due.schedule(Duration::ZERO));
        let api = Arc::new(serve::api::Api::new(db.clone(), Arc::new(ctx.config.clone()), kick));
        tasks.spawn("http listener", serve::serve(http, Arc::new(probes), console, Some(api), stop.clone()));
    }
    tasks.spawn("heartbeat", heartbeat(ctx.clone()));
    tasks.spawn("secret retirement", crate::manage::endpoints::retire_secrets(db.clone(), stop.clone()));
    tasks.spawn("log summary", summarize(ctx.clone()));
    tasks.spawn("endpoint refresher", refresh_endpoints(ctx.clone()));
    tasks.spawn("fan-out claims", claim::fan_out_loop(ctx.clone()));
    tasks.spawn("due claims", claim::due_loop(ctx.clone()));
    if let Ok(width) = ctx.config.retention.partition_width() {
        let metrics = ctx.metrics.clone();
        tasks.spawn("partitions", crate::partitions::run(db.clone(), width, metrics, stop.clone()));
    }
    if ctx.config.retention.enabled {
        let (config, metrics) = (ctx.config.retention.clone(), ctx.metrics.clone());
        tasks.spawn("retention", retention::run(db.clone(), config, metrics, stop.clone()));
    }
    ctx.wake.staged();
    Ok(Running { recorder, recorder_done: false, give_up_recording, tasks })
}

/// After `stop`: waits for the tasks (no new claims), gives requests in
/// flight `delivery.shutdown_grace_ms` and then abandons them, lets the
/// recorder write what it holds, releases unused leases and removes this
/// replica's heartbeat.
async fn shut_down(ctx: Arc<Ctx>, mut running: Running) {
    tracing::info!("shutting down: no new claims");
    running.tasks.wait_all().await;
    ctx.tracker.close();
    let grace = Duration::from_millis(ctx.config.delivery.shutdown_grace_ms);
    if tokio::time::timeout(grace, ctx.tracker.wait()).await.is_err() {
        tracing::warn!(in_flight = ctx.tracker.len(), "grace period over; abandoning requests still in flight");
        ctx.abandon.cancel();
        ctx.tracker.wait().await;
    }
    // Every worker has finished; dropping the last handle closes the channel
    // and the recorder exits after writing what it holds, retrying database
    // errors for one grace period and one statement deadline at most.
    let recording = grace + Duration::from_millis(ctx.config.database.statement_timeout_ms);
    let (db, replica) = (ctx.db.clone(), ctx.replica.clone());
    drop(ctx);
    let give_up_recording = running.give_up_recording;
    let give_up_later = tokio::spawn(async move {
        tokio::time::sleep(recording).await;
        give_up_recording.cancel();
    });
    if !running.recorder_done {
        let _ = running.recorder.await;
    }
    give_up_later.abort();
    let release = tokio::time::timeout(Duration::from_secs(5), db.release_all(&replica)).await;
    match release.unwrap_or(Err(DbError::Timeout(Duration::from_secs(5)))) {
        Ok(0) => {}
        Ok(n) => tracing::info!(released = n, "released unfinished leases"),
        Err(error) => tracing::warn!(%error, "cannot release leases; they expire on their own"),
    }
    if let Err(error) = db.leave(&replica).await {
        tracing::debug!(%error, "cannot remove this replica's heartbeat row; it is pruned later");
    }
    tracing::info!("stopped");
}

/// The sidecar's long-running tasks, by name.
#[derive(Default)]
struct Tasks {
    set: tokio::task::JoinSet<()>,
    names: std::collections::HashMap<tokio::task::Id, &'static str>,
}

impl Tasks {
    fn spawn(&mut self, name: &'static str, task: impl std::future::Future<Output = ()> + Send + 'static) {
        let id = self.set.spawn(task).id();
        self.names.insert(id, name);
    }

    /// Waits for the first task to end; says which and how. Pending forever
    /// when there is none.
    async fn next_end(&mut self) -> String {
        match self.set.join_next_with_id().await {
            Some(Ok((id, ()))) => describe_end(self.name(id), Ok(())),
            Some(Err(e)) => {
                let name = self.name(e.id());
                describe_end(name, Err(e))
            }
            None => std::future::pending().await,
        }
    }

    fn name(&self, id: tokio::task::Id) -> &'static str {
        self.names.get(&id).copied().unwrap_or("a task")
    }

    async fn wait_all(&mut self) {
        while self.set.join_next().await.is_some() {}
    }
}

/// `task `name` panicked: message`, or `task `name` returned`.
fn describe_end(name: &str, result: Result<(), tokio::task::JoinError>) -> String {
    match result {
        Ok(()) => format!("task `{name}` returned"),
        Err(e) if e.is_panic() => {
            let payload = e.into_panic();
            let message = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "no message".into());
            format!("task `{name}` panicked: {message}")
        }
        Err(_) => format!("task `{name}` was cancelled"),
    }
}

/// How often this replica says it is alive; see `db::REPLICA_TIMEOUT_MS` for
/// when others take its leases over once it stops.
const HEARTBEAT: Duration = Duration::from_millis(500);

/// Keeps this replica's heartbeat fresh, on its own so that slow requests
/// never make a live replica look dead.
async fn heartbeat(ctx: Arc<Ctx>) {
    let throttle = Throttle::new(Duration::from_secs(10));
    let mut every = tokio::time::interval(HEARTBEAT);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = every.tick() => {}
            _ = ctx.shutdown.cancelled() => return,
        }
        if let Err(error) = ctx.db.heartbeat(&ctx.replica).await {
            ctx.metrics.database_error("heartbeat");
            if let Some(skipped) = throttle.allow() {
                tracing::warn!(%error, skipped, "cannot write the heartbeat; other replicas may take this one's work over");
            }
        }
    }
}

/// Every `log.summary_interval_ms`, one INFO line: what was delivered and
/// failed since the last one, what is waiting, and for how long.
async fn summarize(ctx: Arc<Ctx>) {
    use std::sync::atomic::Ordering::Relaxed;
    let every = Duration::from_millis(ctx.config.log.summary_interval_ms);
    let mut last = (0, 0);
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every), if !every.is_zero() => {}
            _ = ctx.shutdown.cancelled() => return,
        }
        let totals = (ctx.metrics.delivered_total.load(Relaxed), ctx.metrics.failed_total.load(Relaxed));
        let (delivered, failed) = (totals.0 - last.0, totals.1 - last.1);
        last = totals;
        match ctx.db.metrics_gauges().await {
            Ok(g) => {
                ctx.metrics.set_gauges(&g);
                let pending: i64 = g.pending.iter().map(|(_, n)| n).sum();
                tracing::info!(
                    delivered,
                    failed,
                    pending,
                    oldest_pending_s = g.oldest_pending_seconds.round() as u64,
                    outbox_lag_s = g.outbox_lag_seconds.round() as u64,
                    "summary of the last {} s",
                    every.as_secs()
                );
            }
            Err(error) => {
                ctx.metrics.database_error("metrics");
                tracing::info!(delivered, failed, %error, "summary of the last {} s (cannot read what is pending)", every.as_secs());
            }
        }
    }
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
                ctx.metrics.database_error("endpoints");
                if let Some(skipped) = throttle.allow() {
                    tracing::warn!(%error, skipped, "cannot reload endpoints");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_first_task_to_end_is_named_with_its_panic() {
        let mut tasks = Tasks::default();
        tasks.spawn("forever", std::future::pending());
        tasks.spawn("faulty", async { panic!("index out of bounds") });
        assert_eq!(tasks.next_end().await, "task `faulty` panicked: index out of bounds");
        tasks.spawn("quitter", async {});
        assert_eq!(tasks.next_end().await, "task `quitter` returned");
        tasks.set.abort_all();
        tasks.wait_all().await;
    }
}
