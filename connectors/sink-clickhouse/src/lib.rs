//! ClickHouse sink over HTTP: one `ReplacingMergeTree(_version)` table per source table,
//! created from the source's shape and given the columns the source adds; rows versioned by
//! the change's LSN with a `_deleted` flag (read with `FINAL` and `WHERE _deleted = 0`),
//! inserted as `JSONEachRow` in batches bounded by rows and bytes; rows the server refuses go
//! to a dead-letter file. Works with servers as old as 18.16.

mod client;
mod config;
mod encode;
mod error;
mod sink;
mod types;

pub use config::{ClickHouseSinkConfig, RawClickHouseSinkConfig};
pub use encode::{DELETED_COLUMN, VERSION_COLUMN};
pub use sink::ClickHouseSink;
pub use types::{mapping, Mapping};
