//! Source columns and values in PostgreSQL's own terms: the target column type of each source
//! column, and each value in the text form PostgreSQL's input functions read. Every value is
//! sent as text and cast by the server (`$1::text::int4`), so one code path covers every type.
//!
//! Type mapping: built-in types keep their type (with length, precision and scale); types the
//! target may not have (enums, domains, extension types such as hstore, anything unknown)
//! become `text`, and arrays of them `text[]`.

use sluice_api::{pg_text, Column, Value};

/// Built-in types created in the target under their own name.
const SAME_TYPES: &[&str] = &[
    "bool",
    "int2",
    "int4",
    "int8",
    "float4",
    "float8",
    "money",
    "text",
    "name",
    "bytea",
    "date",
    "time",
    "timetz",
    "timestamp",
    "timestamptz",
    "interval",
    "uuid",
    "json",
    "jsonb",
    "xml",
    "inet",
    "cidr",
    "macaddr",
    "macaddr8",
    "point",
    "line",
    "lseg",
    "box",
    "path",
    "polygon",
    "circle",
    "int4range",
    "int8range",
    "numrange",
    "daterange",
    "tsrange",
    "tstzrange",
    "oid",
    "tsvector",
    "tsquery",
];

/// The target column type for a source column.
pub fn target_type(column: &Column) -> String {
    match column.type_name.strip_prefix('_') {
        Some(element) => format!("{}[]", scalar_type(element, -1)),
        None => scalar_type(&column.type_name, column.type_modifier),
    }
}

fn scalar_type(name: &str, typmod: i32) -> String {
    match name {
        "varchar" | "bpchar" if typmod > 4 => format!("{}({})", name, typmod - 4),
        "varchar" => "varchar".into(),
        "bpchar" => "bpchar".into(),
        "numeric" if typmod > 4 => {
            let packed = typmod - 4;
            format!("numeric({},{})", (packed >> 16) & 0xffff, packed & 0xffff)
        }
        "numeric" => "numeric".into(),
        "bit" | "varbit" if typmod > 0 => format!("{name}({typmod})"),
        "bit" | "varbit" => name.into(),
        // `"char"`, a one-byte internal type: text holds it.
        "char" => "text".into(),
        known if SAME_TYPES.contains(&known) => known.into(),
        _ => "text".into(),
    }
}

/// A cell of a row to write: a value's text form, NULL, or "leave the target's value as is"
/// (an unchanged TOAST value the change did not carry).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Cell {
    Null,
    Text(String),
    Unchanged,
}

impl Cell {
    pub fn as_param(&self) -> Option<&str> {
        match self {
            Cell::Text(text) => Some(text),
            Cell::Null | Cell::Unchanged => None,
        }
    }
}

/// One value as a cell: PostgreSQL's output text form, which its input functions read back.
pub fn cell(value: &Value) -> Cell {
    match value {
        Value::Null => Cell::Null,
        Value::UnchangedToast => Cell::Unchanged,
        other => Cell::Text(pg_text(other)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_api::{Decimal, Infinite, Numeric, PgInterval};

    fn column(type_name: &str, type_modifier: i32) -> Column {
        Column {
            name: "c".into(),
            type_oid: 0,
            type_name: type_name.into(),
            type_modifier,
            is_key: false,
        }
    }

    #[test]
    fn built_in_types_keep_their_type_and_modifiers() {
        assert_eq!(target_type(&column("int8", -1)), "int8");
        assert_eq!(target_type(&column("varchar", 24)), "varchar(20)");
        assert_eq!(
            target_type(&column("numeric", (12 << 16 | 2) + 4)),
            "numeric(12,2)"
        );
        assert_eq!(target_type(&column("numeric", -1)), "numeric");
        assert_eq!(target_type(&column("_int4", -1)), "int4[]");
        assert_eq!(target_type(&column("timestamptz", 6)), "timestamptz");
    }

    #[test]
    fn types_the_target_may_lack_fall_back_to_text() {
        assert_eq!(target_type(&column("mood", -1)), "text");
        assert_eq!(target_type(&column("hstore", -1)), "text");
        assert_eq!(target_type(&column("_mood", -1)), "text[]");
    }

    #[test]
    fn values_are_written_in_postgres_input_syntax() {
        assert_eq!(pg_text(&Value::Bool(true)), "t");
        assert_eq!(pg_text(&Value::Float64(f64::NEG_INFINITY)), "-Infinity");
        assert_eq!(
            pg_text(&Value::Numeric(Numeric::Value(
                Decimal::parse("-1.50").unwrap()
            ))),
            "-1.50"
        );
        assert_eq!(pg_text(&Value::Bytes(vec![0xde, 0xad])), "\\xdead");
        assert_eq!(pg_text(&Value::Date(Infinite::Finite(0))), "1970-01-01");
        assert_eq!(
            pg_text(&Value::Date(Infinite::Finite(-719_163))),
            "0001-12-31 BC"
        );
        assert_eq!(
            pg_text(&Value::TimestampTz(Infinite::Finite(1_500_001))),
            "1970-01-01 00:00:01.500001+00"
        );
        assert_eq!(
            pg_text(&Value::TimeTz {
                micros: 3_600_000_000,
                offset_seconds: -5400
            }),
            "01:00:00-01:30"
        );
        assert_eq!(
            pg_text(&Value::Interval(PgInterval {
                months: 1,
                days: -2,
                micros: 3
            })),
            "1 mon -2 days 00:00:00.000003"
        );
        assert_eq!(
            pg_text(&Value::Array(vec![
                Value::Text("a\"b".into()),
                Value::Null,
                Value::Text("c,d".into())
            ])),
            r#"{"a\"b",NULL,"c,d"}"#
        );
        assert_eq!(
            pg_text(&Value::Array(vec![
                Value::Array(vec![Value::Int32(1)]),
                Value::Array(vec![Value::Int32(2)])
            ])),
            "{{1},{2}}"
        );
    }

    #[test]
    fn unchanged_toast_is_not_null() {
        assert_eq!(cell(&Value::UnchangedToast), Cell::Unchanged);
        assert_eq!(cell(&Value::Null), Cell::Null);
        assert_eq!(cell(&Value::Int32(3)), Cell::Text("3".into()));
    }
}
