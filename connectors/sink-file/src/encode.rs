//! The JSON form of a change event, shaped as Debezium's envelope (`before`, `after`, `source`,
//! `op`, `ts_ms`, `transaction`) as its JSON converter writes it without schemas.
//!
//! Values follow Debezium's default semantic types where they are readable as JSON: dates as
//! days since the epoch (`io.debezium.time.Date`), `time` and `timestamp` as microseconds
//! (`MicroTime`, `MicroTimestamp`), `timestamptz`/`timetz` as ISO-8601 strings in UTC
//! (`ZonedTimestamp`, `ZonedTime`), intervals as microseconds (`MicroDuration`), bytea as
//! base64. Exact numerics and money are strings so no digit is lost (Debezium's
//! `decimal.handling.mode=string`); infinities are the strings `infinity` / `-infinity`.
//! Unchanged TOAST values are Debezium's placeholder `__debezium_unavailable_value`.

use base64::Engine;
use serde_json::{json, Map, Value as Json};
use sluice_api::pg_text::{pg_text, uuid_text};
use sluice_api::{
    civil_from_days, ChangeEvent, Geometry, Infinite, Numeric, RangeValue, Row, TableSchema, Value,
};

/// Debezium's placeholder for a value the change did not carry.
pub const UNAVAILABLE_VALUE: &str = "__debezium_unavailable_value";

/// Average days per month Debezium uses to turn an interval's months into microseconds.
const DAYS_PER_MONTH: f64 = 365.25 / 12.0;
const MICROS_PER_DAY: i64 = 86_400_000_000;

/// What the `source` block says about where events come from.
#[derive(Clone, Debug)]
pub struct EventContext {
    /// The pipeline name (Debezium's `topic.prefix`, the `source.name` field).
    pub pipeline: String,
    /// The source database.
    pub database: String,
}

/// One event as a JSON envelope. `now_ms` is the processing time (`ts_ms`).
pub fn encode_event(event: &ChangeEvent, ctx: &EventContext, now_ms: i64) -> Json {
    let table = event.table.as_deref();
    let pos = &event.position;
    let source = json!({
        "version": env!("CARGO_PKG_VERSION"),
        "connector": "postgresql",
        "name": ctx.pipeline,
        "ts_ms": pos.commit_time_us.div_euclid(1000),
        "snapshot": pos.snapshot.as_str(),
        "db": ctx.database,
        "sequence": format!("[null,\"{}\"]", pos.lsn.as_u64()),
        "schema": table.map(|t| t.schema.as_str()),
        "table": table.map(|t| t.name.as_str()),
        "txId": pos.xid,
        "lsn": pos.lsn.as_u64(),
        "xmin": Json::Null,
    });
    let mut envelope = Map::new();
    envelope.insert("before".into(), row_json(table, event.before.as_ref()));
    envelope.insert("after".into(), row_json(table, event.after.as_ref()));
    envelope.insert("source".into(), source);
    envelope.insert("op".into(), Json::from(event.op.as_str()));
    envelope.insert("ts_ms".into(), Json::from(now_ms));
    envelope.insert("transaction".into(), Json::Null);
    if let Some(message) = &event.message {
        envelope.insert(
            "message".into(),
            json!({
                "prefix": message.prefix,
                "content": base64::engine::general_purpose::STANDARD.encode(&message.content),
            }),
        );
    }
    Json::Object(envelope)
}

fn row_json(table: Option<&TableSchema>, row: Option<&Row>) -> Json {
    let (Some(table), Some(row)) = (table, row) else {
        return Json::Null;
    };
    let mut object = Map::with_capacity(row.len());
    for (column, value) in table.columns.iter().zip(row) {
        object.insert(column.name.clone(), value_json(value));
    }
    Json::Object(object)
}

/// One value in the JSON form described in the module docs.
pub fn value_json(value: &Value) -> Json {
    match value {
        Value::Null => Json::Null,
        Value::UnchangedToast => Json::from(UNAVAILABLE_VALUE),
        Value::Bool(b) => Json::from(*b),
        Value::Int16(v) => Json::from(*v),
        Value::Int32(v) => Json::from(*v),
        Value::Int64(v) => Json::from(*v),
        Value::Float32(v) => float_json(f64::from(*v)),
        Value::Float64(v) => float_json(*v),
        Value::Numeric(Numeric::Value(d)) | Value::Money(d) => Json::from(d.as_str()),
        Value::Numeric(Numeric::NaN) => Json::from("NaN"),
        Value::Numeric(Numeric::PositiveInfinity) => Json::from("infinity"),
        Value::Numeric(Numeric::NegativeInfinity) => Json::from("-infinity"),
        Value::Text(s)
        | Value::Json(s)
        | Value::Jsonb(s)
        | Value::Xml(s)
        | Value::Inet(s)
        | Value::Cidr(s)
        | Value::MacAddr(s)
        | Value::Enum(s) => Json::from(s.as_str()),
        Value::Bytes(b) => Json::from(base64::engine::general_purpose::STANDARD.encode(b)),
        Value::Date(d) => infinite_json(d, |days| Json::from(*days)),
        Value::Time(micros) => Json::from(*micros),
        Value::TimeTz {
            micros,
            offset_seconds,
        } => {
            let utc = (micros - i64::from(*offset_seconds) * 1_000_000).rem_euclid(MICROS_PER_DAY);
            Json::from(format!("{}Z", time_of_day(utc)))
        }
        Value::Timestamp(ts) => infinite_json(ts, |micros| Json::from(*micros)),
        Value::TimestampTz(ts) => infinite_json(ts, |micros| Json::from(iso_utc(*micros))),
        Value::Interval(i) => {
            let month_micros = f64::from(i.months) * DAYS_PER_MONTH * MICROS_PER_DAY as f64;
            Json::from(month_micros as i64 + i64::from(i.days) * MICROS_PER_DAY + i.micros)
        }
        Value::Uuid(bytes) => Json::from(uuid_text(bytes)),
        Value::Bits { .. } => Json::from(pg_text(value)),
        Value::Array(items) => Json::Array(items.iter().map(value_json).collect()),
        Value::Range(range) => Json::from(range_text(range)),
        Value::Hstore(pairs) => Json::Object(
            pairs
                .iter()
                .map(|(k, v)| (k.clone(), v.as_deref().map_or(Json::Null, Json::from)))
                .collect(),
        ),
        Value::Geometry(g) => geometry_json(g),
        Value::Unknown { text, .. } => Json::from(text.as_str()),
    }
}

fn float_json(v: f64) -> Json {
    if v.is_finite() {
        Json::from(v)
    } else if v.is_nan() {
        Json::from("NaN")
    } else if v > 0.0 {
        Json::from("Infinity")
    } else {
        Json::from("-Infinity")
    }
}

fn infinite_json<T>(v: &Infinite<T>, finite: impl Fn(&T) -> Json) -> Json {
    match v {
        Infinite::Finite(t) => finite(t),
        Infinite::PositiveInfinity => Json::from("infinity"),
        Infinite::NegativeInfinity => Json::from("-infinity"),
    }
}

/// `HH:MM:SS[.ffffff]` for microseconds since midnight, trailing zeros of the fraction dropped.
fn time_of_day(micros: i64) -> String {
    let secs = micros / 1_000_000;
    let frac = micros % 1_000_000;
    let mut out = format!("{:02}:{:02}:{:02}", secs / 3600, secs / 60 % 60, secs % 60);
    if frac != 0 {
        let digits = format!("{frac:06}");
        out.push('.');
        out.push_str(digits.trim_end_matches('0'));
    }
    out
}

/// ISO-8601 in UTC, as Debezium's ZonedTimestamp: `2024-01-01T10:00:00.5Z`.
fn iso_utc(micros: i64) -> String {
    let days = micros.div_euclid(MICROS_PER_DAY);
    let (year, month, day) = civil_from_days(days);
    let tod = time_of_day(micros.rem_euclid(MICROS_PER_DAY));
    format!("{year:04}-{month:02}-{day:02}T{tod}Z")
}

fn range_text(range: &RangeValue) -> String {
    if range.empty {
        return "empty".into();
    }
    let bound = |v: &Option<Value>| match v.as_ref().map(value_json) {
        None => String::new(),
        Some(Json::String(s)) => s,
        Some(other) => other.to_string(),
    };
    format!(
        "{}{},{}{}",
        if range.lower_inclusive { '[' } else { '(' },
        bound(&range.lower),
        bound(&range.upper),
        if range.upper_inclusive { ']' } else { ')' }
    )
}

fn geometry_json(g: &Geometry) -> Json {
    let point = |(x, y): &(f64, f64)| json!({"x": x, "y": y});
    match g {
        Geometry::Point { x, y } => json!({"x": x, "y": y}),
        Geometry::Line { a, b, c } => json!({"a": a, "b": b, "c": c}),
        Geometry::LineSegment(p) | Geometry::Box(p) => Json::Array(p.iter().map(point).collect()),
        Geometry::Path { closed, points } => {
            json!({"closed": closed, "points": points.iter().map(point).collect::<Vec<_>>()})
        }
        Geometry::Polygon(points) => Json::Array(points.iter().map(point).collect()),
        Geometry::Circle { x, y, radius } => json!({"x": x, "y": y, "radius": radius}),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use sluice_api::{Column, Decimal, Lsn, Op, PgInterval, ReplicaIdentity, SourcePosition};

    fn table() -> Arc<TableSchema> {
        let col = |name: &str, is_key| Column {
            name: name.into(),
            type_oid: 23,
            type_name: "int4".into(),
            type_modifier: -1,
            is_key,
        };
        Arc::new(TableSchema {
            relation_id: 1,
            schema: "public".into(),
            name: "orders".into(),
            replica_identity: ReplicaIdentity::Default,
            columns: vec![col("id", true), col("note", false)],
        })
    }

    #[test]
    fn an_update_is_a_debezium_envelope_with_unchanged_toast_marked() {
        let event = ChangeEvent {
            op: Op::Update,
            table: Some(table()),
            before: None,
            before_is_key_only: false,
            after: Some(vec![Value::Int32(7), Value::UnchangedToast]),
            message: None,
            position: SourcePosition {
                lsn: Lsn(0x10),
                commit_lsn: Lsn(0x20),
                xid: Some(42),
                commit_time_us: 1_700_000_000_123_456,
                snapshot: sluice_api::SnapshotFlag::False,
            },
        };
        let ctx = EventContext {
            pipeline: "inv".into(),
            database: "app".into(),
        };
        let json = encode_event(&event, &ctx, 5);
        assert_eq!(json["op"], "u");
        assert_eq!(json["before"], Json::Null);
        assert_eq!(json["after"]["id"], 7);
        assert_eq!(json["after"]["note"], UNAVAILABLE_VALUE);
        assert_eq!(json["source"]["table"], "orders");
        assert_eq!(json["source"]["txId"], 42);
        assert_eq!(json["source"]["lsn"], 16);
        assert_eq!(json["source"]["ts_ms"], 1_700_000_000_123i64);
        assert_eq!(json["source"]["name"], "inv");
    }

    #[test]
    fn temporal_values_use_debeziums_semantic_encodings() {
        let ts = Value::TimestampTz(Infinite::Finite(1_700_000_000_500_000));
        assert_eq!(value_json(&ts), "2023-11-14T22:13:20.5Z");
        assert_eq!(
            value_json(&Value::TimestampTz(Infinite::Finite(-1))),
            "1969-12-31T23:59:59.999999Z"
        );
        assert_eq!(
            value_json(&Value::Date(Infinite::PositiveInfinity)),
            "infinity"
        );
        assert_eq!(value_json(&Value::Date(Infinite::Finite(19_782))), 19_782);
        let tz = Value::TimeTz {
            micros: 3_600_000_000,
            offset_seconds: 7200,
        };
        assert_eq!(value_json(&tz), "23:00:00Z");
        let interval = Value::Interval(PgInterval {
            months: 0,
            days: 1,
            micros: 5,
        });
        assert_eq!(value_json(&interval), MICROS_PER_DAY + 5);
    }

    #[test]
    fn exact_numbers_keep_every_digit() {
        let d = Decimal::parse("12345678901234567890.123456789").unwrap();
        assert_eq!(
            value_json(&Value::Numeric(Numeric::Value(d))),
            "12345678901234567890.123456789"
        );
        assert_eq!(value_json(&Value::Float64(f64::NAN)), "NaN");
    }

    #[test]
    fn uuids_bits_and_ranges_read_as_postgres_prints_them() {
        let uuid = [
            0xa0, 0xee, 0xbc, 0x99, 0x9c, 0x0b, 0x4e, 0xf8, 0xbb, 0x6d, 0x6b, 0xb9, 0xbd, 0x38,
            0x0a, 0x11,
        ];
        assert_eq!(
            value_json(&Value::Uuid(uuid)),
            "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"
        );
        assert_eq!(
            value_json(&Value::Bits {
                len: 4,
                data: vec![0b1010_0000]
            }),
            "1010"
        );
        let range = RangeValue {
            empty: false,
            lower: Some(Value::Int32(1)),
            upper: None,
            lower_inclusive: true,
            upper_inclusive: false,
        };
        assert_eq!(value_json(&Value::Range(Box::new(range))), "[1,)");
    }
}
