//! A batch as the Kafka records to produce, in order: each encoded record with its headers
//! (`sluice.lsn`, `sluice.txid`, `sluice.table`, from the event it encodes; a transaction
//! boundary carries its commit position and txid, a heartbeat none), and after a delete a
//! tombstone for the same key when tombstones are on. No I/O: the sink produces what this plans.

use sluice_api::{Batch, ChangeEvent, EncodedRecord, Op, RecordOrigin};

/// Header carrying the change's WAL position (`0/16B3748`).
pub const HEADER_LSN: &str = "sluice.lsn";
/// Header carrying the source transaction id, when the server sent one.
pub const HEADER_TXID: &str = "sluice.txid";
/// Header carrying the captured table, `schema.table`.
pub const HEADER_TABLE: &str = "sluice.table";

/// One record to produce, borrowing the batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutgoingRecord<'a> {
    pub topic: &'a str,
    pub key: Option<&'a [u8]>,
    /// `None` is a tombstone.
    pub value: Option<&'a [u8]>,
    pub headers: Vec<(&'static str, String)>,
    /// The index in the batch's events of the event this record encodes, when it is one.
    pub event: Option<usize>,
}

impl OutgoingRecord<'_> {
    /// An owned copy, kept while its Kafka transaction is open so it can be produced again.
    pub fn to_owned_record(&self) -> OwnedRecord {
        OwnedRecord {
            topic: self.topic.to_owned(),
            key: self.key.map(<[u8]>::to_vec),
            value: self.value.map(<[u8]>::to_vec),
            headers: self.headers.clone(),
        }
    }
}

/// A record that outlives its batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OwnedRecord {
    pub topic: String,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub headers: Vec<(&'static str, String)>,
}

impl OwnedRecord {
    /// The record to produce.
    pub fn as_outgoing(&self) -> OutgoingRecord<'_> {
        OutgoingRecord {
            topic: &self.topic,
            key: self.key.as_deref(),
            value: self.value.as_deref(),
            headers: self.headers.clone(),
            event: None,
        }
    }
}

/// The headers of the record encoding `event`.
pub fn headers_for(event: &ChangeEvent) -> Vec<(&'static str, String)> {
    let mut headers = Vec::with_capacity(3);
    headers.push((HEADER_LSN, event.position.lsn.to_string()));
    if let Some(xid) = event.position.xid {
        headers.push((HEADER_TXID, xid.to_string()));
    }
    if let Some(table) = &event.table {
        headers.push((HEADER_TABLE, table.qualified_name()));
    }
    headers
}

/// The headers of `record`: its event's, or the position a stream record describes.
fn headers_of(batch: &Batch, record: &EncodedRecord) -> Vec<(&'static str, String)> {
    match record.origin {
        RecordOrigin::Event(index) => batch.events.get(index).map(headers_for).unwrap_or_default(),
        RecordOrigin::Transaction { xid, commit_lsn } => vec![
            (HEADER_LSN, commit_lsn.to_string()),
            (HEADER_TXID, xid.to_string()),
        ],
        RecordOrigin::Heartbeat => Vec::new(),
    }
}

/// Whether a tombstone follows `record`: only after a delete, only for a keyed table (a null
/// value without a key compacts nothing), and only when tombstones are on.
pub fn needs_tombstone(event: &ChangeEvent, record: &EncodedRecord, enabled: bool) -> bool {
    enabled
        && !record.suppress_tombstone
        && event.op == Op::Delete
        && record.key.is_some()
        && record.value.is_some()
}

/// True when `batch` has row events the envelope stage would have encoded, but no records:
/// the pipeline runs without a `[registry]`, which this sink needs. Only inserts and snapshot
/// reads tell: the record transforms may leave updates and deletes without a record (an
/// unwrapped delete that is dropped, an outbox row's delete), never an insert.
pub fn lacks_records(batch: &Batch) -> bool {
    batch.records.is_empty()
        && batch
            .events
            .iter()
            .any(|e| e.table.is_some() && matches!(e.op, Op::Create | Op::Read))
}

/// For each record, the event it belongs with: its own, or for a record without one (a
/// metadata record) the next record's event, else the previous one's, else the batch's last
/// event. Redelivery and transaction splits cut the batch at event boundaries; a record
/// without an event goes with its neighbours.
pub fn governing_events(records: &[OutgoingRecord<'_>], event_count: usize) -> Vec<usize> {
    let fallback = event_count.saturating_sub(1);
    let mut out: Vec<Option<usize>> = records.iter().map(|r| r.event).collect();
    let mut next = None;
    for slot in out.iter_mut().rev() {
        match slot {
            Some(index) => next = Some(*index),
            None => *slot = next,
        }
    }
    let mut previous = None;
    for (slot, record) in out.iter_mut().zip(records) {
        if record.event.is_some() {
            previous = record.event;
        } else if slot.is_none() {
            *slot = previous;
        }
    }
    out.into_iter().map(|s| s.unwrap_or(fallback)).collect()
}

/// Every record of `batch` to produce, in event order. Records pointing outside the batch's
/// events (which the envelope stage never makes) are produced without headers rather than
/// dropped: losing a change is worse than losing its metadata.
pub fn plan_batch(batch: &Batch, tombstones: bool) -> Vec<OutgoingRecord<'_>> {
    let mut out = Vec::with_capacity(batch.records.len() + batch.records.len() / 8);
    for record in &batch.records {
        let index = match record.origin {
            RecordOrigin::Event(index) if index < batch.events.len() => Some(index),
            _ => None,
        };
        let event = index.map(|i| &batch.events[i]);
        let headers = headers_of(batch, record);
        let tombstone = event.is_some_and(|e| needs_tombstone(e, record, tombstones));
        out.push(OutgoingRecord {
            topic: &record.topic,
            key: record.key.as_deref(),
            value: record.value.as_deref(),
            headers: headers.clone(),
            event: index,
        });
        if tombstone {
            out.push(OutgoingRecord {
                topic: &record.topic,
                key: record.key.as_deref(),
                value: None,
                headers,
                event: index,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use sluice_api::{Lsn, ReplicaIdentity, SourcePosition, TableSchema};

    use super::*;

    fn event(op: Op, lsn: u64, xid: Option<u32>) -> ChangeEvent {
        ChangeEvent {
            op,
            table: Some(Arc::new(TableSchema {
                relation_id: 1,
                schema: "public".into(),
                name: "orders".into(),
                replica_identity: ReplicaIdentity::Default,
                columns: Vec::new(),
            })),
            before: None,
            before_is_key_only: false,
            after: None,
            message: None,
            position: SourcePosition {
                lsn: Lsn(lsn),
                commit_lsn: Lsn(lsn + 8),
                xid,
                commit_time_us: 0,
                snapshot: sluice_api::SnapshotFlag::False,
            },
        }
    }

    fn record(event: usize, key: Option<&[u8]>) -> EncodedRecord {
        EncodedRecord {
            origin: RecordOrigin::Event(event),
            topic: Arc::from("test.public.orders"),
            key: key.map(<[u8]>::to_vec),
            value: Some(vec![0, 0, 0, 0, 2, 42]),
            suppress_tombstone: false,
        }
    }

    #[test]
    fn headers_carry_the_position_the_transaction_and_the_table() {
        let headers = headers_for(&event(Op::Create, 0x16B_3748, Some(731)));
        assert_eq!(
            headers,
            [
                (HEADER_LSN, "0/16B3748".to_owned()),
                (HEADER_TXID, "731".to_owned()),
                (HEADER_TABLE, "public.orders".to_owned()),
            ]
        );
    }

    #[test]
    fn a_change_without_a_transaction_id_has_no_txid_header() {
        let headers = headers_for(&event(Op::Read, 1, None));
        assert!(headers.iter().all(|(name, _)| *name != HEADER_TXID));
    }

    #[test]
    fn a_delete_of_a_keyed_row_is_followed_by_a_tombstone_with_the_same_key() {
        let batch = Batch {
            events: vec![event(Op::Create, 1, Some(1)), event(Op::Delete, 2, Some(2))],
            records: vec![record(0, Some(b"k1")), record(1, Some(b"k1"))],
            ..Batch::default()
        };
        let planned = plan_batch(&batch, true);
        assert_eq!(planned.len(), 3);
        assert!(planned[1].value.is_some());
        assert_eq!(planned[2].key, Some(&b"k1"[..]));
        assert_eq!(planned[2].value, None);
        assert_eq!(planned[2].headers, planned[1].headers);
    }

    #[test]
    fn tombstones_are_skipped_when_off_or_without_a_key() {
        let delete = event(Op::Delete, 2, Some(2));
        assert!(!needs_tombstone(&delete, &record(0, Some(b"k")), false));
        assert!(!needs_tombstone(&delete, &record(0, None), true));
        assert!(!needs_tombstone(
            &event(Op::Update, 2, None),
            &record(0, Some(b"k")),
            true
        ));
        assert!(needs_tombstone(&delete, &record(0, Some(b"k")), true));
        let unwrapped = EncodedRecord {
            suppress_tombstone: true,
            ..record(0, Some(b"k"))
        };
        assert!(
            !needs_tombstone(&delete, &unwrapped, true),
            "drop_tombstones"
        );
    }

    #[test]
    fn transaction_boundaries_carry_their_commit_position_and_heartbeats_no_headers() {
        let batch = Batch {
            records: vec![
                EncodedRecord {
                    origin: RecordOrigin::Transaction {
                        xid: 731,
                        commit_lsn: Lsn(0x16B_3748),
                    },
                    ..record(0, Some(b"tx"))
                },
                EncodedRecord {
                    origin: RecordOrigin::Heartbeat,
                    ..record(0, Some(b"hb"))
                },
            ],
            ..Batch::default()
        };
        let planned = plan_batch(&batch, true);
        assert_eq!(planned.len(), 2);
        assert_eq!(
            planned[0].headers,
            [
                (HEADER_LSN, "0/16B3748".to_owned()),
                (HEADER_TXID, "731".to_owned()),
            ]
        );
        assert!(planned[1].headers.is_empty());
    }

    #[test]
    fn a_record_without_an_event_goes_with_the_next_event_else_the_previous() {
        let with = |event: Option<usize>| OutgoingRecord {
            topic: "t",
            key: None,
            value: None,
            headers: Vec::new(),
            event,
        };
        let records = [with(None), with(Some(0)), with(Some(1)), with(None)];
        assert_eq!(governing_events(&records, 2), [0, 0, 1, 1]);
        assert_eq!(governing_events(&[with(None)], 3), [2]);
    }

    #[test]
    fn row_events_without_records_mean_no_registry_is_configured() {
        let mut batch = Batch {
            events: vec![event(Op::Create, 1, Some(1))],
            ..Batch::default()
        };
        assert!(lacks_records(&batch));
        batch.events[0].op = Op::Truncate;
        assert!(!lacks_records(&batch), "truncates have no record");
        batch.events[0].op = Op::Delete;
        assert!(
            !lacks_records(&batch),
            "a transform may leave a delete without a record"
        );
        assert!(!lacks_records(&Batch::default()), "an empty batch is fine");
    }
}
