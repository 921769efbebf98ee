//! The daemon's HTTP endpoint as operators use it: probes follow the source, metrics move with
//! real changes and snapshots, `sluice status` prints what `/status` says, pause holds delivery
//! without losing anything, the admin token guards the admin endpoints, and a snapshot
//! requested over HTTP delivers the table's rows.

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::time::Duration;

use sluice::metrics::names;
use sluice::metrics::text::find_sample;
use sluice_api::Lsn;

use crate::harness::{self, SLOT};
use crate::support::{
    self, http, SluiceProcess, ThrowawayPostgres, DEFAULT_DATABASE, HTTP_LISTEN_VARIABLE,
};

const WAIT: Duration = Duration::from_secs(120);

/// A daemon writing to a JSON-lines file sink at `events`, its HTTP endpoint on a free port.
struct Daemon {
    process: SluiceProcess,
    base: String,
    listen: String,
    config: support::ConfigFile,
    events: PathBuf,
    _dir: tempfile::TempDir,
}

impl Daemon {
    /// Start `sluice run` capturing `tables` with the file sink; `edit` changes the config text
    /// ([`harness::config_toml`] with `extra_source`) before it is written.
    fn start(
        pg: &ThrowawayPostgres,
        tables: &[&str],
        extra_source: &str,
        edit: impl FnOnce(String) -> String,
    ) -> Daemon {
        let dir = tempfile::tempdir().unwrap();
        let events = dir.path().join("events.jsonl");
        let toml =
            harness::with_file_sink(&harness::config_toml(pg, tables, extra_source), &events);
        let listen = format!("127.0.0.1:{}", support::free_port());
        let config = support::write_config(&edit(toml));
        let process = SluiceProcess::spawn(
            &["run", "--config", config.path().to_str().unwrap()],
            &[(HTTP_LISTEN_VARIABLE, &listen)],
        );
        Daemon {
            process,
            base: format!("http://{listen}"),
            listen,
            config,
            events,
            _dir: dir,
        }
    }

    /// Run a `sluice` client command against this daemon's config; its exit status and stdout.
    async fn cli(&self, args: &[&str]) -> (std::process::ExitStatus, String, String) {
        let mut all = args.to_vec();
        all.extend(["--config", self.config.path().to_str().unwrap()]);
        let mut command = SluiceProcess::spawn(&all, &[(HTTP_LISTEN_VARIABLE, &self.listen)]);
        let status = command.wait_exit(Duration::from_secs(30)).await;
        (status, command.stdout(), command.stderr())
    }

    async fn get(&self, path: &str) -> (u16, String) {
        http::get(&self.base, path).await
    }

    async fn post(&self, path: &str, token: Option<&str>, body: &str) -> (u16, String) {
        let mut builder = http::client()
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/json")
            .body(body.to_owned());
        if let Some(token) = token {
            builder = builder.bearer_auth(token);
        }
        http::request(builder).await
    }

    /// One sample of `/metrics`; `None` when absent or the endpoint is not up.
    async fn metric(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        http::metric(&self.base, name, labels).await
    }

    async fn wait_metric(&self, what: &str, name: &str, labels: &[(&str, &str)], want: f64) {
        support::wait_until(what, WAIT, || async {
            self.metric(name, labels).await == Some(want)
        })
        .await;
    }

    async fn wait_up(&self) {
        support::wait_until("the HTTP endpoint answers", WAIT, || async {
            self.get("/health").await.0 == 200
        })
        .await;
    }

    async fn stop(mut self) {
        self.process.stop_cleanly(Duration::from_secs(60)).await;
    }
}

/// Every line of the file sink's output as JSON.
fn file_events(path: &Path) -> Vec<serde_json::Value> {
    let Ok(file) = std::fs::File::open(path) else {
        return Vec::new();
    };
    std::io::BufReader::new(file)
        .lines()
        .map_while(Result::ok)
        .filter_map(|line| serde_json::from_str(&line).ok())
        .collect()
}

#[tokio::test]
async fn readiness_follows_the_source_connection_while_health_stays_up() {
    let mut pg = support::start_postgres_with("CREATE TABLE items (id int PRIMARY KEY)").await;
    let daemon = Daemon::start(&pg, &["public.items"], "", |toml| toml);
    daemon.wait_up().await;
    assert_eq!(daemon.get("/health").await, (200, "ok".to_owned()));
    support::wait_until("the daemon is ready", WAIT, || async {
        daemon.get("/ready").await.0 == 200
    })
    .await;
    assert_eq!(daemon.metric(names::SOURCE_CONNECTED, &[]).await, Some(1.0));

    pg.stop_fast().await.unwrap();
    support::wait_until("readiness fails without the source", WAIT, || async {
        daemon.get("/ready").await.0 == 503
    })
    .await;
    let (_, body) = daemon.get("/ready").await;
    let reason: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(reason["ready"], false);
    assert!(
        reason["reason"].as_str().unwrap().contains("source"),
        "{body}"
    );
    assert_eq!(daemon.get("/health").await.0, 200, "still alive");
    assert_eq!(daemon.metric(names::UP, &[]).await, Some(1.0));

    pg.start_again().await.unwrap();
    support::wait_until("the daemon is ready again", WAIT, || async {
        daemon.get("/ready").await.0 == 200
    })
    .await;
    daemon.stop().await;
}

#[tokio::test]
async fn metrics_count_each_tables_changes_and_lag_returns_to_zero_once_acknowledged() {
    let pg = support::start_postgres_with(
        "CREATE TABLE items (id int PRIMARY KEY, name text);
         CREATE TABLE orders (id int PRIMARY KEY, qty int);",
    )
    .await;
    // The embedded registry turns on Avro envelopes, whose bytes are counted.
    let daemon = Daemon::start(&pg, &["public.items", "public.orders"], "", |toml| {
        format!("{toml}\n[registry]\nlisten = \"127.0.0.1:0\"\n")
    });
    harness::wait_streaming(&pg).await;
    let client = pg.client(DEFAULT_DATABASE).await.unwrap();
    client
        .batch_execute(
            "INSERT INTO items SELECT i, 'item ' || i FROM generate_series(1, 30) i;
             INSERT INTO orders SELECT i, i FROM generate_series(1, 12) i;
             UPDATE orders SET qty = qty + 1 WHERE id <= 5;
             DELETE FROM items WHERE id <= 4;",
        )
        .await
        .unwrap();
    let end = support::current_wal_lsn(&client).await;
    let total = 30.0 + 12.0 + 5.0 + 4.0;
    daemon
        .wait_metric(
            "the file sink acknowledged every change",
            names::SINK_EVENTS_TOTAL,
            &[("sink", "audit")],
            total,
        )
        .await;
    let (_, text) = daemon.get("/metrics").await;
    let events_of = |table: &str, op: &str| {
        find_sample(&text, names::EVENTS_TOTAL, &[("table", table), ("op", op)])
    };
    assert_eq!(events_of("public.items", "c"), Some(30.0), "{text}");
    assert_eq!(events_of("public.items", "d"), Some(4.0));
    assert_eq!(events_of("public.orders", "c"), Some(12.0));
    assert_eq!(events_of("public.orders", "u"), Some(5.0));
    assert_eq!(events_of("public.orders", "d"), None);
    for table in ["public.items", "public.orders"] {
        let bytes = find_sample(&text, names::EVENT_BYTES_TOTAL, &[("table", table)]);
        assert!(bytes.unwrap_or(0.0) > 0.0, "{table}: {text}");
    }
    let sink = [("sink", "audit")];
    assert!(find_sample(&text, names::SINK_BYTES_TOTAL, &sink).unwrap() > 0.0);
    let writes = format!("{}_count", names::SINK_WRITE_SECONDS);
    assert!(find_sample(&text, &writes, &sink).unwrap() >= 1.0, "{text}");
    assert_eq!(
        find_sample(&text, names::SINK_RETRIES_TOTAL, &sink),
        Some(0.0)
    );
    assert_eq!(
        find_sample(&text, names::SINK_DEAD_LETTERS_TOTAL, &sink),
        Some(0.0)
    );
    assert_eq!(find_sample(&text, names::PAUSED, &[]), Some(0.0));
    assert!(text.contains("# TYPE sluice_sink_write_seconds histogram"));

    support::wait_until(
        "lag returns to zero once every change is acknowledged",
        WAIT,
        || async {
            let (_, text) = daemon.get("/metrics").await;
            let confirmed = find_sample(&text, names::CONFIRMED_LSN, &[]).unwrap_or(0.0);
            find_sample(&text, names::REPLICATION_LAG_BYTES, &[]) == Some(0.0)
                && find_sample(&text, names::REPLICATION_LAG_SECONDS, &[]) == Some(0.0)
                && find_sample(&text, names::SINK_QUEUE_BATCHES, &sink) == Some(0.0)
                && confirmed >= end.0 as f64
        },
    )
    .await;
    let (_, text) = daemon.get("/metrics").await;
    assert!(
        find_sample(&text, names::SERVER_WAL_END_LSN, &[]).unwrap() >= end.0 as f64,
        "the server's WAL end is known: {text}"
    );
    daemon.stop().await;
}

#[tokio::test]
async fn commit_latency_counts_each_acknowledged_batch_of_streamed_changes_and_no_snapshot_rows() {
    const SNAPSHOT_ROWS: f64 = 20.0;
    const TRANSACTIONS: i32 = 5;
    const ROWS_PER_TRANSACTION: i32 = 3;
    let pg = support::start_postgres_with(
        "CREATE TABLE items (id int PRIMARY KEY, name text);
         INSERT INTO items SELECT i, 'old ' || i FROM generate_series(1, 20) i;",
    )
    .await;
    let state = tempfile::tempdir().unwrap();
    let extra_source = format!("state_dir = {:?}", state.path().display().to_string());
    // A batch waits 500 ms to fill, far longer than one small transaction takes to decode: each
    // transaction below becomes exactly one batch.
    let daemon = Daemon::start(&pg, &["public.items"], &extra_source, |toml| {
        toml.replace("snapshot_mode = \"never\"", "snapshot_mode = \"initial\"")
            .replace("max_batch_wait_ms = 10", "max_batch_wait_ms = 500")
    });
    let sink = [("sink", "audit")];
    let latency = names::SINK_COMMIT_LATENCY_SECONDS;
    let latency_count = format!("{latency}_count");
    daemon
        .wait_metric(
            "the snapshot rows are acknowledged",
            names::SINK_EVENTS_TOTAL,
            &sink,
            SNAPSHOT_ROWS,
        )
        .await;
    assert_eq!(
        daemon.metric(&latency_count, &sink).await,
        Some(0.0),
        "snapshot rows carry no commit time"
    );
    harness::wait_streaming(&pg).await;
    let client = pg.client(DEFAULT_DATABASE).await.unwrap();
    for n in 0..TRANSACTIONS {
        let first = 100 + n * ROWS_PER_TRANSACTION;
        client
            .batch_execute(&format!(
                "INSERT INTO items SELECT i, 'new' FROM generate_series({first}, {last}) i",
                last = first + ROWS_PER_TRANSACTION - 1
            ))
            .await
            .unwrap();
        // Acknowledged before the next commit: one transaction, one batch.
        let delivered = SNAPSHOT_ROWS + f64::from((n + 1) * ROWS_PER_TRANSACTION);
        daemon
            .wait_metric(
                "the transaction is acknowledged",
                names::SINK_EVENTS_TOTAL,
                &sink,
                delivered,
            )
            .await;
    }
    let (_, text) = daemon.get("/metrics").await;
    let batches = f64::from(TRANSACTIONS);
    assert_eq!(
        find_sample(&text, &latency_count, &sink),
        Some(batches),
        "{text}"
    );
    let bucket = format!("{latency}_bucket");
    assert_eq!(
        find_sample(&text, &bucket, &[sink[0], ("le", "10")]),
        Some(batches),
        "each batch acknowledged within 10 s of its commit: {text}"
    );
    let sum = find_sample(&text, &format!("{latency}_sum"), &sink).unwrap();
    assert!(sum > 0.0 && sum < 10.0 * batches, "{sum}");
    let writes = find_sample(
        &text,
        &format!("{}_count", names::SINK_WRITE_SECONDS),
        &sink,
    );
    assert!(
        writes.unwrap() > batches,
        "the snapshot's batches were written, not counted as latency: {text}"
    );
    daemon.stop().await;
}

#[tokio::test]
async fn snapshot_progress_shows_in_metrics_while_paused_and_completes_after_resume() {
    const ROWS: i64 = 50_000;
    let pg = support::start_postgres_with(&format!(
        "CREATE TABLE items (id int PRIMARY KEY);
         INSERT INTO items SELECT generate_series(1, {ROWS});
         ANALYZE items;"
    ))
    .await;
    let state = tempfile::tempdir().unwrap();
    let extra_source = format!(
        "snapshot_chunk_rows = 5000\nstate_dir = {:?}",
        state.path().display().to_string()
    );
    let daemon = Daemon::start(&pg, &["public.items"], &extra_source, |toml| {
        toml.replace("snapshot_mode = \"never\"", "snapshot_mode = \"initial\"")
            .replace(
                "max_batch_wait_ms = 10",
                "max_batch_wait_ms = 10\nmax_batch_events = 500",
            )
    });
    // Paused as soon as the endpoint answers: the snapshot cannot finish before.
    support::wait_until("the pause is accepted", WAIT, || async {
        daemon.post("/admin/pause", None, "").await.0 == 200
    })
    .await;
    support::wait_until("the snapshot planned its chunks", WAIT, || async {
        daemon
            .metric(names::SNAPSHOT_CHUNKS_TOTAL, &[])
            .await
            .unwrap_or(0.0)
            > 1.0
    })
    .await;
    let (_, text) = daemon.get("/metrics").await;
    let chunks = find_sample(&text, names::SNAPSHOT_CHUNKS_TOTAL, &[]).unwrap();
    assert_eq!(
        find_sample(&text, names::SNAPSHOT_RUNNING, &[]),
        Some(1.0),
        "{text}"
    );
    assert!(find_sample(&text, names::SNAPSHOT_CHUNKS_DONE, &[]).unwrap() < chunks);
    assert!(find_sample(&text, names::SNAPSHOT_ROWS_ESTIMATED, &[]).unwrap() >= ROWS as f64 * 0.9);
    assert!(
        file_events(&daemon.events).len() < ROWS as usize,
        "held back while paused"
    );
    assert_eq!(
        daemon.get("/ready").await.0,
        200,
        "a snapshotting pipeline is ready"
    );

    assert_eq!(daemon.post("/admin/resume", None, "").await.0, 200);
    daemon
        .wait_metric(
            "the snapshot finished",
            names::SNAPSHOT_CHUNKS_DONE,
            &[],
            chunks,
        )
        .await;
    daemon
        .wait_metric(
            "the snapshot stopped running",
            names::SNAPSHOT_RUNNING,
            &[],
            0.0,
        )
        .await;
    assert_eq!(
        daemon.metric(names::SNAPSHOT_ROWS_TOTAL, &[]).await,
        Some(ROWS as f64)
    );
    assert_eq!(
        daemon
            .metric(
                names::EVENTS_TOTAL,
                &[("table", "public.items"), ("op", "r")]
            )
            .await,
        Some(ROWS as f64)
    );
    support::wait_until("every snapshot row is in the file", WAIT, || async {
        file_events(&daemon.events).len() == ROWS as usize
    })
    .await;
    daemon.stop().await;
}

#[tokio::test]
async fn sluice_status_prints_the_running_daemons_status_as_json_and_as_a_table() {
    let pg = support::start_postgres_with("CREATE TABLE items (id int PRIMARY KEY)").await;
    let daemon = Daemon::start(&pg, &["public.items"], "", |toml| toml);
    harness::wait_streaming(&pg).await;
    let client = pg.client(DEFAULT_DATABASE).await.unwrap();
    client
        .batch_execute("INSERT INTO items SELECT generate_series(1, 20)")
        .await
        .unwrap();
    let end = support::current_wal_lsn(&client).await;
    daemon
        .wait_metric(
            "the inserts are delivered",
            names::SINK_EVENTS_TOTAL,
            &[("sink", "audit")],
            20.0,
        )
        .await;
    support::wait_until("the inserts are confirmed", WAIT, || async {
        daemon
            .metric(names::CONFIRMED_LSN, &[])
            .await
            .unwrap_or(0.0)
            >= end.0 as f64
    })
    .await;

    let (status, stdout, stderr) = daemon.cli(&["status", "--json"]).await;
    assert!(status.success(), "{stderr}");
    let json: serde_json::Value = serde_json::from_str(&stdout).expect(&stdout);
    assert_eq!(json["slot"], SLOT);
    assert_eq!(json["pipeline"], "test");
    assert_eq!(json["source_connected"], true);
    assert_eq!(json["paused"], false);
    let confirmed: Lsn = json["confirmed_lsn"].as_str().unwrap().parse().unwrap();
    assert!(confirmed >= end, "{stdout}");
    let sink = &json["sinks"][0];
    assert_eq!(sink["name"], "audit");
    assert_eq!(sink["events"], 20);
    let acked: Lsn = sink["acked_lsn"].as_str().unwrap().parse().unwrap();
    assert!(acked >= end, "{stdout}");
    assert_eq!(json["snapshot"]["running"], false);
    let (_, body) = daemon.get("/status").await;
    let served: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(served["slot"], SLOT, "the CLI shows what /status serves");

    let (status, table, stderr) = daemon.cli(&["status"]).await;
    assert!(status.success(), "{stderr}");
    for expected in [SLOT, "streaming", "confirmed lsn", "audit", "ACKED LSN"] {
        assert!(
            table.contains(expected),
            "{expected:?} missing from:\n{table}"
        );
    }
    daemon.stop().await;
}

#[tokio::test]
async fn a_paused_daemon_holds_delivery_and_resume_delivers_everything_with_the_admin_token() {
    const TOKEN: &str = "adm1n-t0ken-value";
    let pg = support::start_postgres_with("CREATE TABLE items (id int PRIMARY KEY)").await;
    let daemon = Daemon::start(&pg, &["public.items"], "", |toml| {
        format!("{toml}\n[http]\nadmin_token = \"{TOKEN}\"\n")
    });
    harness::wait_streaming(&pg).await;
    daemon.wait_up().await;

    // Without the token, or with a wrong one, the admin endpoints refuse.
    assert_eq!(daemon.post("/admin/pause", None, "").await.0, 401);
    assert_eq!(daemon.post("/admin/pause", Some("wrong"), "").await.0, 401);
    let snapshot = r#"{"table": "public.items"}"#;
    assert_eq!(daemon.post("/admin/snapshot", None, snapshot).await.0, 401);
    assert_eq!(daemon.metric(names::PAUSED, &[]).await, Some(0.0));
    // Probes and reads stay open.
    assert_eq!(daemon.get("/status").await.0, 200);

    // `sluice pause` sends the token from the config.
    let (status, _, stderr) = daemon.cli(&["pause"]).await;
    assert!(status.success(), "{stderr}");
    assert_eq!(daemon.metric(names::PAUSED, &[]).await, Some(1.0));
    let client = pg.client(DEFAULT_DATABASE).await.unwrap();
    client
        .batch_execute("INSERT INTO items SELECT generate_series(1, 100)")
        .await
        .unwrap();
    let end = support::current_wal_lsn(&client).await;
    // The server has sent the inserts to the daemon, which holds them back.
    support::wait_until("the server sent the inserts", WAIT, || async {
        client
            .query_opt(
                "SELECT 1 FROM pg_stat_replication r JOIN pg_replication_slots s
                   ON s.active_pid = r.pid
                 WHERE s.slot_name = $1 AND r.sent_lsn >= $2::text::pg_lsn",
                &[&SLOT, &end.to_string()],
            )
            .await
            .ok()
            .flatten()
            .is_some()
    })
    .await;
    assert!(
        file_events(&daemon.events).is_empty(),
        "nothing is delivered while paused"
    );
    let (_, body) = daemon.get("/status").await;
    let status_json: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(status_json["paused"], true);
    support::assert_not_confirmed_past(
        &client,
        SLOT,
        end,
        "the slot holds the WAL of what is held back",
    )
    .await;

    assert_eq!(daemon.post("/admin/resume", Some(TOKEN), "").await.0, 200);
    support::wait_until("every held change is delivered", WAIT, || async {
        file_events(&daemon.events).len() == 100
    })
    .await;
    support::wait_slot_confirmed(
        &client,
        SLOT,
        end,
        "the slot confirms the resumed changes",
        WAIT,
    )
    .await;
    assert_eq!(
        daemon
            .metric(
                names::EVENTS_TOTAL,
                &[("table", "public.items"), ("op", "c")]
            )
            .await,
        Some(100.0)
    );
    assert_eq!(daemon.metric(names::PAUSED, &[]).await, Some(0.0));

    // The token is a secret: not in metrics, status or logs.
    for path in ["/metrics", "/status"] {
        let (_, body) = daemon.get(path).await;
        assert!(!body.contains(TOKEN), "{path} shows the token");
    }
    let stderr = daemon.process.stderr();
    assert!(!stderr.contains(TOKEN), "the token reached the logs");
    daemon.stop().await;
}

#[tokio::test]
async fn a_snapshot_requested_over_http_delivers_the_tables_rows() {
    let pg = support::start_postgres_with(
        "CREATE TABLE items (id int PRIMARY KEY, region text);
         INSERT INTO items SELECT i, CASE WHEN i % 2 = 0 THEN 'eu' ELSE 'us' END
           FROM generate_series(1, 40) i;",
    )
    .await;
    let daemon = Daemon::start(
        &pg,
        &["public.items"],
        "signal_table = \"public.sluice_signal\"\nincremental_chunk_rows = 7",
        |toml| toml,
    );
    harness::wait_streaming(&pg).await;
    daemon.wait_up().await;

    let (status, body) = daemon
        .post("/admin/snapshot", None, r#"{"table": "items"}"#)
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("schema.table"), "{body}");
    let (status, body) = daemon.post("/admin/snapshot", None, "not json").await;
    assert_eq!(status, 400, "{body}");

    let request = r#"{"table": "public.items", "filter": "region = 'eu'"}"#;
    let (status, body) = daemon.post("/admin/snapshot", None, request).await;
    assert_eq!(status, 202, "{body}");
    support::wait_until("the filtered rows are delivered", WAIT, || async {
        file_events(&daemon.events).len() >= 20
    })
    .await;
    let rows = file_events(&daemon.events);
    assert_eq!(rows.len(), 20);
    for row in &rows {
        assert_eq!(row["op"], "r", "{row}");
        assert_eq!(row["after"]["region"], "eu", "{row}");
        assert_eq!(row["source"]["snapshot"], "incremental", "{row}");
    }
    daemon.stop().await;
}

#[tokio::test]
async fn a_failing_sink_makes_the_pipeline_unready_and_counts_its_retries_until_it_heals() {
    let pg = support::start_postgres_with("CREATE TABLE items (id int PRIMARY KEY)").await;
    let config = harness::config(&pg, &["public.items"], "");
    let (pipeline, handle) = harness::start(config.clone()).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let state = std::sync::Arc::new(sluice::runtime::http::HttpState {
        pipeline: config.pipeline.name.clone(),
        control: pipeline.control(),
        source: config.source.clone(),
        admin_token: None,
    });
    let stop = tokio_util::sync::CancellationToken::new();
    let server = tokio::spawn(sluice::runtime::http::serve(listener, state, stop.clone()));
    let get = |path: &str| http::request(http::client().get(format!("{base}{path}")));
    harness::wait_streaming(&pg).await;
    support::wait_until("the pipeline is ready", WAIT, || async {
        get("/ready").await.0 == 200
    })
    .await;

    // Fault injection: no real destination fails on cue, so the memory sink does.
    handle.fail_writes(u64::MAX, sluice_api::ErrorClass::Transient);
    let client = pg.client(DEFAULT_DATABASE).await.unwrap();
    client
        .batch_execute("INSERT INTO items VALUES (1)")
        .await
        .unwrap();
    support::wait_until("readiness fails with the failing sink", WAIT, || async {
        let (status, body) = get("/ready").await;
        status == 503 && body.contains("memory")
    })
    .await;
    let retries = |text: &str| {
        find_sample(text, names::SINK_RETRIES_TOTAL, &[("sink", "memory")]).unwrap_or(0.0)
    };
    support::wait_until("the retries are counted", WAIT, || async {
        retries(&get("/metrics").await.1) >= 2.0
    })
    .await;
    let (_, body) = get("/status").await;
    let status: serde_json::Value = serde_json::from_str(&body).unwrap();
    let memory = status["sinks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "memory")
        .unwrap();
    assert_eq!(memory["failing"], true, "{body}");
    assert_eq!(memory["events"], 0, "{body}");

    handle.heal();
    harness::wait_events(&handle, 1).await;
    support::wait_until("the pipeline is ready again", WAIT, || async {
        get("/ready").await.0 == 200
    })
    .await;
    stop.cancel();
    server.await.unwrap().unwrap();
    pipeline.shutdown().await.unwrap();
}
