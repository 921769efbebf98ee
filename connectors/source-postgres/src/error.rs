//! The source's errors, each with the class that decides whether the source reconnects.

use std::path::PathBuf;

use sluice_api::{ErrorClass, Lsn};

/// Everything that can go wrong reading changes from PostgreSQL.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The connection failed or was lost: reconnect with backoff.
    #[error("connection to postgres failed: {0}")]
    Io(#[from] std::io::Error),
    /// The server reported an error (SQLSTATE and message).
    #[error("postgres error {code}: {message}")]
    Server { code: String, message: String },
    #[error("authentication failed: {0}")]
    Auth(String),
    #[error("tls: {0}")]
    Tls(String),
    /// The server sent something the client does not understand.
    #[error("replication protocol: {0}")]
    Protocol(String),
    /// A pgoutput message could not be decoded.
    #[error("pgoutput decoding at {lsn}: {message}")]
    Decode { lsn: Lsn, message: String },
    /// Buffering a streamed transaction on disk failed.
    #[error("spilling a streamed transaction: {0}")]
    Spill(String),
    /// The spill directory has no space (or quota) left. Transient: nothing past the
    /// transaction is confirmed, so after a backoff the server streams it again, and it goes
    /// through once space is freed.
    #[error(
        "the spill directory {} is full ({reason}): free space there or point [source] spill_dir \
         at a directory with more room; the transaction is streamed again after a backoff",
        dir.display()
    )]
    SpillFull { dir: PathBuf, reason: String },
    /// An ordinary (non-replication) query failed.
    #[error("postgres query failed: {0}")]
    Sql(tokio_postgres::Error),
    /// The database is not set up the way capture needs (wal_level, privileges, slot).
    #[error("{0}")]
    Setup(String),
}

/// A refusal by the server keeps its SQLSTATE and message, which tokio-postgres's own error
/// text ("db error") leaves out; everything else keeps tokio-postgres's text and cause.
impl From<tokio_postgres::Error> for SourceError {
    fn from(error: tokio_postgres::Error) -> Self {
        match error.as_db_error() {
            Some(db) => SourceError::Server {
                code: db.code().code().to_owned(),
                message: db.message().to_owned(),
            },
            None => SourceError::Sql(error),
        }
    }
}

impl SourceError {
    /// Connection problems, server shutdowns and a full spill directory are transient; the
    /// rest needs a person.
    pub fn class(&self) -> ErrorClass {
        match self {
            SourceError::Io(_) | SourceError::SpillFull { .. } => ErrorClass::Transient,
            SourceError::Server { code, .. } => server_error_class(code),
            SourceError::Sql(e) => match e.code() {
                Some(code) => server_error_class(code.code()),
                None => ErrorClass::Transient,
            },
            SourceError::Auth(_)
            | SourceError::Tls(_)
            | SourceError::Protocol(_)
            | SourceError::Decode { .. }
            | SourceError::Spill(_)
            | SourceError::Setup(_) => ErrorClass::Fatal,
        }
    }
}

/// SQLSTATE classes 08 (connection), 53 (resources), 57 (operator intervention: shutdown,
/// admin termination) and 55006 (slot in use by another process, released on its exit) are
/// worth retrying; everything else is a fault in setup or data.
fn server_error_class(code: &str) -> ErrorClass {
    if code.starts_with("08") || code.starts_with("53") || code.starts_with("57") || code == "55006"
    {
        ErrorClass::Transient
    } else {
        ErrorClass::Fatal
    }
}
