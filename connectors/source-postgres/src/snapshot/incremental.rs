//! Incremental snapshots beside streaming, with DBLog's watermarks: for each chunk, a low
//! watermark is written (a transactional logical message), the chunk is selected by primary key
//! (keyset pagination), and a high watermark is written. The stream sees both messages in commit
//! order. Between them, every key a streamed change touches is dropped from the chunk: the
//! stream already carries a version at least as new. At the high watermark the rows left are
//! emitted as `op = r` events (`source.snapshot = incremental`) at that point of the stream, so
//! a snapshot row never overwrites a newer streamed change.
//!
//! Triggered by an `execute-snapshot` row in the signal table (Debezium's format: `data` =
//! `{"data-collections": [...], "type": "incremental", "additional-conditions":
//! [{"data-collection": ..., "filter": ...}]}`), which `sluice snapshot` writes. Progress is
//! kept in memory only: an incremental snapshot interrupted by a restart is not resumed.

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;

use serde::Deserialize;
use sluice_api::{ChangeEvent, Lsn, Op, SnapshotFlag, SourcePosition, Value};
use tokio::sync::mpsc;
use tokio_postgres::SimpleQueryMessage;

use super::plan::{self, quote_literal, SnapshotTable};
use super::state::ChunkBounds;
use crate::ident::quote_ident;
use crate::types::TypeCatalog;
use crate::values::decode_text;
use crate::{PostgresSourceConfig, SourceError};

/// The prefix of watermark messages; the source swallows them.
pub const WATERMARK_PREFIX: &str = "sluice.watermark";
/// Debezium's signal type that starts a snapshot.
pub const EXECUTE_SNAPSHOT: &str = "execute-snapshot";

/// The `data` of an `execute-snapshot` signal.
#[derive(Debug, Deserialize, PartialEq, Eq)]
pub struct SnapshotSignal {
    #[serde(rename = "data-collections")]
    pub data_collections: Vec<String>,
    #[serde(rename = "type", default = "incremental")]
    pub kind: String,
    #[serde(rename = "additional-conditions", default)]
    pub additional_conditions: Vec<AdditionalCondition>,
}

/// A filter limiting the rows a table's snapshot reads.
#[derive(Debug, Deserialize, PartialEq, Eq)]
pub struct AdditionalCondition {
    #[serde(rename = "data-collection")]
    pub data_collection: String,
    pub filter: String,
}

fn incremental() -> String {
    "incremental".to_owned()
}

/// A table waiting for, or in, its incremental snapshot.
struct Pending {
    schema: String,
    name: String,
    filter: Option<String>,
}

/// The table being read and the chunk in flight.
struct Current {
    table: Arc<SnapshotTable>,
    filter: Option<String>,
    /// The last key read (text forms): the next chunk starts after it.
    after: Option<Vec<String>>,
    /// The chunk in flight's id, and whether its low watermark was seen.
    window: Option<(u64, bool)>,
    /// Keys a streamed change touched inside the window.
    seen: HashSet<String>,
}

/// What a chunk reader hands back: the rows (as events) and the last key, or why it failed.
struct ChunkRows {
    id: u64,
    result: Result<(Vec<ChangeEvent>, Option<Vec<String>>), String>,
}

/// Incremental snapshots of one source session; see the module docs.
pub struct Incremental {
    cfg: PostgresSourceConfig,
    catalog: Arc<TypeCatalog>,
    queue: VecDeque<Pending>,
    current: Option<Current>,
    next_id: u64,
    rows_tx: mpsc::UnboundedSender<ChunkRows>,
    rows_rx: mpsc::UnboundedReceiver<ChunkRows>,
}

impl Incremental {
    pub fn new(cfg: &PostgresSourceConfig, catalog: TypeCatalog) -> Self {
        let (rows_tx, rows_rx) = mpsc::unbounded_channel();
        Incremental {
            cfg: cfg.clone(),
            catalog: Arc::new(catalog),
            queue: VecDeque::new(),
            current: None,
            next_id: 1,
            rows_tx,
            rows_rx,
        }
    }

    /// Whether `schema.name` is the signal table.
    pub fn is_signal_table(&self, schema: &str, name: &str) -> bool {
        self.cfg
            .signal_table
            .as_ref()
            .is_some_and(|(s, t)| s == schema && t == name)
    }

    /// A row inserted into the signal table: queue the tables an `execute-snapshot` names.
    pub fn on_signal(&mut self, event: &ChangeEvent) {
        let Some(row) = event.after.as_ref() else {
            return;
        };
        let text = |i: usize| match row.get(i) {
            Some(Value::Text(t)) => Some(t.clone()),
            Some(Value::Json(t)) => Some(t.clone()),
            _ => None,
        };
        if text(1).as_deref() != Some(EXECUTE_SNAPSHOT) {
            tracing::debug!(kind = ?text(1), "signal ignored");
            return;
        }
        let signal = match text(2).map(|d| serde_json::from_str::<SnapshotSignal>(&d)) {
            Some(Ok(signal)) => signal,
            other => {
                tracing::warn!(?other, "unreadable execute-snapshot signal ignored");
                return;
            }
        };
        if signal.kind != "incremental" {
            tracing::warn!(kind = %signal.kind, "only incremental snapshots can be signalled");
            return;
        }
        for collection in &signal.data_collections {
            let Some((schema, name)) = collection.split_once('.') else {
                tracing::warn!(%collection, "signalled table is not schema.table; ignored");
                continue;
            };
            if !crate::config::table_included(&self.cfg.tables, schema, name) {
                tracing::warn!(%collection, "signalled table is not captured (source.tables); ignored");
                continue;
            }
            let filter = signal
                .additional_conditions
                .iter()
                .find(|c| c.data_collection == *collection)
                .map(|c| c.filter.clone());
            tracing::info!(table = %collection, ?filter, "incremental snapshot requested");
            self.queue.push_back(Pending {
                schema: schema.to_owned(),
                name: name.to_owned(),
                filter,
            });
        }
    }

    /// Queue a table (e.g. one newly added to the capture).
    pub fn request(&mut self, schema: &str, name: &str) {
        self.queue.push_back(Pending {
            schema: schema.to_owned(),
            name: name.to_owned(),
            filter: None,
        });
    }

    /// A streamed row change: inside a window, its key leaves the chunk.
    pub fn observe(&mut self, event: &ChangeEvent) {
        let Some(current) = self.current.as_mut() else {
            return;
        };
        if current.window.is_none_or(|(_, open)| !open) {
            return;
        }
        let Some(table) = &event.table else {
            return;
        };
        if table.relation_id != current.table.schema.relation_id {
            return;
        }
        let row = event.after.as_ref().or(event.before.as_ref());
        if let Some(key) = row.and_then(|r| key_of(&current.table, r)) {
            current.seen.insert(key);
        }
    }

    /// A watermark message; returns the chunk's surviving rows at a high watermark.
    pub async fn on_watermark(
        &mut self,
        content: &[u8],
        at: Lsn,
    ) -> Result<Vec<ChangeEvent>, SourceError> {
        let text = String::from_utf8_lossy(content);
        let Some((kind, id)) = text.split_once(':') else {
            return Ok(Vec::new());
        };
        let Ok(id) = id.parse::<u64>() else {
            return Ok(Vec::new());
        };
        let Some(current) = self.current.as_mut() else {
            return Ok(Vec::new());
        };
        if current.window.map(|(w, _)| w) != Some(id) {
            // A watermark of an earlier session: not ours to act on.
            return Ok(Vec::new());
        }
        if kind == "low" {
            current.window = Some((id, true));
            current.seen.clear();
            return Ok(Vec::new());
        }
        // High: the reader sent its rows before writing this watermark.
        let rows = loop {
            match self.rows_rx.recv().await {
                Some(rows) if rows.id == id => break rows,
                Some(_) => continue,
                None => return Ok(Vec::new()),
            }
        };
        current.window = None;
        let (events, last_key) = match rows.result {
            Ok(found) => found,
            Err(error) => {
                tracing::warn!(table = %current.table.schema.qualified_name(), %error, "incremental snapshot chunk failed; the table's snapshot stops");
                self.current = None;
                self.start_next().await?;
                return Ok(Vec::new());
            }
        };
        let full = events.len() as u64 >= self.cfg.incremental_chunk_rows;
        let mut kept = Vec::with_capacity(events.len());
        for mut event in events {
            let seen = event
                .after
                .as_ref()
                .and_then(|r| key_of(&current.table, r))
                .is_some_and(|k| current.seen.contains(&k));
            if !seen {
                event.position.lsn = at;
                event.position.commit_lsn = at;
                kept.push(event);
            }
        }
        current.seen.clear();
        if full {
            current.after = last_key;
        } else {
            tracing::info!(table = %current.table.schema.qualified_name(), "incremental snapshot completed");
            self.current = None;
        }
        self.start_next().await?;
        Ok(kept)
    }

    /// Start the next chunk (of the current table, or the next queued one) unless one is in
    /// flight.
    pub async fn start_next(&mut self) -> Result<(), SourceError> {
        if self.current.as_ref().is_some_and(|c| c.window.is_some()) {
            return Ok(());
        }
        if self.current.is_none() {
            let Some(pending) = self.queue.pop_front() else {
                return Ok(());
            };
            let client = self.cfg.connection.connect_sql().await?;
            let table =
                plan::describe(&client, &self.catalog, &pending.schema, &pending.name).await?;
            if table.chunk_key.is_empty() {
                tracing::warn!(table = %table.schema.qualified_name(), "incremental snapshots need a primary key; skipped");
                return Box::pin(self.start_next()).await;
            }
            self.current = Some(Current {
                table: Arc::new(table),
                filter: pending.filter,
                after: None,
                window: None,
                seen: HashSet::new(),
            });
        }
        let Some(current) = self.current.as_mut() else {
            return Ok(());
        };
        let id = self.next_id;
        self.next_id += 1;
        current.window = Some((id, false));
        tokio::spawn(read_chunk(
            self.cfg.clone(),
            self.catalog.clone(),
            current.table.clone(),
            current.filter.clone(),
            current.after.clone(),
            id,
            self.rows_tx.clone(),
        ));
        Ok(())
    }
}

/// The key of a row as a comparable string (the chunking key's values).
fn key_of(table: &SnapshotTable, row: &[Value]) -> Option<String> {
    let mut key = String::new();
    for &i in &table.chunk_key {
        key.push_str(&format!("{:?}\u{1f}", row.get(i)?));
    }
    Some(key)
}

/// Low watermark, select, hand the rows on, high watermark. The high watermark is written even
/// when the select failed, so the stream learns of the failure in order.
async fn read_chunk(
    cfg: PostgresSourceConfig,
    catalog: Arc<TypeCatalog>,
    table: Arc<SnapshotTable>,
    filter: Option<String>,
    after: Option<Vec<String>>,
    id: u64,
    rows: mpsc::UnboundedSender<ChunkRows>,
) {
    let result = async {
        let client = cfg.connection.connect_sql().await?;
        emit(&client, "low", id).await?;
        let selected = select_chunk(&client, &catalog, &table, filter, after, &cfg).await;
        let _ = rows.send(ChunkRows {
            id,
            result: selected.map_err(|e| e.to_string()),
        });
        emit(&client, "high", id).await
    }
    .await;
    if let Err(error) = result {
        tracing::warn!(%error, "incremental snapshot chunk could not be read");
        let _ = rows.send(ChunkRows {
            id,
            result: Err(error.to_string()),
        });
        if let Ok(client) = cfg.connection.connect_sql().await {
            let _ = emit(&client, "high", id).await;
        }
    }
}

async fn emit(client: &tokio_postgres::Client, kind: &str, id: u64) -> Result<(), SourceError> {
    client
        .batch_execute(&format!(
            "SELECT pg_logical_emit_message(true, {}, {})",
            quote_literal(WATERMARK_PREFIX),
            quote_literal(&format!("{kind}:{id}"))
        ))
        .await?;
    Ok(())
}

async fn select_chunk(
    client: &tokio_postgres::Client,
    catalog: &TypeCatalog,
    table: &SnapshotTable,
    filter: Option<String>,
    after: Option<Vec<String>>,
    cfg: &PostgresSourceConfig,
) -> Result<(Vec<ChangeEvent>, Option<Vec<String>>), SourceError> {
    let columns: Vec<String> = table
        .schema
        .columns
        .iter()
        .map(|c| quote_ident(&c.name))
        .collect();
    let order: Vec<String> = table
        .chunk_key
        .iter()
        .map(|&i| quote_ident(&table.schema.columns[i].name))
        .collect();
    let mut conditions = Vec::new();
    let range = table.chunk_filter(&ChunkBounds::Key { after, upto: None });
    if !range.is_empty() {
        conditions.push(range);
    }
    if let Some(filter) = filter {
        conditions.push(format!("({filter})"));
    }
    let sql = format!(
        "SELECT {} FROM {}{} ORDER BY {} LIMIT {}",
        columns.join(", "),
        table.quoted_name(),
        if conditions.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", conditions.join(" AND "))
        },
        order.join(", "),
        cfg.incremental_chunk_rows
    );
    let position = SourcePosition {
        snapshot: SnapshotFlag::Incremental,
        ..SourcePosition::default()
    };
    let mut events = Vec::new();
    let mut last_key = None;
    for message in client.simple_query(&sql).await? {
        let SimpleQueryMessage::Row(row) = message else {
            continue;
        };
        let values: Vec<Value> = table
            .schema
            .columns
            .iter()
            .enumerate()
            .map(|(i, c)| match row.get(i) {
                Some(text) => decode_text(catalog, c.type_oid, text),
                None => Value::Null,
            })
            .collect();
        last_key = Some(
            table
                .chunk_key
                .iter()
                .map(|&i| row.get(i).unwrap_or_default().to_owned())
                .collect(),
        );
        events.push(ChangeEvent {
            op: Op::Read,
            table: Some(table.schema.clone()),
            before: None,
            before_is_key_only: false,
            after: Some(values),
            message: None,
            position: position.clone(),
        });
    }
    Ok((events, last_key))
}

/// Make sure the signal table exists and is published, so its rows reach the stream.
pub async fn prepare_signal_table(
    client: &tokio_postgres::Client,
    cfg: &PostgresSourceConfig,
) -> Result<(), SourceError> {
    let Some((schema, name)) = &cfg.signal_table else {
        return Ok(());
    };
    let table = format!("{}.{}", quote_ident(schema), quote_ident(name));
    client
        .batch_execute(&format!(
            "CREATE TABLE IF NOT EXISTS {table} (id text PRIMARY KEY, type text NOT NULL, data text)"
        ))
        .await?;
    let published = client
        .query_opt(
            "SELECT 1 FROM pg_publication p LEFT JOIN pg_publication_tables t \
               ON t.pubname = p.pubname AND t.schemaname = $2 AND t.tablename = $3 \
             WHERE p.pubname = $1 AND (p.puballtables OR t.tablename IS NOT NULL)",
            &[&cfg.publication, schema, name],
        )
        .await?;
    if published.is_none() {
        client
            .batch_execute(&format!(
                "ALTER PUBLICATION {} ADD TABLE {table}",
                quote_ident(&cfg.publication)
            ))
            .await?;
    }
    Ok(())
}

/// The `INSERT` that signals an incremental snapshot of `table` (what `sluice snapshot` runs).
pub fn signal_insert(signal_table: &(String, String), table: &str, filter: Option<&str>) -> String {
    let mut data = serde_json::json!({
        "data-collections": [table],
        "type": "incremental",
    });
    if let Some(filter) = filter {
        data["additional-conditions"] =
            serde_json::json!([{"data-collection": table, "filter": filter}]);
    }
    format!(
        "INSERT INTO {}.{} (id, type, data) VALUES ('sluice-' || gen_random_uuid(), {}, {})",
        quote_ident(&signal_table.0),
        quote_ident(&signal_table.1),
        quote_literal(EXECUTE_SNAPSHOT),
        quote_literal(&data.to_string())
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_debezium_signal_parses_with_its_conditions() {
        let signal: SnapshotSignal = serde_json::from_str(
            r#"{"data-collections": ["public.t"], "type": "incremental",
                "additional-conditions": [{"data-collection": "public.t", "filter": "v > 1"}]}"#,
        )
        .unwrap();
        assert_eq!(signal.data_collections, vec!["public.t".to_owned()]);
        assert_eq!(signal.additional_conditions[0].filter, "v > 1");
    }

    #[test]
    fn the_signal_insert_carries_the_filter() {
        let sql = signal_insert(
            &("public".into(), "sig".into()),
            "public.t",
            Some("v = 'x'"),
        );
        assert!(sql.starts_with("INSERT INTO \"public\".\"sig\""), "{sql}");
        assert!(sql.contains("'execute-snapshot'"), "{sql}");
        assert!(sql.contains("\"filter\":\"v = ''x''\""), "{sql}");
    }
}
