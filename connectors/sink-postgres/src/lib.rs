//! PostgreSQL sink: one target table per source table, kept equal to it. Tables are created
//! and evolved (ADD COLUMN) from the source's shape; each batch is one target transaction of
//! multi-row upserts and deletes guarded by the change's LSN (`_lsn`), acknowledged only after
//! a durable COMMIT (`synchronous_commit = local` for the sink's own transactions on a target
//! set to `off`); deletes are hard (with tombstones) or soft (`_deleted`); rows the target
//! refuses go to a dead-letter file.

mod client;
mod config;
mod encode;
mod error;
mod plan;
mod sink;
mod sql;

pub use config::{DeleteMode, PostgresSinkConfig, RawPostgresSinkConfig};
pub use encode::target_type;
pub use sink::PostgresSink;
pub use sql::{DELETED_COLUMN, LSN_COLUMN, TOMBSTONE_SUFFIX};
