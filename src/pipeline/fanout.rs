//! Gives every sink driver each batch, in order. Waits on the slowest sink's queue, which is
//! what backpressures the source. The event transforms run here first, so every sink and the
//! envelope stage see transformed events.

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::envelope::EnvelopeStage;
use super::SharedBatch;
use crate::transform::TransformChain;

/// Distribute batches until the source stops (or the pipeline aborts); dropping the queues
/// then lets each driver finish what it holds and close. With an envelope stage, each batch
/// is encoded first; a batch that cannot be encoded stops the pipeline before any sink sees it.
pub(super) async fn run(
    mut batches: mpsc::Receiver<sluice_api::Batch>,
    queues: Vec<mpsc::Sender<SharedBatch>>,
    mut transforms: TransformChain,
    mut envelope: Option<EnvelopeStage>,
    abort: CancellationToken,
) -> anyhow::Result<()> {
    loop {
        let mut batch = tokio::select! {
            batch = batches.recv() => match batch { Some(b) => b, None => return Ok(()) },
            _ = abort.cancelled() => return Ok(()),
        };
        // Filtered events leave the batch; its checkpoint stays, so their position is
        // confirmed with the rest.
        let dropped = transforms.apply(&mut batch);
        if dropped > 0 {
            tracing::trace!(
                dropped,
                sequence = batch.sequence,
                "transforms filtered out events"
            );
        }
        if let Some(stage) = envelope.as_mut() {
            let encoded = tokio::select! {
                encoded = stage.encode(&mut batch) => encoded,
                _ = abort.cancelled() => return Ok(()),
            };
            if let Err(error) = encoded {
                abort.cancel();
                return Err(error.into());
            }
        }
        let batch = SharedBatch::new(batch);
        for queue in &queues {
            tokio::select! {
                sent = queue.send(batch.clone()) => if sent.is_err() { return Ok(()) },
                _ = abort.cancelled() => return Ok(()),
            }
        }
    }
}
