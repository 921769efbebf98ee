//! Gives every sink driver each batch, in order. Waits on the slowest sink's queue, which is
//! what backpressures the source; while the pipeline is paused it holds the next batch back
//! the same way, so the source stops reading and the slot keeps the WAL. The event transforms
//! run here first, so every sink and the envelope stage see transformed events.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use super::envelope::EnvelopeStage;
use super::SharedBatch;
use crate::metrics::{EventCounter, PipelineMetrics};
use crate::transform::TransformChain;

/// The fan-out's inputs besides the batches and queues.
pub(super) struct FanoutContext {
    pub transforms: TransformChain,
    pub envelope: Option<EnvelopeStage>,
    pub metrics: Arc<PipelineMetrics>,
    /// True while paused.
    pub paused: watch::Receiver<bool>,
    /// An orderly stop ends a pause: in-flight batches are drained and confirmed.
    pub stop: CancellationToken,
    pub abort: CancellationToken,
}

/// Distribute batches until the source stops (or the pipeline aborts); dropping the queues
/// then lets each driver finish what it holds and close. With an envelope stage, each batch
/// is encoded first; a batch that cannot be encoded stops the pipeline before any sink sees it.
/// Every batch read is counted (events per table) before a pause can hold it.
pub(super) async fn run(
    mut batches: mpsc::Receiver<sluice_api::Batch>,
    queues: Vec<mpsc::Sender<SharedBatch>>,
    mut ctx: FanoutContext,
) -> anyhow::Result<()> {
    let abort = ctx.abort.clone();
    let mut counter = EventCounter::new(ctx.metrics.clone());
    loop {
        let mut batch = tokio::select! {
            batch = batches.recv() => match batch { Some(b) => b, None => return Ok(()) },
            _ = abort.cancelled() => return Ok(()),
        };
        // Filtered events leave the batch; its checkpoint stays, so their position is
        // confirmed with the rest.
        let dropped = ctx.transforms.apply(&mut batch);
        if dropped > 0 {
            tracing::trace!(
                dropped,
                sequence = batch.sequence,
                "transforms filtered out events"
            );
        }
        if let Some(stage) = ctx.envelope.as_mut() {
            let encoded = tokio::select! {
                encoded = stage.encode(&mut batch) => encoded,
                _ = abort.cancelled() => return Ok(()),
            };
            if let Err(error) = encoded {
                abort.cancel();
                return Err(error.into());
            }
        }
        counter.count(&batch);
        if !hold_while_paused(&mut ctx).await {
            return Ok(());
        }
        let sequence = batch.sequence;
        let batch = SharedBatch::new(batch);
        for (index, queue) in queues.iter().enumerate() {
            // Counted before the send so the driver's decrement never comes first.
            if let Some(sink) = ctx.metrics.sink(index) {
                sink.queued.fetch_add(1, Ordering::Relaxed);
            }
            tokio::select! {
                sent = queue.send(batch.clone()) => if sent.is_err() { return Ok(()) },
                _ = abort.cancelled() => return Ok(()),
            }
        }
        ctx.metrics.sent_sequence.store(sequence, Ordering::Relaxed);
    }
}

/// Wait while paused; false when the pipeline aborts meanwhile.
async fn hold_while_paused(ctx: &mut FanoutContext) -> bool {
    if !*ctx.paused.borrow_and_update() || ctx.stop.is_cancelled() {
        return true;
    }
    tracing::info!("paused: holding batches back");
    tokio::select! {
        // A dropped pause sender means nobody can resume: carry on.
        _ = ctx.paused.wait_for(|paused| !*paused) => {}
        _ = ctx.stop.cancelled() => {}
        _ = ctx.abort.cancelled() => return false,
    }
    tracing::info!("resumed: handing batches on");
    true
}
