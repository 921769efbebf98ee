//! Configuration: the TOML file, with `SLUICE__*` environment overrides layered on, becomes a
//! validated [`Config`] in one pass that lists every problem with its key. Validation does no
//! I/O (the password file is read at start, the database is checked by `sluice check`).
//!
//! Document layout: `[pipeline]` ([`PipelineConfig`]), `[source]` (the PostgreSQL source),
//! `[[sink]]` (one or more, [`SinkSpec`]), `[log]` ([`LogConfig`]), `[http]` ([`HttpConfig`]),
//! `[[transforms]]` ([`crate::transform`]). See
//! `config/sluice.example.toml` for every key.

mod env;
mod envelope;
mod http;
mod log;
mod pipeline;
mod registry;
mod route;
mod sink;

use std::path::{Path, PathBuf};

use serde::Deserialize;
use sluice_api::{from_toml_partial, ConfigProblem, ConfigProblems};
use sluice_source_postgres::config::{self as source_config, RawPostgresSource};
use sluice_source_postgres::PostgresSourceConfig;
use toml::{Table, Value};

pub use env::{apply_overrides, ENV_PREFIX};
pub use envelope::{RawEnvelope, MAX_MONEY_FRACTION_DIGITS};
pub use http::{HttpConfig, DEFAULT_HTTP_ENABLED, DEFAULT_HTTP_LISTEN};
pub use log::{LogConfig, LogFormat, DEFAULT_LOG_LEVEL};
pub use pipeline::{
    PipelineConfig, DEFAULT_MAX_BATCH_EVENTS, DEFAULT_MAX_BATCH_WAIT_MS,
    DEFAULT_MAX_IN_FLIGHT_BATCHES, DEFAULT_SHUTDOWN_TIMEOUT_MS,
};
pub use registry::{OnIncompatible, RegistryConfig, DEFAULT_REGISTRY_LISTEN};
pub use route::{RawRoute, RawTopics};
pub use sink::SinkSpec;

/// The validated configuration of one daemon. Its `Debug` never shows a password (the
/// connection holds it as a `Secret`).
#[derive(Clone, Debug)]
pub struct Config {
    /// `[pipeline]`.
    pub pipeline: PipelineConfig,
    /// `[source]`.
    pub source: PostgresSourceConfig,
    /// `[[sink]]`, in file order.
    pub sinks: Vec<SinkSpec>,
    /// `[log]`.
    pub log: LogConfig,
    /// `[envelope]`: how events are shaped for Debezium-compatible consumers.
    pub envelope: crate::schema::EnvelopeOptions,
    /// `[registry]`: when present, batches carry Avro envelopes registered there.
    pub registry: Option<RegistryConfig>,
    /// `[[transforms]]`, in file order: applied before the sinks. Default: none.
    pub transforms: crate::transform::Transforms,
    /// `[http]`: probes, metrics, status and admin endpoints of `sluice run`.
    pub http: HttpConfig,
}

/// Why a config file could not become a [`Config`].
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid TOML.
    #[error("{}:{line}:{column}: invalid TOML: {message}", path.display())]
    Syntax {
        /// The file.
        path: PathBuf,
        /// 1-based line of the error.
        line: usize,
        /// 1-based column (in characters) of the error.
        column: usize,
        /// The parser's message.
        message: String,
    },
    /// The TOML is valid but breaks the rules: every problem, with its key.
    #[error("{0}")]
    Problems(ConfigProblems),
}

impl Config {
    /// Read `path`, apply the process environment's `SLUICE__*` overrides, and validate.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let document = parse_document(&text).map_err(|e| ConfigError::Syntax {
            path: path.to_owned(),
            line: e.line,
            column: e.column,
            message: e.message,
        })?;
        Config::from_document(document, std::env::vars()).map_err(ConfigError::Problems)
    }

    /// Validate TOML `text` with overrides from `env` (name, value pairs; only `SLUICE__*`
    /// names are used). A syntax error is one problem with an empty key.
    pub fn from_toml_str(
        text: &str,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigProblems> {
        let document = parse_document(text).map_err(|e| {
            ConfigProblems(vec![ConfigProblem::new(
                "",
                format!(
                    "invalid TOML at line {}, column {}: {}",
                    e.line, e.column, e.message
                ),
            )])
        })?;
        Config::from_document(document, env)
    }

    /// Overrides, then every section validated, all problems collected.
    fn from_document(
        mut document: Table,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigProblems> {
        let mut problems = apply_overrides(&mut document, env);
        let (root, found) = from_toml_partial::<RawRoot>(Value::Table(document), "");
        problems.extend(found);
        let root = root.unwrap_or_default();

        let raw_pipeline =
            section::<pipeline::RawPipeline>(root.pipeline, "pipeline", &mut problems);
        let pipeline_name = raw_pipeline
            .as_ref()
            .and_then(|p| p.name.clone())
            .unwrap_or_default();
        let pipeline = raw_pipeline
            .and_then(|raw| ok_or_report(pipeline::validate(raw, "pipeline"), &mut problems));
        let source =
            section::<RawPostgresSource>(root.source, "source", &mut problems).and_then(|raw| {
                ok_or_report(
                    source_config::validate(raw, &pipeline_name, "source"),
                    &mut problems,
                )
            });
        let sinks = ok_or_report(sink::validate_sinks(root.sink, "sink"), &mut problems);
        let log = section::<log::RawLog>(root.log, "log", &mut problems)
            .and_then(|raw| ok_or_report(log::validate(raw, "log"), &mut problems));
        let envelope = section::<envelope::RawEnvelope>(root.envelope, "envelope", &mut problems)
            .and_then(|raw| ok_or_report(envelope::validate(raw, "envelope"), &mut problems));
        // `[registry]` is optional: absent means no Avro envelopes.
        let registry = match root.registry {
            None => Some(None),
            Some(value) => section::<registry::RawRegistry>(Some(value), "registry", &mut problems)
                .and_then(|raw| ok_or_report(registry::validate(raw, "registry"), &mut problems))
                .map(Some),
        };
        let transforms = ok_or_report(
            crate::transform::validate_transforms(root.transforms, "transforms"),
            &mut problems,
        );
        if let (Some(sinks), Some(None)) = (&sinks, &registry) {
            require_registry(sinks, &mut problems);
        }
        let http = section::<http::RawHttp>(root.http, "http", &mut problems)
            .and_then(|raw| ok_or_report(http::validate(raw, "http"), &mut problems));

        match (
            pipeline, source, sinks, log, envelope, registry, transforms, http,
        ) {
            (
                Some(pipeline),
                Some(source),
                Some(sinks),
                Some(log),
                Some(envelope),
                Some(registry),
                Some(transforms),
                Some(http),
            ) if problems.is_empty() => Ok(Config {
                pipeline,
                source,
                sinks,
                log,
                envelope,
                registry,
                transforms,
                http,
            }),
            _ => Err(ConfigProblems(dedupe(problems))),
        }
    }
}

/// Sinks that write Avro records need `[registry]`: say so at load time rather than at the
/// first batch.
fn require_registry(sinks: &[SinkSpec], problems: &mut Vec<ConfigProblem>) {
    for (index, sink) in sinks.iter().enumerate() {
        if sink.kind == "kafka" {
            problems.push(ConfigProblem::new(
                format!("sink[{index}].type"),
                "a kafka sink writes Avro records: add a [registry] section (without url, \
                 sluice serves its own schema registry)",
            ));
        }
    }
}

/// The top-level tables, each validated with its own prefix.
#[derive(Default, Deserialize)]
struct RawRoot {
    pipeline: Option<Value>,
    source: Option<Value>,
    sink: Option<Value>,
    log: Option<Value>,
    envelope: Option<Value>,
    registry: Option<Value>,
    transforms: Option<Value>,
    http: Option<Value>,
}

/// Deserialize one section (absent = empty table, so its required keys are reported).
fn section<T: serde::de::DeserializeOwned>(
    value: Option<Value>,
    prefix: &str,
    problems: &mut Vec<ConfigProblem>,
) -> Option<T> {
    let (raw, found) =
        from_toml_partial(value.unwrap_or_else(|| Value::Table(Table::new())), prefix);
    problems.extend(found);
    raw
}

fn ok_or_report<T>(
    result: Result<T, Vec<ConfigProblem>>,
    problems: &mut Vec<ConfigProblem>,
) -> Option<T> {
    result.map_err(|found| problems.extend(found)).ok()
}

/// Keep the first problem per key: a wrong-typed key is dropped before validation, which would
/// otherwise report it a second time as missing.
fn dedupe(problems: Vec<ConfigProblem>) -> Vec<ConfigProblem> {
    let mut out: Vec<ConfigProblem> = Vec::with_capacity(problems.len());
    for p in problems {
        if !out.iter().any(|q| q.key == p.key) {
            out.push(p);
        }
    }
    out
}

/// A TOML syntax error's position and message.
struct SyntaxError {
    line: usize,
    column: usize,
    message: String,
}

fn parse_document(text: &str) -> Result<Table, SyntaxError> {
    text.parse::<Table>().map_err(|e| {
        let offset = e.span().map_or(0, |s| s.start).min(text.len());
        let before = text.get(..offset).unwrap_or_default();
        let line = before.matches('\n').count() + 1;
        let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        SyntaxError {
            line,
            column,
            // toml puts its "expected ..." hint on a second line: keep one problem per line.
            message: e.message().trim().replace('\n', "; "),
        }
    })
}

#[cfg(test)]
mod documented;
#[cfg(test)]
mod tests;
