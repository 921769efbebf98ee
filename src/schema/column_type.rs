//! How each PostgreSQL column type maps to a Kafka Connect / Avro field, as Debezium's
//! PostgreSQL connector maps it under the envelope options. The result, a [`FieldKind`], is
//! both the schema description and the per-column encoder plan: computed once per table
//! shape, so that encoding never looks at type names again.

use sluice_api::Column;

use super::options::{
    DecimalHandling, EnvelopeOptions, HstoreHandling, IntervalHandling, TimePrecision, UserTypes,
};

/// PostgreSQL's `VARHDRSZ`, subtracted from a `numeric` type modifier.
const VARHDRSZ: i32 = 4;
/// A `time`/`timestamp` column without an explicit precision keeps microseconds.
const DEFAULT_TIME_PRECISION: i32 = 6;
/// Domains over domains are followed this deep; a deeper (or cyclic) chain maps to a string.
const MAX_DOMAIN_DEPTH: usize = 16;
/// Debezium gives `varbit` without a length the largest Java int as its `length` parameter.
const UNBOUNDED_BITS_LENGTH: u32 = i32::MAX as u32;

/// Which string a string field holds: plain text or one of Debezium's semantic string types.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StringKind {
    /// Plain text (text types, network addresses, ranges, unknown types ...).
    Plain,
    /// `io.debezium.data.Json` (json, jsonb, hstore in json mode).
    Json,
    /// `io.debezium.data.Uuid`.
    Uuid,
    /// `io.debezium.data.Xml`.
    Xml,
    /// `io.debezium.data.Ltree`.
    Ltree,
    /// `io.debezium.time.ZonedTimestamp`: an ISO-8601 instant in UTC.
    ZonedTimestamp,
    /// `io.debezium.time.ZonedTime`: an ISO-8601 time in UTC.
    ZonedTime,
    /// `io.debezium.time.Interval`: an ISO-8601 duration.
    Interval,
    /// A decimal's text (`decimal.handling.mode = string`).
    Decimal,
}

/// One field's type: the schema it has and how values are written into it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FieldKind {
    Boolean,
    /// Connect `int16`: an Avro `int` marked `connect.type: int16`.
    Int16,
    Int32,
    Int64,
    Float32,
    /// A double; also `numeric`/`money` under `decimal.handling.mode = double`.
    Float64,
    String(StringKind),
    Bytes,
    /// `org.apache.kafka.connect.data.Decimal`: unscaled two's-complement bytes at a fixed
    /// scale. `precision` is absent for `money` (the converter then writes 64).
    Decimal {
        precision: Option<u32>,
        scale: u32,
    },
    /// `io.debezium.data.VariableScaleDecimal`: a record of scale and unscaled bytes.
    VariableScaleDecimal,
    /// `io.debezium.time.Date`: days since the epoch.
    Date,
    /// `io.debezium.time.Time`: milliseconds since midnight.
    Time,
    /// `io.debezium.time.MicroTime`: microseconds since midnight.
    MicroTime,
    /// `io.debezium.time.Timestamp`: milliseconds since the epoch.
    Timestamp,
    /// `io.debezium.time.MicroTimestamp`: microseconds since the epoch.
    MicroTimestamp,
    /// `io.debezium.time.MicroDuration`: microseconds.
    MicroDuration,
    /// Connect's `Date` logical type (Avro `date`).
    ConnectDate,
    /// Connect's `Time` logical type (Avro `time-millis`).
    ConnectTime,
    /// Connect's `Timestamp` logical type (Avro `timestamp-millis`).
    ConnectTimestamp,
    /// `io.debezium.data.Enum` with its allowed labels, comma-separated.
    Enum {
        allowed: String,
    },
    /// `io.debezium.data.Bits`: the bits as little-endian bytes, with the declared length.
    Bits {
        length: u32,
    },
    /// An array of optional elements.
    Array(Box<FieldKind>),
    /// `hstore` in map mode: a map of optional strings.
    HstoreMap,
    /// `io.debezium.data.geometry.Point`: x, y and the point's WKB.
    Point,
}

/// A Connect schema's name, version, parameters and doc, as the converters write them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConnectMeta {
    pub name: &'static str,
    pub version: Option<u32>,
    pub parameters: Vec<(&'static str, String)>,
    pub doc: Option<&'static str>,
}

impl FieldKind {
    /// The Kafka Connect schema type.
    pub fn connect_type(&self) -> &'static str {
        match self {
            FieldKind::Boolean => "boolean",
            FieldKind::Int16 => "int16",
            FieldKind::Int32 | FieldKind::Date | FieldKind::Time => "int32",
            FieldKind::ConnectDate | FieldKind::ConnectTime => "int32",
            FieldKind::Int64
            | FieldKind::MicroTime
            | FieldKind::Timestamp
            | FieldKind::MicroTimestamp
            | FieldKind::MicroDuration
            | FieldKind::ConnectTimestamp => "int64",
            FieldKind::Float32 => "float",
            FieldKind::Float64 => "double",
            FieldKind::String(_) | FieldKind::Enum { .. } => "string",
            FieldKind::Bytes | FieldKind::Decimal { .. } | FieldKind::Bits { .. } => "bytes",
            FieldKind::VariableScaleDecimal | FieldKind::Point => "struct",
            FieldKind::Array(_) => "array",
            FieldKind::HstoreMap => "map",
        }
    }

    /// The JSON converter's spelling of the Connect type (`float32`, not `float`).
    pub fn json_type(&self) -> &'static str {
        match self.connect_type() {
            "float" => "float32",
            "double" => "float64",
            other => other,
        }
    }

    /// The Avro primitive the Confluent converter writes for a non-struct type.
    pub fn avro_primitive(&self) -> &'static str {
        match self.connect_type() {
            "int16" | "int32" => "int",
            "int64" => "long",
            other => other,
        }
    }

    /// The named Connect schema, if any.
    pub fn connect_meta(&self) -> Option<ConnectMeta> {
        let semantic = |name: &'static str| ConnectMeta {
            name,
            version: Some(1),
            ..ConnectMeta::default()
        };
        Some(match self {
            FieldKind::String(StringKind::Json) => semantic("io.debezium.data.Json"),
            FieldKind::String(StringKind::Uuid) => semantic("io.debezium.data.Uuid"),
            FieldKind::String(StringKind::Xml) => semantic("io.debezium.data.Xml"),
            FieldKind::String(StringKind::Ltree) => semantic("io.debezium.data.Ltree"),
            FieldKind::String(StringKind::ZonedTimestamp) => {
                semantic("io.debezium.time.ZonedTimestamp")
            }
            FieldKind::String(StringKind::ZonedTime) => semantic("io.debezium.time.ZonedTime"),
            FieldKind::String(StringKind::Interval) => semantic("io.debezium.time.Interval"),
            FieldKind::Date => semantic("io.debezium.time.Date"),
            FieldKind::Time => semantic("io.debezium.time.Time"),
            FieldKind::MicroTime => semantic("io.debezium.time.MicroTime"),
            FieldKind::Timestamp => semantic("io.debezium.time.Timestamp"),
            FieldKind::MicroTimestamp => semantic("io.debezium.time.MicroTimestamp"),
            FieldKind::MicroDuration => semantic("io.debezium.time.MicroDuration"),
            FieldKind::ConnectDate => semantic("org.apache.kafka.connect.data.Date"),
            FieldKind::ConnectTime => semantic("org.apache.kafka.connect.data.Time"),
            FieldKind::ConnectTimestamp => semantic("org.apache.kafka.connect.data.Timestamp"),
            FieldKind::Decimal { precision, scale } => {
                let mut parameters = vec![("scale", scale.to_string())];
                if let Some(p) = precision {
                    parameters.push(("connect.decimal.precision", p.to_string()));
                }
                ConnectMeta {
                    parameters,
                    ..semantic("org.apache.kafka.connect.data.Decimal")
                }
            }
            FieldKind::VariableScaleDecimal => ConnectMeta {
                doc: Some("Variable scaled decimal"),
                ..semantic("io.debezium.data.VariableScaleDecimal")
            },
            FieldKind::Point => ConnectMeta {
                doc: Some("Geometry (POINT)"),
                ..semantic("io.debezium.data.geometry.Point")
            },
            FieldKind::Enum { allowed } => ConnectMeta {
                parameters: vec![("allowed", allowed.clone())],
                ..semantic("io.debezium.data.Enum")
            },
            FieldKind::Bits { length } => ConnectMeta {
                parameters: vec![("length", length.to_string())],
                ..semantic("io.debezium.data.Bits")
            },
            _ => return None,
        })
    }

    /// The Avro `logicalType` the Confluent converter adds, if any.
    pub fn avro_logical_type(&self) -> Option<&'static str> {
        match self {
            FieldKind::Decimal { .. } => Some("decimal"),
            FieldKind::ConnectDate => Some("date"),
            FieldKind::ConnectTime => Some("time-millis"),
            FieldKind::ConnectTimestamp => Some("timestamp-millis"),
            _ => None,
        }
    }

    /// The struct fields of a struct kind: (name, kind, optional).
    pub fn struct_fields(&self) -> &'static [(&'static str, FieldKind, bool)] {
        const VSD: &[(&str, FieldKind, bool)] = &[
            ("scale", FieldKind::Int32, false),
            ("value", FieldKind::Bytes, false),
        ];
        const POINT: &[(&str, FieldKind, bool)] = &[
            ("x", FieldKind::Float64, false),
            ("y", FieldKind::Float64, false),
            ("wkb", FieldKind::Bytes, true),
            ("srid", FieldKind::Int32, true),
        ];
        match self {
            FieldKind::VariableScaleDecimal => VSD,
            FieldKind::Point => POINT,
            _ => &[],
        }
    }
}

/// The field kind of a table column under `options`.
pub fn column_kind(column: &Column, options: &EnvelopeOptions, types: &UserTypes) -> FieldKind {
    resolve(&column.type_name, column.type_modifier, options, types, 0)
}

fn resolve(
    type_name: &str,
    typmod: i32,
    options: &EnvelopeOptions,
    types: &UserTypes,
    depth: usize,
) -> FieldKind {
    if let Some(labels) = types.enums.get(type_name) {
        return FieldKind::Enum {
            allowed: labels.join(","),
        };
    }
    if let Some((base, base_typmod)) = types.domains.get(type_name) {
        if depth >= MAX_DOMAIN_DEPTH {
            return FieldKind::String(StringKind::Plain);
        }
        // A domain's own modifier (on the column) wins over the one in its definition.
        let typmod = if typmod >= 0 { typmod } else { *base_typmod };
        return resolve(base, typmod, options, types, depth + 1);
    }
    let (schema, bare) = match type_name.rsplit_once('.') {
        Some((schema, bare)) => (Some(schema), bare),
        None => (None, type_name),
    };
    if let Some(element) = bare.strip_prefix('_') {
        let element = match schema {
            Some(schema) => format!("{schema}.{element}"),
            None => element.to_owned(),
        };
        let kind = resolve(&element, typmod, options, types, depth + 1);
        return FieldKind::Array(Box::new(kind));
    }
    // Extension types live in whatever schema they were created in.
    match bare {
        "hstore" => {
            return match options.hstore_handling {
                HstoreHandling::Json => FieldKind::String(StringKind::Json),
                HstoreHandling::Map => FieldKind::HstoreMap,
            }
        }
        "ltree" => return FieldKind::String(StringKind::Ltree),
        _ => {}
    }
    if schema.is_some_and(|s| s != "pg_catalog") {
        return FieldKind::String(StringKind::Plain);
    }
    builtin(bare, typmod, options)
}

fn builtin(name: &str, typmod: i32, options: &EnvelopeOptions) -> FieldKind {
    let time_precision = if typmod < 0 {
        DEFAULT_TIME_PRECISION
    } else {
        typmod
    };
    match name {
        "bool" => FieldKind::Boolean,
        "int2" => FieldKind::Int16,
        "int4" => FieldKind::Int32,
        "int8" | "oid" => FieldKind::Int64,
        "float4" => FieldKind::Float32,
        "float8" => FieldKind::Float64,
        "numeric" => numeric_kind(typmod, options),
        "money" => match options.decimal_handling {
            DecimalHandling::Precise => FieldKind::Decimal {
                precision: None,
                scale: options.money_fraction_digits,
            },
            DecimalHandling::Double => FieldKind::Float64,
            DecimalHandling::String => FieldKind::String(StringKind::Decimal),
        },
        "bytea" => FieldKind::Bytes,
        "json" | "jsonb" => FieldKind::String(StringKind::Json),
        "uuid" => FieldKind::String(StringKind::Uuid),
        "xml" => FieldKind::String(StringKind::Xml),
        "date" => match options.time_precision {
            TimePrecision::Connect => FieldKind::ConnectDate,
            _ => FieldKind::Date,
        },
        "time" => match options.time_precision {
            TimePrecision::Connect => FieldKind::ConnectTime,
            TimePrecision::AdaptiveTimeMicroseconds => FieldKind::MicroTime,
            TimePrecision::Adaptive if time_precision <= 3 => FieldKind::Time,
            TimePrecision::Adaptive => FieldKind::MicroTime,
        },
        "timestamp" => match options.time_precision {
            TimePrecision::Connect => FieldKind::ConnectTimestamp,
            _ if time_precision <= 3 => FieldKind::Timestamp,
            _ => FieldKind::MicroTimestamp,
        },
        "timestamptz" => FieldKind::String(StringKind::ZonedTimestamp),
        "timetz" => FieldKind::String(StringKind::ZonedTime),
        "interval" => match options.interval_handling {
            IntervalHandling::Numeric => FieldKind::MicroDuration,
            IntervalHandling::String => FieldKind::String(StringKind::Interval),
        },
        "bit" if typmod <= 1 => FieldKind::Boolean,
        "bit" => FieldKind::Bits {
            length: typmod as u32,
        },
        "varbit" => FieldKind::Bits {
            length: if typmod > 0 {
                typmod as u32
            } else {
                UNBOUNDED_BITS_LENGTH
            },
        },
        "point" => FieldKind::Point,
        _ => FieldKind::String(StringKind::Plain),
    }
}

/// `numeric(p,s)` from its type modifier; -1 means unconstrained.
pub fn numeric_precision_scale(typmod: i32) -> Option<(u32, i32)> {
    if typmod < VARHDRSZ {
        return None;
    }
    let packed = typmod - VARHDRSZ;
    let precision = ((packed >> 16) & 0xffff) as u32;
    // The scale is an 11-bit signed field since PostgreSQL 15 (negative scales).
    let scale = ((packed & 0x7ff) ^ 1024) - 1024;
    Some((precision, scale))
}

fn numeric_kind(typmod: i32, options: &EnvelopeOptions) -> FieldKind {
    match options.decimal_handling {
        DecimalHandling::Double => FieldKind::Float64,
        DecimalHandling::String => FieldKind::String(StringKind::Decimal),
        DecimalHandling::Precise => match numeric_precision_scale(typmod) {
            // A negative scale rounds to tens, hundreds ...: values are integers, scale 0.
            Some((precision, scale)) => FieldKind::Decimal {
                precision: Some(precision),
                scale: scale.max(0) as u32,
            },
            None => FieldKind::VariableScaleDecimal,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn column(type_name: &str, typmod: i32) -> Column {
        Column {
            name: "c".into(),
            type_oid: 0,
            type_name: type_name.into(),
            type_modifier: typmod,
            is_key: false,
        }
    }

    fn kind(type_name: &str, typmod: i32) -> FieldKind {
        column_kind(
            &column(type_name, typmod),
            &EnvelopeOptions::default(),
            &UserTypes::default(),
        )
    }

    #[test]
    fn numeric_type_modifiers_give_precision_and_scale() {
        // numeric(10,2): ((10 << 16) | 2) + 4
        assert_eq!(numeric_precision_scale((10 << 16 | 2) + 4), Some((10, 2)));
        assert_eq!(numeric_precision_scale(-1), None);
        assert_eq!(
            kind("numeric", (10 << 16 | 2) + 4),
            FieldKind::Decimal {
                precision: Some(10),
                scale: 2
            }
        );
        assert_eq!(kind("numeric", -1), FieldKind::VariableScaleDecimal);
    }

    #[test]
    fn adaptive_time_precision_picks_millis_up_to_three_digits() {
        assert_eq!(kind("timestamp", 3), FieldKind::Timestamp);
        assert_eq!(kind("timestamp", -1), FieldKind::MicroTimestamp);
        assert_eq!(kind("time", 0), FieldKind::Time);
        assert_eq!(kind("time", 6), FieldKind::MicroTime);
        assert_eq!(
            kind("timestamptz", -1),
            FieldKind::String(StringKind::ZonedTimestamp)
        );
    }

    #[test]
    fn connect_mode_uses_kafka_connect_logical_types() {
        let options = EnvelopeOptions {
            time_precision: TimePrecision::Connect,
            ..EnvelopeOptions::default()
        };
        let types = UserTypes::default();
        assert_eq!(
            column_kind(&column("timestamp", 6), &options, &types),
            FieldKind::ConnectTimestamp
        );
        assert_eq!(
            column_kind(&column("date", -1), &options, &types),
            FieldKind::ConnectDate
        );
    }

    #[test]
    fn arrays_enums_and_domains_resolve_through_user_types() {
        let mut types = UserTypes::default();
        types
            .enums
            .insert("app.mood".into(), vec!["sad".into(), "ok".into()]);
        types
            .domains
            .insert("app.price".into(), ("numeric".into(), (8 << 16 | 2) + 4));
        let options = EnvelopeOptions::default();
        assert_eq!(
            column_kind(&column("app._mood", -1), &options, &types),
            FieldKind::Array(Box::new(FieldKind::Enum {
                allowed: "sad,ok".into()
            }))
        );
        assert_eq!(
            column_kind(&column("app.price", -1), &options, &types),
            FieldKind::Decimal {
                precision: Some(8),
                scale: 2
            }
        );
        assert_eq!(
            kind("_int4", -1),
            FieldKind::Array(Box::new(FieldKind::Int32))
        );
    }

    #[test]
    fn bit_one_is_a_boolean_and_longer_bit_strings_are_bits() {
        assert_eq!(kind("bit", 1), FieldKind::Boolean);
        assert_eq!(kind("bit", 8), FieldKind::Bits { length: 8 });
        assert_eq!(
            kind("varbit", -1),
            FieldKind::Bits {
                length: i32::MAX as u32
            }
        );
    }

    #[test]
    fn unknown_and_extension_types_fall_back_to_strings() {
        assert_eq!(kind("tsvector", -1), FieldKind::String(StringKind::Plain));
        assert_eq!(kind("ext.hstore", -1), FieldKind::String(StringKind::Json));
        assert_eq!(kind("oid:4000", -1), FieldKind::String(StringKind::Plain));
    }
}
