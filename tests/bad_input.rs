//! Bad input from every side, against real servers: text that is not UTF-8 from a `SQL_ASCII`
//! database, a 100 MB row, schema changes inside a transaction, identifiers Avro must sanitise,
//! and a slot or publication dropped under a running daemon. Each ends in the documented
//! behaviour or a clear error and a non-zero exit, with nothing already committed lost, and
//! never a panic. (Hostile config files and secrets are in `hostile_config`.)

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::Value as Json;
use sluice_api::Value;

use crate::daemon::{file_sink_config, line_count, read_events, WAIT};
use crate::harness::{self, SLOT};
use crate::support::{self, SluiceProcess, ThrowawayPostgres, DEFAULT_DATABASE, SUPERUSER};

/// Every JSON line a file sink wrote.
fn json_lines(path: &std::path::Path) -> Vec<Json> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).expect("the file sink writes JSON lines"))
        .collect()
}

/// The ids (`after.id`) the file sink holds, without repeats.
fn delivered_ids(path: &std::path::Path) -> BTreeSet<i64> {
    read_events(path).into_iter().map(|(id, _)| id).collect()
}

/// A daemon's whole output, checked for a panic (the daemon never panics on input).
fn output_without_panic(daemon: &SluiceProcess) -> String {
    let output = daemon.stderr() + &daemon.stdout();
    assert!(
        !output.contains("panicked"),
        "the daemon panicked:\n{output}"
    );
    output
}

/// Stop the daemon gracefully and check it exits 0.
async fn terminate(mut daemon: SluiceProcess) -> String {
    daemon.stop_cleanly(Duration::from_secs(60)).await;
    output_without_panic(&daemon)
}

/// Start a daemon writing to the file sink `events` (`extra` source lines), insert ids 1 to
/// `rows` and wait until they are delivered. The config file lives as long as the daemon.
async fn spawn_and_deliver(
    pg: &ThrowawayPostgres,
    events: &std::path::Path,
    extra: &str,
    rows: i64,
) -> (SluiceProcess, support::ConfigFile) {
    let config = support::write_config(&file_sink_config(pg, events, extra));
    let daemon = SluiceProcess::spawn(&["run", "--config", config.path().to_str().unwrap()], &[]);
    harness::wait_streaming(pg).await;
    pg.execute(&format!(
        "INSERT INTO items SELECT generate_series(1, {rows})"
    ))
    .await
    .unwrap();
    support::wait_until("the first rows are delivered", WAIT, || async {
        line_count(events) >= rows as usize
    })
    .await;
    (daemon, config)
}

/// The documented recovery once the slot is gone: restart with snapshot_mode = "when_needed",
/// which creates a new slot and reads the table again, then stream row `next`. Every id from 1
/// to `next` must be delivered: rows written while nothing captured them come with the
/// snapshot.
async fn recover_with_a_snapshot(
    pg: &ThrowawayPostgres,
    events: &std::path::Path,
    extra: &str,
    next: i64,
) {
    let recovered = file_sink_config(pg, events, extra).replace(
        "snapshot_mode = \"never\"",
        "snapshot_mode = \"when_needed\"",
    );
    let config = support::write_config(&recovered);
    let daemon = SluiceProcess::spawn(&["run", "--config", config.path().to_str().unwrap()], &[]);
    harness::wait_streaming(pg).await;
    pg.execute(&format!("INSERT INTO items VALUES ({next})"))
        .await
        .unwrap();
    support::wait_until(
        "every row is delivered after the recovery",
        WAIT,
        || async { delivered_ids(events) == (1..=next).collect() },
    )
    .await;
    terminate(daemon).await;
}

#[tokio::test]
async fn text_that_is_not_utf8_from_a_sql_ascii_database_is_replaced_with_one_warning_per_column() {
    let pg = support::start_postgres().await;
    pg.execute(
        "CREATE DATABASE legacy WITH ENCODING 'SQL_ASCII' TEMPLATE template0 \
         LC_COLLATE 'C' LC_CTYPE 'C'",
    )
    .await
    .unwrap();
    // Latin-1 bytes, which SQL_ASCII stores unchecked; the first row is read by the snapshot.
    pg.execute_in(
        "legacy",
        "CREATE TABLE items (id int PRIMARY KEY, body text);
         INSERT INTO items VALUES (1, E'd\\xe9j\\xe0 vu')",
    )
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let events = dir.path().join("events.jsonl");
    let extra = format!("state_dir = {:?}", dir.path().display().to_string());
    let toml = file_sink_config(&pg, &events, &extra)
        .replace(
            &pg.url(SUPERUSER, DEFAULT_DATABASE),
            &pg.url(SUPERUSER, "legacy"),
        )
        .replace("snapshot_mode = \"never\"", "snapshot_mode = \"initial\"");
    let config = support::write_config(&toml);
    let daemon = SluiceProcess::spawn(&["run", "--config", config.path().to_str().unwrap()], &[]);
    harness::wait_streaming(&pg).await;
    let client = pg.client("legacy").await.unwrap();
    for sql in [
        "INSERT INTO items VALUES (2, 'plain ascii')",
        "INSERT INTO items VALUES (3, E'caf\\xe9 cr\\xe8me')",
        "UPDATE items SET body = E'\\xff' WHERE id = 2",
        "INSERT INTO items VALUES (4, 'after')",
    ] {
        client.batch_execute(sql).await.unwrap();
    }
    let end = support::current_wal_lsn(&client).await;
    support::wait_until("every change is written", WAIT, || async {
        line_count(&events) >= 5
    })
    .await;
    support::wait_slot_confirmed(&client, SLOT, end, "the daemon confirms them all", WAIT).await;
    let output = terminate(daemon).await;

    let lines = json_lines(&events);
    let bodies: Vec<(&str, i64, &str)> = lines
        .iter()
        .map(|l| {
            (
                l["op"].as_str().unwrap(),
                l["after"]["id"].as_i64().unwrap(),
                l["after"]["body"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        bodies,
        [
            ("r", 1, "d\u{FFFD}j\u{FFFD} vu"),
            ("c", 2, "plain ascii"),
            ("c", 3, "caf\u{FFFD} cr\u{FFFD}me"),
            ("u", 2, "\u{FFFD}"),
            ("c", 4, "after"),
        ]
    );
    let warnings: Vec<&str> = output.lines().filter(|l| l.contains("not UTF-8")).collect();
    assert_eq!(warnings.len(), 1, "one warning per column:\n{output}");
    assert!(
        warnings[0].contains("public.items") && warnings[0].contains("body"),
        "the warning names the table and column: {}",
        warnings[0]
    );
}

#[tokio::test]
async fn a_100_mb_row_is_delivered_whole_with_memory_bounded_by_a_few_times_its_size() {
    const ROW_MIB: u64 = 100;
    let pg =
        support::start_postgres_with("CREATE TABLE items (id int PRIMARY KEY, body text)").await;
    let dir = tempfile::tempdir().unwrap();
    let events = dir.path().join("events.jsonl");
    let extra = format!("spill_dir = {:?}", dir.path().display().to_string());
    let config = support::write_config(&file_sink_config(&pg, &events, &extra));
    let daemon = SluiceProcess::spawn(&["run", "--config", config.path().to_str().unwrap()], &[]);
    harness::wait_streaming(&pg).await;
    let client = pg.client(DEFAULT_DATABASE).await.unwrap();
    // md5 hex blocks: text PostgreSQL cannot compress away, built on the server.
    let blocks = (ROW_MIB << 20) / 32;
    for sql in [
        "INSERT INTO items VALUES (1, 'before')".to_owned(),
        format!(
            "INSERT INTO items SELECT 2, string_agg(md5(g::text), '') \
             FROM generate_series(1, {blocks}) g"
        ),
        "INSERT INTO items VALUES (3, 'after')".to_owned(),
    ] {
        client.batch_execute(&sql).await.unwrap();
    }
    let end = support::current_wal_lsn(&client).await;
    support::wait_slot_confirmed(
        &client,
        SLOT,
        end,
        "the daemon confirms the big row and the one after it",
        Duration::from_secs(300),
    )
    .await;
    let peak_mib = daemon.peak_rss_kib().expect("the daemon is alive") / 1024;
    eprintln!("peak RSS {peak_mib} MiB for a {ROW_MIB} MiB row");
    terminate(daemon).await;

    let lines = json_lines(&events);
    let ids: Vec<i64> = lines
        .iter()
        .map(|l| l["after"]["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, [1, 2, 3], "in order, nothing lost");
    let body = lines[1]["after"]["body"].as_str().unwrap();
    assert_eq!(body.len() as u64, blocks * 32, "the row arrives whole");
    assert!(
        body.starts_with("c4ca4238a0b923820dcc509a6f75849b"),
        "md5('1') first"
    );
    // The message, the decoded value and the encoded event may each be alive at once; the rest
    // is the process itself.
    assert!(
        peak_mib < 5 * ROW_MIB + 100,
        "peak RSS {peak_mib} MiB for a {ROW_MIB} MiB row"
    );
}

#[tokio::test]
async fn schema_changes_inside_a_transaction_give_each_row_the_columns_it_was_written_with() {
    let pg =
        support::start_postgres_with("CREATE TABLE items (id int PRIMARY KEY, name text)").await;
    let (pipeline, handle) = harness::start(harness::config(&pg, &["public.items"], "")).await;
    harness::wait_streaming(&pg).await;
    pg.execute(
        "BEGIN;
         INSERT INTO items VALUES (1, 'a');
         ALTER TABLE items ADD COLUMN qty int DEFAULT 7;
         INSERT INTO items VALUES (2, 'b', 8);
         UPDATE items SET name = 'c' WHERE id = 1;
         ALTER TABLE items DROP COLUMN name;
         ALTER TABLE items ALTER COLUMN qty TYPE bigint;
         INSERT INTO items VALUES (3, 9);
         COMMIT;",
    )
    .await
    .unwrap();
    let events = harness::wait_events(&handle, 4).await;
    let shapes: Vec<(Vec<String>, Vec<Value>)> = events
        .iter()
        .map(|e| {
            let table = e.table.as_ref().unwrap();
            let columns = table
                .columns
                .iter()
                .map(|c| format!("{}:{}", c.name, c.type_name))
                .collect();
            (columns, e.after.clone().unwrap())
        })
        .collect();
    let text = |s: &str| Value::Text(s.into());
    assert_eq!(
        shapes,
        [
            (
                vec!["id:int4".into(), "name:text".into()],
                vec![Value::Int32(1), text("a")]
            ),
            (
                vec!["id:int4".into(), "name:text".into(), "qty:int4".into()],
                vec![Value::Int32(2), text("b"), Value::Int32(8)]
            ),
            (
                vec!["id:int4".into(), "name:text".into(), "qty:int4".into()],
                vec![Value::Int32(1), text("c"), Value::Int32(7)]
            ),
            (
                vec!["id:int4".into(), "qty:int8".into()],
                vec![Value::Int32(3), Value::Int64(9)]
            ),
        ]
    );
    let transactions: BTreeSet<_> = events.iter().map(|e| e.position.xid).collect();
    assert_eq!(transactions.len(), 1, "one transaction");
    let end = events.last().unwrap().position.commit_lsn;
    harness::wait_confirmed(&pipeline, end).await;
    pipeline.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_slot_dropped_under_the_daemon_stops_it_with_the_recovery_and_a_snapshot_recovers() {
    let pg = support::start_postgres_with("CREATE TABLE items (id int PRIMARY KEY)").await;
    let dir = tempfile::tempdir().unwrap();
    let events = dir.path().join("events.jsonl");
    let extra = format!("state_dir = {:?}", dir.path().display().to_string());
    let (mut daemon, _config) = spawn_and_deliver(&pg, &events, &extra, 3).await;
    let client = pg.client(DEFAULT_DATABASE).await.unwrap();
    // An operator ends the daemon's walsender and drops the slot before it reconnects.
    support::wait_until("the slot is dropped", WAIT, || async {
        let _ = client
            .batch_execute(&format!(
                "SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots \
                 WHERE slot_name = '{SLOT}' AND active_pid IS NOT NULL"
            ))
            .await;
        client
            .batch_execute(&format!("SELECT pg_drop_replication_slot('{SLOT}')"))
            .await
            .is_ok()
    })
    .await;
    client
        .batch_execute("INSERT INTO items VALUES (4)")
        .await
        .unwrap();
    let status = daemon.wait_exit(WAIT).await;
    let output = output_without_panic(&daemon);
    assert_eq!(status.code(), Some(1), "{output}");
    assert!(
        output.contains(&format!(
            "replication slot \"{SLOT}\" was dropped while sluice was streaming from it"
        )),
        "{output}"
    );
    assert!(
        output.contains("snapshot_mode = \"when_needed\""),
        "{output}"
    );
    assert_eq!(delivered_ids(&events), BTreeSet::from([1, 2, 3]));

    // The row written while no slot existed arrives with the snapshot.
    recover_with_a_snapshot(&pg, &events, &extra, 5).await;
}

#[tokio::test]
async fn a_publication_dropped_under_the_daemon_stops_it_naming_the_publication() {
    let pg = support::start_postgres_with("CREATE TABLE items (id int PRIMARY KEY)").await;
    let dir = tempfile::tempdir().unwrap();
    let events = dir.path().join("events.jsonl");
    let extra = format!("state_dir = {:?}", dir.path().display().to_string());
    let (mut daemon, _config) = spawn_and_deliver(&pg, &events, &extra, 1).await;
    let client = pg.client(DEFAULT_DATABASE).await.unwrap();
    client
        .batch_execute(&format!(
            "DROP PUBLICATION {SLOT}; INSERT INTO items VALUES (2)"
        ))
        .await
        .unwrap();
    let status = daemon.wait_exit(WAIT).await;
    let output = output_without_panic(&daemon);
    assert_eq!(status.code(), Some(1), "{output}");
    assert!(
        output.contains(&format!("publication \"{SLOT}\" does not exist")),
        "{output}"
    );
    assert_eq!(delivered_ids(&events), BTreeSet::from([1]));
    let confirmed = support::slot_confirmed_flush_lsn(&client, SLOT).await;
    assert!(confirmed.is_some(), "the slot is kept for the operator");

    // The slot cannot decode past the drop: drop it too; sluice recreates the publication.
    client
        .batch_execute(&format!("SELECT pg_drop_replication_slot('{SLOT}')"))
        .await
        .unwrap();
    recover_with_a_snapshot(&pg, &events, &extra, 3).await;
}

#[tokio::test]
async fn identifiers_avro_cannot_hold_are_sanitised_and_a_collision_stops_the_pipeline() {
    let pg = support::start_postgres_with(
        "CREATE SCHEMA \"Sales-EU\";
         CREATE TABLE \"Sales-EU\".\"Order-Lines\" (
             id int PRIMARY KEY, \"1st price\" int, \"naïve\" text, \"a-b\" int);
         CREATE TABLE \"Sales-EU\".clash (id int PRIMARY KEY, \"a-b\" int, \"a_b\" int)",
    )
    .await;
    let text = format!(
        "{}\n[registry]\nlisten = \"127.0.0.1:0\"\n",
        harness::config_toml(&pg, &["Sales-EU.*"], "")
    );
    let config = sluice::config::Config::from_toml_str(&text, std::iter::empty()).unwrap();
    let (pipeline, handle) = harness::start(config).await;
    harness::wait_streaming(&pg).await;
    let url = pipeline.embedded_registry_url().unwrap().to_string();
    pg.execute("INSERT INTO \"Sales-EU\".\"Order-Lines\" VALUES (1, 10, 'café', 3)")
        .await
        .unwrap();
    harness::wait_events(&handle, 1).await;
    let records = handle.records();
    let decoded = crate::evolution::decode(&url, &records).await;
    assert_eq!(&*records[0].topic, "test.Sales-EU.Order-Lines");
    let after = &decoded[0]["value"]["after"];
    assert_eq!(
        after,
        &serde_json::json!({"id": 1, "_st_price": 10, "na_ve": "café", "a_b": 3})
    );
    assert_eq!(decoded[0]["value"]["source"]["table"], "Order-Lines");

    pg.execute("INSERT INTO \"Sales-EU\".clash VALUES (1, 2, 3)")
        .await
        .unwrap();
    let result = tokio::time::timeout(WAIT, pipeline.wait())
        .await
        .expect("the pipeline stops");
    let error = format!(
        "{:#}",
        result.expect_err("two columns cannot share a field")
    );
    assert!(
        error.contains("\"a-b\"") && error.contains("\"a_b\"") && error.contains("clash"),
        "{error}"
    );
    assert_eq!(
        handle.records().len(),
        1,
        "nothing of the clashing table was delivered"
    );
}
