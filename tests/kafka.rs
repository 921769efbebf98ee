//! The kafka sink against a real Kafka-protocol broker (tansu) and a real PostgreSQL: changes
//! read back by a third-party consumer (Confluent's Python client with the registry's Avro
//! deserializer) arrive once each, in order per key, with their keys, headers and tombstones;
//! a broker outage holds the checkpoint and nothing made during it is lost once the broker is
//! back; a missing topic under `topic_creation = "require"` is a fatal error naming it.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value as Json;
use sluice_api::{Batch, ChangeEvent, EncodedRecord, ErrorClass, Op, Sink};
use sluice_sink_kafka::{KafkaSink, RawKafkaSinkConfig, TopicCreation};

use crate::harness;
use crate::support::kafka::ThrowawayKafka;
use crate::support::{self, ThrowawayPostgres};

const TOPIC: &str = "test.public.orders";

/// A pipeline capturing `public.orders` into Avro envelopes (embedded registry on a free port)
/// and a kafka sink with three partitions per topic, so keys spread over partitions.
fn kafka_config(
    pg: &ThrowawayPostgres,
    kafka: &ThrowawayKafka,
    extra_sink: &str,
) -> sluice::config::Config {
    let text = format!(
        "{}\n[[sink]]\nname = \"kafka\"\ntype = \"kafka\"\nbrokers = \"{}\"\npartitions = 3\n\
         linger_ms = 1\n{extra_sink}\n\n[registry]\nlisten = \"127.0.0.1:0\"\n",
        harness::config_toml(pg, &["public.orders"], ""),
        kafka.bootstrap(),
    );
    sluice::config::Config::from_toml_str(&text, std::iter::empty())
        .unwrap_or_else(|p| panic!("{p}"))
}

/// Everything on the test topic, read by Confluent's consumer until `expected` records arrived.
async fn consume(kafka: &ThrowawayKafka, registry: &str, expected: usize) -> Vec<Json> {
    kafka.read_records(registry, expected, &[TOPIC]).await
}

/// What a record should look like, derived from the event it encodes.
fn expected_kind(event: &ChangeEvent) -> &'static str {
    event.op.as_str()
}

#[tokio::test]
async fn every_change_reaches_kafka_once_keyed_in_order_per_key_with_headers_and_tombstones() {
    let kafka = ThrowawayKafka::start().await;
    let pg =
        support::start_postgres_with("CREATE TABLE orders (id int PRIMARY KEY, note text)").await;
    let (pipeline, handle) = harness::start(kafka_config(&pg, &kafka, "")).await;
    harness::wait_streaming(&pg).await;
    let registry = pipeline
        .embedded_registry_url()
        .expect("the embedded registry runs")
        .to_string();

    for sql in [
        "INSERT INTO orders SELECT g, 'new ' || g FROM generate_series(1, 6) g",
        "UPDATE orders SET note = 'first' WHERE id = 1",
        "UPDATE orders SET note = 'second' WHERE id = 1",
        "BEGIN; UPDATE orders SET note = 'moved' WHERE id = 2; DELETE FROM orders WHERE id = 3; COMMIT",
        "DELETE FROM orders WHERE id = 5",
        "INSERT INTO orders VALUES (3, 'back again')",
        "UPDATE orders SET note = 'last' WHERE id = 6",
    ] {
        pg.execute(sql).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
    let events = harness::wait_events(&handle, 13).await;
    let deletes = harness::ops(&events, Op::Delete).len();
    assert_eq!(deletes, 2);

    // Per key, in commit order: what the consumer must see (a tombstone after each delete).
    let mut want: BTreeMap<i64, Vec<(String, &ChangeEvent)>> = BTreeMap::new();
    for event in &events {
        let id = harness::id_of(event).expect("every event has an id");
        let entry = want.entry(id).or_default();
        entry.push((expected_kind(event).to_owned(), event));
        if event.op == Op::Delete {
            entry.push(("tombstone".to_owned(), event));
        }
    }

    let records = consume(&kafka, &registry, events.len() + deletes).await;
    assert_eq!(
        records.len(),
        events.len() + deletes,
        "every change once, plus a tombstone per delete: {records:#?}\nbroker log:\n{}",
        kafka.log()
    );

    let mut got: BTreeMap<i64, Vec<&Json>> = BTreeMap::new();
    for record in &records {
        assert_eq!(record["topic"], TOPIC);
        let id = record["key"]["id"]
            .as_i64()
            .expect("an Avro key with the id");
        got.entry(id).or_default().push(record);
    }
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        want.keys().collect::<Vec<_>>()
    );
    for (id, expected) in &want {
        let received = &got[id];
        let kinds: Vec<String> = received
            .iter()
            .map(|r| match r["value"]["op"].as_str() {
                Some(op) => op.to_owned(),
                None => "tombstone".to_owned(),
            })
            .collect();
        let wanted: Vec<&str> = expected.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(kinds, wanted, "key {id}: order per key");
        let partitions: Vec<&Json> = received.iter().map(|r| &r["partition"]).collect();
        assert!(
            partitions.windows(2).all(|w| w[0] == w[1]),
            "key {id}: one partition per key: {partitions:?}"
        );
        for (record, (kind, event)) in received.iter().zip(expected) {
            let headers = &record["headers"];
            assert_eq!(headers["sluice.table"], "public.orders");
            assert_eq!(
                headers["sluice.lsn"],
                event.position.lsn.to_string().as_str(),
                "key {id} {kind}"
            );
            let xid = event.position.xid.expect("streamed changes carry a txid");
            assert_eq!(headers["sluice.txid"], xid.to_string().as_str());
            if kind == "tombstone" {
                assert!(record["value"].is_null());
            } else {
                assert_eq!(
                    record["value"]["source"]["txId"].as_i64(),
                    Some(i64::from(xid))
                );
            }
        }
    }
    assert_eq!(got[&1].last().unwrap()["value"]["after"]["note"], "second");
    assert_eq!(
        got[&3].last().unwrap()["value"]["after"]["note"],
        "back again"
    );
    assert!(
        got[&5].last().unwrap()["value"].is_null(),
        "deleted key ends in a tombstone"
    );
    pipeline.shutdown().await.expect("orderly stop");
}

#[tokio::test]
async fn a_broker_outage_holds_the_checkpoint_and_delivery_resumes_with_nothing_lost() {
    let mut kafka = ThrowawayKafka::start().await;
    let pg =
        support::start_postgres_with("CREATE TABLE orders (id int PRIMARY KEY, note text)").await;
    let (pipeline, handle) =
        harness::start(kafka_config(&pg, &kafka, "delivery_timeout_ms = 1000")).await;
    harness::wait_streaming(&pg).await;
    let registry = pipeline
        .embedded_registry_url()
        .expect("the embedded registry runs")
        .to_string();
    let client = pg.client(support::DEFAULT_DATABASE).await.unwrap();
    pg.execute("INSERT INTO orders VALUES (1, 'before')")
        .await
        .unwrap();
    let before_outage = support::current_wal_lsn(&client).await;
    harness::wait_confirmed(&pipeline, before_outage).await;

    kafka.stop();
    for id in 2..=6 {
        pg.execute(&format!("INSERT INTO orders VALUES ({id}, 'during')"))
            .await
            .unwrap();
    }
    pg.execute("UPDATE orders SET note = 'during, again' WHERE id = 2")
        .await
        .unwrap();
    let after_outage = support::current_wal_lsn(&client).await;
    // The memory sink has every change: the source is not what holds the checkpoint back.
    harness::wait_events(&handle, 7).await;
    assert!(
        pipeline.confirmed_lsn() < after_outage,
        "nothing is confirmed past the gap while the broker is down"
    );

    // The restarted broker's memory storage is empty: the changes made during the outage are
    // exactly what must arrive once it is back. A broker that comes back has its topics, so the
    // topic is made again as it was (in-memory storage is tansu's only local one).
    kafka.restart().await;
    kafka.create_topic(TOPIC, 3);
    let mut confirmed = pipeline.confirmed_watch();
    let resumed = tokio::time::timeout(
        Duration::from_secs(90),
        confirmed.wait_for(|c| *c >= after_outage),
    )
    .await;
    assert!(
        matches!(resumed, Ok(Ok(_))),
        "delivery did not resume: confirmed {} of {after_outage}\nbroker log:\n{}",
        pipeline.confirmed_lsn(),
        kafka.log()
    );
    let records = consume(&kafka, &registry, 6).await;
    let ids: Vec<(i64, String)> = records
        .iter()
        .map(|r| {
            (
                r["key"]["id"].as_i64().expect("keyed"),
                r["value"]["after"]["note"]
                    .as_str()
                    .unwrap_or("")
                    .to_owned(),
            )
        })
        .collect();
    for id in 2..=6 {
        assert!(
            ids.iter().any(|(i, note)| *i == id && note == "during"),
            "insert {id} made during the outage arrived: {ids:?}"
        );
    }
    let two: Vec<&str> = ids
        .iter()
        .filter(|(i, _)| *i == 2)
        .map(|(_, n)| n.as_str())
        .collect();
    assert_eq!(two.last(), Some(&"during, again"), "order per key: {two:?}");
    pipeline.shutdown().await.expect("orderly stop");
}

#[tokio::test]
async fn a_missing_topic_under_require_is_a_fatal_error_naming_it() {
    let kafka = ThrowawayKafka::start().await;
    let config = RawKafkaSinkConfig {
        brokers: Some(kafka.bootstrap()),
        topic_creation: Some(TopicCreation::Require),
        ..RawKafkaSinkConfig::default()
    }
    .validate("sink[0]")
    .expect("valid");
    let mut sink = KafkaSink::new(&config, "test", "kafka").expect("clients");
    let batch = Batch {
        sequence: 1,
        events: vec![ChangeEvent {
            op: Op::Message,
            table: None,
            before: None,
            before_is_key_only: false,
            after: None,
            message: None,
            position: Default::default(),
        }],
        checkpoint: None,
        records: vec![EncodedRecord {
            origin: sluice_api::RecordOrigin::Event(0),
            topic: Arc::from("nobody.made.this"),
            key: Some(vec![0, 0, 0, 0, 1, 2]),
            value: Some(vec![0, 0, 0, 0, 2, 4]),
            suppress_tombstone: false,
        }],
    };
    let error = tokio::time::timeout(Duration::from_secs(60), sink.write(&batch))
        .await
        .expect("the lookup answers in time")
        .expect_err("the topic does not exist");
    assert_eq!(error.class, ErrorClass::Fatal, "{error}");
    assert!(error.message.contains("\"nobody.made.this\""), "{error}");
}
