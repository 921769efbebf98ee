//! The pgoutput wire format (PostgreSQL's "Logical Replication Message Formats", protocol
//! versions 1 and 2): one `XLogData` payload in, one borrowed [`Message`] out. This is the first
//! step of change decoding; [`crate::decoder`] turns the messages into change events.
//!
//! Parsing borrows from the payload: names, prefixes, message contents and tuple values are
//! slices of the input, and a tuple is validated once and kept as the byte range holding its
//! columns, read again by [`Tuple::iter`] without allocating. Malformed input (a truncated
//! message, an unknown tag or column kind) is a [`ParseError`], never a panic.
//!
//! Protocol v2 streams large in-progress transactions: between Stream Start and Stream Stop the
//! Relation, Type, Insert, Update, Delete, Truncate and Message messages carry a leading xid (of
//! the subtransaction that made the change). [`Parser`] tracks whether it is inside such a block;
//! [`parse_message`] takes that as an argument, for messages buffered and parsed again later.

mod reader;
mod tuple;

use std::borrow::Cow;

use self::reader::Reader;
pub use self::tuple::{Tuple, TupleIter, TupleValue};

/// PostgreSQL timestamps count microseconds from 2000-01-01; this many microseconds separate
/// that epoch from the Unix epoch.
pub const PG_EPOCH_OFFSET_US: i64 = 946_684_800_000_000;

/// A pgoutput time (µs since 2000-01-01) as µs since the Unix epoch.
pub fn pg_time_to_unix_us(pg_time: i64) -> i64 {
    pg_time.saturating_add(PG_EPOCH_OFFSET_US)
}

/// A payload that is not a valid pgoutput message.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// The payload ended inside a field.
    #[error("message '{tag}' truncated while reading {field}")]
    Truncated {
        /// The message's tag.
        tag: char,
        /// The field being read.
        field: &'static str,
    },
    /// The payload is empty: no message tag.
    #[error("empty message")]
    Empty,
    /// A message tag this parser does not know (or that protocol v1 does not have).
    #[error("unknown message tag {0:?}")]
    UnknownTag(char),
    /// A byte with a fixed set of values had another one.
    #[error("message '{tag}': unexpected {field} byte {found:?}")]
    Unexpected {
        /// The message's tag.
        tag: char,
        /// The field being read.
        field: &'static str,
        /// The byte found, as a character.
        found: char,
    },
    /// A count or length field is negative.
    #[error("message '{tag}': negative {field} {value}")]
    Negative {
        /// The message's tag.
        tag: char,
        /// The field being read.
        field: &'static str,
        /// The value read.
        value: i64,
    },
    /// A stream control message out of place (Stream Start inside a stream, Stop outside).
    #[error("{0}")]
    StreamState(&'static str),
}

/// Begin 'B': the start of an ordinary (non-streamed) transaction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Begin {
    /// The LSN of the transaction's commit record.
    pub final_lsn: u64,
    /// Commit time, µs since 2000-01-01.
    pub commit_time: i64,
    /// The transaction id.
    pub xid: u32,
}

/// Commit 'C': the end of an ordinary transaction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Commit {
    /// Unused by the server (always 0).
    pub flags: u8,
    /// The LSN of the commit record.
    pub commit_lsn: u64,
    /// The end of the commit record: the position to confirm once the transaction is durable.
    pub end_lsn: u64,
    /// Commit time, µs since 2000-01-01.
    pub commit_time: i64,
}

/// Origin 'O': the transaction was replicated from another node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Origin<'a> {
    /// The commit's LSN on the origin server.
    pub commit_lsn: u64,
    /// The origin's name.
    pub name: Cow<'a, str>,
}

/// One column of a Relation message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RelationColumn<'a> {
    /// Part of the replica identity key.
    pub is_key: bool,
    /// The column's name.
    pub name: Cow<'a, str>,
    /// The column's type.
    pub type_oid: u32,
    /// `atttypmod`; -1 when none.
    pub type_modifier: i32,
}

/// Relation 'R': a table's shape, sent before its first change (and again after it changes).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Relation<'a> {
    /// The subtransaction's xid, inside a stream block.
    pub xid: Option<u32>,
    /// The table's OID.
    pub relation_id: u32,
    /// The schema; empty means `pg_catalog`.
    pub namespace: Cow<'a, str>,
    /// The table's name.
    pub name: Cow<'a, str>,
    /// `relreplident`: `d`, `n`, `f` or `i`.
    pub replica_identity: u8,
    /// The published columns, in table order.
    pub columns: Vec<RelationColumn<'a>>,
}

/// Type 'Y': the name of a non-built-in type used by a following Relation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TypeMessage<'a> {
    /// The subtransaction's xid, inside a stream block.
    pub xid: Option<u32>,
    /// The type's OID.
    pub type_oid: u32,
    /// The schema; empty means `pg_catalog`.
    pub namespace: Cow<'a, str>,
    /// The type's `typname`.
    pub name: Cow<'a, str>,
}

/// Insert 'I'.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Insert<'a> {
    /// The subtransaction's xid, inside a stream block.
    pub xid: Option<u32>,
    /// The table's OID.
    pub relation_id: u32,
    /// The new row.
    pub new: Tuple<'a>,
}

/// The old values an Update or Delete carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OldTuple<'a> {
    /// 'K': the replica identity key columns (other columns null).
    Key(Tuple<'a>),
    /// 'O': the whole old row (replica identity full).
    Full(Tuple<'a>),
}

/// Update 'U'.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Update<'a> {
    /// The subtransaction's xid, inside a stream block.
    pub xid: Option<u32>,
    /// The table's OID.
    pub relation_id: u32,
    /// Absent when the key did not change under a key-based identity.
    pub old: Option<OldTuple<'a>>,
    /// The new row.
    pub new: Tuple<'a>,
}

/// Delete 'D'.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Delete<'a> {
    /// The subtransaction's xid, inside a stream block.
    pub xid: Option<u32>,
    /// The table's OID.
    pub relation_id: u32,
    /// The deleted row's key, or the whole row.
    pub old: OldTuple<'a>,
}

/// Truncate 'T' of one or more tables.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Truncate {
    /// The subtransaction's xid, inside a stream block.
    pub xid: Option<u32>,
    /// `TRUNCATE ... CASCADE`.
    pub cascade: bool,
    /// `TRUNCATE ... RESTART IDENTITY`.
    pub restart_identity: bool,
    /// The truncated tables' OIDs.
    pub relation_ids: Vec<u32>,
}

/// Message 'M': a logical decoding message (`pg_logical_emit_message`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DecodingMessage<'a> {
    /// The subtransaction's xid, inside a stream block.
    pub xid: Option<u32>,
    /// Part of its transaction (sent at commit) rather than sent immediately.
    pub transactional: bool,
    /// The message's own WAL position.
    pub lsn: u64,
    /// The prefix given by the emitter.
    pub prefix: Cow<'a, str>,
    /// The content: opaque bytes.
    pub content: &'a [u8],
}

/// Stream Start 'S': a chunk of an in-progress transaction follows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StreamStart {
    /// The streamed (top-level) transaction.
    pub xid: u32,
    /// The first chunk of this transaction.
    pub first_segment: bool,
}

/// Stream Commit 'c': a streamed transaction committed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StreamCommit {
    /// The streamed transaction.
    pub xid: u32,
    /// Unused by the server (always 0).
    pub flags: u8,
    /// The LSN of the commit record.
    pub commit_lsn: u64,
    /// The end of the commit record: the position to confirm.
    pub end_lsn: u64,
    /// Commit time, µs since 2000-01-01.
    pub commit_time: i64,
}

/// Stream Abort 'A': a streamed transaction (`subxid == xid`) or one of its subtransactions
/// aborted. Protocol v4's abort LSN and time are not read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StreamAbort {
    /// The streamed (top-level) transaction.
    pub xid: u32,
    /// The aborted (sub)transaction.
    pub subxid: u32,
}

/// One pgoutput message, borrowing from the payload it was parsed from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message<'a> {
    /// 'B'
    Begin(Begin),
    /// 'C'
    Commit(Commit),
    /// 'O'
    Origin(Origin<'a>),
    /// 'R'
    Relation(Relation<'a>),
    /// 'Y'
    Type(TypeMessage<'a>),
    /// 'I'
    Insert(Insert<'a>),
    /// 'U'
    Update(Update<'a>),
    /// 'D'
    Delete(Delete<'a>),
    /// 'T'
    Truncate(Truncate),
    /// 'M'
    Message(DecodingMessage<'a>),
    /// 'S'
    StreamStart(StreamStart),
    /// 'E': the end of a stream block.
    StreamStop,
    /// 'c'
    StreamCommit(StreamCommit),
    /// 'A'
    StreamAbort(StreamAbort),
}

/// Parses a replication stream's payloads in order, tracking stream blocks (which decide
/// whether messages carry a leading xid).
#[derive(Clone, Debug)]
pub struct Parser {
    protocol_version: u32,
    stream_xid: Option<u32>,
}

impl Parser {
    /// A parser for `proto_version` (1 has no streaming; 2 and later do).
    pub fn new(protocol_version: u32) -> Self {
        Parser {
            protocol_version,
            stream_xid: None,
        }
    }

    /// The negotiated protocol version.
    pub fn protocol_version(&self) -> u32 {
        self.protocol_version
    }

    /// The streamed transaction whose chunk is being received (between Stream Start and Stop).
    pub fn stream_xid(&self) -> Option<u32> {
        self.stream_xid
    }

    /// Forget the stream state, for a new replication session.
    pub fn reset(&mut self) {
        self.stream_xid = None;
    }

    /// Parse the next payload of the stream. The stream state changes only on success.
    pub fn parse<'a>(&mut self, data: &'a [u8]) -> Result<Message<'a>, ParseError> {
        if self.protocol_version < 2 {
            if let Some(&tag) = data.first() {
                if matches!(tag, b'S' | b'E' | b'c' | b'A') {
                    return Err(ParseError::UnknownTag(char::from(tag)));
                }
            }
        }
        let message = parse_message(data, self.stream_xid.is_some())?;
        match &message {
            Message::StreamStart(start) => {
                if self.stream_xid.is_some() {
                    return Err(ParseError::StreamState(
                        "stream start inside a stream block",
                    ));
                }
                self.stream_xid = Some(start.xid);
            }
            Message::StreamStop => {
                if self.stream_xid.is_none() {
                    return Err(ParseError::StreamState(
                        "stream stop outside a stream block",
                    ));
                }
                self.stream_xid = None;
            }
            _ => {}
        }
        Ok(message)
    }
}

/// Parse one payload; `in_stream` says whether it was sent inside a stream block (then the
/// messages that may be streamed start with an xid).
pub fn parse_message(data: &[u8], in_stream: bool) -> Result<Message<'_>, ParseError> {
    let (&tag, rest) = data.split_first().ok_or(ParseError::Empty)?;
    let mut r = Reader::new(char::from(tag), rest);
    let stream_xid = |r: &mut Reader<'_>| {
        if in_stream {
            r.u32("xid").map(Some)
        } else {
            Ok(None)
        }
    };
    let message = match tag {
        b'B' => Message::Begin(Begin {
            final_lsn: r.u64("final lsn")?,
            commit_time: r.i64("commit time")?,
            xid: r.u32("xid")?,
        }),
        b'C' => Message::Commit(Commit {
            flags: r.u8("flags")?,
            commit_lsn: r.u64("commit lsn")?,
            end_lsn: r.u64("end lsn")?,
            commit_time: r.i64("commit time")?,
        }),
        b'O' => Message::Origin(Origin {
            commit_lsn: r.u64("origin lsn")?,
            name: r.cstr("name")?,
        }),
        b'R' => {
            let xid = stream_xid(&mut r)?;
            let relation_id = r.u32("relation id")?;
            let namespace = r.cstr("namespace")?;
            let name = r.cstr("relation name")?;
            let replica_identity = r.u8("replica identity")?;
            let count = r.count16("column count")?;
            // Each column takes at least 10 bytes: never reserve more than the input can hold.
            let mut columns = Vec::with_capacity(count.min(r.remaining() / 10));
            for _ in 0..count {
                columns.push(RelationColumn {
                    is_key: r.u8("column flags")? & 1 == 1,
                    name: r.cstr("column name")?,
                    type_oid: r.u32("column type")?,
                    type_modifier: r.i32("column type modifier")?,
                });
            }
            Message::Relation(Relation {
                xid,
                relation_id,
                namespace,
                name,
                replica_identity,
                columns,
            })
        }
        b'Y' => Message::Type(TypeMessage {
            xid: stream_xid(&mut r)?,
            type_oid: r.u32("type oid")?,
            namespace: r.cstr("type namespace")?,
            name: r.cstr("type name")?,
        }),
        b'I' => {
            let xid = stream_xid(&mut r)?;
            let relation_id = r.u32("relation id")?;
            r.expect(b'N', "tuple marker")?;
            Message::Insert(Insert {
                xid,
                relation_id,
                new: r.tuple()?,
            })
        }
        b'U' => {
            let xid = stream_xid(&mut r)?;
            let relation_id = r.u32("relation id")?;
            let old = match r.u8("tuple marker")? {
                b'K' => Some(OldTuple::Key(r.tuple()?)),
                b'O' => Some(OldTuple::Full(r.tuple()?)),
                b'N' => None,
                other => return Err(r.unexpected("tuple marker", other)),
            };
            if old.is_some() {
                r.expect(b'N', "new tuple marker")?;
            }
            Message::Update(Update {
                xid,
                relation_id,
                old,
                new: r.tuple()?,
            })
        }
        b'D' => {
            let xid = stream_xid(&mut r)?;
            let relation_id = r.u32("relation id")?;
            let old = match r.u8("tuple marker")? {
                b'K' => OldTuple::Key(r.tuple()?),
                b'O' => OldTuple::Full(r.tuple()?),
                other => return Err(r.unexpected("tuple marker", other)),
            };
            Message::Delete(Delete {
                xid,
                relation_id,
                old,
            })
        }
        b'T' => {
            let xid = stream_xid(&mut r)?;
            let count = r.count32("relation count")?;
            let options = r.u8("options")?;
            let mut relation_ids = Vec::with_capacity(count.min(r.remaining() / 4));
            for _ in 0..count {
                relation_ids.push(r.u32("relation id")?);
            }
            Message::Truncate(Truncate {
                xid,
                cascade: options & 1 != 0,
                restart_identity: options & 2 != 0,
                relation_ids,
            })
        }
        b'M' => {
            let xid = stream_xid(&mut r)?;
            let transactional = r.u8("flags")? & 1 == 1;
            let lsn = r.u64("message lsn")?;
            let prefix = r.cstr("prefix")?;
            let len = r.count32("content length")?;
            let content = r.bytes(len, "content")?;
            Message::Message(DecodingMessage {
                xid,
                transactional,
                lsn,
                prefix,
                content,
            })
        }
        b'S' => Message::StreamStart(StreamStart {
            xid: r.u32("xid")?,
            first_segment: r.u8("first segment")? == 1,
        }),
        b'E' => Message::StreamStop,
        b'c' => Message::StreamCommit(StreamCommit {
            xid: r.u32("xid")?,
            flags: r.u8("flags")?,
            commit_lsn: r.u64("commit lsn")?,
            end_lsn: r.u64("end lsn")?,
            commit_time: r.i64("commit time")?,
        }),
        b'A' => Message::StreamAbort(StreamAbort {
            xid: r.u32("xid")?,
            subxid: r.u32("subxid")?,
        }),
        other => return Err(ParseError::UnknownTag(char::from(other))),
    };
    Ok(message)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decoder::test_wire::{self as wire, Col};
    use proptest::prelude::*;

    fn values<'a>(tuple: &Tuple<'a>) -> Vec<TupleValue<'a>> {
        tuple.iter().collect()
    }

    #[test]
    fn begin_and_commit_carry_positions_times_and_xid() {
        let data = wire::begin(0x10, 77, 501);
        let begin = parse_message(&data, false).unwrap();
        assert_eq!(
            begin,
            Message::Begin(Begin {
                final_lsn: 0x10,
                commit_time: 77,
                xid: 501
            })
        );
        let data = wire::commit(0x10, 0x18, 77);
        let commit = parse_message(&data, false).unwrap();
        assert_eq!(
            commit,
            Message::Commit(Commit {
                flags: 0,
                commit_lsn: 0x10,
                end_lsn: 0x18,
                commit_time: 77
            })
        );
    }

    #[test]
    fn origin_names_the_origin() {
        let data = wire::origin(9, "node_a");
        let origin = parse_message(&data, false).unwrap();
        assert_eq!(
            origin,
            Message::Origin(Origin {
                commit_lsn: 9,
                name: "node_a".into()
            })
        );
    }

    #[test]
    fn relation_lists_columns_with_key_flags_types_and_modifiers() {
        let data = wire::relation(
            None,
            16384,
            "public",
            "items",
            b'd',
            &[(true, "id", 23, -1), (false, "name", 1043, 68)],
        );
        let Message::Relation(rel) = parse_message(&data, false).unwrap() else {
            panic!()
        };
        assert_eq!(rel.xid, None);
        assert_eq!(
            (rel.relation_id, &*rel.namespace, &*rel.name),
            (16384, "public", "items")
        );
        assert_eq!(rel.replica_identity, b'd');
        assert_eq!(
            rel.columns,
            vec![
                RelationColumn {
                    is_key: true,
                    name: "id".into(),
                    type_oid: 23,
                    type_modifier: -1
                },
                RelationColumn {
                    is_key: false,
                    name: "name".into(),
                    type_oid: 1043,
                    type_modifier: 68
                },
            ]
        );
        assert!(
            matches!(rel.namespace, Cow::Borrowed(_)),
            "names borrow from the payload"
        );
    }

    #[test]
    fn type_message_names_a_user_type() {
        let data = wire::type_message(None, 90001, "app", "mood");
        let msg = parse_message(&data, false).unwrap();
        assert_eq!(
            msg,
            Message::Type(TypeMessage {
                xid: None,
                type_oid: 90001,
                namespace: "app".into(),
                name: "mood".into()
            })
        );
    }

    #[test]
    fn insert_tuple_reads_every_column_kind_without_copying() {
        let data = wire::insert(
            None,
            7,
            &[
                Col::Text("42"),
                Col::Null,
                Col::Toast,
                Col::Binary(&[0, 1, 2]),
            ],
        );
        let Message::Insert(insert) = parse_message(&data, false).unwrap() else {
            panic!()
        };
        assert_eq!(insert.relation_id, 7);
        assert_eq!(insert.new.column_count(), 4);
        assert_eq!(
            values(&insert.new),
            vec![
                TupleValue::Text(b"42"),
                TupleValue::Null,
                TupleValue::UnchangedToast,
                TupleValue::Binary(&[0, 1, 2]),
            ]
        );
        let Some(TupleValue::Text(text)) = insert.new.iter().next() else {
            panic!()
        };
        let range = data.as_ptr_range();
        assert!(
            range.contains(&text.as_ptr()),
            "text value is a slice of the payload"
        );
    }

    #[test]
    fn update_reads_key_old_row_or_no_old_tuple() {
        let key = wire::update(None, 7, Some((b'K', &[Col::Text("1")])), &[Col::Text("2")]);
        let Message::Update(u) = parse_message(&key, false).unwrap() else {
            panic!()
        };
        assert!(matches!(u.old, Some(OldTuple::Key(t)) if values(&t) == [TupleValue::Text(b"1")]));
        assert_eq!(values(&u.new), [TupleValue::Text(b"2")]);

        let full = wire::update(None, 7, Some((b'O', &[Col::Text("1")])), &[Col::Text("2")]);
        let Message::Update(u) = parse_message(&full, false).unwrap() else {
            panic!()
        };
        assert!(matches!(u.old, Some(OldTuple::Full(_))));

        let none = wire::update(None, 7, None, &[Col::Text("2")]);
        let Message::Update(u) = parse_message(&none, false).unwrap() else {
            panic!()
        };
        assert_eq!(u.old, None);
        assert_eq!(values(&u.new), [TupleValue::Text(b"2")]);
    }

    #[test]
    fn delete_reads_key_or_full_old_row() {
        let key = wire::delete(None, 7, b'K', &[Col::Text("1"), Col::Null]);
        let Message::Delete(d) = parse_message(&key, false).unwrap() else {
            panic!()
        };
        assert!(matches!(d.old, OldTuple::Key(t) if t.column_count() == 2));
        let full = wire::delete(None, 7, b'O', &[Col::Text("1"), Col::Text("x")]);
        let Message::Delete(d) = parse_message(&full, false).unwrap() else {
            panic!()
        };
        assert!(matches!(d.old, OldTuple::Full(_)));
        let bad = wire::delete(None, 7, b'N', &[Col::Text("1")]);
        assert!(matches!(
            parse_message(&bad, false),
            Err(ParseError::Unexpected {
                field: "tuple marker",
                ..
            })
        ));
    }

    #[test]
    fn truncate_reads_options_and_every_relation() {
        let data = wire::truncate(None, 3, &[1, 2, 3]);
        let msg = parse_message(&data, false).unwrap();
        assert_eq!(
            msg,
            Message::Truncate(Truncate {
                xid: None,
                cascade: true,
                restart_identity: true,
                relation_ids: vec![1, 2, 3]
            })
        );
        let Message::Truncate(t) = parse_message(&wire::truncate(None, 2, &[5]), false).unwrap()
        else {
            panic!()
        };
        assert!(!t.cascade && t.restart_identity);
    }

    #[test]
    fn logical_message_carries_flags_lsn_prefix_and_content() {
        let data = wire::message(None, true, 0x99, "audit", b"\x00hello");
        let Message::Message(m) = parse_message(&data, false).unwrap() else {
            panic!()
        };
        assert!(m.transactional);
        assert_eq!(
            (m.lsn, &*m.prefix, m.content),
            (0x99, "audit", &b"\x00hello"[..])
        );
    }

    #[test]
    fn stream_control_messages_parse() {
        assert_eq!(
            parse_message(&wire::stream_start(12, true), false).unwrap(),
            Message::StreamStart(StreamStart {
                xid: 12,
                first_segment: true
            })
        );
        assert_eq!(
            parse_message(&wire::stream_stop(), true).unwrap(),
            Message::StreamStop
        );
        assert_eq!(
            parse_message(&wire::stream_commit(12, 5, 6, 7), false).unwrap(),
            Message::StreamCommit(StreamCommit {
                xid: 12,
                flags: 0,
                commit_lsn: 5,
                end_lsn: 6,
                commit_time: 7
            })
        );
        assert_eq!(
            parse_message(&wire::stream_abort(12, 13), false).unwrap(),
            Message::StreamAbort(StreamAbort {
                xid: 12,
                subxid: 13
            })
        );
    }

    #[test]
    fn stream_abort_ignores_protocol_v4_trailing_fields() {
        let mut data = wire::stream_abort(12, 12);
        data.extend_from_slice(&[0; 16]);
        assert_eq!(
            parse_message(&data, false).unwrap(),
            Message::StreamAbort(StreamAbort {
                xid: 12,
                subxid: 12
            })
        );
    }

    #[test]
    fn messages_inside_a_stream_block_carry_a_leading_xid() {
        let mut parser = Parser::new(2);
        parser.parse(&wire::stream_start(900, true)).unwrap();
        assert_eq!(parser.stream_xid(), Some(900));
        let rel = wire::relation(Some(901), 5, "public", "t", b'f', &[(false, "a", 25, -1)]);
        let Message::Relation(r) = parser.parse(&rel).unwrap() else {
            panic!()
        };
        assert_eq!(r.xid, Some(901));
        let ins_data = wire::insert(Some(901), 5, &[Col::Text("x")]);
        let ins = parser.parse(&ins_data).unwrap();
        assert!(matches!(
            ins,
            Message::Insert(Insert {
                xid: Some(901),
                relation_id: 5,
                ..
            })
        ));
        let upd_data = wire::update(Some(900), 5, None, &[Col::Text("y")]);
        let upd = parser.parse(&upd_data).unwrap();
        assert!(matches!(
            upd,
            Message::Update(Update { xid: Some(900), .. })
        ));
        let del_data = wire::delete(Some(900), 5, b'O', &[Col::Text("y")]);
        let del = parser.parse(&del_data).unwrap();
        assert!(matches!(
            del,
            Message::Delete(Delete { xid: Some(900), .. })
        ));
        let tr_data = wire::truncate(Some(900), 0, &[5]);
        let tr = parser.parse(&tr_data).unwrap();
        assert!(matches!(
            tr,
            Message::Truncate(Truncate { xid: Some(900), .. })
        ));
        let ty_data = wire::type_message(Some(900), 1, "a", "b");
        let ty = parser.parse(&ty_data).unwrap();
        assert!(matches!(
            ty,
            Message::Type(TypeMessage { xid: Some(900), .. })
        ));
        let m_data = wire::message(Some(900), true, 1, "p", b"c");
        let m = parser.parse(&m_data).unwrap();
        assert!(matches!(
            m,
            Message::Message(DecodingMessage { xid: Some(900), .. })
        ));
        parser.parse(&wire::stream_stop()).unwrap();
        assert_eq!(parser.stream_xid(), None);
        let ins_data = wire::insert(None, 5, &[Col::Text("x")]);
        let ins = parser.parse(&ins_data).unwrap();
        assert!(matches!(ins, Message::Insert(Insert { xid: None, .. })));
    }

    #[test]
    fn protocol_v1_has_no_stream_messages() {
        let mut parser = Parser::new(1);
        assert_eq!(
            parser.parse(&wire::stream_start(1, true)),
            Err(ParseError::UnknownTag('S'))
        );
        assert!(parser.parse(&wire::begin(1, 2, 3)).is_ok());
    }

    #[test]
    fn misplaced_stream_control_is_an_error() {
        let mut parser = Parser::new(2);
        assert!(matches!(
            parser.parse(&wire::stream_stop()),
            Err(ParseError::StreamState(_))
        ));
        parser.parse(&wire::stream_start(1, true)).unwrap();
        assert!(matches!(
            parser.parse(&wire::stream_start(2, false)),
            Err(ParseError::StreamState(_))
        ));
        assert_eq!(
            parser.stream_xid(),
            Some(1),
            "a failed parse leaves the state unchanged"
        );
    }

    #[test]
    fn truncated_messages_are_errors() {
        let data = wire::insert(None, 7, &[Col::Text("hello"), Col::Null]);
        for len in 0..data.len() {
            assert!(
                parse_message(&data[..len], false).is_err(),
                "prefix of {len} bytes parsed"
            );
        }
        let rel = wire::relation(None, 1, "s", "t", b'd', &[(true, "id", 23, -1)]);
        for len in 0..rel.len() {
            assert!(
                parse_message(&rel[..len], false).is_err(),
                "prefix of {len} bytes parsed"
            );
        }
    }

    #[test]
    fn unknown_tags_and_column_kinds_are_errors() {
        assert_eq!(parse_message(b"Z", false), Err(ParseError::UnknownTag('Z')));
        assert_eq!(parse_message(b"", false), Err(ParseError::Empty));
        let mut data = wire::insert(None, 7, &[Col::Null]);
        let last = data.len() - 1;
        data[last] = b'q';
        assert!(matches!(
            parse_message(&data, false),
            Err(ParseError::Unexpected {
                field: "column kind",
                found: 'q',
                ..
            })
        ));
    }

    #[test]
    fn negative_lengths_are_errors() {
        let mut data = wire::insert(None, 7, &[Col::Text("a")]);
        // tag, relation id, 'N', column count, kind: the length starts at byte 9.
        data[9..13].copy_from_slice(&(-1i32).to_be_bytes());
        assert!(matches!(
            parse_message(&data, false),
            Err(ParseError::Negative { .. })
        ));
    }

    #[test]
    fn pg_times_convert_to_unix_micros() {
        assert_eq!(pg_time_to_unix_us(0), 946_684_800_000_000);
        assert_eq!(pg_time_to_unix_us(i64::MAX), i64::MAX);
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = parse_message(&data, false);
            let _ = parse_message(&data, true);
            let mut parser = Parser::new(2);
            if let Ok(Message::Insert(i)) = parser.parse(&data) {
                prop_assert_eq!(i.new.iter().count(), i.new.column_count());
            }
        }

        #[test]
        fn random_bytes_after_a_valid_tag_never_panic(
            tag in proptest::sample::select(b"BCORYIUDTMSEcA".to_vec()),
            rest in proptest::collection::vec(any::<u8>(), 0..128),
        ) {
            let mut data = vec![tag];
            data.extend_from_slice(&rest);
            let _ = parse_message(&data, false);
            let _ = parse_message(&data, true);
        }
    }
}
