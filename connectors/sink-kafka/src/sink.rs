//! [`KafkaSink`]: produces each batch's Avro records (and tombstones) keyed to their topics and
//! returns only once every record has a successful delivery report, so an acknowledged batch
//! is durable on every in-sync replica. Batches are produced one after another and idempotence
//! keeps per-partition order under retries, so everything before an acknowledged batch is
//! durable too.
//!
//! Under `exactly_once` the writing goes through [`TransactionalWriter`] instead: the same
//! records, inside Kafka transactions committed with the position they reach.

use std::collections::{HashSet, VecDeque};
use std::time::Duration;

use rdkafka::admin::AdminClient;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord, Producer};
use sluice_api::{Batch, Sink, SinkError};

use crate::client::{create_admin, create_producer, prepare_topic, LogContext};
use crate::config::KafkaSinkConfig;
use crate::encode::{lacks_records, plan_batch, OutgoingRecord};
use crate::error::KafkaSinkError;
use crate::transaction::TransactionalWriter;

/// How long producing pauses when librdkafka's queue is full and none of this batch's own
/// records is in flight to wait for (records of an earlier, failed attempt still drain).
const QUEUE_FULL_PAUSE: Duration = Duration::from_millis(5);

/// Longest wait for buffered records on orderly shutdown.
const CLOSE_FLUSH_TIMEOUT: Duration = Duration::from_secs(30);

/// A Kafka destination: one idempotent producer, topics prepared on first use.
pub struct KafkaSink {
    config: KafkaSinkConfig,
    producer: FutureProducer<LogContext>,
    admin: AdminClient<LogContext>,
    /// Topics known to exist (created or checked) in this run.
    ready_topics: HashSet<String>,
    /// Set under `exactly_once`: writes go through transactions.
    transactional: Option<TransactionalWriter>,
    /// The last attempt failed: the next one starts with a new producer. Every record of the
    /// failed attempt has its report by then, so nothing is left behind, and a new producer id
    /// spares the retry any sequence state the cluster lost or never had (a broker that came
    /// back empty, a timed-out idempotent sequence).
    renew_producer: bool,
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
            admin: create_admin(config)?,
            config: config.clone(),
            ready_topics: HashSet::new(),
            transactional,
            renew_producer: false,
        })
    }

    /// Prepare every topic of `records` not yet prepared in this run, in first-use order.
    async fn prepare_topics(
        &mut self,
        records: &[OutgoingRecord<'_>],
    ) -> Result<(), KafkaSinkError> {
        for record in records {
            if self.ready_topics.contains(record.topic) {
                continue;
            }
            prepare_topic(&self.config, &self.admin, &self.producer, record.topic).await?;
            self.ready_topics.insert(record.topic.to_owned());
        }
        Ok(())
    }
}

/// Produce `records` in order and wait for every delivery report. The first failure is
/// returned, but only after every report of the batch is in, so that no record of this
/// attempt is still in flight when the batch is retried.
pub(crate) async fn produce_all<'r, 'a: 'r>(
    producer: &FutureProducer<LogContext>,
    records: impl IntoIterator<Item = &'r OutgoingRecord<'a>>,
) -> Result<(), KafkaSinkError> {
    {
        let mut pending: VecDeque<(&str, DeliveryFuture)> = VecDeque::new();
        let mut first_error: Option<KafkaSinkError> = None;
        for record in records {
            let mut future_record = to_future_record(record);
            loop {
                match producer.send_result(future_record) {
                    Ok(delivery) => {
                        pending.push_back((record.topic, delivery));
                        break;
                    }
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                        // Backpressure: wait for the oldest record of ours to be delivered
                        // (or, with none in flight, for librdkafka to drain), then retry.
                        future_record = back;
                        match pending.pop_front() {
                            Some((topic, delivery)) => note_failure(
                                &mut first_error,
                                await_delivery(topic, delivery).await,
                            ),
                            None => tokio::time::sleep(QUEUE_FULL_PAUSE).await,
                        }
                    }
                    Err((source, _)) => {
                        note_failure(
                            &mut first_error,
                            Err(KafkaSinkError::Produce {
                                topic: record.topic.to_owned(),
                                source,
                            }),
                        );
                        break;
                    }
                }
            }
            if first_error.is_some() {
                break;
            }
        }
        while let Some((topic, delivery)) = pending.pop_front() {
            note_failure(&mut first_error, await_delivery(topic, delivery).await);
        }
        match first_error {
            Some(error) => Err(error),
            None => Ok(()),
        }
    }
}

/// Keep the first failure of a batch.
fn note_failure(first: &mut Option<KafkaSinkError>, result: Result<(), KafkaSinkError>) {
    if let Err(error) = result {
        if first.is_none() {
            *first = Some(error);
        }
    }
}

/// One record's delivery report as a result.
async fn await_delivery(topic: &str, delivery: DeliveryFuture) -> Result<(), KafkaSinkError> {
    match delivery.await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err((source, _message))) => Err(KafkaSinkError::Produce {
            topic: topic.to_owned(),
            source,
        }),
        Err(_canceled) => Err(KafkaSinkError::Canceled {
            topic: topic.to_owned(),
        }),
    }
}

/// The librdkafka record for `record`: partitioned by its key's murmur2 hash (the producer's
/// partitioner), so every change of one row lands on one partition, in order.
fn to_future_record<'a>(record: &'a OutgoingRecord<'a>) -> FutureRecord<'a, [u8], [u8]> {
    let mut headers = OwnedHeaders::new_with_capacity(record.headers.len());
    for (name, value) in &record.headers {
        headers = headers.insert(Header {
            key: name,
            value: Some(value.as_bytes()),
        });
    }
    let mut out = FutureRecord::to(record.topic).headers(headers);
    if let Some(key) = record.key {
        out = out.key(key);
    }
    if let Some(value) = record.value {
        out = out.payload(value);
    }
    out
}

#[async_trait::async_trait]
impl Sink for KafkaSink {
    async fn write(&mut self, batch: &Batch) -> Result<(), SinkError> {
        if lacks_records(batch) {
            return Err(KafkaSinkError::NoRecords.into());
        }
        let records = plan_batch(batch, self.config.tombstones_on_delete);
        // A transactional writer sees every batch: one without records may still complete the
        // PostgreSQL transaction its open Kafka transaction waits for.
        if records.is_empty() && self.transactional.is_none() {
            return Ok(());
        }
        self.prepare_topics(&records).await?;
        if let Some(writer) = self.transactional.as_mut() {
            return writer.write(batch, &records).await.map_err(|error| {
                if let Some(topic) = error.unknown_topic() {
                    self.ready_topics.remove(topic);
                }
                error.into()
            });
        }
        if self.renew_producer {
            self.producer = create_producer(&self.config)?;
            self.renew_producer = false;
        }
        if let Err(error) = produce_all(&self.producer, &records).await {
            self.renew_producer = true;
            // A topic deleted behind the sink's back is prepared again on the retry.
            if let Some(topic) = error.unknown_topic() {
                self.ready_topics.remove(topic);
            }
            return Err(error.into());
        }
        Ok(())
    }

    async fn close(&mut self) -> Result<(), SinkError> {
        if let Some(writer) = self.transactional.as_mut() {
            writer.close().await;
        }
        // `write` already waited for every report; this only drains what a failed attempt
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
