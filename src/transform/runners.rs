//! The script runners: threads of their own, with a stack sized for the deepest value the limits let a script build, taking queued runs one at a time from each endpoint in turn.
//!
//! Fairness: each endpoint has its own queue and the runners serve the
//! endpoints with waiting runs round-robin, one run per turn, so an endpoint
//! whose runs are slow holds a runner for at most one run (its deadline)
//! while another endpoint's runs wait, however many it has queued.

use super::{Input, Ran, Script};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use tokio::sync::oneshot;

/// Runs of one script asked for together (one claim's deliveries for one
/// endpoint), answered together once each has run.
pub(super) struct Batch {
    pub script: Arc<Script>,
    pub endpoint: Arc<str>,
    pub inputs: Vec<Input>,
    done: Mutex<Done>,
}

struct Done {
    ran: Vec<Option<Ran>>,
    left: usize,
    reply: Option<oneshot::Sender<Vec<Ran>>>,
}

impl Batch {
    pub fn new(script: Arc<Script>, endpoint: &str, inputs: Vec<Input>, reply: oneshot::Sender<Vec<Ran>>) -> Self {
        let done = Done { ran: (0..inputs.len()).map(|_| None).collect(), left: inputs.len(), reply: Some(reply) };
        Self { script, endpoint: endpoint.into(), inputs, done: Mutex::new(done) }
    }

    /// Whether nobody waits for the results any more (shutdown).
    pub fn abandoned(&self) -> bool {
        self.done.lock().unwrap_or_else(|e| e.into_inner()).reply.as_ref().is_none_or(|r| r.is_closed())
    }

    /// Stores run `index`'s result; the last one sends them all.
    fn finish(&self, index: usize, ran: Ran) {
        let mut done = self.done.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(slot) = done.ran.get_mut(index) {
            *slot = Some(ran);
            done.left -= 1;
        }
        if done.left == 0 {
            let ran = done.ran.iter_mut().map(|r| r.take().unwrap_or_else(Ran::failed)).collect();
            if let Some(reply) = done.reply.take() {
                let _ = reply.send(ran);
            }
        }
    }
}

/// One run waiting: a batch and which of its inputs.
type Item = (Arc<Batch>, usize);

#[derive(Default)]
struct Queue {
    /// Waiting runs per endpoint, in the order asked.
    waiting: HashMap<Arc<str>, VecDeque<Item>>,
    /// Endpoints with waiting runs, the next to serve first.
    turns: VecDeque<Arc<str>>,
    closed: bool,
}

/// The queue and its runners (started on the first run).
pub(super) struct Pool {
    queue: Mutex<Queue>,
    ready: Condvar,
    started: OnceLock<usize>,
}

impl Pool {
    pub fn new() -> Self {
        Self { queue: Mutex::default(), ready: Condvar::new(), started: OnceLock::new() }
    }

    /// Queues every run of `batch`; `start` starts the runners the first time
    /// and says how many there are. Without any runner, every run fails at once.
    pub fn push(&self, batch: Batch, start: impl FnOnce() -> usize) {
        let batch = Arc::new(batch);
        if *self.started.get_or_init(start) == 0 {
            for index in 0..batch.inputs.len() {
                batch.finish(index, Ran::failed());
            }
            return;
        }
        let mut queue = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        let count = batch.inputs.len();
        let endpoint = batch.endpoint.clone();
        let waiting = queue.waiting.entry(endpoint.clone()).or_default();
        let was_empty = waiting.is_empty();
        waiting.extend((0..count).map(|index| (batch.clone(), index)));
        if was_empty && count > 0 {
            queue.turns.push_back(endpoint);
        }
        drop(queue);
        match count {
            0 => batch.finish(0, Ran::failed()),
            1 => self.ready.notify_one(),
            _ => self.ready.notify_all(),
        }
    }

    /// The next run, from the endpoint whose turn it is; `None` once closed.
    pub fn take(&self) -> Option<Item> {
        let mut queue = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if queue.closed {
                return None;
            }
            if let Some(endpoint) = queue.turns.pop_front() {
                let Some(waiting) = queue.waiting.get_mut(&endpoint) else { continue };
                let item = waiting.pop_front();
                if waiting.is_empty() {
                    queue.waiting.remove(&endpoint);
                } else {
                    queue.turns.push_back(endpoint);
                }
                if let Some(item) = item {
                    return Some(item);
                }
                continue;
            }
            queue = self.ready.wait(queue).unwrap_or_else(|e| e.into_inner());
        }
    }

    /// Stops the runners (each after its current run).
    pub fn close(&self) {
        self.queue.lock().unwrap_or_else(|e| e.into_inner()).closed = true;
        self.ready.notify_all();
    }

    /// A runner's loop: `run` turns one input into its result.
    pub fn serve(&self, run: impl Fn(&Batch, &Input) -> Ran) {
        while let Some((batch, index)) = self.take() {
            let ran = match batch.inputs.get(index) {
                // Its deliveries were abandoned (shutdown): nobody waits for the body.
                Some(_) if batch.abandoned() => Ran::failed(),
                Some(input) => run(&batch, input),
                None => Ran::failed(),
            };
            batch.finish(index, ran);
        }
    }
}
