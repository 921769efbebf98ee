//! The `[pipeline]` table: the pipeline's name (its topic prefix) and the batching and
//! shutdown limits every sink shares.

use std::time::Duration;

use serde::Deserialize;
use sluice_api::{join_key, ConfigProblem};

/// 4096 events amortise per-batch costs (a network round trip, an fsync) without holding much
/// memory per batch.
pub const DEFAULT_MAX_BATCH_EVENTS: usize = 4096;
/// Waiting up to 50 ms to fill a batch keeps latency low at modest rates.
pub const DEFAULT_MAX_BATCH_WAIT_MS: u64 = 50;
/// Batches per sink in flight at once: enough to hide round trips, bounded for memory.
pub const DEFAULT_MAX_IN_FLIGHT_BATCHES: usize = 8;
/// Time to drain in-flight batches on SIGTERM before giving up (without confirming them).
pub const DEFAULT_SHUTDOWN_TIMEOUT_MS: u64 = 30_000;

/// The `[pipeline]` keys as written.
#[derive(Debug, Default, Deserialize)]
pub struct RawPipeline {
    /// Required.
    pub name: Option<String>,
    /// Default [`DEFAULT_MAX_BATCH_EVENTS`].
    pub max_batch_events: Option<u64>,
    /// Default [`DEFAULT_MAX_BATCH_WAIT_MS`].
    pub max_batch_wait_ms: Option<u64>,
    /// Default [`DEFAULT_MAX_IN_FLIGHT_BATCHES`].
    pub max_in_flight_batches: Option<u64>,
    /// Default [`DEFAULT_SHUTDOWN_TIMEOUT_MS`].
    pub shutdown_timeout_ms: Option<u64>,
}

/// The validated `[pipeline]` table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PipelineConfig {
    /// `[A-Za-z0-9_.-]+`; the topic prefix (Debezium's `topic.prefix`) and the default slot and
    /// publication name suffix.
    pub name: String,
    /// Most events in one batch handed to a sink.
    pub max_batch_events: usize,
    /// Longest wait for a batch to fill before it is sent anyway.
    pub max_batch_wait: Duration,
    /// Most batches per sink sent but not yet acknowledged.
    pub max_in_flight_batches: usize,
    /// Longest graceful drain on shutdown.
    pub shutdown_timeout: Duration,
}

/// Longest pipeline or sink name: the pipeline name starts every Kafka topic name (at most 249
/// characters) and must leave room for `.<schema>.<table>`.
pub const MAX_NAME_CHARS: usize = 128;

/// Whether `name` may be a pipeline or sink name (it ends up in topic names and metrics).
pub fn is_valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME_CHARS
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

/// A name as an error shows it: cut short, so a hostile config cannot flood the output.
pub fn shown_name(name: &str) -> String {
    match name.char_indices().nth(MAX_NAME_CHARS) {
        Some((end, _)) => format!("{}...", &name[..end]),
        None => name.to_owned(),
    }
}

/// Validate `[pipeline]`; a bad name is reported but the rest still checked.
pub fn validate(raw: RawPipeline, prefix: &str) -> Result<PipelineConfig, Vec<ConfigProblem>> {
    let mut problems = Vec::new();
    let key = |k: &str| join_key(prefix, k);
    let name = raw.name.unwrap_or_default();
    if name.is_empty() {
        problems.push(ConfigProblem::missing(
            key("name"),
            "the pipeline name, used as the topic prefix",
        ));
    } else if !is_valid_name(&name) {
        problems.push(ConfigProblem::new(
            key("name"),
            format!(
                "invalid name {:?}: use at most {MAX_NAME_CHARS} letters, digits, '_', '.' and '-'",
                shown_name(&name)
            ),
        ));
    }
    let max_batch_events = at_least_one(
        raw.max_batch_events,
        DEFAULT_MAX_BATCH_EVENTS,
        &key("max_batch_events"),
        &mut problems,
    );
    let max_in_flight_batches = at_least_one(
        raw.max_in_flight_batches,
        DEFAULT_MAX_IN_FLIGHT_BATCHES,
        &key("max_in_flight_batches"),
        &mut problems,
    );
    let shutdown_ms = raw
        .shutdown_timeout_ms
        .unwrap_or(DEFAULT_SHUTDOWN_TIMEOUT_MS);
    if problems.is_empty() {
        Ok(PipelineConfig {
            name,
            max_batch_events,
            max_batch_wait: Duration::from_millis(
                raw.max_batch_wait_ms.unwrap_or(DEFAULT_MAX_BATCH_WAIT_MS),
            ),
            max_in_flight_batches,
            shutdown_timeout: Duration::from_millis(shutdown_ms),
        })
    } else {
        Err(problems)
    }
}

fn at_least_one(
    value: Option<u64>,
    default: usize,
    key: &str,
    problems: &mut Vec<ConfigProblem>,
) -> usize {
    match value {
        None => default,
        Some(0) => {
            problems.push(ConfigProblem::new(key, "must be at least 1"));
            default
        }
        Some(n) => usize::try_from(n).unwrap_or(usize::MAX),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_name_is_required() {
        let cfg = validate(
            RawPipeline {
                name: Some("inv".into()),
                ..Default::default()
            },
            "pipeline",
        )
        .unwrap();
        assert_eq!(cfg.max_batch_events, 4096);
        assert_eq!(cfg.max_batch_wait, Duration::from_millis(50));
        assert_eq!(cfg.max_in_flight_batches, 8);
        assert_eq!(cfg.shutdown_timeout, Duration::from_secs(30));
    }

    #[test]
    fn a_name_past_the_limit_is_refused_and_shown_cut_short() {
        assert!(is_valid_name(&"x".repeat(MAX_NAME_CHARS)));
        assert!(!is_valid_name(&"x".repeat(MAX_NAME_CHARS + 1)));
        let shown = shown_name(&"x".repeat(1 << 20));
        assert_eq!(shown.len(), MAX_NAME_CHARS + 3);
        assert!(shown.ends_with("..."));
        assert_eq!(shown_name("inv"), "inv");
    }

    #[test]
    fn a_bad_name_and_zero_limits_are_all_reported() {
        let raw = RawPipeline {
            name: Some("in ventory".into()),
            max_batch_events: Some(0),
            max_in_flight_batches: Some(0),
            ..Default::default()
        };
        let keys: Vec<String> = validate(raw, "pipeline")
            .unwrap_err()
            .into_iter()
            .map(|p| p.key)
            .collect();
        assert_eq!(
            keys,
            [
                "pipeline.name",
                "pipeline.max_batch_events",
                "pipeline.max_in_flight_batches"
            ]
        );
    }
}
