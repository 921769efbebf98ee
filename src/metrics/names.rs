//! Metric names and their help text: the public vocabulary dashboards and alerts build on.
//! Renaming one breaks them; add new ones instead.

/// Counter `{table, op}`: change events read from the source.
pub const EVENTS_TOTAL: &str = "sluice_events_total";
/// Counter `{table}`: encoded bytes (Avro key + value) of those events.
pub const EVENT_BYTES_TOTAL: &str = "sluice_event_bytes_total";
/// Counter `{sink}`: events in batches the sink acknowledged.
pub const SINK_EVENTS_TOTAL: &str = "sluice_sink_events_total";
/// Counter `{sink}`: encoded record bytes in batches the sink acknowledged.
pub const SINK_BYTES_TOTAL: &str = "sluice_sink_bytes_total";
/// Histogram `{sink}`: duration of one batch's write until the sink acknowledged it.
pub const SINK_WRITE_SECONDS: &str = "sluice_sink_write_seconds";
/// Histogram `{sink}`: time from the source commit of a batch's oldest streamed change until
/// the sink acknowledged the batch durable.
pub const SINK_COMMIT_LATENCY_SECONDS: &str = "sluice_sink_commit_latency_seconds";
/// Counter `{sink}`: failed writes that were retried.
pub const SINK_RETRIES_TOTAL: &str = "sluice_sink_retries_total";
/// Counter `{sink}`: changes the sink set aside as dead letters.
pub const SINK_DEAD_LETTERS_TOTAL: &str = "sluice_sink_dead_letters_total";
/// Gauge `{sink}`: batches queued for the sink.
pub const SINK_QUEUE_BATCHES: &str = "sluice_sink_queue_batches";
/// Gauge `{sink}`: the LSN up to which the sink acknowledged everything.
pub const SINK_ACKED_LSN: &str = "sluice_sink_acked_lsn";
/// Gauge: server WAL end minus confirmed LSN.
pub const REPLICATION_LAG_BYTES: &str = "sluice_replication_lag_bytes";
/// Gauge: now minus the commit time of the last acknowledged change.
pub const REPLICATION_LAG_SECONDS: &str = "sluice_replication_lag_seconds";
/// Gauge: the LSN confirmed to PostgreSQL.
pub const CONFIRMED_LSN: &str = "sluice_confirmed_lsn";
/// Gauge: the server's WAL end as the replication stream last reported it.
pub const SERVER_WAL_END_LSN: &str = "sluice_server_wal_end_lsn";
/// Gauge: rows read by the current (or last) snapshot.
pub const SNAPSHOT_ROWS_TOTAL: &str = "sluice_snapshot_rows_total";
/// Gauge: rows the snapshot expects (from table statistics).
pub const SNAPSHOT_ROWS_ESTIMATED: &str = "sluice_snapshot_rows_estimated";
/// Gauge: snapshot chunks every sink acknowledged.
pub const SNAPSHOT_CHUNKS_DONE: &str = "sluice_snapshot_chunks_done";
/// Gauge: snapshot chunks planned.
pub const SNAPSHOT_CHUNKS_TOTAL: &str = "sluice_snapshot_chunks_total";
/// Gauge: 1 while a snapshot is being read.
pub const SNAPSHOT_RUNNING: &str = "sluice_snapshot_running";
/// Gauge: 1 while the pipeline is paused.
pub const PAUSED: &str = "sluice_paused";
/// Gauge: 1 while the daemon runs.
pub const UP: &str = "sluice_up";
/// Gauge: 1 while the replication stream is open.
pub const SOURCE_CONNECTED: &str = "sluice_source_connected";
/// Gauge: 1 while the source waits for room in a full spill directory.
pub const SOURCE_SPILL_FULL: &str = "sluice_source_spill_full";
/// Counter: source attempts that failed because the spill directory was full (each is retried).
pub const SOURCE_SPILL_FULL_RETRIES_TOTAL: &str = "sluice_source_spill_full_retries_total";
