//! The hot path: a [`ChangeEvent`] written as Confluent-framed Avro binary (magic byte 0, the
//! schema id as a 4-byte big-endian integer, then the Avro body) straight from the event's
//! [`Value`]s into a reusable buffer. No generic Avro value is built and nothing is looked up
//! per event: a [`TableEncoder`] is planned once per table shape from its [`TableSchemas`], with
//! one [`FieldKind`] per column deciding how that column's value is written.

use sluice_api::{ChangeEvent, Geometry, Numeric, Op, Value};

use super::avro_schema::{FieldPlan, TableSchemas};
use super::column_type::{FieldKind, StringKind};
use super::representation::{
    bits_bytes, date_days, point_wkb, string_text, timestamp_micros, timestamp_millis,
    unscaled_bytes,
};
use super::temporal::interval_micros;
use super::EncodeError;

/// The Confluent wire format's first byte.
pub const MAGIC_BYTE: u8 = 0;

/// What the `source` block says about where events come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceInfo {
    /// `source.version`: the producing software's version.
    pub version: String,
    /// `source.name`: the topic prefix.
    pub server_name: String,
    /// `source.db`: the database name.
    pub database: String,
}

/// Writes one table's events. Built once per table shape; cheap to share between threads.
#[derive(Clone, Debug)]
pub struct TableEncoder {
    key_fields: Vec<FieldPlan>,
    value_fields: Vec<FieldPlan>,
    placeholder: String,
    /// The `source` block's per-table parts, already encoded.
    source: SourceBlock,
    /// The physical table's identifier ending every key (a routing rule keeping merged tables'
    /// keys apart), already encoded.
    key_identifier: Option<Vec<u8>>,
}

/// An event's place in its transaction: the envelope's `transaction` block (Debezium's
/// `provide.transaction.metadata`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TransactionBlock<'a> {
    /// `<txid>:<commit LSN>`.
    pub id: &'a str,
    /// 1-based position of the event among the transaction's events.
    pub total_order: i64,
    /// 1-based position of the event among the transaction's events of its table.
    pub data_collection_order: i64,
}

/// The `source` block's parts that are fixed per table (or per stream, for logical messages),
/// encoded once: `version`, `connector`, `name`; `db`; `schema` and `table`.
#[derive(Clone, Debug)]
pub(crate) struct SourceBlock {
    head: Vec<u8>,
    db: Vec<u8>,
    table: Vec<u8>,
}

impl SourceBlock {
    /// The block of events of `schema`.`table` (both empty for logical messages).
    pub(crate) fn new(source: &SourceInfo, schema: &str, table: &str) -> Self {
        let mut head = Vec::new();
        write_str(&mut head, &source.version);
        write_str(&mut head, "postgresql");
        write_str(&mut head, &source.server_name);
        let mut db = Vec::new();
        write_str(&mut db, &source.database);
        let mut table_bytes = Vec::new();
        write_str(&mut table_bytes, schema);
        write_str(&mut table_bytes, table);
        SourceBlock {
            head,
            db,
            table: table_bytes,
        }
    }

    /// Append the `source` block of `event`.
    pub(crate) fn write(&self, out: &mut Vec<u8>, event: &ChangeEvent) {
        let position = &event.position;
        let commit_us = position.commit_time_us;
        out.extend_from_slice(&self.head);
        write_long(out, commit_us.div_euclid(1000));
        write_long(out, 0); // snapshot: the string branch
        write_str(out, position.snapshot.as_str());
        out.extend_from_slice(&self.db);
        write_long(out, 1);
        write_str(out, &sequence(event));
        write_long(out, 1);
        write_long(out, commit_us);
        write_long(out, 1);
        write_long(out, commit_us.saturating_mul(1000));
        out.extend_from_slice(&self.table);
        match position.xid {
            Some(xid) => {
                write_long(out, 1);
                write_long(out, i64::from(xid));
            }
            None => write_long(out, 0),
        }
        write_long(out, 1);
        write_long(out, lsn_long(position.lsn.as_u64()));
        write_long(out, 0); // xmin: null
    }
}

/// Append an optional `transaction` block (the union's null or record branch).
pub(crate) fn write_transaction_block(out: &mut Vec<u8>, block: Option<&TransactionBlock<'_>>) {
    match block {
        None => write_long(out, 0),
        Some(block) => {
            write_long(out, 1);
            write_str(out, block.id);
            write_long(out, block.total_order);
            write_long(out, block.data_collection_order);
        }
    }
}

/// Where in the event a row came from: decides what a null in a required field means.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Image {
    /// A complete row: a null in a required field is an error.
    Full,
    /// A `before` image holding only the key (default replica identity): the other columns
    /// were never sent, and a required field gets its type's zero value, as Debezium writes it.
    KeyOnly,
}

impl TableEncoder {
    /// Plan the encoding of `schemas`' table. `placeholder` replaces unchanged TOAST values.
    pub fn new(schemas: &TableSchemas, source: &SourceInfo, placeholder: &str) -> Self {
        let key_identifier = schemas.key_identifier.as_ref().map(|(_, value)| {
            let mut out = Vec::new();
            write_str(&mut out, value);
            out
        });
        TableEncoder {
            key_fields: schemas.key_fields.clone(),
            value_fields: schemas.value_fields.clone(),
            placeholder: placeholder.to_owned(),
            source: SourceBlock::new(source, &schemas.table_schema, &schemas.table_name),
            key_identifier,
        }
    }

    /// Whether the table's events have a key at all.
    pub fn has_key(&self) -> bool {
        !self.key_fields.is_empty()
    }

    /// Append the framed key of `event` to `out`. Returns `false`, writing nothing, when the
    /// event has no key (keyless table, truncate, message): the record's key is then null.
    pub fn encode_key(
        &self,
        event: &ChangeEvent,
        schema_id: u32,
        out: &mut Vec<u8>,
    ) -> Result<bool, EncodeError> {
        let Some(row) = key_row(event) else {
            return Ok(false);
        };
        if self.key_fields.is_empty() {
            return Ok(false);
        }
        write_frame(out, schema_id);
        let mut scratch = Vec::new();
        self.write_row(out, &self.key_fields, row, Image::Full, &mut scratch)?;
        if let Some(identifier) = &self.key_identifier {
            out.extend_from_slice(identifier);
        }
        Ok(true)
    }

    /// Append the framed envelope of `event` to `out`. `processed_at_us` is the envelope's
    /// `ts_*` (when sluice processed the event), microseconds since the epoch.
    pub fn encode_value(
        &self,
        event: &ChangeEvent,
        schema_id: u32,
        processed_at_us: i64,
        out: &mut Vec<u8>,
    ) -> Result<(), EncodeError> {
        self.encode_value_in(event, schema_id, processed_at_us, None, out)
    }

    /// [`encode_value`](Self::encode_value) with the event's `transaction` block.
    pub fn encode_value_in(
        &self,
        event: &ChangeEvent,
        schema_id: u32,
        processed_at_us: i64,
        transaction: Option<&TransactionBlock<'_>>,
        out: &mut Vec<u8>,
    ) -> Result<(), EncodeError> {
        write_frame(out, schema_id);
        self.encode_value_body(event, processed_at_us, transaction, out)
    }

    /// The envelope's Avro body alone, without framing.
    pub fn encode_value_body(
        &self,
        event: &ChangeEvent,
        processed_at_us: i64,
        transaction: Option<&TransactionBlock<'_>>,
        out: &mut Vec<u8>,
    ) -> Result<(), EncodeError> {
        if event.op == Op::Message {
            return Err(EncodeError::UnsupportedEvent { op: "m" });
        }
        let mut scratch = Vec::new();
        let before_image = if event.before_is_key_only {
            Image::KeyOnly
        } else {
            Image::Full
        };
        for (row, image) in [(&event.before, before_image), (&event.after, Image::Full)] {
            match row {
                None => write_long(out, 0),
                Some(row) => {
                    write_long(out, 1);
                    self.write_row(out, &self.value_fields, row, image, &mut scratch)?;
                }
            }
        }
        self.source.write(out, event);
        write_transaction_block(out, transaction);
        write_str(out, event.op.as_str());
        for ts in [
            processed_at_us.div_euclid(1000),
            processed_at_us,
            processed_at_us.saturating_mul(1000),
        ] {
            write_long(out, 1);
            write_long(out, ts);
        }
        Ok(())
    }

    /// The row record alone, without framing: the new row, or the old one for deletes
    /// (Debezium's `ExtractNewRecordState` value). Returns `false`, writing nothing, when the
    /// event has no such row.
    pub fn encode_row_body(
        &self,
        event: &ChangeEvent,
        out: &mut Vec<u8>,
    ) -> Result<bool, EncodeError> {
        let (row, image) = match event.op {
            Op::Create | Op::Read | Op::Update => (event.after.as_deref(), Image::Full),
            Op::Delete if event.before_is_key_only => (event.before.as_deref(), Image::KeyOnly),
            Op::Delete => (event.before.as_deref(), Image::Full),
            Op::Truncate | Op::Message => (None, Image::Full),
        };
        let Some(row) = row else {
            return Ok(false);
        };
        let mut scratch = Vec::new();
        self.write_row(out, &self.value_fields, row, image, &mut scratch)?;
        Ok(true)
    }

    fn write_row(
        &self,
        out: &mut Vec<u8>,
        fields: &[FieldPlan],
        row: &[Value],
        image: Image,
        scratch: &mut Vec<u8>,
    ) -> Result<(), EncodeError> {
        for field in fields {
            let value = row
                .get(field.column_index)
                .ok_or_else(|| EncodeError::RowShape {
                    expected: field.column_index + 1,
                    found: row.len(),
                })?;
            self.write_field(out, field, value, image, scratch)?;
        }
        Ok(())
    }

    fn write_field(
        &self,
        out: &mut Vec<u8>,
        field: &FieldPlan,
        value: &Value,
        image: Image,
        scratch: &mut Vec<u8>,
    ) -> Result<(), EncodeError> {
        let resolved = match value {
            Value::UnchangedToast => placeholder_value(&field.kind, &self.placeholder),
            Value::Numeric(n) if !numeric_is_representable(&field.kind, n) => None,
            Value::Null => None,
            other => Some(std::borrow::Cow::Borrowed(other)),
        };
        match resolved {
            None if field.optional => {
                write_long(out, 0);
                Ok(())
            }
            None if image == Image::KeyOnly && value.is_null() => {
                write_zero(out, &field.kind);
                Ok(())
            }
            None => Err(EncodeError::NullInRequiredField {
                column: field.name.clone(),
            }),
            Some(value) => {
                if field.optional {
                    write_long(out, 1);
                }
                write_kind(out, &field.kind, &value, scratch).map_err(|found| {
                    EncodeError::TypeMismatch {
                        column: field.name.clone(),
                        expected: field.kind.connect_type(),
                        found,
                    }
                })
            }
        }
    }
}

/// The row an event's key is read from: the new row, or the old one for deletes.
fn key_row(event: &ChangeEvent) -> Option<&[Value]> {
    match event.op {
        Op::Create | Op::Read | Op::Update => event.after.as_deref(),
        Op::Delete => event.before.as_deref(),
        Op::Truncate | Op::Message => None,
    }
}

/// `source.sequence`: a JSON array of the commit's and the change's LSNs, as strings.
fn sequence(event: &ChangeEvent) -> String {
    format!(
        "[\"{}\",\"{}\"]",
        event.position.commit_lsn.as_u64(),
        event.position.lsn.as_u64()
    )
}

/// An LSN as Avro's signed long: LSNs stay far below 2^63 in practice, saturate beyond.
fn lsn_long(lsn: u64) -> i64 {
    i64::try_from(lsn).unwrap_or(i64::MAX)
}

/// `NaN` and the infinities have no decimal form: such values are written as null.
fn numeric_is_representable(kind: &FieldKind, n: &Numeric) -> bool {
    let exact = matches!(
        kind,
        FieldKind::Decimal { .. } | FieldKind::VariableScaleDecimal
    );
    !exact || matches!(n, Numeric::Value(_))
}

/// What an unchanged TOAST value becomes: the placeholder text for strings, its bytes for
/// binary types, a one-element array of the element's placeholder for arrays, a map holding
/// the placeholder for maps; `None` (null) for types that cannot hold it.
fn placeholder_value<'v>(
    kind: &FieldKind,
    placeholder: &str,
) -> Option<std::borrow::Cow<'v, Value>> {
    let value = match kind {
        FieldKind::String(_) | FieldKind::Enum { .. } => Value::Text(placeholder.to_owned()),
        FieldKind::Bytes | FieldKind::Bits { .. } => Value::Bytes(placeholder.as_bytes().to_vec()),
        FieldKind::Array(element) => {
            let inner = placeholder_value(element, placeholder)
                .map_or(Value::Null, std::borrow::Cow::into_owned);
            Value::Array(vec![inner])
        }
        FieldKind::HstoreMap => {
            Value::Hstore(vec![(placeholder.to_owned(), Some(placeholder.to_owned()))])
        }
        _ => return None,
    };
    Some(std::borrow::Cow::Owned(value))
}

/// The name of a value's variant, for mismatch errors.
pub(crate) fn value_variant(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::UnchangedToast => "unchanged toast",
        Value::Bool(_) => "bool",
        Value::Int16(_) => "int16",
        Value::Int32(_) => "int32",
        Value::Int64(_) => "int64",
        Value::Float32(_) => "float32",
        Value::Float64(_) => "float64",
        Value::Numeric(_) => "numeric",
        Value::Money(_) => "money",
        Value::Text(_) => "text",
        Value::Bytes(_) => "bytes",
        Value::Date(_) => "date",
        Value::Time(_) => "time",
        Value::TimeTz { .. } => "timetz",
        Value::Timestamp(_) => "timestamp",
        Value::TimestampTz(_) => "timestamptz",
        Value::Interval(_) => "interval",
        Value::Uuid(_) => "uuid",
        Value::Json(_) => "json",
        Value::Jsonb(_) => "jsonb",
        Value::Xml(_) => "xml",
        Value::Inet(_) => "inet",
        Value::Cidr(_) => "cidr",
        Value::MacAddr(_) => "macaddr",
        Value::Bits { .. } => "bits",
        Value::Enum(_) => "enum",
        Value::Array(_) => "array",
        Value::Range(_) => "range",
        Value::Hstore(_) => "hstore",
        Value::Geometry(_) => "geometry",
        Value::Unknown { .. } => "unknown",
    }
}

/// An integer value widened to i64, if it is one.
fn as_i64(value: &Value) -> Option<i64> {
    match value {
        Value::Int16(v) => Some(i64::from(*v)),
        Value::Int32(v) => Some(i64::from(*v)),
        Value::Int64(v) => Some(*v),
        _ => None,
    }
}

/// A floating value (or a decimal, in double mode) as f64.
pub(crate) fn as_f64(value: &Value) -> Option<f64> {
    match value {
        Value::Float32(v) => Some(f64::from(*v)),
        Value::Float64(v) => Some(*v),
        Value::Numeric(Numeric::Value(d)) | Value::Money(d) => d.as_str().parse().ok(),
        Value::Numeric(Numeric::NaN) => Some(f64::NAN),
        Value::Numeric(Numeric::PositiveInfinity) => Some(f64::INFINITY),
        Value::Numeric(Numeric::NegativeInfinity) => Some(f64::NEG_INFINITY),
        other => as_i64(other).map(|v| v as f64),
    }
}

/// Write a non-null value of `kind`. `Err` names the value's variant when it does not fit.
fn write_kind(
    out: &mut Vec<u8>,
    kind: &FieldKind,
    value: &Value,
    scratch: &mut Vec<u8>,
) -> Result<(), &'static str> {
    let mismatch = || value_variant(value);
    match (kind, value) {
        (FieldKind::Boolean, Value::Bool(b)) => out.push(u8::from(*b)),
        (FieldKind::Boolean, Value::Bits { len: 1, data }) => {
            out.push(u8::from(data.first().is_some_and(|b| b & 0x80 != 0)))
        }
        (FieldKind::Int16 | FieldKind::Int32, v) => {
            let n = as_i64(v).ok_or_else(mismatch)?;
            let n = i32::try_from(n).map_err(|_| mismatch())?;
            write_long(out, i64::from(n));
        }
        (FieldKind::Int64, v) => write_long(out, as_i64(v).ok_or_else(mismatch)?),
        (FieldKind::Float32, v) => {
            let f = as_f64(v).ok_or_else(mismatch)? as f32;
            out.extend_from_slice(&f.to_le_bytes());
        }
        (FieldKind::Float64, v) => {
            out.extend_from_slice(&as_f64(v).ok_or_else(mismatch)?.to_le_bytes())
        }
        (FieldKind::String(sk), v) => {
            let text = string_text(*sk, v).ok_or_else(mismatch)?;
            write_str(out, &text);
        }
        (FieldKind::Enum { .. }, v) => {
            let text = string_text(StringKind::Plain, v).ok_or_else(mismatch)?;
            write_str(out, &text);
        }
        (FieldKind::Bytes, Value::Bytes(b)) => write_bytes(out, b),
        (FieldKind::Decimal { scale, .. }, Value::Numeric(Numeric::Value(d)) | Value::Money(d)) => {
            unscaled_bytes(d, *scale, scratch);
            write_bytes(out, scratch);
        }
        (FieldKind::VariableScaleDecimal, Value::Numeric(Numeric::Value(d))) => {
            write_long(out, i64::from(d.scale()));
            unscaled_bytes(d, d.scale(), scratch);
            write_bytes(out, scratch);
        }
        (FieldKind::Date | FieldKind::ConnectDate, Value::Date(d)) => {
            write_long(out, i64::from(date_days(d)))
        }
        (FieldKind::Time | FieldKind::ConnectTime, Value::Time(us)) => {
            write_long(out, us.div_euclid(1000))
        }
        (FieldKind::MicroTime, Value::Time(us)) => write_long(out, *us),
        (FieldKind::MicroTimestamp, Value::Timestamp(ts) | Value::TimestampTz(ts)) => {
            write_long(out, timestamp_micros(ts))
        }
        (
            FieldKind::Timestamp | FieldKind::ConnectTimestamp,
            Value::Timestamp(ts) | Value::TimestampTz(ts),
        ) => write_long(out, timestamp_millis(ts)),
        (FieldKind::MicroDuration, Value::Interval(iv)) => write_long(out, interval_micros(*iv)),
        (FieldKind::Bits { .. }, Value::Bits { len, data }) => {
            bits_bytes(*len, data, scratch);
            write_bytes(out, scratch);
        }
        (FieldKind::Bits { .. }, Value::Bytes(b)) => write_bytes(out, b),
        (FieldKind::Array(element), Value::Array(items)) => {
            let mut flat = Vec::new();
            flatten(items, &mut flat);
            if !flat.is_empty() {
                write_long(out, flat.len() as i64);
                for item in flat {
                    if item.is_null()
                        || matches!(item, Value::Numeric(n) if !numeric_is_representable(element, n))
                    {
                        write_long(out, 0);
                    } else {
                        write_long(out, 1);
                        write_kind(out, element, item, scratch)?;
                    }
                }
            }
            write_long(out, 0);
        }
        (FieldKind::HstoreMap, Value::Hstore(pairs)) => {
            if !pairs.is_empty() {
                write_long(out, pairs.len() as i64);
                for (k, v) in pairs {
                    write_str(out, k);
                    match v {
                        Some(v) => {
                            write_long(out, 1);
                            write_str(out, v);
                        }
                        None => write_long(out, 0),
                    }
                }
            }
            write_long(out, 0);
        }
        (FieldKind::Point, Value::Geometry(Geometry::Point { x, y })) => {
            out.extend_from_slice(&x.to_le_bytes());
            out.extend_from_slice(&y.to_le_bytes());
            write_long(out, 1);
            write_bytes(out, &point_wkb(*x, *y));
            write_long(out, 0); // srid: null
        }
        _ => return Err(mismatch()),
    }
    Ok(())
}

/// Multi-dimensional arrays are written flat, in row-major order, as Debezium does.
pub(crate) fn flatten<'v>(items: &'v [Value], out: &mut Vec<&'v Value>) {
    for item in items {
        match item {
            Value::Array(inner) => flatten(inner, out),
            other => out.push(other),
        }
    }
}

/// The zero value of a required field missing from a key-only image.
fn write_zero(out: &mut Vec<u8>, kind: &FieldKind) {
    match kind {
        FieldKind::Boolean => out.push(0),
        FieldKind::Float32 => out.extend_from_slice(&0f32.to_le_bytes()),
        FieldKind::Float64 => out.extend_from_slice(&0f64.to_le_bytes()),
        FieldKind::Decimal { .. } => write_bytes(out, &[0]),
        FieldKind::VariableScaleDecimal => {
            write_long(out, 0);
            write_bytes(out, &[0]);
        }
        FieldKind::Point => {
            out.extend_from_slice(&[0; 16]);
            write_long(out, 0);
            write_long(out, 0);
        }
        // Integers, strings, bytes, arrays and maps: a zero varint is 0, "", empty, empty.
        _ => write_long(out, 0),
    }
}

pub(crate) fn write_frame(out: &mut Vec<u8>, schema_id: u32) {
    out.push(MAGIC_BYTE);
    out.extend_from_slice(&schema_id.to_be_bytes());
}

/// Avro `int`/`long`: zig-zag, then a little-endian base-128 varint.
pub fn write_long(out: &mut Vec<u8>, value: i64) {
    let mut n = ((value << 1) ^ (value >> 63)) as u64;
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

/// Avro `bytes`: length, then the bytes.
pub fn write_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    write_long(out, bytes.len() as i64);
    out.extend_from_slice(bytes);
}

/// Avro `string`: length, then UTF-8.
pub fn write_str(out: &mut Vec<u8>, s: &str) {
    write_bytes(out, s.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn longs_are_zigzag_varints() {
        let encode = |v: i64| {
            let mut out = Vec::new();
            write_long(&mut out, v);
            out
        };
        assert_eq!(encode(0), [0]);
        assert_eq!(encode(-1), [1]);
        assert_eq!(encode(1), [2]);
        assert_eq!(encode(-64), [0x7f]);
        assert_eq!(encode(64), [0x80, 0x01]);
        assert_eq!(encode(i64::MIN).len(), 10);
    }
}
