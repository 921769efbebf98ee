//! Chunk readers: each worker opens its own connection, imports the one snapshot every worker
//! shares (`SET TRANSACTION SNAPSHOT` in a REPEATABLE READ, READ ONLY transaction), then takes
//! chunks from a shared queue and reads each with `COPY (SELECT ...) TO STDOUT`, handing rows on
//! in pieces of at most one batch through a bounded channel: memory stays bounded by the
//! channel, whatever the table's size.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use futures::StreamExt;
use sluice_api::{ChangeEvent, Lsn, Op, SnapshotFlag, SourcePosition};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::copy_text::parse_row;
use super::plan::{quote_literal, SnapshotTable};
use super::state::ChunkBounds;
use crate::types::TypeCatalog;
use crate::{ConnectionConfig, SourceError};

/// One chunk to read: indexes into the plan's tables and that table's chunks.
#[derive(Clone, Debug)]
pub struct Job {
    pub table: usize,
    pub chunk: usize,
    pub bounds: ChunkBounds,
}

/// Rows of one chunk, in order; `last` on the chunk's final piece (which may hold no rows).
#[derive(Debug)]
pub struct Piece {
    pub table: usize,
    pub chunk: usize,
    pub events: Vec<ChangeEvent>,
    pub last: bool,
}

/// What every worker shares.
pub struct WorkerContext {
    pub connection: ConnectionConfig,
    pub snapshot_name: String,
    pub tables: Arc<Vec<SnapshotTable>>,
    pub catalog: Arc<TypeCatalog>,
    pub jobs: Arc<Mutex<VecDeque<Job>>>,
    /// Position stamped on every row: the slot's consistent point (or its position).
    pub lsn: Lsn,
    pub piece_rows: usize,
}

/// Start `count` workers; each reports its imported snapshot on `imported` once, then sends
/// pieces (or its first error) until the queue is empty or the receiver is gone.
pub fn spawn(
    count: usize,
    context: Arc<WorkerContext>,
    pieces: mpsc::Sender<Result<Piece, SourceError>>,
    imported: mpsc::Sender<()>,
) -> Vec<JoinHandle<()>> {
    (0..count)
        .map(|_| {
            let context = context.clone();
            let pieces = pieces.clone();
            let imported = imported.clone();
            tokio::spawn(async move {
                if let Err(error) = work(&context, &pieces, imported).await {
                    let _ = pieces.send(Err(error)).await;
                }
            })
        })
        .collect()
}

async fn work(
    context: &WorkerContext,
    pieces: &mpsc::Sender<Result<Piece, SourceError>>,
    imported: mpsc::Sender<()>,
) -> Result<(), SourceError> {
    let client = context.connection.connect_sql().await?;
    client
        .batch_execute(&format!(
            "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SET TRANSACTION SNAPSHOT {}",
            quote_literal(&context.snapshot_name)
        ))
        .await?;
    let _ = imported.send(()).await;
    drop(imported);
    loop {
        let job = context.jobs.lock().ok().and_then(|mut q| q.pop_front());
        let Some(job) = job else {
            return Ok(());
        };
        if !read_chunk(context, &client, &job, pieces).await? {
            return Ok(());
        }
    }
}

/// Read one chunk; false when the receiver is gone (the snapshot stops).
async fn read_chunk(
    context: &WorkerContext,
    client: &tokio_postgres::Client,
    job: &Job,
    pieces: &mpsc::Sender<Result<Piece, SourceError>>,
) -> Result<bool, SourceError> {
    let table = &context.tables[job.table];
    let type_oids: Vec<u32> = table.schema.columns.iter().map(|c| c.type_oid).collect();
    let position = SourcePosition {
        lsn: context.lsn,
        commit_lsn: context.lsn,
        xid: None,
        commit_time_us: now_us(),
        snapshot: SnapshotFlag::True,
    };
    let stream = client.copy_out(&table.copy_statement(&job.bounds)).await?;
    futures::pin_mut!(stream);
    let mut events = Vec::with_capacity(context.piece_rows.min(4096));
    // A line may span CopyData messages (servers send one row per message, but the protocol
    // does not promise it): the unfinished tail waits here.
    let mut carry: Vec<u8> = Vec::new();
    while let Some(data) = stream.next().await {
        let data = data?;
        let mut rest: &[u8] = &data;
        while let Some(end) = rest.iter().position(|b| *b == b'\n') {
            let line = if carry.is_empty() {
                &rest[..end]
            } else {
                carry.extend_from_slice(&rest[..end]);
                &carry[..]
            };
            let row = parse_row(&context.catalog, &type_oids, line).ok_or_else(|| {
                SourceError::Protocol(format!(
                    "a COPY row of {} does not have {} columns",
                    table.schema.qualified_name(),
                    type_oids.len()
                ))
            })?;
            carry.clear();
            rest = &rest[end + 1..];
            events.push(ChangeEvent {
                op: Op::Read,
                table: Some(table.schema.clone()),
                before: None,
                before_is_key_only: false,
                after: Some(row),
                message: None,
                position: position.clone(),
            });
            if events.len() >= context.piece_rows {
                let piece = Piece {
                    table: job.table,
                    chunk: job.chunk,
                    events: std::mem::take(&mut events),
                    last: false,
                };
                if pieces.send(Ok(piece)).await.is_err() {
                    return Ok(false);
                }
            }
        }
        carry.extend_from_slice(rest);
    }
    let piece = Piece {
        table: job.table,
        chunk: job.chunk,
        events,
        last: true,
    };
    Ok(pieces.send(Ok(piece)).await.is_ok())
}

fn now_us() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64)
}
