//! The target connection and the target tables' shape: connect (with the source's URL parsing
//! and TLS), create each target table on first use and add the columns the source added, and
//! cache prepared statements per connection.

use std::collections::{HashMap, HashSet};

use sluice_api::{SinkError, TableSchema};
use tokio_postgres::{Client, Statement};

use crate::config::{DeleteMode, PostgresSinkConfig};
use crate::error::sink_error;
use crate::sql::{self, Target};

/// Prepared statements kept per connection before the cache is emptied: the statement texts
/// depend on table, row count and unchanged-column pattern, so a long-running sink could
/// otherwise collect them without bound.
const MAX_STATEMENTS: usize = 512;

/// How a batch's transaction starts on a session whose `synchronous_commit` is `off`. Such a
/// target answers COMMIT before the commit reaches its WAL on disk, so a crash of the target
/// could undo a batch the sink reported written, after the source was told to forget it. The
/// sink's own transactions then commit with `local`: flushed on the target before COMMIT
/// returns, waiting for no standby. Every other value is durable already and is kept.
const BEGIN_DURABLE: &str = "BEGIN; SET LOCAL synchronous_commit = local";

/// A connection to the target and what is known about its tables.
pub struct TargetClient {
    config: PostgresSinkConfig,
    client: Option<Client>,
    /// How this connection's batch transactions start: `BEGIN`, or [`BEGIN_DURABLE`].
    begin: &'static str,
    statements: HashMap<String, Statement>,
    /// Target table -> its column names, as last read or created.
    columns: HashMap<Target, HashSet<String>>,
}

/// How a batch's transaction starts on a session with this `synchronous_commit`.
fn begin_for(synchronous_commit: &str) -> &'static str {
    if synchronous_commit == "off" {
        BEGIN_DURABLE
    } else {
        "BEGIN"
    }
}

impl TargetClient {
    pub fn new(config: PostgresSinkConfig) -> Self {
        TargetClient {
            config,
            client: None,
            begin: "BEGIN",
            statements: HashMap::new(),
            columns: HashMap::new(),
        }
    }

    pub fn config(&self) -> &PostgresSinkConfig {
        &self.config
    }

    /// The connection, opened if there is none.
    pub async fn client(&mut self) -> Result<&Client, SinkError> {
        if self.client.is_none() {
            let client = self.config.connection.connect_sql().await.map_err(|e| {
                let message = format!(
                    "postgres sink: connecting to {}: {e}",
                    self.config.connection.redacted()
                );
                match e.class() {
                    sluice_api::ErrorClass::Transient => SinkError::transient(message),
                    sluice_api::ErrorClass::Fatal => SinkError::fatal(message),
                }
            })?;
            let row = client
                .query_one("SHOW synchronous_commit", &[])
                .await
                .map_err(|e| sink_error("SHOW synchronous_commit", &e))?;
            self.begin = begin_for(row.get(0));
            self.client = Some(client);
        }
        Ok(self.client.as_ref().expect("connected above"))
    }

    /// The statement that starts a batch's transaction on this connection, durable whatever
    /// the target's `synchronous_commit`.
    pub async fn begin(&mut self) -> Result<&'static str, SinkError> {
        self.client().await?;
        Ok(self.begin)
    }

    /// Forget the connection (after an error: the next batch reconnects) and what depends on
    /// it. The table cache goes too: the target may have changed while we were away.
    pub fn reset(&mut self) {
        self.client = None;
        self.statements.clear();
        self.columns.clear();
    }

    /// The prepared statement for `sql` on the current connection.
    pub async fn statement(&mut self, sql: &str) -> Result<Statement, SinkError> {
        if let Some(statement) = self.statements.get(sql) {
            return Ok(statement.clone());
        }
        if self.statements.len() >= MAX_STATEMENTS {
            self.statements.clear();
        }
        let statement = self
            .client()
            .await?
            .prepare(sql)
            .await
            .map_err(|e| sink_error("preparing a statement", &e))?;
        self.statements.insert(sql.to_owned(), statement.clone());
        Ok(statement)
    }

    /// Make the target table fit `table`: create it (and its tombstone table) on first use, add
    /// columns the source added. Runs outside the batch's transaction; every statement is
    /// idempotent, so a retried batch repeats it harmlessly.
    pub async fn prepare_table(&mut self, table: &TableSchema) -> Result<Target, SinkError> {
        let target = Target::new(self.config.schema.as_deref(), table);
        if !self.columns.contains_key(&target) {
            let existing = self.read_columns(&target).await?;
            let existing = if existing.is_empty() {
                self.execute_ddl(&sql::create_table(&target, table), &target)
                    .await?;
                tracing::info!(table = %target.quoted(), "created target table");
                self.read_columns(&target).await?
            } else {
                existing
            };
            // Also for a table created under soft deletes: hard deletes need their tombstones.
            if self.config.delete_mode == DeleteMode::Hard {
                self.execute_ddl(&sql::create_tombstones(&target, table), &target)
                    .await?;
            }
            self.columns.insert(target.clone(), existing);
        }
        let known = self.columns.get(&target).expect("inserted above");
        let missing: Vec<_> = table
            .columns
            .iter()
            .filter(|c| !known.contains(&c.name))
            .cloned()
            .collect();
        for column in missing {
            self.execute_ddl(&sql::add_column(&target, &column), &target)
                .await?;
            tracing::info!(table = %target.quoted(), column = %column.name, "added target column");
            if let Some(known) = self.columns.get_mut(&target) {
                known.insert(column.name.clone());
            }
        }
        Ok(target)
    }

    async fn execute_ddl(&mut self, ddl: &str, target: &Target) -> Result<(), SinkError> {
        self.client()
            .await?
            .batch_execute(ddl)
            .await
            .map_err(|e| sink_error(&format!("preparing table {}", target.quoted()), &e))
    }

    async fn read_columns(&mut self, target: &Target) -> Result<HashSet<String>, SinkError> {
        let rows = self
            .client()
            .await?
            .query(
                "SELECT column_name::text FROM information_schema.columns \
                 WHERE table_schema = $1 AND table_name = $2",
                &[&target.schema, &target.table],
            )
            .await
            .map_err(|e| sink_error(&format!("reading columns of {}", target.quoted()), &e))?;
        Ok(rows.iter().map(|r| r.get::<_, String>(0)).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_session_that_commits_asynchronously_has_its_batches_commit_locally_durable() {
        assert_eq!(begin_for("off"), BEGIN_DURABLE);
        for durable in ["on", "local", "remote_write", "remote_apply"] {
            assert_eq!(begin_for(durable), "BEGIN", "{durable} is kept");
        }
    }
}
