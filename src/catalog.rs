//! The one explicit table of sink connectors: a `[[sink]]` table's `type` -> its config
//! validation and its factory, each line behind the connector's cargo feature.

use sluice_api::{ConfigProblem, Sink};

/// A validated `[[sink]]` entry's connector-specific settings.
#[derive(Clone, Debug)]
pub enum SinkConfig {
    #[cfg(feature = "sink-file")]
    File(sluice_sink_file::FileSinkConfig),
    #[cfg(feature = "sink-memory")]
    Memory(sluice_sink_memory::MemorySinkConfig),
    #[cfg(feature = "sink-kafka")]
    Kafka(sluice_sink_kafka::KafkaSinkConfig),
    #[cfg(feature = "sink-search")]
    Search(Box<sluice_sink_search::SearchSinkConfig>),
    #[cfg(feature = "sink-postgres")]
    Postgres(sluice_sink_postgres::PostgresSinkConfig),
    #[cfg(feature = "sink-clickhouse")]
    ClickHouse(sluice_sink_clickhouse::ClickHouseSinkConfig),
    #[cfg(feature = "sink-lake")]
    Lake(sluice_sink_lake::LakeSinkConfig),
}

/// What every sink may need to know about the pipeline it serves.
#[derive(Clone, Debug)]
pub struct SinkContext {
    /// The pipeline name (the topic prefix).
    pub pipeline: String,
    /// The source database's name.
    pub database: String,
    /// The sink's own name (`[[sink]] name`).
    pub sink: String,
}

/// The sink types this build supports, for error messages.
pub fn sink_types() -> &'static [&'static str] {
    &[
        #[cfg(feature = "sink-file")]
        "file",
        #[cfg(feature = "sink-memory")]
        "memory",
        #[cfg(feature = "sink-kafka")]
        "kafka",
        #[cfg(feature = "sink-search")]
        "search",
        #[cfg(feature = "sink-postgres")]
        "postgres",
        #[cfg(feature = "sink-clickhouse")]
        "clickhouse",
        #[cfg(feature = "sink-lake")]
        "lake",
    ]
}

/// Validate the connector-specific keys of one `[[sink]]` table (`name` and `type` removed).
/// `prefix` is the table's key path for problems, e.g. `sink[1]`.
pub fn validate_sink(
    kind: &str,
    table: toml::Table,
    prefix: &str,
) -> Result<SinkConfig, Vec<ConfigProblem>> {
    let value = toml::Value::Table(table);
    match kind {
        #[cfg(feature = "sink-file")]
        "file" => validate_with::<sluice_sink_file::RawFileSinkConfig, _>(value, prefix, |raw| {
            raw.validate(prefix).map(SinkConfig::File)
        }),
        #[cfg(feature = "sink-memory")]
        "memory" => {
            validate_with::<sluice_sink_memory::RawMemorySinkConfig, _>(value, prefix, |raw| {
                raw.validate(prefix).map(SinkConfig::Memory)
            })
        }
        #[cfg(feature = "sink-kafka")]
        "kafka" => {
            validate_with::<sluice_sink_kafka::RawKafkaSinkConfig, _>(value, prefix, |raw| {
                raw.validate(prefix).map(SinkConfig::Kafka)
            })
        }
        #[cfg(feature = "sink-search")]
        "search" => {
            validate_with::<sluice_sink_search::RawSearchSinkConfig, _>(value, prefix, |raw| {
                raw.validate(prefix)
                    .map(|cfg| SinkConfig::Search(Box::new(cfg)))
            })
        }
        #[cfg(feature = "sink-postgres")]
        "postgres" => {
            validate_with::<sluice_sink_postgres::RawPostgresSinkConfig, _>(value, prefix, |raw| {
                raw.validate(prefix).map(SinkConfig::Postgres)
            })
        }
        #[cfg(feature = "sink-clickhouse")]
        "clickhouse" => validate_with::<sluice_sink_clickhouse::RawClickHouseSinkConfig, _>(
            value,
            prefix,
            |raw| raw.validate(prefix).map(SinkConfig::ClickHouse),
        ),
        #[cfg(feature = "sink-lake")]
        "lake" => validate_with::<sluice_sink_lake::RawLakeSinkConfig, _>(value, prefix, |raw| {
            raw.validate(prefix).map(SinkConfig::Lake)
        }),
        other => Err(vec![ConfigProblem {
            key: format!("{prefix}.type"),
            message: format!(
                "unknown sink type {other:?}; this build supports: {}",
                sink_types().join(", ")
            ),
        }]),
    }
}

/// Parse a connector's raw keys and validate them, reporting the problems of both steps: an
/// unknown key does not hide a missing one. A key already reported by parsing is not reported
/// again by validation.
#[allow(dead_code)] // unused when a build has no sink features
fn validate_with<R: serde::de::DeserializeOwned + Default, C>(
    value: toml::Value,
    prefix: &str,
    validate: impl FnOnce(R) -> Result<C, Vec<ConfigProblem>>,
) -> Result<C, Vec<ConfigProblem>> {
    let (raw, mut problems) = sluice_api::from_toml_partial::<R>(value, prefix);
    match validate(raw.unwrap_or_default()) {
        Ok(config) if problems.is_empty() => Ok(config),
        Ok(_) => Err(problems),
        Err(found) => {
            for problem in found {
                if !problems.iter().any(|p| p.key == problem.key) {
                    problems.push(problem);
                }
            }
            Err(problems)
        }
    }
}

/// Build a sink from its validated settings.
pub async fn build_sink(
    config: &SinkConfig,
    context: &SinkContext,
) -> anyhow::Result<Box<dyn Sink>> {
    let _ = context;
    Ok(match config {
        #[cfg(feature = "sink-file")]
        SinkConfig::File(cfg) => {
            let ctx = sluice_sink_file::EventContext {
                pipeline: context.pipeline.clone(),
                database: context.database.clone(),
            };
            Box::new(sluice_sink_file::FileSink::open(cfg, ctx).await?)
        }
        #[cfg(feature = "sink-memory")]
        SinkConfig::Memory(cfg) => Box::new(sluice_sink_memory::MemorySink::new(cfg).0),
        #[cfg(feature = "sink-kafka")]
        SinkConfig::Kafka(cfg) => Box::new(sluice_sink_kafka::KafkaSink::new(
            cfg,
            &context.pipeline,
            &context.sink,
        )?),
        #[cfg(feature = "sink-search")]
        SinkConfig::Search(cfg) => Box::new(
            sluice_sink_search::SearchSink::new(cfg, &context.sink, &context.pipeline).await?,
        ),
        #[cfg(feature = "sink-postgres")]
        SinkConfig::Postgres(cfg) => Box::new(sluice_sink_postgres::PostgresSink::new(
            context.sink.clone(),
            cfg,
        )),
        #[cfg(feature = "sink-clickhouse")]
        SinkConfig::ClickHouse(cfg) => Box::new(sluice_sink_clickhouse::ClickHouseSink::new(
            context.sink.clone(),
            cfg,
        )?),
        #[cfg(feature = "sink-lake")]
        SinkConfig::Lake(cfg) => {
            Box::new(sluice_sink_lake::LakeSink::new(context.sink.clone(), cfg)?)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unknown_sink_type_names_the_supported_ones() {
        let problems = validate_sink("carrier-pigeon", toml::Table::new(), "sink[0]").unwrap_err();
        assert_eq!(problems[0].key, "sink[0].type");
        assert!(
            problems[0].message.contains("file"),
            "{}",
            problems[0].message
        );
    }

    #[test]
    fn a_file_sink_validates_its_own_keys() {
        let mut table = toml::Table::new();
        table.insert("fsync".into(), toml::Value::String("yes".into()));
        table.insert("colour".into(), toml::Value::String("red".into()));
        let problems = validate_sink("file", table, "sink[1]").unwrap_err();
        let keys: Vec<&str> = problems.iter().map(|p| p.key.as_str()).collect();
        assert!(keys.contains(&"sink[1].colour"), "{keys:?}");
        assert!(keys.contains(&"sink[1].fsync"), "{keys:?}");
        assert!(
            keys.contains(&"sink[1].path"),
            "an unknown key does not hide a missing one: {keys:?}"
        );
    }

    #[cfg(feature = "sink-search")]
    #[test]
    fn a_search_sink_validates_its_own_keys() {
        let table: toml::Table = toml::from_str(
            "url = 'http://127.0.0.1:9200'\ndead_letter = { type = 'file', path = 'dead.jsonl' }",
        )
        .unwrap();
        let SinkConfig::Search(cfg) = validate_sink("search", table, "sink[0]").unwrap() else {
            panic!("a search sink config");
        };
        assert_eq!(cfg.url, "http://127.0.0.1:9200");
        assert!(cfg.dead_letter.is_some());
        let table: toml::Table = toml::from_str("urll = 'x'").unwrap();
        let problems = validate_sink("search", table, "sink[0]").unwrap_err();
        let keys: Vec<&str> = problems.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(keys, ["sink[0].urll", "sink[0].url"]);
    }

    #[cfg(feature = "sink-postgres")]
    #[test]
    fn a_postgres_sink_validates_its_connection_url() {
        let mut table = toml::Table::new();
        table.insert("connection".into(), toml::Value::String("mysql://x".into()));
        let problems = validate_sink("postgres", table, "sink[0]").unwrap_err();
        assert_eq!(problems[0].key, "sink[0].connection");
    }

    #[cfg(feature = "sink-clickhouse")]
    #[test]
    fn a_clickhouse_sink_needs_its_url() {
        let problems = validate_sink("clickhouse", toml::Table::new(), "sink[2]").unwrap_err();
        assert_eq!(problems[0].key, "sink[2].url");
    }

    #[cfg(feature = "sink-lake")]
    #[test]
    fn a_lake_sink_needs_its_location() {
        let problems = validate_sink("lake", toml::Table::new(), "sink[1]").unwrap_err();
        assert_eq!(problems[0].key, "sink[1].location");
    }
}
