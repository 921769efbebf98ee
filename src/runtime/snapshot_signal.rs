//! Requesting an incremental snapshot of a table from outside the pipeline: Debezium's
//! `execute-snapshot` signal written into `source.signal_table`, which the running pipeline
//! reads from its stream and answers by reading the table in chunks beside streaming. Shared by
//! `sluice snapshot` and `POST /admin/snapshot`.

use sluice_source_postgres::snapshot::incremental::signal_insert;
use sluice_source_postgres::{PostgresSourceConfig, SourceError};

/// Why a snapshot request was not written.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotRequestError {
    /// `source.signal_table` is not configured: the pipeline would not see the signal.
    #[error("source.signal_table must be set to signal snapshots")]
    NoSignalTable,
    /// The table is not `schema.table`.
    #[error("table {0:?}: expected schema.table")]
    BadTable(String),
    /// Writing the signal failed.
    #[error("writing the snapshot signal: {0}")]
    Database(#[from] SourceError),
}

impl SnapshotRequestError {
    /// True when the request itself is wrong (not the database).
    pub fn is_invalid_request(&self) -> bool {
        !matches!(self, SnapshotRequestError::Database(_))
    }
}

/// Check `table` and the configuration before any I/O.
pub fn check_request(
    source: &PostgresSourceConfig,
    table: &str,
) -> Result<(String, String), SnapshotRequestError> {
    let signal_table = source
        .signal_table
        .clone()
        .ok_or(SnapshotRequestError::NoSignalTable)?;
    if table
        .split_once('.')
        .is_none_or(|(s, t)| s.is_empty() || t.is_empty())
    {
        return Err(SnapshotRequestError::BadTable(table.to_owned()));
    }
    Ok(signal_table)
}

/// Write the signal asking for an incremental snapshot of `table` (`schema.table`), limited to
/// rows matching the SQL condition `filter` when given.
pub async fn request_snapshot(
    source: &PostgresSourceConfig,
    table: &str,
    filter: Option<&str>,
) -> Result<(), SnapshotRequestError> {
    let signal_table = check_request(source, table)?;
    let sql = signal_insert(&signal_table, table, filter);
    let client = source.connection.connect_sql().await?;
    client
        .batch_execute(&sql)
        .await
        .map_err(SourceError::from)?;
    Ok(())
}
