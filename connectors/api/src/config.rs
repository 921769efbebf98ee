//! Config problems shared by every connector's validation, and the one way raw TOML becomes a
//! connector's raw serde struct: [`from_toml`].
//!
//! Validation in sluice is two steps without I/O: TOML -> a raw struct whose fields are all
//! `Option` (so that a missing required key is reported by validation, together with every
//! other problem, instead of by serde one at a time), then raw -> validated. This module does the
//! first step and reports, each under its full key path:
//! - every unknown key (with a "did you mean" when a known key is one or two edits away);
//! - every value of the wrong type (`sink[1].fsync: expected a boolean, found string "yes"`).
//!
//! The deserializer is written here, over `toml::Value`, rather than wrapping toml's own with
//! `serde_ignored`: it knows each struct's field names (for the suggestions), tracks the key
//! path for type errors as well as for unknown keys, and lets a wrong-typed key be dropped and
//! deserialization resumed, so that one pass lists every problem.
//!
//! Environment overrides arrive as strings (the environment has no types): a string value is
//! accepted where a boolean, integer or float is expected when its text parses as one
//! (`"false"`, `"8"`, `"0.5"`). A string target never coerces, so a password of `12345` stays
//! the text `12345`.

use std::fmt;

use serde::de::{self, DeserializeOwned, Error as _, IntoDeserializer, Visitor};
use toml::Value;

/// One problem in the configuration: the TOML key and the constraint broken, in words.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigProblem {
    /// Full key path, e.g. `sink[1].fsync`; empty for the document itself.
    pub key: String,
    /// The constraint broken, lowercase, e.g. `expected a boolean, found string "yes"`.
    pub message: String,
}

impl ConfigProblem {
    /// A problem at `key`.
    pub fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigProblem {
            key: key.into(),
            message: message.into(),
        }
    }

    /// A required key that is absent; `what` says what the key holds.
    pub fn missing(key: impl Into<String>, what: &str) -> Self {
        ConfigProblem::new(key, format!("missing required key: {what}"))
    }
}

impl fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.key.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.key, self.message)
        }
    }
}

/// Every problem found in one configuration, as an error. `Display` lists them one per line.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct ConfigProblems(pub Vec<ConfigProblem>);

impl fmt::Display for ConfigProblems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, problem) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{problem}")?;
        }
        Ok(())
    }
}

/// `prefix.key`, or `key` alone when `prefix` is empty: the key path of a problem.
pub fn join_key(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_owned()
    } else {
        format!("{prefix}.{key}")
    }
}

/// Deserialize `value` into the raw struct `T`, reporting every unknown key and every wrong
/// type under `prefix` (the table's own key path, e.g. `sink[1]`; empty for the document).
/// Any problem makes this fail; see [`from_toml_partial`] to keep what did deserialize.
pub fn from_toml<T: DeserializeOwned>(value: Value, prefix: &str) -> Result<T, Vec<ConfigProblem>> {
    match from_toml_partial(value, prefix) {
        (Some(raw), problems) if problems.is_empty() => Ok(raw),
        (_, problems) => Err(problems),
    }
}

/// Like [`from_toml`], but also returns the raw struct when it could be built: a key of the
/// wrong type is reported, dropped (so an `Option` field reads as absent) and deserialization
/// resumes. Validation can then go on to report its own problems in the same pass; a caller
/// should drop later problems for a key that already has one (the dropped key will look
/// missing). Returns `None` only when the value cannot be the struct at all (not a table).
pub fn from_toml_partial<T: DeserializeOwned>(
    value: Value,
    prefix: &str,
) -> (Option<T>, Vec<ConfigProblem>) {
    let mut value = value;
    let mut problems = Vec::new();
    // Each retry removes one key, so the loop ends; the cap is only a guard against a
    // deserializer that keeps failing at a path that cannot be removed.
    for _ in 0..256 {
        let mut unknown = Vec::new();
        let result = T::deserialize(ValueDe {
            value: value.clone(),
            path: Vec::new(),
            unknown: &mut unknown,
        });
        match result {
            Ok(raw) => {
                problems.extend(unknown.into_iter().map(|u| u.into_problem(prefix)));
                return (Some(raw), dedupe(problems));
            }
            Err(error) => {
                let removable = error.removable_path();
                problems.push(error.into_problem(prefix));
                if removable.is_empty() || !remove_path(&mut value, &removable) {
                    problems.extend(unknown.into_iter().map(|u| u.into_problem(prefix)));
                    return (None, dedupe(problems));
                }
            }
        }
    }
    (None, dedupe(problems))
}

/// Drop repeated problems for the same key, keeping the first (the most specific).
fn dedupe(problems: Vec<ConfigProblem>) -> Vec<ConfigProblem> {
    let mut out: Vec<ConfigProblem> = Vec::with_capacity(problems.len());
    for p in problems {
        if !out.iter().any(|q| q.key == p.key) {
            out.push(p);
        }
    }
    out
}

/// One step of a key path.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Segment {
    Key(String),
    Index(usize),
}

fn render_path(prefix: &str, path: &[Segment]) -> String {
    let mut out = prefix.to_owned();
    for segment in path {
        match segment {
            Segment::Key(key) => {
                if !out.is_empty() {
                    out.push('.');
                }
                if !key.is_empty()
                    && key
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
                {
                    out.push_str(key);
                } else {
                    out.push_str(&format!("{key:?}"));
                }
            }
            Segment::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    out
}

/// Remove the value at `path` from `root`; false when nothing was there.
fn remove_path(root: &mut Value, path: &[Segment]) -> bool {
    let Some((last, parents)) = path.split_last() else {
        return false;
    };
    let mut node = root;
    for segment in parents {
        node = match (segment, node) {
            (Segment::Key(k), Value::Table(t)) => match t.get_mut(k) {
                Some(v) => v,
                None => return false,
            },
            (Segment::Index(i), Value::Array(a)) => match a.get_mut(*i) {
                Some(v) => v,
                None => return false,
            },
            _ => return false,
        };
    }
    match (last, node) {
        (Segment::Key(k), Value::Table(t)) => t.remove(k).is_some(),
        _ => false,
    }
}

/// A key the raw struct does not have, with the nearest known key if it is close.
struct UnknownKey {
    path: Vec<Segment>,
    suggestion: Option<&'static str>,
}

impl UnknownKey {
    fn into_problem(self, prefix: &str) -> ConfigProblem {
        let message = match self.suggestion {
            Some(known) => format!("unknown key; did you mean `{known}`?"),
            None => "unknown key".to_owned(),
        };
        ConfigProblem::new(render_path(prefix, &self.path), message)
    }
}

/// The known field within two edits of `key` (typos, swapped letters), if any.
fn suggest(key: &str, known: &'static [&'static str]) -> Option<&'static str> {
    known
        .iter()
        .map(|k| (edit_distance(key, k), *k))
        .filter(|(d, _)| *d <= 2)
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

/// Levenshtein distance over chars; keys are short, so the quadratic table is fine.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (above + 1)
                .min(row[j] + 1)
                .min(diagonal + usize::from(ca != *cb));
            diagonal = above;
        }
    }
    row[b.len()]
}

/// A deserialization failure at a key path.
#[derive(Debug)]
struct DeError {
    /// Where it happened; set by the innermost value that saw it.
    path: Option<Vec<Segment>>,
    /// A struct field that was required but absent (appended to the path).
    missing_field: Option<&'static str>,
    message: String,
}

impl DeError {
    fn at(mut self, path: &[Segment]) -> Self {
        if self.path.is_none() {
            self.path = Some(path.to_vec());
        }
        self
    }

    /// The key to drop before retrying: the path up to its last table key (an error inside an
    /// array drops the whole array's key).
    fn removable_path(&self) -> Vec<Segment> {
        if self.missing_field.is_some() {
            return Vec::new();
        }
        let path = self.path.as_deref().unwrap_or_default();
        match path.iter().rposition(|s| matches!(s, Segment::Key(_))) {
            Some(i) => path[..=i].to_vec(),
            None => Vec::new(),
        }
    }

    fn into_problem(self, prefix: &str) -> ConfigProblem {
        let mut path = self.path.unwrap_or_default();
        if let Some(field) = self.missing_field {
            path.push(Segment::Key(field.to_owned()));
        }
        ConfigProblem::new(render_path(prefix, &path), self.message)
    }
}

impl fmt::Display for DeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for DeError {}

impl de::Error for DeError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        DeError {
            path: None,
            missing_field: None,
            message: msg.to_string(),
        }
    }

    fn invalid_type(unexpected: de::Unexpected<'_>, expected: &dyn de::Expected) -> Self {
        Self::custom(format!(
            "expected {expected}, found {}",
            describe(&unexpected)
        ))
    }

    fn invalid_value(unexpected: de::Unexpected<'_>, expected: &dyn de::Expected) -> Self {
        Self::custom(format!(
            "expected {expected}, found {}",
            describe(&unexpected)
        ))
    }

    fn unknown_variant(variant: &str, expected: &'static [&'static str]) -> Self {
        Self::custom(format!(
            "unknown value {variant:?}; expected one of: {}",
            expected.join(", ")
        ))
    }

    fn missing_field(field: &'static str) -> Self {
        DeError {
            path: None,
            missing_field: Some(field),
            message: "missing required key".into(),
        }
    }
}

/// TOML's words for what was found (serde's say "map" and "sequence").
fn describe(unexpected: &de::Unexpected<'_>) -> String {
    match unexpected {
        de::Unexpected::Map => "a table".to_owned(),
        de::Unexpected::Seq => "an array".to_owned(),
        other => other.to_string(),
    }
}

/// Deserializes one TOML value, knowing its path.
struct ValueDe<'u> {
    value: Value,
    path: Vec<Segment>,
    unknown: &'u mut Vec<UnknownKey>,
}

impl<'u> ValueDe<'u> {
    fn any<'de, V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let ValueDe {
            value,
            path,
            unknown,
        } = self;
        let result = match value {
            Value::String(s) => visitor.visit_string(s),
            Value::Integer(i) => visitor.visit_i64(i),
            Value::Float(f) => visitor.visit_f64(f),
            Value::Boolean(b) => visitor.visit_bool(b),
            Value::Datetime(d) => visitor.visit_string(d.to_string()),
            Value::Array(items) => {
                let len = items.len();
                let mut seq = SeqDe {
                    items: items.into_iter(),
                    index: 0,
                    path: &path,
                    unknown,
                };
                let out = visitor.visit_seq(&mut seq)?;
                if seq.index < len {
                    return Err(de::Error::invalid_length(len, &"fewer elements"));
                }
                Ok(out)
            }
            Value::Table(table) => visitor.visit_map(MapDe {
                entries: table.into_iter(),
                pending: None,
                known: None,
                path: &path,
                unknown,
            }),
        };
        result.map_err(|e| e.at(&path))
    }

    /// A string from the environment where a scalar is expected: parse its text.
    fn coerced<'de, V: Visitor<'de>>(
        self,
        visitor: V,
        parse: impl FnOnce(&str) -> Option<Value>,
    ) -> Result<V::Value, DeError> {
        if let Value::String(s) = &self.value {
            if let Some(parsed) = parse(s.trim()) {
                return ValueDe {
                    value: parsed,
                    ..self
                }
                .any(visitor);
            }
        }
        self.any(visitor)
    }
}

fn parse_bool(s: &str) -> Option<Value> {
    s.parse::<bool>().ok().map(Value::Boolean)
}

fn parse_int(s: &str) -> Option<Value> {
    s.parse::<i64>().ok().map(Value::Integer)
}

fn parse_float(s: &str) -> Option<Value> {
    s.parse::<f64>().ok().map(Value::Float)
}

macro_rules! coerce_to {
    ($parse:ident: $($method:ident)*) => {
        $(fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
            self.coerced(visitor, $parse)
        })*
    };
}

impl<'de, 'u> de::Deserializer<'de> for ValueDe<'u> {
    type Error = DeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.any(visitor)
    }

    coerce_to!(parse_bool: deserialize_bool);
    coerce_to!(parse_int: deserialize_i8 deserialize_i16 deserialize_i32 deserialize_i64
        deserialize_i128 deserialize_u8 deserialize_u16 deserialize_u32 deserialize_u64
        deserialize_u128);
    coerce_to!(parse_float: deserialize_f32 deserialize_f64);

    /// A present key is `Some`; absence is handled by the struct (the field is never visited).
    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let path = self.path.clone();
        visitor.visit_some(self).map_err(|e| e.at(&path))
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        let path = self.path.clone();
        visitor.visit_newtype_struct(self).map_err(|e| e.at(&path))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        let ValueDe {
            value,
            path,
            unknown,
        } = self;
        match value {
            Value::Table(table) => visitor
                .visit_map(MapDe {
                    entries: table.into_iter(),
                    pending: None,
                    known: Some(fields),
                    path: &path,
                    unknown,
                })
                .map_err(|e| e.at(&path)),
            other => Err(
                DeError::custom(format!("expected a table, found {}", other.type_str())).at(&path),
            ),
        }
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        match self.value {
            Value::String(s) => visitor
                .visit_enum(IntoDeserializer::<DeError>::into_deserializer(s))
                .map_err(|e| e.at(&self.path)),
            other => Err(
                DeError::custom(format!("expected a string, found {}", other.type_str()))
                    .at(&self.path),
            ),
        }
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        visitor.visit_unit()
    }

    serde::forward_to_deserialize_any! {
        char str string bytes byte_buf unit unit_struct seq tuple tuple_struct map identifier
    }
}

/// The elements of a TOML array, each at `path[i]`.
struct SeqDe<'p, 'u> {
    items: std::vec::IntoIter<Value>,
    index: usize,
    path: &'p [Segment],
    unknown: &'u mut Vec<UnknownKey>,
}

impl<'de> de::SeqAccess<'de> for SeqDe<'_, '_> {
    type Error = DeError;

    fn next_element_seed<S: de::DeserializeSeed<'de>>(
        &mut self,
        seed: S,
    ) -> Result<Option<S::Value>, DeError> {
        let Some(value) = self.items.next() else {
            return Ok(None);
        };
        let mut path = self.path.to_vec();
        path.push(Segment::Index(self.index));
        self.index += 1;
        seed.deserialize(ValueDe {
            value,
            path,
            unknown: &mut *self.unknown,
        })
        .map(Some)
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.items.len())
    }
}

/// The entries of a TOML table, each at `path.key`. For a struct (`known` set), keys that are
/// not fields are recorded as unknown and never shown to the struct.
struct MapDe<'p, 'u> {
    entries: <toml::Table as IntoIterator>::IntoIter,
    pending: Option<(String, Value)>,
    known: Option<&'static [&'static str]>,
    path: &'p [Segment],
    unknown: &'u mut Vec<UnknownKey>,
}

impl<'de> de::MapAccess<'de> for MapDe<'_, '_> {
    type Error = DeError;

    fn next_key_seed<K: de::DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, DeError> {
        for (key, value) in self.entries.by_ref() {
            if let Some(known) = self.known {
                if !known.contains(&key.as_str()) {
                    let mut path = self.path.to_vec();
                    let suggestion = suggest(&key, known);
                    path.push(Segment::Key(key));
                    self.unknown.push(UnknownKey { path, suggestion });
                    continue;
                }
            }
            let out = seed.deserialize(IntoDeserializer::<DeError>::into_deserializer(key.clone()));
            self.pending = Some((key, value));
            return out.map(Some);
        }
        Ok(None)
    }

    fn next_value_seed<S: de::DeserializeSeed<'de>>(
        &mut self,
        seed: S,
    ) -> Result<S::Value, DeError> {
        let Some((key, value)) = self.pending.take() else {
            return Err(DeError::custom("value requested before its key"));
        };
        let mut path = self.path.to_vec();
        path.push(Segment::Key(key));
        seed.deserialize(ValueDe {
            value,
            path,
            unknown: &mut *self.unknown,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Default, Deserialize)]
    #[serde(default)]
    struct RawSink {
        path: Option<String>,
        fsync: Option<bool>,
        count: Option<u32>,
        ratio: Option<f64>,
        tables: Option<Vec<String>>,
        mode: Option<Mode>,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(rename_all = "snake_case")]
    enum Mode {
        Initial,
        Never,
    }

    fn table(text: &str) -> Value {
        Value::Table(toml::from_str(text).expect("test toml"))
    }

    #[test]
    fn a_well_typed_table_deserializes() {
        let raw: RawSink = from_toml(
            table("path = 'a'\nfsync = false\ntables = ['x.*']\nmode = 'never'"),
            "sink[0]",
        )
        .unwrap();
        assert_eq!(raw.path.as_deref(), Some("a"));
        assert_eq!(raw.fsync, Some(false));
        assert_eq!(raw.tables, Some(vec!["x.*".to_owned()]));
        assert_eq!(raw.mode, Some(Mode::Never));
        assert_eq!(raw.count, None);
    }

    #[test]
    fn every_unknown_key_is_reported_with_its_path_and_a_suggestion() {
        let problems =
            from_toml::<RawSink>(table("pth = 'a'\nfsnyc = true\nzzz = 1"), "sink[1]").unwrap_err();
        let shown: Vec<String> = problems.iter().map(ToString::to_string).collect();
        assert!(shown.contains(&"sink[1].pth: unknown key; did you mean `path`?".to_owned()));
        assert!(shown.contains(&"sink[1].fsnyc: unknown key; did you mean `fsync`?".to_owned()));
        assert!(shown.contains(&"sink[1].zzz: unknown key".to_owned()));
        assert_eq!(problems.len(), 3);
    }

    #[test]
    fn every_type_error_is_reported_with_its_full_key_path() {
        let (raw, problems) = from_toml_partial::<RawSink>(
            table("path = 'ok'\nfsync = 'yes'\ncount = -1\ntables = ['a', 3]\nmode = 'sometimes'"),
            "sink[1]",
        );
        let shown: Vec<String> = problems.iter().map(ToString::to_string).collect();
        assert!(shown.contains(&"sink[1].fsync: expected a boolean, found string \"yes\"".into()));
        assert!(
            shown
                .iter()
                .any(|s| s.starts_with("sink[1].count: expected u32")),
            "{shown:?}"
        );
        assert!(shown
            .iter()
            .any(|s| s.starts_with("sink[1].tables[1]: expected a string")));
        assert!(shown.contains(
            &"sink[1].mode: unknown value \"sometimes\"; expected one of: initial, never".into()
        ));
        assert_eq!(problems.len(), 4, "{shown:?}");
        // The wrong-typed keys are dropped; the rest survives for validation.
        let raw = raw.unwrap();
        assert_eq!(raw.path.as_deref(), Some("ok"));
        assert_eq!(raw.fsync, None);
    }

    #[test]
    fn strings_from_the_environment_parse_where_scalars_are_expected() {
        let raw: RawSink = from_toml(
            table("fsync = 'false'\ncount = '8'\nratio = '0.5'\npath = '12345'"),
            "",
        )
        .unwrap();
        assert_eq!(raw.fsync, Some(false));
        assert_eq!(raw.count, Some(8));
        assert_eq!(raw.ratio, Some(0.5));
        assert_eq!(raw.path.as_deref(), Some("12345"));
    }

    #[test]
    fn a_number_is_not_accepted_where_a_string_is_expected() {
        let problems = from_toml::<RawSink>(table("path = 5"), "sink[0]").unwrap_err();
        assert_eq!(
            problems[0].to_string(),
            "sink[0].path: expected a string, found integer `5`"
        );
    }

    #[test]
    fn a_non_table_is_reported_at_the_prefix() {
        let problems = from_toml::<RawSink>(Value::Integer(3), "source").unwrap_err();
        assert_eq!(
            problems[0].to_string(),
            "source: expected a table, found integer"
        );
    }

    #[test]
    fn problems_display_one_per_line() {
        let problems = ConfigProblems(vec![
            ConfigProblem::new("a", "first"),
            ConfigProblem::missing("b.c", "a name"),
        ]);
        assert_eq!(
            problems.to_string(),
            "a: first\nb.c: missing required key: a name"
        );
    }

    #[test]
    fn edit_distance_counts_single_character_edits() {
        assert_eq!(edit_distance("fsync", "fsync"), 0);
        assert_eq!(edit_distance("fsnyc", "fsync"), 2);
        assert_eq!(edit_distance("path", "pth"), 1);
        assert_eq!(edit_distance("", "abc"), 3);
    }
}
