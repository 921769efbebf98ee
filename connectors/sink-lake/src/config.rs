//! The `[[sink]]` table of type `lake`: raw TOML keys, their validation (every problem with its
//! key, no I/O), and the validated settings.

use serde::Deserialize;
use sluice_api::{ConfigProblem, Secret};

/// Target size of one Parquet data file unless configured: large enough that readers open few
/// files, small enough to stay far below the memory a batch may take. A commit that writes more
/// than this rolls to a new file.
pub const DEFAULT_TARGET_FILE_BYTES: u64 = 128 * 1024 * 1024;
/// Data files smaller than the target that a table may gather before the sink rewrites them
/// into one (a compaction commit that changes no data). Every batch makes at least one file per
/// table it touches, so small batches would otherwise leave a small file each.
pub const DEFAULT_COMPACT_MIN_FILES: u64 = 16;
/// The region unless configured: what S3-compatible servers accept when they ignore regions.
pub const DEFAULT_S3_REGION: &str = "us-east-1";
/// The smallest file target accepted: below it every batch would roll many files.
const MIN_TARGET_FILE_BYTES: u64 = 1024 * 1024;

/// Raw keys of a lake sink, as written in TOML.
#[derive(Debug, Default, Deserialize)]
pub struct RawLakeSinkConfig {
    /// Where the tables live: a local directory (`/data/lake`, `file:///data/lake`) or an S3
    /// location (`s3://bucket/prefix`). One Delta table per source table under it. Required.
    pub location: Option<String>,
    /// Target bytes of one Parquet data file (default 128 MiB, at least 1 MiB).
    pub target_file_bytes: Option<u64>,
    /// Small data files a table gathers before they are compacted into one (default 16; 0
    /// turns compaction off).
    pub compact_min_files: Option<u64>,
    /// S3 settings, for an `s3://` location.
    pub s3: Option<RawS3Config>,
}

/// Raw keys of the `s3` table of a lake sink.
#[derive(Debug, Default, Deserialize)]
pub struct RawS3Config {
    /// Endpoint of an S3-compatible server, `http://127.0.0.1:9000` (default: AWS itself).
    /// An `http://` endpoint allows plain HTTP.
    pub endpoint: Option<String>,
    /// Region (default `us-east-1`).
    pub region: Option<String>,
    /// Access key id (default: the `AWS_ACCESS_KEY_ID` environment variable).
    pub access_key_id: Option<String>,
    /// Secret access key (default: the `AWS_SECRET_ACCESS_KEY` environment variable).
    pub secret_access_key: Option<String>,
    /// Path-style requests (`endpoint/bucket/key`) instead of virtual-hosted style
    /// (`bucket.endpoint/key`); most self-hosted servers want this (default false).
    pub path_style: Option<bool>,
}

/// Where the tables live.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Location {
    /// A local directory (absolute once validated).
    Local(std::path::PathBuf),
    /// A bucket and a key prefix (no leading or trailing `/`, possibly empty).
    S3 { bucket: String, prefix: String },
}

/// Validated S3 settings.
#[derive(Clone, Debug)]
pub struct S3Config {
    pub endpoint: Option<String>,
    pub region: String,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<Secret>,
    pub path_style: bool,
}

/// A validated lake sink.
#[derive(Clone, Debug)]
pub struct LakeSinkConfig {
    pub location: Location,
    pub target_file_bytes: u64,
    /// 0: never compact.
    pub compact_min_files: usize,
    /// Present for an S3 location (defaults when the `s3` table is absent).
    pub s3: Option<S3Config>,
}

impl RawLakeSinkConfig {
    /// Validate, naming every problem with its key under `prefix`.
    pub fn validate(self, prefix: &str) -> Result<LakeSinkConfig, Vec<ConfigProblem>> {
        let key = |k: &str| sluice_api::join_key(prefix, k);
        let mut problems = Vec::new();
        let location = match self.location.as_deref().map(str::trim) {
            None => {
                problems.push(ConfigProblem::missing(
                    key("location"),
                    "a local directory or s3://bucket/prefix",
                ));
                None
            }
            Some(text) => match parse_location(text) {
                Ok(location) => Some(location),
                Err(message) => {
                    problems.push(ConfigProblem::new(key("location"), message));
                    None
                }
            },
        };
        let target_file_bytes = self.target_file_bytes.unwrap_or(DEFAULT_TARGET_FILE_BYTES);
        if target_file_bytes < MIN_TARGET_FILE_BYTES {
            problems.push(ConfigProblem::new(
                key("target_file_bytes"),
                format!("must be at least {MIN_TARGET_FILE_BYTES} (1 MiB)"),
            ));
        }
        let compact_min_files = self.compact_min_files.unwrap_or(DEFAULT_COMPACT_MIN_FILES);
        if compact_min_files == 1 {
            problems.push(ConfigProblem::new(
                key("compact_min_files"),
                "must be 0 (off) or at least 2: one file has nothing to merge with",
            ));
        }
        let is_s3 = matches!(location, Some(Location::S3 { .. }));
        let s3 = match (self.s3, is_s3) {
            (Some(_), false) if location.is_some() => {
                problems.push(ConfigProblem::new(
                    key("s3"),
                    "only applies to an s3:// location",
                ));
                None
            }
            (raw, true) => raw.unwrap_or_default().validate(&key("s3"), &mut problems),
            _ => None,
        };
        match location {
            Some(location) if problems.is_empty() => Ok(LakeSinkConfig {
                location,
                target_file_bytes,
                compact_min_files: compact_min_files as usize,
                s3,
            }),
            _ => Err(problems),
        }
    }
}

impl RawS3Config {
    fn validate(self, prefix: &str, problems: &mut Vec<ConfigProblem>) -> Option<S3Config> {
        let key = |k: &str| sluice_api::join_key(prefix, k);
        let endpoint = self
            .endpoint
            .map(|e| e.trim().trim_end_matches('/').to_owned());
        if let Some(endpoint) = &endpoint {
            if !(endpoint.starts_with("http://") || endpoint.starts_with("https://")) {
                problems.push(ConfigProblem::new(
                    key("endpoint"),
                    "must start with http:// or https://",
                ));
            } else if endpoint.contains('@') {
                problems.push(ConfigProblem::new(
                    key("endpoint"),
                    "must not carry credentials: use access_key_id and secret_access_key",
                ));
            }
        }
        let region = self.region.unwrap_or_else(|| DEFAULT_S3_REGION.into());
        if region.trim().is_empty() {
            problems.push(ConfigProblem::new(key("region"), "must not be empty"));
        }
        if self.access_key_id.is_some() != self.secret_access_key.is_some() {
            problems.push(ConfigProblem::new(
                key("secret_access_key"),
                "access_key_id and secret_access_key go together: set both or neither",
            ));
        }
        Some(S3Config {
            endpoint,
            region,
            access_key_id: self.access_key_id,
            secret_access_key: self.secret_access_key.map(Secret::new),
            path_style: self.path_style.unwrap_or(false),
        })
    }
}

/// A local directory or `s3://bucket/prefix`.
fn parse_location(text: &str) -> Result<Location, String> {
    if text.is_empty() {
        return Err("must not be empty".into());
    }
    if let Some(rest) = text.strip_prefix("s3://") {
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err("names no bucket: s3://bucket/prefix".into());
        }
        return Ok(Location::S3 {
            bucket: bucket.to_owned(),
            prefix: prefix.trim_matches('/').to_owned(),
        });
    }
    let path = text.strip_prefix("file://").unwrap_or(text);
    if path.contains("://") {
        return Err("must be a local directory, file:///path or s3://bucket/prefix".into());
    }
    std::path::absolute(path)
        .map(Location::Local)
        .map_err(|e| format!("cannot be made absolute: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(text: &str) -> RawLakeSinkConfig {
        sluice_api::from_toml(toml::Value::Table(toml::from_str(text).unwrap()), "sink[0]").unwrap()
    }

    #[test]
    fn a_local_location_is_made_absolute_and_defaults_apply() {
        let cfg = raw("location = 'lake'").validate("sink[0]").unwrap();
        let Location::Local(path) = &cfg.location else {
            panic!("a local location");
        };
        assert!(path.is_absolute() && path.ends_with("lake"), "{path:?}");
        assert_eq!(cfg.target_file_bytes, DEFAULT_TARGET_FILE_BYTES);
        assert_eq!(cfg.compact_min_files, DEFAULT_COMPACT_MIN_FILES as usize);
        assert!(cfg.s3.is_none());
    }

    #[test]
    fn an_s3_location_takes_its_settings_and_keeps_the_secret_secret() {
        let cfg = raw("location = 's3://bucket/some/prefix/'\n\
             s3 = { endpoint = 'http://127.0.0.1:9000/', access_key_id = 'k', \
             secret_access_key = 'hunter2', path_style = true }")
        .validate("sink[0]")
        .unwrap();
        assert_eq!(
            cfg.location,
            Location::S3 {
                bucket: "bucket".into(),
                prefix: "some/prefix".into()
            }
        );
        let s3 = cfg.s3.as_ref().unwrap();
        assert_eq!(s3.endpoint.as_deref(), Some("http://127.0.0.1:9000"));
        assert_eq!(s3.region, DEFAULT_S3_REGION);
        assert!(s3.path_style);
        assert!(!format!("{cfg:?}").contains("hunter2"));
    }

    #[test]
    fn every_problem_is_reported_with_its_key() {
        let problems = raw("target_file_bytes = 10\ncompact_min_files = 1")
            .validate("sink[2]")
            .unwrap_err();
        let keys: Vec<&str> = problems.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "sink[2].location",
                "sink[2].target_file_bytes",
                "sink[2].compact_min_files"
            ]
        );
        let problems = raw(
            "location = 's3://b'\ns3 = { endpoint = 'ftp://x', region = '', access_key_id = 'k' }",
        )
        .validate("s")
        .unwrap_err();
        let keys: Vec<&str> = problems.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(
            keys,
            ["s.s3.endpoint", "s.s3.region", "s.s3.secret_access_key"]
        );
    }

    #[test]
    fn s3_settings_for_a_local_location_and_foreign_schemes_are_refused() {
        let problems = raw("location = '/tmp/x'\ns3 = { region = 'eu-west-1' }")
            .validate("s")
            .unwrap_err();
        assert_eq!(problems[0].key, "s.s3");
        let problems = raw("location = 'gs://bucket'").validate("s").unwrap_err();
        assert_eq!(problems[0].key, "s.location");
        let problems = raw("location = 's3:///x'").validate("s").unwrap_err();
        assert_eq!(problems[0].key, "s.location");
    }
}
