//! Transforms in a running pipeline against a real PostgreSQL: event transforms (columns, mask,
//! filter) reach every sink, including the file sink's JSON lines, and filtered changes are
//! still confirmed; record transforms (unwrap, outbox) produce Avro records that Confluent's own
//! deserializer reads with the schemas registered in the embedded registry.

use serde_json::Value as Json;
use sha2::{Digest, Sha256};
use sluice_api::{Op, Value};
use sluice_sink_memory::MemorySinkHandle;

use crate::evolution::decode;
use crate::harness;
use crate::support::{self, ThrowawayPostgres, DEFAULT_DATABASE};

const EVENT_TRANSFORMS: &str = r#"
[[transforms]]
type = "columns"
tables = ["public.customers"]
exclude = ["ssn"]

[[transforms]]
type = "mask"
columns = ["public.customers.email"]
mode = "hash"
salt = "pepper"

[[transforms]]
type = "filter"
condition = "op = 'd' or status = 'active'"
"#;

/// Start the pipeline of config `text` with the harness's memory sink, once it streams.
async fn start(
    pg: &ThrowawayPostgres,
    text: &str,
) -> (sluice::runtime::RunningPipeline, MemorySinkHandle) {
    let config = sluice::config::Config::from_toml_str(text, std::iter::empty())
        .unwrap_or_else(|p| panic!("{p}"));
    let started = harness::start(config).await;
    harness::wait_streaming(pg).await;
    started
}

fn registry_url(pipeline: &sluice::runtime::RunningPipeline) -> String {
    pipeline
        .embedded_registry_url()
        .expect("the embedded registry runs")
        .to_string()
}

fn sha256_hex(text: &str) -> String {
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[tokio::test]
async fn columns_masks_and_filters_shape_what_every_sink_receives_and_filtered_changes_are_confirmed(
) {
    let pg = support::start_postgres_with(
        "CREATE TABLE customers (id int PRIMARY KEY, email text, ssn text, status text, score int)",
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let lines = dir.path().join("events.jsonl");
    let text = format!(
        "{}\n[[sink]]\nname = \"audit\"\ntype = \"file\"\npath = {:?}\n{EVENT_TRANSFORMS}",
        harness::config_toml(&pg, &["public.customers"], ""),
        lines.display().to_string(),
    );
    let (pipeline, handle) = start(&pg, &text).await;
    let client = pg.client(DEFAULT_DATABASE).await.unwrap();
    client
        .batch_execute(
            "INSERT INTO customers VALUES (1, 'ann@example.com', '111-11', 'active', 5),
                                          (2, 'bob@example.com', '222-22', 'inactive', 6);
             UPDATE customers SET status = 'active' WHERE id = 2;
             DELETE FROM customers WHERE id = 1;",
        )
        .await
        .unwrap();
    let events = harness::wait_events(&handle, 3).await;
    let summary: Vec<(Op, Option<i64>)> =
        events.iter().map(|e| (e.op, harness::id_of(e))).collect();
    assert_eq!(
        summary,
        [
            (Op::Create, Some(1)),
            (Op::Update, Some(2)),
            (Op::Delete, Some(1))
        ],
        "bob's inactive insert was filtered out"
    );
    let shape = events[0].table.as_ref().unwrap();
    let names: Vec<&str> = shape.columns.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["id", "email", "status", "score"]);
    let after = events[0].after.as_ref().unwrap();
    assert_eq!(
        after[1],
        Value::Text(sha256_hex("pepperann@example.com")),
        "the email is the salted hash"
    );
    assert_eq!(
        events[1].after.as_ref().unwrap()[1],
        Value::Text(sha256_hex("pepperbob@example.com"))
    );

    // A transaction the filter drops entirely is still confirmed.
    client
        .batch_execute("INSERT INTO customers VALUES (3, 'cy@example.com', '333', 'inactive', 1)")
        .await
        .unwrap();
    let end = support::current_wal_lsn(&client).await;
    harness::wait_confirmed(&pipeline, end).await;
    assert_eq!(
        handle.events().len(),
        3,
        "the inactive insert never arrived"
    );
    pipeline.shutdown().await.unwrap();

    // The file sink wrote the same transformed events.
    let written = std::fs::read_to_string(&lines).unwrap();
    let written: Vec<Json> = written
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(written.len(), 3, "{written:#?}");
    let first = &written[0]["after"];
    assert_eq!(first["email"], sha256_hex("pepperann@example.com"));
    assert!(first.get("ssn").is_none(), "{first}");
    assert!(!written.iter().any(|w| w.to_string().contains("111-11")));
}

#[tokio::test]
async fn unwrapped_rows_and_outbox_events_decode_with_confluents_deserializer() {
    let pg = support::start_postgres_with(
        "CREATE TABLE orders (id int PRIMARY KEY, amount int NOT NULL, note text);
         CREATE TABLE outbox (id uuid PRIMARY KEY, aggregatetype text NOT NULL,
                              aggregateid text NOT NULL, type text NOT NULL, payload jsonb)",
    )
    .await;
    let text = format!(
        "{}\n[registry]\nlisten = \"127.0.0.1:0\"\n{}",
        harness::config_toml(&pg, &["public.orders", "public.outbox"], ""),
        r#"
[[transforms]]
type = "outbox"
table = "public.outbox"

[[transforms]]
type = "unwrap"
delete_handling_mode = "rewrite"
add_fields = ["op", "table", "lsn", "source.ts_ms"]
"#,
    );
    let (pipeline, handle) = start(&pg, &text).await;
    let url = registry_url(&pipeline);
    let client = pg.client(DEFAULT_DATABASE).await.unwrap();
    client
        .batch_execute(
            "INSERT INTO orders VALUES (1, 10, 'first');
             UPDATE orders SET amount = 11 WHERE id = 1;
             BEGIN;
             DELETE FROM orders WHERE id = 1;
             INSERT INTO outbox VALUES ('5f0c6a52-8d0e-4d3a-9a47-1a2b3c4d5e6f', 'order', '1',
                                        'OrderCancelled', '{\"total\": 11}');
             DELETE FROM outbox;
             COMMIT;",
        )
        .await
        .unwrap();
    harness::wait_events(&handle, 5).await;
    let records = handle.records();
    let topics: Vec<&str> = records.iter().map(|r| &*r.topic).collect();
    assert_eq!(
        topics,
        [
            "test.public.orders",
            "test.public.orders",
            "test.public.orders",
            "outbox.event.order"
        ],
        "the outbox row's delete is ignored"
    );
    let decoded = decode(&url, &records).await;
    pipeline.shutdown().await.unwrap();

    let insert = &decoded[0]["value"];
    assert_eq!(insert["id"], 1);
    assert_eq!(insert["amount"], 10);
    assert_eq!(insert["note"], "first");
    assert_eq!(insert["__op"], "c");
    assert_eq!(insert["__table"], "orders");
    assert_eq!(insert["__deleted"], "false");
    assert!(insert["__lsn"].as_i64().is_some_and(|lsn| lsn > 0));
    assert!(insert["__source_ts_ms"]
        .as_i64()
        .is_some_and(|ts| ts > 1_600_000_000_000));
    assert!(insert.get("before").is_none(), "no envelope: {insert}");
    assert_eq!(decoded[0]["key"]["id"], 1);
    assert_eq!(decoded[1]["value"]["amount"], 11);
    assert_eq!(decoded[1]["value"]["__op"], "u");
    let delete = &decoded[2]["value"];
    assert_eq!(delete["id"], 1);
    assert_eq!(delete["__op"], "d");
    assert_eq!(delete["__deleted"], "true");
    assert!(
        records[2].suppress_tombstone,
        "drop_tombstones defaults to true"
    );

    let event = &decoded[3];
    assert_eq!(event["key"], "1", "keyed by the aggregate id");
    let payload: Json = serde_json::from_str(event["value"].as_str().unwrap()).unwrap();
    assert_eq!(payload, serde_json::json!({"total": 11}));
}

/// Through a real Kafka-protocol broker: an unwrapped delete is rewritten with no tombstone
/// after it (`drop_tombstones`), and the outbox row arrives on its routed topic, keyed by its
/// aggregate id; read back by Confluent's consumer.
#[cfg(feature = "sink-kafka")]
#[tokio::test]
async fn through_kafka_unwrapped_deletes_have_no_tombstone_and_outbox_events_reach_their_topic() {
    use crate::support::kafka::ThrowawayKafka;

    let kafka = ThrowawayKafka::start().await;
    let pg = support::start_postgres_with(
        "CREATE TABLE orders (id int PRIMARY KEY, amount int NOT NULL);
         CREATE TABLE outbox (id uuid PRIMARY KEY, aggregatetype text NOT NULL,
                              aggregateid text NOT NULL, payload jsonb)",
    )
    .await;
    let text = format!(
        "{}\n[[sink]]\nname = \"kafka\"\ntype = \"kafka\"\nbrokers = \"{}\"\nlinger_ms = 1\n\n\
         [registry]\nlisten = \"127.0.0.1:0\"\n\n[[transforms]]\ntype = \"outbox\"\n\
         table = \"public.outbox\"\n\n[[transforms]]\ntype = \"unwrap\"\n\
         delete_handling_mode = \"rewrite\"\n",
        harness::config_toml(&pg, &["public.orders", "public.outbox"], ""),
        kafka.bootstrap(),
    );
    let (pipeline, handle) = start(&pg, &text).await;
    let registry = registry_url(&pipeline);
    let client = pg.client(DEFAULT_DATABASE).await.unwrap();
    client
        .batch_execute(
            "INSERT INTO orders VALUES (1, 10);
             DELETE FROM orders WHERE id = 1;
             INSERT INTO outbox VALUES (gen_random_uuid(), 'order', '1', '{\"total\": 10}');",
        )
        .await
        .unwrap();
    harness::wait_events(&handle, 3).await;
    // The consumer drains for a while after the third record: a tombstone would show up.
    let records = kafka
        .read_records(&registry, 3, &["test.public.orders", "outbox.event.order"])
        .await;
    // The usual outbox clean-up, in a transaction of its own, leaves a batch without records:
    // the sink takes it and the position is confirmed.
    client.batch_execute("DELETE FROM outbox").await.unwrap();
    let end = support::current_wal_lsn(&client).await;
    harness::wait_confirmed(&pipeline, end).await;
    pipeline.shutdown().await.unwrap();
    assert_eq!(
        records.len(),
        3,
        "{records:#?}\nbroker log:\n{}",
        kafka.log()
    );
    let orders: Vec<&Json> = records
        .iter()
        .filter(|r| r["topic"] == "test.public.orders")
        .collect();
    assert_eq!(orders.len(), 2, "{records:#?}");
    assert_eq!(orders[0]["value"]["__deleted"], "false");
    assert_eq!(orders[1]["value"]["__deleted"], "true");
    assert_eq!(orders[1]["key"]["id"], 1);
    let event = records
        .iter()
        .find(|r| r["topic"] == "outbox.event.order")
        .expect("the outbox event");
    assert_eq!(event["key"], "1");
    let payload: Json = serde_json::from_str(event["value"].as_str().unwrap()).unwrap();
    assert_eq!(payload, serde_json::json!({"total": 10}));
}
