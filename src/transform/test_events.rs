//! Events of a small `public.customers` table for the transforms' unit tests.

use std::sync::Arc;

use sluice_api::{
    ChangeEvent, Column, Lsn, Op, ReplicaIdentity, SourcePosition, TableSchema, Value,
};

/// A column without a type modifier.
pub fn column(name: &str, type_name: &str, type_oid: u32, is_key: bool) -> Column {
    Column {
        name: name.into(),
        type_oid,
        type_name: type_name.into(),
        type_modifier: -1,
        is_key,
    }
}

/// `public.customers (id int4 primary key, name text, email text, ssn text, score int4)`.
pub fn customers() -> Arc<TableSchema> {
    Arc::new(TableSchema {
        relation_id: 7,
        schema: "public".into(),
        name: "customers".into(),
        replica_identity: ReplicaIdentity::Default,
        columns: vec![
            column("id", "int4", 23, true),
            column("name", "text", 25, false),
            column("email", "text", 25, false),
            column("ssn", "text", 25, false),
            column("score", "int4", 23, false),
        ],
    })
}

/// A customer row.
pub fn row(id: i32, name: &str, email: Option<&str>, score: i32) -> Vec<Value> {
    vec![
        Value::Int32(id),
        Value::Text(name.into()),
        email.map_or(Value::Null, |e| Value::Text(e.into())),
        Value::Text(format!("ssn-{id}")),
        Value::Int32(score),
    ]
}

/// An event of `table` at LSN `lsn`.
pub fn event_of(
    table: &Arc<TableSchema>,
    op: Op,
    before: Option<Vec<Value>>,
    after: Option<Vec<Value>>,
    lsn: u64,
) -> ChangeEvent {
    ChangeEvent {
        op,
        table: Some(table.clone()),
        before,
        before_is_key_only: false,
        after,
        message: None,
        position: SourcePosition {
            lsn: Lsn(lsn),
            commit_lsn: Lsn(lsn + 8),
            xid: Some(700),
            commit_time_us: 1_700_000_000_123_456,
            snapshot: sluice_api::SnapshotFlag::False,
        },
    }
}

/// An insert of `row` into `customers()`.
pub fn insert(table: &Arc<TableSchema>, row: Vec<Value>) -> ChangeEvent {
    event_of(table, Op::Create, None, Some(row), 100)
}

/// A delete of `row` from `table` (a full old row, as under `REPLICA IDENTITY FULL`).
pub fn delete(table: &Arc<TableSchema>, row: Vec<Value>) -> ChangeEvent {
    event_of(table, Op::Delete, Some(row), None, 140)
}
