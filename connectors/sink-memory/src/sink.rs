//! The memory sink and the handle tests use to look inside it.

use std::sync::{Arc, Mutex, MutexGuard};

use sluice_api::{Batch, ChangeEvent, EncodedRecord, ErrorClass, Lsn, Sink, SinkError};
use tokio::sync::Notify;

use crate::MemorySinkConfig;

#[derive(Default)]
struct State {
    events: Vec<ChangeEvent>,
    /// The batches' wire records (when the pipeline encodes envelopes), in order.
    records: Vec<EncodedRecord>,
    event_count: u64,
    batch_count: u64,
    last_checkpoint: Option<Lsn>,
    /// Fault injection: this many next writes fail with this class.
    failures_left: u64,
    failure_class: Option<ErrorClass>,
    failed_write_count: u64,
}

struct Shared {
    state: Mutex<State>,
    changed: Notify,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave State half-updated (every update is a
        // few assignments), so a poisoned lock is still usable.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Keeps every event it is given (or only counts them), in order.
pub struct MemorySink {
    shared: Arc<Shared>,
    retain: bool,
}

/// A view into a [`MemorySink`] that stays usable after the sink moved into a pipeline.
#[derive(Clone)]
pub struct MemorySinkHandle {
    shared: Arc<Shared>,
}

impl MemorySink {
    /// A sink and the handle to read it.
    pub fn new(config: &MemorySinkConfig) -> (MemorySink, MemorySinkHandle) {
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            changed: Notify::new(),
        });
        (
            MemorySink {
                shared: shared.clone(),
                retain: config.retain,
            },
            MemorySinkHandle { shared },
        )
    }
}

#[async_trait::async_trait]
impl Sink for MemorySink {
    async fn write(&mut self, batch: &Batch) -> Result<(), SinkError> {
        {
            let mut state = self.shared.lock();
            if state.failures_left > 0 {
                state.failures_left -= 1;
                state.failed_write_count += 1;
                let class = state.failure_class.unwrap_or(ErrorClass::Transient);
                drop(state);
                self.shared.changed.notify_waiters();
                let message = format!("injected failure of batch {}", batch.sequence);
                return Err(SinkError {
                    class,
                    message,
                    source: None,
                });
            }
            if self.retain {
                state.events.extend(batch.events.iter().cloned());
                state.records.extend(batch.records.iter().cloned());
            }
            state.event_count += batch.events.len() as u64;
            state.batch_count += 1;
            if batch.checkpoint.is_some() {
                state.last_checkpoint = batch.checkpoint;
            }
        }
        self.shared.changed.notify_waiters();
        Ok(())
    }
}

impl MemorySinkHandle {
    /// A copy of every event taken so far (empty when not retaining).
    pub fn events(&self) -> Vec<ChangeEvent> {
        self.shared.lock().events.clone()
    }

    /// A copy of every wire record taken so far (empty unless envelopes are encoded).
    pub fn records(&self) -> Vec<EncodedRecord> {
        self.shared.lock().records.clone()
    }

    /// How many events were taken.
    pub fn event_count(&self) -> u64 {
        self.shared.lock().event_count
    }

    /// How many non-empty batches were taken.
    pub fn batch_count(&self) -> u64 {
        self.shared.lock().batch_count
    }

    /// The checkpoint of the last batch taken that had one.
    pub fn last_checkpoint(&self) -> Option<Lsn> {
        self.shared.lock().last_checkpoint
    }

    /// How many writes failed by injection.
    pub fn failed_write_count(&self) -> u64 {
        self.shared.lock().failed_write_count
    }

    /// Fault injection: the next `count` writes fail with `class` (`u64::MAX`: until healed).
    pub fn fail_writes(&self, count: u64, class: ErrorClass) {
        let mut state = self.shared.lock();
        state.failures_left = count;
        state.failure_class = Some(class);
    }

    /// Stop injecting failures.
    pub fn heal(&self) {
        self.shared.lock().failures_left = 0;
    }

    /// Wait until `condition` holds for the events taken so far, or `timeout` passes; returns
    /// whether it held. Woken on every write, never polling on a timer.
    pub async fn wait_for(
        &self,
        timeout: std::time::Duration,
        mut condition: impl FnMut(&[ChangeEvent], u64) -> bool,
    ) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.shared.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let state = self.shared.lock();
                if condition(&state.events, state.event_count) {
                    return true;
                }
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return false;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_api::{Op, SourcePosition};

    fn message_event(n: u8) -> ChangeEvent {
        ChangeEvent {
            op: Op::Message,
            table: None,
            before: None,
            before_is_key_only: false,
            after: None,
            message: Some(sluice_api::LogicalMessage {
                transactional: false,
                prefix: "p".into(),
                content: vec![n],
            }),
            position: SourcePosition::default(),
        }
    }

    fn batch(sequence: u64, events: Vec<ChangeEvent>, checkpoint: u64) -> Batch {
        Batch {
            sequence,
            events,
            checkpoint: Some(Lsn(checkpoint)),
            records: Vec::new(),
        }
    }

    #[tokio::test]
    async fn retained_events_come_back_in_write_order() {
        let (mut sink, handle) = MemorySink::new(&MemorySinkConfig::default());
        sink.write(&batch(1, vec![message_event(1), message_event(2)], 10))
            .await
            .unwrap();
        sink.write(&batch(2, vec![message_event(3)], 20))
            .await
            .unwrap();
        let contents: Vec<u8> = handle
            .events()
            .iter()
            .map(|e| e.message.as_ref().unwrap().content[0])
            .collect();
        assert_eq!(contents, vec![1, 2, 3]);
        assert_eq!(handle.last_checkpoint(), Some(Lsn(20)));
        assert_eq!(handle.batch_count(), 2);
    }

    #[tokio::test]
    async fn the_null_sink_counts_without_keeping() {
        let (mut sink, handle) = MemorySink::new(&MemorySinkConfig { retain: false });
        sink.write(&batch(1, vec![message_event(1), message_event(2)], 10))
            .await
            .unwrap();
        assert_eq!(handle.event_count(), 2);
        assert!(handle.events().is_empty());
    }

    #[tokio::test]
    async fn injected_failures_reject_the_batch_until_healed() {
        let (mut sink, handle) = MemorySink::new(&MemorySinkConfig::default());
        handle.fail_writes(u64::MAX, ErrorClass::Transient);
        let err = sink
            .write(&batch(1, vec![message_event(1)], 10))
            .await
            .unwrap_err();
        assert_eq!(err.class, ErrorClass::Transient);
        assert_eq!(handle.event_count(), 0);
        handle.heal();
        sink.write(&batch(1, vec![message_event(1)], 10))
            .await
            .unwrap();
        assert_eq!(handle.event_count(), 1);
        assert_eq!(handle.failed_write_count(), 1);
    }

    #[tokio::test]
    async fn waiting_returns_once_the_condition_holds() {
        let (mut sink, handle) = MemorySink::new(&MemorySinkConfig::default());
        let waiter = {
            let handle = handle.clone();
            tokio::spawn(async move {
                handle
                    .wait_for(std::time::Duration::from_secs(5), |_, n| n >= 2)
                    .await
            })
        };
        sink.write(&batch(1, vec![message_event(1), message_event(2)], 10))
            .await
            .unwrap();
        assert!(waiter.await.unwrap());
        assert!(
            !handle
                .wait_for(std::time::Duration::from_millis(10), |_, n| n > 2)
                .await
        );
    }
}
