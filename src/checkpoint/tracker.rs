//! Per-sink acknowledged positions and their minimum.

use sluice_api::Lsn;

/// A sink's report that a batch, and every batch before it, is durable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ack {
    /// The sink's index in the pipeline.
    pub sink: usize,
    /// The batch's sequence number.
    pub sequence: u64,
    /// The batch's checkpoint: `None` when it ended inside a transaction.
    pub checkpoint: Option<Lsn>,
}

/// Tracks, per sink, the highest position below which everything is durable, and the
/// minimum over sinks: the LSN that may be confirmed to the server.
///
/// Batches reach each sink in order and a sink acks them in order, so a sink's latest
/// checkpoint is also its contiguous one. A checkpoint lower than one already acked (a batch
/// redelivered after a reconnect) changes nothing: positions never move backwards.
#[derive(Debug)]
pub struct AckTracker {
    acked: Vec<Lsn>,
    last_sequence: Vec<u64>,
    confirmed: Lsn,
}

impl AckTracker {
    /// A tracker for `sink_count` sinks, all starting at `start` (what the server already has).
    pub fn new(sink_count: usize, start: Lsn) -> Self {
        AckTracker {
            acked: vec![start; sink_count],
            last_sequence: vec![0; sink_count],
            confirmed: start,
        }
    }

    /// Record an ack; returns the new confirmable LSN when it advanced.
    pub fn ack(&mut self, ack: Ack) -> Option<Lsn> {
        let slot = self.acked.get_mut(ack.sink)?;
        debug_assert!(
            ack.sequence > self.last_sequence[ack.sink],
            "acks arrive in batch order"
        );
        self.last_sequence[ack.sink] = ack.sequence;
        if let Some(lsn) = ack.checkpoint {
            *slot = (*slot).max(lsn);
        }
        let min = self.acked.iter().copied().min().unwrap_or(self.confirmed);
        if min > self.confirmed {
            self.confirmed = min;
            Some(min)
        } else {
            None
        }
    }

    /// The highest batch sequence every sink has acknowledged: that batch and every batch
    /// before it are durable everywhere (acks arrive in batch order per sink).
    pub fn acked_sequence(&self) -> u64 {
        self.last_sequence.iter().copied().min().unwrap_or(0)
    }

    /// The LSN every sink has durably taken.
    pub fn confirmed(&self) -> Lsn {
        self.confirmed
    }

    /// What one sink has durably taken.
    pub fn acked(&self, sink: usize) -> Option<Lsn> {
        self.acked.get(sink).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ack(sink: usize, sequence: u64, lsn: Option<u64>) -> Ack {
        Ack {
            sink,
            sequence,
            checkpoint: lsn.map(Lsn),
        }
    }

    #[test]
    fn the_confirmed_lsn_is_the_minimum_over_sinks() {
        let mut t = AckTracker::new(2, Lsn(10));
        assert_eq!(
            t.ack(ack(0, 1, Some(20))),
            None,
            "sink 1 has taken nothing yet"
        );
        assert_eq!(t.ack(ack(1, 1, Some(15))), Some(Lsn(15)));
        assert_eq!(t.ack(ack(1, 2, Some(30))), Some(Lsn(20)));
        assert_eq!(t.confirmed(), Lsn(20));
        assert_eq!(t.acked(1), Some(Lsn(30)));
    }

    #[test]
    fn batches_inside_a_transaction_do_not_move_the_checkpoint() {
        let mut t = AckTracker::new(1, Lsn(10));
        assert_eq!(t.ack(ack(0, 1, None)), None);
        assert_eq!(t.confirmed(), Lsn(10));
    }

    #[test]
    fn a_redelivered_lower_checkpoint_never_moves_it_backwards() {
        let mut t = AckTracker::new(1, Lsn(10));
        assert_eq!(t.ack(ack(0, 1, Some(50))), Some(Lsn(50)));
        assert_eq!(t.ack(ack(0, 2, Some(40))), None);
        assert_eq!(t.confirmed(), Lsn(50));
    }

    #[test]
    fn the_acked_sequence_is_the_minimum_over_sinks() {
        let mut t = AckTracker::new(2, Lsn(10));
        t.ack(ack(0, 1, None));
        t.ack(ack(0, 2, None));
        assert_eq!(t.acked_sequence(), 0, "sink 1 has acked nothing");
        t.ack(ack(1, 1, None));
        assert_eq!(t.acked_sequence(), 1);
    }

    #[test]
    fn an_unknown_sink_is_ignored() {
        let mut t = AckTracker::new(1, Lsn(10));
        assert_eq!(t.ack(ack(3, 1, Some(50))), None);
    }
}
