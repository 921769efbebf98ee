//! The `[[sink]]` table of type `postgres`: raw TOML keys, their validation (every problem with
//! its key, no I/O), and the validated settings.

use serde::Deserialize;
use sluice_api::{ConfigProblem, DeadLetterConfig, RawDeadLetterConfig};
use sluice_source_postgres::ConnectionConfig;

/// Rows per `INSERT` statement unless configured: large enough to amortise a round trip, small
/// enough to stay far below PostgreSQL's 65535 bind parameters for tables of up to 60 columns.
pub const DEFAULT_ROWS_PER_STATEMENT: usize = 1000;
/// PostgreSQL's limit on bind parameters in one statement.
const MAX_PARAMETERS: usize = 65_535;

/// What a source delete does to the target row.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeleteMode {
    /// The row is deleted; its key and LSN are kept in a tombstone table
    /// (`<table>__sluice_tombstones`) so a redelivered older change cannot bring it back.
    #[default]
    Hard,
    /// The row stays, with `_deleted = true` and the delete's LSN.
    Soft,
}

impl DeleteMode {
    pub fn as_str(self) -> &'static str {
        match self {
            DeleteMode::Hard => "hard",
            DeleteMode::Soft => "soft",
        }
    }
}

/// Raw keys of a postgres sink, as written in TOML.
#[derive(Debug, Default, Deserialize)]
pub struct RawPostgresSinkConfig {
    /// Target database URL, `postgres://user[:password]@host[:port]/db?sslmode=...`
    /// (sslmode disable, prefer, require or verify-full; sslrootcert). Required.
    pub connection: Option<String>,
    /// Schema of the target tables (default: the source table's schema). Created if missing.
    pub schema: Option<String>,
    /// `hard` (default) or `soft`.
    pub delete_mode: Option<DeleteMode>,
    /// Rows per INSERT statement (default 1000).
    pub rows_per_statement: Option<u64>,
    /// Where rows the target rejects for good go (constraint violation, value out of range):
    /// `{ type = "file", path = "..." }`. Without it such a row stops the pipeline with a
    /// fatal error naming it.
    pub dead_letter: Option<RawDeadLetterConfig>,
}

/// A validated postgres sink.
#[derive(Clone, Debug)]
pub struct PostgresSinkConfig {
    pub connection: ConnectionConfig,
    pub schema: Option<String>,
    pub delete_mode: DeleteMode,
    pub rows_per_statement: usize,
    pub dead_letter: Option<DeadLetterConfig>,
}

impl RawPostgresSinkConfig {
    /// Validate, naming every problem with its key under `prefix`.
    pub fn validate(self, prefix: &str) -> Result<PostgresSinkConfig, Vec<ConfigProblem>> {
        let key = |k: &str| sluice_api::join_key(prefix, k);
        let mut problems = Vec::new();
        let connection = match self.connection.as_deref() {
            None => {
                problems.push(ConfigProblem::missing(
                    key("connection"),
                    "the target database URL, postgres://user@host:port/db",
                ));
                None
            }
            Some(url) => match ConnectionConfig::parse(url) {
                Ok(c) => Some(c),
                Err(message) => {
                    problems.push(ConfigProblem::new(key("connection"), message));
                    None
                }
            },
        };
        if let Some(schema) = &self.schema {
            if schema.is_empty() {
                problems.push(ConfigProblem::new(key("schema"), "must not be empty"));
            }
        }
        let rows_per_statement = self
            .rows_per_statement
            .map_or(DEFAULT_ROWS_PER_STATEMENT, |n| n as usize);
        if rows_per_statement == 0 || rows_per_statement > MAX_PARAMETERS {
            problems.push(ConfigProblem::new(
                key("rows_per_statement"),
                format!("must be between 1 and {MAX_PARAMETERS}"),
            ));
        }
        let dead_letter = RawDeadLetterConfig::validate_optional(
            self.dead_letter,
            &key("dead_letter"),
            &mut problems,
        );
        match connection {
            Some(connection) if problems.is_empty() => Ok(PostgresSinkConfig {
                connection,
                schema: self.schema,
                delete_mode: self.delete_mode.unwrap_or_default(),
                rows_per_statement,
                dead_letter,
            }),
            _ => Err(problems),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(text: &str) -> RawPostgresSinkConfig {
        sluice_api::from_toml(toml::Value::Table(toml::from_str(text).unwrap()), "sink[0]").unwrap()
    }

    #[test]
    fn defaults_are_hard_deletes_and_a_thousand_rows_per_statement() {
        let cfg = raw("connection = 'postgres://u:pw@127.0.0.1:5433/wh?sslmode=require'")
            .validate("sink[0]")
            .unwrap();
        assert_eq!(cfg.delete_mode, DeleteMode::Hard);
        assert_eq!(cfg.rows_per_statement, DEFAULT_ROWS_PER_STATEMENT);
        assert_eq!(cfg.connection.port, 5433);
        assert!(
            !format!("{cfg:?}").contains("pw"),
            "the password is a secret"
        );
    }

    #[test]
    fn every_problem_is_reported_with_its_key() {
        let problems = raw("schema = ''\nrows_per_statement = 0\ndead_letter = { type = 'file' }")
            .validate("sink[0]")
            .unwrap_err();
        let keys: Vec<&str> = problems.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "sink[0].connection",
                "sink[0].schema",
                "sink[0].rows_per_statement",
                "sink[0].dead_letter.path"
            ]
        );
    }

    #[test]
    fn a_bad_url_is_reported_without_its_password() {
        let problems = raw("connection = 'mysql://u:hunter2@h/db'")
            .validate("sink[0]")
            .unwrap_err();
        assert_eq!(problems[0].key, "sink[0].connection");
        assert!(!problems[0].message.contains("hunter2"));
    }
}
