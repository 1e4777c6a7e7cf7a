//! Benchmark (SPEC §7): throughput from committed outbox rows to recorded 2xx, and commit-to-receiver latency.
//!
//! ```text
//! cargo run --release --example bench -- throughput [EVENTS] [ENDPOINTS] [REPLICAS] [RETAINED]
//!                                                     # default 100000 1 1 0
//! cargo run --release --example bench -- tenants [EVENTS] [ENDPOINTS]      # default 100000 1000
//! cargo run --release --example bench -- latency [RATE] [SECONDS]          # default 1000 10
//! cargo run --release --example bench -- memory [PENDING]                  # default 1000000
//! ```
//! `memory` leaves PENDING deliveries pending (their endpoint is paused) while
//! 100,000 others are delivered, and reports the process's peak resident set.
//! REPLICAS runs that many sidecars side by side; RETAINED first fills the
//! tables with that many finished deliveries (history that must not slow claims).
//! `tenants` is `throughput` with each endpoint given a tenant of its own and
//! each event routed to one of them (round robin): one delivery per event.
//! Uses the PostgreSQL the test suite would use, in a fresh database dropped
//! at the end, and a loopback receiver answering 200 in this process.

use axum::http::HeaderMap;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tailhook::local_pg;
use tokio_util::sync::CancellationToken;

// The same allocator as the binary.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Default)]
struct Stats {
    received: AtomicU64,
    /// event id → moment its transaction was sent COMMIT (latency mode).
    sent: Mutex<HashMap<String, Instant>>,
    latencies_us: Mutex<Vec<u64>>,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mode = args.first().map(String::as_str).unwrap_or("throughput");
    let num = |i: usize, default: u64| args.get(i).and_then(|a| a.parse().ok()).unwrap_or(default);
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()))
        .with_writer(std::io::stderr)
        .init();
    let pg = local_pg::find_or_start()?;
    let stats = Arc::new(Stats::default());
    let addr = start_receiver(stats.clone());
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    rt.block_on(async {
        let name = format!("tailhook_bench_{}", std::process::id());
        let admin = connect(&pg.admin_url).await;
        admin.batch_execute(&format!("CREATE DATABASE {name}")).await?;
        let url = pg.url_for(&name);
        let result = match mode {
            "latency" => latency(&url, addr, &stats, num(1, 1000), num(2, 10)).await,
            "memory" => memory(&url, addr, num(1, 1_000_000)).await,
            "tenants" => {
                let shape = Shape {
                    events: num(1, 100_000),
                    endpoints: num(2, 1000),
                    replicas: 1,
                    retained: 0,
                    by_tenant: true,
                };
                throughput(&url, addr, &stats, shape).await
            }
            _ => {
                let (events, endpoints, replicas, retained) = (num(1, 100_000), num(2, 1), num(3, 1), num(4, 0));
                throughput(&url, addr, &stats, Shape { events, endpoints, replicas, retained, by_tenant: false }).await
            }
        };
        admin.batch_execute(&format!("DROP DATABASE {name} WITH (FORCE)")).await?;
        result
    })
}

async fn connect(url: &str) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls).await.expect("connect");
    tokio::spawn(conn);
    client
}

/// Defaults, then any `TAILHOOK_*` variables (to try settings), then the bench's database.
fn config(url: &str) -> tailhook::Config {
    let mut c = tailhook::Config::load(std::path::Path::new("/nonexistent/bench.toml"), false).expect("config");
    c.database.url = tailhook::secret::DatabaseUrl::new(url);
    c.delivery.allow_private_networks = true;
    // Replicas run side by side in this process: no HTTP listener.
    c.server.listen = String::new();
    c
}

async fn setup(url: &str, addr: std::net::SocketAddr, endpoints: u64, by_tenant: bool) -> tokio_postgres::Client {
    let mut client = connect(url).await;
    tailhook::db::migrate(&mut client).await.expect("migrate");
    for i in 0..endpoints {
        client
            .execute(
                "INSERT INTO tailhook.endpoints (name, url, secrets, tenant) VALUES ($1, $2, '{whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw}', $3)",
                &[&format!("ep{i}"), &format!("http://{addr}/hook/{i}"), &by_tenant.then(|| format!("t{i}"))],
            )
            .await
            .expect("endpoint");
    }
    client
}

/// What a throughput run publishes, and to how many endpoints and replicas.
struct Shape {
    events: u64,
    endpoints: u64,
    replicas: u64,
    retained: u64,
    /// Each endpoint has a tenant of its own; each event goes to one of them.
    by_tenant: bool,
}

async fn throughput(
    url: &str,
    addr: std::net::SocketAddr,
    stats: &Stats,
    shape: Shape,
) -> Result<(), Box<dyn std::error::Error>> {
    let Shape { events, endpoints, replicas, retained, by_tenant } = shape;
    let client = setup(url, addr, endpoints, by_tenant).await;
    if retained > 0 {
        let filled = Instant::now();
        client
            .batch_execute(&format!(
                "INSERT INTO tailhook.outbox (event_type, payload, dispatched_at)
                   SELECT 'old', jsonb_build_object('n', g), now() FROM generate_series(1, {retained}) g;
                 INSERT INTO tailhook.deliveries (outbox_id, endpoint_id, status, attempts, next_attempt_at, completed_at)
                   SELECT o.id, (SELECT min(id) FROM tailhook.endpoints), 'succeeded', 1, NULL, now() FROM tailhook.outbox o;
                 INSERT INTO tailhook.attempts (delivery_id, attempt, started_at, duration_ms, status_code)
                   SELECT id, 1, now(), 1, 200 FROM tailhook.deliveries;"
            ))
            .await?;
        for table in ["outbox", "deliveries", "attempts"] {
            client.batch_execute(&format!("VACUUM ANALYZE tailhook.{table}")).await?;
        }
        // Write the fill out now, so its checkpoint does not land in the measurement.
        client.batch_execute("CHECKPOINT").await?;
        println!("retained {retained} finished deliveries (filled in {:.0} s)", filled.elapsed().as_secs_f64());
    }
    client
        .execute(
            "INSERT INTO tailhook.outbox (event_type, payload, tenant)
             SELECT 'invoice.paid', jsonb_build_object('invoice', g, 'amount', g % 1000, 'currency', 'EUR'),
                    CASE WHEN $3 THEN 't' || g % $2::bigint END
               FROM generate_series(1, $1::bigint) g",
            &[&(events as i64), &(endpoints as i64), &by_tenant],
        )
        .await?;
    let expected = if by_tenant { events } else { events * endpoints };
    println!("published {events} events x {endpoints} endpoint(s) = {expected} deliveries, {replicas} replica(s)");
    let shutdown = CancellationToken::new();
    let start = Instant::now();
    let sidecars: Vec<_> = (0..replicas).map(|_| tokio::spawn(tailhook::run(config(url), shutdown.clone()))).collect();
    let mut peak_rss = 0;
    loop {
        tokio::time::sleep(Duration::from_millis(50)).await;
        peak_rss = peak_rss.max(rss_kib());
        let row = client
            .query_one(
                "SELECT (SELECT count(*) FROM tailhook.outbox WHERE dispatched_at IS NULL),
                        (SELECT count(*) FROM tailhook.deliveries WHERE status IN ('pending', 'retrying'))",
                &[],
            )
            .await?;
        if row.get::<_, i64>(0) == 0 && row.get::<_, i64>(1) == 0 {
            break;
        }
    }
    let elapsed = start.elapsed();
    shutdown.cancel();
    for sidecar in sidecars {
        sidecar.await??;
    }
    let succeeded = client
        .query_one("SELECT count(*) FROM tailhook.deliveries WHERE status = 'succeeded'", &[])
        .await?
        .get::<_, i64>(0)
        - retained as i64;
    let received = stats.received.load(Ordering::Relaxed);
    println!(
        "{succeeded} deliveries succeeded in {:.2} s: {:.0} deliveries/s; receiver got {received} ({} duplicates); peak RSS {} MiB (process incl. receiver)",
        elapsed.as_secs_f64(),
        succeeded as f64 / elapsed.as_secs_f64(),
        received.saturating_sub(expected),
        peak_rss / 1024
    );
    assert_eq!(succeeded as u64, expected, "every delivery succeeded");
    Ok(())
}

async fn latency(
    url: &str,
    addr: std::net::SocketAddr,
    stats: &Stats,
    rate: u64,
    seconds: u64,
) -> Result<(), Box<dyn std::error::Error>> {
    let mut client = setup(url, addr, 1, false).await;
    let shutdown = CancellationToken::new();
    let sidecar = tokio::spawn(tailhook::run(config(url), shutdown.clone()));
    tokio::time::sleep(Duration::from_secs(1)).await;
    let total = rate * seconds;
    let interval = Duration::from_secs_f64(1.0 / rate as f64);
    let start = tokio::time::Instant::now();
    for i in 0..total {
        tokio::time::sleep_until(start + interval * i as u32).await;
        let tx = client.transaction().await?;
        let id: String = tx.query_one("SELECT tailhook.publish('tick', '{\"n\": 1}')::text", &[]).await?.get(0);
        stats.sent.lock().unwrap().insert(id, Instant::now());
        tx.commit().await?;
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while stats.received.load(Ordering::Relaxed) < total && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    shutdown.cancel();
    sidecar.await??;
    let mut lat = stats.latencies_us.lock().unwrap().clone();
    lat.sort_unstable();
    let pct =
        |p: f64| lat.get(((lat.len() as f64 * p) as usize).min(lat.len().saturating_sub(1))).copied().unwrap_or(0);
    println!(
        "{} of {total} events at {rate}/s, one transaction each: commit-to-receiver p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        lat.len(),
        pct(0.50) as f64 / 1000.0,
        pct(0.99) as f64 / 1000.0,
        lat.last().copied().unwrap_or(0) as f64 / 1000.0
    );
    Ok(())
}

async fn memory(url: &str, addr: std::net::SocketAddr, pending: u64) -> Result<(), Box<dyn std::error::Error>> {
    let client = setup(url, addr, 2, false).await;
    client
        .batch_execute(
            "UPDATE tailhook.endpoints SET event_types = '{held}', paused_until = now() + interval '1 day' WHERE name = 'ep0';
             UPDATE tailhook.endpoints SET event_types = '{sent}' WHERE name = 'ep1';",
        )
        .await?;
    let insert = "INSERT INTO tailhook.outbox (event_type, payload)
                  SELECT $1, jsonb_build_object('n', g, 'text', repeat('x', 200)) FROM generate_series(1, $2::bigint) g";
    client.execute(insert, &[&"held", &(pending as i64)]).await?;
    client.execute(insert, &[&"sent", &100_000i64]).await?;
    let shutdown = CancellationToken::new();
    let sidecar = tokio::spawn(tailhook::run(config(url), shutdown.clone()));
    let mut peak_rss = 0;
    loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        peak_rss = peak_rss.max(rss_kib());
        let row = client
            .query_one(
                "SELECT (SELECT count(*) FROM tailhook.outbox WHERE dispatched_at IS NULL),
                        (SELECT count(*) FROM tailhook.deliveries d JOIN tailhook.endpoints e ON e.id = d.endpoint_id
                          WHERE e.name = 'ep1' AND d.status <> 'succeeded')",
                &[],
            )
            .await?;
        if row.get::<_, i64>(0) == 0 && row.get::<_, i64>(1) == 0 {
            break;
        }
    }
    // Keep running a few polls with everything pending.
    for _ in 0..30 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        peak_rss = peak_rss.max(rss_kib());
    }
    shutdown.cancel();
    sidecar.await??;
    let held: i64 =
        client.query_one("SELECT count(*) FROM tailhook.deliveries WHERE status = 'pending'", &[]).await?.get(0);
    println!(
        "{held} deliveries pending, 100000 delivered meanwhile: peak RSS {} MiB (process incl. receiver)",
        peak_rss / 1024
    );
    Ok(())
}

/// A receiver on its own thread and runtime, answering 200 at once.
fn start_receiver(stats: Arc<Stats>) -> std::net::SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().unwrap();
    listener.set_nonblocking(true).unwrap();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async move {
            let app = axum::Router::new().fallback(move |headers: HeaderMap| {
                let stats = stats.clone();
                async move {
                    let now = Instant::now();
                    stats.received.fetch_add(1, Ordering::Relaxed);
                    if let Some(id) = headers.get("webhook-id").and_then(|v| v.to_str().ok()) {
                        if let Some(sent) = stats.sent.lock().unwrap().get(id) {
                            stats.latencies_us.lock().unwrap().push(now.duration_since(*sent).as_micros() as u64);
                        }
                    }
                    "ok"
                }
            });
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            axum::serve(listener, app).await.unwrap();
        });
    });
    addr
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmRSS:")).and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}
