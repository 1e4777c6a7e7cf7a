//! The running script's deadline and memory cap, on the runner thread: looked at by the engine's progress callback and by the checked functions' loops.

use rhai::{Dynamic, EvalAltResult, Position};
use std::cell::Cell;
use std::time::Instant;

/// Why a run was stopped from outside the script (the value of Rhai's
/// `ErrorTerminated`, read back by `describe`).
pub(super) const DEADLINE: &str = "deadline";
pub(super) const MEMORY: &str = "memory";

/// Calls of `tick` between two looks at the clock.
const CLOCK_EVERY: u32 = 64;

thread_local! {
    static UNTIL: Cell<Option<Instant>> = const { Cell::new(None) };
    /// `alloc_meter::net_bytes()` when the run started.
    static BASE: Cell<isize> = const { Cell::new(0) };
    static MAX_BYTES: Cell<isize> = const { Cell::new(isize::MAX) };
    static TICKS: Cell<u32> = const { Cell::new(0) };
    /// A bound a checked function found broken where it cannot return an
    /// error (Rhai formats a value itself when `to_string` fails): the run
    /// stops at its next operation, or when it ends.
    static BROKEN: Cell<Option<&'static str>> = const { Cell::new(None) };
}

/// Stops the run at its next operation (or its end) with `why`.
pub(super) fn break_run(why: &'static str) {
    BROKEN.set(Some(why));
}

/// The bound `break_run` named during the run, if any (and forgets it).
pub(super) fn broken() -> Option<&'static str> {
    BROKEN.take()
}

/// Starts a run's budget on this thread.
pub(super) fn start(until: Instant, max_bytes: usize) {
    UNTIL.set(Some(until));
    BASE.set(alloc_meter::net_bytes());
    MAX_BYTES.set(isize::try_from(max_bytes).unwrap_or(isize::MAX));
    TICKS.set(0);
    BROKEN.set(None);
}

/// Ends it: nothing is bounded on this thread until the next `start`.
pub(super) fn end() {
    UNTIL.set(None);
    MAX_BYTES.set(isize::MAX);
}

/// Bytes this thread holds more than when the run started.
pub(super) fn used() -> isize {
    alloc_meter::net_bytes().wrapping_sub(BASE.get())
}

/// What stops the run now, if anything: memory at every call, the clock
/// every `CLOCK_EVERY` calls.
pub(super) fn exceeded() -> Option<&'static str> {
    if let Some(why) = BROKEN.get() {
        return Some(why);
    }
    if used() > MAX_BYTES.get() {
        return Some(MEMORY);
    }
    let ticks = TICKS.get().wrapping_add(1);
    TICKS.set(ticks);
    if ticks % CLOCK_EVERY == 0 && UNTIL.get().is_some_and(|until| Instant::now() >= until) {
        return Some(DEADLINE);
    }
    None
}

pub(super) fn stop(why: &'static str) -> Box<EvalAltResult> {
    EvalAltResult::ErrorTerminated(Dynamic::from(why), Position::NONE).into()
}

/// For loops in native functions: an error once the run is over its deadline or memory.
pub(super) fn tick() -> Result<(), Box<EvalAltResult>> {
    exceeded().map_or(Ok(()), |why| Err(stop(why)))
}

/// Before allocating `bytes`: an error when they would take the run over its memory cap.
pub(super) fn reserve(bytes: usize) -> Result<(), Box<EvalAltResult>> {
    let after = used().saturating_add(isize::try_from(bytes).unwrap_or(isize::MAX));
    if after > MAX_BYTES.get() {
        return Err(stop(MEMORY));
    }
    Ok(())
}
