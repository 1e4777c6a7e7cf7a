//! The command line: parses arguments, loads the config, sets up logging and signals, runs one command.

/// `println!` for command output that never panics: when stdout is a pipe
/// nobody reads any more (`tailhook status | head -1`), the rest of the
/// output is dropped and the command still finishes its work (the demo
/// still drops its database).
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

/// `print!` with [`say!`]'s rule.
macro_rules! say_raw {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = write!(std::io::stdout(), $($arg)*);
    }};
}

mod demo;
mod token;

use crate::config::{config_path, Config, LogFormat, Need};
use crate::db::{self, Db};
use crate::operator::probe::{SendTestError, TestRequest};
use crate::operator::{probe as send_test, status};
use crate::pipeline::outcome::ErrorKind;
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;
use tokio_util::sync::CancellationToken;

#[derive(Debug, Parser)]
#[command(name = "tailhook", version, about = "Turns PostgreSQL outbox rows into signed, retried webhooks")]
struct Cli {
    /// Config file (default: $TAILHOOK_CONFIG, else ./config.toml; missing means built-in defaults)
    #[arg(long, global = true, value_name = "PATH")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the sidecar (the default)
    Run,
    /// Create or upgrade the schema, then exit
    Migrate(MigrateArgs),
    /// Validate the configuration and print it with secrets redacted
    CheckConfig,
    /// Put deliveries back to be sent now (default: failed ones), keeping their history
    Redeliver(RedeliverArgs),
    /// Per endpoint: pending, retrying, failed, recent successes, oldest undelivered event, state
    Status(StatusArgs),
    /// Send one signed test event to an endpoint now and print the response (records nothing)
    SendTest(SendTestArgs),
    /// A self-contained tour: finds or starts a PostgreSQL, delivers and retries events to a local receiver, cleans up
    Demo(DemoArgs),
    /// Print a new endpoint secret (`whsec_` and 32 random bytes in base64), or with --sealing-key a new key for `[secrets] keys`
    Secret(SecretArgs),
    /// Tokens for the JSON API (`/api/v1`): create (printed once), list, revoke
    #[command(subcommand)]
    Token(token::TokenCommand),
    /// Print a short-lived link opening the console for one tenant only (signed with server.portal_key_env)
    PortalLink(PortalLinkArgs),
    /// Re-enable an endpoint tailhook (or anyone) disabled, forgetting its failures
    Enable {
        /// The endpoint's name
        endpoint: String,
    },
}

#[derive(Debug, clap::Args)]
struct MigrateArgs {
    /// Change nothing: print the SQL of the steps this database lacks, for another migration tool to run
    #[arg(long)]
    print_sql: bool,
    /// With --print-sql: print every step without connecting (each skips itself where already applied)
    #[arg(long, requires = "print_sql")]
    all: bool,
}

#[derive(Debug, clap::Args)]
struct DemoArgs {
    /// Keep the demo's database (and a throwaway cluster it started, running) for a first `tailhook run`; prints how to use and remove them
    #[arg(long)]
    keep: bool,
    /// Start a throwaway cluster of its own even when DATABASE_URL or localhost:5432 answers
    #[arg(long)]
    throwaway: bool,
}

#[derive(Debug, clap::Args)]
struct PortalLinkArgs {
    /// The tenant whose endpoints, events and deliveries the link shows
    #[arg(long)]
    tenant: String,
    /// How long the link works: e.g. 15m, 2h, 900 (seconds); at most 24h
    #[arg(long, default_value = "15m")]
    ttl: String,
    /// Pages only: the link changes nothing (no pause, test, redeliver)
    #[arg(long)]
    read_only: bool,
    /// tailhook's address as the tenant's browser reaches it (default: http:// and server.listen)
    #[arg(long, value_name = "URL")]
    base_url: Option<String>,
}

#[derive(Debug, clap::Args)]
struct SecretArgs {
    /// Print a key for `[secrets] keys` (TAILHOOK_SECRETS__KEYS) instead: the base64 of 32 random bytes
    #[arg(long)]
    sealing_key: bool,
}

#[derive(Debug, clap::Args)]
struct SendTestArgs {
    /// The endpoint's name
    endpoint: String,
    /// The event's type
    #[arg(long, default_value = "tailhook.test")]
    event_type: String,
    /// The event's data (JSON)
    #[arg(long, value_name = "JSON", default_value = r#"{"test":true}"#)]
    data: String,
    /// Print the body the endpoint would receive (its transform applied) and send nothing
    #[arg(long)]
    dry_run: bool,
}

#[derive(Debug, clap::Args)]
struct StatusArgs {
    /// Print JSON instead of a table
    #[arg(long)]
    json: bool,
    /// Count succeeded and failed deliveries finished within this window (a PostgreSQL interval: 1h, 24h, 7 days)
    #[arg(long, value_name = "INTERVAL", default_value = "24h")]
    window: String,
}

#[derive(Debug, clap::Args)]
struct RedeliverArgs {
    /// Only these deliveries (repeatable)
    #[arg(long = "id", value_name = "DELIVERY_ID")]
    ids: Vec<i64>,
    /// Only deliveries to this endpoint (by name)
    #[arg(long)]
    endpoint: Option<String>,
    /// Only deliveries of events of this exact type
    #[arg(long)]
    event_type: Option<String>,
    /// Only deliveries in this state (default: failed, or any state when --id is given)
    #[arg(long, value_enum)]
    status: Option<Status>,
    /// Only deliveries created at or after this time (e.g. 2026-11-22T10:00:00Z)
    #[arg(long, value_name = "TIME")]
    since: Option<String>,
    /// Only deliveries created before this time
    #[arg(long, value_name = "TIME")]
    until: Option<String>,
    /// Count what would be redelivered; change nothing
    #[arg(long)]
    dry_run: bool,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum Status {
    Failed,
    Cancelled,
    Succeeded,
    Pending,
    Retrying,
}

/// Entry point of the binary. Every failure is one line on stderr and a
/// non-zero exit code (2 for bad input, 1 for anything else).
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => {
            let _ = e.print(); // --help, --version
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("tailhook: {}", one_line(&e));
            return ExitCode::from(2);
        }
    };
    // Needs no configuration: a fresh secret is all it prints.
    if let Some(Command::Secret(args)) = &cli.command {
        return match new_secret(args.sealing_key) {
            Some(secret) => {
                say_raw!("{secret}\n");
                ExitCode::SUCCESS
            }
            None => {
                eprintln!("tailhook: the system's random source failed");
                ExitCode::FAILURE
            }
        };
    }
    let (path, named) = config_path(cli.config.as_deref());
    // Only `run` (which upserts the file's endpoints) and `check-config`
    // need every endpoint's secret variables; the other commands act on the
    // database, or one endpoint's row, and run where those may not be set.
    let need = match cli.command {
        None | Some(Command::Run | Command::CheckConfig) => Need::Endpoints,
        Some(_) => Need::DatabaseOnly,
    };
    let config = match Config::load_for(&path, named, need) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("tailhook: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("tailhook: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command.unwrap_or(Command::Run) {
            Command::Run => run(config).await,
            Command::Migrate(args) => migrate(config, args).await,
            Command::Redeliver(args) => redeliver(config, args).await,
            Command::Status(args) => status(config, args).await,
            Command::SendTest(args) => send_test(config, args).await,
            Command::Enable { endpoint } => enable(config, &endpoint).await,
            Command::Token(command) => tokens(config, command).await,
            Command::PortalLink(args) => portal_link(&config, &args),
            Command::Demo(args) => demo(args).await,
            Command::Secret(_) => Ok(()), // handled before the configuration is read
            Command::CheckConfig => {
                say_raw!("{}", config.redacted_toml());
                Ok(())
            }
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::BadInput(e)) => {
            eprintln!("tailhook: {e}");
            ExitCode::from(2)
        }
        Err(Failure::Other(e)) => {
            eprintln!("tailhook: {e}");
            ExitCode::FAILURE
        }
    }
}

/// 32 bytes from the OS's random source, in base64: with the `whsec_` prefix
/// an endpoint secret (Standard Webhooks), without it a sealing key (the
/// form `sealed::Keys::parse` takes). `None` if the random source fails.
fn new_secret(sealing_key: bool) -> Option<String> {
    use base64::Engine;
    use ring::rand::SecureRandom;
    let mut bytes = [0u8; crate::config::sealed::KEY_BYTES];
    ring::rand::SystemRandom::new().fill(&mut bytes).ok()?;
    let encoded = base64::engine::general_purpose::STANDARD.encode(bytes);
    Some(if sealing_key { encoded } else { format!("whsec_{encoded}") })
}

/// clap's error on one line: its first line, plus the "did you mean"
/// suggestion it would print on a later one (a mistyped sub-command or option).
fn one_line(e: &clap::Error) -> String {
    use clap::error::{ContextKind, ContextValue};
    let text = e.to_string();
    let first = text.lines().next().unwrap_or("invalid arguments").trim_start_matches("error: ");
    let suggestion = |kind| match e.get(kind)? {
        ContextValue::String(s) => Some(s.clone()),
        ContextValue::Strings(s) if !s.is_empty() => Some(s.join("' or '")),
        _ => None,
    };
    let suggested = suggestion(ContextKind::SuggestedSubcommand).or_else(|| suggestion(ContextKind::SuggestedArg));
    match suggested {
        Some(s) => format!("{first}; did you mean '{s}'?"),
        None => first.to_owned(),
    }
}

/// A database failure; a missing table or schema means `migrate` never ran there.
fn database_failure(e: &db::DbError) -> Failure {
    match e.code() {
        // undefined_table, invalid_schema_name
        Some("42P01" | "3F000") => Failure::Other(format!("{e}; create the schema with `tailhook migrate`")),
        _ => Failure::Other(e.to_string()),
    }
}

/// Why a command failed: bad input exits 2, anything else 1.
enum Failure {
    BadInput(String),
    Other(String),
}

impl From<String> for Failure {
    fn from(e: String) -> Self {
        Self::Other(e)
    }
}

/// Logs to stderr at `[log] level`, or `RUST_LOG` when set. Whatever either
/// says, other crates log at INFO and above only: the PostgreSQL driver's
/// DEBUG lines print statement parameters (secrets among them), and the HTTP
/// and TLS stacks' TRACE lines can print request headers and bodies.
fn init_logging(config: &Config) {
    use std::io::IsTerminal;
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    use tracing_subscriber::{filter, EnvFilter, Layer};
    let chosen = std::env::var("RUST_LOG")
        .ok()
        .and_then(|v| EnvFilter::try_new(v).ok())
        .unwrap_or_else(|| EnvFilter::new(&config.log.level));
    let own_crate_only_below_info =
        filter::filter_fn(|meta| *meta.level() <= tracing::Level::INFO || meta.target().starts_with("tailhook"));
    let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr).with_ansi(std::io::stderr().is_terminal());
    let fmt = match config.log.format {
        LogFormat::Json => fmt.json().boxed(),
        LogFormat::Text => fmt.fmt_fields(escaped_fields()).boxed(),
    };
    let _ =
        tracing_subscriber::registry().with(fmt.with_filter(chosen).with_filter(own_crate_only_below_info)).try_init();
}

/// Text-log fields (`name=value`, the message bare) with every control
/// character escaped (`\n`, `\u{1b}`): a logged value such as an endpoint
/// name written by a customer cannot start a line of its own (forging an
/// entry) or drive the terminal. JSON logs escape them by themselves.
fn escaped_fields() -> impl for<'w> tracing_subscriber::fmt::FormatFields<'w> + Send + Sync + 'static {
    use std::fmt::Write as _;
    use tracing_subscriber::field::MakeExt;
    tracing_subscriber::fmt::format::debug_fn(|writer, field, value| {
        if field.name() == "message" {
            write!(Escaped(writer), "{value:?}")
        } else {
            write!(Escaped(writer), "{field}={value:?}")
        }
    })
    .delimited(" ")
}

/// Writes through, control characters escaped as Rust does (`\n`, `\t`, `\u{7}`).
struct Escaped<'a, W: std::fmt::Write>(&'a mut W);

impl<W: std::fmt::Write> std::fmt::Write for Escaped<'_, W> {
    fn write_str(&mut self, text: &str) -> std::fmt::Result {
        for c in text.chars() {
            if c.is_control() {
                write!(self.0, "{}", c.escape_default())?;
            } else {
                self.0.write_char(c)?;
            }
        }
        Ok(())
    }
}

async fn run(config: Config) -> Result<(), Failure> {
    // A token variable named but not set is bad configuration (exit 2), found before anything starts.
    if config.server.console {
        config.server.admin_token().map_err(|e| Failure::BadInput(e.to_string()))?;
        config.server.portal_key().map_err(|e| Failure::BadInput(e.to_string()))?;
    }
    init_logging(&config);
    let shutdown = CancellationToken::new();
    tokio::spawn(watch_signals(shutdown.clone()));
    Ok(crate::run(config, shutdown).await.map_err(|e| e.to_string())?)
}

/// First SIGTERM/SIGINT: graceful stop. Second: exit at once.
async fn watch_signals(shutdown: CancellationToken) {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) else {
        tracing::error!("cannot install signal handlers; stop with SIGKILL");
        return;
    };
    tokio::select! { _ = term.recv() => {}, _ = int.recv() => {} }
    tracing::info!("signal received: finishing in-flight requests (a second signal exits at once)");
    shutdown.cancel();
    tokio::select! { _ = term.recv() => {}, _ = int.recv() => {} }
    eprintln!("tailhook: second signal, exiting at once");
    std::process::exit(130);
}

/// How `tailhook redeliver` names who asked: the command and the OS user.
fn cli_requester() -> String {
    let user = std::env::var("USER").or_else(|_| std::env::var("LOGNAME")).unwrap_or_default();
    let user: String = user.chars().filter(|c| !c.is_control()).take(64).collect();
    if user.is_empty() {
        "cli".to_owned()
    } else {
        format!("cli (user {user})")
    }
}

async fn redeliver(config: Config, args: RedeliverArgs) -> Result<(), Failure> {
    let db = Db::new(&config.database).map_err(|e| e.to_string())?;
    // Deliveries named by id are meant whatever their state; otherwise the
    // usual intent is to retry the failed ones.
    let status = match args.status.or(args.ids.is_empty().then_some(Status::Failed)) {
        Some(Status::Failed) => Some("failed"),
        Some(Status::Cancelled) => Some("cancelled"),
        Some(Status::Succeeded) => Some("succeeded"),
        Some(Status::Pending) => Some("pending"),
        Some(Status::Retrying) => Some("retrying"),
        None => None,
    };
    let selection = crate::db::Selection {
        ids: (!args.ids.is_empty()).then_some(args.ids),
        endpoint: args.endpoint,
        event_type: args.event_type,
        status: status.map(str::to_owned),
        since: args.since,
        until: args.until,
        requested_by: Some(cli_requester()),
    };
    let n = crate::operator::redeliver::redeliver(&db, &selection, args.dry_run).await.map_err(|e| match e {
        crate::operator::redeliver::RedeliverError::BadInput(e) => Failure::BadInput(e),
        crate::operator::redeliver::RedeliverError::Database(e) => database_failure(&e),
    })?;
    let what = match (status, n) {
        (Some(status), 1) => format!("1 {status} delivery"),
        (Some(status), n) => format!("{n} {status} deliveries"),
        (None, 1) => "1 delivery".to_owned(),
        (None, n) => format!("{n} deliveries"),
    };
    if args.dry_run {
        say!("would redeliver {what}");
    } else {
        say!("redelivered {what}");
    }
    Ok(())
}

async fn status(config: Config, args: StatusArgs) -> Result<(), Failure> {
    let db = Db::new(&config.database).map_err(|e| e.to_string())?;
    let report = status::report(&db, &args.window).await.map_err(|e| match e {
        status::StatusError::BadWindow(..) => Failure::BadInput(e.to_string()),
        status::StatusError::Database(e) => database_failure(&e),
    })?;
    if args.json {
        let text = serde_json::to_string_pretty(&report).map_err(|e| format!("cannot write JSON: {e}"))?;
        say!("{text}");
    } else {
        say_raw!("{}", status::table(&report));
    }
    Ok(())
}

async fn tokens(config: Config, command: token::TokenCommand) -> Result<(), Failure> {
    let db = Db::new(&config.database).map_err(|e| e.to_string())?;
    match token::run(&db, command).await {
        Ok(out) => {
            say!("{out}");
            Ok(())
        }
        Err(token::TokenError::BadInput(e)) => Err(Failure::BadInput(e)),
        Err(token::TokenError::Database(e)) => Err(database_failure(&e)),
    }
}

/// Prints a portal link signed with the configured key (no database needed).
fn portal_link(config: &Config, args: &PortalLinkArgs) -> Result<(), Failure> {
    use crate::manage::portal::{mint, parse_ttl, LinkKey};
    let secret = config.server.portal_key().map_err(|e| Failure::BadInput(e.to_string()))?;
    let Some(secret) = secret else {
        return Err(Failure::BadInput(
            "server.portal_key_env is not set: name an environment variable holding the portal key (32 characters or more)"
                .into(),
        ));
    };
    let ttl = parse_ttl(&args.ttl)
        .ok_or_else(|| Failure::BadInput(format!("--ttl `{}` is not a lifetime such as 15m, 2h or 900", args.ttl)))?;
    let token = mint(&LinkKey::derive(&secret), &args.tenant, ttl, args.read_only, std::time::SystemTime::now())
        .map_err(|e| Failure::BadInput(format!("cannot make the link: {e}")))?;
    let base = args.base_url.clone().unwrap_or_else(|| format!("http://{}", config.server.listen.trim()));
    say_raw!("{}/portal/{token}/\n", base.trim_end_matches('/'));
    Ok(())
}

async fn enable(config: Config, endpoint: &str) -> Result<(), Failure> {
    let db = Db::new(&config.database).map_err(|e| e.to_string())?;
    match db.enable_endpoint(endpoint).await {
        Ok(true) => {
            say!("endpoint `{endpoint}` enabled");
            Ok(())
        }
        Ok(false) => Err(Failure::BadInput(format!("no endpoint named `{endpoint}`"))),
        Err(e) => Err(database_failure(&e)),
    }
}

async fn send_test(config: Config, args: SendTestArgs) -> Result<(), Failure> {
    let db = Db::new(&config.database).map_err(|e| e.to_string())?;
    let request = TestRequest { endpoint: args.endpoint, event_type: args.event_type, data: args.data };
    let result = if args.dry_run {
        send_test::dry_run(&config, &db, &request).await.map(|body| say!("{body}"))
    } else {
        send_and_report(&config, &db, &request).await
    };
    result.map_err(|e| match e {
        SendTestError::BadInput(e) => Failure::BadInput(e),
        SendTestError::Database(e) => database_failure(&e),
        other => Failure::Other(other.to_string()),
    })
}

/// What a refusal by this command's destination policy adds: the policy is
/// this process's, not the sidecar's.
const OWN_POLICY: &str = "send-test applies its own configuration's destination policy (its config file and \
     TAILHOOK_* environment), not the running sidecar's: give it the sidecar's delivery.allow_private_networks and \
     delivery.allowed_cidrs, e.g. TAILHOOK_DELIVERY__ALLOW_PRIVATE_NETWORKS=true tailhook send-test ENDPOINT";

/// Sends the request and prints what happened; `Ok` only on a 2xx.
async fn send_and_report(config: &Config, db: &Db, request: &TestRequest) -> Result<(), SendTestError> {
    let p = send_test::probe(config, db, request).await?;
    let at = p.origin.as_ref().map(|o| format!(" at {o}")).unwrap_or_default();
    if let (true, Some((kind, error))) = (p.refused, &p.failure) {
        say!("not sent: {} to endpoint `{}`{at} (webhook-id {})", p.event_type, p.endpoint, p.event_id);
        say!("refused before sending: {kind} ({error})");
        if *kind == ErrorKind::BlockedAddress.as_str() {
            say!("note: {OWN_POLICY}");
        }
        return Err(SendTestError::Failed(format!(
            "test request to `{}` refused before sending ({kind}): {error}",
            p.endpoint
        )));
    }
    say!(
        "sent {} to endpoint `{}`{at} (webhook-id {}, timeout {} ms)",
        p.event_type,
        p.endpoint,
        p.event_id,
        p.timeout_ms
    );
    if p.disabled {
        say!("note: the endpoint is disabled; sent anyway, as a test");
    }
    match p.status_code {
        Some(code) => say!("HTTP {code} in {} ms", p.duration_ms),
        None => say!("no response after {} ms", p.duration_ms),
    }
    if let Some(response) = &p.response {
        say!("response: {response}");
    }
    match p.failure {
        None => Ok(()),
        Some((kind, error)) => {
            Err(SendTestError::Failed(format!("test request to `{}` failed ({kind}): {error}", p.endpoint)))
        }
    }
}

async fn demo(args: DemoArgs) -> Result<(), Failure> {
    // The tour narrates on stdout; only errors are logged.
    let mut quiet = Config::default();
    quiet.log.level = "error".into();
    init_logging(&quiet);
    let options = demo::Options { keep: args.keep, throwaway: args.throwaway };
    Ok(demo::demo(options).await.map_err(|e| e.to_string())?)
}

async fn migrate(config: Config, args: MigrateArgs) -> Result<(), Failure> {
    if args.all {
        say_raw!("{}", db::print_sql(db::MIGRATIONS));
        return Ok(());
    }
    let db = Db::new(&config.database).map_err(|e| e.to_string())?;
    let mut client = db.client().await.map_err(|e| e.to_string())?;
    if args.print_sql {
        let pending = db::pending(&client).await.map_err(|e| e.to_string())?;
        say_raw!("{}", db::print_sql(&pending));
        return Ok(());
    }
    let applied = db::migrate(&mut client).await.map_err(|e| e.to_string())?;
    let latest = db::MIGRATIONS.last().map_or(0, |m| m.0);
    if applied.is_empty() {
        say!("schema is up to date (version {latest})");
    } else {
        say!("applied migrations {applied:?}; schema is at version {latest}");
    }
    // The periods ahead, so that events published before the sidecar starts
    // land in their own partitions (src/partitions.rs).
    let width = config.retention.partition_width().map_err(|e| e.to_string())?;
    match crate::partitions::prepare(&db, width).await.map_err(|e| e.to_string())? {
        Some(p) if p.created > 0 => say!("prepared {} partitions ahead", p.created),
        _ => {}
    }
    Ok(())
}
