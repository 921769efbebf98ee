//! Names at the destination: which index a table's documents go to, and each row's document
//! `_id`, derived from its primary key so that every change of a row addresses one document.
//!
//! Index names are `<prefix>.<schema>.<table>`, lowercased, with every character an index name
//! may not hold (`\ / * ? " < > | , #`, space, `:`) replaced by `_`, leading `-`, `_`, `+` and
//! `.` removed, and cut to 255 bytes; a rename rule (`index_names`) replaces the whole name.
//!
//! Document ids: a single-column key is the key's value as text (`42`, `a0eebc99-...`, the text
//! itself for text keys). A composite key is the JSON array of the key columns' values in the
//! table's column order, e.g. `[42,"eu"]`: stable across restarts and versions, unambiguous
//! whatever the values contain, and readable. Ids longer than the servers' 512-byte limit are
//! rejected by the server and dead-lettered with its reason.

use serde_json::Value as Json;
use sluice_api::{Row, TableSchema, Value};

/// Longest index name the servers accept, in bytes.
const MAX_INDEX_NAME_BYTES: usize = 255;

/// The characters an index name may not contain (Elasticsearch and OpenSearch alike; `:` is
/// reserved for cross-cluster search).
const FORBIDDEN: &[char] = &['\\', '/', '*', '?', '"', '<', '>', '|', ',', '#', ' ', ':'];

/// Why `name` cannot be an index name, or `None` when it can.
pub fn index_name_problem(name: &str) -> Option<String> {
    if name.is_empty() {
        return Some("must not be empty".into());
    }
    if name != name.to_lowercase() {
        return Some(format!("{name:?} must be lowercase"));
    }
    if let Some(c) = name.chars().find(|c| FORBIDDEN.contains(c)) {
        return Some(format!("{name:?} must not contain {c:?}"));
    }
    if name.starts_with(['-', '_', '+']) || name == "." || name == ".." {
        return Some(format!(
            "{name:?} must not start with '-', '_' or '+', nor be '.' or '..'"
        ));
    }
    if name.len() > MAX_INDEX_NAME_BYTES {
        return Some(format!("{name:?} is longer than 255 bytes"));
    }
    None
}

/// `text` made into a valid index name (see the module docs).
pub fn sanitize_index_name(text: &str) -> String {
    let lowered: String = text
        .to_lowercase()
        .chars()
        .map(|c| if FORBIDDEN.contains(&c) { '_' } else { c })
        .collect();
    let trimmed = lowered.trim_start_matches(['-', '_', '+', '.']);
    let mut name = if trimmed.is_empty() {
        "index".to_owned()
    } else {
        trimmed.to_owned()
    };
    if name.len() > MAX_INDEX_NAME_BYTES {
        let mut cut = MAX_INDEX_NAME_BYTES;
        while !name.is_char_boundary(cut) {
            cut -= 1;
        }
        name.truncate(cut);
    }
    name
}

/// The index of `table`: its rename rule if one exists, else `<prefix>.<schema>.<table>`
/// sanitized.
pub fn index_name(
    prefix: &str,
    table: &TableSchema,
    renames: &std::collections::BTreeMap<String, String>,
) -> String {
    if let Some(name) = renames.get(&table.qualified_name()) {
        return name.clone();
    }
    sanitize_index_name(&format!("{prefix}.{}.{}", table.schema, table.name))
}

/// The document id of `row`, from the table's key columns; `None` when the table has no key
/// or a key value is missing (null or an unchanged TOAST value).
pub fn document_id(table: &TableSchema, row: &Row) -> Option<String> {
    let keys: Vec<&Value> = table
        .columns
        .iter()
        .zip(row)
        .filter(|(c, _)| c.is_key)
        .map(|(_, v)| v)
        .collect();
    if keys.is_empty()
        || keys
            .iter()
            .any(|v| v.is_null() || **v == Value::UnchangedToast)
    {
        return None;
    }
    if let [single] = keys.as_slice() {
        return Some(match sluice_sink_file::value_json(single) {
            Json::String(s) => s,
            other => other.to_string(),
        });
    }
    let parts: Vec<Json> = keys.into_iter().map(sluice_sink_file::value_json).collect();
    Some(Json::Array(parts).to_string())
}

#[cfg(test)]
pub(crate) mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use sluice_api::{Column, ReplicaIdentity};

    pub(crate) fn table(columns: &[(&str, &str, bool)]) -> TableSchema {
        TableSchema {
            relation_id: 1,
            schema: "public".into(),
            name: "orders".into(),
            replica_identity: ReplicaIdentity::Default,
            columns: columns
                .iter()
                .map(|(name, ty, is_key)| Column {
                    name: (*name).into(),
                    type_oid: 0,
                    type_name: (*ty).into(),
                    type_modifier: -1,
                    is_key: *is_key,
                })
                .collect(),
        }
    }

    #[test]
    fn a_single_key_is_its_value_as_text() {
        let t = table(&[("id", "int8", true), ("note", "text", false)]);
        let row = vec![Value::Int64(42), Value::Text("x".into())];
        assert_eq!(document_id(&t, &row).as_deref(), Some("42"));
        let t = table(&[("code", "text", true)]);
        assert_eq!(
            document_id(&t, &vec![Value::Text("a,b \"c\"".into())]).as_deref(),
            Some("a,b \"c\"")
        );
    }

    #[test]
    fn a_composite_key_is_a_json_array_in_column_order() {
        let t = table(&[
            ("region", "text", true),
            ("note", "text", false),
            ("id", "int4", true),
        ]);
        let row = vec![
            Value::Text("eu".into()),
            Value::Text("ignored".into()),
            Value::Int32(7),
        ];
        assert_eq!(document_id(&t, &row).as_deref(), Some("[\"eu\",7]"));
        // Values that contain the separator stay unambiguous.
        let row = vec![Value::Text("e\",\"u".into()), Value::Null, Value::Int32(7)];
        assert_eq!(document_id(&t, &row).as_deref(), Some(r#"["e\",\"u",7]"#));
    }

    #[test]
    fn a_table_without_a_key_has_no_document_id() {
        let t = table(&[("a", "int4", false)]);
        assert_eq!(document_id(&t, &vec![Value::Int32(1)]), None);
        let t = table(&[("a", "int4", true)]);
        assert_eq!(document_id(&t, &vec![Value::Null]), None);
    }

    #[test]
    fn index_names_are_lowercased_and_sanitized() {
        let mut t = table(&[]);
        t.schema = "Sales".into();
        t.name = "Order Lines/EU*".into();
        assert_eq!(
            index_name("Shop", &t, &BTreeMap::new()),
            "shop.sales.order_lines_eu_"
        );
        assert_eq!(sanitize_index_name("_-+.x"), "x");
        assert_eq!(sanitize_index_name("___"), "index");
        assert_eq!(sanitize_index_name(&"é".repeat(200)).len(), 254);
        for name in ["shop.sales.order_lines_eu_", "x", "index"] {
            assert_eq!(index_name_problem(name), None);
        }
    }

    #[test]
    fn a_rename_rule_replaces_the_derived_index_name() {
        let t = table(&[]);
        let renames = BTreeMap::from([("public.orders".to_owned(), "orders-v2".to_owned())]);
        assert_eq!(index_name("shop", &t, &renames), "orders-v2");
    }

    #[test]
    fn invalid_index_names_are_explained() {
        assert!(index_name_problem("Bad").unwrap().contains("lowercase"));
        assert!(index_name_problem("a b").unwrap().contains("' '"));
        assert!(index_name_problem("_x").unwrap().contains("start"));
        assert!(index_name_problem("").is_some());
    }
}
