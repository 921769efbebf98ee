//! ClickHouse over HTTP, and the target tables' shape: statements and `JSONEachRow` inserts as
//! POST requests (basic authentication, TLS through rustls for `https`), each target table
//! created on first use as a `ReplacingMergeTree(_version)` and given the columns the source
//! adds (`ALTER TABLE ... ADD COLUMN`; 18.16 has no `IF NOT EXISTS` there, so the sink reads
//! `system.columns` first).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use sluice_api::{SinkError, TableSchema};

use crate::config::ClickHouseSinkConfig;
use crate::encode::{EncodedColumn, DELETED_COLUMN, VERSION_COLUMN};
use crate::error::ClickHouseError;
use crate::types::mapping;

/// `name` as a ClickHouse identifier: back-quoted, with `\` and `` ` `` escaped.
pub fn quote_ident(name: &str) -> String {
    format!("`{}`", name.replace('\\', "\\\\").replace('`', "\\`"))
}

/// `s` as a ClickHouse string literal.
pub fn quote_literal(s: &str) -> String {
    format!("'{}'", s.replace('\\', "\\\\").replace('\'', "\\'"))
}

/// A target table as the encoder writes it.
#[derive(Debug)]
pub struct TargetTable {
    /// `` `db`.`table` ``.
    pub quoted: String,
    /// The source's columns, in the source's order.
    pub columns: Vec<EncodedColumn>,
    /// `(col, ..., _version, _deleted)` for the insert statement.
    pub column_list: String,
}

/// The `CREATE TABLE` of a target table: a `ReplacingMergeTree` versioned by `_version`
/// (the LSN), sorted by the source's primary key, with the `_deleted` flag.
pub fn create_table(quoted: &str, table: &TableSchema) -> String {
    let mut columns: Vec<String> = table
        .columns
        .iter()
        .map(|c| {
            format!(
                "{} {}",
                quote_ident(&c.name),
                mapping(c).column_type(c.is_key)
            )
        })
        .collect();
    columns.push(format!("{VERSION_COLUMN} UInt64"));
    columns.push(format!("{DELETED_COLUMN} UInt8"));
    let keys: Vec<String> = table
        .columns
        .iter()
        .filter(|c| c.is_key)
        .map(|c| quote_ident(&c.name))
        .collect();
    format!(
        "CREATE TABLE IF NOT EXISTS {quoted} ({}) ENGINE = ReplacingMergeTree({VERSION_COLUMN}) \
         ORDER BY ({})",
        columns.join(", "),
        keys.join(", ")
    )
}

/// The HTTP client and what is known about the target tables.
pub struct ClickHouseClient {
    http: reqwest::Client,
    config: ClickHouseSinkConfig,
    database_ready: bool,
    /// Source table `schema.table` -> its target, for the shape last prepared.
    tables: HashMap<String, (Arc<TableSchema>, Arc<TargetTable>)>,
}

impl ClickHouseClient {
    pub fn new(config: ClickHouseSinkConfig) -> Result<Self, SinkError> {
        let tls = tls_config(config.ca_file.as_deref())?;
        let http = reqwest::Client::builder()
            .use_preconfigured_tls(tls)
            .timeout(config.request_timeout)
            .build()
            .map_err(|e| SinkError::fatal(format!("clickhouse sink: http client: {e}")))?;
        Ok(ClickHouseClient {
            http,
            config,
            database_ready: false,
            tables: HashMap::new(),
        })
    }

    pub fn config(&self) -> &ClickHouseSinkConfig {
        &self.config
    }

    /// Forget what is known about the target (after an error: it may have changed).
    pub fn reset(&mut self) {
        self.database_ready = false;
        self.tables.clear();
    }

    async fn post(
        &self,
        query: Option<&str>,
        body: reqwest::Body,
    ) -> Result<String, ClickHouseError> {
        let mut request = self.http.post(format!("{}/", self.config.url));
        if let Some(query) = query {
            request = request.query(&[("query", query)]);
        }
        let password = self.config.password.as_ref().map(|p| p.expose());
        let response = request
            .basic_auth(&self.config.user, password)
            .body(body)
            .send()
            .await
            .map_err(|e| ClickHouseError::Network(without_url(&e)))?;
        let status = response.status();
        let text = response
            .text()
            .await
            .map_err(|e| ClickHouseError::Network(without_url(&e)))?;
        if status.is_success() {
            Ok(text)
        } else {
            Err(ClickHouseError::server(status.as_u16(), &text))
        }
    }

    /// Run one statement; its result as text.
    pub async fn execute(&self, sql: &str) -> Result<String, ClickHouseError> {
        self.post(None, sql.to_owned().into()).await
    }

    /// `INSERT INTO table (columns) FORMAT JSONEachRow` with `body` (JSON lines).
    pub async fn insert(
        &self,
        target: &TargetTable,
        body: bytes::Bytes,
    ) -> Result<(), ClickHouseError> {
        let query = format!(
            "INSERT INTO {} {} FORMAT JSONEachRow",
            target.quoted, target.column_list
        );
        self.post(Some(&query), body.into()).await.map(|_| ())
    }

    /// The target of `table`: created on first use, columns the source added appended.
    pub async fn prepare_table(
        &mut self,
        table: &Arc<TableSchema>,
    ) -> Result<Arc<TargetTable>, SinkError> {
        let name = table.qualified_name();
        if let Some((known, target)) = self.tables.get(&name) {
            if Arc::ptr_eq(known, table) || known.columns == table.columns {
                return Ok(target.clone());
            }
        }
        let database = quote_ident(&self.config.database);
        if !self.database_ready {
            self.execute(&format!("CREATE DATABASE IF NOT EXISTS {database}"))
                .await
                .map_err(|e| e.into_sink_error("creating the database"))?;
            self.database_ready = true;
        }
        let quoted = format!("{database}.{}", quote_ident(&table.name));
        let existing = self.column_names(&table.name).await?;
        if existing.is_empty() {
            if !table.columns.iter().any(|c| c.is_key) {
                return Err(SinkError::fatal(format!(
                    "clickhouse sink: table {name} has no primary key: target rows are \
                     versioned per key"
                )));
            }
            self.execute(&create_table(&quoted, table))
                .await
                .map_err(|e| e.into_sink_error(&format!("creating {quoted}")))?;
            tracing::info!(table = %quoted, "created target table");
        } else {
            for column in table.columns.iter().filter(|c| !existing.contains(&c.name)) {
                let ddl = format!(
                    "ALTER TABLE {quoted} ADD COLUMN {} {}",
                    quote_ident(&column.name),
                    mapping(column).column_type(false)
                );
                self.execute(&ddl)
                    .await
                    .map_err(|e| e.into_sink_error(&format!("adding a column to {quoted}")))?;
                tracing::info!(table = %quoted, column = %column.name, "added target column");
            }
        }
        let columns: Vec<EncodedColumn> = table
            .columns
            .iter()
            .map(|c| EncodedColumn {
                name: c.name.clone(),
                mapping: mapping(c),
            })
            .collect();
        let mut names: Vec<String> = columns.iter().map(|c| quote_ident(&c.name)).collect();
        names.push(VERSION_COLUMN.into());
        names.push(DELETED_COLUMN.into());
        let target = Arc::new(TargetTable {
            quoted,
            columns,
            column_list: format!("({})", names.join(", ")),
        });
        self.tables.insert(name, (table.clone(), target.clone()));
        Ok(target)
    }

    async fn column_names(&self, table: &str) -> Result<HashSet<String>, SinkError> {
        let sql = format!(
            "SELECT name FROM system.columns WHERE database = {} AND table = {} \
             FORMAT JSONEachRow",
            quote_literal(&self.config.database),
            quote_literal(table)
        );
        let text = self
            .execute(&sql)
            .await
            .map_err(|e| e.into_sink_error("reading target columns"))?;
        Ok(text
            .lines()
            .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
            .filter_map(|row| row["name"].as_str().map(str::to_owned))
            .collect())
    }
}

/// A request error's description without its URL (whose query holds the whole statement).
fn without_url(error: &reqwest::Error) -> String {
    let mut text = String::from(if error.is_timeout() {
        "request timed out"
    } else if error.is_connect() {
        "cannot connect"
    } else {
        "request failed"
    });
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// rustls on ring with the public web roots plus `ca_file`.
fn tls_config(ca_file: Option<&std::path::Path>) -> Result<rustls::ClientConfig, SinkError> {
    let setup = |message: String| SinkError::fatal(format!("clickhouse sink: tls: {message}"));
    let mut roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    if let Some(path) = ca_file {
        let file = std::fs::File::open(path)
            .map_err(|e| setup(format!("cannot read {}: {e}", path.display())))?;
        for cert in rustls_pemfile::certs(&mut std::io::BufReader::new(file)) {
            let cert = cert.map_err(|e| setup(format!("cannot read {}: {e}", path.display())))?;
            roots
                .add(cert)
                .map_err(|e| setup(format!("bad certificate in {}: {e}", path.display())))?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| setup(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_api::{Column, ReplicaIdentity};

    #[test]
    fn a_target_table_is_a_replacing_merge_tree_versioned_by_lsn() {
        let col = |name: &str, ty: &str, is_key| Column {
            name: name.into(),
            type_oid: 0,
            type_name: ty.into(),
            type_modifier: -1,
            is_key,
        };
        let table = TableSchema {
            relation_id: 1,
            schema: "public".into(),
            name: "items".into(),
            replica_identity: ReplicaIdentity::Default,
            columns: vec![col("id", "int8", true), col("note", "text", false)],
        };
        assert_eq!(
            create_table("`wh`.`items`", &table),
            "CREATE TABLE IF NOT EXISTS `wh`.`items` (`id` Int64, `note` Nullable(String), \
             _version UInt64, _deleted UInt8) ENGINE = ReplacingMergeTree(_version) ORDER BY (`id`)"
        );
    }

    #[test]
    fn identifiers_and_literals_are_escaped() {
        assert_eq!(quote_ident("a`b"), "`a\\`b`");
        assert_eq!(quote_literal("it's"), "'it\\'s'");
    }
}
