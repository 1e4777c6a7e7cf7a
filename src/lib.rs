//! tailhook: turns rows in a PostgreSQL outbox table into signed, retried webhooks, recorded in the same database.
//!
//! The binary is a thin shell over [`run`]; tests run the whole sidecar in-process:
//!
//! ```no_run
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! let config = tailhook::Config::load(std::path::Path::new("config.toml"), false)?;
//! let shutdown = tokio_util::sync::CancellationToken::new();
//! tailhook::run(config, shutdown).await?;
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]

// The unit tests count memory as the binary does (transforms' memory cap).
#[cfg(test)]
#[global_allocator]
static ALLOCATOR: alloc_meter::Meter = alloc_meter::Meter;

pub mod commands;
pub mod config;
pub mod db;
pub mod egress;
pub mod guard;
mod log_throttle;
pub mod manage;
pub mod metrics;
mod operator;
mod partitions;
pub mod pipeline;
mod retention;
pub mod serve;
mod sidecar;
pub mod signing;
pub mod transform;

pub use config::{secret, Config};
pub use db::local_pg;
pub use sidecar::{run, RunError};
