//! One source table's changelog in Delta Lake: finding its current table version, the position
//! its commits reached, evolving its schema, and appending rows in commits that record the
//! positions they cover.
//!
//! Exactly once: every commit carries two Delta application transactions (`txn` actions),
//! `sluice.<sink>.commit_lsn` and `sluice.<sink>.lsn`, the position of the last streamed change
//! it holds; they land atomically with the rows. A redelivered change at or before that
//! position is skipped. The commit info also records the first and last LSN and the row count.
//!
//! Table versions: the first table of `schema.table` is the directory `schema.table`; when the
//! source changes a column in a way the Delta schema cannot follow (another type), the rows go
//! to a new table `schema.table__v2` (then `__v3`, …). Added columns just widen the schema; a
//! dropped column stays in the table and is null from then on.

use std::collections::HashMap;
use std::sync::Arc;

use deltalake::arrow::array::{new_null_array, ArrayRef, RecordBatch};
use deltalake::arrow::compute::cast;
use deltalake::arrow::datatypes::{Schema, SchemaRef};
use deltalake::kernel::engine::arrow_conversion::{TryIntoArrow, TryIntoKernel};
use deltalake::kernel::transaction::CommitProperties;
use deltalake::kernel::{StructType, Transaction};
use deltalake::operations::create::CreateBuilder;
use deltalake::protocol::SaveMode;
use deltalake::writer::{DeltaWriter, RecordBatchWriter, WriteMode};
use deltalake::DeltaTable;
use serde_json::json;
use sluice_api::{ChangeEvent, Lsn, TableSchema};

use crate::encode::{changelog_schema, encode};
use crate::error::LakeError;
use crate::storage::Storage;

/// A change's place in the source's history: commit order, then order within the transaction.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Position {
    pub commit_lsn: Lsn,
    pub lsn: Lsn,
}

impl Position {
    /// The position of a streamed change; `None` for a snapshot row (snapshot rows share one
    /// position, so they cannot be told apart by it: a snapshot that is read again is written
    /// again, which leaves the current state unchanged).
    pub fn of(event: &ChangeEvent) -> Option<Position> {
        (!event.position.snapshot.is_snapshot()).then_some(Position {
            commit_lsn: event.position.commit_lsn,
            lsn: event.position.lsn,
        })
    }
}

/// The directory of version `version` of the table named `base`.
pub fn directory(base: &str, version: u32) -> String {
    if version <= 1 {
        base.to_owned()
    } else {
        format!("{base}__v{version}")
    }
}

/// What the sink knows of one source table's Delta table.
pub struct LakeTable {
    /// `schema.table` of the source, and the base name of its directories.
    base: String,
    /// The current table version (1 before the first table exists).
    version: u32,
    /// `None` until the first rows create the table.
    table: Option<DeltaTable>,
    /// The Delta table's schema as Arrow.
    schema: Option<SchemaRef>,
    /// The last streamed change committed, over every version of the table.
    watermark: Option<Position>,
    /// The application ids of the position, per sink.
    app_ids: [String; 2],
}

impl LakeTable {
    /// Find the newest version of `base`'s table and the position its commits reached.
    pub async fn open(storage: &Storage, base: &str, sink: &str) -> Result<LakeTable, LakeError> {
        let app_ids = [
            format!("sluice.{sink}.commit_lsn"),
            format!("sluice.{sink}.lsn"),
        ];
        let mut found = LakeTable {
            base: base.to_owned(),
            version: 1,
            table: None,
            schema: None,
            watermark: None,
            app_ids,
        };
        let mut version = 1;
        loop {
            let name = directory(base, version);
            let url = storage.table_url(&name);
            let context = || format!("opening {name}");
            let mut table = storage
                .builder(&url)
                .and_then(|b| b.build())
                .map_err(LakeError::delta(context()))?;
            let exists = table
                .verify_deltatable_existence()
                .await
                .map_err(LakeError::delta(context()))?;
            if !exists {
                break;
            }
            table.load().await.map_err(LakeError::delta(context()))?;
            let position = found.read_position(&table).await?;
            found.watermark = found.watermark.max(position);
            found.schema = Some(arrow_schema(&table)?);
            found.table = Some(table);
            found.version = version;
            version += 1;
        }
        Ok(found)
    }

    /// Whether `event` is not yet in the table.
    pub fn is_new(&self, event: &ChangeEvent) -> bool {
        match (Position::of(event), self.watermark) {
            (Some(position), Some(watermark)) => position > watermark,
            _ => true,
        }
    }

    /// The current Delta table and its schema, once it exists.
    pub fn delta_mut(&mut self) -> Option<(&mut DeltaTable, SchemaRef)> {
        let schema = self.schema.clone()?;
        self.table.as_mut().map(|table| (table, schema))
    }

    /// The current table's directory name.
    pub fn directory(&self) -> String {
        directory(&self.base, self.version)
    }

    /// Append `events` (all of `shape`, none already in the table) in one commit; a new table
    /// version first when `shape` no longer fits the table.
    pub async fn append(
        &mut self,
        storage: &Storage,
        shape: &TableSchema,
        events: &[&ChangeEvent],
        target_file_bytes: u64,
    ) -> Result<(), LakeError> {
        let incoming = changelog_schema(shape)?;
        let fits = match &self.schema {
            Some(current) => fits(current, &incoming)?,
            None => false,
        };
        if !fits {
            if self.table.is_some() {
                self.version += 1;
                tracing::warn!(
                    table = %self.base, version = self.version,
                    "a column changed its type at the source: the changelog continues in a new \
                     table version"
                );
            }
            self.create(storage, &incoming).await?;
        }
        let rows = encode(shape, &incoming, events)?;
        let current = self.schema.clone().expect("created above");
        let rows = conform(rows, &current)?;
        let watermark = events.iter().filter_map(|e| Position::of(e)).max();
        let properties = self.commit_properties(events, watermark);
        let table = self.table.as_mut().expect("created above");
        let context = || format!("writing to {}", directory(&self.base, self.version));
        let mut writer = RecordBatchWriter::for_table(table)
            .map_err(LakeError::delta(context()))?
            .with_target_file_size(target_file_bytes)
            .with_commit_properties(properties);
        writer
            .write_with_mode(rows, WriteMode::MergeSchema)
            .await
            .map_err(LakeError::delta(context()))?;
        writer
            .flush_and_commit(table)
            .await
            .map_err(LakeError::delta(context()))?;
        self.schema = Some(arrow_schema(table)?);
        self.watermark = self.watermark.max(watermark);
        Ok(())
    }

    /// The table of the current version, created (if missing) with `schema`.
    async fn create(&mut self, storage: &Storage, schema: &SchemaRef) -> Result<(), LakeError> {
        let name = self.directory();
        let context = || format!("creating {name}");
        let url = storage.table_url(&name);
        let log_store = storage
            .builder(&url)
            .and_then(|b| b.build())
            .map_err(LakeError::delta(context()))?
            .log_store();
        let kernel: StructType = schema
            .as_ref()
            .try_into_kernel()
            .map_err(|e| LakeError::Arrow(format!("{name}: {e}")))?;
        let table = CreateBuilder::new()
            .with_log_store(log_store)
            .with_table_name(&self.base)
            .with_columns(kernel.fields().cloned())
            .with_save_mode(SaveMode::Ignore)
            .await
            .map_err(LakeError::delta(context()))?;
        self.schema = Some(arrow_schema(&table)?);
        self.table = Some(table);
        Ok(())
    }

    /// The position recorded by the table's commits.
    async fn read_position(&self, table: &DeltaTable) -> Result<Option<Position>, LakeError> {
        let context = || "reading the committed position".to_owned();
        let state = table.snapshot().map_err(LakeError::delta(context()))?;
        let log_store = table.log_store();
        let mut versions = [None, None];
        for (slot, app_id) in versions.iter_mut().zip(&self.app_ids) {
            *slot = state
                .transaction_version(log_store.as_ref(), app_id)
                .await
                .map_err(LakeError::delta(context()))?;
        }
        Ok(match versions {
            [Some(commit_lsn), Some(lsn)] => Some(Position {
                commit_lsn: Lsn(commit_lsn as u64),
                lsn: Lsn(lsn as u64),
            }),
            _ => None,
        })
    }

    /// The position (as application transactions) and the LSN range (as commit info) of a
    /// commit of `events`.
    fn commit_properties(
        &self,
        events: &[&ChangeEvent],
        watermark: Option<Position>,
    ) -> CommitProperties {
        let first = events.iter().map(|e| e.position.lsn.0).min().unwrap_or(0);
        let last = events.iter().map(|e| e.position.lsn.0).max().unwrap_or(0);
        let mut metadata = HashMap::from([
            ("sluice.first_lsn".to_owned(), json!(Lsn(first).to_string())),
            ("sluice.last_lsn".to_owned(), json!(Lsn(last).to_string())),
            ("sluice.rows".to_owned(), json!(events.len())),
        ]);
        let mut properties = CommitProperties::default();
        // Snapshot rows alone move no position: the previous one is kept.
        if let Some(position) = watermark.or(self.watermark) {
            metadata.insert(
                "sluice.commit_lsn".to_owned(),
                json!(position.commit_lsn.to_string()),
            );
            properties = properties
                .with_application_transaction(Transaction::new(
                    &self.app_ids[0],
                    position.commit_lsn.0 as i64,
                ))
                .with_application_transaction(Transaction::new(
                    &self.app_ids[1],
                    position.lsn.0 as i64,
                ));
        }
        properties.with_metadata(metadata)
    }
}

/// The table's schema as Arrow.
fn arrow_schema(table: &DeltaTable) -> Result<SchemaRef, LakeError> {
    let state = table
        .snapshot()
        .map_err(LakeError::delta("reading the table schema"))?;
    let schema: Schema = state
        .schema()
        .as_ref()
        .try_into_arrow()
        .map_err(|e| LakeError::Arrow(e.to_string()))?;
    Ok(Arc::new(schema))
}

/// Whether rows of `incoming` can go into a table of `current`: every column they share has
/// the same type (new columns widen the table).
fn fits(current: &Schema, incoming: &Schema) -> Result<bool, LakeError> {
    // Compare as Delta sees the types, so Arrow spellings of one Delta type agree.
    let kernel = |schema: &Schema| -> Result<StructType, LakeError> {
        schema
            .try_into_kernel()
            .map_err(|e| LakeError::Arrow(e.to_string()))
    };
    let (current, incoming) = (kernel(current)?, kernel(incoming)?);
    let fits = incoming.fields().all(|field| {
        current
            .field(field.name())
            .is_none_or(|known| known.data_type() == field.data_type())
    });
    Ok(fits)
}

/// `rows` with the table's column order and types: the table's columns first (null where the
/// rows lack one, e.g. a column dropped at the source, or a file written before a column was
/// added), then the rows' new columns.
pub fn conform(rows: RecordBatch, table: &Schema) -> Result<RecordBatch, LakeError> {
    let mut fields = Vec::new();
    let mut arrays: Vec<ArrayRef> = Vec::new();
    for field in table.fields() {
        match rows.schema().column_with_name(field.name()) {
            Some((index, found)) if found.data_type() == field.data_type() => {
                arrays.push(rows.column(index).clone())
            }
            // Another Arrow spelling of the same Delta type (a time zone name read back
            // from Parquet, for one).
            Some((index, _)) => arrays.push(
                cast(rows.column(index), field.data_type())
                    .map_err(|e| LakeError::Arrow(format!("column {}: {e}", field.name())))?,
            ),
            None => arrays.push(new_null_array(field.data_type(), rows.num_rows())),
        }
        fields.push(field.as_ref().clone());
    }
    for (index, field) in rows.schema().fields().iter().enumerate() {
        if table.field_with_name(field.name()).is_err() {
            fields.push(field.as_ref().clone());
            arrays.push(rows.column(index).clone());
        }
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays)
        .map_err(|e| LakeError::Arrow(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn later_table_versions_have_their_own_directories() {
        assert_eq!(directory("public.items", 1), "public.items");
        assert_eq!(directory("public.items", 3), "public.items__v3");
    }
}
