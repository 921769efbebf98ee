//! Writes events as JSON lines and makes them durable before acknowledging.

use std::time::{SystemTime, UNIX_EPOCH};

use sluice_api::{Batch, Sink, SinkError};
use tokio::io::{AsyncWrite, AsyncWriteExt};

use crate::config::{FileSinkConfig, FileTarget};
use crate::{encode_event, EventContext};

/// Appends one JSON line per event to a file or stdout.
pub struct FileSink {
    out: Box<dyn AsyncWrite + Send + Unpin>,
    /// The file, when writing to one and fsync is on.
    sync_file: Option<tokio::fs::File>,
    ctx: EventContext,
    /// Reused across batches: one write per batch.
    buffer: Vec<u8>,
}

impl FileSink {
    /// Open (create or append to) the target.
    pub async fn open(config: &FileSinkConfig, ctx: EventContext) -> Result<FileSink, SinkError> {
        let (out, sync_file): (Box<dyn AsyncWrite + Send + Unpin>, _) = match &config.target {
            FileTarget::Stdout => (Box::new(tokio::io::stdout()), None),
            FileTarget::File(path) => {
                let file = tokio::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .await
                    .map_err(|e| {
                        SinkError::fatal(format!("cannot open {}: {e}", path.display()))
                    })?;
                let sync = if config.fsync {
                    Some(file.try_clone().await.map_err(|e| {
                        SinkError::fatal(format!("cannot open {}: {e}", path.display()))
                    })?)
                } else {
                    None
                };
                (Box::new(file), sync)
            }
        };
        Ok(FileSink {
            out,
            sync_file,
            ctx,
            buffer: Vec::with_capacity(64 * 1024),
        })
    }
}

#[async_trait::async_trait]
impl Sink for FileSink {
    async fn write(&mut self, batch: &Batch) -> Result<(), SinkError> {
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        self.buffer.clear();
        for event in &batch.events {
            let json = encode_event(event, &self.ctx, now_ms);
            serde_json::to_writer(&mut self.buffer, &json)
                .map_err(|e| SinkError::fatal(format!("encoding an event: {e}")))?;
            self.buffer.push(b'\n');
        }
        let io = |e: std::io::Error| SinkError::transient(format!("writing events: {e}"));
        self.out.write_all(&self.buffer).await.map_err(io)?;
        self.out.flush().await.map_err(io)?;
        if let Some(file) = &self.sync_file {
            file.sync_data().await.map_err(io)?;
        }
        Ok(())
    }

    async fn close(&mut self) -> Result<(), SinkError> {
        self.out
            .flush()
            .await
            .map_err(|e| SinkError::transient(format!("flushing events: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_api::{ChangeEvent, LogicalMessage, Op, SourcePosition};

    #[tokio::test]
    async fn each_event_becomes_one_json_line_appended_to_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.jsonl");
        let config = FileSinkConfig {
            target: FileTarget::File(path.clone()),
            fsync: true,
        };
        let ctx = EventContext {
            pipeline: "p".into(),
            database: "d".into(),
        };
        let event = ChangeEvent {
            op: Op::Message,
            table: None,
            before: None,
            before_is_key_only: false,
            after: None,
            message: Some(LogicalMessage {
                transactional: true,
                prefix: "x".into(),
                content: b"hi".to_vec(),
            }),
            position: SourcePosition::default(),
        };
        let batch = Batch {
            sequence: 1,
            events: vec![event.clone(), event],
            checkpoint: None,
            records: Vec::new(),
        };
        for _ in 0..2 {
            let mut sink = FileSink::open(&config, ctx.clone()).await.unwrap();
            sink.write(&batch).await.unwrap();
            sink.close().await.unwrap();
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 4);
        assert!(lines
            .iter()
            .all(|l| l["op"] == "m" && l["message"]["prefix"] == "x"));
    }
}
