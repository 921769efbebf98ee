//! How the postgres sink classifies what the target says: an outage is transient (the core
//! retries the batch with backoff, and the source waits), a row the target refuses is rejected
//! (dead-lettered, or fatal without a dead-letter file), anything else is fatal.

use sluice_api::SinkError;

/// What a failed statement means for the batch.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Failure {
    /// The target is unreachable, shutting down, overloaded or in a transient conflict.
    Transient,
    /// The target refused the data (SQLSTATE classes 22 data exception, 23 integrity
    /// constraint violation): some row of the statement will never be accepted.
    Rejected,
    /// Setup or permission problems (undefined table, privileges, authentication, syntax).
    Fatal,
}

/// The class of a tokio-postgres error; an error without SQLSTATE is a lost connection.
pub fn failure(error: &tokio_postgres::Error) -> Failure {
    let Some(code) = error.code() else {
        return Failure::Transient;
    };
    let code = code.code();
    let class = &code[..2.min(code.len())];
    match class {
        "08" | "53" | "57" | "58" | "40" => Failure::Transient,
        "55" if code == "55P03" || code == "55006" => Failure::Transient,
        "22" | "23" => Failure::Rejected,
        _ => Failure::Fatal,
    }
}

/// The target's words for an error: SQLSTATE, message and detail (never connection settings).
pub fn describe(error: &tokio_postgres::Error) -> String {
    match error.as_db_error() {
        Some(db) => match db.detail() {
            Some(detail) => format!("{} {}: {}", db.code().code(), db.message(), detail),
            None => format!("{} {}", db.code().code(), db.message()),
        },
        None => error.to_string(),
    }
}

/// A failed statement as the sink's error, doing `action`.
pub fn sink_error(action: &str, error: &tokio_postgres::Error) -> SinkError {
    let message = format!("postgres sink: {action}: {}", describe(error));
    match failure(error) {
        Failure::Transient => SinkError::transient(message),
        Failure::Rejected | Failure::Fatal => SinkError::fatal(message),
    }
}
