//! `run_checks` against real private clusters, and the report's pure parts.

use std::time::Duration;

use super::test_cluster::TestCluster;
use super::*;
use crate::config::{
    PublicationAutocreate, SnapshotMode, DEFAULT_SNAPSHOT_CHUNK_ROWS, DEFAULT_STATE_DIR,
};
use crate::{ConnectionConfig, SslMode};

fn source_config(cluster: &TestCluster, user: &str, slot: &str) -> PostgresSourceConfig {
    PostgresSourceConfig {
        connection: ConnectionConfig {
            host: "127.0.0.1".into(),
            port: cluster.port,
            user: user.into(),
            dbname: "postgres".into(),
            password: None,
            sslmode: SslMode::Disable,
            sslrootcert: None,
            application_name: "sluice".into(),
            connect_timeout: Duration::from_secs(5),
        },
        password_file: None,
        slot: slot.into(),
        publication: "sluice_test".into(),
        publication_autocreate: PublicationAutocreate::Filtered,
        tables: vec!["public.*".into()],
        snapshot_mode: SnapshotMode::Initial,
        snapshot_chunk_rows: DEFAULT_SNAPSHOT_CHUNK_ROWS,
        snapshot_max_threads: 2,
        state_dir: DEFAULT_STATE_DIR.into(),
        signal_table: None,
        incremental_chunk_rows: 1024,
        stream_buffer_bytes: 64 << 20,
        spill_dir: None,
        status_interval: Duration::from_secs(10),
        heartbeat_interval: None,
        reread_unchanged_toast: true,
        reconnect_backoff_initial: Duration::from_millis(500),
        reconnect_backoff_max: Duration::from_secs(30),
    }
}

fn item<'a>(items: &'a [CheckItem], name: &str) -> &'a CheckItem {
    items
        .iter()
        .find(|i| i.name == name)
        .unwrap_or_else(|| panic!("no item {name:?} in {items:#?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn a_server_without_logical_wal_fails_with_the_exact_fix() {
    let cluster = TestCluster::start("wal_level = replica");
    let client = cluster.connect("postgres").await;
    let items = run_checks(&client, &source_config(&cluster, "postgres", "sluice_test")).await;

    let wal = item(&items, "wal_level");
    assert_eq!(wal.status, CheckStatus::Fail);
    assert_eq!(wal.detail, "is replica; logical decoding needs logical");
    assert_eq!(
        wal.fix.as_deref(),
        Some("ALTER SYSTEM SET wal_level = logical; then restart PostgreSQL")
    );
    assert_eq!(item(&items, "server version").status, CheckStatus::Ok);
    assert_eq!(
        item(&items, "replication privilege").status,
        CheckStatus::Ok
    );
    // An empty database matches no table: capture would have nothing to do.
    assert_eq!(item(&items, "included tables").status, CheckStatus::Fail);

    let report = CheckReport { items };
    assert!(report.has_failures());
    let text = report.to_string();
    assert!(text.contains("[FAIL] wal_level: is replica; logical decoding needs logical\n"));
    assert!(text
        .contains("       fix: ALTER SYSTEM SET wal_level = logical; then restart PostgreSQL\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn a_logical_server_reports_tables_privileges_slots_and_wal_retention() {
    let cluster = TestCluster::start("wal_level = logical");
    let admin = cluster.connect("postgres").await;
    admin
        .batch_execute(
            "CREATE TABLE public.with_pk (id int PRIMARY KEY);
             CREATE TABLE public.no_pk (x int);
             CREATE TABLE public.\"Full\" (x int);
             ALTER TABLE public.\"Full\" REPLICA IDENTITY FULL;
             CREATE TABLE public.nothing (id int PRIMARY KEY);
             ALTER TABLE public.nothing REPLICA IDENTITY NOTHING;
             CREATE ROLE app LOGIN;",
        )
        .await
        .unwrap();
    // Slots cannot be created in a transaction that wrote: one statement each.
    for (slot, plugin) in [("other_plugin", "test_decoding"), ("sluice_ok", "pgoutput")] {
        admin
            .execute(
                "SELECT pg_create_logical_replication_slot($1, $2)",
                &[&slot, &plugin],
            )
            .await
            .unwrap();
    }

    // As a superuser, with a slot of the wrong plugin.
    let items = run_checks(&admin, &source_config(&cluster, "postgres", "other_plugin")).await;
    let tables = item(&items, "included tables");
    assert_eq!(tables.status, CheckStatus::Ok);
    assert_eq!(
        tables.detail,
        "public.\"Full\", public.no_pk, public.nothing, public.with_pk"
    );
    let no_pk = item(&items, "replica identity public.no_pk");
    assert_eq!(no_pk.status, CheckStatus::Fail);
    assert_eq!(
        no_pk.fix.as_deref(),
        Some("ALTER TABLE public.no_pk REPLICA IDENTITY FULL; (or add a primary key)")
    );
    assert_eq!(
        item(&items, "replica identity public.nothing").status,
        CheckStatus::Fail
    );
    assert!(!items
        .iter()
        .any(|i| i.name.contains("with_pk") || i.name.contains("Full\"")));
    let slot = item(&items, "replication slot");
    assert_eq!(slot.status, CheckStatus::Fail);
    assert_eq!(
        slot.detail,
        "other_plugin uses plugin test_decoding, not pgoutput"
    );
    let publication = item(&items, "publication");
    assert_eq!(publication.status, CheckStatus::Ok);
    assert_eq!(
        publication.detail,
        "sluice_test does not exist; it will be created"
    );
    let keep = item(&items, "max_slot_wal_keep_size");
    assert_eq!(keep.status, CheckStatus::Warn);
    assert_eq!(
        keep.fix.as_deref(),
        Some("ALTER SYSTEM SET max_slot_wal_keep_size = '10GB'; then SELECT pg_reload_conf();")
    );
    assert_eq!(item(&items, "wal_level").status, CheckStatus::Ok);
    assert_eq!(
        item(&items, "max_replication_slots").status,
        CheckStatus::Ok
    );
    assert_eq!(item(&items, "max_wal_senders").status, CheckStatus::Ok);

    // A healthy pgoutput slot reports the WAL it retains.
    let items = run_checks(&admin, &source_config(&cluster, "postgres", "sluice_ok")).await;
    let slot = item(&items, "replication slot");
    assert_eq!(slot.status, CheckStatus::Ok, "{slot:?}");
    assert!(
        slot.detail
            .starts_with("sluice_ok exists (pgoutput), retains "),
        "{slot:?}"
    );
    assert!(slot.detail.ends_with("wal_status reserved"), "{slot:?}");

    // As an ordinary role: no replication privilege, may not create the publication.
    let app = cluster.connect("app").await;
    let items = run_checks(&app, &source_config(&cluster, "app", "sluice_new")).await;
    let role = item(&items, "replication privilege");
    assert_eq!(role.status, CheckStatus::Fail);
    assert_eq!(
        role.fix.as_deref(),
        Some("ALTER ROLE app WITH REPLICATION;")
    );
    let publication = item(&items, "publication");
    assert_eq!(publication.status, CheckStatus::Fail);
    assert!(
        publication
            .fix
            .as_deref()
            .is_some_and(|f| f.starts_with("GRANT CREATE ON DATABASE postgres TO app;")),
        "{publication:?}"
    );
    assert_eq!(
        item(&items, "replication slot").detail,
        "sluice_new does not exist; it will be created"
    );
}

#[test]
fn identifiers_are_quoted_only_when_postgres_needs_it() {
    assert_eq!(quote_ident("orders"), "orders");
    assert_eq!(quote_ident("Orders"), "\"Orders\"");
    assert_eq!(quote_ident("user"), "\"user\"");
    assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
    assert_eq!(quote_ident("1abc"), "\"1abc\"");
}

#[test]
fn the_report_ends_with_a_summary() {
    let report = CheckReport {
        items: vec![
            CheckItem::ok("a", "fine"),
            CheckItem::warn("b", "meh", "do x"),
            CheckItem::fail("c", "bad", "do y"),
        ],
    };
    assert_eq!(
        report.to_string(),
        "[  ok] a: fine\n[warn] b: meh\n       fix: do x\n[FAIL] c: bad\n       fix: do y\n\
         1 ok, 1 warning, 1 failure"
    );
}

#[test]
fn long_table_lists_are_cut_with_a_count() {
    let names = (0..12).map(|i| format!("t{i}"));
    assert_eq!(
        listed(names),
        "t0, t1, t2, t3, t4, t5, t6, t7, t8, t9 and 2 more"
    );
    assert_eq!(slot::human_bytes(512), "512 B");
    assert_eq!(slot::human_bytes(3 * 1024 * 1024), "3.0 MiB");
}
