//! A batch as the writes it needs, per table: the newest change of each key (earlier changes to
//! the same key in the batch are superseded, so one statement never touches a row twice), split
//! where the table is truncated or changes shape, so order within a table is kept.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::{Map, Value as Json};
use sluice_api::{Batch, ChangeEvent, Lsn, Op, TableSchema};

use crate::encode::{cell, Cell};

/// The newest change of one key.
#[derive(Clone, Debug, PartialEq)]
pub struct RowChange {
    pub key: Vec<Cell>,
    pub lsn: Lsn,
    pub op: Op,
    /// Every column's cell for an upsert; `None` for a delete.
    pub cells: Option<Vec<Cell>>,
}

impl RowChange {
    /// The row as JSON (column -> text form), for dead letters.
    pub fn document(&self, table: &TableSchema) -> Json {
        let mut object = Map::new();
        match &self.cells {
            Some(cells) => {
                for (column, cell) in table.columns.iter().zip(cells) {
                    object.insert(column.name.clone(), cell_json(cell));
                }
            }
            None => return key_json(table, &self.key),
        }
        Json::Object(object)
    }
}

/// The key cells as a JSON object of the key columns.
pub fn key_json(table: &TableSchema, key: &[Cell]) -> Json {
    let names = table.columns.iter().filter(|c| c.is_key).map(|c| &c.name);
    Json::Object(
        names
            .zip(key)
            .map(|(name, cell)| (name.clone(), cell_json(cell)))
            .collect(),
    )
}

fn cell_json(cell: &Cell) -> Json {
    match cell {
        Cell::Text(text) => Json::from(text.as_str()),
        Cell::Null | Cell::Unchanged => Json::Null,
    }
}

/// One unit of work on one table.
#[derive(Clone, Debug, PartialEq)]
pub enum Step {
    /// Upserts and deletes of distinct keys, in any order (each guarded by its LSN).
    Rows {
        table: Arc<TableSchema>,
        changes: Vec<RowChange>,
    },
    Truncate {
        table: Arc<TableSchema>,
        lsn: Lsn,
    },
}

/// An event the sink cannot turn into a write.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum PlanError {
    #[error("table {table} has no primary key: the postgres sink keys target rows by it")]
    NoKey { table: String },
    #[error("a delete on {table} at {lsn} carries no old key (replica identity nothing?)")]
    NoOldKey { table: String, lsn: Lsn },
}

/// The rows of one table since its last truncate or shape change.
struct Segment {
    table: Arc<TableSchema>,
    /// Key -> index in `changes`.
    index: HashMap<Vec<Cell>, usize>,
    changes: Vec<RowChange>,
}

impl Segment {
    fn new(table: Arc<TableSchema>) -> Self {
        Segment {
            table,
            index: HashMap::new(),
            changes: Vec::new(),
        }
    }

    /// Record `change`, superseding an earlier change of the same key; unchanged TOAST cells
    /// of an upsert take the value the earlier upsert of the key wrote.
    fn put(&mut self, mut change: RowChange) {
        match self.index.get(&change.key) {
            Some(&i) => {
                if let (Some(cells), Some(older)) = (&mut change.cells, &self.changes[i].cells) {
                    fill_unchanged(cells, older);
                }
                self.changes[i] = change;
            }
            None => {
                self.index.insert(change.key.clone(), self.changes.len());
                self.changes.push(change);
            }
        }
    }

    fn into_step(self) -> Option<Step> {
        (!self.changes.is_empty()).then_some(Step::Rows {
            table: self.table,
            changes: self.changes,
        })
    }
}

fn fill_unchanged(cells: &mut [Cell], from: &[Cell]) {
    for (cell, older) in cells.iter_mut().zip(from) {
        if *cell == Cell::Unchanged {
            *cell = older.clone();
        }
    }
}

/// The steps for `batch`, in an order that keeps each table's own order.
pub fn plan(batch: &Batch) -> Result<Vec<Step>, PlanError> {
    let mut steps = Vec::new();
    let mut segments: HashMap<String, Segment> = HashMap::new();
    let mut order: Vec<String> = Vec::new();
    for event in &batch.events {
        let Some(table) = &event.table else { continue };
        if event.op == Op::Message {
            continue;
        }
        let name = table.qualified_name();
        let same_shape = segments
            .get(&name)
            .is_some_and(|s| Arc::ptr_eq(&s.table, table) || s.table.columns == table.columns);
        if !same_shape || event.op == Op::Truncate {
            if let Some(step) = segments.remove(&name).and_then(Segment::into_step) {
                steps.push(step);
            }
            segments.insert(name.clone(), Segment::new(table.clone()));
            if !order.contains(&name) {
                order.push(name.clone());
            }
        }
        if event.op == Op::Truncate {
            steps.push(Step::Truncate {
                table: table.clone(),
                lsn: event.position.lsn,
            });
            continue;
        }
        let segment = segments.get_mut(&name).expect("inserted above");
        for change in row_changes(table, event)? {
            segment.put(change);
        }
    }
    for name in order {
        if let Some(step) = segments.remove(&name).and_then(Segment::into_step) {
            steps.push(step);
        }
    }
    Ok(steps)
}

/// The key cells of `row`.
fn key_of(table: &TableSchema, row: &[Cell]) -> Vec<Cell> {
    table
        .columns
        .iter()
        .zip(row)
        .filter(|(c, _)| c.is_key)
        .map(|(_, cell)| cell.clone())
        .collect()
}

/// One event as row changes: an upsert, a delete, or (an update that moved the row to another
/// key) a delete of the old key and an upsert of the new one.
fn row_changes(table: &TableSchema, event: &ChangeEvent) -> Result<Vec<RowChange>, PlanError> {
    if !table.columns.iter().any(|c| c.is_key) {
        return Err(PlanError::NoKey {
            table: table.qualified_name(),
        });
    }
    let lsn = event.position.lsn;
    let before: Option<Vec<Cell>> = event
        .before
        .as_ref()
        .map(|row| row.iter().map(cell).collect());
    match event.op {
        Op::Delete => {
            let before = before.ok_or_else(|| PlanError::NoOldKey {
                table: table.qualified_name(),
                lsn,
            })?;
            Ok(vec![RowChange {
                key: key_of(table, &before),
                lsn,
                op: Op::Delete,
                cells: None,
            }])
        }
        _ => {
            let Some(after) = &event.after else {
                return Ok(Vec::new());
            };
            let mut cells: Vec<Cell> = after.iter().map(cell).collect();
            if let (Some(before), false) = (&before, event.before_is_key_only) {
                fill_unchanged(&mut cells, before);
            }
            let key = key_of(table, &cells);
            let mut out = Vec::with_capacity(2);
            if let Some(before) = &before {
                let old_key = key_of(table, before);
                if old_key != key && old_key.iter().all(|c| *c != Cell::Null) {
                    out.push(RowChange {
                        key: old_key,
                        lsn,
                        op: Op::Delete,
                        cells: None,
                    });
                }
            }
            out.push(RowChange {
                key,
                lsn,
                op: event.op,
                cells: Some(cells),
            });
            Ok(out)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_api::{Column, ReplicaIdentity, SourcePosition, Value};

    fn table() -> Arc<TableSchema> {
        let col = |name: &str, is_key| Column {
            name: name.into(),
            type_oid: 23,
            type_name: "int4".into(),
            type_modifier: -1,
            is_key,
        };
        Arc::new(TableSchema {
            relation_id: 1,
            schema: "public".into(),
            name: "items".into(),
            replica_identity: ReplicaIdentity::Default,
            columns: vec![col("id", true), col("qty", false)],
        })
    }

    fn event(
        op: Op,
        lsn: u64,
        before: Option<Vec<Value>>,
        after: Option<Vec<Value>>,
    ) -> ChangeEvent {
        ChangeEvent {
            op,
            table: Some(table()),
            before_is_key_only: before.is_some(),
            before,
            after,
            message: None,
            position: SourcePosition {
                lsn: Lsn(lsn),
                ..SourcePosition::default()
            },
        }
    }

    fn batch(events: Vec<ChangeEvent>) -> Batch {
        Batch {
            events,
            ..Batch::default()
        }
    }

    fn text(s: &str) -> Cell {
        Cell::Text(s.into())
    }

    #[test]
    fn the_newest_change_of_a_key_supersedes_older_ones_and_keeps_unchanged_toast_values() {
        let steps = plan(&batch(vec![
            event(
                Op::Create,
                1,
                None,
                Some(vec![Value::Int32(1), Value::Int32(5)]),
            ),
            event(
                Op::Update,
                2,
                None,
                Some(vec![Value::Int32(1), Value::UnchangedToast]),
            ),
            event(
                Op::Create,
                3,
                None,
                Some(vec![Value::Int32(2), Value::Null]),
            ),
        ]))
        .unwrap();
        let Step::Rows { changes, .. } = &steps[0] else {
            panic!("{steps:?}")
        };
        assert_eq!(changes.len(), 2);
        assert_eq!(changes[0].lsn, Lsn(2));
        assert_eq!(changes[0].cells, Some(vec![text("1"), text("5")]));
        assert_eq!(changes[1].cells, Some(vec![text("2"), Cell::Null]));
    }

    #[test]
    fn a_truncate_splits_the_table_so_rows_after_it_survive() {
        let steps = plan(&batch(vec![
            event(
                Op::Create,
                1,
                None,
                Some(vec![Value::Int32(1), Value::Int32(5)]),
            ),
            ChangeEvent {
                op: Op::Truncate,
                ..event(Op::Truncate, 2, None, None)
            },
            event(
                Op::Create,
                3,
                None,
                Some(vec![Value::Int32(1), Value::Int32(6)]),
            ),
        ]))
        .unwrap();
        assert_eq!(steps.len(), 3);
        assert!(matches!(&steps[1], Step::Truncate { lsn: Lsn(2), .. }));
        let Step::Rows { changes, .. } = &steps[2] else {
            panic!("{steps:?}")
        };
        assert_eq!(changes[0].cells, Some(vec![text("1"), text("6")]));
    }

    #[test]
    fn an_update_of_the_key_deletes_the_old_key() {
        let steps = plan(&batch(vec![event(
            Op::Update,
            4,
            Some(vec![Value::Int32(1), Value::Null]),
            Some(vec![Value::Int32(9), Value::Int32(5)]),
        )]))
        .unwrap();
        let Step::Rows { changes, .. } = &steps[0] else {
            panic!("{steps:?}")
        };
        assert_eq!(changes[0].op, Op::Delete);
        assert_eq!(changes[0].key, vec![text("1")]);
        assert_eq!(changes[1].key, vec![text("9")]);
    }

    #[test]
    fn a_delete_without_an_old_key_is_an_error() {
        let error = plan(&batch(vec![event(Op::Delete, 4, None, None)])).unwrap_err();
        assert!(matches!(error, PlanError::NoOldKey { .. }));
    }
}
