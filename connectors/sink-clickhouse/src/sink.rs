//! Writes each batch as `JSONEachRow` inserts, one or more per table, and acknowledges it once
//! every insert was answered with success.
//!
//! Every row carries `_version` = the change's LSN; a delete writes the key with
//! `_deleted = 1`. `ReplacingMergeTree(_version)` keeps the highest version of each key, so a
//! redelivered older change never wins over a newer one: read with `FINAL` and
//! `WHERE _deleted = 0`. A truncate flushes the table's pending rows, then runs
//! `TRUNCATE TABLE`. An insert the server refuses for its data is bisected until the refused
//! rows stand alone; those go to the dead-letter file, the rest is inserted.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::{Map, Value as Json};
use sluice_api::{
    Batch, ChangeEvent, DeadLetter, LazyDeadLetters, Op, Sink, SinkError, TableSchema, Value,
};
use sluice_sink_file::value_json;

use crate::client::{ClickHouseClient, TargetTable};
use crate::config::ClickHouseSinkConfig;
use crate::encode::write_row;
use crate::error::Failure;

/// A ClickHouse table per source table, kept equal to it (read with `FINAL`).
pub struct ClickHouseSink {
    name: String,
    client: ClickHouseClient,
    dead_letters: Option<LazyDeadLetters>,
}

/// Rows of one table waiting for their insert.
struct Pending {
    schema: Arc<TableSchema>,
    target: Arc<TargetTable>,
    body: Vec<u8>,
    /// Where each row starts in `body`, and the event it came from.
    rows: Vec<(usize, usize)>,
}

impl ClickHouseSink {
    /// A sink named `name` (for dead letters and logs). Connects on the first batch.
    pub fn new(
        name: impl Into<String>,
        config: &ClickHouseSinkConfig,
    ) -> Result<ClickHouseSink, SinkError> {
        let dead_letters = config.dead_letter.clone().map(LazyDeadLetters::new);
        Ok(ClickHouseSink {
            name: name.into(),
            client: ClickHouseClient::new(config.clone())?,
            dead_letters,
        })
    }

    async fn write_batch(&mut self, batch: &Batch) -> Result<(), SinkError> {
        let mut pending: HashMap<String, Pending> = HashMap::new();
        let mut letters = Vec::new();
        for (index, event) in batch.events.iter().enumerate() {
            let Some(table) = &event.table else { continue };
            if event.op == Op::Message {
                continue;
            }
            let name = table.qualified_name();
            let reshaped = pending.get(&name).is_some_and(|p| {
                !Arc::ptr_eq(&p.schema, table) && p.schema.columns != table.columns
            });
            if event.op == Op::Truncate || reshaped {
                if let Some(rows) = pending.remove(&name) {
                    self.flush(batch, rows, &mut letters).await?;
                }
            }
            if event.op == Op::Truncate {
                let target = self.client.prepare_table(table).await?;
                self.client
                    .execute(&format!("TRUNCATE TABLE {}", target.quoted))
                    .await
                    .map_err(|e| e.into_sink_error(&format!("truncating {}", target.quoted)))?;
                continue;
            }
            if !pending.contains_key(&name) {
                let target = self.client.prepare_table(table).await?;
                pending.insert(
                    name.clone(),
                    Pending {
                        schema: table.clone(),
                        target,
                        body: Vec::with_capacity(64 * 1024),
                        rows: Vec::new(),
                    },
                );
            }
            let rows = pending.get_mut(&name).expect("inserted above");
            if let Err(reason) = encode_event(rows, index, event) {
                letters.push(self.letter(event, reason));
            }
            let config = self.client.config();
            if rows.rows.len() >= config.max_rows_per_insert
                || rows.body.len() >= config.max_bytes_per_insert
            {
                let rows = pending.remove(&name).expect("present");
                self.flush(batch, rows, &mut letters).await?;
            }
        }
        for (_, rows) in pending {
            self.flush(batch, rows, &mut letters).await?;
        }
        if !letters.is_empty() {
            match self.dead_letters.as_mut() {
                Some(sink) => sink.send(&letters).await?,
                None => {
                    let first = &letters[0];
                    return Err(SinkError::fatal(format!(
                        "clickhouse sink: a row of {} ({}) cannot be written: {}; set \
                         a dead_letter destination to divert such rows",
                        first.table,
                        first.key.as_deref().unwrap_or("no key"),
                        first.reason
                    )));
                }
            }
            tracing::warn!(
                sink = %self.name,
                count = letters.len(),
                "rows refused by the target went to the dead-letter file"
            );
        }
        Ok(())
    }

    /// Insert the pending rows of one table; bisect a refused insert down to its bad rows.
    async fn flush(
        &mut self,
        batch: &Batch,
        rows: Pending,
        letters: &mut Vec<DeadLetter>,
    ) -> Result<(), SinkError> {
        if rows.rows.is_empty() {
            return Ok(());
        }
        let mut bounds: Vec<usize> = rows.rows.iter().map(|(start, _)| *start).collect();
        bounds.push(rows.body.len());
        let body = bytes::Bytes::from(rows.body);
        let mut parts = vec![(0, rows.rows.len())];
        while let Some((from, to)) = parts.pop() {
            let slice = body.slice(bounds[from]..bounds[to]);
            let Err(error) = self.client.insert(&rows.target, slice).await else {
                continue;
            };
            if error.failure() != Failure::Rejected || self.dead_letters.is_none() {
                if error.failure() == Failure::Rejected {
                    return Err(SinkError::fatal(format!(
                        "clickhouse sink: {} refused rows: {error}; set a dead_letter destination to \
                         divert refused rows",
                        rows.target.quoted
                    )));
                }
                return Err(
                    error.into_sink_error(&format!("inserting into {}", rows.target.quoted))
                );
            }
            if to - from == 1 {
                let event = &batch.events[rows.rows[from].1];
                letters.push(self.letter(event, error.to_string()));
            } else {
                let middle = from + (to - from) / 2;
                parts.push((middle, to));
                parts.push((from, middle));
            }
        }
        Ok(())
    }

    fn letter(&self, event: &ChangeEvent, reason: String) -> DeadLetter {
        let table = event.table.as_deref();
        let row = event.after.as_ref().or(event.before.as_ref());
        let object = |keys_only: bool| -> Json {
            let (Some(table), Some(row)) = (table, row) else {
                return Json::Null;
            };
            let mut map = Map::new();
            for (column, value) in table.columns.iter().zip(row) {
                if column.is_key || !keys_only {
                    map.insert(column.name.clone(), value_json(value));
                }
            }
            Json::Object(map)
        };
        DeadLetter {
            sink: self.name.clone(),
            table: table.map(TableSchema::qualified_name).unwrap_or_default(),
            key: Some(object(true).to_string()),
            lsn: event.position.lsn.as_u64(),
            op: event.op.as_str().to_owned(),
            document: Some(object(false)),
            reason,
        }
    }
}

/// Append the rows of one event: an upsert, a delete marker, or (a key change) both.
fn encode_event(rows: &mut Pending, index: usize, event: &ChangeEvent) -> Result<(), String> {
    let version = event.position.lsn.as_u64();
    let table = &rows.schema;
    let key_only = |row| key_only(table, row);
    match event.op {
        Op::Delete => {
            let before = event
                .before
                .as_ref()
                .ok_or("a delete without its old key (replica identity nothing)")?;
            rows.rows.push((rows.body.len(), index));
            write_row(
                &mut rows.body,
                &rows.target.columns,
                &key_only(before),
                version,
                true,
            );
        }
        _ => {
            let Some(after) = &event.after else {
                return Ok(());
            };
            let before = event.before.as_ref().filter(|_| !event.before_is_key_only);
            // An unchanged TOAST value the source could not re-read (the row changed again
            // since) is written empty: the row's newer version, which follows in the stream,
            // replaces this one. With REPLICA IDENTITY FULL the old value is at hand.
            let values: Vec<Option<&Value>> = after
                .iter()
                .enumerate()
                .map(|(i, value)| match (value, before.and_then(|b| b.get(i))) {
                    (Value::UnchangedToast, Some(old)) => Some(old),
                    (value, _) => Some(value),
                })
                .collect();
            if let Some(old) = &event.before {
                let changed_key = table
                    .columns
                    .iter()
                    .zip(old.iter().zip(after))
                    .any(|(c, (o, n))| c.is_key && !o.is_null() && o != n);
                if changed_key {
                    rows.rows.push((rows.body.len(), index));
                    write_row(
                        &mut rows.body,
                        &rows.target.columns,
                        &key_only(old),
                        version,
                        true,
                    );
                }
            }
            rows.rows.push((rows.body.len(), index));
            write_row(
                &mut rows.body,
                &rows.target.columns,
                &values,
                version,
                false,
            );
        }
    }
    Ok(())
}

/// The key columns' values of `row`, the other columns empty.
fn key_only<'a>(table: &TableSchema, row: &'a [Value]) -> Vec<Option<&'a Value>> {
    table
        .columns
        .iter()
        .zip(row)
        .map(|(c, v)| c.is_key.then_some(v))
        .collect()
}

#[async_trait::async_trait]
impl Sink for ClickHouseSink {
    fn dead_letter_count(&self) -> u64 {
        self.dead_letters
            .as_ref()
            .map_or(0, LazyDeadLetters::sent_count)
    }

    async fn write(&mut self, batch: &Batch) -> Result<(), SinkError> {
        let result = self.write_batch(batch).await;
        if result.is_err() {
            self.client.reset();
        }
        result
    }
}
