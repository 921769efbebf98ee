//! Runs the configured pipeline as a daemon: starts it, waits for SIGTERM/SIGINT or a fatal
//! error, and on a signal drains in-flight batches, confirms, and returns.

use crate::config::Config;
pub use crate::pipeline::{start, NamedSink, RunningPipeline};

/// Run the configured pipeline until SIGTERM/SIGINT (drain, confirm, Ok) or a fatal error.
pub async fn run_until_signal(config: Config) -> anyhow::Result<()> {
    let pipeline = start(config, Vec::new()).await?;
    let stop = pipeline.stop_token();
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("stop requested: draining in-flight batches");
        stop.cancel();
    });
    pipeline.wait().await
}

/// Wait for SIGTERM or SIGINT (forever, with a warning, when handlers cannot be installed).
pub async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        }
        _ => {
            // Without signal handlers the daemon can only be killed; keep running.
            tracing::warn!("could not install signal handlers");
            std::future::pending::<()>().await
        }
    }
}
