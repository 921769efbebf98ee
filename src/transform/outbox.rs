//! `type = "outbox"`: Debezium's outbox `EventRouter`. Each row inserted into the outbox
//! `table` becomes one event: on the topic `route_topic_replacement` names after the
//! `route_by_field` column (default `outbox.event.${routedByValue}`: an `aggregatetype` of
//! `order` goes to `outbox.event.order`), keyed by the `table_field_event_key` column
//! (`aggregateid`, an Avro string), with the `table_field_event_payload` column (`payload`) as
//! its value: an Avro string (with Debezium's `io.debezium.data.Json` name for json/jsonb) or
//! bytes for bytea. Deletes of outbox rows (the usual clean-up) are ignored; an update is
//! skipped with a warning or stops the pipeline (`table_op_invalid_behavior`).
//!
//! Characters a Kafka topic cannot hold become `_`, as Debezium's topic naming does.

use regex::Regex;
use serde_json::{json, Value as Json};
use sluice_api::{ChangeEvent, Op, TableSchema, Value};

/// Debezium's default `table.field.event.id`.
pub const DEFAULT_FIELD_EVENT_ID: &str = "id";
/// Debezium's default `table.field.event.key`.
pub const DEFAULT_FIELD_EVENT_KEY: &str = "aggregateid";
/// Debezium's default `table.field.event.payload`.
pub const DEFAULT_FIELD_EVENT_PAYLOAD: &str = "payload";
/// Debezium's default `route.by.field`.
pub const DEFAULT_ROUTE_BY_FIELD: &str = "aggregatetype";
/// Debezium's default `route.topic.regex`.
pub const DEFAULT_ROUTE_TOPIC_REGEX: &str = "(?<routedByValue>.*)";
/// Debezium's default `route.topic.replacement`.
pub const DEFAULT_ROUTE_TOPIC_REPLACEMENT: &str = "outbox.event.${routedByValue}";

/// The longest topic name Kafka accepts.
const MAX_TOPIC_LEN: usize = 249;

/// What an update of an outbox row does (`table_op_invalid_behavior`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum OpInvalidBehavior {
    /// Skip it and log a warning (Debezium's default).
    #[default]
    Warn,
    /// Stop the pipeline before the update: nothing from it on is confirmed.
    Error,
}

impl OpInvalidBehavior {
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "warn" => Some(OpInvalidBehavior::Warn),
            "error" => Some(OpInvalidBehavior::Error),
            _ => None,
        }
    }
}

/// A validated `outbox` transform.
#[derive(Clone, Debug)]
pub struct OutboxTransform {
    /// The outbox table, `schema.table`.
    pub table: String,
    pub field_event_id: String,
    pub field_event_key: String,
    pub field_event_payload: String,
    pub route_by_field: String,
    pub route_topic_regex: Regex,
    pub route_topic_replacement: String,
    pub op_invalid_behavior: OpInvalidBehavior,
}

/// The outbox table's columns the router reads, found once per table shape.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutboxColumns {
    id: Option<usize>,
    key: Option<usize>,
    payload: usize,
    route: usize,
    /// The payload column's Avro schema.
    pub payload_schema: Json,
}

/// One routed event, ready to encode.
#[derive(Clone, Debug, PartialEq)]
pub struct OutboxEvent<'e> {
    pub topic: String,
    /// The aggregate id's text; `None` for a NULL (the record then has no key).
    pub key: Option<String>,
    /// The event id's text, for logs.
    pub id: Option<String>,
    /// The payload; `None` for a NULL payload (the record's value is then null).
    pub payload: Option<&'e Value>,
}

/// Why an outbox row cannot become an event.
#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    #[error("outbox table {table}: no column {column:?} ({key})")]
    MissingColumn {
        table: String,
        column: String,
        key: &'static str,
    },
    #[error(
        "outbox table {table}: an update of an outbox row (event id {id}) cannot be routed \
         (table_op_invalid_behavior = \"error\")"
    )]
    Update { table: String, id: String },
    #[error("outbox table {table}: event id {id} routes to an empty topic name")]
    EmptyTopic { table: String, id: String },
}

impl OutboxTransform {
    /// Whether `table` is the outbox table.
    pub fn applies_to(&self, table: &TableSchema) -> bool {
        table.qualified_name() == self.table
    }

    /// Find the columns of the outbox table's current shape.
    pub fn columns(&self, table: &TableSchema) -> Result<OutboxColumns, OutboxError> {
        let find = |name: &str| table.columns.iter().position(|c| c.name == name);
        let require = |name: &str, key: &'static str| {
            find(name).ok_or_else(|| OutboxError::MissingColumn {
                table: self.table.clone(),
                column: name.to_owned(),
                key,
            })
        };
        let payload = require(&self.field_event_payload, "table_field_event_payload")?;
        let route = require(&self.route_by_field, "route_by_field")?;
        let payload_schema = match table.columns[payload].type_name.as_str() {
            "json" | "jsonb" => json!({
                "type": "string",
                "connect.version": 1,
                "connect.name": "io.debezium.data.Json",
            }),
            "bytea" => json!("bytes"),
            _ => json!("string"),
        };
        Ok(OutboxColumns {
            id: find(&self.field_event_id),
            key: find(&self.field_event_key),
            payload,
            route,
            payload_schema,
        })
    }

    /// The event an outbox change becomes: inserts (and snapshot reads) route, deletes and
    /// truncates are ignored, updates per `table_op_invalid_behavior`.
    pub fn route<'e>(
        &self,
        columns: &OutboxColumns,
        event: &'e ChangeEvent,
    ) -> Result<Option<OutboxEvent<'e>>, OutboxError> {
        let row = match (event.op, event.after.as_deref()) {
            (Op::Create | Op::Read, Some(row)) => row,
            (Op::Update, Some(row)) => {
                let id = text_of(row.get(columns.id.unwrap_or(usize::MAX)))
                    .unwrap_or_else(|| "?".into());
                match self.op_invalid_behavior {
                    OpInvalidBehavior::Warn => {
                        tracing::warn!(table = %self.table, %id, "skipping an update of an outbox row: only inserts are routed");
                        return Ok(None);
                    }
                    OpInvalidBehavior::Error => {
                        return Err(OutboxError::Update {
                            table: self.table.clone(),
                            id,
                        })
                    }
                }
            }
            _ => return Ok(None),
        };
        let id = columns.id.and_then(|i| text_of(row.get(i)));
        let routed_by = text_of(row.get(columns.route)).unwrap_or_default();
        let topic = match self.route_topic_regex.captures(&routed_by) {
            Some(captures) => {
                let mut topic = String::new();
                captures.expand(&self.route_topic_replacement, &mut topic);
                topic
            }
            None => routed_by,
        };
        let topic = sanitize_topic(&topic);
        if topic.is_empty() {
            return Err(OutboxError::EmptyTopic {
                table: self.table.clone(),
                id: id.unwrap_or_else(|| "?".into()),
            });
        }
        let payload = row.get(columns.payload).filter(|v| !v.is_null());
        Ok(Some(OutboxEvent {
            topic,
            key: columns.key.and_then(|i| text_of(row.get(i))),
            id,
            payload,
        }))
    }
}

/// A value's text, `None` for NULL (or an unchanged TOAST value, which inserts never have).
fn text_of(value: Option<&Value>) -> Option<String> {
    match value? {
        Value::Null | Value::UnchangedToast => None,
        Value::Text(text) => Some(text.clone()),
        other => Some(crate::schema::pg_text(other)),
    }
}

/// `topic` with every character Kafka refuses replaced by `_`, cut to Kafka's length limit.
fn sanitize_topic(topic: &str) -> String {
    topic
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .take(MAX_TOPIC_LEN)
        .collect()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use sluice_api::ReplicaIdentity;

    use super::*;
    use crate::schema::anchored_regex;
    use crate::transform::test_events::{column, event_of};

    fn outbox_table(payload_type: &str) -> Arc<TableSchema> {
        Arc::new(TableSchema {
            relation_id: 9,
            schema: "public".into(),
            name: "outbox".into(),
            replica_identity: ReplicaIdentity::Default,
            columns: vec![
                column("id", "uuid", 2950, true),
                column("aggregatetype", "text", 25, false),
                column("aggregateid", "text", 25, false),
                column("type", "text", 25, false),
                column("payload", payload_type, 0, false),
            ],
        })
    }

    fn router() -> OutboxTransform {
        OutboxTransform {
            table: "public.outbox".into(),
            field_event_id: DEFAULT_FIELD_EVENT_ID.into(),
            field_event_key: DEFAULT_FIELD_EVENT_KEY.into(),
            field_event_payload: DEFAULT_FIELD_EVENT_PAYLOAD.into(),
            route_by_field: DEFAULT_ROUTE_BY_FIELD.into(),
            route_topic_regex: anchored_regex(DEFAULT_ROUTE_TOPIC_REGEX).unwrap(),
            route_topic_replacement: DEFAULT_ROUTE_TOPIC_REPLACEMENT.into(),
            op_invalid_behavior: OpInvalidBehavior::Warn,
        }
    }

    fn row(aggregate_type: &str, id: Option<&str>, payload: Value) -> Vec<Value> {
        vec![
            Value::Uuid([7; 16]),
            Value::Text(aggregate_type.into()),
            id.map_or(Value::Null, |i| Value::Text(i.into())),
            Value::Text("OrderCreated".into()),
            payload,
        ]
    }

    #[test]
    fn an_insert_routes_by_aggregate_type_keyed_by_aggregate_id_with_the_payload() {
        let table = outbox_table("jsonb");
        let router = router();
        assert!(router.applies_to(&table));
        let columns = router.columns(&table).unwrap();
        assert_eq!(
            columns.payload_schema["connect.name"],
            "io.debezium.data.Json"
        );
        let payload = Value::Jsonb(r#"{"total": 12}"#.into());
        let insert = event_of(
            &table,
            Op::Create,
            None,
            Some(row("order", Some("42"), payload.clone())),
            10,
        );
        let routed = router.route(&columns, &insert).unwrap().unwrap();
        assert_eq!(routed.topic, "outbox.event.order");
        assert_eq!(routed.key.as_deref(), Some("42"));
        assert_eq!(
            routed.id.as_deref(),
            Some("07070707-0707-0707-0707-070707070707")
        );
        assert_eq!(routed.payload, Some(&payload));

        let odd = event_of(
            &table,
            Op::Create,
            None,
            Some(row("Kunde/Ä", None, Value::Null)),
            11,
        );
        let routed = router.route(&columns, &odd).unwrap().unwrap();
        assert_eq!(routed.topic, "outbox.event.Kunde__");
        assert_eq!((routed.key, routed.payload), (None, None));
    }

    #[test]
    fn deletes_are_ignored_and_updates_warn_or_stop() {
        let table = outbox_table("text");
        let mut router = router();
        let columns = router.columns(&table).unwrap();
        assert_eq!(columns.payload_schema, json!("string"));
        let old = row("order", Some("1"), Value::Text("{}".into()));
        let delete = event_of(&table, Op::Delete, Some(old.clone()), None, 10);
        assert!(router.route(&columns, &delete).unwrap().is_none());
        let update = event_of(&table, Op::Update, Some(old.clone()), Some(old), 11);
        assert!(router.route(&columns, &update).unwrap().is_none());
        router.op_invalid_behavior = OpInvalidBehavior::Error;
        let error = router.route(&columns, &update).unwrap_err();
        assert!(
            error.to_string().contains("update of an outbox row"),
            "{error}"
        );
    }

    #[test]
    fn a_custom_route_and_missing_columns_are_handled() {
        let table = outbox_table("bytea");
        let mut router = router();
        router.route_topic_regex = anchored_regex("(?<routedByValue>[a-z]+)").unwrap();
        router.route_topic_replacement = "events.${routedByValue}.v1".into();
        let columns = router.columns(&table).unwrap();
        assert_eq!(columns.payload_schema, json!("bytes"));
        let insert = event_of(
            &table,
            Op::Create,
            None,
            Some(row("order", Some("1"), Value::Bytes(vec![1]))),
            10,
        );
        assert_eq!(
            router.route(&columns, &insert).unwrap().unwrap().topic,
            "events.order.v1"
        );
        // A value the regex does not match is the topic itself.
        let insert = event_of(
            &table,
            Op::Create,
            None,
            Some(row("Order", Some("1"), Value::Null)),
            10,
        );
        assert_eq!(
            router.route(&columns, &insert).unwrap().unwrap().topic,
            "Order"
        );

        router.field_event_payload = "body".into();
        let error = router.columns(&table).unwrap_err();
        assert_eq!(
            error.to_string(),
            "outbox table public.outbox: no column \"body\" (table_field_event_payload)"
        );
        let other = crate::transform::test_events::customers();
        assert!(!router.applies_to(&other));
    }
}
