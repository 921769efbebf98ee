//! Contracts between the stages of a sluice pipeline, with no I/O: WAL positions ([`Lsn`]),
//! typed column values ([`Value`]), change events and the batches that carry them with their
//! position, and the [`Sink`] trait every destination implements.

mod backoff;
pub mod calendar;
mod config;
mod dead_letter;
mod error;
mod event;
mod lsn;
pub mod pg_text;
mod secret;
mod sink;
mod value;

pub use backoff::Backoff;
pub use calendar::civil_from_days;
pub use config::{from_toml, from_toml_partial, join_key, ConfigProblem, ConfigProblems};
pub use dead_letter::{
    DeadLetter, DeadLetterConfig, DeadLetterQueue, FileDeadLetters, LazyDeadLetters,
    RawDeadLetterConfig,
};
pub use error::{ErrorClass, SinkError};
pub use event::{
    Batch, ChangeEvent, Column, EncodedRecord, LogicalMessage, Op, RecordOrigin, ReplicaIdentity,
    Row, SnapshotFlag, SourcePosition, TableSchema,
};
pub use lsn::{Lsn, LsnParseError};
pub use pg_text::pg_text;
pub use secret::Secret;
pub use sink::{PendingWrite, Sink};
pub use value::{
    Decimal, Geometry, Infinite, Numeric, PgDate, PgInterval, PgTimestamp, RangeValue, Value,
};
