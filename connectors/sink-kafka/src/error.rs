//! The kafka sink's failures and their classes: an outage or timeout is transient (the core
//! retries the batch with backoff and holds the checkpoint), while rejected credentials, a
//! refused topic or a record the broker will never take are fatal and name the topic.

use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use sluice_api::{ErrorClass, SinkError};

/// Why a batch could not be made durable in Kafka.
#[derive(Debug, thiserror::Error)]
pub enum KafkaSinkError {
    /// Row events arrived without their Avro records: the pipeline has no `[registry]`.
    #[error(
        "the kafka sink needs Avro envelopes: add a [registry] table to the configuration \
         (without url, sluice serves its own schema registry)"
    )]
    NoRecords,
    /// The producer or admin client could not be created (a bad pass-through property). Holds
    /// librdkafka's description without the offending value, which may be a secret.
    #[error("creating the kafka client: {0}")]
    Client(String),
    /// The topic does not exist and `topic_creation = "require"`.
    #[error(
        "topic {topic:?} does not exist and topic_creation = \"require\": create it, or set \
         topic_creation = \"create\""
    )]
    MissingTopic { topic: String },
    /// Creating or looking up a topic failed.
    #[error("topic {topic:?}: {action} failed: {code}")]
    Topic {
        topic: String,
        action: &'static str,
        code: RDKafkaErrorCode,
    },
    /// A request to the cluster failed as a whole (no per-topic code).
    #[error("topic {topic:?}: {action} failed: {source}")]
    Request {
        topic: String,
        action: &'static str,
        #[source]
        source: KafkaError,
    },
    /// A record was refused or not acknowledged in time.
    #[error("producing to topic {topic:?} failed: {source}")]
    Produce {
        topic: String,
        #[source]
        source: KafkaError,
    },
    /// Another producer with the same `transactional.id` started: this one may not write again.
    #[error(
        "another producer took over transactional id {transactional_id:?} (fenced): a second \
         sluice instance runs this pipeline's kafka sink; this one stops so that only one writes"
    )]
    Fenced { transactional_id: String },
    /// A transaction step (init, begin, commit, abort) failed.
    #[error("kafka transaction of {transactional_id:?}: {action} failed: {source}")]
    Transaction {
        transactional_id: String,
        action: &'static str,
        #[source]
        source: KafkaError,
    },
    /// The producer dropped a delivery report (it is shutting down).
    #[error("producing to topic {topic:?}: the producer went away before the delivery report")]
    Canceled { topic: String },
}

impl KafkaSinkError {
    /// A client creation failure, described without any property value.
    pub fn client(error: KafkaError) -> Self {
        match error {
            KafkaError::ClientConfig(_, description, key, _value) => {
                KafkaSinkError::Client(format!("property {key:?}: {description}"))
            }
            other => KafkaSinkError::Client(other.to_string()),
        }
    }
}

/// Error codes retrying cannot fix: credentials, authorization, data the broker will never
/// accept, invalid topic settings, and librdkafka's unrecoverable producer state.
fn is_fatal_code(code: RDKafkaErrorCode) -> bool {
    use RDKafkaErrorCode as C;
    matches!(
        code,
        C::TopicAuthorizationFailed
            | C::ClusterAuthorizationFailed
            | C::TransactionalIdAuthorizationFailed
            | C::SaslAuthenticationFailed
            | C::Authentication
            | C::UnsupportedSASLMechanism
            | C::IllegalSASLState
            | C::MessageSizeTooLarge
            | C::InvalidMessageSize
            | C::MessageBatchTooLarge
            | C::InvalidRecord
            | C::InvalidTopic
            | C::PolicyViolation
            | C::InvalidConfig
            | C::InvalidPartitions
            | C::InvalidReplicationFactor
            | C::InvalidReplicaAssignment
            | C::UnsupportedVersion
            | C::UnsupportedForMessageFormat
            | C::UnsupportedCompressionType
            | C::InvalidArgument
            | C::Fatal
            | C::SSL
    )
}

/// Whether `code` says a newer producer with the same transactional id exists.
pub fn is_fencing_code(code: RDKafkaErrorCode) -> bool {
    matches!(
        code,
        RDKafkaErrorCode::ProducerFenced
            | RDKafkaErrorCode::InvalidProducerEpoch
            | RDKafkaErrorCode::Fenced
            | RDKafkaErrorCode::TransactionCoordinatorFenced
    )
}

/// The error code inside `error`, when it carries one.
fn code_of(error: &KafkaError) -> Option<RDKafkaErrorCode> {
    error.rdkafka_error_code()
}

impl KafkaSinkError {
    /// The topic a produce error says the cluster does not know, if it says so.
    pub fn unknown_topic(&self) -> Option<&str> {
        match self {
            KafkaSinkError::Produce { topic, source } => matches!(
                code_of(source),
                Some(RDKafkaErrorCode::UnknownTopic | RDKafkaErrorCode::UnknownTopicOrPartition)
            )
            .then_some(topic.as_str()),
            _ => None,
        }
    }

    /// Whether the delivery layer should retry the batch.
    pub fn class(&self) -> ErrorClass {
        let fatal = match self {
            KafkaSinkError::NoRecords
            | KafkaSinkError::Client(_)
            | KafkaSinkError::MissingTopic { .. } => true,
            KafkaSinkError::Topic { code, .. } => is_fatal_code(*code),
            KafkaSinkError::Request { source, .. } | KafkaSinkError::Produce { source, .. } => {
                code_of(source).is_some_and(is_fatal_code)
            }
            KafkaSinkError::Canceled { .. } => false,
            KafkaSinkError::Fenced { .. } => true,
            // A failed transaction is aborted and the next attempt starts a new producer, so
            // only a code no new producer can fix is fatal.
            KafkaSinkError::Transaction { source, .. } => {
                code_of(source).is_some_and(is_fatal_code)
            }
        };
        if fatal {
            ErrorClass::Fatal
        } else {
            ErrorClass::Transient
        }
    }
}

impl From<KafkaSinkError> for SinkError {
    fn from(error: KafkaSinkError) -> Self {
        let message = error.to_string();
        let base = match error.class() {
            ErrorClass::Fatal => SinkError::fatal(message),
            ErrorClass::Transient => SinkError::transient(message),
        };
        base.with_source(error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn produce(code: RDKafkaErrorCode) -> KafkaSinkError {
        KafkaSinkError::Produce {
            topic: "test.public.orders".into(),
            source: KafkaError::MessageProduction(code),
        }
    }

    #[test]
    fn an_unreachable_or_slow_cluster_is_transient() {
        for code in [
            RDKafkaErrorCode::MessageTimedOut,
            RDKafkaErrorCode::AllBrokersDown,
            RDKafkaErrorCode::BrokerTransportFailure,
            RDKafkaErrorCode::RequestTimedOut,
            RDKafkaErrorCode::NotEnoughReplicas,
            RDKafkaErrorCode::LeaderNotAvailable,
        ] {
            assert_eq!(produce(code).class(), ErrorClass::Transient, "{code:?}");
        }
    }

    #[test]
    fn refused_records_and_credentials_are_fatal_and_name_the_topic() {
        for code in [
            RDKafkaErrorCode::TopicAuthorizationFailed,
            RDKafkaErrorCode::MessageSizeTooLarge,
            RDKafkaErrorCode::SaslAuthenticationFailed,
        ] {
            let error = produce(code);
            assert_eq!(error.class(), ErrorClass::Fatal, "{code:?}");
            assert!(error.to_string().contains("test.public.orders"));
        }
    }

    #[test]
    fn a_missing_topic_under_require_is_fatal_and_says_how_to_fix_it() {
        let error: SinkError = KafkaSinkError::MissingTopic {
            topic: "test.public.orders".into(),
        }
        .into();
        assert_eq!(error.class, ErrorClass::Fatal);
        assert!(error.message.contains("\"test.public.orders\""));
        assert!(error.message.contains("topic_creation"));
    }

    #[test]
    fn a_rejected_property_is_reported_without_its_value() {
        let error = KafkaSinkError::client(KafkaError::ClientConfig(
            rdkafka::types::RDKafkaConfRes::RD_KAFKA_CONF_UNKNOWN,
            "No such configuration property".into(),
            "sasl.pasword".into(),
            "hunter2".into(),
        ));
        let shown = error.to_string();
        assert!(
            shown.contains("sasl.pasword") && !shown.contains("hunter2"),
            "{shown}"
        );
    }

    #[test]
    fn a_fenced_producer_is_fatal_and_says_another_instance_took_over() {
        let error: SinkError = KafkaSinkError::Fenced {
            transactional_id: "sluice-inv-events".into(),
        }
        .into();
        assert_eq!(error.class, ErrorClass::Fatal);
        assert!(error.message.contains("fenced"), "{}", error.message);
        assert!(error.message.contains("sluice-inv-events"));
        assert!(is_fencing_code(RDKafkaErrorCode::ProducerFenced));
        assert!(!is_fencing_code(RDKafkaErrorCode::RequestTimedOut));
    }

    #[test]
    fn batches_without_avro_records_ask_for_a_registry() {
        let error: SinkError = KafkaSinkError::NoRecords.into();
        assert_eq!(error.class, ErrorClass::Fatal);
        assert!(error.message.contains("[registry]"));
    }
}
