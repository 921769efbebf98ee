//! Rows as search documents, and the index mapping derived from a table's columns.
//!
//! A document is the row itself: one field per column, named as the column. Values take the
//! JSON form of the file sink (exact numerics as strings, bytea as base64, uuids as text), with
//! three changes that suit a search index: dates and timestamps are ISO-8601 strings a `date`
//! field parses (`2024-01-31`, `2024-01-31T10:00:00.5` for `timestamp`, with `Z` for
//! `timestamptz`), and `json`/`jsonb` values are embedded as JSON, not as text, so their
//! fields are searchable. Infinite dates and timestamps stay the strings `infinity` and
//! `-infinity`: the derived mapping marks date and floating fields `ignore_malformed`, so such
//! a value is kept in `_source` without failing the document.

use std::collections::BTreeMap;

use serde_json::{json, Map, Value as Json};
use sluice_api::{civil_from_days, Infinite, Row, TableSchema, Value};

const MICROS_PER_DAY: i64 = 86_400_000_000;

/// `row` as a document. Unchanged TOAST values must have been resolved before (see
/// [`resolve_unchanged_toast`]); any left over are written as Debezium's placeholder text.
pub fn document(table: &TableSchema, row: &Row) -> Json {
    let mut object = Map::with_capacity(row.len());
    for (column, value) in table.columns.iter().zip(row) {
        object.insert(column.name.clone(), document_value(value));
    }
    Json::Object(object)
}

/// Replace each unchanged TOAST value of `after` by the old value from `before`, when the
/// replica identity (`FULL`) sent one. Returns the names of columns still unresolved.
pub fn resolve_unchanged_toast(
    table: &TableSchema,
    after: &mut Row,
    before: Option<&Row>,
) -> Vec<String> {
    let mut missing = Vec::new();
    for (i, value) in after.iter_mut().enumerate() {
        if *value != Value::UnchangedToast {
            continue;
        }
        match before.and_then(|b| b.get(i)) {
            Some(old) if *old != Value::UnchangedToast && !old.is_null() => *value = old.clone(),
            _ => missing.push(
                table
                    .columns
                    .get(i)
                    .map_or_else(|| i.to_string(), |c| c.name.clone()),
            ),
        }
    }
    missing
}

fn document_value(value: &Value) -> Json {
    match value {
        Value::Date(Infinite::Finite(days)) => Json::from(iso_date(i64::from(*days))),
        Value::Timestamp(Infinite::Finite(micros)) => Json::from(iso_timestamp(*micros, "")),
        Value::TimestampTz(Infinite::Finite(micros)) => Json::from(iso_timestamp(*micros, "Z")),
        Value::Json(text) | Value::Jsonb(text) => {
            serde_json::from_str(text).unwrap_or_else(|_| Json::from(text.as_str()))
        }
        Value::Array(items) => Json::Array(items.iter().map(document_value).collect()),
        other => sluice_sink_file::value_json(other),
    }
}

fn iso_date(days: i64) -> String {
    let (year, month, day) = civil_from_days(days);
    format!("{year:04}-{month:02}-{day:02}")
}

/// `YYYY-MM-DDTHH:MM:SS[.ffffff]` followed by `zone`.
fn iso_timestamp(micros: i64, zone: &str) -> String {
    let date = iso_date(micros.div_euclid(MICROS_PER_DAY));
    let tod = micros.rem_euclid(MICROS_PER_DAY);
    let secs = tod / 1_000_000;
    let frac = tod % 1_000_000;
    let mut out = format!(
        "{date}T{:02}:{:02}:{:02}",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    );
    if frac != 0 {
        out.push('.');
        out.push_str(format!("{frac:06}").trim_end_matches('0'));
    }
    out.push_str(zone);
    out
}

/// The mapping of one PostgreSQL type (arrays map as their element type: search fields hold
/// any number of values); `None` for types left to the server's dynamic mapping (enums,
/// domains and other types sluice does not know by name).
pub fn field_mapping(type_name: &str) -> Option<Json> {
    let element = type_name.strip_prefix('_').unwrap_or(type_name);
    let lenient = |ty: &str| json!({"type": ty, "ignore_malformed": true});
    Some(match element {
        "bool" => json!({"type": "boolean"}),
        "int2" => json!({"type": "short"}),
        "int4" => json!({"type": "integer"}),
        "int8" | "oid" | "xid" | "interval" => json!({"type": "long"}),
        "float4" => lenient("float"),
        // Exact numerics are strings in `_source` (every digit kept); the index holds them as
        // doubles for range queries and sorting. NaN and infinities stay in `_source` only.
        "float8" | "numeric" | "money" => lenient("double"),
        "date" | "timestamp" | "timestamptz" => lenient("date"),
        "text" | "varchar" | "bpchar" | "name" | "citext" | "xml" | "tsvector" => json!({
            "type": "text",
            "fields": {"keyword": {"type": "keyword", "ignore_above": 256}},
        }),
        "uuid" | "inet" | "cidr" | "macaddr" | "macaddr8" | "bit" | "varbit" | "char" | "time"
        | "timetz" | "int4range" | "int8range" | "numrange" | "daterange" | "tsrange"
        | "tstzrange" | "pg_lsn" => json!({"type": "keyword"}),
        "json" | "jsonb" | "hstore" | "point" | "line" | "lseg" | "box" | "path" | "polygon"
        | "circle" => json!({"type": "object"}),
        "bytea" => json!({"type": "binary"}),
        _ => return None,
    })
}

/// The `mappings` body of a table's index: derived per column, then `overrides` replace fields
/// one by one (and may add fields the table does not have).
pub fn index_mapping(table: &TableSchema, overrides: Option<&BTreeMap<String, Json>>) -> Json {
    let mut properties = Map::new();
    for column in &table.columns {
        if let Some(mapping) = field_mapping(&column.type_name) {
            properties.insert(column.name.clone(), mapping);
        }
    }
    for (field, mapping) in overrides.into_iter().flatten() {
        properties.insert(field.clone(), mapping.clone());
    }
    json!({ "properties": properties })
}

/// The body of an index-creation request: settings (when configured) and mappings.
pub fn create_index_body(
    table: &TableSchema,
    settings: Option<&Json>,
    overrides: Option<&BTreeMap<String, Json>>,
) -> Json {
    let mut body = Map::new();
    if let Some(settings) = settings {
        body.insert("settings".into(), settings.clone());
    }
    body.insert("mappings".into(), index_mapping(table, overrides));
    Json::Object(body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::naming::tests::table;
    use sluice_api::{Decimal, Numeric};

    #[test]
    fn mappings_follow_the_column_types() {
        let t = table(&[
            ("id", "int8", true),
            ("qty", "int4", false),
            ("price", "numeric", false),
            ("on_sale", "bool", false),
            ("sold_at", "timestamptz", false),
            ("day", "date", false),
            ("title", "varchar", false),
            ("sku", "uuid", false),
            ("attrs", "jsonb", false),
            ("tags", "_text", false),
            ("mood", "mood", false),
        ]);
        let m = index_mapping(&t, None);
        let p = &m["properties"];
        assert_eq!(p["id"]["type"], "long");
        assert_eq!(p["qty"]["type"], "integer");
        assert_eq!(p["price"]["type"], "double");
        assert_eq!(p["on_sale"]["type"], "boolean");
        assert_eq!(p["sold_at"]["type"], "date");
        assert_eq!(p["day"]["type"], "date");
        assert_eq!(p["title"]["type"], "text");
        assert_eq!(p["title"]["fields"]["keyword"]["type"], "keyword");
        assert_eq!(p["sku"]["type"], "keyword");
        assert_eq!(p["attrs"]["type"], "object");
        assert_eq!(p["tags"]["type"], "text", "arrays map as their element");
        assert!(p.get("mood").is_none(), "unknown types are left dynamic");
    }

    #[test]
    fn overrides_replace_derived_fields_and_settings_are_kept() {
        let t = table(&[("id", "int8", true), ("qty", "text", false)]);
        let overrides = BTreeMap::from([("qty".to_owned(), json!({"type": "long"}))]);
        let settings = json!({"number_of_shards": 1, "number_of_replicas": 0});
        let body = create_index_body(&t, Some(&settings), Some(&overrides));
        assert_eq!(body["settings"]["number_of_replicas"], 0);
        assert_eq!(
            body["mappings"]["properties"]["qty"],
            json!({"type": "long"})
        );
        assert_eq!(body["mappings"]["properties"]["id"]["type"], "long");
        let body = create_index_body(&t, None, None);
        assert!(body.get("settings").is_none());
    }

    #[test]
    fn documents_hold_the_row_with_search_friendly_values() {
        let t = table(&[
            ("id", "int4", true),
            ("price", "numeric", false),
            ("day", "date", false),
            ("at", "timestamp", false),
            ("atz", "timestamptz", false),
            ("attrs", "jsonb", false),
            ("never", "date", false),
        ]);
        let row = vec![
            Value::Int32(1),
            Value::Numeric(Numeric::Value(Decimal::parse("12.50").unwrap())),
            Value::Date(Infinite::Finite(19_753)),
            Value::Timestamp(Infinite::Finite(1_706_695_200_500_000)),
            Value::TimestampTz(Infinite::Finite(-1)),
            Value::Jsonb(r#"{"colour":{"name":"red"}}"#.into()),
            Value::Date(Infinite::PositiveInfinity),
        ];
        let doc = document(&t, &row);
        assert_eq!(
            doc,
            json!({
                "id": 1,
                "price": "12.50",
                "day": "2024-01-31",
                "at": "2024-01-31T10:00:00.5",
                "atz": "1969-12-31T23:59:59.999999Z",
                "attrs": {"colour": {"name": "red"}},
                "never": "infinity",
            })
        );
    }

    #[test]
    fn unchanged_toast_values_come_from_the_old_row_when_it_has_them() {
        let t = table(&[("id", "int4", true), ("body", "text", false)]);
        let mut after = vec![Value::Int32(1), Value::UnchangedToast];
        let before = vec![Value::Int32(1), Value::Text("long".into())];
        assert!(resolve_unchanged_toast(&t, &mut after, Some(&before)).is_empty());
        assert_eq!(after[1], Value::Text("long".into()));
        let mut after = vec![Value::Int32(1), Value::UnchangedToast];
        let key_only = vec![Value::Int32(1), Value::Null];
        assert_eq!(
            resolve_unchanged_toast(&t, &mut after, Some(&key_only)),
            ["body"]
        );
    }
}
