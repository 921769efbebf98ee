//! The search sink against a real OpenSearch-compatible server (osmem-server): the index equals
//! the table after a crash and redelivery, older changes never overwrite newer documents,
//! rejected documents are dead-lettered while the rest flows, truncates clear the index.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value as Json};
use sluice_api::{
    Batch, ChangeEvent, Column, DeadLetter, Lsn, Op, ReplicaIdentity, Sink, SourcePosition,
    TableSchema, Value,
};
use sluice_sink_search::{RawSearchSinkConfig, SearchSink};

use crate::harness::{self, SLOT};
use crate::support::search::ThrowawaySearch;
use crate::support::{self, SluiceProcess, ThrowawayPostgres, DEFAULT_DATABASE};

const WAIT: Duration = Duration::from_secs(120);

/// A pipeline config for `tables` whose only sink is a search sink; `extra` adds sink keys.
fn search_config(
    pg: &ThrowawayPostgres,
    search: &ThrowawaySearch,
    tables: &[&str],
    extra: &str,
) -> String {
    harness::config_toml(pg, tables, "").replace(
        harness::NULL_SINK,
        &format!(
            "name = \"search\"\ntype = \"search\"\nurl = {:?}\n{extra}",
            search.url()
        ),
    )
}

/// A small deterministic generator (xorshift64*): the workload is random but repeatable.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n
    }
}

/// One random transaction over `items` and `lines`: upserts, deletes and key changes.
fn random_transaction(rng: &mut Rng, round: u64) -> String {
    let mut sql = String::from("BEGIN;");
    for step in 0..5 {
        let id = rng.below(150) + 1;
        let qty = rng.below(1000);
        match rng.below(10) {
            0..=4 => sql.push_str(&format!(
                "INSERT INTO items VALUES ({id}, 'item {id} r{round}s{step}', {qty}, {qty}.25, \
                 '{{\"colour\": {{\"name\": \"c{qty}\"}}}}') ON CONFLICT (id) DO UPDATE SET \
                 name = excluded.name, qty = excluded.qty, price = excluded.price, \
                 attrs = excluded.attrs;"
            )),
            5 | 6 => sql.push_str(&format!("DELETE FROM items WHERE id = {id};")),
            7 => {
                let to = rng.below(150) + 1;
                sql.push_str(&format!(
                    "UPDATE items SET id = {to} WHERE id = {id} AND NOT EXISTS \
                     (SELECT 1 FROM items WHERE id = {to});"
                ));
            }
            8 => sql.push_str(&format!(
                "INSERT INTO lines VALUES ({}, {}, 'note {round}') ON CONFLICT (order_id, line) \
                 DO UPDATE SET note = excluded.note;",
                id % 20,
                qty % 5
            )),
            _ => sql.push_str(&format!(
                "DELETE FROM lines WHERE order_id = {} AND line = {};",
                id % 20,
                qty % 5
            )),
        }
    }
    sql.push_str("COMMIT;");
    sql
}

#[tokio::test]
async fn after_a_crash_and_redelivery_the_index_holds_exactly_the_tables_latest_rows() {
    let pg = support::start_postgres_with(
        "CREATE TABLE items (id int PRIMARY KEY, name text, qty int, price numeric(10,2), \
         attrs jsonb);
         CREATE TABLE lines (order_id int, line int, note text, PRIMARY KEY (order_id, line))",
    )
    .await;
    let search = ThrowawaySearch::start().await;
    let config = support::write_config(&search_config(
        &pg,
        &search,
        &["public.items", "public.lines"],
        "max_bulk_actions = 50",
    ));
    let args = ["run", "--config", config.path().to_str().unwrap()];
    let daemon = SluiceProcess::spawn(&args, &[]);
    harness::wait_streaming(&pg).await;

    const ROUNDS: u64 = 400;
    let writer = {
        let client = pg.client(DEFAULT_DATABASE).await.unwrap();
        tokio::spawn(async move {
            let mut rng = Rng(0x5EED_1234_ABCD_0001);
            for round in 0..ROUNDS {
                client
                    .batch_execute(&random_transaction(&mut rng, round))
                    .await
                    .unwrap();
            }
        })
    };
    support::wait_until("some documents are indexed", WAIT, || async {
        search.count("test.public.items").await.unwrap_or(0) >= 40
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
    let end = support::current_wal_lsn(&client).await;
    assert!(
        confirmed_at_kill < end,
        "the crash came before the workload ended, so changes are redelivered"
    );

    let mut daemon = SluiceProcess::spawn(&args, &[]);
    support::wait_slot_confirmed(&client, SLOT, end, "every change is confirmed", WAIT).await;
    daemon.stop_cleanly(Duration::from_secs(30)).await;

    let rows = client
        .query(
            "SELECT id, name, qty, price::text, attrs::text FROM items ORDER BY id::text",
            &[],
        )
        .await
        .unwrap();
    let expected: Vec<(String, Json)> = rows
        .iter()
        .map(|r| {
            let id: i32 = r.get(0);
            let attrs: String = r.get(4);
            (
                id.to_string(),
                json!({
                    "id": id,
                    "name": r.get::<_, String>(1),
                    "qty": r.get::<_, i32>(2),
                    "price": r.get::<_, String>(3),
                    "attrs": serde_json::from_str::<Json>(&attrs).unwrap(),
                }),
            )
        })
        .collect();
    let documents = search.documents("test.public.items").await;
    let actual: Vec<(String, Json)> = documents
        .iter()
        .map(|(id, source, _)| (id.clone(), source.clone()))
        .collect();
    assert!(expected.len() > 20, "the workload leaves rows behind");
    assert_eq!(actual, expected, "the index equals the table");
    assert!(
        documents.iter().all(|(_, _, v)| *v > 0 && *v <= end.0),
        "document versions are the changes' LSNs"
    );

    let rows = client
        .query("SELECT order_id, line, note FROM lines", &[])
        .await
        .unwrap();
    let mut expected: Vec<(String, Json)> = rows
        .iter()
        .map(|r| {
            let (order, line): (i32, i32) = (r.get(0), r.get(1));
            (
                format!("[{order},{line}]"),
                json!({"order_id": order, "line": line, "note": r.get::<_, String>(2)}),
            )
        })
        .collect();
    expected.sort_by(|a, b| a.0.cmp(&b.0));
    let actual: Vec<(String, Json)> = search
        .documents("test.public.lines")
        .await
        .into_iter()
        .map(|(id, source, _)| (id, source))
        .collect();
    assert_eq!(actual, expected, "composite keys address one document each");

    let mapping = search.mapping("test.public.items").await;
    assert_eq!(mapping["properties"]["qty"]["type"], "integer");
    assert_eq!(mapping["properties"]["price"]["type"], "double");
    assert_eq!(mapping["properties"]["name"]["type"], "text");
    assert_eq!(
        mapping["properties"]["attrs"]["properties"]["colour"]["properties"]["name"]["type"],
        "text",
        "json values are nested objects"
    );
}

#[tokio::test]
async fn a_document_the_mapping_rejects_is_dead_lettered_with_its_reason_while_the_rest_flows() {
    let pg =
        support::start_postgres_with("CREATE TABLE items (id int PRIMARY KEY, qty text)").await;
    let search = ThrowawaySearch::start().await;
    let dir = tempfile::tempdir().unwrap();
    let dead = dir.path().join("dead.jsonl");
    let extra = format!(
        "dead_letter = {{ type = \"file\", path = {:?} }}\n\
         index_settings = {{ number_of_shards = 1, number_of_replicas = 0 }}\n\
         [sink.mappings.\"public.items\"]\nqty = {{ type = \"long\" }}",
        dead.display().to_string()
    );
    let toml = search_config(&pg, &search, &["public.items"], &extra);
    let config = sluice::config::Config::from_toml_str(&toml, std::iter::empty())
        .unwrap_or_else(|p| panic!("{p}"));
    let (pipeline, _memory) = harness::start(config).await;
    harness::wait_streaming(&pg).await;
    let client = pg.client(DEFAULT_DATABASE).await.unwrap();
    client
        .batch_execute(
            "INSERT INTO items VALUES (1, '10'), (2, '20'), (3, 'many'), (4, '40');
             INSERT INTO items VALUES (5, '50')",
        )
        .await
        .unwrap();
    let end = support::current_wal_lsn(&client).await;
    harness::wait_confirmed(&pipeline, end).await;

    let ids: Vec<String> = search
        .documents("test.public.items")
        .await
        .into_iter()
        .map(|(id, _, _)| id)
        .collect();
    assert_eq!(ids, ["1", "2", "4", "5"], "the rest flowed");
    let letters: Vec<DeadLetter> = std::fs::read_to_string(&dead)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(letters.len(), 1, "{letters:?}");
    let letter = &letters[0];
    assert_eq!(letter.sink, "search");
    assert_eq!(letter.table, "public.items");
    assert_eq!(letter.key.as_deref(), Some("3"));
    assert_eq!(letter.op, "c");
    assert!(letter.lsn > 0 && Lsn(letter.lsn) <= end);
    assert_eq!(letter.document, Some(json!({"id": 3, "qty": "many"})));
    assert!(
        letter.reason.starts_with("status 400") && letter.reason.contains("qty"),
        "the server's reason is kept: {}",
        letter.reason
    );
    let metrics = sluice::metrics::text::render(pipeline.control().metrics());
    assert_eq!(
        sluice::metrics::text::find_sample(
            &metrics,
            sluice::metrics::names::SINK_DEAD_LETTERS_TOTAL,
            &[("sink", "search")]
        ),
        Some(1.0),
        "{metrics}"
    );
    pipeline.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_truncate_clears_the_tables_index_and_later_rows_arrive() {
    let pg = support::start_postgres_with("CREATE TABLE items (id int PRIMARY KEY, v text)").await;
    let search = ThrowawaySearch::start().await;
    let toml = search_config(&pg, &search, &["public.items"], "");
    let config = sluice::config::Config::from_toml_str(&toml, std::iter::empty())
        .unwrap_or_else(|p| panic!("{p}"));
    let (pipeline, _memory) = harness::start(config).await;
    harness::wait_streaming(&pg).await;
    let client = pg.client(DEFAULT_DATABASE).await.unwrap();
    client
        .batch_execute(
            "INSERT INTO items SELECT g, 'v' || g FROM generate_series(1, 20) g;
             TRUNCATE items;
             INSERT INTO items VALUES (100, 'after')",
        )
        .await
        .unwrap();
    let end = support::current_wal_lsn(&client).await;
    harness::wait_confirmed(&pipeline, end).await;
    let documents = search.documents("test.public.items").await;
    assert_eq!(documents.len(), 1, "{documents:?}");
    assert_eq!(documents[0].1, json!({"id": 100, "v": "after"}));
    pipeline.shutdown().await.unwrap();
}

fn orders_table() -> Arc<TableSchema> {
    let column = |name: &str, type_name: &str, is_key| Column {
        name: name.into(),
        type_oid: 0,
        type_name: type_name.into(),
        type_modifier: -1,
        is_key,
    };
    Arc::new(TableSchema {
        relation_id: 1,
        schema: "public".into(),
        name: "orders".into(),
        replica_identity: ReplicaIdentity::Default,
        columns: vec![column("id", "int4", true), column("status", "text", false)],
    })
}

fn upsert(op: Op, id: i32, status: &str, lsn: u64) -> ChangeEvent {
    ChangeEvent {
        op,
        table: Some(orders_table()),
        before: None,
        before_is_key_only: false,
        after: Some(vec![Value::Int32(id), Value::Text(status.into())]),
        message: None,
        position: SourcePosition {
            lsn: Lsn(lsn),
            commit_lsn: Lsn(lsn + 1),
            xid: Some(1),
            commit_time_us: 0,
            snapshot: if op == Op::Read {
                sluice_api::SnapshotFlag::True
            } else {
                sluice_api::SnapshotFlag::False
            },
        },
    }
}

fn delete(id: i32, lsn: u64) -> ChangeEvent {
    ChangeEvent {
        op: Op::Delete,
        before: Some(vec![Value::Int32(id), Value::Null]),
        before_is_key_only: true,
        after: None,
        ..upsert(Op::Delete, id, "", lsn)
    }
}

fn batch(events: Vec<ChangeEvent>) -> Batch {
    Batch {
        sequence: 1,
        events,
        checkpoint: None,
        records: Vec::new(),
    }
}

/// A search sink writing to `search` with indexes prefixed `shop`, `raw` for the rest.
async fn shop_sink(search: &ThrowawaySearch, raw: RawSearchSinkConfig) -> SearchSink {
    let raw = RawSearchSinkConfig {
        url: Some(search.url()),
        index_prefix: Some("shop".into()),
        ..raw
    };
    let config = raw.validate("sink[0]").unwrap();
    SearchSink::new(&config, "search", "ignored").await.unwrap()
}

#[tokio::test]
async fn a_redelivered_older_change_never_overwrites_a_newer_document() {
    let search = ThrowawaySearch::start().await;
    let mut sink = shop_sink(&search, RawSearchSinkConfig::default()).await;
    let older = batch(vec![
        upsert(Op::Read, 1, "snapshot", 100),
        upsert(Op::Read, 2, "snapshot", 100),
        upsert(Op::Create, 3, "new", 110),
    ]);
    let newer = batch(vec![
        upsert(Op::Update, 1, "shipped", 200),
        delete(2, 210),
        upsert(Op::Update, 3, "paid", 220),
    ]);
    sink.write(&older).await.unwrap();
    sink.write(&newer).await.unwrap();
    // Redelivery of both, in the wrong order: version conflicts count as success.
    sink.write(&newer).await.unwrap();
    sink.write(&older).await.unwrap();

    let index = "shop.public.orders";
    assert_eq!(
        search.document(index, "1").await,
        Some((json!({"id": 1, "status": "shipped"}), 201)),
        "versions are commit positions"
    );
    assert_eq!(search.document(index, "3").await.unwrap().1, 221);
    assert_eq!(search.document(index, "2").await, None, "the delete holds");
    let ids: BTreeMap<String, u64> = search
        .documents(index)
        .await
        .into_iter()
        .map(|(id, _, v)| (id, v))
        .collect();
    assert_eq!(ids.len(), 2, "{ids:?}");
}

#[tokio::test]
async fn a_truncate_redelivered_after_a_restart_keeps_the_later_rows_it_is_redelivered_with() {
    let search = ThrowawaySearch::start().await;
    // Small requests: the truncate reads and deletes the index over several pages.
    let raw = RawSearchSinkConfig {
        max_bulk_actions: Some(2),
        ..RawSearchSinkConfig::default()
    };
    let mut sink = shop_sink(&search, raw).await;
    let before = batch(
        (1..=5)
            .map(|id| upsert(Op::Create, id, "old", 100))
            .collect(),
    );
    let truncate = ChangeEvent {
        op: Op::Truncate,
        after: None,
        ..upsert(Op::Truncate, 0, "", 200)
    };
    let after = batch(vec![
        truncate,
        upsert(Op::Create, 7, "new", 300),
        upsert(Op::Create, 1, "again", 310),
    ]);
    sink.write(&before).await.unwrap();
    sink.write(&after).await.unwrap();
    // A restart redelivers both: the truncate must not take the later rows with it for good.
    sink.write(&before).await.unwrap();
    sink.write(&after).await.unwrap();

    let index = "shop.public.orders";
    let documents: BTreeMap<String, Json> = search
        .documents(index)
        .await
        .into_iter()
        .map(|(id, document, _)| (id, document))
        .collect();
    assert_eq!(
        documents,
        BTreeMap::from([
            ("1".to_owned(), json!({"id": 1, "status": "again"})),
            ("7".to_owned(), json!({"id": 7, "status": "new"})),
        ])
    );
}

#[tokio::test]
async fn a_change_written_before_a_snapshot_but_committed_after_it_wins_over_the_snapshot_row() {
    let search = ThrowawaySearch::start().await;
    let mut sink = shop_sink(&search, RawSearchSinkConfig::default()).await;
    // The snapshot reads at position 100 and does not see a transaction still open then; that
    // transaction wrote the row at 90 and committed at 150, so it streams after the snapshot.
    sink.write(&batch(vec![upsert(Op::Read, 1, "snapshot", 99)]))
        .await
        .unwrap();
    let mut late = upsert(Op::Update, 1, "committed later", 90);
    late.position.commit_lsn = Lsn(150);
    // Two changes of the row in one transaction share a version: the later one stays.
    let mut first = upsert(Op::Update, 2, "first", 91);
    first.position.commit_lsn = Lsn(150);
    let mut second = upsert(Op::Update, 2, "second", 92);
    second.position.commit_lsn = Lsn(150);
    sink.write(&batch(vec![late, first, second])).await.unwrap();

    let index = "shop.public.orders";
    assert_eq!(
        search.document(index, "1").await,
        Some((json!({"id": 1, "status": "committed later"}), 150))
    );
    assert_eq!(
        search.document(index, "2").await,
        Some((json!({"id": 2, "status": "second"}), 150))
    );
}

#[tokio::test]
async fn without_a_dead_letter_destination_a_rejection_fails_the_write_instead_of_dropping_it() {
    let search = ThrowawaySearch::start().await;
    let mut mappings = BTreeMap::new();
    mappings.insert(
        "public.orders".to_owned(),
        BTreeMap::from([("status".to_owned(), json!({"type": "long"}))]),
    );
    let raw = RawSearchSinkConfig {
        url: Some(search.url()),
        mappings: Some(mappings),
        ..RawSearchSinkConfig::default()
    };
    let config = raw.validate("sink[0]").unwrap();
    let mut sink = SearchSink::new(&config, "search", "shop").await.unwrap();
    let error = sink
        .write(&batch(vec![upsert(Op::Create, 1, "not a number", 10)]))
        .await
        .unwrap_err();
    assert_eq!(error.class, sluice_api::ErrorClass::Fatal);
    assert!(error.message.contains("dead_letter"), "{}", error.message);
}

/// Fault injection a real server cannot be made to produce on demand: a mock `_bulk` endpoint
/// (named as such) that refuses chosen documents with 429 on their first attempt and records
/// the ids of every bulk request. Index creation always succeeds.
struct MockFlakyBulkServer {
    url: String,
    requests: Arc<std::sync::Mutex<Vec<Vec<String>>>>,
}

impl MockFlakyBulkServer {
    async fn start(refuse_once: &'static [&'static str]) -> MockFlakyBulkServer {
        use axum::routing::{any, post};
        let requests: Arc<std::sync::Mutex<Vec<Vec<String>>>> = Arc::default();
        let seen = requests.clone();
        let bulk = move |body: String| {
            let seen = seen.clone();
            async move {
                let ids: Vec<String> = body
                    .lines()
                    .filter_map(|l| serde_json::from_str::<Json>(l).ok())
                    .filter_map(|l| l["index"]["_id"].as_str().map(str::to_owned))
                    .collect();
                let first_attempt =
                    !seen.lock().unwrap().iter().any(|r: &Vec<String>| {
                        r.iter().any(|id| refuse_once.contains(&id.as_str()))
                    });
                seen.lock().unwrap().push(ids.clone());
                let items: Vec<Json> = ids
                    .iter()
                    .map(|id| {
                        if first_attempt && refuse_once.contains(&id.as_str()) {
                            json!({"index": {"_id": id, "status": 429, "error": {
                                "type": "es_rejected_execution_exception",
                                "reason": "queue full"}}})
                        } else {
                            json!({"index": {"_id": id, "status": 201, "result": "created"}})
                        }
                    })
                    .collect();
                axum::Json(json!({"errors": first_attempt, "items": items}))
            }
        };
        let app = axum::Router::new().route("/_bulk", post(bulk)).route(
            "/{index}",
            any(|| async { axum::Json(json!({"acknowledged": true})) }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        MockFlakyBulkServer { url, requests }
    }
}

#[tokio::test]
async fn documents_refused_for_now_are_resent_alone_until_the_server_takes_them() {
    let server = MockFlakyBulkServer::start(&["2", "4"]).await;
    let raw = RawSearchSinkConfig {
        url: Some(server.url.clone()),
        item_retry_initial_ms: Some(10),
        ..RawSearchSinkConfig::default()
    };
    let config = raw.validate("sink[0]").unwrap();
    let mut sink = SearchSink::new(&config, "search", "shop").await.unwrap();
    let events = (1..=5)
        .map(|id| upsert(Op::Create, id, "new", 10 + id as u64))
        .collect();
    sink.write(&batch(events)).await.unwrap();
    let requests = server.requests.lock().unwrap().clone();
    assert_eq!(
        requests,
        vec![
            vec!["1", "2", "3", "4", "5"],
            vec!["2", "4"], // only the refused items, once the backoff passed
        ]
    );
}
