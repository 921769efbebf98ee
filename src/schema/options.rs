//! How table columns become envelope fields: the validated `[envelope]` options (Debezium's
//! `decimal.handling.mode`, `time.precision.mode`, ...) and what the source knows about
//! user-defined types. Schema building and both encoders read these; nothing here does I/O.

use std::collections::HashMap;

/// Debezium's default placeholder for unchanged TOASTed values.
pub const DEFAULT_UNAVAILABLE_VALUE_PLACEHOLDER: &str = "__debezium_unavailable_value";

/// PostgreSQL's `money` has two fraction digits under the common `lc_monetary` settings.
pub const DEFAULT_MONEY_FRACTION_DIGITS: u32 = 2;

/// `decimal.handling.mode`: how `numeric` (and `money`) values are represented.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DecimalHandling {
    /// Exact: Avro `decimal` with the column's precision and scale; unconstrained `numeric`
    /// becomes `io.debezium.data.VariableScaleDecimal`.
    #[default]
    Precise,
    /// A `double`: may lose precision.
    Double,
    /// The decimal's text.
    String,
}

impl DecimalHandling {
    /// The option's value as written in configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            DecimalHandling::Precise => "precise",
            DecimalHandling::Double => "double",
            DecimalHandling::String => "string",
        }
    }
}

/// `time.precision.mode`: how `date`, `time` and `timestamp` values are represented.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TimePrecision {
    /// Milliseconds for precision 0-3, microseconds above (`io.debezium.time.*`).
    #[default]
    Adaptive,
    /// As adaptive, but `time` is always `io.debezium.time.MicroTime`.
    AdaptiveTimeMicroseconds,
    /// Kafka Connect's own `Date`, `Time` and `Timestamp` logical types (millisecond precision).
    Connect,
}

impl TimePrecision {
    /// The option's value as written in configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            TimePrecision::Adaptive => "adaptive",
            TimePrecision::AdaptiveTimeMicroseconds => "adaptive_time_microseconds",
            TimePrecision::Connect => "connect",
        }
    }
}

/// `interval.handling.mode`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum IntervalHandling {
    /// `io.debezium.time.MicroDuration`: microseconds, a month counted as 30.4375 days.
    #[default]
    Numeric,
    /// `io.debezium.time.Interval`: an ISO-8601 duration string.
    String,
}

impl IntervalHandling {
    /// The option's value as written in configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            IntervalHandling::Numeric => "numeric",
            IntervalHandling::String => "string",
        }
    }
}

/// `hstore.handling.mode`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum HstoreHandling {
    /// `io.debezium.data.Json`: a JSON object as text.
    #[default]
    Json,
    /// An Avro map of optional strings.
    Map,
}

impl HstoreHandling {
    /// The option's value as written in configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            HstoreHandling::Json => "json",
            HstoreHandling::Map => "map",
        }
    }
}

/// The validated envelope options every table's schema and encoder is built from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EnvelopeOptions {
    /// How `numeric` and `money` are represented.
    pub decimal_handling: DecimalHandling,
    /// How `date`, `time` and `timestamp` are represented.
    pub time_precision: TimePrecision,
    /// How `interval` is represented.
    pub interval_handling: IntervalHandling,
    /// How `hstore` is represented.
    pub hstore_handling: HstoreHandling,
    /// The scale of `money` values.
    pub money_fraction_digits: u32,
    /// Written in place of an unchanged TOASTed value the event does not carry.
    pub unavailable_value_placeholder: String,
    /// Key columns chosen per table (`schema.table` -> column names), replacing the replica
    /// identity's; Debezium's `message.key.columns`.
    pub message_key_columns: HashMap<String, Vec<String>>,
    /// Topic routing and the stream's own topics (transactions, heartbeats, messages).
    pub topics: super::topics::TopicOptions,
}

impl Default for EnvelopeOptions {
    fn default() -> Self {
        EnvelopeOptions {
            decimal_handling: DecimalHandling::default(),
            time_precision: TimePrecision::default(),
            interval_handling: IntervalHandling::default(),
            hstore_handling: HstoreHandling::default(),
            money_fraction_digits: DEFAULT_MONEY_FRACTION_DIGITS,
            unavailable_value_placeholder: DEFAULT_UNAVAILABLE_VALUE_PLACEHOLDER.to_owned(),
            message_key_columns: HashMap::new(),
            topics: super::topics::TopicOptions::default(),
        }
    }
}

/// What the source knows about user-defined types, by the type name columns carry
/// (`schema.typname`, as in [`sluice_api::Column::type_name`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UserTypes {
    /// Each enum type's labels, in their sort order.
    pub enums: HashMap<String, Vec<String>>,
    /// Each domain's base type name and type modifier: a domain column is mapped as its base.
    pub domains: HashMap<String, (String, i32)>,
}
