//! The contract every destination implements. The core's delivery layer drives it: batching,
//! retry with backoff and acknowledgement live there, once, not in each sink.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use crate::{Batch, SinkError};

/// A write under way, returned by [`Sink::begin_write`]: resolves `Ok` once every event of its
/// batch is durable at the destination, or `Err` once this attempt cannot make it so. It
/// borrows nothing from the sink, so the delivery layer holds several at once.
pub type PendingWrite = Pin<Box<dyn Future<Output = Result<(), SinkError>> + Send + 'static>>;

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
///
/// A sink whose client can have several batches in flight (a Kafka producer) says so with
/// [`pipelined`](Sink::pipelined) and is then driven through
/// [`begin_write`](Sink::begin_write) instead of `write`:
/// - `begin_write` is called in commit order, one call at a time, while the [`PendingWrite`]s
///   of earlier batches may still be unresolved (at most the pipeline's
///   `max_in_flight_batches` of them). The sink must keep the destination's order across them
///   where order matters (per key): a later batch's change never overtakes an earlier one's.
/// - A batch counts as acknowledged only when its pending write and those of every batch
///   before it resolved `Ok`: acks stay in commit order, whatever order writes resolve in.
/// - When a pending write resolves `Err` (or `begin_write` returns one), no new batch is
///   begun until every other pending write has resolved. Then, if the error is transient, the
///   delivery layer waits its backoff and begins again from the first batch whose write did
///   not succeed: that batch and every later one, including those whose writes had succeeded
///   (the batches before it are acknowledged). A fatal error stops delivery. So a sink may reset its client at the next `begin_write` after a
///   failure: nothing of the failed round is in flight any more.
/// - `close` is called only once nothing is in flight.
#[async_trait::async_trait]
pub trait Sink: Send {
    /// Make every event of `batch` durable at the destination.
    async fn write(&mut self, batch: &Batch) -> Result<(), SinkError>;

    /// Changes this sink has durably set aside as dead letters since it was built (0 for a sink
    /// without a dead-letter destination). Read after each acknowledged write for metrics.
    fn dead_letter_count(&self) -> u64 {
        0
    }

    /// Whether batches go through [`begin_write`](Sink::begin_write), several in flight;
    /// asked once, when delivery starts. Default: one batch at a time through `write`.
    fn pipelined(&self) -> bool {
        false
    }

    /// Hand `batch` to the destination without waiting for it to become durable; the returned
    /// future says when it is. Returns once the batch is handed over (the client may make it
    /// wait while its own buffers are full: that is the backpressure). Called only when
    /// [`pipelined`](Sink::pipelined) says so; the default refuses.
    async fn begin_write(&mut self, batch: Arc<Batch>) -> Result<PendingWrite, SinkError> {
        let _ = batch;
        Err(SinkError::fatal(
            "this sink writes one batch at a time and has no begin_write",
        ))
    }

    /// Release connections and flush anything buffered; called once on orderly shutdown.
    async fn close(&mut self) -> Result<(), SinkError> {
        Ok(())
    }
}
