//! `[transform]`'s checks (the section itself is the engine's: `transform::TransformConfig`).

use super::{invalid, positive, ConfigError, TransformConfig, MAX_PAYLOAD_BYTES, MAX_TRANSFORM_CALL_DEPTH};

/// `[transform]`'s keys within their bounds.
pub(super) fn validate_transform(t: &TransformConfig) -> Result<(), ConfigError> {
    for (key, value, max) in [
        ("transform.max_operations", t.max_operations, 1_000_000_000),
        ("transform.max_call_depth", t.max_call_depth as u64, MAX_TRANSFORM_CALL_DEPTH as u64),
        ("transform.max_expr_depth", t.max_expr_depth as u64, 1_000),
        ("transform.max_string_bytes", t.max_string_bytes as u64, MAX_PAYLOAD_BYTES as u64),
        // Each level a value can nest takes runner stack (see transform/mod.rs).
        ("transform.max_array_len", t.max_array_len as u64, 100_000),
        ("transform.max_map_len", t.max_map_len as u64, 100_000),
        ("transform.max_variables", t.max_variables as u64, 100_000),
        ("transform.timeout_ms", t.timeout_ms, 60_000),
        ("transform.max_memory_bytes", t.max_memory_bytes as u64, 4 << 30),
    ] {
        positive(key, value)?;
        if value > max {
            return Err(invalid(key, format!("{value} is over the maximum of {max}")));
        }
    }
    if t.concurrency > 1_024 {
        return Err(invalid("transform.concurrency", format!("{} is over the maximum of 1024", t.concurrency)));
    }
    Ok(())
}
