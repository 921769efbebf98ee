use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use sluice_api::{
    Batch, ChangeEvent, EncodedRecord, LogicalMessage, Op, RecordOrigin, ReplicaIdentity,
    SourcePosition, TableSchema,
};
use sluice_source_postgres::snapshot::SnapshotProgress;

use super::text::{find_sample, render};
use super::{names, EventCounter, PipelineMetrics};

fn table(relation_id: u32, name: &str) -> Arc<TableSchema> {
    Arc::new(TableSchema {
        relation_id,
        schema: "public".into(),
        name: name.into(),
        replica_identity: ReplicaIdentity::Default,
        columns: Vec::new(),
    })
}

fn event(table: &Arc<TableSchema>, op: Op) -> ChangeEvent {
    ChangeEvent {
        op,
        table: Some(table.clone()),
        before: None,
        before_is_key_only: false,
        after: None,
        message: None,
        position: SourcePosition::default(),
    }
}

fn metrics() -> Arc<PipelineMetrics> {
    Arc::new(PipelineMetrics::new(
        "slot".into(),
        vec!["kafka".into(), "search \"eu\"".into()],
        Arc::new(SnapshotProgress::default()),
    ))
}

#[test]
fn events_and_record_bytes_are_counted_per_table_and_op() {
    let metrics = metrics();
    let mut counter = EventCounter::new(metrics.clone());
    let orders = table(10, "orders");
    let items = table(11, "items");
    let mut message = event(&orders, Op::Message);
    message.table = None;
    message.message = Some(LogicalMessage {
        transactional: true,
        prefix: "app".into(),
        content: Vec::new(),
    });
    let batch = Batch {
        events: vec![
            event(&orders, Op::Create),
            event(&orders, Op::Create),
            event(&items, Op::Update),
            event(&orders, Op::Delete),
            message,
        ],
        records: vec![
            EncodedRecord {
                origin: RecordOrigin::Event(0),
                key: Some(vec![0; 5]),
                value: Some(vec![0; 20]),
                ..EncodedRecord::default()
            },
            EncodedRecord {
                origin: RecordOrigin::Event(1),
                key: Some(vec![0; 5]),
                value: Some(vec![0; 10]),
                ..EncodedRecord::default()
            },
            EncodedRecord {
                origin: RecordOrigin::Event(2),
                key: None,
                value: Some(vec![0; 7]),
                ..EncodedRecord::default()
            },
            EncodedRecord {
                origin: RecordOrigin::Heartbeat,
                key: None,
                value: Some(vec![0; 100]),
                ..EncodedRecord::default()
            },
        ],
        ..Batch::default()
    };
    counter.count(&batch);
    counter.count(&batch);
    let text = render(&metrics);
    let events = |table: &str, op: &str| {
        find_sample(&text, names::EVENTS_TOTAL, &[("table", table), ("op", op)])
    };
    assert_eq!(events("public.orders", "c"), Some(4.0), "{text}");
    assert_eq!(events("public.orders", "d"), Some(2.0));
    assert_eq!(events("public.items", "u"), Some(2.0));
    assert_eq!(events("", "m"), Some(2.0));
    assert_eq!(
        events("public.items", "c"),
        None,
        "zero series are left out"
    );
    let bytes = |table: &str| find_sample(&text, names::EVENT_BYTES_TOTAL, &[("table", table)]);
    assert_eq!(bytes("public.orders"), Some(80.0));
    assert_eq!(bytes("public.items"), Some(14.0));
}

#[test]
fn sink_figures_render_with_escaped_labels_and_a_cumulative_histogram() {
    let metrics = metrics();
    let sink = metrics.sink(1).unwrap();
    let batch = Batch {
        events: vec![event(&table(1, "t"), Op::Create); 3],
        ..Batch::default()
    };
    sink.delivered(&batch, Some(Duration::from_millis(3)));
    sink.delivered(&batch, None);
    sink.retries.fetch_add(2, Ordering::Relaxed);
    let text = render(&metrics);
    let label = [("sink", "search \"eu\"")];
    assert!(
        text.contains("sluice_sink_events_total{sink=\"search \\\"eu\\\"\"} 6"),
        "{text}"
    );
    assert_eq!(
        find_sample(&text, names::SINK_EVENTS_TOTAL, &label),
        Some(6.0)
    );
    assert_eq!(
        find_sample(&text, names::SINK_RETRIES_TOTAL, &label),
        Some(2.0)
    );
    let bucket = format!("{}_bucket", names::SINK_WRITE_SECONDS);
    let le = |le: &str| find_sample(&text, &bucket, &[label[0], ("le", le)]);
    assert_eq!(le("0.0025"), Some(0.0));
    assert_eq!(le("0.005"), Some(1.0));
    assert_eq!(le("+Inf"), Some(1.0));
    assert!(text.contains("# TYPE sluice_sink_write_seconds histogram"));
    assert_eq!(find_sample(&text, names::UP, &[]), Some(1.0));
}

#[test]
fn lag_is_zero_when_caught_up_and_counts_wal_when_not() {
    let metrics = metrics();
    metrics.server_wal_end.store(5000, Ordering::Relaxed);
    metrics.confirmed.store(4000, Ordering::Relaxed);
    assert_eq!(metrics.lag_bytes(), 1000);
    assert_eq!(metrics.lag_seconds(), 0.0, "nothing in flight");
    metrics.confirmed.store(5000, Ordering::Relaxed);
    assert_eq!(metrics.lag_bytes(), 0);
    metrics.sent_sequence.store(3, Ordering::Relaxed);
    metrics.acked_sequence.store(2, Ordering::Relaxed);
    for sink in metrics.sinks() {
        // One hour ago, in µs since the epoch.
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_micros() as i64;
        sink.acked_commit_us
            .store(now - 3_600_000_000, Ordering::Relaxed);
    }
    let lag = metrics.lag_seconds();
    assert!((3600.0..3700.0).contains(&lag), "{lag}");
}

/// `op` on `table`, committed `ago` before now.
fn committed(table: &Arc<TableSchema>, op: Op, ago: Duration) -> ChangeEvent {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    let mut e = event(table, op);
    e.position.commit_time_us = (now - ago).as_micros() as i64;
    e
}

#[test]
fn commit_latency_counts_streamed_batches_from_their_oldest_commit_and_skips_snapshot_rows() {
    let metrics = metrics();
    let sink = metrics.sink(0).unwrap();
    let t = table(1, "t");
    let snapshot_rows = Batch {
        events: vec![committed(&t, Op::Read, Duration::ZERO); 4],
        ..Batch::default()
    };
    let streamed = Batch {
        events: vec![
            committed(&t, Op::Read, Duration::ZERO),
            committed(&t, Op::Create, Duration::from_secs(2)),
            committed(&t, Op::Update, Duration::from_millis(10)),
        ],
        ..Batch::default()
    };
    sink.delivered(&snapshot_rows, Some(Duration::from_millis(1)));
    sink.delivered(&Batch::default(), None);
    sink.delivered(&streamed, Some(Duration::from_millis(1)));

    let text = render(&metrics);
    let label = ("sink", "kafka");
    let name = names::SINK_COMMIT_LATENCY_SECONDS;
    let count = find_sample(&text, &format!("{name}_count"), &[label]);
    assert_eq!(count, Some(1.0), "only the streamed batch: {text}");
    let sum = find_sample(&text, &format!("{name}_sum"), &[label]).unwrap();
    assert!((2.0..3.0).contains(&sum), "from the oldest commit: {sum}");
    let bucket = format!("{name}_bucket");
    let le = |le: &str| find_sample(&text, &bucket, &[label, ("le", le)]);
    assert_eq!(le("1.5"), Some(0.0));
    assert_eq!(le("3"), Some(1.0));
    assert_eq!(le("+Inf"), Some(1.0));
    assert!(text.contains(&format!("# TYPE {name} histogram")));
    assert_eq!(
        find_sample(
            &text,
            &format!("{}_count", names::SINK_WRITE_SECONDS),
            &[label]
        ),
        Some(2.0),
        "write times still count every batch that was written"
    );
}

#[test]
fn commit_latency_is_zero_when_the_servers_clock_is_ahead() {
    let metrics = metrics();
    let sink = metrics.sink(0).unwrap();
    let mut ahead = committed(&table(1, "t"), Op::Create, Duration::ZERO);
    ahead.position.commit_time_us += 5_000_000;
    sink.delivered(
        &Batch {
            events: vec![ahead],
            ..Batch::default()
        },
        None,
    );
    let reading = sink.commit_latency.read();
    assert_eq!(reading.count, 1);
    assert_eq!(reading.cumulative[0], (0.0005, 1));
}

#[test]
fn the_spill_full_gauge_follows_the_wait_and_the_retries_keep_counting() {
    let metrics = metrics();
    let read = |name: &str| find_sample(&render(&metrics), name, &[]);
    assert_eq!(read(names::SOURCE_SPILL_FULL), Some(0.0));
    assert_eq!(read(names::SOURCE_SPILL_FULL_RETRIES_TOTAL), Some(0.0));

    let dir = std::path::Path::new("/var/spill");
    metrics.spill_full.failed(dir, "No space left on device");
    metrics.spill_full.failed(dir, "No space left on device");
    assert_eq!(read(names::SOURCE_SPILL_FULL), Some(1.0));
    assert_eq!(read(names::SOURCE_SPILL_FULL_RETRIES_TOTAL), Some(2.0));

    metrics.spill_full.streamed_through();
    assert_eq!(read(names::SOURCE_SPILL_FULL), Some(0.0));
    assert_eq!(read(names::SOURCE_SPILL_FULL_RETRIES_TOTAL), Some(2.0));
    let text = render(&metrics);
    assert!(
        text.contains("# TYPE sluice_source_spill_full gauge"),
        "{text}"
    );
    assert!(
        text.contains("# TYPE sluice_source_spill_full_retries_total counter"),
        "{text}"
    );
}
