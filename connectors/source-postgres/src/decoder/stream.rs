//! The buffer of streamed (in-progress) transactions: each top-level xid's raw pgoutput
//! messages, kept in memory while all of them fit in the budget and moved to a spill file of
//! their own beyond it, then handed out in order as a [`ReplayCursor`] when the transaction
//! commits, or dropped when it aborts.
//!
//! Spill policy: a record that does not fit in the remaining budget sends its transaction to
//! disk — the transaction's memory records are copied to a new spill file first (freeing their
//! memory for the other transactions) and every later record of that transaction is appended
//! to the file. So a transaction is either wholly in memory or wholly on disk, and its records
//! stay in their original order either way.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;

use sluice_api::Lsn;

use crate::error::SourceError;
use crate::spill::{
    encode_record, record_len, split_record, RecordHeader, SpillFile, SpillReader,
    RECORD_HEADER_LEN,
};

/// Relation and Type records describe shapes, not changes: they are replayed even when the
/// subtransaction that happened to send them aborted, since later changes rely on them.
fn is_shape_record(payload: &[u8]) -> bool {
    matches!(payload.first(), Some(b'R' | b'Y'))
}

/// One streamed transaction's buffered records.
#[derive(Debug, Default)]
struct StreamedTxn {
    /// Encoded records, while the transaction is held in memory.
    memory: Vec<u8>,
    memory_records: u64,
    /// The spill file, once the transaction went to disk.
    spill: Option<SpillFile>,
    /// Subtransactions that aborted: their changes are skipped on replay.
    aborted_subxids: HashSet<u32>,
}

/// Every streamed transaction not yet committed or aborted.
#[derive(Debug)]
pub(crate) struct StreamBuffers {
    memory_budget: usize,
    spill_dir: Option<PathBuf>,
    txns: HashMap<u32, StreamedTxn>,
    /// Record bytes held in memory, over every transaction.
    memory_bytes: usize,
}

impl StreamBuffers {
    pub(crate) fn new(memory_budget: usize, spill_dir: Option<PathBuf>) -> Self {
        StreamBuffers {
            memory_budget,
            spill_dir,
            txns: HashMap::new(),
            memory_bytes: 0,
        }
    }

    /// Record bytes held in memory.
    pub(crate) fn memory_bytes(&self) -> usize {
        self.memory_bytes
    }

    /// How many transactions are on disk (for tests and metrics).
    pub(crate) fn spilled_count(&self) -> usize {
        self.txns.values().filter(|t| t.spill.is_some()).count()
    }

    /// A chunk of `xid` begins; the first chunk of a transaction discards anything left from
    /// an earlier session.
    pub(crate) fn start(&mut self, xid: u32, first_segment: bool) {
        if first_segment {
            self.drop_txn(xid);
        }
        self.txns.entry(xid).or_default();
    }

    /// Buffer one message of the streamed transaction `top_xid`, made by (sub)transaction
    /// `header.xid`.
    pub(crate) fn push(
        &mut self,
        top_xid: u32,
        header: RecordHeader,
        payload: &[u8],
    ) -> Result<(), SourceError> {
        let len = record_len(payload.len());
        let remaining = self.memory_budget.saturating_sub(self.memory_bytes);
        let txn = self.txns.entry(top_xid).or_default();
        if txn.spill.is_none() && len <= remaining {
            if txn.memory.capacity() - txn.memory.len() < len {
                // Grow geometrically, but never past what the budget still allows, so spare
                // capacity stays within the budget too.
                txn.memory
                    .reserve_exact(len.max(txn.memory.len()).min(remaining));
            }
            encode_record(&mut txn.memory, header, payload)?;
            txn.memory_records += 1;
            self.memory_bytes += len;
            return Ok(());
        }
        if txn.spill.is_none() {
            let mut file = SpillFile::create(self.spill_dir.as_deref())?;
            file.append_encoded(&txn.memory, txn.memory_records)?;
            tracing::debug!(
                xid = top_xid,
                moved_bytes = txn.memory.len(),
                budget = self.memory_budget,
                "streamed transaction exceeds the memory budget, spilling to disk"
            );
            self.memory_bytes -= txn.memory.len();
            txn.memory = Vec::new();
            txn.memory_records = 0;
            txn.spill = Some(file);
        }
        match txn.spill.as_mut() {
            Some(file) => file.append(header, payload),
            None => Err(SourceError::Spill(
                "spill file missing after creation".into(),
            )),
        }
    }

    /// `subxid` of `xid` aborted: the whole transaction when they are equal, else that
    /// subtransaction's changes (removed now from memory, skipped on replay from disk).
    pub(crate) fn abort(&mut self, xid: u32, subxid: u32) {
        if xid == subxid {
            self.drop_txn(xid);
            return;
        }
        let Some(txn) = self.txns.get_mut(&xid) else {
            return;
        };
        txn.aborted_subxids.insert(subxid);
        if txn.spill.is_some() || txn.memory.is_empty() {
            return;
        }
        let mut kept = Vec::new();
        let mut kept_records = 0;
        let mut rest = txn.memory.as_slice();
        while let Some((header, payload, tail)) = split_record(rest) {
            if header.xid != subxid || is_shape_record(payload) {
                // Re-encoding what was encoded cannot fail.
                if encode_record(&mut kept, header, payload).is_ok() {
                    kept_records += 1;
                }
            }
            rest = tail;
        }
        self.memory_bytes = self.memory_bytes - txn.memory.len() + kept.len();
        txn.memory = kept;
        txn.memory_records = kept_records;
    }

    /// Take `xid`'s records for replay at its commit (an empty cursor if none were buffered).
    pub(crate) fn take(&mut self, xid: u32) -> Result<ReplayCursor, SourceError> {
        let Some(txn) = self.txns.remove(&xid) else {
            return Ok(ReplayCursor::empty());
        };
        self.memory_bytes -= txn.memory.len();
        let source = match txn.spill {
            Some(file) => Source::File {
                reader: file.into_reader()?,
                payload: Vec::new(),
            },
            None => Source::Memory {
                records: txn.memory,
                offset: 0,
            },
        };
        Ok(ReplayCursor {
            source,
            aborted_subxids: txn.aborted_subxids,
        })
    }

    /// Drop every buffered transaction (a new replication session starts over).
    pub(crate) fn clear(&mut self) {
        self.txns.clear();
        self.memory_bytes = 0;
    }

    fn drop_txn(&mut self, xid: u32) {
        if let Some(txn) = self.txns.remove(&xid) {
            self.memory_bytes -= txn.memory.len();
        }
    }
}

#[derive(Debug)]
enum Source {
    Memory {
        records: Vec<u8>,
        offset: usize,
    },
    File {
        reader: SpillReader,
        payload: Vec<u8>,
    },
}

/// A committed streamed transaction's records, read in order: from memory, or incrementally
/// from its spill file (one record in memory at a time).
#[derive(Debug)]
pub(crate) struct ReplayCursor {
    source: Source,
    aborted_subxids: HashSet<u32>,
}

impl ReplayCursor {
    fn empty() -> Self {
        ReplayCursor {
            source: Source::Memory {
                records: Vec::new(),
                offset: 0,
            },
            aborted_subxids: HashSet::new(),
        }
    }

    /// Record bytes the cursor holds in memory.
    pub(crate) fn memory_bytes(&self) -> usize {
        match &self.source {
            Source::Memory { records, .. } => records.len(),
            Source::File { payload, .. } => payload.len(),
        }
    }

    /// The next record to replay — its WAL position and payload — skipping changes of aborted
    /// subtransactions; `None` at the end.
    pub(crate) fn next_record(&mut self) -> Result<Option<(Lsn, &[u8])>, SourceError> {
        loop {
            let (header, range) = match &mut self.source {
                Source::Memory { records, offset } => {
                    let rest = &records[*offset..];
                    if rest.is_empty() {
                        return Ok(None);
                    }
                    let Some((header, payload, _)) = split_record(rest) else {
                        return Err(SourceError::Spill("corrupt in-memory stream buffer".into()));
                    };
                    let start = *offset + RECORD_HEADER_LEN;
                    let end = start + payload.len();
                    *offset = end;
                    (header, start..end)
                }
                Source::File { reader, payload } => match reader.next_record(payload)? {
                    Some(header) => (header, 0..payload.len()),
                    None => return Ok(None),
                },
            };
            if self.aborted_subxids.contains(&header.xid)
                && !is_shape_record(self.payload(range.clone()))
            {
                continue;
            }
            return Ok(Some((header.wal_start, self.payload(range))));
        }
    }

    fn payload(&self, range: std::ops::Range<usize>) -> &[u8] {
        match &self.source {
            Source::Memory { records, .. } => &records[range],
            Source::File { payload, .. } => &payload[range],
        }
    }
}
