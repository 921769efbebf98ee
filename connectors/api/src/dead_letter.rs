//! Dead letters: changes a destination rejected for good (a mapping error, a value the target
//! cannot hold), set aside with the reason so the stream goes on without losing them.
//!
//! A sink that supports dead-lettering sends every permanently rejected change here and counts
//! the change as delivered only once [`DeadLetterQueue::send`] returned `Ok`, which means the
//! letters are durable. Warehouse sinks reuse the same record, queue trait and `dead_letter`
//! config table. The one implementation here is a JSON-lines file, fsync'd per send.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tokio::io::AsyncWriteExt;

use crate::{ConfigProblem, ErrorClass, SinkError};

/// One permanently rejected change, as written to the dead-letter destination.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DeadLetter {
    /// The sink's configured name.
    pub sink: String,
    /// `schema.table` of the change.
    pub table: String,
    /// The row's key as the sink addressed it (a search document id, for example), if any.
    pub key: Option<String>,
    /// The change's WAL position (`source.lsn`), as an integer.
    pub lsn: u64,
    /// Debezium's operation letter: `c`, `u`, `d`, `r`, `t`.
    pub op: String,
    /// What the sink tried to write (its own encoding), if anything.
    pub document: Option<serde_json::Value>,
    /// Why the destination rejected it, as the destination said it.
    pub reason: String,
}

/// Where dead letters go.
///
/// Contract: `send` is never called concurrently on one queue; `Ok(())` means every letter of
/// the call is durable (survives a crash of sluice). On error nothing may be assumed written;
/// the caller retries or fails the batch, so a letter may be written twice, never zero times.
#[async_trait::async_trait]
pub trait DeadLetterQueue: Send {
    /// Make `letters` durable at the destination.
    async fn send(&mut self, letters: &[DeadLetter]) -> Result<(), SinkError>;
}

/// Raw keys of a sink's `dead_letter` table, e.g. `dead_letter = { type = "file", path = "x" }`.
#[derive(Debug, Default, Deserialize)]
pub struct RawDeadLetterConfig {
    /// The destination kind; only `file` (JSON lines) for now. Required.
    #[serde(rename = "type")]
    pub kind: Option<String>,
    /// For `file`: the JSON-lines file to append to (created if missing). Required.
    pub path: Option<String>,
}

/// A validated dead-letter destination.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DeadLetterConfig {
    /// JSON lines appended to a file, fsync'd before a send returns.
    File { path: PathBuf },
}

impl RawDeadLetterConfig {
    /// Validate, naming every problem with its key under `prefix` (e.g. `sink[0].dead_letter`).
    pub fn validate(self, prefix: &str) -> Result<DeadLetterConfig, Vec<ConfigProblem>> {
        let key = |k: &str| crate::join_key(prefix, k);
        let mut problems = Vec::new();
        match self.kind.as_deref() {
            Some("file") => {}
            None => problems.push(ConfigProblem::missing(key("type"), "\"file\"")),
            Some(other) => problems.push(ConfigProblem::new(
                key("type"),
                format!("unknown dead-letter type {other:?}; supported: file"),
            )),
        }
        let path = match self.path.as_deref().map(str::trim) {
            None => {
                problems.push(ConfigProblem::missing(
                    key("path"),
                    "the JSON-lines file dead letters are appended to",
                ));
                PathBuf::new()
            }
            Some("") => {
                problems.push(ConfigProblem::new(key("path"), "must not be empty"));
                PathBuf::new()
            }
            Some(p) => PathBuf::from(p),
        };
        if problems.is_empty() {
            Ok(DeadLetterConfig::File { path })
        } else {
            Err(problems)
        }
    }

    /// Validate a sink's optional `dead_letter` table, keyed under `prefix` (e.g.
    /// `sink[0].dead_letter`), adding its problems to the sink's `problems`: `None` when the
    /// table is absent or has problems.
    pub fn validate_optional(
        raw: Option<Self>,
        prefix: &str,
        problems: &mut Vec<ConfigProblem>,
    ) -> Option<DeadLetterConfig> {
        match raw?.validate(prefix) {
            Ok(config) => Some(config),
            Err(found) => {
                problems.extend(found);
                None
            }
        }
    }
}

impl DeadLetterConfig {
    /// Open the destination.
    pub async fn open(&self) -> Result<Box<dyn DeadLetterQueue>, SinkError> {
        match self {
            DeadLetterConfig::File { path } => Ok(Box::new(FileDeadLetters::open(path).await?)),
        }
    }
}

/// A configured destination opened on first use, so a sink built without I/O opens its
/// dead-letter file only when a letter comes.
pub struct LazyDeadLetters {
    config: DeadLetterConfig,
    queue: Option<Box<dyn DeadLetterQueue>>,
    sent_count: u64,
}

impl LazyDeadLetters {
    pub fn new(config: DeadLetterConfig) -> Self {
        LazyDeadLetters {
            config,
            queue: None,
            sent_count: 0,
        }
    }

    /// Letters made durable so far.
    pub fn sent_count(&self) -> u64 {
        self.sent_count
    }

    /// Make `letters` durable, opening the destination first if needed.
    pub async fn send(&mut self, letters: &[DeadLetter]) -> Result<(), SinkError> {
        if letters.is_empty() {
            return Ok(());
        }
        let queue = match &mut self.queue {
            Some(queue) => queue,
            None => self.queue.insert(self.config.open().await?),
        };
        queue.send(letters).await?;
        self.sent_count += letters.len() as u64;
        Ok(())
    }
}

/// Dead letters as JSON lines appended to a file; each send is one write and one fsync.
pub struct FileDeadLetters {
    file: tokio::fs::File,
    path: PathBuf,
    buffer: Vec<u8>,
}

impl FileDeadLetters {
    /// Open (create or append to) `path`.
    pub async fn open(path: &Path) -> Result<FileDeadLetters, SinkError> {
        let file = tokio::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .await
            .map_err(|e| {
                SinkError::fatal(format!(
                    "cannot open dead-letter file {}: {e}",
                    path.display()
                ))
            })?;
        Ok(FileDeadLetters {
            file,
            path: path.to_owned(),
            buffer: Vec::new(),
        })
    }
}

#[async_trait::async_trait]
impl DeadLetterQueue for FileDeadLetters {
    async fn send(&mut self, letters: &[DeadLetter]) -> Result<(), SinkError> {
        if letters.is_empty() {
            return Ok(());
        }
        self.buffer.clear();
        for letter in letters {
            serde_json::to_writer(&mut self.buffer, letter)
                .map_err(|e| SinkError::fatal(format!("encoding a dead letter: {e}")))?;
            self.buffer.push(b'\n');
        }
        let io = |e: std::io::Error| SinkError {
            class: ErrorClass::Transient,
            message: format!("writing dead letters to {}: {e}", self.path.display()),
            source: None,
        };
        self.file.write_all(&self.buffer).await.map_err(io)?;
        self.file.flush().await.map_err(io)?;
        self.file.sync_data().await.map_err(io)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn letter(lsn: u64) -> DeadLetter {
        DeadLetter {
            sink: "search".into(),
            table: "public.items".into(),
            key: Some("7".into()),
            lsn,
            op: "c".into(),
            document: Some(serde_json::json!({"id": 7, "qty": "many"})),
            reason: "mapper_parsing_exception: failed to parse field [qty]".into(),
        }
    }

    #[tokio::test]
    async fn dead_letters_are_appended_as_json_lines_across_reopens() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dead.jsonl");
        let config = RawDeadLetterConfig {
            kind: Some("file".into()),
            path: Some(path.display().to_string()),
        }
        .validate("sink[0].dead_letter")
        .unwrap();
        for lsn in [1, 2] {
            let mut queue = config.open().await.unwrap();
            queue.send(&[letter(lsn)]).await.unwrap();
            queue.send(&[]).await.unwrap();
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let read: Vec<DeadLetter> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(read, vec![letter(1), letter(2)]);
    }

    #[tokio::test]
    async fn lazy_dead_letters_count_only_what_was_made_durable() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dead.jsonl");
        let mut letters = LazyDeadLetters::new(DeadLetterConfig::File { path: path.clone() });
        letters.send(&[]).await.unwrap();
        assert_eq!(letters.sent_count(), 0);
        assert!(!path.exists(), "opened only when a letter comes");
        letters.send(&[letter(1), letter(2)]).await.unwrap();
        letters.send(&[letter(3)]).await.unwrap();
        assert_eq!(letters.sent_count(), 3);

        let unwritable = dir.path().join("missing-dir").join("dead.jsonl");
        let mut failing = LazyDeadLetters::new(DeadLetterConfig::File { path: unwritable });
        assert!(failing.send(&[letter(4)]).await.is_err());
        assert_eq!(failing.sent_count(), 0);
    }

    #[test]
    fn a_dead_letter_table_reports_every_problem_with_its_key() {
        let problems = RawDeadLetterConfig {
            kind: Some("s3".into()),
            path: None,
        }
        .validate("sink[1].dead_letter")
        .unwrap_err();
        let keys: Vec<&str> = problems.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(
            keys,
            ["sink[1].dead_letter.type", "sink[1].dead_letter.path"]
        );
    }

    #[test]
    fn an_optional_dead_letter_table_adds_its_problems_to_the_sinks() {
        let mut problems = vec![ConfigProblem::new("sink[1].url", "must not be empty")];
        let absent =
            RawDeadLetterConfig::validate_optional(None, "sink[1].dead_letter", &mut problems);
        assert_eq!(absent, None);
        assert_eq!(problems.len(), 1);
        let raw = RawDeadLetterConfig {
            kind: Some("file".into()),
            path: None,
        };
        let invalid =
            RawDeadLetterConfig::validate_optional(Some(raw), "sink[1].dead_letter", &mut problems);
        assert_eq!(invalid, None);
        let keys: Vec<&str> = problems.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(keys, ["sink[1].url", "sink[1].dead_letter.path"]);
        let raw = RawDeadLetterConfig {
            kind: Some("file".into()),
            path: Some("dead.jsonl".into()),
        };
        let valid =
            RawDeadLetterConfig::validate_optional(Some(raw), "sink[1].dead_letter", &mut problems);
        assert_eq!(
            valid,
            Some(DeadLetterConfig::File {
                path: "dead.jsonl".into()
            })
        );
        assert_eq!(problems.len(), 2);
    }
}
