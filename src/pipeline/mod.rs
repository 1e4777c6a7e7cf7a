//! The delivery pipeline: the endpoints it delivers to, claims, workers, the HTTP sender, the recorder, and the pure rules they apply (outcome, schedule, the Python body form, limits).

pub(crate) mod claim;
pub(crate) mod endpoints;
pub(crate) mod limits;
pub mod outcome;
pub mod pybody;
pub(crate) mod recorder;
pub mod schedule;
pub(crate) mod sender;
pub mod trace;
pub(crate) mod worker;

use crate::config::Config;
use crate::db::listener::Wake;
use crate::db::Db;
use crate::log_throttle::KeyedThrottle;
use crate::pipeline::endpoints::EndpointCache;
use limits::Limits;
use recorder::{DueTimer, Record, Stall};
use sender::Sender;
use std::sync::atomic::AtomicI64;
use std::sync::Arc;
use tokio::sync::{mpsc, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

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
    /// The transform engine and the permits of scripts running at once.
    pub transforms: Arc<crate::transform::Transforms>,
    pub records: mpsc::Sender<Record>,
    /// Free request slots, over all endpoints.
    pub capacity: Arc<Semaphore>,
    /// Per-endpoint in-flight counts and rate buckets.
    pub limits: Arc<Limits>,
    /// Held by the claim being made (fan-out or due), see `claim.rs`.
    pub claim_lock: tokio::sync::Mutex<()>,
    /// Wakes the fan-out loop (outbox insert, captured changes staged, reconnect).
    pub wake: Arc<Wake>,
    pub due: Arc<DueTimer>,
    /// Set while results wait to be written too long: claims wait.
    pub stall: Arc<Stall>,
    /// Stop claiming.
    pub shutdown: CancellationToken,
    /// Grace period over: drop requests still in flight.
    pub abandon: CancellationToken,
    pub tracker: TaskTracker,
    pub metrics: Arc<crate::metrics::Metrics>,
    pub log_lines: LogLines,
    /// Attempt spans and their export.
    pub tracer: Arc<trace::Tracer>,
}

/// Per-endpoint WARN lines about failures: at most one per endpoint every
/// ten seconds each, with how many happened since the last one.
pub struct LogLines {
    /// Attempts that failed and will be retried.
    pub attempts_failing: KeyedThrottle,
    /// Deliveries that gave up (`failed`).
    pub gave_up: KeyedThrottle,
}

impl Default for LogLines {
    fn default() -> Self {
        let every = std::time::Duration::from_secs(10);
        Self { attempts_failing: KeyedThrottle::new(every), gave_up: KeyedThrottle::new(every) }
    }
}
