//! The `[[sink]]` table of type `search`: raw TOML keys, their validation (every problem with its
//! key, no I/O), and the validated settings the client and sink are built from.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value as Json;
use sluice_api::{ConfigProblem, DeadLetterConfig, RawDeadLetterConfig, Secret};

use crate::naming::index_name_problem;

/// Most actions in one `_bulk` request: large enough to amortise the round trip, small enough
/// that a rejected request is cheap to resend (Elastic's own guidance starts around 1000).
pub const DEFAULT_MAX_BULK_ACTIONS: usize = 1000;
/// Most body bytes in one `_bulk` request: 5 MiB, within every server's default
/// `http.max_content_length` (100 MiB) by far and the size Elastic recommends starting from.
pub const DEFAULT_MAX_BULK_BYTES: usize = 5 << 20;
/// How long one HTTP request may take before it counts as a transient failure.
pub const DEFAULT_REQUEST_TIMEOUT_MS: u64 = 30_000;
/// First wait before re-sending items the server refused for now (429, 5xx).
pub const DEFAULT_ITEM_RETRY_INITIAL_MS: u64 = 100;
/// Longest wait between re-sends of refused items.
pub const DEFAULT_ITEM_RETRY_MAX_MS: u64 = 5_000;
/// Re-sends of refused items within one `write` before it fails as transient and the delivery
/// layer takes over (retrying the whole batch with its own backoff; delivered items then come
/// back as version conflicts, which count as success).
pub const DEFAULT_ITEM_RETRY_ATTEMPTS: u32 = 5;

/// Raw keys of a search sink, as written in TOML.
#[derive(Debug, Default, Deserialize)]
pub struct RawSearchSinkConfig {
    /// Base URL of the cluster, `http(s)://host:port[/path]`. Required.
    pub url: Option<String>,
    /// Basic-auth user; needs `password`.
    pub username: Option<String>,
    /// Basic-auth password.
    pub password: Option<String>,
    /// API key, sent as `Authorization: ApiKey <api_key>` (the base64 `id:key` form
    /// Elasticsearch returns as `encoded`). Exclusive with `username`/`password`.
    pub api_key: Option<String>,
    /// PEM file of CAs to trust for `https`, besides the public web roots.
    pub ca_file: Option<String>,
    /// First part of index names, `<index_prefix>.<schema>.<table>`; defaults to the pipeline
    /// name (Debezium's topic prefix).
    pub index_prefix: Option<String>,
    /// Rename rules: `"schema.table" = "index-name"` replaces the derived name of that table.
    pub index_names: Option<BTreeMap<String, String>>,
    /// Index settings for created indexes, any JSON the server accepts under `settings`
    /// (`number_of_shards`, `number_of_replicas`, analyzers, ...). Default: the server's.
    pub index_settings: Option<Json>,
    /// Per table (`"schema.table"`), mapping properties that replace the derived ones field by
    /// field, e.g. `[sink.mappings."public.items"] qty = { type = "long" }`.
    pub mappings: Option<BTreeMap<String, BTreeMap<String, Json>>>,
    /// Most actions per `_bulk` request (default 1000); larger batches are split.
    pub max_bulk_actions: Option<u64>,
    /// Most body bytes per `_bulk` request (default 5 MiB); larger batches are split.
    pub max_bulk_bytes: Option<u64>,
    /// Timeout of one HTTP request in milliseconds (default 30000).
    pub request_timeout_ms: Option<u64>,
    /// First wait before re-sending items refused for now (default 100 ms).
    pub item_retry_initial_ms: Option<u64>,
    /// Longest wait between re-sends of refused items (default 5000 ms).
    pub item_retry_max_ms: Option<u64>,
    /// Re-sends of refused items within one write before it fails as transient (default 5).
    pub item_retry_attempts: Option<u32>,
    /// Where permanently rejected documents go, e.g. `{ type = "file", path = "dead.jsonl" }`.
    /// Without it a permanent rejection stops the pipeline (nothing is dropped silently).
    pub dead_letter: Option<RawDeadLetterConfig>,
}

/// How the sink authenticates.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SearchAuth {
    None,
    Basic { username: String, password: Secret },
    ApiKey(Secret),
}

/// A validated search sink.
#[derive(Clone, Debug, PartialEq)]
pub struct SearchSinkConfig {
    /// Base URL without a trailing `/`.
    pub url: String,
    pub auth: SearchAuth,
    pub ca_file: Option<PathBuf>,
    /// `None`: the pipeline name.
    pub index_prefix: Option<String>,
    pub index_names: BTreeMap<String, String>,
    /// A JSON object, or `None` for the server's defaults.
    pub index_settings: Option<Json>,
    pub mappings: BTreeMap<String, BTreeMap<String, Json>>,
    pub max_bulk_actions: usize,
    pub max_bulk_bytes: usize,
    pub request_timeout: Duration,
    pub item_retry: (Duration, Duration),
    pub item_retry_attempts: u32,
    pub dead_letter: Option<DeadLetterConfig>,
}

impl RawSearchSinkConfig {
    /// Validate, naming every problem with its key under `prefix`.
    pub fn validate(self, prefix: &str) -> Result<SearchSinkConfig, Vec<ConfigProblem>> {
        let key = |k: &str| format!("{prefix}.{k}");
        let mut problems = Vec::new();

        let url = match self.url.as_deref().map(str::trim) {
            None => {
                problems.push(ConfigProblem::missing(
                    key("url"),
                    "the cluster's base URL, e.g. http://127.0.0.1:9200",
                ));
                String::new()
            }
            Some(u) if !(u.starts_with("http://") || u.starts_with("https://")) => {
                problems.push(ConfigProblem::new(
                    key("url"),
                    "must start with http:// or https://",
                ));
                String::new()
            }
            Some(u) if u.contains('@') => {
                problems.push(ConfigProblem::new(
                    key("url"),
                    "must not carry credentials: use username/password or api_key",
                ));
                String::new()
            }
            Some(u) => u.trim_end_matches('/').to_owned(),
        };

        let auth = match (self.username, self.password, self.api_key) {
            (None, None, None) => SearchAuth::None,
            (Some(username), Some(password), None) => SearchAuth::Basic {
                username,
                password: Secret::new(password),
            },
            (None, None, Some(key)) => SearchAuth::ApiKey(Secret::new(key)),
            (Some(_), None, None) => {
                problems.push(ConfigProblem::missing(
                    key("password"),
                    "the password for username",
                ));
                SearchAuth::None
            }
            (None, Some(_), None) => {
                problems.push(ConfigProblem::missing(
                    key("username"),
                    "the user for password",
                ));
                SearchAuth::None
            }
            (_, _, Some(_)) => {
                problems.push(ConfigProblem::new(
                    key("api_key"),
                    "use either api_key or username/password, not both",
                ));
                SearchAuth::None
            }
        };

        if let Some(p) = &self.index_prefix {
            if let Some(why) = index_name_problem(&p.to_lowercase()) {
                problems.push(ConfigProblem::new(key("index_prefix"), why));
            }
        }
        let index_names = self.index_names.unwrap_or_default();
        for (table, name) in &index_names {
            let at = format!("{prefix}.index_names.{table:?}");
            if !table.contains('.') {
                problems.push(ConfigProblem::new(
                    at.clone(),
                    "the key must be a schema-qualified table, \"schema.table\"",
                ));
            }
            if let Some(why) = index_name_problem(name) {
                problems.push(ConfigProblem::new(at, why));
            }
        }
        if let Some(settings) = &self.index_settings {
            if !settings.is_object() {
                problems.push(ConfigProblem::new(
                    key("index_settings"),
                    "must be a table of index settings",
                ));
            }
        }
        let mappings = self.mappings.unwrap_or_default();
        for (table, fields) in &mappings {
            for (field, mapping) in fields {
                if !mapping.is_object() {
                    problems.push(ConfigProblem::new(
                        format!("{prefix}.mappings.{table:?}.{field:?}"),
                        "must be a table, e.g. { type = \"long\" }",
                    ));
                }
            }
        }

        let positive =
            |problems: &mut Vec<ConfigProblem>, name: &str, v: Option<u64>, d: u64| match v {
                None => d,
                Some(0) => {
                    problems.push(ConfigProblem::new(key(name), "must be at least 1"));
                    d
                }
                Some(n) => n,
            };
        let max_bulk_actions = positive(
            &mut problems,
            "max_bulk_actions",
            self.max_bulk_actions,
            DEFAULT_MAX_BULK_ACTIONS as u64,
        );
        let max_bulk_bytes = positive(
            &mut problems,
            "max_bulk_bytes",
            self.max_bulk_bytes,
            DEFAULT_MAX_BULK_BYTES as u64,
        );
        let request_timeout_ms = positive(
            &mut problems,
            "request_timeout_ms",
            self.request_timeout_ms,
            DEFAULT_REQUEST_TIMEOUT_MS,
        );
        let retry_initial = positive(
            &mut problems,
            "item_retry_initial_ms",
            self.item_retry_initial_ms,
            DEFAULT_ITEM_RETRY_INITIAL_MS,
        );
        let retry_max = self.item_retry_max_ms.unwrap_or(DEFAULT_ITEM_RETRY_MAX_MS);
        if retry_max < retry_initial {
            problems.push(ConfigProblem::new(
                key("item_retry_max_ms"),
                format!("must be at least item_retry_initial_ms ({retry_initial})"),
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
        Ok(SearchSinkConfig {
            url,
            auth,
            ca_file: self.ca_file.map(PathBuf::from),
            index_prefix: self.index_prefix,
            index_names,
            index_settings: self.index_settings,
            mappings,
            max_bulk_actions: max_bulk_actions as usize,
            max_bulk_bytes: max_bulk_bytes as usize,
            request_timeout: Duration::from_millis(request_timeout_ms),
            item_retry: (
                Duration::from_millis(retry_initial),
                Duration::from_millis(retry_max),
            ),
            item_retry_attempts: self
                .item_retry_attempts
                .unwrap_or(DEFAULT_ITEM_RETRY_ATTEMPTS),
            dead_letter,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn validate(text: &str) -> Result<SearchSinkConfig, Vec<ConfigProblem>> {
        let value = toml::Value::Table(toml::from_str(text).expect("test toml"));
        let (raw, mut problems) =
            sluice_api::from_toml_partial::<RawSearchSinkConfig>(value, "sink[0]");
        match raw.unwrap_or_default().validate("sink[0]") {
            Ok(cfg) if problems.is_empty() => Ok(cfg),
            Ok(_) => Err(problems),
            Err(found) => {
                problems.extend(found);
                Err(problems)
            }
        }
    }

    #[test]
    fn a_url_alone_gives_the_documented_defaults() {
        let cfg = validate("url = 'http://127.0.0.1:9200/'").unwrap();
        assert_eq!(cfg.url, "http://127.0.0.1:9200");
        assert_eq!(cfg.auth, SearchAuth::None);
        assert_eq!(cfg.max_bulk_actions, DEFAULT_MAX_BULK_ACTIONS);
        assert_eq!(cfg.max_bulk_bytes, DEFAULT_MAX_BULK_BYTES);
        assert_eq!(cfg.dead_letter, None);
        assert_eq!(cfg.index_prefix, None);
    }

    #[test]
    fn settings_mappings_renames_and_dead_letters_are_read_from_toml() {
        let cfg = validate(
            "url = 'https://es:9200'\napi_key = 'c2VjcmV0'\n\
             dead_letter = { type = 'file', path = '/tmp/dead.jsonl' }\n\
             [index_names]\n'public.orders' = 'orders-v2'\n\
             [index_settings]\nnumber_of_shards = 2\nnumber_of_replicas = 0\n\
             [mappings.'public.items']\nqty = { type = 'long' }",
        )
        .unwrap();
        assert_eq!(cfg.index_names["public.orders"], "orders-v2");
        assert_eq!(cfg.index_settings.as_ref().unwrap()["number_of_shards"], 2);
        assert_eq!(cfg.mappings["public.items"]["qty"]["type"], "long");
        assert_eq!(
            cfg.dead_letter,
            Some(DeadLetterConfig::File {
                path: "/tmp/dead.jsonl".into()
            })
        );
        assert!(
            !format!("{cfg:?}").contains("c2VjcmV0"),
            "the key is secret"
        );
    }

    #[test]
    fn every_problem_is_reported_at_once_with_its_key() {
        let problems = validate(
            "username = 'u'\napi_key = 'k'\nindex_prefix = 'a*b'\nmax_bulk_actions = 0\n\
             dead_letter = { type = 'kafka' }\n[index_names]\norders = 'Bad Name'",
        )
        .unwrap_err();
        let keys: Vec<&str> = problems.iter().map(|p| p.key.as_str()).collect();
        for expected in [
            "sink[0].url",
            "sink[0].api_key",
            "sink[0].index_prefix",
            "sink[0].max_bulk_actions",
            "sink[0].dead_letter.type",
            "sink[0].dead_letter.path",
            "sink[0].index_names.\"orders\"",
        ] {
            assert!(keys.contains(&expected), "{expected} missing from {keys:?}");
        }
    }

    #[test]
    fn credentials_in_the_url_are_refused_and_never_echoed() {
        let problems = validate("url = 'http://u:hunter2@es:9200'").unwrap_err();
        assert_eq!(problems[0].key, "sink[0].url");
        assert!(!problems[0].message.contains("hunter2"));
    }
}
