//! The warehouse sinks against real targets: a second private PostgreSQL, and Debian's
//! ClickHouse 18.16. End to end, the `sluice` binary is killed -9 in the middle of a random
//! workload and restarted, and the target table ends equal to the source (ClickHouse read with
//! `FINAL` and `WHERE _deleted = 0`), including a column added on the way. The sinks are also
//! driven directly with hand-made batches for what a workload cannot force: redelivery of
//! older changes, refused rows, target outages.

use std::sync::Arc;
use std::time::{Duration, Instant};

use sluice_api::{
    Batch, ChangeEvent, Column, ErrorClass, Lsn, Op, ReplicaIdentity, Sink, SourcePosition,
    TableSchema, Value,
};

use crate::harness;
use crate::support::workload::{kill_mid_workload, SOURCE_TABLE};
use crate::support::{self, ThrowawayPostgres, DEFAULT_DATABASE, SUPERUSER};

const WAIT: Duration = Duration::from_secs(180);

/// A row as compared: id, qty, price as text, note, epoch seconds, color (the added column).
type Row = (
    i64,
    Option<i64>,
    Option<String>,
    Option<String>,
    Option<i64>,
    Option<String>,
);

/// The compared columns of a PostgreSQL `items` table, as a select list giving a [`Row`].
fn compared_columns(with_color: bool) -> String {
    let color = if with_color { "color" } else { "NULL::text" };
    format!("id, qty::int8, price::text, note, extract(epoch FROM at)::int8, {color}")
}

/// The rows of a query on [`compared_columns`].
async fn compared_rows(
    client: &tokio_postgres::Client,
    sql: &str,
) -> Result<Vec<Row>, tokio_postgres::Error> {
    Ok(client
        .query(sql, &[])
        .await?
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4), r.get(5)))
        .collect())
}

async fn source_rows(client: &tokio_postgres::Client, with_color: bool) -> Vec<Row> {
    let columns = compared_columns(with_color);
    let sql = format!("SELECT {columns} FROM items ORDER BY id");
    compared_rows(client, &sql).await.expect("read the source")
}

/// A target table to compare with the source.
enum Target<'a> {
    #[cfg(feature = "sink-postgres")]
    Postgres(&'a tokio_postgres::Client),
    #[cfg(feature = "sink-clickhouse")]
    ClickHouse(&'a support::clickhouse::ThrowawayClickHouse),
}

impl Target<'_> {
    /// The live rows of the target's `items` (empty while it does not exist).
    async fn rows(&self, with_color: bool) -> Vec<Row> {
        match self {
            #[cfg(feature = "sink-postgres")]
            Target::Postgres(client) => {
                let columns = compared_columns(with_color);
                let sql =
                    format!("SELECT {columns} FROM mirror.items WHERE NOT _deleted ORDER BY id");
                compared_rows(client, &sql).await.unwrap_or_default()
            }
            #[cfg(feature = "sink-clickhouse")]
            Target::ClickHouse(server) => {
                let color = if with_color { "color" } else { "NULL" };
                let sql = format!(
                    "SELECT toString(id) AS id, qty, toString(price) AS price, note, \
                     toUnixTimestamp(at) AS at, {color} AS color FROM mirror.items FINAL \
                     WHERE _deleted = 0 FORMAT JSONEachRow"
                );
                let Ok(rows) = server.rows(&sql).await else {
                    return Vec::new();
                };
                let mut rows: Vec<Row> = rows
                    .iter()
                    .map(|r| {
                        let text = |v: &serde_json::Value| v.as_str().map(str::to_owned);
                        (
                            text(&r["id"]).and_then(|s| s.parse().ok()).unwrap_or(-1),
                            r["qty"].as_i64(),
                            text(&r["price"]),
                            text(&r["note"]),
                            r["at"].as_i64(),
                            text(&r["color"]),
                        )
                    })
                    .collect();
                // `id` is a string in the result (64-bit integers are quoted): sort here.
                rows.sort_by_key(|r| r.0);
                rows
            }
        }
    }
}

/// Poll until the target equals the source; on timeout, fail showing both.
async fn wait_equal(source: &tokio_postgres::Client, target: &Target<'_>, with_color: bool) {
    let deadline = Instant::now() + WAIT;
    loop {
        let expected = source_rows(source, with_color).await;
        let actual = target.rows(with_color).await;
        if expected == actual {
            return;
        }
        if Instant::now() >= deadline {
            let missing: Vec<_> = expected.iter().filter(|r| !actual.contains(r)).collect();
            let extra: Vec<_> = actual.iter().filter(|r| !expected.contains(r)).collect();
            panic!(
                "the target does not equal the source ({} vs {} rows)\nmissing or different: \
                 {missing:#?}\nextra or different: {extra:#?}",
                expected.len(),
                actual.len()
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The daemon with `sink` (a `[[sink]]` body) instead of the test's null sink: a random
/// workload, a kill -9 in the middle, a restart, then a column added at the source.
async fn crash_workload_reaches_equality(pg: &ThrowawayPostgres, sink: &str, target: Target<'_>) {
    let config = harness::items_config_with_sink(pg, sink);
    let args = ["run", "--config", config.path().to_str().unwrap()];
    let rows = &target;
    let mut daemon = kill_mid_workload(pg, &args, 0x5eed_1234_abcd, 400, || async move {
        rows.rows(false).await.len() >= 50
    })
    .await;
    let client = pg.client(DEFAULT_DATABASE).await.unwrap();
    wait_equal(&client, &target, false).await;

    client
        .batch_execute(
            "ALTER TABLE items ADD COLUMN color text; \
             INSERT INTO items SELECT 100000 + g, g, 1.50, 'new', to_timestamp(1700000000), \
             'red ' || g FROM generate_series(1, 20) g",
        )
        .await
        .unwrap();
    client
        .batch_execute("UPDATE items SET color = 'blue' WHERE id IN (SELECT id FROM items LIMIT 5)")
        .await
        .unwrap();
    wait_equal(&client, &target, true).await;
    let filled = source_rows(&client, true)
        .await
        .iter()
        .filter(|r| r.5.is_some())
        .count();
    assert!(filled >= 20, "the added column is filled for new rows");

    daemon.stop_cleanly(Duration::from_secs(60)).await;
}

/// `public.items (id int8 key, qty int4)` as the source describes it.
fn items_schema() -> Arc<TableSchema> {
    let col = |name: &str, ty: &str, oid, is_key| Column {
        name: name.into(),
        type_oid: oid,
        type_name: ty.into(),
        type_modifier: -1,
        is_key,
    };
    Arc::new(TableSchema {
        relation_id: 1,
        schema: "public".into(),
        name: "items".into(),
        replica_identity: ReplicaIdentity::Default,
        columns: vec![col("id", "int8", 20, true), col("qty", "int4", 23, false)],
    })
}

fn change(op: Op, lsn: u64, id: i64, qty: Option<i32>) -> ChangeEvent {
    let row = vec![Value::Int64(id), qty.map_or(Value::Null, Value::Int32)];
    let key_only = vec![Value::Int64(id), Value::Null];
    ChangeEvent {
        op,
        table: Some(items_schema()),
        before: (op == Op::Delete).then_some(key_only),
        before_is_key_only: op == Op::Delete,
        after: (op != Op::Delete && op != Op::Truncate).then_some(row),
        message: None,
        position: SourcePosition {
            lsn: Lsn(lsn),
            commit_lsn: Lsn(lsn),
            ..SourcePosition::default()
        },
    }
}

fn batch(events: Vec<ChangeEvent>) -> Batch {
    Batch {
        events,
        ..Batch::default()
    }
}

/// A sink's raw config from the TOML body of its `[[sink]]` table.
fn raw_config<T: serde::de::DeserializeOwned>(text: &str) -> T {
    let table = toml::Value::Table(toml::from_str(text).unwrap());
    sluice_api::from_toml(table, "sink").unwrap()
}

/// The `dead_letter` line sending refused rows to the file at `path`.
fn dead_letter_file(path: &std::path::Path) -> String {
    format!(
        "dead_letter = {{ type = \"file\", path = {:?} }}",
        path.display().to_string()
    )
}

/// Creates of ids 1 to 9 (at LSNs 11 to 19), each with the quantity `qty` gives its id.
fn creates(qty: impl Fn(i64) -> i32) -> Vec<ChangeEvent> {
    (1..=9)
        .map(|id| change(Op::Create, 10 + id as u64, id, Some(qty(id))))
        .collect()
}

/// The dead letters in `path`, each with its `key` (the row's key columns as JSON text) parsed
/// back into a JSON object.
fn dead_letters(path: &std::path::Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| {
            let mut letter: serde_json::Value = serde_json::from_str(l).unwrap();
            let key = letter["key"].as_str().expect("a key").to_owned();
            letter["key"] = serde_json::from_str(&key).unwrap();
            letter
        })
        .collect()
}

#[cfg(feature = "sink-postgres")]
mod postgres {
    use super::*;
    use sluice_sink_postgres::{PostgresSink, RawPostgresSinkConfig};

    fn sink(target: &ThrowawayPostgres, extra: &str) -> PostgresSink {
        sink_to(&target.url(SUPERUSER, DEFAULT_DATABASE), extra)
    }

    fn sink_to(connection: &str, extra: &str) -> PostgresSink {
        let text = format!("connection = \"{connection}\"\n{extra}");
        let raw: RawPostgresSinkConfig = raw_config(&text);
        PostgresSink::new("warehouse", &raw.validate("sink").unwrap())
    }

    /// A sink whose target table holds row 100 and then refuses negative quantities.
    async fn sink_refusing_negative_qty(target: &ThrowawayPostgres, extra: &str) -> PostgresSink {
        let mut sink = sink(target, extra);
        sink.write(&batch(vec![change(Op::Create, 5, 100, Some(1))]))
            .await
            .unwrap();
        target
            .execute("ALTER TABLE public.items ADD CONSTRAINT qty_positive CHECK (qty >= 0)")
            .await
            .unwrap();
        sink
    }

    /// `(id, qty, _deleted)` of every target row.
    async fn target_rows(target: &ThrowawayPostgres) -> Vec<(i64, Option<i32>, bool)> {
        let client = target.client(DEFAULT_DATABASE).await.unwrap();
        client
            .query(
                "SELECT id, qty, _deleted FROM public.items ORDER BY id",
                &[],
            )
            .await
            .unwrap()
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2)))
            .collect()
    }

    #[tokio::test]
    async fn the_postgres_target_equals_the_source_after_a_crash_and_gains_added_columns() {
        let pg = support::start_postgres_with(SOURCE_TABLE).await;
        let target = support::start_postgres().await;
        let sink = format!(
            "name = \"warehouse\"\ntype = \"postgres\"\nconnection = \"{}\"\nschema = \"mirror\"",
            target.url(SUPERUSER, DEFAULT_DATABASE)
        );
        let client = target.client(DEFAULT_DATABASE).await.unwrap();
        crash_workload_reaches_equality(&pg, &sink, Target::Postgres(&client)).await;
    }

    #[tokio::test]
    async fn a_target_that_only_accepts_tls_is_written_over_verify_full() {
        use crate::support::{PasswordEncryption, ThrowawayOptions, ThrowawayUser};
        let certs = tempfile::tempdir().unwrap();
        crate::auth::make_certificate(certs.path());
        let options = ThrowawayOptions {
            extra_conf: vec![
                "ssl = on".into(),
                format!(
                    "ssl_cert_file = '{}'",
                    certs.path().join("server.crt").display()
                ),
                format!(
                    "ssl_key_file = '{}'",
                    certs.path().join("server.key").display()
                ),
            ],
            // `hostssl` only: a plain connection of this user is refused.
            extra_hba: vec![
                "hostssl all tls_writer 127.0.0.1/32 scram-sha-256".into(),
                "host all tls_writer 127.0.0.1/32 reject".into(),
            ],
            users: vec![ThrowawayUser::new("tls_writer")
                .with_password("tls-writer-secret", PasswordEncryption::Scram)
                .superuser()],
        };
        let target = ThrowawayPostgres::start(options).await.unwrap();
        let root = certs.path().join("server.crt");
        let url = |query: &str| {
            format!(
                "postgres://tls_writer:tls-writer-secret@127.0.0.1:{}/{DEFAULT_DATABASE}?{query}",
                target.port()
            )
        };
        let mut plain = sink_to(&url("sslmode=disable"), "");
        let refused = plain
            .write(&batch(vec![change(Op::Create, 10, 1, Some(1))]))
            .await
            .unwrap_err();
        assert!(
            !refused.message.contains("tls-writer-secret"),
            "the password leaked into: {refused}"
        );
        let verify = format!("sslmode=verify-full&sslrootcert={}", root.display());
        let mut sink = sink_to(&url(&verify), "");
        sink.write(&batch(vec![change(Op::Create, 10, 1, Some(1))]))
            .await
            .unwrap();
        assert_eq!(target_rows(&target).await, [(1, Some(1), false)]);
    }

    #[tokio::test]
    async fn an_older_change_never_overwrites_a_newer_one_nor_undoes_a_hard_delete() {
        let target = support::start_postgres().await;
        let mut sink = sink(&target, "");
        sink.write(&batch(vec![
            change(Op::Create, 10, 1, Some(1)),
            change(Op::Create, 11, 2, Some(1)),
        ]))
        .await
        .unwrap();
        sink.write(&batch(vec![change(Op::Update, 30, 1, Some(3))]))
            .await
            .unwrap();
        // Redelivery of the first batch after the newer update.
        sink.write(&batch(vec![change(Op::Create, 10, 1, Some(1))]))
            .await
            .unwrap();
        assert_eq!(
            target_rows(&target).await,
            [(1, Some(3), false), (2, Some(1), false)]
        );
        sink.write(&batch(vec![change(Op::Delete, 40, 2, None)]))
            .await
            .unwrap();
        sink.write(&batch(vec![change(Op::Update, 20, 2, Some(9))]))
            .await
            .unwrap();
        assert_eq!(
            target_rows(&target).await,
            [(1, Some(3), false)],
            "a redelivered older update does not bring back a deleted row"
        );
        sink.write(&batch(vec![change(Op::Create, 50, 2, Some(5))]))
            .await
            .unwrap();
        assert_eq!(
            target_rows(&target).await,
            [(1, Some(3), false), (2, Some(5), false)],
            "a newer insert of the key does"
        );
    }

    #[tokio::test]
    async fn a_soft_delete_leaves_a_flagged_row_that_older_changes_cannot_revive() {
        let target = support::start_postgres().await;
        let mut sink = sink(&target, "delete_mode = \"soft\"");
        sink.write(&batch(vec![change(Op::Create, 10, 1, Some(1))]))
            .await
            .unwrap();
        sink.write(&batch(vec![change(Op::Delete, 20, 1, None)]))
            .await
            .unwrap();
        sink.write(&batch(vec![change(Op::Create, 10, 1, Some(1))]))
            .await
            .unwrap();
        assert_eq!(target_rows(&target).await, [(1, Some(1), true)]);
        // The same table under hard deletes later: its tombstone table appears on first use.
        let mut hard = self::sink(&target, "");
        hard.write(&batch(vec![change(Op::Create, 30, 2, Some(2))]))
            .await
            .unwrap();
        hard.write(&batch(vec![change(Op::Delete, 40, 2, None)]))
            .await
            .unwrap();
        assert_eq!(target_rows(&target).await, [(1, Some(1), true)]);
    }

    #[tokio::test]
    async fn a_truncate_empties_the_target_but_keeps_rows_written_after_it() {
        let target = support::start_postgres().await;
        let mut sink = sink(&target, "");
        sink.write(&batch(vec![
            change(Op::Create, 10, 1, Some(1)),
            change(Op::Create, 11, 2, Some(2)),
            change(Op::Truncate, 12, 0, None),
            change(Op::Create, 13, 3, Some(3)),
        ]))
        .await
        .unwrap();
        assert_eq!(target_rows(&target).await, [(3, Some(3), false)]);
    }

    #[tokio::test]
    async fn rows_the_target_refuses_go_to_the_dead_letter_file_and_the_rest_commits() {
        let target = support::start_postgres().await;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dead.jsonl");
        let mut sink = sink_refusing_negative_qty(&target, &dead_letter_file(&path)).await;
        let events = creates(|id| if id == 4 || id == 7 { -1 } else { 1 });
        sink.write(&batch(events)).await.unwrap();
        let ids: Vec<i64> = target_rows(&target).await.iter().map(|r| r.0).collect();
        assert_eq!(ids, [1, 2, 3, 5, 6, 8, 9, 100]);
        let letters = dead_letters(&path);
        let mut keys: Vec<&str> = letters
            .iter()
            .map(|l| l["key"]["id"].as_str().unwrap())
            .collect();
        keys.sort_unstable();
        assert_eq!(keys, ["4", "7"]);
        assert_eq!(letters[0]["sink"], "warehouse");
        assert_eq!(letters[0]["table"], "public.items");
        assert_eq!(letters[0]["op"], "c");
        assert_eq!(letters[0]["document"]["qty"], "-1");
        assert!(
            letters[0]["reason"]
                .as_str()
                .unwrap()
                .contains("qty_positive"),
            "{}",
            letters[0]["reason"]
        );
    }

    #[tokio::test]
    async fn a_refused_row_without_a_dead_letter_file_is_fatal_and_commits_nothing() {
        let target = support::start_postgres().await;
        let mut sink = sink_refusing_negative_qty(&target, "").await;
        let error = sink
            .write(&batch(vec![
                change(Op::Create, 10, 1, Some(1)),
                change(Op::Create, 11, 2, Some(-1)),
            ]))
            .await
            .unwrap_err();
        assert_eq!(error.class, ErrorClass::Fatal, "{error}");
        assert!(error.message.contains("dead_letter"), "{error}");
        assert_eq!(target_rows(&target).await, [(100, Some(1), false)]);
    }

    #[tokio::test]
    async fn a_batch_the_sink_wrote_survives_a_crash_of_a_target_that_commits_asynchronously() {
        let mut target = support::start_postgres().await;
        let client = target.client(DEFAULT_DATABASE).await.unwrap();
        let setting: String = client
            .query_one("SHOW synchronous_commit", &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(
            setting, "off",
            "the target acknowledges commits before flushing them"
        );
        drop(client);
        let mut sink = sink(&target, "");
        sink.write(&batch(vec![change(Op::Create, 5, 1, Some(1))]))
            .await
            .unwrap();
        sink.write(&batch(vec![
            change(Op::Update, 6, 1, Some(2)),
            change(Op::Create, 7, 2, Some(3)),
        ]))
        .await
        .unwrap();
        // Written means durable: the pipeline confirms to the source on the strength of it.
        target.crash().await.unwrap();
        target.start_again().await.unwrap();
        assert_eq!(
            target_rows(&target).await,
            [(1, Some(2), false), (2, Some(3), false)]
        );
    }

    #[tokio::test]
    async fn a_target_outage_is_transient_and_the_retried_batch_lands() {
        let mut target = support::start_postgres().await;
        let mut sink = sink(&target, "");
        sink.write(&batch(vec![change(Op::Create, 5, 1, Some(1))]))
            .await
            .unwrap();
        target.stop_fast().await.unwrap();
        let retried = batch(vec![change(Op::Update, 6, 1, Some(2))]);
        let error = sink.write(&retried).await.unwrap_err();
        assert_eq!(error.class, ErrorClass::Transient, "{error}");
        target.start_again().await.unwrap();
        sink.write(&retried).await.unwrap();
        assert_eq!(target_rows(&target).await, [(1, Some(2), false)]);
    }
}

#[cfg(feature = "sink-clickhouse")]
mod clickhouse {
    use super::*;
    use crate::support::clickhouse::{ThrowawayClickHouse, CLICKHOUSE_PASSWORD, CLICKHOUSE_USER};
    use crate::support::workload::{wait_started, Writer};
    use crate::support::SluiceProcess;
    use sluice_sink_clickhouse::{ClickHouseSink, RawClickHouseSinkConfig};

    fn sink(server: &ThrowawayClickHouse, extra: &str) -> ClickHouseSink {
        let text = format!(
            "url = \"{}\"\ndatabase = \"wh\"\nuser = \"{CLICKHOUSE_USER}\"\n\
             password = \"{CLICKHOUSE_PASSWORD}\"\n{extra}",
            server.url()
        );
        sink_from(&text)
    }

    fn sink_from(text: &str) -> ClickHouseSink {
        let raw: RawClickHouseSinkConfig = raw_config(text);
        ClickHouseSink::new("warehouse", &raw.validate("sink").unwrap()).unwrap()
    }

    /// `(id, qty)` of the live rows, read as the README says: `FINAL`, `_deleted = 0`.
    async fn live_rows(server: &ThrowawayClickHouse) -> Vec<(i64, Option<i64>)> {
        server
            .rows(
                "SELECT toString(id) AS id, qty FROM wh.items FINAL WHERE _deleted = 0 \
                 ORDER BY id FORMAT JSONEachRow",
            )
            .await
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r["id"].as_str().unwrap().parse().unwrap(),
                    r["qty"].as_i64(),
                )
            })
            .collect()
        // (ids below 10: the string order is the numeric order)
    }

    /// The `[[sink]]` body writing to `server`'s `mirror` database.
    fn sink_to_server(server: &ThrowawayClickHouse) -> String {
        format!(
            "name = \"warehouse\"\ntype = \"clickhouse\"\nurl = \"{}\"\ndatabase = \"mirror\"\n\
             user = \"{CLICKHOUSE_USER}\"\npassword = \"{CLICKHOUSE_PASSWORD}\"",
            server.url()
        )
    }

    #[tokio::test]
    async fn the_clickhouse_target_equals_the_source_after_a_crash_and_gains_added_columns() {
        let pg = support::start_postgres_with(SOURCE_TABLE).await;
        let server = ThrowawayClickHouse::start().await;
        let sink = sink_to_server(&server);
        crash_workload_reaches_equality(&pg, &sink, Target::ClickHouse(&server)).await;
    }

    #[tokio::test]
    async fn the_clickhouse_target_equals_the_source_after_its_server_is_killed_mid_workload() {
        let pg = support::start_postgres_with(SOURCE_TABLE).await;
        let mut server = ThrowawayClickHouse::start().await;
        let config = harness::items_config_with_sink(&pg, &sink_to_server(&server));
        let mut daemon =
            SluiceProcess::spawn(&["run", "--config", config.path().to_str().unwrap()], &[]);
        harness::wait_streaming(&pg).await;
        let writer = Writer::start(&pg, 0x5eed_c11c, 400).await;
        wait_started(&daemon, || async {
            Target::ClickHouse(&server).rows(false).await.len() >= 50
        })
        .await;

        // Killed (-9) under load, held down until the daemon fails to write to it.
        let warned = daemon.warnings_about_sink("warehouse");
        server.stop();
        support::wait_until(
            "the daemon fails to write to the killed server",
            WAIT,
            || async { daemon.warnings_about_sink("warehouse") > warned },
        )
        .await;
        server.start_again().await;
        writer.finish().await;

        let client = pg.client(DEFAULT_DATABASE).await.unwrap();
        wait_equal(&client, &Target::ClickHouse(&server), false).await;
        daemon.stop_cleanly(Duration::from_secs(60)).await;
    }

    #[tokio::test]
    async fn final_reads_show_the_newest_version_of_each_key_and_hide_deletes() {
        let server = ThrowawayClickHouse::start().await;
        let mut sink = sink(&server, "");
        sink.write(&batch(vec![
            change(Op::Create, 10, 1, Some(1)),
            change(Op::Create, 11, 2, Some(1)),
            change(Op::Update, 30, 1, Some(3)),
            change(Op::Delete, 40, 2, None),
        ]))
        .await
        .unwrap();
        // Redelivered older changes lose against the newer versions.
        sink.write(&batch(vec![
            change(Op::Create, 10, 1, Some(1)),
            change(Op::Update, 20, 2, Some(9)),
        ]))
        .await
        .unwrap();
        assert_eq!(live_rows(&server).await, [(1, Some(3))]);
        sink.write(&batch(vec![
            change(Op::Truncate, 50, 0, None),
            change(Op::Create, 60, 5, None),
        ]))
        .await
        .unwrap();
        assert_eq!(
            live_rows(&server).await,
            [(5, None)],
            "a truncate empties the table"
        );
    }

    #[tokio::test]
    async fn rows_the_server_refuses_go_to_the_dead_letter_file_and_the_rest_is_inserted() {
        let server = ThrowawayClickHouse::start().await;
        // A narrower target column than the source's: the server refuses values that do not fit.
        server.query("CREATE DATABASE wh").await.unwrap();
        server
            .query(
                "CREATE TABLE wh.items (id Int64, qty Nullable(Decimal(4, 2)), _version UInt64, \
                 _deleted UInt8) ENGINE = ReplacingMergeTree(_version) ORDER BY id",
            )
            .await
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dead.jsonl");
        let mut sink = sink(&server, &dead_letter_file(&path));
        let events = creates(|id| if id == 3 { 123_456 } else { 1 });
        sink.write(&batch(events)).await.unwrap();
        let ids: Vec<i64> = live_rows_decimal(&server).await;
        assert_eq!(ids, [1, 2, 4, 5, 6, 7, 8, 9]);
        let letters = dead_letters(&path);
        assert_eq!(letters.len(), 1, "{letters:?}");
        assert_eq!(letters[0]["key"]["id"], 3);
        assert_eq!(letters[0]["document"]["qty"], 123_456);
        assert!(
            letters[0]["reason"].as_str().unwrap().contains("Code: 69"),
            "{}",
            letters[0]["reason"]
        );
    }

    async fn live_rows_decimal(server: &ThrowawayClickHouse) -> Vec<i64> {
        server
            .rows("SELECT toString(id) AS id FROM wh.items FINAL ORDER BY id FORMAT JSONEachRow")
            .await
            .unwrap()
            .iter()
            .map(|r| r["id"].as_str().unwrap().parse().unwrap())
            .collect()
    }

    #[tokio::test]
    async fn a_server_outage_is_transient_and_a_wrong_password_is_fatal() {
        let mut server = ThrowawayClickHouse::start().await;
        let mut sink = sink(&server, "");
        sink.write(&batch(vec![change(Op::Create, 5, 1, Some(1))]))
            .await
            .unwrap();
        server.stop();
        let retried = batch(vec![change(Op::Update, 6, 1, Some(2))]);
        let error = sink.write(&retried).await.unwrap_err();
        assert_eq!(error.class, ErrorClass::Transient, "{error}");
        server.start_again().await;
        sink.write(&retried).await.unwrap();
        assert_eq!(live_rows(&server).await, [(1, Some(2))]);

        let text = format!(
            "url = \"{}\"\nuser = \"{CLICKHOUSE_USER}\"\npassword = \"wrong\"",
            server.url()
        );
        let mut wrong = sink_from(&text);
        let error = wrong.write(&retried).await.unwrap_err();
        assert_eq!(error.class, ErrorClass::Fatal, "{error}");
        assert!(
            !error.message.contains("wrong"),
            "no password in errors: {error}"
        );
    }
}
