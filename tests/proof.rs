//! The proof of the delivery contract under faults: three concurrent sessions write a random
//! workload (inserts, updates, deletes, truncates, large transactions, out-of-line TOAST values
//! some updates leave unchanged) while the `sluice` binary fans it out to three real sinks at
//! once: Kafka (Avro through the embedded registry), the search server and a PostgreSQL
//! warehouse. Faults are injected under load; afterwards the state rebuilt from each sink (the
//! Kafka topic replayed in order, the index, the target table) must equal the source tables row
//! by row, Kafka must show no per-key reordering, and no run may panic.
//!
//! `SLUICE_PROOF_KILLS` sets how many kill -9s the kill loop makes (default 3 here; the long run
//! in the README uses 50), `SLUICE_PROOF_RESTARTS` how many rounds the restart tests and the
//! server test make (default 3; 20 in the long run), `SLUICE_PROOF_WRITE_PERIOD_MS` the writers'
//! pace (see [`write_period`]). Each test prints one `RESULT` line with its counts.
//!
//! The broker keeps its log in memory in the kill and network tests; the restart test gives it
//! a persistent log (tansu's `s3://` storage on a throwaway S3-compatible server; the pip build
//! of tansu lacks its `postgres://` engine) and runs the schema registry as its own `sluice
//! registry serve` process with file storage, then kills and restarts both under load. The
//! server test stops and crashes the warehouse's PostgreSQL and freezes the search server
//! (SIGSTOP). The search server is never restarted: it keeps its index in memory only, so a
//! restart loses the index by design, which no sink can repair; its outages are covered by the
//! freeze and the proxy's cuts.

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use serde_json::Value as Json;
use tokio_postgres::{Client, NoTls};

use crate::harness::{self, SLOT};
use crate::registry::Registry;
use crate::support::kafka::{self, Delivery, Outage, Replay, ThrowawayKafka};
use crate::support::proxy::{Fault, FaultProxy};
use crate::support::search::ThrowawaySearch;
use crate::support::workload::{hold_while_the_workload_moves_on, Workload, SOURCE_TABLE};
use crate::support::{self, ConfigFile, SluiceProcess, ThrowawayPostgres};
use crate::support::{DEFAULT_DATABASE, SUPERUSER};

const WAIT: Duration = Duration::from_secs(300);
/// The ledger row written last: the Kafka consumer reads until its record arrives.
const SENTINEL: i64 = 900_000_000;
/// Transactions each writer makes at least, faults or not.
const MIN_TRANSACTIONS: usize = 300;
/// Transactions each writer makes at most: bounds the data a long fault can pile up.
const MAX_TRANSACTIONS: usize = 30_000;
/// The writers' pace, one transaction per writer per period (about 1,500 changes/s in all at
/// the default 10 ms): a steady load like a busy application's, not a bulk load that outruns
/// the disk. `SLUICE_PROOF_WRITE_PERIOD_MS` sets it.
fn write_period() -> Duration {
    Duration::from_millis(count_from_env("SLUICE_PROOF_WRITE_PERIOD_MS", 10) as u64)
}
/// The table Kafka is replayed for: Kafka skips truncates (Debezium's default), so the table
/// with truncates (`items`) is checked through the index and the warehouse only.
const KAFKA_TOPIC: &str = "test.public.ledger";
const TABLES: [&str; 2] = ["items", "ledger"];

/// A row as compared across sinks: id, qty, price as text, note, `at` as ISO-8601 UTC.
type Row = (
    i64,
    Option<i64>,
    Option<String>,
    Option<String>,
    Option<String>,
);

/// How many kill -9s the kill loop makes.
fn kill_count() -> usize {
    count_from_env("SLUICE_PROOF_KILLS", 3)
}

/// How many broker and registry restart rounds the restart tests make, and how many server
/// faults the server test makes.
fn restart_count() -> usize {
    count_from_env("SLUICE_PROOF_RESTARTS", 3)
}

fn count_from_env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Everything one proof run needs: the source, the three sinks' servers, optional fault
/// proxies in front of the search server and the warehouse, and the daemon's config.
struct Rig {
    pg: ThrowawayPostgres,
    kafka: ThrowawayKafka,
    search: ThrowawaySearch,
    target: ThrowawayPostgres,
    search_proxy: FaultProxy,
    target_proxy: FaultProxy,
    registry_port: u16,
    config: ConfigFile,
    _dir: tempfile::TempDir,
}

impl Rig {
    async fn start() -> Rig {
        let tables: Vec<String> = TABLES
            .iter()
            .map(|t| {
                format!(
                    "{}; ALTER TABLE {t} ALTER note SET STORAGE EXTERNAL",
                    SOURCE_TABLE.replacen("items", t, 1)
                )
            })
            .collect();
        // `ledger` has a full replica identity: pgoutput then flags every column as a key
        // column, and its events must still be keyed by the primary key alone (nullable
        // columns included, which a key may not hold).
        let pg = support::start_postgres_with(&format!(
            "{}; ALTER TABLE ledger REPLICA IDENTITY FULL",
            tables.join(";")
        ))
        .await;
        // Behind a proxy, so the network test can cut and stall Kafka's connections too.
        let kafka = ThrowawayKafka::start_behind_proxy().await;
        let search = ThrowawaySearch::start().await;
        let target = support::start_postgres().await;
        let search_port: u16 = search.url().rsplit(':').next().unwrap().parse().unwrap();
        let search_proxy = FaultProxy::start(search_port).await;
        let target_proxy = FaultProxy::start(target.port()).await;
        let dir = tempfile::tempdir().unwrap();
        let registry_port = support::free_port();
        let sinks = format!(
            "name = \"kafka\"\ntype = \"kafka\"\nbrokers = \"{brokers}\"\npartitions = 3\n\
             \n[[sink]]\nname = \"search\"\ntype = \"search\"\nurl = \"http://127.0.0.1:{search}\"\n\
             index_settings = {{ max_result_window = 1000000 }}\n\
             \n[[sink]]\nname = \"warehouse\"\ntype = \"postgres\"\nschema = \"mirror\"\n\
             connection = \"postgres://{SUPERUSER}@127.0.0.1:{target}/{DEFAULT_DATABASE}?sslmode=disable\"",
            brokers = kafka.bootstrap(),
            search = search_proxy.port(),
            target = target_proxy.port(),
        );
        let text = harness::config_toml(&pg, &["public.items", "public.ledger"], "")
            .replace(harness::NULL_SINK, &sinks);
        let config = support::write_config(&format!(
            "{text}\n[registry]\nlisten = \"127.0.0.1:{registry_port}\"\nstorage = {:?}\n",
            dir.path().join("registry.json").display().to_string()
        ));
        Rig {
            pg,
            kafka,
            search,
            target,
            search_proxy,
            target_proxy,
            registry_port,
            config,
            _dir: dir,
        }
    }

    /// Swap the in-memory broker for one that keeps its log in an S3-compatible store (or, for
    /// `outage` [`Outage::Down`], for librdkafka's mock cluster, which keeps it in memory), and
    /// the daemon's embedded registry for a `sluice registry serve` process with file storage
    /// on the same port: both can then be taken down and started again without losing what
    /// the replay reads. The kafka sink's producer keeps order as `delivery` says. Call before
    /// the daemon starts.
    async fn with_restartable_broker_and_registry(
        mut self,
        delivery: Delivery,
        outage: Option<Outage>,
    ) -> (Rig, Registry) {
        let text = std::fs::read_to_string(self.config.path()).unwrap();
        let (kafka, mut settings) = if outage == Some(Outage::Down) {
            // The mock cluster cannot create topics: the sink must find them made.
            let kafka = ThrowawayKafka::start_mock();
            for table in TABLES {
                kafka.create_topic(&format!("test.public.{table}"), 3);
            }
            (kafka, "topic_creation = \"require\"\n".to_owned())
        } else {
            (ThrowawayKafka::start_persistent().await, String::new())
        };
        settings.push_str(delivery.sink_setting());
        let brokers = |k: &ThrowawayKafka| format!("brokers = \"{}\"", k.bootstrap());
        let pipeline = text[..text.find("\n[registry]\n").expect("a [registry] section")].replace(
            &brokers(&self.kafka),
            &format!("{}\n{settings}", brokers(&kafka)),
        );
        self.config = support::write_config(&format!(
            "{pipeline}\n[registry]\nurl = \"http://127.0.0.1:{}\"\n",
            self.registry_port
        ));
        self.kafka = kafka;
        let registry = self.start_registry().await;
        (self, registry)
    }

    /// Add `setting` to the search sink's part of the config. Call before the daemon starts.
    fn with_search_setting(mut self, setting: &str) -> Rig {
        const AT: &str = "index_settings = {";
        let text = std::fs::read_to_string(self.config.path()).unwrap();
        assert_eq!(text.matches(AT).count(), 1, "one search sink in the config");
        self.config = support::write_config(&text.replace(AT, &format!("{setting}\n{AT}")));
        self
    }

    /// The registry process on its port, with its schemas from earlier runs.
    async fn start_registry(&self) -> Registry {
        let storage = self._dir.path().join("registry.json");
        Registry::start_on(self.registry_port, Some(storage.to_str().unwrap())).await
    }

    fn spawn(&self) -> SluiceProcess {
        let args = ["run", "--config", self.config.path().to_str().unwrap()];
        SluiceProcess::spawn(&args, &[("RUST_LOG", "info")])
    }

    /// Kill the daemon (-9), keep its log in `logs`, and start a new one once the slot is free.
    async fn kill_and_respawn(
        &self,
        daemon: SluiceProcess,
        logs: &mut Vec<String>,
    ) -> SluiceProcess {
        daemon.kill();
        logs.push(daemon.stderr());
        drop(daemon);
        let client = self.source().await;
        support::wait_slot_released(&client, SLOT, WAIT).await;
        self.spawn()
    }

    async fn source(&self) -> Client {
        self.pg.client(DEFAULT_DATABASE).await.unwrap()
    }

    /// Wait until the slot confirmed the current end of WAL: every sink has everything. A long
    /// run's backlog may take longer than [`WAIT`] to deliver: this fails only when the
    /// confirmed position stops moving for that long.
    async fn wait_all_confirmed(&self, what: &str) {
        let client = self.source().await;
        let end = support::current_wal_lsn(&client).await;
        support::wait_slot_confirmed_while_moving(&client, SLOT, end, what, WAIT).await;
    }

    /// Wait until the slot's confirmed position moved past where it is now: the daemon made
    /// progress through every sink. On timeout, fail with the daemon's log.
    async fn wait_progress(&self, what: &str, daemon: &SluiceProcess) {
        let registry =
            std::fs::read_to_string(self._dir.path().join("registry.json")).unwrap_or_default();
        let client = self.source().await;
        let context = format!("registry:\n{registry}");
        support::wait_slot_progress(&client, SLOT, what, daemon, WAIT, &context).await;
    }
}

/// The writers: three sessions (two on `items`, with truncates, one on `ledger`), each
/// reconnecting by itself when the server restarts, until `stop` is set and each made
/// [`MIN_TRANSACTIONS`]. The counter counts committed transactions.
struct Writers {
    stop: Arc<AtomicBool>,
    committed: Arc<AtomicUsize>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Writers {
    fn start(url: String) -> Writers {
        let stop = Arc::new(AtomicBool::new(false));
        let committed = Arc::new(AtomicUsize::new(0));
        let workloads = [
            Workload::new(0x5eed_0001)
                .on_table("items")
                .with_truncates()
                .with_large_values(),
            Workload::new(0x5eed_0002)
                .on_table("items")
                .ids_from(50_000_000)
                .with_large_values(),
            Workload::new(0x5eed_0003)
                .on_table("ledger")
                .with_large_values(),
        ];
        let tasks = workloads
            .into_iter()
            .map(|workload| {
                tokio::spawn(write(
                    workload,
                    url.clone(),
                    stop.clone(),
                    committed.clone(),
                ))
            })
            .collect();
        Writers {
            stop,
            committed,
            tasks,
        }
    }

    /// Transactions committed so far.
    fn committed(&self) -> usize {
        self.committed.load(Ordering::Relaxed)
    }

    /// Stop writing once each writer made its minimum; returns the transactions committed.
    async fn finish(self) -> usize {
        self.stop.store(true, Ordering::Relaxed);
        let committed = self.committed.clone();
        for task in self.tasks {
            task.await.unwrap();
        }
        committed.load(Ordering::Relaxed)
    }
}

async fn connect(url: &str) -> Client {
    loop {
        if let Ok((client, connection)) = tokio_postgres::connect(url, NoTls).await {
            tokio::spawn(connection);
            return client;
        }
        // The server is restarting: try again shortly (this is a writer, not an assertion).
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn write(
    mut workload: Workload,
    url: String,
    stop: Arc<AtomicBool>,
    count: Arc<AtomicUsize>,
) {
    let mut client = connect(&url).await;
    let mut pace = tokio::time::interval(write_period());
    let mut done = 0;
    while done < MAX_TRANSACTIONS && (done < MIN_TRANSACTIONS || !stop.load(Ordering::Relaxed)) {
        pace.tick().await;
        match client.batch_execute(&workload.transaction()).await {
            Ok(()) => {
                done += 1;
                count.fetch_add(1, Ordering::Relaxed);
            }
            // A restart cut the session (the transaction may or may not have committed; the
            // source table stays the truth either way), or a concurrent truncate made an
            // update miss: reconnect when needed and go on.
            Err(_) if client.is_closed() => client = connect(&url).await,
            Err(_) => {}
        }
    }
}

async fn source_rows(client: &Client, table: &str) -> Vec<Row> {
    rows_of(client, table, "true").await
}

async fn rows_of(client: &Client, table: &str, filter: &str) -> Vec<Row> {
    let sql = format!(
        "SELECT id, qty::int8, price::text, note, \
         to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') \
         FROM {table} WHERE {filter} ORDER BY id"
    );
    match client.query(&sql, &[]).await {
        Ok(rows) => rows
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4)))
            .collect(),
        Err(_) => Vec::new(),
    }
}

fn text(v: &Json) -> Option<String> {
    match v {
        Json::Null => None,
        Json::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

/// A document or an after image as a row.
fn row_of(id: i64, fields: &Json) -> Row {
    (
        id,
        fields["qty"].as_i64(),
        text(&fields["price"]),
        text(&fields["note"]),
        text(&fields["at"]),
    )
}

async fn index_rows(search: &ThrowawaySearch, table: &str) -> Vec<Row> {
    search.refresh(&format!("test.public.{table}")).await;
    let mut rows: Vec<Row> = search
        .documents(&format!("test.public.{table}"))
        .await
        .iter()
        .map(|(id, source, _)| row_of(id.parse().unwrap_or(-1), source))
        .collect();
    rows.sort_by_key(|r| r.0);
    rows
}

async fn kafka_replay(rig: &Rig) -> Replay {
    let registry = format!("http://127.0.0.1:{}", rig.registry_port);
    let records = rig
        .kafka
        .read_until_sentinel(&registry, "read_uncommitted", SENTINEL, KAFKA_TOPIC)
        .await;
    kafka::replay(&records)
}

/// Show where two row sets differ (ids only, with the first few differences in full).
fn difference(expected: &[Row], actual: &[Row]) -> String {
    let missing: Vec<_> = expected.iter().filter(|r| !actual.contains(r)).collect();
    let extra: Vec<_> = actual.iter().filter(|r| !expected.contains(r)).collect();
    format!(
        "{} vs {} rows; missing or different ({}): {:?}; extra or different ({}): {:?}",
        expected.len(),
        actual.len(),
        missing.len(),
        missing.iter().take(3).collect::<Vec<_>>(),
        extra.len(),
        extra.iter().take(3).collect::<Vec<_>>()
    )
}

/// Finish the workload, write the sentinel, wait until everything is confirmed, then compare
/// every sink with the source. Returns (transactions, rows checked, duplicates seen in Kafka).
async fn check_every_sink(rig: &Rig, writers: Writers) -> (usize, usize, usize) {
    let transactions = writers.finish().await;
    let client = rig.source().await;
    // A truncate late in the workload can leave a table nearly empty: a last transaction gives
    // every table rows to compare, then the sentinel closes the stream.
    for table in TABLES {
        client
            .batch_execute(&format!(
                "INSERT INTO {table} SELECT {SENTINEL} - g, g, g / 100.0, 'last ' || g, \
                 to_timestamp(1700000000 + g) FROM generate_series(1, 100) g"
            ))
            .await
            .unwrap();
    }
    client
        .batch_execute(&format!(
            "INSERT INTO ledger VALUES ({SENTINEL}, 0, 0, 'end', to_timestamp(1700000000))"
        ))
        .await
        .unwrap();
    rig.wait_all_confirmed("every change of the workload is confirmed")
        .await;
    let target = rig.target.client(DEFAULT_DATABASE).await.unwrap();
    let mut checked = 0;
    for table in TABLES {
        let expected = source_rows(&client, table).await;
        assert!(expected.len() > 50, "the workload leaves rows in {table}");
        let warehouse = rows_of(&target, &format!("mirror.{table}"), "NOT _deleted").await;
        assert!(
            warehouse == expected,
            "the warehouse's {table} equals the source: {}",
            difference(&expected, &warehouse)
        );
        let index = index_rows(&rig.search, table).await;
        assert!(
            index == expected,
            "the index of {table} equals the source: {}",
            difference(&expected, &index)
        );
        checked += expected.len() * 2;
    }
    let expected = source_rows(&client, "ledger").await;
    let replay = kafka_replay(rig).await;
    assert!(
        replay.reordered.is_empty(),
        "no per-key reordering in Kafka: {:?}",
        &replay.reordered[..replay.reordered.len().min(5)]
    );
    let rows: Vec<Row> = replay
        .state
        .iter()
        .map(|(id, after)| row_of(*id, after))
        .collect();
    assert!(
        rows == expected,
        "replaying {KAFKA_TOPIC} ({} records) gives the source's ledger: {}",
        replay.records,
        difference(&expected, &rows)
    );
    (transactions, checked + expected.len(), replay.duplicates)
}

/// [`check_every_sink`]; when a check fails and `SLUICE_PROOF_LOG_DIR` is set, every daemon
/// run's log (`earlier`, then `daemon`'s) and the broker's are left there first, to tell which
/// side lost or resent a record.
async fn check_keeping_logs(
    rig: &Rig,
    writers: Writers,
    earlier: &[String],
    daemon: &SluiceProcess,
) -> (usize, usize, usize) {
    let checked = AssertUnwindSafe(check_every_sink(rig, writers))
        .catch_unwind()
        .await;
    checked.unwrap_or_else(|panic| {
        if let Some(dir) = std::env::var_os("SLUICE_PROOF_LOG_DIR") {
            let dir = std::path::PathBuf::from(dir);
            std::fs::create_dir_all(&dir).expect("create SLUICE_PROOF_LOG_DIR");
            let last = daemon.stderr();
            for (i, log) in earlier.iter().chain(std::iter::once(&last)).enumerate() {
                std::fs::write(dir.join(format!("run-{i:03}.log")), log).expect("write a log");
            }
            std::fs::write(dir.join("broker.log"), rig.kafka.log()).expect("write a log");
            eprintln!("logs kept in {}", dir.display());
        }
        std::panic::resume_unwind(panic)
    })
}

/// Stop the daemon cleanly and make sure no run of it panicked.
async fn stop_daemon(mut daemon: SluiceProcess, earlier: &[String]) {
    for log in earlier {
        assert!(!log.contains("panicked"), "no run panics:\n{log}");
    }
    daemon.stop_cleanly(Duration::from_secs(60)).await;
}

#[tokio::test]
async fn every_sink_replays_to_the_source_after_kills_and_a_source_restart() {
    let mut rig = Rig::start().await;
    let mut daemon = rig.spawn();
    harness::wait_streaming(&rig.pg).await;
    let writers = Writers::start(rig.pg.url(SUPERUSER, DEFAULT_DATABASE));
    let mut logs = Vec::new();
    let mut faults = 0;

    let mut restart_s = 0.0;
    for round in 0..kill_count() {
        rig.wait_progress(&format!("progress before kill {round}"), &daemon)
            .await;
        daemon = rig.kill_and_respawn(daemon, &mut logs).await;
        faults += 1;
        if round == 0 {
            // The source restarts under load after the first kill. A fast shutdown waits until
            // the daemon confirmed all WAL sent to it (README "Operations"), so it comes early:
            // after 50 kills the backlog drains at the test search server's pace and took
            // longer than the restart's 10 minutes.
            rig.wait_progress("progress before the source restarts", &daemon)
                .await;
            let restart = std::time::Instant::now();
            rig.pg.restart().await.expect("restart the source");
            restart_s = restart.elapsed().as_secs_f64();
            faults += 1;
            rig.wait_progress("progress after the source restarted", &daemon)
                .await;
        }
    }

    let (transactions, checked, duplicates) =
        check_keeping_logs(&rig, writers, &logs, &daemon).await;
    stop_daemon(daemon, &logs).await;
    eprintln!(
        "RESULT name=proof_kills faults={faults} transactions={transactions} \
         rows_checked={checked} duplicates={duplicates} \
         write_period_ms={period} source_restart_s={restart_s:.1}",
        period = write_period().as_millis()
    );
}

#[tokio::test]
async fn every_sink_replays_to_the_source_through_cut_and_stalled_connections() {
    let rig = Rig::start().await;
    let daemon = rig.spawn();
    harness::wait_streaming(&rig.pg).await;
    let writers = Writers::start(rig.pg.url(SUPERUSER, DEFAULT_DATABASE));
    let mut faults = 0;

    // Each sink's connections are cut once and stalled once.
    let rounds = [
        (Sink::Search, Fault::Cut),
        (Sink::Target, Fault::Stall),
        (Sink::Kafka, Fault::Cut),
        (Sink::Search, Fault::Stall),
        (Sink::Target, Fault::Cut),
        (Sink::Kafka, Fault::Stall),
    ];
    for (round, (sink, fault)) in rounds.into_iter().enumerate() {
        rig.wait_progress(&format!("progress before fault {round}"), &daemon)
            .await;
        let proxy = match sink {
            Sink::Kafka => rig.kafka.proxy(),
            Sink::Search => &rig.search_proxy,
            Sink::Target => &rig.target_proxy,
        };
        let cut_before = proxy.cut_connections();
        proxy.set(fault);
        if fault == Fault::Cut {
            // The cut closes the sink's open connections: it hits the daemon's client.
            support::wait_until("the cut closes open connections", WAIT, || async {
                proxy.cut_connections() > cut_before
            })
            .await;
        }
        // Hold the fault while the source moves on: the sinks fall behind the workload.
        hold_while_the_workload_moves_on(|| writers.committed()).await;
        proxy.set(Fault::Pass);
        faults += 1;
    }

    let (transactions, checked, duplicates) = check_keeping_logs(&rig, writers, &[], &daemon).await;
    stop_daemon(daemon, &[]).await;
    eprintln!(
        "RESULT name=proof_network faults={faults} transactions={transactions} \
         rows_checked={checked} duplicates={duplicates} \
         write_period_ms={period}",
        period = write_period().as_millis()
    );
}

/// A sink whose connections the network test cuts or stalls.
#[derive(Clone, Copy)]
enum Sink {
    Kafka,
    Search,
    Target,
}

/// A fault of a sink's own server, in the server test.
#[derive(Clone, Copy, Debug)]
enum ServerFault {
    /// The warehouse's PostgreSQL stopped (fast shutdown), then started again.
    WarehouseStop,
    /// The warehouse's PostgreSQL crashed (immediate shutdown), then started again: crash
    /// recovery keeps what it flushed, no more. Throwaway servers commit with
    /// `synchronous_commit = off`, so only the sink's own durable commits keep its batches.
    WarehouseCrash,
    /// The search server frozen (SIGSTOP), then thawed (SIGCONT).
    SearchFreeze,
}

impl ServerFault {
    /// The sink whose server the fault hits, as the config names it.
    fn sink(self) -> &'static str {
        match self {
            ServerFault::WarehouseStop | ServerFault::WarehouseCrash => "warehouse",
            ServerFault::SearchFreeze => "search",
        }
    }
}

/// The sinks' own servers go down under load, each until the daemon warned about its sink and
/// the workload moved on: the warehouse stopped and crashed, the search server frozen
/// mid-request (with a 5 s request timeout, so the sink gives up on requests the server answers
/// after it thaws).
#[tokio::test]
async fn every_sink_replays_to_the_source_after_the_sink_servers_stop_crash_and_freeze() {
    let mut rig = Rig::start()
        .await
        .with_search_setting("request_timeout_ms = 5000");
    let daemon = rig.spawn();
    harness::wait_streaming(&rig.pg).await;
    let writers = Writers::start(rig.pg.url(SUPERUSER, DEFAULT_DATABASE));
    let mut faults = 0;

    // `SLUICE_PROOF_RESTARTS` rounds (3 by default: each fault once), the faults in turn.
    let faults_in_turn = [
        ServerFault::WarehouseStop,
        ServerFault::SearchFreeze,
        ServerFault::WarehouseCrash,
    ];
    for round in 0..restart_count() {
        let fault = faults_in_turn[round % faults_in_turn.len()];
        rig.wait_progress(&format!("progress before server fault {round}"), &daemon)
            .await;
        let sink = fault.sink();
        let warned_before = daemon.warnings_about_sink(sink);
        match fault {
            ServerFault::WarehouseStop => rig.target.stop_fast().await.expect("stop the warehouse"),
            ServerFault::WarehouseCrash => rig.target.crash().await.expect("crash the warehouse"),
            ServerFault::SearchFreeze => rig.search.freeze(),
        }
        // Hold the fault until it hit the daemon and the sink fell behind the workload.
        support::wait_until(
            &format!("the daemon warns about the {sink} sink during {fault:?}"),
            WAIT,
            || async { daemon.warnings_about_sink(sink) > warned_before },
        )
        .await;
        hold_while_the_workload_moves_on(|| writers.committed()).await;
        match fault {
            ServerFault::SearchFreeze => rig.search.thaw(),
            _ => rig
                .target
                .start_again()
                .await
                .expect("start the warehouse again"),
        }
        faults += 1;
    }

    let (transactions, checked, duplicates) = check_keeping_logs(&rig, writers, &[], &daemon).await;
    stop_daemon(daemon, &[]).await;
    eprintln!(
        "RESULT name=proof_sink_servers faults={faults} transactions={transactions} \
         rows_checked={checked} duplicates={duplicates} \
         write_period_ms={period}",
        period = write_period().as_millis()
    );
}

/// Rounds of restarts under load: the broker taken down as `broker` says (if at all) and
/// started again with its log;
/// the registry killed, and the daemon with it, the new daemon waiting for the registry to
/// come back. The kafka sink's producer keeps order as `delivery` says. Prints the RESULT line
/// `name`.
async fn replay_after_restarts(name: &str, broker: Option<Outage>, delivery: Delivery) {
    let (mut rig, mut registry) = Rig::start()
        .await
        .with_restartable_broker_and_registry(delivery, broker)
        .await;
    let mut daemon = rig.spawn();
    harness::wait_streaming(&rig.pg).await;
    let writers = Writers::start(rig.pg.url(SUPERUSER, DEFAULT_DATABASE));
    let mut logs = Vec::new();
    let mut faults = 0;

    for round in 0..restart_count() {
        if let Some(outage) = broker {
            // The broker goes down under load and comes back with its log.
            rig.wait_progress(&format!("progress before broker restart {round}"), &daemon)
                .await;
            if outage == Outage::Down {
                // Held down (take_down waits until connections are refused) while the workload
                // moves on: the daemon's producer sends into the outage, and its last batches'
                // answers are lost with the connections. No wait on the daemon's log: its
                // client leaves out a report identical to its last one, so a later round may
                // print nothing new for a minute while the backlog piles up.
                rig.kafka.take_down().await;
                hold_while_the_workload_moves_on(|| writers.committed()).await;
                rig.kafka.bring_up();
            } else {
                rig.kafka.go_down_and_up(outage).await;
            }
            faults += 1;
        }
        rig.wait_progress(
            &format!("progress before registry restart {round}"),
            &daemon,
        )
        .await;

        // The registry dies, and so does the daemon while it is down: the new daemon must wait
        // for the registry to look its schemas up again before anything reaches Kafka.
        registry.process.kill();
        registry.process.wait_exit(WAIT).await;
        logs.push(registry.process.stderr());
        daemon = rig.kill_and_respawn(daemon, &mut logs).await;
        support::wait_until(
            "the new daemon finds the registry down and retries",
            WAIT,
            || async { daemon.stderr().contains("schema registry unavailable") },
        )
        .await;
        registry = rig.start_registry().await;
        faults += 1;
    }

    let (transactions, checked, duplicates) =
        check_keeping_logs(&rig, writers, &logs, &daemon).await;
    stop_daemon(daemon, &logs).await;
    eprintln!(
        "RESULT name={name} faults={faults} transactions={transactions} \
         rows_checked={checked} duplicates={duplicates} \
         write_period_ms={period}",
        period = write_period().as_millis()
    );
}

#[tokio::test]
async fn every_sink_replays_to_the_source_after_registry_and_daemon_restarts() {
    replay_after_restarts("proof_registry_restarts", None, Delivery::Idempotent).await;
}

/// The broker proofs with the producer the test broker keeps every acknowledged record of
/// (`kafka_broker` checks that without sluice): `idempotence = false`.
#[tokio::test]
async fn every_sink_replays_to_the_source_after_broker_stops_with_a_producer_without_idempotence() {
    replay_after_restarts(
        "proof_broker_stops_one_in_flight",
        Some(Outage::Stop),
        Delivery::OneInFlight,
    )
    .await;
}

#[tokio::test]
async fn every_sink_replays_to_the_source_after_broker_kills_with_a_producer_without_idempotence() {
    replay_after_restarts(
        "proof_broker_kills_one_in_flight",
        Some(Outage::Kill),
        Delivery::OneInFlight,
    )
    .await;
}

/// The broker proof with the idempotent producer (the default), in CI: against librdkafka's mock
/// cluster, the one broker here that keeps every record it acknowledged while it goes down under
/// that producer (`kafka_broker` checks it without sluice). Each round its broker is taken down
/// (connections cut, new ones refused), held down while the workload moves on, and brought
/// back. The mock checks no sequence numbers for a producer without a transactional id, so a
/// batch sent again is written again: the replay counts those as duplicates.
#[tokio::test]
async fn every_sink_replays_to_the_source_after_mock_broker_outages_with_the_idempotent_producer() {
    replay_after_restarts(
        "proof_mock_broker_outages",
        Some(Outage::Down),
        Delivery::Idempotent,
    )
    .await;
}

/// Not in CI: with the idempotent producer (the default) the test broker loses acknowledged
/// records when it is stopped or killed under load. It answers "duplicate sequence number" for
/// a batch whose sequence it recorded but whose records it did not store, and the client takes
/// that as delivered. The redelivery after the daemon's restart then lands an older change of a
/// key after a newer one, or nothing does. `kafka_broker` shows the broker doing so without
/// sluice. Kept for a broker that keeps what it acknowledges; see README. The same proof runs in
/// CI against the mock cluster (above).
#[tokio::test]
#[ignore = "the test broker loses an idempotent producer's records when stopped (see README)"]
async fn every_sink_replays_to_the_source_after_broker_stops_with_the_idempotent_producer() {
    replay_after_restarts(
        "proof_broker_stops",
        Some(Outage::Stop),
        Delivery::Idempotent,
    )
    .await;
}

#[tokio::test]
#[ignore = "the test broker loses an idempotent producer's records when killed (see README)"]
async fn every_sink_replays_to_the_source_after_broker_kills_with_the_idempotent_producer() {
    replay_after_restarts(
        "proof_broker_kills",
        Some(Outage::Kill),
        Delivery::Idempotent,
    )
    .await;
}
