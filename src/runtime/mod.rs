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
    let http = BoundHttp::bind(&config).await?;
    let pipeline = start(config, Vec::new()).await?;
    let http = http.map(|bound| bound.serve(&pipeline));
    let stop = pipeline.stop_token();
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("stop requested: draining in-flight batches");
        stop.cancel();
    });
    let result = pipeline.wait().await;
    if let Some(http) = http {
        http.stop().await;
    }
    result
}

/// The HTTP endpoint (`[http] listen`) bound, before its pipeline starts.
pub struct BoundHttp {
    listener: tokio::net::TcpListener,
    pipeline: String,
    source: sluice_source_postgres::PostgresSourceConfig,
    admin_token: Option<sluice_api::Secret>,
}

impl BoundHttp {
    /// Bind `[http] listen` of `config`; `None` when the endpoint is off.
    pub async fn bind(config: &Config) -> anyhow::Result<Option<BoundHttp>> {
        let Some(address) = config.http.listen else {
            return Ok(None);
        };
        let listener = tokio::net::TcpListener::bind(address)
            .await
            .with_context(|| format!("binding the HTTP endpoint ([http] listen) to {address}"))?;
        Ok(Some(BoundHttp {
            listener,
            pipeline: config.pipeline.name.clone(),
            source: config.source.clone(),
            admin_token: config.http.admin_token.clone(),
        }))
    }

    /// Serve `pipeline`'s probes, metrics, status and admin actions until
    /// [`ServingHttp::stop`].
    pub fn serve(self, pipeline: &RunningPipeline) -> ServingHttp {
        if let Ok(address) = self.listener.local_addr() {
            tracing::info!(%address, "serving /health, /ready, /metrics, /status and /admin");
        }
        let state = Arc::new(http::HttpState {
            pipeline: self.pipeline,
            control: pipeline.control(),
            source: self.source,
            admin_token: self.admin_token,
        });
        let stop = CancellationToken::new();
        let task = tokio::spawn(http::serve(self.listener, state, stop.clone()));
        ServingHttp { stop, task }
    }
}

/// The HTTP endpoint serving a pipeline.
pub struct ServingHttp {
    stop: CancellationToken,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl ServingHttp {
    /// Stop serving and wait until the endpoint has let go of its port.
    pub async fn stop(self) {
        self.stop.cancel();
        match self.task.await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => tracing::warn!(%error, "the HTTP endpoint failed"),
            Err(error) => tracing::warn!(%error, "the HTTP endpoint panicked"),
        }
    }
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
