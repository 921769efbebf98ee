//! Where an event sits in the change stream, precisely enough to tell, after a crash or a
//! reconnect, which redelivered events a transactional Kafka sink has already written.
//!
//! PostgreSQL sends transactions whole and in commit order, and resends them from the start of
//! a transaction (never from its middle). An event's place is therefore its transaction's
//! `commit_lsn`, its own WAL `lsn` (non-decreasing inside a transaction) and, for the rare
//! events sharing one WAL record (a TRUNCATE of several tables), its index among them. These
//! positions strictly increase along the stream, so "already written" is a prefix test:
//! `position <= last written position`.
//!
//! Limitation: if a connection is lost while the events sharing the very first WAL record of a
//! transaction are only partly delivered, the redelivered ones continue the index instead of
//! restarting it; only a multi-table TRUNCATE opening a transaction can do that.

use std::cmp::Ordering;

use sluice_api::{ChangeEvent, Lsn};

/// An event's position in the change stream.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub struct EventPosition {
    /// The commit of the event's transaction (for a non-transactional message: its own LSN).
    pub commit_lsn: Lsn,
    /// The event's own WAL position.
    pub lsn: Lsn,
    /// Index among the transaction's consecutive events at the same `lsn`.
    pub index: u32,
}

impl PartialOrd for EventPosition {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for EventPosition {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.commit_lsn, self.lsn, self.index).cmp(&(other.commit_lsn, other.lsn, other.index))
    }
}

/// Gives each event of consecutive batches its [`EventPosition`]. The state is the last
/// position handed out; a caller keeps a copy and only adopts the new one once a write
/// succeeded, so a retried batch gets the same positions again.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct PositionCounter {
    last: Option<EventPosition>,
}

impl PositionCounter {
    /// The position of `event`, the next one in the stream.
    pub fn next(&mut self, event: &ChangeEvent) -> EventPosition {
        let (commit_lsn, lsn) = (event.position.commit_lsn, event.position.lsn);
        let index = match self.last {
            Some(last) if last.commit_lsn == commit_lsn && last.lsn == lsn => last.index + 1,
            _ => 0,
        };
        let position = EventPosition {
            commit_lsn,
            lsn,
            index,
        };
        self.last = Some(position);
        position
    }

    /// The positions of every event of `events`, in order.
    pub fn assign(&mut self, events: &[ChangeEvent]) -> Vec<EventPosition> {
        events.iter().map(|e| self.next(e)).collect()
    }
}

/// The index of the first event of `positions` after `written` (everything before it was
/// already written); `positions.len()` when all of them were.
pub fn first_unwritten(positions: &[EventPosition], written: Option<EventPosition>) -> usize {
    match written {
        None => 0,
        Some(written) => positions.partition_point(|p| *p <= written),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_api::{Op, SourcePosition};

    fn event(commit_lsn: u64, lsn: u64) -> ChangeEvent {
        ChangeEvent {
            op: Op::Create,
            table: None,
            before: None,
            before_is_key_only: false,
            after: None,
            message: None,
            position: SourcePosition {
                lsn: Lsn(lsn),
                commit_lsn: Lsn(commit_lsn),
                xid: Some(1),
                commit_time_us: 0,
                snapshot: sluice_api::SnapshotFlag::False,
            },
        }
    }

    #[test]
    fn positions_increase_along_the_stream_and_count_events_sharing_a_record() {
        let mut counter = PositionCounter::default();
        let positions = counter.assign(&[
            event(100, 10),
            event(100, 20),
            event(100, 20),
            event(200, 150),
        ]);
        assert_eq!(positions[1].index, 0);
        assert_eq!(positions[2].index, 1);
        assert!(positions.windows(2).all(|w| w[0] < w[1]), "{positions:?}");
    }

    #[test]
    fn a_transaction_sent_again_gets_the_same_positions() {
        let txn = [event(100, 10), event(100, 20), event(100, 30)];
        let mut counter = PositionCounter::default();
        let first = counter.assign(&txn);
        // The connection drops after two events; the server starts the transaction over.
        let again = counter.assign(&txn);
        assert_eq!(first, again);
    }

    #[test]
    fn redelivered_events_up_to_the_written_position_are_skipped() {
        let mut counter = PositionCounter::default();
        let positions = counter.assign(&[event(100, 10), event(100, 20), event(200, 150)]);
        assert_eq!(first_unwritten(&positions, None), 0);
        assert_eq!(first_unwritten(&positions, Some(positions[1])), 2);
        assert_eq!(first_unwritten(&positions, Some(positions[2])), 3);
        let before = EventPosition {
            commit_lsn: Lsn(50),
            lsn: Lsn(40),
            index: 0,
        };
        assert_eq!(first_unwritten(&positions, Some(before)), 0);
    }
}
