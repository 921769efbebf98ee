//! The `[envelope]` table: how change events are shaped for Debezium-compatible consumers
//! (Debezium's `decimal.handling.mode`, `time.precision.mode`, `interval.handling.mode`,
//! `hstore.handling.mode`, `money.fraction.digits`, `unavailable.value.placeholder` and
//! `message.key.columns`), and where records go (routing and the stream's own topics, see
//! [`super::route`]). Raw keys as written, validated in one step into [`EnvelopeOptions`];
//! every key is optional.

use std::collections::HashMap;

use serde::Deserialize;
use sluice_api::{join_key, ConfigProblem};

use crate::schema::{
    DecimalHandling, EnvelopeOptions, HstoreHandling, IntervalHandling, TimePrecision,
};

/// `money` fraction digits above this are not a currency any server is configured with; the
/// bound keeps a typo from producing absurd decimal scales.
pub const MAX_MONEY_FRACTION_DIGITS: u64 = 18;

/// The `[envelope]` keys as written.
#[derive(Debug, Default, Deserialize)]
pub struct RawEnvelope {
    /// `precise` (default) | `double` | `string`.
    pub decimal_handling_mode: Option<String>,
    /// `adaptive` (default) | `adaptive_time_microseconds` | `connect`.
    pub time_precision_mode: Option<String>,
    /// `numeric` (default) | `string`.
    pub interval_handling_mode: Option<String>,
    /// `json` (default) | `map`.
    pub hstore_handling_mode: Option<String>,
    /// Default [`crate::schema::DEFAULT_MONEY_FRACTION_DIGITS`].
    pub money_fraction_digits: Option<u64>,
    /// Default [`crate::schema::DEFAULT_UNAVAILABLE_VALUE_PLACEHOLDER`].
    pub unavailable_value_placeholder: Option<String>,
    /// `"schema.table" = ["column", ...]`: the key columns of that table's events.
    pub message_key_columns: Option<HashMap<String, Vec<String>>>,
    /// `[[envelope.route]]`: topic routing rules, tried in order.
    pub route: Option<Vec<super::route::RawRoute>>,
    /// Default false: BEGIN/END records and a `transaction` block in every envelope.
    pub provide_transaction_metadata: Option<bool>,
    /// Default [`crate::schema::DEFAULT_TOPIC_TRANSACTION`]: `<prefix>.<this>`.
    pub topic_transaction: Option<String>,
    /// Default [`crate::schema::DEFAULT_TOPIC_HEARTBEAT_PREFIX`]: `<this>.<prefix>`.
    pub topic_heartbeat_prefix: Option<String>,
    /// Default false: logical decoding messages become records.
    pub logical_decoding_messages: Option<bool>,
    /// Default `<prefix>.message`.
    pub message_topic: Option<String>,
}

/// Validate `[envelope]`, reporting every problem with its key.
pub fn validate(raw: RawEnvelope, prefix: &str) -> Result<EnvelopeOptions, Vec<ConfigProblem>> {
    let mut problems = Vec::new();
    let key = |k: &str| join_key(prefix, k);
    let defaults = EnvelopeOptions::default();

    let decimal_handling = choose(
        raw.decimal_handling_mode,
        &[
            DecimalHandling::Precise,
            DecimalHandling::Double,
            DecimalHandling::String,
        ],
        DecimalHandling::as_str,
        &key("decimal_handling_mode"),
        &mut problems,
    );
    let time_precision = choose(
        raw.time_precision_mode,
        &[
            TimePrecision::Adaptive,
            TimePrecision::AdaptiveTimeMicroseconds,
            TimePrecision::Connect,
        ],
        TimePrecision::as_str,
        &key("time_precision_mode"),
        &mut problems,
    );
    let interval_handling = choose(
        raw.interval_handling_mode,
        &[IntervalHandling::Numeric, IntervalHandling::String],
        IntervalHandling::as_str,
        &key("interval_handling_mode"),
        &mut problems,
    );
    let hstore_handling = choose(
        raw.hstore_handling_mode,
        &[HstoreHandling::Json, HstoreHandling::Map],
        HstoreHandling::as_str,
        &key("hstore_handling_mode"),
        &mut problems,
    );

    let money_fraction_digits = match raw.money_fraction_digits {
        None => defaults.money_fraction_digits,
        Some(n) if n <= MAX_MONEY_FRACTION_DIGITS => n as u32,
        Some(n) => {
            problems.push(ConfigProblem::new(
                key("money_fraction_digits"),
                format!("{n} is too large: at most {MAX_MONEY_FRACTION_DIGITS}"),
            ));
            defaults.money_fraction_digits
        }
    };

    let unavailable_value_placeholder = match raw.unavailable_value_placeholder {
        None => defaults.unavailable_value_placeholder,
        Some(p) if p.is_empty() => {
            problems.push(ConfigProblem::new(
                key("unavailable_value_placeholder"),
                "must not be empty: consumers could not tell it from an empty string",
            ));
            String::new()
        }
        Some(p) => p,
    };

    let mut message_key_columns = HashMap::new();
    for (table, columns) in raw.message_key_columns.unwrap_or_default() {
        let table_key = format!("{}.\"{table}\"", key("message_key_columns"));
        let qualified = table
            .split_once('.')
            .is_some_and(|(s, t)| !s.is_empty() && !t.is_empty());
        if !qualified {
            problems.push(ConfigProblem::new(
                &table_key,
                "tables are named schema.table",
            ));
        } else if columns.is_empty() || columns.iter().any(String::is_empty) {
            problems.push(ConfigProblem::new(
                &table_key,
                "list one or more column names",
            ));
        } else {
            message_key_columns.insert(table, columns);
        }
    }
    let topics = super::route::validate_topics(
        super::route::RawTopics {
            route: raw.route,
            provide_transaction_metadata: raw.provide_transaction_metadata,
            topic_transaction: raw.topic_transaction,
            topic_heartbeat_prefix: raw.topic_heartbeat_prefix,
            logical_decoding_messages: raw.logical_decoding_messages,
            message_topic: raw.message_topic,
        },
        prefix,
        &mut problems,
    );
    // A stable order for the problems of a hash map's entries.
    problems.sort_by(|a, b| a.key.cmp(&b.key));

    if problems.is_empty() {
        Ok(EnvelopeOptions {
            decimal_handling,
            time_precision,
            interval_handling,
            hstore_handling,
            money_fraction_digits,
            unavailable_value_placeholder,
            message_key_columns,
            topics,
        })
    } else {
        Err(problems)
    }
}

/// The choice named by `value` (its `as_str`), the first choice when absent.
fn choose<T: Copy>(
    value: Option<String>,
    choices: &[T],
    name: fn(T) -> &'static str,
    key: &str,
    problems: &mut Vec<ConfigProblem>,
) -> T {
    let Some(value) = value else {
        return choices[0];
    };
    match choices.iter().find(|c| name(**c) == value) {
        Some(choice) => *choice,
        None => {
            let names: Vec<&str> = choices.iter().map(|c| name(*c)).collect();
            problems.push(ConfigProblem::new(
                key,
                format!(
                    "unknown value {value:?}; expected one of: {}",
                    names.join(", ")
                ),
            ));
            choices[0]
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> (Option<RawEnvelope>, Vec<ConfigProblem>) {
        let value = toml::Value::Table(toml::from_str(text).expect("toml"));
        sluice_api::from_toml_partial(value, "envelope")
    }

    #[test]
    fn an_empty_section_gives_debeziums_defaults() {
        let (raw, problems) = parse("");
        assert!(problems.is_empty());
        let options = validate(raw.unwrap(), "envelope").unwrap();
        assert_eq!(options, EnvelopeOptions::default());
        assert_eq!(
            options.unavailable_value_placeholder,
            "__debezium_unavailable_value"
        );
        assert_eq!(options.money_fraction_digits, 2);
    }

    #[test]
    fn every_key_is_read() {
        let (raw, problems) = parse(
            "decimal_handling_mode = 'string'\n\
             time_precision_mode = 'connect'\n\
             interval_handling_mode = 'string'\n\
             hstore_handling_mode = 'map'\n\
             money_fraction_digits = 3\n\
             unavailable_value_placeholder = '??'\n\
             [message_key_columns]\n\
             'public.orders' = ['region', 'id']\n",
        );
        assert!(problems.is_empty(), "{problems:?}");
        let options = validate(raw.unwrap(), "envelope").unwrap();
        assert_eq!(options.decimal_handling, DecimalHandling::String);
        assert_eq!(options.time_precision, TimePrecision::Connect);
        assert_eq!(options.interval_handling, IntervalHandling::String);
        assert_eq!(options.hstore_handling, HstoreHandling::Map);
        assert_eq!(options.money_fraction_digits, 3);
        assert_eq!(options.unavailable_value_placeholder, "??");
        assert_eq!(
            options.message_key_columns["public.orders"],
            ["region".to_owned(), "id".to_owned()]
        );
    }

    #[test]
    fn every_bad_value_is_reported_with_its_key() {
        let (raw, problems) = parse(
            "decimal_handling_mode = 'exact'\n\
             time_precision_mode = 'micro'\n\
             money_fraction_digits = 40\n\
             unavailable_value_placeholder = ''\n\
             [message_key_columns]\n\
             orders = ['id']\n\
             'public.items' = []\n",
        );
        assert!(problems.is_empty());
        let problems = validate(raw.unwrap(), "envelope").unwrap_err();
        let shown: Vec<String> = problems.iter().map(ToString::to_string).collect();
        assert_eq!(
            shown,
            [
                "envelope.decimal_handling_mode: unknown value \"exact\"; expected one of: precise, double, string",
                "envelope.message_key_columns.\"orders\": tables are named schema.table",
                "envelope.message_key_columns.\"public.items\": list one or more column names",
                "envelope.money_fraction_digits: 40 is too large: at most 18",
                "envelope.time_precision_mode: unknown value \"micro\"; expected one of: adaptive, adaptive_time_microseconds, connect",
                "envelope.unavailable_value_placeholder: must not be empty: consumers could not tell it from an empty string",
            ]
        );
    }

    #[test]
    fn routes_and_stream_topics_are_read_and_a_bad_regex_names_its_key() {
        let (raw, problems) = parse(
            "provide_transaction_metadata = true\n\
             logical_decoding_messages = true\n\
             message_topic = 'app.messages'\n\
             [[route]]\n\
             topic_regex = 'test\\.public\\.orders_(.*)'\n\
             topic_replacement = 'test.orders'\n\
             [[route]]\n\
             topic_regex = '(unclosed'\n\
             topic_replacement = 'x'\n",
        );
        assert!(problems.is_empty(), "{problems:?}");
        let problems = validate(raw.unwrap(), "envelope").unwrap_err();
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].key, "envelope.route[1].topic_regex");

        let (raw, _) = parse(
            "provide_transaction_metadata = true\n\
             logical_decoding_messages = true\n\
             [[route]]\n\
             topic_regex = 'test\\.public\\.orders_(.*)'\n\
             topic_replacement = 'test.orders'\n",
        );
        let options = validate(raw.unwrap(), "envelope").unwrap();
        assert!(options.topics.provide_transaction_metadata);
        assert!(options.topics.logical_decoding_messages);
        assert_eq!(
            options.topics.place("test.public.orders_7").topic,
            "test.orders"
        );
    }

    #[test]
    fn unknown_keys_are_reported_by_the_raw_step() {
        let (_, problems) = parse("decimal_mode = 'double'");
        assert_eq!(problems.len(), 1);
        assert!(problems[0]
            .to_string()
            .starts_with("envelope.decimal_mode: unknown key"));
    }
}
