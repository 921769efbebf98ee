//! Gives every sink driver each batch, in order. Waits on the slowest sink's queue, which is
//! what backpressures the source.

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::SharedBatch;

/// Distribute batches until the source stops (or the pipeline aborts); dropping the queues
/// then lets each driver finish what it holds and close.
pub(super) async fn run(
    mut batches: mpsc::Receiver<sluice_api::Batch>,
    queues: Vec<mpsc::Sender<SharedBatch>>,
    abort: CancellationToken,
) {
    loop {
        let batch = tokio::select! {
            batch = batches.recv() => match batch { Some(b) => SharedBatch::new(b), None => return },
            _ = abort.cancelled() => return,
        };
        for queue in &queues {
            tokio::select! {
                sent = queue.send(batch.clone()) => if sent.is_err() { return },
                _ = abort.cancelled() => return,
            }
        }
    }
}
