//! The per-sink driver task: one batch at a time through `Sink::write`, or, for a pipelined
//! sink, a window of batches in flight (see [`super::window`]). Both share the ack, retry and
//! stop rules here.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sluice_api::{Backoff, Batch, ErrorClass, Sink, SinkError};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::checkpoint::Ack;
use crate::metrics::PipelineMetrics;

use super::window::drive_window;

/// Why a sink's driver stopped before its input ended.
#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    #[error("sink {sink:?} rejected batch {sequence}: {error}")]
    Fatal {
        sink: String,
        sequence: u64,
        error: SinkError,
    },
    #[error("sink {sink:?} stopped while batch {sequence} was not yet delivered")]
    Cancelled { sink: String, sequence: u64 },
}

/// What a driver loop needs besides the sink and its input: where acks go, how to wait
/// between attempts, and when to give up.
pub(super) struct Driver {
    index: usize,
    pub(super) name: String,
    acks: mpsc::UnboundedSender<Ack>,
    backoff: Backoff,
    pub(super) abort: CancellationToken,
    metrics: Arc<PipelineMetrics>,
    /// When each batch taken and not yet acknowledged was taken, oldest first (batches are
    /// taken and acknowledged in the same order): the write-time histogram's start.
    taken: VecDeque<(u64, Instant)>,
}

impl Driver {
    /// Note that `batch` left the sink's queue: its write time starts now.
    pub(super) fn took(&mut self, batch: &Batch) {
        if let Some(probe) = self.metrics.sink(self.index) {
            probe.queued.fetch_sub(1, Ordering::Relaxed);
        }
        if has_content(batch) {
            self.taken.push_back((batch.sequence, Instant::now()));
        }
    }

    /// Report `batch` durable (with everything before it), with the sink's dead-letter count
    /// for metrics. `false` when nobody listens any more (the pipeline is stopping): the
    /// driver ends.
    pub(super) fn ack(&mut self, batch: &Batch, dead_letters: u64) -> bool {
        self.backoff.reset();
        let mut write_time = None;
        while let Some(&(sequence, started)) = self.taken.front() {
            if sequence > batch.sequence {
                break;
            }
            self.taken.pop_front();
            if sequence == batch.sequence {
                write_time = Some(started.elapsed());
            }
        }
        self.metrics.set_sink_failing(self.index, false);
        if let Some(probe) = self.metrics.sink(self.index) {
            probe.delivered(batch, write_time);
            probe.dead_letters.store(dead_letters, Ordering::Relaxed);
        }
        let ack = Ack {
            sink: self.index,
            sequence: batch.sequence,
            checkpoint: batch.checkpoint,
        };
        self.acks.send(ack).is_ok()
    }

    /// After a failed attempt at `sequence`: a fatal error ends delivery; a transient one is
    /// logged and waited out with backoff, unless the pipeline aborts meanwhile.
    pub(super) async fn pause_after(
        &mut self,
        error: SinkError,
        sequence: u64,
    ) -> Result<(), DeliveryError> {
        self.metrics.set_sink_failing(self.index, true);
        if error.class != ErrorClass::Transient {
            return Err(DeliveryError::Fatal {
                sink: self.name.clone(),
                sequence,
                error,
            });
        }
        if let Some(probe) = self.metrics.sink(self.index) {
            probe.retries.fetch_add(1, Ordering::Relaxed);
        }
        let delay = self.backoff.next_delay();
        tracing::warn!(
            sink = %self.name, batch = sequence, attempt = self.backoff.attempt(),
            retry_in_ms = delay.as_millis() as u64, %error,
            "sink write failed, retrying"
        );
        tokio::select! {
            _ = tokio::time::sleep(delay) => Ok(()),
            _ = self.abort.cancelled() => Err(self.cancelled(sequence)),
        }
    }

    pub(super) fn cancelled(&self, sequence: u64) -> DeliveryError {
        DeliveryError::Cancelled {
            sink: self.name.clone(),
            sequence,
        }
    }
}

/// Whether `batch` has anything to write. Empty batches only carry a position (keepalive
/// between transactions), unless the envelope stage put records about the stream on them (a
/// heartbeat, the END of a transaction whose commit arrived after its last event's batch).
pub(super) fn has_content(batch: &Batch) -> bool {
    !batch.events.is_empty() || !batch.records.is_empty()
}

/// Deliver every batch from `batches` to `sink` in order and send each batch's ack once it
/// and everything before it is durable. A pipelined sink has up to `max_in_flight` batches
/// in flight; any other is written one batch at a time. Transient errors are retried with
/// backoff until `abort` fires; a batch is never acknowledged unless the sink accepted it and
/// every batch before it. Returns when the input ends (after closing the sink), on a fatal
/// error, or on abort. Delivery figures go to `metrics` under the sink's `index`, before the
/// ack is sent.
#[allow(clippy::too_many_arguments)]
pub async fn drive_sink(
    index: usize,
    name: String,
    mut sink: Box<dyn Sink>,
    mut batches: mpsc::Receiver<Arc<Batch>>,
    acks: mpsc::UnboundedSender<Ack>,
    retry: (Duration, Duration),
    max_in_flight: usize,
    abort: CancellationToken,
    metrics: Arc<PipelineMetrics>,
) -> Result<(), DeliveryError> {
    let mut driver = Driver {
        index,
        name,
        acks,
        backoff: Backoff::new(retry.0, retry.1),
        abort,
        metrics,
        taken: VecDeque::new(),
    };
    if sink.pipelined() && max_in_flight > 1 {
        drive_window(&mut driver, sink.as_mut(), &mut batches, max_in_flight).await?;
    } else {
        drive_one_by_one(&mut driver, sink.as_mut(), &mut batches).await?;
    }
    if let Err(error) = sink.close().await {
        tracing::warn!(sink = %driver.name, %error, "closing sink failed");
    }
    Ok(())
}

/// One batch at a time: write it until it is durable, ack it, take the next.
async fn drive_one_by_one(
    driver: &mut Driver,
    sink: &mut dyn Sink,
    batches: &mut mpsc::Receiver<Arc<Batch>>,
) -> Result<(), DeliveryError> {
    while let Some(batch) = batches.recv().await {
        driver.took(&batch);
        if has_content(&batch) {
            loop {
                let result = tokio::select! {
                    result = sink.write(&batch) => result,
                    _ = driver.abort.cancelled() => return Err(driver.cancelled(batch.sequence)),
                };
                match result {
                    Ok(()) => break,
                    Err(error) => driver.pause_after(error, batch.sequence).await?,
                }
            }
        }
        if !driver.ack(&batch, sink.dead_letter_count()) {
            break;
        }
    }
    Ok(())
}
