//! The stream's routing and metadata records through the kafka sink, against a real
//! Kafka-protocol broker (tansu) and a real PostgreSQL, read back by a third-party consumer
//! (Confluent's Python client with the registry's Avro deserializer): routed and merged topics
//! with keys kept apart, transaction BEGIN/END records with their counts (also for a
//! transaction split over batches) and the `transaction` block of every envelope, heartbeats on
//! an idle capture, and logical decoding messages on their topic.

use std::collections::BTreeSet;

use serde_json::Value as Json;
use sluice::runtime::RunningPipeline;
use sluice_api::{Op, RecordOrigin};
use sluice_sink_memory::MemorySinkHandle;

use crate::harness;
use crate::support::kafka::ThrowawayKafka;
use crate::support::{self, ThrowawayPostgres};

/// A streaming capture into a fresh Kafka-protocol broker: a pipeline named `test` capturing
/// `tables` (created by `schema`) into Avro envelopes, with the embedded registry on a free port
/// and a kafka sink; `pipeline`, `source` and `envelope` lines are added to their tables.
struct Capture {
    pipeline: RunningPipeline,
    handle: MemorySinkHandle,
    registry: String,
    pg: ThrowawayPostgres,
    kafka: ThrowawayKafka,
}

impl Capture {
    async fn start(
        schema: &str,
        tables: &[&str],
        pipeline: &str,
        source: &str,
        envelope: &str,
    ) -> Capture {
        let kafka = ThrowawayKafka::start().await;
        let pg = support::start_postgres_with(schema).await;
        let base = harness::config_toml(&pg, tables, source).replace(
            "max_batch_wait_ms = 10",
            &format!("max_batch_wait_ms = 10\n{pipeline}"),
        );
        let text = format!(
            "{base}\n[[sink]]\nname = \"kafka\"\ntype = \"kafka\"\nbrokers = \"{}\"\n\
             linger_ms = 1\n\n[registry]\nlisten = \"127.0.0.1:0\"\n\n[envelope]\n{envelope}\n",
            kafka.bootstrap(),
        );
        let config = sluice::config::Config::from_toml_str(&text, std::iter::empty())
            .unwrap_or_else(|p| panic!("{p}"));
        let (pipeline, handle) = harness::start(config).await;
        harness::wait_streaming(&pg).await;
        let registry = pipeline.embedded_registry_url().unwrap().to_string();
        Capture {
            pipeline,
            handle,
            registry,
            pg,
            kafka,
        }
    }

    /// Everything on `topics`, read by Confluent's consumer: exactly `expected` records.
    async fn consume(&self, expected: usize, topics: &[&str]) -> Vec<Json> {
        let records = self.consume_at_least(expected, topics).await;
        assert_eq!(
            records.len(),
            expected,
            "exactly {expected} records on {topics:?}: {records:#?}"
        );
        records
    }

    /// At least `expected` records of `topics`, and whatever else arrives while the consumer
    /// drains (topics that never go quiet, such as heartbeats).
    async fn consume_at_least(&self, expected: usize, topics: &[&str]) -> Vec<Json> {
        let records = self
            .kafka
            .read_records(&self.registry, expected, topics)
            .await;
        assert!(
            records.len() >= expected,
            "records on {topics:?}: {records:#?}\nbroker log:\n{}",
            self.kafka.log()
        );
        records
    }
}

/// The one captured table of most tests here.
const ORDERS: &str = "CREATE TABLE orders (id int PRIMARY KEY, note text)";

/// The registry's subjects, as Confluent's Python `SchemaRegistryClient` lists them.
async fn subjects(registry: &str) -> Vec<String> {
    let output = tokio::process::Command::new("python3")
        .args([
            "-c",
            "import json, sys\n\
             from confluent_kafka.schema_registry import SchemaRegistryClient\n\
             print(json.dumps(SchemaRegistryClient({'url': sys.argv[1]}).get_subjects()))",
            registry,
        ])
        .output()
        .await
        .expect("run python3");
    assert!(
        output.status.success(),
        "listing subjects: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("a json list of subjects")
}

fn on<'r>(records: &'r [Json], topic: &str) -> Vec<&'r Json> {
    records.iter().filter(|r| r["topic"] == topic).collect()
}

/// The `(status, id)` of each transaction record, BEGIN before END per id.
fn with_status<'r>(records: &[&'r Json], status: &str) -> Vec<&'r Json> {
    records
        .iter()
        .copied()
        .filter(|r| r["value"]["status"] == status)
        .collect()
}

/// `data_collections` of an END record as `(name, count)`.
fn collections(end: &Json) -> Vec<(String, i64)> {
    end["value"]["data_collections"]
        .as_array()
        .expect("END lists its data collections")
        .iter()
        .map(|c| {
            (
                c["data_collection"].as_str().unwrap().to_owned(),
                c["event_count"].as_i64().unwrap(),
            )
        })
        .collect()
}

#[tokio::test]
async fn routed_tables_merge_into_one_topic_with_keys_naming_their_physical_table() {
    let envelope = r#"
[[envelope.route]]
topic_regex = 'test\.public\.orders_\d+'
topic_replacement = "test.all_orders"
[[envelope.route]]
topic_regex = 'test\.public\.(items)'
topic_replacement = "test.catalog_${1}"
key_enforce_uniqueness = false
"#;
    let capture = Capture::start(
        "CREATE TABLE orders_1 (id int PRIMARY KEY, note text);
         CREATE TABLE orders_2 (id int PRIMARY KEY, note text);
         CREATE TABLE items (id int PRIMARY KEY, name text)",
        &["public.orders_1", "public.orders_2", "public.items"],
        "",
        "",
        envelope,
    )
    .await;
    for sql in [
        "INSERT INTO orders_1 VALUES (1, 'first shard')",
        "INSERT INTO orders_2 VALUES (1, 'second shard')",
        "INSERT INTO items VALUES (1, 'widget')",
    ] {
        capture
            .pg
            .execute(sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    let records = capture
        .consume(3, &["test.all_orders", "test.catalog_items"])
        .await;
    let orders = on(&records, "test.all_orders");
    assert_eq!(
        orders.len(),
        2,
        "both shards on the merged topic: {records:#?}"
    );
    let keys: BTreeSet<(i64, String)> = orders
        .iter()
        .map(|r| {
            (
                r["key"]["id"].as_i64().expect("the row's key"),
                r["key"]["__dbz__physicalTableIdentifier"]
                    .as_str()
                    .expect("the physical table in the key")
                    .to_owned(),
            )
        })
        .collect();
    assert_eq!(
        keys,
        BTreeSet::from([
            (1, "test.public.orders_1".to_owned()),
            (1, "test.public.orders_2".to_owned())
        ]),
        "equal ids of two tables stay two keys"
    );
    for record in &orders {
        let table = record["value"]["source"]["table"].as_str().unwrap();
        let note = record["value"]["after"]["note"].as_str().unwrap();
        let expected = if table == "orders_1" {
            "first shard"
        } else {
            "second shard"
        };
        assert_eq!(note, expected, "the source block names the physical table");
    }
    let items = on(&records, "test.catalog_items");
    assert_eq!(items.len(), 1);
    assert_eq!(
        items[0]["key"],
        serde_json::json!({"id": 1}),
        "no identifier when off"
    );
    assert_eq!(items[0]["value"]["after"]["name"], "widget");

    // Schemas live under the routed topics' subjects, not the tables' own.
    let subjects = subjects(&capture.registry).await;
    for subject in [
        "test.all_orders-key",
        "test.all_orders-value",
        "test.catalog_items-value",
    ] {
        assert!(
            subjects.iter().any(|s| s == subject),
            "{subject} in {subjects:?}"
        );
    }
    assert!(
        !subjects.iter().any(|s| s.starts_with("test.public.")),
        "no subject under an unrouted topic: {subjects:?}"
    );
    capture.pipeline.shutdown().await.expect("orderly stop");
}

#[tokio::test]
async fn a_multi_table_transaction_is_framed_by_begin_and_end_with_counts_per_table() {
    let capture = Capture::start(
        "CREATE TABLE orders (id int PRIMARY KEY, note text);
         CREATE TABLE items (id int PRIMARY KEY, name text)",
        &["public.orders", "public.items"],
        "",
        "",
        "provide_transaction_metadata = true",
    )
    .await;
    capture
        .pg
        .execute(
            "BEGIN; INSERT INTO orders VALUES (1, 'a'); INSERT INTO items VALUES (1, 'x'); \
         INSERT INTO orders VALUES (2, 'b'); COMMIT",
        )
        .await
        .unwrap();
    let events = harness::wait_events(&capture.handle, 3).await;
    let xid = events[0]
        .position
        .xid
        .expect("a streamed change has its xid");

    let topics = [
        "test.transaction",
        "test.public.orders",
        "test.public.items",
    ];
    let records = capture.consume(5, &topics).await;
    let tx = on(&records, "test.transaction");
    let (begins, ends) = (with_status(&tx, "BEGIN"), with_status(&tx, "END"));
    assert_eq!((begins.len(), ends.len()), (1, 1), "{tx:#?}");
    let id = begins[0]["value"]["id"].as_str().unwrap().to_owned();
    let (id_xid, id_lsn) = id.split_once(':').expect("id is txid:lsn");
    assert_eq!(id_xid, xid.to_string());
    assert_eq!(id_lsn, events[0].position.commit_lsn.as_u64().to_string());
    assert_eq!(begins[0]["key"]["id"], id.as_str());
    assert!(begins[0]["value"]["event_count"].is_null());
    assert!(begins[0]["value"]["data_collections"].is_null());
    assert_eq!(ends[0]["value"]["id"], id.as_str());
    assert_eq!(ends[0]["value"]["event_count"], 3);
    assert_eq!(
        collections(ends[0]),
        [
            ("public.orders".to_owned(), 2),
            ("public.items".to_owned(), 1)
        ]
    );
    let commit_ms = events[0].position.commit_time_us.div_euclid(1000);
    assert_eq!(ends[0]["value"]["ts_ms"], commit_ms);
    assert_eq!(ends[0]["headers"]["sluice.txid"], xid.to_string().as_str());

    // Every envelope's transaction block: the id, its place overall and within its table.
    let mut places: Vec<(String, i64, i64, i64)> = records
        .iter()
        .filter(|r| r["topic"] != "test.transaction")
        .map(|r| {
            let block = &r["value"]["transaction"];
            assert_eq!(block["id"], id.as_str());
            (
                r["value"]["source"]["table"].as_str().unwrap().to_owned(),
                r["key"]["id"].as_i64().unwrap(),
                block["total_order"].as_i64().unwrap(),
                block["data_collection_order"].as_i64().unwrap(),
            )
        })
        .collect();
    places.sort_by_key(|p| p.2);
    assert_eq!(
        places,
        [
            ("orders".to_owned(), 1, 1, 1),
            ("items".to_owned(), 1, 2, 1),
            ("orders".to_owned(), 2, 3, 2)
        ]
    );
    // In the stream itself: BEGIN, the three rows, END.
    let origins: Vec<&str> = capture
        .handle
        .records()
        .iter()
        .map(|r| match r.origin {
            RecordOrigin::Transaction { .. } => "tx",
            RecordOrigin::Event(_) => "row",
            RecordOrigin::Heartbeat => "heartbeat",
        })
        .collect();
    assert_eq!(origins, ["tx", "row", "row", "row", "tx"]);
    capture.pipeline.shutdown().await.expect("orderly stop");
}

#[tokio::test]
async fn a_transaction_split_over_batches_has_one_begin_and_one_end_counting_all_of_it() {
    let capture = Capture::start(
        ORDERS,
        &["public.orders"],
        "max_batch_events = 2",
        "",
        "provide_transaction_metadata = true",
    )
    .await;
    let (pg, handle) = (&capture.pg, &capture.handle);
    pg.execute("INSERT INTO orders SELECT g, 'bulk' FROM generate_series(1, 5) g")
        .await
        .unwrap();
    pg.execute("INSERT INTO orders VALUES (6, 'alone')")
        .await
        .unwrap();
    harness::wait_events(handle, 6).await;
    assert!(
        handle.batch_count() >= 4,
        "the five-row transaction was split over batches of two: {} batches",
        handle.batch_count()
    );

    let records = capture.consume(4, &["test.transaction"]).await;
    let ends = with_status(&on(&records, "test.transaction"), "END");
    let counts: BTreeSet<i64> = ends
        .iter()
        .map(|e| e["value"]["event_count"].as_i64().unwrap())
        .collect();
    assert_eq!(ends.len(), 2, "{records:#?}");
    assert_eq!(counts, BTreeSet::from([5, 1]));
    let bulk = ends
        .iter()
        .find(|e| e["value"]["event_count"] == 5)
        .unwrap();
    assert_eq!(collections(bulk), [("public.orders".to_owned(), 5)]);

    // The five-row transaction spanned three batches of at most two events: its rows are
    // numbered 1..=5 across them, and one END follows the last.
    let rows = capture.consume(6, &["test.public.orders"]).await;
    let mut orders: Vec<i64> = rows
        .iter()
        .filter(|r| r["value"]["after"]["note"] == "bulk")
        .map(|r| r["value"]["transaction"]["total_order"].as_i64().unwrap())
        .collect();
    orders.sort_unstable();
    assert_eq!(orders, [1, 2, 3, 4, 5]);
    capture.pipeline.shutdown().await.expect("orderly stop");
}

#[tokio::test]
async fn heartbeat_records_appear_on_an_idle_capture_at_most_once_per_interval() {
    let capture = Capture::start(
        ORDERS,
        &["public.orders"],
        "",
        "heartbeat_interval_ms = 300",
        "",
    )
    .await;

    // Nothing is written to the captured table.
    let records = capture
        .consume_at_least(3, &["__debezium-heartbeat.test"])
        .await;
    let mut stamps = Vec::new();
    for record in &records {
        assert_eq!(record["key"]["serverName"], "test");
        stamps.push(record["value"]["ts_ms"].as_i64().expect("a timestamp"));
    }
    stamps.sort_unstable();
    for pair in stamps.windows(2) {
        // Stamps come from the wall clock, the pace from a monotonic one: allow a little skew.
        assert!(
            pair[1] - pair[0] >= 290,
            "at most one per interval: {stamps:?}"
        );
    }
    assert!(
        capture.handle.events().is_empty(),
        "no change events on an idle capture"
    );
    capture.pipeline.shutdown().await.expect("orderly stop");
}

#[tokio::test]
async fn logical_decoding_messages_arrive_on_the_message_topic() {
    let capture = Capture::start(
        ORDERS,
        &["public.orders"],
        "",
        "heartbeat_interval_ms = 100",
        "logical_decoding_messages = true\nprovide_transaction_metadata = true",
    )
    .await;
    let (pg, handle) = (&capture.pg, &capture.handle);
    pg.execute("SELECT pg_logical_emit_message(false, 'audit', 'outside')")
        .await
        .unwrap();
    pg.execute(
        "BEGIN; INSERT INTO orders VALUES (1, 'a'); \
         SELECT pg_logical_emit_message(true, 'audit', 'inside'); COMMIT",
    )
    .await
    .unwrap();
    let events = harness::wait_events(handle, 3).await;
    assert!(
        events
            .iter()
            .filter_map(|e| e.message.as_ref())
            .all(|m| m.prefix == "audit"),
        "the heartbeat's own messages stay swallowed"
    );

    let records = capture.consume(2, &["test.message"]).await;
    let by_content = |content: &str| {
        records
            .iter()
            .find(|r| r["value"]["message"]["content"] == format!("b'{content}'"))
            .unwrap_or_else(|| panic!("message {content:?} in {records:#?}"))
    };
    let outside = by_content("outside");
    let inside = by_content("inside");
    for record in [outside, inside] {
        assert_eq!(record["key"]["prefix"], "audit");
        assert_eq!(record["value"]["op"], "m");
        assert_eq!(record["value"]["message"]["prefix"], "audit");
        assert_eq!(record["value"]["source"]["db"], support::DEFAULT_DATABASE);
    }
    assert!(
        outside["value"]["transaction"].is_null(),
        "not transactional"
    );
    assert!(outside["value"]["source"]["txId"].is_null());
    let message_event = events
        .iter()
        .find(|e| e.op == Op::Message && e.message.as_ref().is_some_and(|m| m.transactional))
        .expect("the transactional message event");
    let xid = message_event.position.xid.expect("in a transaction");
    assert_eq!(inside["value"]["source"]["txId"], i64::from(xid));
    let block = &inside["value"]["transaction"];
    assert_eq!(block["total_order"], 2, "after the insert");
    assert!(block["id"]
        .as_str()
        .unwrap()
        .starts_with(&format!("{xid}:")));

    // The transactional message counts in its transaction, under Debezium's collection name.
    let tx = capture.consume(2, &["test.transaction"]).await;
    let end = with_status(&on(&tx, "test.transaction"), "END");
    assert_eq!(
        collections(end[0]),
        [
            ("public.orders".to_owned(), 1),
            ("LOGICAL_DECODING_MESSAGE".to_owned(), 1)
        ]
    );
    capture.pipeline.shutdown().await.expect("orderly stop");
}
