//! tailhook: turns rows in a PostgreSQL outbox table into signed, retried webhooks, recorded in the same database.
//!
//! The binary is a thin shell over [`run`]; tests run the whole sidecar in-process:
//!
//! ```no_run
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! let config = tailhook::Config::load(std::path::Path::new("config.toml"))?;
//! let shutdown = tokio_util::sync::CancellationToken::new();
//! tailhook::run(config, shutdown).await?;
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]

mod claim;
pub mod cli;
pub mod config;
pub mod db;
mod endpoints;
pub mod guard;
mod limits;
mod listener;
pub mod local_pg;
pub mod outcome;
mod recorder;
mod redeliver;
pub mod schedule;
pub mod secret;
mod sender;
mod sidecar;
pub mod signing;
mod throttle;
mod worker;

pub use config::Config;
pub use sidecar::{run, RunError};
