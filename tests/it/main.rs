//! Integration tests: the whole sidecar against a real PostgreSQL and a real HTTP receiver on 127.0.0.1.

mod support;

mod cli;
mod delivery;
mod pipeline;
mod policy;
mod routing;
mod schema;
