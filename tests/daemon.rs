//! The `sluice` binary as users run it: config errors, graceful stop, crash and restart, and
//! memory bounds on a huge transaction.

use std::collections::HashMap;
use std::io::BufRead;
use std::time::Duration;

use sluice_api::Lsn;

use crate::harness::{self, SLOT};
use crate::support::{self, SluiceProcess, ThrowawayOptions, ThrowawayPostgres, DEFAULT_DATABASE};

pub(crate) const WAIT: Duration = Duration::from_secs(120);

/// A daemon config with a JSON-lines file sink at `events` instead of the null sink.
pub(crate) fn file_sink_config(
    pg: &ThrowawayPostgres,
    events: &std::path::Path,
    extra_source: &str,
) -> String {
    harness::with_file_sink(
        &harness::config_toml(pg, &["public.items"], extra_source),
        events,
    )
}

/// Every line of the JSON-lines file as `(id, source.lsn)`.
pub(crate) fn read_events(path: &std::path::Path) -> Vec<(i64, u64)> {
    let Ok(file) = std::fs::File::open(path) else {
        return Vec::new();
    };
    std::io::BufReader::new(file)
        .lines()
        .map_while(Result::ok)
        .filter_map(|line| {
            let json: serde_json::Value = serde_json::from_str(&line).ok()?;
            Some((
                json["after"]["id"].as_i64()?,
                json["source"]["lsn"].as_u64()?,
            ))
        })
        .collect()
}

pub(crate) fn line_count(path: &std::path::Path) -> usize {
    std::fs::File::open(path).map_or(0, |f| std::io::BufReader::new(f).lines().count())
}

#[tokio::test]
async fn malformed_config_lists_every_problem_and_exits_with_the_config_code() {
    let config = support::write_config(
        r#"
[pipeline]
name = "bad name!"
max_batch_events = "many"

[source]
type = "postgres"
tables = []
snapshot_mode = "sometimes"
colour = "blue"

[[sink]]
name = "a"
type = "file"
"#,
    );
    let mut daemon =
        SluiceProcess::spawn(&["run", "--config", config.path().to_str().unwrap()], &[]);
    let status = daemon.wait_exit(Duration::from_secs(30)).await;
    let stderr = daemon.stderr();
    assert_eq!(status.code(), Some(2), "{stderr}");
    for key in [
        "pipeline.name",
        "pipeline.max_batch_events",
        "source.connection",
        "source.tables",
        "source.snapshot_mode",
        "source.colour",
        "sink[0].path",
    ] {
        assert!(
            stderr.contains(key),
            "no problem reported for {key}:\n{stderr}"
        );
    }
}

#[tokio::test]
async fn sigterm_drains_confirms_and_exits_zero() {
    let pg = support::start_postgres_with("CREATE TABLE items (id int PRIMARY KEY)").await;
    let dir = tempfile::tempdir().unwrap();
    let events = dir.path().join("events.jsonl");
    let config = support::write_config(&file_sink_config(&pg, &events, ""));
    let mut daemon =
        SluiceProcess::spawn(&["run", "--config", config.path().to_str().unwrap()], &[]);
    harness::wait_streaming(&pg).await;
    let client = pg.client(DEFAULT_DATABASE).await.unwrap();
    client
        .batch_execute("INSERT INTO items SELECT generate_series(1, 1000)")
        .await
        .unwrap();
    let end = support::current_wal_lsn(&client).await;
    support::wait_until("the daemon wrote every insert", WAIT, || async {
        line_count(&events) >= 1000
    })
    .await;
    daemon.stop_cleanly(Duration::from_secs(30)).await;
    let confirmed = support::slot_confirmed_flush_lsn(&client, SLOT)
        .await
        .unwrap();
    assert!(
        confirmed >= end,
        "confirmed {confirmed} before exit, inserts ended at {end}"
    );
    let ids: Vec<i64> = read_events(&events).into_iter().map(|(id, _)| id).collect();
    assert_eq!(ids, (1..=1000).collect::<Vec<_>>());
}

#[tokio::test]
async fn a_killed_daemon_restarts_and_repeats_only_unacknowledged_changes() {
    let pg = support::start_postgres_with("CREATE TABLE items (id int PRIMARY KEY)").await;
    let dir = tempfile::tempdir().unwrap();
    let events = dir.path().join("events.jsonl");
    let config = support::write_config(&file_sink_config(&pg, &events, ""));
    let args = ["run", "--config", config.path().to_str().unwrap()];
    let daemon = SluiceProcess::spawn(&args, &[]);
    harness::wait_streaming(&pg).await;

    const ROWS: i64 = 3000;
    let writer = {
        let client = pg.client(DEFAULT_DATABASE).await.unwrap();
        tokio::spawn(async move {
            for chunk in 0..(ROWS / 10) {
                let sql = format!(
                    "INSERT INTO items SELECT generate_series({}, {})",
                    chunk * 10 + 1,
                    chunk * 10 + 10
                );
                client.batch_execute(&sql).await.unwrap();
            }
        })
    };
    support::wait_until("some changes are delivered", WAIT, || async {
        line_count(&events) >= 500
    })
    .await;
    daemon.kill();
    drop(daemon);
    let client = pg.client(DEFAULT_DATABASE).await.unwrap();
    support::wait_slot_released(&client, SLOT, WAIT).await;
    let confirmed_at_kill = support::slot_confirmed_flush_lsn(&client, SLOT)
        .await
        .unwrap();
    writer.await.unwrap();

    let mut daemon = SluiceProcess::spawn(&args, &[]);
    support::wait_until("every row is delivered after the restart", WAIT, || async {
        let ids: std::collections::HashSet<i64> =
            read_events(&events).into_iter().map(|(id, _)| id).collect();
        ids.len() as i64 == ROWS
    })
    .await;
    daemon.stop_cleanly(Duration::from_secs(30)).await;

    let mut seen: HashMap<i64, Vec<u64>> = HashMap::new();
    for (id, lsn) in read_events(&events) {
        seen.entry(id).or_default().push(lsn);
    }
    assert_eq!(seen.len() as i64, ROWS, "nothing lost");
    for (id, lsns) in &seen {
        if lsns.len() > 1 {
            assert!(
                Lsn(lsns[0]) >= confirmed_at_kill,
                "row {id} at {} was repeated though the slot had confirmed {confirmed_at_kill}",
                Lsn(lsns[0])
            );
        }
    }
}

/// A cluster whose server streams transactions in chunks (1 MB of decoding memory), with
/// `items (id int PRIMARY KEY, pad text)`.
pub(crate) async fn start_streaming_items() -> ThrowawayPostgres {
    support::start_streaming_postgres("1MB", "CREATE TABLE items (id int PRIMARY KEY, pad text)")
        .await
}

/// A streaming daemon writing to the file sink `events`, with `stream_buffer_bytes` of memory
/// for streamed transactions and `spill_dir` beyond it; with its config, which lives as long as
/// the daemon, and the base URL of its HTTP endpoint.
pub(crate) async fn spawn_spilling_daemon(
    pg: &ThrowawayPostgres,
    events: &std::path::Path,
    stream_buffer_bytes: u64,
    spill_dir: &std::path::Path,
) -> (SluiceProcess, support::ConfigFile, String) {
    let extra = format!(
        "stream_buffer_bytes = {stream_buffer_bytes}\nspill_dir = {:?}",
        spill_dir.display().to_string()
    );
    let config = support::write_config(&file_sink_config(pg, events, &extra));
    let listen = format!("127.0.0.1:{}", support::free_port());
    let daemon = SluiceProcess::spawn(
        &["run", "--config", config.path().to_str().unwrap()],
        &[(support::HTTP_LISTEN_VARIABLE, &listen)],
    );
    harness::wait_streaming(pg).await;
    (daemon, config, format!("http://{listen}"))
}

#[tokio::test]
async fn a_million_row_transaction_streams_through_with_memory_bounded_by_the_budget() {
    let pg = start_streaming_items().await;
    let dir = tempfile::tempdir().unwrap();
    let events = dir.path().join("events.jsonl");
    let budget_mib = 8;
    let (mut daemon, _config, _http) =
        spawn_spilling_daemon(&pg, &events, budget_mib << 20, dir.path()).await;
    let client = pg.client(DEFAULT_DATABASE).await.unwrap();
    client
        .batch_execute("INSERT INTO items SELECT g, 'row ' || g FROM generate_series(1, 1000000) g")
        .await
        .unwrap();
    let end = support::current_wal_lsn(&client).await;
    support::wait_slot_confirmed(
        &client,
        SLOT,
        end,
        "the daemon confirms the whole transaction",
        Duration::from_secs(300),
    )
    .await;
    let peak_mib = daemon.peak_rss_kib().expect("the daemon is alive") / 1024;
    daemon.stop_cleanly(Duration::from_secs(60)).await;
    assert_eq!(
        line_count(&events),
        1_000_000,
        "every row of the transaction arrived once"
    );
    // The budget holds the streamed transaction; the rest is the queues of in-flight batches
    // and the process itself.
    assert!(
        peak_mib < budget_mib + 72,
        "peak RSS {peak_mib} MiB with an {budget_mib} MiB stream budget"
    );
}

#[tokio::test]
async fn check_names_what_to_change_and_exits_with_the_check_code() {
    let options = ThrowawayOptions {
        extra_conf: vec!["wal_level = replica".into()],
        ..ThrowawayOptions::default()
    };
    let pg = ThrowawayPostgres::start(options).await.unwrap();
    pg.execute("CREATE TABLE items (id int PRIMARY KEY); CREATE TABLE no_key (v text)")
        .await
        .unwrap();
    let toml = harness::config_toml(&pg, &["public.*"], "");
    let config = support::write_config(&toml);
    let mut check =
        SluiceProcess::spawn(&["check", "--config", config.path().to_str().unwrap()], &[]);
    let status = check.wait_exit(Duration::from_secs(60)).await;
    let report = check.stdout();
    assert_eq!(status.code(), Some(3), "{report}\n{}", check.stderr());
    assert!(
        report.contains("ALTER SYSTEM SET wal_level = logical"),
        "{report}"
    );
    assert!(
        report.contains("no_key"),
        "the table without a key is named: {report}"
    );
    assert!(report.contains("REPLICA IDENTITY FULL"), "{report}");
}

#[tokio::test]
async fn json_logs_are_one_object_per_line_and_never_show_the_password() {
    use crate::support::{PasswordEncryption, ThrowawayUser};
    let password = "hunter2-do-not-log";
    let options = ThrowawayOptions {
        extra_hba: vec![
            "host all app_user 127.0.0.1/32 scram-sha-256".into(),
            "host replication app_user 127.0.0.1/32 scram-sha-256".into(),
        ],
        users: vec![ThrowawayUser::new("app_user")
            .with_password(password, PasswordEncryption::Scram)
            .replication()
            .superuser()],
        ..ThrowawayOptions::default()
    };
    let pg = ThrowawayPostgres::start(options).await.unwrap();
    pg.execute("CREATE TABLE items (id int PRIMARY KEY)")
        .await
        .unwrap();
    let toml = harness::config_toml(&pg, &["public.items"], "")
        .replace("postgres://postgres@", "postgres://app_user@")
        + "\n[log]\nformat = \"json\"\nlevel = \"debug\"\n";
    let config = support::write_config(&toml);
    let mut daemon = SluiceProcess::spawn(
        &["run", "--config", config.path().to_str().unwrap()],
        &[("SLUICE__SOURCE__PASSWORD", password)],
    );
    harness::wait_streaming(&pg).await;
    daemon.stop_cleanly(Duration::from_secs(30)).await;
    let logs = daemon.stderr() + &daemon.stdout();
    assert!(!logs.contains(password), "the password reached the logs");
    let lines: Vec<serde_json::Value> = logs
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert!(
        lines
            .iter()
            .any(|l| l["fields"]["message"] == "streaming changes"),
        "{logs}"
    );
}
