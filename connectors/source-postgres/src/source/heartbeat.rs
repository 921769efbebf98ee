//! The optional heartbeat: a logical decoding message written at an interval, so the slot keeps
//! advancing when only tables outside the capture change (their WAL would otherwise pile up).

use std::time::Duration;

use tokio::task::JoinHandle;

use crate::ConnectionConfig;

/// The prefix of heartbeat messages; the source swallows them.
pub const HEARTBEAT_PREFIX: &str = "sluice_heartbeat";

/// Write a non-transactional heartbeat message every `every` until aborted. Failures are
/// logged and retried at the next tick: a missed heartbeat only delays slot advance.
pub fn spawn(connection: ConnectionConfig, every: Duration) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut client = None;
        loop {
            tick.tick().await;
            if client.is_none() {
                match connection.connect_sql().await {
                    Ok(c) => client = Some(c),
                    Err(error) => {
                        tracing::warn!(%error, "heartbeat connection failed");
                        continue;
                    }
                }
            }
            if let Some(c) = &client {
                let sql =
                    format!("SELECT pg_logical_emit_message(false, '{HEARTBEAT_PREFIX}', '')");
                if let Err(error) = c.batch_execute(&sql).await {
                    tracing::warn!(%error, "heartbeat failed");
                    client = None;
                }
            }
        }
    })
}
