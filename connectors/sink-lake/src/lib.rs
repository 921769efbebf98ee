//! Delta Lake sink: a changelog table per source table on a local directory or S3, every change
//! a row with the table's columns and `_op`, `_lsn`, `_commit_lsn`, `_commit_ts`, `_txid`,
//! `_snapshot`; Parquet files committed to the Delta log, one commit per table per batch, each
//! recording the position it reaches so that redelivered changes are skipped. The current state
//! of a table is a query over its changelog (see the README).

mod compact;
mod config;
mod encode;
mod error;
mod sink;
mod storage;
mod table;
mod types;

pub use config::{LakeSinkConfig, Location, RawLakeSinkConfig, RawS3Config, S3Config};
pub use encode::CHANGELOG_COLUMNS;
pub use sink::LakeSink;
pub use table::directory;
