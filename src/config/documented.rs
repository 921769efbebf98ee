//! The configuration reference, `config/sluice.example.toml`, checked against the config
//! structs: every field of every raw struct (each section, each sink connector, nested tables)
//! must appear there as a key, commented out or not. The field names come from serde itself
//! (the names a struct's `Deserialize` asks for, renames applied), so a field added to a struct
//! without a line in the example fails here.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, DeserializeOwned, Visitor};

use super::RawRoot;

const EXAMPLE: &str = include_str!("../../config/sluice.example.toml");

/// Why [`FieldRecorder`] stops: it never produces a value.
#[derive(Debug)]
struct Recorded;

impl fmt::Display for Recorded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("field names recorded")
    }
}

impl std::error::Error for Recorded {}

impl de::Error for Recorded {
    fn custom<T: fmt::Display>(_: T) -> Self {
        Recorded
    }
}

/// A deserializer that only notes the field names a struct asks for.
struct FieldRecorder<'a>(&'a mut &'static [&'static str]);

impl<'de> de::Deserializer<'de> for FieldRecorder<'_> {
    type Error = Recorded;

    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Recorded> {
        Err(Recorded)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        fields: &'static [&'static str],
        _: V,
    ) -> Result<V::Value, Recorded> {
        *self.0 = fields;
        Err(Recorded)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier
        ignored_any
    }
}

/// The TOML keys of raw struct `T`.
fn fields_of<T: DeserializeOwned>() -> &'static [&'static str] {
    let mut fields: &'static [&'static str] = &[];
    let _ = T::deserialize(FieldRecorder(&mut fields));
    assert!(
        !fields.is_empty(),
        "{} is not a struct",
        std::any::type_name::<T>()
    );
    fields
}

/// One `[table]` or `[[table]]` of the example, commented out or not: the keys written in it
/// and the lines that hold them.
#[derive(Debug, Default)]
struct Block {
    keys: BTreeMap<String, String>,
}

/// A line without its comment marker, when what follows is TOML-like.
fn uncommented(line: &str) -> &str {
    line.trim_start().trim_start_matches('#').trim()
}

/// `name` of a `[name]` / `[[name]]` header line.
fn header(line: &str) -> Option<&str> {
    let text = uncommented(line);
    let inner = text.strip_prefix("[[").and_then(|t| t.strip_suffix("]]"));
    let inner = inner.or_else(|| text.strip_prefix('[').and_then(|t| t.strip_suffix(']')))?;
    let valid = !inner.is_empty()
        && inner
            .chars()
            .all(|c| c.is_ascii_lowercase() || c == '_' || c == '.');
    valid.then_some(inner)
}

/// `key` of a `key = value` line (commented out or not).
fn key(line: &str) -> Option<&str> {
    let (key, _) = uncommented(line).split_once('=')?;
    let key = key.trim();
    let valid = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    valid.then_some(key)
}

/// The example's blocks in file order, by header name (`sink` blocks are told apart by their
/// `type`, see [`sink_blocks`]).
fn blocks(text: &str) -> Vec<(String, Block)> {
    let mut out: Vec<(String, Block)> = Vec::new();
    for line in text.lines() {
        if let Some(name) = header(line) {
            out.push((name.to_owned(), Block::default()));
        } else if let (Some(key), Some((_, block))) = (key(line), out.last_mut()) {
            block
                .keys
                .insert(key.to_owned(), uncommented(line).to_owned());
        }
    }
    out
}

fn section<'a>(blocks: &'a [(String, Block)], name: &str) -> Option<&'a Block> {
    blocks.iter().find(|(n, _)| n == name).map(|(_, b)| b)
}

/// The `[[sink]]` blocks by their `type`.
fn sink_blocks(blocks: &[(String, Block)]) -> BTreeMap<String, &Block> {
    blocks
        .iter()
        .filter(|(name, _)| name == "sink")
        .filter_map(|(_, block)| {
            let line = block.keys.get("type")?;
            let kind = line.split('"').nth(1)?;
            Some((kind.to_owned(), block))
        })
        .collect()
}

/// Every field of `fields` missing from `block`, as `where.field`. A field is documented by its
/// own key line, or by a `[where.field]` / `[[where.field]]` block of its own.
fn missing(blocks: &[(String, Block)], block: &Block, at: &str, fields: &[&str]) -> Vec<String> {
    fields
        .iter()
        .filter(|f| {
            !block.keys.contains_key(**f) && section(blocks, &format!("{at}.{f}")).is_none()
        })
        .map(|f| format!("{at}.{f}"))
        .collect()
}

/// The fields of an inline table (`dead_letter = { type = "file", path = "x" }`) missing from
/// its line in `block`.
fn missing_inline(block: &Block, at: &str, table: &str, fields: &[&str]) -> Vec<String> {
    let line = block
        .keys
        .get(table)
        .map(String::as_str)
        .unwrap_or_default();
    fields
        .iter()
        .filter(|f| !line.contains(&format!("{{ {f} =")) && !line.contains(&format!(", {f} =")))
        .map(|f| format!("{at}.{table}.{f}"))
        .collect()
}

/// The sections of the document checked here, with their raw structs' fields.
fn sections() -> Vec<(&'static str, &'static [&'static str])> {
    vec![
        ("pipeline", fields_of::<super::pipeline::RawPipeline>()),
        (
            "source",
            fields_of::<sluice_source_postgres::config::RawPostgresSource>(),
        ),
        ("log", fields_of::<super::log::RawLog>()),
        ("envelope", fields_of::<super::envelope::RawEnvelope>()),
        ("envelope.route", fields_of::<super::route::RawRoute>()),
        ("registry", fields_of::<super::registry::RawRegistry>()),
        ("http", fields_of::<super::http::RawHttp>()),
    ]
}

/// Each sink `type` of this build, with its raw config's fields and whether it takes a
/// `dead_letter` table.
fn sink_connectors() -> Vec<(&'static str, &'static [&'static str])> {
    vec![
        #[cfg(feature = "sink-file")]
        ("file", fields_of::<sluice_sink_file::RawFileSinkConfig>()),
        #[cfg(feature = "sink-memory")]
        (
            "memory",
            fields_of::<sluice_sink_memory::RawMemorySinkConfig>(),
        ),
        #[cfg(feature = "sink-kafka")]
        (
            "kafka",
            fields_of::<sluice_sink_kafka::RawKafkaSinkConfig>(),
        ),
        #[cfg(feature = "sink-search")]
        (
            "search",
            fields_of::<sluice_sink_search::RawSearchSinkConfig>(),
        ),
        #[cfg(feature = "sink-postgres")]
        (
            "postgres",
            fields_of::<sluice_sink_postgres::RawPostgresSinkConfig>(),
        ),
        #[cfg(feature = "sink-clickhouse")]
        (
            "clickhouse",
            fields_of::<sluice_sink_clickhouse::RawClickHouseSinkConfig>(),
        ),
    ]
}

#[test]
fn every_top_level_section_of_the_config_is_covered_and_in_the_example() {
    let blocks = blocks(EXAMPLE);
    let checked: Vec<&str> = sections().iter().map(|(name, _)| *name).collect();
    for name in fields_of::<RawRoot>() {
        assert!(
            section(&blocks, name).is_some(),
            "config/sluice.example.toml has no [{name}] table"
        );
        assert!(
            matches!(*name, "sink" | "transforms") || checked.contains(name),
            "section [{name}] is not checked: add its raw struct to sections() in {}",
            file!()
        );
    }
}

#[test]
fn every_config_field_is_documented_in_the_example() {
    let blocks = blocks(EXAMPLE);
    let mut undocumented = Vec::new();
    for (name, fields) in sections() {
        match section(&blocks, name) {
            Some(block) => undocumented.extend(missing(&blocks, block, name, fields)),
            None => undocumented.push(format!("[{name}]")),
        }
    }
    assert!(
        undocumented.is_empty(),
        "keys missing from config/sluice.example.toml: {undocumented:?}"
    );
}

#[test]
fn every_sink_connectors_fields_are_documented_in_the_example() {
    let blocks = blocks(EXAMPLE);
    let sinks = sink_blocks(&blocks);
    let dead_letter = fields_of::<sluice_api::RawDeadLetterConfig>();
    let mut undocumented = Vec::new();
    for (kind, fields) in sink_connectors() {
        let at = format!("sink(type = {kind:?})");
        let Some(block) = sinks.get(kind) else {
            undocumented.push(at);
            continue;
        };
        undocumented.extend(missing(&blocks, block, &at, &["name", "type"]));
        undocumented.extend(missing(&blocks, block, &at, fields));
        if fields.contains(&"dead_letter") {
            undocumented.extend(missing_inline(block, &at, "dead_letter", dead_letter));
        }
    }
    let covered: Vec<&str> = sink_connectors().iter().map(|(kind, _)| *kind).collect();
    for kind in crate::catalog::sink_types() {
        assert!(
            covered.contains(kind),
            "sink type {kind:?} is not checked: add its raw config to sink_connectors() in {}",
            file!()
        );
    }
    assert!(
        undocumented.is_empty(),
        "keys missing from config/sluice.example.toml: {undocumented:?}"
    );
}

#[test]
fn the_documentation_check_notices_a_missing_key() {
    let text = "[pipeline]\nname = \"x\"\n# max_batch_events = 1\n\n# [[sink]]\n# type = \"file\"\n# path = \"-\"\n";
    let blocks = blocks(text);
    let pipeline = section(&blocks, "pipeline").expect("a pipeline block");
    assert_eq!(
        missing(
            &blocks,
            pipeline,
            "pipeline",
            &["name", "max_batch_events", "shutdown_timeout_ms"]
        ),
        ["pipeline.shutdown_timeout_ms"]
    );
    let sinks = sink_blocks(&blocks);
    assert_eq!(
        missing(&blocks, sinks["file"], "sink", &["path", "fsync"]),
        ["sink.fsync"]
    );
    assert_eq!(
        fields_of::<sluice_api::RawDeadLetterConfig>(),
        ["type", "path"]
    );
}

#[test]
fn every_transform_field_is_documented_in_some_transforms_block() {
    let blocks = blocks(EXAMPLE);
    let documented: Vec<&str> = blocks
        .iter()
        .filter(|(name, _)| name == "transforms")
        .flat_map(|(_, block)| block.keys.keys().map(String::as_str))
        .collect();
    let undocumented: Vec<&&str> = fields_of::<crate::transform::RawTransform>()
        .iter()
        .filter(|f| !documented.contains(*f))
        .collect();
    assert!(
        undocumented.is_empty(),
        "config/sluice.example.toml documents no transforms.{undocumented:?}"
    );
}
