//! The pipeline's live figures: counters and gauges on atomics that the stages advance as data
//! flows (fan-out, envelope, sink drivers, checkpoint, source) and that `/metrics` and
//! `/status` read. Nothing here blocks the hot path: per-table handles are looked up once per
//! run of events of one table, sinks are indexed by position.
//!
//! Metric names are constants (see [`names`]); [`text`] renders the Prometheus text format.

mod histogram;
pub mod names;
pub mod text;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use sluice_api::{Batch, ChangeEvent, Lsn, Op, TableSchema};
use sluice_source_postgres::snapshot::{ProgressFigures, SnapshotProgress};
use sluice_source_postgres::source::SpillFullState;

pub use histogram::{Histogram, HistogramReading, COMMIT_LATENCY_BUCKETS, WRITE_SECONDS_BUCKETS};

/// Every operation, in label order; the index is the slot in [`TableCounters::events`].
pub const OPS: [Op; 6] = [
    Op::Read,
    Op::Create,
    Op::Update,
    Op::Delete,
    Op::Truncate,
    Op::Message,
];

fn op_index(op: Op) -> usize {
    match op {
        Op::Read => 0,
        Op::Create => 1,
        Op::Update => 2,
        Op::Delete => 3,
        Op::Truncate => 4,
        Op::Message => 5,
    }
}

/// The label logical decoding messages are counted under: they belong to no table.
pub const MESSAGE_TABLE_LABEL: &str = "";

/// Events and encoded bytes read from the source for one table.
#[derive(Debug, Default)]
pub struct TableCounters {
    events: [AtomicU64; OPS.len()],
    bytes: AtomicU64,
}

impl TableCounters {
    pub fn events(&self, op: Op) -> u64 {
        self.events[op_index(op)].load(Ordering::Relaxed)
    }

    pub fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }
}

/// One sink's delivery figures.
#[derive(Debug)]
pub struct SinkMetrics {
    pub name: String,
    /// Events in batches the sink acknowledged.
    pub events: AtomicU64,
    /// Encoded record bytes (Avro key + value) of batches the sink acknowledged.
    pub bytes: AtomicU64,
    pub retries: AtomicU64,
    /// Changes the sink set aside as dead letters (durably), since the daemon started.
    pub dead_letters: AtomicU64,
    /// Batches handed to the sink's queue and not yet taken by its driver.
    pub queued: AtomicI64,
    pub write_seconds: Histogram,
    /// Per acknowledged batch of streamed changes: from the commit of its oldest change to
    /// the acknowledgement.
    pub commit_latency: Histogram,
    /// The highest checkpoint the sink acknowledged (with everything before it).
    pub acked_lsn: AtomicU64,
    /// Commit time (µs since the epoch) of the last change the sink acknowledged; 0 = none yet.
    pub acked_commit_us: AtomicI64,
}

impl SinkMetrics {
    fn new(name: String) -> Self {
        SinkMetrics {
            name,
            events: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            retries: AtomicU64::new(0),
            dead_letters: AtomicU64::new(0),
            queued: AtomicI64::new(0),
            write_seconds: Histogram::new(&WRITE_SECONDS_BUCKETS),
            commit_latency: Histogram::new(&COMMIT_LATENCY_BUCKETS),
            acked_lsn: AtomicU64::new(0),
            acked_commit_us: AtomicI64::new(0),
        }
    }

    /// Record a batch the sink acknowledged, after a write that took `elapsed` (`None` when
    /// nothing was written: a batch that only carries a position).
    pub fn delivered(&self, batch: &Batch, elapsed: Option<Duration>) {
        if let Some(elapsed) = elapsed {
            self.write_seconds.observe(elapsed);
        }
        if let Some(committed_us) = oldest_commit_us(batch) {
            self.commit_latency
                .observe(since_unix_us(committed_us, unix_now_us()));
        }
        self.events
            .fetch_add(batch.events.len() as u64, Ordering::Relaxed);
        self.bytes.fetch_add(record_bytes(batch), Ordering::Relaxed);
        if let Some(last) = batch.events.last() {
            self.acked_commit_us
                .fetch_max(last.position.commit_time_us, Ordering::Relaxed);
        }
    }
}

/// The commit time of the batch's oldest streamed change (events are in commit order, so the
/// first one), or `None` when it has none: snapshot rows (`op` r) carry the time they were
/// read, not a commit, and a batch of them or of nothing has no commit to measure from.
fn oldest_commit_us(batch: &Batch) -> Option<i64> {
    batch
        .events
        .iter()
        .find(|e| e.op != Op::Read && e.position.commit_time_us > 0)
        .map(|e| e.position.commit_time_us)
}

/// Microseconds since the Unix epoch on this machine's clock; 0 if the clock is before it.
fn unix_now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64)
}

/// The time from `then_us` to `now_us` (both µs since the epoch); zero when the server's clock
/// is ahead of this machine's.
fn since_unix_us(then_us: i64, now_us: i64) -> Duration {
    Duration::from_micros(now_us.saturating_sub(then_us).max(0) as u64)
}

/// Encoded bytes of a batch's records: what the pipeline puts on the wire for it.
fn record_bytes(batch: &Batch) -> u64 {
    batch
        .records
        .iter()
        .map(|r| r.key.as_ref().map_or(0, Vec::len) + r.value.as_ref().map_or(0, Vec::len))
        .sum::<usize>() as u64
}

/// Every figure of one running pipeline.
#[derive(Debug)]
pub struct PipelineMetrics {
    /// The replication slot (shown by `/status`).
    pub slot: String,
    tables: Mutex<BTreeMap<String, Arc<TableCounters>>>,
    sinks: Vec<SinkMetrics>,
    /// The server's WAL end as last reported by the replication stream.
    pub server_wal_end: Arc<AtomicU64>,
    /// The LSN every sink has durably taken.
    pub confirmed: AtomicU64,
    /// The highest batch sequence handed to the sinks, and the highest every sink acknowledged:
    /// while they differ, changes are in flight.
    pub sent_sequence: AtomicU64,
    pub acked_sequence: AtomicU64,
    pub paused: AtomicBool,
    pub source_connected: AtomicBool,
    /// Whether the source waits for room in a full spill directory, and its retries.
    pub spill_full: Arc<SpillFullState>,
    /// Per sink (by index): whether its latest write attempt failed (retrying or stopped).
    failing: Vec<AtomicBool>,
    snapshot: Arc<SnapshotProgress>,
    started: Instant,
}

impl PipelineMetrics {
    pub fn new(slot: String, sink_names: Vec<String>, snapshot: Arc<SnapshotProgress>) -> Self {
        PipelineMetrics {
            slot,
            tables: Mutex::new(BTreeMap::new()),
            failing: sink_names.iter().map(|_| AtomicBool::new(false)).collect(),
            sinks: sink_names.into_iter().map(SinkMetrics::new).collect(),
            server_wal_end: Arc::new(AtomicU64::new(0)),
            confirmed: AtomicU64::new(0),
            sent_sequence: AtomicU64::new(0),
            acked_sequence: AtomicU64::new(0),
            paused: AtomicBool::new(false),
            source_connected: AtomicBool::new(false),
            spill_full: Arc::new(SpillFullState::default()),
            snapshot,
            started: Instant::now(),
        }
    }

    /// The counters of `table` (`schema.table`), created on first use.
    pub fn table(&self, qualified: &str) -> Arc<TableCounters> {
        let mut tables = self.tables.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(counters) = tables.get(qualified) {
            return counters.clone();
        }
        let counters = Arc::new(TableCounters::default());
        tables.insert(qualified.to_owned(), counters.clone());
        counters
    }

    /// Every table's counters, by name.
    pub fn tables(&self) -> Vec<(String, Arc<TableCounters>)> {
        let tables = self.tables.lock().unwrap_or_else(|e| e.into_inner());
        tables.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    }

    pub fn sinks(&self) -> &[SinkMetrics] {
        &self.sinks
    }

    pub fn sink(&self, index: usize) -> Option<&SinkMetrics> {
        self.sinks.get(index)
    }

    /// Mark whether sink `index`'s latest write failed (it is retrying) or succeeded.
    pub fn set_sink_failing(&self, index: usize, failing: bool) {
        if let Some(flag) = self.failing.get(index) {
            flag.store(failing, Ordering::Relaxed);
        }
    }

    /// Names of the sinks whose latest write failed.
    pub fn failing_sinks(&self) -> Vec<&str> {
        self.sinks
            .iter()
            .zip(&self.failing)
            .filter(|(_, f)| f.load(Ordering::Relaxed))
            .map(|(s, _)| s.name.as_str())
            .collect()
    }

    pub fn snapshot(&self) -> ProgressFigures {
        self.snapshot.figures()
    }

    pub fn confirmed_lsn(&self) -> Lsn {
        Lsn(self.confirmed.load(Ordering::Relaxed))
    }

    pub fn server_wal_end(&self) -> Lsn {
        Lsn(self.server_wal_end.load(Ordering::Relaxed))
    }

    /// Bytes of WAL the server has that are not confirmed yet; 0 until the first
    /// confirmation after start (a fresh daemon would otherwise report the whole WAL as lag
    /// for the moment before its first acknowledgement).
    pub fn lag_bytes(&self) -> u64 {
        let confirmed = self.confirmed_lsn().0;
        if confirmed == 0 {
            return 0;
        }
        self.server_wal_end().0.saturating_sub(confirmed)
    }

    /// Seconds since the commit of the last change every sink acknowledged, while changes are
    /// in flight (handed to sinks, not acknowledged by all); 0 when everything handed on is
    /// acknowledged, so an idle pipeline shows no lag.
    pub fn lag_seconds(&self) -> f64 {
        let sent = self.sent_sequence.load(Ordering::Relaxed);
        let acked = self.acked_sequence.load(Ordering::Relaxed);
        if acked >= sent {
            return 0.0;
        }
        let last_acked_us = self
            .sinks
            .iter()
            .map(|s| s.acked_commit_us.load(Ordering::Relaxed))
            .min()
            .unwrap_or(0);
        if last_acked_us <= 0 {
            // Nothing acknowledged yet: count from the daemon's start.
            return self.started.elapsed().as_secs_f64();
        }
        since_unix_us(last_acked_us, unix_now_us()).as_secs_f64()
    }
}

/// Counts events per table and op for the one task that reads batches from the source,
/// caching the last table's handle so the shared map is consulted once per run of events of one
/// table, not per event.
pub struct EventCounter {
    metrics: Arc<PipelineMetrics>,
    by_relation: HashMap<u32, (Arc<TableSchema>, Arc<TableCounters>)>,
    messages: Option<Arc<TableCounters>>,
}

impl EventCounter {
    pub fn new(metrics: Arc<PipelineMetrics>) -> Self {
        EventCounter {
            metrics,
            by_relation: HashMap::new(),
            messages: None,
        }
    }

    /// Count every event of `batch`, and the encoded bytes of its event records.
    pub fn count(&mut self, batch: &Batch) {
        let mut index = 0;
        while index < batch.events.len() {
            let first = &batch.events[index];
            let run = batch.events[index..]
                .iter()
                .take_while(|e| same_table(e, first))
                .count();
            let counters = self.counters(first);
            for event in &batch.events[index..index + run] {
                counters.events[op_index(event.op)].fetch_add(1, Ordering::Relaxed);
            }
            index += run;
        }
        let mut pending: Option<(&ChangeEvent, u64)> = None;
        for record in &batch.records {
            let sluice_api::RecordOrigin::Event(at) = record.origin else {
                continue;
            };
            let Some(event) = batch.events.get(at) else {
                continue;
            };
            let bytes = (record.key.as_ref().map_or(0, Vec::len)
                + record.value.as_ref().map_or(0, Vec::len)) as u64;
            match &mut pending {
                Some((run_event, sum)) if same_table(run_event, event) => *sum += bytes,
                _ => {
                    if let Some((run_event, sum)) = pending.take() {
                        self.counters(run_event)
                            .bytes
                            .fetch_add(sum, Ordering::Relaxed);
                    }
                    pending = Some((event, bytes));
                }
            }
        }
        if let Some((run_event, sum)) = pending {
            self.counters(run_event)
                .bytes
                .fetch_add(sum, Ordering::Relaxed);
        }
    }

    fn counters(&mut self, event: &ChangeEvent) -> Arc<TableCounters> {
        let Some(table) = &event.table else {
            let metrics = &self.metrics;
            return self
                .messages
                .get_or_insert_with(|| metrics.table(MESSAGE_TABLE_LABEL))
                .clone();
        };
        if let Some((known, counters)) = self.by_relation.get(&table.relation_id) {
            // A rename keeps the relation id: count under the current name.
            if known.schema == table.schema && known.name == table.name {
                return counters.clone();
            }
        }
        let counters = self.metrics.table(&table.qualified_name());
        self.by_relation
            .insert(table.relation_id, (table.clone(), counters.clone()));
        counters
    }
}

fn same_table(a: &ChangeEvent, b: &ChangeEvent) -> bool {
    match (&a.table, &b.table) {
        (Some(a), Some(b)) => Arc::ptr_eq(a, b),
        (None, None) => true,
        _ => false,
    }
}

#[cfg(test)]
mod tests;
