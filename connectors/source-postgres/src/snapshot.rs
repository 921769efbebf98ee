//! Snapshots: the rows that exist when capture begins, read as `op = r` events before the
//! stream takes over.
//!
//! - [`decide`]: what a start does, per mode, slot condition and persisted progress.
//! - [`plan`]: tables described as the stream describes them, divided into key (or page) ranges.
//! - [`workers`]: parallel chunk readers sharing one snapshot, reading with COPY.
//! - [`state`]: per-chunk progress on disk, advanced only once every sink took a chunk.
//! - [`progress`]: live figures and the progress bar or log lines.
//! - [`incremental`]: snapshots beside streaming, merged with the stream by watermarks.
//!
//! This module's [`run`] drives one snapshot: plan (or reload the plan), queue the chunks not
//! yet done, start the workers, turn their pieces into batches (through the source's batcher,
//! so sequence numbers stay one series), and record a chunk as done once the batch carrying its
//! last rows is acknowledged by every sink (the acknowledged sequence comes back from the
//! pipeline's checkpoint side).

pub mod copy_text;
pub mod decide;
pub mod incremental;
pub mod plan;
pub mod progress;
pub mod state;
mod workers;

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use sluice_api::{Lsn, SnapshotFlag};
use tokio::sync::mpsc;
use tokio::time::Instant;

pub use decide::{decide, SlotCondition, SnapshotKind, StartPlan};
pub use progress::{ProgressFigures, SnapshotProgress};

use self::state::SnapshotState;
use self::workers::{Job, Piece, WorkerContext};
use crate::ident::quote_ident;
use crate::source::{included_tables, Batcher, SourceContext};
use crate::types::TypeCatalog;
use crate::{PostgresSourceConfig, SourceError};

/// How a snapshot run ended.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Every chunk is durable in every sink.
    Completed,
    /// Stopped (orderly or aborted) before the end; progress so far is saved.
    Stopped,
}

/// One snapshot's inputs.
pub struct SnapshotRun<'a> {
    pub cfg: &'a PostgresSourceConfig,
    /// The snapshot exported by slot creation; `None`: export a new one here.
    pub exported: Option<String>,
    /// Position stamped on the rows (the slot's consistent point or current position).
    pub lsn: Lsn,
    /// Progress to continue (chunks done are skipped) or a fresh start.
    pub state: SnapshotState,
    pub catalog: TypeCatalog,
}

/// Read the snapshot and hand its rows on; see the module docs.
pub async fn run(
    run: SnapshotRun<'_>,
    ctx: &mut SourceContext,
    batcher: &mut Batcher,
) -> Result<Outcome, SourceError> {
    let SnapshotRun {
        cfg,
        exported,
        lsn,
        mut state,
        catalog,
    } = run;
    // The coordinator holds the snapshot (its own export, or an import of the slot's) while the
    // plan is made and the workers import it.
    let coordinator = cfg.connection.connect_sql().await?;
    coordinator
        .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        .await?;
    let snapshot_name = match exported {
        Some(name) => {
            coordinator
                .batch_execute(&format!(
                    "SET TRANSACTION SNAPSHOT {}",
                    plan::quote_literal(&name)
                ))
                .await?;
            name
        }
        None => coordinator
            .query_one("SELECT pg_export_snapshot()", &[])
            .await?
            .get(0),
    };
    let mut tables = Vec::new();
    let progress_tables = match state.tables.take() {
        Some(planned) => {
            for t in &planned {
                tables.push(plan::describe(&coordinator, &catalog, &t.schema, &t.name).await?);
            }
            planned
        }
        None => {
            let mut planned = Vec::new();
            for (schema, name) in included_tables(&coordinator, &cfg.tables).await? {
                let table = plan::describe(&coordinator, &catalog, &schema, &name).await?;
                planned.push(plan::chunk(&coordinator, &table, cfg.snapshot_chunk_rows).await?);
                tables.push(table);
            }
            planned
        }
    };
    state.tables = Some(progress_tables);
    state::save(&cfg.state_dir, &state)?;

    let mut jobs = VecDeque::new();
    let mut remaining_per_table = vec![0usize; tables.len()];
    for (t, progress) in state.tables.iter().flatten().enumerate() {
        for (c, bounds) in progress.chunks.iter().enumerate() {
            if !progress.done[c] {
                jobs.push_back(Job {
                    table: t,
                    chunk: c,
                    bounds: bounds.clone(),
                });
                remaining_per_table[t] += 1;
            }
        }
    }
    let total_chunks: usize = state.tables.iter().flatten().map(|t| t.chunks.len()).sum();
    let estimated: u64 = tables.iter().map(|t| t.estimated_rows).sum();
    ctx.snapshot_progress
        .start(estimated, total_chunks as u64, state.done_count() as u64);
    tracing::info!(
        tables = tables.len(),
        chunks = jobs.len(),
        chunks_done = state.done_count(),
        estimated_rows = estimated,
        workers = cfg.snapshot_max_threads.min(jobs.len().max(1)),
        "snapshot started"
    );
    let reporter = progress::spawn_reporter(ctx.snapshot_progress.clone());
    let worker_count = cfg.snapshot_max_threads.min(jobs.len()).max(1);
    let job_count = jobs.len();
    let (piece_tx, piece_rx) = mpsc::channel(worker_count * 2);
    let (imported_tx, imported_rx) = mpsc::channel(worker_count);
    let context = Arc::new(WorkerContext {
        connection: cfg.connection.clone(),
        snapshot_name,
        tables: Arc::new(tables),
        catalog: Arc::new(catalog),
        jobs: Arc::new(Mutex::new(jobs)),
        lsn,
        piece_rows: ctx.limits.max_events.max(1),
    });
    let handles = workers::spawn(worker_count, context.clone(), piece_tx, imported_tx);
    let mut emitter = Emitter {
        ctx,
        batcher,
        state,
        cfg,
        remaining_per_table,
        remaining_total: job_count,
        started_tables: vec![false; context.tables.len()],
        first_emitted: false,
        pending: VecDeque::new(),
        last_sequence: 0,
    };
    let result = emitter.pump(piece_rx, imported_rx, coordinator).await;
    for handle in handles {
        handle.abort();
    }
    reporter.abort();
    emitter.ctx.snapshot_progress.finish();
    let outcome = result?;
    if outcome == Outcome::Completed {
        emitter.state.completed = true;
        state::save(&cfg.state_dir, &emitter.state)?;
        let figures = emitter.ctx.snapshot_progress.figures();
        tracing::info!(
            rows = figures.rows_done,
            chunks = figures.chunks_done,
            "snapshot completed"
        );
    }
    Ok(outcome)
}

/// Turns pieces into batches and acknowledgements into saved progress.
struct Emitter<'a> {
    ctx: &'a mut SourceContext,
    batcher: &'a mut Batcher,
    state: SnapshotState,
    cfg: &'a PostgresSourceConfig,
    /// Chunks of each table not yet handed on in full during this run.
    remaining_per_table: Vec<usize>,
    remaining_total: usize,
    started_tables: Vec<bool>,
    first_emitted: bool,
    /// `(batch sequence, table, chunk)` of chunks handed on, not yet acknowledged.
    pending: VecDeque<(u64, usize, usize)>,
    last_sequence: u64,
}

impl Emitter<'_> {
    async fn pump(
        &mut self,
        mut pieces: mpsc::Receiver<Result<Piece, SourceError>>,
        mut imported: mpsc::Receiver<()>,
        coordinator: tokio_postgres::Client,
    ) -> Result<Outcome, SourceError> {
        // Once every worker imported the snapshot, the coordinator's hold is not needed.
        let mut coordinator = Some(coordinator);
        let mut acked = self.ctx.acked_sequence.clone();
        loop {
            tokio::select! {
                biased;
                _ = self.ctx.abort.cancelled() => return Ok(Outcome::Stopped),
                _ = self.ctx.stop.cancelled() => {
                    drop(pieces);
                    self.wait_acked().await?;
                    return Ok(Outcome::Stopped);
                }
                done = imported.recv(), if coordinator.is_some() => {
                    if done.is_none() {
                        coordinator = None;
                    }
                }
                changed = acked.changed() => {
                    if changed.is_err() {
                        return Ok(Outcome::Stopped);
                    }
                    self.record_acked()?;
                }
                piece = pieces.recv() => match piece {
                    None => break,
                    Some(Err(error)) => return Err(error),
                    Some(Ok(piece)) => {
                        if !self.emit(piece).await? {
                            return Ok(Outcome::Stopped);
                        }
                    }
                },
            }
        }
        drop(coordinator);
        if self.wait_acked().await? {
            Ok(Outcome::Completed)
        } else {
            Ok(Outcome::Stopped)
        }
    }

    /// Mark rows, make the batch, send it; false when the pipeline is gone or aborting.
    async fn emit(&mut self, mut piece: Piece) -> Result<bool, SourceError> {
        let table = piece.table;
        if !piece.events.is_empty() && !self.started_tables[table] {
            self.started_tables[table] = true;
            piece.events[0].position.snapshot = SnapshotFlag::FirstInDataCollection;
        }
        if !piece.events.is_empty() && !self.first_emitted {
            self.first_emitted = true;
            piece.events[0].position.snapshot = SnapshotFlag::First;
        }
        if piece.last {
            self.remaining_per_table[table] -= 1;
            self.remaining_total -= 1;
            if let Some(last) = piece.events.last_mut() {
                if self.remaining_total == 0 {
                    last.position.snapshot = SnapshotFlag::Last;
                } else if self.remaining_per_table[table] == 0 {
                    last.position.snapshot = SnapshotFlag::LastInDataCollection;
                }
            }
        }
        self.ctx
            .snapshot_progress
            .add_rows(piece.events.len() as u64);
        let batch = self.batcher.snapshot_batch(piece.events);
        let sequence = batch.sequence;
        self.last_sequence = sequence;
        if piece.last {
            self.pending.push_back((sequence, table, piece.chunk));
        }
        tokio::select! {
            biased;
            _ = self.ctx.abort.cancelled() => Ok(false),
            sent = self.ctx.batches.send(batch) => Ok(sent.is_ok()),
        }
    }

    /// Save every chunk whose last batch every sink acknowledged.
    fn record_acked(&mut self) -> Result<(), SourceError> {
        let acked = *self.ctx.acked_sequence.borrow_and_update();
        let mut changed = false;
        while let Some(&(sequence, table, chunk)) = self.pending.front() {
            if sequence > acked {
                break;
            }
            self.pending.pop_front();
            if let Some(t) = self.state.tables.as_mut().and_then(|t| t.get_mut(table)) {
                t.done[chunk] = true;
            }
            self.ctx.snapshot_progress.chunk_done();
            changed = true;
        }
        if changed {
            state::save(&self.cfg.state_dir, &self.state)?;
        }
        Ok(())
    }

    /// Wait (at most the drain timeout) until everything handed on is acknowledged; true when
    /// it was.
    async fn wait_acked(&mut self) -> Result<bool, SourceError> {
        let target = self.last_sequence;
        let mut acked = self.ctx.acked_sequence.clone();
        let mut deadline = None;
        loop {
            self.record_acked()?;
            if *acked.borrow_and_update() >= target {
                self.record_acked()?;
                return Ok(true);
            }
            if deadline.is_none() && self.ctx.stop.is_cancelled() {
                deadline = Some(Instant::now() + self.ctx.drain_timeout);
            }
            let stop = self.ctx.stop.clone();
            tokio::select! {
                changed = acked.changed() => if changed.is_err() { return Ok(false) },
                _ = sleep_until_opt(deadline) => return Ok(false),
                _ = stop.cancelled(), if deadline.is_none() => {}
                _ = self.ctx.abort.cancelled() => return Ok(false),
            }
        }
    }
}

async fn sleep_until_opt(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// The slot's condition, for [`decide`].
pub async fn slot_condition(
    client: &tokio_postgres::Client,
    slot: &str,
) -> Result<SlotCondition, SourceError> {
    let row = client
        .query_opt(
            "SELECT wal_status FROM pg_replication_slots \
             WHERE slot_name = $1 AND database = current_database()",
            &[&slot],
        )
        .await?;
    Ok(match row {
        None => SlotCondition::Missing,
        Some(r) if r.get::<_, Option<String>>(0).as_deref() == Some("lost") => SlotCondition::Lost,
        Some(_) => SlotCondition::Usable,
    })
}

/// `DROP_REPLICATION_SLOT` text for a lost slot being replaced.
pub fn drop_slot_command(slot: &str) -> String {
    format!("DROP_REPLICATION_SLOT {}", quote_ident(slot))
}
