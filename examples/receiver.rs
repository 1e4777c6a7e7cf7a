//! The benchmark's webhook receiver: a separate process answering 200 to every POST, counting requests and, on request, recording when each arrived.
//!
//! ```text
//! cargo run --release --example receiver [-- --record-times]
//! ```
//! Binds `127.0.0.1:0` and prints `listening ADDR` on its first line.
//! `GET /stats` answers `{"received": N}`. With `--record-times`, each
//! request's `webhook-id` and arrival time (Unix nanoseconds, the system
//! clock) are kept, and `GET /times` answers them as `id nanos` lines.

use axum::extract::State;
use axum::http::{HeaderMap, Method};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

#[derive(Default)]
struct Stats {
    received: AtomicU64,
    record_times: bool,
    times: Mutex<Vec<(String, u128)>>,
}

async fn handle(State(stats): State<Arc<Stats>>, method: Method, uri: axum::http::Uri, headers: HeaderMap) -> String {
    if method == Method::GET && uri.path() == "/stats" {
        return format!("{{\"received\": {}}}", stats.received.load(Ordering::Relaxed));
    }
    if method == Method::GET && uri.path() == "/times" {
        let times = stats.times.lock().unwrap();
        return times.iter().map(|(id, ns)| format!("{id} {ns}\n")).collect();
    }
    if stats.record_times {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_nanos();
        if let Some(id) = headers.get("webhook-id").and_then(|v| v.to_str().ok()) {
            stats.times.lock().unwrap().push((id.to_owned(), now));
        }
    }
    stats.received.fetch_add(1, Ordering::Relaxed);
    "ok".to_owned()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> std::io::Result<()> {
    let stats = Arc::new(Stats { record_times: std::env::args().any(|a| a == "--record-times"), ..Default::default() });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    println!("listening {}", listener.local_addr()?);
    let app = axum::Router::new().fallback(handle).with_state(stats);
    axum::serve(listener, app).await
}
