//! Kafka sink: each row change as a Debezium-shaped Avro record (Confluent framing, schemas in
//! the registry) on `<prefix>.<schema>.<table>`, keyed and partitioned by the row's key so
//! per-key order holds, with `sluice.lsn`, `sluice.txid` and `sluice.table` headers and a
//! tombstone after each delete. An idempotent `acks=all` producer, and a batch acknowledged
//! only once every record of it has a successful delivery report.
//!
//! TLS and SASL are librdkafka properties under `properties`, for example
//! `'security.protocol' = 'SASL_SSL'`, `'sasl.mechanism' = 'SCRAM-SHA-512'`,
//! `'sasl.username'`, `'sasl.password'`, `'ssl.ca.location'`; secret values are never logged.

mod client;
mod config;
mod encode;
mod error;
mod sink;

pub use client::{create_admin, create_producer, producer_config, LogContext};
pub use config::{
    is_secret_property, Compression, KafkaSinkConfig, PropertyValue, RawKafkaSinkConfig, RawScalar,
    TopicCreation,
};
pub use encode::{
    headers_for, lacks_records, needs_tombstone, plan_batch, OutgoingRecord, HEADER_LSN,
    HEADER_TABLE, HEADER_TXID,
};
pub use error::KafkaSinkError;
pub use sink::KafkaSink;
