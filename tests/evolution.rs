//! Avro envelopes from a running pipeline: registered in the embedded schema registry before
//! first use, decoded by Confluent's own deserializer, new versions on ALTER TABLE in order, and
//! an incompatible change stops the pipeline without losing anything.

use std::time::Duration;

use base64::Engine;
use serde_json::Value as Json;
use sluice_api::EncodedRecord;

use crate::harness::{self, SLOT};
use crate::support::{self, ThrowawayPostgres, DEFAULT_DATABASE};

const WAIT: Duration = Duration::from_secs(60);

/// A test config with Avro envelopes and the embedded registry on a free port.
fn avro_config(pg: &ThrowawayPostgres, table: &str) -> sluice::config::Config {
    let text = format!(
        "{}\n[registry]\nlisten = \"127.0.0.1:0\"\n",
        harness::config_toml(pg, &[table], "")
    );
    sluice::config::Config::from_toml_str(&text, std::iter::empty())
        .unwrap_or_else(|p| panic!("{p}"))
}

/// Decode `records` with Confluent's AvroDeserializer against the registry at `url`.
pub(crate) async fn decode(url: &str, records: &[EncodedRecord]) -> Vec<Json> {
    let b64 = |bytes: &Option<Vec<u8>>| {
        bytes
            .as_ref()
            .map(|b| base64::engine::general_purpose::STANDARD.encode(b))
    };
    let list: Vec<Json> = records
        .iter()
        .map(
            |r| serde_json::json!({"topic": &*r.topic, "key": b64(&r.key), "value": b64(&r.value)}),
        )
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("records.json");
    std::fs::write(&path, serde_json::to_vec(&list).unwrap()).unwrap();
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/python/decode_pipeline.py"
    );
    let output = tokio::process::Command::new("python3")
        .arg(script)
        .arg(url)
        .arg(&path)
        .output()
        .await
        .expect("run python3 (.ci/run installs python3 and confluent-kafka)");
    assert!(
        output.status.success(),
        "decoder failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

async fn subject_versions(url: &str, subject: &str) -> Vec<u32> {
    let client = sluice::schema::RegistryClient::new(sluice::schema::RegistryClientConfig {
        url: url.to_string(),
        username: None,
        password: None,
        ca_file: None,
        auto_register: false,
        request_timeout: Duration::from_secs(10),
    })
    .unwrap();
    client.versions(subject).await.expect("registry reachable")
}

#[tokio::test]
async fn avro_envelopes_decode_with_confluents_deserializer_using_the_embedded_registry() {
    let pg = support::start_postgres_with(
        "CREATE TABLE orders (id int PRIMARY KEY, amount numeric(10,2), placed_at timestamptz,
                              tags text[], note text)",
    )
    .await;
    let (pipeline, handle) = harness::start(avro_config(&pg, "public.orders")).await;
    harness::wait_streaming(&pg).await;
    let url = pipeline
        .embedded_registry_url()
        .expect("the embedded registry runs")
        .to_string();
    pg.execute("INSERT INTO orders VALUES (1, 12.34, '2024-02-29 12:00:00+02', '{a,NULL}', NULL);")
        .await
        .unwrap();
    pg.execute("UPDATE orders SET note = 'hi' WHERE id = 1")
        .await
        .unwrap();
    pg.execute("DELETE FROM orders WHERE id = 1").await.unwrap();
    harness::wait_events(&handle, 3).await;
    let records = handle.records();
    assert_eq!(records.len(), 3);
    assert!(records.iter().all(|r| &*r.topic == "test.public.orders"));
    // Schemas are fetched by id from the registry the pipeline serves.
    let decoded = decode(&url, &records).await;
    pipeline.shutdown().await.unwrap();
    assert_eq!(decoded.len(), 3);
    let insert = &decoded[0]["value"];
    assert_eq!(insert["op"], "c");
    assert_eq!(insert["before"], Json::Null);
    assert_eq!(insert["after"]["id"], 1);
    assert_eq!(insert["after"]["amount"], "12.34", "exact decimal");
    assert_eq!(
        insert["after"]["placed_at"], "2024-02-29T10:00:00Z",
        "ZonedTimestamp in UTC"
    );
    assert_eq!(insert["after"]["tags"], serde_json::json!(["a", null]));
    assert_eq!(insert["after"]["note"], Json::Null);
    assert_eq!(insert["source"]["table"], "orders");
    assert_eq!(insert["source"]["connector"], "postgresql");
    assert_eq!(decoded[0]["key"]["id"], 1);
    assert_eq!(decoded[1]["value"]["op"], "u");
    assert_eq!(decoded[1]["value"]["after"]["note"], "hi");
    assert_eq!(decoded[2]["value"]["op"], "d");
    assert_eq!(decoded[2]["value"]["before"]["id"], 1);
}

#[tokio::test]
async fn schema_changes_register_versions_in_order_and_an_incompatible_one_stops_the_pipeline() {
    let pg = support::start_postgres_with("CREATE TABLE items (id int PRIMARY KEY, qty int)").await;
    // A file-backed registry keeps the versions for the checks after the pipeline stopped.
    let dir = tempfile::tempdir().unwrap();
    let storage = dir.path().join("registry.json");
    let text = format!(
        "{}\n[registry]\nlisten = \"127.0.0.1:0\"\nstorage = {:?}\n",
        harness::config_toml(&pg, &["public.items"], ""),
        storage.display().to_string()
    );
    let config = sluice::config::Config::from_toml_str(&text, std::iter::empty()).unwrap();
    let (pipeline, handle) = harness::start(config.clone()).await;
    harness::wait_streaming(&pg).await;
    let url = pipeline.embedded_registry_url().unwrap().to_string();
    let client = pg.client(DEFAULT_DATABASE).await.unwrap();
    for sql in [
        "INSERT INTO items VALUES (1, 10)",
        "ALTER TABLE items ADD COLUMN note text",
        "INSERT INTO items VALUES (2, 20, 'two')",
        "ALTER TABLE items DROP COLUMN note",
        "INSERT INTO items VALUES (3, 30)",
    ] {
        client.batch_execute(sql).await.unwrap();
    }
    harness::wait_events(&handle, 3).await;
    let subject = "test.public.items-value";
    assert_eq!(
        subject_versions(&url, subject).await,
        vec![1, 2],
        "one new version per new shape"
    );
    let ids: Vec<[u8; 4]> = handle
        .records()
        .iter()
        .map(|r| r.value.as_ref().unwrap()[1..5].try_into().unwrap())
        .collect();
    assert_ne!(ids[0], ids[1], "the added column uses the new version");
    assert_eq!(
        ids[0], ids[2],
        "dropping it again is the first shape, the first id"
    );

    client
        .batch_execute("ALTER TABLE items ALTER COLUMN qty TYPE text")
        .await
        .unwrap();
    client
        .batch_execute("INSERT INTO items VALUES (4, 'many')")
        .await
        .unwrap();
    let before_incompatible = support::current_wal_lsn(&client).await;
    let error = tokio::time::timeout(WAIT, pipeline.wait())
        .await
        .expect("the pipeline stops by itself")
        .expect_err("an incompatible change is an error");
    let message = format!("{error:#}");
    assert!(message.contains("public.items"), "{message}");
    assert!(message.contains("qty: int4 -> text"), "{message}");
    assert!(message.contains("BACKWARD"), "{message}");
    assert_eq!(
        handle.event_count(),
        3,
        "nothing of the new shape was delivered"
    );
    let confirmed = support::slot_confirmed_flush_lsn(&client, SLOT)
        .await
        .unwrap();
    assert!(
        confirmed < before_incompatible,
        "the slot stays before the incompatible change"
    );

    // Registering anyway (on_incompatible = "register") resumes with nothing lost.
    let text = text.replace(
        "[registry]\n",
        "[registry]\non_incompatible = \"register\"\n",
    );
    let config = sluice::config::Config::from_toml_str(&text, std::iter::empty()).unwrap();
    let (pipeline, handle) = harness::start(config).await;
    let url = pipeline.embedded_registry_url().unwrap().to_string();
    let events = harness::wait_events(&handle, 1).await;
    assert_eq!(harness::id_of(&events[0]), Some(4));
    assert_eq!(subject_versions(&url, subject).await, vec![1, 2, 3]);
    pipeline.shutdown().await.unwrap();
}

#[tokio::test]
async fn while_the_registry_is_down_nothing_is_delivered_or_confirmed_and_then_it_resumes() {
    let pg = support::start_postgres_with("CREATE TABLE items (id int PRIMARY KEY)").await;
    // A port where nothing listens yet: the registry comes up later.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let text = format!(
        "{}\n[registry]\nurl = \"http://127.0.0.1:{port}\"\n",
        harness::config_toml(&pg, &["public.items"], "")
    );
    let config = sluice::config::Config::from_toml_str(&text, std::iter::empty()).unwrap();
    let (pipeline, handle) = harness::start(config).await;
    harness::wait_streaming(&pg).await;
    let client = pg.client(DEFAULT_DATABASE).await.unwrap();
    client
        .batch_execute("INSERT INTO items VALUES (1)")
        .await
        .unwrap();
    let inserted = support::current_wal_lsn(&client).await;
    support::wait_until("the server has sent the insert to sluice", WAIT, || async {
        let row = client
            .query_opt(
                "SELECT sent_lsn::text FROM pg_stat_replication WHERE application_name = 'sluice'",
                &[],
            )
            .await
            .ok()
            .flatten();
        row.and_then(|r| r.get::<_, Option<String>>(0))
            .and_then(|t| t.parse::<sluice_api::Lsn>().ok())
            .is_some_and(|sent| sent >= inserted)
    })
    .await;
    assert_eq!(
        handle.event_count(),
        0,
        "nothing reaches sinks without its schema"
    );
    let confirmed = support::slot_confirmed_flush_lsn(&client, SLOT)
        .await
        .unwrap();
    assert!(
        confirmed < inserted,
        "nothing is confirmed while the registry is down"
    );

    let mut registry = support::SluiceProcess::spawn(
        &[
            "registry",
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
        ],
        &[],
    );
    let events = harness::wait_events(&handle, 1).await;
    assert_eq!(harness::id_of(&events[0]), Some(1));
    support::wait_slot_confirmed(
        &client,
        SLOT,
        inserted,
        "the slot moves past the insert",
        WAIT,
    )
    .await;
    pipeline.shutdown().await.unwrap();
    registry.terminate();
    registry.wait_exit(Duration::from_secs(30)).await;
}
