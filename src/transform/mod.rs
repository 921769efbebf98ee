//! Per-pipeline transforms (`[[transforms]]`), applied in file order before the sinks.
//!
//! Two kinds, at two places in the flow:
//! - **Event transforms** change the [`ChangeEvent`] itself, so every sink sees their result
//!   (Kafka, search, warehouses, the file sink's JSON lines): `columns` keeps or drops columns,
//!   `mask` replaces or hashes values (the column becomes text, and so does its Avro field),
//!   `filter` drops the events its condition does not hold for. [`TransformChain`] applies them
//!   in the fan-out, before the envelope stage derives schemas, so a schema always describes the
//!   transformed table shape.
//! - **Record transforms** shape the Kafka record the envelope stage writes, after every event
//!   transform: `unwrap` (Debezium's `ExtractNewRecordState`: the flat row instead of the
//!   envelope) and `outbox` (Debezium's outbox `EventRouter`: an outbox table's inserts become
//!   events on topics named by a column). Sinks that write change events rather than records do
//!   not see them.
//!
//! Contract of every transform: pure (no I/O, the same event gives the same result), per event,
//! may drop an event, never reorders. A dropped event is not delivered, but the batch keeps its
//! checkpoint: the position is confirmed once the sinks took what remained, so filtering never
//! holds the slot back.

mod columns;
mod config;
mod filter;
mod mask;
mod outbox;
mod predicate;
mod scope;
mod unwrap;

use std::collections::HashMap;
use std::sync::Arc;

use sluice_api::{Batch, ChangeEvent, TableSchema};

pub use columns::{ColumnsMode, ColumnsTransform};
pub use config::{validate_transforms, RawTransform};
pub use filter::FilterTransform;
pub use mask::{MaskMode, MaskTransform};
pub use outbox::{OpInvalidBehavior, OutboxColumns, OutboxError, OutboxEvent, OutboxTransform};
pub use predicate::{Predicate, PredicateError};
pub use scope::{ColumnSelector, TableScope};
pub use unwrap::{AddedField, DeleteHandling, UnwrapContext, UnwrapTransform};

/// The validated `[[transforms]]` list: event transforms in file order, then record
/// transforms (validation refuses an event transform after a record transform).
#[derive(Clone, Debug, Default)]
pub struct Transforms {
    pub events: Vec<EventTransform>,
    pub records: Vec<RecordTransform>,
}

/// A transform of change events, seen by every sink.
#[derive(Clone, Debug)]
pub enum EventTransform {
    Columns(ColumnsTransform),
    Mask(MaskTransform),
    Filter(FilterTransform),
}

impl EventTransform {
    fn scope(&self) -> &TableScope {
        match self {
            EventTransform::Columns(t) => &t.scope,
            EventTransform::Mask(t) => &t.scope,
            EventTransform::Filter(t) => &t.scope,
        }
    }
}

/// A transform of the Kafka record written for an event.
#[derive(Clone, Debug)]
pub enum RecordTransform {
    Unwrap(UnwrapTransform),
    Outbox(OutboxTransform),
}

impl Transforms {
    /// The record transform for `table`'s events: the outbox transform naming the table, else
    /// the first `unwrap` whose scope holds it, else none (the Debezium envelope).
    pub fn record_transform(&self, table: &TableSchema) -> Option<&RecordTransform> {
        let outbox = self.records.iter().find(|r| match r {
            RecordTransform::Outbox(o) => o.applies_to(table),
            RecordTransform::Unwrap(_) => false,
        });
        outbox.or_else(|| {
            self.records.iter().find(|r| match r {
                RecordTransform::Unwrap(u) => u.scope.contains(table),
                RecordTransform::Outbox(_) => false,
            })
        })
    }
}

/// What one event transform does to one table shape, worked out once per shape.
#[derive(Debug)]
struct ShapePlan {
    /// The shape the plan was made for.
    input: Arc<TableSchema>,
    /// The shape events leave with (the same `Arc` when unchanged).
    output: Arc<TableSchema>,
    action: ShapeAction,
}

#[derive(Debug)]
enum ShapeAction {
    /// Out of the transform's scope, or nothing to do for this table.
    Pass,
    /// Keep the columns whose flag is set.
    Keep(Vec<bool>),
    /// Mask the columns whose flag is set.
    Mask(Vec<bool>),
    Filter,
}

/// Applies the event transforms to batches, caching each table shape's plan: per event the
/// work is a pointer comparison and the transform itself.
#[derive(Debug, Default)]
pub struct TransformChain {
    steps: Vec<EventTransform>,
    /// (step index, relation id) -> the plan for that table's current shape.
    plans: HashMap<(usize, u32), ShapePlan>,
}

impl TransformChain {
    pub fn new(transforms: &Transforms) -> Self {
        TransformChain {
            steps: transforms.events.clone(),
            plans: HashMap::new(),
        }
    }

    /// Whether there is anything to apply.
    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }

    /// Transform `batch.events` in place, dropping filtered events; returns how many were
    /// dropped. The batch's checkpoint is untouched.
    pub fn apply(&mut self, batch: &mut Batch) -> usize {
        if self.steps.is_empty() {
            return 0;
        }
        let before = batch.events.len();
        let events = std::mem::take(&mut batch.events);
        batch.events = events
            .into_iter()
            .filter_map(|event| self.apply_event(event))
            .collect();
        before - batch.events.len()
    }

    /// One event through every step; `None` when a filter drops it.
    pub fn apply_event(&mut self, mut event: ChangeEvent) -> Option<ChangeEvent> {
        for index in 0..self.steps.len() {
            // Logical decoding messages have no table: no event transform applies to them.
            let Some(table) = event.table.clone() else {
                return Some(event);
            };
            let step = &self.steps[index];
            let plan = plan_for(&mut self.plans, index, step, &table);
            match (step, &plan.action) {
                (_, ShapeAction::Keep(keep)) => {
                    for row in [&mut event.before, &mut event.after].into_iter().flatten() {
                        columns::retain_flagged(row, keep);
                    }
                }
                (EventTransform::Mask(mask), ShapeAction::Mask(masked)) => {
                    for row in [&mut event.before, &mut event.after].into_iter().flatten() {
                        mask.apply(row, masked);
                    }
                }
                (EventTransform::Filter(filter), ShapeAction::Filter) if !filter.keeps(&event) => {
                    return None;
                }
                _ => {}
            }
            if !Arc::ptr_eq(&plan.output, &table) {
                event.table = Some(plan.output.clone());
            }
        }
        Some(event)
    }
}

/// The cached plan of step `index` for `table`, made anew when the shape changed.
fn plan_for<'p>(
    plans: &'p mut HashMap<(usize, u32), ShapePlan>,
    index: usize,
    step: &EventTransform,
    table: &Arc<TableSchema>,
) -> &'p ShapePlan {
    let plan = plans
        .entry((index, table.relation_id))
        .or_insert_with(|| make_plan(step, table));
    if !Arc::ptr_eq(&plan.input, table) {
        if *plan.input != **table {
            *plan = make_plan(step, table);
        }
        plan.input = table.clone();
    }
    plan
}

fn make_plan(step: &EventTransform, table: &Arc<TableSchema>) -> ShapePlan {
    let unchanged = |action| ShapePlan {
        input: table.clone(),
        output: table.clone(),
        action,
    };
    if !step.scope().contains(table) {
        return unchanged(ShapeAction::Pass);
    }
    match step {
        EventTransform::Filter(_) => unchanged(ShapeAction::Filter),
        EventTransform::Columns(columns) => {
            let keep = columns.kept(table);
            if keep.iter().all(|k| *k) {
                return unchanged(ShapeAction::Pass);
            }
            let mut shape = (**table).clone();
            columns::retain_flagged(&mut shape.columns, &keep);
            ShapePlan {
                input: table.clone(),
                output: Arc::new(shape),
                action: ShapeAction::Keep(keep),
            }
        }
        EventTransform::Mask(mask) => {
            let masked = mask.masked(table);
            if !masked.iter().any(|m| *m) {
                return unchanged(ShapeAction::Pass);
            }
            ShapePlan {
                input: table.clone(),
                output: Arc::new(mask::masked_shape(table, &masked)),
                action: ShapeAction::Mask(masked),
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod test_events;
#[cfg(test)]
mod tests;
