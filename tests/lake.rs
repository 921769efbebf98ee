//! The lake sink against real storage: a local directory and moto's S3-compatible server, read
//! back by third-party readers (Python `deltalake`, and DuckDB with its delta extension running
//! the README's current-state query). End to end, the `sluice` binary is killed -9 in the middle
//! of a random workload and restarted: the current state equals the source table and no change
//! is in the changelog twice. The sink is also driven directly with hand-made batches for
//! redelivery, compaction and schema changes.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value as Json};
use sluice_api::{
    Batch, ChangeEvent, Column, Lsn, Op, ReplicaIdentity, Sink, SourcePosition, TableSchema, Value,
};
use sluice_sink_lake::{LakeSink, RawLakeSinkConfig};

use crate::harness;
use crate::support::proxy::{Fault, FaultProxy};
use crate::support::s3::{self, ThrowawayS3};
use crate::support::workload::{
    hold_while_the_workload_moves_on, kill_mid_workload, wait_started, Writer, SOURCE_TABLE,
};
use crate::support::{self, SluiceProcess, ThrowawayPostgres, DEFAULT_DATABASE};

const WAIT: Duration = Duration::from_secs(180);

/// What the readers report (see tests/python/lake_state.py).
#[derive(Debug)]
struct LakeState {
    deltalake: Vec<Json>,
    duckdb: Option<Vec<Json>>,
    changelog_rows: u64,
    duplicate_positions: u64,
    files: u64,
}

/// Read the table versions `uris` (oldest first) with Python deltalake and DuckDB; `None`
/// while a table does not exist yet.
async fn read_lake(uris: &[String], env: &[(&str, String)]) -> Option<LakeState> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/lake_state.py");
    let output = tokio::process::Command::new("python3")
        .arg(script)
        .arg("id")
        .args(uris)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .await
        .expect("run python3 (.ci/run installs deltalake and duckdb)");
    if !output.status.success() {
        return None;
    }
    let out: Json = serde_json::from_slice(&output.stdout).expect("lake_state.py prints JSON");
    let rows = |v: &Json| v.as_array().cloned().unwrap_or_default();
    Some(LakeState {
        deltalake: rows(&out["deltalake"]),
        duckdb: out["duckdb"].as_array().map(|_| rows(&out["duckdb"])),
        changelog_rows: out["changelog_rows"].as_u64().unwrap_or(0),
        duplicate_positions: out["duplicate_positions"].as_u64().unwrap_or(0),
        files: out["files"].as_u64().unwrap_or(0),
    })
}

/// The source's rows as the readers print them: decimals as text, timestamps as epoch
/// seconds; `color` only once it exists.
async fn source_rows(client: &tokio_postgres::Client) -> Vec<Json> {
    let has_color = client
        .query_opt(
            "SELECT 1 FROM information_schema.columns WHERE table_name = 'items' \
             AND column_name = 'color'",
            &[],
        )
        .await
        .unwrap()
        .is_some();
    let color = if has_color { "color" } else { "NULL::text" };
    let sql = format!(
        "SELECT id, qty::int8, price::text, note, extract(epoch FROM at)::int8, {color} \
         FROM items ORDER BY id"
    );
    client
        .query(&sql, &[])
        .await
        .unwrap()
        .iter()
        .map(|r| {
            let mut row = json!({
                "id": r.get::<_, i64>(0), "qty": r.get::<_, Option<i64>>(1),
                "price": r.get::<_, Option<String>>(2), "note": r.get::<_, Option<String>>(3),
                "at": r.get::<_, Option<i64>>(4),
            });
            if has_color {
                row["color"] = json!(r.get::<_, Option<String>>(5));
            }
            row
        })
        .collect()
}

/// Poll until both readers' current state equals the source; fail showing the difference.
async fn wait_lake_equals_source(
    client: &tokio_postgres::Client,
    uris: &[String],
    env: &[(&str, String)],
) -> LakeState {
    let deadline = Instant::now() + WAIT;
    loop {
        let expected = source_rows(client).await;
        let state = read_lake(uris, env).await;
        if let Some(state) = &state {
            let duckdb_ok = state.duckdb.as_ref().is_none_or(|rows| *rows == expected);
            if state.deltalake == expected && duckdb_ok {
                return state.clone_counts(expected.len());
            }
        }
        if Instant::now() >= deadline {
            let actual = state.map(|s| s.deltalake).unwrap_or_default();
            let missing: Vec<_> = expected.iter().filter(|r| !actual.contains(r)).collect();
            let extra: Vec<_> = actual.iter().filter(|r| !expected.contains(r)).collect();
            panic!(
                "the lake's current state does not equal the source ({} vs {} rows)\n\
                 missing or different: {missing:#?}\nextra or different: {extra:#?}",
                expected.len(),
                actual.len()
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

impl LakeState {
    fn clone_counts(&self, rows: usize) -> LakeState {
        LakeState {
            deltalake: Vec::with_capacity(rows),
            duckdb: None,
            changelog_rows: self.changelog_rows,
            duplicate_positions: self.duplicate_positions,
            files: self.files,
        }
    }
}

/// Commits in the table's Delta log so far (0 while it does not exist).
fn local_commits(table: &Path) -> usize {
    std::fs::read_dir(table.join("_delta_log"))
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter(|e| e.file_name().to_string_lossy().ends_with(".json"))
                .count()
        })
        .unwrap_or(0)
}

/// The daemon with a lake sink (`sink` is its `[[sink]]` body): a random workload, a kill -9
/// in the middle once `started` says rows arrived, a restart; then the current state must
/// equal the source with no change twice in the changelog. Returns the running daemon.
async fn crash_workload_reaches_equality<F, Fut>(
    pg: &ThrowawayPostgres,
    sink: &str,
    uris: &[String],
    env: &[(&str, String)],
    started: F,
) -> SluiceProcess
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let config = harness::items_config_with_sink(pg, sink);
    let args = ["run", "--config", config.path().to_str().unwrap()];
    let daemon = kill_mid_workload(pg, &args, 0x1a4e_5eed_0bad_cafe, 300, started).await;
    let client = pg.client(DEFAULT_DATABASE).await.unwrap();
    let state = wait_lake_equals_source(&client, uris, env).await;
    assert_eq!(
        state.duplicate_positions, 0,
        "redelivered changes were written twice"
    );
    assert!(state.changelog_rows > source_rows(&client).await.len() as u64);
    daemon
}

/// SIGTERM: the daemon drains and exits 0.
async fn stop(mut daemon: SluiceProcess) {
    daemon.stop_cleanly(Duration::from_secs(60)).await;
}

#[tokio::test]
async fn a_killed_daemon_restarts_and_the_local_lake_equals_the_source_without_duplicates_and_gains_added_columns(
) {
    let pg = support::start_postgres_with(SOURCE_TABLE).await;
    let lake = tempfile::tempdir().unwrap();
    let table = lake.path().join("public.items");
    let sink = format!(
        "name = \"lake\"\ntype = \"lake\"\nlocation = \"{}\"",
        lake.path().display()
    );
    let uris = [table.display().to_string()];
    let daemon = crash_workload_reaches_equality(&pg, &sink, &uris, &[], || {
        let table = table.clone();
        async move { local_commits(&table) >= 4 }
    })
    .await;

    // A column added at the source widens the Delta table; older rows read it as null.
    let client = pg.client(DEFAULT_DATABASE).await.unwrap();
    client
        .batch_execute(
            "ALTER TABLE items ADD COLUMN color text; \
             INSERT INTO items SELECT 100000 + g, g, 1.50, 'new', to_timestamp(1700000000), \
             'red ' || g FROM generate_series(1, 20) g; \
             UPDATE items SET color = 'blue' WHERE id IN (SELECT id FROM items LIMIT 5)",
        )
        .await
        .unwrap();
    let state = wait_lake_equals_source(&client, &uris, &[]).await;
    assert_eq!(state.duplicate_positions, 0);
    stop(daemon).await;
}

/// The `[[sink]]` body of a lake in the bucket `lake` of the S3 server at `endpoint`.
fn s3_lake_sink(endpoint: &str) -> String {
    format!(
        "name = \"lake\"\ntype = \"lake\"\nlocation = \"s3://lake/cdc\"\n\
         s3 = {{ endpoint = \"{endpoint}\", region = \"{}\", access_key_id = \"{}\", \
         secret_access_key = \"{}\", path_style = true }}",
        s3::REGION,
        s3::ACCESS_KEY_ID,
        s3::SECRET_ACCESS_KEY
    )
}

#[tokio::test]
async fn a_killed_daemon_restarts_and_the_lake_on_s3_equals_the_source_without_duplicates() {
    let server = ThrowawayS3::start().await;
    server.create_bucket("lake").await;
    let pg = support::start_postgres_with(SOURCE_TABLE).await;
    let sink = s3_lake_sink(&server.endpoint());
    let uris = ["s3://lake/cdc/public.items".to_owned()];
    let env = server.reader_env();
    let daemon = crash_workload_reaches_equality(&pg, &sink, &uris, &env, || {
        let (uris, env) = (uris.clone(), env.clone());
        async move {
            read_lake(&uris, &env)
                .await
                .is_some_and(|s| s.changelog_rows >= 50)
        }
    })
    .await;
    stop(daemon).await;
    assert!(!server.log().contains("Traceback"), "{}", server.log());
}

#[tokio::test]
async fn the_lake_on_s3_equals_the_source_without_duplicates_after_its_connections_are_cut_and_stalled(
) {
    let server = ThrowawayS3::start().await;
    server.create_bucket("lake").await;
    let proxy = FaultProxy::start(server.port()).await;
    let pg = support::start_postgres_with(SOURCE_TABLE).await;
    let sink = s3_lake_sink(&format!("http://127.0.0.1:{}", proxy.port()));
    let config = harness::items_config_with_sink(&pg, &sink);
    let daemon = SluiceProcess::spawn(&["run", "--config", config.path().to_str().unwrap()], &[]);
    harness::wait_streaming(&pg).await;
    let writer = Writer::start(&pg, 0x1a4e_c075, 300).await;
    // The readers go to the server directly, past the proxy.
    let uris = ["s3://lake/cdc/public.items".to_owned()];
    let env = server.reader_env();
    wait_started(&daemon, || async {
        read_lake(&uris, &env)
            .await
            .is_some_and(|s| s.changelog_rows >= 50)
    })
    .await;

    for fault in [Fault::Cut, Fault::Stall, Fault::Cut, Fault::Stall] {
        let blocked = proxy.blocked_traffic();
        proxy.set(fault);
        // Held until the sink's traffic met the fault and the source moved on.
        support::wait_until(
            &format!("the sink's traffic meets the {fault:?}"),
            WAIT,
            || async { proxy.blocked_traffic() > blocked },
        )
        .await;
        hold_while_the_workload_moves_on(|| writer.committed()).await;
        proxy.set(Fault::Pass);
    }
    writer.finish().await;

    let client = pg.client(DEFAULT_DATABASE).await.unwrap();
    let state = wait_lake_equals_source(&client, &uris, &env).await;
    assert_eq!(
        state.duplicate_positions, 0,
        "changes sent again after a fault were written twice"
    );
    stop(daemon).await;
    assert!(!server.log().contains("Traceback"), "{}", server.log());
}

/// `public.items` with the given columns (the first is the key).
fn shape(columns: &[(&str, &str)]) -> Arc<TableSchema> {
    Arc::new(TableSchema {
        relation_id: 1,
        schema: "public".into(),
        name: "items".into(),
        replica_identity: ReplicaIdentity::Default,
        columns: columns
            .iter()
            .enumerate()
            .map(|(i, (name, ty))| Column {
                name: (*name).into(),
                type_oid: 0,
                type_name: (*ty).into(),
                type_modifier: -1,
                is_key: i == 0,
            })
            .collect(),
    })
}

/// A streamed change of `table` in its own transaction committed at `lsn`.
fn change(table: &Arc<TableSchema>, op: Op, lsn: u64, row: Vec<Value>) -> ChangeEvent {
    ChangeEvent {
        op,
        table: Some(table.clone()),
        before: (op == Op::Delete).then(|| row.clone()),
        before_is_key_only: op == Op::Delete,
        after: (op != Op::Delete).then_some(row),
        message: None,
        position: SourcePosition {
            lsn: Lsn(lsn),
            commit_lsn: Lsn(lsn + 1),
            xid: Some(lsn as u32),
            commit_time_us: 1_700_000_000_000_000,
            ..SourcePosition::default()
        },
    }
}

fn batch(sequence: u64, events: Vec<ChangeEvent>) -> Batch {
    let checkpoint = events.last().map(|e| e.position.commit_lsn);
    Batch {
        sequence,
        events,
        checkpoint,
        records: Vec::new(),
    }
}

fn local_sink(dir: &Path, extra: &str) -> LakeSink {
    let text = format!("location = '{}'\n{extra}", dir.display());
    let raw: RawLakeSinkConfig = sluice_api::from_toml(
        toml::Value::Table(toml::from_str(&text).unwrap()),
        "sink[0]",
    )
    .unwrap();
    LakeSink::new("lake", &raw.validate("sink[0]").unwrap()).unwrap()
}

fn ids(rows: &[Json]) -> Vec<i64> {
    rows.iter().map(|r| r["id"].as_i64().unwrap()).collect()
}

#[tokio::test]
async fn a_redelivered_batch_after_a_restart_adds_no_rows_and_the_rest_of_it_lands() {
    let dir = tempfile::tempdir().unwrap();
    let items = shape(&[("id", "int8"), ("note", "text")]);
    let row = |id: i64, note: &str| vec![Value::Int64(id), Value::Text(note.into())];
    let first = batch(
        1,
        vec![
            change(&items, Op::Create, 100, row(1, "a")),
            change(&items, Op::Create, 110, row(2, "b")),
        ],
    );
    local_sink(dir.path(), "").write(&first).await.unwrap();

    // A new sink (a restarted daemon) gets the first batch again, then the same changes
    // followed by new ones in one batch, as after a crash before the acknowledgement.
    let mut sink = local_sink(dir.path(), "");
    sink.write(&first).await.unwrap();
    let mut events = first.events.clone();
    events.push(change(&items, Op::Update, 120, row(1, "a2")));
    events.push(change(
        &items,
        Op::Delete,
        130,
        vec![Value::Int64(2), Value::Null],
    ));
    sink.write(&batch(2, events)).await.unwrap();

    let uris = [dir.path().join("public.items").display().to_string()];
    let state = read_lake(&uris, &[]).await.expect("a readable table");
    assert_eq!(state.changelog_rows, 4, "each change exactly once");
    assert_eq!(state.duplicate_positions, 0);
    assert_eq!(state.deltalake, vec![json!({"id": 1, "note": "a2"})]);
    assert_eq!(state.duckdb.unwrap(), state.deltalake);
}

#[tokio::test]
async fn small_batches_are_compacted_so_files_do_not_grow_with_the_batch_count() {
    let dir = tempfile::tempdir().unwrap();
    let items = shape(&[("id", "int8"), ("note", "text")]);
    let mut sink = local_sink(dir.path(), "compact_min_files = 4");
    for i in 0..22u64 {
        let event = change(
            &items,
            Op::Create,
            100 + 10 * i,
            vec![Value::Int64(i as i64), Value::Text(format!("row {i}"))],
        );
        sink.write(&batch(i, vec![event])).await.unwrap();
    }
    let uris = [dir.path().join("public.items").display().to_string()];
    let state = read_lake(&uris, &[]).await.expect("a readable table");
    assert!(state.files < 4, "{} active data files", state.files);
    assert_eq!(state.changelog_rows, 22);
    assert_eq!(ids(&state.deltalake), (0..22).collect::<Vec<_>>());
    assert_eq!(state.duckdb.unwrap(), state.deltalake);
}

#[tokio::test]
async fn an_added_column_widens_the_table_and_a_type_change_starts_a_new_table_version() {
    let dir = tempfile::tempdir().unwrap();
    let mut sink = local_sink(dir.path(), "");
    let v1 = shape(&[("id", "int8"), ("qty", "int4")]);
    let added = shape(&[("id", "int8"), ("qty", "int4"), ("color", "text")]);
    let retyped = shape(&[("id", "int8"), ("qty", "text"), ("color", "text")]);
    let events = vec![
        change(&v1, Op::Create, 100, vec![Value::Int64(1), Value::Int32(5)]),
        change(&v1, Op::Create, 110, vec![Value::Int64(2), Value::Int32(6)]),
        change(
            &added,
            Op::Create,
            120,
            vec![Value::Int64(3), Value::Int32(7), Value::Text("red".into())],
        ),
    ];
    sink.write(&batch(1, events)).await.unwrap();
    let first = dir.path().join("public.items").display().to_string();
    let state = read_lake(std::slice::from_ref(&first), &[]).await.unwrap();
    assert_eq!(
        state.deltalake,
        vec![
            json!({"id": 1, "qty": 5, "color": null}),
            json!({"id": 2, "qty": 6, "color": null}),
            json!({"id": 3, "qty": 7, "color": "red"}),
        ]
    );
    assert_eq!(state.files, 2, "one commit per shape");

    // `qty` becomes text: a new table version holds the changes from there on.
    let events = vec![change(
        &retyped,
        Op::Update,
        130,
        vec![
            Value::Int64(2),
            Value::Text("six".into()),
            Value::Text("blue".into()),
        ],
    )];
    sink.write(&batch(2, events)).await.unwrap();
    let second = dir.path().join("public.items__v2");
    assert!(second.join("_delta_log").is_dir(), "a second table version");
    let state = read_lake(&[second.display().to_string()], &[])
        .await
        .unwrap();
    assert_eq!(
        state.deltalake,
        vec![json!({"id": 2, "qty": "six", "color": "blue"})]
    );
    // A restarted sink finds the newest version and the position over all versions.
    let mut sink = local_sink(dir.path(), "");
    sink.write(&batch(
        2,
        vec![change(
            &retyped,
            Op::Update,
            130,
            vec![Value::Int64(2), Value::Text("six".into()), Value::Null],
        )],
    ))
    .await
    .unwrap();
    let state = read_lake(&[second.display().to_string()], &[])
        .await
        .unwrap();
    assert_eq!(state.changelog_rows, 1, "the redelivered change is skipped");
}
