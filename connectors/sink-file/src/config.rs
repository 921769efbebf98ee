//! The `[[sink]]` table of type `file`.

use std::path::PathBuf;

use serde::Deserialize;
use sluice_api::ConfigProblem;

/// Raw keys of a file sink, as written in TOML.
#[derive(Debug, Default, Deserialize)]
pub struct RawFileSinkConfig {
    /// File to append to; `-` writes to stdout. Required.
    pub path: Option<String>,
    /// fsync the file before acknowledging a batch (default true). Off trades crash safety of
    /// the last batches for speed.
    pub fsync: Option<bool>,
}

/// Where the events go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FileTarget {
    Stdout,
    File(PathBuf),
}

/// A validated file sink.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileSinkConfig {
    pub target: FileTarget,
    pub fsync: bool,
}

impl RawFileSinkConfig {
    /// Validate, naming every problem with its key under `prefix`.
    pub fn validate(self, prefix: &str) -> Result<FileSinkConfig, Vec<ConfigProblem>> {
        let target = match self.path.as_deref() {
            None => {
                return Err(vec![ConfigProblem {
                    key: format!("{prefix}.path"),
                    message: "missing: a file path, or \"-\" for stdout".into(),
                }])
            }
            Some("") => {
                return Err(vec![ConfigProblem {
                    key: format!("{prefix}.path"),
                    message: "must not be empty: a file path, or \"-\" for stdout".into(),
                }])
            }
            Some("-") => FileTarget::Stdout,
            Some(path) => FileTarget::File(PathBuf::from(path)),
        };
        Ok(FileSinkConfig {
            target,
            fsync: self.fsync.unwrap_or(true),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dash_means_stdout_and_fsync_defaults_on() {
        let raw = RawFileSinkConfig {
            path: Some("-".into()),
            fsync: None,
        };
        let cfg = raw.validate("sink[0]").unwrap();
        assert_eq!(cfg.target, FileTarget::Stdout);
        assert!(cfg.fsync);
    }

    #[test]
    fn a_missing_path_is_reported_with_its_key() {
        let problems = RawFileSinkConfig::default()
            .validate("sink[2]")
            .unwrap_err();
        assert_eq!(problems[0].key, "sink[2].path");
    }
}
