//! Rows as `JSONEachRow` lines, written straight into the insert body: each source column by
//! its [`Mapping`], then `_version` (the change's LSN) and `_deleted` (0 or 1).

use sluice_api::{civil_from_days, Infinite, Numeric, Value};

use sluice_sink_file::value_json;

use crate::types::Mapping;

/// The version column: the LSN of the change that wrote the row.
pub const VERSION_COLUMN: &str = "_version";
/// 1 on the row a delete (or truncate) leaves behind.
pub const DELETED_COLUMN: &str = "_deleted";

const MICROS_PER_DAY: i64 = 86_400_000_000;
/// Debezium's average month, for intervals as microseconds.
const DAYS_PER_MONTH: f64 = 365.25 / 12.0;

/// A column as the encoder needs it.
#[derive(Clone, Debug)]
pub struct EncodedColumn {
    pub name: String,
    pub mapping: Mapping,
}

/// Append one row (`values` in column order; `None` writes the column's empty value) as a JSON
/// object and a newline.
pub fn write_row(
    out: &mut Vec<u8>,
    columns: &[EncodedColumn],
    values: &[Option<&Value>],
    version: u64,
    deleted: bool,
) {
    out.push(b'{');
    for (column, value) in columns.iter().zip(values) {
        write_string(out, &column.name);
        out.push(b':');
        match value {
            Some(value) => write_value(out, &column.mapping, value),
            None => write_empty(out, &column.mapping),
        }
        out.push(b',');
    }
    out.extend_from_slice(
        format!(
            "\"{VERSION_COLUMN}\":{version},\"{DELETED_COLUMN}\":{}}}\n",
            u8::from(deleted)
        )
        .as_bytes(),
    );
}

/// NULL, or `[]` for arrays (ClickHouse arrays cannot be NULL).
fn write_empty(out: &mut Vec<u8>, mapping: &Mapping) {
    match mapping {
        Mapping::Array(_) => out.extend_from_slice(b"[]"),
        _ => out.extend_from_slice(b"null"),
    }
}

fn write_string(out: &mut Vec<u8>, s: &str) {
    serde_json::to_writer(&mut *out, s).expect("writing to a Vec cannot fail");
}

fn write_raw(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(s.as_bytes());
}

/// One value as its mapping writes it. A value of an unexpected variant for the mapping is
/// written as a string, which the server refuses for numeric columns (the row is then
/// dead-lettered) and keeps for string columns.
pub fn write_value(out: &mut Vec<u8>, mapping: &Mapping, value: &Value) {
    match (mapping, value) {
        (_, Value::Null | Value::UnchangedToast) => write_empty(out, mapping),
        (Mapping::Bool, Value::Bool(b)) => write_raw(out, if *b { "1" } else { "0" }),
        (Mapping::Int(_), Value::Int16(v)) => write_raw(out, &v.to_string()),
        (Mapping::Int(_), Value::Int32(v)) => write_raw(out, &v.to_string()),
        (Mapping::Int(_), Value::Int64(v)) => write_raw(out, &v.to_string()),
        (Mapping::Float(_), Value::Float32(v)) => write_float(out, f64::from(*v), v.to_string()),
        (Mapping::Float(_), Value::Float64(v)) => write_float(out, *v, v.to_string()),
        (Mapping::Decimal { .. }, Value::Numeric(Numeric::Value(d))) => write_raw(out, d.as_str()),
        (Mapping::Date, Value::Date(Infinite::Finite(days))) => {
            let (y, m, d) = civil_from_days(i64::from(*days));
            write_raw(out, &format!("\"{y:04}-{m:02}-{d:02}\""));
        }
        // ClickHouse's Date and DateTime have no infinities: NULL stands for them.
        (Mapping::Date, Value::Date(_)) => write_empty(out, mapping),
        (Mapping::DateTime, Value::Timestamp(ts) | Value::TimestampTz(ts)) => match ts {
            Infinite::Finite(micros) => {
                write_raw(out, &format!("\"{}\"", micros.div_euclid(1_000_000)))
            }
            _ => write_empty(out, mapping),
        },
        (Mapping::Micros, Value::Time(micros)) => write_raw(out, &micros.to_string()),
        (Mapping::Micros, Value::Interval(i)) => {
            let months = f64::from(i.months) * DAYS_PER_MONTH * MICROS_PER_DAY as f64;
            let total = months as i64 + i64::from(i.days) * MICROS_PER_DAY + i.micros;
            write_raw(out, &total.to_string());
        }
        (Mapping::Array(element), Value::Array(items)) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                match item {
                    Value::Null => write_raw(out, "null"),
                    item => write_value(out, element, item),
                }
            }
            out.push(b']');
        }
        (_, other) => write_string(out, &text(other)),
    }
}

fn write_float(out: &mut Vec<u8>, v: f64, shortest: String) {
    if v.is_nan() {
        write_raw(out, "\"nan\"");
    } else if v.is_infinite() {
        write_raw(out, if v > 0.0 { "\"inf\"" } else { "\"-inf\"" });
    } else {
        write_raw(out, &shortest);
    }
}

/// A value's text for a String column: the text itself for text-like values, otherwise the
/// JSON form the file sink writes (numbers as digits, bytes as base64, ranges and geometry as
/// in PostgreSQL's or Debezium's JSON), so every sink agrees on them.
fn text(value: &Value) -> String {
    match value_json(value) {
        serde_json::Value::String(s) => s,
        json => json.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_api::{Decimal, PgInterval};

    fn row(mapping: Mapping, value: Value) -> String {
        let columns = [EncodedColumn {
            name: "c".into(),
            mapping,
        }];
        let mut out = Vec::new();
        write_row(&mut out, &columns, &[Some(&value)], 7, false);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn rows_carry_their_version_and_deleted_flag() {
        let columns = [EncodedColumn {
            name: "id".into(),
            mapping: Mapping::Int("Int64"),
        }];
        let mut out = Vec::new();
        write_row(&mut out, &columns, &[Some(&Value::Int64(5))], 42, true);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "{\"id\":5,\"_version\":42,\"_deleted\":1}\n"
        );
    }

    #[test]
    fn values_are_written_as_clickhouse_18_16_reads_them() {
        let decimal = Value::Numeric(Numeric::Value(Decimal::parse("-12.50").unwrap()));
        assert_eq!(
            row(
                Mapping::Decimal {
                    precision: 12,
                    scale: 2
                },
                decimal.clone()
            ),
            "{\"c\":-12.50,\"_version\":7,\"_deleted\":0}\n"
        );
        assert!(row(Mapping::String, decimal).contains("\"c\":\"-12.50\""));
        assert!(row(Mapping::Date, Value::Date(Infinite::Finite(19_723)))
            .contains("\"c\":\"2024-01-01\""));
        assert!(row(
            Mapping::DateTime,
            Value::TimestampTz(Infinite::Finite(1_704_164_645_999_999))
        )
        .contains("\"c\":\"1704164645\""));
        assert!(row(Mapping::Float("Float64"), Value::Float64(f64::NAN)).contains("\"c\":\"nan\""));
        assert!(row(Mapping::Bool, Value::Bool(true)).contains("\"c\":1,"));
        assert!(row(
            Mapping::Micros,
            Value::Interval(PgInterval {
                months: 0,
                days: 1,
                micros: 5
            })
        )
        .contains(&format!("\"c\":{},", MICROS_PER_DAY + 5)));
        assert!(row(
            Mapping::Array(Box::new(Mapping::Int("Int32"))),
            Value::Array(vec![Value::Int32(1), Value::Null])
        )
        .contains("\"c\":[1,null]"));
        assert!(row(Mapping::Uuid, Value::Uuid([0xab; 16]))
            .contains("\"c\":\"abababab-abab-abab-abab-abababababab\""));
        assert!(row(Mapping::String, Value::Bytes(vec![0xff, 0])).contains("\"c\":\"/wA=\""));
        assert!(row(Mapping::String, Value::Text("a\"b\n".into())).contains(r#""c":"a\"b\n""#));
    }

    #[test]
    fn a_null_array_is_empty() {
        let mapping = Mapping::Array(Box::new(Mapping::String));
        assert!(row(mapping, Value::Null).contains("\"c\":[]"));
    }
}
