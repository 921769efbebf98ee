//! Kafka sink: each row change as a Debezium-shaped Avro record (Confluent framing, schemas in
//! the registry) on `<prefix>.<schema>.<table>`, keyed and partitioned by the row's key so
//! per-key order holds, with `sluice.lsn`, `sluice.txid` and `sluice.table` headers and a
//! tombstone after each delete. An `acks=all` producer, idempotent unless `idempotence = false`
//! (then one request in flight), and a batch acknowledged only once every record of it has a
//! successful delivery report.
//!
//! TLS and SASL are librdkafka properties under `properties`, for example
//! `'security.protocol' = 'SASL_SSL'`, `'sasl.mechanism' = 'SCRAM-SHA-512'`,
//! `'sasl.username'`, `'sasl.password'`, `'ssl.ca.location'`; secret values are never logged.

mod client;
mod config;
mod encode;
mod error;
mod offsets;
mod position;
mod produce;
mod sink;
mod transaction;

pub use client::{
    create_admin, create_producer, producer_config, transactional_producer_config, LogContext,
};
pub use config::{
    default_offsets_topic, default_transactional_id, is_secret_property, Compression,
    ExactlyOnceConfig, KafkaSinkConfig, PropertyValue, RawKafkaSinkConfig, RawScalar,
    TopicCreation,
};
pub use encode::{
    governing_events, headers_for, lacks_records, needs_tombstone, plan_batch, OutgoingRecord,
    OwnedRecord, HEADER_LSN, HEADER_TABLE, HEADER_TXID,
};
pub use error::KafkaSinkError;
pub use offsets::{decode_value as decode_offsets_value, offsets_key, CommittedPosition};
pub use position::{EventPosition, PositionCounter};
pub use sink::KafkaSink;
