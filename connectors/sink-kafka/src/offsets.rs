//! The offsets topic of the exactly-once mode: one record per committed Kafka transaction,
//! written inside that transaction, saying how far in the change stream the sink got. Keyed
//! by pipeline and sink, so compaction keeps the latest per sink. On start the sink reads the
//! latest committed one back with a `read_committed` consumer and skips what it covers.

use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};
use serde::{Deserialize, Serialize};
use sluice_api::Lsn;

use crate::client::LogContext;
use crate::config::KafkaSinkConfig;
use crate::error::KafkaSinkError;
use crate::position::EventPosition;

/// How long reading the offsets topic back may take before it counts as a transient failure.
const READ_TIMEOUT: Duration = Duration::from_secs(60);

/// One poll's wait; the loop ends at the partition's end, not on a quiet poll.
const POLL_INTERVAL: Duration = Duration::from_millis(200);

/// What one committed transaction reached.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommittedPosition {
    /// The last event whose records the transaction holds (with every event before it).
    pub last_event: EventPosition,
    /// The batch checkpoint the transaction completed (everything before it is in Kafka);
    /// `None` when the transaction was committed inside a PostgreSQL transaction (the bound on
    /// an open Kafka transaction was reached).
    pub checkpoint: Option<Lsn>,
}

/// The wire form of an offsets record's value: JSON, positions as PostgreSQL prints them.
#[derive(Debug, Serialize, Deserialize)]
struct OffsetsValue {
    pipeline: String,
    sink: String,
    commit_lsn: String,
    lsn: String,
    index: u32,
    checkpoint: Option<String>,
}

/// The key of this sink's records in the offsets topic: `<pipeline>/<sink>`.
pub fn offsets_key(pipeline: &str, sink: &str) -> String {
    format!("{pipeline}/{sink}")
}

/// The value recording `position` for `pipeline`'s `sink`.
pub fn encode_value(pipeline: &str, sink: &str, position: &CommittedPosition) -> Vec<u8> {
    let value = OffsetsValue {
        pipeline: pipeline.to_owned(),
        sink: sink.to_owned(),
        commit_lsn: position.last_event.commit_lsn.to_string(),
        lsn: position.last_event.lsn.to_string(),
        index: position.last_event.index,
        checkpoint: position.checkpoint.map(|c| c.to_string()),
    };
    serde_json::to_vec(&value).expect("plain strings and integers serialize")
}

/// The position an offsets record's value holds; `None` when it is not one of ours.
pub fn decode_value(bytes: &[u8]) -> Option<CommittedPosition> {
    let value: OffsetsValue = serde_json::from_slice(bytes).ok()?;
    Some(CommittedPosition {
        last_event: EventPosition {
            commit_lsn: value.commit_lsn.parse().ok()?,
            lsn: value.lsn.parse().ok()?,
            index: value.index,
        },
        checkpoint: match value.checkpoint {
            Some(text) => Some(text.parse().ok()?),
            None => None,
        },
    })
}

/// The latest committed position recorded under `key` in `topic` (partition 0, the only one
/// the sink creates), read to the end of the partition with `isolation.level=read_committed`.
/// Blocking: call from a blocking thread. `None` when the sink never committed anything.
pub fn read_latest(
    config: &KafkaSinkConfig,
    topic: &str,
    key: &str,
) -> Result<Option<CommittedPosition>, KafkaSinkError> {
    let request = |source: KafkaError| KafkaSinkError::Request {
        topic: topic.to_owned(),
        action: "reading the last committed position",
        source,
    };
    let mut client = ClientConfig::new();
    for (name, value) in &config.properties {
        client.set(name, value.expose());
    }
    client
        .set("bootstrap.servers", &config.brokers)
        .set("group.id", format!("sluice-offsets-{key}"))
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .set("isolation.level", "read_committed")
        .set("auto.offset.reset", "earliest");
    let consumer: BaseConsumer<LogContext> = client
        .create_with_context(LogContext)
        .map_err(KafkaSinkError::client)?;
    let mut assignment = TopicPartitionList::new();
    assignment
        .add_partition_offset(topic, 0, Offset::Beginning)
        .map_err(request)?;
    consumer.assign(&assignment).map_err(request)?;

    let started = Instant::now();
    let mut latest = None;
    loop {
        if started.elapsed() > READ_TIMEOUT {
            return Err(request(KafkaError::MessageConsumption(
                RDKafkaErrorCode::OperationTimedOut,
            )));
        }
        match consumer.poll(POLL_INTERVAL) {
            None => continue,
            Some(Ok(message)) => {
                if message.key() == Some(key.as_bytes()) {
                    if let Some(position) = message.payload().and_then(decode_value) {
                        latest = Some(position);
                    }
                }
            }
            Some(Err(KafkaError::PartitionEOF(_))) => return Ok(latest),
            Some(Err(error)) => return Err(request(error)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_offsets_record_reads_back_as_the_position_it_recorded() {
        let position = CommittedPosition {
            last_event: EventPosition {
                commit_lsn: Lsn(0x16_B374_D848),
                lsn: Lsn(0x16_B374_D000),
                index: 2,
            },
            checkpoint: Some(Lsn(0x16_B374_D878)),
        };
        let bytes = encode_value("inventory", "events", &position);
        let text = String::from_utf8(bytes.clone()).unwrap();
        assert!(text.contains("\"commit_lsn\":\"16/B374D848\""), "{text}");
        assert_eq!(decode_value(&bytes), Some(position));
        assert_eq!(offsets_key("inventory", "events"), "inventory/events");
    }

    #[test]
    fn a_foreign_record_in_the_offsets_topic_is_ignored() {
        assert_eq!(decode_value(b"not json"), None);
        assert_eq!(decode_value(br#"{"commit_lsn":"zz"}"#), None);
    }
}
