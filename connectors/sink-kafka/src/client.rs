//! The librdkafka clients behind the sink: a producer whose settings keep the delivery contract
//! (`acks=all`; idempotence with at most five in-flight requests, or without it one; murmur2
//! key partitioning as Java clients do), an admin client, and topic preparation on first use
//! (create with the configured shape, or require it to exist).

use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::ClientContext;
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::consumer::ConsumerContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{FutureProducer, Producer};

use crate::config::{KafkaSinkConfig, TopicCreation};
use crate::error::KafkaSinkError;

/// How long one admin or metadata request may take before it counts as a transient failure.
const ADMIN_TIMEOUT: Duration = Duration::from_secs(30);

/// Routes librdkafka's own logs and client-level errors to `tracing`. librdkafka redacts
/// secret properties in what it logs; the sink never logs the client config.
#[derive(Clone, Default)]
pub struct LogContext;

impl ClientContext for LogContext {
    fn log(&self, level: RDKafkaLogLevel, facility: &str, message: &str) {
        match level {
            RDKafkaLogLevel::Emerg
            | RDKafkaLogLevel::Alert
            | RDKafkaLogLevel::Critical
            | RDKafkaLogLevel::Error => tracing::error!(facility, "librdkafka: {message}"),
            RDKafkaLogLevel::Warning => tracing::warn!(facility, "librdkafka: {message}"),
            RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => {
                tracing::info!(facility, "librdkafka: {message}")
            }
            RDKafkaLogLevel::Debug => tracing::debug!(facility, "librdkafka: {message}"),
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        // Broker connection losses land here too; delivery reports carry what matters for
        // the batch, so this is a warning, not a failure.
        tracing::warn!(%error, "kafka client: {reason}");
    }
}

/// The offsets reader's context: logs as above, no rebalance hooks (it assigns its partition).
impl ConsumerContext for LogContext {}

/// The producer's librdkafka configuration: pass-through properties first, then the settings
/// the sink owns (validation has already refused properties that would override them).
pub fn producer_config(config: &KafkaSinkConfig) -> ClientConfig {
    let mut client = base_config(config);
    client
        .set("acks", "all")
        .set("enable.idempotence", config.idempotence.to_string())
        .set("partitioner", "murmur2_random")
        .set("compression.type", config.compression.as_str())
        .set("linger.ms", config.linger.as_millis().to_string())
        .set("batch.size", config.batch_size.to_string())
        .set(
            "message.timeout.ms",
            config.delivery_timeout.as_millis().to_string(),
        )
        // Topics are made by the sink with the configured shape, never implicitly by the
        // broker with its defaults.
        .set("allow.auto.create.topics", "false");
    if !config.idempotence {
        // Without the broker's sequence checks, only one request in flight keeps a retried
        // batch ahead of the ones after it (validation refused any other value).
        client.set("max.in.flight.requests.per.connection", "1");
    } else if !config
        .properties
        .contains_key("max.in.flight.requests.per.connection")
        && !config.properties.contains_key("max.in.flight")
    {
        client.set("max.in.flight.requests.per.connection", "5");
    }
    if !config.properties.contains_key("queue.buffering.max.kbytes") {
        // Bounded memory: a stalled broker fills this, and producing then waits (backpressure
        // to the source) instead of growing without bound.
        client.set("queue.buffering.max.kbytes", "32768");
    }
    client
}

/// The exactly-once producer's configuration: the idempotent producer's, plus its
/// transactional id and transaction timeout. A record may not wait for its delivery longer
/// than its transaction may stay open, so the delivery timeout is capped at the latter.
pub fn transactional_producer_config(
    config: &KafkaSinkConfig,
    transactional_id: &str,
    transaction_timeout: Duration,
) -> ClientConfig {
    let mut client = producer_config(config);
    let timeout_ms = transaction_timeout.as_millis();
    client
        .set("transactional.id", transactional_id)
        .set("transaction.timeout.ms", timeout_ms.to_string())
        .set(
            "message.timeout.ms",
            config
                .delivery_timeout
                .as_millis()
                .min(timeout_ms)
                .to_string(),
        );
    client
}

/// Brokers and pass-through properties, shared by the producer and the admin client.
fn base_config(config: &KafkaSinkConfig) -> ClientConfig {
    let mut client = ClientConfig::new();
    for (name, value) in &config.properties {
        client.set(name, value.expose());
    }
    client.set("bootstrap.servers", &config.brokers);
    client
}

/// The producer for `config`.
pub fn create_producer(
    config: &KafkaSinkConfig,
) -> Result<FutureProducer<LogContext>, KafkaSinkError> {
    producer_config(config)
        .create_with_context(LogContext)
        .map_err(KafkaSinkError::client)
}

/// The admin client for `config` (topic creation).
pub fn create_admin(config: &KafkaSinkConfig) -> Result<AdminClient<LogContext>, KafkaSinkError> {
    base_config(config)
        .create_with_context(LogContext)
        .map_err(KafkaSinkError::client)
}

/// Make sure `topic` exists before the first record goes to it: create it with the configured
/// partitions, replication factor and topic config (an existing topic is left as it is), or,
/// under `require`, check that the cluster knows it.
pub async fn prepare_topic(
    config: &KafkaSinkConfig,
    admin: &AdminClient<LogContext>,
    producer: &FutureProducer<LogContext>,
    topic: &str,
) -> Result<(), KafkaSinkError> {
    match config.topic_creation {
        TopicCreation::Create => create_topic(config, admin, topic).await,
        TopicCreation::Require => require_topic(producer, topic).await,
    }
}

/// Make sure the exactly-once offsets `topic` exists: one partition (the sink reads it back
/// whole), compacted (only the latest record per sink matters), the configured replication
/// factor. Under `topic_creation = "require"` it must exist already.
pub async fn prepare_offsets_topic(
    config: &KafkaSinkConfig,
    admin: &AdminClient<LogContext>,
    producer: &FutureProducer<LogContext>,
    topic: &str,
) -> Result<(), KafkaSinkError> {
    match config.topic_creation {
        TopicCreation::Create => {
            let shape = TopicShape {
                partitions: 1,
                replication_factor: config.replication_factor,
                topic_config: vec![("cleanup.policy", "compact")],
            };
            create_topic_shaped(admin, topic, &shape).await
        }
        TopicCreation::Require => require_topic(producer, topic).await,
    }
}

/// How a topic is created.
struct TopicShape<'a> {
    partitions: i32,
    replication_factor: i32,
    topic_config: Vec<(&'a str, &'a str)>,
}

async fn create_topic(
    config: &KafkaSinkConfig,
    admin: &AdminClient<LogContext>,
    topic: &str,
) -> Result<(), KafkaSinkError> {
    let shape = TopicShape {
        partitions: config.partitions,
        replication_factor: config.replication_factor,
        topic_config: config
            .topic_config
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect(),
    };
    create_topic_shaped(admin, topic, &shape).await
}

async fn create_topic_shaped(
    admin: &AdminClient<LogContext>,
    topic: &str,
    shape: &TopicShape<'_>,
) -> Result<(), KafkaSinkError> {
    let mut new_topic = NewTopic::new(
        topic,
        shape.partitions,
        TopicReplication::Fixed(shape.replication_factor),
    );
    for (name, value) in &shape.topic_config {
        new_topic = new_topic.set(name, value);
    }
    let options = AdminOptions::new()
        .operation_timeout(Some(ADMIN_TIMEOUT))
        .request_timeout(Some(ADMIN_TIMEOUT));
    let results = admin
        .create_topics([&new_topic], &options)
        .await
        .map_err(|source| KafkaSinkError::Request {
            topic: topic.to_owned(),
            action: "creating the topic",
            source,
        })?;
    for result in results {
        match result {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((name, code)) => {
                return Err(KafkaSinkError::Topic {
                    topic: name,
                    action: "creating the topic",
                    code,
                })
            }
        }
    }
    tracing::debug!(topic, "kafka topic ready");
    Ok(())
}

async fn require_topic(
    producer: &FutureProducer<LogContext>,
    topic: &str,
) -> Result<(), KafkaSinkError> {
    // Metadata requests block the calling thread inside librdkafka.
    let producer = producer.clone();
    let name = topic.to_owned();
    let metadata = tokio::task::spawn_blocking(move || {
        producer.client().fetch_metadata(Some(&name), ADMIN_TIMEOUT)
    })
    .await
    .map_err(|_| KafkaSinkError::Canceled {
        topic: topic.to_owned(),
    })?
    .map_err(|source| KafkaSinkError::Request {
        topic: topic.to_owned(),
        action: "looking up the topic",
        source,
    })?;
    let found = metadata.topics().iter().find(|t| t.name() == topic);
    match found.and_then(|t| t.error()).map(RDKafkaErrorCode::from) {
        None if found.is_some_and(|t| !t.partitions().is_empty()) => Ok(()),
        None | Some(RDKafkaErrorCode::UnknownTopicOrPartition) => {
            Err(KafkaSinkError::MissingTopic {
                topic: topic.to_owned(),
            })
        }
        Some(code) => Err(KafkaSinkError::Topic {
            topic: topic.to_owned(),
            action: "looking up the topic",
            code,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::RawKafkaSinkConfig;

    fn config(properties: &[(&str, &str)]) -> KafkaSinkConfig {
        let raw = RawKafkaSinkConfig {
            brokers: Some("127.0.0.1:9092".into()),
            properties: Some(
                properties
                    .iter()
                    .map(|(k, v)| {
                        (
                            (*k).to_owned(),
                            crate::config::RawScalar::String((*v).to_owned()),
                        )
                    })
                    .collect(),
            ),
            ..RawKafkaSinkConfig::default()
        };
        raw.validate("sink[0]").expect("valid")
    }

    #[test]
    fn the_producer_is_idempotent_acks_all_and_partitions_keys_like_java_clients() {
        let client = producer_config(&config(&[]));
        assert_eq!(client.get("acks"), Some("all"));
        assert_eq!(client.get("enable.idempotence"), Some("true"));
        assert_eq!(client.get("partitioner"), Some("murmur2_random"));
        assert_eq!(
            client.get("max.in.flight.requests.per.connection"),
            Some("5")
        );
        assert_eq!(client.get("compression.type"), Some("lz4"));
        assert_eq!(client.get("allow.auto.create.topics"), Some("false"));
    }

    #[test]
    fn without_idempotence_the_producer_keeps_order_with_one_request_in_flight() {
        let client = producer_config(&KafkaSinkConfig {
            idempotence: false,
            ..config(&[])
        });
        assert_eq!(client.get("acks"), Some("all"));
        assert_eq!(client.get("enable.idempotence"), Some("false"));
        assert_eq!(
            client.get("max.in.flight.requests.per.connection"),
            Some("1")
        );
    }

    #[test]
    fn pass_through_properties_reach_librdkafka() {
        let client = producer_config(&config(&[
            ("security.protocol", "SASL_SSL"),
            ("sasl.password", "hunter2"),
            ("max.in.flight.requests.per.connection", "1"),
        ]));
        assert_eq!(client.get("security.protocol"), Some("SASL_SSL"));
        assert_eq!(client.get("sasl.password"), Some("hunter2"));
        assert_eq!(
            client.get("max.in.flight.requests.per.connection"),
            Some("1")
        );
    }
}
