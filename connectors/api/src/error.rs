//! Errors a sink reports, each with the class that decides the retry policy.

/// How the delivery layer treats an error: retry with backoff, or stop the pipeline.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum ErrorClass {
    /// The destination may accept the same batch later (network loss, overload, outage).
    Transient,
    /// Retrying cannot help (rejected data, bad credentials, missing target).
    Fatal,
}

impl ErrorClass {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorClass::Transient => "transient",
            ErrorClass::Fatal => "fatal",
        }
    }
}

/// A sink's failure to make a batch durable. Nothing in the batch counts as delivered.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct SinkError {
    pub class: ErrorClass,
    pub message: String,
    #[source]
    pub source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl SinkError {
    pub fn transient(message: impl Into<String>) -> Self {
        SinkError {
            class: ErrorClass::Transient,
            message: message.into(),
            source: None,
        }
    }

    pub fn fatal(message: impl Into<String>) -> Self {
        SinkError {
            class: ErrorClass::Fatal,
            message: message.into(),
            source: None,
        }
    }

    pub fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.source = Some(Box::new(source));
        self
    }
}
