//! Source column types as ClickHouse column types, for servers as old as 18.16 (no
//! `DateTime64`, no `LowCardinality`, no `Date32`, no `Bool`).
//!
//! | source                                   | ClickHouse                       |
//! |------------------------------------------|----------------------------------|
//! | bool                                     | UInt8 (0/1)                      |
//! | int2, int4, int8, oid                    | Int16, Int32, Int64, UInt32      |
//! | float4, float8                           | Float32, Float64                 |
//! | numeric(p,s), p <= 38                    | Decimal(p,s)                     |
//! | numeric without precision, money         | String (every digit kept)        |
//! | date                                     | Date (1970..2105)                |
//! | timestamp, timestamptz                   | DateTime, UTC, whole seconds     |
//! | time, interval                           | Int64 microseconds               |
//! | uuid                                     | UUID                             |
//! | arrays of bool/int/float/text types      | Array(Nullable(element))         |
//! | text types, json, jsonb, xml, network    | String                           |
//! | bytea                                    | String, base64                   |
//! | anything else (enums, ranges, geometry…) | String, the JSON/text form       |
//!
//! Key columns are not `Nullable` (they form the sorting key); every other column is, except
//! arrays, which ClickHouse cannot wrap (a NULL array is written as `[]`).

use sluice_api::Column;

/// How values of a column are written in `JSONEachRow`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Mapping {
    /// `UInt8` from a boolean.
    Bool,
    /// An integer type, written as a JSON number.
    Int(&'static str),
    /// `Float32`/`Float64`; NaN and infinities as `"nan"`, `"inf"`, `"-inf"`.
    Float(&'static str),
    /// `Decimal(p,s)`, written as an unquoted JSON number (18.16 refuses quoted decimals).
    Decimal {
        precision: u32,
        scale: u32,
    },
    /// `Date`, as `"YYYY-MM-DD"`.
    Date,
    /// `DateTime`, as Unix seconds in a string (independent of the server's time zone).
    DateTime,
    /// `Int64` microseconds (`time` since midnight, `interval` with Debezium's 30.4375-day
    /// months).
    Micros,
    Uuid,
    /// `Array(Nullable(element))`.
    Array(Box<Mapping>),
    /// `String`: the value's text (JSON values keep their JSON text).
    String,
}

impl Mapping {
    /// The ClickHouse type without `Nullable`.
    pub fn base_type(&self) -> String {
        match self {
            Mapping::Bool => "UInt8".into(),
            Mapping::Int(t) | Mapping::Float(t) => (*t).into(),
            Mapping::Decimal { precision, scale } => format!("Decimal({precision}, {scale})"),
            Mapping::Date => "Date".into(),
            Mapping::DateTime => "DateTime".into(),
            Mapping::Micros => "Int64".into(),
            Mapping::Uuid => "UUID".into(),
            Mapping::Array(element) => format!("Array(Nullable({}))", element.base_type()),
            Mapping::String => "String".into(),
        }
    }

    /// The column type: `Nullable` unless a key column or an array.
    pub fn column_type(&self, is_key: bool) -> String {
        if is_key || matches!(self, Mapping::Array(_)) {
            self.base_type()
        } else {
            format!("Nullable({})", self.base_type())
        }
    }
}

/// The mapping of a source column.
pub fn mapping(column: &Column) -> Mapping {
    match column.type_name.strip_prefix('_') {
        Some(element) => match scalar(element, -1) {
            m @ (Mapping::Bool | Mapping::Int(_) | Mapping::Float(_)) => {
                Mapping::Array(Box::new(m))
            }
            _ if is_text_type(element) => Mapping::Array(Box::new(Mapping::String)),
            _ => Mapping::String,
        },
        None => scalar(&column.type_name, column.type_modifier),
    }
}

fn is_text_type(name: &str) -> bool {
    matches!(name, "text" | "varchar" | "bpchar" | "name")
}

fn scalar(name: &str, typmod: i32) -> Mapping {
    match name {
        "bool" => Mapping::Bool,
        "int2" => Mapping::Int("Int16"),
        "int4" => Mapping::Int("Int32"),
        "int8" => Mapping::Int("Int64"),
        "oid" => Mapping::Int("UInt32"),
        "float4" => Mapping::Float("Float32"),
        "float8" => Mapping::Float("Float64"),
        "numeric" if typmod > 4 => {
            let packed = (typmod - 4) as u32;
            let (precision, scale) = ((packed >> 16) & 0xffff, packed & 0xffff);
            if (1..=38).contains(&precision) && scale <= precision {
                Mapping::Decimal { precision, scale }
            } else {
                Mapping::String
            }
        }
        "date" => Mapping::Date,
        "timestamp" | "timestamptz" => Mapping::DateTime,
        "time" | "interval" => Mapping::Micros,
        "uuid" => Mapping::Uuid,
        _ => Mapping::String,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn column(type_name: &str, type_modifier: i32) -> Column {
        Column {
            name: "c".into(),
            type_oid: 0,
            type_name: type_name.into(),
            type_modifier,
            is_key: false,
        }
    }

    fn ty(type_name: &str, typmod: i32) -> String {
        mapping(&column(type_name, typmod)).column_type(false)
    }

    #[test]
    fn every_source_type_has_a_clickhouse_type_that_18_16_knows() {
        assert_eq!(ty("bool", -1), "Nullable(UInt8)");
        assert_eq!(ty("int8", -1), "Nullable(Int64)");
        assert_eq!(
            ty("numeric", (12 << 16 | 2) + 4),
            "Nullable(Decimal(12, 2))"
        );
        assert_eq!(ty("timestamptz", -1), "Nullable(DateTime)");
        assert_eq!(ty("date", -1), "Nullable(Date)");
        assert_eq!(ty("interval", -1), "Nullable(Int64)");
        assert_eq!(ty("uuid", -1), "Nullable(UUID)");
        assert_eq!(ty("_int4", -1), "Array(Nullable(Int32))");
        assert_eq!(ty("_varchar", -1), "Array(Nullable(String))");
    }

    #[test]
    fn types_without_a_faithful_counterpart_fall_back_to_string() {
        assert_eq!(ty("numeric", -1), "Nullable(String)");
        assert_eq!(ty("numeric", (60 << 16) + 4), "Nullable(String)");
        assert_eq!(ty("money", -1), "Nullable(String)");
        assert_eq!(ty("mood", -1), "Nullable(String)");
        assert_eq!(ty("int4range", -1), "Nullable(String)");
        assert_eq!(ty("_jsonb", -1), "Nullable(String)");
    }

    #[test]
    fn key_columns_are_not_nullable() {
        assert_eq!(mapping(&column("int8", -1)).column_type(true), "Int64");
    }
}
