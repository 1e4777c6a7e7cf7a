//! Shared test fixtures: one fresh database per test, a receiver, a sidecar, and deadline waits.

pub mod browser;
pub mod console;
pub mod https;
pub mod pgbouncer;
pub mod process;
pub mod proxy;
pub mod receiver;
pub mod role;
pub mod tinyproxy;
pub mod tls;

use std::future::Future;
use std::sync::OnceLock;
use std::time::Duration;
use tailhook::local_pg::{self, LocalPg};
use tailhook::Config;
use tokio_util::sync::CancellationToken;

pub use process::Binary;
pub use receiver::{Receiver, Reply};
pub use role::Role;

/// The server every test in this process uses (found or started once).
pub fn server() -> &'static LocalPg {
    static PG: OnceLock<Result<LocalPg, String>> = OnceLock::new();
    match PG.get_or_init(local_pg::find_or_start) {
        Ok(pg) => pg,
        Err(e) => panic!("{e}"),
    }
}

/// A database of its own for one test, dropped when the test ends.
pub struct TestDb {
    pub url: String,
    name: String,
    admin_url: String,
}

impl TestDb {
    pub async fn new() -> Self {
        Self::on(server()).await
    }

    /// A database on another server (e.g. the TLS-only one).
    pub async fn on(server: &LocalPg) -> Self {
        let name = format!("tailhook_test_{}_{:08x}", std::process::id(), rand::random::<u32>());
        let admin = connect(&server.admin_url).await;
        admin.batch_execute(&format!("CREATE DATABASE {name}")).await.expect("create test database");
        Self { url: server.url_for(&name), name, admin_url: server.admin_url.clone() }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub async fn client(&self) -> tokio_postgres::Client {
        connect(&self.url).await
    }

    /// Creates the schema (what `tailhook migrate` does).
    pub async fn migrate(&self) -> tokio_postgres::Client {
        let mut client = self.client().await;
        tailhook::db::migrate(&mut client).await.expect("migrate");
        client
    }

    /// A config for this database tuned for fast tests: receivers on loopback
    /// allowed, short backoffs, timeouts and leases.
    pub fn config(&self) -> Config {
        let mut c = Config::default();
        c.database.url = tailhook::secret::DatabaseUrl::new(self.url.clone());
        c.database.startup_timeout_ms = 5_000;
        c.delivery.allow_private_networks = true;
        c.delivery.backoff_initial_ms = 100;
        c.delivery.backoff_max_ms = 2_000;
        c.delivery.timeout_ms = 2_000;
        c.delivery.lease_margin_ms = 1_000;
        c.delivery.shutdown_grace_ms = 2_000;
        c.server.listen = String::new();
        c
    }

    /// One number from a query.
    pub async fn count(&self, sql: &str) -> i64 {
        self.client().await.query_one(sql, &[]).await.unwrap_or_else(|e| panic!("{sql}: {}", report(&e))).get(0)
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let (name, admin_url) = (self.name.clone(), self.admin_url.clone());
        // Drop runs outside async; a thread of its own runs the cleanup.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().ok()?;
            rt.block_on(async {
                let admin = connect(&admin_url).await;
                admin.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).await.ok()
            })
        })
        .join();
    }
}

/// An error with its causes, as an error reporter shows it: each `source()`
/// appended unless the text already holds it.
pub fn report(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        let line = e.to_string();
        if !text.contains(&line) {
            text = format!("{text}: {line}");
        }
        source = e.source();
    }
    text
}

/// A connection with tailhook's own connector, so TLS settings in `url` apply.
/// Applies every migration file again by hand, as another migration tool
/// (or an operator with psql) might: a file marked to run outside a
/// transaction one statement at a time, the others whole.
pub async fn apply_every_migration_by_hand(client: &tokio_postgres::Client) {
    for (version, _, sql) in tailhook::db::MIGRATIONS {
        apply_migration_by_hand(client, *version, sql).await;
    }
}

/// Runs one migration file as a user would with psql (one that must run
/// outside a transaction, statement by statement).
pub async fn apply_migration_by_hand(client: &tokio_postgres::Client, version: i32, sql: &str) {
    if tailhook::db::skips_once_partitioned(sql) && deliveries_partitioned(client).await {
        return; // as its marker line says (version 10 once 31 has run)
    }
    if sql.contains(tailhook::db::OUTSIDE_A_TRANSACTION) {
        for statement in tailhook::db::statements(sql) {
            client.batch_execute(statement).await.unwrap_or_else(|e| panic!("applying {version}: {e}"));
        }
    } else {
        client.batch_execute(sql).await.unwrap_or_else(|e| panic!("applying {version}: {e}"));
    }
}

/// Whether `tailhook.deliveries` is partitioned (a file marked
/// `tailhook::db::SKIP_ONCE_PARTITIONED` is then skipped).
pub async fn deliveries_partitioned(client: &tokio_postgres::Client) -> bool {
    client
        .query_one(
            "SELECT coalesce((SELECT relkind = 'p' FROM pg_class WHERE oid = to_regclass('tailhook.deliveries')), false)",
            &[],
        )
        .await
        .unwrap()
        .get(0)
}

/// The relations of `table` (itself, or one of its partitions, whose names
/// start with it) that `plan` reads whole (`Seq Scan on ...`), leaving out
/// partitions that hold no row (an empty partition is always planned as a
/// scan of its zero pages).
pub async fn read_whole(client: &tokio_postgres::Client, plan: &str, table: &str) -> Vec<String> {
    let mut whole = Vec::new();
    for rest in plan.split(&format!("Seq Scan on {table}")).skip(1) {
        let name = format!("{table}{}", rest.split_whitespace().next().unwrap_or(""));
        let holds_rows: bool = client
            .query_one(
                "SELECT coalesce((SELECT relpages > 0 OR reltuples > 0 FROM pg_class
                                   WHERE oid = to_regclass('tailhook.' || quote_ident($1))), true)",
                &[&name],
            )
            .await
            .unwrap()
            .get(0);
        if holds_rows {
            whole.push(name);
        }
    }
    whole
}

pub async fn connect(url: &str) -> tokio_postgres::Client {
    let mut connector = tailhook::db::Connector::from_url(url).unwrap_or_else(|e| panic!("{url}: {e}"));
    connector.pg.application_name("tailhook-tests");
    let (client, conn) = connector.connect().await.unwrap_or_else(|e| panic!("connect to {url}: {e}"));
    tokio::spawn(conn);
    client
}

/// The `tailhook` binary with no inherited configuration: no `TAILHOOK_*`
/// variables, no `DATABASE_URL`, and run in an empty directory (so the
/// implicit `./config.toml` is absent: built-in defaults).
pub fn tailhook_command() -> std::process::Command {
    static EMPTY: OnceLock<std::path::PathBuf> = OnceLock::new();
    let empty = EMPTY.get_or_init(|| {
        // Under target/ (Cargo's scratch folder for integration tests), so
        // nothing is left in the system's temporary directory.
        let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("empty");
        std::fs::create_dir_all(&dir).expect("an empty directory");
        dir
    });
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_tailhook"));
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("TAILHOOK_") {
            cmd.env_remove(key);
        }
    }
    // No HTTP listener unless a test asks: tests run side by side.
    cmd.env_remove("DATABASE_URL").env_remove("RUST_LOG").env("TAILHOOK_SERVER__LISTEN", "").current_dir(empty);
    cmd
}

/// A sidecar running in this process.
pub struct Sidecar {
    pub shutdown: CancellationToken,
    handle: tokio::task::JoinHandle<Result<(), tailhook::RunError>>,
}

impl Sidecar {
    pub fn start(config: Config) -> Self {
        let shutdown = CancellationToken::new();
        let handle = tokio::spawn(tailhook::run(config, shutdown.clone()));
        Self { shutdown, handle }
    }

    /// Whether `run` is still going (it returns only after `shutdown`).
    pub fn is_running(&self) -> bool {
        !self.handle.is_finished()
    }

    /// Graceful stop; fails the test if `run` returned an error or hung.
    pub async fn stop(self) {
        self.shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(30), self.handle)
            .await
            .expect("sidecar stops within 30 s")
            .expect("sidecar task")
            .expect("sidecar run");
    }
}

/// Polls `check` every 20 ms until it is true; fails the test after `limit`.
pub async fn wait_for<F, Fut>(what: &str, limit: Duration, check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    if !poll_until(limit, check).await {
        panic!("timed out after {limit:?} waiting for: {what}");
    }
}

/// Polls `check` every 20 ms until it is true or `limit` has passed, and
/// says which, without failing: for tests that then assert the values
/// themselves, so a failure shows the numbers.
pub async fn poll_until<F, Fut>(limit: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if check().await {
            return true;
        }
        if tokio::time::Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until no delivery is pending or retrying (and at least `min` exist).
pub async fn wait_settled(db: &TestDb, min: i64, limit: Duration) {
    let client = db.client().await;
    wait_for("every delivery finished", limit, || async {
        let row = client
            .query_one(
                "SELECT count(*) FILTER (WHERE status IN ('pending','retrying')), count(*) FROM tailhook.deliveries",
                &[],
            )
            .await
            .unwrap();
        row.get::<_, i64>(0) == 0 && row.get::<_, i64>(1) >= min
    })
    .await;
}

/// Adds an endpoint with SQL; returns its id.
pub async fn add_endpoint(client: &tokio_postgres::Client, name: &str, url: &str, secrets: &[&str]) -> i64 {
    client
        .query_one(
            "INSERT INTO tailhook.endpoints (name, url, secrets) VALUES ($1, $2, $3) RETURNING id",
            &[&name, &url, &secrets],
        )
        .await
        .expect("insert endpoint")
        .get(0)
}

pub const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// Verifies a request the Standard Webhooks way, independently of tailhook's
/// signer: HMAC-SHA256 over `id.timestamp.body`, any `v1,` entry matching,
/// timestamp within five minutes.
pub fn verify(secret: &str, headers: &axum::http::HeaderMap, body: &[u8]) -> Result<(), String> {
    use base64::Engine;
    use hmac::Mac;
    let get =
        |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).ok_or_else(|| format!("missing header {name}"));
    let (id, ts, sigs) = (get("webhook-id")?, get("webhook-timestamp")?, get("webhook-signature")?);
    let ts_num: i64 = ts.parse().map_err(|_| "bad timestamp".to_owned())?;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    if (now - ts_num).abs() > 300 {
        return Err("timestamp too far off".into());
    }
    let key = base64::engine::general_purpose::STANDARD
        .decode(secret.trim_start_matches("whsec_"))
        .map_err(|e| e.to_string())?;
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&key).unwrap();
    mac.update(format!("{id}.{ts}.").as_bytes());
    mac.update(body);
    let expected = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    if sigs.split(' ').any(|s| s.strip_prefix("v1,") == Some(expected.as_str())) {
        Ok(())
    } else {
        Err(format!("no signature matches among `{sigs}`"))
    }
}

/// Runs the binary (see [`tailhook_command`]) with `args` and `env` to the end.
pub fn tailhook(args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    let mut cmd = tailhook_command();
    cmd.args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run tailhook")
}

/// Deliveries of one endpoint in `status`.
pub async fn deliveries_of(db: &TestDb, endpoint: &str, status: &str) -> i64 {
    db.client()
        .await
        .query_one(
            "SELECT count(*) FROM tailhook.deliveries d JOIN tailhook.endpoints e ON e.id = d.endpoint_id
              WHERE e.name = $1 AND d.status = $2",
            &[&endpoint, &status],
        )
        .await
        .unwrap()
        .get(0)
}

/// Each failed attempt's endpoint, error_kind and error.
pub async fn failures(db: &TestDb) -> Vec<(String, String, String)> {
    db.client()
        .await
        .query(
            "SELECT e.name, a.error_kind, a.error FROM tailhook.attempts a
               JOIN tailhook.deliveries d ON d.id = a.delivery_id JOIN tailhook.endpoints e ON e.id = d.endpoint_id
              WHERE a.error_kind IS NOT NULL ORDER BY a.id",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect()
}

/// Succeeded deliveries of one endpoint.
pub async fn succeeded(db: &TestDb, endpoint: &str) -> i64 {
    deliveries_of(db, endpoint, "succeeded").await
}

/// A loopback port nothing listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}
