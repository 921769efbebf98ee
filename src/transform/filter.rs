//! `type = "filter"`: keep only the events the `condition` holds for (Debezium's `Filter` SMT
//! with its `include` semantics), written in the small language of [`super::predicate`].
//! Columns are read from the row the event is about: the new row, or for deletes the old one
//! (under the default replica identity only its key columns; the others read as NULL). A
//! dropped event still lets its position be confirmed.

use sluice_api::{ChangeEvent, Op, Value};

use super::predicate::{Predicate, Subject};
use super::scope::TableScope;

/// A validated `filter` transform.
#[derive(Clone, Debug)]
pub struct FilterTransform {
    pub scope: TableScope,
    pub condition: Predicate,
}

impl FilterTransform {
    /// Whether `event` passes.
    pub fn keeps(&self, event: &ChangeEvent) -> bool {
        self.condition.matches(&EventSubject(event))
    }
}

/// An event as a predicate reads it.
struct EventSubject<'e>(&'e ChangeEvent);

impl Subject for EventSubject<'_> {
    fn op(&self) -> &str {
        self.0.op.as_str()
    }

    fn column(&self, name: &str) -> Option<&Value> {
        let event = self.0;
        let row = match event.op {
            Op::Delete => event.before.as_ref(),
            _ => event.after.as_ref().or(event.before.as_ref()),
        }?;
        let index = event
            .table
            .as_ref()?
            .columns
            .iter()
            .position(|c| c.name == name)?;
        row.get(index)
    }
}

#[cfg(test)]
mod tests {
    use sluice_api::{Batch, Lsn, Op};

    use super::*;
    use crate::transform::test_events::{customers, event_of, insert, row};
    use crate::transform::{EventTransform, TransformChain, Transforms};

    fn chain(condition: &str, tables: &[&str]) -> TransformChain {
        TransformChain::new(&Transforms {
            events: vec![EventTransform::Filter(FilterTransform {
                scope: TableScope(tables.iter().map(|t| t.to_string()).collect()),
                condition: Predicate::parse(condition).unwrap(),
            })],
            records: Vec::new(),
        })
    }

    #[test]
    fn events_the_condition_does_not_hold_for_are_dropped_in_order_and_the_checkpoint_stays() {
        let table = customers();
        let mut chain = chain("op != 'd' and score >= 10", &[]);
        let mut batch = Batch {
            events: vec![
                insert(&table, row(1, "low", None, 3)),
                insert(&table, row(2, "high", None, 30)),
                event_of(
                    &table,
                    Op::Delete,
                    Some(row(3, "gone", None, 50)),
                    None,
                    120,
                ),
                event_of(&table, Op::Update, None, Some(row(4, "up", None, 10)), 130),
            ],
            checkpoint: Some(Lsn(999)),
            ..Batch::default()
        };
        assert_eq!(chain.apply(&mut batch), 2);
        let ids: Vec<Value> = batch
            .events
            .iter()
            .map(|e| e.after.as_ref().unwrap()[0].clone())
            .collect();
        assert_eq!(ids, [Value::Int32(2), Value::Int32(4)]);
        assert_eq!(batch.checkpoint, Some(Lsn(999)));
    }

    #[test]
    fn deletes_are_judged_by_their_old_row_and_out_of_scope_tables_pass() {
        let table = customers();
        let delete = event_of(&table, Op::Delete, Some(row(3, "x", None, 50)), None, 120);
        assert!(chain("score = 50", &[])
            .apply_event(delete.clone())
            .is_some());
        assert!(chain("score = 51", &[])
            .apply_event(delete.clone())
            .is_none());
        assert!(chain("score = 51", &["sales.*"])
            .apply_event(delete)
            .is_some());
    }

    #[test]
    fn logical_messages_pass_every_filter() {
        let message = ChangeEvent {
            table: None,
            op: Op::Message,
            ..insert(&customers(), row(1, "a", None, 1))
        };
        assert!(chain("op = 'c'", &[]).apply_event(message).is_some());
    }
}
