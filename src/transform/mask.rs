//! `type = "mask"`: personal data out of the stream (Debezium's `column.mask.with.N.chars` and
//! `column.mask.hash.SHA-256.with.salt`). `mode = "mask"` replaces a value with asterisks
//! (`mask_length` of them, default [`DEFAULT_MASK`]: the original length stays hidden);
//! `mode = "hash"` replaces it with the lowercase hex SHA-256 of the salt followed by the
//! value's PostgreSQL text form, so equal values still join. Either way the column becomes
//! `text` in the table shape, so a hashed integer column's Avro field is a string. NULL stays
//! NULL, and an unchanged TOAST value stays unchanged (its content was never sent).

use sha2::{Digest, Sha256};
use sluice_api::{Secret, TableSchema, Value};

use super::scope::{selected, ColumnSelector, TableScope};

/// The replacement of `mode = "mask"` without `mask_length`.
pub const DEFAULT_MASK: &str = "***";

/// PostgreSQL's `text` type, which masked columns become.
const TEXT_OID: u32 = 25;

/// How a value is hidden.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MaskMode {
    /// Asterisks: `length` of them, or [`DEFAULT_MASK`].
    Mask { length: Option<usize> },
    /// Hex SHA-256 of salt + text form.
    Hash { salt: Option<Secret> },
}

/// A validated `mask` transform.
#[derive(Clone, Debug)]
pub struct MaskTransform {
    pub scope: TableScope,
    pub columns: Vec<ColumnSelector>,
    pub mode: MaskMode,
}

impl MaskTransform {
    /// One flag per column of `table`: masked or not.
    pub fn masked(&self, table: &TableSchema) -> Vec<bool> {
        table
            .columns
            .iter()
            .map(|c| selected(&self.columns, table, &c.name))
            .collect()
    }

    /// Replace the flagged values of `row`.
    pub fn apply(&self, row: &mut [Value], masked: &[bool]) {
        for (value, _) in row.iter_mut().zip(masked).filter(|(_, m)| **m) {
            if matches!(value, Value::Null | Value::UnchangedToast) {
                continue;
            }
            let hidden = self.hide(value);
            *value = Value::Text(hidden);
        }
    }

    fn hide(&self, value: &Value) -> String {
        match &self.mode {
            MaskMode::Mask { length: None } => DEFAULT_MASK.to_owned(),
            MaskMode::Mask { length: Some(n) } => "*".repeat(*n),
            MaskMode::Hash { salt } => {
                let mut hasher = Sha256::new();
                if let Some(salt) = salt {
                    hasher.update(salt.expose().as_bytes());
                }
                hasher.update(text_form(value).as_bytes());
                hasher
                    .finalize()
                    .iter()
                    .fold(String::with_capacity(64), |mut hex, byte| {
                        hex.push_str(&format!("{byte:02x}"));
                        hex
                    })
            }
        }
    }
}

/// The value as PostgreSQL prints it, borrowed for text values.
fn text_form(value: &Value) -> std::borrow::Cow<'_, str> {
    match value {
        Value::Text(text) => std::borrow::Cow::Borrowed(text),
        other => std::borrow::Cow::Owned(crate::schema::pg_text(other)),
    }
}

/// `table` with the flagged columns turned into `text`.
pub fn masked_shape(table: &TableSchema, masked: &[bool]) -> TableSchema {
    let mut shape = table.clone();
    for (column, _) in shape.columns.iter_mut().zip(masked).filter(|(_, m)| **m) {
        column.type_oid = TEXT_OID;
        column.type_name = "text".into();
        column.type_modifier = -1;
    }
    shape
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;
    use crate::schema::{build_table_schemas, EnvelopeOptions, UserTypes};
    use crate::transform::test_events::{customers, insert, row};
    use crate::transform::{EventTransform, TransformChain, Transforms};

    fn chain(columns: &[&str], mode: MaskMode) -> TransformChain {
        TransformChain::new(&Transforms {
            events: vec![EventTransform::Mask(MaskTransform {
                scope: TableScope::default(),
                columns: columns
                    .iter()
                    .map(|c| ColumnSelector::parse(c).unwrap())
                    .collect(),
                mode,
            })],
            records: Vec::new(),
        })
    }

    #[test]
    fn hashing_is_salted_sha256_hex_of_the_text_form_and_the_column_becomes_text() {
        let table = customers();
        let salted = MaskMode::Hash {
            salt: Some(Secret::new("pepper")),
        };
        let mut chain = chain(&["public.customers.email", "score"], salted);
        let event = chain
            .apply_event(insert(&table, row(1, "ann", Some("a@x"), 42)))
            .unwrap();
        let after = event.after.as_ref().unwrap();
        let expected = |text: &str| {
            Sha256::digest(format!("pepper{text}"))
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
        };
        assert_eq!(after[2], Value::Text(expected("a@x")));
        assert_eq!(
            after[4],
            Value::Text(expected("42")),
            "an int hashes its text"
        );
        assert_eq!(after[1], Value::Text("ann".into()));
        let shape = event.table.as_ref().unwrap();
        assert_eq!(shape.columns[4].type_name, "text");
        assert_eq!(shape.columns[0].type_name, "int4");

        // The derived Avro field of the hashed int column is a string.
        let schemas = build_table_schemas(
            "shop",
            shape,
            &HashSet::new(),
            &EnvelopeOptions::default(),
            &UserTypes::default(),
        )
        .unwrap();
        let score = schemas.value_json["fields"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["name"] == "score")
            .unwrap();
        assert_eq!(score["type"], serde_json::json!(["null", "string"]));
    }

    #[test]
    fn masking_hides_length_by_default_and_keeps_nulls_and_unchanged_toast() {
        let table = customers();
        let mut fixed = chain(&["email", "ssn"], MaskMode::Mask { length: None });
        let mut values = row(1, "ann", None, 5);
        values[3] = Value::UnchangedToast;
        let event = fixed.apply_event(insert(&table, values)).unwrap();
        let after = event.after.unwrap();
        assert_eq!(after[2], Value::Null);
        assert_eq!(after[3], Value::UnchangedToast);

        let event = fixed
            .apply_event(insert(&table, row(2, "bob", Some("bob@example.com"), 5)))
            .unwrap();
        assert_eq!(event.after.unwrap()[2], Value::Text("***".into()));

        let mut sized = chain(&["email"], MaskMode::Mask { length: Some(8) });
        let event = sized
            .apply_event(insert(&table, row(2, "bob", Some("b@x"), 5)))
            .unwrap();
        assert_eq!(event.after.unwrap()[2], Value::Text("********".into()));
    }
}
