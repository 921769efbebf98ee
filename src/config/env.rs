//! Environment overrides: `SLUICE__SECTION__KEY=value` layered over the parsed TOML document
//! before validation, so an override is validated (and reported) exactly like a file key.
//!
//! Levels are separated by a double underscore and lowercased: `SLUICE__SOURCE__PASSWORD` sets
//! `source.password`, `SLUICE__PIPELINE__NAME` sets `pipeline.name`, and a number selects an
//! array element: `SLUICE__SINK__0__PATH` sets `sink[0].path` (the index one past the last
//! sink adds a sink).
//!
//! Values stay strings, except TOML inline arrays (`["public.orders","public.items"]`). A key
//! that expects a boolean or a number parses the string as one when validated (see
//! `sluice_api::from_toml`), which gives the same result as parsing every value as a TOML scalar
//! while keeping a password like `12345` or `1e5` exactly as typed.
//!
//! This is layered over `toml::Value` by hand rather than with the `config` crate: that crate
//! loses the key path and type of a bad value in its errors, cannot address an element of an
//! array of tables (`[[sink]]`) from the environment, and would hide unknown keys, which the
//! one-pass validation must list.

use sluice_api::ConfigProblem;
use toml::{Table, Value};

/// The prefix of every override variable.
pub const ENV_PREFIX: &str = "SLUICE__";

/// Apply every `SLUICE__*` variable of `env` to `document`. Variables that cannot be applied
/// (empty level, an index past the end, a level that is not a table) are problems keyed
/// `env.<VARIABLE>`; the value is never shown, since it may be a secret.
pub fn apply_overrides(
    document: &mut Table,
    env: impl IntoIterator<Item = (String, String)>,
) -> Vec<ConfigProblem> {
    let mut vars: Vec<(String, String)> = env
        .into_iter()
        .filter(|(name, _)| name.starts_with(ENV_PREFIX))
        .collect();
    // Sorted so that `SINK__0__...` comes before `SINK__1__...` whatever the environment's
    // order, and results do not depend on it.
    vars.sort();
    let mut problems = Vec::new();
    for (name, raw) in vars {
        let path: Vec<String> = name[ENV_PREFIX.len()..]
            .split("__")
            .map(str::to_ascii_lowercase)
            .collect();
        if path.iter().any(String::is_empty) {
            problems.push(env_problem(
                &name,
                "empty level: separate levels with exactly two underscores",
            ));
            continue;
        }
        if let Err(message) = set_path(document, &path, parse_value(&raw)) {
            problems.push(env_problem(&name, &message));
        }
    }
    problems
}

fn env_problem(name: &str, message: &str) -> ConfigProblem {
    ConfigProblem::new(format!("env.{name}"), message)
}

/// A TOML inline array when the text is one, else the string itself.
fn parse_value(raw: &str) -> Value {
    if raw.trim_start().starts_with('[') {
        if let Ok(mut table) = format!("v = {raw}").parse::<Table>() {
            if let Some(array @ Value::Array(_)) = table.remove("v") {
                return array;
            }
        }
    }
    Value::String(raw.to_owned())
}

/// Set `path` (at least one level) to `value`, creating tables (and an array for a level
/// followed by an index) on the way.
fn set_path(document: &mut Table, path: &[String], value: Value) -> Result<(), String> {
    let (first, rest) = path.split_first().ok_or("no key after the prefix")?;
    let Some((next, _)) = rest.split_first() else {
        document.insert(first.clone(), value);
        return Ok(());
    };
    let child = document.entry(first.clone()).or_insert_with(|| {
        if next.parse::<usize>().is_ok() {
            Value::Array(Vec::new())
        } else {
            Value::Table(Table::new())
        }
    });
    set_in_value(child, first, rest, value)
}

fn set_in_value(node: &mut Value, at: &str, path: &[String], value: Value) -> Result<(), String> {
    match node {
        Value::Table(table) => set_path(table, path, value),
        Value::Array(items) => {
            let (index, rest) = path.split_first().ok_or("no key after the index")?;
            let index: usize = index
                .parse()
                .map_err(|_| format!("{at} is an array: expected an index, got {index:?}"))?;
            if index == items.len() {
                items.push(Value::Table(Table::new()));
            }
            let len = items.len();
            let item = items.get_mut(index).ok_or_else(|| {
                format!("no {at}[{index}]: there are {len}, so the next index is {len}")
            })?;
            if rest.is_empty() {
                *item = value;
                return Ok(());
            }
            set_in_value(item, &format!("{at}[{index}]"), rest, value)
        }
        _ => Err(format!("{at} is a {}, not a table", node.type_str())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn double_underscores_separate_lowercased_levels() {
        let mut doc: Table = "[source]\nconnection = 'x'".parse().unwrap();
        let problems = apply_overrides(
            &mut doc,
            vars(&[
                ("SLUICE__SOURCE__PASSWORD", "12345"),
                ("SLUICE__PIPELINE__NAME", "inv"),
                ("HOME", "/"),
            ]),
        );
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(doc["source"]["password"].as_str(), Some("12345"));
        assert_eq!(doc["source"]["connection"].as_str(), Some("x"));
        assert_eq!(doc["pipeline"]["name"].as_str(), Some("inv"));
        assert!(!doc.contains_key("home"));
    }

    #[test]
    fn an_index_selects_a_sink_and_the_next_index_adds_one() {
        let mut doc: Table = "[[sink]]\nname = 'a'\npath = 'a.jsonl'".parse().unwrap();
        let problems = apply_overrides(
            &mut doc,
            vars(&[
                ("SLUICE__SINK__0__PATH", "b.jsonl"),
                ("SLUICE__SINK__1__NAME", "c"),
            ]),
        );
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(doc["sink"][0]["path"].as_str(), Some("b.jsonl"));
        assert_eq!(doc["sink"][1]["name"].as_str(), Some("c"));
    }

    #[test]
    fn an_index_past_the_end_is_a_problem_naming_the_variable() {
        let mut doc = Table::new();
        let problems = apply_overrides(&mut doc, vars(&[("SLUICE__SINK__3__PATH", "secret")]));
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].key, "env.SLUICE__SINK__3__PATH");
        assert_eq!(
            problems[0].message,
            "no sink[3]: there are 0, so the next index is 0"
        );
        assert!(!problems[0].to_string().contains("secret"));
    }

    #[test]
    fn inline_arrays_parse_and_other_values_stay_strings() {
        let mut doc = Table::new();
        apply_overrides(
            &mut doc,
            vars(&[
                ("SLUICE__SOURCE__TABLES", r#"["public.a", "public.b"]"#),
                ("SLUICE__SOURCE__PASSWORD", "[not an array"),
                ("SLUICE__SINK__0__FSYNC", "false"),
            ]),
        );
        let tables = doc["source"]["tables"].as_array().unwrap();
        assert_eq!(tables.len(), 2);
        assert_eq!(doc["source"]["password"].as_str(), Some("[not an array"));
        assert_eq!(doc["sink"][0]["fsync"].as_str(), Some("false"));
    }

    #[test]
    fn empty_levels_and_scalars_in_the_way_are_problems() {
        let mut doc: Table = "[pipeline]\nname = 'x'".parse().unwrap();
        let problems = apply_overrides(
            &mut doc,
            vars(&[
                ("SLUICE__PIPELINE____NAME", "y"),
                ("SLUICE__PIPELINE__NAME__X", "y"),
            ]),
        );
        let messages: Vec<String> = problems.iter().map(ToString::to_string).collect();
        assert_eq!(messages.len(), 2, "{messages:?}");
        assert!(messages
            .iter()
            .any(|m| m.contains("name is a string, not a table")));
    }
}
