//! How the clickhouse sink classifies what the server says: an outage, overload or timeout is
//! transient (the core retries the batch with backoff, and the source waits), data the server
//! refuses to parse or store is rejected (dead-lettered row by row), and setup problems
//! (credentials, access, unknown objects, syntax) are fatal.

use sluice_api::SinkError;

/// What a failed request means for the batch.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Failure {
    Transient,
    /// The server refused the data of an insert.
    Rejected,
    Fatal,
}

/// A failed request.
#[derive(Debug, thiserror::Error)]
pub enum ClickHouseError {
    /// No answer: connection refused or lost, timeout.
    #[error("clickhouse unreachable: {0}")]
    Network(String),
    /// The server answered with an error: HTTP status, ClickHouse's exception code when it
    /// sent one, and its message.
    #[error("clickhouse error{} (http {status}): {message}", code.map(|c| format!(" {c}")).unwrap_or_default())]
    Server {
        status: u16,
        code: Option<u32>,
        message: String,
    },
}

/// Exception codes worth retrying: timeouts, overload, network and system errors, read-only
/// replicas and too many parts (the server catches up by merging).
const TRANSIENT_CODES: &[u32] = &[
    3,   // UNEXPECTED_END_OF_FILE (a cut request)
    159, // TIMEOUT_EXCEEDED
    202, // TOO_MANY_SIMULTANEOUS_QUERIES
    209, // SOCKET_TIMEOUT
    210, // NETWORK_ERROR
    236, // ABORTED
    241, // MEMORY_LIMIT_EXCEEDED
    242, // TABLE_IS_READ_ONLY
    252, // TOO_MANY_PARTS
    319, // UNKNOWN_STATUS_OF_INSERT
    394, // QUERY_WAS_CANCELLED
    425, // SYSTEM_ERROR
    999, // KEEPER_EXCEPTION
];

/// Exception codes of setup problems no retry or row split can fix.
const FATAL_CODES: &[u32] = &[
    16,  // NO_SUCH_COLUMN_IN_TABLE
    44,  // ILLEGAL_COLUMN
    47,  // UNKNOWN_IDENTIFIER
    60,  // UNKNOWN_TABLE
    62,  // SYNTAX_ERROR
    81,  // UNKNOWN_DATABASE
    164, // READONLY (the user may not write)
    192, // UNKNOWN_USER
    193, // WRONG_PASSWORD
    194, // REQUIRED_PASSWORD
    195, // IP_ADDRESS_NOT_ALLOWED
    196, // UNKNOWN_ADDRESS_PATTERN_TYPE
    197, // SERVER_REVISION_IS_TOO_OLD
    497, // ACCESS_DENIED
    516, // AUTHENTICATION_FAILED
];

impl ClickHouseError {
    /// An HTTP error answer: the code is parsed from ClickHouse's `Code: N, ...` text.
    pub fn server(status: u16, body: &str) -> Self {
        let code = body
            .trim_start()
            .strip_prefix("Code: ")
            .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
            .and_then(|digits| digits.parse().ok());
        let message: String = body.trim().chars().take(1000).collect();
        ClickHouseError::Server {
            status,
            code,
            message,
        }
    }

    pub fn failure(&self) -> Failure {
        match self {
            ClickHouseError::Network(_) => Failure::Transient,
            ClickHouseError::Server { status, code, .. } => match code {
                Some(code) if TRANSIENT_CODES.contains(code) => Failure::Transient,
                Some(code) if FATAL_CODES.contains(code) => Failure::Fatal,
                Some(_) => Failure::Rejected,
                None if matches!(status, 401 | 403 | 404) => Failure::Fatal,
                None if *status == 400 => Failure::Rejected,
                None => Failure::Transient,
            },
        }
    }

    /// The sink's error while doing `action`; a rejection outside an insert is fatal.
    pub fn into_sink_error(self, action: &str) -> SinkError {
        let message = format!("clickhouse sink: {action}: {self}");
        match self.failure() {
            Failure::Transient => SinkError::transient(message),
            Failure::Rejected | Failure::Fatal => SinkError::fatal(message),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_errors_are_classified_by_their_exception_code() {
        let parse = ClickHouseError::server(
            500,
            "Code: 27, e.displayText() = DB::Exception: Cannot parse input",
        );
        assert_eq!(parse.failure(), Failure::Rejected);
        let auth = ClickHouseError::server(401, "Code: 193, e.displayText() = Wrong password");
        assert_eq!(auth.failure(), Failure::Fatal);
        let parts = ClickHouseError::server(500, "Code: 252, Too many parts");
        assert_eq!(parts.failure(), Failure::Transient);
        assert_eq!(
            ClickHouseError::server(503, "Service Unavailable").failure(),
            Failure::Transient
        );
        assert_eq!(
            ClickHouseError::Network("refused".into()).failure(),
            Failure::Transient
        );
    }
}
