//! JSON-lines sink: one Debezium-shaped change event per line, appended to a file (fsync'd
//! before a batch counts as delivered) or written to stdout. Makes the daemon useful, and
//! inspectable, without any other infrastructure.

mod config;
mod encode;
mod sink;

pub use config::{FileSinkConfig, FileTarget, RawFileSinkConfig};
pub use encode::{encode_event, value_json, EventContext};
pub use sink::FileSink;
