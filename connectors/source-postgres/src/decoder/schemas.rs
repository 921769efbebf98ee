//! What the decoder knows about shapes: the relation cache (relation id -> table schema, from
//! Relation messages) and the type catalog (updated by Type messages). Every change message is
//! read against these.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use sluice_api::{Column, ReplicaIdentity, TableSchema};

use crate::pgoutput::{Relation, TypeMessage};
use crate::types::{TypeCatalog, TypeInfo, TypeKind};

/// pgoutput leaves the namespace empty for `pg_catalog`.
fn namespace_or_catalog(namespace: &str) -> &str {
    if namespace.is_empty() {
        "pg_catalog"
    } else {
        namespace
    }
}

/// `table` keyed by the columns named in `key` (a FULL-identity table's primary key); `None`
/// when it already is, when `key` is empty, or when a named column is missing (the catalog was
/// read after a later schema change: the next Relation message describes it again).
fn with_primary_key(table: &TableSchema, key: &[String]) -> Option<TableSchema> {
    if table.replica_identity != ReplicaIdentity::Full
        || key.is_empty()
        || !key
            .iter()
            .all(|k| table.columns.iter().any(|c| &c.name == k))
    {
        return None;
    }
    let in_key = |c: &Column| key.contains(&c.name);
    if table.columns.iter().all(|c| c.is_key == in_key(c)) {
        return None;
    }
    let mut keyed = table.clone();
    for column in &mut keyed.columns {
        column.is_key = key.contains(&column.name);
    }
    Some(keyed)
}

/// The relation cache and the type catalog, with the type OIDs that need a catalog reload.
#[derive(Debug)]
pub(crate) struct Schemas {
    pub(crate) catalog: TypeCatalog,
    tables: HashMap<u32, Arc<TableSchema>>,
    unknown_type_oids: Vec<u32>,
    /// Primary-key column names read from the catalog, for tables whose replica identity is
    /// FULL: pgoutput then flags every column as a key column, but the key of their events is
    /// the primary key (as it is for Debezium).
    primary_keys: HashMap<u32, Vec<String>>,
    /// FULL-identity relations described since the last [`Schemas::take_key_lookups`]: the
    /// source reads their primary key from the catalog.
    key_lookups: Vec<u32>,
    /// `(relation id, column)` pairs already warned about for text that is not UTF-8: one
    /// warning per column and session, not one per row. A mutex only because change decoding
    /// reads the schemas through a shared reference.
    not_utf8_warned: Mutex<HashSet<(u32, usize)>>,
}

impl Schemas {
    pub(crate) fn new(catalog: TypeCatalog) -> Self {
        Schemas {
            catalog,
            tables: HashMap::new(),
            unknown_type_oids: Vec::new(),
            primary_keys: HashMap::new(),
            key_lookups: Vec::new(),
            not_utf8_warned: Mutex::new(HashSet::new()),
        }
    }

    /// Warn (once per column) that a text value of `table` was not UTF-8 and was kept with
    /// U+FFFD in place of the bytes that could not be read: a server encoding like
    /// `SQL_ASCII` passes bytes through unchecked.
    pub(crate) fn warn_not_utf8(&self, table: &TableSchema, column: usize) {
        let mut warned = self
            .not_utf8_warned
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if warned.insert((table.relation_id, column)) {
            let name = table.columns.get(column).map_or("", |c| c.name.as_str());
            tracing::warn!(
                table = %table.qualified_name(), column = %name,
                "text that is not UTF-8 (is the database SQL_ASCII?): invalid bytes replaced \
                 by U+FFFD; further values of this column are replaced without a warning"
            );
        }
    }

    /// The cached schema of a relation.
    pub(crate) fn table(&self, relation_id: u32) -> Option<&Arc<TableSchema>> {
        self.tables.get(&relation_id)
    }

    /// The schema of a relation a change refers to; the server always describes a relation
    /// before its first change, so a missing one is a protocol error.
    pub(crate) fn table_for_change(&self, relation_id: u32) -> Result<Arc<TableSchema>, String> {
        self.tables
            .get(&relation_id)
            .cloned()
            .ok_or_else(|| format!("change for relation {relation_id}, which was never described"))
    }

    /// Use `catalog` from now on (reloaded from the server) and rename cached columns whose
    /// type it names differently (a type first seen unknown, as `oid:<n>`).
    pub(crate) fn replace_catalog(&mut self, catalog: TypeCatalog) {
        self.catalog = catalog;
        let catalog = &self.catalog;
        for table in self.tables.values_mut() {
            let stale = |c: &Column| c.type_name != catalog.type_name(c.type_oid);
            if table.columns.iter().any(stale) {
                let mut renamed = TableSchema::clone(table);
                for column in &mut renamed.columns {
                    column.type_name = catalog.type_name(column.type_oid);
                }
                *table = Arc::new(renamed);
            }
        }
    }

    /// Drain the type OIDs the catalog did not know when they were first seen.
    pub(crate) fn take_unknown_type_oids(&mut self) -> Vec<u32> {
        std::mem::take(&mut self.unknown_type_oids)
    }

    /// Drain the FULL-identity relations whose primary key should be read from the catalog.
    pub(crate) fn take_key_lookups(&mut self) -> Vec<u32> {
        std::mem::take(&mut self.key_lookups)
    }

    /// The primary key of a FULL-identity relation, read from the catalog: the cached schema
    /// (and every later description of the relation) takes it as its key. An empty key (a
    /// table without a primary key) keeps every column as the key, as pgoutput flags them.
    pub(crate) fn set_primary_key(&mut self, relation_id: u32, key: Vec<String>) {
        if let Some(table) = self.tables.get_mut(&relation_id) {
            if let Some(keyed) = with_primary_key(table, &key) {
                *table = Arc::new(keyed);
            }
        }
        self.primary_keys.insert(relation_id, key);
    }

    fn note_unknown(&mut self, oid: u32) {
        if !self.unknown_type_oids.contains(&oid) {
            self.unknown_type_oids.push(oid);
        }
    }

    /// A Relation message: (re)describe the table. A known id is replaced, which is how a
    /// schema change reaches the events.
    pub(crate) fn apply_relation(&mut self, relation: &Relation<'_>) -> Result<(), String> {
        let replica_identity =
            ReplicaIdentity::from_code(relation.replica_identity).ok_or_else(|| {
                format!(
                    "relation {} has unknown replica identity {:?}",
                    relation.relation_id,
                    char::from(relation.replica_identity)
                )
            })?;
        let mut columns = Vec::with_capacity(relation.columns.len());
        for column in &relation.columns {
            if self.catalog.get(column.type_oid).is_none() {
                self.note_unknown(column.type_oid);
            }
            columns.push(Column {
                name: column.name.clone().into_owned(),
                type_oid: column.type_oid,
                type_name: self.catalog.type_name(column.type_oid),
                type_modifier: column.type_modifier,
                is_key: column.is_key,
            });
        }
        let mut schema = TableSchema {
            relation_id: relation.relation_id,
            schema: namespace_or_catalog(&relation.namespace).to_owned(),
            name: relation.name.clone().into_owned(),
            replica_identity,
            columns,
        };
        if replica_identity == ReplicaIdentity::Full {
            if let Some(keyed) = self
                .primary_keys
                .get(&relation.relation_id)
                .and_then(|key| with_primary_key(&schema, key))
            {
                schema = keyed;
            }
            if !self.key_lookups.contains(&relation.relation_id) {
                self.key_lookups.push(relation.relation_id);
            }
        }
        self.tables.insert(relation.relation_id, Arc::new(schema));
        Ok(())
    }

    /// A Type message: name a non-built-in type. A type the catalog knows keeps its kind (and
    /// is renamed if the server says otherwise); an unknown one is added as a base type, so its
    /// values keep their text (or decode, for extension types known by name) until the catalog
    /// is reloaded, and is reported by [`Schemas::take_unknown_type_oids`].
    pub(crate) fn apply_type(&mut self, message: &TypeMessage<'_>) {
        let schema = namespace_or_catalog(&message.namespace);
        let name = if schema == "pg_catalog" {
            message.name.clone().into_owned()
        } else {
            format!("{schema}.{}", message.name)
        };
        let kind = match self.catalog.get(message.type_oid) {
            Some(known) if known.name == name && known.schema == schema => return,
            Some(known) => known.kind.clone(),
            None => {
                self.note_unknown(message.type_oid);
                TypeKind::Base
            }
        };
        self.catalog.insert(TypeInfo {
            oid: message.type_oid,
            schema: schema.to_owned(),
            name,
            kind,
        });
    }
}
