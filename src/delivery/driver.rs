//! The per-sink driver task.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sluice_api::{Backoff, Batch, ErrorClass, Sink, SinkError};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::checkpoint::Ack;
use crate::metrics::PipelineMetrics;

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

/// Deliver every batch from `batches` to `sink` in order; after each durable write, send its
/// ack. Transient errors are retried with backoff until `abort` fires; a batch is never
/// acknowledged unless the sink accepted it. Returns when the input ends (after closing the
/// sink), on a fatal error, or on abort. Delivery figures go to `metrics` under the sink's
/// `index`, before the ack is sent.
#[allow(clippy::too_many_arguments)]
pub async fn drive_sink(
    index: usize,
    name: String,
    mut sink: Box<dyn Sink>,
    mut batches: mpsc::Receiver<Arc<Batch>>,
    acks: mpsc::UnboundedSender<Ack>,
    retry: (Duration, Duration),
    abort: CancellationToken,
    metrics: Arc<PipelineMetrics>,
) -> Result<(), DeliveryError> {
    let mut backoff = Backoff::new(retry.0, retry.1);
    let probe = metrics.sink(index);
    while let Some(batch) = batches.recv().await {
        if let Some(probe) = probe {
            probe.queued.fetch_sub(1, Ordering::Relaxed);
        }
        let mut write_time = None;
        // Empty batches only carry a position (keepalive between transactions): nothing to
        // write, unless the envelope stage put records about the stream on them (a heartbeat,
        // the END of a transaction whose commit arrived after its last event's batch).
        if !batch.events.is_empty() || !batch.records.is_empty() {
            let started = Instant::now();
            loop {
                let result = tokio::select! {
                    result = sink.write(&batch) => result,
                    _ = abort.cancelled() => {
                        return Err(DeliveryError::Cancelled { sink: name, sequence: batch.sequence })
                    }
                };
                match result {
                    Ok(()) => {
                        backoff.reset();
                        write_time = Some(started.elapsed());
                        metrics.set_sink_failing(index, false);
                        break;
                    }
                    Err(error) if error.class == ErrorClass::Transient => {
                        if let Some(probe) = probe {
                            probe.retries.fetch_add(1, Ordering::Relaxed);
                        }
                        metrics.set_sink_failing(index, true);
                        let delay = backoff.next_delay();
                        tracing::warn!(
                            sink = %name, batch = batch.sequence, attempt = backoff.attempt(),
                            retry_in_ms = delay.as_millis() as u64, %error,
                            "sink write failed, retrying"
                        );
                        tokio::select! {
                            _ = tokio::time::sleep(delay) => {}
                            _ = abort.cancelled() => {
                                return Err(DeliveryError::Cancelled { sink: name, sequence: batch.sequence })
                            }
                        }
                    }
                    Err(error) => {
                        metrics.set_sink_failing(index, true);
                        return Err(DeliveryError::Fatal {
                            sink: name,
                            sequence: batch.sequence,
                            error,
                        });
                    }
                }
            }
        }
        if let Some(probe) = probe {
            probe.delivered(&batch, write_time);
            probe
                .dead_letters
                .store(sink.dead_letter_count(), Ordering::Relaxed);
        }
        let ack = Ack {
            sink: index,
            sequence: batch.sequence,
            checkpoint: batch.checkpoint,
        };
        if acks.send(ack).is_err() {
            break;
        }
    }
    if let Err(error) = sink.close().await {
        tracing::warn!(sink = %name, %error, "closing sink failed");
    }
    Ok(())
}
