//! The pipeline's status as `GET /status` serves it and `sluice status` prints it: slot, the
//! source's state, positions and lag, each sink's position and figures, snapshot progress,
//! paused flag. It holds no configuration, so no secret can reach it.

use std::fmt;
use std::sync::atomic::Ordering;

use serde::{Deserialize, Serialize};
use sluice_api::Lsn;

use crate::pipeline::PipelineControl;

/// The whole status document.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Status {
    /// `[pipeline] name`.
    pub pipeline: String,
    /// The replication slot.
    pub slot: String,
    /// True while the replication stream is open.
    pub source_connected: bool,
    /// While the source waits for room in a full spill directory: where, and why.
    pub source_spill_full: Option<SpillFullStatus>,
    /// True while delivery is paused.
    pub paused: bool,
    /// The LSN every sink has durably taken, confirmed to PostgreSQL.
    pub confirmed_lsn: String,
    /// The server's WAL end as last reported by the replication stream.
    pub server_wal_end: String,
    pub lag_bytes: u64,
    pub lag_seconds: f64,
    pub sinks: Vec<SinkStatus>,
    pub snapshot: SnapshotStatus,
}

/// The source's wait for room in a full spill directory: it streams the transaction again after
/// a backoff until the directory has room for it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SpillFullStatus {
    /// The full directory.
    pub dir: String,
    /// What failed, in the operating system's words (`No space left on device`).
    pub reason: String,
    /// Attempts in this wait that failed for lack of space.
    pub attempt_count: u64,
}

/// One sink's position and figures.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SinkStatus {
    pub name: String,
    /// The LSN up to which the sink acknowledged everything.
    pub acked_lsn: String,
    pub events: u64,
    pub bytes: u64,
    pub queue_batches: u64,
    pub retries: u64,
    pub dead_letters: u64,
    /// True while the sink's latest write failed (it is retrying, or stopped the pipeline).
    pub failing: bool,
}

/// The current (or last) snapshot's progress.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SnapshotStatus {
    pub running: bool,
    pub rows_done: u64,
    pub rows_estimated: u64,
    pub chunks_done: u64,
    pub chunks_total: u64,
}

impl Status {
    /// Read the live figures of a running pipeline.
    pub fn read(pipeline: &str, control: &PipelineControl) -> Status {
        let metrics = control.metrics();
        let failing = metrics.failing_sinks();
        let snapshot = metrics.snapshot();
        Status {
            pipeline: pipeline.to_owned(),
            slot: metrics.slot.clone(),
            source_connected: control.is_streaming(),
            source_spill_full: metrics.spill_full.wait().map(|wait| SpillFullStatus {
                dir: wait.dir.display().to_string(),
                reason: wait.reason,
                attempt_count: wait.attempt_count,
            }),
            paused: control.is_paused(),
            confirmed_lsn: metrics.confirmed_lsn().to_string(),
            server_wal_end: metrics.server_wal_end().to_string(),
            lag_bytes: metrics.lag_bytes(),
            lag_seconds: metrics.lag_seconds(),
            sinks: metrics
                .sinks()
                .iter()
                .map(|s| SinkStatus {
                    name: s.name.clone(),
                    acked_lsn: Lsn(s.acked_lsn.load(Ordering::Relaxed)).to_string(),
                    events: s.events.load(Ordering::Relaxed),
                    bytes: s.bytes.load(Ordering::Relaxed),
                    queue_batches: s.queued.load(Ordering::Relaxed).max(0) as u64,
                    retries: s.retries.load(Ordering::Relaxed),
                    dead_letters: s.dead_letters.load(Ordering::Relaxed),
                    failing: failing.contains(&s.name.as_str()),
                })
                .collect(),
            snapshot: SnapshotStatus {
                running: snapshot.running,
                rows_done: snapshot.rows_done,
                rows_estimated: snapshot.rows_estimated,
                chunks_done: snapshot.chunks_done,
                chunks_total: snapshot.chunks_total,
            },
        }
    }
}

/// The status as a terminal table.
impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let yes_no = |b: bool| if b { "yes" } else { "no" };
        writeln!(f, "pipeline        {}", self.pipeline)?;
        writeln!(f, "slot            {}", self.slot)?;
        let source = match (&self.source_spill_full, self.source_connected) {
            (Some(wait), _) => format!(
                "waiting for space in {} ({}), attempt {}",
                wait.dir, wait.reason, wait.attempt_count
            ),
            (None, true) => "streaming".to_owned(),
            (None, false) => "not connected".to_owned(),
        };
        writeln!(f, "source          {source}")?;
        writeln!(f, "paused          {}", yes_no(self.paused))?;
        writeln!(f, "confirmed lsn   {}", self.confirmed_lsn)?;
        writeln!(f, "server wal end  {}", self.server_wal_end)?;
        writeln!(
            f,
            "lag             {} bytes, {:.1} s",
            self.lag_bytes, self.lag_seconds
        )?;
        let s = &self.snapshot;
        writeln!(
            f,
            "snapshot        {}: {}/{} rows, {}/{} chunks",
            if s.running { "running" } else { "idle" },
            s.rows_done,
            s.rows_estimated,
            s.chunks_done,
            s.chunks_total
        )?;
        writeln!(f)?;
        let name_width = self
            .sinks
            .iter()
            .map(|s| s.name.len())
            .max()
            .unwrap_or(0)
            .max(4);
        writeln!(
            f,
            "{:<name_width$}  {:>14}  {:>12}  {:>14}  {:>5}  {:>7}  {:>12}  STATE",
            "SINK", "ACKED LSN", "EVENTS", "BYTES", "QUEUE", "RETRIES", "DEAD LETTERS"
        )?;
        for sink in &self.sinks {
            writeln!(
                f,
                "{:<name_width$}  {:>14}  {:>12}  {:>14}  {:>5}  {:>7}  {:>12}  {}",
                sink.name,
                sink.acked_lsn,
                sink.events,
                sink.bytes,
                sink.queue_batches,
                sink.retries,
                sink.dead_letters,
                if sink.failing { "failing" } else { "ok" }
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(source_spill_full: Option<SpillFullStatus>) -> Status {
        Status {
            pipeline: "shop".into(),
            slot: "sluice_shop".into(),
            source_connected: true,
            source_spill_full,
            paused: false,
            confirmed_lsn: "0/16B3748".into(),
            server_wal_end: "0/16B3748".into(),
            lag_bytes: 0,
            lag_seconds: 0.0,
            sinks: Vec::new(),
            snapshot: SnapshotStatus {
                running: false,
                rows_done: 0,
                rows_estimated: 0,
                chunks_done: 0,
                chunks_total: 0,
            },
        }
    }

    #[test]
    fn a_source_waiting_for_spill_space_shows_the_directory_and_the_reason() {
        let waiting = status(Some(SpillFullStatus {
            dir: "/var/lib/sluice/spill".into(),
            reason: "writing a spill file: No space left on device (os error 28)".into(),
            attempt_count: 3,
        }));
        let table = waiting.to_string();
        assert!(
            table.contains(
                "source          waiting for space in /var/lib/sluice/spill (writing a spill \
                 file: No space left on device (os error 28)), attempt 3\n"
            ),
            "{table}"
        );
        let json = serde_json::to_value(&waiting).unwrap();
        assert_eq!(json["source_spill_full"]["dir"], "/var/lib/sluice/spill");
        assert_eq!(json["source_spill_full"]["attempt_count"], 3);

        let streaming = status(None);
        assert!(streaming
            .to_string()
            .contains("source          streaming\n"));
        let json = serde_json::to_value(&streaming).unwrap();
        assert!(json["source_spill_full"].is_null(), "{json}");
    }

    #[test]
    fn a_status_document_without_the_spill_field_still_reads() {
        let mut json = serde_json::to_value(status(None)).unwrap();
        json.as_object_mut().unwrap().remove("source_spill_full");
        let read: Status = serde_json::from_value(json).unwrap();
        assert_eq!(read, status(None));
    }
}
