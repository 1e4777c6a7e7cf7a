//! Integration tests: the whole sidecar against a real PostgreSQL and a real HTTP receiver on 127.0.0.1.

// The sidecar runs in-process: count memory as the binary does (transforms' memory cap).
#[global_allocator]
static ALLOCATOR: alloc_meter::Meter = alloc_meter::Meter;

mod support;

mod api;
mod browser;
mod capture;
mod claims;
mod cli;
mod commands;
mod config_file;
mod console;
mod console_endpoints;
mod delivery;
mod delivery_log;
mod deploy;
mod docs;
mod egress;
mod first_run;
mod guarantees;
mod hostile;
mod migrating_guide;
mod mtls;
mod network;
mod operate;
mod operational;
mod ordered_backlog;
mod partitions;
mod pipeline;
mod policy;
mod pooler;
mod portal;
mod retention;
mod roles;
mod routing;
mod schema;
mod schema_file;
mod schema_tools;
mod sealing;
mod signatures;
mod sql_privileges;
mod takeover;
mod tls;
mod tracing;
mod transforms;
