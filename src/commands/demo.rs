//! `tailhook demo`: a self-contained tour (own database, in-process receiver that verifies signatures, a flaky endpoint) that cleans up after itself.
//!
//! It finds or starts a PostgreSQL ([`crate::local_pg::find_or_start`]),
//! creates a database of its own, starts a receiver on 127.0.0.1 and the
//! sidecar in this process, registers a healthy endpoint and one that
//! answers 503 twice per event before accepting it, publishes events, prints
//! deliveries and retries as they happen, shows the record and the SQL that
//! reads it, then drops its database. Backoffs are short (300 ms doubling) so
//! the whole tour takes a few seconds.

use crate::config::Config;
use crate::db::{self, Db, DbError, DemoDelivery};
use crate::local_pg::LocalPg;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio_util::sync::CancellationToken;

/// Failures before the flaky endpoint accepts an event.
const FLAKY_FAILURES: usize = 2;

/// How long the deliveries may take before the demo gives up.
const SETTLE_LIMIT: Duration = Duration::from_secs(20);

/// The events published, as (type, payload).
const EVENTS: [(&str, &str); 3] = [
    ("invoice.created", r#"{"invoice": 42, "amount": 1999, "currency": "EUR"}"#),
    ("invoice.paid", r#"{"invoice": 42, "amount": 1999, "currency": "EUR"}"#),
    ("customer.updated", r#"{"customer": 7, "email": "ada@example.com"}"#),
];

/// Why the demo failed (exit 1).
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("{0}")]
    Postgres(String),
    #[error("{0}")]
    Database(#[from] DbError),
    #[error("the demo's receiver cannot listen on 127.0.0.1: {0}")]
    Receiver(std::io::Error),
    #[error("{0}")]
    Tour(String),
}

/// What `demo` is asked to do besides the tour.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// Keep the database (and a throwaway cluster the demo started, running)
    /// for a first `tailhook run`, and print how to use and remove them.
    pub keep: bool,
    /// Start a throwaway cluster even when `DATABASE_URL` or localhost:5432 answers.
    pub throwaway: bool,
}

/// Runs the tour; the database it creates is dropped whatever happens,
/// unless `options.keep`.
pub async fn demo(options: Options) -> Result<(), DemoError> {
    use crate::local_pg::{find_or_start_with, start_throwaway_with, Setup};
    let started = Instant::now();
    let setup = Setup { keep_running: options.keep, ..Setup::default() };
    let pg = tokio::task::spawn_blocking(move || match options.throwaway {
        true => start_throwaway_with(&setup),
        false => find_or_start_with(&setup),
    })
    .await
    .map_err(|e| DemoError::Postgres(format!("finding PostgreSQL crashed: {e}")))?
    .map_err(DemoError::Postgres)?;
    let name = format!("tailhook_demo_{}_{:08x}", std::process::id(), rand::random::<u32>());
    say!("PostgreSQL: {} — creating database {name}", describe(&pg));
    db::demo_create_database(&pg.admin_url, &name).await?;
    // Ctrl-C ends the tour early but still drops the database.
    let result = tokio::select! {
        result = tour(&pg, &name) => result,
        _ = tokio::signal::ctrl_c() => Err(DemoError::Tour("interrupted".into())),
    };
    if options.keep {
        say!("{}", kept(&pg, &name));
        result?;
        say!("demo finished in {:.1} s", started.elapsed().as_secs_f64());
        return Ok(());
    }
    let dropped = db::demo_drop_database(&pg.admin_url, &name).await;
    match (&result, &dropped) {
        (_, Ok(())) => say!("\ndropped database {name}"),
        (_, Err(e)) => eprintln!("tailhook: could not drop database {name}: {e}"),
    }
    result?;
    dropped?;
    say!("demo finished in {:.1} s", started.elapsed().as_secs_f64());
    Ok(())
}

/// What `--keep` leaves and how to use and remove it: the exact `run`
/// command (a password in the URL shown as `[redacted]`), how to drop the
/// database, and for a throwaway cluster how to stop and remove it.
fn kept(pg: &LocalPg, database: &str) -> String {
    let quote = |s: &str| format!("'{}'", s.replace('\'', r"'\''"));
    let url = crate::secret::DatabaseUrl::new(pg.url_for(database));
    let admin_url = crate::secret::DatabaseUrl::new(pg.admin_url.clone());
    let mut text = format!(
        "\nkept database {database}: its endpoints `healthy` and `flaky` point at the demo's receiver, which has \
         stopped (disable or delete them before adding yours). Run tailhook on it:\n\n    \
         DATABASE_URL={} tailhook run\n\ndrop it later:\n\n    psql {} -c 'DROP DATABASE {database}'\n",
        quote(&url.redacted()),
        quote(&admin_url.redacted()),
    );
    if url.redacted() != url.expose() {
        text.push_str("\n(put your DATABASE_URL's password where it says [redacted])\n");
    }
    if let Some(dir) = pg.data_dir.as_deref().and_then(|data| Some((data, data.parent()?))) {
        let (data, dir) = (dir.0.display().to_string(), dir.1.display().to_string());
        text.push_str(&format!(
            "\nthe throwaway cluster keeps running after this command (its log: {dir}/log);\n\
             stop it: kill -INT $(head -1 {})\n\
             remove it: rm -rf {}\n",
            quote(&format!("{data}/postmaster.pid")),
            quote(&dir),
        ));
    }
    text
}

/// Where the server came from, without its connection string (it may hold a password).
fn describe(pg: &LocalPg) -> String {
    match &pg.data_dir {
        Some(dir) => format!("started a throwaway cluster in {}", dir.display()),
        None => format!("using the server found via {}", pg.origin),
    }
}

/// Everything between creating the database and dropping it.
async fn tour(pg: &LocalPg, database: &str) -> Result<(), DemoError> {
    let secrets = HashMap::from([("/healthy", new_secret()), ("/flaky", new_secret())]);
    let receiver = Receiver::start(secrets.clone()).await?;

    let mut config = Config::default();
    config.database.url = crate::secret::DatabaseUrl::new(pg.url_for(database));
    config.delivery.allow_private_networks = true; // the receiver is on 127.0.0.1
                                                   // No HTTP listener: the tour needs none, and a sidecar already running on
                                                   // this host holds the default port.
    config.server.listen = String::new();
    config.delivery.backoff_initial_ms = 300;
    config.delivery.backoff_max_ms = 1_000;
    config.delivery.timeout_ms = 5_000;
    config.delivery.shutdown_grace_ms = 2_000;
    let db = Db::new(&config.database)?;
    db::migrate(&mut *db.client().await?).await?;
    say!("schema created (tailhook migrate)");
    say!("receiver listening on http://{} (it verifies every signature)", receiver.addr);
    for (endpoint, path) in [("healthy", "/healthy"), ("flaky", "/flaky")] {
        let url = format!("http://{}{path}", receiver.addr);
        db.demo_add_endpoint(endpoint, &url, &secrets[path]).await?;
    }
    say!(
        "endpoints: `healthy` answers 200; `flaky` answers 503 {FLAKY_FAILURES} times per event, then 200 \
         (retries after 300 ms, then 600 ms)\n"
    );

    let shutdown = CancellationToken::new();
    let mut sidecar = tokio::spawn(crate::run(config, shutdown.clone()));
    // However the tour ends (an error, Ctrl-C), the sidecar stops with it.
    let _stop_sidecar = shutdown.clone().drop_guard();
    let publish_and_watch = async {
        for (event_type, payload) in EVENTS {
            let id = db.demo_publish(event_type, payload).await?;
            say!("published {event_type} (event {id})");
        }
        watch(&db, EVENTS.len() * 2).await
    };
    // The sidecar returns only when told to stop, or with an error: then
    // there is nothing left to watch.
    let watched = tokio::select! {
        watched = publish_and_watch => watched,
        ended = &mut sidecar => return Err(stopped(ended)),
    };
    shutdown.cancel();
    match tokio::time::timeout(Duration::from_secs(10), &mut sidecar).await {
        Ok(Ok(Ok(()))) => {}
        Ok(ended) => return Err(stopped(ended)),
        Err(_) => return Err(DemoError::Tour("the sidecar did not stop within 10 s".into())),
    }
    watched?;

    let (verified, invalid) = receiver.tally();
    if invalid > 0 {
        return Err(DemoError::Tour(format!("{invalid} of {} requests had no valid signature", verified + invalid)));
    }
    let retries = verified.saturating_sub(EVENTS.len() * 2);
    say!(
        "\nall {} deliveries succeeded: {retries} retries on the way, and all {verified} requests carried a \
         Standard Webhooks signature the receiver verified (HMAC-SHA256 of id.timestamp.body)",
        EVENTS.len() * 2
    );

    say!("\nthe record, as `tailhook status` shows it:");
    let report = crate::operator::status::report(&db, "24h").await.map_err(|e| DemoError::Tour(e.to_string()))?;
    say_raw!("{}", crate::operator::status::table(&report));
    say!("\nevery attempt is a row you can query; this SQL reads them:\n");
    say!("{}", crate::db::DEMO_RECORD.trim_end());
    let (header, rows) = db.demo_record().await?;
    let mut table = comfy_table::Table::new();
    table.load_style(comfy_table::presets::UTF8_FULL_CONDENSED).set_header(header).add_rows(rows);
    say!("{table}");
    say!(
        "\nnext: point tailhook at your database (`DATABASE_URL=... tailhook run`), add an endpoint with \
         INSERT INTO tailhook.endpoints, and publish with SELECT tailhook.publish(...)"
    );
    Ok(())
}

/// Why the sidecar task ended when it should not have.
fn stopped(ended: Result<Result<(), crate::RunError>, tokio::task::JoinError>) -> DemoError {
    DemoError::Tour(match ended {
        Ok(Ok(())) => "the sidecar stopped before the deliveries finished".to_owned(),
        Ok(Err(e)) => format!("the sidecar stopped: {e}"),
        Err(e) => format!("the sidecar crashed: {e}"),
    })
}

/// Prints each delivery's changes until `expected` deliveries have succeeded.
async fn watch(db: &Db, expected: usize) -> Result<(), DemoError> {
    let deadline = Instant::now() + SETTLE_LIMIT;
    let mut seen: HashMap<i64, DemoDelivery> = HashMap::new();
    loop {
        let now = db.demo_progress().await?;
        for d in &now {
            if seen.get(&d.id).is_some_and(|old| old.status == d.status && old.attempts == d.attempts) {
                continue;
            }
            say!("  delivery {:>2}  {:<17} → {:<8} {}", d.id, d.event_type, d.endpoint, narrate(d));
            seen.insert(d.id, d.clone());
        }
        if now.len() == expected && now.iter().all(|d| d.status == "succeeded") {
            return Ok(());
        }
        if let Some(d) = now.iter().find(|d| d.status == "failed") {
            let why = d.last_error.as_deref().unwrap_or("no reason recorded");
            return Err(DemoError::Tour(format!("delivery {} failed: {why}", d.id)));
        }
        if Instant::now() > deadline {
            return Err(DemoError::Tour(format!("deliveries did not finish within {} s", SETTLE_LIMIT.as_secs())));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// One line about a delivery's state.
fn narrate(d: &DemoDelivery) -> String {
    match d.status.as_str() {
        "pending" => "pending".to_owned(),
        "retrying" => format!(
            "retrying: attempt {} got {}, retry in {:.1} s",
            d.attempts,
            d.last_error.as_deref().unwrap_or("an error"),
            d.retry_in_ms.unwrap_or(0) as f64 / 1000.0
        ),
        "succeeded" => format!(
            "succeeded (HTTP {}) after {} attempt{}",
            d.last_status_code.unwrap_or(200),
            d.attempts,
            if d.attempts == 1 { "" } else { "s" }
        ),
        other => format!("{other}: {}", d.last_error.as_deref().unwrap_or("")),
    }
}

/// A fresh Standard Webhooks secret: `whsec_` and 32 random bytes in base64.
fn new_secret() -> String {
    format!("whsec_{}", BASE64.encode(rand::random::<[u8; 32]>()))
}

/// The demo's receiver: verifies every request's signature itself (not with
/// tailhook's signer) and answers by path.
struct Receiver {
    addr: std::net::SocketAddr,
    shared: Arc<Shared>,
}

struct Shared {
    /// Path → the secret of the endpoint posting there.
    secrets: HashMap<&'static str, String>,
    /// Requests seen per (path, webhook-id).
    seen: Mutex<HashMap<(String, String), usize>>,
    verified: AtomicUsize,
    invalid: AtomicUsize,
}

impl Receiver {
    async fn start(secrets: HashMap<&'static str, String>) -> Result<Self, DemoError> {
        let shared = Arc::new(Shared {
            secrets,
            seen: Mutex::default(),
            verified: AtomicUsize::new(0),
            invalid: AtomicUsize::new(0),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.map_err(DemoError::Receiver)?;
        let addr = listener.local_addr().map_err(DemoError::Receiver)?;
        let app = axum::Router::new().fallback(receive).with_state(shared.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Ok(Self { addr, shared })
    }

    /// Requests with a valid signature, and without.
    fn tally(&self) -> (usize, usize) {
        (self.shared.verified.load(Ordering::SeqCst), self.shared.invalid.load(Ordering::SeqCst))
    }
}

async fn receive(State(shared): State<Arc<Shared>>, uri: Uri, headers: HeaderMap, body: Bytes) -> StatusCode {
    let path = uri.path();
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default();
    let id = header("webhook-id");
    let checked = match shared.secrets.get(path) {
        Some(secret) => {
            verify(secret, id, header("webhook-timestamp"), header("webhook-signature"), &body, SystemTime::now())
        }
        None => Err("no endpoint posts here".to_owned()),
    };
    if let Err(why) = checked {
        shared.invalid.fetch_add(1, Ordering::SeqCst);
        say!("  receiver    POST {path:<8} webhook-id {id}: signature INVALID ({why}) → 401");
        return StatusCode::UNAUTHORIZED;
    }
    shared.verified.fetch_add(1, Ordering::SeqCst);
    let seen = {
        let mut seen = shared.seen.lock().unwrap_or_else(|e| e.into_inner());
        let n = seen.entry((path.to_owned(), id.to_owned())).or_insert(0);
        *n += 1;
        *n
    };
    let status =
        if path == "/flaky" && seen <= FLAKY_FAILURES { StatusCode::SERVICE_UNAVAILABLE } else { StatusCode::OK };
    say!("  receiver    POST {path:<8} webhook-id {id}: signature verified → {}", status.as_u16());
    status
}

/// Standard Webhooks verification: HMAC-SHA256 of `id.timestamp.body` keyed
/// by the secret's base64 part, any `v1,` entry matching, and a timestamp
/// within five minutes of `now`.
fn verify(
    secret: &str,
    id: &str,
    timestamp: &str,
    signatures: &str,
    body: &[u8],
    now: SystemTime,
) -> Result<(), String> {
    use hmac::{Hmac, Mac};
    let key = BASE64.decode(secret.trim_start_matches("whsec_")).map_err(|e| format!("bad secret: {e}"))?;
    let sent: i64 = timestamp.parse().map_err(|_| "no webhook-timestamp".to_owned())?;
    let now = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64);
    if (now - sent).abs() > 300 {
        return Err("webhook-timestamp is more than five minutes off".into());
    }
    for entry in signatures.split(' ') {
        let Some(Ok(signature)) = entry.strip_prefix("v1,").map(|s| BASE64.decode(s)) else { continue };
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(&key).map_err(|e| e.to_string())?;
        mac.update(format!("{id}.{timestamp}.").as_bytes());
        mac.update(body);
        if mac.verify_slice(&signature).is_ok() {
            return Ok(());
        }
    }
    Err("no v1 signature matches".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The Standard Webhooks specification's example.
    #[test]
    fn verifies_the_standard_webhooks_example() {
        let (secret, id, ts) = ("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "msg_p5jXN8AQM9LWM0D4loKWxJek", "1614265330");
        let body = br#"{"test": 2432232314}"#;
        let at = UNIX_EPOCH + Duration::from_secs(1_614_265_330);
        let good = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";
        assert_eq!(verify(secret, id, ts, &format!("v1,bm90IGl0 {good}"), body, at), Ok(()));
        assert!(verify(secret, id, ts, "v1,bm90IGl0", body, at).is_err());
        assert!(verify(secret, id, ts, good, b"{}", at).is_err(), "another body");
        assert!(verify(secret, id, ts, good, body, at + Duration::from_secs(301)).is_err(), "too old");
    }
}
