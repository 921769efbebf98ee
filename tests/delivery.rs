//! The delivery contract against a real server: the slot only moves past what every sink has
//! durably taken, idle captures hold no WAL, and restarts of either side lose nothing.

use std::collections::BTreeMap;
use std::time::Duration;

use sluice_api::{ErrorClass, Op};

use crate::harness::{self, id_of, SLOT};
use crate::support::{self, DEFAULT_DATABASE};

const WAIT: Duration = Duration::from_secs(60);

#[tokio::test]
async fn a_failing_sink_keeps_the_slot_from_advancing_past_the_failed_batch() {
    let pg = support::start_postgres_with("CREATE TABLE items (id int PRIMARY KEY)").await;
    let (pipeline, handle) = harness::start(harness::config(&pg, &["public.items"], "")).await;
    harness::wait_streaming(&pg).await;
    let client = pg.client(DEFAULT_DATABASE).await.unwrap();
    client
        .batch_execute("INSERT INTO items VALUES (1)")
        .await
        .unwrap();
    harness::wait_events(&handle, 1).await;
    let before_failure = support::current_wal_lsn(&client).await;
    harness::wait_confirmed(&pipeline, before_failure).await;

    // Fault injection: no real destination fails on cue, so the memory sink does.
    handle.fail_writes(u64::MAX, ErrorClass::Transient);
    client
        .batch_execute("INSERT INTO items VALUES (2)")
        .await
        .unwrap();
    let after_insert = support::current_wal_lsn(&client).await;
    support::wait_until("the sink has refused the batch twice", WAIT, || async {
        handle.failed_write_count() >= 2
    })
    .await;
    // Other sessions keep writing WAL and the server keeps asking for status: the slot must
    // still not move past the failed batch.
    client
        .batch_execute("CREATE TABLE unrelated (x int); INSERT INTO unrelated VALUES (1)")
        .await
        .unwrap();
    support::wait_until("the sink has refused the batch again", WAIT, || async {
        handle.failed_write_count() >= 4
    })
    .await;
    let confirmed = support::slot_confirmed_flush_lsn(&client, SLOT)
        .await
        .unwrap();
    assert!(
        confirmed < after_insert,
        "slot confirmed {confirmed} past the failed insert ending at {after_insert}"
    );
    assert!(pipeline.confirmed_lsn() < after_insert);
    assert_eq!(handle.event_count(), 1);

    handle.heal();
    let events = harness::wait_events(&handle, 2).await;
    assert_eq!(
        events.iter().map(id_of).collect::<Vec<_>>(),
        vec![Some(1), Some(2)]
    );
    support::wait_slot_confirmed(
        &client,
        SLOT,
        after_insert,
        "the slot moves past the delivered insert",
        WAIT,
    )
    .await;
    pipeline.shutdown().await.unwrap();
}

#[tokio::test]
async fn an_idle_capture_confirms_keepalives_so_other_tables_hold_no_wal() {
    let pg = support::start_postgres_with(
        "CREATE TABLE captured (id int PRIMARY KEY); CREATE TABLE busy (id int, pad text)",
    )
    .await;
    let (pipeline, handle) = harness::start(harness::config(&pg, &["public.captured"], "")).await;
    harness::wait_streaming(&pg).await;
    let client = pg.client(DEFAULT_DATABASE).await.unwrap();
    for _ in 0..5 {
        client
            .batch_execute(
                "INSERT INTO busy SELECT g, repeat('x', 200) FROM generate_series(1, 20000) g",
            )
            .await
            .unwrap();
    }
    let end = support::current_wal_lsn(&client).await;
    support::wait_slot_confirmed(
        &client,
        SLOT,
        end,
        "the slot confirms past writes to uncaptured tables",
        WAIT,
    )
    .await;
    // The slot's restart point moves at the next running-transactions record, which a
    // checkpoint writes; from then on it only waits for the confirmation.
    client.batch_execute("CHECKPOINT").await.unwrap();
    support::wait_until(
        "the slot retains less than 16 MiB after ~25 MB of uncaptured writes",
        WAIT,
        || async {
            support::slot_retained_wal_bytes(&client, SLOT)
                .await
                .is_some_and(|bytes| bytes < 16 << 20)
        },
    )
    .await;
    assert_eq!(
        handle.event_count(),
        0,
        "nothing of the uncaptured table reaches the sink"
    );
    pipeline.shutdown().await.unwrap();
}

#[tokio::test]
async fn heartbeats_advance_the_slot_while_only_another_database_changes() {
    let pg = support::start_postgres_with("CREATE TABLE captured (id int PRIMARY KEY)").await;
    pg.create_database("elsewhere").await.unwrap();
    let config = harness::config(&pg, &["public.captured"], "heartbeat_interval_ms = 100");
    let (pipeline, handle) = harness::start(config).await;
    harness::wait_streaming(&pg).await;
    let client = pg.client(DEFAULT_DATABASE).await.unwrap();
    pg.execute_in(
        "elsewhere",
        "CREATE TABLE t (x int); INSERT INTO t SELECT generate_series(1, 50000)",
    )
    .await
    .unwrap();
    let end = support::current_wal_lsn(&client).await;
    support::wait_slot_confirmed(
        &client,
        SLOT,
        end,
        "the slot confirms past the other database's writes",
        WAIT,
    )
    .await;
    assert_eq!(
        handle.event_count(),
        0,
        "heartbeat messages never reach sinks"
    );
    pipeline.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_stopped_pipeline_resumes_after_what_it_confirmed_without_repeats() {
    let pg = support::start_postgres_with("CREATE TABLE items (id int PRIMARY KEY)").await;
    let (pipeline, handle) = harness::start(harness::config(&pg, &["public.items"], "")).await;
    harness::wait_streaming(&pg).await;
    pg.execute("INSERT INTO items SELECT generate_series(1, 100)")
        .await
        .unwrap();
    harness::wait_events(&handle, 100).await;
    pipeline.shutdown().await.unwrap();

    // Written while nothing streams.
    pg.execute(
        "INSERT INTO items SELECT generate_series(101, 150); DELETE FROM items WHERE id <= 10",
    )
    .await
    .unwrap();
    let (pipeline, handle) = harness::start(harness::config(&pg, &["public.items"], "")).await;
    let events = harness::wait_events(&handle, 60).await;
    let inserted: Vec<i64> = harness::ops(&events, Op::Create)
        .into_iter()
        .filter_map(id_of)
        .collect();
    assert_eq!(
        inserted,
        (101..=150).collect::<Vec<_>>(),
        "only what was not yet confirmed, in order"
    );
    let deleted: Vec<i64> = harness::ops(&events, Op::Delete)
        .into_iter()
        .filter_map(id_of)
        .collect();
    assert_eq!(deleted, (1..=10).collect::<Vec<_>>());
    pipeline.shutdown().await.unwrap();
}

#[tokio::test]
async fn postgres_restarted_mid_stream_loses_nothing_and_keeps_per_key_order() {
    let mut pg = support::start_postgres().await;
    pg.execute("CREATE TABLE counters (id int PRIMARY KEY, n int)")
        .await
        .unwrap();
    let (pipeline, handle) = harness::start(harness::config(&pg, &["public.counters"], "")).await;
    harness::wait_streaming(&pg).await;
    pg.execute("INSERT INTO counters SELECT g, 0 FROM generate_series(1, 20) g")
        .await
        .unwrap();
    for round in 1..=3 {
        pg.execute(&format!("UPDATE counters SET n = {round}"))
            .await
            .unwrap();
    }
    pg.restart().await.unwrap();
    for round in 4..=6 {
        pg.execute(&format!("UPDATE counters SET n = {round}"))
            .await
            .unwrap();
    }
    // 20 inserts + 6 rounds of 20 updates, possibly with some redelivered after the restart.
    let complete = |events: &[sluice_api::ChangeEvent]| {
        events
            .iter()
            .filter(|e| e.op == Op::Update && last_n(e) == Some(6))
            .count()
            >= 20
    };
    assert!(
        handle.wait_for(WAIT, |events, _| complete(events)).await,
        "every update after the restart arrives"
    );
    pipeline.shutdown().await.unwrap();

    let mut per_key: BTreeMap<i64, Vec<i32>> = BTreeMap::new();
    for event in handle.events() {
        per_key
            .entry(id_of(&event).unwrap())
            .or_default()
            .push(last_n(&event).unwrap());
    }
    assert_eq!(per_key.len(), 20);
    for (id, values) in per_key {
        let mut seen: Vec<i32> = values.clone();
        seen.dedup();
        // Redelivery may repeat a suffix, never reorder: after deduplicating consecutive
        // repeats and removing a replayed run, values only ever go 0,1,2,...,6.
        let mut expected = 0;
        for v in &seen {
            assert!(*v <= expected, "key {id}: {values:?} skips ahead");
            if *v == expected {
                expected += 1;
            }
        }
        assert_eq!(expected, 7, "key {id}: {values:?} misses a change");
    }
}

fn last_n(event: &sluice_api::ChangeEvent) -> Option<i32> {
    match event.after.as_ref()?.get(1)? {
        sluice_api::Value::Int32(n) => Some(*n),
        _ => None,
    }
}

#[tokio::test]
async fn an_idle_pipeline_stops_at_once_rather_than_waiting_out_the_drain_timeout() {
    let pg = support::start_postgres_with("CREATE TABLE items (id int PRIMARY KEY)").await;
    // The default drain timeout is 30 s; with nothing in flight a stop must not wait for it.
    let (pipeline, _handle) = harness::start(harness::config(&pg, &["public.items"], "")).await;
    harness::wait_streaming(&pg).await;
    let stopped = tokio::time::timeout(Duration::from_secs(10), pipeline.shutdown()).await;
    assert!(matches!(stopped, Ok(Ok(()))), "{stopped:?}");
}

#[tokio::test]
async fn a_sink_that_never_recovers_does_not_hold_up_a_stop_and_nothing_is_confirmed() {
    let pg = support::start_postgres_with("CREATE TABLE items (id int PRIMARY KEY)").await;
    let mut config = harness::config(&pg, &["public.items"], "");
    config.pipeline.shutdown_timeout = Duration::from_secs(1);
    let (pipeline, handle) = harness::start(config).await;
    harness::wait_streaming(&pg).await;
    // Fault injection: the sink fails every write, transiently, forever.
    handle.fail_writes(u64::MAX, ErrorClass::Transient);
    let client = pg.client(DEFAULT_DATABASE).await.unwrap();
    client
        .batch_execute("INSERT INTO items VALUES (1)")
        .await
        .unwrap();
    let inserted = support::current_wal_lsn(&client).await;
    support::wait_until("the sink refuses the batch", WAIT, || async {
        handle.failed_write_count() >= 1
    })
    .await;
    let stopped = tokio::time::timeout(Duration::from_secs(20), pipeline.shutdown()).await;
    let result = stopped.expect("the stop finishes although the sink never recovers");
    let error = format!(
        "{:#}",
        result.expect_err("undelivered batches are reported")
    );
    assert!(error.contains("not yet delivered"), "{error}");
    let confirmed = support::slot_confirmed_flush_lsn(&client, SLOT)
        .await
        .unwrap();
    assert!(
        confirmed < inserted,
        "the undelivered insert is not confirmed"
    );
}

/// Before it writes its shutdown checkpoint, a server stopping fast waits until every logical
/// replication client has confirmed all WAL sent to it. While a sink refuses changes the daemon
/// must hold that confirmation back (the server keeps waiting), and once the sink recovers it
/// must send it, so the shutdown finishes by itself.
#[tokio::test]
async fn a_fast_source_shutdown_waits_for_a_failing_sink_and_finishes_once_it_recovers() {
    let mut pg = support::start_postgres_with("CREATE TABLE items (id int PRIMARY KEY)").await;
    let (pipeline, handle) = harness::start(harness::config(&pg, &["public.items"], "")).await;
    harness::wait_streaming(&pg).await;
    // Fault injection: the sink refuses every write until healed.
    handle.fail_writes(u64::MAX, ErrorClass::Transient);
    let client = pg.client(DEFAULT_DATABASE).await.unwrap();
    client
        .batch_execute("INSERT INTO items SELECT generate_series(1, 100)")
        .await
        .unwrap();
    support::wait_until("the sink refuses the batch", WAIT, || async {
        handle.failed_write_count() >= 1
    })
    .await;
    drop(client);

    let log_path = pg.log_path();
    let log_before = std::fs::read_to_string(&log_path).unwrap_or_default().len();
    let shutdown_log = || {
        let text = std::fs::read_to_string(&log_path).unwrap_or_default();
        text.get(log_before..).unwrap_or_default().to_owned()
    };
    pg.request_fast_stop().await.unwrap();
    support::wait_until("the shutdown begins", WAIT, || async {
        shutdown_log().contains("shutting down")
    })
    .await;
    // The sink refuses another attempt (retries back off up to 30 s): the server must still be
    // up, its checkpoint not begun, its walsender waiting for the daemon's confirmation.
    let refused = handle.failed_write_count();
    support::wait_until("the sink refuses the batch again", WAIT * 2, || async {
        handle.failed_write_count() > refused
    })
    .await;
    assert!(
        !pg.is_stopped() && !shutdown_log().contains("checkpoint starting"),
        "the server shut down before the daemon confirmed what it was sent:\n{}",
        shutdown_log()
    );

    handle.heal();
    support::wait_until("the server finishes its shutdown", WAIT * 2, || async {
        pg.is_stopped()
    })
    .await;
    assert!(
        shutdown_log().contains("database system is shut down"),
        "{}",
        shutdown_log()
    );
    assert_eq!(
        handle
            .events()
            .iter()
            .filter_map(id_of)
            .collect::<std::collections::BTreeSet<_>>(),
        (1..=100).collect(),
        "every insert was delivered"
    );

    // The confirmation came before the checkpoint, but a server before version 17 keeps a slot's
    // confirmed position at a checkpoint only when more than that position moved: after the
    // restart the inserts may come again (bounded redelivery), nothing else.
    pg.start_again().await.unwrap();
    let client = pg.client(DEFAULT_DATABASE).await.unwrap();
    client
        .batch_execute("INSERT INTO items VALUES (101)")
        .await
        .unwrap();
    assert!(
        handle
            .wait_for(WAIT, |events, _| events
                .iter()
                .any(|e| id_of(e) == Some(101)))
            .await,
        "the pipeline streams again after the restart"
    );
    let ids: Vec<i64> = handle.events().iter().filter_map(id_of).collect();
    assert!(ids.iter().all(|id| (1..=101).contains(id)), "{ids:?}");
    pipeline.shutdown().await.unwrap();
}
