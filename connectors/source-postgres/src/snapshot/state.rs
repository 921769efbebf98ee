//! Snapshot progress on disk: one JSON file per slot under `state_dir`, replaced atomically
//! (write a temporary file, fsync, rename, fsync the directory), so a crash leaves either the
//! old or the new progress, never a torn file. A chunk is marked done only once every sink
//! acknowledged its rows; a restart reads the remaining chunks.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::SourceError;

/// The rows of one chunk: a primary key range or a page range.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChunkBounds {
    /// Keys greater than `after` (no lower bound when `None`) and at most `upto` (no upper
    /// bound when `None`), compared as a row of the key columns; values in their text form.
    Key {
        after: Option<Vec<String>>,
        upto: Option<Vec<String>>,
    },
    /// Tuples on pages `from..to` (`to = None`: to the end of the table).
    Pages { from: u64, to: Option<u64> },
}

/// One table's chunks and which of them every sink has taken.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableProgress {
    pub schema: String,
    pub name: String,
    pub chunks: Vec<ChunkBounds>,
    pub done: Vec<bool>,
}

impl TableProgress {
    pub fn remaining(&self) -> usize {
        self.done.iter().filter(|d| !**d).count()
    }
}

/// A snapshot's progress, keyed by slot.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotState {
    pub slot: String,
    /// Every chunk of every table is durable in every sink.
    pub completed: bool,
    /// `None` until the tables were divided into chunks.
    pub tables: Option<Vec<TableProgress>>,
}

impl SnapshotState {
    /// A snapshot about to start: nothing planned, nothing done.
    pub fn started(slot: &str) -> Self {
        SnapshotState {
            slot: slot.to_owned(),
            completed: false,
            tables: None,
        }
    }

    /// Chunks every sink has taken, over all tables.
    pub fn done_count(&self) -> usize {
        self.tables
            .iter()
            .flatten()
            .map(|t| t.done.iter().filter(|d| **d).count())
            .sum()
    }
}

/// Where a slot's snapshot progress lives.
pub fn state_path(dir: &Path, slot: &str) -> PathBuf {
    dir.join(format!("snapshot-{slot}.json"))
}

/// Read the progress; `None` when there is none (never snapshotted with this state dir).
pub fn load(dir: &Path, slot: &str) -> Result<Option<SnapshotState>, SourceError> {
    let path = state_path(dir, slot);
    let bytes = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(state_error(&path, e)),
    };
    let state: SnapshotState = serde_json::from_slice(&bytes).map_err(|e| {
        SourceError::Setup(format!(
            "snapshot state {} is unreadable ({e}); remove it to snapshot again from the start",
            path.display()
        ))
    })?;
    Ok(Some(state))
}

/// Replace the progress atomically and durably.
pub fn save(dir: &Path, state: &SnapshotState) -> Result<(), SourceError> {
    let path = state_path(dir, &state.slot);
    std::fs::create_dir_all(dir).map_err(|e| state_error(dir, e))?;
    let bytes = serde_json::to_vec(state).map_err(|e| SourceError::Setup(e.to_string()))?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(|e| state_error(dir, e))?;
    tmp.write_all(&bytes).map_err(|e| state_error(&path, e))?;
    tmp.as_file()
        .sync_all()
        .map_err(|e| state_error(&path, e))?;
    tmp.persist(&path)
        .map_err(|e| state_error(&path, e.error))?;
    if let Ok(dir_file) = std::fs::File::open(dir) {
        // Makes the rename itself durable; not every filesystem supports it, and a lost rename
        // only repeats chunks.
        let _ = dir_file.sync_all();
    }
    Ok(())
}

fn state_error(path: &Path, error: std::io::Error) -> SourceError {
    SourceError::Setup(format!(
        "snapshot state {}: {error} (check source.state_dir)",
        path.display()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_survives_a_save_and_load() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(load(dir.path(), "s").unwrap(), None);
        let mut state = SnapshotState::started("s");
        state.tables = Some(vec![TableProgress {
            schema: "public".into(),
            name: "t".into(),
            chunks: vec![
                ChunkBounds::Key {
                    after: None,
                    upto: Some(vec!["10".into()]),
                },
                ChunkBounds::Pages { from: 0, to: None },
            ],
            done: vec![true, false],
        }]);
        save(dir.path(), &state).unwrap();
        let loaded = load(dir.path(), "s").unwrap().unwrap();
        assert_eq!(loaded, state);
        assert_eq!(loaded.done_count(), 1);
    }

    #[test]
    fn a_corrupt_state_file_is_an_error_naming_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(state_path(dir.path(), "s"), b"{not json").unwrap();
        let err = load(dir.path(), "s").unwrap_err().to_string();
        assert!(err.contains("remove it"), "{err}");
    }
}
