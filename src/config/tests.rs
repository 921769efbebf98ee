//! Whole-document tests: the shipped examples, malformed files, environment overrides, and
//! secrets staying out of `Debug`.

use std::time::Duration;

use sluice_source_postgres::config::{PublicationAutocreate, SnapshotMode};

use super::*;
use crate::catalog::SinkConfig;

const EXAMPLE: &str = include_str!("../../config/sluice.example.toml");
const MINIMAL: &str = include_str!("../../config/minimal.toml");

fn no_env() -> Vec<(String, String)> {
    Vec::new()
}

fn env(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn problem_lines(problems: &ConfigProblems) -> Vec<String> {
    problems.0.iter().map(ToString::to_string).collect()
}

#[test]
fn the_example_config_parses_with_every_key() {
    let cfg = Config::from_toml_str(EXAMPLE, no_env()).unwrap_or_else(|p| panic!("{p}"));
    assert_eq!(cfg.pipeline.name, "inventory");
    assert_eq!(cfg.pipeline.max_batch_wait, Duration::from_millis(50));
    assert_eq!(cfg.source.slot, "sluice_inventory");
    assert_eq!(
        cfg.source.publication_autocreate,
        PublicationAutocreate::Filtered
    );
    assert_eq!(cfg.source.snapshot_mode, SnapshotMode::Initial);
    assert_eq!(cfg.source.connection.dbname, "app");
    assert_eq!(cfg.sinks.len(), 2);
    assert_eq!(
        (cfg.sinks[0].name.as_str(), cfg.sinks[0].kind.as_str()),
        ("audit", "file")
    );
    assert_eq!(
        (cfg.sinks[1].name.as_str(), cfg.sinks[1].kind.as_str()),
        ("debug", "memory")
    );
    assert_eq!(cfg.log, LogConfig::default());
    assert_eq!(cfg.transforms.events.len(), 3);
    assert_eq!(cfg.transforms.records.len(), 2);
}

#[test]
fn the_minimal_config_parses_and_takes_every_default() {
    let cfg = Config::from_toml_str(MINIMAL, no_env()).unwrap_or_else(|p| panic!("{p}"));
    assert_eq!(cfg.pipeline.max_batch_events, DEFAULT_MAX_BATCH_EVENTS);
    assert_eq!(cfg.pipeline.shutdown_timeout, Duration::from_secs(30));
    assert_eq!(cfg.source.slot, "sluice_inventory");
    assert_eq!(cfg.source.publication, "sluice_inventory");
    assert_eq!(cfg.source.tables, ["public.*"]);
    assert_eq!(cfg.source.stream_buffer_bytes, 64 << 20);
    assert_eq!(cfg.source.heartbeat_interval, None);
    assert_eq!(cfg.sinks.len(), 1);
    assert!(matches!(cfg.sinks[0].config, SinkConfig::File(_)));
}

#[test]
fn every_problem_is_listed_at_once_with_its_key() {
    let text = r#"
        [pipeline]
        max_batch_events = "many"
        colour = "blue"

        [source]
        connection = "postgres://u@localhost/db"
        snapshot_mode = "sometimes"
        tabels = ["public.*"]

        [[sink]]
        name = "a"
        type = "file"
        path = "a.jsonl"
        fsync = "yes"

        [[sink]]
        name = "a"
        type = "memory"

        [[sink]]
        type = "file"
        path = "c.jsonl"

        [extra]
    "#;
    let problems = Config::from_toml_str(text, no_env()).unwrap_err();
    let lines = problem_lines(&problems);
    for expected in [
        "extra: unknown key",
        "pipeline.max_batch_events: expected u64, found string \"many\"",
        "pipeline.colour: unknown key",
        "pipeline.name: missing required key: the pipeline name, used as the topic prefix",
        "source.tabels: unknown key; did you mean `tables`?",
        "source.snapshot_mode: unknown value \"sometimes\"; expected one of: initial, never, initial_only, always, when_needed",
        "sink[0].fsync: expected a boolean, found string \"yes\"",
        "sink[1].name: duplicate sink name \"a\" (also sink[0])",
        "sink[2].name: missing required key: a name unique among the sinks",
    ] {
        assert!(lines.contains(&expected.to_owned()), "missing {expected:?} in {lines:#?}");
    }
    assert_eq!(lines.len(), 9, "{lines:#?}");
}

#[test]
fn a_missing_sink_and_source_are_reported() {
    let problems = Config::from_toml_str("[pipeline]\nname = \"p\"", no_env()).unwrap_err();
    let keys: Vec<&str> = problems.0.iter().map(|p| p.key.as_str()).collect();
    assert_eq!(keys, ["source.connection", "sink"]);
}

#[test]
fn a_syntax_error_names_its_line_and_column() {
    let problems = Config::from_toml_str("[pipeline]\nname = \"p\nx", no_env()).unwrap_err();
    assert_eq!(problems.0.len(), 1);
    assert!(
        problems.0[0]
            .message
            .starts_with("invalid TOML at line 2, column "),
        "{problems}"
    );
}

#[test]
fn the_environment_overrides_the_password_and_a_sink_path() {
    let cfg = Config::from_toml_str(
        MINIMAL,
        env(&[
            ("SLUICE__SOURCE__PASSWORD", "hunter2"),
            ("SLUICE__SINK__0__PATH", "/data/out.jsonl"),
            ("SLUICE__SINK__0__FSYNC", "false"),
            ("SLUICE__PIPELINE__MAX_BATCH_EVENTS", "100"),
        ]),
    )
    .unwrap_or_else(|p| panic!("{p}"));
    let password = cfg
        .source
        .connection
        .password
        .as_ref()
        .map(|s| s.expose().to_owned());
    assert_eq!(password.as_deref(), Some("hunter2"));
    assert_eq!(cfg.pipeline.max_batch_events, 100);
    let SinkConfig::File(file) = &cfg.sinks[0].config else {
        panic!("not a file sink")
    };
    // The target type is not re-exported by the file sink crate: compare its Debug form.
    assert!(
        format!("{:?}", file.target).contains("\"/data/out.jsonl\""),
        "{file:?}"
    );
    assert!(!file.fsync);
}

#[test]
fn an_environment_value_of_the_wrong_type_is_reported_under_its_key() {
    let problems = Config::from_toml_str(
        MINIMAL,
        env(&[("SLUICE__SOURCE__STATUS_INTERVAL_MS", "soon")]),
    )
    .unwrap_err();
    assert_eq!(
        problem_lines(&problems),
        ["source.status_interval_ms: expected u64, found string \"soon\""]
    );
}

#[test]
fn passwords_never_appear_in_debug_or_errors() {
    let text = MINIMAL.replace("replicator@", "replicator:urlsecret@");
    let cfg = Config::from_toml_str(&text, env(&[("SLUICE__SOURCE__PASSWORD", "envsecret")]))
        .unwrap_or_else(|p| panic!("{p}"));
    let shown = format!("{cfg:?}");
    assert!(
        !shown.contains("envsecret") && !shown.contains("urlsecret"),
        "{shown}"
    );

    // A problem elsewhere in the same file does not echo the password either.
    let broken = text.replace("name = \"inventory\"", "name = \"in ventory\"");
    let problems =
        Config::from_toml_str(&broken, env(&[("SLUICE__SOURCE__PASSWORD", "envsecret")]))
            .unwrap_err();
    let shown = problems.to_string();
    assert!(
        !shown.contains("envsecret") && !shown.contains("urlsecret"),
        "{shown}"
    );
}

#[test]
fn loading_distinguishes_unreadable_files_from_syntax_errors() {
    let dir = tempfile::tempdir().unwrap();
    let missing = Config::load(&dir.path().join("nope.toml")).unwrap_err();
    assert!(matches!(missing, ConfigError::Read { .. }), "{missing}");
    let path = dir.path().join("bad.toml");
    std::fs::write(&path, "[pipeline\n").unwrap();
    match Config::load(&path).unwrap_err() {
        ConfigError::Syntax { line, column, .. } => assert_eq!((line, column), (1, 10)),
        other => panic!("expected a syntax error, got {other}"),
    }
}

#[cfg(feature = "sink-kafka")]
#[test]
fn a_kafka_sink_without_a_registry_is_a_problem_at_load_time() {
    let text = MINIMAL.replace(
        "type = \"file\"\npath = \"events.jsonl\"",
        "type = \"kafka\"\nbrokers = \"127.0.0.1:9092\"",
    );
    let problems = Config::from_toml_str(&text, no_env()).expect_err("no [registry]");
    let lines = problem_lines(&problems);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0].starts_with("sink[0].type: a kafka sink writes Avro records"),
        "{lines:?}"
    );
    let with_registry = format!("{text}\n[registry]\n");
    Config::from_toml_str(&with_registry, no_env()).unwrap_or_else(|p| panic!("{p}"));
}
