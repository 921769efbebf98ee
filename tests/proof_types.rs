//! The proof of the delivery contract for column types: a table with a column of each common
//! built-in type (and an enum, arrays, a range, bit strings, geometry, an out-of-line text),
//! written by a random workload of upserts, partial updates and deletes with NULLs and special
//! values (NaN, infinities, quotes, commas, non-ASCII text) while the `sluice` binary, feeding
//! Kafka (Avro through the embedded registry), the search server and a PostgreSQL warehouse at
//! once, is killed -9 and started again. Afterwards each sink must hold every row as the
//! source does, compared column by column in PostgreSQL's own text form: the warehouse's
//! columns directly, the Kafka topic replayed in order and the index's documents read back
//! into PostgreSQL by [`read_back`], which states per type how each sink's value maps to the
//! column's (and where that mapping is documented as lossy, what it keeps).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value as Json};
use tokio_postgres::{Client, NoTls};

use crate::harness::{self, SLOT};
use crate::support::kafka::{self, ThrowawayKafka};
use crate::support::search::ThrowawaySearch;
use crate::support::{self, ConfigFile, SluiceProcess};
use crate::support::{DEFAULT_DATABASE, SUPERUSER};

const WAIT: Duration = Duration::from_secs(300);
/// Transactions the writer makes at least, faults or not.
const MIN_TRANSACTIONS: u64 = 300;
/// Kill -9s of the daemon while the writer runs.
const KILLS: usize = 3;
/// The row written last: the Kafka consumer reads until its record arrives.
const SENTINEL: i64 = 900_000_000;
/// The table's topic and index.
const TOPIC: &str = "test.public.typed";

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

/// The table, with a full replica identity: the search sink needs the old row to fill in an
/// out-of-line value an update left unchanged (with the default identity it dead-letters such
/// an update, as README "Search sink" says).
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
         ALTER TABLE typed ALTER c_big SET STORAGE EXTERNAL;
         ALTER TABLE typed REPLICA IDENTITY FULL",
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

/// The sinks the rows are compared in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Sink {
    Warehouse,
    Kafka,
    Search,
}

/// For column `name` of type `ty`: the source's form of it compared in `sink`, and the SQL that
/// reads the sink's value back into that form. The warehouse holds the column itself; for
/// Kafka and search, `doc` is the replayed after image or the document (jsonb) with the
/// sink's value of the column, whose form each sink documents (README "Event format").
fn read_back(sink: Sink, name: &str, ty: &str) -> (String, String) {
    let c = name;
    let v = format!("(doc->'{name}')");
    let t = format!("(doc->>'{name}')");
    let same = |sink_form: String| (format!("{c}::text"), sink_form);
    let bits = |n: u32| {
        // Debezium's Bits: the bit string as an unsigned integer, little-endian bytes.
        same(format!(
            "CASE WHEN {t} IS NOT NULL THEN (SELECT coalesce(sum(get_byte(b, i)::int8 << (8 * i)), 0)::int8 \
             FROM (SELECT {t}::bytea AS b) x, generate_series(0, length(b) - 1) i)::bit({n})::{ty}::text END"
        ))
    };
    match (sink, ty) {
        (Sink::Warehouse, _) => same(format!("{c}::text")),
        // Microseconds with a month of 30.4375 days (Debezium's MicroDuration): months and
        // days are not kept apart, their sum is.
        (_, "interval") => (
            format!(
                "((extract(year FROM {c}) * 12 + extract(month FROM {c})) * 2629800000000 \
                 + extract(day FROM {c}) * 86400000000 + extract(hour FROM {c}) * 3600000000 \
                 + extract(minute FROM {c}) * 60000000 + extract(microseconds FROM {c}))::int8::text"
            ),
            format!("{t}::int8::text"),
        ),
        // The time in UTC: the instant is kept, the offset it was written with is not.
        (_, "timetz") => (
            format!("({c} AT TIME ZONE 'UTC')::text"),
            format!("({t}::timetz AT TIME ZONE 'UTC')::text"),
        ),
        (_, "time") => same(format!(
            "(time '00:00' + ({t} || ' microseconds')::interval)::text"
        )),
        (_, "point") => same(format!(
            "point(({v}->>'x')::float8, ({v}->>'y')::float8)::text"
        )),
        (_, "int4[]" | "text[]") => same(format!(
            "CASE WHEN jsonb_typeof({v}) = 'array' THEN ARRAY(SELECT e FROM \
             jsonb_array_elements_text({v}) WITH ORDINALITY AS a(e, i) ORDER BY i)::{ty}::text END"
        )),
        // A variable-scale decimal has no NaN: Avro carries it as null.
        (Sink::Kafka, "numeric") => (
            format!("CASE WHEN {c} <> 'NaN' THEN {c}::text END"),
            format!("{t}::numeric::text"),
        ),
        (Sink::Kafka, "date") => same(format!("(date '1970-01-01' + {t}::int)::text")),
        (Sink::Kafka, "timestamp") => same(format!(
            "(timestamp '1970-01-01' + ({t} || ' microseconds')::interval)::text"
        )),
        (Sink::Kafka, "bit(4)") => bits(4),
        (Sink::Kafka, "varbit(8)") => bits(8),
        (Sink::Search, "bytea") => same(format!("decode({t}, 'base64')::text")),
        // Embedded as JSON in the document: its text is normalised as jsonb's.
        (Sink::Search, "json" | "jsonb") => (
            format!("{c}::jsonb::text"),
            format!("CASE WHEN jsonb_typeof({v}) <> 'null' THEN {v}::text END"),
        ),
        _ => same(format!("{t}::{ty}::text")),
    }
}

/// The query for every row in `sink`'s terms: from the source table (`source`), or as the sink
/// holds it.
fn rows_sql(sink: Sink, source: bool) -> String {
    let forms: Vec<String> = COLUMNS
        .iter()
        .map(|(name, ty, _)| {
            let (source_form, sink_form) = read_back(sink, name, ty);
            if source {
                source_form
            } else {
                sink_form
            }
        })
        .collect();
    let from = match (sink, source) {
        (_, true) => "typed",
        (Sink::Warehouse, false) => "mirror.typed WHERE NOT _deleted",
        (Sink::Kafka, false) => "replayed.kafka",
        (Sink::Search, false) => "replayed.search",
    };
    format!(
        "SELECT id::text, {} FROM {from} ORDER BY id",
        forms.join(", ")
    )
}

async fn text_rows(client: &Client, sql: &str) -> Vec<Vec<Option<String>>> {
    let rows = client
        .query(sql, &[])
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    rows.iter()
        .map(|row| (0..row.len()).map(|i| row.get(i)).collect())
        .collect()
}

/// Store what a sink holds in `replayed.<table>` of the source database, to be read back by
/// [`read_back`]: `select` takes the JSON text `$1` apart into ids and documents.
async fn store(client: &Client, table: &str, json: &str, select: &str) {
    client
        .batch_execute(&format!(
            "CREATE SCHEMA IF NOT EXISTS replayed;
             CREATE TABLE replayed.{table} (id int8 PRIMARY KEY, doc jsonb)"
        ))
        .await
        .unwrap();
    client
        .execute(&format!("INSERT INTO replayed.{table} {select}"), &[&json])
        .await
        .unwrap_or_else(|e| panic!("store {table}: {e}"));
}

/// The first row that differs, column by column, for the failure message.
fn first_difference(
    sink: Sink,
    expected: &[Vec<Option<String>>],
    actual: &[Vec<Option<String>>],
) -> String {
    let names: Vec<&str> = std::iter::once("id")
        .chain(COLUMNS.iter().map(|(name, _, _)| *name))
        .collect();
    for (e, a) in expected.iter().zip(actual) {
        if e != a {
            let columns: Vec<String> = names
                .iter()
                .zip(e.iter().zip(a))
                .filter(|(_, (x, y))| x != y)
                .map(|(name, (x, y))| format!("{name}: source {x:?}, {sink:?} {y:?}"))
                .collect();
            return format!("id {:?}: {}", e[0], columns.join("; "));
        }
    }
    format!(
        "{} rows in the source, {} in {sink:?}",
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

#[tokio::test]
async fn every_column_type_reaches_every_sink_as_the_source_holds_it_through_kills() {
    let pg = support::start_postgres_with(&table_sql()).await;
    let kafka = ThrowawayKafka::start().await;
    let search = ThrowawaySearch::start().await;
    let target = support::start_postgres().await;
    let dir = tempfile::tempdir().unwrap();
    let registry_port = support::free_port();
    let sinks = format!(
        "name = \"kafka\"\ntype = \"kafka\"\nbrokers = \"{brokers}\"\npartitions = 3\n\
         \n[[sink]]\nname = \"search\"\ntype = \"search\"\nurl = \"{search}\"\n{mappings}\n\
         \n[[sink]]\nname = \"warehouse\"\ntype = \"postgres\"\nschema = \"mirror\"\n\
         connection = \"postgres://{SUPERUSER}@127.0.0.1:{target}/{DEFAULT_DATABASE}?sslmode=disable\"",
        brokers = kafka.bootstrap(),
        search = search.url(),
        // The jsonb values hold arrays mixing strings, nulls and booleans, which no search
        // field type takes: the index keeps them in `_source` without indexing them.
        mappings = "mappings = { \"public.typed\" = { c_jsonb = { type = \"object\", enabled = false } } }",
        target = target.port(),
    );
    // The registry keeps its schemas in a file: each daemon run after a kill finds the ids
    // the records already in Kafka carry.
    let config = support::write_config(&format!(
        "{}\n[registry]\nlisten = \"127.0.0.1:{registry_port}\"\nstorage = {:?}\n",
        harness::config_toml(&pg, &["public.typed"], "").replace(harness::NULL_SINK, &sinks),
        dir.path().join("registry.json").display().to_string()
    ));
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
        let client = pg.client(DEFAULT_DATABASE).await.unwrap();
        let what = format!("progress before kill {round}");
        support::wait_slot_progress(&client, SLOT, &what, &daemon, WAIT, "").await;
        daemon.kill();
        logs.push(daemon.stderr());
        drop(daemon);
        support::wait_slot_released(&client, SLOT, WAIT).await;
        daemon = spawn(&config);
    }
    stop.store(true, Ordering::Relaxed);
    writer.await.unwrap();

    let source = pg.client(DEFAULT_DATABASE).await.unwrap();
    source
        .batch_execute(&format!("INSERT INTO typed (id) VALUES ({SENTINEL})"))
        .await
        .unwrap();
    let end = support::current_wal_lsn(&source).await;
    support::wait_slot_confirmed_while_moving(
        &source,
        SLOT,
        end,
        "every change is confirmed",
        WAIT,
    )
    .await;
    // The daemon serves the registry the consumer decodes the records with.
    let registry = format!("http://127.0.0.1:{registry_port}");
    let records = kafka
        .read_until_sentinel(&registry, "read_uncommitted", SENTINEL, TOPIC)
        .await;
    logs.push(daemon.stop_cleanly(Duration::from_secs(60)).await);
    for log in &logs {
        assert!(!log.contains("panicked"), "no run panics:\n{log}");
    }

    let replay = kafka::replay(&records);
    assert!(
        replay.reordered.is_empty(),
        "no per-key reordering in Kafka: {:?}",
        &replay.reordered[..replay.reordered.len().min(5)]
    );
    let replayed = Json::Array(
        replay
            .state
            .iter()
            .map(|(id, after)| json!([id, after]))
            .collect(),
    );
    let pairs = "SELECT (e->>0)::int8, e->1 FROM jsonb_array_elements($1::text::jsonb) e";
    store(&source, "kafka", &replayed.to_string(), pairs).await;
    // The documents as the server sent them: PostgreSQL reads their numbers exactly.
    let hits = "SELECT (h->>'_id')::int8, h->'_source' \
                FROM jsonb_array_elements($1::text::jsonb->'hits'->'hits') h";
    store(&source, "search", &search.search_text(TOPIC).await, hits).await;

    let target = target.client(DEFAULT_DATABASE).await.unwrap();
    let mut checked = 0;
    for (sink, holder) in [
        (Sink::Warehouse, &target),
        (Sink::Kafka, &source),
        (Sink::Search, &source),
    ] {
        let expected = text_rows(&source, &rows_sql(sink, true)).await;
        assert!(expected.len() > 100, "the workload leaves rows to compare");
        let nulls = expected.iter().flatten().filter(|v| v.is_none()).count();
        assert!(nulls > 100, "the workload writes NULLs ({nulls})");
        let actual = text_rows(holder, &rows_sql(sink, false)).await;
        assert!(
            actual == expected,
            "{sink:?} holds what the source does, type by type: {}",
            first_difference(sink, &expected, &actual)
        );
        checked += expected.len();
    }
    eprintln!(
        "RESULT name=proof_types faults={KILLS} transactions={} rows_checked={checked} \
         columns={} kafka_records={} duplicates={}",
        committed.load(Ordering::Relaxed),
        COLUMNS.len() + 1,
        replay.records,
        replay.duplicates
    );
}
