//! The search sink's errors, each with the class that decides the delivery layer's policy.

use sluice_api::{ErrorClass, SinkError};

/// Why a request to the search cluster failed.
#[derive(Debug, thiserror::Error)]
pub enum SearchSinkError {
    /// The client could not be built (TLS material, settings).
    #[error("cannot set up the search client: {0}")]
    Setup(String),
    /// No answer: connection refused or reset, timeout, TLS failure.
    #[error("{what}: {message}")]
    Transport { what: String, message: String },
    /// The server answered with an error status.
    #[error("{what}: status {status}: {reason}")]
    Status {
        what: String,
        status: u16,
        reason: String,
    },
    /// The server answered something that is not the documented response.
    #[error("{what}: unexpected response: {message}")]
    Malformed { what: String, message: String },
    /// Items were rejected for good and no dead-letter destination is configured.
    #[error(
        "{count} document(s) rejected, first: {first}; configure dead_letter to set rejected \
         documents aside"
    )]
    Rejected { count: usize, first: String },
    /// Items the server kept refusing for now (429, 5xx) after every re-send.
    #[error("{count} document(s) still refused after {attempts} attempts, last: {last}")]
    StillRefused {
        count: usize,
        attempts: u32,
        last: String,
    },
}

impl SearchSinkError {
    /// Retry or stop: the one place this sink's errors map to a policy.
    pub fn class(&self) -> ErrorClass {
        match self {
            SearchSinkError::Transport { .. } | SearchSinkError::StillRefused { .. } => {
                ErrorClass::Transient
            }
            SearchSinkError::Status { status, .. } => status_class(*status),
            SearchSinkError::Setup(_)
            | SearchSinkError::Malformed { .. }
            | SearchSinkError::Rejected { .. } => ErrorClass::Fatal,
        }
    }
}

/// The class of a failed request's HTTP status: overload, timeouts and server errors may pass;
/// bad credentials, missing privileges and malformed requests will not.
pub fn status_class(status: u16) -> ErrorClass {
    match status {
        408 | 429 | 500..=599 => ErrorClass::Transient,
        _ => ErrorClass::Fatal,
    }
}

impl From<SearchSinkError> for SinkError {
    fn from(error: SearchSinkError) -> Self {
        let class = error.class();
        SinkError {
            class,
            message: error.to_string(),
            source: Some(Box::new(error)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overload_and_outages_are_transient_and_refusals_fatal() {
        let status = |status| SearchSinkError::Status {
            what: "bulk".into(),
            status,
            reason: String::new(),
        };
        for s in [429, 500, 502, 503, 408] {
            assert_eq!(status(s).class(), ErrorClass::Transient, "{s}");
        }
        for s in [400, 401, 403, 404, 413] {
            assert_eq!(status(s).class(), ErrorClass::Fatal, "{s}");
        }
        let lost = SearchSinkError::Transport {
            what: "bulk".into(),
            message: "connection refused".into(),
        };
        assert_eq!(SinkError::from(lost).class, ErrorClass::Transient);
    }
}
