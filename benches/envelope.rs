//! Envelope encoding speed: events per second written as Confluent-framed Avro (key and
//! envelope) for the benchmark table's row shape (`bench/throughput.sh`), and the JSON form
//! for comparison. Run with `cargo bench --bench envelope`; ends with a `RESULT` line.

use std::collections::HashSet;
use std::hint::black_box;
use std::sync::Arc;
use std::time::Instant;

use criterion::{Criterion, Throughput};
use sluice::schema::{
    build_table_schemas, EnvelopeOptions, JsonEncoder, SourceInfo, TableEncoder, UserTypes,
};
use sluice_api::{
    ChangeEvent, Column, Decimal, Infinite, Lsn, Numeric, Op, ReplicaIdentity, SourcePosition,
    TableSchema, Value,
};

/// Events per timed batch: enough to amortise timer reads, small enough to stay in cache.
const BATCH: u64 = 1_000;

fn column(name: &str, type_name: &str, typmod: i32, is_key: bool) -> Column {
    Column {
        name: name.into(),
        type_oid: 0,
        type_name: type_name.into(),
        type_modifier: typmod,
        is_key,
    }
}

/// `bench` from bench/throughput.sh.
fn bench_table() -> Arc<TableSchema> {
    Arc::new(TableSchema {
        relation_id: 1,
        schema: "public".into(),
        name: "bench".into(),
        replica_identity: ReplicaIdentity::Default,
        columns: vec![
            column("id", "int8", -1, true),
            column("i", "int4", -1, false),
            column("t", "text", -1, false),
            column("amount", "numeric", (12 << 16 | 2) + 4, false),
            column("ts", "timestamptz", -1, false),
            column("flag", "bool", -1, false),
            column("u", "uuid", -1, false),
            column("j", "jsonb", -1, false),
            column("d", "float8", -1, false),
            column("note", "varchar", 68, false),
        ],
    })
}

fn events(table: &Arc<TableSchema>, count: u64) -> Vec<ChangeEvent> {
    (1..=count)
        .map(|g| ChangeEvent {
            op: Op::Create,
            table: Some(table.clone()),
            before: None,
            before_is_key_only: false,
            after: Some(vec![
                Value::Int64(g as i64),
                Value::Int32((g % 100_000) as i32),
                Value::Text(format!("{g:032x}{g:018}")),
                Value::Numeric(Numeric::Value(
                    Decimal::parse(&format!("{}.{:02}", g % 100_000, g % 100))
                        .unwrap_or_else(|| Decimal::parse("0").expect("zero parses")),
                )),
                Value::TimestampTz(Infinite::Finite(1_714_566_600_000_000 + g as i64)),
                Value::Bool(g % 2 == 0),
                Value::Uuid([(g % 251) as u8; 16]),
                Value::Jsonb(format!(
                    "{{\"k\": {g}, \"ok\": {}, \"tag\": \"tag{}\"}}",
                    g % 3 == 0,
                    g % 100
                )),
                Value::Float64(g as f64 * 1.5),
                if g % 3 == 0 {
                    Value::Null
                } else {
                    Value::Text(format!("note-{g}"))
                },
            ]),
            message: None,
            position: SourcePosition {
                lsn: Lsn(g * 100),
                commit_lsn: Lsn(g * 100 + 50),
                xid: Some(g as u32),
                commit_time_us: 1_714_566_600_000_000,
                snapshot: sluice_api::SnapshotFlag::False,
            },
        })
        .collect()
}

fn main() {
    let table = bench_table();
    let schemas = build_table_schemas(
        "bench",
        &table,
        &["id", "i", "t", "amount", "ts", "flag", "u", "j", "d"]
            .into_iter()
            .map(String::from)
            .collect::<HashSet<_>>(),
        &EnvelopeOptions::default(),
        &UserTypes::default(),
    )
    .expect("bench table schemas");
    let source = SourceInfo {
        version: "bench".into(),
        server_name: "bench".into(),
        database: "bench".into(),
    };
    let avro = TableEncoder::new(&schemas, &source, "__debezium_unavailable_value");
    let json = JsonEncoder::new(&schemas, &source, "__debezium_unavailable_value");
    let events = events(&table, BATCH);

    let encode_batch = |key: &mut Vec<u8>, value: &mut Vec<u8>| {
        for event in &events {
            key.clear();
            value.clear();
            avro.encode_key(event, 1, key).expect("key encodes");
            avro.encode_value(event, 2, 1_714_566_600_000_000, value)
                .expect("value encodes");
            black_box((&key, &value));
        }
    };

    let mut criterion = Criterion::default().configure_from_args();
    {
        let mut group = criterion.benchmark_group("envelope");
        group.throughput(Throughput::Elements(BATCH));
        group.bench_function("avro_key_and_value", |b| {
            let (mut key, mut value) = (Vec::with_capacity(64), Vec::with_capacity(512));
            b.iter(|| encode_batch(&mut key, &mut value))
        });
        group.bench_function("json_with_schema", |b| {
            b.iter(|| {
                for event in &events {
                    let v = json
                        .value(event, 1_714_566_600_000_000, true)
                        .expect("json");
                    black_box(serde_json::to_vec(&v).expect("serialise"));
                }
            })
        });
        group.finish();
    }
    criterion.final_summary();

    // One machine-readable line, from a plain timed run of the Avro path.
    let (mut key, mut value) = (Vec::with_capacity(64), Vec::with_capacity(512));
    let rounds = 200;
    let start = Instant::now();
    for _ in 0..rounds {
        encode_batch(&mut key, &mut value);
    }
    let secs = start.elapsed().as_secs_f64();
    let per_s = (rounds * BATCH) as f64 / secs;
    println!(
        "RESULT name=envelope_encode events_per_s={per_s:.0} value_bytes={} key_bytes={}",
        value.len(),
        key.len()
    );
}
