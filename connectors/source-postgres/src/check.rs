//! `sluice check`: inspect the database over an ordinary SQL connection and say whether capture
//! can run as configured, naming the exact fix for every problem. Read-only: it creates
//! nothing (the publication and slot are created by the daemon at start).
//!
//! Each check is one query; a query that fails becomes a failing item, never a panic, so one
//! unreadable catalog does not hide the other findings.

use std::fmt;

use tokio_postgres::Client;

use crate::config::{table_included, PostgresSourceConfig, PublicationAutocreate};

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
        Ok(tables) => items.extend(table_items(tables, &cfg.tables)),
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

async fn slot_capacity(client: &Client, slot_exists: bool) -> Checked {
    let row = client
        .query_one(
            "SELECT current_setting('max_replication_slots')::int,
                    (SELECT count(*)::int FROM pg_replication_slots)",
            &[],
        )
        .await?;
    let (max, used): (i32, i32) = (row.get(0), row.get(1));
    let name = "max_replication_slots";
    let detail = format!("{used} of {max} slots in use");
    Ok(vec![if slot_exists || used < max {
        CheckItem::ok(name, detail)
    } else {
        CheckItem::fail(
            name,
            format!("{detail}; none free for the new slot"),
            format!(
                "ALTER SYSTEM SET max_replication_slots = {}; then restart PostgreSQL",
                max + 1
            ),
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

/// One captured table as the catalog describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
struct TableInfo {
    schema: String,
    table: String,
    /// `pg_class.relreplident`: d(efault), n(othing), f(ull), i(ndex).
    replica_identity: char,
    has_primary_key: bool,
    /// The connected role owns the table (or is a member of its owner).
    owned: bool,
}

impl TableInfo {
    fn qualified(&self) -> String {
        format!("{}.{}", quote_ident(&self.schema), quote_ident(&self.table))
    }
}

async fn included_tables(
    client: &Client,
    patterns: &[String],
) -> Result<Vec<TableInfo>, tokio_postgres::Error> {
    // Ordinary and partitioned tables, not their partitions (changes to partitions are
    // published through the root), outside the system schemas.
    let rows = client
        .query(
            "SELECT n.nspname::text, c.relname::text, c.relreplident::text,
                    EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisprimary),
                    pg_has_role(c.relowner, 'USAGE')
               FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
              WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition
                AND n.nspname NOT IN ('pg_catalog', 'information_schema')
                AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp\\_%'
              ORDER BY 1, 2",
            &[],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| TableInfo {
            schema: r.get(0),
            table: r.get(1),
            replica_identity: r.get::<_, String>(2).chars().next().unwrap_or('d'),
            has_primary_key: r.get(3),
            owned: r.get(4),
        })
        .filter(|t| table_included(patterns, &t.schema, &t.table))
        .collect())
}

fn table_items(tables: &[TableInfo], patterns: &[String]) -> Vec<CheckItem> {
    if tables.is_empty() {
        return vec![CheckItem::fail(
            "included tables",
            format!("no table matches {}", patterns.join(", ")),
            "set [source] tables to schema.table patterns that name existing tables",
        )];
    }
    let mut items = vec![CheckItem::ok(
        "included tables",
        listed(tables.iter().map(TableInfo::qualified)),
    )];
    let mut all_identified = true;
    for t in tables {
        // Without a replica identity, PostgreSQL rejects UPDATE and DELETE on a published
        // table: capture would break the application, hence Fail rather than Warn.
        let problem = match (t.replica_identity, t.has_primary_key) {
            ('n', _) => Some("replica identity NOTHING"),
            ('d', false) => Some("no primary key and replica identity DEFAULT"),
            _ => None,
        };
        if let Some(problem) = problem {
            all_identified = false;
            items.push(CheckItem::fail(
                format!("replica identity {}", t.qualified()),
                format!("{problem}: updates and deletes cannot be published"),
                format!(
                    "ALTER TABLE {} REPLICA IDENTITY FULL; (or add a primary key)",
                    t.qualified()
                ),
            ));
        }
    }
    if all_identified {
        items.push(CheckItem::ok(
            "replica identity",
            "every included table has one",
        ));
    }
    items
}

async fn publication(
    client: &Client,
    cfg: &PostgresSourceConfig,
    tables: &[TableInfo],
    user: &str,
    database: &str,
) -> Checked {
    let name = "publication";
    let pubname = &cfg.publication;
    let row = client
        .query_opt(
            "SELECT puballtables FROM pg_publication WHERE pubname = $1",
            &[pubname],
        )
        .await?;
    if let Some(row) = row {
        let all_tables: bool = row.get(0);
        if all_tables || cfg.publication_autocreate == PublicationAutocreate::Filtered {
            return Ok(vec![CheckItem::ok(name, format!("{pubname} exists"))]);
        }
        // With autocreate disabled, sluice will not add tables: say which are left out.
        let published: Vec<(String, String)> = client
            .query(
                "SELECT schemaname::text, tablename::text FROM pg_publication_tables WHERE pubname = $1",
                &[pubname],
            )
            .await?
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
        let missing: Vec<&TableInfo> = tables
            .iter()
            .filter(|t| {
                !published
                    .iter()
                    .any(|(s, n)| *s == t.schema && *n == t.table)
            })
            .collect();
        return Ok(vec![if missing.is_empty() {
            CheckItem::ok(
                name,
                format!("{pubname} exists and covers every included table"),
            )
        } else {
            let list: Vec<String> = missing.iter().map(|t| t.qualified()).collect();
            CheckItem::warn(
                name,
                format!(
                    "{pubname} leaves out {}: their changes are not captured",
                    listed(list.iter().cloned())
                ),
                format!(
                    "ALTER PUBLICATION {} ADD TABLE {};",
                    quote_ident(pubname),
                    list.join(", ")
                ),
            )
        }]);
    }
    let table_list: Vec<String> = tables.iter().map(TableInfo::qualified).collect();
    let create_for_tables = format!(
        "CREATE PUBLICATION {} FOR TABLE {};",
        quote_ident(pubname),
        table_list.join(", ")
    );
    let privileges = client
        .query_one(
            "SELECT has_database_privilege(current_database(), 'CREATE'),
                    (SELECT rolsuper FROM pg_roles WHERE rolname = current_user)",
            &[],
        )
        .await?;
    let (can_create, superuser): (bool, bool) = (privileges.get(0), privileges.get(1));
    let grant = format!(
        "GRANT CREATE ON DATABASE {} TO {};",
        quote_ident(database),
        quote_ident(user)
    );
    Ok(vec![match cfg.publication_autocreate {
        PublicationAutocreate::Disabled => CheckItem::fail(
            name,
            format!("{pubname} does not exist and publication_autocreate is disabled"),
            create_for_tables,
        ),
        PublicationAutocreate::AllTables if !superuser => CheckItem::fail(
            name,
            format!("{pubname} does not exist; creating it FOR ALL TABLES needs a superuser"),
            format!(
                "CREATE PUBLICATION {} FOR ALL TABLES; (as a superuser)",
                quote_ident(pubname)
            ),
        ),
        PublicationAutocreate::Filtered if !superuser && !can_create => CheckItem::fail(
            name,
            format!("{pubname} does not exist and role {user} may not create it"),
            format!("{grant} (or create it yourself: {create_for_tables})"),
        ),
        PublicationAutocreate::Filtered if !superuser && tables.iter().any(|t| !t.owned) => {
            let foreign: Vec<String> = tables
                .iter()
                .filter(|t| !t.owned)
                .map(TableInfo::qualified)
                .collect();
            CheckItem::fail(
                name,
                format!(
                    "{pubname} does not exist and role {user} does not own {}",
                    listed(foreign.into_iter())
                ),
                format!("create it as the tables' owner: {create_for_tables}"),
            )
        }
        _ => CheckItem::ok(
            name,
            format!("{pubname} does not exist; it will be created"),
        ),
    }])
}

/// A replication slot as `pg_replication_slots` shows it.
#[derive(Clone, Debug)]
struct SlotState {
    plugin: Option<String>,
    database: Option<String>,
    active_pid: Option<i32>,
    wal_status: Option<String>,
    retained_bytes: Option<i64>,
}

async fn slot_state(
    client: &Client,
    slot: &str,
) -> Result<Option<SlotState>, tokio_postgres::Error> {
    let row = client
        .query_opt(
            "SELECT plugin::text, database::text, active_pid, wal_status,
                    pg_wal_lsn_diff(CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn()
                                         ELSE pg_current_wal_lsn() END, restart_lsn)::bigint
               FROM pg_replication_slots WHERE slot_name = $1",
            &[&slot],
        )
        .await?;
    Ok(row.map(|r| SlotState {
        plugin: r.get(0),
        database: r.get(1),
        active_pid: r.get(2),
        wal_status: r.get(3),
        retained_bytes: r.get(4),
    }))
}

fn slot_items(state: Option<SlotState>, slot: &str, database: &str) -> Vec<CheckItem> {
    let name = "replication slot";
    let Some(state) = state else {
        return vec![CheckItem::ok(
            name,
            format!("{slot} does not exist; it will be created"),
        )];
    };
    let drop =
        format!("SELECT pg_drop_replication_slot('{slot}'); or set [source] slot to another name");
    if state.plugin.as_deref() != Some("pgoutput") {
        let plugin = state.plugin.as_deref().unwrap_or("none (physical slot)");
        return vec![CheckItem::fail(
            name,
            format!("{slot} uses plugin {plugin}, not pgoutput"),
            drop,
        )];
    }
    if state.database.as_deref() != Some(database) {
        let other = state.database.as_deref().unwrap_or("?");
        return vec![CheckItem::fail(
            name,
            format!("{slot} belongs to database {other}"),
            drop,
        )];
    }
    if let Some(pid) = state.active_pid {
        return vec![CheckItem::fail(
            name,
            format!("{slot} is in use by another connection (pid {pid})"),
            format!("stop the other consumer (SELECT pg_terminate_backend({pid});) or set [source] slot to another name"),
        )];
    }
    let retained = state
        .retained_bytes
        .map_or("unknown".to_owned(), human_bytes);
    let wal_status = state.wal_status.as_deref().unwrap_or("unknown");
    let detail =
        format!("{slot} exists (pgoutput), retains {retained} of WAL, wal_status {wal_status}");
    vec![match wal_status {
        "lost" => CheckItem::fail(
            name,
            format!("{detail}: WAL it needs was removed; the slot cannot resume"),
            format!("SELECT pg_drop_replication_slot('{slot}'); then start with snapshot_mode = \"when_needed\" or \"initial\""),
        ),
        "unreserved" => CheckItem::warn(
            name,
            format!("{detail}: WAL it needs will be removed at the next checkpoint"),
            "start sluice now so the slot catches up, or raise max_slot_wal_keep_size",
        ),
        _ => CheckItem::ok(name, detail),
    }]
}

async fn wal_keep_size(client: &Client) -> Checked {
    let value = setting(client, "max_slot_wal_keep_size").await?;
    let name = "max_slot_wal_keep_size";
    Ok(vec![if value == "-1" {
        CheckItem::warn(
            name,
            "unlimited: a stopped pipeline makes the slot retain WAL until the disk fills",
            "ALTER SYSTEM SET max_slot_wal_keep_size = '10GB'; then SELECT pg_reload_conf();",
        )
    } else {
        CheckItem::ok(name, value)
    }])
}

fn human_bytes(bytes: i64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value.abs() >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
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
