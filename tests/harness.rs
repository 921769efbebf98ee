//! Pipelines for the integration tests: a throwaway cluster's source feeding an in-memory sink
//! the test reads back.

use std::time::Duration;

use sluice::config::Config;
use sluice::runtime::{NamedSink, RunningPipeline};
use sluice_api::{ChangeEvent, Lsn, Op, Value};
use sluice_sink_memory::{MemorySink, MemorySinkConfig, MemorySinkHandle};

use crate::support::{ThrowawayPostgres, DEFAULT_DATABASE, SUPERUSER};

/// The slot every test pipeline uses.
pub const SLOT: &str = "sluice_test";

/// The sink [`config_toml`] ends with, which tests replace with the sinks they run.
pub const NULL_SINK: &str = "name = \"null\"\ntype = \"memory\"\nretain = false";

/// [`config_toml`] for `public.items` with `sink` (the body of one `[[sink]]`) in place of its
/// null sink, written to a file. (Its users test sinks outside the default build.)
#[cfg(any(
    feature = "sink-kafka",
    feature = "sink-search",
    feature = "sink-postgres",
    feature = "sink-clickhouse",
    feature = "sink-lake"
))]
pub fn items_config_with_sink(pg: &ThrowawayPostgres, sink: &str) -> crate::support::ConfigFile {
    crate::support::write_config(&config_toml(pg, &["public.items"], "").replace(NULL_SINK, sink))
}

/// A test pipeline's TOML: `tables` captured, extra `[source]` lines, short batch waits and
/// status intervals so confirmations show quickly.
pub fn config_toml(pg: &ThrowawayPostgres, tables: &[&str], extra_source: &str) -> String {
    let tables: Vec<String> = tables.iter().map(|t| format!("{t:?}")).collect();
    format!(
        r#"
[pipeline]
name = "test"
max_batch_wait_ms = 10

[source]
type = "postgres"
connection = "{url}"
slot = "{SLOT}"
publication = "{SLOT}"
tables = [{tables}]
snapshot_mode = "never"
status_interval_ms = 200
reconnect_backoff_initial_ms = 100
reconnect_backoff_max_ms = 1000
{extra_source}

[[sink]]
{NULL_SINK}
"#,
        url = pg.url(SUPERUSER, DEFAULT_DATABASE),
        tables = tables.join(", "),
    )
}

/// `toml` (from [`config_toml`]) with a JSON-lines file sink at `events` in place of the null
/// sink, as a daemon run by a test writes what it delivers.
pub fn with_file_sink(toml: &str, events: &std::path::Path) -> String {
    toml.replace(
        NULL_SINK,
        &format!(
            "name = \"audit\"\ntype = \"file\"\npath = {:?}\nfsync = false",
            events.display().to_string()
        ),
    )
}

pub fn config(pg: &ThrowawayPostgres, tables: &[&str], extra_source: &str) -> Config {
    let text = config_toml(pg, tables, extra_source);
    Config::from_toml_str(&text, std::iter::empty()).unwrap_or_else(|p| panic!("{p}"))
}

/// Start a pipeline with one retaining memory sink besides the configured null sink.
/// `RUST_LOG` shows the pipeline's logs in the test output.
pub async fn start(config: Config) -> (RunningPipeline, MemorySinkHandle) {
    let _ = tracing_subscriber::fmt()
        .with_test_writer()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .try_init();
    let (sink, handle) = MemorySink::new(&MemorySinkConfig { retain: true });
    let pipeline = sluice::runtime::start(
        config,
        vec![NamedSink {
            name: "memory".into(),
            sink: Box::new(sink),
        }],
    )
    .await
    .expect("start the pipeline");
    (pipeline, handle)
}

/// Wait until the slot exists and streaming has begun (the slot is active).
pub async fn wait_streaming(pg: &ThrowawayPostgres) {
    let client = pg.client(DEFAULT_DATABASE).await.expect("connect");
    crate::support::wait_until(
        "the pipeline streams from its slot",
        Duration::from_secs(30),
        || async {
            client
                .query_opt(
                    "SELECT 1 FROM pg_replication_slots WHERE slot_name = $1 AND active",
                    &[&SLOT],
                )
                .await
                .ok()
                .flatten()
                .is_some()
        },
    )
    .await;
}

/// Wait until the sink holds `count` events.
pub async fn wait_events(handle: &MemorySinkHandle, count: usize) -> Vec<ChangeEvent> {
    let arrived = handle
        .wait_for(Duration::from_secs(60), |events, _| events.len() >= count)
        .await;
    let events = handle.events();
    assert!(
        arrived,
        "expected {count} events, got {}: {:#?}",
        events.len(),
        summary(&events)
    );
    events
}

/// Wait until the pipeline confirmed at least `lsn`.
pub async fn wait_confirmed(pipeline: &RunningPipeline, lsn: Lsn) {
    let mut watch = pipeline.confirmed_watch();
    let reached =
        tokio::time::timeout(Duration::from_secs(60), watch.wait_for(|c| *c >= lsn)).await;
    assert!(
        matches!(reached, Ok(Ok(_))),
        "the pipeline did not confirm {lsn}; confirmed {}",
        pipeline.confirmed_lsn()
    );
}

/// `(table, op, first column)` of each event: enough to check order.
pub fn summary(events: &[ChangeEvent]) -> Vec<(String, &'static str, Option<Value>)> {
    events
        .iter()
        .map(|e| {
            let table = e.table.as_ref().map_or(String::new(), |t| t.name.clone());
            let row = e.after.as_ref().or(e.before.as_ref());
            (table, e.op.as_str(), row.and_then(|r| r.first().cloned()))
        })
        .collect()
}

/// The integer id (first column) of a row event.
pub fn id_of(event: &ChangeEvent) -> Option<i64> {
    let row = event.after.as_ref().or(event.before.as_ref())?;
    match row.first()? {
        Value::Int32(v) => Some(i64::from(*v)),
        Value::Int64(v) => Some(*v),
        _ => None,
    }
}

/// Only row events of `op`.
pub fn ops(events: &[ChangeEvent], op: Op) -> Vec<&ChangeEvent> {
    events.iter().filter(|e| e.op == op).collect()
}
