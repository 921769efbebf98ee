//! The kafka sink's exactly-once mode against a real broker, driven batch by batch: a new sink
//! (a restart) reads back the committed position from the offsets topic and skips what it
//! covers, including the part of a PostgreSQL transaction already committed mid-way; a second
//! sink with the same transactional id fences the first, whose next write is a fatal error
//! saying so; a broker that fails while a Kafka transaction spans batches loses nothing once
//! it is back. Records are read back by Confluent's consumer with `read_committed`.

use std::sync::Arc;
use std::time::Duration;

use sluice_api::{Batch, ChangeEvent, EncodedRecord, ErrorClass, Lsn, Op, Sink, SourcePosition};
use sluice_sink_kafka::{decode_offsets_value, CommittedPosition, KafkaSink, RawKafkaSinkConfig};

use crate::support::kafka::ThrowawayKafka;

const TOPIC: &str = "eos.public.items";

fn config(kafka: &ThrowawayKafka, extra: &str) -> sluice_sink_kafka::KafkaSinkConfig {
    let text = format!(
        "brokers = \"{}\"\nlinger_ms = 1\nexactly_once = true\n{extra}",
        kafka.bootstrap()
    );
    let raw: RawKafkaSinkConfig =
        sluice_api::from_toml(toml::from_str(&text).expect("toml"), "sink[0]").expect("raw");
    raw.validate("sink[0]").expect("valid")
}

/// One insert event of transaction `commit_lsn`, at `lsn`, with its record: key and value
/// are plain text (the sink does not look inside records).
fn event(commit_lsn: u64, lsn: u64) -> ChangeEvent {
    ChangeEvent {
        op: Op::Create,
        table: None,
        before: None,
        before_is_key_only: false,
        after: None,
        message: None,
        position: SourcePosition {
            lsn: Lsn(lsn),
            commit_lsn: Lsn(commit_lsn),
            xid: Some(7),
            commit_time_us: 0,
            snapshot: sluice_api::SnapshotFlag::False,
        },
    }
}

/// A batch of `events` (commit, lsn) with `checkpoint`; each record's value is `c<commit>-l<lsn>`.
fn batch(sequence: u64, events: &[(u64, u64)], checkpoint: Option<u64>) -> Batch {
    Batch {
        sequence,
        events: events.iter().map(|(c, l)| event(*c, *l)).collect(),
        checkpoint: checkpoint.map(Lsn),
        records: events
            .iter()
            .enumerate()
            .map(|(i, (c, l))| EncodedRecord {
                origin: sluice_api::RecordOrigin::Event(i),
                topic: Arc::from(TOPIC),
                key: Some(format!("k{}", l % 3).into_bytes()),
                value: Some(format!("c{c}-l{l}").into_bytes()),
                suppress_tombstone: false,
            })
            .collect(),
    }
}

/// Every value on `topic` read with `read_committed`, in offset order per partition, waiting
/// for `expected` values and then two quiet seconds for extra ones.
async fn committed_values(kafka: &ThrowawayKafka, topic: &str, expected: usize) -> Vec<Vec<u8>> {
    kafka
        .read_values(topic, expected, 60)
        .await
        .into_iter()
        .map(String::into_bytes)
        .collect()
}

/// The position of the last offsets record of pipeline `eos`, once `expected` records are there.
async fn last_committed_position(kafka: &ThrowawayKafka, expected: usize) -> CommittedPosition {
    let offsets = committed_values(kafka, "__sluice_offsets.eos", expected).await;
    offsets
        .iter()
        .rev()
        .find_map(|v| decode_offsets_value(v))
        .expect("offsets records")
}

fn text(values: &[Vec<u8>]) -> Vec<String> {
    let mut out: Vec<String> = values
        .iter()
        .map(|v| String::from_utf8_lossy(v).into_owned())
        .collect();
    out.sort();
    out
}

/// Write `batch` as the core does: again after each transient error, until it is accepted
/// (within two minutes). Returns how many attempts failed.
async fn write_until_accepted(sink: &mut KafkaSink, batch: &Batch) -> usize {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    let mut failed = 0;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match tokio::time::timeout(left, sink.write(batch)).await {
            Ok(Ok(())) => return failed,
            Ok(Err(error)) => {
                assert_eq!(error.class, ErrorClass::Transient, "{error}");
                failed += 1;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(_) => panic!("batch {} not accepted in time", batch.sequence),
        }
    }
}

async fn write(sink: &mut KafkaSink, batch: &Batch) {
    tokio::time::timeout(Duration::from_secs(90), sink.write(batch))
        .await
        .expect("the write answers in time")
        .unwrap_or_else(|e| panic!("batch {}: {e}", batch.sequence));
}

#[tokio::test]
async fn a_restarted_sink_skips_what_the_offsets_topic_says_is_committed() {
    let kafka = ThrowawayKafka::start().await;
    let cfg = config(&kafka, "transaction_max_events = 3");
    // Transaction 100 (events at 10, 11) completes in batch 1, whose last event starts
    // transaction 200 (four events, 20..23), which batch 2 continues without a checkpoint:
    // five events wait in the open Kafka transaction, over the bound of 3, so it is committed
    // mid-way.
    let batches = [
        batch(1, &[(100, 10), (100, 11), (200, 20)], Some(108)),
        batch(2, &[(200, 21), (200, 22)], None),
        batch(3, &[(200, 23), (300, 30)], Some(308)),
    ];
    let mut first = KafkaSink::new(&cfg, "eos", "kafka").expect("clients");
    write(&mut first, &batches[0]).await;
    write(&mut first, &batches[1]).await;
    drop(first);

    // The source sends everything after the confirmed checkpoint (108) again: transaction 200
    // from its start, then 300.
    let mut second = KafkaSink::new(&cfg, "eos", "kafka").expect("clients");
    write(
        &mut second,
        &batch(1, &[(200, 20), (200, 21), (200, 22)], None),
    )
    .await;
    write(&mut second, &batches[2]).await;
    second.close().await.expect("close");

    let values = committed_values(&kafka, TOPIC, 7).await;
    assert_eq!(
        text(&values),
        ["c100-l10", "c100-l11", "c200-l20", "c200-l21", "c200-l22", "c200-l23", "c300-l30"],
        "each change once for a read_committed consumer\nbroker log:\n{}",
        kafka.log()
    );
    let last = last_committed_position(&kafka, 3).await;
    assert_eq!(last.checkpoint, Some(Lsn(308)));
    assert_eq!(last.last_event.lsn, Lsn(30));
}

#[tokio::test]
async fn a_second_sink_with_the_same_transactional_id_fences_the_first() {
    let kafka = ThrowawayKafka::start().await;
    let cfg = config(&kafka, "transactional_id = \"orders-cdc\"");
    let mut first = KafkaSink::new(&cfg, "eos", "kafka").expect("clients");
    write(&mut first, &batch(1, &[(100, 10)], Some(108))).await;

    let mut second = KafkaSink::new(&cfg, "eos", "kafka").expect("clients");
    write(&mut second, &batch(2, &[(200, 20)], Some(208))).await;

    let error = tokio::time::timeout(
        Duration::from_secs(90),
        first.write(&batch(3, &[(300, 30)], Some(308))),
    )
    .await
    .expect("the write answers in time")
    .expect_err("a fenced producer may not write");
    assert_eq!(error.class, ErrorClass::Fatal, "{error}");
    assert!(error.message.contains("fenced"), "{error}");
    assert!(error.message.contains("orders-cdc"), "{error}");
}

#[tokio::test]
async fn a_broker_failure_while_a_transaction_spans_batches_loses_nothing_for_read_committed_consumers(
) {
    let mut kafka = ThrowawayKafka::start().await;
    kafka.create_topic(TOPIC, 3);
    let cfg = config(&kafka, "delivery_timeout_ms = 1000");
    // Transaction 200 spans three batches: its Kafka transaction stays open over the first
    // two and is committed by the third, which completes it and transaction 300.
    let batches = [
        batch(1, &[(200, 20), (200, 21)], None),
        batch(2, &[(200, 22)], None),
        batch(3, &[(200, 23), (300, 30)], Some(308)),
    ];
    let mut sink = KafkaSink::new(&cfg, "eos", "kafka").expect("clients");
    write(&mut sink, &batches[0]).await;

    kafka.stop();
    let attempt = tokio::time::timeout(Duration::from_secs(150), sink.write(&batches[1]))
        .await
        .expect("a write to a stopped broker answers in time");
    let error = attempt.expect_err("nothing is durable while the broker is down");
    assert_eq!(error.class, ErrorClass::Transient, "{error}");

    // The broker comes back with its topics (its memory storage starts empty, so the topic is
    // made again as it was): the open transaction's records from before the failure must be
    // produced again, into a new transaction, with the rest.
    kafka.restart().await;
    kafka.create_topic(TOPIC, 3);
    write_until_accepted(&mut sink, &batches[1]).await;
    write_until_accepted(&mut sink, &batches[2]).await;
    sink.close().await.expect("close");

    let values = committed_values(&kafka, TOPIC, 5).await;
    assert_eq!(
        text(&values),
        ["c200-l20", "c200-l21", "c200-l22", "c200-l23", "c300-l30"],
        "every change once for a read_committed consumer\nbroker log:\n{}",
        kafka.log()
    );
    let last = last_committed_position(&kafka, 1).await;
    assert_eq!(last.checkpoint, Some(Lsn(308)));
    assert_eq!(last.last_event.lsn, Lsn(30));
}
