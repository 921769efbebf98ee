//! Where records go: topic routing (Debezium's `ByLogicalTableRouter`: a regex rename of the
//! `<prefix>.<schema>.<table>` topics, so several tables can merge into one topic, with a key
//! field naming the physical table so their keys stay apart) and the names of the stream's own
//! topics (transaction metadata, heartbeats, logical decoding messages). Validated options and
//! pure functions only; the `[envelope]` config section builds [`TopicOptions`].

use regex::Regex;

/// The key field a merging route adds (Debezium's `key.field.name` default).
pub const DEFAULT_KEY_FIELD_NAME: &str = "__dbz__physicalTableIdentifier";
/// The transaction metadata topic's name after the prefix (Debezium's `topic.transaction`).
pub const DEFAULT_TOPIC_TRANSACTION: &str = "transaction";
/// The heartbeat topic's name before the prefix (Debezium's `topic.heartbeat.prefix`).
pub const DEFAULT_TOPIC_HEARTBEAT_PREFIX: &str = "__debezium-heartbeat";
/// The logical decoding message topic's name after the prefix (Debezium's fixed suffix).
pub const DEFAULT_MESSAGE_TOPIC_SUFFIX: &str = "message";
/// The data collection name transactional logical messages are counted under, as Debezium does.
pub const MESSAGE_DATA_COLLECTION: &str = "LOGICAL_DECODING_MESSAGE";

/// One routing rule: a topic matching `topic_regex` as a whole becomes `topic_replacement`
/// (`$1`, `${name}` refer to the regex's groups).
#[derive(Clone, Debug)]
pub struct TopicRoute {
    /// Anchored at both ends: the whole topic must match, as Java's `Matcher.matches`.
    pub topic_regex: Regex,
    /// The new topic, with group references.
    pub topic_replacement: String,
    /// Whether routed keys get a field naming the physical table (Debezium's
    /// `key.enforce.uniqueness`): rows of different tables with equal keys stay distinct.
    pub key_enforce_uniqueness: bool,
    /// That field's name (Debezium's `key.field.name`).
    pub key_field_name: String,
}

impl PartialEq for TopicRoute {
    fn eq(&self, other: &Self) -> bool {
        self.topic_regex.as_str() == other.topic_regex.as_str()
            && self.topic_replacement == other.topic_replacement
            && self.key_enforce_uniqueness == other.key_enforce_uniqueness
            && self.key_field_name == other.key_field_name
    }
}

impl Eq for TopicRoute {}

/// Where a table's records go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Placement {
    /// The topic, after routing; also the namespace of the table's schemas.
    pub topic: String,
    /// `(field name, value)` appended to every key: the physical table's own topic, when a
    /// route enforcing key uniqueness matched.
    pub key_identifier: Option<(String, String)>,
}

/// The validated topic options.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopicOptions {
    /// Routing rules, tried in order; the first match wins.
    pub routes: Vec<TopicRoute>,
    /// BEGIN/END records on the transaction topic and a `transaction` block in every row
    /// envelope (Debezium's `provide.transaction.metadata`).
    pub provide_transaction_metadata: bool,
    /// The transaction topic's name after the prefix (Debezium's `topic.transaction`).
    pub topic_transaction: String,
    /// The heartbeat topic's name before the prefix (Debezium's `topic.heartbeat.prefix`).
    pub topic_heartbeat_prefix: String,
    /// Logical decoding messages (`pg_logical_emit_message`) become records.
    pub logical_decoding_messages: bool,
    /// Their topic; `None` is `<prefix>.message`.
    pub message_topic: Option<String>,
}

impl Default for TopicOptions {
    fn default() -> Self {
        TopicOptions {
            routes: Vec::new(),
            provide_transaction_metadata: false,
            topic_transaction: DEFAULT_TOPIC_TRANSACTION.to_owned(),
            topic_heartbeat_prefix: DEFAULT_TOPIC_HEARTBEAT_PREFIX.to_owned(),
            logical_decoding_messages: false,
            message_topic: None,
        }
    }
}

impl TopicOptions {
    /// Where the records of the table whose own topic is `topic` go.
    pub fn place(&self, topic: &str) -> Placement {
        for route in &self.routes {
            if let Some(captures) = route.topic_regex.captures(topic) {
                let mut routed = String::new();
                captures.expand(&route.topic_replacement, &mut routed);
                let key_identifier = route
                    .key_enforce_uniqueness
                    .then(|| (route.key_field_name.clone(), topic.to_owned()));
                return Placement {
                    topic: routed,
                    key_identifier,
                };
            }
        }
        Placement {
            topic: topic.to_owned(),
            key_identifier: None,
        }
    }

    /// `<prefix>.<topic_transaction>`.
    pub fn transaction_topic(&self, prefix: &str) -> String {
        format!("{prefix}.{}", self.topic_transaction)
    }

    /// `<topic_heartbeat_prefix>.<prefix>`.
    pub fn heartbeat_topic(&self, prefix: &str) -> String {
        format!("{}.{prefix}", self.topic_heartbeat_prefix)
    }

    /// The configured message topic, else `<prefix>.message`.
    pub fn message_topic(&self, prefix: &str) -> String {
        self.message_topic
            .clone()
            .unwrap_or_else(|| format!("{prefix}.{DEFAULT_MESSAGE_TOPIC_SUFFIX}"))
    }
}

/// A route's regex as written, anchored at both ends.
pub fn anchored_regex(pattern: &str) -> Result<Regex, regex::Error> {
    Regex::new(&format!("^(?:{pattern})$"))
}

/// Whether `topic` is a name Kafka accepts: 1-249 of `[A-Za-z0-9._-]`, not `.` or `..`.
pub fn is_valid_topic(topic: &str) -> bool {
    !topic.is_empty()
        && topic.len() <= 249
        && topic != "."
        && topic != ".."
        && topic
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(regex: &str, replacement: &str, unique: bool) -> TopicRoute {
        TopicRoute {
            topic_regex: anchored_regex(regex).unwrap(),
            topic_replacement: replacement.to_owned(),
            key_enforce_uniqueness: unique,
            key_field_name: DEFAULT_KEY_FIELD_NAME.to_owned(),
        }
    }

    #[test]
    fn sharded_tables_merge_into_one_topic_with_the_physical_table_in_the_key() {
        let options = TopicOptions {
            routes: vec![route(r"(.*)\.public\.orders_\d+", "${1}.all_orders", true)],
            ..TopicOptions::default()
        };
        let placed = options.place("shop.public.orders_1");
        assert_eq!(placed.topic, "shop.all_orders");
        assert_eq!(
            placed.key_identifier,
            Some((
                "__dbz__physicalTableIdentifier".to_owned(),
                "shop.public.orders_1".to_owned()
            ))
        );
        assert_eq!(
            options.place("shop.public.orders_2").topic,
            "shop.all_orders"
        );
    }

    #[test]
    fn a_topic_must_match_the_whole_regex_and_the_first_matching_route_wins() {
        let options = TopicOptions {
            routes: vec![
                route(r"shop\.public\.items", "renamed.items", false),
                route(r"shop\.public\.(.*)", "shop.$1", false),
            ],
            ..TopicOptions::default()
        };
        assert_eq!(
            options.place("shop.public.items"),
            Placement {
                topic: "renamed.items".into(),
                key_identifier: None
            }
        );
        assert_eq!(options.place("shop.public.users").topic, "shop.users");
        // `items` alone is not the whole topic: no partial matches.
        let partial = TopicOptions {
            routes: vec![route("items", "x", false)],
            ..TopicOptions::default()
        };
        assert_eq!(
            partial.place("shop.public.items").topic,
            "shop.public.items"
        );
    }

    #[test]
    fn the_stream_topics_follow_debeziums_names() {
        let options = TopicOptions::default();
        assert_eq!(options.transaction_topic("shop"), "shop.transaction");
        assert_eq!(options.heartbeat_topic("shop"), "__debezium-heartbeat.shop");
        assert_eq!(options.message_topic("shop"), "shop.message");
        let custom = TopicOptions {
            topic_transaction: "tx".into(),
            message_topic: Some("events.messages".into()),
            ..TopicOptions::default()
        };
        assert_eq!(custom.transaction_topic("shop"), "shop.tx");
        assert_eq!(custom.message_topic("shop"), "events.messages");
    }

    #[test]
    fn topic_names_are_checked_against_kafkas_rules() {
        assert!(is_valid_topic("shop.public.orders-1_a"));
        assert!(!is_valid_topic(""));
        assert!(!is_valid_topic(".."));
        assert!(!is_valid_topic("a b"));
        assert!(!is_valid_topic(&"a".repeat(250)));
    }
}
