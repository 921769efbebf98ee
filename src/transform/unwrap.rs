//! `type = "unwrap"`: Debezium's `ExtractNewRecordState`. The Kafka record's value becomes the
//! flat row (the record Debezium names `<topic>.Value`) instead of the envelope; the key is
//! unchanged. Deletes follow `delete_handling_mode`:
//! - `drop` (Debezium's default): no record for the delete (a tombstone still follows unless
//!   `drop_tombstones`);
//! - `rewrite`: the old row with `__deleted = "true"` (every other record has `"false"`);
//! - `none`: a record with the key and a null value.
//!
//! `drop_tombstones` (default true) removes the tombstone the Kafka sink would write after a
//! delete. `add_fields` appends envelope and `source` fields (`op`, `table`, `lsn`,
//! `source.ts_ms`, ...) as optional fields named `add_fields_prefix` + the name with `.` turned
//! into `_` (`__op`, `__source_ts_ms`).

use std::sync::Arc;

use serde_json::{json, Value as Json};
use sluice_api::{ChangeEvent, EncodedRecord, Op, RecordOrigin};

use super::scope::TableScope;
use crate::schema::{
    write_frame, write_long, write_str, EncodeError, SourceInfo, TableEncoder, TableSchemas,
};

/// Debezium's default `add.fields.prefix`.
pub const DEFAULT_ADD_FIELDS_PREFIX: &str = "__";
/// The field `rewrite` adds, as Debezium names it.
pub const DELETED_FIELD: &str = "__deleted";

/// What becomes of deletes (`delete_handling_mode`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DeleteHandling {
    #[default]
    Drop,
    Rewrite,
    None,
}

impl DeleteHandling {
    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "drop" => DeleteHandling::Drop,
            "rewrite" => DeleteHandling::Rewrite,
            "none" => DeleteHandling::None,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            DeleteHandling::Drop => "drop",
            DeleteHandling::Rewrite => "rewrite",
            DeleteHandling::None => "none",
        }
    }
}

/// An envelope or `source` field `add_fields` can copy into the flat row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AddedField {
    Op,
    /// The envelope's processing time (`ts_ms`, `ts_us`, `ts_ns`).
    ProcessedMs,
    ProcessedUs,
    ProcessedNs,
    /// `source.ts_ms` and friends: the commit time.
    CommitMs,
    CommitUs,
    CommitNs,
    Table,
    Schema,
    Db,
    Name,
    Lsn,
    TxId,
    Snapshot,
}

impl AddedField {
    /// The names `add_fields` accepts, in the order listed in errors.
    pub const NAMES: &'static str = "op, ts_ms, ts_us, ts_ns, source.ts_ms, source.ts_us, \
         source.ts_ns, table, schema, db, name, lsn, txId, snapshot (source fields also as \
         source.<name>)";

    /// A name as Debezium's `add.fields` takes it: an envelope field, or a `source` field bare
    /// or as `source.<field>`.
    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "op" => AddedField::Op,
            "ts_ms" => AddedField::ProcessedMs,
            "ts_us" => AddedField::ProcessedUs,
            "ts_ns" => AddedField::ProcessedNs,
            "source.ts_ms" => AddedField::CommitMs,
            "source.ts_us" => AddedField::CommitUs,
            "source.ts_ns" => AddedField::CommitNs,
            other => match other.strip_prefix("source.").unwrap_or(other) {
                "table" => AddedField::Table,
                "schema" => AddedField::Schema,
                "db" => AddedField::Db,
                "name" => AddedField::Name,
                "lsn" => AddedField::Lsn,
                "txId" => AddedField::TxId,
                "snapshot" => AddedField::Snapshot,
                _ => return None,
            },
        })
    }

    fn is_long(self) -> bool {
        matches!(
            self,
            AddedField::ProcessedMs
                | AddedField::ProcessedUs
                | AddedField::ProcessedNs
                | AddedField::CommitMs
                | AddedField::CommitUs
                | AddedField::CommitNs
                | AddedField::Lsn
                | AddedField::TxId
        )
    }
}

/// A validated `unwrap` transform.
#[derive(Clone, Debug)]
pub struct UnwrapTransform {
    pub scope: TableScope,
    pub delete_handling: DeleteHandling,
    pub drop_tombstones: bool,
    /// Each field with the name it gets in the row (prefix + name, `.` as `_`).
    pub add_fields: Vec<(AddedField, String)>,
}

/// What an event becomes in the encoding context of its table.
pub struct UnwrapContext<'a> {
    pub encoder: &'a TableEncoder,
    pub key_id: Option<u32>,
    pub value_id: u32,
    pub topic: &'a Arc<str>,
    pub source: &'a SourceInfo,
}

impl UnwrapTransform {
    /// The name an added field gets.
    pub fn field_name(prefix: &str, written: &str) -> String {
        format!("{prefix}{}", written.replace('.', "_"))
    }

    /// The flat value schema: the table's `Value` record, then the added fields, then
    /// `__deleted` under `rewrite`. A name clashing with a column is an error.
    pub fn value_schema(&self, schemas: &TableSchemas) -> Result<Json, String> {
        let mut schema = schemas.value_json.clone();
        let Some(fields) = schema["fields"].as_array_mut() else {
            return Err("the row schema has no fields".into());
        };
        let mut extra: Vec<(&str, &str)> = self
            .add_fields
            .iter()
            .map(|(field, name)| {
                (
                    name.as_str(),
                    if field.is_long() { "long" } else { "string" },
                )
            })
            .collect();
        if self.delete_handling == DeleteHandling::Rewrite {
            extra.push((DELETED_FIELD, "string"));
        }
        for (name, avro_type) in extra {
            if fields.iter().any(|f| f["name"] == name) {
                return Err(format!(
                    "the unwrap transform adds the field {name:?}, which is also a column"
                ));
            }
            fields.push(json!({"name": name, "type": ["null", avro_type], "default": null}));
        }
        Ok(schema)
    }

    /// The record for `event` (index `index` of its batch), or `None` when the event has none
    /// (a dropped delete).
    pub fn record(
        &self,
        context: &UnwrapContext<'_>,
        event: &ChangeEvent,
        index: usize,
        processed_at_us: i64,
    ) -> Result<Option<EncodedRecord>, EncodeError> {
        let key = match context.key_id {
            Some(id) => {
                let mut out = Vec::with_capacity(32);
                context
                    .encoder
                    .encode_key(event, id, &mut out)?
                    .then_some(out)
            }
            None => None,
        };
        let deleted = event.op == Op::Delete;
        let record = |value| EncodedRecord {
            origin: RecordOrigin::Event(index),
            topic: context.topic.clone(),
            key: key.clone(),
            value,
            suppress_tombstone: self.drop_tombstones,
        };
        if deleted {
            match self.delete_handling {
                DeleteHandling::Drop if self.drop_tombstones => return Ok(None),
                // No record of its own; what stays is the tombstone, itself a null value.
                DeleteHandling::Drop => return Ok(Some(record(None))),
                DeleteHandling::None => return Ok(Some(record(None))),
                DeleteHandling::Rewrite => {}
            }
        }
        let mut value = Vec::with_capacity(128);
        write_frame(&mut value, context.value_id);
        if !context.encoder.encode_row_body(event, &mut value)? {
            return Ok(None);
        }
        for (field, _) in &self.add_fields {
            self.write_added(&mut value, *field, event, context.source, processed_at_us);
        }
        if self.delete_handling == DeleteHandling::Rewrite {
            write_long(&mut value, 1);
            write_str(&mut value, if deleted { "true" } else { "false" });
        }
        Ok(Some(record(Some(value))))
    }

    /// One added field, as the optional union's value branch (null for an absent txid).
    fn write_added(
        &self,
        out: &mut Vec<u8>,
        field: AddedField,
        event: &ChangeEvent,
        source: &SourceInfo,
        processed_at_us: i64,
    ) {
        let position = &event.position;
        let table = event.table.as_deref();
        let long = |out: &mut Vec<u8>, v: i64| {
            write_long(out, 1);
            write_long(out, v);
        };
        let text = |out: &mut Vec<u8>, v: &str| {
            write_long(out, 1);
            write_str(out, v);
        };
        let commit_us = position.commit_time_us;
        match field {
            AddedField::Op => text(out, event.op.as_str()),
            AddedField::ProcessedMs => long(out, processed_at_us.div_euclid(1000)),
            AddedField::ProcessedUs => long(out, processed_at_us),
            AddedField::ProcessedNs => long(out, processed_at_us.saturating_mul(1000)),
            AddedField::CommitMs => long(out, commit_us.div_euclid(1000)),
            AddedField::CommitUs => long(out, commit_us),
            AddedField::CommitNs => long(out, commit_us.saturating_mul(1000)),
            AddedField::Table => text(out, table.map_or("", |t| t.name.as_str())),
            AddedField::Schema => text(out, table.map_or("", |t| t.schema.as_str())),
            AddedField::Db => text(out, &source.database),
            AddedField::Name => text(out, &source.server_name),
            AddedField::Lsn => long(
                out,
                i64::try_from(position.lsn.as_u64()).unwrap_or(i64::MAX),
            ),
            AddedField::TxId => match position.xid {
                Some(xid) => long(out, i64::from(xid)),
                None => write_long(out, 0),
            },
            AddedField::Snapshot => text(out, position.snapshot.as_str()),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use apache_avro::types::Value as Avro;

    use super::*;
    use crate::schema::{build_table_schemas, EnvelopeOptions, UserTypes};
    use crate::transform::test_events::{customers, delete, insert, row};

    fn unwrap(mode: DeleteHandling, drop_tombstones: bool, add: &[&str]) -> UnwrapTransform {
        UnwrapTransform {
            scope: TableScope::default(),
            delete_handling: mode,
            drop_tombstones,
            add_fields: add
                .iter()
                .map(|a| {
                    let name = UnwrapTransform::field_name(DEFAULT_ADD_FIELDS_PREFIX, a);
                    (AddedField::parse(a).unwrap(), name)
                })
                .collect(),
        }
    }

    struct Fixture {
        schemas: TableSchemas,
        encoder: TableEncoder,
        source: SourceInfo,
        topic: Arc<str>,
    }

    impl Fixture {
        /// Key schema id 1, value schema id 2.
        fn context(&self) -> UnwrapContext<'_> {
            UnwrapContext {
                encoder: &self.encoder,
                key_id: Some(1),
                value_id: 2,
                topic: &self.topic,
                source: &self.source,
            }
        }
    }

    fn fixture() -> Fixture {
        let schemas = build_table_schemas(
            "shop",
            &customers(),
            &HashSet::new(),
            &EnvelopeOptions::default(),
            &UserTypes::default(),
        )
        .unwrap();
        let source = SourceInfo {
            version: "test".into(),
            server_name: "shop".into(),
            database: "app".into(),
        };
        let encoder = TableEncoder::new(&schemas, &source, "__unavailable");
        let topic = Arc::from(schemas.topic.as_str());
        Fixture {
            schemas,
            encoder,
            source,
            topic,
        }
    }

    fn decode(schema: &Json, framed: &[u8]) -> Vec<(String, Avro)> {
        let schema = apache_avro::Schema::parse(schema).unwrap();
        assert_eq!(framed[0], 0);
        let mut body = &framed[5..];
        match apache_avro::from_avro_datum(&schema, &mut body, None).unwrap() {
            Avro::Record(fields) => fields,
            other => panic!("not a record: {other:?}"),
        }
    }

    fn field<'v>(fields: &'v [(String, Avro)], name: &str) -> &'v Avro {
        &fields.iter().find(|(n, _)| n == name).unwrap().1
    }

    #[test]
    fn the_value_is_the_flat_row_with_added_fields_named_as_debezium_does() {
        let f = fixture();
        let transform = unwrap(
            DeleteHandling::Rewrite,
            true,
            &["op", "table", "lsn", "source.ts_ms", "txId"],
        );
        let schema = transform.value_schema(&f.schemas).unwrap();
        assert_eq!(schema["name"], "Value");
        assert_eq!(schema["namespace"], "shop.public.customers");
        let names: Vec<&str> = schema["fields"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["name"].as_str().unwrap())
            .collect();
        assert_eq!(
            names,
            [
                "id",
                "name",
                "email",
                "ssn",
                "score",
                "__op",
                "__table",
                "__lsn",
                "__source_ts_ms",
                "__txId",
                "__deleted"
            ]
        );
        let context = f.context();
        let event = insert(&customers(), row(5, "eve", Some("e@x"), 9));
        let record = transform.record(&context, &event, 3, 0).unwrap().unwrap();
        assert_eq!(record.origin, RecordOrigin::Event(3));
        assert!(record.key.is_some());
        let value = decode(&schema, record.value.as_ref().unwrap());
        assert_eq!(field(&value, "id"), &Avro::Int(5));
        assert_eq!(
            field(&value, "email"),
            &Avro::Union(1, Box::new(Avro::String("e@x".into())))
        );
        let some = |v: Avro| Avro::Union(1, Box::new(v));
        assert_eq!(field(&value, "__op"), &some(Avro::String("c".into())));
        assert_eq!(
            field(&value, "__table"),
            &some(Avro::String("customers".into()))
        );
        assert_eq!(field(&value, "__lsn"), &some(Avro::Long(100)));
        assert_eq!(
            field(&value, "__source_ts_ms"),
            &some(Avro::Long(1_700_000_000_123))
        );
        assert_eq!(field(&value, "__txId"), &some(Avro::Long(700)));
        assert_eq!(
            field(&value, "__deleted"),
            &some(Avro::String("false".into()))
        );

        let delete = delete(&customers(), row(5, "eve", None, 9));
        let record = transform.record(&context, &delete, 4, 0).unwrap().unwrap();
        assert!(record.suppress_tombstone, "drop_tombstones");
        let value = decode(&schema, record.value.as_ref().unwrap());
        assert_eq!(field(&value, "id"), &Avro::Int(5));
        assert_eq!(
            field(&value, "__deleted"),
            &some(Avro::String("true".into()))
        );
        assert_eq!(field(&value, "__op"), &some(Avro::String("d".into())));
    }

    #[test]
    fn deletes_are_dropped_or_kept_as_null_values_per_the_handling_mode() {
        let f = fixture();
        let context = f.context();
        let delete = delete(&customers(), row(5, "eve", None, 9));
        let dropped = unwrap(DeleteHandling::Drop, true, &[]);
        assert_eq!(dropped.record(&context, &delete, 0, 0).unwrap(), None);
        let tombstone_only = unwrap(DeleteHandling::Drop, false, &[])
            .record(&context, &delete, 0, 0)
            .unwrap()
            .unwrap();
        assert_eq!(tombstone_only.value, None);
        assert!(tombstone_only.key.is_some());
        let none = unwrap(DeleteHandling::None, true, &[])
            .record(&context, &delete, 0, 0)
            .unwrap()
            .unwrap();
        assert_eq!(none.value, None);
        // Inserts are unaffected by the delete mode, and carry no __deleted outside rewrite.
        let schema = dropped.value_schema(&f.schemas).unwrap();
        assert_eq!(schema["fields"].as_array().unwrap().len(), 5);
        let insert = insert(&customers(), row(6, "al", None, 1));
        let record = dropped.record(&context, &insert, 0, 0).unwrap().unwrap();
        assert_eq!(
            field(&decode(&schema, record.value.as_ref().unwrap()), "score"),
            &Avro::Union(1, Box::new(Avro::Int(1)))
        );
    }

    #[test]
    fn an_added_field_named_like_a_column_is_refused() {
        let f = fixture();
        let mut transform = unwrap(DeleteHandling::Drop, true, &["op"]);
        transform.add_fields[0].1 = "email".into();
        let error = transform.value_schema(&f.schemas).unwrap_err();
        assert!(error.contains("\"email\""), "{error}");
    }
}
