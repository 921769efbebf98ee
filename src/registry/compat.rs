//! Compatibility levels and the checks they imply, on top of apache-avro's schema resolution
//! rules (`SchemaCompatibility::can_read`). A level says which direction must work (BACKWARD:
//! consumers on the new schema read old data; FORWARD: consumers on old schemas read new data;
//! FULL: both) and against which versions (the latest one, or every live version for the
//! TRANSITIVE forms).

use std::fmt;

use apache_avro::schema_compatibility::SchemaCompatibility;
use apache_avro::Schema;
use serde::{Deserialize, Serialize};

/// A subject's (or the registry's) compatibility level, named as Confluent names them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum CompatibilityLevel {
    /// No check: any schema may follow any other.
    None,
    /// The new schema can read data written with the latest version (the default).
    #[default]
    Backward,
    /// The new schema can read data written with every live version.
    BackwardTransitive,
    /// The latest version can read data written with the new schema.
    Forward,
    /// Every live version can read data written with the new schema.
    ForwardTransitive,
    /// Backward and forward against the latest version.
    Full,
    /// Backward and forward against every live version.
    FullTransitive,
}

impl CompatibilityLevel {
    /// Every level, in the order Confluent documents them.
    pub const ALL: [CompatibilityLevel; 7] = [
        CompatibilityLevel::None,
        CompatibilityLevel::Backward,
        CompatibilityLevel::BackwardTransitive,
        CompatibilityLevel::Forward,
        CompatibilityLevel::ForwardTransitive,
        CompatibilityLevel::Full,
        CompatibilityLevel::FullTransitive,
    ];

    /// The wire name (`BACKWARD_TRANSITIVE`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            CompatibilityLevel::None => "NONE",
            CompatibilityLevel::Backward => "BACKWARD",
            CompatibilityLevel::BackwardTransitive => "BACKWARD_TRANSITIVE",
            CompatibilityLevel::Forward => "FORWARD",
            CompatibilityLevel::ForwardTransitive => "FORWARD_TRANSITIVE",
            CompatibilityLevel::Full => "FULL",
            CompatibilityLevel::FullTransitive => "FULL_TRANSITIVE",
        }
    }

    /// Parse a wire name, ignoring ASCII case as Confluent's registry does.
    pub fn parse(name: &str) -> Option<CompatibilityLevel> {
        Self::ALL
            .into_iter()
            .find(|level| level.as_str().eq_ignore_ascii_case(name.trim()))
    }

    /// Whether the check runs against every live version rather than the latest only.
    pub fn is_transitive(self) -> bool {
        matches!(
            self,
            CompatibilityLevel::BackwardTransitive
                | CompatibilityLevel::ForwardTransitive
                | CompatibilityLevel::FullTransitive
        )
    }

    fn checks_backward(self) -> bool {
        matches!(
            self,
            CompatibilityLevel::Backward
                | CompatibilityLevel::BackwardTransitive
                | CompatibilityLevel::Full
                | CompatibilityLevel::FullTransitive
        )
    }

    fn checks_forward(self) -> bool {
        matches!(
            self,
            CompatibilityLevel::Forward
                | CompatibilityLevel::ForwardTransitive
                | CompatibilityLevel::Full
                | CompatibilityLevel::FullTransitive
        )
    }
}

impl fmt::Display for CompatibilityLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One registered version to check a candidate against.
pub struct ExistingVersion<'a> {
    /// The subject's version number (named in messages).
    pub version: u32,
    /// The version's parsed schema.
    pub schema: &'a Schema,
}

/// Check `candidate` against a subject's live versions (`existing`, oldest first) under
/// `level`: against the latest only, or every one for the transitive levels. Returns one
/// message per broken rule; empty means compatible.
pub fn check_against_subject(
    level: CompatibilityLevel,
    candidate: &Schema,
    existing: &[ExistingVersion<'_>],
) -> Vec<String> {
    let targets: &[ExistingVersion<'_>] = if level.is_transitive() {
        existing
    } else {
        match existing.last() {
            Some(_) => &existing[existing.len() - 1..],
            None => &[],
        }
    };
    targets
        .iter()
        .flat_map(|target| check_pair(level, candidate, target))
        .collect()
}

/// Whether a reader with schema `reader` can read data written with `writer`, by Avro's
/// resolution rules on the underlying types: logical types (`decimal`, `date`,
/// `timestamp-micros`, `uuid`, ...) annotate their underlying type and do not take part, as in
/// Avro's own compatibility checker. (apache-avro's checker rejects every `decimal`, even
/// against itself, so the annotations are taken off before asking it.)
pub fn can_read(writer: &Schema, reader: &Schema) -> Result<(), String> {
    let (writer, reader) = (without_logical_types(writer), without_logical_types(reader));
    SchemaCompatibility::can_read(&writer, &reader).map_err(|e| e.to_string())
}

/// `schema` with every `logicalType` annotation removed (unchanged if it cannot be rebuilt,
/// which only a schema apache-avro printed itself would have to fail).
fn without_logical_types(schema: &Schema) -> Schema {
    fn strip(json: &mut serde_json::Value) {
        match json {
            serde_json::Value::Object(map) => {
                map.remove("logicalType");
                map.values_mut().for_each(strip);
            }
            serde_json::Value::Array(items) => items.iter_mut().for_each(strip),
            _ => {}
        }
    }
    let Ok(mut json) = serde_json::to_value(schema) else {
        return schema.clone();
    };
    strip(&mut json);
    Schema::parse(&json).unwrap_or_else(|_| schema.clone())
}

/// Check `candidate` against one version in the directions `level` asks for (transitivity
/// plays no part when the version is named). Returns one message per broken direction.
pub fn check_pair(
    level: CompatibilityLevel,
    candidate: &Schema,
    target: &ExistingVersion<'_>,
) -> Vec<String> {
    let mut messages = Vec::new();
    if level.checks_backward() {
        // BACKWARD: the new schema is the reader of data the old version wrote.
        if let Err(e) = can_read(target.schema, candidate) {
            messages.push(format!(
                "{level}: the new schema cannot read data written with version {}: {e}",
                target.version
            ));
        }
    }
    if level.checks_forward() {
        // FORWARD: the old version is the reader of data the new schema writes.
        if let Err(e) = can_read(candidate, target.schema) {
            messages.push(format!(
                "{level}: version {} cannot read data written with the new schema: {e}",
                target.version
            ));
        }
    }
    messages
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(fields: &str) -> Schema {
        Schema::parse_str(&format!(
            r#"{{"type":"record","name":"Row","namespace":"test","fields":[{fields}]}}"#
        ))
        .expect("valid test schema")
    }

    const ID: &str = r#"{"name":"id","type":"long"}"#;
    const NAME_REQUIRED: &str = r#"{"name":"name","type":"string"}"#;
    const NAME_OPTIONAL: &str = r#"{"name":"name","type":["null","string"],"default":null}"#;

    fn check(level: CompatibilityLevel, candidate: &Schema, history: &[&Schema]) -> Vec<String> {
        let existing: Vec<ExistingVersion<'_>> = history
            .iter()
            .zip(1..)
            .map(|(schema, version)| ExistingVersion { version, schema })
            .collect();
        check_against_subject(level, candidate, &existing)
    }

    #[test]
    fn levels_parse_from_wire_names_in_any_case() {
        for level in CompatibilityLevel::ALL {
            assert_eq!(CompatibilityLevel::parse(level.as_str()), Some(level));
            assert_eq!(
                CompatibilityLevel::parse(&level.as_str().to_lowercase()),
                Some(level)
            );
        }
        assert_eq!(CompatibilityLevel::parse("SIDEWAYS"), None);
        assert_eq!(CompatibilityLevel::default(), CompatibilityLevel::Backward);
    }

    #[test]
    fn an_added_field_without_default_is_backward_incompatible() {
        let old = record(ID);
        let new = record(&format!("{ID},{NAME_REQUIRED}"));
        let messages = check(CompatibilityLevel::Backward, &new, &[&old]);
        assert_eq!(messages.len(), 1, "{messages:?}");
        assert!(messages[0].contains("version 1"), "{messages:?}");
        assert!(messages[0].contains("name"), "{messages:?}");
        // The old schema can still read what the new one writes: forward holds.
        assert!(check(CompatibilityLevel::Forward, &new, &[&old]).is_empty());
    }

    #[test]
    fn an_added_optional_field_with_default_is_fully_compatible() {
        let old = record(ID);
        let new = record(&format!("{ID},{NAME_OPTIONAL}"));
        for level in CompatibilityLevel::ALL {
            assert!(check(level, &new, &[&old]).is_empty(), "{level}");
        }
    }

    #[test]
    fn removing_a_field_the_old_reader_requires_is_forward_incompatible() {
        let old = record(&format!("{ID},{NAME_REQUIRED}"));
        let new = record(ID);
        assert!(check(CompatibilityLevel::Backward, &new, &[&old]).is_empty());
        let messages = check(CompatibilityLevel::Forward, &new, &[&old]);
        assert_eq!(messages.len(), 1, "{messages:?}");
        assert!(
            messages[0].contains("version 1 cannot read"),
            "{messages:?}"
        );
        assert_eq!(check(CompatibilityLevel::Full, &new, &[&old]).len(), 1);
    }

    #[test]
    fn removing_a_field_with_a_default_is_forward_compatible() {
        let old = record(&format!("{ID},{NAME_OPTIONAL}"));
        let new = record(ID);
        assert!(check(CompatibilityLevel::FullTransitive, &new, &[&old]).is_empty());
    }

    #[test]
    fn a_changed_type_breaks_both_directions_under_full() {
        let old = record(r#"{"name":"id","type":"long"}"#);
        let new = record(r#"{"name":"id","type":"string"}"#);
        assert_eq!(check(CompatibilityLevel::Full, &new, &[&old]).len(), 2);
        assert!(check(CompatibilityLevel::None, &new, &[&old]).is_empty());
    }

    #[test]
    fn type_promotion_is_backward_but_not_forward_compatible() {
        let old = record(r#"{"name":"n","type":"int"}"#);
        let new = record(r#"{"name":"n","type":"long"}"#);
        assert!(check(CompatibilityLevel::Backward, &new, &[&old]).is_empty());
        assert_eq!(check(CompatibilityLevel::Forward, &new, &[&old]).len(), 1);
    }

    #[test]
    fn non_transitive_levels_check_the_latest_version_only() {
        // v1 has a required field, v2 dropped it, v3 adds a different required field with a
        // default: v3 reads v2's data but v1's reader cannot read v3's data.
        let v1 = record(&format!("{ID},{NAME_REQUIRED}"));
        let v2 = record(ID);
        let v3 = record(&format!(
            r#"{ID},{{"name":"email","type":"string","default":""}}"#
        ));
        assert!(check(CompatibilityLevel::Forward, &v3, &[&v1, &v2]).is_empty());
        let messages = check(CompatibilityLevel::ForwardTransitive, &v3, &[&v1, &v2]);
        assert_eq!(messages.len(), 1, "{messages:?}");
        assert!(messages[0].contains("version 1"), "{messages:?}");
    }

    #[test]
    fn backward_transitive_checks_every_version() {
        // v1 had `f` as a string, v2 dropped it, v3 brings it back as an int with a default:
        // v3 reads v2's data (the default fills in) but not v1's strings.
        let v1 = record(&format!(r#"{ID},{{"name":"f","type":"string"}}"#));
        let v2 = record(ID);
        let v3 = record(&format!(r#"{ID},{{"name":"f","type":"int","default":0}}"#));
        assert!(check(CompatibilityLevel::Backward, &v3, &[&v1, &v2]).is_empty());
        let transitive = check(CompatibilityLevel::BackwardTransitive, &v3, &[&v1, &v2]);
        assert_eq!(transitive.len(), 1, "only v1 is broken: {transitive:?}");
        assert!(transitive[0].contains("version 1"), "{transitive:?}");
    }

    #[test]
    fn a_subject_without_versions_accepts_anything() {
        let schema = record(ID);
        for level in CompatibilityLevel::ALL {
            assert!(check(level, &schema, &[]).is_empty());
        }
    }

    const PRICE: &str = r#"{"name":"price","type":["null",{"type":"bytes","scale":2,"precision":12,"connect.name":"org.apache.kafka.connect.data.Decimal","logicalType":"decimal"}],"default":null}"#;
    const DAY: &str = r#"{"name":"day","type":{"type":"int","logicalType":"date"}}"#;

    #[test]
    fn logical_types_read_themselves_and_an_added_optional_field_stays_compatible() {
        let old = record(&format!("{ID},{PRICE},{DAY}"));
        let new = record(&format!("{ID},{PRICE},{DAY},{NAME_OPTIONAL}"));
        assert!(check(CompatibilityLevel::Full, &old, &[&old]).is_empty());
        assert!(check(CompatibilityLevel::Full, &new, &[&old]).is_empty());
        let changed = record(&format!(
            r#"{ID},{{"name":"price","type":["null","long"],"default":null}},{DAY}"#
        ));
        assert_eq!(
            check(CompatibilityLevel::Backward, &changed, &[&old]).len(),
            1
        );
    }
}
