//! [`KafkaSink`]: produces each batch's Avro records (and tombstones) keyed to their topics and
//! returns only once every record has a successful delivery report, so an acknowledged batch
//! is durable on every in-sync replica. Batches are produced one after another and idempotence
//! keeps per-partition order under retries, so everything before an acknowledged batch is
//! durable too.

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
    /// The last attempt failed: the next one starts with a new producer. Every record of the
    /// failed attempt has its report by then, so nothing is left behind, and a new producer id
    /// spares the retry any sequence state the cluster lost or never had (a broker that came
    /// back empty, a timed-out idempotent sequence).
    renew_producer: bool,
}

impl KafkaSink {
    /// Build the clients. Nothing connects yet: an unreachable cluster shows as a transient
    /// error on the first batch, and the core retries.
    pub fn new(config: &KafkaSinkConfig) -> Result<Self, KafkaSinkError> {
        Ok(KafkaSink {
            producer: create_producer(config)?,
            admin: create_admin(config)?,
            config: config.clone(),
            ready_topics: HashSet::new(),
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

    /// Produce `records` in order and wait for every delivery report. The first failure is
    /// returned, but only after every report of the batch is in, so that no record of this
    /// attempt is still in flight when the batch is retried.
    async fn produce_all(&self, records: &[OutgoingRecord<'_>]) -> Result<(), KafkaSinkError> {
        let mut pending: VecDeque<(&str, DeliveryFuture)> = VecDeque::new();
        let mut first_error: Option<KafkaSinkError> = None;
        for record in records {
            let mut future_record = to_future_record(record);
            loop {
                match self.producer.send_result(future_record) {
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
        if records.is_empty() {
            return Ok(());
        }
        if self.renew_producer {
            self.producer = create_producer(&self.config)?;
            self.renew_producer = false;
        }
        self.prepare_topics(&records).await?;
        if let Err(error) = self.produce_all(&records).await {
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
