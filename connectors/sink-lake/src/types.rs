//! Source column types as Delta Lake (Arrow) column types.
//!
//! | source                                   | Delta (Arrow)                          |
//! |------------------------------------------|----------------------------------------|
//! | bool                                     | boolean                                |
//! | int2, int4, int8                         | short, integer, long                   |
//! | oid                                      | long                                   |
//! | float4, float8                           | float, double                          |
//! | numeric(p,s), p <= 38                    | decimal(p,s)                           |
//! | numeric without precision, money         | string (every digit kept)              |
//! | date                                     | date                                   |
//! | timestamp, timestamptz                   | timestamp (microseconds, UTC)          |
//! | bytea                                    | binary                                 |
//! | anything else (text, json, uuid, time…)  | string: the value's text or JSON form  |
//!
//! Every column is nullable (a delete carries only the key; a column dropped at the source
//! reads as null from then on). Values a type cannot hold (a date or timestamp at infinity, a
//! NaN in a `numeric(p,s)`) are written as null.

use deltalake::arrow::datatypes::{DataType, TimeUnit};
use sluice_api::Column;

/// The time zone of timestamp columns: Delta's `timestamp` is an instant in UTC.
pub const UTC: &str = "UTC";

/// How the values of a column are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mapping {
    Bool,
    Int16,
    Int32,
    Int64,
    Float32,
    Float64,
    Decimal {
        precision: u8,
        scale: i8,
    },
    Date,
    /// Microseconds since the epoch, UTC (`timestamp` is taken as UTC wall-clock time).
    Timestamp,
    Binary,
    /// The value's text (strings as they are, anything else in sluice's JSON form).
    String,
}

impl Mapping {
    /// The Arrow type of the column.
    pub fn arrow_type(self) -> DataType {
        match self {
            Mapping::Bool => DataType::Boolean,
            Mapping::Int16 => DataType::Int16,
            Mapping::Int32 => DataType::Int32,
            Mapping::Int64 => DataType::Int64,
            Mapping::Float32 => DataType::Float32,
            Mapping::Float64 => DataType::Float64,
            Mapping::Decimal { precision, scale } => DataType::Decimal128(precision, scale),
            Mapping::Date => DataType::Date32,
            Mapping::Timestamp => DataType::Timestamp(TimeUnit::Microsecond, Some(UTC.into())),
            Mapping::Binary => DataType::Binary,
            Mapping::String => DataType::Utf8,
        }
    }
}

/// The mapping of a source column.
pub fn mapping(column: &Column) -> Mapping {
    match column.type_name.as_str() {
        "bool" => Mapping::Bool,
        "int2" => Mapping::Int16,
        "int4" => Mapping::Int32,
        "int8" | "oid" => Mapping::Int64,
        "float4" => Mapping::Float32,
        "float8" => Mapping::Float64,
        "numeric" => numeric(column.type_modifier),
        "date" => Mapping::Date,
        "timestamp" | "timestamptz" => Mapping::Timestamp,
        "bytea" => Mapping::Binary,
        _ => Mapping::String,
    }
}

/// `numeric(p,s)` as `decimal(p,s)` when Delta can hold it (p <= 38, 0 <= s <= p); the
/// modifier packs `((p << 16) | s) + 4`.
fn numeric(typmod: i32) -> Mapping {
    if typmod < 4 {
        return Mapping::String;
    }
    let packed = (typmod - 4) as u32;
    let (precision, scale) = (packed >> 16, packed & 0xffff);
    if (1..=38).contains(&precision) && scale <= precision {
        Mapping::Decimal {
            precision: precision as u8,
            scale: scale as i8,
        }
    } else {
        Mapping::String
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(type_name: &str, type_modifier: i32) -> DataType {
        mapping(&Column {
            name: "c".into(),
            type_oid: 0,
            type_name: type_name.into(),
            type_modifier,
            is_key: false,
        })
        .arrow_type()
    }

    #[test]
    fn source_types_map_to_the_delta_types_that_hold_them() {
        assert_eq!(map("bool", -1), DataType::Boolean);
        assert_eq!(map("int4", -1), DataType::Int32);
        assert_eq!(map("oid", -1), DataType::Int64);
        assert_eq!(
            map("numeric", (12 << 16 | 2) + 4),
            DataType::Decimal128(12, 2)
        );
        assert_eq!(map("date", -1), DataType::Date32);
        assert_eq!(
            map("timestamptz", -1),
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
        );
        assert_eq!(map("bytea", -1), DataType::Binary);
    }

    #[test]
    fn types_without_a_faithful_delta_type_are_strings() {
        for (name, typmod) in [
            ("numeric", -1),
            ("numeric", (60 << 16) + 4),
            ("money", -1),
            ("uuid", -1),
            ("jsonb", -1),
            ("_int4", -1),
            ("time", -1),
        ] {
            assert_eq!(map(name, typmod), DataType::Utf8, "{name}");
        }
    }
}
