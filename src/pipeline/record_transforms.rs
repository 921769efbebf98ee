//! The envelope stage's side of the record transforms ([`crate::transform`]): a table whose
//! events are unwrapped registers its flat `Value` record instead of the envelope; the outbox
//! table registers nothing of its own, and each topic its rows are routed to gets a string key
//! and a payload value schema, registered before the first record that uses them.

use std::collections::HashMap;
use std::sync::Arc;

use sluice_api::{ChangeEvent, EncodedRecord, RecordOrigin, TableSchema, Value};

use super::envelope::{EnvelopeError, REGISTRY_RETRY_DEADLINE};
use crate::schema::{
    pg_text, write_bytes, write_frame, write_str, RegistryClient, SourceInfo, TableEncoder,
    TableSchemas,
};
use crate::transform::{
    OutboxColumns, OutboxTransform, RecordTransform, Transforms, UnwrapContext, UnwrapTransform,
};

/// How a table's events become records, when a record transform applies to the table.
pub(super) enum RecordPlan {
    Unwrap(UnwrapTransform),
    Outbox {
        router: Box<OutboxTransform>,
        columns: OutboxColumns,
    },
}

impl RecordPlan {
    /// The plan for `table`, if a record transform applies to it.
    pub(super) fn of(
        transforms: &Transforms,
        table: &TableSchema,
    ) -> Result<Option<RecordPlan>, EnvelopeError> {
        Ok(match transforms.record_transform(table) {
            None => None,
            Some(RecordTransform::Unwrap(unwrap)) => Some(RecordPlan::Unwrap(unwrap.clone())),
            Some(RecordTransform::Outbox(router)) => Some(RecordPlan::Outbox {
                columns: router.columns(table).map_err(|e| EnvelopeError::Schema {
                    table: table.qualified_name(),
                    message: e.to_string(),
                })?,
                router: Box::new(router.clone()),
            }),
        })
    }

    /// Whether the table's own topic takes records (the outbox table's events go elsewhere).
    pub(super) fn uses_table_topic(&self) -> bool {
        matches!(self, RecordPlan::Unwrap(_))
    }
}

/// The value record's full name and schema text registered for a table's topic.
pub(super) fn value_schema(
    plan: Option<&RecordPlan>,
    schemas: &TableSchemas,
    table: &str,
) -> Result<(String, String), EnvelopeError> {
    match plan {
        Some(RecordPlan::Unwrap(unwrap)) => {
            let schema = unwrap
                .value_schema(schemas)
                .map_err(|message| EnvelopeError::Schema {
                    table: table.to_owned(),
                    message,
                })?;
            Ok((format!("{}.Value", schemas.namespace), schema.to_string()))
        }
        _ => Ok((
            format!("{}.Envelope", schemas.namespace),
            schemas.envelope_json.to_string(),
        )),
    }
}

/// The unwrapped record of `event`, if it has one.
#[allow(clippy::too_many_arguments)]
pub(super) fn unwrap_record(
    unwrap: &UnwrapTransform,
    encoder: &TableEncoder,
    key_id: Option<u32>,
    value_id: u32,
    topic: &Arc<str>,
    source: &SourceInfo,
    event: &ChangeEvent,
    index: usize,
    now_us: i64,
) -> Result<Option<EncodedRecord>, EnvelopeError> {
    let context = UnwrapContext {
        encoder,
        key_id,
        value_id,
        topic,
        source,
    };
    unwrap
        .record(&context, event, index, now_us)
        .map_err(|e| EnvelopeError::Schema {
            table: topic.to_string(),
            message: e.to_string(),
        })
}

/// A routed topic's registered schema ids.
struct OutboxTopic {
    topic: Arc<str>,
    key_id: u32,
    value_id: u32,
}

/// Outbox topics registered so far, by topic and payload schema.
#[derive(Default)]
pub(super) struct OutboxTopics {
    registered: HashMap<(String, String), OutboxTopic>,
}

impl OutboxTopics {
    /// The record an outbox change becomes, registering its topic's schemas first when new.
    /// Subjects are always topic-named (`<topic>-key`, `<topic>-value`): the schemas are
    /// primitive types, which record-name strategies cannot name.
    pub(super) async fn record(
        &mut self,
        registry: &RegistryClient,
        router: &OutboxTransform,
        columns: &OutboxColumns,
        event: &ChangeEvent,
        index: usize,
    ) -> Result<Option<EncodedRecord>, EnvelopeError> {
        let routed = router
            .route(columns, event)
            .map_err(|e| EnvelopeError::Schema {
                table: router.table.clone(),
                message: e.to_string(),
            })?;
        let Some(routed) = routed else {
            return Ok(None);
        };
        let payload_schema = columns.payload_schema.to_string();
        let cache_key = (routed.topic.clone(), payload_schema.clone());
        if !self.registered.contains_key(&cache_key) {
            let key_subject = format!("{}-key", routed.topic);
            let value_subject = format!("{}-value", routed.topic);
            let key_id = registry
                .with_retry(REGISTRY_RETRY_DEADLINE, || {
                    registry.schema_id(&key_subject, "\"string\"")
                })
                .await?;
            let value_id = registry
                .with_retry(REGISTRY_RETRY_DEADLINE, || {
                    registry.schema_id(&value_subject, &payload_schema)
                })
                .await?;
            tracing::info!(table = %router.table, topic = %routed.topic, key_id, value_id, "registered outbox event schemas");
            self.registered.insert(
                cache_key.clone(),
                OutboxTopic {
                    topic: Arc::from(routed.topic.as_str()),
                    key_id,
                    value_id,
                },
            );
        }
        let Some(registered) = self.registered.get(&cache_key) else {
            return Ok(None);
        };
        let key = routed.key.map(|key| {
            let mut out = Vec::with_capacity(8 + key.len());
            write_frame(&mut out, registered.key_id);
            write_str(&mut out, &key);
            out
        });
        let value = routed.payload.map(|payload| {
            let mut out = Vec::with_capacity(64);
            write_frame(&mut out, registered.value_id);
            match payload {
                Value::Bytes(bytes) => write_bytes(&mut out, bytes),
                Value::Text(text) | Value::Json(text) | Value::Jsonb(text) => {
                    write_str(&mut out, text)
                }
                other if columns.payload_schema == "bytes" => {
                    write_bytes(&mut out, pg_text(other).as_bytes())
                }
                other => write_str(&mut out, &pg_text(other)),
            }
            out
        });
        Ok(Some(EncodedRecord {
            origin: RecordOrigin::Event(index),
            topic: registered.topic.clone(),
            key,
            value,
            suppress_tombstone: false,
        }))
    }
}
