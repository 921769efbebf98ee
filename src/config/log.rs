//! The `[log]` table: log format and level. `RUST_LOG`, when set, overrides the level.

use serde::Deserialize;
use sluice_api::{join_key, ConfigProblem};

/// Informational logs: starts, stops, reconnects, lag warnings.
pub const DEFAULT_LOG_LEVEL: &str = "info";

/// How log lines are written to stderr.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// Readable lines for a terminal.
    #[default]
    Human,
    /// One JSON object per line, for log collectors.
    Json,
}

impl LogFormat {
    /// The config spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            LogFormat::Human => "human",
            LogFormat::Json => "json",
        }
    }
}

/// The `[log]` keys as written.
#[derive(Debug, Default, Deserialize)]
pub struct RawLog {
    /// `human` (default) or `json`.
    pub format: Option<String>,
    /// An `EnvFilter` directive; default [`DEFAULT_LOG_LEVEL`].
    pub level: Option<String>,
}

/// The validated `[log]` table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogConfig {
    /// Line format.
    pub format: LogFormat,
    /// An `EnvFilter` directive, e.g. `info` or `info,sluice_source_postgres=debug`.
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            format: LogFormat::Human,
            level: DEFAULT_LOG_LEVEL.to_owned(),
        }
    }
}

/// Validate `[log]` (absent means the defaults).
pub fn validate(raw: RawLog, prefix: &str) -> Result<LogConfig, Vec<ConfigProblem>> {
    let mut problems = Vec::new();
    let format = match raw.format.as_deref() {
        None | Some("human") => LogFormat::Human,
        Some("json") => LogFormat::Json,
        Some(other) => {
            problems.push(ConfigProblem::new(
                join_key(prefix, "format"),
                format!("unknown value {other:?}; expected one of: human, json"),
            ));
            LogFormat::Human
        }
    };
    let level = raw.level.unwrap_or_else(|| DEFAULT_LOG_LEVEL.to_owned());
    if let Err(e) = tracing_subscriber::EnvFilter::builder().parse(&level) {
        problems.push(ConfigProblem::new(
            join_key(prefix, "level"),
            format!("invalid filter {level:?}: {e}"),
        ));
    }
    if problems.is_empty() {
        Ok(LogConfig { format, level })
    } else {
        Err(problems)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_absent_log_table_means_human_info() {
        assert_eq!(
            validate(RawLog::default(), "log").unwrap(),
            LogConfig::default()
        );
    }

    #[test]
    fn filter_directives_are_checked() {
        let raw = RawLog {
            format: Some("xml".into()),
            level: Some("info,sluice=[".into()),
        };
        let keys: Vec<String> = validate(raw, "log")
            .unwrap_err()
            .into_iter()
            .map(|p| p.key)
            .collect();
        assert_eq!(keys, ["log.format", "log.level"]);
        let raw = RawLog {
            format: Some("json".into()),
            level: Some("warn,sluice=debug".into()),
        };
        assert_eq!(validate(raw, "log").unwrap().format, LogFormat::Json);
    }
}
