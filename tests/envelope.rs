//! Sluice's Avro events decoded by a third-party decoder: Python `fastavro` reads the framed
//! key and envelope against the generated writer schemas and must yield the values written.

use std::collections::HashSet;
use std::sync::Arc;

use serde_json::{json, Value as Json};
use sluice::schema::{build_table_schemas, EnvelopeOptions, SourceInfo, TableEncoder, UserTypes};
use sluice_api::{
    ChangeEvent, Column, Decimal, Infinite, Lsn, Numeric, Op, ReplicaIdentity, SourcePosition,
    TableSchema, Value,
};

/// 2024-05-01 12:30:00.25 UTC, microseconds since the epoch.
const TS: i64 = 1_714_566_600_250_000;

fn column(name: &str, type_name: &str, typmod: i32, is_key: bool) -> Column {
    Column {
        name: name.into(),
        type_oid: 0,
        type_name: type_name.into(),
        type_modifier: typmod,
        is_key,
    }
}

fn table() -> Arc<TableSchema> {
    Arc::new(TableSchema {
        relation_id: 1,
        schema: "public".into(),
        name: "orders".into(),
        replica_identity: ReplicaIdentity::Default,
        columns: vec![
            column("id", "int8", -1, true),
            column("amount", "numeric", (12 << 16 | 3) + 4, false),
            column("ratio", "numeric", -1, false),
            column("placed", "timestamptz", -1, false),
            column("due", "timestamp", -1, false),
            column("tags", "_text", -1, false),
            column("note", "text", -1, false),
            column("payload", "bytea", -1, false),
        ],
    })
}

fn event(op: Op, before: Option<Vec<Value>>, after: Option<Vec<Value>>) -> ChangeEvent {
    ChangeEvent {
        op,
        table: Some(table()),
        before_is_key_only: op == Op::Delete,
        before,
        after,
        message: None,
        position: SourcePosition {
            lsn: Lsn(100),
            commit_lsn: Lsn(200),
            xid: Some(9),
            commit_time_us: TS,
            snapshot: sluice_api::SnapshotFlag::False,
        },
    }
}

fn decimal(text: &str) -> Value {
    Value::Numeric(Numeric::Value(Decimal::parse(text).expect("decimal")))
}

#[test]
fn fastavro_decodes_framed_keys_and_envelopes() {
    let schemas = build_table_schemas(
        "shop",
        &table(),
        &HashSet::new(),
        &EnvelopeOptions::default(),
        &UserTypes::default(),
    )
    .expect("schemas");
    let source = SourceInfo {
        version: "test".into(),
        server_name: "shop".into(),
        database: "app".into(),
    };
    let encoder = TableEncoder::new(&schemas, &source, "__debezium_unavailable_value");
    let events = [
        event(
            Op::Create,
            None,
            Some(vec![
                Value::Int64(1),
                decimal("-98765432.105"),
                decimal("3.14159265358979323846264338327950288419716939937510"),
                Value::TimestampTz(Infinite::Finite(TS)),
                Value::Timestamp(Infinite::NegativeInfinity),
                Value::Array(vec![Value::Text("a".into()), Value::Null]),
                Value::Null,
                Value::Bytes(vec![0xca, 0xfe]),
            ]),
        ),
        event(
            Op::Update,
            None,
            Some(vec![
                Value::Int64(1),
                Value::Numeric(Numeric::NaN),
                Value::Null,
                Value::TimestampTz(Infinite::PositiveInfinity),
                Value::Timestamp(Infinite::Finite(TS)),
                Value::UnchangedToast,
                Value::UnchangedToast,
                Value::UnchangedToast,
            ]),
        ),
        event(
            Op::Delete,
            Some(vec![
                Value::Int64(1),
                Value::Null,
                Value::Null,
                Value::Null,
                Value::Null,
                Value::Null,
                Value::Null,
                Value::Null,
            ]),
            None,
        ),
    ];

    let dir = tempfile::tempdir().expect("temp dir");
    let mut data = Vec::new();
    let mut buf = Vec::new();
    for event in &events {
        buf.clear();
        encoder.encode_key(event, 7, &mut buf).expect("key");
        data.extend_from_slice(&(buf.len() as u32).to_be_bytes());
        data.extend_from_slice(&buf);
        buf.clear();
        encoder.encode_value(event, 8, TS, &mut buf).expect("value");
        data.extend_from_slice(&(buf.len() as u32).to_be_bytes());
        data.extend_from_slice(&buf);
    }
    let write = |name: &str, bytes: &[u8]| {
        std::fs::write(dir.path().join(name), bytes).expect("write");
    };
    write("events.bin", &data);
    write(
        "key.avsc",
        schemas
            .key_json
            .as_ref()
            .expect("key")
            .to_string()
            .as_bytes(),
    );
    write("value.avsc", schemas.envelope_json.to_string().as_bytes());

    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/python/decode_envelope.py"
    );
    let output = std::process::Command::new("python3")
        .arg(script)
        .arg(dir.path())
        .output()
        .expect("run python3 (install it, and `python3 -m pip install fastavro`)");
    assert!(
        output.status.success(),
        "decoder failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let decoded: Json = serde_json::from_slice(&output.stdout).expect("json from the decoder");

    let insert = &decoded[0];
    assert_eq!(insert["key_id"], 7);
    assert_eq!(insert["value_id"], 8);
    assert_eq!(insert["key"], json!({"id": 1}));
    let after = &insert["value"]["after"];
    assert_eq!(after["amount"], json!({"decimal": "-98765432.105"}));
    // VariableScaleDecimal: scale and unscaled bytes, every digit kept.
    assert_eq!(after["ratio"]["scale"], 50);
    assert_eq!(after["placed"], "2024-05-01T12:30:00.25Z");
    assert_eq!(after["due"], -9_223_372_036_832_400_000i64);
    assert_eq!(after["tags"], json!(["a", null]));
    assert_eq!(after["note"], Json::Null);
    assert_eq!(after["payload"], json!({"hex": "cafe"}));
    assert_eq!(insert["value"]["before"], Json::Null);
    assert_eq!(insert["value"]["op"], "c");
    assert_eq!(insert["value"]["source"]["snapshot"], "false");
    assert_eq!(insert["value"]["source"]["txId"], 9);
    assert_eq!(insert["value"]["source"]["lsn"], 100);

    let update = &decoded[1]["value"]["after"];
    assert_eq!(
        update["amount"],
        Json::Null,
        "NaN has no exact decimal form"
    );
    assert_eq!(update["placed"], "infinity");
    assert_eq!(update["tags"], json!(["__debezium_unavailable_value"]));
    assert_eq!(update["note"], "__debezium_unavailable_value");
    assert_eq!(
        update["payload"],
        json!({"hex": hex(b"__debezium_unavailable_value")})
    );

    let delete = &decoded[2];
    assert_eq!(delete["key"], json!({"id": 1}));
    assert_eq!(delete["value"]["before"]["id"], 1);
    assert_eq!(delete["value"]["after"], Json::Null);
    assert_eq!(delete["value"]["op"], "d");
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
