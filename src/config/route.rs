//! The topic keys of `[envelope]`: routing rules (`[[envelope.route]]`, Debezium's
//! `ByLogicalTableRouter` with `topic.regex`, `topic.replacement`, `key.enforce.uniqueness` and
//! `key.field.name`) and the stream's own topics (`provide_transaction_metadata`,
//! `topic_transaction`, `topic_heartbeat_prefix`, `logical_decoding_messages`,
//! `message_topic`). Raw keys as written, validated without I/O into
//! [`TopicOptions`], every problem reported with its key.

use serde::Deserialize;
use sluice_api::{join_key, ConfigProblem};

use crate::schema::{
    anchored_regex, avro_name, is_valid_topic, TopicOptions, TopicRoute, DEFAULT_KEY_FIELD_NAME,
};

/// One `[[envelope.route]]` table as written.
#[derive(Debug, Default, Deserialize)]
pub struct RawRoute {
    /// Required: a regex the whole `<prefix>.<schema>.<table>` topic must match.
    pub topic_regex: Option<String>,
    /// Required: the new topic; `$1` / `${name}` insert the regex's groups.
    pub topic_replacement: Option<String>,
    /// Default true: routed keys get a field naming the physical table.
    pub key_enforce_uniqueness: Option<bool>,
    /// Default [`DEFAULT_KEY_FIELD_NAME`].
    pub key_field_name: Option<String>,
}

/// The topic keys of `[envelope]` as written (gathered from [`super::RawEnvelope`]).
#[derive(Debug, Default)]
pub struct RawTopics {
    /// `[[envelope.route]]`, in file order. Default: no routing.
    pub route: Option<Vec<RawRoute>>,
    /// Default false.
    pub provide_transaction_metadata: Option<bool>,
    /// Default [`crate::schema::DEFAULT_TOPIC_TRANSACTION`].
    pub topic_transaction: Option<String>,
    /// Default [`crate::schema::DEFAULT_TOPIC_HEARTBEAT_PREFIX`].
    pub topic_heartbeat_prefix: Option<String>,
    /// Default false.
    pub logical_decoding_messages: Option<bool>,
    /// Default `<prefix>.`[`crate::schema::DEFAULT_MESSAGE_TOPIC_SUFFIX`].
    pub message_topic: Option<String>,
}

/// Validate the topic keys of the section at `prefix`, adding every problem to `problems`.
pub fn validate_topics(
    raw: RawTopics,
    prefix: &str,
    problems: &mut Vec<ConfigProblem>,
) -> TopicOptions {
    let defaults = TopicOptions::default();
    let key = |k: &str| join_key(prefix, k);
    let mut routes = Vec::new();
    for (index, route) in raw.route.unwrap_or_default().into_iter().enumerate() {
        let route_key = format!("{}[{index}]", key("route"));
        if let Some(route) = validate_route(route, &route_key, problems) {
            routes.push(route);
        }
    }
    // Topic parts: the prefix is a valid pipeline name, so a valid part makes a valid topic.
    let mut topic_part = |value: Option<String>, name: &str, default: &str| match value {
        None => default.to_owned(),
        Some(v) if is_valid_topic(&v) => v,
        Some(v) => {
            problems.push(ConfigProblem::new(
                key(name),
                format!(
                    "{v:?} is not a valid topic name: use 1-249 letters, digits, '.', '_' and '-'"
                ),
            ));
            default.to_owned()
        }
    };
    let topic_transaction = topic_part(
        raw.topic_transaction,
        "topic_transaction",
        &defaults.topic_transaction,
    );
    let topic_heartbeat_prefix = topic_part(
        raw.topic_heartbeat_prefix,
        "topic_heartbeat_prefix",
        &defaults.topic_heartbeat_prefix,
    );
    let message_topic = raw
        .message_topic
        .map(|t| topic_part(Some(t), "message_topic", ""));
    TopicOptions {
        routes,
        provide_transaction_metadata: raw
            .provide_transaction_metadata
            .unwrap_or(defaults.provide_transaction_metadata),
        topic_transaction,
        topic_heartbeat_prefix,
        logical_decoding_messages: raw
            .logical_decoding_messages
            .unwrap_or(defaults.logical_decoding_messages),
        message_topic,
    }
}

fn validate_route(
    raw: RawRoute,
    prefix: &str,
    problems: &mut Vec<ConfigProblem>,
) -> Option<TopicRoute> {
    let key = |k: &str| join_key(prefix, k);
    let regex = match raw.topic_regex {
        None => {
            problems.push(ConfigProblem::missing(
                key("topic_regex"),
                "the regex of the topics this route renames",
            ));
            None
        }
        Some(pattern) => match anchored_regex(&pattern) {
            Ok(regex) => Some(regex),
            Err(e) => {
                // The regex crate's message spans lines (it draws the pattern): keep one line.
                let message = e.to_string().replace('\n', " ");
                problems.push(ConfigProblem::new(
                    key("topic_regex"),
                    format!("invalid regex {pattern:?}: {message}"),
                ));
                None
            }
        },
    };
    let replacement = match raw.topic_replacement {
        Some(r) if !r.is_empty() => Some(r),
        Some(_) => {
            problems.push(ConfigProblem::new(
                key("topic_replacement"),
                "must not be empty",
            ));
            None
        }
        None => {
            problems.push(ConfigProblem::missing(
                key("topic_replacement"),
                "the topic the matching topics become",
            ));
            None
        }
    };
    let key_field_name = raw
        .key_field_name
        .unwrap_or_else(|| DEFAULT_KEY_FIELD_NAME.to_owned());
    if avro_name(&key_field_name) != key_field_name {
        problems.push(ConfigProblem::new(
            key("key_field_name"),
            format!(
                "{key_field_name:?} is not an Avro field name: letters, digits and '_', not \
                 starting with a digit"
            ),
        ));
    }
    Some(TopicRoute {
        topic_regex: regex?,
        topic_replacement: replacement?,
        key_enforce_uniqueness: raw.key_enforce_uniqueness.unwrap_or(true),
        key_field_name,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(regex: &str, replacement: &str) -> RawRoute {
        RawRoute {
            topic_regex: Some(regex.into()),
            topic_replacement: Some(replacement.into()),
            ..RawRoute::default()
        }
    }

    #[test]
    fn routes_default_to_unique_keys_under_debeziums_field_name() {
        let mut problems = Vec::new();
        let options = validate_topics(
            RawTopics {
                route: Some(vec![route(r"(.*)\.orders_\d+", "$1.orders")]),
                ..RawTopics::default()
            },
            "envelope",
            &mut problems,
        );
        assert!(problems.is_empty(), "{problems:?}");
        let route = &options.routes[0];
        assert!(route.key_enforce_uniqueness);
        assert_eq!(route.key_field_name, "__dbz__physicalTableIdentifier");
        assert!(!options.provide_transaction_metadata);
        assert!(!options.logical_decoding_messages);
    }

    #[test]
    fn a_bad_regex_and_bad_names_are_reported_with_their_keys() {
        let mut problems = Vec::new();
        validate_topics(
            RawTopics {
                route: Some(vec![
                    route("ok", "fine"),
                    RawRoute {
                        key_field_name: Some("1 bad".into()),
                        ..route("orders_(", "x")
                    },
                    RawRoute::default(),
                ]),
                topic_transaction: Some("no spaces".into()),
                message_topic: Some(String::new()),
                ..RawTopics::default()
            },
            "envelope",
            &mut problems,
        );
        let keys: Vec<&str> = problems.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "envelope.route[1].topic_regex",
                "envelope.route[1].key_field_name",
                "envelope.route[2].topic_regex",
                "envelope.route[2].topic_replacement",
                "envelope.topic_transaction",
                "envelope.message_topic",
            ]
        );
        assert!(problems[0].message.contains("invalid regex \"orders_(\""));
        assert!(!problems[0].message.contains('\n'));
    }
}
