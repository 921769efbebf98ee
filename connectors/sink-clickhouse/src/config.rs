//! The `[[sink]]` table of type `clickhouse`: raw TOML keys, their validation (every problem
//! with its key, no I/O), and the validated settings.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use sluice_api::{ConfigProblem, DeadLetterConfig, RawDeadLetterConfig, Secret};

/// The database of target tables unless configured: ClickHouse's own default.
pub const DEFAULT_DATABASE: &str = "default";
/// The user unless configured: ClickHouse's own default.
pub const DEFAULT_USER: &str = "default";
/// Rows per `INSERT` unless configured: large inserts are what MergeTree wants (each insert
/// makes a part), and far below `max_insert_block_size` (1,048,576), so the server parses an
/// insert as one block and a refused row fails the whole insert rather than half of it.
pub const DEFAULT_MAX_ROWS_PER_INSERT: usize = 100_000;
/// Body bytes per `INSERT` unless configured: bounds the sink's memory per table.
pub const DEFAULT_MAX_BYTES_PER_INSERT: usize = 16 * 1024 * 1024;
/// How long one HTTP request may take unless configured.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// The ceiling that keeps an insert in one block (see [`DEFAULT_MAX_ROWS_PER_INSERT`]).
const MAX_ROWS_PER_INSERT: u64 = 1_000_000;

/// Raw keys of a clickhouse sink, as written in TOML.
#[derive(Debug, Default, Deserialize)]
pub struct RawClickHouseSinkConfig {
    /// HTTP(S) endpoint, `http://host:8123` or `https://host:8443`. Required.
    pub url: Option<String>,
    /// Database of the target tables (default `default`); created if missing.
    pub database: Option<String>,
    /// User (default `default`), sent with HTTP basic authentication.
    pub user: Option<String>,
    /// Password of `user` (default none).
    pub password: Option<String>,
    /// PEM file of extra trusted roots for `https` (the public web roots are always trusted).
    pub ca_file: Option<String>,
    /// Rows per INSERT (default 100000, at most 1000000).
    pub max_rows_per_insert: Option<u64>,
    /// Body bytes per INSERT (default 16 MiB).
    pub max_bytes_per_insert: Option<u64>,
    /// Limit of one HTTP request in milliseconds (default 60000).
    pub request_timeout_ms: Option<u64>,
    /// Where rows the server refuses for good go (a value it cannot parse or that does not
    /// fit): `{ type = "file", path = "..." }`. Without it such a row stops the pipeline with a
    /// fatal error naming it.
    pub dead_letter: Option<RawDeadLetterConfig>,
}

/// A validated clickhouse sink.
#[derive(Clone, Debug)]
pub struct ClickHouseSinkConfig {
    /// The endpoint without a trailing `/`.
    pub url: String,
    pub database: String,
    pub user: String,
    pub password: Option<Secret>,
    pub ca_file: Option<PathBuf>,
    pub max_rows_per_insert: usize,
    pub max_bytes_per_insert: usize,
    pub request_timeout: Duration,
    pub dead_letter: Option<DeadLetterConfig>,
}

impl RawClickHouseSinkConfig {
    /// Validate, naming every problem with its key under `prefix`.
    pub fn validate(self, prefix: &str) -> Result<ClickHouseSinkConfig, Vec<ConfigProblem>> {
        let key = |k: &str| sluice_api::join_key(prefix, k);
        let mut problems = Vec::new();
        let url = match self.url.as_deref().map(str::trim) {
            None => {
                problems.push(ConfigProblem::missing(
                    key("url"),
                    "the HTTP endpoint, http://host:8123",
                ));
                String::new()
            }
            Some(url) if url.starts_with("http://") || url.starts_with("https://") => {
                if url.contains('@') {
                    problems.push(ConfigProblem::new(
                        key("url"),
                        "must not carry credentials: use `user` and `password`",
                    ));
                }
                url.trim_end_matches('/').to_owned()
            }
            Some(_) => {
                problems.push(ConfigProblem::new(
                    key("url"),
                    "must start with http:// or https://",
                ));
                String::new()
            }
        };
        let database = self.database.unwrap_or_else(|| DEFAULT_DATABASE.into());
        if database.is_empty() {
            problems.push(ConfigProblem::new(key("database"), "must not be empty"));
        }
        let rows = self
            .max_rows_per_insert
            .unwrap_or(DEFAULT_MAX_ROWS_PER_INSERT as u64);
        if rows == 0 || rows > MAX_ROWS_PER_INSERT {
            problems.push(ConfigProblem::new(
                key("max_rows_per_insert"),
                format!("must be between 1 and {MAX_ROWS_PER_INSERT}"),
            ));
        }
        let bytes = self
            .max_bytes_per_insert
            .unwrap_or(DEFAULT_MAX_BYTES_PER_INSERT as u64);
        if bytes < 1024 {
            problems.push(ConfigProblem::new(
                key("max_bytes_per_insert"),
                "must be at least 1024",
            ));
        }
        let timeout = self
            .request_timeout_ms
            .map_or(DEFAULT_REQUEST_TIMEOUT, Duration::from_millis);
        if timeout.is_zero() {
            problems.push(ConfigProblem::new(
                key("request_timeout_ms"),
                "must be positive",
            ));
        }
        if self.ca_file.as_deref() == Some("") {
            problems.push(ConfigProblem::new(
                key("ca_file"),
                "must not be empty: a file path, or leave the key out",
            ));
        }
        let dead_letter = RawDeadLetterConfig::validate_optional(
            self.dead_letter,
            &key("dead_letter"),
            &mut problems,
        );
        if !problems.is_empty() {
            return Err(problems);
        }
        Ok(ClickHouseSinkConfig {
            url,
            database,
            user: self.user.unwrap_or_else(|| DEFAULT_USER.into()),
            password: self.password.map(Secret::new),
            ca_file: self.ca_file.map(PathBuf::from),
            max_rows_per_insert: rows as usize,
            max_bytes_per_insert: bytes as usize,
            request_timeout: timeout,
            dead_letter,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(text: &str) -> RawClickHouseSinkConfig {
        sluice_api::from_toml(toml::Value::Table(toml::from_str(text).unwrap()), "sink[0]").unwrap()
    }

    #[test]
    fn defaults_follow_clickhouse_and_the_password_stays_secret() {
        let cfg = raw("url = 'http://127.0.0.1:8123/'\npassword = 'hunter2'")
            .validate("sink[0]")
            .unwrap();
        assert_eq!(cfg.url, "http://127.0.0.1:8123");
        assert_eq!(cfg.database, "default");
        assert_eq!(cfg.user, "default");
        assert_eq!(cfg.max_rows_per_insert, DEFAULT_MAX_ROWS_PER_INSERT);
        assert!(!format!("{cfg:?}").contains("hunter2"));
    }

    #[test]
    fn every_problem_is_reported_with_its_key() {
        let problems = raw("url = 'tcp://x'\ndatabase = ''\nmax_rows_per_insert = 0\n\
                            max_bytes_per_insert = 10\nrequest_timeout_ms = 0\nca_file = ''")
        .validate("sink[3]")
        .unwrap_err();
        let keys: Vec<&str> = problems.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "sink[3].url",
                "sink[3].database",
                "sink[3].max_rows_per_insert",
                "sink[3].max_bytes_per_insert",
                "sink[3].request_timeout_ms",
                "sink[3].ca_file"
            ]
        );
    }

    #[test]
    fn credentials_in_the_url_are_refused() {
        let problems = raw("url = 'http://u:pw@h:8123'").validate("s").unwrap_err();
        assert_eq!(problems[0].key, "s.url");
        assert!(!problems[0].message.contains("pw"));
    }
}
