//! The source loop: prepare publication and slot, stream pgoutput, decode, batch, hand batches
//! to the pipeline with backpressure, and confirm to the server what the pipeline reports as
//! durable. Lost connections are retried with backoff, resuming after the last batch handed on.

mod batcher;
mod heartbeat;
mod setup;
mod spill_wait;

use std::time::Duration;

use sluice_api::{Backoff, Batch, ErrorClass, Lsn};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

pub use batcher::{BatchLimits, Batcher};
pub use heartbeat::HEARTBEAT_PREFIX;
pub use setup::{ensure_publication, included_tables, slot_state, SlotState};
pub use spill_wait::{SpillFullState, SpillFullWait};

use crate::client::{ReplicationClient, ReplicationMessage, ReplicationStream, StartOptions};
use crate::config::SnapshotMode;
use crate::decoder::{Decoded, Decoder, StreamBudget};
use crate::snapshot::incremental::{self, Incremental, WATERMARK_PREFIX};
use crate::snapshot::state::SnapshotState;
use crate::snapshot::{self, Outcome, SnapshotKind, SnapshotProgress, SnapshotRun};
use crate::toast;
use crate::types::TypeCatalog;
use crate::{PostgresSourceConfig, SourceError};

/// How often the loop looks at whether a status update is due. Confirmations reach the server
/// within this delay, which keeps retained WAL low without flooding the walsender.
const STATUS_TICK: Duration = Duration::from_millis(100);

/// What the source needs from the pipeline around it.
pub struct SourceContext {
    /// Batches in commit order; sending waits while the pipeline is full (backpressure).
    pub batches: mpsc::Sender<Batch>,
    /// The LSN every sink has durably taken.
    pub confirmed: watch::Receiver<Lsn>,
    /// Orderly stop: hand on what is complete, wait (bounded) for it to be confirmed, confirm.
    pub stop: CancellationToken,
    /// Immediate stop (a sink failed): confirm only what is durable and leave.
    pub abort: CancellationToken,
    pub limits: BatchLimits,
    /// Longest wait for in-flight batches during an orderly stop.
    pub drain_timeout: Duration,
    /// True while a replication stream is open: changes committed from then on are captured.
    pub streaming: watch::Sender<bool>,
    /// The highest batch sequence every sink has acknowledged (with every batch before it):
    /// how snapshot chunks learn they are durable.
    pub acked_sequence: watch::Receiver<u64>,
    /// Live snapshot figures, shared with whoever reports them.
    pub snapshot_progress: std::sync::Arc<SnapshotProgress>,
    /// The server's WAL end as the replication stream last reported it (keepalives and
    /// XLogData headers), for the lag figures.
    pub server_wal_end: std::sync::Arc<std::sync::atomic::AtomicU64>,
    /// Whether the source waits for room in a full spill directory, for the metrics and
    /// `/status`.
    pub spill_full: std::sync::Arc<SpillFullState>,
}

impl SourceContext {
    fn observe_wal_end(&self, wal_end: Lsn) {
        self.server_wal_end
            .fetch_max(wal_end.0, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Stream changes until stopped. Transient failures reconnect with backoff; the result is an
/// error only for failures a retry cannot fix.
pub async fn run(cfg: &PostgresSourceConfig, mut ctx: SourceContext) -> Result<(), SourceError> {
    let mut batcher = Batcher::new(ctx.limits);
    let mut backoff = Backoff::new(cfg.reconnect_backoff_initial, cfg.reconnect_backoff_max);
    // Once a session has streamed from the slot, a later session that finds it gone must not
    // quietly create a new one: the changes in between would be skipped.
    let mut slot_expected = false;
    // A full spill directory fails the same transaction on every try until space is freed, and
    // streaming it again resets the connection backoff: those retries back off on their own,
    // starting over once something was handed on since the last one.
    let mut spill_full =
        SpillFullRetry::new(cfg.reconnect_backoff_initial, cfg.reconnect_backoff_max);
    loop {
        let result = Session::run(
            cfg,
            &mut ctx,
            &mut batcher,
            &mut backoff,
            &mut slot_expected,
        )
        .await;
        ctx.streaming.send_replace(false);
        match result {
            Ok(()) => return Ok(()),
            Err(error) if error.class() == ErrorClass::Transient => {
                batcher.discard_unsent();
                let resume_after = batcher.sent_checkpoint();
                let delay = if let SourceError::SpillFull { dir, reason } = &error {
                    ctx.spill_full.failed(dir, reason);
                    let delay = spill_full.next_delay(resume_after);
                    tracing::warn!(
                        %error, attempt = spill_full.backoff.attempt(),
                        retry_in_ms = delay.as_millis() as u64, %resume_after,
                        "spill directory full, reconnecting to stream the transaction again"
                    );
                    delay
                } else {
                    let delay = backoff.next_delay();
                    tracing::warn!(
                        %error, attempt = backoff.attempt(), retry_in_ms = delay.as_millis() as u64,
                        %resume_after, "replication connection lost, reconnecting"
                    );
                    delay
                };
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    _ = ctx.stop.cancelled() => return Ok(()),
                    _ = ctx.abort.cancelled() => return Ok(()),
                }
            }
            Err(error) => return Err(error),
        }
    }
}

/// The backoff between attempts that each ended with a full spill directory.
struct SpillFullRetry {
    backoff: Backoff,
    /// Where the source resumed after the last such attempt.
    resumed_after: Option<Lsn>,
}

impl SpillFullRetry {
    fn new(initial: Duration, max: Duration) -> Self {
        SpillFullRetry {
            backoff: Backoff::new(initial, max),
            resumed_after: None,
        }
    }

    /// The wait before the next attempt, resuming after `resume_after`: growing while the
    /// same transaction keeps failing, from the start once the source moved on.
    fn next_delay(&mut self, resume_after: Lsn) -> Duration {
        if self.resumed_after != Some(resume_after) {
            self.backoff.reset();
            self.resumed_after = Some(resume_after);
        }
        self.backoff.next_delay()
    }
}

/// Snapshot as the mode says, and find where streaming starts: the slot's position (created
/// here if missing, unless `slot_expected`: a slot this process streamed from has vanished).
/// `None` when nothing streams now: the snapshot was stopped, or `initial_only` is done.
async fn prepare(
    cfg: &PostgresSourceConfig,
    ctx: &mut SourceContext,
    batcher: &mut Batcher,
    sql: &tokio_postgres::Client,
    client: &mut ReplicationClient,
    catalog: &TypeCatalog,
    slot_expected: bool,
) -> Result<Option<Lsn>, SourceError> {
    let state = match cfg.snapshot_mode {
        SnapshotMode::Never => None,
        _ => snapshot::state::load(&cfg.state_dir, &cfg.slot)?,
    };
    let condition = snapshot::slot_condition(sql, &cfg.slot).await?;
    let plan = snapshot::decide(cfg.snapshot_mode, condition, state.as_ref());
    tracing::debug!(?condition, ?plan, "snapshot decision");
    let (floor, outcome) = match plan.snapshot {
        Some(SnapshotKind::Exported { drop_slot_first }) => {
            if drop_slot_first {
                tracing::warn!(slot = %cfg.slot, "the slot lost WAL it needs; recreating it and snapshotting again");
                client
                    .simple_query(&snapshot::drop_slot_command(&cfg.slot))
                    .await?;
            }
            // Saved before the slot exists: a crash right after creating it must not look like
            // a slot whose snapshot was done.
            let state = SnapshotState::started(&cfg.slot);
            snapshot::state::save(&cfg.state_dir, &state)?;
            let created = client.create_slot(&cfg.slot, true).await?;
            tracing::info!(slot = %cfg.slot, consistent_point = %created.consistent_point, "created replication slot; snapshotting under its exported snapshot");
            let floor = created.consistent_point;
            let run = SnapshotRun {
                cfg,
                exported: created.snapshot_name,
                lsn: floor,
                state,
                catalog: catalog.clone(),
            };
            (floor, Some(snapshot::run(run, ctx, batcher).await?))
        }
        Some(SnapshotKind::Fresh { resume }) => {
            let state = match state {
                Some(state) if resume => {
                    tracing::info!(slot = %cfg.slot, chunks_done = state.done_count(), "resuming an interrupted snapshot under a new snapshot; streaming then replays every change since the slot's position");
                    state
                }
                _ => {
                    let state = SnapshotState::started(&cfg.slot);
                    snapshot::state::save(&cfg.state_dir, &state)?;
                    state
                }
            };
            let floor = match slot_state(sql, &cfg.slot).await? {
                Some(slot) if plan.stream => {
                    setup::check_slot(&cfg.slot, &slot)?;
                    slot.confirmed_flush.unwrap_or(Lsn::ZERO)
                }
                _ => current_wal_lsn(sql).await?,
            };
            let run = SnapshotRun {
                cfg,
                exported: None,
                lsn: floor,
                state,
                catalog: catalog.clone(),
            };
            (floor, Some(snapshot::run(run, ctx, batcher).await?))
        }
        None if !plan.stream => {
            tracing::info!(slot = %cfg.slot, "snapshot_mode = \"initial_only\" and the snapshot is complete: nothing to do");
            (Lsn::ZERO, None)
        }
        None => match slot_state(sql, &cfg.slot).await? {
            Some(state) => {
                setup::check_slot(&cfg.slot, &state)?;
                (state.confirmed_flush.unwrap_or(Lsn::ZERO), None)
            }
            None if slot_expected => {
                return Err(setup::slot_vanished(&cfg.slot, batcher.sent_checkpoint()))
            }
            None => {
                let created = client.create_slot(&cfg.slot, false).await?;
                tracing::info!(slot = %cfg.slot, consistent_point = %created.consistent_point, "created replication slot");
                (created.consistent_point, None)
            }
        },
    };
    if outcome == Some(Outcome::Stopped) || !plan.stream {
        return Ok(None);
    }
    Ok(Some(floor))
}

async fn current_wal_lsn(sql: &tokio_postgres::Client) -> Result<Lsn, SourceError> {
    let text: String = sql
        .query_one("SELECT pg_current_wal_insert_lsn()::text", &[])
        .await?
        .get(0);
    text.parse()
        .map_err(|_| SourceError::Protocol(format!("unparsable WAL position {text:?}")))
}

/// One replication connection's life.
struct Session<'a> {
    cfg: &'a PostgresSourceConfig,
    ctx: &'a mut SourceContext,
    batcher: &'a mut Batcher,
    stream: ReplicationStream,
    decoder: Decoder,
    incremental: Incremental,
    sql: tokio_postgres::Client,
    /// The slot's confirmed position when the session started: never report less.
    floor: Lsn,
    last_status: Instant,
    status_due: bool,
}

impl<'a> Session<'a> {
    async fn run(
        cfg: &'a PostgresSourceConfig,
        ctx: &'a mut SourceContext,
        batcher: &'a mut Batcher,
        backoff: &mut Backoff,
        slot_expected: &mut bool,
    ) -> Result<(), SourceError> {
        let sql = cfg.connection.connect_sql().await?;
        let added = ensure_publication(&sql, cfg).await?;
        incremental::prepare_signal_table(&sql, cfg).await?;
        let mut client = ReplicationClient::connect(&cfg.connection).await?;
        let system = client.identify_system().await?;
        let catalog = TypeCatalog::load(&sql).await?;
        let sequence_before = batcher.next_sequence();
        let Some(floor) = prepare(
            cfg,
            ctx,
            batcher,
            &sql,
            &mut client,
            &catalog,
            *slot_expected,
        )
        .await?
        else {
            return Ok(());
        };
        let snapshotted = batcher.next_sequence() != sequence_before;
        batcher.resume_at(floor);
        let budget = StreamBudget {
            memory_bytes: cfg.stream_buffer_bytes,
            spill_dir: cfg.spill_dir.clone(),
        };
        let start_lsn = batcher.sent_checkpoint();
        let stream = client
            .start_replication(&StartOptions {
                slot: cfg.slot.clone(),
                publication: cfg.publication.clone(),
                start_lsn,
                proto_version: 2,
                streaming: true,
                messages: true,
            })
            .await?;
        *slot_expected = true;
        tracing::info!(
            slot = %cfg.slot, start = %start_lsn, server_wal = %system.xlogpos,
            timeline = system.timeline, "streaming changes"
        );
        ctx.observe_wal_end(system.xlogpos);
        ctx.streaming.send_replace(true);
        let heartbeat = cfg
            .heartbeat_interval
            .map(|every| heartbeat::spawn(cfg.connection.clone(), every));
        let mut session = Session {
            cfg,
            ctx,
            batcher,
            stream,
            incremental: Incremental::new(cfg, catalog.clone()),
            decoder: Decoder::new(catalog, budget),
            sql,
            floor,
            last_status: Instant::now(),
            status_due: true,
        };
        // Tables newly added to the capture get their existing rows by an incremental snapshot
        // beside streaming (an initial snapshot just taken already read them).
        if cfg.snapshot_mode != SnapshotMode::Never && !snapshotted {
            for (schema, name) in &added {
                tracing::info!(table = %format!("{schema}.{name}"), "table added to the capture: snapshotting it incrementally");
                session.incremental.request(schema, name);
            }
            session.incremental.start_next().await?;
        }
        let result = session.stream_loop(backoff).await;
        if let Some(task) = heartbeat {
            task.abort();
        }
        result?;
        // Orderly end of the copy; the position is already reported, so a failure here loses
        // nothing.
        if let Err(error) = session.stream.shutdown().await {
            tracing::debug!(%error, "ending the replication stream");
        }
        Ok(())
    }

    async fn stream_loop(&mut self, backoff: &mut Backoff) -> Result<(), SourceError> {
        let mut tick = tokio::time::interval(STATUS_TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let deadline = self.batcher.deadline();
            tokio::select! {
                biased;
                _ = self.ctx.abort.cancelled() => return self.leave().await,
                _ = self.ctx.stop.cancelled() => return self.drain_and_leave().await,
                _ = tick.tick() => self.maybe_send_status().await?,
                _ = sleep_until_opt(deadline) => self.send_batch().await?,
                message = self.stream.recv() => match message? {
                    Some(ReplicationMessage::XLogData { wal_start, wal_end, data, .. }) => {
                        backoff.reset();
                        self.ctx.observe_wal_end(wal_end);
                        self.handle_xlog(wal_start, &data).await?;
                    }
                    Some(ReplicationMessage::Keepalive { wal_end, reply_requested, .. }) => {
                        backoff.reset();
                        self.ctx.observe_wal_end(wal_end);
                        if !self.decoder.in_transaction() && self.batcher.complete_up_to(wal_end) {
                            self.send_batch().await?;
                        }
                        if reply_requested {
                            self.send_status().await?;
                        }
                    }
                    None => {
                        return Err(SourceError::Io(std::io::Error::new(
                            std::io::ErrorKind::UnexpectedEof,
                            "the server ended the replication stream",
                        )))
                    }
                },
            }
        }
    }

    async fn handle_xlog(&mut self, wal_start: Lsn, data: &[u8]) -> Result<(), SourceError> {
        let decoded = self.decoder.decode(wal_start, data)?;
        let unknown = self.decoder.take_unknown_type_oids();
        if !unknown.is_empty() {
            tracing::debug!(?unknown, "reloading the type catalog for new types");
            let catalog = TypeCatalog::load(&self.sql).await?;
            self.decoder.replace_catalog(catalog);
        }
        for relation_id in self.decoder.take_key_lookups() {
            let key = primary_key(&self.sql, relation_id).await?;
            self.decoder.set_primary_key(relation_id, key);
        }
        match decoded {
            Decoded::StreamCommitted => {
                self.ctx.spill_full.streamed_through();
                while let Some(item) = self.decoder.next_replayed()? {
                    self.accept(item).await?;
                }
                Ok(())
            }
            other => self.accept(other).await,
        }
    }

    async fn accept(&mut self, decoded: Decoded) -> Result<(), SourceError> {
        let full = match decoded {
            Decoded::Nothing | Decoded::StreamCommitted => false,
            Decoded::Event(event) => self.row_event(event).await?,
            Decoded::Events(events) => {
                let mut full = false;
                for event in events {
                    full |= self.row_event(event).await?;
                }
                full
            }
            Decoded::Message(event) => self.row_event(event).await?,
            Decoded::Commit { end_lsn, .. } => self.batcher.complete_up_to(end_lsn),
        };
        if full {
            self.send_batch().await?;
        }
        Ok(())
    }

    /// A streamed event: a watermark (its chunk's surviving rows are delivered in its place), a
    /// heartbeat (swallowed), a signal (acted on, not delivered), or a change that also takes
    /// its key out of an incremental snapshot's open chunk; true when the batch is full.
    async fn row_event(&mut self, event: sluice_api::ChangeEvent) -> Result<bool, SourceError> {
        if let Some(message) = &event.message {
            if message.prefix == WATERMARK_PREFIX {
                let rows = self
                    .incremental
                    .on_watermark(&message.content, event.position.lsn)
                    .await?;
                let mut full = false;
                for row in rows {
                    full |= self.batcher.push(row);
                }
                return Ok(full);
            }
            return Ok(message.prefix != HEARTBEAT_PREFIX && self.batcher.push(event));
        }
        let signal = event
            .table
            .as_deref()
            .is_some_and(|t| self.incremental.is_signal_table(&t.schema, &t.name));
        if signal {
            if event.op == sluice_api::Op::Create {
                self.incremental.on_signal(&event);
                self.incremental.start_next().await?;
            }
            return Ok(false);
        }
        self.incremental.observe(&event);
        Ok(self.push_row_event(event))
    }

    /// Add a row event of an included table; true when the batch is full. Publications that
    /// cover more tables than the include list (all tables, or shared) are filtered here.
    fn push_row_event(&mut self, event: sluice_api::ChangeEvent) -> bool {
        let included = event
            .table
            .as_deref()
            .is_none_or(|t| crate::config::table_included(&self.cfg.tables, &t.schema, &t.name));
        included && self.batcher.push(event)
    }

    /// Hand the current batch to the pipeline, waiting while it is full but still confirming
    /// to the server meanwhile, so a slow sink never looks like a dead client.
    async fn send_batch(&mut self) -> Result<(), SourceError> {
        let Some(mut batch) = self.batcher.take() else {
            return Ok(());
        };
        if self.cfg.reread_unchanged_toast {
            // A failed re-read leaves the values marked unavailable; it never stops the stream.
            let catalog = self.decoder.catalog();
            if let Err(error) = toast::refill(&self.sql, catalog, &mut batch.events).await {
                tracing::warn!(%error, "re-reading unchanged TOAST values failed; they stay unavailable");
            }
        }
        let sender = self.ctx.batches.clone();
        let reserve = sender.reserve();
        tokio::pin!(reserve);
        loop {
            tokio::select! {
                permit = &mut reserve => {
                    let Ok(permit) = permit else {
                        return Err(SourceError::Setup("the pipeline stopped taking batches".into()));
                    };
                    permit.send(batch);
                    return Ok(());
                }
                _ = tokio::time::sleep(STATUS_TICK) => self.maybe_send_status().await?,
                _ = self.ctx.abort.cancelled() => return Ok(()),
            }
        }
    }

    /// The position to report as flushed: what every sink has taken, never below the slot's.
    fn flush_position(&self) -> Lsn {
        (*self.ctx.confirmed.borrow()).max(self.floor)
    }

    async fn maybe_send_status(&mut self) -> Result<(), SourceError> {
        if self.ctx.confirmed.has_changed().unwrap_or(false) {
            self.status_due = true;
        }
        if self.status_due || self.last_status.elapsed() >= self.cfg.status_interval {
            self.send_status().await?;
        }
        Ok(())
    }

    async fn send_status(&mut self) -> Result<(), SourceError> {
        self.ctx.confirmed.mark_unchanged();
        let flush = self.flush_position();
        tracing::trace!(%flush, "status update");
        self.stream.send_status(flush, flush, flush, false).await?;
        self.last_status = Instant::now();
        self.status_due = false;
        Ok(())
    }

    /// Orderly stop: hand on what is complete, wait until it is confirmed (bounded), report it.
    async fn drain_and_leave(&mut self) -> Result<(), SourceError> {
        self.send_batch().await?;
        let target = self.batcher.sent_checkpoint();
        let deadline = Instant::now() + self.ctx.drain_timeout;
        let mut confirmed = self.ctx.confirmed.clone();
        let floor = self.floor;
        let reached = tokio::time::timeout_at(deadline, async {
            loop {
                if (*confirmed.borrow_and_update()).max(floor) >= target {
                    return true;
                }
                if confirmed.changed().await.is_err() {
                    return false;
                }
            }
        })
        .await
        .unwrap_or(false);
        if !reached {
            tracing::warn!(%target, confirmed = %self.flush_position(), "stopping before every batch was delivered; the rest is sent again on restart");
        }
        self.leave().await
    }

    async fn leave(&mut self) -> Result<(), SourceError> {
        self.send_status().await?;
        tracing::info!(confirmed = %self.flush_position(), "replication stopped");
        Ok(())
    }
}

/// The primary-key column names of a table, in key order; empty without a primary key.
async fn primary_key(
    sql: &tokio_postgres::Client,
    relation_id: u32,
) -> Result<Vec<String>, SourceError> {
    let rows = sql
        .query(
            "SELECT a.attname::text FROM pg_index i \
             CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, position) \
             JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum \
             WHERE i.indrelid = $1 AND i.indisprimary ORDER BY k.position",
            &[&relation_id],
        )
        .await?;
    Ok(rows.iter().map(|row| row.get(0)).collect())
}

async fn sleep_until_opt(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_spill_directory_that_stays_full_makes_retries_wait_longer_until_the_source_moves_on() {
        let initial = Duration::from_millis(100);
        let mut retry = SpillFullRetry::new(initial, Duration::from_secs(10));
        let first = retry.next_delay(Lsn(10));
        assert!(first <= initial, "{first:?}");
        let second = retry.next_delay(Lsn(10));
        let third = retry.next_delay(Lsn(10));
        assert!(
            second > initial && third > second,
            "{second:?} then {third:?}"
        );
        let moved_on = retry.next_delay(Lsn(20));
        assert!(moved_on <= initial, "{moved_on:?}");
    }
}
