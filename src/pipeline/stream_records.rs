//! The stream's own records beside the row envelopes, each on its topic and only when its
//! option is on: transaction BEGIN/END (`provide_transaction_metadata`), logical decoding
//! messages (`logical_decoding_messages`) and heartbeats (when the source's
//! `heartbeat_interval_ms` is set: at most one per interval, riding on whichever batch passes
//! once the interval has elapsed, keepalive batches included). Their schemas are registered
//! once, before the first record that needs them.

use std::sync::Arc;
use std::time::Duration;

use sluice_api::{ChangeEvent, EncodedRecord, RecordOrigin, SourcePosition};
use tokio::time::Instant;

use super::envelope::EnvelopeError;
use super::transactions::{Boundary, Order, TransactionTracker};
use crate::schema::{
    encode_heartbeat_key, encode_heartbeat_value, encode_transaction_key, encode_transaction_value,
    heartbeat_key_schema, heartbeat_value_schema, message_key_schema, message_value_schema,
    transaction_key_schema, transaction_value_schema, MessageEncoder, RegistryClient, SourceInfo,
    SubjectNameStrategy, TopicOptions, TransactionBlock, TransactionBoundary,
    MESSAGE_DATA_COLLECTION,
};

/// Longest wait for an unreachable registry per request (as for row schemas).
const REGISTRY_RETRY_DEADLINE: Duration = Duration::from_secs(300);

/// A topic with its registered key and value schema ids.
#[derive(Clone, Debug)]
struct Registered {
    topic: Arc<str>,
    key_id: u32,
    value_id: u32,
}

/// One kind of stream record: its topic, its schemas (Connect full names for the subject
/// strategies) and, once registered, their ids.
struct Kind {
    topic: Arc<str>,
    key: (&'static str, serde_json::Value),
    value: (&'static str, serde_json::Value),
    registered: Option<Registered>,
}

impl Kind {
    fn new(
        topic: String,
        key: (&'static str, serde_json::Value),
        value: (&'static str, serde_json::Value),
    ) -> Self {
        Kind {
            topic: Arc::from(topic),
            key,
            value,
            registered: None,
        }
    }

    async fn register(
        &mut self,
        registry: &RegistryClient,
        strategy: SubjectNameStrategy,
    ) -> Result<&Registered, EnvelopeError> {
        if self.registered.is_none() {
            let mut ids = [0u32; 2];
            for (slot, ((name, schema), is_key)) in ids
                .iter_mut()
                .zip([(&self.key, true), (&self.value, false)])
            {
                let subject = strategy.subject(&self.topic, name, is_key);
                let text = schema.to_string();
                *slot = registry
                    .with_retry(REGISTRY_RETRY_DEADLINE, || {
                        registry.schema_id(&subject, &text)
                    })
                    .await?;
            }
            tracing::info!(topic = %self.topic, key_id = ids[0], value_id = ids[1], "registered stream record schemas");
            self.registered = Some(Registered {
                topic: self.topic.clone(),
                key_id: ids[0],
                value_id: ids[1],
            });
        }
        self.registered
            .as_ref()
            .ok_or_else(|| EnvelopeError::Schema {
                table: self.topic.to_string(),
                message: "schemas not registered".into(),
            })
    }
}

/// The heartbeat's pace.
struct Pace {
    every: Duration,
    last: Option<Instant>,
}

/// Builds the stream's own records for one pipeline.
pub(super) struct StreamRecords {
    server_name: String,
    transactions: Option<Kind>,
    messages: Option<(Kind, MessageEncoder)>,
    heartbeat: Option<(Kind, Pace)>,
    tracker: TransactionTracker,
    message_collection: Arc<str>,
    boundaries: Vec<Boundary>,
}

impl StreamRecords {
    /// The records `topics` asks for; heartbeats every `heartbeat` when set.
    pub fn new(
        prefix: &str,
        topics: &TopicOptions,
        source: &SourceInfo,
        heartbeat: Option<Duration>,
    ) -> Self {
        let transactions = topics.provide_transaction_metadata.then(|| {
            Kind::new(
                topics.transaction_topic(prefix),
                (
                    "io.debezium.connector.common.TransactionMetadataKey",
                    transaction_key_schema(),
                ),
                (
                    "io.debezium.connector.common.TransactionMetadataValue",
                    transaction_value_schema(),
                ),
            )
        });
        let messages = topics.logical_decoding_messages.then(|| {
            (
                Kind::new(
                    topics.message_topic(prefix),
                    (
                        "io.debezium.connector.postgresql.MessageKey",
                        message_key_schema(),
                    ),
                    (
                        "io.debezium.connector.postgresql.MessageValue",
                        message_value_schema(),
                    ),
                ),
                MessageEncoder::new(source),
            )
        });
        let heartbeat = heartbeat.map(|every| {
            (
                Kind::new(
                    topics.heartbeat_topic(prefix),
                    (
                        "io.debezium.connector.common.ServerNameKey",
                        heartbeat_key_schema(),
                    ),
                    (
                        "io.debezium.connector.common.Heartbeat",
                        heartbeat_value_schema(),
                    ),
                ),
                Pace { every, last: None },
            )
        });
        StreamRecords {
            server_name: prefix.to_owned(),
            transactions,
            messages,
            heartbeat,
            tracker: TransactionTracker::default(),
            message_collection: Arc::from(MESSAGE_DATA_COLLECTION),
            boundaries: Vec::new(),
        }
    }

    /// Register the schemas of every record kind that is on (once; later calls are free).
    pub async fn ensure_registered(
        &mut self,
        registry: &RegistryClient,
        strategy: SubjectNameStrategy,
    ) -> Result<(), EnvelopeError> {
        if let Some(kind) = self.transactions.as_mut() {
            kind.register(registry, strategy).await?;
        }
        if let Some((kind, _)) = self.messages.as_mut() {
            kind.register(registry, strategy).await?;
        }
        if let Some((kind, _)) = self.heartbeat.as_mut() {
            kind.register(registry, strategy).await?;
        }
        Ok(())
    }

    /// Whether logical decoding messages become records.
    pub fn messages_enabled(&self) -> bool {
        self.messages.is_some()
    }

    /// Count a record-producing event of `collection` in its transaction, appending the
    /// boundaries it crosses to `records`; its `transaction` block order when metadata is on.
    pub fn observe(
        &mut self,
        position: &SourcePosition,
        collection: &Arc<str>,
        records: &mut Vec<EncodedRecord>,
    ) -> Option<Order> {
        self.transactions.as_ref()?;
        let mut boundaries = std::mem::take(&mut self.boundaries);
        let order = self.tracker.observe(position, collection, &mut boundaries);
        for boundary in boundaries.drain(..) {
            self.push_boundary(&boundary, records);
        }
        self.boundaries = boundaries;
        order
    }

    /// The batch ends with `checkpoint`: the END of a transaction it completes, then a
    /// heartbeat when one is due.
    pub fn end_of_batch(
        &mut self,
        checkpoint: Option<sluice_api::Lsn>,
        now_ms: i64,
        records: &mut Vec<EncodedRecord>,
    ) {
        if self.transactions.is_some() {
            if let Some(end) = self.tracker.end_of_batch(checkpoint) {
                self.push_boundary(&end, records);
            }
        }
        if let Some((kind, pace)) = self.heartbeat.as_mut() {
            let now = Instant::now();
            let due = pace
                .last
                .is_none_or(|last| now.duration_since(last) >= pace.every);
            if let (true, Some(registered)) = (due, kind.registered.as_ref()) {
                pace.last = Some(now);
                let mut key = Vec::with_capacity(16 + self.server_name.len());
                encode_heartbeat_key(&mut key, registered.key_id, &self.server_name);
                let mut value = Vec::with_capacity(16);
                encode_heartbeat_value(&mut value, registered.value_id, now_ms);
                records.push(EncodedRecord {
                    origin: RecordOrigin::Heartbeat,
                    topic: registered.topic.clone(),
                    key: Some(key),
                    value: Some(value),
                    suppress_tombstone: false,
                });
            }
        }
    }

    /// The record of logical message `event` (at `index` of its batch).
    pub fn message_record(
        &mut self,
        event: &ChangeEvent,
        index: usize,
        now_us: i64,
        records: &mut Vec<EncodedRecord>,
    ) -> Result<(), EnvelopeError> {
        let collection = self.message_collection.clone();
        let order = self.observe(&event.position, &collection, records);
        let Some((kind, encoder)) = self.messages.as_ref() else {
            return Ok(());
        };
        let Some(registered) = kind.registered.as_ref() else {
            return Ok(());
        };
        let fail = |e: crate::schema::EncodeError| EnvelopeError::Schema {
            table: registered.topic.to_string(),
            message: e.to_string(),
        };
        let block = order.as_ref().map(block_of);
        let mut key = Vec::with_capacity(32);
        encoder
            .encode_key(event, registered.key_id, &mut key)
            .map_err(fail)?;
        let mut value =
            Vec::with_capacity(128 + event.message.as_ref().map_or(0, |m| m.content.len()));
        encoder
            .encode_value(
                event,
                registered.value_id,
                now_us,
                block.as_ref(),
                &mut value,
            )
            .map_err(fail)?;
        records.push(EncodedRecord {
            origin: RecordOrigin::Event(index),
            topic: registered.topic.clone(),
            key: Some(key),
            value: Some(value),
            suppress_tombstone: false,
        });
        Ok(())
    }

    fn push_boundary(&self, boundary: &Boundary, records: &mut Vec<EncodedRecord>) {
        let Some(registered) = self
            .transactions
            .as_ref()
            .and_then(|k| k.registered.as_ref())
        else {
            return;
        };
        let mut key = Vec::with_capacity(8 + boundary.id.len());
        encode_transaction_key(&mut key, registered.key_id, &boundary.id);
        let mut value = Vec::with_capacity(64);
        encode_transaction_value(
            &mut value,
            registered.value_id,
            &TransactionBoundary {
                status: if boundary.begin { "BEGIN" } else { "END" },
                id: &boundary.id,
                event_count: (!boundary.begin).then_some(boundary.event_count),
                data_collections: (!boundary.begin).then_some(boundary.collections.as_slice()),
                ts_ms: boundary.ts_ms,
            },
        );
        records.push(EncodedRecord {
            origin: RecordOrigin::Transaction {
                xid: boundary.xid,
                commit_lsn: boundary.commit_lsn,
            },
            topic: registered.topic.clone(),
            key: Some(key),
            value: Some(value),
            suppress_tombstone: false,
        });
    }
}

/// The envelope's `transaction` block for `order`.
pub(super) fn block_of(order: &Order) -> TransactionBlock<'_> {
    TransactionBlock {
        id: &order.id,
        total_order: i64::try_from(order.total_order).unwrap_or(i64::MAX),
        data_collection_order: i64::try_from(order.data_collection_order).unwrap_or(i64::MAX),
    }
}
