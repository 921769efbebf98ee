//! Writes each batch to the changelog tables it touches, one Delta commit per table (more only
//! when a table changes shape inside the batch), and acknowledges the batch once every commit
//! landed.
//!
//! File sizing: the delivery layer acknowledges batch by batch, so a batch's rows are committed
//! before `write` returns; a batch holds up to the pipeline's `max_batch_events` events,
//! gathered for up to `max_batch_wait_ms`, which bound the rows and the time of one commit. A
//! commit larger than `target_file_bytes` rolls to several files, and small files left by small
//! batches are compacted once `compact_min_files` of them gathered.

use std::collections::HashMap;
use std::sync::Arc;

use sluice_api::{Batch, ChangeEvent, Op, Sink, SinkError, TableSchema};

use crate::compact::compact;
use crate::config::LakeSinkConfig;
use crate::error::LakeError;
use crate::storage::Storage;
use crate::table::LakeTable;

/// A Delta Lake changelog table per source table.
pub struct LakeSink {
    name: String,
    config: LakeSinkConfig,
    storage: Storage,
    /// Tables opened so far, by `schema.table`.
    tables: HashMap<String, LakeTable>,
}

/// Consecutive events of one table with one shape.
struct Run<'a> {
    shape: Arc<TableSchema>,
    events: Vec<&'a ChangeEvent>,
}

impl LakeSink {
    /// A sink named `name` (its commits' application ids carry it). Contacts storage on the
    /// first batch.
    pub fn new(name: impl Into<String>, config: &LakeSinkConfig) -> Result<LakeSink, SinkError> {
        let storage = Storage::new(config).map_err(LakeError::into_sink_error)?;
        Ok(LakeSink {
            name: name.into(),
            config: config.clone(),
            storage,
            tables: HashMap::new(),
        })
    }

    async fn write_batch(&mut self, batch: &Batch) -> Result<(), LakeError> {
        for (name, runs) in runs_by_table(batch) {
            if !self.tables.contains_key(&name) {
                let table = LakeTable::open(&self.storage, &name, &self.name).await?;
                self.tables.insert(name.clone(), table);
            }
            let table = self.tables.get_mut(&name).expect("opened above");
            for run in runs {
                let fresh: Vec<&ChangeEvent> =
                    run.events.into_iter().filter(|e| table.is_new(e)).collect();
                if fresh.is_empty() {
                    continue;
                }
                table
                    .append(
                        &self.storage,
                        &run.shape,
                        &fresh,
                        self.config.target_file_bytes,
                    )
                    .await?;
            }
            if self.config.compact_min_files > 0 {
                compact(table, &self.config).await?;
            }
        }
        Ok(())
    }
}

/// The batch's row events grouped by table (in order of first appearance), each table's split
/// into runs where its shape changes.
fn runs_by_table(batch: &Batch) -> Vec<(String, Vec<Run<'_>>)> {
    let mut tables: Vec<(String, Vec<Run<'_>>)> = Vec::new();
    for event in &batch.events {
        let Some(shape) = &event.table else { continue };
        if event.op == Op::Message {
            continue;
        }
        let name = shape.qualified_name();
        let runs = match tables.iter().position(|(n, _)| *n == name) {
            Some(index) => &mut tables[index].1,
            None => {
                tables.push((name, Vec::new()));
                &mut tables.last_mut().expect("pushed").1
            }
        };
        match runs.last_mut() {
            Some(run) if Arc::ptr_eq(&run.shape, shape) || run.shape.columns == shape.columns => {
                run.events.push(event)
            }
            _ => runs.push(Run {
                shape: shape.clone(),
                events: vec![event],
            }),
        }
    }
    tables
}

#[async_trait::async_trait]
impl Sink for LakeSink {
    async fn write(&mut self, batch: &Batch) -> Result<(), SinkError> {
        self.write_batch(batch).await.map_err(|error| {
            // What the sink knows of the tables may be behind the storage after a failed
            // commit: read it again before the batch is written again.
            self.tables.clear();
            tracing::warn!(sink = %self.name, %error, "lake write failed");
            error.into_sink_error()
        })
    }
}
