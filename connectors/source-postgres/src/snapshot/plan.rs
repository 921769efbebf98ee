//! A snapshot's plan: each included table described as the stream describes it (the same
//! [`TableSchema`], so snapshot rows and streamed rows share schemas), and divided into chunks:
//! primary key ranges (keyset pagination), or page (ctid) ranges for tables without a key.
//! Chunk bounds are computed once and persisted, so a resumed snapshot reads exactly the
//! chunks left.

use std::sync::Arc;

use sluice_api::{Column, ReplicaIdentity, TableSchema};
use tokio_postgres::Client;

use super::state::{ChunkBounds, TableProgress};
use crate::ident::quote_ident;
use crate::types::TypeCatalog;
use crate::SourceError;

/// At most this many chunks per table: bounds the persisted plan when a never-analyzed table
/// has sparse integer keys (chunks are then larger than asked).
const MAX_CHUNKS_PER_TABLE: u128 = 100_000;
/// Rows per page assumed for a table never analyzed (no `reltuples`): a typical narrow row.
const GUESSED_ROWS_PER_PAGE: f64 = 100.0;

/// An included table ready to be read.
#[derive(Clone, Debug)]
pub struct SnapshotTable {
    pub schema: Arc<TableSchema>,
    /// Indexes (into `schema.columns`) of the primary key, in key order: the chunking key.
    /// Empty for a table without a primary key (chunked by pages).
    pub chunk_key: Vec<usize>,
    /// `format_type` of each chunk key column, for the literals of chunk bounds.
    pub chunk_key_types: Vec<String>,
    /// `pg_class.reltuples`, or a guess from the table's size when never analyzed.
    pub estimated_rows: u64,
    /// `estimated_rows` is a guess: the table was never analyzed.
    pub estimate_is_guess: bool,
}

impl SnapshotTable {
    /// `"schema"."table"`.
    pub fn quoted_name(&self) -> String {
        format!(
            "{}.{}",
            quote_ident(&self.schema.schema),
            quote_ident(&self.schema.name)
        )
    }

    /// The `COPY (SELECT ...) TO STDOUT` statement reading one chunk.
    pub fn copy_statement(&self, bounds: &ChunkBounds) -> String {
        let columns: Vec<String> = self
            .schema
            .columns
            .iter()
            .map(|c| quote_ident(&c.name))
            .collect();
        let filter = self.chunk_filter(bounds);
        format!(
            "COPY (SELECT {} FROM {}{}) TO STDOUT",
            columns.join(", "),
            self.quoted_name(),
            if filter.is_empty() {
                String::new()
            } else {
                format!(" WHERE {filter}")
            }
        )
    }

    /// The `WHERE` condition of a chunk (empty: the whole table).
    pub fn chunk_filter(&self, bounds: &ChunkBounds) -> String {
        let mut parts = Vec::new();
        match bounds {
            ChunkBounds::Key { after, upto } => {
                let key = self.key_row();
                if let Some(after) = after {
                    parts.push(format!("{key} > {}", self.literal_row(after)));
                }
                if let Some(upto) = upto {
                    parts.push(format!("{key} <= {}", self.literal_row(upto)));
                }
            }
            ChunkBounds::Pages { from, to } => {
                if *from > 0 {
                    parts.push(format!("ctid >= '({from},0)'::tid"));
                }
                if let Some(to) = to {
                    parts.push(format!("ctid < '({to},0)'::tid"));
                }
            }
        }
        parts.join(" AND ")
    }

    fn key_row(&self) -> String {
        let names: Vec<String> = self
            .chunk_key
            .iter()
            .map(|&i| quote_ident(&self.schema.columns[i].name))
            .collect();
        match names.as_slice() {
            [single] => single.clone(),
            _ => format!("({})", names.join(", ")),
        }
    }

    fn literal_row(&self, values: &[String]) -> String {
        let literals: Vec<String> = values
            .iter()
            .zip(&self.chunk_key_types)
            .map(|(v, t)| format!("{}::{t}", quote_literal(v)))
            .collect();
        match literals.as_slice() {
            [single] => single.clone(),
            _ => format!("ROW({})", literals.join(", ")),
        }
    }
}

/// A string literal safe under `standard_conforming_strings` (on since PostgreSQL 9.1 and set
/// by sluice's sessions): quotes doubled, an `E''` form for backslashes.
pub fn quote_literal(text: &str) -> String {
    let doubled = text.replace('\'', "''");
    if doubled.contains('\\') {
        format!("E'{}'", doubled.replace('\\', "\\\\"))
    } else {
        format!("'{doubled}'")
    }
}

/// Describe `schema.name` as the stream would: published columns (not dropped, not generated)
/// in order, the replica identity's columns marked as key, and the primary key for chunking.
pub async fn describe(
    client: &Client,
    catalog: &TypeCatalog,
    schema: &str,
    name: &str,
) -> Result<SnapshotTable, SourceError> {
    let relation = client
        .query_one(
            "SELECT c.oid, c.relreplident::text, c.reltuples::float8, c.relpages::int8, \
                    (pg_relation_size(c.oid) / current_setting('block_size')::int8)::int8 \
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = $1 AND c.relname = $2",
            &[&schema, &name],
        )
        .await?;
    let oid: u32 = relation.get(0);
    let identity: String = relation.get(1);
    let reltuples: f64 = relation.get(2);
    let relpages: i64 = relation.get(3);
    let pages: i64 = relation.get(4);
    let replica_identity = ReplicaIdentity::from_code(identity.bytes().next().unwrap_or(b'd'))
        .unwrap_or(ReplicaIdentity::Default);
    // `indkey` is an int2vector, whose subscripts start at 0: positions are taken relative to
    // its lower bound.
    let rows = client
        .query(
            "SELECT a.attname::text, a.atttypid, a.atttypmod, format_type(a.atttypid, a.atttypmod), \
                    coalesce(pk.pos, 0)::int4, coalesce(ri.is_ri, false) \
             FROM pg_attribute a \
             LEFT JOIN LATERAL ( \
                 SELECT array_position(i.indkey::int2[], a.attnum) - array_lower(i.indkey::int2[], 1) + 1 AS pos \
                 FROM pg_index i \
                 WHERE i.indrelid = a.attrelid AND i.indisprimary \
                   AND a.attnum = ANY(i.indkey::int2[])) pk ON true \
             LEFT JOIN LATERAL ( \
                 SELECT true AS is_ri FROM pg_index i \
                 WHERE i.indrelid = a.attrelid AND i.indisreplident \
                   AND a.attnum = ANY(i.indkey::int2[])) ri ON true \
             WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = '' \
             ORDER BY a.attnum",
            &[&oid],
        )
        .await?;
    let mut columns = Vec::with_capacity(rows.len());
    let mut key_positions = Vec::new();
    let has_primary_key = rows.iter().any(|row| row.get::<_, i32>(4) > 0);
    for (index, row) in rows.iter().enumerate() {
        let type_oid: u32 = row.get(1);
        let pk_position: i32 = row.get(4);
        let in_replica_index: bool = row.get(5);
        if pk_position > 0 {
            key_positions.push((pk_position, index, row.get::<_, String>(3)));
        }
        // As the stream keys them: the primary key under DEFAULT, and under FULL too when the
        // table has one (every column otherwise, as pgoutput flags them), the chosen index
        // under INDEX.
        let is_key = match replica_identity {
            ReplicaIdentity::Full if has_primary_key => pk_position > 0,
            ReplicaIdentity::Full => true,
            ReplicaIdentity::Default => pk_position > 0,
            ReplicaIdentity::Index => in_replica_index,
            ReplicaIdentity::Nothing => false,
        };
        columns.push(Column {
            name: row.get(0),
            type_oid,
            type_name: catalog.type_name(type_oid),
            type_modifier: row.get(2),
            is_key,
        });
    }
    key_positions.sort_by_key(|(position, _, _)| *position);
    // As the planner does: the statistics' density scaled to the table's current size.
    let estimate_is_guess = reltuples < 0.0 || relpages <= 0;
    let estimated_rows = if estimate_is_guess {
        (pages.max(relpages) as f64 * GUESSED_ROWS_PER_PAGE) as u64
    } else {
        (reltuples / relpages as f64 * pages.max(relpages) as f64) as u64
    };
    Ok(SnapshotTable {
        schema: Arc::new(TableSchema {
            relation_id: oid,
            schema: schema.to_owned(),
            name: name.to_owned(),
            replica_identity,
            columns,
        }),
        chunk_key: key_positions.iter().map(|(_, i, _)| *i).collect(),
        chunk_key_types: key_positions.into_iter().map(|(_, _, t)| t).collect(),
        estimated_rows,
        estimate_is_guess,
    })
}

/// Divide a table into chunks of about `chunk_rows` rows. The first chunk has no lower bound
/// and the last no upper bound, so together they cover every row, whatever the estimates.
pub async fn chunk(
    client: &Client,
    table: &SnapshotTable,
    chunk_rows: u64,
) -> Result<TableProgress, SourceError> {
    let chunks = if table.chunk_key.is_empty() {
        page_chunks(client, table, chunk_rows).await?
    } else if table.chunk_key.len() == 1 && is_integer(&table.chunk_key_types[0]) {
        integer_chunks(client, table, chunk_rows).await?
    } else {
        keyset_chunks(client, table, chunk_rows).await?
    };
    Ok(TableProgress {
        schema: table.schema.schema.clone(),
        name: table.schema.name.clone(),
        done: vec![false; chunks.len()],
        chunks,
    })
}

fn is_integer(type_name: &str) -> bool {
    matches!(type_name, "smallint" | "integer" | "bigint")
}

/// A single integer key: equal-width ranges between its minimum and maximum, as many as the
/// row estimate asks for (no pass over the table; uneven chunks when the keys have gaps).
async fn integer_chunks(
    client: &Client,
    table: &SnapshotTable,
    chunk_rows: u64,
) -> Result<Vec<ChunkBounds>, SourceError> {
    let key = quote_ident(&table.schema.columns[table.chunk_key[0]].name);
    let row = client
        .query_one(
            &format!(
                "SELECT min({key})::int8, max({key})::int8 FROM {}",
                table.quoted_name()
            ),
            &[],
        )
        .await?;
    let (Some(min), Some(max)) = (row.get::<_, Option<i64>>(0), row.get::<_, Option<i64>>(1))
    else {
        return Ok(vec![whole_key_range()]);
    };
    let span = (i128::from(max) - i128::from(min) + 1) as u128;
    // Without statistics, assume dense keys: too many chunks cost a cheap empty range query
    // each, too few would make chunks far larger than asked.
    let estimate = if table.estimate_is_guess {
        span
    } else {
        u128::from(table.estimated_rows).min(span)
    };
    let count = estimate
        .div_ceil(u128::from(chunk_rows))
        .clamp(1, MAX_CHUNKS_PER_TABLE);
    let width = span.div_ceil(count);
    let mut chunks = Vec::new();
    let mut after: Option<i64> = None;
    for n in 1..count {
        let upto = i64::try_from(i128::from(min) - 1 + (width * n) as i128).unwrap_or(max);
        chunks.push(ChunkBounds::Key {
            after: after.map(|a| vec![a.to_string()]),
            upto: Some(vec![upto.to_string()]),
        });
        after = Some(upto);
    }
    chunks.push(ChunkBounds::Key {
        after: after.map(|a| vec![a.to_string()]),
        upto: None,
    });
    Ok(chunks)
}

/// Any other key: one pass over the key (an index-only scan where possible) picks every
/// `chunk_rows`-th key as a bound.
async fn keyset_chunks(
    client: &Client,
    table: &SnapshotTable,
    chunk_rows: u64,
) -> Result<Vec<ChunkBounds>, SourceError> {
    let names: Vec<String> = table
        .chunk_key
        .iter()
        .map(|&i| quote_ident(&table.schema.columns[i].name))
        .collect();
    // Ordered by the row number: the text columns keep the key's names, and ordering by them
    // would sort the bounds as text.
    let texts: Vec<String> = names.iter().map(|n| format!("{n}::text")).collect();
    let sql = format!(
        "SELECT {texts} FROM (SELECT {names}, row_number() OVER (ORDER BY {names}) AS n FROM {table}) s \
         WHERE n % {chunk_rows} = 0 ORDER BY n",
        texts = texts.join(", "),
        names = names.join(", "),
        table = table.quoted_name(),
    );
    let rows = client.query(&sql, &[]).await?;
    let mut chunks = Vec::with_capacity(rows.len() + 1);
    let mut after: Option<Vec<String>> = None;
    for row in rows {
        let upto: Vec<String> = (0..names.len()).map(|i| row.get(i)).collect();
        chunks.push(ChunkBounds::Key {
            after: after.take(),
            upto: Some(upto.clone()),
        });
        after = Some(upto);
    }
    chunks.push(ChunkBounds::Key { after, upto: None });
    Ok(chunks)
}

/// No primary key: ranges of pages, sized from the rows per page the statistics show.
async fn page_chunks(
    client: &Client,
    table: &SnapshotTable,
    chunk_rows: u64,
) -> Result<Vec<ChunkBounds>, SourceError> {
    let row = client
        .query_one(
            "SELECT (pg_relation_size($1::oid) / current_setting('block_size')::int8)::int8, \
                    reltuples::float8, relpages::int8 FROM pg_class WHERE oid = $1::oid",
            &[&table.schema.relation_id],
        )
        .await?;
    let pages: i64 = row.get(0);
    let reltuples: f64 = row.get(1);
    let relpages: i64 = row.get(2);
    let per_page = if reltuples > 0.0 && relpages > 0 {
        reltuples / relpages as f64
    } else {
        GUESSED_ROWS_PER_PAGE
    };
    let pages_per_chunk = ((chunk_rows as f64 / per_page).ceil() as u64).max(1);
    let pages = u64::try_from(pages).unwrap_or(0);
    let mut chunks = Vec::new();
    let mut from = 0;
    while from + pages_per_chunk < pages {
        chunks.push(ChunkBounds::Pages {
            from,
            to: Some(from + pages_per_chunk),
        });
        from += pages_per_chunk;
    }
    chunks.push(ChunkBounds::Pages { from, to: None });
    Ok(chunks)
}

fn whole_key_range() -> ChunkBounds {
    ChunkBounds::Key {
        after: None,
        upto: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(key_types: &[&str]) -> SnapshotTable {
        let columns = key_types
            .iter()
            .enumerate()
            .map(|(i, _)| Column {
                name: format!("k{i}"),
                type_oid: 23,
                type_name: "int4".into(),
                type_modifier: -1,
                is_key: true,
            })
            .collect();
        SnapshotTable {
            schema: Arc::new(TableSchema {
                relation_id: 1,
                schema: "public".into(),
                name: "t".into(),
                replica_identity: ReplicaIdentity::Default,
                columns,
            }),
            chunk_key: (0..key_types.len()).collect(),
            chunk_key_types: key_types.iter().map(|t| (*t).to_owned()).collect(),
            estimated_rows: 0,
            estimate_is_guess: true,
        }
    }

    #[test]
    fn a_key_range_compares_the_key_as_a_row() {
        let t = table(&["integer", "text"]);
        let filter = t.chunk_filter(&ChunkBounds::Key {
            after: Some(vec!["1".into(), "a'b".into()]),
            upto: Some(vec!["9".into(), "z".into()]),
        });
        assert_eq!(
            filter,
            "(\"k0\", \"k1\") > ROW('1'::integer, 'a''b'::text) AND (\"k0\", \"k1\") <= ROW('9'::integer, 'z'::text)"
        );
    }

    #[test]
    fn a_single_column_key_compares_as_a_scalar() {
        let t = table(&["bigint"]);
        let filter = t.chunk_filter(&ChunkBounds::Key {
            after: Some(vec!["5".into()]),
            upto: None,
        });
        assert_eq!(filter, "\"k0\" > '5'::bigint");
    }

    #[test]
    fn open_ranges_have_no_condition() {
        let t = table(&["integer"]);
        let whole = t.copy_statement(&whole_key_range());
        assert_eq!(
            whole,
            "COPY (SELECT \"k0\" FROM \"public\".\"t\") TO STDOUT"
        );
        let tail = t.chunk_filter(&ChunkBounds::Pages { from: 8, to: None });
        assert_eq!(tail, "ctid >= '(8,0)'::tid");
    }

    #[test]
    fn backslashes_make_an_escape_string_literal() {
        assert_eq!(quote_literal("a\\b"), "E'a\\\\b'");
        assert_eq!(quote_literal("plain"), "'plain'");
    }
}
