//! The benchmark (BENCHMARKS.md): tailhook's release binary side by side with a peer, graphile-worker, against one receiver process, in alternating runs, with CPU per delivery for every process.
//!
//! ```text
//! cargo run --release --example bench -- ROW [OPTIONS]
//!   throughput   N events, one endpoint: tailhook vs graphile-worker 0.17.3, alternating
//!   fanout       N/4 events x 4 endpoints vs N events x 1 endpoint, alternating
//!   tenants      N events routed by tenant to 1,000 endpoints vs one endpoint, alternating
//!   retained     N events with --retained finished deliveries in the tables vs none, alternating
//!   latency      --rate events/s, one transaction each: commit -> receiver p50/p99,
//!                tailhook vs graphile-worker (same publisher), alternating
//!   steady       latency at each of --rates (default 1,000 and 200 events/s)
//!   memory       peak RSS of the sidecar with --pending deliveries pending
//!   transform    N events, one endpoint with a Slack-shaped transform
//!                (examples/transforms/slack.rhai) vs without: alternating,
//!                then side by side for the sidecar CPU the transform adds
//!   tracing      N events, one endpoint, every attempt's span exported over
//!                OTLP/HTTP to a local sink, and to a black-holed collector,
//!                vs tracing off: alternating, then side by side (sink vs off)
//!                for the sidecar CPU tracing adds
//!   all          every row above, in that order
//!   sustained    --rate events/s (default 2,000) for --minutes (20) with
//!                2-minute retention: this build, partitioned by 1 minute,
//!                beside --sidecar-b (DELETE retention) at the same time, each
//!                on a throwaway cluster of its own; table sizes, dead tuples,
//!                WAL and PostgreSQL CPU per delivery every minute, and
//!                retention's share of CPU and WAL (not in `all`)
//! ```
//! Each run gets a fresh database (dropped afterwards) on the server of
//! `--database-url` (default: the local one on 5432, `sslmode=disable`);
//! PostgreSQL's CPU is read from /proc for the postmaster of `--pg-data` and
//! all its children (exited ones through the postmaster's cutime/cstime),
//! and separately for the run's own backends; WAL bytes from
//! `pg_current_wal_lsn()` around each run, and its WAL records (index
//! insertions among them) from `pg_waldump --stats=record` over the same
//! range (`--pg-bin`; it reads `--pg-data`/pg_wal, so run as root or the
//! server's user). The sidecar is `tailhook run`
//! (release build) as a child process, the receiver is `examples/receiver.rs`
//! (or `bench/receiver.js`, single-threaded node, with `--receiver node`),
//! the peer is `bench/graphile-worker/run.js` with graphile-worker installed
//! from the npm registry into `~/.cache/tailhook-bench`. Every child process
//! is killed when the bench exits, on error and on Ctrl-C too.

use clap::{Parser, ValueEnum};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::io::AsyncBufReadExt;
use tokio::process::{Child, Command};

type Error = Box<dyn std::error::Error>;

#[derive(Debug, Parser)]
#[command(about = "tailhook's benchmark: ratios against a peer and CPU per delivery, measured in one run")]
struct Args {
    #[arg(value_enum)]
    row: Row,
    /// Alternating rounds (each round runs both sides once).
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Events per run (fanout: deliveries per run, as N/4 events x 4 endpoints).
    #[arg(long, default_value_t = 100_000)]
    events: u64,
    /// Finished deliveries filled in for `retained`.
    #[arg(long, default_value_t = 10_000_000)]
    retained: u64,
    /// Events per second for `latency` (default 1,000) and `sustained` (default 2,000).
    #[arg(long)]
    rate: Option<u64>,
    /// Minutes of publishing for `sustained`.
    #[arg(long, default_value_t = 20)]
    minutes: u64,
    /// Events per second for `steady`, each rate run in turn.
    #[arg(long, value_delimiter = ',', default_values_t = [1_000u64, 200])]
    rates: Vec<u64>,
    /// The receiver: `rust` (examples/receiver.rs, axum on 2 threads) or
    /// `node` (bench/receiver.js, node's http module, single-threaded).
    #[arg(long, value_enum, default_value_t = ReceiverKind::Rust)]
    receiver: ReceiverKind,
    /// The folder holding `pg_waldump` (of the server's major version).
    #[arg(long, env = "BENCH_PG_BIN", default_value = "/usr/lib/postgresql/15/bin")]
    pg_bin: PathBuf,
    /// Seconds of publishing per `latency` run.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Deliveries held pending for `memory`.
    #[arg(long, default_value_t = 1_000_000)]
    pending: u64,
    /// Superuser connection string of the server to measure.
    #[arg(
        long,
        env = "BENCH_DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
    )]
    database_url: String,
    /// That server's data directory (its postmaster.pid names the process whose CPU is read).
    #[arg(long, env = "BENCH_PG_DATA", default_value = "/var/lib/postgresql/15/main")]
    pg_data: PathBuf,
    /// Log the sidecar's claims and result writes (debug level) and print their sizes.
    #[arg(long)]
    claims: bool,
    /// Print each run's statements from pg_stat_statements (the server must preload it).
    #[arg(long)]
    statements: bool,
    /// Another `tailhook` binary (e.g. a build of another commit): `throughput`
    /// and `latency` then also run it in every round, for a same-run before/after.
    #[arg(long, value_name = "PATH")]
    sidecar_b: Option<PathBuf>,
    /// `latency` writes each round's events to DIR/latency-ROUND[-b].tsv:
    /// COMMIT acknowledged (Unix µs) and the latency from it (µs), in
    /// order of publishing, to find what the slowest share waited for.
    #[arg(long, value_name = "DIR")]
    series: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ReceiverKind {
    Rust,
    Node,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Row {
    Throughput,
    Fanout,
    Tenants,
    Retained,
    Latency,
    Steady,
    Memory,
    Transform,
    Tracing,
    All,
    Sustained,
}

/// What one measured run produced.
#[derive(Debug, Clone)]
struct Run {
    label: String,
    deliveries: u64,
    secs: f64,
    /// CPU seconds over the run: the worker (sidecar or node), all of
    /// PostgreSQL, the run's own backends, the receiver.
    worker_cpu: f64,
    pg_cpu: f64,
    backends_cpu: f64,
    receiver_cpu: f64,
    peak_rss_mib: u64,
    /// What the database wrote and spent from before the enqueue (the
    /// publish or add_jobs statement) to the end of the run.
    writes: Writes,
}

/// The write path of a run, read from before its enqueue to its end: WAL
/// bytes, whole-server PostgreSQL CPU, and (from pg_waldump) WAL records
/// by type, so that index insertions are counted, not estimated.
#[derive(Debug, Clone, Default)]
struct Writes {
    /// WAL bytes from the worker's start (the run alone) and from before the enqueue.
    wal_run: u64,
    wal_all: u64,
    /// PostgreSQL's whole tree, CPU seconds, from before the enqueue.
    pg_cpu_all: f64,
    /// Records by type (`Btree/INSERT_LEAF`, `Heap/HOT_UPDATE`, ...; `+INIT`
    /// folded in) from before the enqueue; empty when pg_waldump could not run.
    records: Vec<(String, u64)>,
    /// Bytes of full-page images, attached to any record type.
    fpi_bytes: u64,
    waldump_error: Option<String>,
}

impl Writes {
    fn count(&self, kind: &str) -> u64 {
        self.records.iter().filter(|(k, _)| k == kind).map(|(_, n)| n).sum()
    }
    /// Index entries written: B-tree leaf inserts, posting-list inserts and
    /// splits (each split record carries the new entry).
    fn index_inserts(&self) -> u64 {
        ["Btree/INSERT_LEAF", "Btree/INSERT_POST", "Btree/SPLIT_L", "Btree/SPLIT_R"].iter().map(|k| self.count(k)).sum()
    }
    /// One line: WAL and index insertions per delivery, the heap's records, the top record types.
    fn describe(&self, deliveries: u64) -> String {
        let n = deliveries.max(1) as f64;
        let per = |x: u64| x as f64 / n;
        let mut line = format!(
            "WAL B/delivery {:.0} (enqueue included {:.0}); PostgreSQL whole server, enqueue included, {:.0} µs/delivery",
            per(self.wal_run),
            per(self.wal_all),
            self.pg_cpu_all * 1e6 / n
        );
        if let Some(e) = &self.waldump_error {
            line.push_str(&format!("; no WAL records ({e})"));
            return line;
        }
        line.push_str(&format!(
            "; per delivery, enqueue included: index inserts {:.2}, heap insert {:.2}, update {:.2}, HOT update {:.2}, delete {:.2}, lock {:.2}, full-page image bytes {:.0}",
            per(self.index_inserts()),
            per(self.count("Heap/INSERT") + self.count("Heap2/MULTI_INSERT")),
            per(self.count("Heap/UPDATE")),
            per(self.count("Heap/HOT_UPDATE")),
            per(self.count("Heap/DELETE")),
            per(self.count("Heap/LOCK")),
            per(self.fpi_bytes),
        ));
        let mut top = self.records.clone();
        top.sort_by_key(|r| std::cmp::Reverse(r.1));
        let top: Vec<String> = top.iter().take(8).map(|(k, c)| format!("{k} {:.2}", per(*c))).collect();
        line.push_str(&format!("\n        records/delivery: {}", top.join(", ")));
        line
    }
}

impl Run {
    fn rate(&self) -> f64 {
        self.deliveries as f64 / self.secs
    }
    fn us(&self, cpu: f64) -> f64 {
        cpu * 1e6 / self.deliveries as f64
    }
    fn print(&self, round: usize) {
        println!(
            "  round {round} {:<24} {:>8} deliveries in {:>6.2} s = {:>7.0}/s | CPU µs/delivery: worker {:>5.0}, PostgreSQL {:>5.0} (its backends {:>5.0}), receiver {:>4.0} | peak RSS {} MiB",
            self.label,
            self.deliveries,
            self.secs,
            self.rate(),
            self.us(self.worker_cpu),
            self.us(self.pg_cpu),
            self.us(self.backends_cpu),
            self.us(self.receiver_cpu),
            self.peak_rss_mib
        );
        println!("        {}", self.writes.describe(self.deliveries));
    }
}

fn main() -> Result<(), Error> {
    let args = Args::parse();
    if cfg!(debug_assertions) {
        return Err("build the bench with --release: it runs the release binary beside it".into());
    }
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    rt.block_on(async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        // On a signal the bench's future is dropped, and with it every child (kill_on_drop).
        tokio::select! {
            result = bench(args) => result,
            _ = tokio::signal::ctrl_c() => Err("interrupted".into()),
            _ = term.recv() => Err("terminated".into()),
        }
    })
}

async fn bench(args: Args) -> Result<(), Error> {
    if args.row == Row::Sustained {
        // Its own servers: the one of --database-url is not needed.
        return sustained(&Env::local(&args)?, &args).await;
    }
    let env = Env::prepare(&args).await?;
    let rows = match args.row {
        Row::All => {
            vec![
                Row::Throughput,
                Row::Fanout,
                Row::Latency,
                Row::Steady,
                Row::Retained,
                Row::Tenants,
                Row::Memory,
                Row::Transform,
                Row::Tracing,
            ]
        }
        row => vec![row],
    };
    let commit = git(&["rev-parse", "--short", "HEAD"]);
    let dirty = if git(&["status", "--porcelain", "--untracked-files=no"]).is_empty() {
        ""
    } else {
        " (+ uncommitted changes)"
    };
    println!(
        "tailhook bench at {commit}{dirty}; PostgreSQL {} (postmaster {}); {} cores; {} rounds",
        env.pg_version,
        env.postmaster,
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        args.rounds
    );
    for row in rows {
        match row {
            Row::Throughput => throughput(&env, &args).await?,
            Row::Fanout => {
                compare(&env, &args, "fanout", Shape::single(args.events), Shape::fanout(args.events)).await?
            }
            Row::Tenants => {
                compare(&env, &args, "tenants", Shape::single(args.events), Shape::tenants(args.events)).await?
            }
            Row::Retained => retained(&env, &args).await?,
            Row::Latency => latency(&env, &args).await?,
            Row::Steady => steady(&env, &args, &args.rates).await?,
            Row::Memory => memory(&env, &args).await?,
            Row::Transform => transform(&env, &args).await?,
            Row::Tracing => tracing(&env, &args).await?,
            Row::All | Row::Sustained => unreachable!(),
        }
    }
    Ok(())
}

/// Everything a run needs: binaries, the server, the peer's install.
struct Env {
    tailhook: PathBuf,
    tailhook_b: Option<PathBuf>,
    receiver: PathBuf,
    config: PathBuf,
    cache: PathBuf,
    admin_url: String,
    postmaster: i32,
    pg_version: String,
    tick: f64,
    claims: bool,
    statements: bool,
    node_receiver: bool,
    /// pg_waldump, and the server's pg_wal folder it reads.
    waldump: PathBuf,
    pg_wal: PathBuf,
}

impl Env {
    /// The binaries, the cache and its config, without the server of
    /// `--database-url` (whose fields [`Env::prepare`] fills in).
    fn local(args: &Args) -> Result<Self, Error> {
        // The binaries live beside this one: target/release/{tailhook, examples/receiver}.
        let release =
            std::env::current_exe()?.parent().and_then(Path::parent).map(Path::to_path_buf).ok_or("no exe dir")?;
        for bin in [release.join("tailhook"), release.join("examples/receiver")] {
            if !bin.is_file() {
                return Err(
                    format!("{} is missing: cargo build --release --bin tailhook --examples", bin.display()).into()
                );
            }
        }
        let cache = std::env::var_os("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
            .ok_or("no HOME for the cache folder")?
            .join("tailhook-bench");
        std::fs::create_dir_all(&cache)?;
        let config = cache.join("tailhook.toml");
        std::fs::write(
            &config,
            "# Written by examples/bench.rs: defaults, plus what a loopback benchmark needs.\n\
             [delivery]\nallow_private_networks = true\n[server]\nlisten = \"\"\n[log]\nlevel = \"warn\"\nsummary_interval_ms = 0\n",
        )?;
        let tick = String::from_utf8(std::process::Command::new("getconf").arg("CLK_TCK").output()?.stdout)?
            .trim()
            .parse::<f64>()?;
        Ok(Self {
            tailhook: release.join("tailhook"),
            tailhook_b: args.sidecar_b.clone(),
            receiver: release.join("examples").join("receiver"),
            config,
            cache,
            admin_url: args.database_url.clone(),
            postmaster: 0,
            pg_version: String::new(),
            tick,
            claims: args.claims,
            statements: args.statements,
            node_receiver: args.receiver == ReceiverKind::Node,
            waldump: args.pg_bin.join("pg_waldump"),
            pg_wal: args.pg_data.join("pg_wal"),
        })
    }

    /// [`Env::local`] and the server of `--database-url`.
    async fn prepare(args: &Args) -> Result<Self, Error> {
        let mut env = Self::local(args)?;
        env.postmaster = postmaster_pid(&args.pg_data)
            .map_err(|e| format!("cannot read {}/postmaster.pid (--pg-data): {e}", args.pg_data.display()))?;
        let admin = connect(&args.database_url).await?;
        env.pg_version = admin.query_one("SHOW server_version", &[]).await?.get(0);
        Ok(env)
    }

    /// graphile-worker 0.17.3 from the npm registry, installed once into the cache.
    fn peer(&self) -> Result<PathBuf, Error> {
        let dir = self.cache.join("graphile-worker-0.17.3");
        let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("bench/graphile-worker");
        if !dir.join("node_modules/graphile-worker/package.json").is_file() {
            std::fs::create_dir_all(&dir)?;
            std::fs::copy(source.join("package.json"), dir.join("package.json"))?;
            println!("installing graphile-worker 0.17.3 into {}", dir.display());
            let ok = std::process::Command::new("npm")
                .args(["install", "--no-audit", "--no-fund", "--loglevel=error"])
                .current_dir(&dir)
                .status()?
                .success();
            if !ok {
                return Err("npm install graphile-worker failed".into());
            }
        }
        Ok(dir)
    }

    /// CPU seconds of every PostgreSQL process so far: the postmaster, its
    /// live children, and (through cutime/cstime) the children it reaped.
    fn pg_cpu(&self) -> f64 {
        self.tree_cpu(self.postmaster)
    }

    /// CPU seconds so far of the postmaster `postmaster` and its children,
    /// live and reaped.
    fn tree_cpu(&self, postmaster: i32) -> f64 {
        let mut ticks = proc_ticks(postmaster).map_or(0, |t| t.own + t.children);
        for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else { continue };
            if let Some(t) = proc_ticks(pid).filter(|t| t.ppid == postmaster) {
                ticks += t.own + t.children;
            }
        }
        ticks as f64 / self.tick
    }

    fn cpu(&self, pid: Option<u32>) -> f64 {
        pid.and_then(|p| proc_ticks(p as i32)).map_or(0.0, |t| t.own as f64 / self.tick)
    }

    /// The `tailhook` binary a run uses: this build's, or `--sidecar-b` when `b`.
    fn binary(&self, b: bool) -> Result<&PathBuf, Error> {
        if b {
            self.tailhook_b.as_ref().ok_or_else(|| "no --sidecar-b".into())
        } else {
            Ok(&self.tailhook)
        }
    }
}

/// The postmaster's process id, from the data directory's postmaster.pid.
fn postmaster_pid(data: &Path) -> Result<i32, Error> {
    let pid = std::fs::read_to_string(data.join("postmaster.pid"))?;
    Ok(pid.lines().next().and_then(|l| l.trim().parse().ok()).ok_or("bad postmaster.pid")?)
}

struct Ticks {
    ppid: i32,
    own: u64,
    children: u64,
}

/// utime+stime and cutime+cstime of a process, from /proc/PID/stat.
fn proc_ticks(pid: i32) -> Option<Ticks> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let n = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok());
    Some(Ticks { ppid: n(1)? as i32, own: n(11)? + n(12)?, children: n(13)? + n(14)? })
}

fn peak_rss_mib(pid: Option<u32>) -> u64 {
    let status = pid.and_then(|p| std::fs::read_to_string(format!("/proc/{p}/status")).ok()).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |kib| kib / 1024)
}

fn git(args: &[&str]) -> String {
    std::process::Command::new("git")
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}

async fn connect(url: &str) -> Result<tokio_postgres::Client, Error> {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
    tokio::spawn(conn);
    Ok(client)
}

/// A fresh database for one run, dropped by [`Db::drop_now`].
struct Db {
    name: String,
    url: String,
    client: tokio_postgres::Client,
}

async fn fresh_db(env: &Env) -> Result<Db, Error> {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let name = format!("tailhook_bench_{}_{n}", std::process::id());
    let admin = connect(&env.admin_url).await?;
    admin.batch_execute(&format!("CREATE DATABASE {name}")).await?;
    let url = tailhook::db::local_pg::with_database(&env.admin_url, &name);
    let client = connect(&url).await?;
    if env.statements {
        client.batch_execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements").await?;
    }
    Ok(Db { name, url, client })
}

impl Db {
    async fn drop_now(self, env: &Env) -> Result<(), Error> {
        drop(self.client);
        let admin = connect(&env.admin_url).await?;
        admin.batch_execute(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name)).await?;
        Ok(())
    }
}

/// The receiver process, answering 200.
struct Receiver {
    child: Child,
    addr: String,
    http: reqwest::Client,
}

impl Receiver {
    async fn start(env: &Env, record_times: bool) -> Result<Self, Error> {
        let mut cmd = if env.node_receiver {
            let mut node = Command::new("node");
            node.arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("bench/receiver.js"));
            node
        } else {
            Command::new(&env.receiver)
        };
        if record_times {
            cmd.arg("--record-times");
        }
        let mut child = cmd.stdin(Stdio::null()).stdout(Stdio::piped()).kill_on_drop(true).spawn()?;
        let mut lines = tokio::io::BufReader::new(child.stdout.take().ok_or("no stdout")?).lines();
        let line = tokio::time::timeout(Duration::from_secs(10), lines.next_line()).await??.ok_or("receiver exited")?;
        let addr = line.strip_prefix("listening ").ok_or("receiver said something else")?.to_owned();
        Ok(Self { child, addr, http: reqwest::Client::builder().no_proxy().build()? })
    }

    async fn received(&self) -> Result<u64, Error> {
        let body = self.http.get(format!("http://{}/stats", self.addr)).send().await?.text().await?;
        let v: serde_json::Value = serde_json::from_str(&body)?;
        Ok(v["received"].as_u64().unwrap_or(0))
    }

    fn cpu(&self, env: &Env) -> f64 {
        env.cpu(self.child.id())
    }
}

/// What a tailhook run delivers: events, endpoints, routing.
#[derive(Debug, Clone)]
struct Shape {
    label: String,
    events: u64,
    endpoints: u64,
    /// Endpoint i has tenant `t<i>` and event g has tenant `t<g % endpoints>`.
    by_tenant: bool,
    /// Runs `--sidecar-b` instead of this build's binary.
    b: bool,
    /// Every endpoint has the Slack example as its transform.
    transform: bool,
    /// The OTLP collector's base URL: every attempt's span exported there.
    otlp: Option<String>,
}

impl Shape {
    fn single(events: u64) -> Self {
        Self {
            label: "tailhook 1 endpoint".into(),
            events,
            endpoints: 1,
            by_tenant: false,
            b: false,
            transform: false,
            otlp: None,
        }
    }
    fn fanout(deliveries: u64) -> Self {
        Self {
            label: "tailhook 4 endpoints".into(),
            events: deliveries / 4,
            endpoints: 4,
            by_tenant: false,
            b: false,
            transform: false,
            otlp: None,
        }
    }
    fn tenants(events: u64) -> Self {
        Self {
            label: "tailhook 1,000 by tenant".into(),
            events,
            endpoints: 1_000,
            by_tenant: true,
            b: false,
            transform: false,
            otlp: None,
        }
    }
    /// Deliveries it makes: each event goes to every endpoint, or to its tenant's one.
    fn deliveries(&self) -> u64 {
        if self.by_tenant {
            self.events
        } else {
            self.events * self.endpoints
        }
    }
}

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// Migrates with the binary the shape runs (`tailhook migrate`, so a
/// `--sidecar-b` run gets that build's schema and SQL functions) and adds the
/// shape's endpoints, pointing at the receiver.
async fn setup_tailhook(env: &Env, db: &Db, shape: &Shape, receiver: &Receiver) -> Result<(), Error> {
    let binary = env.binary(shape.b)?;
    let migrated = Command::new(binary)
        .arg("--config")
        .arg(&env.config)
        .arg("migrate")
        .env("TAILHOOK_DATABASE__URL", &db.url)
        .stdin(Stdio::null())
        .output()
        .await?;
    if !migrated.status.success() {
        return Err(format!("{} migrate: {}", binary.display(), String::from_utf8_lossy(&migrated.stderr)).into());
    }
    db.client
        .execute(
            "INSERT INTO tailhook.endpoints (name, url, tenant, secrets)
             SELECT 'ep' || i, $1 || i, CASE WHEN $2 THEN 't' || i END, ARRAY[$3]
               FROM generate_series(0, $4::bigint - 1) i",
            &[&format!("http://{}/hook/", receiver.addr), &shape.by_tenant, &SECRET, &(shape.endpoints as i64)],
        )
        .await?;
    if shape.transform {
        db.client.execute("UPDATE tailhook.endpoints SET transform = $1", &[&SLACK_TRANSFORM]).await?;
    }
    Ok(())
}

/// The transform of the `transform` row: the Slack example, on every delivery.
const SLACK_TRANSFORM: &str = include_str!("transforms/slack.rhai");

async fn publish(db: &Db, shape: &Shape) -> Result<(), Error> {
    db.client
        .execute(
            "INSERT INTO tailhook.outbox (event_type, payload, tenant)
             SELECT 'invoice.paid', jsonb_build_object('invoice', g, 'amount', g % 1000, 'currency', 'EUR'),
                    CASE WHEN $2 THEN 't' || (g % $3::bigint) END
               FROM generate_series(1, $1::bigint) g",
            &[&(shape.events as i64), &shape.by_tenant, &(shape.endpoints as i64)],
        )
        .await?;
    Ok(())
}

/// The server's WAL position and PostgreSQL's CPU at one moment (before an
/// enqueue, or at a worker's start).
#[derive(Debug, Clone)]
struct Mark {
    lsn: String,
    pg_cpu: f64,
}

impl Mark {
    async fn now(env: &Env, db: &Db) -> Result<Self, Error> {
        let lsn: String = db.client.query_one("SELECT pg_current_wal_lsn()::text", &[]).await?.get(0);
        Ok(Self { lsn, pg_cpu: env.pg_cpu() })
    }

    /// WAL bytes written since this mark, and the position now.
    async fn wal_since(&self, db: &Db) -> Result<(u64, String), Error> {
        let row = db
            .client
            .query_one(
                "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), $1::text::pg_lsn)::bigint, pg_current_wal_lsn()::text",
                &[&self.lsn],
            )
            .await?;
        Ok((row.get::<_, i64>(0) as u64, row.get(1)))
    }
}

/// What the server wrote since `from`: bytes, whole-server CPU, and the WAL's
/// records by type (pg_waldump between the two positions).
async fn writes_since(env: &Env, db: &Db, from: &Mark, run_start: &Mark) -> Result<Writes, Error> {
    let (wal_all, end) = from.wal_since(db).await?;
    let (wal_run, _) = run_start.wal_since(db).await?;
    let mut writes = Writes { wal_run, wal_all, pg_cpu_all: env.pg_cpu() - from.pg_cpu, ..Writes::default() };
    // pg_waldump reads the segment size from the file it starts in (named
    // here, with the last: left to find one, it may open a recycled file of
    // zeroes).
    let files = db
        .client
        .query_one("SELECT pg_walfile_name($1::text::pg_lsn), pg_walfile_name($2::text::pg_lsn)", &[&from.lsn, &end])
        .await?;
    match waldump_stats(env, (&files.get::<_, String>(0), &files.get::<_, String>(1)), &from.lsn, &end) {
        Ok((records, fpi_bytes)) => {
            writes.records = records;
            writes.fpi_bytes = fpi_bytes;
        }
        Err(e) => writes.waldump_error = Some(e.to_string()),
    }
    Ok(writes)
}

/// `pg_waldump --stats=record` between two positions: count per record type,
/// and the bytes of full-page images.
fn waldump_stats(
    env: &Env,
    (first, last): (&str, &str),
    start: &str,
    end: &str,
) -> Result<(Vec<(String, u64)>, u64), Error> {
    let out = std::process::Command::new(&env.waldump)
        .arg("--stats=record")
        .arg("-p")
        .arg(&env.pg_wal)
        .args(["-s", start, "-e", end, first, last])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{}: {e}", env.waldump.display()))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let mut counts: Vec<(String, u64)> = Vec::new();
    let mut fpi_bytes = 0;
    for line in text.lines() {
        // `Heap/INSERT   10 ( 1.00)   590 ( 2.00)   0 ( 0.00)   590 ( 2.00)`:
        // type, count, record bytes, full-page image bytes, both (each with its share).
        let mut plain = String::with_capacity(line.len());
        let mut depth = 0;
        for c in line.chars() {
            match c {
                '(' => depth += 1,
                ')' => depth -= 1,
                _ if depth == 0 => plain.push(c),
                _ => {}
            }
        }
        let words: Vec<&str> = plain.split_whitespace().collect();
        let (Some(kind), Some(n)) = (words.first(), words.get(1).and_then(|n| n.parse::<u64>().ok())) else {
            continue;
        };
        if !kind.contains('/') {
            continue;
        }
        fpi_bytes += words.get(3).and_then(|b| b.parse::<u64>().ok()).unwrap_or(0);
        let kind = kind.trim_end_matches("+INIT").to_owned();
        match counts.iter_mut().find(|(k, _)| *k == kind) {
            Some((_, c)) => *c += n,
            None => counts.push((kind, n)),
        }
    }
    if counts.is_empty() {
        let err = String::from_utf8_lossy(&out.stderr);
        return Err(format!("pg_waldump: {}", err.lines().next().unwrap_or("no records")).into());
    }
    Ok((counts, fpi_bytes))
}

/// Whatever is measured from the moment the worker process starts.
struct Meter<'a> {
    env: &'a Env,
    db: &'a Db,
    receiver: &'a Receiver,
    start: Instant,
    pg: f64,
    receiver_cpu: f64,
    received: u64,
    enqueue: Mark,
    run_start: Mark,
}

impl<'a> Meter<'a> {
    /// `enqueue` was read before the run's events were enqueued.
    async fn start(env: &'a Env, db: &'a Db, receiver: &'a Receiver, enqueue: Mark) -> Result<Self, Error> {
        // The publish's dirty pages are written now, not during the run.
        db.client.batch_execute("CHECKPOINT").await?;
        if env.statements {
            db.client.batch_execute("SELECT pg_stat_statements_reset()").await?;
        }
        let run_start = Mark::now(env, db).await?;
        Ok(Self {
            env,
            db,
            receiver,
            start: Instant::now(),
            pg: run_start.pg_cpu,
            receiver_cpu: receiver.cpu(env),
            received: receiver.received().await?,
            enqueue,
            run_start,
        })
    }

    /// Waits until the receiver got `expected` more requests and `done` says
    /// the database agrees, then reads every process's CPU.
    async fn finish(self, worker: &mut Child, expected: u64, done: &str, label: &str) -> Result<Run, Error> {
        let (env, db, receiver) = (self.env, self.db, self.receiver);
        let deadline = self.start + Duration::from_secs(1_800);
        // The run's backends, sampled every half second: one that exits
        // (a pool closing an idle connection) keeps its last reading.
        let mut backends: HashMap<i32, u64> = HashMap::new();
        for polls in 0u64.. {
            tokio::time::sleep(Duration::from_millis(20)).await;
            if polls % 25 == 0 {
                sample_backends(db, &mut backends).await?;
            }
            if let Some(status) = worker.try_wait()? {
                return Err(format!("{label} exited early: {status}").into());
            }
            if Instant::now() > deadline {
                return Err(format!("{label} did not finish in time").into());
            }
            if receiver.received().await? - self.received >= expected
                && db.client.query_one(done, &[]).await?.get::<_, bool>(0)
            {
                break;
            }
        }
        let secs = self.start.elapsed().as_secs_f64();
        let worker_cpu = env.cpu(worker.id());
        let pg_cpu = env.pg_cpu() - self.pg;
        sample_backends(db, &mut backends).await?;
        let backends_cpu = backends.values().sum::<u64>() as f64 / env.tick;
        let writes = writes_since(env, db, &self.enqueue, &self.run_start).await?;
        let run = Run {
            label: label.to_owned(),
            deliveries: expected,
            secs,
            worker_cpu,
            pg_cpu,
            backends_cpu,
            receiver_cpu: receiver.cpu(env) - self.receiver_cpu,
            peak_rss_mib: peak_rss_mib(worker.id()),
            writes,
        };
        worker.kill().await?;
        Ok(run)
    }
}

/// Reads the CPU ticks of every backend connected to the run's database
/// (but the bench's own), keeping the highest reading of each.
async fn sample_backends(db: &Db, seen: &mut HashMap<i32, u64>) -> Result<(), Error> {
    let rows = db
        .client
        .query("SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()", &[])
        .await?;
    for pid in rows.iter().map(|r| r.get::<_, i32>(0)) {
        if let Some(t) = proc_ticks(pid) {
            let ticks = seen.entry(pid).or_default();
            *ticks = (*ticks).max(t.own);
        }
    }
    Ok(())
}

/// The sidecar, `tailhook run`, as a child process with its log in the cache.
fn spawn_sidecar(env: &Env, url: &str, b: bool, otlp: Option<&str>) -> Result<(Child, PathBuf), Error> {
    spawn_sidecar_logging(env, url, b, otlp, "sidecar.log")
}

/// [`spawn_sidecar`] with its log in the cache under `log`.
fn spawn_sidecar_logging(
    env: &Env,
    url: &str,
    b: bool,
    otlp: Option<&str>,
    log: &str,
) -> Result<(Child, PathBuf), Error> {
    let log = env.cache.join(log);
    let binary = env.binary(b)?;
    let mut command = Command::new(binary);
    if let Some(collector) = otlp {
        // Every attempt sampled; claims and result writes at their default share.
        command.env("TAILHOOK_TRACING__OTLP_ENDPOINT", collector).env("TAILHOOK_TRACING__SAMPLE_RATIO", "1");
    }
    let child = command
        .arg("--config")
        .arg(&env.config)
        .arg("run")
        .env("TAILHOOK_DATABASE__URL", url)
        .env("RUST_LOG", if env.claims { "warn,tailhook::pipeline=debug" } else { "warn" })
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log)?)
        .kill_on_drop(true)
        .spawn()?;
    Ok((child, log))
}

const TAILHOOK_DONE: &str = "SELECT NOT EXISTS (SELECT 1 FROM tailhook.outbox WHERE dispatched_at IS NULL)
                               AND NOT EXISTS (SELECT 1 FROM tailhook.deliveries WHERE status IN ('pending', 'retrying'))";

/// One tailhook run of `shape` in `db` (already set up), from spawning the
/// sidecar to the last 2xx recorded.
async fn run_tailhook(env: &Env, db: &Db, shape: &Shape, receiver: &Receiver) -> Result<Run, Error> {
    let before: i64 = db.client.query_one("SELECT coalesce(max(id), 0) FROM tailhook.outbox", &[]).await?.get(0);
    let enqueue = Mark::now(env, db).await?;
    publish(db, shape).await?;
    let meter = Meter::start(env, db, receiver, enqueue).await?;
    let (mut sidecar, log) = spawn_sidecar(env, &db.url, shape.b, shape.otlp.as_deref())?;
    let expected = shape.deliveries();
    let run = meter.finish(&mut sidecar, expected, TAILHOOK_DONE, &shape.label).await?;
    let succeeded: i64 = db
        .client
        .query_one("SELECT count(*) FROM tailhook.deliveries WHERE outbox_id > $1 AND status = 'succeeded'", &[&before])
        .await?
        .get(0);
    if succeeded as u64 != expected {
        return Err(format!("{}: {succeeded} of {expected} deliveries succeeded", shape.label).into());
    }
    if env.statements {
        print_statements(db, expected).await?;
    }
    if env.claims {
        print_claims(&log)?;
    }
    Ok(run)
}

/// One peer run: graphile-worker's schema, N jobs added in one statement,
/// then its worker from start to an empty job table.
async fn run_peer(env: &Env, receiver: &Receiver, jobs: u64) -> Result<Run, Error> {
    let db = peer_db(env).await?;
    let enqueue = Mark::now(env, &db).await?;
    db.client
        .execute(
            "SELECT graphile_worker.add_jobs(ARRAY(
               SELECT ROW('deliver', jsonb_build_object('invoice', g, 'amount', g % 1000, 'currency', 'EUR')::json,
                          NULL, NULL, NULL, NULL, NULL, NULL)::graphile_worker.job_spec
                 FROM generate_series(1, $1::int) g))",
            &[&(jobs as i32)],
        )
        .await?;
    let meter = Meter::start(env, &db, receiver, enqueue).await?;
    let mut node = spawn_peer(env, &db, receiver)?;
    let done = "SELECT NOT EXISTS (SELECT 1 FROM graphile_worker._private_jobs)";
    let run = meter.finish(&mut node, jobs, done, "graphile-worker 0.17.3").await?;
    if env.statements {
        print_statements(&db, jobs).await?;
    }
    db.drop_now(env).await?;
    Ok(run)
}

/// A fresh database with graphile-worker's schema.
async fn peer_db(env: &Env) -> Result<Db, Error> {
    let dir = env.peer()?;
    let db = fresh_db(env).await?;
    let ok = Command::new(dir.join("node_modules/.bin/graphile-worker"))
        .args(["--schema-only", "-c", &db.url])
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .status()
        .await?
        .success();
    if !ok {
        return Err("graphile-worker --schema-only failed".into());
    }
    Ok(db)
}

/// The peer's worker process, `bench/graphile-worker/run.js`, on `db`.
fn spawn_peer(env: &Env, db: &Db, receiver: &Receiver) -> Result<Child, Error> {
    let dir = env.peer()?;
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("bench/graphile-worker/run.js");
    Ok(Command::new("node")
        .arg(script)
        .env("NODE_PATH", dir.join("node_modules"))
        .env("DATABASE_URL", &db.url)
        .env("TARGET", format!("http://{}/hook/0", receiver.addr))
        .env("SECRET", SECRET)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()?)
}

/// One tailhook run in a fresh database.
async fn fresh_tailhook(env: &Env, shape: &Shape, receiver: &Receiver) -> Result<Run, Error> {
    let db = fresh_db(env).await?;
    setup_tailhook(env, &db, shape, receiver).await?;
    let run = run_tailhook(env, &db, shape, receiver).await;
    db.drop_now(env).await?;
    run
}

async fn throughput(env: &Env, args: &Args) -> Result<(), Error> {
    println!("\n## throughput: {} events, one endpoint; tailhook vs graphile-worker 0.17.3 (concurrency 24, local queue 500, batched completion)", args.events);
    let receiver = Receiver::start(env, false).await?;
    let (mut pairs, mut with_b) = (Vec::new(), Vec::new());
    for round in 1..=args.rounds {
        let a = fresh_tailhook(env, &Shape::single(args.events), &receiver).await?;
        a.print(round);
        let b = run_peer(env, &receiver, args.events).await?;
        b.print(round);
        if env.tailhook_b.is_some() {
            let shape = Shape { label: "tailhook B 1 endpoint".into(), b: true, ..Shape::single(args.events) };
            let c = fresh_tailhook(env, &shape, &receiver).await?;
            c.print(round);
            with_b.push((a.clone(), c));
        }
        pairs.push((a, b));
    }
    summarize("throughput tailhook/peer", &pairs);
    if !with_b.is_empty() {
        summarize("this build / --sidecar-b", &with_b);
    }
    Ok(())
}

/// One endpoint without a transform, then with the Slack example, in every
/// round: the throughput ratio (with / without) and the sidecar's added CPU
/// per delivery, per round.
async fn transform(env: &Env, args: &Args) -> Result<(), Error> {
    println!(
        "\n## transform: {} events, one endpoint, with the Slack example as its transform vs without",
        args.events
    );
    let receiver = Receiver::start(env, false).await?;
    let plain = Shape::single(args.events);
    let with = Shape { label: "tailhook 1 endpoint + slack".into(), transform: true, ..Shape::single(args.events) };
    let (mut pairs, mut apart, mut together) = (Vec::new(), Vec::new(), Vec::new());
    for round in 1..=args.rounds {
        // Which goes first alternates, so a drift of the machine's speed
        // within a round (common on shared machines) favours neither side.
        let (a, b) = if round % 2 == 1 {
            let a = fresh_tailhook(env, &plain, &receiver).await?;
            a.print(round);
            let b = fresh_tailhook(env, &with, &receiver).await?;
            (a, b)
        } else {
            let b = fresh_tailhook(env, &with, &receiver).await?;
            b.print(round);
            let a = fresh_tailhook(env, &plain, &receiver).await?;
            (a, b)
        };
        if round % 2 == 1 {
            b.print(round)
        } else {
            a.print(round)
        }
        apart.push(b.us(b.worker_cpu) - a.us(a.worker_cpu));
        pairs.push((b, a));
        let both = side_by_side(env, &receiver, &plain, &with).await?;
        println!(
            "  round {round} side by side over {:>5.2} s: without {:>6} deliveries, {:>5.1} µs each; with {:>6}, {:>5.1} µs each: added {:>5.1} µs",
            both.secs,
            both.deliveries.0,
            both.us.0,
            both.deliveries.1,
            both.us.1,
            both.us.1 - both.us.0
        );
        together.push(both.us.1 - both.us.0);
    }
    summarize("transform with / without", &pairs);
    println!("  => sidecar CPU added by the transform, µs/delivery, runs apart: {}", describe_added(&mut apart));
    println!("  => sidecar CPU added by the transform, µs/delivery, side by side: {}", describe_added(&mut together));
    Ok(())
}

/// Per-round added CPU (µs per delivery), their median and spread.
fn describe_added(added: &mut [f64]) -> String {
    let list: Vec<String> = added.iter().map(|us| format!("{us:.1}")).collect();
    let (lo, hi) = (added.iter().copied().fold(f64::MAX, f64::min), added.iter().copied().fold(f64::MIN, f64::max));
    let median = pct(added, 0.5);
    format!("{} per round; median {median:.1} (spread {lo:.1} to {hi:.1})", list.join(", "))
}

/// One endpoint with tracing off, with every attempt's span exported to a
/// local OTLP sink, and exported to a collector that accepts connections and
/// never answers (black-holed), in a rotating order each round: throughput
/// ratios against off, the sidecar's added CPU per delivery (runs apart),
/// then off and sink side by side for the added CPU over one window.
async fn tracing(env: &Env, args: &Args) -> Result<(), Error> {
    println!(
        "\n## tracing: {} events, one endpoint; every attempt's span exported (OTLP/HTTP) vs tracing off",
        args.events
    );
    let receiver = Receiver::start(env, false).await?;
    let sink = otlp_sink().await?;
    let hole = black_hole().await?;
    let off = Shape::single(args.events);
    let on = Shape { label: "tailhook + spans to sink".into(), otlp: Some(sink), ..Shape::single(args.events) };
    let holed = Shape { label: "tailhook + spans, black hole".into(), otlp: Some(hole), ..Shape::single(args.events) };
    let (mut on_pairs, mut holed_pairs, mut apart, mut together) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for round in 1..=args.rounds {
        // Which goes first rotates, so a drift of the machine's speed within
        // a round favours no side.
        let mut runs: Vec<(usize, Run)> = Vec::new();
        for k in 0..3 {
            let which = (k + round - 1) % 3;
            let shape = [&off, &on, &holed][which];
            let run = fresh_tailhook(env, shape, &receiver).await?;
            run.print(round);
            runs.push((which, run));
        }
        runs.sort_by_key(|(which, _)| *which);
        let (a, b, c) = (runs[0].1.clone(), runs[1].1.clone(), runs[2].1.clone());
        apart.push(b.us(b.worker_cpu) - a.us(a.worker_cpu));
        on_pairs.push((b, a.clone()));
        holed_pairs.push((c, a));
        let both = side_by_side(env, &receiver, &off, &on).await?;
        println!(
            "  round {round} side by side over {:>5.2} s: off {:>6} deliveries, {:>5.1} µs each; spans {:>6}, {:>5.1} µs each: added {:>5.1} µs",
            both.secs,
            both.deliveries.0,
            both.us.0,
            both.deliveries.1,
            both.us.1,
            both.us.1 - both.us.0
        );
        together.push(both.us.1 - both.us.0);
    }
    summarize("tracing spans to sink / off", &on_pairs);
    summarize("tracing spans to black hole / off", &holed_pairs);
    println!("  => sidecar CPU added by tracing, µs/delivery, runs apart: {}", describe_added(&mut apart));
    println!("  => sidecar CPU added by tracing, µs/delivery, side by side: {}", describe_added(&mut together));
    Ok(())
}

/// An OTLP/HTTP sink in this process: takes every export and answers 200
/// (an empty response), reading the whole body. Its base URL.
async fn otlp_sink() -> Result<String, Error> {
    let app = axum::Router::new().route("/v1/traces", axum::routing::post(|_body: axum::body::Bytes| async { "" }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(url)
}

/// A collector that accepts connections and never reads or answers. Its base URL.
async fn black_hole() -> Result<String, Error> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    Ok(url)
}

/// What [`side_by_side`] measured over its window: (without, with).
struct Together {
    secs: f64,
    deliveries: (u64, u64),
    us: (f64, f64),
}

/// Runs `a` and `b` at once, each with its own sidecar and database, to the
/// same receiver, and reads each sidecar's CPU per delivery over the window
/// in which both are delivering (from the moment both have delivered a tenth
/// of their events until one has delivered nine tenths): both see the same
/// machine, so a drift of its speed between runs does not enter the difference.
async fn side_by_side(env: &Env, receiver: &Receiver, a: &Shape, b: &Shape) -> Result<Together, Error> {
    let (mut db_a, mut db_b) = (fresh_db(env).await?, fresh_db(env).await?);
    let together = measure_side_by_side(env, receiver, (&mut db_a, a), (&mut db_b, b)).await;
    db_a.drop_now(env).await?;
    db_b.drop_now(env).await?;
    together
}

async fn measure_side_by_side(
    env: &Env,
    receiver: &Receiver,
    (db_a, a): (&mut Db, &Shape),
    (db_b, b): (&mut Db, &Shape),
) -> Result<Together, Error> {
    setup_tailhook(env, db_a, a, receiver).await?;
    setup_tailhook(env, db_b, b, receiver).await?;
    publish(db_a, a).await?;
    publish(db_b, b).await?;
    db_a.client.batch_execute("CHECKPOINT").await?;
    let (mut side_a, _) = spawn_sidecar_logging(env, &db_a.url, false, a.otlp.as_deref(), "sidecar-a.log")?;
    let (mut side_b, _) = spawn_sidecar_logging(env, &db_b.url, false, b.otlp.as_deref(), "sidecar-b.log")?;
    let delivered = "SELECT count(*) FROM tailhook.deliveries WHERE status = 'succeeded'";
    let (events_a, events_b) = (a.deliveries(), b.deliveries());
    let deadline = Instant::now() + Duration::from_secs(1_800);
    let mut start: Option<(Instant, u64, u64, f64, f64)> = None;
    let together = loop {
        tokio::time::sleep(Duration::from_millis(50)).await;
        for (side, label) in [(&mut side_a, &a.label), (&mut side_b, &b.label)] {
            if let Some(status) = side.try_wait()? {
                return Err(format!("{label} exited early: {status}").into());
            }
        }
        if Instant::now() > deadline {
            return Err("the side-by-side runs did not finish in time".into());
        }
        let done_a = db_a.client.query_one(delivered, &[]).await?.get::<_, i64>(0) as u64;
        let done_b = db_b.client.query_one(delivered, &[]).await?.get::<_, i64>(0) as u64;
        let (cpu_a, cpu_b) = (env.cpu(side_a.id()), env.cpu(side_b.id()));
        match start {
            None if done_a * 10 >= events_a && done_b * 10 >= events_b => {
                start = Some((Instant::now(), done_a, done_b, cpu_a, cpu_b))
            }
            Some((at, from_a, from_b, cpu_a0, cpu_b0))
                if done_a * 10 >= events_a * 9 || done_b * 10 >= events_b * 9 =>
            {
                let (n_a, n_b) = (done_a - from_a, done_b - from_b);
                break Together {
                    secs: at.elapsed().as_secs_f64(),
                    deliveries: (n_a, n_b),
                    us: ((cpu_a - cpu_a0) * 1e6 / n_a.max(1) as f64, (cpu_b - cpu_b0) * 1e6 / n_b.max(1) as f64),
                };
            }
            _ => {}
        }
    };
    side_a.kill().await?;
    side_b.kill().await?;
    Ok(together)
}

/// Alternates `base` and `other`, each in a fresh database; the ratio is other/base.
async fn compare(env: &Env, args: &Args, name: &str, base: Shape, other: Shape) -> Result<(), Error> {
    println!(
        "\n## {name}: {} ({} deliveries) vs {} ({} deliveries)",
        other.label,
        other.deliveries(),
        base.label,
        base.deliveries()
    );
    let receiver = Receiver::start(env, false).await?;
    let mut pairs = Vec::new();
    for round in 1..=args.rounds {
        let a = fresh_tailhook(env, &other, &receiver).await?;
        a.print(round);
        let b = fresh_tailhook(env, &base, &receiver).await?;
        b.print(round);
        pairs.push((a, b));
    }
    summarize(&format!("{name} {} / {}", other.label, base.label), &pairs);
    Ok(())
}

async fn retained(env: &Env, args: &Args) -> Result<(), Error> {
    println!("\n## retained: {} events with {} finished deliveries retained vs none", args.events, args.retained);
    let receiver = Receiver::start(env, false).await?;
    let shape = Shape::single(args.events);
    let full = fresh_db(env).await?;
    setup_tailhook(env, &full, &shape, &receiver).await?;
    let filled = Instant::now();
    // A partitioned schema (a build with sql/0031_partitions.sql) dates each
    // delivery and attempt with its event's time, as the sidecar does, so
    // the history fills today's partitions rather than the undated one.
    let dated: bool = full
        .client
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM information_schema.columns
                             WHERE table_schema = 'tailhook' AND table_name = 'deliveries' AND column_name = 'event_at')",
            &[],
        )
        .await?
        .get(0);
    let (column, value) = if dated { (", event_at", ", o.created_at") } else { ("", "") };
    full.client
        .batch_execute(&format!(
            "SET synchronous_commit = off;
             INSERT INTO tailhook.outbox (event_type, payload, created_at, dispatched_at)
               SELECT 'old', jsonb_build_object('invoice', g, 'amount', g % 1000, 'currency', 'EUR'), now(), now()
                 FROM generate_series(1, {n}) g;
             INSERT INTO tailhook.deliveries (outbox_id, endpoint_id, status, attempts, next_attempt_at, completed_at{column})
               SELECT o.id, (SELECT min(id) FROM tailhook.endpoints), 'succeeded', 1, NULL, now(){value} FROM tailhook.outbox o;
             INSERT INTO tailhook.attempts (delivery_id, attempt, started_at, duration_ms, status_code{column})
               SELECT d.id, 1, now(), 1, 200{value} FROM tailhook.deliveries d JOIN tailhook.outbox o ON o.id = d.outbox_id;
",
            n = args.retained
        ))
        .await?;
    for table in ["outbox", "deliveries", "attempts"] {
        full.client.batch_execute(&format!("VACUUM ANALYZE tailhook.{table}")).await?;
    }
    println!("  filled {} finished deliveries in {:.0} s", args.retained, filled.elapsed().as_secs_f64());
    let mut pairs = Vec::new();
    let mut result = Ok(());
    for round in 1..=args.rounds {
        let mut with = shape.clone();
        with.label = format!("tailhook {}M retained", args.retained as f64 / 1e6);
        let a = match run_tailhook(env, &full, &with, &receiver).await {
            Ok(a) => a,
            Err(e) => {
                result = Err(e);
                break;
            }
        };
        a.print(round);
        let b = fresh_tailhook(env, &shape, &receiver).await?;
        b.print(round);
        pairs.push((a, b));
    }
    full.drop_now(env).await?;
    result?;
    summarize("retained with/none", &pairs);
    Ok(())
}

async fn latency(env: &Env, args: &Args) -> Result<(), Error> {
    steady(env, args, &[args.rate.unwrap_or(1_000)]).await
}

/// Which worker a steady-rate run measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Tailhook,
    TailhookB,
    Peer,
}

impl Side {
    fn label(self) -> &'static str {
        match self {
            Side::Tailhook => "tailhook",
            Side::TailhookB => "tailhook B",
            Side::Peer => "graphile-worker 0.17.3",
        }
    }
}

/// What one steady-rate run measured, per event.
struct SteadyRun {
    side: Side,
    p50: f64,
    p99: f64,
    worker_us: f64,
    pg_us: f64,
    backends_us: f64,
}

/// For each rate: `--rounds` rounds, each running tailhook, graphile-worker
/// (and `--sidecar-b`) in a rotating order, every event published in its own
/// transaction by the same publisher: latency from COMMIT to the receiver,
/// and CPU, WAL and WAL records per event.
async fn steady(env: &Env, args: &Args, rates: &[u64]) -> Result<(), Error> {
    let mut sides = vec![Side::Tailhook, Side::Peer];
    if env.tailhook_b.is_some() {
        sides.push(Side::TailhookB);
    }
    for &rate in rates {
        println!(
            "\n## latency: {rate} events/s for {} s, one transaction each, commit -> receiver; {} in a rotating order",
            args.seconds,
            sides.iter().map(|s| s.label()).collect::<Vec<_>>().join(", ")
        );
        let mut runs: Vec<(usize, SteadyRun)> = Vec::new();
        for round in 1..=args.rounds {
            for k in 0..sides.len() {
                let side = sides[(k + round - 1) % sides.len()];
                runs.push((round, steady_run(env, args, rate, side, round).await?));
            }
        }
        for &side in &sides {
            let of: Vec<&SteadyRun> = runs.iter().filter(|(_, r)| r.side == side).map(|(_, r)| r).collect();
            let m = |f: &dyn Fn(&SteadyRun) -> f64| pct(&mut of.iter().map(|r| f(r)).collect::<Vec<_>>(), 0.5);
            println!(
                "     {:<24} median p50 {:.2} ms, p99 {:.2} ms; CPU µs/event: worker {:.0}, PostgreSQL {:.0} (its backends {:.0})",
                side.label(),
                m(&|r| r.p50),
                m(&|r| r.p99),
                m(&|r| r.worker_us),
                m(&|r| r.pg_us),
                m(&|r| r.backends_us)
            );
        }
        for other in sides.iter().copied().filter(|&s| s != Side::Tailhook) {
            let mut ratios: [Vec<f64>; 4] = Default::default();
            for round in 1..=args.rounds {
                let pick = |side| runs.iter().find(|(r, s)| *r == round && s.side == side).map(|(_, s)| s);
                let (Some(a), Some(b)) = (pick(Side::Tailhook), pick(other)) else { continue };
                for (i, (x, y)) in [(a.pg_us, b.pg_us), (a.worker_us, b.worker_us), (a.p50, b.p50), (a.p99, b.p99)]
                    .into_iter()
                    .enumerate()
                {
                    ratios[i].push(x / y);
                }
            }
            let show = |v: &mut Vec<f64>| {
                let list: Vec<String> = v.iter().map(|r| format!("{r:.2}")).collect();
                format!("{} (median {:.2})", list.join(", "), pct(v, 0.5))
            };
            println!(
                "  => {rate}/s tailhook / {} per round: PostgreSQL CPU {}; worker CPU {}; p50 {}; p99 {}",
                other.label(),
                show(&mut ratios[0]),
                show(&mut ratios[1]),
                show(&mut ratios[2]),
                show(&mut ratios[3])
            );
        }
    }
    Ok(())
}

/// One steady-rate run of `side` in a fresh database, with its own receiver.
async fn steady_run(env: &Env, args: &Args, rate: u64, side: Side, round: usize) -> Result<SteadyRun, Error> {
    let receiver = Receiver::start(env, true).await?;
    let mut db = match side {
        Side::Peer => peer_db(env).await?,
        _ => fresh_db(env).await?,
    };
    let result = steady_in(env, args, rate, side, round, &receiver, &mut db).await;
    db.drop_now(env).await?;
    result
}

async fn steady_in(
    env: &Env,
    args: &Args,
    rate: u64,
    side: Side,
    round: usize,
    receiver: &Receiver,
    db: &mut Db,
) -> Result<SteadyRun, Error> {
    let b = side == Side::TailhookB;
    let (mut worker, log, warm, publish, done) = if side == Side::Peer {
        let node = spawn_peer(env, db, receiver)?;
        (
            node,
            None,
            "SELECT graphile_worker.add_job('deliver', '{}'::json)",
            "SELECT 'msg_' || (graphile_worker.add_job('deliver', '{\"n\": 1}'::json)).id",
            "SELECT NOT EXISTS (SELECT 1 FROM graphile_worker._private_jobs)",
        )
    } else {
        setup_tailhook(env, db, &Shape { b, ..Shape::single(0) }, receiver).await?;
        let (sidecar, log) = spawn_sidecar(env, &db.url, b, None)?;
        (
            sidecar,
            Some(log),
            "SELECT tailhook.publish('warm', '{}')",
            "SELECT tailhook.publish('tick', '{\"n\": 1}')::text",
            TAILHOOK_DONE,
        )
    };
    // Started and listening: one event goes through first.
    db.client.query_one(warm, &[]).await?;
    let deadline = Instant::now() + Duration::from_secs(60);
    while receiver.received().await? < 1 {
        if Instant::now() > deadline {
            return Err(format!("{}: the first event never arrived", side.label()).into());
        }
        if let Some(status) = worker.try_wait()? {
            return Err(format!("{} exited early: {status}", side.label()).into());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    if env.statements {
        db.client.batch_execute("SELECT pg_stat_statements_reset()").await?;
    }
    let mut backends0 = HashMap::new();
    sample_backends(db, &mut backends0).await?;
    let mark = Mark::now(env, db).await?;
    let (side0, recv0) = (env.cpu(worker.id()), receiver.cpu(env));
    let total = rate * args.seconds;
    let interval = Duration::from_secs_f64(1.0 / rate as f64);
    let mut sent: HashMap<String, (u128, u128)> = HashMap::with_capacity(total as usize);
    // Prepared once, as an application's driver does.
    let publish = db.client.prepare(publish).await?;
    let start = tokio::time::Instant::now();
    for i in 0..total {
        tokio::time::sleep_until(start + interval * i as u32).await;
        let tx = db.client.transaction().await?;
        let id: String = tx.query_one(&publish, &[]).await?.get(0);
        let before_commit = unix_nanos();
        tx.commit().await?;
        sent.insert(id, (before_commit, unix_nanos()));
    }
    // Every request received and every result recorded.
    let deadline = Instant::now() + Duration::from_secs(30);
    while (receiver.received().await? < total + 1 || !db.client.query_one(done, &[]).await?.get::<_, bool>(0))
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let cpu = |x: f64| x * 1e6 / total as f64;
    let (side_cpu, recv) = (env.cpu(worker.id()) - side0, receiver.cpu(env) - recv0);
    let mut backends1 = HashMap::new();
    sample_backends(db, &mut backends1).await?;
    let backends: u64 = backends1.iter().map(|(pid, t)| t - backends0.get(pid).copied().unwrap_or(0).min(*t)).sum();
    let writes = writes_since(env, db, &mark, &mark).await?;
    worker.kill().await?;
    let times = receiver.http.get(format!("http://{}/times", receiver.addr)).send().await?.text().await?;
    let (mut from_ack, mut from_commit) = (Vec::new(), Vec::new());
    let mut series = Vec::new();
    for line in times.lines() {
        let Some((id, ns)) = line.split_once(' ') else { continue };
        let (Some(&(c, a)), Ok(ns)) = (sent.get(id), ns.parse::<u128>()) else { continue };
        from_commit.push(ns.saturating_sub(c) as f64 / 1e6);
        from_ack.push(ns as f64 / 1e6 - a as f64 / 1e6);
        series.push((a / 1000, (ns as i128 - a as i128) / 1000));
    }
    if let Some(dir) = &args.series {
        series.sort_unstable();
        let text: String = series.iter().map(|(a, us)| format!("{a}\t{us}\n")).collect();
        std::fs::create_dir_all(dir)?;
        let name = match side {
            Side::Tailhook => "",
            Side::TailhookB => "-b",
            Side::Peer => "-peer",
        };
        std::fs::write(dir.join(format!("latency-{rate}-{round}{name}.tsv")), text)?;
    }
    let (p50, p99, pc50, pc99) =
        (pct(&mut from_ack, 0.5), pct(&mut from_ack, 0.99), pct(&mut from_commit, 0.5), pct(&mut from_commit, 0.99));
    let run = SteadyRun {
        side,
        p50,
        p99,
        worker_us: cpu(side_cpu),
        pg_us: cpu(writes.pg_cpu_all),
        backends_us: cpu(backends as f64 / env.tick),
    };
    println!(
        "  round {round} {:<24} {} of {total} received: from COMMIT acknowledged p50 {p50:.2} ms, p99 {p99:.2} ms; from COMMIT sent p50 {pc50:.2} ms, p99 {pc99:.2} ms | CPU µs/event: worker {:.0}, PostgreSQL {:.0} (its backends {:.0}), receiver {:.0}",
        side.label(),
        from_ack.len(),
        run.worker_us,
        run.pg_us,
        run.backends_us,
        cpu(recv)
    );
    println!("        {}", writes.describe(total));
    if env.statements {
        print_statements(db, total).await?;
    }
    if let (true, Some(log)) = (env.claims, log) {
        print_claims(&log)?;
    }
    Ok(run)
}

fn unix_nanos() -> u128 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_nanos()
}

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(((v.len() as f64 * p) as usize).min(v.len().saturating_sub(1))).copied().unwrap_or(f64::NAN)
}

async fn memory(env: &Env, args: &Args) -> Result<(), Error> {
    println!(
        "\n## memory: {} deliveries held pending (paused endpoint) while 100,000 others are delivered",
        args.pending
    );
    let receiver = Receiver::start(env, false).await?;
    let db = fresh_db(env).await?;
    setup_tailhook(
        env,
        &db,
        &Shape {
            label: String::new(),
            events: 0,
            endpoints: 2,
            by_tenant: false,
            b: false,
            transform: false,
            otlp: None,
        },
        &receiver,
    )
    .await?;
    db.client
        .batch_execute(
            "UPDATE tailhook.endpoints SET event_types = '{held}', paused_until = now() + interval '1 day' WHERE name = 'ep0';
             UPDATE tailhook.endpoints SET event_types = '{sent}' WHERE name = 'ep1';",
        )
        .await?;
    let insert = "INSERT INTO tailhook.outbox (event_type, payload)
                  SELECT $1, jsonb_build_object('n', g, 'text', repeat('x', 200)) FROM generate_series(1, $2::bigint) g";
    let enqueue = Mark::now(env, &db).await?;
    db.client.execute(insert, &[&"held", &(args.pending as i64)]).await?;
    db.client.execute(insert, &[&"sent", &100_000i64]).await?;
    let meter = Meter::start(env, &db, &receiver, enqueue).await?;
    let (mut sidecar, _log) = spawn_sidecar(env, &db.url, false, None)?;
    let done = "SELECT NOT EXISTS (SELECT 1 FROM tailhook.outbox WHERE dispatched_at IS NULL)
                  AND (SELECT count(*) FROM tailhook.deliveries WHERE status = 'succeeded') = 100000";
    let run = meter.finish(&mut sidecar, 100_000, done, "tailhook memory").await?;
    let held: i64 =
        db.client.query_one("SELECT count(*) FROM tailhook.deliveries WHERE status = 'pending'", &[]).await?.get(0);
    println!(
        "  {held} deliveries pending, 100,000 delivered meanwhile in {:.1} s: sidecar peak RSS {} MiB",
        run.secs, run.peak_rss_mib
    );
    db.drop_now(env).await?;
    Ok(())
}

/// Ratio per round (first over second), then their median and spread, and
/// the CPU figures' medians.
fn summarize(name: &str, pairs: &[(Run, Run)]) {
    let mut ratios: Vec<f64> = pairs.iter().map(|(a, b)| a.rate() / b.rate()).collect();
    let list: Vec<String> = ratios.iter().map(|r| format!("{r:.2}")).collect();
    let (lo, hi) = (ratios.iter().copied().fold(f64::MAX, f64::min), ratios.iter().copied().fold(0.0, f64::max));
    let median = pct(&mut ratios, 0.5);
    println!("  => {name}: {} per round; median {median:.2} (spread {lo:.2}-{hi:.2})", list.join(", "));
    for (side, pick) in [("first", 0), ("second", 1)] {
        let runs: Vec<&Run> = pairs.iter().map(|p| if pick == 0 { &p.0 } else { &p.1 }).collect();
        let m = |f: &dyn Fn(&Run) -> f64| pct(&mut runs.iter().map(|r| f(r)).collect::<Vec<_>>(), 0.5);
        println!(
            "     {side:<6} {:<24} median {:>6.0}/s; CPU µs/delivery: worker {:.0}, PostgreSQL {:.0} (its backends {:.0}), receiver {:.0}",
            runs[0].label,
            m(&|r| r.rate()),
            m(&|r| r.us(r.worker_cpu)),
            m(&|r| r.us(r.pg_cpu)),
            m(&|r| r.us(r.backends_cpu)),
            m(&|r| r.us(r.receiver_cpu)),
        );
    }
}

/// The run's statements by total execution time, per delivery.
async fn print_statements(db: &Db, deliveries: u64) -> Result<(), Error> {
    let rows = db
        .client
        .query(
            "SELECT calls, total_exec_time, rows, shared_blks_hit + shared_blks_read, shared_blks_dirtied, wal_bytes::bigint,
                    regexp_replace(query, '\\s+', ' ', 'g')
               FROM pg_stat_statements
              WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
              ORDER BY total_exec_time DESC LIMIT 8",
            &[],
        )
        .await?;
    println!("      calls   total ms  µs/deliv  rows/call  blks/deliv  dirtied/deliv  WAL B/deliv  statement");
    for r in rows {
        let calls: i64 = r.get(0);
        let total: f64 = r.get(1);
        let n = deliveries as f64;
        let query: String = r.get(6);
        let short: String = query.chars().take(90).collect();
        println!(
            "    {calls:>7} {total:>10.0} {:>9.1} {:>10.1} {:>11.1} {:>14.2} {:>12.0}  {short}",
            total * 1000.0 / n,
            r.get::<_, i64>(2) as f64 / calls.max(1) as f64,
            r.get::<_, i64>(3) as f64 / n,
            r.get::<_, i64>(4) as f64 / n,
            r.get::<_, i64>(5) as f64 / n,
        );
    }
    Ok(())
}

/// Sizes of the sidecar's claims and result writes, from its debug log.
fn print_claims(log: &Path) -> Result<(), Error> {
    let text = std::fs::read_to_string(log)?;
    let field = |line: &str, key: &str| -> Option<f64> {
        let at = line.find(&format!(" {key}="))? + key.len() + 2;
        line[at..].split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()
    };
    let mut groups: HashMap<&str, Vec<f64>> = HashMap::new();
    for line in text.lines() {
        if line.contains(" claimed") {
            let kind = if line.contains("claim=FanOut") { "fan-out claim rows" } else { "due claim deliveries" };
            let key = if kind.starts_with("fan") { "taken" } else { "deliveries" };
            groups.entry(kind).or_default().extend(field(line, key));
        } else if line.contains(" recorded") {
            groups.entry("result write rows").or_default().extend(field(line, "results"));
        }
    }
    for (name, mut sizes) in groups {
        let small = sizes.iter().filter(|&&s| s <= 2.0).count();
        let mean = sizes.iter().sum::<f64>() / sizes.len().max(1) as f64;
        println!(
            "      {name}: {} statements, mean {mean:.1}, median {:.0}, {small} of at most 2",
            sizes.len(),
            pct(&mut sizes, 0.5)
        );
    }
    Ok(())
}

/// `sustained`: how long finished work is kept, and the periods side A is partitioned by.
const SUSTAINED_RETENTION_MS: u64 = 120_000;
const SUSTAINED_PARTITION: &str = "1 minute";
/// `retention.interval_ms` of both sides: a run every 5 s, so that a period
/// is dropped (or its rows deleted) within 5 s of becoming old enough.
const SUSTAINED_RETENTION_EVERY_MS: u64 = 5_000;
/// The publisher's step: `rate / 100` events in one statement every 10 ms.
const SUSTAINED_STEP: Duration = Duration::from_millis(10);

/// The published event: about 500 bytes of JSON.
const SUSTAINED_PUBLISH: &str = "INSERT INTO tailhook.outbox (event_type, payload)
     SELECT 'invoice.paid', jsonb_build_object('invoice', g, 'amount', g % 1000, 'currency', 'EUR', 'memo', repeat('x', 440))
       FROM generate_series(1, $1::int) g";

/// A throwaway PostgreSQL cluster (local_pg), stopped when dropped: its
/// watchdog then deletes the directory (and does both if this process dies).
struct Cluster {
    admin_url: String,
    postmaster: i32,
    /// The server's log (local_pg writes it beside the data directory).
    log: PathBuf,
}

impl Cluster {
    fn start() -> Result<Self, Error> {
        let setup = tailhook::db::local_pg::Setup {
            settings: [
                "shared_preload_libraries=pg_stat_statements",
                "pg_stat_statements.track=all",
                "pg_stat_statements.track_planning=on",
                // As on a user's server (local_pg turns both off for tests);
                // fsync stays off: the shared machine's disk is not measured.
                "full_page_writes=on",
                "synchronous_commit=on",
            ]
            .map(String::from)
            .to_vec(),
            ..Default::default()
        };
        let pg = tailhook::db::local_pg::start_throwaway_with(&setup)?;
        let data = pg.data_dir.ok_or("the throwaway cluster has no data directory")?;
        let postmaster = postmaster_pid(&data)?;
        let log = data.parent().ok_or("no folder above the data directory")?.join("log");
        Ok(Self { admin_url: pg.admin_url, postmaster, log })
    }

    /// Statements the server cancelled so far: (lock_timeout, deadlock).
    /// pg_stat_statements counts no failed statement, so these are the
    /// attempts (a partition drop's DETACH under its 200 ms lock_timeout)
    /// whose time is missing from retention's figures.
    fn failures(&self) -> (usize, usize) {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let count = |what: &str| log.lines().filter(|l| l.contains(what)).count();
        (count("canceling statement due to lock timeout"), count("deadlock detected"))
    }

    /// Stops the server (fast shutdown) and waits for its postmaster to exit.
    async fn stop(self) {
        let pid = self.postmaster;
        drop(self);
        let deadline = Instant::now() + Duration::from_secs(30);
        while Path::new(&format!("/proc/{pid}")).exists() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = std::process::Command::new("kill").args(["-INT", &self.postmaster.to_string()]).status();
    }
}

/// Per postmaster, per worker (pid, start time): its highest CPU ticks.
type WorkerTicks = HashMap<i32, HashMap<(i32, u64), u64>>;

/// CPU ticks of the autovacuum workers of some postmasters, sampled from
/// /proc every 200 ms by a thread of its own: for each worker (pid and start
/// time) its highest reading. A worker's last 200 ms before it exits can be
/// missed, and one that lives less than 200 ms entirely.
struct AutovacuumSampler {
    seen: std::sync::Arc<std::sync::Mutex<WorkerTicks>>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    tick: f64,
}

impl AutovacuumSampler {
    fn start(postmasters: Vec<i32>, tick: f64) -> Self {
        let seen: std::sync::Arc<std::sync::Mutex<WorkerTicks>> = Default::default();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (seen2, stop2) = (seen.clone(), stop.clone());
        std::thread::spawn(move || {
            while !stop2.load(std::sync::atomic::Ordering::Relaxed) {
                for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
                    let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else { continue };
                    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { continue };
                    let Some((_, rest)) = stat.rsplit_once(')') else { continue };
                    let f: Vec<&str> = rest.split_whitespace().collect();
                    let n = |i: usize| f.get(i).and_then(|x| x.parse::<u64>().ok()).unwrap_or(0);
                    let ppid = n(1) as i32;
                    if !postmasters.contains(&ppid) {
                        continue;
                    }
                    // The process title, which a worker sets just after its fork.
                    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
                    if !String::from_utf8_lossy(&cmdline).contains("autovacuum worker") {
                        continue;
                    }
                    let mut seen = seen2.lock().unwrap_or_else(|e| e.into_inner());
                    let ticks = seen.entry(ppid).or_default().entry((pid, n(19))).or_default();
                    *ticks = (*ticks).max(n(11) + n(12));
                }
                std::thread::sleep(Duration::from_millis(200));
            }
        });
        Self { seen, stop, tick }
    }

    /// CPU seconds of `postmaster`'s autovacuum workers so far.
    fn cpu(&self, postmaster: i32) -> f64 {
        let seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        seen.get(&postmaster).map_or(0, |w| w.values().sum::<u64>()) as f64 / self.tick
    }
}

impl Drop for AutovacuumSampler {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

/// A statement's text reduced to what pg_stat_statements keeps of it:
/// comments and whitespace dropped, and every constant (string, number,
/// NULL, TRUE, FALSE, a sign before it) and parameter as `?`, so that a
/// file's text and the normalized text pg_stat_statements shows compare equal.
fn sql_shape(sql: &str) -> String {
    let chars: Vec<char> = sql.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '-' && chars.get(i + 1) == Some(&'-') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '\'' {
            i += 1;
            while i < chars.len() {
                if chars[i] == '\'' && chars.get(i + 1) == Some(&'\'') {
                    i += 2;
                } else if chars[i] == '\'' {
                    break;
                } else {
                    i += 1;
                }
            }
            i += 1;
            out.push('?');
        } else if c == '$' && chars.get(i + 1).is_some_and(char::is_ascii_digit) {
            i += 1;
            while i < chars.len() && chars[i].is_ascii_digit() {
                i += 1;
            }
            out.push('?');
        } else if c.is_ascii_digit() {
            while i < chars.len() && (chars[i].is_ascii_digit() || chars[i] == '.') {
                i += 1;
            }
            out.push('?');
        } else if c.is_alphabetic() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_' || chars[i] == '$') {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect::<String>().to_ascii_lowercase();
            if matches!(word.as_str(), "null" | "true" | "false") {
                out.push('?');
            } else {
                if out.chars().last().is_some_and(|l| l.is_alphanumeric() || l == '_') {
                    out.push(' ');
                }
                out.push_str(&word);
            }
        } else {
            if !c.is_whitespace() {
                out.push(c);
            }
            i += 1;
        }
    }
    out.replace("-?", "?").trim_end_matches(';').to_owned()
}

/// Retention's statements as the sidecar sends them, from the source tree
/// of its binary: `sql/queries/retention_*.sql`, `partitions_*.sql` (the
/// periods' creation and drop, their lock and the count of stray rows) and
/// `cancel_orphans.sql` (run by retention each run); the statements of the
/// functions they call run nested and count in theirs.
fn retention_statements(tree: &Path) -> Result<Vec<(String, String)>, Error> {
    let dir = tree.join("sql/queries");
    let mut found = Vec::new();
    for entry in std::fs::read_dir(&dir).map_err(|e| format!("{}: {e}", dir.display()))? {
        let name = entry?.file_name().to_string_lossy().into_owned();
        if (name.starts_with("retention_") || name.starts_with("partitions_") || name == "cancel_orphans.sql")
            && name.ends_with(".sql")
        {
            found.push((
                name.trim_end_matches(".sql").to_owned(),
                sql_shape(&std::fs::read_to_string(dir.join(&name))?),
            ));
        }
    }
    found.sort();
    // Files that differ only in their constants (the two advisory locks)
    // are one entry in pg_stat_statements: one entry here, both names.
    let mut merged: Vec<(String, String)> = Vec::new();
    for (name, shape) in found {
        match merged.iter_mut().find(|(_, s)| *s == shape) {
            Some((names, _)) => *names = format!("{names}+{name}"),
            None => merged.push((name, shape)),
        }
    }
    Ok(merged)
}

/// The source tree a `tailhook` binary was built from: the nearest folder
/// above it holding Cargo.toml and sql/queries.
fn source_tree(binary: &Path) -> Option<PathBuf> {
    let binary = binary.canonicalize().ok()?;
    binary.ancestors().find(|d| d.join("Cargo.toml").is_file() && d.join("sql/queries").is_dir()).map(Path::to_path_buf)
}

/// What retention's statements did so far (pg_stat_statements, top level):
/// per file, calls, execution and planning time (ms), WAL bytes.
#[derive(Debug, Clone, Default)]
struct RetentionWork {
    by_file: Vec<(String, i64, f64, u64)>,
}

impl RetentionWork {
    fn ms(&self) -> f64 {
        self.by_file.iter().map(|f| f.2).sum()
    }
    fn wal(&self) -> u64 {
        self.by_file.iter().map(|f| f.3).sum()
    }
}

/// One table's figures, summed over its partitions.
#[derive(Debug, Clone)]
struct TableFigures {
    name: String,
    bytes: i64,
    live: i64,
    dead: i64,
}

/// One side at one moment.
#[derive(Debug, Clone)]
struct Sample {
    minute: u64,
    secs: f64,
    published: u64,
    delivered: u64,
    wal: u64,
    pg_cpu: f64,
    autovacuum_cpu: f64,
    sidecar_cpu: f64,
    tables: Vec<TableFigures>,
    autovacuum_runs: i64,
    retention: RetentionWork,
    /// Statements cancelled by lock_timeout, and by deadlocks, so far.
    failures: (usize, usize),
}

impl Sample {
    fn bytes(&self, table: &str) -> i64 {
        self.tables.iter().find(|t| t.name == table).map_or(0, |t| t.bytes)
    }
    /// outbox + deliveries + attempts (+ event_ids where it exists).
    fn total_bytes(&self) -> i64 {
        self.tables.iter().map(|t| t.bytes).sum()
    }
}

/// One side of `sustained`: its cluster, database, receiver and sidecar.
struct SustainedSide {
    label: String,
    cluster: Cluster,
    client: tokio_postgres::Client,
    url: String,
    receiver: Receiver,
    sidecar: Child,
    log: PathBuf,
    statements: Vec<(String, String)>,
    published: std::sync::Arc<std::sync::atomic::AtomicU64>,
    /// autovacuum_count of every table and partition seen, kept after a drop.
    autovacuum_counts: HashMap<String, i64>,
    samples: Vec<Sample>,
    delivered0: u64,
}

const SUSTAINED_TABLES: [&str; 4] = ["outbox", "deliveries", "attempts", "event_ids"];

impl SustainedSide {
    /// A cluster, a database migrated by `binary` with `config`, one
    /// endpoint on a receiver of its own, the sidecar, one event through.
    async fn start(env: &Env, label: &str, binary: &Path, config: &Path, log: &str) -> Result<Self, Error> {
        let tree =
            source_tree(binary).ok_or_else(|| format!("no source tree (sql/queries) above {}", binary.display()))?;
        let statements = retention_statements(&tree)?;
        // Blocks this thread for the few seconds initdb and the start take.
        let cluster = Cluster::start()?;
        let admin = connect(&cluster.admin_url).await?;
        admin.batch_execute("CREATE DATABASE tailhook_bench").await?;
        let url = tailhook::db::local_pg::with_database(&cluster.admin_url, "tailhook_bench");
        let client = connect(&url).await?;
        client.batch_execute("CREATE EXTENSION pg_stat_statements").await?;
        let migrated = Command::new(binary)
            .arg("--config")
            .arg(config)
            .arg("migrate")
            .env("TAILHOOK_DATABASE__URL", &url)
            .stdin(Stdio::null())
            .output()
            .await?;
        if !migrated.status.success() {
            return Err(format!("{} migrate: {}", binary.display(), String::from_utf8_lossy(&migrated.stderr)).into());
        }
        let receiver = Receiver::start(env, false).await?;
        client
            .execute(
                "INSERT INTO tailhook.endpoints (name, url, secrets) VALUES ('ep0', $1, ARRAY[$2])",
                &[&format!("http://{}/hook/0", receiver.addr), &SECRET],
            )
            .await?;
        let log = env.cache.join(log);
        let sidecar = Command::new(binary)
            .arg("--config")
            .arg(config)
            .arg("run")
            .env("TAILHOOK_DATABASE__URL", &url)
            // Retention's and partition maintenance's info lines: drops, rows moved.
            .env("RUST_LOG", "warn,tailhook::retention=info,tailhook::partitions=info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log)?)
            .kill_on_drop(true)
            .spawn()?;
        let mut side = Self {
            label: label.to_owned(),
            cluster,
            client,
            url,
            receiver,
            sidecar,
            log,
            statements,
            published: Default::default(),
            autovacuum_counts: HashMap::new(),
            samples: Vec::new(),
            delivered0: 0,
        };
        side.client.execute(SUSTAINED_PUBLISH, &[&1i32]).await?;
        let deadline = Instant::now() + Duration::from_secs(60);
        while side.receiver.received().await? < 1 {
            side.alive()?;
            if Instant::now() > deadline {
                return Err(format!("{label}: the first event never arrived").into());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(side)
    }

    fn alive(&mut self) -> Result<(), Error> {
        if let Some(status) = self.sidecar.try_wait()? {
            let log = std::fs::read_to_string(&self.log).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(5).collect();
            return Err(format!("{}: the sidecar exited ({status}): {}", self.label, tail.join(" / ")).into());
        }
        Ok(())
    }

    async fn retention_work(&self) -> Result<RetentionWork, Error> {
        let rows = self
            .client
            .query(
                "SELECT query, calls, total_exec_time + total_plan_time, wal_bytes::bigint
                   FROM pg_stat_statements
                  WHERE toplevel AND dbid = (SELECT oid FROM pg_database WHERE datname = current_database())",
                &[],
            )
            .await?;
        let mut by_file: Vec<(String, i64, f64, u64)> =
            self.statements.iter().map(|(name, _)| (name.clone(), 0, 0.0, 0)).collect();
        for row in rows {
            let shape = sql_shape(row.get::<_, &str>(0));
            if let Some(i) = self.statements.iter().position(|(_, s)| *s == shape) {
                by_file[i].1 += row.get::<_, i64>(1);
                by_file[i].2 += row.get::<_, f64>(2);
                by_file[i].3 += row.get::<_, i64>(3) as u64;
            }
        }
        Ok(RetentionWork { by_file })
    }

    async fn sample(&mut self, env: &Env, av: &AutovacuumSampler, minute: u64, secs: f64) -> Result<Sample, Error> {
        self.alive()?;
        let wal: i64 =
            self.client.query_one("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::bigint", &[]).await?.get(0);
        let pg_cpu = env.tree_cpu(self.cluster.postmaster);
        let delivered = self.receiver.received().await? - self.delivered0;
        let tables = self
            .client
            .query(
                "SELECT t.name, coalesce(sum(pg_total_relation_size(p.relid)), 0)::bigint,
                        coalesce(sum(s.n_live_tup), 0)::bigint, coalesce(sum(s.n_dead_tup), 0)::bigint
                   FROM unnest($1::text[]) WITH ORDINALITY t(name, ord)
                   CROSS JOIN LATERAL (
                       -- pg_partition_tree lists no plain table: then the table itself.
                       SELECT relid FROM pg_partition_tree(to_regclass('tailhook.' || t.name)) WHERE isleaf
                       UNION
                       SELECT oid FROM pg_class WHERE oid = to_regclass('tailhook.' || t.name) AND relkind = 'r'
                   ) p
                   LEFT JOIN pg_stat_user_tables s ON s.relid = p.relid
                  GROUP BY t.name, t.ord ORDER BY t.ord",
                &[&SUSTAINED_TABLES.to_vec()],
            )
            .await?
            .iter()
            .map(|r| TableFigures { name: r.get(0), bytes: r.get(1), live: r.get(2), dead: r.get(3) })
            .collect();
        for row in self
            .client
            .query("SELECT relid::text, autovacuum_count FROM pg_stat_user_tables WHERE schemaname = 'tailhook'", &[])
            .await?
        {
            let n = self.autovacuum_counts.entry(row.get(0)).or_default();
            *n = (*n).max(row.get(1));
        }
        let sample = Sample {
            minute,
            secs,
            published: self.published.load(std::sync::atomic::Ordering::Relaxed),
            delivered,
            wal: wal as u64,
            pg_cpu,
            autovacuum_cpu: av.cpu(self.cluster.postmaster),
            sidecar_cpu: env.cpu(self.sidecar.id()),
            tables,
            autovacuum_runs: self.autovacuum_counts.values().sum(),
            retention: self.retention_work().await?,
            failures: self.cluster.failures(),
        };
        self.samples.push(sample.clone());
        Ok(sample)
    }
}

/// `rate` events/s until `until`, `rate / 100` (spread evenly) in one
/// INSERT every 10 ms on a connection of its own, each step at its
/// deadline (late steps go at once, so the rate is held while the
/// database keeps up). Counts what it published in `published`. Returns
/// its connection, to be closed after the last sample: a backend exiting
/// while the cluster's CPU is read could be missed by that reading.
async fn sustained_publisher(
    url: String,
    rate: u64,
    start: tokio::time::Instant,
    until: tokio::time::Instant,
    published: std::sync::Arc<std::sync::atomic::AtomicU64>,
) -> Result<tokio_postgres::Client, String> {
    let client = connect(&url).await.map_err(|e| e.to_string())?;
    let insert = client.prepare(SUSTAINED_PUBLISH).await.map_err(|e| e.to_string())?;
    let per_step = |i: u64| rate * (i + 1) / 100 - rate * i / 100;
    for i in 0u64.. {
        let at = start + SUSTAINED_STEP * i as u32;
        if at >= until {
            break;
        }
        tokio::time::sleep_until(at).await;
        let n = per_step(i);
        if n == 0 {
            continue;
        }
        client.execute(&insert, &[&(n as i32)]).await.map_err(|e| e.to_string())?;
        published.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
    }
    Ok(client)
}

/// Small helper: MiB.
fn mib(bytes: i64) -> f64 {
    bytes as f64 / 1_048_576.0
}

async fn sustained(env: &Env, args: &Args) -> Result<(), Error> {
    let rate = args.rate.unwrap_or(2_000);
    let minutes = args.minutes.max(1);
    let binary_b =
        env.tailhook_b.clone().ok_or("sustained needs --sidecar-b: main's release `tailhook` (DELETE retention)")?;
    let common = format!(
        "# Written by examples/bench.rs (sustained).\n\
         [delivery]\nallow_private_networks = true\n[server]\nlisten = \"\"\n[log]\nlevel = \"warn\"\nsummary_interval_ms = 0\n\
         [retention]\nsucceeded_after_ms = {SUSTAINED_RETENTION_MS}\nfailed_after_ms = {SUSTAINED_RETENTION_MS}\ninterval_ms = {SUSTAINED_RETENTION_EVERY_MS}\n"
    );
    let (config_a, config_b) = (env.cache.join("sustained-a.toml"), env.cache.join("sustained-b.toml"));
    std::fs::write(&config_a, format!("{common}partition_interval = \"{SUSTAINED_PARTITION}\"\n"))?;
    // Main's [retention] rejects keys it does not know: no partition_interval.
    std::fs::write(&config_b, &common)?;
    let commit = git(&["rev-parse", "--short", "HEAD"]);
    println!(
        "\n## sustained: {rate} events/s for {minutes} min, one endpoint per side, retention {} s (succeeded and failed), retention.interval_ms {SUSTAINED_RETENTION_EVERY_MS}\n\
         \x20 A = this build ({commit}), partitioned by {SUSTAINED_PARTITION}: periods dropped whole\n\
         \x20 B = {}: DELETE retention\n\
         \x20 both at the same time, each on a throwaway PostgreSQL cluster of its own (local_pg; the same settings:\n\
         \x20 autovacuum on at its defaults, full_page_writes on, synchronous_commit on, fsync off, pg_stat_statements\n\
         \x20 track=all), each with its own receiver (examples/receiver.rs) and the same publisher: {} events in one INSERT\n\
         \x20 every 10 ms on its own connection, about 500 bytes of JSON each.",
        SUSTAINED_RETENTION_MS / 1000,
        binary_b.display(),
        rate / 100,
    );
    println!(
        "  how: published = events the publisher committed; delivered = requests the side's receiver answered;\n\
         \x20 sizes = pg_total_relation_size (heap, indexes, TOAST) summed over the table's leaf partitions\n\
         \x20 (pg_partition_tree), live/dead = n_live_tup/n_dead_tup of pg_stat_user_tables over the same;\n\
         \x20 WAL = pg_current_wal_lsn() of the side's cluster (everything it wrote, the publisher's inserts included);\n\
         \x20 PG CPU = utime+stime of the cluster's postmaster and all its children from /proc (exited ones\n\
         \x20 through cutime/cstime), publisher included; autovacuum CPU = the processes titled `autovacuum worker`,\n\
         \x20 sampled every 200 ms; av runs = autovacuum_count summed over the tables and partitions seen;\n\
         \x20 retention = the top-level statements pg_stat_statements holds whose text is one of the binary's\n\
         \x20 sql/queries/retention_*.sql, partitions_*.sql, cancel_orphans.sql (the functions they call run\n\
         \x20 nested, inside their figures): execution + planning time (wall time, an upper bound of their CPU) and\n\
         \x20 WAL bytes; their BEGIN/COMMIT are not counted, nor failed statements (lock t/o = statements the\n\
         \x20 server's log shows cancelled by lock_timeout). Per-delivery figures divide by the window's deliveries."
    );
    let mut side_a = SustainedSide::start(env, "A partitioned", &env.tailhook, &config_a, "sustained-a.log").await?;
    let mut side_b = SustainedSide::start(env, "B DELETE", &binary_b, &config_b, "sustained-b.log").await?;
    for side in [&side_a, &side_b] {
        println!("  {}: {}", side.label, side.url);
    }
    let av = AutovacuumSampler::start(vec![side_a.cluster.postmaster, side_b.cluster.postmaster], env.tick);
    for side in [&mut side_a, &mut side_b] {
        side.client.batch_execute("SELECT pg_stat_statements_reset()").await?;
        side.delivered0 = side.receiver.received().await?;
    }
    let start = tokio::time::Instant::now();
    let until = start + Duration::from_secs(60 * minutes);
    let mut publishers = Vec::new();
    for side in [&side_a, &side_b] {
        publishers.push(tokio::spawn(sustained_publisher(
            side.url.clone(),
            rate,
            start,
            until,
            side.published.clone(),
        )));
    }
    for side in [&mut side_a, &mut side_b] {
        side.sample(env, &av, 0, 0.0).await?;
    }
    println!(
        "\n  {:<13} {:>3} {:>9} {:>9} {:>7} {:>6} | MiB: {:>6} {:>6} {:>6} {:>6} | live/dead k: {:>11} {:>11} {:>11} | WAL B/dlv win {:>5} all {:>5} | CPU µs/dlv PG {:>4} av {:>3} sidecar {:>3} | av runs | retention ms, kB | lock t/o",
        "side", "min", "published", "delivered", "backlog", "rate/s", "outbox", "deliv", "attmpt", "ev_ids", "outbox", "deliveries", "attempts", "", "", "", "", ""
    );
    let print = |label: &str, s: &Sample, prev: &Sample, first: &Sample| {
        let win = (s.delivered - prev.delivered).max(1) as f64;
        let all = (s.delivered - first.delivered).max(1) as f64;
        let table = |name: &str| {
            s.tables
                .iter()
                .find(|t| t.name == name)
                .map_or("-".to_owned(), |t| format!("{:.0}/{:.1}", t.live as f64 / 1e3, t.dead as f64 / 1e3))
        };
        let ev_ids = if s.tables.iter().any(|t| t.name == "event_ids") {
            format!("{:.1}", mib(s.bytes("event_ids")))
        } else {
            "-".to_owned()
        };
        println!(
            "  {:<13} {:>3} {:>9} {:>9} {:>7} {:>6.0} | MiB: {:>6.1} {:>6.1} {:>6.1} {:>6} | live/dead k: {:>11} {:>11} {:>11} | WAL B/dlv win {:>5.0} all {:>5.0} | CPU µs/dlv PG {:>4.0} av {:>3.0} sidecar {:>3.0} | {:>7} | {:>6.0} {:>8.0} | {:>4}",
            label,
            s.minute,
            s.published,
            s.delivered,
            s.published as i64 - s.delivered as i64,
            (s.published - prev.published) as f64 / (s.secs - prev.secs).max(1e-9),
            mib(s.bytes("outbox")),
            mib(s.bytes("deliveries")),
            mib(s.bytes("attempts")),
            ev_ids,
            table("outbox"),
            table("deliveries"),
            table("attempts"),
            (s.wal - prev.wal) as f64 / win,
            (s.wal - first.wal) as f64 / all,
            (s.pg_cpu - prev.pg_cpu) * 1e6 / win,
            (s.autovacuum_cpu - prev.autovacuum_cpu) * 1e6 / win,
            (s.sidecar_cpu - prev.sidecar_cpu) * 1e6 / win,
            s.autovacuum_runs,
            s.retention.ms() - prev.retention.ms(),
            (s.retention.wal() - prev.retention.wal()) as f64 / 1e3,
            s.failures.0 - prev.failures.0,
        );
    };
    for minute in 1..=minutes {
        tokio::time::sleep_until(start + Duration::from_secs(60 * minute)).await;
        let secs = start.elapsed().as_secs_f64();
        for side in [&mut side_a, &mut side_b] {
            let s = side.sample(env, &av, minute, secs).await?;
            let n = side.samples.len();
            print(&side.label, &s, &side.samples[n - 2], &side.samples[0]);
        }
        for p in publishers.iter_mut() {
            if p.is_finished() && minute < minutes {
                let why = match p.await {
                    Ok(Ok(_)) => "it stopped".to_owned(),
                    Ok(Err(e)) => e,
                    Err(e) => e.to_string(),
                };
                return Err(format!("a publisher stopped early: {why}").into());
            }
        }
    }
    let mut connections = Vec::new();
    for p in publishers {
        connections.push(p.await?.map_err(|e| format!("publisher: {e}"))?);
    }
    // The figures after the first retention window: from the sample at its
    // end (or the first, on shorter runs) to the last.
    let window = SUSTAINED_RETENTION_MS.div_ceil(60_000).min(minutes - 1) as usize;
    println!(
        "\n  summary (\"after\": from minute {window}, the end of the first retention window, to minute {minutes}):"
    );
    for side in [&side_a, &side_b] {
        let (first, from, last) = (&side.samples[0], &side.samples[window], &side.samples[side.samples.len() - 1]);
        let at3 = &side.samples[3.min(side.samples.len() - 1)];
        let n = (last.delivered - from.delivered).max(1) as f64;
        let pg_ms = (last.pg_cpu - from.pg_cpu) * 1e3;
        let av_ms = (last.autovacuum_cpu - from.autovacuum_cpu) * 1e3;
        let ret_ms = last.retention.ms() - from.retention.ms();
        let wal = last.wal - from.wal;
        let ret_wal = last.retention.wal() - from.retention.wal();
        let backlog = last.published as i64 - last.delivered as i64;
        let half = &side.samples[side.samples.len() / 2];
        let growing = backlog > rate as i64 * 5 && backlog > half.published as i64 - half.delivered as i64;
        println!("  {}", side.label);
        println!(
            "    achieved: {:.0} events/s published, {:.0}/s delivered; backlog at the end {backlog} events ({:.1} s of publishing){}",
            last.published as f64 / last.secs,
            (last.delivered - first.delivered) as f64 / last.secs,
            backlog as f64 / rate as f64,
            if growing { ": GROWING, the side does not keep up" } else { "" }
        );
        let sizes: Vec<String> = ["outbox", "deliveries", "attempts", "event_ids"]
            .iter()
            .filter(|t| last.tables.iter().any(|x| x.name == **t))
            .map(|t| format!("{t} {:.1} -> {:.1}", mib(at3.bytes(t)), mib(last.bytes(t))))
            .collect();
        println!(
            "    size, MiB, minute {} -> {}: {}; all {:.1} -> {:.1} ({:+.1} %)",
            at3.minute,
            last.minute,
            sizes.join(", "),
            mib(at3.total_bytes()),
            mib(last.total_bytes()),
            (last.total_bytes() as f64 / at3.total_bytes().max(1) as f64 - 1.0) * 100.0
        );
        let max_dead: Vec<String> = ["outbox", "deliveries", "attempts", "event_ids"]
            .iter()
            .filter(|t| last.tables.iter().any(|x| x.name == **t))
            .map(|t| {
                let max =
                    side.samples.iter().flat_map(|s| s.tables.iter().filter(|x| x.name == *t)).map(|x| x.dead).max();
                let end = last.tables.iter().find(|x| x.name == *t).map_or(0, |x| x.dead);
                format!("{t} {} (at the end {end})", max.unwrap_or(0))
            })
            .collect();
        println!(
            "    dead tuples, most seen in a minute's sample: {}; autovacuum runs {}",
            max_dead.join(", "),
            last.autovacuum_runs
        );
        println!(
            "    per delivery after: WAL {:.0} B, PostgreSQL CPU {:.0} µs (autovacuum {:.1} µs), sidecar CPU {:.0} µs; whole run: WAL {:.0} B, PostgreSQL CPU {:.0} µs",
            wal as f64 / n,
            pg_ms * 1e3 / n,
            av_ms * 1e3 / n,
            (last.sidecar_cpu - from.sidecar_cpu) * 1e6 / n,
            (last.wal - first.wal) as f64 / (last.delivered - first.delivered).max(1) as f64,
            (last.pg_cpu - first.pg_cpu) * 1e6 / (last.delivered - first.delivered).max(1) as f64,
        );
        println!(
            "    retention's share after: of PostgreSQL CPU {:.2} % ({ret_ms:.0} ms of statements / {pg_ms:.0} ms), with autovacuum's CPU {:.2} % (+{av_ms:.0} ms; autovacuum also cleans the claims' and results' dead rows); of WAL {:.2} % ({ret_wal} of {wal} B)",
            ret_ms / pg_ms.max(1e-9) * 100.0,
            (ret_ms + av_ms) / pg_ms.max(1e-9) * 100.0,
            ret_wal as f64 / wal.max(1) as f64 * 100.0,
        );
        let files: Vec<String> = last
            .retention
            .by_file
            .iter()
            .map(|(name, calls, ms, wal)| format!("{name} {calls} calls {ms:.0} ms {:.0} kB", *wal as f64 / 1e3))
            .collect();
        println!("    retention's statements, whole run: {}", files.join("; "));
        println!(
            "    server log: {} statements cancelled by lock_timeout, {} by deadlocks (failed statements are not in pg_stat_statements' figures)",
            last.failures.0, last.failures.1
        );
        let log = std::fs::read_to_string(&side.log).unwrap_or_default();
        let lines = |what: &str| log.lines().filter(|l| l.contains(what)).count();
        println!(
            "    sidecar log ({}): {} drops of old partitions, {} moves of rows out of the DEFAULT partitions, {} warnings",
            side.log.display(),
            lines("old partitions dropped"),
            lines("rows moved out of the DEFAULT"),
            lines(" WARN ") - lines("secrets.keys is not set"),
        );
    }
    drop((av, connections));
    for side in [side_a, side_b] {
        let SustainedSide { cluster, client, mut sidecar, receiver, .. } = side;
        sidecar.kill().await?;
        drop((client, receiver));
        cluster.stop().await;
    }
    Ok(())
}
