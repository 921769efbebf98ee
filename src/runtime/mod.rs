//! Runs the configured pipeline as a daemon: starts it and its HTTP endpoint, waits for
//! SIGTERM/SIGINT or a fatal error, and on a signal drains in-flight batches, confirms, and
//! returns.

pub mod client;
pub mod http;
pub mod snapshot_signal;
pub mod status;

use std::sync::Arc;

use anyhow::Context;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
pub use crate::pipeline::{start, NamedSink, PipelineControl, RunningPipeline};

/// Run the configured pipeline until SIGTERM/SIGINT (drain, confirm, Ok) or a fatal error.
/// The HTTP endpoint, when on, is bound before the pipeline starts (a taken port is an error
/// at start, not later) and stops with it.
pub async fn run_until_signal(config: Config) -> anyhow::Result<()> {
    let listener =
        match config.http.listen {
            Some(address) => Some(tokio::net::TcpListener::bind(address).await.with_context(
                || format!("binding the HTTP endpoint ([http] listen) to {address}"),
            )?),
            None => None,
        };
    let http = config.http.clone();
    let pipeline_name = config.pipeline.name.clone();
    let source = config.source.clone();
    let pipeline = start(config, Vec::new()).await?;
    let http_stop = CancellationToken::new();
    let server = match listener {
        Some(listener) => {
            tracing::info!(address = %listener.local_addr()?, "serving /health, /ready, /metrics, /status and /admin");
            let state = Arc::new(http::HttpState {
                pipeline: pipeline_name,
                control: pipeline.control(),
                source,
                admin_token: http.admin_token,
            });
            Some(tokio::spawn(http::serve(
                listener,
                state,
                http_stop.clone(),
            )))
        }
        None => None,
    };
    let stop = pipeline.stop_token();
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("stop requested: draining in-flight batches");
        stop.cancel();
    });
    let result = pipeline.wait().await;
    http_stop.cancel();
    if let Some(server) = server {
        match server.await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => tracing::warn!(%error, "the HTTP endpoint failed"),
            Err(error) => tracing::warn!(%error, "the HTTP endpoint panicked"),
        }
    }
    result
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

/// An error and its sources, joined by `: ` (a driver's top-level message alone says little).
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let shown = cause.to_string();
        if !text.ends_with(&shown) {
            text.push_str(": ");
            text.push_str(&shown);
        }
        source = cause.source();
    }
    text
}
