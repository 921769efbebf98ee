//! The `sluice` command: load and validate the config, set up logging, then run the pipeline
//! (`run`), inspect the database (`check`), request an incremental snapshot (`snapshot`), or
//! talk to a running daemon's HTTP endpoint (`status`, `pause`, `resume`).
//! Maps every outcome to an exit code that scripts and supervisors can act on.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use sluice::config::{Config, ConfigError, LogConfig, LogFormat};
use sluice::runtime::error_chain;
use sluice_source_postgres::check::{run_checks, CheckItem, CheckReport, CheckStatus};

/// Everything went as asked.
const EXIT_OK: u8 = 0;
/// The pipeline failed while running (or could not start).
const EXIT_RUNTIME: u8 = 1;
/// The configuration is unreadable or invalid; nothing was started.
const EXIT_CONFIG: u8 = 2;
/// `sluice check` found at least one failure.
const EXIT_CHECK_FAILED: u8 = 3;

/// PostgreSQL change data capture daemon.
#[derive(Parser)]
#[command(name = "sluice", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the pipeline until SIGTERM or SIGINT, then drain, confirm and exit.
    Run {
        /// The TOML configuration file.
        #[arg(long, short, value_name = "FILE")]
        config: PathBuf,
    },
    /// Validate the configuration, then check the database can be captured as configured
    /// and print what to fix.
    Check {
        /// The TOML configuration file.
        #[arg(long, short, value_name = "FILE")]
        config: PathBuf,
    },
    /// Ask the running pipeline for an incremental snapshot of a table: writes Debezium's
    /// `execute-snapshot` signal into `source.signal_table`; the pipeline reads the table in
    /// chunks beside streaming.
    Snapshot {
        /// The TOML configuration file.
        #[arg(long, short, value_name = "FILE")]
        config: PathBuf,
        /// The table, as schema.table.
        #[arg(long, value_name = "SCHEMA.TABLE")]
        table: String,
        /// Only rows matching this SQL condition (Debezium's additional-conditions filter).
        #[arg(long, value_name = "SQL")]
        filter: Option<String>,
    },
    /// Show the running daemon's status (slot, positions, lag, sinks, snapshot progress) as
    /// read from its HTTP endpoint.
    Status {
        #[command(flatten)]
        daemon: DaemonArgs,
        /// Print the status document as JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Pause the running daemon's delivery: the source stops reading, the slot keeps the WAL.
    Pause {
        #[command(flatten)]
        daemon: DaemonArgs,
    },
    /// Resume the running daemon's delivery where it was paused.
    Resume {
        #[command(flatten)]
        daemon: DaemonArgs,
    },
    /// Start a throwaway PostgreSQL, capture a sample table, make a few changes and print
    /// their events as JSON lines (needs PostgreSQL's server binaries, not a running server).
    Demo,
    /// The embedded Confluent-compatible schema registry.
    Registry {
        #[command(subcommand)]
        command: sluice::registry::RegistryCommand,
    },
}

/// How to reach a running daemon.
#[derive(clap::Args)]
struct DaemonArgs {
    /// The daemon's TOML configuration file: its `[http]` table says where it listens and
    /// holds the admin token.
    #[arg(long, short, value_name = "FILE")]
    config: PathBuf,
    /// The daemon's base URL, instead of the config's `[http] listen`.
    #[arg(long, value_name = "URL")]
    url: Option<String>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let code = match cli.command {
        Command::Run { config } => run(&config),
        Command::Check { config } => check(&config),
        Command::Snapshot {
            config,
            table,
            filter,
        } => snapshot(&config, &table, filter.as_deref()),
        Command::Status { daemon, json } => status(&daemon, json),
        Command::Pause { daemon } => admin(&daemon, "pause"),
        Command::Resume { daemon } => admin(&daemon, "resume"),
        Command::Demo => demo(),
        Command::Registry { command } => sluice::registry::run_command(command),
    };
    ExitCode::from(code)
}

fn run(path: &Path) -> u8 {
    let config = match load(path) {
        Ok(config) => config,
        Err(code) => return code,
    };
    let Some(runtime) = async_runtime(true) else {
        return EXIT_RUNTIME;
    };
    match runtime.block_on(sluice::runtime::run_until_signal(config)) {
        Ok(()) => EXIT_OK,
        Err(error) => {
            tracing::error!(error = %format!("{error:#}"), "pipeline failed");
            print_error_chain(&error);
            EXIT_RUNTIME
        }
    }
}

/// The tokio runtime for a command: multi-threaded for pipelines, one thread for short jobs.
/// `None` (after printing why) when it cannot start.
fn async_runtime(multi_thread: bool) -> Option<tokio::runtime::Runtime> {
    let mut builder = if multi_thread {
        tokio::runtime::Builder::new_multi_thread()
    } else {
        tokio::runtime::Builder::new_current_thread()
    };
    match builder.enable_all().build() {
        Ok(runtime) => Some(runtime),
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            None
        }
    }
}

fn demo() -> u8 {
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .try_init();
    let Some(runtime) = async_runtime(true) else {
        return EXIT_RUNTIME;
    };
    match runtime.block_on(sluice::demo::run_demo()) {
        Ok(()) => EXIT_OK,
        Err(error) => {
            print_error_chain(&error);
            EXIT_RUNTIME
        }
    }
}

fn snapshot(path: &Path, table: &str, filter: Option<&str>) -> u8 {
    use sluice::runtime::snapshot_signal::{check_request, request_snapshot};
    let config = match load(path) {
        Ok(config) => config,
        Err(code) => return code,
    };
    if let Err(error) = check_request(&config.source, table) {
        eprintln!("error: config: {error}");
        return EXIT_CONFIG;
    }
    let Some(runtime) = async_runtime(false) else {
        return EXIT_RUNTIME;
    };
    match runtime.block_on(request_snapshot(&config.source, table, filter)) {
        Ok(()) => {
            println!("incremental snapshot of {table} requested");
            EXIT_OK
        }
        Err(error) => {
            eprintln!("error: {}", error_chain(&error));
            EXIT_RUNTIME
        }
    }
}

/// `sluice status`: the daemon's status as a table or JSON.
fn status(daemon: &DaemonArgs, json: bool) -> u8 {
    let Some((config, base, runtime)) = reach_daemon(daemon) else {
        return EXIT_CONFIG;
    };
    drop(config);
    match runtime.block_on(sluice::runtime::client::fetch_status(&base)) {
        Ok(status) if json => match serde_json::to_string_pretty(&status) {
            Ok(text) => {
                println!("{text}");
                EXIT_OK
            }
            Err(error) => {
                eprintln!("error: {error}");
                EXIT_RUNTIME
            }
        },
        Ok(status) => {
            print!("{status}");
            EXIT_OK
        }
        Err(error) => {
            eprintln!("error: {error}");
            EXIT_RUNTIME
        }
    }
}

/// `sluice pause` / `sluice resume`.
fn admin(daemon: &DaemonArgs, action: &str) -> u8 {
    let Some((config, base, runtime)) = reach_daemon(daemon) else {
        return EXIT_CONFIG;
    };
    let token = config.http.admin_token.as_ref();
    match runtime.block_on(sluice::runtime::client::admin(&base, action, token)) {
        Ok(()) => {
            println!("{action}d");
            EXIT_OK
        }
        Err(error) => {
            eprintln!("error: {error}");
            EXIT_RUNTIME
        }
    }
}

/// The config, the daemon's base URL and a runtime to call it with; `None` after printing why.
fn reach_daemon(daemon: &DaemonArgs) -> Option<(Config, String, tokio::runtime::Runtime)> {
    let config = load_quiet(&daemon.config).ok()?;
    let base = match sluice::runtime::client::base_url(&config.http, daemon.url.as_deref()) {
        Ok(base) => base,
        Err(error) => {
            eprintln!("error: {error}");
            return None;
        }
    };
    let runtime = async_runtime(false)?;
    Some((config, base, runtime))
}

fn check(path: &Path) -> u8 {
    let config = match load(path) {
        Ok(config) => config,
        Err(code) => return code,
    };
    println!(
        "config: ok (pipeline {}, {} sink{})",
        config.pipeline.name,
        config.sinks.len(),
        if config.sinks.len() == 1 { "" } else { "s" }
    );
    let Some(runtime) = async_runtime(false) else {
        return EXIT_RUNTIME;
    };
    let report = runtime.block_on(async {
        let source = &config.source;
        match source.connection.connect_sql().await {
            Ok(client) => CheckReport {
                items: run_checks(&client, source).await,
            },
            Err(e) => CheckReport {
                items: vec![CheckItem {
                    name: "connection".to_owned(),
                    status: CheckStatus::Fail,
                    detail: format!("{}: {}", source.connection.redacted(), error_chain(&e)),
                    fix: Some(
                        "check host, port, user, password and the server's pg_hba.conf".to_owned(),
                    ),
                }],
            },
        }
    });
    println!("{report}");
    if report.has_failures() {
        EXIT_CHECK_FAILED
    } else {
        EXIT_OK
    }
}

/// Load and validate the config, start logging as it says, and read the password file.
/// On failure, every problem has been printed and the exit code is returned.
fn load(path: &Path) -> Result<Config, u8> {
    let mut config = load_quiet(path)?;
    init_tracing(&config.log);
    if let Err(message) = config.source.resolve_password() {
        eprintln!("error: config: source.password_file: {message}");
        return Err(EXIT_CONFIG);
    }
    Ok(config)
}

/// Load and validate the config only (no logging, no password file): what a client of the
/// running daemon needs. On failure, every problem has been printed.
fn load_quiet(path: &Path) -> Result<Config, u8> {
    let config = match Config::load(path) {
        Ok(config) => config,
        Err(ConfigError::Problems(problems)) => {
            for problem in &problems.0 {
                eprintln!("error: config: {problem}");
            }
            return Err(EXIT_CONFIG);
        }
        Err(other) => {
            eprintln!("error: config: {other}");
            return Err(EXIT_CONFIG);
        }
    };
    Ok(config)
}

/// Logs go to stderr, human or JSON per `[log]`; `RUST_LOG`, when set, replaces the level.
fn init_tracing(log: &LogConfig) {
    use tracing_subscriber::EnvFilter;
    let level = match std::env::var("RUST_LOG") {
        Ok(directive) if !directive.trim().is_empty() => directive,
        _ => log.level.clone(),
    };
    let filter = EnvFilter::builder().parse_lossy(level);
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // try_init: a second subscriber (there is none in this binary) would be a no-op, not a panic.
    let _ = match log.format {
        LogFormat::Human => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

fn print_error_chain(error: &anyhow::Error) {
    eprintln!("error: {error}");
    for cause in error.chain().skip(1) {
        eprintln!("  caused by: {cause}");
    }
}
