//! Where a sink puts rows its target rejects for good (a value out of range, a constraint
//! violation), so one bad row neither stops the pipeline nor is silently dropped.
//!
//! A [`DeadLetter`] names the row (sink, table, key, LSN, operation), carries the row itself as
//! JSON and the target's reason. [`DeadLetterSink::write`] returning `Ok` means the letters are
//! durable: a sink writes its dead letters before it commits the rest of the batch, so a crash in
//! between repeats the letters (at least once) but never loses them.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde_json::{json, Value as Json};

use crate::{Lsn, Op, SinkError};

/// One row the target refused, and why.
#[derive(Clone, Debug, PartialEq)]
pub struct DeadLetter {
    /// The `[[sink]]` name that refused it.
    pub sink: String,
    /// The source table, `schema.table`.
    pub table: String,
    /// The row's key columns, as a JSON object (`null` when the table has none).
    pub key: Json,
    /// The change's WAL position.
    pub lsn: Lsn,
    pub op: Op,
    /// The row as the sink tried to write it, as JSON.
    pub document: Json,
    /// The target's words for the refusal.
    pub reason: String,
}

impl DeadLetter {
    /// The JSON-lines form: one object per letter, `lsn` in PostgreSQL's `X/Y` form.
    pub fn to_json(&self) -> Json {
        json!({
            "sink": self.sink,
            "table": self.table,
            "key": self.key,
            "lsn": self.lsn.to_string(),
            "op": self.op.as_str(),
            "document": self.document,
            "reason": self.reason,
        })
    }
}

/// A destination for dead letters. `Ok` means every letter is durable; calls are never
/// concurrent (each sink owns its own).
#[async_trait::async_trait]
pub trait DeadLetterSink: Send {
    async fn write(&mut self, letters: &[DeadLetter]) -> Result<(), SinkError>;
}

/// Dead letters appended to a JSON-lines file, fsync'd before `write` returns.
///
/// The file is written with blocking calls: dead letters are rare and small, and a sink waits for
/// them before committing anyway.
#[derive(Debug)]
pub struct JsonLinesDeadLetters {
    path: PathBuf,
}

impl JsonLinesDeadLetters {
    /// Letters go to `path` (created on first letter, appended to afterwards).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        JsonLinesDeadLetters { path: path.into() }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[async_trait::async_trait]
impl DeadLetterSink for JsonLinesDeadLetters {
    async fn write(&mut self, letters: &[DeadLetter]) -> Result<(), SinkError> {
        if letters.is_empty() {
            return Ok(());
        }
        let mut buffer = Vec::new();
        for letter in letters {
            serde_json::to_writer(&mut buffer, &letter.to_json())
                .map_err(|e| SinkError::fatal(format!("encoding a dead letter: {e}")))?;
            buffer.push(b'\n');
        }
        let io = |e: std::io::Error| {
            SinkError::transient(format!(
                "writing dead letters to {}: {e}",
                self.path.display()
            ))
        };
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .map_err(io)?;
        file.write_all(&buffer).map_err(io)?;
        file.sync_data().map_err(io)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn dead_letters_are_appended_as_json_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dead.jsonl");
        let letter = DeadLetter {
            sink: "wh".into(),
            table: "public.items".into(),
            key: json!({"id": 7}),
            lsn: Lsn(0x1_0000_0010),
            op: Op::Create,
            document: json!({"id": 7, "qty": -1}),
            reason: "check constraint violated".into(),
        };
        let mut sink = JsonLinesDeadLetters::new(&path);
        sink.write(std::slice::from_ref(&letter)).await.unwrap();
        sink.write(&[letter]).await.unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<Json> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0]["lsn"], "1/10");
        assert_eq!(lines[0]["op"], "c");
        assert_eq!(lines[0]["key"]["id"], 7);
        assert_eq!(lines[1]["reason"], "check constraint violated");
    }
}
