//! The registry's errors and how each one appears on the wire: Confluent's HTTP status and
//! `{"error_code": N, "message": "..."}` body, so that clients written for Confluent's
//! registry recognise every failure (a serializer treats 40401/40403 as "not registered" and
//! 409 as "incompatible", for example).

use thiserror::Error;

/// Everything a registry request can fail with. Each variant maps to one Confluent error code
/// ([`RegistryError::error_code`]) and HTTP status ([`RegistryError::http_status`]).
#[derive(Debug, Error)]
pub enum RegistryError {
    /// No subject of that name (or every version of it is soft-deleted, where the request
    /// does not ask for deleted ones).
    #[error("Subject '{0}' not found.")]
    SubjectNotFound(String),
    /// The subject exists but has no such version.
    #[error("Version {0} not found.")]
    VersionNotFound(String),
    /// No schema with that id, or the schema is not registered under the subject.
    #[error("{0}")]
    SchemaNotFound(String),
    /// The subject is soft-deleted already; only a permanent delete can follow.
    #[error("Subject '{0}' was soft deleted. Set permanent=true to delete permanently")]
    SubjectSoftDeleted(String),
    /// A permanent delete was asked for a subject that was not soft-deleted first.
    #[error("Subject '{0}' was not deleted first before being permanently deleted")]
    SubjectNotSoftDeleted(String),
    /// The version is soft-deleted already; only a permanent delete can follow.
    #[error(
        "Subject '{0}' Version {1} was soft deleted. Set permanent=true to delete permanently"
    )]
    VersionSoftDeleted(String, u32),
    /// A permanent delete was asked for a version that was not soft-deleted first.
    #[error("Subject '{0}' Version {1} was not deleted first before being permanently deleted")]
    VersionNotSoftDeleted(String, u32),
    /// `GET`/`DELETE /config/{subject}` on a subject without its own compatibility level.
    #[error("Subject '{0}' does not have subject-level compatibility configured")]
    SubjectCompatibilityNotConfigured(String),
    /// `GET`/`DELETE /mode/{subject}` on a subject without its own mode.
    #[error("Subject '{0}' does not have subject-level mode configured")]
    SubjectModeNotConfigured(String),
    /// The schema is not compatible with the versions the compatibility level checks.
    #[error("Schema being registered is incompatible with an earlier schema for subject \"{subject}\", details: [{}]", .messages.join(", "))]
    IncompatibleSchema {
        /// The subject registered under.
        subject: String,
        /// One line per broken rule, naming the version it breaks against.
        messages: Vec<String>,
    },
    /// The schema text is not a valid Avro schema (or not a schema type this registry serves).
    #[error("Invalid schema: {0}")]
    InvalidSchema(String),
    /// A version that is neither a positive number nor `latest`.
    #[error("The specified version '{0}' is not a valid version id. Allowed values are between [1, 2^31-1] and the string \"latest\"")]
    InvalidVersion(String),
    /// A compatibility level outside NONE, BACKWARD, FORWARD, FULL and their transitive forms.
    #[error("Invalid compatibility level. Valid values are none, backward, forward, full, backward_transitive, forward_transitive, and full_transitive")]
    InvalidCompatibilityLevel,
    /// A mode other than READWRITE, READONLY or READONLY_OVERRIDE.
    #[error("Invalid mode '{0}'. Valid values are READWRITE, READONLY and READONLY_OVERRIDE")]
    InvalidMode(String),
    /// A write while the registry or the subject is read-only, or an operation this registry
    /// does not allow (such as choosing the id of a new schema).
    #[error("{0}")]
    OperationNotPermitted(String),
    /// The request body is not the JSON the endpoint expects.
    #[error("{0}")]
    BadRequest(String),
    /// The request body's content type is not one the registry accepts.
    #[error("unsupported content type '{0}': send application/vnd.schemaregistry.v1+json, application/vnd.schemaregistry+json or application/json")]
    UnsupportedMediaType(String),
    /// No route for this path and method.
    #[error("HTTP 404 Not Found")]
    NoSuchEndpoint,
    /// The storage backend failed; the change was not applied.
    #[error("Error in the backend data store: {0}")]
    Store(String),
}

impl RegistryError {
    /// Confluent's numeric error code for the `error_code` field of the body.
    pub fn error_code(&self) -> u32 {
        match self {
            RegistryError::SubjectNotFound(_) => 40401,
            RegistryError::VersionNotFound(_) => 40402,
            RegistryError::SchemaNotFound(_) => 40403,
            RegistryError::SubjectSoftDeleted(_) => 40404,
            RegistryError::SubjectNotSoftDeleted(_) => 40405,
            RegistryError::VersionSoftDeleted(..) => 40406,
            RegistryError::VersionNotSoftDeleted(..) => 40407,
            RegistryError::SubjectCompatibilityNotConfigured(_) => 40408,
            RegistryError::SubjectModeNotConfigured(_) => 40409,
            RegistryError::IncompatibleSchema { .. } => 409,
            RegistryError::InvalidSchema(_) => 42201,
            RegistryError::InvalidVersion(_) => 42202,
            RegistryError::InvalidCompatibilityLevel => 42203,
            RegistryError::InvalidMode(_) => 42204,
            RegistryError::OperationNotPermitted(_) => 42205,
            RegistryError::BadRequest(_) => 400,
            RegistryError::UnsupportedMediaType(_) => 415,
            RegistryError::NoSuchEndpoint => 404,
            RegistryError::Store(_) => 50001,
        }
    }

    /// The HTTP status the error is sent with (the first three digits of the error code, as
    /// Confluent's registry does).
    pub fn http_status(&self) -> u16 {
        match self.error_code() {
            code if code >= 10_000 => u16::try_from(code / 100).unwrap_or(500),
            code => u16::try_from(code).unwrap_or(500),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_found_errors_are_sent_as_http_404_with_five_digit_codes() {
        let error = RegistryError::SubjectNotFound("orders-value".into());
        assert_eq!(error.error_code(), 40401);
        assert_eq!(error.http_status(), 404);
        assert_eq!(error.to_string(), "Subject 'orders-value' not found.");
    }

    #[test]
    fn an_incompatible_schema_is_http_409_with_error_code_409() {
        let error = RegistryError::IncompatibleSchema {
            subject: "s".into(),
            messages: vec!["one".into(), "two".into()],
        };
        assert_eq!((error.error_code(), error.http_status()), (409, 409));
        assert!(error.to_string().ends_with("details: [one, two]"));
    }

    #[test]
    fn invalid_input_is_http_422_and_store_failures_http_500() {
        assert_eq!(RegistryError::InvalidSchema("x".into()).http_status(), 422);
        assert_eq!(RegistryError::InvalidCompatibilityLevel.http_status(), 422);
        assert_eq!(RegistryError::Store("disk full".into()).http_status(), 500);
    }
}
