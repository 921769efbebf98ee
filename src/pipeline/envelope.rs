//! The envelope stage: before a batch fans out, each row event becomes a Debezium-shaped Avro
//! key and envelope in the Confluent wire format. A table's schemas are derived once per table
//! shape and registered (after a compatibility check) **before** the first event that uses
//! them; ids are cached, so the hot path never waits on the registry. A shape the registry
//! refuses stops the pipeline there: nothing at or after that event is acknowledged.
//!
//! Routing rules decide each table's topic (and name its schemas after it). Beside the row
//! envelopes the stage places the stream's own records where they happen: transaction
//! boundaries, logical decoding messages and heartbeats ([`super::stream_records`]).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sluice_api::{Batch, ChangeEvent, EncodedRecord, Op, RecordOrigin, TableSchema};
use sluice_source_postgres::types::qualified_name;
use sluice_source_postgres::ConnectionConfig;

use super::record_transforms::{self, OutboxTopics, RecordPlan};
use super::stream_records::{block_of, StreamRecords};
use super::transactions::Order;
use crate::config::{Config, OnIncompatible, RegistryConfig};
use crate::schema::{
    build_table_schemas, EnvelopeOptions, RegistryClient, RegistryClientConfig, RegistryError,
    SourceInfo, SubjectNameStrategy, TableEncoder, TableSchemas, UserTypes,
};

/// Longest wait for an unreachable registry per request before the stage reports it (the
/// pipeline then stops without acknowledging; a restart resumes).
pub(super) const REGISTRY_RETRY_DEADLINE: Duration = Duration::from_secs(300);

/// Why a batch could not be encoded.
#[derive(Debug, thiserror::Error)]
pub enum EnvelopeError {
    #[error(
        "table {table} ({changes}): its new schema breaks {rule} of subject {subject:?}; the \
         pipeline stops before the first event that needs it: {details}"
    )]
    Incompatible {
        table: String,
        changes: String,
        subject: String,
        rule: String,
        details: String,
    },
    #[error("table {table}: {message}")]
    Schema { table: String, message: String },
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error("reading the table catalog: {0}")]
    Types(String),
}

/// One table shape's schemas, ids and encoder.
struct TablePlan {
    shape: Arc<TableSchema>,
    schemas: TableSchemas,
    encoder: TableEncoder,
    key_id: Option<u32>,
    value_id: u32,
    topic: Arc<str>,
    /// `schema.table`: the data collection of transaction metadata.
    collection: Arc<str>,
    /// The record transform shaping the table's records, if any.
    record: Option<RecordPlan>,
}

/// Encodes batches for one pipeline.
pub struct EnvelopeStage {
    prefix: String,
    options: EnvelopeOptions,
    types: UserTypes,
    source: SourceInfo,
    registry: RegistryClient,
    strategy: SubjectNameStrategy,
    on_incompatible: OnIncompatible,
    connection: ConnectionConfig,
    tables: HashMap<u32, TablePlan>,
    stream: StreamRecords,
    transforms: crate::transform::Transforms,
    outbox_topics: OutboxTopics,
}

impl EnvelopeStage {
    /// The stage for `config`, talking to the registry at `registry_url`.
    pub fn new(
        config: &Config,
        registry: &RegistryConfig,
        registry_url: &str,
    ) -> Result<Self, EnvelopeError> {
        let client = RegistryClient::new(RegistryClientConfig {
            url: registry_url.to_string(),
            username: registry.username.clone(),
            password: registry.password.clone(),
            ca_file: registry.ca_file.clone(),
            auto_register: registry.auto_register,
            request_timeout: registry.request_timeout,
        })?;
        let source = SourceInfo {
            version: env!("CARGO_PKG_VERSION").to_string(),
            server_name: config.pipeline.name.clone(),
            database: config.source.connection.dbname.clone(),
        };
        let stream = StreamRecords::new(
            &config.pipeline.name,
            &config.envelope.topics,
            &source,
            config.source.heartbeat_interval,
        );
        Ok(EnvelopeStage {
            prefix: config.pipeline.name.clone(),
            options: config.envelope.clone(),
            types: UserTypes::default(),
            source,
            registry: client,
            strategy: registry.subject_name_strategy,
            on_incompatible: registry.on_incompatible,
            connection: config.source.connection.clone(),
            tables: HashMap::new(),
            stream,
            transforms: config.transforms.clone(),
            outbox_topics: OutboxTopics::default(),
        })
    }

    /// Encode every row event of `batch` into `batch.records`, with the stream's own records
    /// (transaction boundaries, messages, heartbeats) where they happen.
    pub async fn encode(&mut self, batch: &mut Batch) -> Result<(), EnvelopeError> {
        self.stream
            .ensure_registered(&self.registry, self.strategy)
            .await?;
        let now_us = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_micros() as i64);
        let mut records = Vec::with_capacity(batch.events.len());
        for (index, event) in batch.events.iter().enumerate() {
            if event.op == Op::Truncate {
                continue;
            }
            match &event.table {
                Some(table) => {
                    self.plan_for(table).await?;
                    let plan = self.tables.get(&table.relation_id).ok_or_else(|| {
                        EnvelopeError::Schema {
                            table: table.qualified_name(),
                            message: "no plan".into(),
                        }
                    })?;
                    let order =
                        self.stream
                            .observe(&event.position, &plan.collection, &mut records);
                    match &plan.record {
                        None => {
                            records.push(encode_event(plan, event, index, now_us, order.as_ref())?)
                        }
                        Some(RecordPlan::Unwrap(unwrap)) => {
                            records.extend(record_transforms::unwrap_record(
                                unwrap,
                                &plan.encoder,
                                plan.key_id,
                                plan.value_id,
                                &plan.topic,
                                &self.source,
                                event,
                                index,
                                now_us,
                            )?)
                        }
                        Some(RecordPlan::Outbox { router, columns }) => records.extend(
                            self.outbox_topics
                                .record(&self.registry, router, columns, event, index)
                                .await?,
                        ),
                    }
                }
                None if event.message.is_some() && self.stream.messages_enabled() => {
                    self.stream
                        .message_record(event, index, now_us, &mut records)?;
                }
                None => {}
            }
        }
        self.stream
            .end_of_batch(batch.checkpoint, now_us.div_euclid(1000), &mut records);
        batch.records = records;
        Ok(())
    }

    /// The plan for `table`'s current shape, deriving and registering schemas on a change.
    async fn plan_for(&mut self, table: &Arc<TableSchema>) -> Result<&TablePlan, EnvelopeError> {
        let current = self.tables.get(&table.relation_id);
        let fresh = !matches!(
            current,
            Some(plan) if Arc::ptr_eq(&plan.shape, table) || *plan.shape == **table
        );
        if fresh {
            let plan = self.derive(table).await?;
            self.tables.insert(table.relation_id, plan);
        }
        self.tables
            .get_mut(&table.relation_id)
            .map(|plan| {
                plan.shape = table.clone();
                &*plan
            })
            .ok_or_else(|| EnvelopeError::Schema {
                table: table.qualified_name(),
                message: "no plan".into(),
            })
    }

    async fn derive(&mut self, table: &Arc<TableSchema>) -> Result<TablePlan, EnvelopeError> {
        let name = table.qualified_name();
        let changes = match self.tables.get(&table.relation_id) {
            Some(previous) => describe_changes(&previous.shape, table),
            None => "first seen".to_string(),
        };
        if table.columns.iter().any(|c| !self.knows_type(&c.type_name)) {
            self.types = load_user_types(&self.connection).await?;
        }
        // NOT NULL is not in the replication stream: read it from the catalog.
        let not_null = load_not_null(&self.connection, table.relation_id).await?;
        let schemas =
            build_table_schemas(&self.prefix, table, &not_null, &self.options, &self.types)
                .map_err(|e| EnvelopeError::Schema {
                    table: name.clone(),
                    message: e.to_string(),
                })?;
        if let Some(previous) = self.tables.get(&table.relation_id) {
            // The local verdict (new schema reading data of the previous one) goes to the log;
            // the registry's, under the subject's configured level, decides.
            if let Err(e) =
                crate::registry::can_read(&previous.schemas.envelope_avro, &schemas.envelope_avro)
            {
                tracing::warn!(table = %name, %changes, error = %e, "the new schema cannot read data of the previous one");
            }
        }
        let record = RecordPlan::of(&self.transforms, table)?;
        if record.as_ref().is_some_and(|r| !r.uses_table_topic()) {
            // The outbox table's rows go to the topics they name: nothing to register here.
            return Ok(self.plan(table, schemas, None, 0, record));
        }
        let (value_name, value_schema) =
            record_transforms::value_schema(record.as_ref(), &schemas, &name)?;
        let value_subject = self.strategy.subject(&schemas.topic, &value_name, false);
        self.ensure_compatible(&name, &changes, &value_subject, &value_schema)
            .await?;
        let registry = self.registry.clone();
        let value_id = registry
            .with_retry(REGISTRY_RETRY_DEADLINE, || {
                registry.schema_id(&value_subject, &value_schema)
            })
            .await?;
        let key_id = match &schemas.key_json {
            None => None,
            Some(key) => {
                let key_name = format!("{}.Key", schemas.namespace);
                let subject = self.strategy.subject(&schemas.topic, &key_name, true);
                let text = key.to_string();
                self.ensure_compatible(&name, &changes, &subject, &text)
                    .await?;
                Some(
                    registry
                        .with_retry(REGISTRY_RETRY_DEADLINE, || {
                            registry.schema_id(&subject, &text)
                        })
                        .await?,
                )
            }
        };
        tracing::info!(table = %name, value_id, key_id, "registered envelope schemas");
        Ok(self.plan(table, schemas, key_id, value_id, record))
    }

    fn plan(
        &self,
        table: &Arc<TableSchema>,
        schemas: TableSchemas,
        key_id: Option<u32>,
        value_id: u32,
        record: Option<RecordPlan>,
    ) -> TablePlan {
        let encoder = TableEncoder::new(
            &schemas,
            &self.source,
            &self.options.unavailable_value_placeholder,
        );
        TablePlan {
            shape: table.clone(),
            topic: Arc::from(schemas.topic.as_str()),
            collection: Arc::from(table.qualified_name().as_str()),
            schemas,
            encoder,
            key_id,
            value_id,
            record,
        }
    }

    /// Ask the registry whether `schema` may become `subject`'s next version; refuse (stop) or
    /// override per `on_incompatible`.
    async fn ensure_compatible(
        &self,
        table: &str,
        changes: &str,
        subject: &str,
        schema: &str,
    ) -> Result<(), EnvelopeError> {
        let registry = &self.registry;
        let verdict = registry
            .with_retry(REGISTRY_RETRY_DEADLINE, || {
                registry.check_compatibility(subject, schema)
            })
            .await?;
        if verdict.is_compatible {
            return Ok(());
        }
        let details = verdict.messages.join("; ");
        match self.on_incompatible {
            OnIncompatible::Stop => {
                let rule = registry
                    .with_retry(REGISTRY_RETRY_DEADLINE, || {
                        registry.compatibility_level(subject)
                    })
                    .await
                    .unwrap_or_else(|_| "the subject's compatibility level".into());
                Err(EnvelopeError::Incompatible {
                    table: table.to_string(),
                    changes: changes.to_string(),
                    subject: subject.to_string(),
                    rule: format!("{rule} compatibility"),
                    details,
                })
            }
            OnIncompatible::Register => {
                tracing::warn!(%table, %subject, %details, "registering an incompatible schema (on_incompatible = \"register\")");
                registry
                    .with_retry(REGISTRY_RETRY_DEADLINE, || {
                        registry.set_compatibility_level(subject, "NONE")
                    })
                    .await?;
                Ok(())
            }
        }
    }

    fn knows_type(&self, type_name: &str) -> bool {
        !type_name.contains('.')
            || self.types.enums.contains_key(type_name)
            || self.types.domains.contains_key(type_name)
    }
}

/// What changed between two shapes of a table, column by column, for error messages.
fn describe_changes(old: &TableSchema, new: &TableSchema) -> String {
    let mut changes = Vec::new();
    for column in &new.columns {
        match old.columns.iter().find(|c| c.name == column.name) {
            None => changes.push(format!(
                "column {} added as {}",
                column.name, column.type_name
            )),
            Some(before)
                if before.type_oid != column.type_oid
                    || before.type_modifier != column.type_modifier =>
            {
                changes.push(format!(
                    "column {}: {} -> {}",
                    column.name, before.type_name, column.type_name
                ))
            }
            Some(_) => {}
        }
    }
    for column in &old.columns {
        if !new.columns.iter().any(|c| c.name == column.name) {
            changes.push(format!("column {} dropped", column.name));
        }
    }
    if changes.is_empty() {
        "key or identity changed".to_string()
    } else {
        changes.join(", ")
    }
}

fn encode_event(
    plan: &TablePlan,
    event: &ChangeEvent,
    index: usize,
    now_us: i64,
    order: Option<&Order>,
) -> Result<EncodedRecord, EnvelopeError> {
    let fail = |e: crate::schema::EncodeError| EnvelopeError::Schema {
        table: plan.schemas.topic.clone(),
        message: e.to_string(),
    };
    let key = match plan.key_id {
        Some(id) => {
            let mut out = Vec::with_capacity(32);
            plan.encoder
                .encode_key(event, id, &mut out)
                .map_err(fail)?
                .then_some(out)
        }
        None => None,
    };
    let mut value = Vec::with_capacity(256);
    let block = order.map(block_of);
    plan.encoder
        .encode_value_in(event, plan.value_id, now_us, block.as_ref(), &mut value)
        .map_err(fail)?;
    Ok(EncodedRecord {
        origin: RecordOrigin::Event(index),
        topic: plan.topic.clone(),
        key,
        value: Some(value),
        suppress_tombstone: false,
    })
}

/// The table's columns declared NOT NULL.
async fn load_not_null(
    connection: &ConnectionConfig,
    relation_id: u32,
) -> Result<HashSet<String>, EnvelopeError> {
    let client = connection
        .connect_sql()
        .await
        .map_err(|e| EnvelopeError::Types(e.to_string()))?;
    let rows = client
        .query(
            "SELECT attname::text FROM pg_attribute \
             WHERE attrelid = $1 AND attnum > 0 AND attnotnull AND NOT attisdropped",
            &[&relation_id],
        )
        .await
        .map_err(|e| EnvelopeError::Types(e.to_string()))?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// Enum labels and domain bases of the source database, keyed by type name as events show it.
async fn load_user_types(connection: &ConnectionConfig) -> Result<UserTypes, EnvelopeError> {
    let types = |e: sluice_source_postgres::SourceError| EnvelopeError::Types(e.to_string());
    let client = connection.connect_sql().await.map_err(types)?;
    let sql_err = |e: tokio_postgres::Error| EnvelopeError::Types(e.to_string());
    let mut user = UserTypes::default();
    let enums = client
        .query(
            "SELECT n.nspname::text, t.typname::text, array_agg(e.enumlabel::text ORDER BY e.enumsortorder) \
             FROM pg_enum e JOIN pg_type t ON t.oid = e.enumtypid \
             JOIN pg_namespace n ON n.oid = t.typnamespace GROUP BY 1, 2",
            &[],
        )
        .await
        .map_err(sql_err)?;
    for row in enums {
        user.enums
            .insert(qualified_name(row.get(0), row.get(1)), row.get(2));
    }
    let domains = client
        .query(
            "SELECT n.nspname::text, t.typname::text, bn.nspname::text, b.typname::text, t.typtypmod \
             FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace \
             JOIN pg_type b ON b.oid = t.typbasetype JOIN pg_namespace bn ON bn.oid = b.typnamespace \
             WHERE t.typtype = 'd'",
            &[],
        )
        .await
        .map_err(sql_err)?;
    for row in domains {
        let base = qualified_name(row.get(2), row.get(3));
        user.domains
            .insert(qualified_name(row.get(0), row.get(1)), (base, row.get(4)));
    }
    Ok(user)
}
