//! Endpoint transforms: one bounded Rhai engine that compiles each endpoint's script once and runs it on runner threads of its own, turning the event into the body sent.
//!
//! A script sees the event as the variable `event` (`id`, `type`,
//! `timestamp`, `data` and `tenant`) and its last expression is the JSON body
//! to send. Every run is bounded: operations, call depth, expression depth,
//! string, array and map sizes, variables, a wall-clock deadline and the
//! memory it holds (both looked at from the engine's progress callback and
//! inside the native functions that loop), and the nesting of any value it
//! formats, compares or returns. Modules, `eval`, closures, `curry` and
//! `sleep` are off, and undeclared variables are a compile error. A script
//! that breaks a bound fails its own delivery (`error_kind = 'transform'`)
//! and nothing else: no value a script can build overflows its runner's
//! stack (see `runner_stack_bytes`), and no native function allocates more
//! than the limits allow before checking (see `engine`).

mod budget;
mod engine;
mod limits;
mod runners;

use bytes::Bytes;
pub use limits::{TransformConfig, MAX_TRANSFORM_CALL_DEPTH};
use rhai::{Dynamic, EvalAltResult, Scope, AST};
use runners::{Batch, Pool};
use std::cell::RefCell;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::oneshot;

/// Longest script, in bytes (the `transform` column's CHECK says the same).
pub const MAX_SCRIPT_BYTES: usize = 64 * 1024;

/// Stack a runner thread needs besides the nesting of values: Rhai's
/// evaluator at `transform.max_call_depth` (64 at most) and `max_expr_depth`.
const RUNNER_BASE_STACK: usize = 32 << 20;

/// Stack one level of a nested value takes when Rhai copies, drops, sizes or
/// hashes it (each recursive in Rust), with a margin: in a debug build,
/// `the_deepest_value_the_limits_allow_fits_a_runners_stack` (about 6,000
/// levels) overflowed 7 MiB of stack and fit in 13 MiB, 1.2 to 2.2 KiB a
/// level; `deepest_value` counts twice the levels Rhai's checks allow, so
/// this is about 4 KiB a level actually reached.
const STACK_PER_LEVEL: usize = 2048;

/// How deep a value can nest: Rhai counts every element of nested arrays
/// and maps against `max_array_len` and `max_map_len` when a literal, a
/// function or an assignment makes it, and a value can be at most about twice
/// that between two checks; each level of nesting is at least one element.
pub fn deepest_value(limits: &TransformConfig) -> usize {
    2 * (limits.max_array_len + limits.max_map_len) + 2 * limits.max_expr_depth + 64
}

/// Stack of each runner thread: enough for the deepest value the limits
/// allow (reserved address space; only the pages used are memory).
pub fn runner_stack_bytes(limits: &TransformConfig) -> usize {
    RUNNER_BASE_STACK + deepest_value(limits) * STACK_PER_LEVEL
}

thread_local! {
    /// The running script's endpoint, for `print` and `debug` lines.
    static ENDPOINT: RefCell<String> = const { RefCell::new(String::new()) };
    /// The variables of the running script, kept between runs (emptied after each).
    static SCOPE: RefCell<Scope<'static>> = RefCell::new(Scope::new());
}

/// A compiled script: made once per endpoint version, shared by every run.
#[derive(Debug)]
pub struct Script {
    pub source: String,
    ast: AST,
}

/// Why a transform produced no body; the text is the attempt's `error`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("transform: {0}")]
pub struct TransformError(pub String);

/// One event for a script: its envelope and its tenant.
pub type Input = (Bytes, Option<Arc<str>>);

/// What one run gave, when it started and how long it took (the attempt's
/// times when the transform fails).
#[derive(Debug)]
pub struct Ran {
    pub result: Result<Bytes, TransformError>,
    pub started_at: SystemTime,
    pub took: Duration,
}

impl Ran {
    /// A run the engine could not answer (its runner is gone).
    pub fn failed() -> Self {
        Self {
            result: Err(TransformError("the script engine failed".into())),
            started_at: SystemTime::now(),
            took: Duration::ZERO,
        }
    }
}

/// The engine, its limits, and the runners (see `runners`).
pub struct Transforms {
    shared: Arc<Shared>,
}

struct Shared {
    engine: rhai::Engine,
    limits: TransformConfig,
    max_payload_bytes: usize,
    pool: Pool,
}

impl Drop for Transforms {
    fn drop(&mut self) {
        self.shared.pool.close();
    }
}

impl std::fmt::Debug for Transforms {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transforms").field("limits", &self.shared.limits).finish_non_exhaustive()
    }
}

/// Bytes kept up to a cap, and counted past it (the body is never built
/// past `delivery.max_payload_bytes`, but its size is known).
struct Capped {
    bytes: Vec<u8>,
    len: usize,
    max: usize,
}

impl std::io::Write for Capped {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.len += buf.len();
        if self.len <= self.max {
            self.bytes.extend_from_slice(buf);
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Transforms {
    /// Builds the engine from `[transform]`; bodies are capped at `max_payload_bytes`.
    /// The runner threads start with the first run.
    pub fn new(limits: &TransformConfig, max_payload_bytes: usize) -> Self {
        let bounds = engine::Bounds {
            max_depth: limits.max_expr_depth,
            max_string: limits.max_string_bytes,
            max_array: limits.max_array_len,
        };
        let mut engine = engine::build(bounds);
        engine
            .set_max_operations(limits.max_operations)
            .set_max_call_levels(limits.max_call_depth)
            .set_max_expr_depths(limits.max_expr_depth, limits.max_expr_depth)
            .set_max_string_size(limits.max_string_bytes)
            .set_max_array_size(limits.max_array_len)
            .set_max_map_size(limits.max_map_len)
            .set_max_variables(limits.max_variables)
            .set_max_modules(0)
            .set_module_resolver(rhai::module_resolvers::DummyModuleResolver::new())
            .set_strict_variables(true)
            .disable_symbol("eval")
            .disable_symbol("import")
            .disable_symbol("curry")
            .on_print(|text| ENDPOINT.with_borrow(|name| tracing::debug!(endpoint = %name, text, "transform print")))
            .on_debug(|text, _, pos| {
                ENDPOINT.with_borrow(|name| tracing::debug!(endpoint = %name, text, position = %pos, "transform debug"))
            })
            .on_progress(|_| budget::exceeded().map(Dynamic::from));
        let shared = Shared { engine, limits: limits.clone(), max_payload_bytes, pool: Pool::new() };
        Self { shared: Arc::new(shared) }
    }

    /// Compiles a script; the error names the line and position.
    pub fn compile(&self, source: &str) -> Result<Arc<Script>, String> {
        if source.len() > MAX_SCRIPT_BYTES {
            return Err(format!("is {} bytes, over the maximum of {MAX_SCRIPT_BYTES}", source.len()));
        }
        let mut scope = Scope::new();
        scope.push("event", Dynamic::UNIT);
        let ast =
            self.shared.engine.compile_with_scope(&scope, source).map_err(|e| format!("does not compile: {e}"))?;
        Ok(Arc::new(Script { source: source.to_owned(), ast }))
    }

    /// Runs `script` on the event whose envelope is `body`, on a runner
    /// thread, in its endpoint's turn. Never panics.
    pub async fn run(
        self: &Arc<Self>,
        script: Arc<Script>,
        endpoint: &str,
        body: Bytes,
        tenant: Option<Arc<str>>,
    ) -> Result<Bytes, TransformError> {
        self.run_many(script, endpoint, vec![(body, tenant)]).await.pop().unwrap_or_else(Ran::failed).result
    }

    /// Runs `script` on each input (the deliveries of one claim for one
    /// endpoint), queued at once on the endpoint's queue: one result per
    /// input, in order. Never panics.
    pub async fn run_many(self: &Arc<Self>, script: Arc<Script>, endpoint: &str, inputs: Vec<Input>) -> Vec<Ran> {
        let count = inputs.len();
        let (reply, result) = oneshot::channel();
        let shared = &self.shared;
        shared.pool.push(Batch::new(script, endpoint, inputs, reply), || start_runners(shared));
        result.await.unwrap_or_else(|_| (0..count).map(|_| Ran::failed()).collect())
    }

    /// Runs `script` on this thread, within `transform.timeout_ms` and
    /// `transform.max_memory_bytes`: the envelope `body` (plus `tenant`) in,
    /// the JSON body to send out. Values as deep as the limits allow need a
    /// runner's stack (`run`, `run_many`).
    pub fn run_blocking(
        &self,
        script: &Script,
        endpoint: &str,
        body: &[u8],
        tenant: Option<&str>,
    ) -> Result<Bytes, TransformError> {
        self.shared.run_blocking(script, endpoint, body, tenant)
    }
}

/// Starts the runner threads: how many started.
fn start_runners(shared: &Arc<Shared>) -> usize {
    let stack = runner_stack_bytes(&shared.limits);
    (0..shared.limits.permits())
        .filter(|i| {
            let runner = Arc::clone(shared);
            let spawned = std::thread::Builder::new()
                .name(format!("transform-{i}"))
                .stack_size(stack)
                .spawn(move || runner.pool.serve(|batch, input| runner.run_one(batch, input)));
            if let Err(e) = &spawned {
                tracing::error!(error = %e, stack_bytes = stack, "cannot start a transform runner thread");
            }
            spawned.is_ok()
        })
        .count()
}

impl Shared {
    /// One input of a batch, timed; a panic is the run's error.
    fn run_one(&self, batch: &Batch, (body, tenant): &Input) -> Ran {
        let (started_at, clock) = (SystemTime::now(), Instant::now());
        let run = || self.run_blocking(&batch.script, &batch.endpoint, body, tenant.as_deref());
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(run))
            .unwrap_or_else(|_| Err(TransformError("the script engine failed".into())));
        Ran { result, started_at, took: clock.elapsed() }
    }

    fn run_blocking(
        &self,
        script: &Script,
        endpoint: &str,
        body: &[u8],
        tenant: Option<&str>,
    ) -> Result<Bytes, TransformError> {
        let fail = |why: String| TransformError(why);
        // Straight from the JSON text to the script's values (no copy in between).
        let mut event: Dynamic =
            serde_json::from_slice(body).map_err(|e| fail(format!("the event is not JSON: {e}")))?;
        match event.as_map_mut() {
            Ok(mut map) => {
                map.insert("tenant".into(), tenant.map_or(Dynamic::UNIT, |t| Dynamic::from(t.to_owned())));
            }
            Err(_) => return Err(fail("the event is not a JSON object".into())),
        }
        self.check_limits(&event, 0, "the event")?;
        ENDPOINT.with_borrow_mut(|name| {
            name.clear();
            name.push_str(endpoint);
        });
        let timeout = Duration::from_millis(self.limits.timeout_ms);
        budget::start(Instant::now() + timeout, self.limits.max_memory_bytes);
        let result = SCOPE.with_borrow_mut(|scope| {
            scope.clear().push("event", event);
            let result = self.engine.eval_ast_with_scope::<Dynamic>(scope, &script.ast);
            scope.clear();
            result
        });
        // A bound broken where Rhai could not be told (see `budget::break_run`).
        let result = match budget::broken() {
            Some(why) => Err(budget::stop(why)),
            None => result,
        };
        let body = result.map_err(|e| fail(self.describe(&e))).and_then(|result| self.body(result));
        budget::end();
        body
    }

    /// The body a script's result makes, checked before it is built.
    fn body(&self, result: Dynamic) -> Result<Bytes, TransformError> {
        let fail = |why: String| TransformError(why);
        if result.is_unit() {
            return Err(fail("the script's last expression has no value (it must be the body to send)".into()));
        }
        self.check_limits(&result, 0, "the result")?;
        let mut out = Capped { bytes: Vec::new(), len: 0, max: self.max_payload_bytes };
        serde_json::to_writer(&mut out, &result).map_err(|e| fail(format!("the result is not JSON: {e}")))?;
        if out.len > self.max_payload_bytes {
            return Err(fail(format!(
                "body is {} bytes, over delivery.max_payload_bytes ({})",
                out.len, self.max_payload_bytes
            )));
        }
        Ok(Bytes::from(out.bytes))
    }

    /// The event, and the result, must fit the limits a script's own values have.
    fn check_limits(&self, value: &Dynamic, depth: usize, what: &str) -> Result<(), TransformError> {
        let over = |key: &str, limit: usize| {
            Err(TransformError(format!("{what} does not fit the script's limits (transform.{key} = {limit})")))
        };
        let l = &self.limits;
        if depth > l.max_expr_depth {
            return over("max_expr_depth", l.max_expr_depth);
        }
        // `is_*` first: a failed `as_*_ref` names the value's type, which costs.
        if value.is_string() {
            if value.as_immutable_string_ref().is_ok_and(|s| s.len() > l.max_string_bytes) {
                return over("max_string_bytes", l.max_string_bytes);
            }
        } else if value.is_array() {
            let Ok(a) = value.as_array_ref() else { return Ok(()) };
            if a.len() > l.max_array_len {
                return over("max_array_len", l.max_array_len);
            }
            a.iter().try_for_each(|v| self.check_limits(v, depth + 1, what))?;
        } else if value.is_map() {
            let Ok(m) = value.as_map_ref() else { return Ok(()) };
            if m.len() > l.max_map_len {
                return over("max_map_len", l.max_map_len);
            }
            for (k, v) in m.iter() {
                if k.len() > l.max_string_bytes {
                    return over("max_string_bytes", l.max_string_bytes);
                }
                self.check_limits(v, depth + 1, what)?;
            }
        }
        Ok(())
    }

    /// One line naming the bound that stopped the script, or its error and where.
    fn describe(&self, err: &EvalAltResult) -> String {
        let l = &self.limits;
        match err.unwrap_inner() {
            EvalAltResult::ErrorTooManyOperations(_) => {
                format!("operations limit exceeded ({})", l.max_operations)
            }
            EvalAltResult::ErrorTerminated(why, _) => match why.clone().into_string().as_deref() {
                Ok(budget::MEMORY) => {
                    format!("memory limit exceeded (transform.max_memory_bytes = {})", l.max_memory_bytes)
                }
                Ok(engine::NESTING) => nested(l.max_expr_depth),
                Ok(engine::STRING) => {
                    format!("length of string over its limit (transform.max_string_bytes = {})", l.max_string_bytes)
                }
                _ => format!("deadline of {} ms exceeded", l.timeout_ms),
            },
            EvalAltResult::ErrorStackOverflow(_) => format!("call depth limit exceeded ({})", l.max_call_depth),
            EvalAltResult::ErrorTooManyVariables(_) => format!("variables limit exceeded ({})", l.max_variables),
            EvalAltResult::ErrorTooManyModules(_) => "modules are not allowed".into(),
            EvalAltResult::ErrorDataTooLarge(what, _) if what == engine::NESTING => nested(l.max_expr_depth),
            EvalAltResult::ErrorDataTooLarge(what, _) => {
                let what = what.to_ascii_lowercase();
                let (key, limit) = if what.contains("string") {
                    ("max_string_bytes", l.max_string_bytes)
                } else if what.contains("array") {
                    ("max_array_len", l.max_array_len)
                } else {
                    ("max_map_len", l.max_map_len)
                };
                format!("{what} over its limit (transform.{key} = {limit})")
            }
            // A thrown value is shown only when it is shallow enough to format.
            EvalAltResult::ErrorRuntime(value, pos) => {
                let value = if engine::nested_within(value, l.max_expr_depth) {
                    value.to_string()
                } else {
                    "(a value nested too deep to show)".into()
                };
                match pos.is_none() {
                    true => shorten(format!("runtime error: {value}")),
                    false => shorten(format!("runtime error: {value} ({pos})")),
                }
            }
            _ => shorten(format!("runtime error: {}", err.to_string().replace('\n', "; "))),
        }
    }
}

fn nested(max_expr_depth: usize) -> String {
    format!(
        "a value nested deeper than transform.max_expr_depth ({max_expr_depth}) cannot be formatted, compared or sent"
    )
}

/// Longest error text kept (a script can throw a string as long as it likes).
const MAX_ERROR_BYTES: usize = 1024;

fn shorten(mut text: String) -> String {
    if text.len() > MAX_ERROR_BYTES {
        let mut end = MAX_ERROR_BYTES;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.push('…');
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn transforms() -> Transforms {
        Transforms::new(&TransformConfig::default(), 1 << 20)
    }

    const ENVELOPE: &str =
        r#"{"id":"e1","type":"order.paid","timestamp":"2026-01-02T03:04:05.000000Z","data":{"msg":"hi","n":3}}"#;

    fn run(t: &Transforms, script: &str) -> Result<serde_json::Value, String> {
        let script = t.compile(script)?;
        let body = t.run_blocking(&script, "test", ENVELOPE.as_bytes(), Some("acme")).map_err(|e| e.to_string())?;
        Ok(serde_json::from_slice(&body).unwrap())
    }

    #[test]
    fn the_last_expression_is_the_body() {
        let t = transforms();
        let cases = [
            (r#"#{ text: "[" + event.type + "] " + event.data.msg }"#, serde_json::json!({"text": "[order.paid] hi"})),
            ("event.data.n * 2", serde_json::json!(6)),
            ("event.tenant", serde_json::json!("acme")),
            ("let e = event; e.data.n += 1; e.data", serde_json::json!({"msg": "hi", "n": 4})),
            (r#"[event.id, event.timestamp]"#, serde_json::json!(["e1", "2026-01-02T03:04:05.000000Z"])),
        ];
        for (script, expected) in cases {
            assert_eq!(run(&t, script), Ok(expected), "{script}");
        }
    }

    #[test]
    fn hostile_scripts_stop_at_their_bound() {
        // A generous deadline and small collections, so each script meets
        // its own bound first (growing a map also costs operations).
        let limits = TransformConfig { timeout_ms: 60_000, max_map_len: 500, max_array_len: 500, ..Default::default() };
        let t = Transforms::new(&limits, 1 << 20);
        let cases = [
            ("loop {}", "transform: operations limit exceeded (1000000)"),
            ("fn f(x) { f(x) } f(1)", "transform: call depth limit exceeded (32)"),
            ("let s = \"ab\"; loop { s += s; }", "transform: length of string over its limit"),
            // Rhai 1.27 checks a map's size when it is passed or returned,
            // not on each `m[k] = v`: the operations limit stops this one.
            ("let m = #{}; let i = 0; loop { m[`k${i}`] = i; i += 1; }", "transform: operations limit exceeded"),
            (
                "let m = #{}; for i in 0..600 { m[`k${i}`] = i; } m.len()",
                "transform: size of object map over its limit",
            ),
            ("let a = []; loop { a.push(1); }", "transform: size of array/blob over its limit"),
            ("throw \"no way\"", "transform: runtime error: no way (line 1, position 1)"),
            ("let x = 1;", "transform: the script's last expression has no value"),
        ];
        for (script, expected) in cases {
            let err = run(&t, script).unwrap_err();
            assert!(err.starts_with(expected), "{script}: {err}");
        }
    }

    #[test]
    fn an_endless_loop_hits_the_operations_limit_or_the_deadline() {
        let t = Transforms::new(&TransformConfig { timeout_ms: 10_000, ..TransformConfig::default() }, 1 << 20);
        assert_eq!(run(&t, "loop {}").unwrap_err(), "transform: operations limit exceeded (1000000)");
        let t = Transforms::new(
            &TransformConfig { max_operations: 0, timeout_ms: 20, ..TransformConfig::default() },
            1 << 20,
        );
        let started = Instant::now();
        assert_eq!(run(&t, "loop {}").unwrap_err(), "transform: deadline of 20 ms exceeded");
        assert!(started.elapsed() < Duration::from_millis(500), "{:?}", started.elapsed());
    }

    #[test]
    fn variables_modules_and_eval_are_bounded_or_refused() {
        let t = Transforms::new(&TransformConfig { max_variables: 3, ..TransformConfig::default() }, 1 << 20);
        assert_eq!(
            run(&t, "let a = 1; let b = 2; let c = 3; a").unwrap_err(),
            "transform: variables limit exceeded (3)"
        );
        let t = transforms();
        for script in ["eval(\"1\")", "import \"x\" as y; 1", "undeclared + 1"] {
            let err = t.compile(script).unwrap_err();
            assert!(err.starts_with("does not compile: "), "{script}: {err}");
        }
        assert!(t.compile(&"1;".repeat(MAX_SCRIPT_BYTES)).unwrap_err().contains("over the maximum of 65536"));
    }

    #[test]
    fn the_body_and_the_event_are_capped() {
        let t = Transforms::new(&TransformConfig::default(), 100);
        let err = run(&t, "let s = \"x\"; s.pad(200, \"y\"); s").unwrap_err();
        assert!(err.starts_with("transform: body is 202 bytes, over delivery.max_payload_bytes (100)"), "{err}");
        let t = Transforms::new(&TransformConfig { max_map_len: 2, ..TransformConfig::default() }, 1 << 20);
        let script = t.compile("event").unwrap();
        let err = t.run_blocking(&script, "test", ENVELOPE.as_bytes(), None).unwrap_err();
        assert_eq!(
            err.to_string(),
            "transform: the event does not fit the script's limits (transform.max_map_len = 2)"
        );
    }

    /// A batch answers each event in order, a failing one with its own error
    /// and its own times, and the others unharmed.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_batch_answers_each_event_in_order() {
        let t = Arc::new(transforms());
        let script = t.compile("if event.data.n == 2 { throw \"two\" } event.data.n * 10").unwrap();
        let event = |n: i64| Bytes::from(format!(r#"{{"id":"e{n}","type":"t","timestamp":"ts","data":{{"n":{n}}}}}"#));
        let inputs =
            vec![(event(1), None), (Bytes::from_static(b"not json"), None), (event(2), None), (event(3), None)];
        let ran = t.run_many(script, "batch", inputs).await;
        let results: Vec<Result<String, String>> = ran
            .iter()
            .map(|r| r.result.as_ref().map(|b| String::from_utf8_lossy(b).into_owned()).map_err(|e| e.to_string()))
            .collect();
        assert_eq!(results.len(), 4);
        assert_eq!(results[0], Ok("10".into()));
        assert!(results[1].as_ref().unwrap_err().starts_with("transform: the event is not JSON"), "{:?}", results[1]);
        assert_eq!(results[2], Err("transform: runtime error: two (line 1, position 24)".into()));
        assert_eq!(results[3], Ok("30".into()));
        assert!(ran.windows(2).all(|w| w[0].started_at <= w[1].started_at));
    }

    /// Runs `script` on a runner thread (as deliveries do), with `limits`.
    async fn on_runner(limits: &TransformConfig, script: &str) -> Result<serde_json::Value, String> {
        let t = Arc::new(Transforms::new(limits, 1 << 20));
        let script = t.compile(script)?;
        let ran = t.run(script, "test", Bytes::from_static(ENVELOPE.as_bytes()), None).await;
        ran.map(|body| serde_json::from_slice(&body).unwrap()).map_err(|e| e.to_string())
    }

    /// Issue 29: formatting a nested array overflowed the stack and aborted
    /// the process. Every way of formatting, comparing, returning, throwing
    /// or dropping a deep value fails the run with a bound named.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn deep_values_fail_their_run_and_nothing_else() {
        let limits = TransformConfig { timeout_ms: 20_000, ..TransformConfig::default() };
        let deep = "let a = []; let i = 0; while i < 1500 { a = [take(a)]; i += 1; }";
        let deep_no_take = "let a = []; let i = 0; while i < 1500 { a = [a]; i += 1; }";
        let deep_map = "let m = #{}; let i = 0; while i < 1500 { m = #{ x: m }; i += 1; }";
        let nested = "transform: a value nested deeper than transform.max_expr_depth (64)";
        let cases = [
            (format!("{deep} `${{a}}`"), nested),
            (format!("{deep} a.to_debug()"), nested),
            (format!("{deep} a.to_string()"), nested),
            (format!("{deep} print(a); 1"), nested),
            (format!("{deep} debug(a); 1"), nested),
            (format!("{deep} \"x\" + a"), nested),
            (format!("{deep} let s = \"x\"; s += a; s"), nested),
            (format!("{deep} a == a"), nested),
            (format!("{deep} a != [1]"), nested),
            (format!("{deep} a in [1, a]"), nested),
            (format!("{deep} [a].index_of(a)"), nested),
            (
                format!("{deep} a"),
                "transform: the result does not fit the script's limits (transform.max_expr_depth = 64)",
            ),
            (format!("{deep} #{{ x: a }}"), "transform: the result does not fit"),
            (format!("{deep} throw a"), "transform: runtime error: (a value nested too deep to show)"),
            (format!("{deep_no_take} `${{a}}`"), nested),
            (format!("{deep_map} `${{m}}`"), nested),
            (format!("{deep_map} m.to_json()"), nested),
            (format!("{deep_map} m == m"), nested),
            (format!("{deep_map} m"), "transform: the result does not fit"),
            // Dropped in the middle of the script, then a body.
            (format!("{deep} a = 1; throw \"dropped\""), "transform: runtime error: dropped"),
        ];
        for (script, expected) in &cases {
            let err = on_runner(&limits, script).await.unwrap_err();
            assert!(err.starts_with(expected), "{script}\n got: {err}\nwant: {expected}");
        }
        // Shallow values still format, compare and return as before.
        let ok = "let a = [1, \"b\", #{c: [true, ()]}]; #{ s: `${a}`, d: a.to_debug(), eq: a == [1, \"b\", #{c: [true, ()]}], inn: 1 in a, j: #{x: 1}.to_json() }";
        assert_eq!(
            on_runner(&limits, ok).await.unwrap(),
            serde_json::json!({"s": "[1, \"b\", #{\"c\": [true, ()]}]", "d": "[1, \"b\", #{\"c\": [true, ()]}]", "eq": true, "inn": true, "j": "{\"x\":1}"})
        );
    }

    /// The deepest value the limits let a script build (arrays and maps in
    /// turn, each level one element) is copied, compared, hashed and dropped
    /// on a runner's stack without overflowing it.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_deepest_value_the_limits_allow_fits_a_runners_stack() {
        // Smaller collections than the defaults (a debug build is slow to
        // build 20,000 levels); the stack is sized from them all the same.
        let limits = TransformConfig {
            timeout_ms: 60_000,
            max_operations: 100_000_000,
            max_array_len: 3_000,
            max_map_len: 3_000,
            ..TransformConfig::default()
        };
        let script = "let a = []; let i = 0; loop { a = [#{ x: take(a) }]; let b = a; i += 1; }";
        let err = on_runner(&limits, script).await.unwrap_err();
        assert!(err.contains("over its limit"), "{err}");
        let script = "let a = []; let i = 0; loop { a = [a]; a[0] = a; let b = a; switch a { 1 => 2 } i += 1; }";
        let err = on_runner(&limits, script).await.unwrap_err();
        assert!(err.contains("over its limit"), "{err}");
    }

    /// Issue 29: `replace` built its whole result before Rhai checked its
    /// size (5.36 s and 1.79 GB with a 1 MiB limit, or 1 TiB asked for).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn native_functions_check_the_size_of_what_they_would_build() {
        let limits = TransformConfig::default();
        let big = "let b = \"\"; b.pad(1000000, \"b\");";
        let string = "transform: length of string over its limit (transform.max_string_bytes = 1048576)";
        let array = "transform: size of array/blob over its limit (transform.max_array_len = 10000)";
        let cases = [
            (format!("{big} let a = \"\"; a.pad(600, \"a\"); a.replace(\"a\", b); a"), string),
            (format!("{big} let a = \"\"; a.pad(600, \"a\"); a.replace('a', b); a"), string),
            (format!("{big} let a = b; a.replace(\"b\", b); a"), string),
            (format!("{big} let a = \"xy\"; a.replace(\"\", b); a"), string),
            (format!("{big} b.split(\"\").len()"), array),
            (format!("{big} b.split('b').len()"), array),
            (format!("{big} b.split_rev(\"b\").len()"), array),
            (format!("{big} b.split(\"b\", 1000000).len()"), array),
            (format!("{big} b.to_chars().len()"), array),
            ("let s = \"a b \"; s.pad(1000000, \" x\"); s.split().len()".to_string(), array),
            ("let a = []; a.pad(1000000, 1); a".to_string(), array),
            ("sleep(10); 1".to_string(), "transform: runtime error: sleep is not available"),
            ("let f = Fn(\"x\"); f.curry(1)".to_string(), "does not compile"),
            ("let y = 1; let f = |x| x + y; f.call(1)".to_string(), "does not compile"),
        ];
        for (script, expected) in &cases {
            let started = Instant::now();
            let err = on_runner(&limits, script).await.unwrap_err();
            assert!(err.starts_with(expected) || err.contains(expected), "{script}\n got: {err}\nwant: {expected}");
            assert!(started.elapsed() < Duration::from_secs(2), "{script}: {:?}", started.elapsed());
        }
        // Within the limits, the same functions work as Rhai's.
        let ok = "let s = \"a-b-c\"; s.replace(\"-\", \"+\"); #{ r: s, p: \"a-b-c\".split(\"-\"), n: \"a-b-c\".split(\"-\", 2), c: \"ab\".to_chars().len(), w: \" x  y \".split() }";
        assert_eq!(
            on_runner(&limits, ok).await.unwrap(),
            serde_json::json!({"r": "a+b+c", "p": ["a", "b", "c"], "n": ["a", "b-c"], "c": 2, "w": ["x", "y"]})
        );
    }

    /// A script that holds more than `transform.max_memory_bytes` (each
    /// value within the limits, many of them) stops at the cap, and every
    /// closure a native function calls is counted too.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_run_is_stopped_at_its_memory_cap() {
        let limits = TransformConfig { timeout_ms: 20_000, max_memory_bytes: 8 << 20, ..TransformConfig::default() };
        let mem = "transform: memory limit exceeded (transform.max_memory_bytes = 8388608)";
        let cases = [
            "let a = []; a.pad(10000, 0); a.map(|x| { let t = `${x}`; t.pad(500000, \"s\"); t }).len()",
            "let s = \"\"; s.pad(1000000, \"s\"); let a = s + 1; let b = s + 2; let c = s + 3; let d = s + 4; let e = s + 5; let f = s + 6; let g = s + 7; let h = s + 8; let i = s + 9; 1",
        ];
        for script in cases {
            assert_eq!(on_runner(&limits, script).await.unwrap_err(), mem, "{script}");
        }
    }

    /// The chat examples shipped in `examples/transforms`, on a sample event,
    /// give exactly the shape each chat tool documents.
    #[test]
    fn the_chat_examples_make_the_documented_shapes() {
        let t = transforms();
        let envelope = r#"{"id":"0b8f0f5e-6a43-4a8e-9d4e-0c7e2a1f1a11","type":"invoice.paid","timestamp":"2026-11-22T10:00:00.123456Z","data":{"message":"Invoice 42 paid: 99.00 EUR"}}"#;
        let (id, ts, line) =
            ("0b8f0f5e-6a43-4a8e-9d4e-0c7e2a1f1a11", "2026-11-22T10:00:00.123456Z", "Invoice 42 paid: 99.00 EUR");
        let cases = [
            (
                include_str!("../../examples/transforms/slack.rhai"),
                serde_json::json!({
                    "text": format!("[invoice.paid] {line}"),
                    "blocks": [
                        {"type": "section", "text": {"type": "mrkdwn", "text": format!("*invoice.paid*\n{line}")}},
                        {"type": "context", "elements": [{"type": "mrkdwn", "text": format!("{ts} · {id}")}]}
                    ]
                }),
            ),
            (
                include_str!("../../examples/transforms/discord.rhai"),
                serde_json::json!({
                    "content": format!("[invoice.paid] {line}"),
                    "embeds": [{"title": "invoice.paid", "description": line, "timestamp": ts, "footer": {"text": id}}]
                }),
            ),
            (
                include_str!("../../examples/transforms/teams.rhai"),
                serde_json::json!({
                    "type": "message",
                    "attachments": [{
                        "contentType": "application/vnd.microsoft.card.adaptive",
                        "contentUrl": null,
                        "content": {
                            "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                            "type": "AdaptiveCard",
                            "version": "1.2",
                            "body": [
                                {"type": "TextBlock", "text": "invoice.paid", "weight": "Bolder", "size": "Medium"},
                                {"type": "TextBlock", "text": line, "wrap": true},
                                {"type": "FactSet", "facts": [{"title": "Event", "value": id}, {"title": "Time", "value": ts}]}
                            ]
                        }
                    }]
                }),
            ),
        ];
        for (source, expected) in cases {
            let script = t.compile(source).unwrap();
            let body = t.run_blocking(&script, "chat", envelope.as_bytes(), None).unwrap();
            let got: serde_json::Value = serde_json::from_slice(&body).unwrap();
            assert_eq!(got, expected, "{source}");
        }
        // Without `message`, the payload as JSON.
        let script = t.compile(include_str!("../../examples/transforms/slack.rhai")).unwrap();
        let body = t.run_blocking(&script, "chat", ENVELOPE.as_bytes(), None).unwrap();
        let got: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(got["text"], r#"[order.paid] {"msg":"hi","n":3}"#);
    }
}
