//! The change decoder: the state machine between the replication stream and the pipeline. It
//! takes one pgoutput payload at a time (with its WAL position) and yields change events in
//! commit order, with the positions that may be confirmed once they are durable.
//!
//! Ordinary transactions pass straight through: Begin opens one, each change becomes a
//! [`Decoded::Event`] as it arrives, Commit closes it with the end LSN to confirm. Streamed
//! transactions (protocol v2, `streaming on`) arrive in chunks, interleaved with each other and
//! with ordinary transactions; their raw messages are buffered within a memory budget (beyond
//! it, spilled to disk) and decoded only at Stream Commit, replayed through
//! [`Decoder::next_replayed`] so that the caller pulls them at its own pace.

mod changes;
mod schemas;
mod stream;
#[cfg(test)]
pub(crate) mod test_wire;

use std::path::PathBuf;
use std::sync::Arc;

use sluice_api::{ChangeEvent, LogicalMessage, Lsn, Op, SourcePosition, TableSchema};

use self::changes::{change_events, Changes};
use self::schemas::Schemas;
use self::stream::{ReplayCursor, StreamBuffers};
use crate::error::SourceError;
use crate::pgoutput::{self, parse_message, DecodingMessage, Message, Parser};
use crate::spill::RecordHeader;
use crate::types::TypeCatalog;

/// Default memory for buffering streamed transactions. PostgreSQL streams a transaction once
/// its decoded changes exceed `logical_decoding_work_mem` (64 MiB by default); holding about
/// as much here keeps a typical streamed transaction off the disk without letting several of
/// them take unbounded memory.
pub const DEFAULT_STREAM_MEMORY_BYTES: usize = 64 * 1024 * 1024;

/// How much memory streamed transactions may take, and where they spill beyond it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamBudget {
    /// Bytes of buffered messages held in memory, over every streamed transaction.
    pub memory_bytes: usize,
    /// Directory for spill files; the system's temporary directory when `None`.
    pub spill_dir: Option<PathBuf>,
}

impl Default for StreamBudget {
    fn default() -> Self {
        StreamBudget {
            memory_bytes: DEFAULT_STREAM_MEMORY_BYTES,
            spill_dir: None,
        }
    }
}

/// What one payload (or one replay step) produced.
#[derive(Clone, Debug, PartialEq)]
pub enum Decoded {
    /// Nothing to emit (Begin, Relation, Type, Origin, stream chunk buffered, ...).
    Nothing,
    /// One event of the current transaction, in order.
    Event(ChangeEvent),
    /// Several events of the current transaction, in order: a truncate, one per table.
    Events(Vec<ChangeEvent>),
    /// A transaction ended: everything up to and including it is complete, and `end_lsn` may be
    /// confirmed once its events are durable.
    Commit {
        /// The end of the commit record: the position to confirm.
        end_lsn: Lsn,
        /// The commit record's own position.
        commit_lsn: Lsn,
        /// The transaction id.
        xid: Option<u32>,
        /// Commit time, µs since the Unix epoch.
        commit_time_us: i64,
        /// How many events the transaction produced.
        event_count: u64,
    },
    /// A streamed transaction committed: drain it with [`Decoder::next_replayed`], which yields
    /// its events in order, then its [`Decoded::Commit`].
    StreamCommitted,
    /// A non-transactional logical message outside any transaction: a unit of its own, with no
    /// position to confirm. Its position is the message's LSN (as `lsn` and `commit_lsn`),
    /// without xid, and with the time it was decoded as `commit_time_us`.
    Message(ChangeEvent),
}

/// Where the events of a transaction come from: its commit's position, xid and time.
#[derive(Clone, Copy, Debug)]
struct TxnContext {
    commit_lsn: Lsn,
    xid: u32,
    commit_time_us: i64,
}

impl TxnContext {
    fn position(&self, lsn: Lsn) -> SourcePosition {
        SourcePosition {
            lsn,
            commit_lsn: self.commit_lsn,
            xid: Some(self.xid),
            commit_time_us: self.commit_time_us,
            snapshot: sluice_api::SnapshotFlag::False,
        }
    }
}

/// The open ordinary transaction.
#[derive(Debug)]
struct OpenTxn {
    context: TxnContext,
    event_count: u64,
}

/// A committed streamed transaction being replayed.
#[derive(Debug)]
struct Replay {
    cursor: ReplayCursor,
    context: TxnContext,
    end_lsn: Lsn,
    event_count: u64,
}

/// Turns pgoutput payloads into change events. See the module docs.
#[derive(Debug)]
pub struct Decoder {
    parser: Parser,
    schemas: Schemas,
    txn: Option<OpenTxn>,
    streams: StreamBuffers,
    replay: Option<Replay>,
}

fn decode_error(lsn: Lsn, message: impl Into<String>) -> SourceError {
    SourceError::Decode {
        lsn,
        message: message.into(),
    }
}

impl Decoder {
    /// A decoder for pgoutput protocol v2 (which also reads v1 streams, a subset), knowing the
    /// types of `catalog`, buffering streamed transactions within `budget`.
    pub fn new(catalog: TypeCatalog, budget: StreamBudget) -> Self {
        Decoder {
            parser: Parser::new(2),
            schemas: Schemas::new(catalog),
            txn: None,
            streams: StreamBuffers::new(budget.memory_bytes, budget.spill_dir),
            replay: None,
        }
    }

    /// Decode as protocol `version` (1 refuses stream messages).
    pub fn with_protocol_version(mut self, version: u32) -> Self {
        self.parser = Parser::new(version);
        self
    }

    /// The type catalog, to reload it from the server.
    pub fn catalog_mut(&mut self) -> &mut TypeCatalog {
        &mut self.schemas.catalog
    }

    /// Replace the type catalog (reloaded from the server after
    /// [`Decoder::take_unknown_type_oids`] reported new types); cached table schemas take the
    /// catalog's type names.
    pub fn replace_catalog(&mut self, catalog: TypeCatalog) {
        self.schemas.replace_catalog(catalog);
    }

    /// The type catalog.
    pub fn catalog(&self) -> &TypeCatalog {
        &self.schemas.catalog
    }

    /// The last schema the server described for a relation.
    pub fn relation(&self, relation_id: u32) -> Option<&Arc<TableSchema>> {
        self.schemas.table(relation_id)
    }

    /// Type OIDs seen in Relation or Type messages that the catalog did not know (drained);
    /// the source reloads the catalog from the server when this is non-empty.
    pub fn take_unknown_type_oids(&mut self) -> Vec<u32> {
        self.schemas.take_unknown_type_oids()
    }

    /// Relations with REPLICA IDENTITY FULL described since the last call (drained): the
    /// source reads their primary keys from the catalog and hands them to
    /// [`Decoder::set_primary_key`] before the next message is decoded.
    pub fn take_key_lookups(&mut self) -> Vec<u32> {
        self.schemas.take_key_lookups()
    }

    /// The primary key (column names) of a FULL-identity relation: its events are keyed by
    /// it rather than by every column, which is how pgoutput flags a FULL identity.
    pub fn set_primary_key(&mut self, relation_id: u32, key: Vec<String>) {
        self.schemas.set_primary_key(relation_id, key);
    }

    /// True while inside an ordinary transaction (between Begin and Commit).
    pub fn in_transaction(&self) -> bool {
        self.txn.is_some()
    }

    /// Bytes of streamed-transaction messages held in memory: buffered chunks plus the
    /// transaction being replayed.
    pub fn buffered_bytes(&self) -> usize {
        self.streams.memory_bytes() + self.replay.as_ref().map_or(0, |r| r.cursor.memory_bytes())
    }

    /// How many streamed transactions are spilled to disk.
    pub fn spilled_transaction_count(&self) -> usize {
        self.streams.spilled_count()
    }

    /// Forget everything tied to the replication session (open transaction, stream chunks,
    /// pending replay), keeping the relation cache and catalog: after a reconnect the server
    /// resends from the last confirmed position.
    pub fn reset_session(&mut self) {
        self.parser.reset();
        self.txn = None;
        self.streams.clear();
        self.replay = None;
    }

    /// Feed one `XLogData` payload; `wal_start` is the message's WAL position. After
    /// [`Decoded::StreamCommitted`], drain [`Decoder::next_replayed`] before feeding more.
    pub fn decode(&mut self, wal_start: Lsn, data: &[u8]) -> Result<Decoded, SourceError> {
        if self.replay.is_some() {
            return Err(decode_error(
                wal_start,
                "a committed streamed transaction must be drained before decoding on",
            ));
        }
        let stream_xid = self.parser.stream_xid();
        let message = self
            .parser
            .parse(data)
            .map_err(|e| decode_error(wal_start, e.to_string()))?;
        match message {
            Message::Begin(begin) => {
                if self.txn.is_some() {
                    return Err(decode_error(wal_start, "begin inside an open transaction"));
                }
                self.txn = Some(OpenTxn {
                    context: TxnContext {
                        commit_lsn: Lsn(begin.final_lsn),
                        xid: begin.xid,
                        commit_time_us: pgoutput::pg_time_to_unix_us(begin.commit_time),
                    },
                    event_count: 0,
                });
                Ok(Decoded::Nothing)
            }
            Message::Commit(commit) => {
                let txn = self
                    .txn
                    .take()
                    .ok_or_else(|| decode_error(wal_start, "commit outside a transaction"))?;
                Ok(Decoded::Commit {
                    end_lsn: Lsn(commit.end_lsn),
                    commit_lsn: Lsn(commit.commit_lsn),
                    xid: Some(txn.context.xid),
                    commit_time_us: pgoutput::pg_time_to_unix_us(commit.commit_time),
                    event_count: txn.event_count,
                })
            }
            Message::Origin(_) | Message::StreamStop => Ok(Decoded::Nothing),
            Message::Relation(ref relation) => {
                self.schemas
                    .apply_relation(relation)
                    .map_err(|m| decode_error(wal_start, m))?;
                self.buffer_in_stream(stream_xid, relation.xid, wal_start, data)
            }
            Message::Type(ref type_message) => {
                self.schemas.apply_type(type_message);
                self.buffer_in_stream(stream_xid, type_message.xid, wal_start, data)
            }
            Message::Message(message) if !message.transactional => {
                Ok(Decoded::Message(non_transactional_message(message)))
            }
            Message::StreamStart(start) => {
                self.streams.start(start.xid, start.first_segment);
                Ok(Decoded::Nothing)
            }
            Message::StreamCommit(commit) => {
                let cursor = self.streams.take(commit.xid)?;
                self.replay = Some(Replay {
                    cursor,
                    context: TxnContext {
                        commit_lsn: Lsn(commit.commit_lsn),
                        xid: commit.xid,
                        commit_time_us: pgoutput::pg_time_to_unix_us(commit.commit_time),
                    },
                    end_lsn: Lsn(commit.end_lsn),
                    event_count: 0,
                });
                Ok(Decoded::StreamCommitted)
            }
            Message::StreamAbort(abort) => {
                self.streams.abort(abort.xid, abort.subxid);
                Ok(Decoded::Nothing)
            }
            change => {
                if stream_xid.is_some() {
                    return self.buffer_in_stream(stream_xid, change_xid(&change), wal_start, data);
                }
                let txn = self
                    .txn
                    .as_mut()
                    .ok_or_else(|| decode_error(wal_start, "change outside a transaction"))?;
                let changes =
                    change_events(&self.schemas, &change, txn.context.position(wal_start))
                        .map_err(|m| decode_error(wal_start, m))?;
                Ok(emit(changes, &mut txn.event_count))
            }
        }
    }

    /// Inside a stream block, keep the message for replay at the stream's commit.
    fn buffer_in_stream(
        &mut self,
        stream_xid: Option<u32>,
        message_xid: Option<u32>,
        wal_start: Lsn,
        data: &[u8],
    ) -> Result<Decoded, SourceError> {
        if let Some(top_xid) = stream_xid {
            let header = RecordHeader {
                wal_start,
                xid: message_xid.unwrap_or(top_xid),
            };
            self.streams.push(top_xid, header, data)?;
        }
        Ok(Decoded::Nothing)
    }

    /// After [`Decoded::StreamCommitted`]: the next replayed item — the transaction's events
    /// in order, then exactly one [`Decoded::Commit`] — and `None` when done. Spilled records
    /// are read back from disk one at a time.
    pub fn next_replayed(&mut self) -> Result<Option<Decoded>, SourceError> {
        let Decoder {
            schemas, replay, ..
        } = self;
        let Some(state) = replay.as_mut() else {
            return Ok(None);
        };
        loop {
            let Some((wal_start, payload)) = state.cursor.next_record()? else {
                let done = Decoded::Commit {
                    end_lsn: state.end_lsn,
                    commit_lsn: state.context.commit_lsn,
                    xid: Some(state.context.xid),
                    commit_time_us: state.context.commit_time_us,
                    event_count: state.event_count,
                };
                *replay = None;
                return Ok(Some(done));
            };
            let message =
                parse_message(payload, true).map_err(|e| decode_error(wal_start, e.to_string()))?;
            match &message {
                Message::Relation(relation) => {
                    schemas
                        .apply_relation(relation)
                        .map_err(|m| decode_error(wal_start, m))?;
                }
                Message::Type(type_message) => schemas.apply_type(type_message),
                change => {
                    let position = state.context.position(wal_start);
                    let changes = change_events(schemas, change, position)
                        .map_err(|m| decode_error(wal_start, m))?;
                    match emit(changes, &mut state.event_count) {
                        Decoded::Nothing => {}
                        decoded => return Ok(Some(decoded)),
                    }
                }
            }
        }
    }
}

/// The xid a change message carries inside a stream block.
fn change_xid(message: &Message<'_>) -> Option<u32> {
    match message {
        Message::Insert(m) => m.xid,
        Message::Update(m) => m.xid,
        Message::Delete(m) => m.xid,
        Message::Truncate(m) => m.xid,
        Message::Message(m) => m.xid,
        Message::Relation(m) => m.xid,
        Message::Type(m) => m.xid,
        _ => None,
    }
}

/// Count and wrap a change message's events.
fn emit(changes: Option<Changes>, event_count: &mut u64) -> Decoded {
    match changes {
        Some(Changes::One(event)) => {
            *event_count += 1;
            Decoded::Event(event)
        }
        Some(Changes::Many(events)) if !events.is_empty() => {
            *event_count += events.len() as u64;
            Decoded::Events(events)
        }
        Some(Changes::Many(_)) | None => Decoded::Nothing,
    }
}

/// A non-transactional message stands alone: no transaction, so no xid or commit time (the
/// decoding time stands in for it).
fn non_transactional_message(message: DecodingMessage<'_>) -> ChangeEvent {
    let now_us = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX));
    ChangeEvent {
        op: Op::Message,
        table: None,
        before: None,
        before_is_key_only: false,
        after: None,
        message: Some(LogicalMessage {
            transactional: false,
            prefix: message.prefix.into_owned(),
            content: message.content.to_vec(),
        }),
        position: SourcePosition {
            lsn: Lsn(message.lsn),
            commit_lsn: Lsn(message.lsn),
            xid: None,
            commit_time_us: now_us,
            snapshot: sluice_api::SnapshotFlag::False,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::test_wire::{self as wire, Col};
    use super::*;
    use proptest::prelude::*;
    use sluice_api::{ReplicaIdentity, Value};

    const ITEMS: u32 = 16384;
    const ORDERS: u32 = 16390;
    /// 2024-01-01 00:00:00 UTC in pgoutput time (µs since 2000-01-01).
    const PG_TIME: i64 = 757_382_400_000_000;
    const UNIX_TIME: i64 = PG_TIME + 946_684_800_000_000;

    fn decoder() -> Decoder {
        Decoder::new(TypeCatalog::builtin(), StreamBudget::default())
    }

    fn feed(decoder: &mut Decoder, lsn: u64, data: Vec<u8>) -> Decoded {
        decoder
            .decode(Lsn(lsn), &data)
            .expect("valid message decodes")
    }

    fn items(xid: Option<u32>, identity: u8) -> Vec<u8> {
        wire::relation(
            xid,
            ITEMS,
            "public",
            "items",
            identity,
            &[
                (true, "id", 23, -1),
                (false, "name", 1043, 68),
                (false, "body", 25, -1),
            ],
        )
    }

    fn orders(xid: Option<u32>) -> Vec<u8> {
        wire::relation(xid, ORDERS, "shop", "orders", b'f', &[(true, "id", 20, -1)])
    }

    fn event(decoded: Decoded) -> ChangeEvent {
        match decoded {
            Decoded::Event(event) => event,
            other => panic!("expected an event, got {other:?}"),
        }
    }

    /// Begin (xid 700, final lsn 0x500) and the items relation.
    fn open_transaction(decoder: &mut Decoder) {
        assert_eq!(
            feed(decoder, 0x100, wire::begin(0x500, PG_TIME, 700)),
            Decoded::Nothing
        );
        assert_eq!(feed(decoder, 0x100, items(None, b'd')), Decoded::Nothing);
    }

    fn drain(decoder: &mut Decoder) -> Vec<Decoded> {
        let mut out = Vec::new();
        while let Some(item) = decoder.next_replayed().expect("replay decodes") {
            out.push(item);
        }
        out
    }

    fn ids(items: &[Decoded]) -> Vec<i32> {
        items
            .iter()
            .filter_map(|d| match d {
                Decoded::Event(e) => match e.after.as_ref().map(|row| &row[0]) {
                    Some(Value::Int32(id)) => Some(*id),
                    _ => None,
                },
                _ => None,
            })
            .collect()
    }

    #[test]
    fn insert_becomes_a_create_event_positioned_in_its_transaction() {
        let mut d = decoder();
        open_transaction(&mut d);
        assert!(d.in_transaction());
        let data = wire::insert(None, ITEMS, &[Col::Text("1"), Col::Text("pen"), Col::Null]);
        let e = event(feed(&mut d, 0x120, data));
        assert_eq!(e.op, Op::Create);
        assert_eq!(
            e.after,
            Some(vec![
                Value::Int32(1),
                Value::Text("pen".into()),
                Value::Null
            ])
        );
        assert_eq!(e.before, None);
        assert_eq!(
            e.table.as_ref().map(|t| t.qualified_name()),
            Some("public.items".into())
        );
        assert_eq!(
            e.position,
            SourcePosition {
                lsn: Lsn(0x120),
                commit_lsn: Lsn(0x500),
                xid: Some(700),
                commit_time_us: UNIX_TIME,
                snapshot: sluice_api::SnapshotFlag::False
            }
        );
        let commit = feed(&mut d, 0x500, wire::commit(0x500, 0x530, PG_TIME));
        assert_eq!(
            commit,
            Decoded::Commit {
                end_lsn: Lsn(0x530),
                commit_lsn: Lsn(0x500),
                xid: Some(700),
                commit_time_us: UNIX_TIME,
                event_count: 1
            }
        );
        assert!(!d.in_transaction());
    }

    #[test]
    fn relation_messages_describe_columns_types_keys_and_identity() {
        let mut d = decoder();
        feed(&mut d, 1, items(None, b'i'));
        let table = d.relation(ITEMS).expect("cached").clone();
        assert_eq!(
            (table.schema.as_str(), table.name.as_str()),
            ("public", "items")
        );
        assert_eq!(table.replica_identity, ReplicaIdentity::Index);
        let described: Vec<_> = table
            .columns
            .iter()
            .map(|c| {
                (
                    c.name.as_str(),
                    c.type_oid,
                    c.type_name.as_str(),
                    c.type_modifier,
                    c.is_key,
                )
            })
            .collect();
        assert_eq!(
            described,
            vec![
                ("id", 23, "int4", -1, true),
                ("name", 1043, "varchar", 68, false),
                ("body", 25, "text", -1, false)
            ]
        );
        assert!(d.take_unknown_type_oids().is_empty());
    }

    #[test]
    fn a_new_relation_message_replaces_the_cached_schema() {
        let mut d = decoder();
        feed(&mut d, 1, items(None, b'd'));
        let altered = wire::relation(
            None,
            ITEMS,
            "public",
            "items",
            b'f',
            &[(true, "id", 20, -1)],
        );
        feed(&mut d, 2, altered);
        let table = d.relation(ITEMS).expect("cached");
        assert_eq!(table.columns.len(), 1);
        assert_eq!(table.columns[0].type_name, "int8");
        assert_eq!(table.replica_identity, ReplicaIdentity::Full);
    }

    #[test]
    fn a_full_identity_table_is_keyed_by_its_primary_key_once_the_catalog_names_it() {
        let mut d = decoder();
        let full = || {
            wire::relation(
                None,
                ITEMS,
                "public",
                "items",
                b'f',
                &[(true, "id", 23, -1), (true, "name", 1043, 68)],
            )
        };
        let keys = |d: &Decoder| -> Vec<bool> {
            let table = d.relation(ITEMS).expect("cached");
            table.columns.iter().map(|c| c.is_key).collect()
        };
        feed(&mut d, 1, full());
        assert_eq!(keys(&d), [true, true], "as pgoutput flags FULL");
        assert_eq!(d.take_key_lookups(), vec![ITEMS]);
        assert!(d.take_key_lookups().is_empty(), "drained");
        d.set_primary_key(ITEMS, vec!["id".into()]);
        assert_eq!(keys(&d), [true, false]);
        // A later description (a schema change, or a streamed transaction replayed) keeps the
        // key the catalog named, and asks for it again.
        feed(&mut d, 2, full());
        assert_eq!(keys(&d), [true, false]);
        assert_eq!(d.take_key_lookups(), vec![ITEMS]);
        // Without a primary key every column stays the key.
        d.set_primary_key(ITEMS, Vec::new());
        feed(&mut d, 3, full());
        assert_eq!(keys(&d), [true, true]);
    }

    #[test]
    fn update_with_an_old_key_fills_only_the_key_columns() {
        let mut d = decoder();
        open_transaction(&mut d);
        let old = [Col::Text("1"), Col::Text("ignored"), Col::Null];
        let data = wire::update(
            None,
            ITEMS,
            Some((b'K', &old)),
            &[Col::Text("2"), Col::Text("pen"), Col::Toast],
        );
        let e = event(feed(&mut d, 0x130, data));
        assert_eq!(e.op, Op::Update);
        assert_eq!(
            e.before,
            Some(vec![Value::Int32(1), Value::Null, Value::Null])
        );
        assert!(e.before_is_key_only);
        assert_eq!(
            e.after,
            Some(vec![
                Value::Int32(2),
                Value::Text("pen".into()),
                Value::UnchangedToast
            ])
        );
    }

    #[test]
    fn update_with_the_old_row_carries_it_whole() {
        let mut d = decoder();
        open_transaction(&mut d);
        let old = [Col::Text("1"), Col::Text("old"), Col::Text("b")];
        let new = [Col::Text("1"), Col::Text("new"), Col::Text("b")];
        let e = event(feed(
            &mut d,
            0x130,
            wire::update(None, ITEMS, Some((b'O', &old)), &new),
        ));
        assert_eq!(
            e.before,
            Some(vec![
                Value::Int32(1),
                Value::Text("old".into()),
                Value::Text("b".into())
            ])
        );
        assert!(!e.before_is_key_only);
    }

    #[test]
    fn update_without_old_values_has_no_before() {
        let mut d = decoder();
        open_transaction(&mut d);
        let new = [Col::Text("1"), Col::Text("new"), Col::Toast];
        let e = event(feed(&mut d, 0x130, wire::update(None, ITEMS, None, &new)));
        assert_eq!(e.before, None);
        assert!(!e.before_is_key_only);
    }

    #[test]
    fn delete_carries_the_key_or_the_whole_old_row() {
        let mut d = decoder();
        open_transaction(&mut d);
        let key = wire::delete(None, ITEMS, b'K', &[Col::Text("3"), Col::Null, Col::Null]);
        let e = event(feed(&mut d, 0x140, key));
        assert_eq!(e.op, Op::Delete);
        assert_eq!(
            e.before,
            Some(vec![Value::Int32(3), Value::Null, Value::Null])
        );
        assert!(e.before_is_key_only);
        assert_eq!(e.after, None);
        let full = wire::delete(
            None,
            ITEMS,
            b'O',
            &[Col::Text("4"), Col::Text("x"), Col::Text("y")],
        );
        let e = event(feed(&mut d, 0x150, full));
        assert!(!e.before_is_key_only);
        assert_eq!(
            e.before.map(|r| r[1].clone()),
            Some(Value::Text("x".into()))
        );
    }

    #[test]
    fn unchanged_toast_columns_are_marked_not_null() {
        let mut d = decoder();
        open_transaction(&mut d);
        let e = event(feed(
            &mut d,
            0x130,
            wire::update(None, ITEMS, None, &[Col::Text("1"), Col::Null, Col::Toast]),
        ));
        let after = e.after.expect("after");
        assert_eq!(after[1], Value::Null);
        assert_eq!(after[2], Value::UnchangedToast);
        assert!(!after[2].is_null());
    }

    #[test]
    fn binary_columns_decode_from_their_binary_form() {
        let mut d = decoder();
        open_transaction(&mut d);
        let data = wire::insert(
            None,
            ITEMS,
            &[
                Col::Binary(&7i32.to_be_bytes()),
                Col::Text("a"),
                Col::Text("b"),
            ],
        );
        let e = event(feed(&mut d, 0x130, data));
        assert_eq!(e.after.map(|r| r[0].clone()), Some(Value::Int32(7)));
    }

    #[test]
    fn text_that_is_not_utf8_is_kept_lossily_as_unknown() {
        let mut d = decoder();
        open_transaction(&mut d);
        let data = wire::insert(
            None,
            ITEMS,
            &[Col::Text("1"), Col::RawText(b"caf\xe9"), Col::Text("b")],
        );
        let e = event(feed(&mut d, 0x130, data));
        assert_eq!(
            e.after.map(|r| r[1].clone()),
            Some(Value::Unknown {
                type_name: "varchar".into(),
                text: "caf\u{FFFD}".into()
            })
        );
    }

    #[test]
    fn truncate_of_several_tables_yields_one_event_per_table() {
        let mut d = decoder();
        open_transaction(&mut d);
        feed(&mut d, 0x101, orders(None));
        let Decoded::Events(events) =
            feed(&mut d, 0x140, wire::truncate(None, 1, &[ITEMS, ORDERS]))
        else {
            panic!("expected events")
        };
        let tables: Vec<_> = events
            .iter()
            .map(|e| (e.op, e.table.as_ref().map(|t| t.qualified_name())))
            .collect();
        assert_eq!(
            tables,
            vec![
                (Op::Truncate, Some("public.items".to_owned())),
                (Op::Truncate, Some("shop.orders".to_owned()))
            ]
        );
        assert!(events
            .iter()
            .all(|e| e.position.lsn == Lsn(0x140) && e.before.is_none()));
        let Decoded::Commit { event_count, .. } =
            feed(&mut d, 0x500, wire::commit(0x500, 0x510, 0))
        else {
            panic!("expected commit")
        };
        assert_eq!(event_count, 2);
    }

    #[test]
    fn transactional_messages_are_events_of_their_transaction() {
        let mut d = decoder();
        open_transaction(&mut d);
        let e = event(feed(
            &mut d,
            0x160,
            wire::message(None, true, 0x160, "audit", b"hi"),
        ));
        assert_eq!(e.op, Op::Message);
        assert_eq!(e.table, None);
        assert_eq!(
            e.message,
            Some(LogicalMessage {
                transactional: true,
                prefix: "audit".into(),
                content: b"hi".into()
            })
        );
        assert_eq!(e.position.xid, Some(700));
    }

    #[test]
    fn a_non_transactional_message_outside_a_transaction_stands_alone() {
        let mut d = decoder();
        let Decoded::Message(e) = feed(&mut d, 0x900, wire::message(None, false, 0x901, "hb", b""))
        else {
            panic!("expected a standalone message")
        };
        assert_eq!(e.op, Op::Message);
        assert_eq!(e.position.lsn, Lsn(0x901));
        assert_eq!(e.position.xid, None);
        assert!(e.position.commit_time_us > 0);
        assert_eq!(
            e.message.map(|m| (m.transactional, m.prefix)),
            Some((false, "hb".into()))
        );
        assert!(!d.in_transaction());
    }

    #[test]
    fn type_messages_name_user_types_and_unknown_oids_are_reported_once() {
        let mut d = decoder();
        feed(&mut d, 1, wire::type_message(None, 90001, "app", "mood"));
        let relation = wire::relation(
            None,
            ITEMS,
            "app",
            "people",
            b'd',
            &[
                (true, "id", 23, -1),
                (false, "mood", 90001, -1),
                (false, "x", 90002, -1),
            ],
        );
        feed(&mut d, 2, relation);
        let table = d.relation(ITEMS).expect("cached");
        assert_eq!(table.columns[1].type_name, "app.mood");
        assert_eq!(table.columns[2].type_name, "oid:90002");
        assert_eq!(d.catalog().type_name(90001), "app.mood");
        assert_eq!(d.take_unknown_type_oids(), vec![90001, 90002]);
        assert!(d.take_unknown_type_oids().is_empty(), "drained");
        // An unknown user type keeps its text.
        feed(&mut d, 3, wire::begin(9, 0, 1));
        let data = wire::insert(
            None,
            ITEMS,
            &[Col::Text("1"), Col::Text("happy"), Col::Null],
        );
        let e = event(feed(&mut d, 4, data));
        assert_eq!(
            e.after.map(|r| r[1].clone()),
            Some(Value::Unknown {
                type_name: "app.mood".into(),
                text: "happy".into()
            })
        );
    }

    #[test]
    fn a_replaced_catalog_renames_columns_first_seen_with_unknown_types() {
        let mut d = decoder();
        let relation = wire::relation(None, ITEMS, "app", "t", b'd', &[(true, "c", 90002, -1)]);
        feed(&mut d, 1, relation);
        assert_eq!(
            d.relation(ITEMS).expect("cached").columns[0].type_name,
            "oid:90002"
        );
        assert_eq!(d.take_unknown_type_oids(), vec![90002]);
        let mut reloaded = TypeCatalog::builtin();
        reloaded.insert(crate::types::TypeInfo {
            oid: 90002,
            schema: "app".into(),
            name: "app.color".into(),
            kind: crate::types::TypeKind::Enum,
        });
        d.replace_catalog(reloaded);
        assert_eq!(
            d.relation(ITEMS).expect("cached").columns[0].type_name,
            "app.color"
        );
        feed(&mut d, 2, wire::begin(9, 0, 1));
        let e = event(feed(
            &mut d,
            3,
            wire::insert(None, ITEMS, &[Col::Text("red")]),
        ));
        assert_eq!(e.after, Some(vec![Value::Enum("red".into())]));
    }

    #[test]
    fn origin_messages_emit_nothing() {
        let mut d = decoder();
        feed(&mut d, 1, wire::begin(9, 0, 1));
        assert_eq!(
            feed(&mut d, 2, wire::origin(5, "upstream")),
            Decoded::Nothing
        );
    }

    #[test]
    fn protocol_v1_decodes_transactions_and_refuses_stream_messages() {
        let mut d = decoder().with_protocol_version(1);
        open_transaction(&mut d);
        let data = wire::insert(None, ITEMS, &[Col::Text("1"), Col::Null, Col::Null]);
        assert_eq!(event(feed(&mut d, 0x120, data)).op, Op::Create);
        assert!(d.decode(Lsn(1), &wire::stream_start(5, true)).is_err());
    }

    #[test]
    fn malformed_or_misplaced_messages_are_decode_errors_with_their_lsn() {
        let mut d = decoder();
        let insert = wire::insert(None, ITEMS, &[Col::Text("1"), Col::Null, Col::Null]);
        let err = d.decode(Lsn(0x42), &insert).unwrap_err();
        assert!(
            matches!(err, SourceError::Decode { lsn: Lsn(0x42), .. }),
            "{err}"
        );
        assert!(
            d.decode(Lsn(1), &wire::commit(1, 2, 3)).is_err(),
            "commit outside a transaction"
        );
        assert!(d.decode(Lsn(1), b"Z").is_err(), "unknown tag");
        feed(&mut d, 1, wire::begin(9, 0, 1));
        assert!(
            d.decode(Lsn(1), &wire::begin(9, 0, 1)).is_err(),
            "nested begin"
        );
        assert!(
            d.decode(Lsn(2), &insert).is_err(),
            "relation never described"
        );
        feed(&mut d, 3, items(None, b'd'));
        let short = wire::insert(None, ITEMS, &[Col::Text("1")]);
        let err = d.decode(Lsn(4), &short).unwrap_err();
        assert!(err.to_string().contains("tuple of 1 columns"), "{err}");
        assert!(
            d.decode(Lsn(5), &insert[..insert.len() - 1]).is_err(),
            "truncated"
        );
        let bad_identity = wire::relation(None, 1, "s", "t", b'x', &[]);
        assert!(d.decode(Lsn(6), &bad_identity).is_err());
    }

    #[test]
    fn streamed_chunks_are_held_until_commit_then_replayed_with_the_commit_position() {
        let mut d = decoder();
        feed(&mut d, 0x10, wire::stream_start(800, true));
        feed(&mut d, 0x11, items(Some(800), b'd'));
        let row = |id: &'static str| [Col::Text(id), Col::Text("n"), Col::Null];
        assert_eq!(
            feed(&mut d, 0x12, wire::insert(Some(800), ITEMS, &row("1"))),
            Decoded::Nothing
        );
        feed(&mut d, 0x13, wire::stream_stop());
        assert!(d.buffered_bytes() > 0);
        assert!(
            d.relation(ITEMS).is_some(),
            "stream relations update the cache at once"
        );

        // An ordinary transaction between the chunks passes straight through.
        feed(&mut d, 0x20, wire::begin(0x28, PG_TIME, 801));
        let e = event(feed(&mut d, 0x21, wire::insert(None, ITEMS, &row("100"))));
        assert_eq!(e.position.xid, Some(801));
        feed(&mut d, 0x28, wire::commit(0x28, 0x29, PG_TIME));

        feed(&mut d, 0x30, wire::stream_start(800, false));
        feed(
            &mut d,
            0x31,
            wire::update(Some(800), ITEMS, None, &row("2")),
        );
        feed(&mut d, 0x32, wire::truncate(Some(800), 0, &[ITEMS]));
        feed(
            &mut d,
            0x33,
            wire::message(Some(800), true, 0x33, "p", b"c"),
        );
        feed(&mut d, 0x34, wire::stream_stop());
        assert_eq!(
            feed(&mut d, 0x40, wire::stream_commit(800, 0x40, 0x48, PG_TIME)),
            Decoded::StreamCommitted
        );
        assert!(
            d.decode(Lsn(0x50), &wire::begin(1, 0, 1)).is_err(),
            "replay must be drained first"
        );

        let replayed = drain(&mut d);
        assert_eq!(replayed.len(), 5);
        let ops: Vec<_> = replayed
            .iter()
            .filter_map(|r| match r {
                Decoded::Event(e) => Some((e.op, e.position.lsn)),
                Decoded::Events(es) => Some((es[0].op, es[0].position.lsn)),
                _ => None,
            })
            .collect();
        assert_eq!(
            ops,
            vec![
                (Op::Create, Lsn(0x12)),
                (Op::Update, Lsn(0x31)),
                (Op::Truncate, Lsn(0x32)),
                (Op::Message, Lsn(0x33))
            ]
        );
        let Decoded::Event(first) = &replayed[0] else {
            panic!()
        };
        assert_eq!(
            first.position,
            SourcePosition {
                lsn: Lsn(0x12),
                commit_lsn: Lsn(0x40),
                xid: Some(800),
                commit_time_us: UNIX_TIME,
                snapshot: sluice_api::SnapshotFlag::False
            }
        );
        assert_eq!(
            replayed[4],
            Decoded::Commit {
                end_lsn: Lsn(0x48),
                commit_lsn: Lsn(0x40),
                xid: Some(800),
                commit_time_us: UNIX_TIME,
                event_count: 4
            }
        );
        assert_eq!(d.next_replayed().unwrap(), None);
        assert_eq!(d.buffered_bytes(), 0);
        feed(&mut d, 0x50, wire::begin(0x58, 0, 802));
    }

    #[test]
    fn interleaved_streamed_transactions_replay_only_their_own_changes() {
        let mut d = decoder();
        feed(&mut d, 1, items(None, b'd'));
        for (chunk, xid) in [(0u64, 10u32), (1, 20), (2, 10), (3, 20)] {
            feed(&mut d, chunk * 10, wire::stream_start(xid, chunk < 2));
            for i in 0..3u64 {
                let id = (xid as u64 * 100 + chunk * 10 + i).to_string();
                let cols = [Col::Text(&id), Col::Null, Col::Null];
                feed(
                    &mut d,
                    chunk * 10 + i + 1,
                    wire::insert(Some(xid), ITEMS, &cols),
                );
            }
            feed(&mut d, chunk * 10 + 9, wire::stream_stop());
        }
        feed(&mut d, 100, wire::stream_commit(20, 100, 101, 0));
        assert_eq!(
            ids(&drain(&mut d)),
            vec![2010, 2011, 2012, 2030, 2031, 2032]
        );
        feed(&mut d, 110, wire::stream_commit(10, 110, 111, 0));
        assert_eq!(
            ids(&drain(&mut d)),
            vec![1000, 1001, 1002, 1020, 1021, 1022]
        );
        assert_eq!(d.buffered_bytes(), 0);
    }

    /// Stream `rows` inserts of xid 900 in chunks of `chunk` rows, checking the budget after
    /// every message.
    fn stream_rows(d: &mut Decoder, rows: u32, chunk: u32, budget: usize) {
        let mut lsn = 1u64;
        for start in (0..rows).step_by(chunk as usize) {
            feed(d, lsn, wire::stream_start(900, start == 0));
            if start == 0 {
                feed(d, lsn, items(Some(900), b'd'));
            }
            for id in start..(start + chunk).min(rows) {
                lsn += 1;
                let id = id.to_string();
                let cols = [Col::Text(&id), Col::Text("some name"), Col::Null];
                d.decode(Lsn(lsn), &wire::insert(Some(900), ITEMS, &cols))
                    .unwrap();
                assert!(
                    d.buffered_bytes() <= budget,
                    "{} > {budget}",
                    d.buffered_bytes()
                );
            }
            feed(d, lsn, wire::stream_stop());
        }
    }

    /// Stream `rows` rows through a 64 KiB budget (about 40 bytes a row: 100k rows are some
    /// 60 times the budget) and replay them, checking the budget at every step.
    fn spill_and_replay(rows: u32) {
        let dir = tempfile::tempdir().unwrap();
        let budget = 64 * 1024;
        let mut d = Decoder::new(
            TypeCatalog::builtin(),
            StreamBudget {
                memory_bytes: budget,
                spill_dir: Some(dir.path().to_path_buf()),
            },
        );
        stream_rows(&mut d, rows, 5_000, budget);
        assert_eq!(d.spilled_transaction_count(), 1);
        assert_eq!(
            d.buffered_bytes(),
            0,
            "a spilled transaction holds no record in memory"
        );
        feed(
            &mut d,
            1 << 40,
            wire::stream_commit(900, 1 << 40, (1 << 40) + 8, 0),
        );
        let mut expected = 0i32;
        let mut last_lsn = Lsn::ZERO;
        loop {
            let item = d
                .next_replayed()
                .unwrap()
                .expect("a commit ends the replay");
            assert!(d.buffered_bytes() <= budget);
            match item {
                Decoded::Event(e) => {
                    assert_eq!(
                        e.after.as_ref().map(|r| r[0].clone()),
                        Some(Value::Int32(expected))
                    );
                    assert!(e.position.lsn > last_lsn);
                    last_lsn = e.position.lsn;
                    expected += 1;
                }
                Decoded::Commit {
                    event_count,
                    end_lsn,
                    ..
                } => {
                    assert_eq!(event_count, u64::from(rows));
                    assert_eq!(end_lsn, Lsn((1 << 40) + 8));
                    break;
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(expected as u32, rows);
        assert_eq!(d.next_replayed().unwrap(), None);
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            0,
            "spill file removed"
        );
    }

    #[test]
    fn a_streamed_transaction_beyond_the_budget_spills_and_replays_every_event_in_order() {
        spill_and_replay(100_000);
    }

    #[test]
    #[ignore = "a million rows take about ten seconds in a debug build; run with --ignored"]
    fn a_million_row_streamed_transaction_stays_within_the_budget() {
        spill_and_replay(1_000_000);
    }

    #[test]
    fn records_held_in_memory_before_the_spill_replay_before_those_on_disk() {
        let budget = 2_000;
        let mut d = Decoder::new(
            TypeCatalog::builtin(),
            StreamBudget {
                memory_bytes: budget,
                spill_dir: None,
            },
        );
        // A small transaction that stays in memory, and a large one that spills half-way.
        feed(&mut d, 1, wire::stream_start(1, true));
        feed(&mut d, 1, items(Some(1), b'd'));
        feed(
            &mut d,
            2,
            wire::insert(Some(1), ITEMS, &[Col::Text("-1"), Col::Null, Col::Null]),
        );
        feed(&mut d, 3, wire::stream_stop());
        stream_rows(&mut d, 200, 20, budget);
        assert_eq!(d.spilled_transaction_count(), 1);
        assert!(
            d.buffered_bytes() > 0,
            "the small transaction is still in memory"
        );
        feed(&mut d, 10_000, wire::stream_commit(900, 10_000, 10_001, 0));
        assert_eq!(ids(&drain(&mut d)), (0..200).collect::<Vec<_>>());
        feed(&mut d, 10_002, wire::stream_commit(1, 10_002, 10_003, 0));
        assert_eq!(ids(&drain(&mut d)), vec![-1]);
    }

    #[test]
    fn aborting_a_streamed_transaction_drops_its_buffer() {
        let mut d = decoder();
        stream_rows(&mut d, 10, 5, usize::MAX);
        assert!(d.buffered_bytes() > 0);
        feed(&mut d, 100, wire::stream_abort(900, 900));
        assert_eq!(d.buffered_bytes(), 0);
        // A commit of an xid with nothing buffered replays just the commit.
        feed(&mut d, 101, wire::stream_commit(900, 101, 102, 0));
        let replayed = drain(&mut d);
        assert!(
            matches!(replayed[..], [Decoded::Commit { event_count: 0, .. }]),
            "{replayed:?}"
        );
    }

    fn subtransaction_abort(budget: usize) {
        let mut d = Decoder::new(
            TypeCatalog::builtin(),
            StreamBudget {
                memory_bytes: budget,
                spill_dir: None,
            },
        );
        feed(&mut d, 1, wire::stream_start(50, true));
        // The relation is first described inside the subtransaction that will abort.
        feed(&mut d, 2, items(Some(51), b'd'));
        let row = |id: &'static str| [Col::Text(id), Col::Null, Col::Null];
        feed(&mut d, 3, wire::insert(Some(50), ITEMS, &row("1")));
        feed(&mut d, 4, wire::insert(Some(51), ITEMS, &row("2")));
        feed(&mut d, 5, wire::insert(Some(52), ITEMS, &row("3")));
        feed(&mut d, 6, wire::stream_stop());
        let before = d.buffered_bytes();
        feed(&mut d, 7, wire::stream_abort(50, 51));
        assert!(d.buffered_bytes() <= before);
        feed(&mut d, 8, wire::stream_start(50, false));
        feed(&mut d, 9, wire::insert(Some(50), ITEMS, &row("4")));
        feed(&mut d, 10, wire::stream_stop());
        feed(&mut d, 11, wire::stream_commit(50, 11, 12, 0));
        let replayed = drain(&mut d);
        assert_eq!(ids(&replayed), vec![1, 3, 4]);
        assert!(matches!(
            replayed.last(),
            Some(Decoded::Commit { event_count: 3, .. })
        ));
    }

    #[test]
    fn aborting_a_subtransaction_drops_only_its_changes_in_memory() {
        subtransaction_abort(usize::MAX);
    }

    #[test]
    fn aborting_a_subtransaction_drops_only_its_changes_on_disk() {
        subtransaction_abort(0);
    }

    #[test]
    fn a_first_segment_discards_what_an_earlier_session_left() {
        let mut d = decoder();
        stream_rows(&mut d, 3, 3, usize::MAX);
        stream_rows(&mut d, 2, 2, usize::MAX);
        feed(&mut d, 100, wire::stream_commit(900, 100, 101, 0));
        assert_eq!(ids(&drain(&mut d)), vec![0, 1]);
    }

    #[test]
    fn reset_session_forgets_transactions_and_streams_but_keeps_relations() {
        let mut d = decoder();
        stream_rows(&mut d, 3, 3, usize::MAX);
        feed(&mut d, 50, wire::begin(60, 0, 5));
        d.reset_session();
        assert!(!d.in_transaction());
        assert_eq!(d.buffered_bytes(), 0);
        assert!(d.relation(ITEMS).is_some());
        feed(&mut d, 70, wire::begin(80, 0, 6));
    }

    proptest! {
        #[test]
        fn random_payloads_never_panic_the_decoder(
            payloads in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..64), 1..16),
            in_stream in any::<bool>(),
        ) {
            let mut d = Decoder::new(
                TypeCatalog::builtin(),
                StreamBudget { memory_bytes: 256, spill_dir: None },
            );
            d.decode(Lsn(1), &items(None, b'd')).unwrap();
            if in_stream {
                d.decode(Lsn(1), &wire::stream_start(7, true)).unwrap();
            } else {
                d.decode(Lsn(1), &wire::begin(9, 0, 7)).unwrap();
            }
            for payload in &payloads {
                let _ = d.decode(Lsn(2), payload);
                while let Ok(Some(_)) = d.next_replayed() {}
            }
        }

        #[test]
        fn random_tuples_after_valid_headers_never_panic(
            tag in proptest::sample::select(b"IUD".to_vec()),
            tail in proptest::collection::vec(any::<u8>(), 0..64),
        ) {
            let mut d = decoder();
            open_transaction(&mut d);
            let mut payload = vec![tag];
            payload.extend_from_slice(&ITEMS.to_be_bytes());
            payload.extend_from_slice(&tail);
            let _ = d.decode(Lsn(2), &payload);
        }
    }
}
