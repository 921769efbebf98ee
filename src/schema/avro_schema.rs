//! Table -> Avro schemas exactly as Debezium's PostgreSQL connector and Confluent's
//! `AvroConverter` write them: the key record `<prefix>.<schema>.<table>.Key`, the row record
//! `...Value` and the `Envelope` with `before`, `after`, `source`, `transaction`, `op` and the
//! processing timestamps. Connect metadata (`connect.name`, `connect.version`,
//! `connect.parameters`, `connect.default`, `connect.type`) is written with the converter's
//! property order, so the JSON is byte-for-byte what the converter would register.
//!
//! The envelope's field order follows Debezium 2.x/3.x as captured from a running connector:
//! `transaction` comes right after `source` (Debezium's table schema builder adds it before the
//! operation and timestamps).

use std::collections::{HashMap, HashSet};

use serde_json::{json, Map, Value as Json};
use sluice_api::TableSchema;

use super::column_type::{column_kind, FieldKind};
use super::names::{avro_full_name, avro_name};
use super::options::{EnvelopeOptions, UserTypes};
use super::topics::{is_valid_topic, Placement};
use super::SchemaError;

/// The allowed values of `source.snapshot`, in Debezium's `SnapshotRecord` order.
pub const SNAPSHOT_VALUES: &str =
    "true,first,first_in_data_collection,last_in_data_collection,last,false,incremental";
/// The envelope schema's Connect version (Debezium's `Envelope.SCHEMA_VERSION`).
pub const ENVELOPE_SCHEMA_VERSION: u32 = 2;
/// The `source` block's schema name.
pub const SOURCE_SCHEMA_NAME: &str = "io.debezium.connector.postgresql.Source";

/// One column as a field of the key or row record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldPlan {
    /// The column's position in the table's rows.
    pub column_index: usize,
    /// The column's name (the JSON form's field name).
    pub name: String,
    /// The Avro field name: the column name sanitised to Avro rules.
    pub avro_name: String,
    /// The field's type and encoder.
    pub kind: FieldKind,
    /// Whether the field accepts null (`["null", T]`).
    pub optional: bool,
}

/// Everything derived from one table shape: field plans, schemas as JSON (canonical field
/// order) and parsed for compatibility checks.
#[derive(Clone, Debug)]
pub struct TableSchemas {
    /// The topic: `<prefix>.<schema>.<table>`, or where a route sends it.
    pub topic: String,
    /// The table's schema (`source.schema`).
    pub table_schema: String,
    /// The table's name (`source.table`).
    pub table_name: String,
    /// `(field name, value)` ending every key, when a route keeps merged tables' keys apart.
    pub key_identifier: Option<(String, String)>,
    /// The sanitised record namespace (the topic, as an Avro full name).
    pub namespace: String,
    /// The key's fields; empty when the table has no key (events then have a null key).
    pub key_fields: Vec<FieldPlan>,
    /// The row record's fields, in column order.
    pub value_fields: Vec<FieldPlan>,
    /// The key schema, absent for keyless tables.
    pub key_json: Option<Json>,
    /// The row record on its own (as nested in the envelope, with its namespace).
    pub value_json: Json,
    /// The envelope schema, registered as the topic's value schema.
    pub envelope_json: Json,
    /// `key_json`, parsed.
    pub key_avro: Option<apache_avro::Schema>,
    /// `envelope_json`, parsed.
    pub envelope_avro: apache_avro::Schema,
}

/// Build the schemas of `table` for topics under `prefix`, routed by `options.topics`: the
/// schemas are named after the routed topic, so tables of one shape merged into one topic share
/// them. `not_null` names the columns declared `NOT NULL` (their fields are not optional); key
/// columns are never optional.
pub fn build_table_schemas(
    prefix: &str,
    table: &TableSchema,
    not_null: &HashSet<String>,
    options: &EnvelopeOptions,
    types: &UserTypes,
) -> Result<TableSchemas, SchemaError> {
    let own_topic = format!("{prefix}.{}.{}", table.schema, table.name);
    let Placement {
        topic,
        key_identifier,
    } = options.topics.place(&own_topic);
    if !is_valid_topic(&topic) {
        return Err(SchemaError::InvalidTopic {
            table: table.qualified_name(),
            topic,
        });
    }
    let namespace = avro_full_name(&topic);
    let key_names = key_column_names(table, options)?;

    let mut value_fields = Vec::with_capacity(table.columns.len());
    let mut seen = HashMap::new();
    for (column_index, column) in table.columns.iter().enumerate() {
        let avro_name = avro_name(&column.name);
        if let Some(other) = seen.insert(avro_name.clone(), column.name.clone()) {
            return Err(SchemaError::FieldNameClash {
                table: table.qualified_name(),
                first: other,
                second: column.name.clone(),
                avro_name,
            });
        }
        let is_key = key_names.contains(&column.name.as_str());
        value_fields.push(FieldPlan {
            column_index,
            name: column.name.clone(),
            avro_name,
            kind: column_kind(column, options, types),
            optional: !(is_key || not_null.contains(&column.name)),
        });
    }
    let key_fields: Vec<FieldPlan> = key_names
        .iter()
        .filter_map(|name| value_fields.iter().find(|f| f.name == *name))
        .map(|f| FieldPlan {
            optional: false,
            ..f.clone()
        })
        .collect();

    let mut writer = AvroWriter::default();
    let value_json = writer.record("Value", &namespace, None, &value_fields);
    let envelope_json = envelope_schema(&namespace, &value_fields);
    let key_json = (!key_fields.is_empty()).then(|| {
        let mut key = AvroWriter::default().record("Key", &namespace, None, &key_fields);
        if let (Some((name, _)), Some(fields)) = (&key_identifier, key["fields"].as_array_mut()) {
            fields.push(required(name, "string"));
        }
        key
    });

    let parse = |schema: &Json, which: &'static str| {
        apache_avro::Schema::parse(schema).map_err(|e| SchemaError::InvalidAvro {
            table: table.qualified_name(),
            which,
            message: e.to_string(),
        })
    };
    let envelope_avro = parse(&envelope_json, "envelope")?;
    let key_avro = key_json.as_ref().map(|k| parse(k, "key")).transpose()?;
    Ok(TableSchemas {
        topic,
        table_schema: table.schema.clone(),
        table_name: table.name.clone(),
        key_identifier,
        namespace,
        key_fields,
        value_fields,
        key_json,
        value_json,
        envelope_json,
        key_avro,
        envelope_avro,
    })
}

/// The key columns: the per-table override, else the replica identity's columns.
fn key_column_names<'t>(
    table: &'t TableSchema,
    options: &'t EnvelopeOptions,
) -> Result<Vec<&'t str>, SchemaError> {
    match options.message_key_columns.get(&table.qualified_name()) {
        Some(names) => {
            for name in names {
                if !table.columns.iter().any(|c| &c.name == name) {
                    return Err(SchemaError::UnknownKeyColumn {
                        table: table.qualified_name(),
                        column: name.clone(),
                    });
                }
            }
            // Key fields follow the table's column order, as Debezium builds them.
            Ok(table
                .columns
                .iter()
                .filter(|c| names.contains(&c.name))
                .map(|c| c.name.as_str())
                .collect())
        }
        None => Ok(table
            .columns
            .iter()
            .filter(|c| c.is_key)
            .map(|c| c.name.as_str())
            .collect()),
    }
}

fn envelope_schema(namespace: &str, value_fields: &[FieldPlan]) -> Json {
    let mut writer = AvroWriter::default();
    let value = writer.record("Value", namespace, Some(namespace), value_fields);
    let fields = vec![
        json!({"name": "before", "type": ["null", value], "default": null}),
        json!({"name": "after", "type": ["null", "Value"], "default": null}),
        json!({"name": "source", "type": source_schema()}),
        json!({"name": "transaction", "type": ["null", transaction_schema()], "default": null}),
        json!({"name": "op", "type": "string"}),
        optional_long("ts_ms"),
        optional_long("ts_us"),
        optional_long("ts_ns"),
    ];
    json!({
        "type": "record",
        "name": "Envelope",
        "namespace": namespace,
        "fields": fields,
        "connect.version": ENVELOPE_SCHEMA_VERSION,
        "connect.name": format!("{namespace}.Envelope"),
    })
}

pub(crate) fn optional_long(name: &str) -> Json {
    json!({"name": name, "type": ["null", "long"], "default": null})
}

pub(crate) fn required(name: &str, avro_type: &str) -> Json {
    json!({"name": name, "type": avro_type})
}

/// `io.debezium.connector.postgresql.Source`, with the snapshot enum first in its union because
/// its default is the string `"false"`, not null.
pub(crate) fn source_schema() -> Json {
    let snapshot = json!({
        "type": "string",
        "connect.version": 1,
        "connect.parameters": {"allowed": SNAPSHOT_VALUES},
        "connect.default": "false",
        "connect.name": "io.debezium.data.Enum",
    });
    json!({
        "type": "record",
        "name": "Source",
        "namespace": "io.debezium.connector.postgresql",
        "fields": [
            required("version", "string"),
            required("connector", "string"),
            required("name", "string"),
            required("ts_ms", "long"),
            {"name": "snapshot", "type": [snapshot, "null"], "default": "false"},
            required("db", "string"),
            {"name": "sequence", "type": ["null", "string"], "default": null},
            optional_long("ts_us"),
            optional_long("ts_ns"),
            required("schema", "string"),
            required("table", "string"),
            optional_long("txId"),
            optional_long("lsn"),
            optional_long("xmin"),
        ],
        "connect.name": SOURCE_SCHEMA_NAME,
    })
}

pub(crate) fn transaction_schema() -> Json {
    json!({
        "type": "record",
        "name": "block",
        "namespace": "event",
        "fields": [
            required("id", "string"),
            required("total_order", "long"),
            required("data_collection_order", "long"),
        ],
        "connect.version": 1,
        "connect.name": "event.block",
    })
}

/// Writes Avro types the way the Confluent converter does, defining each named type once and
/// referring to it by full name afterwards (Avro forbids redefinition).
#[derive(Default)]
struct AvroWriter {
    defined: HashSet<String>,
}

impl AvroWriter {
    /// A record of table columns. `enclosing` is the namespace it is written inside (its own
    /// namespace is then implied and omitted).
    fn record(
        &mut self,
        name: &str,
        namespace: &str,
        enclosing: Option<&str>,
        fields: &[FieldPlan],
    ) -> Json {
        let mut out = Map::new();
        out.insert("type".into(), json!("record"));
        out.insert("name".into(), json!(name));
        if enclosing != Some(namespace) {
            out.insert("namespace".into(), json!(namespace));
        }
        let fields: Vec<Json> = fields
            .iter()
            .map(|f| self.field(&f.avro_name, &f.kind, f.optional))
            .collect();
        out.insert("fields".into(), Json::Array(fields));
        out.insert("connect.name".into(), json!(format!("{namespace}.{name}")));
        Json::Object(out)
    }

    fn field(&mut self, name: &str, kind: &FieldKind, optional: bool) -> Json {
        let avro_type = self.kind_type(kind);
        let mut out = Map::new();
        out.insert("name".into(), json!(name));
        if optional {
            out.insert("type".into(), json!(["null", avro_type]));
        } else {
            out.insert("type".into(), avro_type);
        }
        if let Some(doc) = kind.connect_meta().and_then(|m| m.doc) {
            out.insert("doc".into(), json!(doc));
        }
        if optional {
            out.insert("default".into(), Json::Null);
        }
        Json::Object(out)
    }

    fn kind_type(&mut self, kind: &FieldKind) -> Json {
        match kind {
            FieldKind::Array(element) => {
                json!({"type": "array", "items": ["null", self.kind_type(element)]})
            }
            FieldKind::HstoreMap => json!({"type": "map", "values": ["null", "string"]}),
            FieldKind::VariableScaleDecimal | FieldKind::Point => self.struct_type(kind),
            FieldKind::Int16 => json!({"type": "int", "connect.type": "int16"}),
            _ => {
                let primitive = kind.avro_primitive();
                let Some(meta) = kind.connect_meta() else {
                    return json!(primitive);
                };
                let mut out = Map::new();
                out.insert("type".into(), json!(primitive));
                if let FieldKind::Decimal { precision, scale } = kind {
                    // The converter's default precision when Connect gives none.
                    out.insert("scale".into(), json!(scale));
                    out.insert("precision".into(), json!(precision.unwrap_or(64)));
                }
                if let Some(version) = meta.version {
                    out.insert("connect.version".into(), json!(version));
                }
                if !meta.parameters.is_empty() {
                    let params: Map<String, Json> = meta
                        .parameters
                        .into_iter()
                        .map(|(k, v)| (k.to_owned(), json!(v)))
                        .collect();
                    out.insert("connect.parameters".into(), Json::Object(params));
                }
                out.insert("connect.name".into(), json!(meta.name));
                if let Some(logical) = kind.avro_logical_type() {
                    out.insert("logicalType".into(), json!(logical));
                }
                Json::Object(out)
            }
        }
    }

    /// A Debezium struct type (`VariableScaleDecimal`, `Point`) as a named record.
    fn struct_type(&mut self, kind: &FieldKind) -> Json {
        let Some(meta) = kind.connect_meta() else {
            return json!("string");
        };
        if !self.defined.insert(meta.name.to_owned()) {
            return json!(meta.name);
        }
        let (namespace, name) = meta.name.rsplit_once('.').unwrap_or(("", meta.name));
        let fields: Vec<Json> = kind
            .struct_fields()
            .iter()
            .map(|(field, kind, optional)| self.field(field, kind, *optional))
            .collect();
        let mut out = Map::new();
        out.insert("type".into(), json!("record"));
        out.insert("name".into(), json!(name));
        out.insert("namespace".into(), json!(namespace));
        out.insert("fields".into(), Json::Array(fields));
        if let Some(doc) = meta.doc {
            out.insert("connect.doc".into(), json!(doc));
        }
        if let Some(version) = meta.version {
            out.insert("connect.version".into(), json!(version));
        }
        out.insert("connect.name".into(), json!(meta.name));
        Json::Object(out)
    }
}
