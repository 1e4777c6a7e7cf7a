//! The command line: parses arguments, loads the config, sets up logging and signals, runs one command.

use crate::config::{config_path, Config, LogFormat};
use crate::db::{self, Db};
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
    Migrate,
    /// Validate the configuration and print it with secrets redacted
    CheckConfig,
    /// Put deliveries back to be sent now (default: failed ones), keeping their history
    Redeliver(RedeliverArgs),
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
    /// Only deliveries in this state
    #[arg(long, value_enum, default_value_t = Status::Failed)]
    status: Status,
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
            let text = e.to_string();
            let first = text.lines().next().unwrap_or("invalid arguments");
            eprintln!("tailhook: {}", first.trim_start_matches("error: "));
            return ExitCode::from(2);
        }
    };
    let config = match Config::load(&config_path(cli.config.as_deref())) {
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
            Command::Migrate => migrate(config).await,
            Command::Redeliver(args) => redeliver(config, args).await,
            Command::CheckConfig => {
                print!("{}", config.redacted_toml());
                Ok(())
            }
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tailhook: {e}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(config: &Config) {
    let filter = std::env::var("RUST_LOG")
        .ok()
        .and_then(|v| tracing_subscriber::EnvFilter::try_new(v).ok())
        .unwrap_or_else(|| tracing_subscriber::EnvFilter::new(&config.log.level));
    use std::io::IsTerminal;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    let _ = match config.log.format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

async fn run(config: Config) -> Result<(), String> {
    init_logging(&config);
    let shutdown = CancellationToken::new();
    tokio::spawn(watch_signals(shutdown.clone()));
    crate::run(config, shutdown).await.map_err(|e| e.to_string())
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

async fn redeliver(config: Config, args: RedeliverArgs) -> Result<(), String> {
    let db = Db::new(&config.database).map_err(|e| e.to_string())?;
    let status = match args.status {
        Status::Failed => "failed",
        Status::Cancelled => "cancelled",
        Status::Succeeded => "succeeded",
        Status::Pending => "pending",
        Status::Retrying => "retrying",
    };
    let selection = crate::db::Selection {
        ids: (!args.ids.is_empty()).then_some(args.ids),
        endpoint: args.endpoint,
        event_type: args.event_type,
        status: status.to_owned(),
        since: args.since,
        until: args.until,
    };
    let n = crate::redeliver::redeliver(&db, &selection, args.dry_run).await?;
    if args.dry_run {
        println!("would redeliver {n} {status} deliveries");
    } else {
        println!("redelivered {n} {status} deliveries");
    }
    Ok(())
}

async fn migrate(config: Config) -> Result<(), String> {
    let db = Db::new(&config.database).map_err(|e| e.to_string())?;
    let mut client = db.client().await.map_err(|e| e.to_string())?;
    let applied = db::migrate(&mut client).await.map_err(|e| e.to_string())?;
    let latest = db::MIGRATIONS.last().map_or(0, |m| m.0);
    if applied.is_empty() {
        println!("schema is up to date (version {latest})");
    } else {
        println!("applied migrations {applied:?}; schema is at version {latest}");
    }
    Ok(())
}
