//! Endpoint transforms: one bounded Rhai engine that compiles each endpoint's script once and runs it off the async runtime, turning the event into the body sent.
//!
//! A script sees the event as the variable `event` (`id`, `type`,
//! `timestamp`, `data` and `tenant`) and its last expression is the JSON body
//! to send. Every run is bounded: operations, call depth, expression depth,
//! string, array and map sizes, variables, and a wall-clock deadline checked
//! from the engine's progress callback. Modules and `eval` are off, and
//! undeclared variables are a compile error. A script that breaks a bound
//! fails its own delivery (`error_kind = 'transform'`) and nothing else.

use crate::config::TransformConfig;
use bytes::Bytes;
use rhai::{Dynamic, EvalAltResult, Scope, AST};
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::{oneshot, Semaphore};

/// Longest script, in bytes (the `transform` column's CHECK says the same).
pub const MAX_SCRIPT_BYTES: usize = 64 * 1024;

/// Operations between two looks at the clock.
const CLOCK_EVERY: u64 = 64;

thread_local! {
    /// The running script's deadline, on the thread running it.
    static DEADLINE: Cell<Option<Instant>> = const { Cell::new(None) };
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

/// Runs of one script waiting for a runner, answered together.
struct Batch {
    script: Arc<Script>,
    endpoint: String,
    inputs: Vec<Input>,
    reply: oneshot::Sender<Vec<Ran>>,
}

/// The engine, its limits, and the runners: blocking tasks, at most one per
/// permit, each taking queued batches until none is left (so a claim's
/// deliveries cost one thread hand-off per batch, not one per run).
pub struct Transforms {
    engine: rhai::Engine,
    limits: TransformConfig,
    max_payload_bytes: usize,
    permits: Arc<Semaphore>,
    queue: Mutex<VecDeque<Batch>>,
}

impl std::fmt::Debug for Transforms {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transforms").field("limits", &self.limits).finish_non_exhaustive()
    }
}

impl Transforms {
    /// Builds the engine from `[transform]`; bodies are capped at `max_payload_bytes`.
    pub fn new(limits: &TransformConfig, max_payload_bytes: usize) -> Self {
        let mut engine = rhai::Engine::new();
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
            .on_print(|text| ENDPOINT.with_borrow(|name| tracing::debug!(endpoint = %name, text, "transform print")))
            .on_debug(|text, _, pos| {
                ENDPOINT.with_borrow(|name| tracing::debug!(endpoint = %name, text, position = %pos, "transform debug"))
            })
            .on_progress(|ops| {
                if ops % CLOCK_EVERY != 0 {
                    return None;
                }
                match DEADLINE.get() {
                    Some(deadline) if Instant::now() >= deadline => Some(Dynamic::UNIT),
                    _ => None,
                }
            });
        Self {
            engine,
            limits: limits.clone(),
            max_payload_bytes,
            permits: Arc::new(Semaphore::new(limits.permits())),
            queue: Mutex::default(),
        }
    }

    /// Compiles a script; the error names the line and position.
    pub fn compile(&self, source: &str) -> Result<Arc<Script>, String> {
        if source.len() > MAX_SCRIPT_BYTES {
            return Err(format!("is {} bytes, over the maximum of {MAX_SCRIPT_BYTES}", source.len()));
        }
        let mut scope = Scope::new();
        scope.push("event", Dynamic::UNIT);
        let ast = self.engine.compile_with_scope(&scope, source).map_err(|e| format!("does not compile: {e}"))?;
        Ok(Arc::new(Script { source: source.to_owned(), ast }))
    }

    /// Runs `script` on the event whose envelope is `body`, off the async
    /// runtime (a blocking task), at most `transform.concurrency` at once.
    /// Never panics.
    pub async fn run(
        self: &Arc<Self>,
        script: Arc<Script>,
        endpoint: &str,
        body: Bytes,
        tenant: Option<Arc<str>>,
    ) -> Result<Bytes, TransformError> {
        self.run_many(script, endpoint, vec![(body, tenant)]).await.pop().unwrap_or_else(Ran::failed).result
    }

    /// Runs `script` on each input in turn, in one hand-off to a runner
    /// (the deliveries of one claim for one endpoint): one result per input,
    /// in order. Never panics.
    pub async fn run_many(self: &Arc<Self>, script: Arc<Script>, endpoint: &str, inputs: Vec<Input>) -> Vec<Ran> {
        let count = inputs.len();
        let (reply, result) = oneshot::channel();
        let batch = Batch { script, endpoint: endpoint.to_owned(), inputs, reply };
        self.queue.lock().unwrap_or_else(|e| e.into_inner()).push_back(batch);
        if let Ok(permit) = Arc::clone(&self.permits).try_acquire_owned() {
            let this = Arc::clone(self);
            tokio::task::spawn_blocking(move || this.runner(permit));
        }
        result.await.unwrap_or_else(|_| (0..count).map(|_| Ran::failed()).collect())
    }

    /// Takes queued batches until none is left. A batch queued while every
    /// permit was held is taken by a holder: each looks at the queue again
    /// after giving its permit back.
    fn runner(&self, mut permit: tokio::sync::OwnedSemaphorePermit) {
        loop {
            while let Some(batch) = self.queue.lock().unwrap_or_else(|e| e.into_inner()).pop_front() {
                let mut ran = Vec::with_capacity(batch.inputs.len());
                for (body, tenant) in &batch.inputs {
                    if batch.reply.is_closed() {
                        break; // its deliveries were abandoned (shutdown): nobody waits for the bodies
                    }
                    let (started_at, clock) = (SystemTime::now(), Instant::now());
                    let run = || self.run_blocking(&batch.script, &batch.endpoint, body, tenant.as_deref());
                    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(run))
                        .unwrap_or_else(|_| Err(TransformError("the script engine failed".into())));
                    ran.push(Ran { result, started_at, took: clock.elapsed() });
                }
                let _ = batch.reply.send(ran);
            }
            drop(permit);
            if self.queue.lock().unwrap_or_else(|e| e.into_inner()).is_empty() {
                return;
            }
            match Arc::clone(&self.permits).try_acquire_owned() {
                Ok(again) => permit = again,
                Err(_) => return,
            }
        }
    }

    /// Runs `script` on this thread, within `transform.timeout_ms`: the
    /// envelope `body` (plus `tenant`) in, the JSON body to send out.
    pub fn run_blocking(
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
        DEADLINE.set(Some(Instant::now() + timeout));
        let result = SCOPE.with_borrow_mut(|scope| {
            scope.clear().push("event", event);
            let result = self.engine.eval_ast_with_scope::<Dynamic>(scope, &script.ast);
            scope.clear();
            result
        });
        DEADLINE.set(None);
        let result = result.map_err(|e| fail(self.describe(&e)))?;
        if result.is_unit() {
            return Err(fail("the script's last expression has no value (it must be the body to send)".into()));
        }
        self.check_limits(&result, 0, "the result")?;
        let bytes = serde_json::to_vec(&result).map_err(|e| fail(format!("the result is not JSON: {e}")))?;
        if bytes.len() > self.max_payload_bytes {
            return Err(fail(format!(
                "body is {} bytes, over delivery.max_payload_bytes ({})",
                bytes.len(),
                self.max_payload_bytes
            )));
        }
        Ok(Bytes::from(bytes))
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
            EvalAltResult::ErrorTerminated(..) => format!("deadline of {} ms exceeded", l.timeout_ms),
            EvalAltResult::ErrorStackOverflow(_) => format!("call depth limit exceeded ({})", l.max_call_depth),
            EvalAltResult::ErrorTooManyVariables(_) => format!("variables limit exceeded ({})", l.max_variables),
            EvalAltResult::ErrorTooManyModules(_) => "modules are not allowed".into(),
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
            EvalAltResult::ErrorRuntime(value, pos) if !pos.is_none() => {
                format!("runtime error: {value} ({pos})")
            }
            _ => format!("runtime error: {}", err.to_string().replace('\n', "; ")),
        }
    }
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
        let limits = TransformConfig { timeout_ms: 10_000, max_map_len: 500, max_array_len: 500, ..Default::default() };
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
