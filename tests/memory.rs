//! Memory under a stalled sink: a multi-million-row transaction committed while the only sink,
//! a PostgreSQL warehouse, sits behind a [`FaultProxy`] that stalls its connection. The daemon
//! must hold the WAL on the server (the slot confirms nothing past the transaction) instead of
//! holding the transaction in memory: its peak RSS stays under a budget computed from the
//! config, and once the stall ends every row arrives exactly once.
//!
//! `SLUICE_MEMORY_ROWS` sets the transaction's rows (default 5,000,000) and
//! `SLUICE_MEMORY_STALL_S` how long the stall is held after the commit (default 20 s; the long
//! run in the README holds it 300 s). With the defaults the test took 109 s in release mode on
//! a two-core machine: 20 s to insert, the 20 s stall, 58 s for the warehouse to take the rows.

use std::time::{Duration, Instant};

use crate::harness::{self, SLOT};
use crate::support::proxy::{Fault, FaultProxy};
use crate::support::{self, SluiceProcess, DEFAULT_DATABASE, SUPERUSER};

/// Rows of the stalled transaction unless `SLUICE_MEMORY_ROWS` says otherwise.
const DEFAULT_ROWS: i64 = 5_000_000;
/// Seconds the stall is held after the commit unless `SLUICE_MEMORY_STALL_S` says otherwise.
const DEFAULT_STALL_S: u64 = 20;
/// The streaming budget: far below the transaction, so it spills.
const STREAM_BUFFER_BYTES: u64 = 16 << 20;
/// The pipeline's batch limits, written into the config and used by the budget.
const MAX_BATCH_EVENTS: u64 = 4096;
const MAX_IN_FLIGHT_BATCHES: u64 = 8;
/// Batches alive besides the sink's queue: the one the sink is writing, the two waiting
/// between the source and the fan-out, and the one the source is filling.
const BATCHES_BESIDES_THE_QUEUE: u64 = 4;
/// Memory allowed per queued change event of a small row: the decoded event (values, position,
/// shared table reference) and its share of the statement the warehouse sink builds.
const EVENT_ALLOWANCE_BYTES: u64 = 1024;
/// The process itself: code, the async runtime and its threads, connections, the HTTP server,
/// allocator slack.
const PROCESS_ALLOWANCE_BYTES: u64 = 64 << 20;
const WAIT: Duration = Duration::from_secs(900);

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The daemon's memory budget for this config:
///
/// ```text
/// stream_buffer_bytes
///   + (max_in_flight_batches + 4) * max_batch_events * 1 KiB   (batches queued or in hand)
///   + 64 MiB                                                   (the process itself)
/// ```
///
/// A stalled sink stops the pipeline at its queue; the streamed transaction beyond the stream
/// buffer is on disk, and the rest of it waits in the server's WAL.
fn budget_bytes() -> u64 {
    STREAM_BUFFER_BYTES
        + (MAX_IN_FLIGHT_BATCHES + BATCHES_BESIDES_THE_QUEUE)
            * MAX_BATCH_EVENTS
            * EVENT_ALLOWANCE_BYTES
        + PROCESS_ALLOWANCE_BYTES
}

/// Whether the process holds an open, already deleted file under `dir`: a spill file.
fn holds_spill_file(pid: u32, dir: &std::path::Path) -> bool {
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return false;
    };
    fds.filter_map(|fd| std::fs::read_link(fd.ok()?.path()).ok())
        .any(|target| {
            let target = target.to_string_lossy();
            target.starts_with(&*dir.to_string_lossy()) && target.ends_with("(deleted)")
        })
}

/// Row count, sum of ids and sum of `qty` of `table`'s live rows.
async fn checksum(client: &tokio_postgres::Client, table: &str, filter: &str) -> (i64, i64, i64) {
    let row = client
        .query_one(
            &format!(
                "SELECT count(*), coalesce(sum(id), 0)::int8, coalesce(sum(qty), 0)::int8 \
                 FROM {table} WHERE {filter}"
            ),
            &[],
        )
        .await
        .unwrap_or_else(|e| panic!("checksum of {table}: {e}"));
    (row.get(0), row.get(1), row.get(2))
}

#[tokio::test]
async fn a_huge_transaction_behind_a_stalled_sink_holds_wal_on_the_server_not_in_memory() {
    let rows: i64 = env_or("SLUICE_MEMORY_ROWS", DEFAULT_ROWS);
    let stall = Duration::from_secs(env_or("SLUICE_MEMORY_STALL_S", DEFAULT_STALL_S));
    // The server streams the transaction in chunks as it is written, as it would with a
    // transaction beyond the default 64 MB decoding work memory.
    let pg = support::start_streaming_postgres(
        "8MB",
        "CREATE TABLE items (id int8 PRIMARY KEY, qty int8)",
    )
    .await;
    let target = support::start_postgres().await;
    let proxy = FaultProxy::start(target.port()).await;
    let spill = tempfile::tempdir().unwrap();
    let extra = format!(
        "stream_buffer_bytes = {STREAM_BUFFER_BYTES}\nspill_dir = {:?}",
        spill.path().display().to_string()
    );
    let sink = format!(
        "name = \"warehouse\"\ntype = \"postgres\"\nschema = \"mirror\"\n\
         connection = \"postgres://{SUPERUSER}@127.0.0.1:{}/{DEFAULT_DATABASE}?sslmode=disable\"",
        proxy.port()
    );
    let text = harness::config_toml(&pg, &["public.items"], &extra)
        .replace(
            "max_batch_wait_ms = 10",
            &format!(
                "max_batch_wait_ms = 10\nmax_batch_events = {MAX_BATCH_EVENTS}\n\
                 max_in_flight_batches = {MAX_IN_FLIGHT_BATCHES}"
            ),
        )
        .replace(harness::NULL_SINK, &sink);
    let config = support::write_config(&text);
    let mut daemon = SluiceProcess::spawn(
        &["run", "--config", config.path().to_str().unwrap()],
        &[("RUST_LOG", "info")],
    );
    harness::wait_streaming(&pg).await;
    let client = pg.client(DEFAULT_DATABASE).await.unwrap();
    // A first row through the open sink: the target table exists before the stall.
    let first = "INSERT INTO items VALUES (0, 0)";
    support::execute_and_wait_confirmed(&client, SLOT, first, "the first row is confirmed", WAIT)
        .await;

    proxy.set(Fault::Stall);
    let started = Instant::now();
    client
        .batch_execute(&format!(
            "INSERT INTO items SELECT g, g % 1000 FROM generate_series(1, {rows}) g"
        ))
        .await
        .unwrap();
    let insert_s = started.elapsed().as_secs_f64();
    let big = support::current_wal_lsn(&client).await;
    support::wait_until(
        "the daemon spills the streamed transaction to disk",
        WAIT,
        || async { holds_spill_file(daemon.pid(), spill.path()) },
    )
    .await;

    // Hold the stall, watching the slot and the daemon's memory.
    let budget_mib = budget_bytes() >> 20;
    let held_from = Instant::now();
    let mut samples = tokio::time::interval(Duration::from_millis(500));
    while held_from.elapsed() < stall {
        samples.tick().await;
        support::assert_not_confirmed_past(
            &client,
            SLOT,
            big,
            "the slot confirms nothing past the stalled transaction",
        )
        .await;
        let peak_mib = daemon.peak_rss_kib().expect("the daemon is alive") / 1024;
        assert!(
            peak_mib < budget_mib,
            "peak RSS {peak_mib} MiB during the stall exceeds the budget of {budget_mib} MiB"
        );
    }
    let stall_peak_mib = daemon.peak_rss_kib().expect("the daemon is alive") / 1024;
    let retained_mib = support::slot_retained_wal_bytes(&client, SLOT)
        .await
        .unwrap_or_default()
        >> 20;

    proxy.set(Fault::Pass);
    let released = Instant::now();
    support::wait_slot_confirmed(
        &client,
        SLOT,
        big,
        "the slot confirms past the transaction once the stall ends",
        WAIT,
    )
    .await;
    let drain_s = released.elapsed().as_secs_f64();
    let peak_mib = daemon.peak_rss_kib().expect("the daemon is alive") / 1024;
    let mirror = target.client(DEFAULT_DATABASE).await.unwrap();
    let expected = checksum(&client, "items", "true").await;
    let delivered = checksum(&mirror, "mirror.items", "NOT _deleted").await;
    assert_eq!(
        delivered, expected,
        "the warehouse holds every row exactly: (count, sum of id, sum of qty)"
    );
    assert_eq!(expected.0, rows + 1, "the source holds the transaction");
    daemon.stop_cleanly(Duration::from_secs(60)).await;
    assert!(
        peak_mib < budget_mib,
        "peak RSS {peak_mib} MiB over the whole run exceeds the budget of {budget_mib} MiB"
    );
    eprintln!(
        "RESULT name=memory_stalled_sink rows={rows} stall_s={} peak_rss_mib={stall_peak_mib} \
         run_peak_rss_mib={peak_mib} budget_mib={budget_mib} retained_wal_mib={retained_mib} \
         insert_s={insert_s:.1} drain_s={drain_s:.1}",
        stall.as_secs()
    );
}
