//! Compaction of small data files: once a table gathered `compact_min_files` files smaller than
//! half the target size (small batches each leave one), they are read back and rewritten as
//! target-sized files in one commit that removes them, marked as changing no data (Delta's
//! OPTIMIZE). Readers see the same rows before and after; the commit moves no position.

use deltalake::kernel::transaction::{CommitBuilder, CommitProperties};
use deltalake::kernel::Action;
use deltalake::logstore::object_store::path::Path;
use deltalake::logstore::parquet_reader::ParquetObjectReader;
use deltalake::parquet::arrow::async_reader::ParquetRecordBatchStreamBuilder;
use deltalake::protocol::DeltaOperation;
use deltalake::writer::{DeltaWriter, RecordBatchWriter, WriteMode};
use futures::TryStreamExt;

use crate::config::LakeSinkConfig;
use crate::error::LakeError;
use crate::table::{conform, LakeTable};

/// Rewrite the table's small files into target-sized ones when enough of them gathered.
/// Returns how many files were merged (0 when nothing was done).
pub async fn compact(table: &mut LakeTable, config: &LakeSinkConfig) -> Result<usize, LakeError> {
    let name = table.directory();
    let Some((delta, schema)) = table.delta_mut() else {
        return Ok(0);
    };
    let context = || format!("compacting {name}");
    let small_below = (config.target_file_bytes / 2) as i64;
    let small: Vec<_> = delta
        .snapshot()
        .map_err(LakeError::delta(context()))?
        .log_data()
        .iter()
        .filter(|file| file.size() < small_below)
        .collect();
    if small.len() < config.compact_min_files {
        return Ok(0);
    }
    let store = delta.object_store();
    let mut writer = RecordBatchWriter::for_table(delta)
        .map_err(LakeError::delta(context()))?
        .with_target_file_size(config.target_file_bytes);
    for file in &small {
        let path = Path::from_url_path(file.path().as_ref())
            .map_err(|e| LakeError::Storage(format!("{name}: data file path: {e}")))?;
        let reader =
            ParquetObjectReader::new(store.clone(), path).with_file_size(file.size() as u64);
        let mut batches = ParquetRecordBatchStreamBuilder::new(reader)
            .await
            .and_then(|b| b.build())
            .map_err(|e| LakeError::Storage(format!("{name}: reading {}: {e}", file.path())))?;
        while let Some(batch) = batches
            .try_next()
            .await
            .map_err(|e| LakeError::Storage(format!("{name}: reading {}: {e}", file.path())))?
        {
            writer
                .write_with_mode(conform(batch, &schema)?, WriteMode::Default)
                .await
                .map_err(LakeError::delta(context()))?;
        }
    }
    let mut actions: Vec<Action> = small
        .iter()
        .map(|file| Action::Remove(file.remove_action(false)))
        .collect();
    for mut add in writer.flush().await.map_err(LakeError::delta(context()))? {
        add.data_change = false;
        actions.push(Action::Add(add));
    }
    let operation = DeltaOperation::Optimize {
        predicate: None,
        target_size: config.target_file_bytes as i64,
    };
    let snapshot = delta.snapshot().map_err(LakeError::delta(context()))?;
    CommitBuilder::from(CommitProperties::default())
        .with_actions(actions)
        .build(Some(snapshot), delta.log_store(), operation)
        .await
        .map_err(LakeError::delta(context()))?;
    delta
        .update_state()
        .await
        .map_err(LakeError::delta(context()))?;
    tracing::debug!(table = %name, files = small.len(), "compacted small data files");
    Ok(small.len())
}
