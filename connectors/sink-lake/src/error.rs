//! The lake sink's errors and their retry class: storage and commit trouble is transient (the
//! batch is written again, and rows already committed are skipped), data the table cannot take
//! is fatal.

use deltalake::DeltaTableError;
use sluice_api::{ErrorClass, SinkError};

#[derive(Debug, thiserror::Error)]
pub enum LakeError {
    #[error("column {column:?} of {table} is named like a changelog column; rename it")]
    ReservedColumn { table: String, column: String },
    #[error("column {column:?} of {table} holds {found}, which its type does not expect")]
    UnexpectedValue {
        table: String,
        column: String,
        found: &'static str,
    },
    #[error("building a record batch: {0}")]
    Arrow(String),
    #[error("{context}: {source}")]
    Delta {
        context: String,
        // Boxed: Delta's error is large, and this one travels in every `Result` of the sink.
        #[source]
        source: Box<DeltaTableError>,
    },
    #[error("storage: {0}")]
    Storage(String),
}

impl LakeError {
    /// A Delta error with what the sink was doing.
    pub fn delta(context: impl Into<String>) -> impl FnOnce(DeltaTableError) -> LakeError {
        let context = context.into();
        move |source| LakeError::Delta {
            context,
            source: Box::new(source),
        }
    }

    /// Whether writing the batch again can help.
    pub fn class(&self) -> ErrorClass {
        match self {
            LakeError::ReservedColumn { .. }
            | LakeError::UnexpectedValue { .. }
            | LakeError::Arrow(_) => ErrorClass::Fatal,
            LakeError::Storage(_) => ErrorClass::Fatal,
            LakeError::Delta { source, .. } => delta_class(source),
        }
    }

    pub fn into_sink_error(self) -> SinkError {
        let class = self.class();
        SinkError {
            class,
            message: format!("lake sink: {self}"),
            source: None,
        }
    }
}

/// Storage, I/O and commit races are worth a retry; data and schema problems are not.
fn delta_class(error: &DeltaTableError) -> ErrorClass {
    match error {
        DeltaTableError::Arrow { .. }
        | DeltaTableError::SchemaMismatch { .. }
        | DeltaTableError::InvalidData { .. }
        | DeltaTableError::MissingFeature { .. }
        | DeltaTableError::InvalidTableLocation(_)
        | DeltaTableError::UnsupportedColumnMapping { .. } => ErrorClass::Fatal,
        _ => ErrorClass::Transient,
    }
}
