//! Schema golden files and encoder round trips for a table holding every type sluice decodes.

use std::collections::HashSet;
use std::sync::Arc;

use apache_avro::types::Value as Avro;
use sluice_api::{
    ChangeEvent, Column, Decimal, Geometry, Infinite, Lsn, Numeric, Op, PgInterval, RangeValue,
    ReplicaIdentity, SourcePosition, TableSchema, Value,
};

use super::*;

/// (name, type name, type modifier, key, not null) of every column of the all-types table.
const COLUMNS: &[(&str, &str, i32, bool, bool)] = &[
    ("id", "int4", -1, true, true),
    ("small", "int2", -1, false, false),
    ("big", "int8", -1, false, false),
    ("real_col", "float4", -1, false, false),
    ("dbl", "float8", -1, false, false),
    ("flag", "bool", -1, false, false),
    ("amount", "numeric", (10 << 16 | 2) + 4, false, false),
    ("any_number", "numeric", -1, false, false),
    ("price", "money", -1, false, false),
    ("name", "varchar", 68, false, true),
    ("note", "text", -1, false, false),
    ("raw", "bytea", -1, false, false),
    ("birthday", "date", -1, false, false),
    ("alarm", "time", 3, false, false),
    ("precise_time", "time", -1, false, false),
    ("at_tz", "timetz", -1, false, false),
    ("created_ms", "timestamp", 3, false, false),
    ("created", "timestamp", -1, false, false),
    ("updated", "timestamptz", -1, false, false),
    ("duration", "interval", -1, false, false),
    ("ident", "uuid", -1, false, false),
    ("doc", "json", -1, false, false),
    ("docb", "jsonb", -1, false, false),
    ("page", "xml", -1, false, false),
    ("ip", "inet", -1, false, false),
    ("net", "cidr", -1, false, false),
    ("mac", "macaddr", -1, false, false),
    ("one_bit", "bit", 1, false, false),
    ("bits", "bit", 12, false, false),
    ("var_bits", "varbit", -1, false, false),
    ("mood", "app.mood", -1, false, false),
    ("tags", "_text", -1, false, false),
    ("scores", "_int4", -1, false, false),
    ("numbers", "_numeric", -1, false, false),
    ("attrs", "public.hstore", -1, false, false),
    ("during", "tsrange", -1, false, false),
    ("location", "point", -1, false, false),
    ("shape", "polygon", -1, false, false),
    ("words", "tsvector", -1, false, false),
    ("2nd-col", "text", -1, false, false),
];

fn all_types_table() -> Arc<TableSchema> {
    Arc::new(TableSchema {
        relation_id: 16_384,
        schema: "public".into(),
        name: "all_types".into(),
        replica_identity: ReplicaIdentity::Default,
        columns: COLUMNS
            .iter()
            .map(|(name, type_name, typmod, key, _)| Column {
                name: (*name).into(),
                type_oid: 0,
                type_name: (*type_name).into(),
                type_modifier: *typmod,
                is_key: *key,
            })
            .collect(),
    })
}

fn not_null() -> HashSet<String> {
    COLUMNS
        .iter()
        .filter(|c| c.4)
        .map(|c| c.0.to_owned())
        .collect()
}

fn user_types() -> UserTypes {
    let mut types = UserTypes::default();
    types.enums.insert(
        "app.mood".into(),
        vec!["sad".into(), "ok".into(), "happy".into()],
    );
    types
}

fn schemas_with(options: &EnvelopeOptions) -> TableSchemas {
    build_table_schemas(
        "inventory",
        &all_types_table(),
        &not_null(),
        options,
        &user_types(),
    )
    .expect("schemas build")
}

fn source_info() -> SourceInfo {
    SourceInfo {
        version: "sluice-test".into(),
        server_name: "inventory".into(),
        database: "app".into(),
    }
}

fn dec(text: &str) -> Decimal {
    Decimal::parse(text).expect("decimal")
}

/// 2024-05-01 12:30:00.25 UTC in microseconds.
const TS: i64 = 1_714_566_600_250_000;

fn full_row() -> Vec<Value> {
    vec![
        Value::Int32(7),
        Value::Int16(-3),
        Value::Int64(9_000_000_000),
        Value::Float32(1.5),
        Value::Float64(-2.25),
        Value::Bool(true),
        Value::Numeric(Numeric::Value(dec("-12345678.91"))),
        Value::Numeric(Numeric::Value(dec(
            "123456789012345678901234567890123456789.000001",
        ))),
        Value::Money(dec("19.99")),
        Value::Text("widget".into()),
        Value::Text("a note".into()),
        Value::Bytes(vec![0, 1, 0xfe]),
        Value::Date(Infinite::Finite(19_844)),
        Value::Time(45_000_123_456),
        Value::Time(45_000_123_456),
        Value::TimeTz {
            micros: 3_600_000_000,
            offset_seconds: 7200,
        },
        Value::Timestamp(Infinite::Finite(TS)),
        Value::Timestamp(Infinite::PositiveInfinity),
        Value::TimestampTz(Infinite::Finite(TS)),
        Value::Interval(PgInterval {
            months: 1,
            days: 2,
            micros: 3,
        }),
        Value::Uuid([0x12; 16]),
        Value::Json("{\"a\": 1}".into()),
        Value::Jsonb("{\"b\": 2}".into()),
        Value::Xml("<x/>".into()),
        Value::Inet("10.0.0.1".into()),
        Value::Cidr("10.0.0.0/8".into()),
        Value::MacAddr("08:00:2b:01:02:03".into()),
        Value::Bits {
            len: 1,
            data: vec![0x80],
        },
        Value::Bits {
            len: 12,
            data: vec![0b1000_0000, 0b0001_0000],
        },
        Value::Bits {
            len: 3,
            data: vec![0b1100_0000],
        },
        Value::Enum("happy".into()),
        Value::Array(vec![Value::Text("x".into()), Value::Null]),
        Value::Array(vec![
            Value::Array(vec![Value::Int32(1), Value::Int32(2)]),
            Value::Array(vec![Value::Int32(3), Value::Int32(4)]),
        ]),
        Value::Array(vec![
            Value::Numeric(Numeric::Value(dec("1.5"))),
            Value::Numeric(Numeric::NaN),
        ]),
        Value::Hstore(vec![("k".into(), Some("v".into())), ("n".into(), None)]),
        Value::Range(Box::new(RangeValue {
            empty: false,
            lower: Some(Value::Timestamp(Infinite::Finite(0))),
            upper: None,
            lower_inclusive: true,
            upper_inclusive: false,
        })),
        Value::Geometry(Geometry::Point { x: 1.5, y: -2.0 }),
        Value::Geometry(Geometry::Polygon(vec![(0.0, 0.0), (1.0, 1.0)])),
        Value::Unknown {
            type_name: "tsvector".into(),
            text: "'fat':1".into(),
        },
        Value::Text("second".into()),
    ]
}

fn event(op: Op, before: Option<Vec<Value>>, after: Option<Vec<Value>>) -> ChangeEvent {
    ChangeEvent {
        op,
        table: Some(all_types_table()),
        before_is_key_only: matches!(op, Op::Delete),
        before,
        after,
        message: None,
        position: SourcePosition {
            lsn: Lsn(0x0100_0028),
            commit_lsn: Lsn(0x0100_0100),
            xid: Some(731),
            commit_time_us: TS,
            snapshot: sluice_api::SnapshotFlag::False,
        },
    }
}

fn golden(name: &str, actual: &serde_json::Value) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name);
    let mut text = serde_json::to_string_pretty(actual).expect("json");
    text.push('\n');
    if std::env::var("SLUICE_UPDATE_GOLDEN").as_deref() == Ok("1") {
        std::fs::write(&path, &text).expect("write golden");
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; run with SLUICE_UPDATE_GOLDEN=1 to create it",
            path.display()
        )
    });
    assert_eq!(
        text, expected,
        "{name} differs from its golden file; rerun with SLUICE_UPDATE_GOLDEN=1 if intended"
    );
}

fn decode(schema: &apache_avro::Schema, framed: &[u8], schema_id: u32) -> Avro {
    assert_eq!(framed[0], MAGIC_BYTE);
    assert_eq!(framed[1..5], schema_id.to_be_bytes());
    let mut body = &framed[5..];
    let value = apache_avro::from_avro_datum(schema, &mut body, None).expect("decodes");
    assert!(body.is_empty(), "every byte is consumed");
    value
}

fn field<'v>(record: &'v Avro, name: &str) -> &'v Avro {
    let Avro::Record(fields) = record else {
        panic!("not a record: {record:?}")
    };
    fields
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v)
        .unwrap_or_else(|| panic!("no field {name}"))
}

/// The value inside a `["null", T]` union, `None` for null.
fn some(value: &Avro) -> Option<&Avro> {
    match value {
        Avro::Union(0, inner) if **inner == Avro::Null => None,
        Avro::Union(_, inner) => Some(inner),
        other => Some(other),
    }
}

fn decimal_bytes(value: &Avro) -> Vec<u8> {
    match value {
        Avro::Decimal(d) => Vec::<u8>::try_from(d.clone()).expect("decimal bytes"),
        Avro::Bytes(b) => b.clone(),
        other => panic!("not a decimal: {other:?}"),
    }
}

fn unscaled(text: &str, scale: u32) -> Vec<u8> {
    let mut out = Vec::new();
    representation::unscaled_bytes(&dec(text), scale, &mut out);
    out
}

#[test]
fn the_all_types_schemas_match_their_golden_files() {
    let schemas = schemas_with(&EnvelopeOptions::default());
    golden(
        "all_types.key.avsc",
        schemas.key_json.as_ref().expect("the table has a key"),
    );
    golden("all_types.value.avsc", &schemas.envelope_json);
}

#[test]
fn the_envelope_names_follow_debezium() {
    let schemas = schemas_with(&EnvelopeOptions::default());
    let env = &schemas.envelope_json;
    assert_eq!(env["name"], "Envelope");
    assert_eq!(env["namespace"], "inventory.public.all_types");
    assert_eq!(env["connect.name"], "inventory.public.all_types.Envelope");
    let names: Vec<&str> = env["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "before",
            "after",
            "source",
            "transaction",
            "op",
            "ts_ms",
            "ts_us",
            "ts_ns"
        ]
    );
    assert_eq!(env["fields"][1]["type"][1], "Value");
    assert_eq!(
        env["fields"][2]["type"]["connect.name"],
        "io.debezium.connector.postgresql.Source"
    );
    let key = schemas.key_json.as_ref().unwrap();
    assert_eq!(key["connect.name"], "inventory.public.all_types.Key");
    assert_eq!(
        key["fields"][0],
        serde_json::json!({"name": "id", "type": "int"})
    );
    // Names are sanitised; the JSON form keeps the column name.
    assert_eq!(schemas.value_fields.last().unwrap().avro_name, "_nd_col");
}

#[test]
fn semantic_types_carry_the_converters_connect_properties() {
    let schemas = schemas_with(&EnvelopeOptions::default());
    let value = &schemas.value_json;
    let ty = |name: &str| {
        value["fields"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["name"] == name)
            .map(|f| f["type"].clone())
            .unwrap()
    };
    assert_eq!(
        ty("amount")[1],
        serde_json::json!({"type": "bytes", "scale": 2, "precision": 10, "connect.version": 1,
            "connect.parameters": {"scale": "2", "connect.decimal.precision": "10"},
            "connect.name": "org.apache.kafka.connect.data.Decimal", "logicalType": "decimal"})
    );
    assert_eq!(
        ty("created")[1],
        serde_json::json!({"type": "long", "connect.version": 1,
            "connect.name": "io.debezium.time.MicroTimestamp"})
    );
    assert_eq!(
        ty("small")[1],
        serde_json::json!({"type": "int", "connect.type": "int16"})
    );
    assert_eq!(
        ty("mood")[1]["connect.parameters"],
        serde_json::json!({"allowed": "sad,ok,happy"})
    );
    assert_eq!(ty("name"), serde_json::json!("string"));
    // The second VariableScaleDecimal refers to the first by name.
    assert_eq!(ty("any_number")[1]["name"], "VariableScaleDecimal");
    assert_eq!(
        ty("numbers")[1]["items"][1],
        "io.debezium.data.VariableScaleDecimal"
    );
}

#[test]
fn an_insert_round_trips_through_apache_avro() {
    let schemas = schemas_with(&EnvelopeOptions::default());
    let encoder = TableEncoder::new(&schemas, &source_info(), "__debezium_unavailable_value");
    let event = event(Op::Create, None, Some(full_row()));
    let mut out = Vec::new();
    assert!(encoder.encode_key(&event, 41, &mut out).unwrap());
    let key = decode(schemas.key_avro.as_ref().unwrap(), &out, 41);
    assert_eq!(key, Avro::Record(vec![("id".into(), Avro::Int(7))]));

    out.clear();
    encoder
        .encode_value(&event, 42, TS + 5_000, &mut out)
        .unwrap();
    let env = decode(&schemas.envelope_avro, &out, 42);
    assert_eq!(some(field(&env, "before")), None);
    let after = some(field(&env, "after")).expect("after");
    let f = |name: &str| some(field(after, name)).cloned();

    assert_eq!(f("id"), Some(Avro::Int(7)));
    assert_eq!(f("small"), Some(Avro::Int(-3)));
    assert_eq!(f("big"), Some(Avro::Long(9_000_000_000)));
    assert_eq!(f("real_col"), Some(Avro::Float(1.5)));
    assert_eq!(f("dbl"), Some(Avro::Double(-2.25)));
    assert_eq!(f("flag"), Some(Avro::Boolean(true)));
    assert_eq!(
        decimal_bytes(&f("amount").unwrap()),
        unscaled("-12345678.91", 2)
    );
    let Some(Avro::Record(vsd)) = f("any_number") else {
        panic!("variable scale decimal")
    };
    assert_eq!(vsd[0], ("scale".into(), Avro::Int(6)));
    assert_eq!(
        vsd[1].1,
        Avro::Bytes(unscaled(
            "123456789012345678901234567890123456789.000001",
            6
        ))
    );
    assert_eq!(decimal_bytes(&f("price").unwrap()), unscaled("19.99", 2));
    assert_eq!(f("name"), Some(Avro::String("widget".into())));
    assert_eq!(f("raw"), Some(Avro::Bytes(vec![0, 1, 0xfe])));
    assert_eq!(f("birthday"), Some(Avro::Int(19_844)));
    assert_eq!(f("alarm"), Some(Avro::Int(45_000_123)));
    assert_eq!(f("precise_time"), Some(Avro::Long(45_000_123_456)));
    assert_eq!(f("at_tz"), Some(Avro::String("23:00:00Z".into())));
    assert_eq!(f("created_ms"), Some(Avro::Long(TS / 1000)));
    assert_eq!(f("created"), Some(Avro::Long(9_223_372_036_825_200_000)));
    assert_eq!(
        f("updated"),
        Some(Avro::String("2024-05-01T12:30:00.25Z".into()))
    );
    assert_eq!(
        f("duration"),
        Some(Avro::Long(2_629_800_000_000 + 2 * 86_400_000_000 + 3))
    );
    assert_eq!(
        f("ident"),
        Some(Avro::String("12121212-1212-1212-1212-121212121212".into()))
    );
    assert_eq!(f("docb"), Some(Avro::String("{\"b\": 2}".into())));
    assert_eq!(f("one_bit"), Some(Avro::Boolean(true)));
    // 1000 0000 0001 read as an integer is 0x801, little-endian.
    assert_eq!(f("bits"), Some(Avro::Bytes(vec![0x01, 0x08])));
    assert_eq!(f("var_bits"), Some(Avro::Bytes(vec![0b110])));
    assert_eq!(f("mood"), Some(Avro::String("happy".into())));
    assert_eq!(
        f("tags"),
        Some(Avro::Array(vec![
            Avro::Union(1, Box::new(Avro::String("x".into()))),
            Avro::Union(0, Box::new(Avro::Null)),
        ]))
    );
    let Some(Avro::Array(scores)) = f("scores") else {
        panic!("scores")
    };
    assert_eq!(scores.len(), 4, "a two-dimensional array is written flat");
    let Some(Avro::Array(numbers)) = f("numbers") else {
        panic!("numbers")
    };
    assert_eq!(
        numbers[1],
        Avro::Union(0, Box::new(Avro::Null)),
        "NaN is null"
    );
    assert_eq!(
        f("attrs"),
        Some(Avro::String("{\"k\":\"v\",\"n\":null}".into()))
    );
    assert_eq!(
        f("during"),
        Some(Avro::String("[\"1970-01-01 00:00:00\",)".into()))
    );
    let Some(Avro::Record(point)) = f("location") else {
        panic!("point")
    };
    assert_eq!(point[0].1, Avro::Double(1.5));
    assert_eq!(point[1].1, Avro::Double(-2.0));
    assert_eq!(f("shape"), Some(Avro::String("((0,0),(1,1))".into())));
    assert_eq!(f("words"), Some(Avro::String("'fat':1".into())));
    assert_eq!(f("_nd_col"), Some(Avro::String("second".into())));

    let source = field(&env, "source");
    assert_eq!(
        field(source, "connector"),
        &Avro::String("postgresql".into())
    );
    assert_eq!(field(source, "name"), &Avro::String("inventory".into()));
    assert_eq!(field(source, "ts_ms"), &Avro::Long(TS / 1000));
    assert_eq!(
        some(field(source, "snapshot")),
        Some(&Avro::String("false".into()))
    );
    assert_eq!(field(source, "schema"), &Avro::String("public".into()));
    assert_eq!(field(source, "table"), &Avro::String("all_types".into()));
    assert_eq!(some(field(source, "txId")), Some(&Avro::Long(731)));
    assert_eq!(some(field(source, "lsn")), Some(&Avro::Long(0x0100_0028)));
    assert_eq!(
        some(field(source, "sequence")),
        Some(&Avro::String("[\"16777472\",\"16777256\"]".into()))
    );
    assert_eq!(field(&env, "op"), &Avro::String("c".into()));
    assert_eq!(some(field(&env, "ts_us")), Some(&Avro::Long(TS + 5_000)));
    assert_eq!(some(field(&env, "transaction")), None);
}

#[test]
fn unchanged_toast_values_become_the_placeholder() {
    let schemas = schemas_with(&EnvelopeOptions::default());
    let encoder = TableEncoder::new(&schemas, &source_info(), "__unavailable");
    let mut row = full_row();
    for (i, name) in COLUMNS.iter().map(|c| c.0).enumerate() {
        if matches!(
            name,
            "note" | "raw" | "tags" | "docb" | "any_number" | "name"
        ) {
            row[i] = Value::UnchangedToast;
        }
    }
    let event = event(Op::Update, None, Some(row));
    let mut out = Vec::new();
    encoder.encode_value(&event, 1, TS, &mut out).unwrap();
    let env = decode(&schemas.envelope_avro, &out, 1);
    let after = some(field(&env, "after")).unwrap();
    let f = |name: &str| some(field(after, name)).cloned();
    assert_eq!(f("note"), Some(Avro::String("__unavailable".into())));
    assert_eq!(f("name"), Some(Avro::String("__unavailable".into())));
    assert_eq!(f("docb"), Some(Avro::String("__unavailable".into())));
    assert_eq!(f("raw"), Some(Avro::Bytes(b"__unavailable".to_vec())));
    assert_eq!(
        f("tags"),
        Some(Avro::Array(vec![Avro::Union(
            1,
            Box::new(Avro::String("__unavailable".into()))
        )]))
    );
    assert_eq!(
        f("any_number"),
        None,
        "a decimal cannot hold the placeholder"
    );
}

#[test]
fn a_delete_under_the_default_identity_encodes_its_key_only_before_image() {
    let schemas = schemas_with(&EnvelopeOptions::default());
    let encoder = TableEncoder::new(&schemas, &source_info(), "__debezium_unavailable_value");
    let mut before = vec![Value::Null; COLUMNS.len()];
    before[0] = Value::Int32(7);
    let event = event(Op::Delete, Some(before), None);
    let mut out = Vec::new();
    assert!(encoder.encode_key(&event, 3, &mut out).unwrap());
    out.clear();
    encoder.encode_value(&event, 4, TS, &mut out).unwrap();
    let env = decode(&schemas.envelope_avro, &out, 4);
    let before = some(field(&env, "before")).unwrap();
    assert_eq!(field(before, "id"), &Avro::Int(7));
    // `name` is NOT NULL but was not sent: its zero value.
    assert_eq!(field(before, "name"), &Avro::String(String::new()));
    assert_eq!(some(field(before, "note")), None);
    assert_eq!(some(field(&env, "after")), None);
    assert_eq!(field(&env, "op"), &Avro::String("d".into()));
}

#[test]
fn a_null_in_a_required_column_of_a_full_row_is_an_error() {
    let schemas = schemas_with(&EnvelopeOptions::default());
    let encoder = TableEncoder::new(&schemas, &source_info(), "x");
    let mut row = full_row();
    row[9] = Value::Null;
    let err = encoder
        .encode_value(&event(Op::Create, None, Some(row)), 1, TS, &mut Vec::new())
        .unwrap_err();
    assert_eq!(
        err,
        EncodeError::NullInRequiredField {
            column: "name".into()
        }
    );
    let mut row = full_row();
    row[1] = Value::Text("not a number".into());
    let err = encoder
        .encode_value(&event(Op::Create, None, Some(row)), 1, TS, &mut Vec::new())
        .unwrap_err();
    assert!(matches!(err, EncodeError::TypeMismatch { ref column, .. } if column == "small"));
}

#[test]
fn double_and_string_modes_keep_nan_and_infinity() {
    for mode in [DecimalHandling::Double, DecimalHandling::String] {
        let options = EnvelopeOptions {
            decimal_handling: mode,
            ..EnvelopeOptions::default()
        };
        let schemas = schemas_with(&options);
        let encoder = TableEncoder::new(&schemas, &source_info(), "x");
        let mut row = full_row();
        row[6] = Value::Numeric(Numeric::NaN);
        row[7] = Value::Numeric(Numeric::NegativeInfinity);
        let mut out = Vec::new();
        encoder
            .encode_value(&event(Op::Create, None, Some(row)), 1, TS, &mut out)
            .unwrap();
        let env = decode(&schemas.envelope_avro, &out, 1);
        let after = some(field(&env, "after")).unwrap();
        let amount = some(field(after, "amount")).unwrap().clone();
        let any = some(field(after, "any_number")).unwrap().clone();
        match mode {
            DecimalHandling::Double => {
                assert!(matches!(amount, Avro::Double(d) if d.is_nan()));
                assert_eq!(any, Avro::Double(f64::NEG_INFINITY));
            }
            _ => {
                assert_eq!(amount, Avro::String("NaN".into()));
                assert_eq!(any, Avro::String("-Infinity".into()));
            }
        }
    }
}

#[test]
fn connect_time_mode_and_string_intervals_round_trip() {
    let options = EnvelopeOptions {
        time_precision: TimePrecision::Connect,
        interval_handling: IntervalHandling::String,
        hstore_handling: HstoreHandling::Map,
        ..EnvelopeOptions::default()
    };
    let schemas = schemas_with(&options);
    let encoder = TableEncoder::new(&schemas, &source_info(), "x");
    let mut out = Vec::new();
    encoder
        .encode_value(&event(Op::Read, None, Some(full_row())), 1, TS, &mut out)
        .unwrap();
    let env = decode(&schemas.envelope_avro, &out, 1);
    let after = some(field(&env, "after")).unwrap();
    let f = |name: &str| some(field(after, name)).cloned();
    assert_eq!(f("birthday"), Some(Avro::Date(19_844)));
    assert_eq!(f("alarm"), Some(Avro::TimeMillis(45_000_123)));
    assert_eq!(f("created_ms"), Some(Avro::TimestampMillis(TS / 1000)));
    assert_eq!(
        f("duration"),
        Some(Avro::String("P0Y1M2DT0H0M0.000003S".into()))
    );
    let Some(Avro::Map(attrs)) = f("attrs") else {
        panic!("hstore map")
    };
    assert_eq!(
        attrs["k"],
        Avro::Union(1, Box::new(Avro::String("v".into())))
    );
    assert_eq!(attrs["n"], Avro::Union(0, Box::new(Avro::Null)));
}

#[test]
fn message_key_columns_replace_the_replica_identity() {
    let mut options = EnvelopeOptions::default();
    options.message_key_columns.insert(
        "public.all_types".into(),
        vec!["note".into(), "name".into()],
    );
    let schemas = schemas_with(&options);
    let names: Vec<&str> = schemas.key_fields.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, ["name", "note"], "in column order");
    options
        .message_key_columns
        .insert("public.all_types".into(), vec!["nope".into()]);
    let err = build_table_schemas(
        "inventory",
        &all_types_table(),
        &not_null(),
        &options,
        &user_types(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("\"nope\""), "{err}");
}

#[test]
fn the_json_form_matches_the_json_converter_shape() {
    let schemas = schemas_with(&EnvelopeOptions::default());
    let encoder = JsonEncoder::new(&schemas, &source_info(), "__debezium_unavailable_value");
    let event = event(Op::Create, None, Some(full_row()));
    let key = encoder.key(&event, true).unwrap().unwrap();
    assert_eq!(
        key,
        serde_json::json!({
            "schema": {"type": "struct", "fields": [{"type": "int32", "optional": false, "field": "id"}],
                       "optional": false, "name": "inventory.public.all_types.Key"},
            "payload": {"id": 7}
        })
    );
    let value = encoder.value(&event, TS, true).unwrap();
    let schema = &value["schema"];
    assert_eq!(schema["name"], "inventory.public.all_types.Envelope");
    assert_eq!(schema["fields"][1]["field"], "after");
    let amount = &schema["fields"][1]["fields"][6];
    assert_eq!(
        *amount,
        serde_json::json!({"type": "bytes", "optional": true,
            "name": "org.apache.kafka.connect.data.Decimal", "version": 1,
            "parameters": {"scale": "2", "connect.decimal.precision": "10"}, "field": "amount"})
    );
    let after = &value["payload"]["after"];
    use base64::Engine as _;
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    assert_eq!(after["amount"], b64(&unscaled("-12345678.91", 2)));
    assert_eq!(after["any_number"]["scale"], 6);
    assert_eq!(after["updated"], "2024-05-01T12:30:00.25Z");
    assert_eq!(after["created"], 9_223_372_036_825_200_000i64);
    assert_eq!(after["scores"], serde_json::json!([1, 2, 3, 4]));
    assert_eq!(after["2nd-col"], "second");
    assert_eq!(value["payload"]["op"], "c");
    assert_eq!(value["payload"]["source"]["txId"], 731);
    let payload_only = encoder.value(&event, TS, false).unwrap();
    assert_eq!(payload_only, value["payload"]);
}
