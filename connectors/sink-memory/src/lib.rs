//! In-memory sink: keeps (or only counts) what it is given. Serves the integration tests, which
//! read events back through a [`MemorySinkHandle`], and the null-sink benchmark (`retain = false`),
//! which measures the pipeline alone.
//!
//! It also carries a **fault injector** for tests: [`MemorySinkHandle::fail_writes`] makes the
//! next writes fail, because no real destination can be told to fail one batch on cue.

mod config;
mod sink;

pub use config::{MemorySinkConfig, RawMemorySinkConfig};
pub use sink::{MemorySink, MemorySinkHandle};
