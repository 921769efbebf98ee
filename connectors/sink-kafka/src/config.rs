//! The `[[sink]]` table of type `kafka`: raw TOML keys, their validation (every problem with its
//! key), and the validated settings the client is built from.
//!
//! Delivery safety is not configurable: `acks=all` is always set, and so is per-partition order
//! under retries: by default an idempotent producer with at most five requests in flight per
//! connection; with `idempotence = false` (for brokers whose idempotent producer support is
//! missing or unreliable) one request in flight. A pass-through property that would weaken
//! either is rejected. TLS and SASL (PLAIN, SCRAM) are librdkafka properties passed through
//! `properties`; values of secret-bearing keys are held as [`Secret`]s so they never reach logs
//! or `Debug` output.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;
use sluice_api::{ConfigProblem, Secret};

/// The compression codec of produced batches.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Compression {
    /// Fast, good ratio for JSON-like Avro payloads; the default.
    #[default]
    Lz4,
    Zstd,
    Gzip,
    Snappy,
    None,
}

impl Compression {
    /// librdkafka's `compression.type` value.
    pub fn as_str(self) -> &'static str {
        match self {
            Compression::Lz4 => "lz4",
            Compression::Zstd => "zstd",
            Compression::Gzip => "gzip",
            Compression::Snappy => "snappy",
            Compression::None => "none",
        }
    }
}

/// What the sink does on first use of a topic.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TopicCreation {
    /// Create it with the configured partitions, replication factor and topic config unless it
    /// exists; the default.
    #[default]
    Create,
    /// It must exist: a missing topic is a fatal error naming it.
    Require,
}

/// A scalar TOML value of a pass-through property or topic config entry.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum RawScalar {
    Bool(bool),
    Integer(i64),
    Float(f64),
    String(String),
}

impl RawScalar {
    /// The text librdkafka and the broker expect.
    fn into_text(self) -> String {
        match self {
            RawScalar::Bool(b) => b.to_string(),
            RawScalar::Integer(i) => i.to_string(),
            RawScalar::Float(f) => f.to_string(),
            RawScalar::String(s) => s,
        }
    }
}

/// Raw keys of a kafka sink, as written in TOML.
#[derive(Debug, Default, Deserialize)]
pub struct RawKafkaSinkConfig {
    /// Bootstrap brokers, `host:port[,host:port...]`. Required.
    pub brokers: Option<String>,
    /// `lz4` (default), `zstd`, `gzip`, `snappy` or `none`.
    pub compression: Option<Compression>,
    /// How long the producer waits to fill a batch (default 5 ms).
    pub linger_ms: Option<u64>,
    /// Largest produce batch in bytes (default 1 MiB).
    pub batch_size: Option<u64>,
    /// How long one record may wait for its delivery report before the batch fails as transient
    /// and is retried (default 120 s).
    pub delivery_timeout_ms: Option<u64>,
    /// `create` (default) or `require`.
    pub topic_creation: Option<TopicCreation>,
    /// Partitions of created topics (default 1).
    pub partitions: Option<i64>,
    /// Replication factor of created topics (default 1).
    pub replication_factor: Option<i64>,
    /// Topic-level config of created topics (`cleanup.policy`, `retention.ms`, ...).
    pub topic_config: Option<BTreeMap<String, RawScalar>>,
    /// A tombstone (same key, null value) after each delete (default true), so compaction can
    /// drop the key.
    pub tombstones_on_delete: Option<bool>,
    /// Any librdkafka property, passed through (TLS, SASL, tuning).
    pub properties: Option<BTreeMap<String, RawScalar>>,
    /// The idempotent producer (default true): the broker drops a retried batch it already
    /// has, so retries add no duplicates, and five requests may be in flight. `false` is for
    /// brokers without (reliable) idempotent producer support: one request in flight keeps
    /// per-partition order, and a retry may duplicate a batch (still at-least-once).
    pub idempotence: Option<bool>,
    /// Exactly-once delivery for `isolation.level=read_committed` consumers (default false):
    /// a transactional producer commits each batch's records together with the position it
    /// reached in the offsets topic, and a restart skips what is already committed.
    pub exactly_once: Option<bool>,
    /// The producer's `transactional.id` under `exactly_once` (default
    /// `sluice-<pipeline>-<sink>`). A second producer with the same id fences the first.
    pub transactional_id: Option<String>,
    /// The compacted topic holding each committed transaction's position under `exactly_once`
    /// (default `__sluice_offsets.<pipeline>`), keyed `<pipeline>/<sink>`.
    pub offsets_topic: Option<String>,
    /// Under `exactly_once`, the most events one Kafka transaction may hold while it waits for
    /// the end of a PostgreSQL transaction spanning several batches (default 100000); beyond it,
    /// or at half of `transaction_timeout_ms`, the Kafka transaction is committed mid-way
    /// (still exactly once, but that PostgreSQL transaction is no longer atomic in Kafka).
    pub transaction_max_events: Option<u64>,
    /// librdkafka's `transaction.timeout.ms` under `exactly_once` (default 60000): the broker
    /// aborts a transaction left open longer.
    pub transaction_timeout_ms: Option<u64>,
}

/// Default of `transaction_max_events`: 100k events of a typical row keep an open
/// transaction's replay copy in the tens of MiB.
pub const DEFAULT_TRANSACTION_MAX_EVENTS: u64 = 100_000;
/// Default of `transaction_timeout_ms`: librdkafka's own default.
pub const DEFAULT_TRANSACTION_TIMEOUT_MS: u64 = 60_000;

/// The `transactional.id` when `transactional_id` is not set.
pub fn default_transactional_id(pipeline: &str, sink: &str) -> String {
    format!("sluice-{pipeline}-{sink}")
}

/// The offsets topic when `offsets_topic` is not set.
pub fn default_offsets_topic(pipeline: &str) -> String {
    format!("__sluice_offsets.{pipeline}")
}

/// The validated exactly-once settings; names left unset are derived from the pipeline and
/// sink names when the sink is built.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExactlyOnceConfig {
    pub transactional_id: Option<String>,
    pub offsets_topic: Option<String>,
    pub max_events: u64,
    pub timeout: Duration,
}

/// A pass-through property's value; secrets print as `***`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PropertyValue {
    Plain(String),
    Secret(Secret),
}

impl PropertyValue {
    /// The value itself, for librdkafka only.
    pub fn expose(&self) -> &str {
        match self {
            PropertyValue::Plain(s) => s,
            PropertyValue::Secret(s) => s.expose(),
        }
    }
}

/// A validated kafka sink.
#[derive(Clone, Debug, PartialEq)]
pub struct KafkaSinkConfig {
    pub brokers: String,
    pub compression: Compression,
    pub linger: Duration,
    pub batch_size: u64,
    pub delivery_timeout: Duration,
    pub topic_creation: TopicCreation,
    pub partitions: i32,
    pub replication_factor: i32,
    pub topic_config: BTreeMap<String, String>,
    pub tombstones_on_delete: bool,
    /// The idempotent producer (true) or one request in flight without it (false).
    pub idempotence: bool,
    /// Pass-through librdkafka properties, secrets wrapped.
    pub properties: BTreeMap<String, PropertyValue>,
    /// `Some` under `exactly_once = true`.
    pub exactly_once: Option<ExactlyOnceConfig>,
}

/// Properties the sink sets itself to keep its delivery contract (acknowledged = durable,
/// per-key order, no duplicates from internal retries), or that have their own key.
const RESERVED_PROPERTIES: &[(&str, &str)] = &[
    (
        "acks",
        "always \"all\": a batch is acknowledged only once every replica has it",
    ),
    ("request.required.acks", "always \"all\" (acks)"),
    ("enable.idempotence", "set by `idempotence`"),
    ("bootstrap.servers", "set by `brokers`"),
    ("metadata.broker.list", "set by `brokers`"),
    ("compression.type", "set by `compression`"),
    ("compression.codec", "set by `compression`"),
    ("linger.ms", "set by `linger_ms`"),
    ("queue.buffering.max.ms", "set by `linger_ms`"),
    ("batch.size", "set by `batch_size`"),
    ("message.timeout.ms", "set by `delivery_timeout_ms`"),
    ("delivery.timeout.ms", "set by `delivery_timeout_ms`"),
    (
        "transactional.id",
        "set by `transactional_id` (with `exactly_once`)",
    ),
    (
        "transaction.timeout.ms",
        "set by `transaction_timeout_ms` (with `exactly_once`)",
    ),
];

/// Keys whose values are secrets (matched as substrings of the property name).
const SECRET_MARKERS: &[&str] = &[
    "password",
    "secret",
    "sasl.oauthbearer.config",
    "ssl.key.pem",
];

/// True when `key`'s value must never be shown.
pub fn is_secret_property(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    SECRET_MARKERS.iter().any(|m| key.contains(m))
}

impl RawKafkaSinkConfig {
    /// Validate, naming every problem with its key under `prefix`.
    pub fn validate(mut self, prefix: &str) -> Result<KafkaSinkConfig, Vec<ConfigProblem>> {
        let key = |k: &str| format!("{prefix}.{k}");
        let mut problems = Vec::new();

        let brokers = match self.brokers.as_deref().map(str::trim) {
            None => {
                problems.push(ConfigProblem::missing(
                    key("brokers"),
                    "bootstrap brokers, host:port[,host:port...]",
                ));
                String::new()
            }
            Some("") => {
                problems.push(ConfigProblem::new(
                    key("brokers"),
                    "must not be empty: bootstrap brokers, host:port[,host:port...]",
                ));
                String::new()
            }
            Some(b) => {
                for broker in b.split(',').map(str::trim) {
                    if !broker
                        .rsplit_once(':')
                        .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok())
                    {
                        problems.push(ConfigProblem::new(
                            key("brokers"),
                            format!("{broker:?} is not host:port"),
                        ));
                    }
                }
                b.to_owned()
            }
        };

        let positive =
            |problems: &mut Vec<ConfigProblem>, name: &str, v: Option<i64>, d: i32| match v {
                None => d,
                Some(n) if (1..=i64::from(i32::MAX)).contains(&n) => n as i32,
                Some(n) => {
                    problems.push(ConfigProblem::new(
                        key(name),
                        format!("must be a positive integer, found {n}"),
                    ));
                    d
                }
            };
        let partitions = positive(&mut problems, "partitions", self.partitions, 1);
        let replication_factor = positive(
            &mut problems,
            "replication_factor",
            self.replication_factor,
            1,
        );

        let linger_ms = self.linger_ms.unwrap_or(5);
        if linger_ms > 900_000 {
            problems.push(ConfigProblem::new(
                key("linger_ms"),
                format!("must be at most 900000 (15 min), found {linger_ms}"),
            ));
        }
        let batch_size = self.batch_size.unwrap_or(1 << 20);
        if !(1..=i32::MAX as u64).contains(&batch_size) {
            problems.push(ConfigProblem::new(
                key("batch_size"),
                format!("must be between 1 and {}, found {batch_size}", i32::MAX),
            ));
        }
        let delivery_timeout_ms = self.delivery_timeout_ms.unwrap_or(120_000);
        if !(1_000..=i32::MAX as u64).contains(&delivery_timeout_ms) {
            problems.push(ConfigProblem::new(
                key("delivery_timeout_ms"),
                format!("must be at least 1000, found {delivery_timeout_ms}"),
            ));
        }

        let idempotence = self.idempotence.unwrap_or(true);
        let mut properties = BTreeMap::new();
        for (name, value) in self.properties.take().unwrap_or_default() {
            let at = format!("{prefix}.properties.{name:?}");
            if let Some((_, why)) = RESERVED_PROPERTIES
                .iter()
                .find(|(reserved, _)| name.eq_ignore_ascii_case(reserved))
            {
                problems.push(ConfigProblem::new(at, format!("cannot be set here: {why}")));
                continue;
            }
            let text = value.into_text();
            let in_flight = name.eq_ignore_ascii_case("max.in.flight.requests.per.connection")
                || name.eq_ignore_ascii_case("max.in.flight");
            let most_in_flight = if idempotence { 5 } else { 1 };
            if in_flight
                && !text
                    .parse::<u32>()
                    .is_ok_and(|n| (1..=most_in_flight).contains(&n))
            {
                let why = if idempotence {
                    "must be 1 to 5 to keep per-key order"
                } else {
                    "must be 1 with idempotence = false, to keep per-key order under retries"
                };
                problems.push(ConfigProblem::new(at, format!("{why}, found {text:?}")));
                continue;
            }
            let value = if is_secret_property(&name) {
                PropertyValue::Secret(Secret::new(text))
            } else {
                PropertyValue::Plain(text)
            };
            properties.insert(name, value);
        }

        let exactly_once = self.validate_exactly_once(prefix, &mut problems);
        if exactly_once.is_some() && !idempotence {
            problems.push(ConfigProblem::new(
                key("idempotence"),
                "must be true with exactly_once = true: Kafka transactions need the \
                 idempotent producer",
            ));
        }

        if problems.is_empty() {
            Ok(KafkaSinkConfig {
                brokers,
                compression: self.compression.unwrap_or_default(),
                linger: Duration::from_millis(linger_ms),
                batch_size,
                delivery_timeout: Duration::from_millis(delivery_timeout_ms),
                topic_creation: self.topic_creation.unwrap_or_default(),
                partitions,
                replication_factor,
                topic_config: self
                    .topic_config
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(k, v)| (k, v.into_text()))
                    .collect(),
                tombstones_on_delete: self.tombstones_on_delete.unwrap_or(true),
                idempotence,
                properties,
                exactly_once,
            })
        } else {
            Err(problems)
        }
    }

    /// The exactly-once keys: `None` unless `exactly_once = true`; a name or bound given
    /// without it is reported, since it would silently do nothing.
    fn validate_exactly_once(
        &self,
        prefix: &str,
        problems: &mut Vec<ConfigProblem>,
    ) -> Option<ExactlyOnceConfig> {
        let key = |k: &str| format!("{prefix}.{k}");
        let enabled = self.exactly_once.unwrap_or(false);
        let given = [
            ("transactional_id", self.transactional_id.is_some()),
            ("offsets_topic", self.offsets_topic.is_some()),
            (
                "transaction_max_events",
                self.transaction_max_events.is_some(),
            ),
            (
                "transaction_timeout_ms",
                self.transaction_timeout_ms.is_some(),
            ),
        ];
        if !enabled {
            for (name, _) in given.iter().filter(|(_, set)| *set) {
                problems.push(ConfigProblem::new(
                    key(name),
                    "only applies with exactly_once = true",
                ));
            }
            return None;
        }
        for (name, value) in [
            ("transactional_id", &self.transactional_id),
            ("offsets_topic", &self.offsets_topic),
        ] {
            if value.as_deref().is_some_and(|v| v.trim().is_empty()) {
                problems.push(ConfigProblem::new(key(name), "must not be empty"));
            }
        }
        let max_events = self
            .transaction_max_events
            .unwrap_or(DEFAULT_TRANSACTION_MAX_EVENTS);
        if max_events == 0 {
            problems.push(ConfigProblem::new(
                key("transaction_max_events"),
                "must be at least 1",
            ));
        }
        let timeout_ms = self
            .transaction_timeout_ms
            .unwrap_or(DEFAULT_TRANSACTION_TIMEOUT_MS);
        if !(1_000..=i32::MAX as u64).contains(&timeout_ms) {
            problems.push(ConfigProblem::new(
                key("transaction_timeout_ms"),
                format!("must be at least 1000, found {timeout_ms}"),
            ));
        }
        Some(ExactlyOnceConfig {
            transactional_id: self.transactional_id.clone(),
            offsets_topic: self.offsets_topic.clone(),
            max_events,
            timeout: Duration::from_millis(timeout_ms),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn validate(text: &str) -> Result<KafkaSinkConfig, Vec<ConfigProblem>> {
        let value = toml::Value::Table(toml::from_str(text).expect("test toml"));
        let (raw, mut problems) =
            sluice_api::from_toml_partial::<RawKafkaSinkConfig>(value, "sink[0]");
        match raw.unwrap_or_default().validate("sink[0]") {
            Ok(cfg) if problems.is_empty() => Ok(cfg),
            Ok(_) => Err(problems),
            Err(found) => {
                problems.extend(found);
                Err(problems)
            }
        }
    }

    fn keys(problems: &[ConfigProblem]) -> Vec<&str> {
        problems.iter().map(|p| p.key.as_str()).collect()
    }

    #[test]
    fn brokers_alone_give_safe_throughput_defaults() {
        let cfg = validate("brokers = '127.0.0.1:9092'").unwrap();
        assert_eq!(cfg.compression, Compression::Lz4);
        assert_eq!(cfg.linger, Duration::from_millis(5));
        assert_eq!(cfg.topic_creation, TopicCreation::Create);
        assert_eq!((cfg.partitions, cfg.replication_factor), (1, 1));
        assert!(cfg.tombstones_on_delete);
        assert!(cfg.properties.is_empty());
    }

    #[test]
    fn a_missing_broker_list_is_reported_with_its_key() {
        let problems = validate("compression = 'zstd'").unwrap_err();
        assert_eq!(keys(&problems), ["sink[0].brokers"]);
    }

    #[test]
    fn every_problem_is_reported_at_once_with_its_key() {
        let problems = validate(
            "brokers = 'nohost'\ncompression = 'brotli'\npartitions = 0\n\
             replication_factor = -1\ntopic_creation = 'maybe'\n\
             [properties]\nacks = 1\n'enable.idempotence' = false\n\
             'max.in.flight.requests.per.connection' = 50",
        )
        .unwrap_err();
        let keys = keys(&problems);
        for expected in [
            "sink[0].brokers",
            "sink[0].compression",
            "sink[0].partitions",
            "sink[0].replication_factor",
            "sink[0].topic_creation",
            "sink[0].properties.\"acks\"",
            "sink[0].properties.\"enable.idempotence\"",
            "sink[0].properties.\"max.in.flight.requests.per.connection\"",
        ] {
            assert!(keys.contains(&expected), "{expected} missing from {keys:?}");
        }
    }

    #[test]
    fn secret_properties_never_show_in_debug_output() {
        let cfg = validate(
            "brokers = 'k:9093'\n[properties]\n'security.protocol' = 'SASL_SSL'\n\
             'sasl.mechanism' = 'SCRAM-SHA-512'\n'sasl.username' = 'cdc'\n\
             'sasl.password' = 'hunter2'\n'ssl.key.password' = 'swordfish'",
        )
        .unwrap();
        let shown = format!("{cfg:?}");
        assert!(
            !shown.contains("hunter2") && !shown.contains("swordfish"),
            "{shown}"
        );
        assert!(shown.contains("SCRAM-SHA-512"));
        assert_eq!(cfg.properties["sasl.password"].expose(), "hunter2");
    }

    #[test]
    fn exactly_once_is_off_by_default_and_its_keys_need_it() {
        assert_eq!(validate("brokers = 'k:1'").unwrap().exactly_once, None);
        let problems = validate("brokers = 'k:1'\ntransactional_id = 'x'").unwrap_err();
        assert_eq!(keys(&problems), ["sink[0].transactional_id"]);
        let cfg = validate("brokers = 'k:1'\nexactly_once = true").unwrap();
        let eos = cfg.exactly_once.expect("on");
        assert_eq!(eos.max_events, DEFAULT_TRANSACTION_MAX_EVENTS);
        assert_eq!(
            eos.transactional_id, None,
            "derived from the names at build time"
        );
        assert_eq!(
            default_transactional_id("inv", "events"),
            "sluice-inv-events"
        );
        assert_eq!(default_offsets_topic("inv"), "__sluice_offsets.inv");
        let problems = validate(
            "brokers = 'k:1'\nexactly_once = true\ntransaction_max_events = 0\n\
             transaction_timeout_ms = 5\noffsets_topic = ''",
        )
        .unwrap_err();
        let keys = keys(&problems);
        for expected in [
            "sink[0].transaction_max_events",
            "sink[0].transaction_timeout_ms",
            "sink[0].offsets_topic",
        ] {
            assert!(keys.contains(&expected), "{expected} missing from {keys:?}");
        }
    }

    #[test]
    fn idempotence_is_on_by_default_and_off_allows_one_request_in_flight_without_transactions() {
        assert!(validate("brokers = 'k:1'").unwrap().idempotence);
        let cfg = validate(
            "brokers = 'k:1'\nidempotence = false\n\
             properties = { 'max.in.flight.requests.per.connection' = 1 }",
        )
        .unwrap();
        assert!(!cfg.idempotence);
        let problems = validate(
            "brokers = 'k:1'\nidempotence = false\nexactly_once = true\n\
             properties = { 'max.in.flight' = 2 }",
        )
        .unwrap_err();
        assert_eq!(
            keys(&problems),
            [
                "sink[0].properties.\"max.in.flight\"",
                "sink[0].idempotence"
            ]
        );
        assert!(problems[0]
            .message
            .contains("must be 1 with idempotence = false"));
        assert!(problems[1].message.contains("exactly_once"));
    }

    #[test]
    fn topic_config_and_properties_accept_numbers_and_booleans() {
        let cfg = validate(
            "brokers = 'a:1,b:2'\ntopic_creation = 'require'\n\
             [topic_config]\n'cleanup.policy' = 'compact'\n'retention.ms' = 604800000\n\
             [properties]\n'socket.keepalive.enable' = true",
        )
        .unwrap();
        assert_eq!(cfg.topic_creation, TopicCreation::Require);
        assert_eq!(cfg.topic_config["retention.ms"], "604800000");
        assert_eq!(cfg.topic_config["cleanup.policy"], "compact");
        assert_eq!(
            cfg.properties["socket.keepalive.enable"],
            PropertyValue::Plain("true".into())
        );
    }
}
