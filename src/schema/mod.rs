//! Table -> Debezium-compatible schemas and events: Avro key/value/envelope schemas with
//! Debezium's names and semantic types ([`build_table_schemas`]), the fast Confluent-framed
//! Avro encoder of the hot path ([`TableEncoder`]), and the JSON converter form of the same
//! envelope ([`JsonEncoder`]). Options come from the `[envelope]` config section.
//!
//! Per table shape: build [`TableSchemas`] once (register `key_json` / `envelope_json` with the
//! registry), then a [`TableEncoder`] from it; per event, `encode_key` / `encode_value` into a
//! reused buffer.

mod avro_schema;
mod column_type;
mod encode;
mod json;
mod metadata;
mod names;
mod options;
mod registry_client;
mod representation;
mod temporal;

mod topics;

pub use avro_schema::{
    build_table_schemas, FieldPlan, TableSchemas, ENVELOPE_SCHEMA_VERSION, SNAPSHOT_VALUES,
    SOURCE_SCHEMA_NAME,
};
pub use column_type::{column_kind, numeric_precision_scale, ConnectMeta, FieldKind, StringKind};
pub(crate) use encode::{write_bytes, write_frame};
pub use encode::{write_long, write_str, SourceInfo, TableEncoder, TransactionBlock, MAGIC_BYTE};
pub use json::JsonEncoder;
pub use metadata::{
    encode_heartbeat_key, encode_heartbeat_value, encode_transaction_key, encode_transaction_value,
    heartbeat_key_schema, heartbeat_value_schema, message_key_schema, message_value_schema,
    transaction_key_schema, transaction_value_schema, MessageEncoder, TransactionBoundary,
};
pub use names::{avro_full_name, avro_name};
pub use options::{
    DecimalHandling, EnvelopeOptions, HstoreHandling, IntervalHandling, TimePrecision, UserTypes,
    DEFAULT_MONEY_FRACTION_DIGITS, DEFAULT_UNAVAILABLE_VALUE_PLACEHOLDER,
};
pub use registry_client::{
    Compatibility, RegistryClient, RegistryClientConfig, RegistryError, SubjectNameStrategy,
};
pub use sluice_api::pg_text;
pub use topics::{
    anchored_regex, is_valid_topic, Placement, TopicOptions, TopicRoute, DEFAULT_KEY_FIELD_NAME,
    DEFAULT_MESSAGE_TOPIC_SUFFIX, DEFAULT_TOPIC_HEARTBEAT_PREFIX, DEFAULT_TOPIC_TRANSACTION,
    MESSAGE_DATA_COLLECTION,
};

/// A table whose schemas cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    /// A configured key column is not a column of the table.
    #[error("table {table}: key column {column:?} (envelope.message_key_columns) does not exist")]
    UnknownKeyColumn { table: String, column: String },
    /// Two columns sanitise to the same Avro field name.
    #[error(
        "table {table}: columns {first:?} and {second:?} both become the avro field {avro_name:?}"
    )]
    FieldNameClash {
        table: String,
        first: String,
        second: String,
        avro_name: String,
    },
    /// A route renames the table's topic to a name Kafka refuses.
    #[error("table {table}: the routed topic {topic:?} is not a valid topic name (1-249 letters, digits, '.', '_' and '-')")]
    InvalidTopic { table: String, topic: String },
    /// The generated schema was rejected by the Avro parser (a bug if it ever happens).
    #[error("table {table}: generated {which} schema is not valid avro: {message}")]
    InvalidAvro {
        table: String,
        which: &'static str,
        message: String,
    },
}

/// An event that cannot be encoded under its table's schema.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    /// A column's value does not fit the column's field type.
    #[error("column {column:?}: a {found} value does not fit the {expected} field")]
    TypeMismatch {
        column: String,
        expected: &'static str,
        found: &'static str,
    },
    /// A null (or an unrepresentable value) in a field that is not optional.
    #[error("column {column:?}: null in a required field")]
    NullInRequiredField { column: String },
    /// A row with fewer values than the table's columns.
    #[error("row has {found} values, the schema needs at least {expected}")]
    RowShape { expected: usize, found: usize },
    /// Events that do not carry a table row envelope (logical decoding messages).
    #[error("op {op:?} events have no table envelope")]
    UnsupportedEvent { op: &'static str },
}

#[cfg(test)]
mod routed_tests;
#[cfg(test)]
mod tests;
