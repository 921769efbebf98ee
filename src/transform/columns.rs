//! `type = "columns"`: keep only the `include`d columns, or drop the `exclude`d ones (Debezium's
//! `column.include.list` / `column.exclude.list`). The table shape loses the columns too, so the
//! derived schemas, keys and every sink's rows agree; dropping a key column takes it out of the
//! key.

use super::scope::{selected, ColumnSelector, TableScope};
use sluice_api::TableSchema;

/// Whether the listed columns are the ones kept or the ones dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ColumnsMode {
    Include,
    Exclude,
}

/// A validated `columns` transform.
#[derive(Clone, Debug)]
pub struct ColumnsTransform {
    pub scope: TableScope,
    pub mode: ColumnsMode,
    pub columns: Vec<ColumnSelector>,
}

impl ColumnsTransform {
    /// One flag per column of `table`: kept or not.
    pub fn kept(&self, table: &TableSchema) -> Vec<bool> {
        table
            .columns
            .iter()
            .map(|c| selected(&self.columns, table, &c.name) == (self.mode == ColumnsMode::Include))
            .collect()
    }
}

/// Keep the items whose flag is set (items beyond the flags are dropped: a row never has more
/// values than its table has columns).
pub fn retain_flagged<T>(items: &mut Vec<T>, keep: &[bool]) {
    let mut index = 0;
    items.retain(|_| {
        let kept = keep.get(index).copied().unwrap_or(false);
        index += 1;
        kept
    });
}

#[cfg(test)]
mod tests {
    use sluice_api::{Batch, Value};

    use super::*;
    use crate::transform::test_events::{customers, insert, row};
    use crate::transform::{EventTransform, TransformChain, Transforms};

    fn chain(mode: ColumnsMode, columns: &[&str], tables: &[&str]) -> TransformChain {
        TransformChain::new(&Transforms {
            events: vec![EventTransform::Columns(ColumnsTransform {
                scope: TableScope(tables.iter().map(|t| t.to_string()).collect()),
                mode,
                columns: columns
                    .iter()
                    .map(|c| ColumnSelector::parse(c).unwrap())
                    .collect(),
            })],
            records: Vec::new(),
        })
    }

    #[test]
    fn excluded_columns_leave_the_rows_and_the_table_shape() {
        let table = customers();
        let mut chain = chain(
            ColumnsMode::Exclude,
            &["ssn", "public.customers.email"],
            &[],
        );
        let event = chain
            .apply_event(insert(&table, row(1, "ann", Some("a@x"), 5)))
            .unwrap();
        let shape = event.table.as_ref().unwrap();
        let names: Vec<&str> = shape.columns.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["id", "name", "score"]);
        assert_eq!(
            event.after.unwrap(),
            [Value::Int32(1), Value::Text("ann".into()), Value::Int32(5)]
        );
        // The next event of the same shape shares the transformed shape.
        let next = chain
            .apply_event(insert(&table, row(2, "bob", None, 6)))
            .unwrap();
        assert!(std::sync::Arc::ptr_eq(shape, next.table.as_ref().unwrap()));
    }

    #[test]
    fn included_columns_are_the_only_ones_left_and_other_tables_are_untouched() {
        let table = customers();
        let mut included = chain(
            ColumnsMode::Include,
            &["id", "score"],
            &["public.customers"],
        );
        let mut batch = Batch {
            events: vec![insert(&table, row(1, "ann", Some("a@x"), 5))],
            ..Batch::default()
        };
        assert_eq!(included.apply(&mut batch), 0);
        assert_eq!(
            batch.events[0].after,
            Some(vec![Value::Int32(1), Value::Int32(5)])
        );

        let mut other = chain(ColumnsMode::Include, &["id"], &["sales.*"]);
        let untouched = other
            .apply_event(insert(&table, row(1, "ann", None, 5)))
            .unwrap();
        assert!(std::sync::Arc::ptr_eq(
            untouched.table.as_ref().unwrap(),
            &table
        ));
        assert_eq!(untouched.after.unwrap().len(), 5);
    }
}
