//! The Prometheus text exposition format (version 0.0.4) of [`PipelineMetrics`]: `# HELP` and
//! `# TYPE` once per family, then one line per label set. Written by hand: the format is a
//! few lines of rules, not worth a metrics framework on the hot path.

use std::fmt::Write;
use std::sync::atomic::Ordering;

use super::{names, PipelineMetrics, OPS};

/// The `Content-Type` of [`render`]'s output.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// A per-sink family: name, type, help, and how to read one sink's value.
type SinkFamily = (
    &'static str,
    &'static str,
    &'static str,
    fn(&super::SinkMetrics) -> i64,
);

/// Every metric of `metrics`, in the text format.
pub fn render(metrics: &PipelineMetrics) -> String {
    let mut out = String::with_capacity(4096);
    let tables = metrics.tables();
    let sinks = metrics.sinks();

    family(
        &mut out,
        names::EVENTS_TOTAL,
        "counter",
        "Change events read from the source.",
    );
    for (table, counters) in &tables {
        for op in OPS {
            let value = counters.events(op);
            if value > 0 {
                sample(
                    &mut out,
                    names::EVENTS_TOTAL,
                    &[("table", table), ("op", op.as_str())],
                    value,
                );
            }
        }
    }
    family(
        &mut out,
        names::EVENT_BYTES_TOTAL,
        "counter",
        "Encoded bytes (Avro key and value) of the change events read from the source.",
    );
    for (table, counters) in &tables {
        sample(
            &mut out,
            names::EVENT_BYTES_TOTAL,
            &[("table", table)],
            counters.bytes(),
        );
    }

    let per_sink: [SinkFamily; 5] = [
        (
            names::SINK_EVENTS_TOTAL,
            "counter",
            "Events in batches the sink acknowledged.",
            |s| s.events.load(Ordering::Relaxed) as i64,
        ),
        (
            names::SINK_BYTES_TOTAL,
            "counter",
            "Encoded record bytes in batches the sink acknowledged.",
            |s| s.bytes.load(Ordering::Relaxed) as i64,
        ),
        (
            names::SINK_RETRIES_TOTAL,
            "counter",
            "Failed sink writes that were retried.",
            |s| s.retries.load(Ordering::Relaxed) as i64,
        ),
        (
            names::SINK_DEAD_LETTERS_TOTAL,
            "counter",
            "Changes the sink set aside as dead letters.",
            |s| s.dead_letters.load(Ordering::Relaxed) as i64,
        ),
        (
            names::SINK_QUEUE_BATCHES,
            "gauge",
            "Batches queued for the sink.",
            |s| s.queued.load(Ordering::Relaxed).max(0),
        ),
    ];
    for (name, kind, help, read) in per_sink {
        family(&mut out, name, kind, help);
        for sink in sinks {
            sample(&mut out, name, &[("sink", &sink.name)], read(sink));
        }
    }
    family(
        &mut out,
        names::SINK_ACKED_LSN,
        "gauge",
        "The LSN up to which the sink acknowledged everything.",
    );
    for sink in sinks {
        sample(
            &mut out,
            names::SINK_ACKED_LSN,
            &[("sink", &sink.name)],
            sink.acked_lsn.load(Ordering::Relaxed),
        );
    }
    histogram_family(
        &mut out,
        names::SINK_WRITE_SECONDS,
        "Duration of one batch's write until the sink acknowledged it.",
        sinks,
        |s| &s.write_seconds,
    );
    histogram_family(
        &mut out,
        names::SINK_COMMIT_LATENCY_SECONDS,
        "Time from the source commit of a batch's oldest streamed change until the sink acknowledged the batch.",
        sinks,
        |s| &s.commit_latency,
    );

    let snapshot = metrics.snapshot();
    let gauges: [(&str, &str, f64); 12] = [
        (
            names::REPLICATION_LAG_BYTES,
            "Bytes of WAL between the server's end and the confirmed LSN.",
            metrics.lag_bytes() as f64,
        ),
        (
            names::REPLICATION_LAG_SECONDS,
            "Seconds since the commit of the last change every sink acknowledged, while changes are in flight; 0 when caught up.",
            metrics.lag_seconds(),
        ),
        (names::CONFIRMED_LSN, "The LSN confirmed to PostgreSQL.", metrics.confirmed_lsn().0 as f64),
        (
            names::SERVER_WAL_END_LSN,
            "The server's WAL end as the replication stream last reported it.",
            metrics.server_wal_end().0 as f64,
        ),
        (names::SNAPSHOT_ROWS_TOTAL, "Rows read by the current or last snapshot.", snapshot.rows_done as f64),
        (
            names::SNAPSHOT_ROWS_ESTIMATED,
            "Rows the current or last snapshot expects, from table statistics.",
            snapshot.rows_estimated as f64,
        ),
        (
            names::SNAPSHOT_CHUNKS_DONE,
            "Snapshot chunks every sink acknowledged.",
            snapshot.chunks_done as f64,
        ),
        (names::SNAPSHOT_CHUNKS_TOTAL, "Snapshot chunks planned.", snapshot.chunks_total as f64),
        (names::SNAPSHOT_RUNNING, "1 while a snapshot is being read.", flag(snapshot.running)),
        (
            names::PAUSED,
            "1 while the pipeline is paused.",
            flag(metrics.paused.load(Ordering::Relaxed)),
        ),
        (
            names::SOURCE_CONNECTED,
            "1 while the replication stream is open.",
            flag(metrics.source_connected.load(Ordering::Relaxed)),
        ),
        (
            names::SOURCE_SPILL_FULL,
            "1 while the source waits for room in a full spill directory.",
            flag(metrics.spill_full.is_waiting()),
        ),
    ];
    for (name, help, value) in gauges {
        family(&mut out, name, "gauge", help);
        sample(&mut out, name, &[], value);
    }
    family(
        &mut out,
        names::SOURCE_SPILL_FULL_RETRIES_TOTAL,
        "counter",
        "Source attempts that failed because the spill directory was full; each is retried.",
    );
    sample(
        &mut out,
        names::SOURCE_SPILL_FULL_RETRIES_TOTAL,
        &[],
        metrics.spill_full.retry_count(),
    );
    family(&mut out, names::UP, "gauge", "1 while the daemon runs.");
    sample(&mut out, names::UP, &[], 1);
    out
}

/// A per-sink histogram family: cumulative `_bucket` lines (with `+Inf`), `_sum`, `_count`.
fn histogram_family(
    out: &mut String,
    name: &str,
    help: &str,
    sinks: &[super::SinkMetrics],
    histogram: fn(&super::SinkMetrics) -> &super::Histogram,
) {
    family(out, name, "histogram", help);
    let bucket = format!("{name}_bucket");
    let sum = format!("{name}_sum");
    let count = format!("{name}_count");
    for sink in sinks {
        let reading = histogram(sink).read();
        for (le, observed) in &reading.cumulative {
            sample(
                out,
                &bucket,
                &[("sink", &sink.name), ("le", &le.to_string())],
                observed,
            );
        }
        sample(
            out,
            &bucket,
            &[("sink", &sink.name), ("le", "+Inf")],
            reading.count,
        );
        sample(out, &sum, &[("sink", &sink.name)], reading.sum_seconds);
        sample(out, &count, &[("sink", &sink.name)], reading.count);
    }
}

fn flag(on: bool) -> f64 {
    if on {
        1.0
    } else {
        0.0
    }
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

fn sample(out: &mut String, name: &str, labels: &[(&str, &str)], value: impl std::fmt::Display) {
    series(out, name, labels);
    let _ = writeln!(out, " {value}");
}

/// `name{key="value",...}`, without the value.
fn series(out: &mut String, name: &str, labels: &[(&str, &str)]) {
    out.push_str(name);
    if labels.is_empty() {
        return;
    }
    out.push('{');
    for (i, (key, value)) in labels.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(key);
        out.push_str("=\"");
        escape_label(out, value);
        out.push('"');
    }
    out.push('}');
}

/// Label values escape backslash, double quote and newline.
fn escape_label(out: &mut String, value: &str) {
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

/// The value of one sample in rendered text, by metric name and exact label set (in the
/// order rendered); `None` when absent. For tests and the status client.
pub fn find_sample(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let mut wanted = String::new();
    series(&mut wanted, name, labels);
    text.lines()
        .filter_map(|line| line.strip_prefix(wanted.as_str()))
        .filter_map(|rest| rest.strip_prefix(' '))
        .find_map(|value| value.trim().parse().ok())
}
