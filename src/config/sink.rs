//! The `[[sink]]` array: each entry's `name` and `type` are read here; the rest of the table
//! goes to the connector catalog, which validates the keys of that `type`.

use sluice_api::{join_key, ConfigProblem};
use toml::Value;

use super::pipeline::{is_valid_name, shown_name, MAX_NAME_CHARS};
use crate::catalog::{self, SinkConfig};

/// One validated `[[sink]]` entry.
#[derive(Clone, Debug)]
pub struct SinkSpec {
    /// Unique among the sinks; names the sink in logs, metrics and checkpoints.
    pub name: String,
    /// The connector (`type` key), e.g. `file`.
    pub kind: String,
    /// The connector's validated settings.
    pub config: SinkConfig,
}

/// Validate the `sink` value (an array of tables) at key `prefix`; at least one is required.
pub fn validate_sinks(
    value: Option<Value>,
    prefix: &str,
) -> Result<Vec<SinkSpec>, Vec<ConfigProblem>> {
    let entries = match value {
        None => {
            return Err(vec![ConfigProblem::missing(
                prefix,
                "at least one [[sink]] table, e.g. [[sink]] name = \"audit\" type = \"file\" path = \"events.jsonl\"",
            )])
        }
        Some(Value::Array(entries)) if entries.is_empty() => {
            return Err(vec![ConfigProblem::new(prefix, "at least one [[sink]] is required")])
        }
        Some(Value::Array(entries)) => entries,
        Some(other) => {
            return Err(vec![ConfigProblem::new(
                prefix,
                format!("expected an array of tables ([[sink]]), found {}", other.type_str()),
            )])
        }
    };
    let mut problems = Vec::new();
    let mut sinks = Vec::with_capacity(entries.len());
    let mut names: Vec<String> = Vec::new();
    for (i, entry) in entries.into_iter().enumerate() {
        let at = format!("{prefix}[{i}]");
        let Value::Table(mut table) = entry else {
            problems.push(ConfigProblem::new(
                at,
                format!("expected a table, found {}", entry.type_str()),
            ));
            continue;
        };
        let name = take_string(
            &mut table,
            &at,
            "name",
            "a name unique among the sinks",
            &mut problems,
        );
        let kind = take_string(
            &mut table,
            &at,
            "type",
            "the connector, e.g. \"file\"",
            &mut problems,
        );
        if let Some(name) = &name {
            if !is_valid_name(name) {
                problems.push(ConfigProblem::new(
                    join_key(&at, "name"),
                    format!(
                        "invalid name {:?}: use at most {MAX_NAME_CHARS} letters, digits, '_', \
                         '.' and '-'",
                        shown_name(name)
                    ),
                ));
            } else if let Some(first) = names.iter().position(|n| n == name) {
                problems.push(ConfigProblem::new(
                    join_key(&at, "name"),
                    format!("duplicate sink name {name:?} (also {prefix}[{first}])"),
                ));
            }
            names.push(name.clone());
        }
        // Without a type there is no telling which keys are right: skip the rest.
        let Some(kind) = kind else { continue };
        match catalog::validate_sink(&kind, table, &at) {
            Ok(config) => {
                if let Some(name) = name {
                    sinks.push(SinkSpec { name, kind, config });
                }
            }
            Err(found) => problems.extend(found),
        }
    }
    if problems.is_empty() {
        Ok(sinks)
    } else {
        Err(problems)
    }
}

/// Remove and return a required string key of a sink table.
fn take_string(
    table: &mut toml::Table,
    at: &str,
    key: &str,
    what: &str,
    problems: &mut Vec<ConfigProblem>,
) -> Option<String> {
    match table.remove(key) {
        Some(Value::String(s)) if !s.is_empty() => Some(s),
        Some(Value::String(_)) => {
            problems.push(ConfigProblem::new(join_key(at, key), "must not be empty"));
            None
        }
        Some(other) => {
            problems.push(ConfigProblem::new(
                join_key(at, key),
                format!("expected a string, found {}", other.type_str()),
            ));
            None
        }
        None => {
            problems.push(ConfigProblem::missing(join_key(at, key), what));
            None
        }
    }
}
