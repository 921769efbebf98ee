//! The `[[transforms]]` array as written, validated without I/O into [`Transforms`]: every
//! problem reported with its key (`transforms[2].condition: at character 14: unknown operator
//! '=~'`), including keys that belong to another `type`.

use serde::Deserialize;
use sluice_api::{from_toml_partial, join_key, ConfigProblem, Secret};
use toml::Value;

use super::columns::{ColumnsMode, ColumnsTransform};
use super::filter::FilterTransform;
use super::mask::{MaskMode, MaskTransform};
use super::outbox::{
    OpInvalidBehavior, OutboxTransform, DEFAULT_FIELD_EVENT_ID, DEFAULT_FIELD_EVENT_KEY,
    DEFAULT_FIELD_EVENT_PAYLOAD, DEFAULT_ROUTE_BY_FIELD, DEFAULT_ROUTE_TOPIC_REGEX,
    DEFAULT_ROUTE_TOPIC_REPLACEMENT,
};
use super::predicate::Predicate;
use super::scope::{ColumnSelector, TableScope};
use super::unwrap::{AddedField, DeleteHandling, UnwrapTransform, DEFAULT_ADD_FIELDS_PREFIX};
use super::{EventTransform, RecordTransform, Transforms};
use crate::schema::{anchored_regex, avro_name};

/// The longest `mask_length`: a mask is a marker, not a payload.
const MAX_MASK_LENGTH: i64 = 1024;

/// The `type`s, as listed in errors.
const TYPES: &str = "\"columns\", \"mask\", \"filter\", \"unwrap\" or \"outbox\"";

/// One `[[transforms]]` table as written. Which keys apply depends on `type`.
#[derive(Debug, Default, Deserialize)]
pub struct RawTransform {
    /// Required: columns | mask | filter | unwrap | outbox.
    #[serde(rename = "type")]
    pub kind: Option<String>,
    /// columns, mask, filter, unwrap: `schema.table` patterns in scope. Default: every table.
    pub tables: Option<Vec<String>>,
    /// columns: the only columns kept (`column` or `schema.table.column`).
    pub include: Option<Vec<String>>,
    /// columns: the columns dropped.
    pub exclude: Option<Vec<String>>,
    /// mask: the columns masked or hashed. Required.
    pub columns: Option<Vec<String>>,
    /// mask: "mask" (asterisks) or "hash" (SHA-256 hex). Default "mask".
    pub mode: Option<String>,
    /// mask, mode "mask": the number of asterisks. Default: [`super::mask::DEFAULT_MASK`].
    pub mask_length: Option<i64>,
    /// mask, mode "hash": text hashed before each value. Default: none.
    pub salt: Option<String>,
    /// filter: the condition events must meet to be kept. Required.
    pub condition: Option<String>,
    /// unwrap: drop | rewrite | none. Default "drop" (Debezium's).
    pub delete_handling_mode: Option<String>,
    /// unwrap: no tombstone after deletes. Default true.
    pub drop_tombstones: Option<bool>,
    /// unwrap: envelope and source fields added to the row. Default none.
    pub add_fields: Option<Vec<String>>,
    /// unwrap: prefix of added field names. Default [`DEFAULT_ADD_FIELDS_PREFIX`].
    pub add_fields_prefix: Option<String>,
    /// outbox: the outbox table, `schema.table`. Required.
    pub table: Option<String>,
    /// outbox: the event id column. Default [`DEFAULT_FIELD_EVENT_ID`].
    pub table_field_event_id: Option<String>,
    /// outbox: the record key column. Default [`DEFAULT_FIELD_EVENT_KEY`].
    pub table_field_event_key: Option<String>,
    /// outbox: the record value column. Default [`DEFAULT_FIELD_EVENT_PAYLOAD`].
    pub table_field_event_payload: Option<String>,
    /// outbox: the column naming the topic. Default [`DEFAULT_ROUTE_BY_FIELD`].
    pub route_by_field: Option<String>,
    /// outbox: regex over the route column. Default [`DEFAULT_ROUTE_TOPIC_REGEX`].
    pub route_topic_regex: Option<String>,
    /// outbox: the topic, `${routedByValue}` being the regex group. Default
    /// [`DEFAULT_ROUTE_TOPIC_REPLACEMENT`].
    pub route_topic_replacement: Option<String>,
    /// outbox: warn | error on an update of an outbox row. Default "warn".
    pub table_op_invalid_behavior: Option<String>,
}

/// The keys each type takes besides `type`.
fn keys_of(kind: &str) -> &'static [&'static str] {
    match kind {
        "columns" => &["tables", "include", "exclude"],
        "mask" => &["tables", "columns", "mode", "mask_length", "salt"],
        "filter" => &["tables", "condition"],
        "unwrap" => &[
            "tables",
            "delete_handling_mode",
            "drop_tombstones",
            "add_fields",
            "add_fields_prefix",
        ],
        "outbox" => &[
            "table",
            "table_field_event_id",
            "table_field_event_key",
            "table_field_event_payload",
            "route_by_field",
            "route_topic_regex",
            "route_topic_replacement",
            "table_op_invalid_behavior",
        ],
        _ => &[],
    }
}

/// Validate the `transforms` value (an array of tables) at key `prefix`; absent means none.
pub fn validate_transforms(
    value: Option<Value>,
    prefix: &str,
) -> Result<Transforms, Vec<ConfigProblem>> {
    let entries = match value {
        None => return Ok(Transforms::default()),
        Some(Value::Array(entries)) => entries,
        Some(other) => {
            return Err(vec![ConfigProblem::new(
                prefix,
                format!(
                    "expected an array of tables ([[transforms]]), found {}",
                    other.type_str()
                ),
            )])
        }
    };
    let mut problems = Vec::new();
    let mut transforms = Transforms::default();
    let mut first_record: Option<usize> = None;
    for (index, entry) in entries.into_iter().enumerate() {
        let at = format!("{prefix}[{index}]");
        let given: Vec<String> = match &entry {
            Value::Table(table) => table.keys().cloned().collect(),
            _ => Vec::new(),
        };
        let (raw, found) = from_toml_partial::<RawTransform>(entry, &at);
        problems.extend(found);
        let Some(raw) = raw else { continue };
        let Some(kind) = raw.kind.clone() else {
            problems.push(ConfigProblem::missing(
                join_key(&at, "type"),
                &format!("the transform: {TYPES}"),
            ));
            continue;
        };
        if keys_of(&kind).is_empty() {
            problems.push(ConfigProblem::new(
                join_key(&at, "type"),
                format!("unknown transform {kind:?}: expected {TYPES}"),
            ));
            continue;
        }
        for key in &given {
            if is_field(key) && !keys_of(&kind).contains(&key.as_str()) {
                problems.push(ConfigProblem::new(
                    join_key(&at, key),
                    format!(
                        "not a key of type {kind:?} (it takes {})",
                        keys_of(&kind).join(", ")
                    ),
                ));
            }
        }
        let mut local = Vec::new();
        let scope = TableScope(raw.tables.clone().unwrap_or_default());
        let (event, record) = match kind.as_str() {
            "columns" => (
                columns(raw, scope, &at, &mut local).map(EventTransform::Columns),
                None,
            ),
            "mask" => (
                mask(raw, scope, &at, &mut local).map(EventTransform::Mask),
                None,
            ),
            "filter" => (
                filter(raw, scope, &at, &mut local).map(EventTransform::Filter),
                None,
            ),
            "unwrap" => (
                None,
                unwrap(raw, scope, &at, &mut local).map(RecordTransform::Unwrap),
            ),
            _ => (
                None,
                outbox(raw, &at, &mut local).map(RecordTransform::Outbox),
            ),
        };
        let is_record = matches!(kind.as_str(), "unwrap" | "outbox");
        match first_record {
            Some(first) if !is_record => local.push(ConfigProblem::new(
                join_key(&at, "type"),
                format!(
                    "a {kind} transform must come before {prefix}[{first}]: unwrap and outbox \
                     shape the Kafka record after every event transform"
                ),
            )),
            None if is_record => first_record = Some(index),
            _ => {}
        }
        if local.is_empty() {
            transforms.events.extend(event);
            transforms.records.extend(record);
        }
        problems.extend(local);
    }
    if problems.is_empty() {
        Ok(transforms)
    } else {
        Err(problems)
    }
}

/// Whether `key` is a field of [`RawTransform`] (unknown keys are reported by the parser).
fn is_field(key: &str) -> bool {
    ["columns", "mask", "filter", "unwrap", "outbox"]
        .iter()
        .any(|kind| keys_of(kind).contains(&key))
}

/// A required, non-empty list of column selectors.
fn selectors(
    list: Option<Vec<String>>,
    key: &str,
    what: &str,
    problems: &mut Vec<ConfigProblem>,
) -> Option<Vec<ColumnSelector>> {
    let Some(list) = list else {
        problems.push(ConfigProblem::missing(key, what));
        return None;
    };
    if list.is_empty() {
        problems.push(ConfigProblem::new(key, "must list at least one column"));
        return None;
    }
    let mut out = Vec::with_capacity(list.len());
    for (i, text) in list.iter().enumerate() {
        match ColumnSelector::parse(text) {
            Ok(selector) => out.push(selector),
            Err(message) => problems.push(ConfigProblem::new(format!("{key}[{i}]"), message)),
        }
    }
    (out.len() == list.len()).then_some(out)
}

fn columns(
    raw: RawTransform,
    scope: TableScope,
    at: &str,
    problems: &mut Vec<ConfigProblem>,
) -> Option<ColumnsTransform> {
    let (mode, list, key) = match (raw.include, raw.exclude) {
        (Some(_), Some(_)) => {
            problems.push(ConfigProblem::new(
                join_key(at, "exclude"),
                "give either include or exclude, not both",
            ));
            return None;
        }
        (Some(list), None) => (ColumnsMode::Include, list, "include"),
        (None, Some(list)) => (ColumnsMode::Exclude, list, "exclude"),
        (None, None) => {
            problems.push(ConfigProblem::missing(
                join_key(at, "exclude"),
                "the columns dropped (exclude) or the only ones kept (include)",
            ));
            return None;
        }
    };
    let columns = selectors(Some(list), &join_key(at, key), "", problems)?;
    Some(ColumnsTransform {
        scope,
        mode,
        columns,
    })
}

fn mask(
    raw: RawTransform,
    scope: TableScope,
    at: &str,
    problems: &mut Vec<ConfigProblem>,
) -> Option<MaskTransform> {
    let columns = selectors(
        raw.columns,
        &join_key(at, "columns"),
        "the columns to mask, e.g. [\"public.customers.email\"]",
        problems,
    );
    let mode = match raw.mode.as_deref().unwrap_or("mask") {
        "mask" => {
            if raw.salt.is_some() {
                problems.push(ConfigProblem::new(
                    join_key(at, "salt"),
                    "only mode = \"hash\" takes a salt",
                ));
            }
            let length = match raw.mask_length {
                None => None,
                Some(n) if (1..=MAX_MASK_LENGTH).contains(&n) => usize::try_from(n).ok(),
                Some(n) => {
                    problems.push(ConfigProblem::new(
                        join_key(at, "mask_length"),
                        format!("{n} is out of range: 1 to {MAX_MASK_LENGTH}"),
                    ));
                    None
                }
            };
            Some(MaskMode::Mask { length })
        }
        "hash" => {
            if raw.mask_length.is_some() {
                problems.push(ConfigProblem::new(
                    join_key(at, "mask_length"),
                    "only mode = \"mask\" takes a mask_length",
                ));
            }
            Some(MaskMode::Hash {
                salt: raw.salt.map(Secret::new),
            })
        }
        other => {
            problems.push(ConfigProblem::new(
                join_key(at, "mode"),
                format!("unknown mode {other:?}: expected \"mask\" or \"hash\""),
            ));
            None
        }
    };
    Some(MaskTransform {
        scope,
        columns: columns?,
        mode: mode?,
    })
}

fn filter(
    raw: RawTransform,
    scope: TableScope,
    at: &str,
    problems: &mut Vec<ConfigProblem>,
) -> Option<FilterTransform> {
    let key = join_key(at, "condition");
    let Some(text) = raw.condition else {
        problems.push(ConfigProblem::missing(
            key,
            "the condition events must meet, e.g. \"op != 'd' and status = 'active'\"",
        ));
        return None;
    };
    match Predicate::parse(&text) {
        Ok(condition) => Some(FilterTransform { scope, condition }),
        Err(e) => {
            problems.push(ConfigProblem::new(key, e.to_string()));
            None
        }
    }
}

fn unwrap(
    raw: RawTransform,
    scope: TableScope,
    at: &str,
    problems: &mut Vec<ConfigProblem>,
) -> Option<UnwrapTransform> {
    let delete_handling = match raw.delete_handling_mode.as_deref() {
        None => Some(DeleteHandling::default()),
        Some(text) => DeleteHandling::parse(text).or_else(|| {
            problems.push(ConfigProblem::new(
                join_key(at, "delete_handling_mode"),
                format!("unknown mode {text:?}: expected \"drop\", \"rewrite\" or \"none\""),
            ));
            None
        }),
    };
    let prefix = raw
        .add_fields_prefix
        .unwrap_or_else(|| DEFAULT_ADD_FIELDS_PREFIX.to_owned());
    let mut add_fields = Vec::new();
    for (i, text) in raw.add_fields.unwrap_or_default().iter().enumerate() {
        let key = format!("{}[{i}]", join_key(at, "add_fields"));
        let name = UnwrapTransform::field_name(&prefix, text);
        match AddedField::parse(text) {
            None => problems.push(ConfigProblem::new(
                key,
                format!(
                    "unknown field {text:?}: expected one of {}",
                    AddedField::NAMES
                ),
            )),
            Some(_) if avro_name(&name) != name => problems.push(ConfigProblem::new(
                join_key(at, "add_fields_prefix"),
                format!("{name:?} is not an Avro field name: letters, digits and '_'"),
            )),
            Some(field) => add_fields.push((field, name)),
        }
    }
    Some(UnwrapTransform {
        scope,
        delete_handling: delete_handling?,
        drop_tombstones: raw.drop_tombstones.unwrap_or(true),
        add_fields,
    })
}

fn outbox(
    raw: RawTransform,
    at: &str,
    problems: &mut Vec<ConfigProblem>,
) -> Option<OutboxTransform> {
    let table = match raw.table {
        Some(t) if t.split('.').count() == 2 && !t.split('.').any(str::is_empty) => Some(t),
        Some(t) => {
            problems.push(ConfigProblem::new(
                join_key(at, "table"),
                format!("{t:?} is not a table: write `schema.table`"),
            ));
            None
        }
        None => {
            problems.push(ConfigProblem::missing(
                join_key(at, "table"),
                "the outbox table, e.g. \"public.outbox\"",
            ));
            None
        }
    };
    let pattern = raw
        .route_topic_regex
        .unwrap_or_else(|| DEFAULT_ROUTE_TOPIC_REGEX.to_owned());
    let regex = match anchored_regex(&pattern) {
        Ok(regex) => Some(regex),
        Err(e) => {
            problems.push(ConfigProblem::new(
                join_key(at, "route_topic_regex"),
                format!(
                    "invalid regex {pattern:?}: {}",
                    e.to_string().replace('\n', " ")
                ),
            ));
            None
        }
    };
    let replacement = raw
        .route_topic_replacement
        .unwrap_or_else(|| DEFAULT_ROUTE_TOPIC_REPLACEMENT.to_owned());
    if replacement.is_empty() {
        problems.push(ConfigProblem::new(
            join_key(at, "route_topic_replacement"),
            "must not be empty",
        ));
    }
    let behavior = match raw.table_op_invalid_behavior.as_deref() {
        None => Some(OpInvalidBehavior::default()),
        Some(text) => OpInvalidBehavior::parse(text).or_else(|| {
            problems.push(ConfigProblem::new(
                join_key(at, "table_op_invalid_behavior"),
                format!("unknown behavior {text:?}: expected \"warn\" or \"error\""),
            ));
            None
        }),
    };
    let mut column = |value: Option<String>, key: &str, default: &str| match value {
        Some(v) if v.is_empty() => {
            problems.push(ConfigProblem::new(join_key(at, key), "must not be empty"));
            v
        }
        Some(v) => v,
        None => default.to_owned(),
    };
    let field_event_id = column(
        raw.table_field_event_id,
        "table_field_event_id",
        DEFAULT_FIELD_EVENT_ID,
    );
    let field_event_key = column(
        raw.table_field_event_key,
        "table_field_event_key",
        DEFAULT_FIELD_EVENT_KEY,
    );
    let field_event_payload = column(
        raw.table_field_event_payload,
        "table_field_event_payload",
        DEFAULT_FIELD_EVENT_PAYLOAD,
    );
    let route_by_field = column(raw.route_by_field, "route_by_field", DEFAULT_ROUTE_BY_FIELD);
    Some(OutboxTransform {
        table: table?,
        field_event_id,
        field_event_key,
        field_event_payload,
        route_by_field,
        route_topic_regex: regex?,
        route_topic_replacement: replacement,
        op_invalid_behavior: behavior?,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The `[[transforms]]` of a TOML document, or its problems as lines.
    pub(crate) fn parse(text: &str) -> Result<Transforms, Vec<String>> {
        let document: toml::Table = text.parse().unwrap();
        validate_transforms(document.get("transforms").cloned(), "transforms")
            .map_err(|problems| problems.iter().map(ToString::to_string).collect())
    }

    #[test]
    fn the_documented_shapes_validate_in_order() {
        let transforms = parse(
            r#"
            [[transforms]]
            type = "columns"
            tables = ["public.customers"]
            exclude = ["ssn"]
            [[transforms]]
            type = "mask"
            columns = ["public.customers.email"]
            mode = "hash"
            salt = "pepper"
            [[transforms]]
            type = "filter"
            condition = "op != 'd' and status = 'active'"
            [[transforms]]
            type = "outbox"
            table = "public.outbox"
            [[transforms]]
            type = "unwrap"
            delete_handling_mode = "rewrite"
            add_fields = ["op", "table", "lsn", "source.ts_ms"]
            "#,
        )
        .unwrap();
        assert_eq!(transforms.events.len(), 3);
        assert_eq!(transforms.records.len(), 2);
        let RecordTransform::Unwrap(unwrap) = &transforms.records[1] else {
            panic!("unwrap second");
        };
        let names: Vec<&str> = unwrap.add_fields.iter().map(|(_, n)| n.as_str()).collect();
        assert_eq!(names, ["__op", "__table", "__lsn", "__source_ts_ms"]);
        assert!(unwrap.drop_tombstones);
        let RecordTransform::Outbox(outbox) = &transforms.records[0] else {
            panic!("outbox first");
        };
        assert_eq!(
            outbox.route_topic_replacement,
            "outbox.event.${routedByValue}"
        );
        assert_eq!(outbox.field_event_key, "aggregateid");
        // The salt never reaches Debug output.
        assert!(!format!("{transforms:?}").contains("pepper"));
        assert_eq!(parse("").unwrap().events.len(), 0);
    }

    #[test]
    fn every_problem_is_reported_with_its_key() {
        let problems = parse(
            r#"
            [[transforms]]
            type = "filter"
            condition = "op != 'd' and status =~ 'x'"
            [[transforms]]
            type = "columns"
            include = ["a"]
            exclude = ["b"]
            [[transforms]]
            type = "mask"
            columns = ["public.email"]
            mode = "blur"
            [[transforms]]
            type = "unwrap"
            delete_handling_mode = "keep"
            add_fields = ["op", "colour"]
            condition = "op = 'c'"
            [[transforms]]
            type = "filter"
            [[transforms]]
            type = "outbox"
            table = "outbox"
            route_topic_regex = "("
            [[transforms]]
            type = "sorcery"
            [[transforms]]
            type = "mask"
            columns = ["x"]
            mask_length = 0
            colour = 1
            "#,
        )
        .unwrap_err();
        assert_eq!(
            problems,
            [
                "transforms[0].condition: at character 22: unknown operator '=~'",
                "transforms[1].exclude: give either include or exclude, not both",
                "transforms[2].columns[0]: \"public.email\" is not a column: write `column` or `schema.table.column`",
                "transforms[2].mode: unknown mode \"blur\": expected \"mask\" or \"hash\"",
                "transforms[3].condition: not a key of type \"unwrap\" (it takes tables, delete_handling_mode, drop_tombstones, add_fields, add_fields_prefix)",
                "transforms[3].delete_handling_mode: unknown mode \"keep\": expected \"drop\", \"rewrite\" or \"none\"",
                &format!("transforms[3].add_fields[1]: unknown field \"colour\": expected one of {}", AddedField::NAMES),
                "transforms[4].condition: missing required key: the condition events must meet, e.g. \"op != 'd' and status = 'active'\"",
                "transforms[4].type: a filter transform must come before transforms[3]: unwrap and outbox shape the Kafka record after every event transform",
                "transforms[5].table: \"outbox\" is not a table: write `schema.table`",
                "transforms[5].route_topic_regex: invalid regex \"(\": regex parse error:     ^(?:()$      ^ error: unclosed group",
                "transforms[6].type: unknown transform \"sorcery\": expected \"columns\", \"mask\", \"filter\", \"unwrap\" or \"outbox\"",
                "transforms[7].colour: unknown key",
                "transforms[7].mask_length: 0 is out of range: 1 to 1024",
                "transforms[7].type: a mask transform must come before transforms[3]: unwrap and outbox shape the Kafka record after every event transform",
            ]
        );
    }
}
