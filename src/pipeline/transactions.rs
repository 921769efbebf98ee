//! Transaction bookkeeping for Debezium's transaction metadata, derived from the stream alone:
//! batches carry no BEGIN/COMMIT events, so a transaction begins with its first record's event
//! and ends when an event of another transaction arrives or when a batch's checkpoint covers
//! its commit (a checkpoint is a commit's end or a keepalive position, both after the commit
//! record every event of the transaction names). State lives across batches, so a transaction
//! split over several batches is counted once, whole.
//!
//! Events without a transaction id (snapshot rows, non-transactional messages) are outside any
//! transaction. After a reconnect the server sends an unconfirmed transaction again from its
//! start: an event at or before the last one counted starts the transaction over (a new BEGIN),
//! so counts never mix two deliveries.

use std::sync::Arc;

use sluice_api::{Lsn, SourcePosition};

/// A BEGIN or END to emit, with what the record says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Boundary {
    /// True for BEGIN, false for END.
    pub begin: bool,
    pub xid: u32,
    pub commit_lsn: Lsn,
    /// `<txid>:<commit LSN>`.
    pub id: Arc<str>,
    /// Commit time, ms since the epoch.
    pub ts_ms: i64,
    /// END only: the transaction's records.
    pub event_count: u64,
    /// END only: records per data collection, in first-seen order.
    pub collections: Vec<(Arc<str>, u64)>,
}

/// An event's place in its transaction (the envelope's `transaction` block).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Order {
    pub id: Arc<str>,
    pub total_order: u64,
    pub data_collection_order: u64,
}

/// The transaction being counted.
#[derive(Debug)]
struct Open {
    xid: u32,
    commit_lsn: Lsn,
    id: Arc<str>,
    ts_ms: i64,
    last_lsn: Lsn,
    total: u64,
    collections: Vec<(Arc<str>, u64)>,
}

impl Open {
    fn boundary(&self, begin: bool) -> Boundary {
        Boundary {
            begin,
            xid: self.xid,
            commit_lsn: self.commit_lsn,
            id: self.id.clone(),
            ts_ms: self.ts_ms,
            event_count: if begin { 0 } else { self.total },
            collections: if begin {
                Vec::new()
            } else {
                self.collections.clone()
            },
        }
    }
}

/// Follows transactions through the record-producing events of consecutive batches.
#[derive(Debug, Default)]
pub(super) struct TransactionTracker {
    open: Option<Open>,
}

/// Debezium's PostgreSQL transaction id form, `<txid>:<LSN>`; the LSN here is the commit's,
/// so BEGIN, END and every event of one transaction share one id.
pub(super) fn transaction_id(xid: u32, commit_lsn: Lsn) -> String {
    format!("{xid}:{}", commit_lsn.as_u64())
}

impl TransactionTracker {
    /// Count an event of `collection` at `position`. The boundaries it crosses are appended to
    /// `boundaries` (the END of the transaction before it, its own BEGIN); its place in its
    /// transaction is returned, `None` outside transactions.
    pub fn observe(
        &mut self,
        position: &SourcePosition,
        collection: &Arc<str>,
        boundaries: &mut Vec<Boundary>,
    ) -> Option<Order> {
        let xid = position.xid?;
        let same = self
            .open
            .as_ref()
            .is_some_and(|o| o.xid == xid && o.commit_lsn == position.commit_lsn);
        let replayed = same
            && self
                .open
                .as_ref()
                .is_some_and(|o| position.lsn <= o.last_lsn);
        if !same || replayed {
            if let Some(open) = self.open.take() {
                if !replayed {
                    boundaries.push(open.boundary(false));
                }
            }
            let open = Open {
                xid,
                commit_lsn: position.commit_lsn,
                id: Arc::from(transaction_id(xid, position.commit_lsn)),
                ts_ms: position.commit_time_us.div_euclid(1000),
                last_lsn: Lsn::ZERO,
                total: 0,
                collections: Vec::new(),
            };
            boundaries.push(open.boundary(true));
            self.open = Some(open);
        }
        let open = self.open.as_mut()?;
        open.last_lsn = position.lsn;
        open.total += 1;
        let data_collection_order = match open.collections.iter_mut().find(|(c, _)| c == collection)
        {
            Some((_, count)) => {
                *count += 1;
                *count
            }
            None => {
                open.collections.push((collection.clone(), 1));
                1
            }
        };
        Some(Order {
            id: open.id.clone(),
            total_order: open.total,
            data_collection_order,
        })
    }

    /// A batch ended with `checkpoint`: the open transaction's END when the checkpoint covers
    /// its commit.
    pub fn end_of_batch(&mut self, checkpoint: Option<sluice_api::Lsn>) -> Option<Boundary> {
        let covered =
            matches!((&self.open, checkpoint), (Some(open), Some(c)) if c > open.commit_lsn);
        if covered {
            self.open.take().map(|open| open.boundary(false))
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(xid: u32, lsn: u64, commit_lsn: u64) -> SourcePosition {
        SourcePosition {
            lsn: Lsn(lsn),
            commit_lsn: Lsn(commit_lsn),
            xid: Some(xid),
            commit_time_us: 1_700_000_000_123_456,
            snapshot: sluice_api::SnapshotFlag::False,
        }
    }

    fn tables() -> (Arc<str>, Arc<str>) {
        (Arc::from("public.orders"), Arc::from("public.items"))
    }

    #[test]
    fn a_multi_table_transaction_begins_counts_per_table_and_ends_at_the_checkpoint() {
        let (orders, items) = tables();
        let mut tracker = TransactionTracker::default();
        let mut boundaries = Vec::new();
        let first = tracker
            .observe(&at(7, 10, 90), &orders, &mut boundaries)
            .unwrap();
        let second = tracker
            .observe(&at(7, 20, 90), &items, &mut boundaries)
            .unwrap();
        let third = tracker
            .observe(&at(7, 30, 90), &orders, &mut boundaries)
            .unwrap();
        assert_eq!(boundaries.len(), 1);
        assert!(boundaries[0].begin);
        assert_eq!(&*boundaries[0].id, "7:90");
        assert_eq!(boundaries[0].ts_ms, 1_700_000_000_123);
        assert_eq!((first.total_order, first.data_collection_order), (1, 1));
        assert_eq!((second.total_order, second.data_collection_order), (2, 1));
        assert_eq!((third.total_order, third.data_collection_order), (3, 2));
        assert_eq!(&*third.id, "7:90");

        assert_eq!(
            tracker.end_of_batch(None),
            None,
            "no checkpoint: still open"
        );
        assert_eq!(
            tracker.end_of_batch(Some(Lsn(80))),
            None,
            "a checkpoint before the commit: still open"
        );
        let end = tracker
            .end_of_batch(Some(Lsn(98)))
            .expect("the commit is covered");
        assert!(!end.begin);
        assert_eq!(end.event_count, 3);
        assert_eq!(end.collections, vec![(orders, 2), (items, 1)]);
        assert_eq!(tracker.end_of_batch(Some(Lsn(200))), None, "ended once");
    }

    #[test]
    fn a_transaction_split_over_batches_is_counted_whole() {
        let (orders, _) = tables();
        let mut tracker = TransactionTracker::default();
        let mut boundaries = Vec::new();
        for lsn in [10, 20] {
            tracker.observe(&at(7, lsn, 90), &orders, &mut boundaries);
        }
        assert_eq!(tracker.end_of_batch(None), None);
        let order = tracker
            .observe(&at(7, 30, 90), &orders, &mut boundaries)
            .unwrap();
        assert_eq!(order.total_order, 3);
        assert_eq!(boundaries.len(), 1, "one BEGIN for the whole transaction");
        assert_eq!(tracker.end_of_batch(Some(Lsn(98))).unwrap().event_count, 3);
    }

    #[test]
    fn the_next_transaction_ends_the_previous_one() {
        let (orders, items) = tables();
        let mut tracker = TransactionTracker::default();
        let mut boundaries = Vec::new();
        tracker.observe(&at(7, 10, 90), &orders, &mut boundaries);
        tracker.observe(&at(8, 100, 190), &items, &mut boundaries);
        let shape: Vec<(bool, &str, u64)> = boundaries
            .iter()
            .map(|b| (b.begin, &*b.id, b.event_count))
            .collect();
        assert_eq!(
            shape,
            [(true, "7:90", 0), (false, "7:90", 1), (true, "8:190", 0)]
        );
        // The batch's checkpoint is the first commit's end: the second stays open.
        assert_eq!(tracker.end_of_batch(Some(Lsn(98))), None);
    }

    #[test]
    fn events_outside_transactions_have_no_place_and_no_boundaries() {
        let (orders, _) = tables();
        let mut tracker = TransactionTracker::default();
        let mut boundaries = Vec::new();
        let snapshot = SourcePosition {
            xid: None,
            ..at(0, 5, 5)
        };
        assert_eq!(tracker.observe(&snapshot, &orders, &mut boundaries), None);
        assert!(boundaries.is_empty());
        assert_eq!(tracker.end_of_batch(Some(Lsn(10))), None);
    }

    #[test]
    fn a_transaction_sent_again_after_a_reconnect_starts_over() {
        let (orders, _) = tables();
        let mut tracker = TransactionTracker::default();
        let mut boundaries = Vec::new();
        tracker.observe(&at(7, 10, 90), &orders, &mut boundaries);
        tracker.observe(&at(7, 20, 90), &orders, &mut boundaries);
        let again = tracker
            .observe(&at(7, 10, 90), &orders, &mut boundaries)
            .unwrap();
        assert_eq!(again.total_order, 1);
        let begins = boundaries.iter().filter(|b| b.begin).count();
        assert_eq!((boundaries.len(), begins), (2, 2), "a second BEGIN, no END");
        tracker.observe(&at(7, 20, 90), &orders, &mut boundaries);
        assert_eq!(tracker.end_of_batch(Some(Lsn(98))).unwrap().event_count, 2);
    }
}
