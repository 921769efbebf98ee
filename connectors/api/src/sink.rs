//! The contract every destination implements. The core's delivery layer drives it: batching,
//! retry with backoff and acknowledgement live there, once, not in each sink.

use crate::{Batch, SinkError};

/// A destination of change events.
///
/// Contract:
/// - `write` is never called concurrently on one sink, and batches arrive in commit order: a
///   batch holds whole transactions, or a run of one large transaction's events in order.
/// - `Ok(())` means every event in the batch is **durable** at the destination (it survives a
///   crash of sluice and of the destination's client). Only then does the delivery layer count
///   the batch's position as acknowledged; the LSN confirmed to PostgreSQL is the minimum of what
///   every sink acknowledged.
/// - After an error the same batch may be written again (retry) or, after a restart, batches
///   already written may arrive again: sinks make redelivery harmless where the target allows.
/// - The error's class says whether a retry can help.
#[async_trait::async_trait]
pub trait Sink: Send {
    /// Make every event of `batch` durable at the destination.
    async fn write(&mut self, batch: &Batch) -> Result<(), SinkError>;

    /// Changes this sink has durably set aside as dead letters since it was built (0 for a sink
    /// without a dead-letter destination). Read after each acknowledged write for metrics.
    fn dead_letter_count(&self) -> u64 {
        0
    }

    /// Release connections and flush anything buffered; called once on orderly shutdown.
    async fn close(&mut self) -> Result<(), SinkError> {
        Ok(())
    }
}
