//! Change events of one table shape as an Arrow record batch: the table's columns, then the
//! changelog columns that say what happened and where in the source's history.

use std::sync::Arc;

use deltalake::arrow::array::{
    ArrayRef, BinaryArray, BooleanArray, Date32Array, Decimal128Array, Float32Array, Float64Array,
    Int16Array, Int32Array, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray,
};
use deltalake::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use serde_json::Value as Json;
use sluice_api::{ChangeEvent, Infinite, Numeric, Op, TableSchema, Value};
use sluice_sink_file::value_json;

use crate::error::LakeError;
use crate::types::{mapping, Mapping, UTC};

/// Debezium's operation letter: `c`, `u`, `d`, `r` or `t`.
pub const OP_COLUMN: &str = "_op";
/// The WAL position of the change (for snapshot rows: the snapshot's position).
pub const LSN_COLUMN: &str = "_lsn";
/// The end of the commit record of the change's transaction.
pub const COMMIT_LSN_COLUMN: &str = "_commit_lsn";
/// The commit time (UTC).
pub const COMMIT_TS_COLUMN: &str = "_commit_ts";
/// The transaction id, when the source sent it.
pub const TXID_COLUMN: &str = "_txid";
/// Debezium's `source.snapshot` marker: `false` for streamed changes.
pub const SNAPSHOT_COLUMN: &str = "_snapshot";

/// The changelog columns, appended after the table's own.
pub const CHANGELOG_COLUMNS: [&str; 6] = [
    OP_COLUMN,
    LSN_COLUMN,
    COMMIT_LSN_COLUMN,
    COMMIT_TS_COLUMN,
    TXID_COLUMN,
    SNAPSHOT_COLUMN,
];

/// The Arrow schema of a table's changelog: its columns, then the changelog columns, all
/// nullable (Delta can widen a table only by nullable columns, and a column dropped at the
/// source reads as null from then on). A source column named like a changelog column is
/// refused.
pub fn changelog_schema(table: &TableSchema) -> Result<SchemaRef, LakeError> {
    let mut fields = Vec::with_capacity(table.columns.len() + CHANGELOG_COLUMNS.len());
    for column in &table.columns {
        if CHANGELOG_COLUMNS.contains(&column.name.as_str()) {
            return Err(LakeError::ReservedColumn {
                table: table.qualified_name(),
                column: column.name.clone(),
            });
        }
        fields.push(Field::new(&column.name, mapping(column).arrow_type(), true));
    }
    fields.extend([
        Field::new(OP_COLUMN, DataType::Utf8, true),
        Field::new(LSN_COLUMN, DataType::Int64, true),
        Field::new(COMMIT_LSN_COLUMN, DataType::Int64, true),
        Field::new(
            COMMIT_TS_COLUMN,
            DataType::Timestamp(TimeUnit::Microsecond, Some(UTC.into())),
            true,
        ),
        Field::new(TXID_COLUMN, DataType::Int64, true),
        Field::new(SNAPSHOT_COLUMN, DataType::Utf8, true),
    ]);
    Ok(Arc::new(Schema::new(fields)))
}

/// The row an event leaves in the changelog: the new values, the old ones for a delete (under
/// the default replica identity only the key), none for a truncate.
fn row_of(event: &ChangeEvent) -> Option<&[Value]> {
    match event.op {
        Op::Delete => event.before.as_deref(),
        Op::Truncate | Op::Message => None,
        _ => event.after.as_deref(),
    }
}

/// Encode `events` (all of `table`'s shape, none a logical message) under `schema`, the
/// result of [`changelog_schema`] for `table`.
pub fn encode(
    table: &TableSchema,
    schema: &SchemaRef,
    events: &[&ChangeEvent],
) -> Result<RecordBatch, LakeError> {
    let mut arrays: Vec<ArrayRef> = Vec::with_capacity(schema.fields().len());
    for (index, column) in table.columns.iter().enumerate() {
        let values = events
            .iter()
            .map(|e| row_of(e).and_then(|row| row.get(index)));
        arrays.push(column_array(mapping(column), values).map_err(|found| {
            LakeError::UnexpectedValue {
                table: table.qualified_name(),
                column: column.name.clone(),
                found,
            }
        })?);
    }
    let lsn = |l: sluice_api::Lsn| l.0 as i64;
    arrays.push(Arc::new(StringArray::from_iter_values(
        events.iter().map(|e| e.op.as_str()),
    )));
    arrays.push(Arc::new(Int64Array::from_iter_values(
        events.iter().map(|e| lsn(e.position.lsn)),
    )));
    arrays.push(Arc::new(Int64Array::from_iter_values(
        events.iter().map(|e| lsn(e.position.commit_lsn)),
    )));
    arrays.push(Arc::new(
        TimestampMicrosecondArray::from_iter_values(
            events.iter().map(|e| e.position.commit_time_us),
        )
        .with_timezone(UTC),
    ));
    arrays.push(Arc::new(Int64Array::from_iter(
        events.iter().map(|e| e.position.xid.map(i64::from)),
    )));
    arrays.push(Arc::new(StringArray::from_iter_values(
        events.iter().map(|e| e.position.snapshot.as_str()),
    )));
    RecordBatch::try_new(schema.clone(), arrays).map_err(|e| LakeError::Arrow(e.to_string()))
}

/// One column's values as an array of its mapping; `Err` names a value of another kind.
fn column_array<'a>(
    mapping: Mapping,
    values: impl Iterator<Item = Option<&'a Value>>,
) -> Result<ArrayRef, &'static str> {
    let values: Vec<&Value> = values.map(|v| v.unwrap_or(&Value::Null)).collect();
    Ok(match mapping {
        Mapping::Bool => Arc::new(BooleanArray::from(typed(&values, |v| match v {
            Value::Bool(b) => Some(Some(*b)),
            _ => None,
        })?)),
        Mapping::Int16 => Arc::new(Int16Array::from(typed(&values, |v| match v {
            Value::Int16(i) => Some(Some(*i)),
            _ => None,
        })?)),
        Mapping::Int32 => Arc::new(Int32Array::from(typed(&values, |v| match v {
            Value::Int32(i) => Some(Some(*i)),
            Value::Int16(i) => Some(Some(i32::from(*i))),
            _ => None,
        })?)),
        Mapping::Int64 => Arc::new(Int64Array::from(typed(&values, |v| match v {
            Value::Int64(i) => Some(Some(*i)),
            Value::Int32(i) => Some(Some(i64::from(*i))),
            Value::Int16(i) => Some(Some(i64::from(*i))),
            _ => None,
        })?)),
        Mapping::Float32 => Arc::new(Float32Array::from(typed(&values, |v| match v {
            Value::Float32(f) => Some(Some(*f)),
            _ => None,
        })?)),
        Mapping::Float64 => Arc::new(Float64Array::from(typed(&values, |v| match v {
            Value::Float64(f) => Some(Some(*f)),
            Value::Float32(f) => Some(Some(f64::from(*f))),
            _ => None,
        })?)),
        Mapping::Decimal { precision, scale } => {
            let unscaled = typed(&values, |v| match v {
                Value::Numeric(Numeric::Value(d)) => Some(unscaled(d, scale)),
                Value::Numeric(_) => Some(None),
                _ => None,
            })?;
            Arc::new(
                Decimal128Array::from(unscaled)
                    .with_precision_and_scale(precision, scale)
                    .map_err(|_| "a decimal out of range")?,
            )
        }
        Mapping::Date => Arc::new(Date32Array::from(typed(&values, |v| match v {
            Value::Date(d) => Some(finite(d)),
            _ => None,
        })?)),
        Mapping::Timestamp => Arc::new(
            TimestampMicrosecondArray::from(typed(&values, |v| match v {
                Value::Timestamp(t) | Value::TimestampTz(t) => Some(finite(t)),
                _ => None,
            })?)
            .with_timezone(UTC),
        ),
        Mapping::Binary => {
            let bytes = typed(&values, |v| match v {
                Value::Bytes(b) => Some(Some(b.as_slice())),
                _ => None,
            })?;
            Arc::new(BinaryArray::from(bytes))
        }
        Mapping::String => Arc::new(StringArray::from(
            values.iter().map(|v| text(v)).collect::<Vec<_>>(),
        )),
    })
}

/// Convert every value with `convert`; null (and an unchanged TOASTed value, which only a
/// string column can show) is `None`; `convert` returning `None` is a value of another kind.
fn typed<'a, T>(
    values: &[&'a Value],
    convert: impl Fn(&'a Value) -> Option<Option<T>>,
) -> Result<Vec<Option<T>>, &'static str> {
    values
        .iter()
        .map(|v| match v {
            Value::Null | Value::UnchangedToast => Ok(None),
            other => convert(other).ok_or_else(|| kind(other)),
        })
        .collect()
}

fn finite<T: Copy>(value: &Infinite<T>) -> Option<T> {
    match value {
        Infinite::Finite(v) => Some(*v),
        _ => None,
    }
}

/// The unscaled integer of `d` at `scale` (PostgreSQL already rounded it to the column's
/// scale, so digits are only ever appended); `None` beyond 128 bits.
fn unscaled(d: &sluice_api::Decimal, scale: i8) -> Option<i128> {
    let pad = (scale as u32).checked_sub(d.scale())?;
    let digits = d.unscaled_digits();
    let value: i128 = digits.parse().ok()?;
    let value = value.checked_mul(10i128.checked_pow(pad)?)?;
    Some(if d.is_negative() { -value } else { value })
}

/// A string column's text: strings as they are, anything else in the JSON form.
fn text(value: &Value) -> Option<String> {
    match value_json(value) {
        Json::Null => None,
        Json::String(s) => Some(s),
        other => Some(other.to_string()),
    }
}

/// A value's kind, for the error naming an unexpected one.
fn kind(value: &Value) -> &'static str {
    match value {
        Value::Bool(_) => "a boolean",
        Value::Int16(_) | Value::Int32(_) | Value::Int64(_) => "an integer",
        Value::Float32(_) | Value::Float64(_) => "a float",
        Value::Numeric(_) | Value::Money(_) => "a numeric",
        Value::Date(_) => "a date",
        Value::Timestamp(_) | Value::TimestampTz(_) => "a timestamp",
        Value::Bytes(_) => "bytes",
        _ => "a text-like value",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use deltalake::arrow::array::Array;
    use sluice_api::{Column, Decimal, Lsn, ReplicaIdentity, SourcePosition};

    fn table() -> Arc<TableSchema> {
        let col = |name: &str, ty: &str, typmod, is_key| Column {
            name: name.into(),
            type_oid: 0,
            type_name: ty.into(),
            type_modifier: typmod,
            is_key,
        };
        Arc::new(TableSchema {
            relation_id: 1,
            schema: "public".into(),
            name: "items".into(),
            replica_identity: ReplicaIdentity::Default,
            columns: vec![
                col("id", "int8", -1, true),
                col("price", "numeric", (12 << 16 | 2) + 4, false),
                col("note", "text", -1, false),
                col("tags", "_text", -1, false),
            ],
        })
    }

    fn event(op: Op, lsn: u64, row: Vec<Value>) -> ChangeEvent {
        ChangeEvent {
            op,
            table: Some(table()),
            before: (op == Op::Delete).then(|| row.clone()),
            before_is_key_only: op == Op::Delete,
            after: (op != Op::Delete).then_some(row),
            message: None,
            position: SourcePosition {
                lsn: Lsn(lsn),
                commit_lsn: Lsn(lsn + 10),
                xid: Some(7),
                commit_time_us: 1_700_000_000_000_000,
                ..SourcePosition::default()
            },
        }
    }

    #[test]
    fn rows_carry_their_values_and_the_changelog_columns() {
        let table = table();
        let schema = changelog_schema(&table).unwrap();
        let insert = event(
            Op::Create,
            100,
            vec![
                Value::Int64(1),
                Value::Numeric(Numeric::Value(Decimal::parse("-3.5").unwrap())),
                Value::Text("it's".into()),
                Value::Array(vec![Value::Text("a".into()), Value::Null]),
            ],
        );
        let delete = event(
            Op::Delete,
            200,
            vec![Value::Int64(1), Value::Null, Value::Null, Value::Null],
        );
        let batch = encode(&table, &schema, &[&insert, &delete]).unwrap();
        assert_eq!(batch.num_rows(), 2);
        let price = batch
            .column(1)
            .as_any()
            .downcast_ref::<Decimal128Array>()
            .unwrap();
        assert_eq!(price.value(0), -350);
        assert!(price.is_null(1));
        let tags = batch
            .column(3)
            .as_any()
            .downcast_ref::<StringArray>()
            .unwrap();
        assert_eq!(tags.value(0), r#"["a",null]"#);
        let op = batch
            .column_by_name(OP_COLUMN)
            .unwrap()
            .as_any()
            .downcast_ref::<StringArray>()
            .unwrap();
        assert_eq!((op.value(0), op.value(1)), ("c", "d"));
        let commit = batch
            .column_by_name(COMMIT_LSN_COLUMN)
            .unwrap()
            .as_any()
            .downcast_ref::<Int64Array>()
            .unwrap();
        assert_eq!(commit.value(1), 210);
    }

    #[test]
    fn a_value_of_another_kind_is_an_error_naming_the_column() {
        let table = table();
        let schema = changelog_schema(&table).unwrap();
        let bad = event(
            Op::Create,
            1,
            vec![
                Value::Text("x".into()),
                Value::Null,
                Value::Null,
                Value::Null,
            ],
        );
        let error = encode(&table, &schema, &[&bad]).unwrap_err().to_string();
        assert!(
            error.contains("public.items") && error.contains("id"),
            "{error}"
        );
    }

    #[test]
    fn a_source_column_named_like_a_changelog_column_is_refused() {
        let mut shape = (*table()).clone();
        shape.columns[2].name = "_lsn".into();
        assert!(changelog_schema(&shape).is_err());
    }
}
