//! Change events and the batches that carry them, with the position that may be acknowledged
//! once a batch is durable: the position travels with the data.

use std::sync::Arc;

use crate::{Lsn, Value};

/// The kind of change, with Debezium's one-letter codes.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum Op {
    /// A row read by a snapshot.
    Read,
    Create,
    Update,
    Delete,
    Truncate,
    /// A logical decoding message (`pg_logical_emit_message`).
    Message,
}

impl Op {
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Read => "r",
            Op::Create => "c",
            Op::Update => "u",
            Op::Delete => "d",
            Op::Truncate => "t",
            Op::Message => "m",
        }
    }
}

/// A table's replica identity: which old values PostgreSQL logs for updates and deletes.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum ReplicaIdentity {
    /// The primary key's columns.
    Default,
    /// No old values at all.
    Nothing,
    /// Every column.
    Full,
    /// The columns of a chosen unique index.
    Index,
}

impl ReplicaIdentity {
    /// From `pg_class.relreplident` / pgoutput's Relation message.
    pub fn from_code(code: u8) -> Option<Self> {
        Some(match code {
            b'd' => ReplicaIdentity::Default,
            b'n' => ReplicaIdentity::Nothing,
            b'f' => ReplicaIdentity::Full,
            b'i' => ReplicaIdentity::Index,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ReplicaIdentity::Default => "default",
            ReplicaIdentity::Nothing => "nothing",
            ReplicaIdentity::Full => "full",
            ReplicaIdentity::Index => "index",
        }
    }
}

/// A column of a captured table, as the source last described it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Column {
    pub name: String,
    pub type_oid: u32,
    /// The type's name (`int4`, `numeric`, `my_schema.mood`, `_text` for arrays).
    pub type_name: String,
    /// `atttypmod`: length, precision/scale and similar; -1 when none.
    pub type_modifier: i32,
    /// Part of the replica identity (the primary key under the default identity).
    pub is_key: bool,
}

/// A captured table's shape. Shared by every event of the table until its shape changes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TableSchema {
    /// The table's OID, which PostgreSQL uses as its relation id in the stream.
    pub relation_id: u32,
    pub schema: String,
    pub name: String,
    pub replica_identity: ReplicaIdentity,
    pub columns: Vec<Column>,
}

impl TableSchema {
    /// `schema.table`, as in include lists and topic names.
    pub fn qualified_name(&self) -> String {
        format!("{}.{}", self.schema, self.name)
    }
}

/// One value per column of the table, in the table's column order.
pub type Row = Vec<Value>;

/// Where an event comes from in the source's history.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SourcePosition {
    /// The WAL position of the change itself (for snapshot rows: the snapshot's position).
    pub lsn: Lsn,
    /// The end of the commit record of the event's transaction: once this is confirmed the
    /// server will not send the transaction again.
    pub commit_lsn: Lsn,
    /// The transaction id, when the server sent it.
    pub xid: Option<u32>,
    /// The commit time, microseconds since the Unix epoch.
    pub commit_time_us: i64,
    /// Whether (and where in a snapshot) the event was read by a snapshot: Debezium's
    /// `source.snapshot` values.
    pub snapshot: SnapshotFlag,
}

/// Debezium's `source.snapshot` marker (`SnapshotRecord`): `false` for streamed changes; for
/// rows of an initial snapshot `first` (the snapshot's first row), `first_in_data_collection`
/// and `last_in_data_collection` (a table's first and last rows), `last` (the snapshot's last
/// row) and `true` (every other row); `incremental` for rows of an incremental snapshot.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Hash)]
pub enum SnapshotFlag {
    #[default]
    False,
    True,
    First,
    FirstInDataCollection,
    LastInDataCollection,
    Last,
    Incremental,
}

impl SnapshotFlag {
    /// The value written to `source.snapshot`.
    pub fn as_str(self) -> &'static str {
        match self {
            SnapshotFlag::False => "false",
            SnapshotFlag::True => "true",
            SnapshotFlag::First => "first",
            SnapshotFlag::FirstInDataCollection => "first_in_data_collection",
            SnapshotFlag::LastInDataCollection => "last_in_data_collection",
            SnapshotFlag::Last => "last",
            SnapshotFlag::Incremental => "incremental",
        }
    }

    /// True for rows read by any kind of snapshot.
    pub fn is_snapshot(self) -> bool {
        self != SnapshotFlag::False
    }
}

/// A logical decoding message (`pg_logical_emit_message`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogicalMessage {
    pub transactional: bool,
    pub prefix: String,
    pub content: Vec<u8>,
}

/// One change to one row (or one table, for truncate), or one logical decoding message.
#[derive(Clone, Debug, PartialEq)]
pub struct ChangeEvent {
    pub op: Op,
    /// The table; `None` only for logical decoding messages.
    pub table: Option<Arc<TableSchema>>,
    /// Old values, when the replica identity provides them. Under the default identity only the
    /// key columns are filled (the others are `Null`) and `before_is_key_only` is set.
    pub before: Option<Row>,
    pub before_is_key_only: bool,
    /// New values (create, update, snapshot read). Untouched TOASTed columns are
    /// [`Value::UnchangedToast`].
    pub after: Option<Row>,
    pub message: Option<LogicalMessage>,
    pub position: SourcePosition,
}

/// A run of events in commit order, and the position acknowledged once it is durable.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Batch {
    /// Increases by one per batch of a pipeline run.
    pub sequence: u64,
    pub events: Vec<ChangeEvent>,
    /// The position that may be confirmed once this batch (and every batch before it) is
    /// durable: the commit end of the last transaction the batch completes, or a keepalive
    /// position between transactions. `None` when the batch ends inside a transaction.
    pub checkpoint: Option<Lsn>,
    /// The events in their wire form (Confluent-framed Avro key and value), in event order,
    /// when the pipeline encodes envelopes (a schema registry is configured); empty otherwise.
    /// Truncates have no record; logical messages have one only when message records are on.
    /// Transaction boundaries and heartbeats, when on, are records of their own
    /// ([`RecordOrigin`]), placed where they happen in the stream.
    pub records: Vec<EncodedRecord>,
}

/// One record for a topic: Confluent wire format (magic byte 0, 4-byte big-endian schema id,
/// Avro binary). A `None` key means the record has no key (a keyless table); a `None` value is a
/// tombstone.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EncodedRecord {
    /// What the record encodes: one of the batch's events, or a record about the stream itself.
    pub origin: RecordOrigin,
    /// The (possibly routed) `<prefix>.<schema>.<table>` topic, or the topic of a logical
    /// message, transaction boundary or heartbeat.
    pub topic: std::sync::Arc<str>,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    /// Set when no tombstone may follow this record even after a delete (the unwrap
    /// transform's `drop_tombstones`); false keeps the sink's own tombstone setting.
    pub suppress_tombstone: bool,
}

/// What an [`EncodedRecord`] encodes. Sinks that only want rows look at `Event` records alone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecordOrigin {
    /// The event at this index of the batch's `events` (a row change or a logical message).
    Event(usize),
    /// A transaction boundary (BEGIN or END) of transaction `xid`, whose commit record is at
    /// `commit_lsn`.
    Transaction { xid: u32, commit_lsn: Lsn },
    /// A heartbeat: the pipeline is alive, whether or not anything changed.
    Heartbeat,
}

impl Default for RecordOrigin {
    /// The batch's first event.
    fn default() -> Self {
        RecordOrigin::Event(0)
    }
}
