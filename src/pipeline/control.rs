//! What the outside (the HTTP endpoint, tests) may do to a running pipeline and read from it:
//! pause and resume delivery, see whether the source streams, read the live figures.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use tokio::sync::watch;

use crate::metrics::PipelineMetrics;

/// A cheap, cloneable handle on a running pipeline.
#[derive(Clone)]
pub struct PipelineControl {
    metrics: Arc<PipelineMetrics>,
    paused: Arc<watch::Sender<bool>>,
    streaming: watch::Receiver<bool>,
}

impl PipelineControl {
    pub(super) fn new(
        metrics: Arc<PipelineMetrics>,
        paused: watch::Sender<bool>,
        streaming: watch::Receiver<bool>,
    ) -> Self {
        PipelineControl {
            metrics,
            paused: Arc::new(paused),
            streaming,
        }
    }

    /// The pipeline's live figures.
    pub fn metrics(&self) -> &Arc<PipelineMetrics> {
        &self.metrics
    }

    /// Stop handing batches to the sinks. Batches already queued for a sink are still
    /// delivered; the next one waits, the source stops reading behind it and the slot keeps
    /// the WAL. Nothing is lost: [`PipelineControl::resume`] continues where it stopped.
    pub fn pause(&self) {
        self.metrics.paused.store(true, Ordering::Relaxed);
        self.paused.send_replace(true);
        tracing::info!("pause requested");
    }

    /// Hand batches on again.
    pub fn resume(&self) {
        self.metrics.paused.store(false, Ordering::Relaxed);
        self.paused.send_replace(false);
        tracing::info!("resume requested");
    }

    pub fn is_paused(&self) -> bool {
        *self.paused.borrow()
    }

    /// Whether the source's replication stream is open now.
    pub fn is_streaming(&self) -> bool {
        *self.streaming.borrow()
    }
}
