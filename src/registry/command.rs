//! The `sluice registry ...` command line: its arguments and the function `main` calls, which
//! sets up logging and the runtime, serves until a signal, and returns the exit code.

use std::net::SocketAddr;

use clap::Subcommand;

use super::persist::Storage;

/// Exit code: served and stopped on a signal.
const EXIT_OK: u8 = 0;
/// Exit code: the server could not start (storage, address) or failed.
const EXIT_RUNTIME: u8 = 1;

/// `sluice registry` subcommands.
#[derive(Debug, Subcommand)]
pub enum RegistryCommand {
    /// Serve the Confluent-compatible schema registry API until SIGTERM or SIGINT.
    Serve {
        /// Address to listen on, such as 127.0.0.1:8081.
        #[arg(long, value_name = "ADDR")]
        listen: SocketAddr,
        /// Where schemas are kept: a JSON file path or a postgres:// URL (tables
        /// sluice_registry_* are created if missing). Without it, memory only: ids do not
        /// survive a restart.
        #[arg(long, value_name = "PATH_OR_POSTGRES_URL", value_parser = Storage::parse)]
        storage: Option<Storage>,
    },
}

/// Run a `sluice registry` subcommand; returns the process exit code. Logs go to stderr at
/// `info` unless `RUST_LOG` says otherwise.
pub fn run_command(command: RegistryCommand) -> u8 {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    // try_init: a subscriber installed earlier stays; that is not an error.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return EXIT_RUNTIME;
        }
    };
    match command {
        RegistryCommand::Serve { listen, storage } => {
            match runtime.block_on(super::serve_until_signal(
                listen,
                storage.unwrap_or_default(),
            )) {
                Ok(()) => EXIT_OK,
                Err(error) => {
                    tracing::error!(error = %error, "schema registry failed");
                    eprintln!("error: {error}");
                    let mut source = std::error::Error::source(&error);
                    while let Some(cause) = source {
                        eprintln!("  caused by: {cause}");
                        source = cause.source();
                    }
                    EXIT_RUNTIME
                }
            }
        }
    }
}
