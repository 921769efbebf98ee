//! The SQL the postgres sink sends, built from a source table's shape. Every value is a text
//! parameter cast by the server to the column's type (`$1::text::int4`). Every row carries
//! `_lsn` (the WAL position of the change that wrote it) and `_deleted`; every write is guarded
//! by it, so a change never overwrites a newer one, whatever order redelivery brings them in.

use sluice_api::TableSchema;
use sluice_source_postgres::ident::quote_ident;

use crate::encode::target_type;

/// The LSN column of target rows.
pub const LSN_COLUMN: &str = "_lsn";
/// The soft-delete flag of target rows.
pub const DELETED_COLUMN: &str = "_deleted";
/// Suffix of the table holding hard-deleted keys and the LSN of their delete.
pub const TOMBSTONE_SUFFIX: &str = "__sluice_tombstones";

/// Where a source table goes in the target.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Target {
    pub schema: String,
    pub table: String,
}

impl Target {
    pub fn new(schema_override: Option<&str>, table: &TableSchema) -> Target {
        Target {
            schema: schema_override.unwrap_or(&table.schema).to_owned(),
            table: table.name.clone(),
        }
    }

    /// `"schema"."table"`.
    pub fn quoted(&self) -> String {
        format!("{}.{}", quote_ident(&self.schema), quote_ident(&self.table))
    }

    /// The tombstone table, `"schema"."table__sluice_tombstones"`.
    pub fn tombstones(&self) -> String {
        format!(
            "{}.{}",
            quote_ident(&self.schema),
            quote_ident(&format!("{}{TOMBSTONE_SUFFIX}", self.table))
        )
    }
}

fn key_columns(table: &TableSchema) -> impl Iterator<Item = &sluice_api::Column> {
    table.columns.iter().filter(|c| c.is_key)
}

fn key_list(table: &TableSchema) -> String {
    key_columns(table)
        .map(|c| quote_ident(&c.name))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `CREATE TABLE IF NOT EXISTS` for the target table: the source's columns with their mapped
/// types, the bookkeeping columns, and the source's primary key.
pub fn create_table(target: &Target, table: &TableSchema) -> String {
    let mut columns: Vec<String> = table
        .columns
        .iter()
        .map(|c| {
            let not_null = if c.is_key { " NOT NULL" } else { "" };
            format!("{} {}{not_null}", quote_ident(&c.name), target_type(c))
        })
        .collect();
    columns.push(format!("{LSN_COLUMN} int8 NOT NULL"));
    columns.push(format!("{DELETED_COLUMN} bool NOT NULL DEFAULT false"));
    format!(
        "CREATE SCHEMA IF NOT EXISTS {}; CREATE TABLE IF NOT EXISTS {} ({}, PRIMARY KEY ({}))",
        quote_ident(&target.schema),
        target.quoted(),
        columns.join(", "),
        key_list(table)
    )
}

/// `CREATE TABLE IF NOT EXISTS` for the tombstone table: the key columns and the delete's LSN.
pub fn create_tombstones(target: &Target, table: &TableSchema) -> String {
    let columns: Vec<String> = key_columns(table)
        .map(|c| format!("{} {} NOT NULL", quote_ident(&c.name), target_type(c)))
        .collect();
    format!(
        "CREATE TABLE IF NOT EXISTS {} ({}, {LSN_COLUMN} int8 NOT NULL, PRIMARY KEY ({}))",
        target.tombstones(),
        columns.join(", "),
        key_list(table)
    )
}

/// `ALTER TABLE ... ADD COLUMN IF NOT EXISTS` for a column the source added.
pub fn add_column(target: &Target, column: &sluice_api::Column) -> String {
    format!(
        "ALTER TABLE {} ADD COLUMN IF NOT EXISTS {} {}",
        target.quoted(),
        quote_ident(&column.name),
        target_type(column)
    )
}

/// `rows` tuples of `$n::text::type` casts, one per listed type; `extra` is appended verbatim
/// to each tuple (a constant such as `false`).
fn values(types: &[String], rows: usize, extra: &str) -> String {
    let mut out = String::new();
    let mut n = 0;
    for row in 0..rows {
        if row > 0 {
            out.push_str(", ");
        }
        out.push('(');
        for (i, ty) in types.iter().enumerate() {
            if i > 0 {
                out.push_str(", ");
            }
            n += 1;
            out.push_str(&format!("${n}::text::{ty}"));
        }
        out.push_str(extra);
        out.push(')');
    }
    out
}

/// The guard against resurrecting a hard-deleted row: no tombstone newer than the row.
fn tombstone_guard(target: &Target, table: &TableSchema) -> String {
    let matches: Vec<String> = key_columns(table)
        .map(|c| {
            let name = quote_ident(&c.name);
            format!("d.{name} = v.{name}")
        })
        .collect();
    format!(
        " WHERE NOT EXISTS (SELECT 1 FROM {} d WHERE {} AND d.{LSN_COLUMN} > v.{LSN_COLUMN})",
        target.tombstones(),
        matches.join(" AND ")
    )
}

/// Upsert `rows` rows (every column's text, then the LSN), newer LSN wins. Columns flagged in
/// `unchanged` (TOAST values the change did not carry) keep the target's value on update.
/// With `tombstones`, a key deleted at a newer LSN is not inserted again.
pub fn upsert(
    target: &Target,
    table: &TableSchema,
    rows: usize,
    unchanged: &[bool],
    tombstones: bool,
) -> String {
    let mut types: Vec<String> = table.columns.iter().map(target_type).collect();
    types.push("int8".into());
    let mut names: Vec<String> = table.columns.iter().map(|c| quote_ident(&c.name)).collect();
    names.push(LSN_COLUMN.into());
    names.push(DELETED_COLUMN.into());
    let mut set: Vec<String> = table
        .columns
        .iter()
        .zip(unchanged.iter().chain(std::iter::repeat(&false)))
        .filter(|(c, unchanged)| !c.is_key && !**unchanged)
        .map(|(c, _)| {
            let name = quote_ident(&c.name);
            format!("{name} = EXCLUDED.{name}")
        })
        .collect();
    set.push(format!("{LSN_COLUMN} = EXCLUDED.{LSN_COLUMN}"));
    set.push(format!("{DELETED_COLUMN} = false"));
    let guard = if tombstones {
        tombstone_guard(target, table)
    } else {
        String::new()
    };
    format!(
        "INSERT INTO {t} AS t ({names}) SELECT * FROM (VALUES {values}) AS v ({names}){guard} \
         ON CONFLICT ({keys}) DO UPDATE SET {set} WHERE t.{LSN_COLUMN} <= EXCLUDED.{LSN_COLUMN}",
        t = target.quoted(),
        names = names.join(", "),
        values = values(&types, rows, ", false"),
        keys = key_list(table),
        set = set.join(", "),
    )
}

/// Hard-delete `rows` keys (key columns' text, then the LSN): the row goes unless it is newer
/// than the delete, and the tombstone keeps the delete's LSN so older changes stay out.
pub fn hard_delete(target: &Target, table: &TableSchema, rows: usize) -> String {
    let mut types: Vec<String> = key_columns(table).map(target_type).collect();
    types.push("int8".into());
    let mut names: Vec<String> = key_columns(table).map(|c| quote_ident(&c.name)).collect();
    let matches: Vec<String> = names.iter().map(|n| format!("t.{n} = g.{n}")).collect();
    names.push(LSN_COLUMN.into());
    format!(
        "WITH g ({names}) AS (VALUES {values}), \
         removed AS (DELETE FROM {t} t USING g WHERE {matches} AND t.{LSN_COLUMN} <= g.{LSN_COLUMN}) \
         INSERT INTO {d} AS d ({names}) SELECT * FROM g ON CONFLICT ({keys}) \
         DO UPDATE SET {LSN_COLUMN} = EXCLUDED.{LSN_COLUMN} WHERE d.{LSN_COLUMN} < EXCLUDED.{LSN_COLUMN}",
        names = names.join(", "),
        values = values(&types, rows, ""),
        t = target.quoted(),
        d = target.tombstones(),
        matches = matches.join(" AND "),
        keys = key_list(table),
    )
}

/// Soft-delete `rows` keys (key columns' text, then the LSN): the row stays with
/// `_deleted = true` unless it is newer than the delete.
pub fn soft_delete(target: &Target, table: &TableSchema, rows: usize) -> String {
    let mut types: Vec<String> = key_columns(table).map(target_type).collect();
    types.push("int8".into());
    let mut names: Vec<String> = key_columns(table).map(|c| quote_ident(&c.name)).collect();
    names.push(LSN_COLUMN.into());
    names.push(DELETED_COLUMN.into());
    format!(
        "INSERT INTO {t} AS t ({names}) VALUES {values} ON CONFLICT ({keys}) DO UPDATE SET \
         {LSN_COLUMN} = EXCLUDED.{LSN_COLUMN}, {DELETED_COLUMN} = true \
         WHERE t.{LSN_COLUMN} <= EXCLUDED.{LSN_COLUMN}",
        t = target.quoted(),
        names = names.join(", "),
        values = values(&types, rows, ", true"),
        keys = key_list(table),
    )
}

/// A source truncate: every row goes (hard) or is flagged deleted at `lsn` (soft).
pub fn truncate(target: &Target, soft: bool, lsn: u64) -> String {
    if soft {
        format!(
            "UPDATE {} SET {LSN_COLUMN} = {lsn}, {DELETED_COLUMN} = true \
             WHERE {LSN_COLUMN} < {lsn} AND NOT {DELETED_COLUMN}",
            target.quoted()
        )
    } else {
        format!("TRUNCATE {}", target.quoted())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_api::{Column, ReplicaIdentity};

    fn table() -> TableSchema {
        let col = |name: &str, ty: &str, is_key| Column {
            name: name.into(),
            type_oid: 0,
            type_name: ty.into(),
            type_modifier: -1,
            is_key,
        };
        TableSchema {
            relation_id: 1,
            schema: "public".into(),
            name: "items".into(),
            replica_identity: ReplicaIdentity::Default,
            columns: vec![col("id", "int8", true), col("note", "text", false)],
        }
    }

    fn target() -> Target {
        Target::new(Some("wh"), &table())
    }

    #[test]
    fn the_target_table_has_the_source_key_and_bookkeeping_columns() {
        assert_eq!(
            create_table(&target(), &table()),
            "CREATE SCHEMA IF NOT EXISTS \"wh\"; CREATE TABLE IF NOT EXISTS \"wh\".\"items\" \
             (\"id\" int8 NOT NULL, \"note\" text, _lsn int8 NOT NULL, \
             _deleted bool NOT NULL DEFAULT false, PRIMARY KEY (\"id\"))"
        );
        assert_eq!(
            create_tombstones(&target(), &table()),
            "CREATE TABLE IF NOT EXISTS \"wh\".\"items__sluice_tombstones\" \
             (\"id\" int8 NOT NULL, _lsn int8 NOT NULL, PRIMARY KEY (\"id\"))"
        );
    }

    #[test]
    fn an_upsert_is_guarded_by_lsn_and_by_tombstones() {
        let sql = upsert(&target(), &table(), 2, &[false, false], true);
        assert_eq!(
            sql,
            "INSERT INTO \"wh\".\"items\" AS t (\"id\", \"note\", _lsn, _deleted) SELECT * FROM \
             (VALUES ($1::text::int8, $2::text::text, $3::text::int8, false), \
             ($4::text::int8, $5::text::text, $6::text::int8, false)) \
             AS v (\"id\", \"note\", _lsn, _deleted) WHERE NOT EXISTS (SELECT 1 FROM \
             \"wh\".\"items__sluice_tombstones\" d WHERE d.\"id\" = v.\"id\" AND d._lsn > v._lsn) \
             ON CONFLICT (\"id\") DO UPDATE SET \"note\" = EXCLUDED.\"note\", _lsn = EXCLUDED._lsn, \
             _deleted = false WHERE t._lsn <= EXCLUDED._lsn"
        );
    }

    #[test]
    fn an_unchanged_toast_column_keeps_the_target_value() {
        let sql = upsert(&target(), &table(), 1, &[false, true], false);
        assert!(!sql.contains("\"note\" = EXCLUDED"), "{sql}");
        assert!(!sql.contains("NOT EXISTS"), "{sql}");
    }

    #[test]
    fn deletes_are_guarded_by_lsn() {
        let hard = hard_delete(&target(), &table(), 1);
        assert!(hard.contains("t._lsn <= g._lsn"), "{hard}");
        assert!(hard.contains("WHERE d._lsn < EXCLUDED._lsn"), "{hard}");
        let soft = soft_delete(&target(), &table(), 1);
        assert!(
            soft.contains("VALUES ($1::text::int8, $2::text::int8, true)"),
            "{soft}"
        );
        assert!(soft.ends_with("WHERE t._lsn <= EXCLUDED._lsn"), "{soft}");
    }
}
