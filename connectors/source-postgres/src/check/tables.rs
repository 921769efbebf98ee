//! `sluice check` on the captured tables: which tables the patterns select, whether each can
//! publish updates and deletes (replica identity), and whether the publication exists or can
//! be created by the connected role.

use tokio_postgres::Client;

use super::{listed, quote_ident, CheckItem, Checked};
use crate::config::{table_included, PostgresSourceConfig, PublicationAutocreate};

/// One captured table as the catalog describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct TableInfo {
    schema: String,
    table: String,
    /// `pg_class.relreplident`: d(efault), n(othing), f(ull), i(ndex).
    replica_identity: char,
    has_primary_key: bool,
    /// The connected role owns the table (or is a member of its owner).
    owned: bool,
    /// The connected role may read the table: snapshots and re-reads of unchanged TOAST
    /// values need it (streaming itself does not).
    selectable: bool,
}

impl TableInfo {
    fn qualified(&self) -> String {
        format!("{}.{}", quote_ident(&self.schema), quote_ident(&self.table))
    }
}

pub(super) async fn included_tables(
    client: &Client,
    patterns: &[String],
) -> Result<Vec<TableInfo>, tokio_postgres::Error> {
    // Ordinary and partitioned tables, not their partitions (changes to partitions are
    // published through the root), outside the system schemas.
    let rows = client
        .query(
            "SELECT n.nspname::text, c.relname::text, c.relreplident::text,
                    EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisprimary),
                    pg_has_role(c.relowner, 'USAGE'),
                    has_table_privilege(c.oid, 'SELECT')
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
            selectable: r.get(5),
        })
        .filter(|t| table_included(patterns, &t.schema, &t.table))
        .collect())
}

pub(super) fn table_items(tables: &[TableInfo], patterns: &[String], user: &str) -> Vec<CheckItem> {
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
    items.push(select_privilege(tables, user));
    items
}

/// Whether the role may read every included table (snapshots, TOAST re-reads).
fn select_privilege(tables: &[TableInfo], user: &str) -> CheckItem {
    let name = "select privilege";
    let unreadable: Vec<String> = tables
        .iter()
        .filter(|t| !t.selectable)
        .map(TableInfo::qualified)
        .collect();
    if unreadable.is_empty() {
        return CheckItem::ok(name, format!("role {user} may read every included table"));
    }
    CheckItem::fail(
        name,
        format!(
            "role {user} may not read {}: snapshots and unchanged TOAST values need SELECT",
            listed(unreadable.iter().cloned())
        ),
        format!(
            "GRANT SELECT ON {} TO {};",
            unreadable.join(", "),
            quote_ident(user)
        ),
    )
}

pub(super) async fn publication(
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
