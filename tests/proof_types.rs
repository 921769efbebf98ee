//! The proof of the delivery contract for column types: a table with a column of each common
//! built-in type (and an enum, arrays, a range, bit strings, geometry, an out-of-line text),
//! written by a random workload of upserts, partial updates and deletes with NULLs and special
//! values (NaN, infinities, quotes, commas, non-ASCII text) while the `sluice` binary is killed
//! -9 and started again. Afterwards the PostgreSQL warehouse must hold every row exactly as the
//! source does, compared column by column in PostgreSQL's own text form.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio_postgres::{Client, NoTls};

use crate::harness::{self, SLOT};
use crate::support::{self, ConfigFile, SluiceProcess, ThrowawayPostgres};
use crate::support::{DEFAULT_DATABASE, SUPERUSER};

const WAIT: Duration = Duration::from_secs(300);
/// Transactions the writer makes at least, faults or not.
const MIN_TRANSACTIONS: u64 = 300;
/// Kill -9s of the daemon while the writer runs.
const KILLS: usize = 3;

/// Each column with the SQL expression that gives it a random value (NULL one time in ten).
const COLUMNS: &[(&str, &str, &str)] = &[
    ("c_bool", "bool", "random() < 0.5"),
    ("c_int2", "int2", "(random() * 60000 - 30000)::int2"),
    ("c_int4", "int4", "(random() * 2e9 - 1e9)::int4"),
    (
        "c_int8",
        "int8",
        "(random() * 9e18 - 4.5e18)::numeric::int8",
    ),
    ("c_float4", "float4", "(random() * 1e6)::float4"),
    (
        "c_float8",
        "float8",
        "CASE WHEN random() < 0.05 THEN 'NaN'::float8 WHEN random() < 0.05 \
         THEN '-Infinity'::float8 ELSE random() * 1e10 - 5e9 END",
    ),
    (
        "c_numeric",
        "numeric",
        "CASE WHEN random() < 0.05 THEN 'NaN'::numeric \
         ELSE round((random() * 1e12)::numeric, (random() * 8)::int) END",
    ),
    (
        "c_numeric_scaled",
        "numeric(12,3)",
        "(random() * 1e6)::numeric(12,3)",
    ),
    (
        "c_text",
        "text",
        "md5(random()::text) || E' ünïcödé, \"quoted\" \\\\ back\\nline'",
    ),
    ("c_varchar", "varchar(20)", "left(md5(random()::text), 20)"),
    ("c_char", "char(4)", "left(md5(random()::text), 3)"),
    ("c_bytea", "bytea", "decode(md5(random()::text), 'hex')"),
    (
        "c_date",
        "date",
        "date '2000-01-01' + (random() * 20000)::int",
    ),
    (
        "c_time",
        "time",
        "time '00:00' + random() * interval '23 hours'",
    ),
    (
        "c_timetz",
        "timetz",
        "(time '00:00' + random() * interval '23 hours')::timetz",
    ),
    (
        "c_timestamp",
        "timestamp",
        "timestamp '2000-01-01' + random() * interval '10000 days'",
    ),
    (
        "c_timestamptz",
        "timestamptz",
        "CASE WHEN random() < 0.05 THEN 'infinity'::timestamptz \
         ELSE timestamptz '2000-01-01 UTC' + random() * interval '10000 days' END",
    ),
    (
        "c_interval",
        "interval",
        "make_interval(0, (random() * 24)::int, 0, (random() * 30)::int, 0, 0, random() * 1000)",
    ),
    ("c_uuid", "uuid", "md5(random()::text)::uuid"),
    (
        "c_json",
        "json",
        "json_build_object('a', (random() * 100)::int, 'b', md5(random()::text))",
    ),
    (
        "c_jsonb",
        "jsonb",
        "jsonb_build_object('k', (random() * 100)::int, 'arr', \
         jsonb_build_array(md5(random()::text), null, true))",
    ),
    (
        "c_inet",
        "inet",
        "('10.' || (random() * 255)::int || '.0.' || (random() * 255)::int)::inet",
    ),
    (
        "c_macaddr",
        "macaddr",
        "substr(md5(random()::text), 1, 12)::macaddr",
    ),
    (
        "c_int4_array",
        "int4[]",
        "ARRAY[(random() * 100)::int, NULL, (random() * 100)::int]",
    ),
    (
        "c_text_array",
        "text[]",
        "ARRAY[md5(random()::text), 'with \"quote\"', 'comma,here', NULL]",
    ),
    (
        "c_int4range",
        "int4range",
        "int4range((random() * 10)::int, 10 + (random() * 10)::int)",
    ),
    ("c_bit", "bit(4)", "((random() * 15)::int)::bit(4)"),
    (
        "c_varbit",
        "varbit(8)",
        "((random() * 255)::int)::bit(8)::varbit",
    ),
    ("c_point", "point", "point(random(), random())"),
    (
        "c_mood",
        "mood",
        "(ARRAY['sad', 'ok', 'happy']::mood[])[1 + (random() * 2)::int]",
    ),
    // Out of line one time in five (STORAGE EXTERNAL), so partial updates leave it unchanged.
    (
        "c_big",
        "text",
        "CASE WHEN random() < 0.2 THEN repeat(md5(random()::text), 300) ELSE 'short' END",
    ),
];

fn table_sql() -> String {
    let columns: Vec<String> = COLUMNS
        .iter()
        .map(|(name, ty, _)| format!("{name} {ty}"))
        .collect();
    format!(
        "CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
         CREATE FUNCTION maybe(anyelement) RETURNS anyelement LANGUAGE sql VOLATILE
             AS 'SELECT CASE WHEN random() < 0.1 THEN NULL ELSE $1 END';
         CREATE TABLE typed (id int8 PRIMARY KEY, {});
         ALTER TABLE typed ALTER c_big SET STORAGE EXTERNAL",
        columns.join(", ")
    )
}

/// Transaction `n` of the workload: upserts of up to 40 rows, partial updates of a few columns,
/// or deletes, over 2,000 ids.
fn transaction(n: u64) -> String {
    let values: Vec<String> = COLUMNS
        .iter()
        .map(|(_, _, value)| format!("maybe({value})"))
        .collect();
    let names: Vec<&str> = COLUMNS.iter().map(|(name, _, _)| *name).collect();
    match n % 4 {
        0 | 1 => {
            let set: Vec<String> = names
                .iter()
                .map(|c| format!("{c} = EXCLUDED.{c}"))
                .collect();
            format!(
                "INSERT INTO typed (id, {names}) \
                 SELECT DISTINCT ON (id) id, {values} \
                 FROM (SELECT (random() * 2000)::int8 AS id FROM generate_series(1, {rows})) ids \
                 ON CONFLICT (id) DO UPDATE SET {set}",
                names = names.join(", "),
                values = values.join(", "),
                rows = 1 + n % 40,
                set = set.join(", "),
            )
        }
        2 => {
            // A few columns at a time, so the others (the out-of-line one among them) stay.
            let first = (n as usize / 4) % COLUMNS.len();
            let set: Vec<String> = (0..3)
                .map(|i| COLUMNS[(first + i * 7) % COLUMNS.len()])
                .filter(|(name, _, _)| *name != "c_big")
                .map(|(name, _, value)| format!("{name} = maybe({value})"))
                .collect();
            format!(
                "UPDATE typed SET {} WHERE id % 13 = {}",
                set.join(", "),
                n % 13
            )
        }
        _ => "DELETE FROM typed WHERE id IN (SELECT id FROM typed ORDER BY random() LIMIT 5)"
            .to_owned(),
    }
}

/// Every row of `table` (filtered), each column in PostgreSQL's text form.
async fn text_rows(client: &Client, table: &str, filter: &str) -> Vec<Vec<Option<String>>> {
    let columns: Vec<String> = COLUMNS
        .iter()
        .map(|(name, _, _)| format!("{name}::text"))
        .collect();
    let sql = format!(
        "SELECT id::text, {} FROM {table} WHERE {filter} ORDER BY id",
        columns.join(", ")
    );
    let rows = client.query(&sql, &[]).await.unwrap();
    rows.iter()
        .map(|row| (0..row.len()).map(|i| row.get(i)).collect())
        .collect()
}

/// The first row that differs, column by column, for the failure message.
fn first_difference(expected: &[Vec<Option<String>>], actual: &[Vec<Option<String>>]) -> String {
    let names: Vec<&str> = std::iter::once("id")
        .chain(COLUMNS.iter().map(|(name, _, _)| *name))
        .collect();
    for (e, a) in expected.iter().zip(actual) {
        if e != a {
            let columns: Vec<String> = names
                .iter()
                .zip(e.iter().zip(a))
                .filter(|(_, (x, y))| x != y)
                .map(|(name, (x, y))| format!("{name}: source {x:?}, warehouse {y:?}"))
                .collect();
            return format!("id {:?}: {}", e[0], columns.join("; "));
        }
    }
    format!(
        "{} rows in the source, {} in the warehouse",
        expected.len(),
        actual.len()
    )
}

fn spawn(config: &ConfigFile) -> SluiceProcess {
    let args = ["run", "--config", config.path().to_str().unwrap()];
    SluiceProcess::spawn(&args, &[("RUST_LOG", "info")])
}

/// Write transactions until `stop` is set and at least [`MIN_TRANSACTIONS`] are committed.
async fn write(url: String, stop: Arc<AtomicBool>, committed: Arc<AtomicU64>) {
    let (client, connection) = tokio_postgres::connect(&url, NoTls).await.unwrap();
    tokio::spawn(connection);
    let mut n = 0;
    while !stop.load(Ordering::Relaxed) || n < MIN_TRANSACTIONS {
        let sql = transaction(n);
        client
            .batch_execute(&sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
        n += 1;
        committed.store(n, Ordering::Relaxed);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn wait_progress(pg: &ThrowawayPostgres, what: &str) {
    let client = pg.client(DEFAULT_DATABASE).await.unwrap();
    let now = support::slot_confirmed_flush_lsn(&client, SLOT)
        .await
        .unwrap_or_default();
    support::wait_until(what, WAIT, || async {
        support::slot_confirmed_flush_lsn(&client, SLOT)
            .await
            .is_some_and(|lsn| lsn > now)
    })
    .await;
}

#[tokio::test]
async fn every_column_type_reaches_the_warehouse_exactly_as_the_source_holds_it_through_kills() {
    let pg = support::start_postgres_with(&table_sql()).await;
    let target = support::start_postgres().await;
    let sink = format!(
        "name = \"warehouse\"\ntype = \"postgres\"\nschema = \"mirror\"\n\
         connection = \"postgres://{SUPERUSER}@127.0.0.1:{}/{DEFAULT_DATABASE}?sslmode=disable\"",
        target.port()
    );
    let config = support::write_config(
        &harness::config_toml(&pg, &["public.typed"], "")
            .replace("name = \"null\"\ntype = \"memory\"\nretain = false", &sink),
    );
    let mut daemon = spawn(&config);
    harness::wait_streaming(&pg).await;
    let stop = Arc::new(AtomicBool::new(false));
    let committed = Arc::new(AtomicU64::new(0));
    let writer = tokio::spawn(write(
        pg.url(SUPERUSER, DEFAULT_DATABASE),
        stop.clone(),
        committed.clone(),
    ));
    let mut logs = Vec::new();
    for round in 0..KILLS {
        wait_progress(&pg, &format!("progress before kill {round}")).await;
        daemon.kill();
        logs.push(daemon.stderr());
        drop(daemon);
        let client = pg.client(DEFAULT_DATABASE).await.unwrap();
        support::wait_slot_released(&client, SLOT, WAIT).await;
        daemon = spawn(&config);
    }
    stop.store(true, Ordering::Relaxed);
    writer.await.unwrap();

    let source = pg.client(DEFAULT_DATABASE).await.unwrap();
    let end = support::current_wal_lsn(&source).await;
    support::wait_slot_confirmed(&source, SLOT, end, "every change is confirmed", WAIT).await;
    daemon.terminate();
    let status = daemon.wait_exit(Duration::from_secs(60)).await;
    logs.push(daemon.stderr());
    assert!(status.success(), "the daemon stops cleanly");
    for log in &logs {
        assert!(!log.contains("panicked"), "no run panics:\n{log}");
    }

    let expected = text_rows(&source, "typed", "true").await;
    assert!(expected.len() > 100, "the workload leaves rows to compare");
    let nulls = expected.iter().flatten().filter(|v| v.is_none()).count();
    assert!(nulls > 100, "the workload writes NULLs ({nulls})");
    let target = target.client(DEFAULT_DATABASE).await.unwrap();
    let warehouse = text_rows(&target, "mirror.typed", "NOT _deleted").await;
    assert!(
        warehouse == expected,
        "the warehouse equals the source, type by type: {}",
        first_difference(&expected, &warehouse)
    );
    eprintln!(
        "RESULT name=proof_types faults={KILLS} transactions={} rows_checked={} columns={}",
        committed.load(Ordering::Relaxed),
        expected.len(),
        COLUMNS.len() + 1
    );
}
