//! Publication and slot preparation before streaming: create or extend the publication for the
//! included tables, and read the slot's state.

use sluice_api::Lsn;
use tokio_postgres::Client;

use crate::config::{table_included, PublicationAutocreate};
use crate::ident::quote_ident;
use crate::{PostgresSourceConfig, SourceError};

/// The replication slot as the server reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SlotState {
    pub plugin: Option<String>,
    pub active: bool,
    /// What the slot has confirmed: streaming resumes after it.
    pub confirmed_flush: Option<Lsn>,
}

/// The included tables that exist now, as `(schema, table)`.
pub async fn included_tables(
    client: &Client,
    patterns: &[String],
) -> Result<Vec<(String, String)>, SourceError> {
    let rows = client
        .query(
            "SELECT n.nspname::text, c.relname::text FROM pg_class c \
             JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition \
               AND n.nspname NOT IN ('pg_catalog', 'information_schema') \
               AND n.nspname NOT LIKE 'pg\\_%' \
             ORDER BY 1, 2",
            &[],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| (r.get::<_, String>(0), r.get::<_, String>(1)))
        .filter(|(s, t)| table_included(patterns, s, t))
        .collect())
}

/// Make sure the publication exists (and, when sluice manages it, covers every included table).
/// Returns the tables added to an existing publication: tables newly added to the capture.
pub async fn ensure_publication(
    client: &Client,
    cfg: &PostgresSourceConfig,
) -> Result<Vec<(String, String)>, SourceError> {
    let name = &cfg.publication;
    let existing = client
        .query_opt(
            "SELECT puballtables FROM pg_publication WHERE pubname = $1",
            &[name],
        )
        .await?;
    let quoted = quote_ident(name);
    match (existing, cfg.publication_autocreate) {
        (None, PublicationAutocreate::Disabled) => Err(SourceError::Setup(format!(
            "publication {name:?} does not exist and publication_autocreate = \"disabled\"; \
             create it with CREATE PUBLICATION {quoted} FOR TABLE ..."
        ))),
        (None, PublicationAutocreate::AllTables) => {
            client
                .batch_execute(&format!("CREATE PUBLICATION {quoted} FOR ALL TABLES"))
                .await?;
            tracing::info!(publication = %name, "created publication for all tables");
            Ok(Vec::new())
        }
        (None, PublicationAutocreate::Filtered) => {
            let tables = included_tables(client, &cfg.tables).await?;
            if tables.is_empty() {
                return Err(SourceError::Setup(format!(
                    "no table matches source.tables {:?}; nothing to capture",
                    cfg.tables
                )));
            }
            let list = table_list(&tables);
            client
                .batch_execute(&format!("CREATE PUBLICATION {quoted} FOR TABLE {list}"))
                .await?;
            tracing::info!(publication = %name, tables = tables.len(), "created publication");
            Ok(Vec::new())
        }
        (Some(row), PublicationAutocreate::Filtered) if !row.get::<_, bool>(0) => {
            let published = client
                .query("SELECT schemaname::text, tablename::text FROM pg_publication_tables WHERE pubname = $1", &[name])
                .await?;
            let published: Vec<(String, String)> =
                published.iter().map(|r| (r.get(0), r.get(1))).collect();
            let missing: Vec<(String, String)> = included_tables(client, &cfg.tables)
                .await?
                .into_iter()
                .filter(|t| !published.contains(t))
                .collect();
            if !missing.is_empty() {
                let list = table_list(&missing);
                client
                    .batch_execute(&format!("ALTER PUBLICATION {quoted} ADD TABLE {list}"))
                    .await?;
                tracing::info!(publication = %name, added = missing.len(), "added tables to publication");
            }
            Ok(missing)
        }
        (Some(_), _) => Ok(Vec::new()),
    }
}

fn table_list(tables: &[(String, String)]) -> String {
    tables
        .iter()
        .map(|(s, t)| format!("{}.{}", quote_ident(s), quote_ident(t)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The slot's state, or `None` when it does not exist.
pub async fn slot_state(client: &Client, slot: &str) -> Result<Option<SlotState>, SourceError> {
    let row = client
        .query_opt(
            "SELECT plugin::text, active, confirmed_flush_lsn::text FROM pg_replication_slots \
             WHERE slot_name = $1 AND database = current_database()",
            &[&slot],
        )
        .await?;
    Ok(row.map(|r| SlotState {
        plugin: r.get(0),
        active: r.get(1),
        confirmed_flush: r.get::<_, Option<String>>(2).and_then(|s| s.parse().ok()),
    }))
}

/// The error for a slot that disappeared while this process streamed from it (dropped by
/// hand). Creating a new one quietly would skip every change made meanwhile, so the pipeline
/// stops and says how to recover.
pub fn slot_vanished(slot: &str, resume_after: Lsn) -> SourceError {
    SourceError::Setup(format!(
        "replication slot {slot:?} was dropped while sluice was streaming from it; changes \
         after {resume_after} are gone with it. Restart sluice to create a new slot: with \
         snapshot_mode = \"when_needed\" (or \"always\") it reads the captured tables again, \
         otherwise changes made while no slot existed are missing downstream"
    ))
}

/// Check that an existing slot can be used by this pipeline.
pub fn check_slot(slot: &str, state: &SlotState) -> Result<(), SourceError> {
    if state.plugin.as_deref() != Some("pgoutput") {
        return Err(SourceError::Setup(format!(
            "replication slot {slot:?} uses plugin {:?}, not pgoutput; drop it with \
             SELECT pg_drop_replication_slot('{slot}') or choose another source.slot",
            state.plugin
        )));
    }
    if state.active {
        return Err(SourceError::Server {
            code: "55006".into(),
            message: format!("replication slot {slot:?} is in use by another process"),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slot_of_another_plugin_is_refused_with_the_fix() {
        let state = SlotState {
            plugin: Some("wal2json".into()),
            active: false,
            confirmed_flush: None,
        };
        let err = check_slot("s", &state).unwrap_err().to_string();
        assert!(err.contains("pg_drop_replication_slot('s')"), "{err}");
    }

    #[test]
    fn a_slot_in_use_is_a_transient_error() {
        let state = SlotState {
            plugin: Some("pgoutput".into()),
            active: true,
            confirmed_flush: None,
        };
        let err = check_slot("s", &state).unwrap_err();
        assert_eq!(err.class(), sluice_api::ErrorClass::Transient);
    }
}
