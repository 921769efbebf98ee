//! [`KafkaSink`]: produces each batch's Avro records (and tombstones) keyed to their topics; a
//! batch is durable once every record has a successful delivery report, so an acknowledged
//! batch is on every in-sync replica. The sink is pipelined: the core hands it the next batches
//! while earlier ones still wait for their reports, and acknowledges in order. One producer
//! (idempotent, or with one request in flight under `idempotence = false`) keeps per-partition
//! order across all of them and under its retries, so everything before an acknowledged batch
//! is durable too.
//!
//! Under `exactly_once` the writing goes through [`TransactionalWriter`] instead: the same
//! records, inside Kafka transactions committed with the position they reach.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use rdkafka::admin::AdminClient;
use rdkafka::producer::{FutureProducer, Producer};
use sluice_api::{Batch, PendingWrite, Sink, SinkError};

use crate::client::{create_admin, create_producer, prepare_topic, LogContext};
use crate::config::KafkaSinkConfig;
use crate::encode::{lacks_records, plan_batch, OutgoingRecord};
use crate::error::KafkaSinkError;
use crate::produce::Produced;
use crate::transaction::TransactionalWriter;

/// Longest wait for buffered records on orderly shutdown.
const CLOSE_FLUSH_TIMEOUT: Duration = Duration::from_secs(30);

/// A Kafka destination: one producer, topics prepared on first use.
pub struct KafkaSink {
    config: KafkaSinkConfig,
    producer: FutureProducer<LogContext>,
    topics: Topics,
    /// Set under `exactly_once`: writes go through transactions.
    transactional: Option<TransactionalWriter>,
    /// What failed writes leave for the next one, shared with the writes in flight.
    aftermath: Arc<Mutex<Aftermath>>,
}

/// What a failed write leaves for the next: the core begins again only once every write in
/// flight has its outcome, so by then nothing of the failed round is left in the producer.
#[derive(Default)]
struct Aftermath {
    /// Start with a new producer: a new producer id spares the retry any sequence state the
    /// cluster lost or never had (a broker that came back empty, a timed-out idempotent
    /// sequence).
    renew_producer: bool,
    /// Topics the cluster said it does not know (deleted behind the sink's back): prepared
    /// again before use.
    unknown_topics: Vec<String>,
}

impl Aftermath {
    /// Note a failed write.
    fn record(shared: &Mutex<Aftermath>, error: &KafkaSinkError) {
        let mut aftermath = shared.lock().unwrap_or_else(PoisonError::into_inner);
        aftermath.renew_producer = true;
        if let Some(topic) = error.unknown_topic() {
            aftermath.unknown_topics.push(topic.to_owned());
        }
    }
}

impl KafkaSink {
    /// Build the clients. Nothing connects yet: an unreachable cluster shows as a transient
    /// error on the first batch, and the core retries.
    /// `pipeline` and `sink` name the exactly-once defaults (transactional id, offsets topic
    /// and key); they do not matter otherwise.
    pub fn new(
        config: &KafkaSinkConfig,
        pipeline: &str,
        sink: &str,
    ) -> Result<Self, KafkaSinkError> {
        let transactional = match &config.exactly_once {
            Some(eos) => Some(TransactionalWriter::new(config, eos, pipeline, sink)?),
            None => None,
        };
        Ok(KafkaSink {
            producer: create_producer(config)?,
            topics: Topics {
                admin: create_admin(config)?,
                ready: HashSet::new(),
            },
            config: config.clone(),
            transactional,
            aftermath: Arc::default(),
        })
    }

    /// Act on what failed writes left: forget unknown topics, start a new producer.
    fn recover(&mut self) -> Result<(), KafkaSinkError> {
        let aftermath = std::mem::take(
            &mut *self
                .aftermath
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        );
        for topic in &aftermath.unknown_topics {
            self.topics.ready.remove(topic);
        }
        if aftermath.renew_producer {
            self.producer = create_producer(&self.config)?;
        }
        Ok(())
    }

    /// Hand every record of `batch` to the producer; the returned write resolves
    /// once all have their delivery reports. A failure is noted for the next call.
    async fn produce(&mut self, batch: &Batch) -> Result<PendingWrite, SinkError> {
        if lacks_records(batch) {
            return Err(KafkaSinkError::NoRecords.into());
        }
        let records = plan_batch(batch, self.config.tombstones_on_delete);
        if records.is_empty() {
            return Ok(Box::pin(async { Ok(()) }));
        }
        self.recover()?;
        self.topics
            .prepare(&self.config, &self.producer, &records)
            .await?;
        let produced = Produced::start(&self.producer, &records).await;
        let aftermath = self.aftermath.clone();
        Ok(Box::pin(async move {
            produced.settle().await.map_err(|error| {
                Aftermath::record(&aftermath, &error);
                error.into()
            })
        }))
    }
}

/// The topics this sink writes to: made (or checked) on first use.
struct Topics {
    admin: AdminClient<LogContext>,
    /// Topics known to exist (created or checked) in this run.
    ready: HashSet<String>,
}

impl Topics {
    /// Prepare every topic of `records` not prepared in this run, in first-use order.
    async fn prepare(
        &mut self,
        config: &KafkaSinkConfig,
        producer: &FutureProducer<LogContext>,
        records: &[OutgoingRecord<'_>],
    ) -> Result<(), KafkaSinkError> {
        for record in records {
            if self.ready.contains(record.topic) {
                continue;
            }
            prepare_topic(config, &self.admin, producer, record.topic).await?;
            self.ready.insert(record.topic.to_owned());
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl Sink for KafkaSink {
    async fn write(&mut self, batch: &Batch) -> Result<(), SinkError> {
        let Some(writer) = self.transactional.as_mut() else {
            return self.produce(batch).await?.await;
        };
        if lacks_records(batch) {
            return Err(KafkaSinkError::NoRecords.into());
        }
        // A transactional writer sees every batch: one without records may still complete the
        // PostgreSQL transaction its open Kafka transaction waits for.
        let records = plan_batch(batch, self.config.tombstones_on_delete);
        self.topics
            .prepare(&self.config, &self.producer, &records)
            .await?;
        writer.write(batch, &records).await.map_err(|error| {
            if let Some(topic) = error.unknown_topic() {
                self.topics.ready.remove(topic);
            }
            error.into()
        })
    }

    /// Every batch but under `exactly_once`, whose Kafka transactions take one batch at a time.
    fn pipelined(&self) -> bool {
        self.transactional.is_none()
    }

    async fn begin_write(&mut self, batch: Arc<Batch>) -> Result<PendingWrite, SinkError> {
        self.produce(&batch).await
    }

    async fn close(&mut self) -> Result<(), SinkError> {
        if let Some(writer) = self.transactional.as_mut() {
            writer.close().await;
        }
        // Every write in flight has its report by now; this only drains what a failed attempt
        // left queued. flush blocks inside librdkafka.
        let producer = self.producer.clone();
        let flushed = tokio::task::spawn_blocking(move || producer.flush(CLOSE_FLUSH_TIMEOUT))
            .await
            .map_err(|e| SinkError::transient(format!("flushing the kafka producer: {e}")))?;
        flushed.map_err(|e| {
            SinkError::transient(format!("flushing the kafka producer: {e}")).with_source(e)
        })
    }
}
