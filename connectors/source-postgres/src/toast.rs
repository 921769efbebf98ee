//! Unchanged TOAST values, filled in: under the default replica identity an update that did not
//! touch a large (TOASTed) column does not carry its value. Rather than make every consumer
//! cope with a placeholder (or require REPLICA IDENTITY FULL), sluice re-reads such values by
//! primary key, one query per table and transaction, and only takes them when the row still
//! has the version the update wrote (`xmin` = the update's transaction). Otherwise the value
//! stays [`Value::UnchangedToast`] and sinks write the placeholder.

use std::collections::HashMap;
use std::sync::Arc;

use sluice_api::{ChangeEvent, Decimal, Numeric, Op, TableSchema, Value};
use tokio_postgres::Client;

use crate::ident::quote_ident;
use crate::types::TypeCatalog;
use crate::values::decode_text;
use crate::SourceError;

/// Keys per query: bounds the statement size for transactions that touched many rows.
const KEYS_PER_QUERY: usize = 500;

/// Fill the unchanged TOAST values of `events` that can be re-read; returns how many values
/// were filled.
pub async fn refill(
    client: &Client,
    catalog: &TypeCatalog,
    events: &mut [ChangeEvent],
) -> Result<usize, SourceError> {
    let mut groups: HashMap<(u32, u32), Vec<usize>> = HashMap::new();
    for (index, event) in events.iter().enumerate() {
        let (Some(table), Some(xid), Some(after)) =
            (&event.table, event.position.xid, &event.after)
        else {
            continue;
        };
        if event.op == Op::Update && after.contains(&Value::UnchangedToast) {
            groups
                .entry((table.relation_id, xid))
                .or_default()
                .push(index);
        }
    }
    let mut filled = 0;
    for ((_, xid), indexes) in groups {
        for chunk in indexes.chunks(KEYS_PER_QUERY) {
            filled += refill_group(client, catalog, events, chunk, xid).await?;
        }
    }
    Ok(filled)
}

/// One table, one transaction: `indexes` point at its updates with unchanged values.
async fn refill_group(
    client: &Client,
    catalog: &TypeCatalog,
    events: &mut [ChangeEvent],
    indexes: &[usize],
    xid: u32,
) -> Result<usize, SourceError> {
    let Some(table) = events[indexes[0]].table.clone() else {
        return Ok(0);
    };
    let keys: Vec<usize> = (0..table.columns.len())
        .filter(|&i| table.columns[i].is_key)
        .collect();
    let wanted: Vec<usize> = (0..table.columns.len())
        .filter(|&i| {
            indexes
                .iter()
                .any(|&e| after(&events[e])[i] == Value::UnchangedToast)
        })
        .collect();
    if keys.is_empty() || keys.iter().any(|&k| !castable(&table, k)) {
        return Ok(0);
    }
    let mut params: Vec<String> = vec![xid.to_string()];
    let mut tuples = Vec::new();
    for &e in indexes {
        let row = after(&events[e]);
        let mut slots = Vec::new();
        for &k in &keys {
            let Some(text) = key_text(&row[k]) else {
                return Ok(0);
            };
            params.push(text);
            slots.push(format!(
                "${}::text::{}",
                params.len(),
                table.columns[k].type_name
            ));
        }
        tuples.push(format!("({})", slots.join(", ")));
    }
    let select: Vec<String> = keys
        .iter()
        .chain(&wanted)
        .map(|&i| format!("{}::text", quote_ident(&table.columns[i].name)))
        .collect();
    let key_list: Vec<String> = keys
        .iter()
        .map(|&k| quote_ident(&table.columns[k].name))
        .collect();
    let sql = format!(
        "SELECT {} FROM {}.{} WHERE xmin::text = $1 AND ({}) IN ({})",
        select.join(", "),
        quote_ident(&table.schema),
        quote_ident(&table.name),
        key_list.join(", "),
        tuples.join(", ")
    );
    let refs: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = params
        .iter()
        .map(|p| p as &(dyn tokio_postgres::types::ToSql + Sync))
        .collect();
    let rows = client.query(&sql, &refs).await?;
    let decode = |i: usize, text: Option<String>| match text {
        Some(text) => decode_text(catalog, table.columns[i].type_oid, &text),
        None => Value::Null,
    };
    let mut filled = 0;
    for row in rows {
        let key_values: Vec<Value> = keys
            .iter()
            .enumerate()
            .map(|(n, &k)| decode(k, row.get(n)))
            .collect();
        let Some(&e) = indexes.iter().find(|&&e| {
            let after = after(&events[e]);
            keys.iter().zip(&key_values).all(|(&k, v)| after[k] == *v)
        }) else {
            continue;
        };
        let Some(after) = events[e].after.as_mut() else {
            continue;
        };
        for (n, &i) in wanted.iter().enumerate() {
            if after[i] == Value::UnchangedToast {
                after[i] = decode(i, row.get(keys.len() + n));
                filled += 1;
            }
        }
    }
    Ok(filled)
}

fn after(event: &ChangeEvent) -> &[Value] {
    event.after.as_deref().unwrap_or(&[])
}

/// Key columns are matched through a cast of their text; only built-in type names (no schema
/// part) are spelled into the statement.
fn castable(table: &Arc<TableSchema>, column: usize) -> bool {
    let name = &table.columns[column].type_name;
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// A key value as PostgreSQL's text input reads it; `None` for types not used as keys here.
fn key_text(value: &Value) -> Option<String> {
    Some(match value {
        Value::Int16(v) => v.to_string(),
        Value::Int32(v) => v.to_string(),
        Value::Int64(v) => v.to_string(),
        Value::Bool(v) => v.to_string(),
        Value::Text(s) | Value::Enum(s) => s.clone(),
        Value::Numeric(Numeric::Value(d)) => Decimal::as_str(d).to_string(),
        Value::Uuid(b) => {
            let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
            format!(
                "{}-{}-{}-{}-{}",
                &hex[..8],
                &hex[8..12],
                &hex[12..16],
                &hex[16..20],
                &hex[20..]
            )
        }
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn common_key_types_render_as_postgres_reads_them() {
        assert_eq!(key_text(&Value::Int64(-7)).as_deref(), Some("-7"));
        assert_eq!(key_text(&Value::Text("a'b".into())).as_deref(), Some("a'b"));
        let uuid = [
            0xa0, 0xee, 0xbc, 0x99, 0x9c, 0x0b, 0x4e, 0xf8, 0xbb, 0x6d, 0x6b, 0xb9, 0xbd, 0x38,
            0x0a, 0x11,
        ];
        assert_eq!(
            key_text(&Value::Uuid(uuid)).as_deref(),
            Some("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11")
        );
        assert_eq!(
            key_text(&Value::Float64(1.0)),
            None,
            "floats are not matched exactly by text"
        );
    }
}
