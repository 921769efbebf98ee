//! Change messages to change events: Insert, Update, Delete, Truncate and transactional
//! Message become [`ChangeEvent`]s, their tuples decoded column by column into typed values.

use sluice_api::{ChangeEvent, LogicalMessage, Op, Row, SourcePosition, TableSchema, Value};

use super::schemas::Schemas;
use crate::pgoutput::{Message, OldTuple, Tuple, TupleValue};
use crate::values;

/// The events of one change message: one, or one per table for a truncate.
#[derive(Debug)]
pub(crate) enum Changes {
    One(ChangeEvent),
    Many(Vec<ChangeEvent>),
}

/// The events of a change message at `position`, `None` for a message that is not a change.
pub(crate) fn change_events(
    schemas: &Schemas,
    message: &Message<'_>,
    position: SourcePosition,
) -> Result<Option<Changes>, String> {
    let event = match message {
        Message::Insert(insert) => {
            let table = schemas.table_for_change(insert.relation_id)?;
            let after = decode_row(schemas, &table, &insert.new, false)?;
            row_event(Op::Create, table, None, false, Some(after), position)
        }
        Message::Update(update) => {
            let table = schemas.table_for_change(update.relation_id)?;
            let (before, key_only) = match update.old {
                Some(old) => {
                    let (before, key_only) = decode_old(schemas, &table, old)?;
                    (Some(before), key_only)
                }
                None => (None, false),
            };
            let after = decode_row(schemas, &table, &update.new, false)?;
            row_event(Op::Update, table, before, key_only, Some(after), position)
        }
        Message::Delete(delete) => {
            let table = schemas.table_for_change(delete.relation_id)?;
            let (before, key_only) = decode_old(schemas, &table, delete.old)?;
            row_event(Op::Delete, table, Some(before), key_only, None, position)
        }
        Message::Truncate(truncate) => {
            let mut events = Vec::with_capacity(truncate.relation_ids.len());
            for relation_id in &truncate.relation_ids {
                let table = schemas.table_for_change(*relation_id)?;
                events.push(row_event(
                    Op::Truncate,
                    table,
                    None,
                    false,
                    None,
                    position.clone(),
                ));
            }
            return Ok(Some(Changes::Many(events)));
        }
        Message::Message(message) => ChangeEvent {
            op: Op::Message,
            table: None,
            before: None,
            before_is_key_only: false,
            after: None,
            message: Some(LogicalMessage {
                transactional: message.transactional,
                prefix: message.prefix.clone().into_owned(),
                content: message.content.to_vec(),
            }),
            position,
        },
        _ => return Ok(None),
    };
    Ok(Some(Changes::One(event)))
}

fn row_event(
    op: Op,
    table: std::sync::Arc<TableSchema>,
    before: Option<Row>,
    before_is_key_only: bool,
    after: Option<Row>,
    position: SourcePosition,
) -> ChangeEvent {
    ChangeEvent {
        op,
        table: Some(table),
        before,
        before_is_key_only,
        after,
        message: None,
        position,
    }
}

/// The old values of an update or delete, and whether they are the key only.
fn decode_old(
    schemas: &Schemas,
    table: &TableSchema,
    old: OldTuple<'_>,
) -> Result<(Row, bool), String> {
    match old {
        OldTuple::Key(tuple) => Ok((decode_row(schemas, table, &tuple, true)?, true)),
        OldTuple::Full(tuple) => Ok((decode_row(schemas, table, &tuple, false)?, false)),
    }
}

/// A tuple as a row in the table's column order. With `key_only`, columns outside the replica
/// identity are `Null` whatever the tuple holds.
fn decode_row(
    schemas: &Schemas,
    table: &TableSchema,
    tuple: &Tuple<'_>,
    key_only: bool,
) -> Result<Row, String> {
    let catalog = &schemas.catalog;
    if tuple.column_count() != table.columns.len() {
        return Err(format!(
            "tuple of {} columns for {} ({} columns)",
            tuple.column_count(),
            table.qualified_name(),
            table.columns.len()
        ));
    }
    let row = tuple
        .iter()
        .zip(&table.columns)
        .enumerate()
        .map(|(index, (value, column))| {
            if key_only && !column.is_key {
                return Value::Null;
            }
            match value {
                TupleValue::Null => Value::Null,
                TupleValue::UnchangedToast => Value::UnchangedToast,
                TupleValue::Text(bytes) => match std::str::from_utf8(bytes) {
                    Ok(text) => values::decode_text(catalog, column.type_oid, text),
                    // Not UTF-8 (a server encoding other than UTF-8): keep what can be read
                    // rather than stop the stream, and say so once per column.
                    Err(_) => {
                        schemas.warn_not_utf8(table, index);
                        Value::Unknown {
                            type_name: column.type_name.clone(),
                            text: String::from_utf8_lossy(bytes).into_owned(),
                        }
                    }
                },
                TupleValue::Binary(bytes) => values::decode_binary(catalog, column.type_oid, bytes),
            }
        })
        .collect();
    Ok(row)
}
