//! Sinks over TLS with a self-signed CA, end to end through the `sluice` binary: the daemon
//! delivers to a Kafka broker and a search server that only accept TLS when it trusts their CA
//! (librdkafka's `ssl.ca.location`, the search sink's `ca_file`); without the CA, or trusting
//! another one, it names the certificate problem in its output, confirms nothing past the
//! change to PostgreSQL, does not panic, and never prints the configured secret.
//!
//! Neither test server speaks TLS itself here, so a [`TlsFront`](crate::support::tls::TlsFront)
//! (a test fixture adding TLS in front of the real server) does it; for Kafka the broker
//! advertises the front's address, so every connection a client makes goes through TLS.

use std::time::Duration;

use sluice::metrics::names;

use crate::harness::{self, SLOT};
use crate::support::{
    self, ConfigFile, SluiceProcess, ThrowawayPostgres, DEFAULT_DATABASE, HTTP_LISTEN_VARIABLE,
};

const WAIT: Duration = Duration::from_secs(60);
const TABLE: &str = "CREATE TABLE items (id int PRIMARY KEY, note text)";

/// The harness's daemon config for `public.items` with `sink` (TOML lines of one `[[sink]]`)
/// in place of its null sink, and `rest` (more top-level tables) after it.
fn daemon_config(pg: &ThrowawayPostgres, sink: &str, rest: &str) -> ConfigFile {
    harness::items_config_with_sink(pg, &format!("{sink}\n{rest}"))
}

/// `sluice run` with `config`, its HTTP endpoint on `listen`.
fn spawn_daemon(config: &ConfigFile, listen: &str) -> SluiceProcess {
    SluiceProcess::spawn(
        &["run", "--config", config.path().to_str().unwrap()],
        &[(HTTP_LISTEN_VARIABLE, listen)],
    )
}

/// Insert `rows` rows into `items` in one transaction; the WAL position after its commit.
async fn insert_rows(pg: &ThrowawayPostgres, rows: i32) -> sluice_api::Lsn {
    let client = pg.client(DEFAULT_DATABASE).await.unwrap();
    client
        .batch_execute(&format!(
            "INSERT INTO items SELECT g, 'row ' || g FROM generate_series(1, {rows}) g"
        ))
        .await
        .unwrap();
    support::current_wal_lsn(&client).await
}

/// Stop the daemon with SIGTERM and check it drains and exits 0.
async fn stop_cleanly(mut daemon: SluiceProcess) {
    daemon.stop_cleanly(WAIT).await;
}

/// A daemon whose sink cannot verify the server's certificate, given a change to deliver:
/// once the source has read the change and the output names `problem`, the slot has not
/// confirmed past the change, nothing panicked, and `secret` (a configured secret) appears
/// nowhere in the output. The daemon is killed afterwards.
async fn delivery_is_refused(
    pg: &ThrowawayPostgres,
    config: &ConfigFile,
    problem: &str,
    secret: &str,
) {
    let listen = format!("127.0.0.1:{}", support::free_port());
    let daemon = spawn_daemon(config, &listen);
    harness::wait_streaming(pg).await;
    let end = insert_rows(pg, 1).await;
    let output = || daemon.stdout() + &daemon.stderr();
    support::wait_until(&format!("the daemon reports {problem:?}"), WAIT, || async {
        output().contains(problem)
    })
    .await;
    let base = format!("http://{listen}");
    support::wait_until("the daemon has read the change", WAIT, || async {
        let labels = [("table", "public.items"), ("op", "c")];
        support::http::metric(&base, names::EVENTS_TOTAL, &labels).await == Some(1.0)
    })
    .await;

    let client = pg.client(DEFAULT_DATABASE).await.unwrap();
    let output = output();
    support::assert_not_confirmed_past(
        &client,
        SLOT,
        end,
        &format!("nothing past the undelivered change may be confirmed\n{output}"),
    )
    .await;
    assert!(!output.contains("panicked"), "{output}");
    assert!(
        !output.contains(secret),
        "the secret reached the output:\n{output}"
    );
    daemon.kill();
}

#[cfg(feature = "sink-kafka")]
mod kafka {
    use super::*;
    use crate::support::kafka::ThrowawayKafka;
    use crate::support::tls::TestCertificates;

    const TOPIC: &str = "test.public.items";
    /// A secret among the properties (librdkafka's key password; no client key is used, so it
    /// only stands for any secret that must stay out of the output).
    const KEY_PASSWORD: &str = "kafka-key-secret-9f3b";

    /// A kafka sink to `kafka` with the pass-through `properties` (TOML inline-table entries),
    /// and the embedded registry on `registry_port`.
    fn config(
        pg: &ThrowawayPostgres,
        kafka: &ThrowawayKafka,
        registry_port: u16,
        properties: &str,
    ) -> ConfigFile {
        let sink = format!(
            "name = \"kafka\"\ntype = \"kafka\"\nbrokers = \"{}\"\nlinger_ms = 1\n\
             properties = {{ {properties} }}",
            kafka.bootstrap()
        );
        let registry = format!("[registry]\nlisten = \"127.0.0.1:{registry_port}\"");
        daemon_config(pg, &sink, &registry)
    }

    #[tokio::test]
    async fn the_daemon_delivers_to_a_tls_only_broker_when_it_trusts_the_brokers_ca() {
        let certificates = TestCertificates::new();
        let kafka = ThrowawayKafka::start_tls(&certificates).await;
        let pg = support::start_postgres_with(TABLE).await;
        let registry_port = support::free_port();
        let properties = format!(
            "\"security.protocol\" = \"SSL\", \"ssl.ca.location\" = {:?}",
            certificates.ca().display().to_string()
        );
        let config = config(&pg, &kafka, registry_port, &properties);
        let daemon = spawn_daemon(&config, &format!("127.0.0.1:{}", support::free_port()));
        harness::wait_streaming(&pg).await;

        let end = insert_rows(&pg, 3).await;
        let client = pg.client(DEFAULT_DATABASE).await.unwrap();
        support::wait_slot_confirmed(&client, SLOT, end, "the inserts are confirmed", WAIT).await;
        let registry = format!("http://127.0.0.1:{registry_port}");
        // The consumer connects over TLS too, trusting the same CA.
        let records = kafka.read_records(&registry, 3, &[TOPIC]).await;
        let mut ids: Vec<i64> = records
            .iter()
            .map(|r| r["key"]["id"].as_i64().expect("an Avro key with the id"))
            .collect();
        ids.sort_unstable();
        assert_eq!(ids, [1, 2, 3], "{records:#?}\nbroker log:\n{}", kafka.log());
        assert_eq!(records[0]["value"]["after"]["note"], "row 1");
        stop_cleanly(daemon).await;
    }

    #[tokio::test]
    async fn without_the_ca_the_daemon_names_the_unverified_broker_certificate_and_confirms_nothing(
    ) {
        let certificates = TestCertificates::new();
        let kafka = ThrowawayKafka::start_tls(&certificates).await;
        let pg = support::start_postgres_with(TABLE).await;
        let properties =
            format!("\"security.protocol\" = \"SSL\", \"ssl.key.password\" = \"{KEY_PASSWORD}\"");
        let config = config(&pg, &kafka, support::free_port(), &properties);
        delivery_is_refused(&pg, &config, "certificate verify failed", KEY_PASSWORD).await;
    }

    #[tokio::test]
    async fn trusting_another_ca_the_daemon_names_the_unverified_broker_certificate_and_confirms_nothing(
    ) {
        let certificates = TestCertificates::new();
        let kafka = ThrowawayKafka::start_tls(&certificates).await;
        let pg = support::start_postgres_with(TABLE).await;
        let properties = format!(
            "\"security.protocol\" = \"SSL\", \"ssl.ca.location\" = {:?}, \
             \"ssl.key.password\" = \"{KEY_PASSWORD}\"",
            certificates.other_ca().display().to_string()
        );
        let config = config(&pg, &kafka, support::free_port(), &properties);
        delivery_is_refused(&pg, &config, "certificate verify failed", KEY_PASSWORD).await;
    }
}

#[cfg(feature = "sink-search")]
mod search {
    use super::*;
    use crate::support::search::ThrowawaySearch;
    use crate::support::tls::{TestCertificates, TlsFront};

    const INDEX: &str = "test.public.items";
    const PASSWORD: &str = "search-secret-5c1d";

    /// A search sink to `https://127.0.0.1:PORT` with basic auth and `extra` sink keys.
    fn config(pg: &ThrowawayPostgres, front: &TlsFront, extra: &str) -> ConfigFile {
        let sink = format!(
            "name = \"search\"\ntype = \"search\"\nurl = \"https://127.0.0.1:{}\"\n\
             username = \"sluice\"\npassword = \"{PASSWORD}\"\n{extra}",
            front.port()
        );
        daemon_config(pg, &sink, "")
    }

    #[tokio::test]
    async fn the_daemon_indexes_changes_over_https_when_ca_file_names_the_servers_ca() {
        let certificates = TestCertificates::new();
        let search = ThrowawaySearch::start().await;
        let front = TlsFront::start(&certificates, search.port()).await;
        let pg = support::start_postgres_with(TABLE).await;
        let ca_file = format!("ca_file = {:?}", certificates.ca().display().to_string());
        let config = config(&pg, &front, &ca_file);
        let daemon = spawn_daemon(&config, &format!("127.0.0.1:{}", support::free_port()));
        harness::wait_streaming(&pg).await;

        let end = insert_rows(&pg, 3).await;
        let client = pg.client(DEFAULT_DATABASE).await.unwrap();
        support::wait_slot_confirmed(&client, SLOT, end, "the inserts are confirmed", WAIT).await;
        let documents = search.documents(INDEX).await;
        let ids: Vec<&str> = documents.iter().map(|(id, _, _)| id.as_str()).collect();
        assert_eq!(ids, ["1", "2", "3"], "{documents:#?}");
        assert_eq!(documents[0].1["note"], "row 1");
        stop_cleanly(daemon).await;
    }

    #[tokio::test]
    async fn without_ca_file_the_daemon_names_the_unknown_certificate_issuer_and_confirms_nothing()
    {
        let certificates = TestCertificates::new();
        let search = ThrowawaySearch::start().await;
        let front = TlsFront::start(&certificates, search.port()).await;
        let pg = support::start_postgres_with(TABLE).await;
        let config = config(&pg, &front, "");
        delivery_is_refused(&pg, &config, "invalid peer certificate", PASSWORD).await;
        assert_eq!(
            search.count(INDEX).await,
            None,
            "nothing reached the server"
        );
    }
}
