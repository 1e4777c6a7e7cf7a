//! `[transform]`: the bounds every endpoint transform runs within, read by the config and applied by the engine.

use serde::{Deserialize, Serialize};

/// `[transform]`: the bounds every endpoint transform runs within.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TransformConfig {
    /// Script operations per run (each expression, call or loop turn counts).
    pub max_operations: u64,
    /// Nested function calls.
    pub max_call_depth: usize,
    /// Nesting of expressions and statements (also the deepest event accepted).
    pub max_expr_depth: usize,
    /// Longest string, in bytes.
    pub max_string_bytes: usize,
    /// Most elements in one array.
    pub max_array_len: usize,
    /// Most keys in one object map.
    pub max_map_len: usize,
    /// Most variables in scope at once (`event` counts).
    pub max_variables: usize,
    /// Wall-clock deadline of one run.
    pub timeout_ms: u64,
    /// Memory one run may hold beyond its event (counted by the allocator).
    pub max_memory_bytes: usize,
    /// Scripts running at once; 0: one per CPU.
    pub concurrency: usize,
}

impl Default for TransformConfig {
    fn default() -> Self {
        Self {
            max_operations: 1_000_000,
            max_call_depth: 32,
            max_expr_depth: 64,
            max_string_bytes: 1 << 20,
            max_array_len: 10_000,
            max_map_len: 10_000,
            max_variables: 256,
            timeout_ms: 50,
            max_memory_bytes: 64 << 20,
            concurrency: 0,
        }
    }
}

impl TransformConfig {
    /// Scripts run at once: `concurrency`, or one per CPU.
    pub fn permits(&self) -> usize {
        match self.concurrency {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        }
    }
}

/// Deepest `transform.max_call_depth`: each call takes thread stack.
pub const MAX_TRANSFORM_CALL_DEPTH: usize = 64;
