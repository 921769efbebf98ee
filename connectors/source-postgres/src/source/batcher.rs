//! Groups events into batches of whole transactions (or bounded runs of a large one) and
//! gives each batch the position it makes confirmable.

use std::time::Duration;

use sluice_api::{Batch, ChangeEvent, Lsn};
use tokio::time::Instant;

/// Size and age limits of a batch.
#[derive(Clone, Copy, Debug)]
pub struct BatchLimits {
    /// A batch is sent once it holds this many events, even inside a transaction.
    pub max_events: usize,
    /// A batch is sent at the latest this long after its first event or position.
    pub max_wait: Duration,
}

/// The batch being filled.
pub struct Batcher {
    limits: BatchLimits,
    events: Vec<ChangeEvent>,
    /// The end of the last transaction completed (or keepalive position) not yet sent.
    pending_checkpoint: Option<Lsn>,
    /// The last checkpoint handed to the pipeline.
    sent_checkpoint: Lsn,
    deadline: Option<Instant>,
    next_sequence: u64,
}

impl Batcher {
    pub fn new(limits: BatchLimits) -> Self {
        Batcher {
            limits,
            events: Vec::new(),
            pending_checkpoint: None,
            sent_checkpoint: Lsn::ZERO,
            deadline: None,
            next_sequence: 1,
        }
    }

    fn touch(&mut self) {
        if self.deadline.is_none() {
            self.deadline = Some(Instant::now() + self.limits.max_wait);
        }
    }

    /// Add an event; true when the batch is full and should be sent now.
    pub fn push(&mut self, event: ChangeEvent) -> bool {
        self.touch();
        self.events.push(event);
        self.events.len() >= self.limits.max_events
    }

    /// Everything up to `lsn` is complete (a commit's end or a keepalive between transactions).
    /// Returns true when the batch is full and should be sent now.
    pub fn complete_up_to(&mut self, lsn: Lsn) -> bool {
        if lsn > self.sent_checkpoint && self.pending_checkpoint.is_none_or(|p| lsn > p) {
            self.touch();
            self.pending_checkpoint = Some(lsn);
        }
        self.events.len() >= self.limits.max_events
    }

    /// When the batch must be sent even if not full; `None` when there is nothing to send.
    pub fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    pub fn is_empty(&self) -> bool {
        self.events.is_empty() && self.pending_checkpoint.is_none()
    }

    /// Take the batch to send (`None` when empty). Its checkpoint is the last position
    /// completed since the previous batch.
    pub fn take(&mut self) -> Option<Batch> {
        if self.is_empty() {
            return None;
        }
        let checkpoint = self.pending_checkpoint.take();
        if let Some(lsn) = checkpoint {
            self.sent_checkpoint = lsn;
        }
        let batch = Batch {
            sequence: self.next_sequence,
            events: std::mem::replace(
                &mut self.events,
                Vec::with_capacity(self.limits.max_events.min(4096)),
            ),
            checkpoint,
            records: Vec::new(),
        };
        self.next_sequence += 1;
        self.deadline = None;
        Some(batch)
    }

    /// The sequence number the next batch gets.
    pub fn next_sequence(&self) -> u64 {
        self.next_sequence
    }

    /// A batch of snapshot rows, next in the sequence. Snapshot batches carry no checkpoint:
    /// the confirmed position stays at the slot's until streaming moves it.
    pub fn snapshot_batch(&mut self, events: Vec<ChangeEvent>) -> Batch {
        debug_assert!(self.is_empty(), "snapshots run before streaming");
        let batch = Batch {
            sequence: self.next_sequence,
            events,
            checkpoint: None,
            records: Vec::new(),
        };
        self.next_sequence += 1;
        batch
    }

    /// Drop what was not sent (the connection was lost: the server sends it again from
    /// [`Batcher::sent_checkpoint`]).
    pub fn discard_unsent(&mut self) {
        self.events.clear();
        self.pending_checkpoint = None;
        self.deadline = None;
    }

    /// The last checkpoint handed to the pipeline: where a new session resumes.
    pub fn sent_checkpoint(&self) -> Lsn {
        self.sent_checkpoint
    }

    /// Start from what the server already has confirmed.
    pub fn resume_at(&mut self, lsn: Lsn) {
        self.sent_checkpoint = self.sent_checkpoint.max(lsn);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_api::{Op, SourcePosition};

    fn event() -> ChangeEvent {
        ChangeEvent {
            op: Op::Message,
            table: None,
            before: None,
            before_is_key_only: false,
            after: None,
            message: None,
            position: SourcePosition::default(),
        }
    }

    fn limits(max_events: usize) -> BatchLimits {
        BatchLimits {
            max_events,
            max_wait: Duration::from_millis(50),
        }
    }

    #[test]
    fn a_batch_carries_the_last_commit_it_completes() {
        let mut b = Batcher::new(limits(100));
        b.push(event());
        b.complete_up_to(Lsn(10));
        b.push(event());
        b.complete_up_to(Lsn(20));
        b.push(event());
        let batch = b.take().unwrap();
        assert_eq!(batch.events.len(), 3);
        assert_eq!(batch.checkpoint, Some(Lsn(20)));
        assert_eq!(b.sent_checkpoint(), Lsn(20));
        assert!(b.take().is_none());
    }

    #[test]
    fn a_full_batch_inside_a_transaction_has_no_checkpoint() {
        let mut b = Batcher::new(limits(2));
        assert!(!b.push(event()));
        assert!(b.push(event()));
        let batch = b.take().unwrap();
        assert_eq!(batch.checkpoint, None);
        assert_eq!(batch.sequence, 1);
    }

    #[test]
    fn a_position_without_events_makes_an_empty_batch() {
        let mut b = Batcher::new(limits(10));
        b.complete_up_to(Lsn(5));
        assert!(b.deadline().is_some());
        let batch = b.take().unwrap();
        assert!(batch.events.is_empty());
        assert_eq!(batch.checkpoint, Some(Lsn(5)));
        b.complete_up_to(Lsn(5));
        assert!(b.is_empty(), "a position already sent is not sent again");
    }

    #[test]
    fn discarding_keeps_the_last_sent_checkpoint_for_resuming() {
        let mut b = Batcher::new(limits(10));
        b.complete_up_to(Lsn(5));
        b.take();
        b.push(event());
        b.complete_up_to(Lsn(9));
        b.discard_unsent();
        assert!(b.is_empty());
        assert_eq!(b.sent_checkpoint(), Lsn(5));
        assert_eq!(b.take().map(|b| b.sequence), None);
    }
}
