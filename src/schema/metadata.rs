//! The stream's own records, with Debezium's schemas: transaction boundaries
//! (`io.debezium.connector.common.TransactionMetadataKey` / `...Value`), heartbeats
//! (`io.debezium.connector.common.ServerNameKey` / `...Heartbeat`) and logical decoding
//! messages (`io.debezium.connector.postgresql.MessageKey` / `...MessageValue`). Schemas are
//! written as Confluent's `AvroConverter` writes the Connect ones; records are encoded straight
//! into Confluent-framed Avro, like row envelopes.

use serde_json::{json, Value as Json};
use sluice_api::{ChangeEvent, Op};

use super::avro_schema::{optional_long, required, source_schema, transaction_schema};
use super::encode::{
    write_bytes, write_frame, write_long, write_str, write_transaction_block, SourceBlock,
    SourceInfo, TransactionBlock,
};
use super::EncodeError;

/// The Connect version of every schema here (Debezium's `*_SCHEMA_VERSION`).
const CONNECT_VERSION: u32 = 1;

/// A Connect struct schema as the converter writes it: a named record with its version.
fn record(full_name: &str, fields: Vec<Json>) -> Json {
    let (namespace, name) = full_name.rsplit_once('.').unwrap_or(("", full_name));
    json!({
        "type": "record",
        "name": name,
        "namespace": namespace,
        "fields": fields,
        "connect.version": CONNECT_VERSION,
        "connect.name": full_name,
    })
}

fn optional(name: &str, avro_type: Json) -> Json {
    json!({"name": name, "type": ["null", avro_type], "default": null})
}

/// `TransactionMetadataKey` {id}.
pub fn transaction_key_schema() -> Json {
    record(
        "io.debezium.connector.common.TransactionMetadataKey",
        vec![required("id", "string")],
    )
}

/// `TransactionMetadataValue` {status, id, event_count, data_collections, ts_ms}.
pub fn transaction_value_schema() -> Json {
    let collection = record(
        "event.collection",
        vec![
            required("data_collection", "string"),
            required("event_count", "long"),
        ],
    );
    record(
        "io.debezium.connector.common.TransactionMetadataValue",
        vec![
            required("status", "string"),
            required("id", "string"),
            optional_long("event_count"),
            optional(
                "data_collections",
                json!({"type": "array", "items": ["null", collection]}),
            ),
            required("ts_ms", "long"),
        ],
    )
}

/// `ServerNameKey` {serverName}.
pub fn heartbeat_key_schema() -> Json {
    record(
        "io.debezium.connector.common.ServerNameKey",
        vec![required("serverName", "string")],
    )
}

/// `Heartbeat` {ts_ms}.
pub fn heartbeat_value_schema() -> Json {
    record(
        "io.debezium.connector.common.Heartbeat",
        vec![required("ts_ms", "long")],
    )
}

/// `MessageKey` {prefix}.
pub fn message_key_schema() -> Json {
    record(
        "io.debezium.connector.postgresql.MessageKey",
        vec![optional("prefix", json!("string"))],
    )
}

/// `MessageValue` {op, ts_ms, source, transaction, message {prefix, content}}.
pub fn message_value_schema() -> Json {
    let message = record(
        "io.debezium.connector.postgresql.Message",
        vec![
            optional("prefix", json!("string")),
            optional("content", json!("bytes")),
        ],
    );
    record(
        "io.debezium.connector.postgresql.MessageValue",
        vec![
            required("op", "string"),
            optional_long("ts_ms"),
            json!({"name": "source", "type": source_schema()}),
            optional("transaction", transaction_schema()),
            json!({"name": "message", "type": message}),
        ],
    )
}

/// A transaction's BEGIN or END.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TransactionBoundary<'a> {
    /// `BEGIN` or `END`.
    pub status: &'static str,
    /// `<txid>:<commit LSN>`.
    pub id: &'a str,
    /// END only: the transaction's record count.
    pub event_count: Option<u64>,
    /// END only: the record count per table (`schema.table`), in first-seen order.
    pub data_collections: Option<&'a [(std::sync::Arc<str>, u64)]>,
    /// The commit time, milliseconds since the epoch.
    pub ts_ms: i64,
}

/// The framed key of a transaction's records.
pub fn encode_transaction_key(out: &mut Vec<u8>, schema_id: u32, id: &str) {
    write_frame(out, schema_id);
    write_str(out, id);
}

/// The framed value of a BEGIN or END record.
pub fn encode_transaction_value(
    out: &mut Vec<u8>,
    schema_id: u32,
    boundary: &TransactionBoundary<'_>,
) {
    write_frame(out, schema_id);
    write_str(out, boundary.status);
    write_str(out, boundary.id);
    match boundary.event_count {
        Some(count) => {
            write_long(out, 1);
            write_long(out, saturating_long(count));
        }
        None => write_long(out, 0),
    }
    match boundary.data_collections {
        None => write_long(out, 0),
        Some(collections) => {
            write_long(out, 1);
            if !collections.is_empty() {
                write_long(out, collections.len() as i64);
                for (name, count) in collections {
                    write_long(out, 1); // the item union's record branch
                    write_str(out, name);
                    write_long(out, saturating_long(*count));
                }
            }
            write_long(out, 0);
        }
    }
    write_long(out, boundary.ts_ms);
}

/// The framed heartbeat key: the pipeline's name (Debezium's server name).
pub fn encode_heartbeat_key(out: &mut Vec<u8>, schema_id: u32, server_name: &str) {
    write_frame(out, schema_id);
    write_str(out, server_name);
}

/// The framed heartbeat value.
pub fn encode_heartbeat_value(out: &mut Vec<u8>, schema_id: u32, ts_ms: i64) {
    write_frame(out, schema_id);
    write_long(out, ts_ms);
}

/// Writes logical decoding messages: key {prefix}, value with op `m`, the `source` block
/// (empty schema and table), the optional `transaction` block and the message itself.
#[derive(Clone, Debug)]
pub struct MessageEncoder {
    source: SourceBlock,
}

impl MessageEncoder {
    pub fn new(source: &SourceInfo) -> Self {
        MessageEncoder {
            source: SourceBlock::new(source, "", ""),
        }
    }

    /// The framed key of message `event`.
    pub fn encode_key(
        &self,
        event: &ChangeEvent,
        schema_id: u32,
        out: &mut Vec<u8>,
    ) -> Result<(), EncodeError> {
        let message = message_of(event)?;
        write_frame(out, schema_id);
        write_long(out, 1);
        write_str(out, &message.prefix);
        Ok(())
    }

    /// The framed value of message `event`; `processed_at_us` is the envelope's `ts_ms`.
    pub fn encode_value(
        &self,
        event: &ChangeEvent,
        schema_id: u32,
        processed_at_us: i64,
        transaction: Option<&TransactionBlock<'_>>,
        out: &mut Vec<u8>,
    ) -> Result<(), EncodeError> {
        let message = message_of(event)?;
        write_frame(out, schema_id);
        write_str(out, Op::Message.as_str());
        write_long(out, 1);
        write_long(out, processed_at_us.div_euclid(1000));
        self.source.write(out, event);
        write_transaction_block(out, transaction);
        write_long(out, 1);
        write_str(out, &message.prefix);
        write_long(out, 1);
        write_bytes(out, &message.content);
        Ok(())
    }
}

fn message_of(event: &ChangeEvent) -> Result<&sluice_api::LogicalMessage, EncodeError> {
    event.message.as_ref().ok_or(EncodeError::UnsupportedEvent {
        op: event.op.as_str(),
    })
}

/// Counts as Avro's signed long; saturating far beyond any real count.
fn saturating_long(count: u64) -> i64 {
    i64::try_from(count).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use apache_avro::types::Value as Avro;
    use sluice_api::{LogicalMessage, Lsn, SourcePosition};

    use super::*;

    fn decode(schema: &Json, framed: &[u8]) -> Avro {
        assert_eq!(framed[0], 0, "magic byte");
        let schema = apache_avro::Schema::parse(schema).expect("valid avro");
        let mut body = &framed[5..];
        let value = apache_avro::from_avro_datum(&schema, &mut body, None).expect("decodes");
        assert!(body.is_empty(), "every byte read");
        value
    }

    fn field<'v>(value: &'v Avro, name: &str) -> &'v Avro {
        match value {
            Avro::Record(fields) => &fields.iter().find(|(n, _)| n == name).expect(name).1,
            other => panic!("not a record: {other:?}"),
        }
    }

    #[test]
    fn an_end_record_carries_its_counts_per_table_under_debeziums_schema() {
        let collections: Vec<(Arc<str>, u64)> = vec![
            (Arc::from("public.orders"), 2),
            (Arc::from("public.items"), 1),
        ];
        let mut out = Vec::new();
        encode_transaction_value(
            &mut out,
            7,
            &TransactionBoundary {
                status: "END",
                id: "731:23884888",
                event_count: Some(3),
                data_collections: Some(&collections),
                ts_ms: 1_700_000_000_123,
            },
        );
        assert_eq!(&out[1..5], &7u32.to_be_bytes());
        let value = decode(&transaction_value_schema(), &out);
        assert_eq!(field(&value, "status"), &Avro::String("END".into()));
        assert_eq!(field(&value, "id"), &Avro::String("731:23884888".into()));
        assert_eq!(
            field(&value, "event_count"),
            &Avro::Union(1, Box::new(Avro::Long(3)))
        );
        assert_eq!(field(&value, "ts_ms"), &Avro::Long(1_700_000_000_123));
        let Avro::Union(1, array) = field(&value, "data_collections") else {
            panic!("data_collections is set");
        };
        let Avro::Array(items) = array.as_ref() else {
            panic!("an array");
        };
        assert_eq!(items.len(), 2);
        let Avro::Union(1, first) = &items[0] else {
            panic!("a record item");
        };
        assert_eq!(
            field(first, "data_collection"),
            &Avro::String("public.orders".into())
        );
        assert_eq!(field(first, "event_count"), &Avro::Long(2));

        let mut key = Vec::new();
        encode_transaction_key(&mut key, 6, "731:23884888");
        let key = decode(&transaction_key_schema(), &key);
        assert_eq!(field(&key, "id"), &Avro::String("731:23884888".into()));
    }

    #[test]
    fn a_begin_record_has_no_counts() {
        let mut out = Vec::new();
        encode_transaction_value(
            &mut out,
            7,
            &TransactionBoundary {
                status: "BEGIN",
                id: "1:2",
                event_count: None,
                data_collections: None,
                ts_ms: 5,
            },
        );
        let value = decode(&transaction_value_schema(), &out);
        assert_eq!(
            field(&value, "event_count"),
            &Avro::Union(0, Box::new(Avro::Null))
        );
        assert_eq!(
            field(&value, "data_collections"),
            &Avro::Union(0, Box::new(Avro::Null))
        );
    }

    #[test]
    fn heartbeats_name_the_server_and_the_time() {
        let mut key = Vec::new();
        encode_heartbeat_key(&mut key, 1, "shop");
        assert_eq!(
            field(&decode(&heartbeat_key_schema(), &key), "serverName"),
            &Avro::String("shop".into())
        );
        let mut value = Vec::new();
        encode_heartbeat_value(&mut value, 2, 42);
        assert_eq!(
            field(&decode(&heartbeat_value_schema(), &value), "ts_ms"),
            &Avro::Long(42)
        );
    }

    #[test]
    fn a_logical_message_is_an_m_envelope_with_its_prefix_and_bytes() {
        let event = ChangeEvent {
            op: Op::Message,
            table: None,
            before: None,
            before_is_key_only: false,
            after: None,
            message: Some(LogicalMessage {
                transactional: true,
                prefix: "audit".into(),
                content: vec![0, 159, 146, 150],
            }),
            position: SourcePosition {
                lsn: Lsn(100),
                commit_lsn: Lsn(200),
                xid: Some(9),
                commit_time_us: 1_000_000,
                snapshot: sluice_api::SnapshotFlag::False,
            },
        };
        let encoder = MessageEncoder::new(&SourceInfo {
            version: "0.1.0".into(),
            server_name: "shop".into(),
            database: "app".into(),
        });
        let mut key = Vec::new();
        encoder.encode_key(&event, 1, &mut key).unwrap();
        assert_eq!(
            field(&decode(&message_key_schema(), &key), "prefix"),
            &Avro::Union(1, Box::new(Avro::String("audit".into())))
        );
        let block = TransactionBlock {
            id: "9:200",
            total_order: 1,
            data_collection_order: 1,
        };
        let mut value = Vec::new();
        encoder
            .encode_value(&event, 2, 3_000_000, Some(&block), &mut value)
            .unwrap();
        let value = decode(&message_value_schema(), &value);
        assert_eq!(field(&value, "op"), &Avro::String("m".into()));
        let source = field(&value, "source");
        assert_eq!(
            field(source, "txId"),
            &Avro::Union(1, Box::new(Avro::Long(9)))
        );
        assert_eq!(field(source, "table"), &Avro::String(String::new()));
        let message = field(&value, "message");
        assert_eq!(
            field(message, "content"),
            &Avro::Union(1, Box::new(Avro::Bytes(vec![0, 159, 146, 150])))
        );
        let Avro::Union(1, tx) = field(&value, "transaction") else {
            panic!("the transaction block is set");
        };
        assert_eq!(field(tx, "id"), &Avro::String("9:200".into()));
        assert_eq!(field(tx, "total_order"), &Avro::Long(1));
    }

    #[test]
    fn a_row_event_is_not_a_message() {
        let encoder = MessageEncoder::new(&SourceInfo {
            version: "v".into(),
            server_name: "s".into(),
            database: "d".into(),
        });
        let event = ChangeEvent {
            op: Op::Create,
            table: None,
            before: None,
            before_is_key_only: false,
            after: None,
            message: None,
            position: SourcePosition::default(),
        };
        assert!(encoder.encode_key(&event, 1, &mut Vec::new()).is_err());
    }
}
