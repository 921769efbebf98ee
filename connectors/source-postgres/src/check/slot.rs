//! `sluice check` on the replication slot: free slot capacity, the slot's plugin, owner
//! database, activity and retained WAL, and the server's cap on retained WAL.

use tokio_postgres::Client;

use super::{setting, CheckItem, Checked};

pub(super) async fn slot_capacity(client: &Client, slot_exists: bool) -> Checked {
    let row = client
        .query_one(
            "SELECT current_setting('max_replication_slots')::int,
                    (SELECT count(*)::int FROM pg_replication_slots)",
            &[],
        )
        .await?;
    let (max, used): (i32, i32) = (row.get(0), row.get(1));
    let name = "max_replication_slots";
    let detail = format!("{used} of {max} slots in use");
    Ok(vec![if slot_exists || used < max {
        CheckItem::ok(name, detail)
    } else {
        CheckItem::fail(
            name,
            format!("{detail}; none free for the new slot"),
            format!(
                "ALTER SYSTEM SET max_replication_slots = {}; then restart PostgreSQL",
                max + 1
            ),
        )
    }])
}

/// A replication slot as `pg_replication_slots` shows it.
#[derive(Clone, Debug)]
pub(super) struct SlotState {
    plugin: Option<String>,
    database: Option<String>,
    active_pid: Option<i32>,
    wal_status: Option<String>,
    retained_bytes: Option<i64>,
}

pub(super) async fn slot_state(
    client: &Client,
    slot: &str,
) -> Result<Option<SlotState>, tokio_postgres::Error> {
    let row = client
        .query_opt(
            "SELECT plugin::text, database::text, active_pid, wal_status,
                    pg_wal_lsn_diff(CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn()
                                         ELSE pg_current_wal_lsn() END, restart_lsn)::bigint
               FROM pg_replication_slots WHERE slot_name = $1",
            &[&slot],
        )
        .await?;
    Ok(row.map(|r| SlotState {
        plugin: r.get(0),
        database: r.get(1),
        active_pid: r.get(2),
        wal_status: r.get(3),
        retained_bytes: r.get(4),
    }))
}

pub(super) fn slot_items(state: Option<SlotState>, slot: &str, database: &str) -> Vec<CheckItem> {
    let name = "replication slot";
    let Some(state) = state else {
        return vec![CheckItem::ok(
            name,
            format!("{slot} does not exist; it will be created"),
        )];
    };
    let drop =
        format!("SELECT pg_drop_replication_slot('{slot}'); or set [source] slot to another name");
    if state.plugin.as_deref() != Some("pgoutput") {
        let plugin = state.plugin.as_deref().unwrap_or("none (physical slot)");
        return vec![CheckItem::fail(
            name,
            format!("{slot} uses plugin {plugin}, not pgoutput"),
            drop,
        )];
    }
    if state.database.as_deref() != Some(database) {
        let other = state.database.as_deref().unwrap_or("?");
        return vec![CheckItem::fail(
            name,
            format!("{slot} belongs to database {other}"),
            drop,
        )];
    }
    if let Some(pid) = state.active_pid {
        return vec![CheckItem::fail(
            name,
            format!("{slot} is in use by another connection (pid {pid})"),
            format!("stop the other consumer (SELECT pg_terminate_backend({pid});) or set [source] slot to another name"),
        )];
    }
    let retained = state
        .retained_bytes
        .map_or("unknown".to_owned(), human_bytes);
    let wal_status = state.wal_status.as_deref().unwrap_or("unknown");
    let detail =
        format!("{slot} exists (pgoutput), retains {retained} of WAL, wal_status {wal_status}");
    vec![match wal_status {
        "lost" => CheckItem::fail(
            name,
            format!("{detail}: WAL it needs was removed; the slot cannot resume"),
            format!("SELECT pg_drop_replication_slot('{slot}'); then start with snapshot_mode = \"when_needed\" or \"initial\""),
        ),
        "unreserved" => CheckItem::warn(
            name,
            format!("{detail}: WAL it needs will be removed at the next checkpoint"),
            "start sluice now so the slot catches up, or raise max_slot_wal_keep_size",
        ),
        _ => CheckItem::ok(name, detail),
    }]
}

pub(super) async fn wal_keep_size(client: &Client) -> Checked {
    let value = setting(client, "max_slot_wal_keep_size").await?;
    let name = "max_slot_wal_keep_size";
    Ok(vec![if value == "-1" {
        CheckItem::warn(
            name,
            "unlimited: a stopped pipeline makes the slot retain WAL until the disk fills",
            "ALTER SYSTEM SET max_slot_wal_keep_size = '10GB'; then SELECT pg_reload_conf();",
        )
    } else {
        CheckItem::ok(name, value)
    }])
}

pub(super) fn human_bytes(bytes: i64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value.abs() >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}
