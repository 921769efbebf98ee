//! The integration tests: one binary, real PostgreSQL clusters started per test.

mod auth;
mod bad_input;
mod capture;
mod compose;
mod daemon;
mod delivery;
mod demo;
mod disk_full;
mod envelope;
mod evolution;
mod harness;
mod hostile_config;
#[cfg(feature = "sink-kafka")]
mod kafka;
#[cfg(feature = "sink-kafka")]
mod kafka_broker;
#[cfg(feature = "sink-kafka")]
mod kafka_crash;
#[cfg(feature = "sink-kafka")]
mod kafka_exactly_once;
#[cfg(feature = "sink-kafka")]
mod kafka_metadata;
#[cfg(feature = "sink-lake")]
mod lake;
#[cfg(feature = "sink-postgres")]
mod memory;
mod ops;
#[cfg(all(
    feature = "sink-kafka",
    feature = "sink-search",
    feature = "sink-postgres"
))]
mod proof;
#[cfg(feature = "sink-postgres")]
mod proof_types;
mod registry;
#[cfg(feature = "sink-search")]
mod search;
mod snapshot;
mod support;
#[cfg(any(feature = "sink-kafka", feature = "sink-search"))]
mod tls;
mod transforms;
#[cfg(any(feature = "sink-postgres", feature = "sink-clickhouse"))]
mod warehouse;

use std::time::Duration;

use support::DEFAULT_DATABASE;

#[tokio::test]
async fn a_throwaway_postgres_accepts_logical_replication_slots() {
    let pg = support::start_postgres().await;
    let client = pg.client(DEFAULT_DATABASE).await.expect("connect");
    // Slot creation must not share a transaction with writes: one statement per round trip.
    for sql in [
        "CREATE TABLE items (id int primary key, name text)",
        "CREATE PUBLICATION smoke FOR TABLE items",
        "SELECT pg_create_logical_replication_slot('smoke', 'pgoutput')",
        "INSERT INTO items VALUES (1, 'one')",
    ] {
        client
            .batch_execute(sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    let end = support::current_wal_lsn(&client).await;
    let confirmed = support::slot_confirmed_flush_lsn(&client, "smoke")
        .await
        .expect("the slot exists");
    assert!(
        confirmed <= end,
        "a new slot starts at or before the current position"
    );
    // synchronous_commit is off: the insert is decodable once the WAL writer flushes it.
    support::wait_until(
        "the insert is decodable from the slot",
        Duration::from_secs(10),
        || async {
            let changes = client
                .query(
                    "SELECT data FROM pg_logical_slot_peek_binary_changes('smoke', NULL, NULL,
                     'proto_version', '1', 'publication_names', 'smoke')",
                    &[],
                )
                .await
                .expect("peek the slot");
            // begin, relation, insert, commit
            changes.len() >= 4
        },
    )
    .await;
    assert!(
        support::slot_retained_wal_bytes(&client, "smoke")
            .await
            .expect("retained")
            >= 0
    );
}
