//! The `[registry]` table: where envelope schemas are registered. With `url`, an external
//! Confluent-compatible registry; without, the embedded one, served on `listen` so consumers
//! can fetch schemas, persisted to `storage`. A configured `[registry]` turns on Avro
//! envelopes for every batch.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use sluice_api::{join_key, ConfigProblem, Secret};

use crate::schema::SubjectNameStrategy;

/// Where the embedded registry listens unless told otherwise (Confluent's usual port).
pub const DEFAULT_REGISTRY_LISTEN: &str = "127.0.0.1:8081";
/// How long one registry request may take.
pub const DEFAULT_REGISTRY_TIMEOUT_MS: u64 = 10_000;

/// What to do when a table's new schema is incompatible with its registered versions.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub enum OnIncompatible {
    /// Stop the pipeline before the first event that would use it (nothing acknowledged past it).
    #[default]
    Stop,
    /// Set the subject's compatibility to `NONE` and register anyway.
    Register,
}

impl OnIncompatible {
    pub fn as_str(self) -> &'static str {
        match self {
            OnIncompatible::Stop => "stop",
            OnIncompatible::Register => "register",
        }
    }
}

/// The `[registry]` keys as written.
#[derive(Default, Deserialize)]
pub struct RawRegistry {
    /// External registry base URL; absent = the embedded registry.
    pub url: Option<String>,
    /// Embedded registry: listen address. Default 127.0.0.1:8081.
    pub listen: Option<String>,
    /// Embedded registry: a JSON file path or a `postgres://` URL. Default: in memory.
    pub storage: Option<String>,
    pub username: Option<String>,
    pub password: Option<String>,
    /// PEM CA file to trust for an `https` registry.
    pub ca_file: Option<String>,
    /// Register missing schemas (default true).
    pub auto_register: Option<bool>,
    /// `topic_name` (default) | `record_name` | `topic_record_name`.
    pub subject_name_strategy: Option<String>,
    /// `stop` (default) | `register`.
    pub on_incompatible: Option<String>,
    pub request_timeout_ms: Option<u64>,
}

/// A validated `[registry]`.
#[derive(Clone, Debug)]
pub struct RegistryConfig {
    pub url: Option<String>,
    pub listen: SocketAddr,
    pub storage: Option<String>,
    pub username: Option<String>,
    pub password: Option<Secret>,
    pub ca_file: Option<PathBuf>,
    pub auto_register: bool,
    pub subject_name_strategy: SubjectNameStrategy,
    pub on_incompatible: OnIncompatible,
    pub request_timeout: Duration,
}

/// Validate `[registry]`, reporting every problem with its key.
pub fn validate(raw: RawRegistry, prefix: &str) -> Result<RegistryConfig, Vec<ConfigProblem>> {
    let mut problems = Vec::new();
    let key = |k: &str| join_key(prefix, k);
    if let Some(url) = &raw.url {
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            problems.push(ConfigProblem::new(
                key("url"),
                "must start with http:// or https://",
            ));
        }
        for embedded in ["listen", "storage"] {
            let set = if embedded == "listen" {
                raw.listen.is_some()
            } else {
                raw.storage.is_some()
            };
            if set {
                problems.push(ConfigProblem::new(
                    key(embedded),
                    "only for the embedded registry; remove it or remove url",
                ));
            }
        }
    }
    let listen_text = raw.listen.as_deref().unwrap_or(DEFAULT_REGISTRY_LISTEN);
    let listen = listen_text.parse::<SocketAddr>().unwrap_or_else(|_| {
        problems.push(ConfigProblem::new(
            key("listen"),
            format!("not an ip:port address: {listen_text:?}"),
        ));
        SocketAddr::from(([127, 0, 0, 1], 8081))
    });
    let subject_name_strategy = match raw.subject_name_strategy.as_deref() {
        None => SubjectNameStrategy::default(),
        Some(text) => SubjectNameStrategy::parse(text).unwrap_or_else(|| {
            problems.push(ConfigProblem::new(
                key("subject_name_strategy"),
                format!("{text:?} is not one of topic_name, record_name, topic_record_name"),
            ));
            SubjectNameStrategy::default()
        }),
    };
    let on_incompatible = match raw.on_incompatible.as_deref() {
        None | Some("stop") => OnIncompatible::Stop,
        Some("register") => OnIncompatible::Register,
        Some(other) => {
            problems.push(ConfigProblem::new(
                key("on_incompatible"),
                format!("{other:?} is not one of stop, register"),
            ));
            OnIncompatible::Stop
        }
    };
    if raw.password.is_some() && raw.username.is_none() {
        problems.push(ConfigProblem::new(
            key("username"),
            "required when password is set",
        ));
    }
    let timeout_ms = raw
        .request_timeout_ms
        .unwrap_or(DEFAULT_REGISTRY_TIMEOUT_MS);
    if timeout_ms == 0 {
        problems.push(ConfigProblem::new(
            key("request_timeout_ms"),
            "must be at least 1",
        ));
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    Ok(RegistryConfig {
        url: raw.url,
        listen,
        storage: raw.storage,
        username: raw.username,
        password: raw.password.map(Secret::new),
        ca_file: raw.ca_file.map(PathBuf::from),
        auto_register: raw.auto_register.unwrap_or(true),
        subject_name_strategy,
        on_incompatible,
        request_timeout: Duration::from_millis(timeout_ms),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_registry_table_means_the_embedded_registry_with_defaults() {
        let cfg = validate(RawRegistry::default(), "registry").unwrap();
        assert_eq!(cfg.url, None);
        assert_eq!(cfg.listen.to_string(), DEFAULT_REGISTRY_LISTEN);
        assert!(cfg.auto_register);
        assert_eq!(cfg.on_incompatible, OnIncompatible::Stop);
    }

    #[test]
    fn every_problem_is_named_with_its_key() {
        let raw = RawRegistry {
            url: Some("ftp://x".into()),
            storage: Some("r.json".into()),
            subject_name_strategy: Some("by_mood".into()),
            on_incompatible: Some("ignore".into()),
            password: Some("p".into()),
            ..RawRegistry::default()
        };
        let keys: Vec<String> = validate(raw, "registry")
            .unwrap_err()
            .into_iter()
            .map(|p| p.key)
            .collect();
        for k in [
            "registry.url",
            "registry.storage",
            "registry.subject_name_strategy",
            "registry.on_incompatible",
            "registry.username",
        ] {
            assert!(keys.iter().any(|x| x == k), "{k} missing from {keys:?}");
        }
    }
}
