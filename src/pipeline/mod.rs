//! One pipeline: the source hands batches to a fan-out, which gives each sink driver the same
//! batches in the same order through bounded queues; drivers ack what is durable; the
//! checkpoint task turns acks into the confirmed LSN the source reports to PostgreSQL.
//!
//! ```text
//! source ──batches──▶ fan-out ──Arc<Batch>──▶ driver(sink 0) ─┐
//!    ▲                        └─Arc<Batch>──▶ driver(sink 1) ─┤ acks
//!    └──── confirmed LSN (watch) ◀── checkpoint (min over sinks) ◀─┘
//! ```

mod control;
mod envelope;
mod fanout;
mod record_transforms;
mod stream_records;
mod transactions;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use sluice_api::{Lsn, Sink};
use sluice_source_postgres::snapshot::{ProgressFigures, SnapshotProgress};
use sluice_source_postgres::source::{self, BatchLimits, SourceContext};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::checkpoint::{Ack, AckTracker};
use crate::config::Config;
use crate::delivery::drive_sink;
use crate::metrics::PipelineMetrics;

pub use control::PipelineControl;

/// Retry backoff of sink writes: first wait and ceiling.
const SINK_RETRY: (Duration, Duration) = (Duration::from_millis(200), Duration::from_secs(30));

/// Added to the drain timeout before a stop aborts sinks still retrying: lets the source send
/// its last status update first.
const STOP_GRACE: Duration = Duration::from_secs(1);

/// Batches waiting between the source and the fan-out. Small: the sinks' queues hold the
/// in-flight work, this only decouples decoding from distribution.
const SOURCE_QUEUE_BATCHES: usize = 2;

/// A sink with its name, ready to be driven.
pub struct NamedSink {
    pub name: String,
    pub sink: Box<dyn Sink>,
}

/// A pipeline running in the background.
pub struct RunningPipeline {
    stop: CancellationToken,
    abort: CancellationToken,
    confirmed: watch::Receiver<Lsn>,
    streaming: watch::Receiver<bool>,
    snapshot_progress: Arc<SnapshotProgress>,
    control: PipelineControl,
    source: JoinHandle<anyhow::Result<()>>,
    drivers: Vec<JoinHandle<anyhow::Result<()>>>,
    fanout: JoinHandle<anyhow::Result<()>>,
    checkpoint: JoinHandle<()>,
    registry: Option<EmbeddedRegistry>,
}

/// The in-process schema registry, when `[registry]` has no url.
struct EmbeddedRegistry {
    url: String,
    stop: CancellationToken,
    task: JoinHandle<Result<(), crate::registry::ServeError>>,
}

impl RunningPipeline {
    /// The LSN every sink has durably taken (and that is confirmed to PostgreSQL).
    pub fn confirmed_lsn(&self) -> Lsn {
        *self.confirmed.borrow()
    }

    /// A receiver that sees every change of the confirmed LSN.
    pub fn confirmed_watch(&self) -> watch::Receiver<Lsn> {
        self.confirmed.clone()
    }

    /// Live snapshot figures (rows done and estimated, chunks done and total), ready for
    /// metrics.
    pub fn snapshot_progress(&self) -> ProgressFigures {
        self.snapshot_progress.figures()
    }

    /// Pause, resume and live figures, for the HTTP endpoint and tests.
    pub fn control(&self) -> PipelineControl {
        self.control.clone()
    }

    /// Wait until the source streams from its slot (changes committed from then on are
    /// captured), or the pipeline stops, or `timeout` passes; returns whether it streams.
    pub async fn wait_streaming(&self, timeout: Duration) -> bool {
        let mut streaming = self.streaming.clone();
        let reached = tokio::time::timeout(timeout, streaming.wait_for(|s| *s)).await;
        matches!(reached, Ok(Ok(_)))
    }

    /// Drain in-flight batches, confirm what every sink took, stop the source, and return the
    /// first error any stage met.
    pub async fn shutdown(self) -> anyhow::Result<()> {
        self.stop.cancel();
        self.join().await
    }

    /// Wait until the pipeline stops by itself (a fatal error) or is stopped via the token.
    pub async fn wait(self) -> anyhow::Result<()> {
        self.join().await
    }

    /// The schema registry's base URL when the pipeline serves the embedded one.
    pub fn embedded_registry_url(&self) -> Option<&str> {
        self.registry.as_ref().map(|r| r.url.as_str())
    }

    /// A token that stops the pipeline in order when cancelled.
    pub fn stop_token(&self) -> CancellationToken {
        self.stop.clone()
    }

    async fn join(self) -> anyhow::Result<()> {
        let mut first_error: Option<anyhow::Error> = None;
        let mut record = |result: anyhow::Result<()>| {
            if let Err(e) = result {
                if first_error.is_none() {
                    first_error = Some(e);
                }
            }
        };
        record(
            self.source
                .await
                .context("source task panicked")
                .and_then(|r| r),
        );
        for driver in self.drivers {
            record(driver.await.context("sink task panicked").and_then(|r| r));
        }
        record(
            self.fanout
                .await
                .context("fan-out task panicked")
                .and_then(|r| r),
        );
        let _ = self.checkpoint.await;
        self.abort.cancel();
        if let Some(registry) = self.registry {
            registry.stop.cancel();
            record(
                registry
                    .task
                    .await
                    .context("registry task panicked")
                    .and_then(|r| r.map_err(Into::into)),
            );
        }
        first_error.map_or(Ok(()), Err)
    }
}

/// Start the pipeline with the configured sinks plus `extra_sinks` (tests, benchmarks).
pub async fn start(config: Config, extra_sinks: Vec<NamedSink>) -> anyhow::Result<RunningPipeline> {
    let mut sinks = Vec::new();
    let context = crate::catalog::SinkContext {
        pipeline: config.pipeline.name.clone(),
        database: config.source.connection.dbname.clone(),
        sink: String::new(),
    };
    for spec in &config.sinks {
        let context = crate::catalog::SinkContext {
            sink: spec.name.clone(),
            ..context.clone()
        };
        let sink = crate::catalog::build_sink(&spec.config, &context)
            .await
            .with_context(|| format!("starting sink {:?}", spec.name))?;
        sinks.push(NamedSink {
            name: spec.name.clone(),
            sink,
        });
    }
    sinks.extend(extra_sinks);
    anyhow::ensure!(!sinks.is_empty(), "a pipeline needs at least one sink");

    let stop = CancellationToken::new();
    let abort = CancellationToken::new();
    let (confirmed_tx, confirmed_rx) = watch::channel(Lsn::ZERO);
    let (ack_tx, ack_rx) = mpsc::unbounded_channel::<Ack>();
    let (batch_tx, batch_rx) = mpsc::channel(SOURCE_QUEUE_BATCHES);
    let snapshot_progress = Arc::new(SnapshotProgress::default());
    let metrics = Arc::new(PipelineMetrics::new(
        config.source.slot.clone(),
        sinks.iter().map(|s| s.name.clone()).collect(),
        snapshot_progress.clone(),
    ));
    let (paused_tx, paused_rx) = watch::channel(false);

    let mut queues = Vec::new();
    let mut drivers = Vec::new();
    let sink_count = sinks.len();
    let max_in_flight = config.pipeline.max_in_flight_batches;
    for (index, named) in sinks.into_iter().enumerate() {
        // A pipelined sink's batches in flight are its driver's window: its queue holds just
        // the next one, so that `max_in_flight_batches` still bounds what the sink holds.
        let queue = if named.sink.pipelined() {
            1
        } else {
            max_in_flight
        };
        let (tx, rx) = mpsc::channel(queue);
        queues.push(tx);
        let abort = abort.clone();
        let acks = ack_tx.clone();
        let metrics = metrics.clone();
        drivers.push(tokio::spawn(async move {
            let result = drive_sink(
                index,
                named.name,
                named.sink,
                rx,
                acks,
                SINK_RETRY,
                max_in_flight,
                abort.clone(),
                metrics,
            )
            .await;
            if result.is_err() {
                abort.cancel();
            }
            result.map_err(anyhow::Error::from)
        }));
    }
    drop(ack_tx);
    let (envelope, registry) = match &config.registry {
        None => (None, None),
        Some(registry_config) => {
            let embedded = match &registry_config.url {
                Some(_) => None,
                None => Some(start_embedded_registry(registry_config).await?),
            };
            let url = registry_config
                .url
                .clone()
                .or_else(|| embedded.as_ref().map(|e| e.url.clone()))
                .unwrap_or_default();
            let stage = envelope::EnvelopeStage::new(&config, registry_config, &url)?;
            (Some(stage), embedded)
        }
    };
    let transforms = crate::transform::TransformChain::new(&config.transforms);
    let fanout = tokio::spawn(fanout::run(
        batch_rx,
        queues,
        fanout::FanoutContext {
            transforms,
            envelope,
            metrics: metrics.clone(),
            paused: paused_rx,
            stop: stop.clone(),
            abort: abort.clone(),
        },
    ));
    let (acked_sequence_tx, acked_sequence_rx) = watch::channel(0);
    let checkpoint = tokio::spawn(checkpoint_task(
        ack_rx,
        sink_count,
        confirmed_tx,
        acked_sequence_tx,
        metrics.clone(),
    ));

    let (streaming_tx, streaming_rx) = watch::channel(false);
    let source_cfg = config.source.clone();
    let ctx = SourceContext {
        batches: batch_tx,
        confirmed: confirmed_rx.clone(),
        stop: stop.clone(),
        abort: abort.clone(),
        limits: BatchLimits {
            max_events: config.pipeline.max_batch_events,
            max_wait: config.pipeline.max_batch_wait,
        },
        drain_timeout: config.pipeline.shutdown_timeout,
        streaming: streaming_tx,
        acked_sequence: acked_sequence_rx,
        snapshot_progress: snapshot_progress.clone(),
        server_wal_end: metrics.server_wal_end.clone(),
        spill_full: metrics.spill_full.clone(),
    };
    tokio::spawn(mirror_streaming(streaming_rx.clone(), metrics.clone()));
    let control = PipelineControl::new(metrics, paused_tx, streaming_rx.clone());
    tokio::spawn(abort_after_stop(
        stop.clone(),
        abort.clone(),
        config.pipeline.shutdown_timeout + STOP_GRACE,
    ));
    let source_abort = abort.clone();
    let source = tokio::spawn(async move {
        let result = source::run(&source_cfg, ctx).await;
        if result.is_err() {
            source_abort.cancel();
        }
        result.map_err(anyhow::Error::from)
    });
    Ok(RunningPipeline {
        stop,
        abort,
        confirmed: confirmed_rx,
        streaming: streaming_rx,
        snapshot_progress,
        control,
        source,
        drivers,
        fanout,
        checkpoint,
        registry,
    })
}

/// Serve the embedded registry on `[registry] listen` (port 0 picks a free port).
async fn start_embedded_registry(
    config: &crate::config::RegistryConfig,
) -> anyhow::Result<EmbeddedRegistry> {
    let storage = match &config.storage {
        Some(text) => crate::registry::Storage::parse(text)
            .map_err(|e| anyhow::anyhow!("registry.storage: {e}"))?,
        None => crate::registry::Storage::Memory,
    };
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("binding the embedded schema registry to {}", config.listen))?;
    let url = format!("http://{}", listener.local_addr()?);
    tracing::info!(%url, storage = %storage.describe(), "serving the embedded schema registry");
    let stop = CancellationToken::new();
    let task = tokio::spawn(crate::registry::serve(listener, storage, stop.clone()));
    Ok(EmbeddedRegistry { url, stop, task })
}

/// Once an orderly stop is requested, give in-flight batches the drain timeout (the source
/// waits that long for their confirmation) plus a grace period, then abort what is still
/// retrying: a sink that never recovers must not hold up a stop. Whatever was not delivered is
/// not confirmed, so it is sent again after a restart.
async fn abort_after_stop(stop: CancellationToken, abort: CancellationToken, after: Duration) {
    tokio::select! {
        _ = stop.cancelled() => {}
        _ = abort.cancelled() => return,
    }
    tokio::select! {
        _ = tokio::time::sleep(after) => {
            tracing::warn!("in-flight batches were not delivered in time; aborting the stop");
            abort.cancel();
        }
        _ = abort.cancelled() => {}
    }
}

/// Keep `sluice_source_connected` equal to whether the replication stream is open.
async fn mirror_streaming(mut streaming: watch::Receiver<bool>, metrics: Arc<PipelineMetrics>) {
    loop {
        let open = *streaming.borrow_and_update();
        metrics.source_connected.store(open, Ordering::Relaxed);
        if streaming.changed().await.is_err() {
            metrics.source_connected.store(false, Ordering::Relaxed);
            return;
        }
    }
}

/// Turn acks into the confirmed LSN and the acknowledged batch sequence, in order, until every
/// driver is gone; the positions are mirrored into `metrics`.
async fn checkpoint_task(
    mut acks: mpsc::UnboundedReceiver<Ack>,
    sink_count: usize,
    confirmed: watch::Sender<Lsn>,
    acked_sequence: watch::Sender<u64>,
    metrics: Arc<PipelineMetrics>,
) {
    let mut tracker = AckTracker::new(sink_count, Lsn::ZERO);
    while let Some(ack) = acks.recv().await {
        let sink = ack.sink;
        if let Some(lsn) = tracker.ack(ack) {
            tracing::trace!(%lsn, "confirmed");
            metrics.confirmed.store(lsn.0, Ordering::Relaxed);
            confirmed.send_replace(lsn);
        }
        if let (Some(probe), Some(acked)) = (metrics.sink(sink), tracker.acked(sink)) {
            probe.acked_lsn.store(acked.0, Ordering::Relaxed);
        }
        let sequence = tracker.acked_sequence();
        metrics.acked_sequence.store(sequence, Ordering::Relaxed);
        acked_sequence.send_if_modified(|current| {
            let advanced = sequence > *current;
            if advanced {
                *current = sequence;
            }
            advanced
        });
    }
}

/// Shared by the fan-out: one batch, many sinks, no copies.
pub(crate) type SharedBatch = Arc<sluice_api::Batch>;
