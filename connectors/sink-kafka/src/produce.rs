//! Handing records to librdkafka and collecting their delivery reports. [`Produced`] holds
//! one batch's reports still to come and owns nothing of the batch (librdkafka copied the
//! records), so the sink can return it as a `'static` future while the next batch is produced.

use std::collections::VecDeque;
use std::time::Duration;

use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord};

use crate::client::LogContext;
use crate::encode::OutgoingRecord;
use crate::error::KafkaSinkError;

/// How long producing pauses when librdkafka's queue is full and none of this batch's own
/// records is in flight to wait for (records of earlier batches, or of an earlier failed
/// attempt, still drain).
const QUEUE_FULL_PAUSE: Duration = Duration::from_millis(5);

/// The records of one batch handed to the producer, with the reports still to come.
pub(crate) struct Produced {
    /// The distinct topics of the records, named in errors; reports refer to them by index so
    /// that a record costs no topic copy.
    topics: Vec<String>,
    pending: VecDeque<(usize, DeliveryFuture)>,
    first_error: Option<KafkaSinkError>,
}

impl Produced {
    /// Hand `records` to `producer` in order. A full queue is backpressure: wait for the
    /// oldest record of this batch to be delivered (or, with none in flight, for librdkafka to
    /// drain), then go on. Stops at the first failure, which [`settle`](Self::settle) returns
    /// once every record handed over has its report.
    pub(crate) async fn start<'r, 'a: 'r>(
        producer: &FutureProducer<LogContext>,
        records: impl IntoIterator<Item = &'r OutgoingRecord<'a>>,
    ) -> Produced {
        let mut produced = Produced {
            topics: Vec::new(),
            pending: VecDeque::new(),
            first_error: None,
        };
        for record in records {
            let topic = produced.topic_index(record.topic);
            let mut future_record = to_future_record(record);
            loop {
                match producer.send_result(future_record) {
                    Ok(delivery) => {
                        produced.pending.push_back((topic, delivery));
                        break;
                    }
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                        future_record = back;
                        match produced.pending.pop_front() {
                            Some((topic, delivery)) => {
                                let result = produced.await_delivery(topic, delivery).await;
                                produced.note(result);
                            }
                            None => tokio::time::sleep(QUEUE_FULL_PAUSE).await,
                        }
                    }
                    Err((source, _)) => {
                        produced.note(Err(KafkaSinkError::Produce {
                            topic: record.topic.to_owned(),
                            source,
                        }));
                        break;
                    }
                }
            }
            if produced.first_error.is_some() {
                break;
            }
        }
        produced
    }

    /// Wait for every report; the first failure, if any.
    pub(crate) async fn settle(mut self) -> Result<(), KafkaSinkError> {
        while let Some((topic, delivery)) = self.pending.pop_front() {
            let result = self.await_delivery(topic, delivery).await;
            self.note(result);
        }
        match self.first_error {
            Some(error) => Err(error),
            None => Ok(()),
        }
    }

    fn topic_index(&mut self, topic: &str) -> usize {
        match self.topics.iter().rposition(|t| t == topic) {
            Some(index) => index,
            None => {
                self.topics.push(topic.to_owned());
                self.topics.len() - 1
            }
        }
    }

    /// Keep the first failure of the batch.
    fn note(&mut self, result: Result<(), KafkaSinkError>) {
        if let Err(error) = result {
            self.first_error.get_or_insert(error);
        }
    }

    /// One record's delivery report as a result.
    async fn await_delivery(
        &self,
        topic: usize,
        delivery: DeliveryFuture,
    ) -> Result<(), KafkaSinkError> {
        match delivery.await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err((source, _message))) => Err(KafkaSinkError::Produce {
                topic: self.topics[topic].clone(),
                source,
            }),
            Err(_canceled) => Err(KafkaSinkError::Canceled {
                topic: self.topics[topic].clone(),
            }),
        }
    }
}

/// Produce `records` in order and wait for every delivery report. The first failure is
/// returned, but only after every report of the batch is in, so that no record of this
/// attempt is still in flight when the batch is retried.
pub(crate) async fn produce_all<'r, 'a: 'r>(
    producer: &FutureProducer<LogContext>,
    records: impl IntoIterator<Item = &'r OutgoingRecord<'a>>,
) -> Result<(), KafkaSinkError> {
    Produced::start(producer, records).await.settle().await
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
