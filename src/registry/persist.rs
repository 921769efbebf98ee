//! Where the registry keeps its state so that ids survive restarts: nowhere (memory), a JSON
//! file replaced atomically on every change, or tables in a PostgreSQL database rewritten in
//! one transaction per change. Either way a change is durable before the API answers it.
//!
//! One registry process per file or database: two writers would hand out the same ids.

use std::path::{Path, PathBuf};

use sluice_source_postgres::ConnectionConfig;
use thiserror::Error;

use super::store::{Snapshot, SnapshotSchema, SnapshotSubject, SnapshotVersion, Store};
use super::{compat::CompatibilityLevel, store::Mode};

/// Where the registry persists its state (`--storage`).
#[derive(Clone, Debug, Default)]
pub enum Storage {
    /// Nothing persisted: ids start from 1 again after a restart (for tests and trials).
    #[default]
    Memory,
    /// A JSON file, written to a temporary file, fsynced, then renamed over the old one.
    File(PathBuf),
    /// Tables `sluice_registry_*` in a PostgreSQL database, created if missing.
    Postgres(ConnectionConfig),
}

impl Storage {
    /// `postgres://...` or `postgresql://...` selects PostgreSQL; anything else is a file path.
    pub fn parse(arg: &str) -> Result<Storage, String> {
        if arg.starts_with("postgres://") || arg.starts_with("postgresql://") {
            return ConnectionConfig::parse(arg)
                .map(Storage::Postgres)
                .map_err(|e| format!("registry storage: {e}"));
        }
        if arg.trim().is_empty() {
            return Err("registry storage: empty path".to_owned());
        }
        Ok(Storage::File(PathBuf::from(arg)))
    }

    /// A description for logs, without any password.
    pub fn describe(&self) -> String {
        match self {
            Storage::Memory => "memory (not persisted)".to_owned(),
            Storage::File(path) => format!("file {}", path.display()),
            Storage::Postgres(config) => format!("postgres {}", config.redacted()),
        }
    }
}

/// A failure to load or save the registry's state.
#[derive(Debug, Error)]
pub enum PersistError {
    /// Reading, writing or renaming the storage file failed.
    #[error("registry file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The storage file or tables hold something the registry cannot load.
    #[error("registry storage {location} is not usable: {message}")]
    Corrupt {
        /// The file or database.
        location: String,
        /// What is wrong.
        message: String,
    },
    /// Connecting to PostgreSQL failed.
    #[error("cannot connect to the registry database {location}: {message}")]
    Connect {
        /// The redacted URL.
        location: String,
        /// The driver's message.
        message: String,
    },
    /// A statement on the registry tables failed.
    #[error("registry database: {0}")]
    Postgres(#[from] tokio_postgres::Error),
}

/// An opened storage backend, ready to save snapshots.
pub(crate) enum Backend {
    Memory,
    File(PathBuf),
    Postgres(Box<Database>),
}

/// The PostgreSQL backend: where to reconnect, and the open connection.
pub(crate) struct Database {
    config: ConnectionConfig,
    client: tokio_postgres::Client,
}

impl Backend {
    /// Open the storage (creating the tables or nothing for a missing file) and load the
    /// state it holds.
    pub(crate) async fn open(storage: &Storage) -> Result<(Backend, Store), PersistError> {
        match storage {
            Storage::Memory => Ok((Backend::Memory, Store::default())),
            Storage::File(path) => {
                let store = load_file(path).await?;
                Ok((Backend::File(path.clone()), store))
            }
            Storage::Postgres(config) => {
                let client = connect(config).await?;
                client.batch_execute(CREATE_TABLES).await?;
                let snapshot = load_rows(&client).await?;
                let store =
                    Store::from_snapshot(snapshot).map_err(|message| corrupt(config, message))?;
                let database = Database {
                    config: config.clone(),
                    client,
                };
                Ok((Backend::Postgres(Box::new(database)), store))
            }
        }
    }

    /// Persist `snapshot` durably, replacing what was stored.
    pub(crate) async fn save(&mut self, snapshot: &Snapshot) -> Result<(), PersistError> {
        match self {
            Backend::Memory => Ok(()),
            Backend::File(path) => save_file(path, snapshot).await,
            Backend::Postgres(database) => {
                let Database { config, client } = database.as_mut();
                if client.is_closed() {
                    // The server restarted or the connection dropped: one fresh connection per
                    // change is enough for an API that writes rarely.
                    tracing::warn!("registry database connection lost; reconnecting");
                    *client = connect(config).await?;
                }
                save_rows(client, snapshot).await
            }
        }
    }
}

fn corrupt(config: &ConnectionConfig, message: String) -> PersistError {
    PersistError::Corrupt {
        location: config.redacted(),
        message,
    }
}

async fn load_file(path: &Path) -> Result<Store, PersistError> {
    let bytes = match tokio::fs::read(path).await {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Store::default()),
        Err(source) => {
            return Err(PersistError::Io {
                path: path.to_owned(),
                source,
            })
        }
    };
    let location = || path.display().to_string();
    let snapshot: Snapshot = serde_json::from_slice(&bytes).map_err(|e| PersistError::Corrupt {
        location: location(),
        message: e.to_string(),
    })?;
    Store::from_snapshot(snapshot).map_err(|message| PersistError::Corrupt {
        location: location(),
        message,
    })
}

async fn save_file(path: &Path, snapshot: &Snapshot) -> Result<(), PersistError> {
    let bytes = serde_json::to_vec_pretty(snapshot).map_err(|e| PersistError::Corrupt {
        location: path.display().to_string(),
        message: e.to_string(),
    })?;
    let target = path.to_owned();
    let io = |source| PersistError::Io {
        path: path.to_owned(),
        source,
    };
    tokio::task::spawn_blocking(move || write_atomically(&target, &bytes))
        .await
        .map_err(|e| io(std::io::Error::other(e)))?
        .map_err(io)
}

/// Write to a temporary file beside `path`, fsync it, rename it over `path`, fsync the
/// directory: a crash leaves either the old or the new file, never a torn one.
fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_owned(),
        _ => PathBuf::from("."),
    };
    let mut file = tempfile::Builder::new()
        .prefix(".sluice-registry-")
        .tempfile_in(&dir)?;
    file.write_all(bytes)?;
    file.as_file().sync_all()?;
    file.persist(path).map_err(|e| e.error)?;
    std::fs::File::open(&dir)?.sync_all()
}

async fn connect(config: &ConnectionConfig) -> Result<tokio_postgres::Client, PersistError> {
    config
        .connect_sql()
        .await
        .map_err(|e| PersistError::Connect {
            location: config.redacted(),
            message: e.to_string(),
        })
}

/// The registry's tables. Schemas are immutable and never deleted (their ids stay reserved);
/// versions and settings are rewritten whole on each change.
const CREATE_TABLES: &str = "
CREATE TABLE IF NOT EXISTS sluice_registry_schemas (
    id bigint PRIMARY KEY,
    schema text NOT NULL
);
CREATE TABLE IF NOT EXISTS sluice_registry_versions (
    subject text NOT NULL,
    version bigint NOT NULL,
    schema_id bigint NOT NULL REFERENCES sluice_registry_schemas (id),
    deleted boolean NOT NULL DEFAULT false,
    PRIMARY KEY (subject, version)
);
CREATE TABLE IF NOT EXISTS sluice_registry_subject_settings (
    subject text PRIMARY KEY,
    compatibility text,
    mode text
);
CREATE TABLE IF NOT EXISTS sluice_registry_global (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    next_id bigint NOT NULL,
    compatibility text NOT NULL,
    mode text NOT NULL
);
";

async fn load_rows(client: &tokio_postgres::Client) -> Result<Snapshot, PersistError> {
    let mut snapshot = Snapshot {
        next_id: 1,
        ..Snapshot::default()
    };
    let bad = |message: String| PersistError::Corrupt {
        location: "sluice_registry tables".to_owned(),
        message,
    };
    let id = |value: i64, what: &str| {
        u32::try_from(value).map_err(|_| bad(format!("{what} {value} is out of range")))
    };
    if let Some(row) = client
        .query_opt(
            "SELECT next_id, compatibility, mode FROM sluice_registry_global",
            &[],
        )
        .await?
    {
        snapshot.next_id = id(row.get(0), "next_id")?;
        let level: String = row.get(1);
        snapshot.compatibility = CompatibilityLevel::parse(&level)
            .ok_or_else(|| bad(format!("unknown compatibility level {level}")))?;
        let mode: String = row.get(2);
        snapshot.mode = Mode::parse(&mode).ok_or_else(|| bad(format!("unknown mode {mode}")))?;
    }
    for row in client
        .query(
            "SELECT id, schema FROM sluice_registry_schemas ORDER BY id",
            &[],
        )
        .await?
    {
        snapshot.schemas.push(SnapshotSchema {
            id: id(row.get(0), "schema id")?,
            schema: row.get(1),
        });
    }
    let mut by_name: std::collections::BTreeMap<String, SnapshotSubject> = Default::default();
    for row in client
        .query(
            "SELECT subject, version, schema_id, deleted FROM sluice_registry_versions \
             ORDER BY subject, version",
            &[],
        )
        .await?
    {
        let name: String = row.get(0);
        let version = SnapshotVersion {
            version: id(row.get(1), "version")?,
            id: id(row.get(2), "schema id")?,
            deleted: row.get(3),
        };
        by_name
            .entry(name.clone())
            .or_insert_with(|| empty_subject(name))
            .versions
            .push(version);
    }
    for row in client
        .query(
            "SELECT subject, compatibility, mode FROM sluice_registry_subject_settings",
            &[],
        )
        .await?
    {
        let name: String = row.get(0);
        let entry = by_name
            .entry(name.clone())
            .or_insert_with(|| empty_subject(name));
        if let Some(level) = row.get::<_, Option<String>>(1) {
            entry.compatibility = Some(
                CompatibilityLevel::parse(&level)
                    .ok_or_else(|| bad(format!("unknown compatibility level {level}")))?,
            );
        }
        if let Some(mode) = row.get::<_, Option<String>>(2) {
            entry.mode =
                Some(Mode::parse(&mode).ok_or_else(|| bad(format!("unknown mode {mode}")))?);
        }
    }
    snapshot.subjects = by_name.into_values().collect();
    Ok(snapshot)
}

fn empty_subject(name: String) -> SnapshotSubject {
    SnapshotSubject {
        name,
        compatibility: None,
        mode: None,
        versions: Vec::new(),
    }
}

async fn save_rows(
    client: &mut tokio_postgres::Client,
    snapshot: &Snapshot,
) -> Result<(), PersistError> {
    let schema_ids: Vec<i64> = snapshot.schemas.iter().map(|s| i64::from(s.id)).collect();
    let schema_texts: Vec<&str> = snapshot.schemas.iter().map(|s| s.schema.as_str()).collect();
    let mut v_subjects: Vec<&str> = Vec::new();
    let mut v_versions: Vec<i64> = Vec::new();
    let mut v_ids: Vec<i64> = Vec::new();
    let mut v_deleted: Vec<bool> = Vec::new();
    let mut s_subjects: Vec<&str> = Vec::new();
    let mut s_levels: Vec<Option<&str>> = Vec::new();
    let mut s_modes: Vec<Option<&str>> = Vec::new();
    for subject in &snapshot.subjects {
        for v in &subject.versions {
            v_subjects.push(&subject.name);
            v_versions.push(i64::from(v.version));
            v_ids.push(i64::from(v.id));
            v_deleted.push(v.deleted);
        }
        if subject.compatibility.is_some() || subject.mode.is_some() {
            s_subjects.push(&subject.name);
            s_levels.push(subject.compatibility.map(CompatibilityLevel::as_str));
            s_modes.push(subject.mode.map(Mode::as_str));
        }
    }
    let tx = client.transaction().await?;
    // Schemas never change once stored: only new ids are inserted.
    tx.execute(
        "INSERT INTO sluice_registry_schemas (id, schema) \
         SELECT * FROM unnest($1::bigint[], $2::text[]) ON CONFLICT (id) DO NOTHING",
        &[&schema_ids, &schema_texts],
    )
    .await?;
    tx.execute("DELETE FROM sluice_registry_versions", &[])
        .await?;
    tx.execute(
        "INSERT INTO sluice_registry_versions (subject, version, schema_id, deleted) \
         SELECT * FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::boolean[])",
        &[&v_subjects, &v_versions, &v_ids, &v_deleted],
    )
    .await?;
    tx.execute("DELETE FROM sluice_registry_subject_settings", &[])
        .await?;
    tx.execute(
        "INSERT INTO sluice_registry_subject_settings (subject, compatibility, mode) \
         SELECT * FROM unnest($1::text[], $2::text[], $3::text[])",
        &[&s_subjects, &s_levels, &s_modes],
    )
    .await?;
    tx.execute(
        "INSERT INTO sluice_registry_global (singleton, next_id, compatibility, mode) \
         VALUES (true, $1, $2, $3) \
         ON CONFLICT (singleton) DO UPDATE SET next_id = EXCLUDED.next_id, \
             compatibility = EXCLUDED.compatibility, mode = EXCLUDED.mode",
        &[
            &i64::from(snapshot.next_id),
            &snapshot.compatibility.as_str(),
            &snapshot.mode.as_str(),
        ],
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postgres_urls_select_the_database_and_anything_else_a_file() {
        assert!(matches!(
            Storage::parse("postgres://registry@127.0.0.1:5432/app"),
            Ok(Storage::Postgres(_))
        ));
        assert!(matches!(
            Storage::parse("postgresql://registry@db/app"),
            Ok(Storage::Postgres(_))
        ));
        match Storage::parse("state/registry.json") {
            Ok(Storage::File(path)) => assert_eq!(path, PathBuf::from("state/registry.json")),
            other => panic!("expected a file, got {other:?}"),
        }
        assert!(Storage::parse("").is_err());
        assert!(Storage::parse("postgres://nobody-at-all").is_err());
    }

    #[test]
    fn descriptions_never_show_the_password() {
        let storage = Storage::parse("postgres://registry:hunter2@db:5433/app").expect("parses");
        let text = storage.describe();
        assert!(!text.contains("hunter2"), "{text}");
        assert!(text.contains("db:5433"), "{text}");
    }

    #[tokio::test]
    async fn a_file_store_survives_reopening_with_the_same_ids() {
        let dir = tempfile::tempdir().expect("tempdir");
        let storage = Storage::File(dir.path().join("registry.json"));
        let (mut backend, mut store) = Backend::open(&storage).await.expect("open empty");
        let first = store
            .register("a-value", r#"{"type":"record","name":"A","fields":[]}"#)
            .expect("register");
        let second = store.register("b-value", r#""string""#).expect("register");
        backend.save(&store.to_snapshot()).await.expect("save");

        let (_, reopened) = Backend::open(&storage).await.expect("reopen");
        assert_eq!(reopened.to_snapshot(), store.to_snapshot());
        let view = reopened
            .lookup("b-value", "\"string\"", false)
            .expect("still registered");
        assert_eq!((view.id, first.id), (second.id, 1));
    }

    #[tokio::test]
    async fn a_corrupt_file_is_refused_rather_than_overwritten() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("registry.json");
        std::fs::write(&path, b"{not json").expect("write");
        let error = Backend::open(&Storage::File(path.clone()))
            .await
            .err()
            .expect("corrupt file refused");
        assert!(matches!(error, PersistError::Corrupt { .. }), "{error}");
        assert_eq!(std::fs::read(&path).expect("read"), b"{not json");
    }
}
