//! Writes each batch in one target transaction and acknowledges it only after COMMIT.
//!
//! Rows are upserted and deleted in multi-row statements guarded by LSN (see [`crate::sql`]).
//! A statement the target refuses for its data (SQLSTATE class 22 or 23) is bisected under
//! savepoints until the refused rows are isolated; those go to the dead-letter file (written
//! and fsync'd before COMMIT) and the rest of the batch commits. Without a dead-letter file a
//! refused row is a fatal error naming its table and key.

use std::sync::Arc;

use sluice_api::{Batch, DeadLetter, LazyDeadLetters, Sink, SinkError, TableSchema};
use tokio_postgres::types::ToSql;

use crate::client::TargetClient;
use crate::config::{DeleteMode, PostgresSinkConfig};
use crate::encode::Cell;
use crate::error::{describe, failure, sink_error, Failure};
use crate::plan::{key_json, plan, RowChange, Step};
use crate::sql::{self, Target};

/// PostgreSQL's limit on bind parameters in one statement.
const MAX_PARAMETERS: usize = 65_535;

/// A PostgreSQL table per source table, kept equal to it.
pub struct PostgresSink {
    name: String,
    target: TargetClient,
    dead_letters: Option<LazyDeadLetters>,
}

/// Which statement a run of rows needs.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Kind {
    /// Upserts whose unchanged-TOAST columns are flagged.
    Upsert(Vec<bool>),
    Delete,
}

impl PostgresSink {
    /// A sink named `name` (for dead letters and logs). Connects on the first batch.
    pub fn new(name: impl Into<String>, config: &PostgresSinkConfig) -> PostgresSink {
        let dead_letters = config.dead_letter.clone().map(LazyDeadLetters::new);
        PostgresSink {
            name: name.into(),
            target: TargetClient::new(config.clone()),
            dead_letters,
        }
    }

    async fn write_steps(&mut self, steps: &[Step]) -> Result<(), SinkError> {
        let mut targets = Vec::with_capacity(steps.len());
        for step in steps {
            let table = match step {
                Step::Rows { table, .. } | Step::Truncate { table, .. } => table,
            };
            targets.push(self.target.prepare_table(table).await?);
        }
        let soft = self.target.config().delete_mode == DeleteMode::Soft;
        let begin = self.target.begin().await?;
        self.simple(begin).await?;
        let mut letters = Vec::new();
        for (step, target) in steps.iter().zip(&targets) {
            match step {
                Step::Truncate { lsn, .. } => {
                    self.simple(&sql::truncate(target, soft, lsn.as_u64()))
                        .await?
                }
                Step::Rows { table, changes } => {
                    self.write_rows(target, table, changes, &mut letters)
                        .await?
                }
            }
        }
        if !letters.is_empty() {
            let sink = self.dead_letters.as_mut().expect("letters need a sink");
            sink.send(&letters).await?;
            tracing::warn!(
                sink = %self.name,
                count = letters.len(),
                "rows refused by the target went to the dead-letter file"
            );
        }
        self.simple("COMMIT").await
    }

    async fn simple(&mut self, sql: &str) -> Result<(), SinkError> {
        self.target
            .client()
            .await?
            .batch_execute(sql)
            .await
            .map_err(|e| sink_error(sql.split_whitespace().next().unwrap_or(sql), &e))
    }

    async fn write_rows(
        &mut self,
        target: &Target,
        table: &Arc<TableSchema>,
        changes: &[RowChange],
        letters: &mut Vec<DeadLetter>,
    ) -> Result<(), SinkError> {
        // Group by statement shape: deletes, and upserts by their unchanged-TOAST pattern.
        let mut groups: Vec<(Kind, Vec<&RowChange>)> = Vec::new();
        for change in changes {
            let kind = match &change.cells {
                None => Kind::Delete,
                Some(cells) => Kind::Upsert(cells.iter().map(|c| *c == Cell::Unchanged).collect()),
            };
            match groups.iter_mut().find(|(k, _)| *k == kind) {
                Some((_, rows)) => rows.push(change),
                None => groups.push((kind, vec![change])),
            }
        }
        // PostgreSQL takes at most 65535 bind parameters per statement: wide tables get
        // fewer rows per statement than configured.
        let per_row = table.columns.len() + 1;
        let per_statement = self
            .target
            .config()
            .rows_per_statement
            .min(MAX_PARAMETERS / per_row)
            .max(1);
        for (kind, rows) in &groups {
            for chunk in rows.chunks(per_statement) {
                self.write_chunk(target, table, kind, chunk, letters)
                    .await?;
            }
        }
        Ok(())
    }

    /// Write `rows` in one statement; when the target refuses it for its data and dead letters
    /// are on, bisect under savepoints until each refused row stands alone.
    async fn write_chunk(
        &mut self,
        target: &Target,
        table: &Arc<TableSchema>,
        kind: &Kind,
        rows: &[&RowChange],
        letters: &mut Vec<DeadLetter>,
    ) -> Result<(), SinkError> {
        let bisect = self.dead_letters.is_some();
        let mut pending: Vec<&[&RowChange]> = vec![rows];
        while let Some(part) = pending.pop() {
            if bisect {
                self.simple("SAVEPOINT sluice_rows").await?;
            }
            match self.execute(target, table, kind, part).await {
                Ok(()) if bisect => self.simple("RELEASE SAVEPOINT sluice_rows").await?,
                Ok(()) => {}
                Err(ExecError::Sink(error)) => return Err(error),
                Err(ExecError::Postgres(error)) if failure(&error) == Failure::Rejected => {
                    let reason = describe(&error);
                    if !bisect {
                        let key = if part.len() == 1 {
                            key_json(table, &part[0].key).to_string()
                        } else {
                            format!("one of {} rows", part.len())
                        };
                        return Err(SinkError::fatal(format!(
                            "postgres sink: the target refused a row of {} ({key}): {reason}; \
                             set a dead_letter destination to divert refused rows",
                            table.qualified_name()
                        )));
                    }
                    self.simple("ROLLBACK TO SAVEPOINT sluice_rows").await?;
                    if let [row] = part {
                        letters.push(DeadLetter {
                            sink: self.name.clone(),
                            table: table.qualified_name(),
                            key: Some(key_json(table, &row.key).to_string()),
                            lsn: row.lsn.as_u64(),
                            op: row.op.as_str().to_owned(),
                            document: Some(row.document(table)),
                            reason,
                        });
                    } else {
                        let (left, right) = part.split_at(part.len() / 2);
                        pending.push(right);
                        pending.push(left);
                    }
                }
                Err(ExecError::Postgres(error)) => {
                    return Err(sink_error(
                        &format!("writing to {}", target.quoted()),
                        &error,
                    ))
                }
            }
        }
        Ok(())
    }

    async fn execute(
        &mut self,
        target: &Target,
        table: &TableSchema,
        kind: &Kind,
        rows: &[&RowChange],
    ) -> Result<(), ExecError> {
        let soft = self.target.config().delete_mode == DeleteMode::Soft;
        let text = match kind {
            Kind::Upsert(unchanged) => sql::upsert(target, table, rows.len(), unchanged, !soft),
            Kind::Delete if soft => sql::soft_delete(target, table, rows.len()),
            Kind::Delete => sql::hard_delete(target, table, rows.len()),
        };
        let lsns: Vec<String> = rows.iter().map(|r| r.lsn.as_u64().to_string()).collect();
        let mut params: Vec<Option<&str>> = Vec::new();
        for (row, lsn) in rows.iter().zip(&lsns) {
            match &row.cells {
                Some(cells) if *kind != Kind::Delete => {
                    params.extend(cells.iter().map(Cell::as_param))
                }
                _ => params.extend(row.key.iter().map(Cell::as_param)),
            }
            params.push(Some(lsn));
        }
        let refs: Vec<&(dyn ToSql + Sync)> =
            params.iter().map(|p| p as &(dyn ToSql + Sync)).collect();
        let statement = self.target.statement(&text).await?;
        let client = self.target.client().await?;
        client
            .execute(&statement, &refs)
            .await
            .map(|_| ())
            .map_err(ExecError::Postgres)
    }
}

/// Why a statement did not run: the connection (already classified) or the statement itself.
enum ExecError {
    Sink(SinkError),
    Postgres(tokio_postgres::Error),
}

impl From<SinkError> for ExecError {
    fn from(error: SinkError) -> Self {
        ExecError::Sink(error)
    }
}

#[async_trait::async_trait]
impl Sink for PostgresSink {
    fn dead_letter_count(&self) -> u64 {
        self.dead_letters
            .as_ref()
            .map_or(0, LazyDeadLetters::sent_count)
    }

    async fn write(&mut self, batch: &Batch) -> Result<(), SinkError> {
        let steps = plan(batch).map_err(|e| SinkError::fatal(format!("postgres sink: {e}")))?;
        if steps.is_empty() {
            return Ok(());
        }
        let result = self.write_steps(&steps).await;
        if result.is_err() {
            // The transaction is aborted or the connection gone: start clean next time.
            self.target.reset();
        }
        result
    }

    async fn close(&mut self) -> Result<(), SinkError> {
        self.target.reset();
        Ok(())
    }
}
