//! The JSON form of the same envelope, as Kafka Connect's `JsonConverter` writes Debezium's
//! events: with the Connect schema (`{"schema": ..., "payload": ...}`) or the payload alone.
//! Values follow the converter: bytes and decimals as base64 (decimals of their unscaled
//! two's-complement bytes), non-finite doubles as the strings `NaN`, `Infinity`, `-Infinity`.
//! For sinks that want JSON and for debugging; built per table like the Avro encoder.

use base64::Engine as _;
use serde_json::{json, Map, Value as Json};
use sluice_api::{ChangeEvent, Geometry, Numeric, Op, Value};

use super::avro_schema::{FieldPlan, TableSchemas, ENVELOPE_SCHEMA_VERSION, SNAPSHOT_VALUES};
use super::column_type::{FieldKind, StringKind};
use super::encode::{as_f64, flatten, value_variant, SourceInfo};
use super::representation::{
    bits_bytes, date_days, point_wkb, string_text, timestamp_micros, timestamp_millis,
    unscaled_bytes,
};
use super::temporal::interval_micros;
use super::EncodeError;

/// Writes one table's events as JSON. Build once per table shape.
#[derive(Clone, Debug)]
pub struct JsonEncoder {
    key_fields: Vec<FieldPlan>,
    value_fields: Vec<FieldPlan>,
    key_schema: Option<Json>,
    envelope_schema: Json,
    placeholder: String,
    source: SourceInfo,
    schema: String,
    table: String,
}

impl JsonEncoder {
    /// Plan the JSON encoding of `schemas`' table.
    pub fn new(schemas: &TableSchemas, source: &SourceInfo, placeholder: &str) -> Self {
        // The table itself, also when a route renamed its topic.
        let (schema, table) = (schemas.table_schema.as_str(), schemas.table_name.as_str());
        let key_schema = (!schemas.key_fields.is_empty()).then(|| {
            row_schema(
                &schemas.key_fields,
                false,
                &format!("{}.Key", schemas.namespace),
                None,
            )
        });
        JsonEncoder {
            key_fields: schemas.key_fields.clone(),
            value_fields: schemas.value_fields.clone(),
            key_schema,
            envelope_schema: envelope_schema(&schemas.namespace, &schemas.value_fields),
            placeholder: placeholder.to_owned(),
            source: source.clone(),
            schema: schema.to_owned(),
            table: table.to_owned(),
        }
    }

    /// The Connect schema of the envelope, as the `schema` part of the JSON form.
    pub fn envelope_schema(&self) -> &Json {
        &self.envelope_schema
    }

    /// The event's key, `None` when it has none; with its schema when `with_schema`.
    pub fn key(&self, event: &ChangeEvent, with_schema: bool) -> Result<Option<Json>, EncodeError> {
        let row = match event.op {
            Op::Create | Op::Read | Op::Update => event.after.as_deref(),
            Op::Delete => event.before.as_deref(),
            Op::Truncate | Op::Message => None,
        };
        let (Some(row), Some(schema)) = (row, &self.key_schema) else {
            return Ok(None);
        };
        let payload = self.row(&self.key_fields, row, false)?;
        Ok(Some(wrap(schema, payload, with_schema)))
    }

    /// The event's envelope; with its schema when `with_schema`. `processed_at_us` fills the
    /// envelope's `ts_*`.
    pub fn value(
        &self,
        event: &ChangeEvent,
        processed_at_us: i64,
        with_schema: bool,
    ) -> Result<Json, EncodeError> {
        if event.op == Op::Message {
            return Err(EncodeError::UnsupportedEvent { op: "m" });
        }
        let image = |row: &Option<Vec<Value>>, key_only: bool| {
            row.as_deref()
                .map(|r| self.row(&self.value_fields, r, key_only))
                .transpose()
                .map(|v| v.unwrap_or(Json::Null))
        };
        let position = &event.position;
        let commit_us = position.commit_time_us;
        let source = json!({
            "version": self.source.version,
            "connector": "postgresql",
            "name": self.source.server_name,
            "ts_ms": commit_us.div_euclid(1000),
            "snapshot": position.snapshot.as_str(),
            "db": self.source.database,
            "sequence": format!("[\"{}\",\"{}\"]", position.commit_lsn.as_u64(), position.lsn.as_u64()),
            "ts_us": commit_us,
            "ts_ns": commit_us.saturating_mul(1000),
            "schema": self.schema,
            "table": self.table,
            "txId": position.xid,
            "lsn": position.lsn.as_u64(),
            "xmin": null,
        });
        let payload = json!({
            "before": image(&event.before, event.before_is_key_only)?,
            "after": image(&event.after, false)?,
            "source": source,
            "transaction": null,
            "op": event.op.as_str(),
            "ts_ms": processed_at_us.div_euclid(1000),
            "ts_us": processed_at_us,
            "ts_ns": processed_at_us.saturating_mul(1000),
        });
        Ok(wrap(&self.envelope_schema, payload, with_schema))
    }

    fn row(
        &self,
        fields: &[FieldPlan],
        row: &[Value],
        key_only: bool,
    ) -> Result<Json, EncodeError> {
        let mut out = Map::with_capacity(fields.len());
        for field in fields {
            let value = row
                .get(field.column_index)
                .ok_or_else(|| EncodeError::RowShape {
                    expected: field.column_index + 1,
                    found: row.len(),
                })?;
            let json = match value {
                Value::UnchangedToast => placeholder_json(&field.kind, &self.placeholder),
                Value::Null => Json::Null,
                other => {
                    kind_json(&field.kind, other).map_err(|found| EncodeError::TypeMismatch {
                        column: field.name.clone(),
                        expected: field.kind.connect_type(),
                        found,
                    })?
                }
            };
            if json.is_null() && !field.optional && !key_only {
                return Err(EncodeError::NullInRequiredField {
                    column: field.name.clone(),
                });
            }
            out.insert(field.name.clone(), json);
        }
        Ok(Json::Object(out))
    }
}

fn wrap(schema: &Json, payload: Json, with_schema: bool) -> Json {
    if with_schema {
        json!({"schema": schema, "payload": payload})
    } else {
        payload
    }
}

fn base64(bytes: &[u8]) -> Json {
    Json::String(base64::engine::general_purpose::STANDARD.encode(bytes))
}

fn placeholder_json(kind: &FieldKind, placeholder: &str) -> Json {
    match kind {
        FieldKind::String(_) | FieldKind::Enum { .. } => json!(placeholder),
        FieldKind::Bytes | FieldKind::Bits { .. } => base64(placeholder.as_bytes()),
        FieldKind::Array(element) => json!([placeholder_json(element, placeholder)]),
        FieldKind::HstoreMap => json!({ placeholder: placeholder }),
        _ => Json::Null,
    }
}

/// A double as the converter writes it: non-finite values as their Java names.
fn double(f: f64) -> Json {
    if f.is_nan() {
        json!("NaN")
    } else if f.is_infinite() {
        json!(if f > 0.0 { "Infinity" } else { "-Infinity" })
    } else {
        json!(f)
    }
}

/// The JSON payload of a non-null value of `kind`; `Err` names the value's variant.
fn kind_json(kind: &FieldKind, value: &Value) -> Result<Json, &'static str> {
    let mismatch = || value_variant(value);
    let mut scratch = Vec::new();
    Ok(match (kind, value) {
        (FieldKind::Boolean, Value::Bool(b)) => json!(b),
        (FieldKind::Boolean, Value::Bits { len: 1, data }) => {
            json!(data.first().is_some_and(|b| b & 0x80 != 0))
        }
        (FieldKind::Int16 | FieldKind::Int32 | FieldKind::Int64, v) => match v {
            Value::Int16(n) => json!(n),
            Value::Int32(n) => json!(n),
            Value::Int64(n) => json!(n),
            _ => return Err(mismatch()),
        },
        (FieldKind::Float32 | FieldKind::Float64, v) => double(as_f64(v).ok_or_else(mismatch)?),
        (FieldKind::String(sk), v) => json!(string_text(*sk, v).ok_or_else(mismatch)?),
        (FieldKind::Enum { .. }, v) => {
            json!(string_text(StringKind::Plain, v).ok_or_else(mismatch)?)
        }
        (FieldKind::Bytes, Value::Bytes(b)) => base64(b),
        (FieldKind::Decimal { scale, .. }, Value::Numeric(Numeric::Value(d)) | Value::Money(d)) => {
            unscaled_bytes(d, *scale, &mut scratch);
            base64(&scratch)
        }
        (FieldKind::VariableScaleDecimal, Value::Numeric(Numeric::Value(d))) => {
            unscaled_bytes(d, d.scale(), &mut scratch);
            json!({"scale": d.scale(), "value": base64(&scratch)})
        }
        // NaN and the infinities have no exact decimal form.
        (FieldKind::Decimal { .. } | FieldKind::VariableScaleDecimal, Value::Numeric(_)) => {
            Json::Null
        }
        (FieldKind::Date | FieldKind::ConnectDate, Value::Date(d)) => json!(date_days(d)),
        (FieldKind::Time | FieldKind::ConnectTime, Value::Time(us)) => json!(us.div_euclid(1000)),
        (FieldKind::MicroTime, Value::Time(us)) => json!(us),
        (FieldKind::MicroTimestamp, Value::Timestamp(ts) | Value::TimestampTz(ts)) => {
            json!(timestamp_micros(ts))
        }
        (
            FieldKind::Timestamp | FieldKind::ConnectTimestamp,
            Value::Timestamp(ts) | Value::TimestampTz(ts),
        ) => json!(timestamp_millis(ts)),
        (FieldKind::MicroDuration, Value::Interval(iv)) => json!(interval_micros(*iv)),
        (FieldKind::Bits { .. }, Value::Bits { len, data }) => {
            bits_bytes(*len, data, &mut scratch);
            base64(&scratch)
        }
        (FieldKind::Bits { .. }, Value::Bytes(b)) => base64(b),
        (FieldKind::Array(element), Value::Array(items)) => {
            let mut flat = Vec::new();
            flatten(items, &mut flat);
            let items: Result<Vec<Json>, _> = flat
                .into_iter()
                .map(|item| match item {
                    Value::Null => Ok(Json::Null),
                    other => kind_json(element, other),
                })
                .collect();
            Json::Array(items?)
        }
        (FieldKind::HstoreMap, Value::Hstore(pairs)) => Json::Object(
            pairs
                .iter()
                .map(|(k, v)| (k.clone(), v.clone().map_or(Json::Null, Json::String)))
                .collect(),
        ),
        (FieldKind::Point, Value::Geometry(Geometry::Point { x, y })) => {
            json!({"x": double(*x), "y": double(*y), "wkb": base64(&point_wkb(*x, *y)), "srid": null})
        }
        _ => return Err(mismatch()),
    })
}

/// The Connect schema of a field of `kind`, as the JSON converter writes it.
fn kind_schema(kind: &FieldKind, optional: bool, field: Option<&str>) -> Json {
    let mut out = Map::new();
    out.insert("type".into(), json!(kind.json_type()));
    match kind {
        FieldKind::VariableScaleDecimal | FieldKind::Point => {
            let fields: Vec<Json> = kind
                .struct_fields()
                .iter()
                .map(|(name, k, opt)| kind_schema(k, *opt, Some(name)))
                .collect();
            out.insert("fields".into(), Json::Array(fields));
        }
        FieldKind::Array(element) => {
            out.insert("items".into(), kind_schema(element, true, None));
        }
        FieldKind::HstoreMap => {
            out.insert("keys".into(), json!({"type": "string", "optional": false}));
            out.insert("values".into(), json!({"type": "string", "optional": true}));
        }
        _ => {}
    }
    out.insert("optional".into(), json!(optional));
    if let Some(meta) = kind.connect_meta() {
        out.insert("name".into(), json!(meta.name));
        if let Some(version) = meta.version {
            out.insert("version".into(), json!(version));
        }
        if let Some(doc) = meta.doc {
            out.insert("doc".into(), json!(doc));
        }
        if !meta.parameters.is_empty() {
            let params: Map<String, Json> = meta
                .parameters
                .into_iter()
                .map(|(k, v)| (k.to_owned(), json!(v)))
                .collect();
            out.insert("parameters".into(), Json::Object(params));
        }
    }
    if let Some(field) = field {
        out.insert("field".into(), json!(field));
    }
    Json::Object(out)
}

fn row_schema(fields: &[FieldPlan], optional: bool, name: &str, field: Option<&str>) -> Json {
    let fields: Vec<Json> = fields
        .iter()
        .map(|f| kind_schema(&f.kind, f.optional, Some(&f.name)))
        .collect();
    let mut out = json!({"type": "struct", "fields": fields, "optional": optional, "name": name});
    if let (Some(field), Some(map)) = (field, out.as_object_mut()) {
        map.insert("field".into(), json!(field));
    }
    out
}

fn primitive(connect_type: &str, optional: bool, field: &str) -> Json {
    json!({"type": connect_type, "optional": optional, "field": field})
}

fn envelope_schema(namespace: &str, value_fields: &[FieldPlan]) -> Json {
    let value_name = format!("{namespace}.Value");
    let source = json!({
        "type": "struct",
        "fields": [
            primitive("string", false, "version"),
            primitive("string", false, "connector"),
            primitive("string", false, "name"),
            primitive("int64", false, "ts_ms"),
            {"type": "string", "optional": true, "name": "io.debezium.data.Enum", "version": 1,
             "parameters": {"allowed": SNAPSHOT_VALUES}, "default": "false", "field": "snapshot"},
            primitive("string", false, "db"),
            primitive("string", true, "sequence"),
            primitive("int64", true, "ts_us"),
            primitive("int64", true, "ts_ns"),
            primitive("string", false, "schema"),
            primitive("string", false, "table"),
            primitive("int64", true, "txId"),
            primitive("int64", true, "lsn"),
            primitive("int64", true, "xmin"),
        ],
        "optional": false,
        "name": "io.debezium.connector.postgresql.Source",
        "field": "source",
    });
    let transaction = json!({
        "type": "struct",
        "fields": [
            primitive("string", false, "id"),
            primitive("int64", false, "total_order"),
            primitive("int64", false, "data_collection_order"),
        ],
        "optional": true,
        "name": "event.block",
        "version": 1,
        "field": "transaction",
    });
    json!({
        "type": "struct",
        "fields": [
            row_schema(value_fields, true, &value_name, Some("before")),
            row_schema(value_fields, true, &value_name, Some("after")),
            source,
            transaction,
            primitive("string", false, "op"),
            primitive("int64", true, "ts_ms"),
            primitive("int64", true, "ts_us"),
            primitive("int64", true, "ts_ns"),
        ],
        "optional": false,
        "name": format!("{namespace}.Envelope"),
        "version": ENVELOPE_SCHEMA_VERSION,
    })
}
