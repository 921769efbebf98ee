//! `sluice check`: inspect the database over an ordinary SQL connection and say whether capture
//! can run as configured, naming the exact fix for every problem. Read-only: it creates
//! nothing (the publication and slot are created by the daemon at start).
//!
//! Each check is one query; a query that fails becomes a failing item, never a panic, so one
//! unreadable catalog does not hide the other findings.

use std::fmt;

use tokio_postgres::Client;

use crate::config::PostgresSourceConfig;
use slot::{slot_capacity, slot_items, slot_state, wal_keep_size};
use tables::{included_tables, publication, table_items};

mod slot;
mod tables;
#[cfg(test)]
mod test_cluster;

/// The oldest server with pgoutput protocol version 2 (streaming of in-progress transactions).
const MIN_SERVER_VERSION_NUM: i32 = 140_000;
/// How many offending tables a single item lists before summarising.
const MAX_LISTED_TABLES: usize = 10;

/// How one check came out.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum CheckStatus {
    /// Capture will work as far as this check can tell.
    Ok,
    /// Capture will work, but something deserves attention.
    Warn,
    /// Capture cannot work (or will break the application) until this is fixed.
    Fail,
}

impl CheckStatus {
    /// The label printed in the report.
    pub fn as_str(self) -> &'static str {
        match self {
            CheckStatus::Ok => "ok",
            CheckStatus::Warn => "warn",
            CheckStatus::Fail => "FAIL",
        }
    }
}

/// One finding.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckItem {
    /// What was checked, e.g. `wal_level` or `replica identity public.orders`.
    pub name: String,
    /// The outcome.
    pub status: CheckStatus,
    /// What was found, in words.
    pub detail: String,
    /// The exact statement or action that fixes a `Warn` or `Fail`.
    pub fix: Option<String>,
}

impl CheckItem {
    fn ok(name: impl Into<String>, detail: impl Into<String>) -> Self {
        CheckItem {
            name: name.into(),
            status: CheckStatus::Ok,
            detail: detail.into(),
            fix: None,
        }
    }

    fn warn(name: impl Into<String>, detail: impl Into<String>, fix: impl Into<String>) -> Self {
        CheckItem {
            name: name.into(),
            status: CheckStatus::Warn,
            detail: detail.into(),
            fix: Some(fix.into()),
        }
    }

    fn fail(name: impl Into<String>, detail: impl Into<String>, fix: impl Into<String>) -> Self {
        CheckItem {
            name: name.into(),
            status: CheckStatus::Fail,
            detail: detail.into(),
            fix: Some(fix.into()),
        }
    }
}

/// The printable result of `sluice check`: one line per item, its fix indented below, and a
/// summary line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckReport {
    /// Every finding, in the order checked.
    pub items: Vec<CheckItem>,
}

impl CheckReport {
    /// Whether any item failed (the CLI exits non-zero).
    pub fn has_failures(&self) -> bool {
        self.items.iter().any(|i| i.status == CheckStatus::Fail)
    }

    fn count(&self, status: CheckStatus) -> usize {
        self.items.iter().filter(|i| i.status == status).count()
    }
}

impl fmt::Display for CheckReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for item in &self.items {
            writeln!(
                f,
                "[{:>4}] {}: {}",
                item.status.as_str(),
                item.name,
                item.detail
            )?;
            if let Some(fix) = &item.fix {
                writeln!(f, "       fix: {fix}")?;
            }
        }
        let plural = |n: usize, word: &str| format!("{n} {word}{}", if n == 1 { "" } else { "s" });
        write!(
            f,
            "{} ok, {}, {}",
            self.count(CheckStatus::Ok),
            plural(self.count(CheckStatus::Warn), "warning"),
            plural(self.count(CheckStatus::Fail), "failure")
        )
    }
}

/// Run every check against the connected database for the configured source.
pub async fn run_checks(client: &Client, cfg: &PostgresSourceConfig) -> Vec<CheckItem> {
    let mut items = Vec::new();
    let role = match client
        .query_one("SELECT current_user::text, current_database()::text", &[])
        .await
    {
        Ok(row) => (row.get::<_, String>(0), row.get::<_, String>(1)),
        Err(e) => return vec![query_failed("connection", &e)],
    };
    let (user, database) = (&role.0, &role.1);

    collect(&mut items, "server version", server_version(client).await);
    collect(&mut items, "wal_level", wal_level(client).await);
    collect(
        &mut items,
        "replication privilege",
        replication_role(client, user).await,
    );
    let slot = slot_state(client, &cfg.slot).await;
    let slot_exists = matches!(&slot, Ok(Some(_)));
    collect(
        &mut items,
        "max_replication_slots",
        slot_capacity(client, slot_exists).await,
    );
    collect(&mut items, "max_wal_senders", sender_capacity(client).await);
    let tables = included_tables(client, &cfg.tables).await;
    match &tables {
        Ok(tables) => items.extend(table_items(tables, &cfg.tables, user)),
        Err(e) => items.push(query_failed("included tables", e)),
    }
    let tables = tables.unwrap_or_default();
    collect(
        &mut items,
        "publication",
        publication(client, cfg, &tables, user, database).await,
    );
    match slot {
        Ok(state) => items.extend(slot_items(state, &cfg.slot, database)),
        Err(e) => items.push(query_failed("replication slot", &e)),
    }
    collect(
        &mut items,
        "max_slot_wal_keep_size",
        wal_keep_size(client).await,
    );
    items
}

fn collect(
    items: &mut Vec<CheckItem>,
    name: &str,
    result: Result<Vec<CheckItem>, tokio_postgres::Error>,
) {
    match result {
        Ok(found) => items.extend(found),
        Err(e) => items.push(query_failed(name, &e)),
    }
}

fn query_failed(name: &str, error: &tokio_postgres::Error) -> CheckItem {
    let detail = match error.as_db_error() {
        Some(db) => format!("query failed: {} ({})", db.message(), db.code().code()),
        None => format!("query failed: {error}"),
    };
    CheckItem::fail(
        name,
        detail,
        "connect as a role that can read the system catalogs",
    )
}

/// One check's items, or the query that failed.
type Checked = Result<Vec<CheckItem>, tokio_postgres::Error>;

async fn setting(client: &Client, name: &str) -> Result<String, tokio_postgres::Error> {
    client
        .query_one("SELECT current_setting($1)", &[&name])
        .await
        .map(|r| r.get(0))
}

async fn server_version(client: &Client) -> Checked {
    let num: i32 = setting(client, "server_version_num")
        .await?
        .parse()
        .unwrap_or(0);
    let text = setting(client, "server_version").await?;
    Ok(vec![if num >= MIN_SERVER_VERSION_NUM {
        CheckItem::ok("server version", format!("PostgreSQL {text}"))
    } else {
        CheckItem::fail(
            "server version",
            format!("PostgreSQL {text}; streaming large transactions needs pgoutput protocol 2, from PostgreSQL 14"),
            "upgrade the server to PostgreSQL 14 or newer",
        )
    }])
}

async fn wal_level(client: &Client) -> Checked {
    let level = setting(client, "wal_level").await?;
    Ok(vec![if level == "logical" {
        CheckItem::ok("wal_level", "logical")
    } else {
        CheckItem::fail(
            "wal_level",
            format!("is {level}; logical decoding needs logical"),
            "ALTER SYSTEM SET wal_level = logical; then restart PostgreSQL",
        )
    }])
}

async fn replication_role(client: &Client, user: &str) -> Checked {
    let row = client
        .query_one(
            "SELECT rolreplication, rolsuper FROM pg_roles WHERE rolname = current_user",
            &[],
        )
        .await?;
    let (replication, superuser): (bool, bool) = (row.get(0), row.get(1));
    let name = "replication privilege";
    Ok(vec![if superuser {
        CheckItem::ok(name, format!("role {user} is a superuser"))
    } else if replication {
        CheckItem::ok(name, format!("role {user} has REPLICATION"))
    } else {
        CheckItem::fail(
            name,
            format!("role {user} has neither REPLICATION nor superuser"),
            format!("ALTER ROLE {} WITH REPLICATION;", quote_ident(user)),
        )
    }])
}

async fn sender_capacity(client: &Client) -> Checked {
    let row = client
        .query_one(
            "SELECT current_setting('max_wal_senders')::int,
                    (SELECT count(*)::int FROM pg_stat_activity WHERE backend_type = 'walsender')",
            &[],
        )
        .await?;
    let (max, used): (i32, i32) = (row.get(0), row.get(1));
    let name = "max_wal_senders";
    let detail = format!("{used} of {max} WAL senders in use");
    Ok(vec![if used < max {
        CheckItem::ok(name, detail)
    } else {
        CheckItem::fail(
            name,
            format!("{detail}; none free for the replication connection"),
            format!(
                "ALTER SYSTEM SET max_wal_senders = {}; then restart PostgreSQL",
                max + 1
            ),
        )
    }])
}

/// A comma-separated list cut to [`MAX_LISTED_TABLES`] names with a count of the rest.
fn listed(names: impl Iterator<Item = String>) -> String {
    let names: Vec<String> = names.collect();
    let shown = names
        .iter()
        .take(MAX_LISTED_TABLES)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    match names.len().saturating_sub(MAX_LISTED_TABLES) {
        0 => shown,
        rest => format!("{shown} and {rest} more"),
    }
}

/// An identifier as SQL needs it: bare when PostgreSQL would read it back unchanged, else
/// double-quoted with quotes doubled.
pub fn quote_ident(name: &str) -> String {
    // The reserved words most likely to be table or role names; quoting a word that did not
    // need it is harmless, so the list need not be complete.
    const RESERVED: &[&str] = &[
        "all",
        "analyse",
        "analyze",
        "and",
        "any",
        "array",
        "as",
        "asc",
        "both",
        "case",
        "cast",
        "check",
        "collate",
        "column",
        "constraint",
        "create",
        "default",
        "desc",
        "distinct",
        "do",
        "else",
        "end",
        "except",
        "false",
        "for",
        "foreign",
        "from",
        "grant",
        "group",
        "having",
        "in",
        "into",
        "limit",
        "not",
        "null",
        "offset",
        "on",
        "only",
        "or",
        "order",
        "primary",
        "references",
        "select",
        "table",
        "then",
        "to",
        "true",
        "union",
        "unique",
        "user",
        "using",
        "when",
        "where",
        "window",
        "with",
    ];
    let simple = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '$')
        && !RESERVED.contains(&name);
    if simple {
        name.to_owned()
    } else {
        format!("\"{}\"", name.replace('"', "\"\""))
    }
}

#[cfg(test)]
mod tests;
