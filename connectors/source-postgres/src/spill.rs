//! Disk spill for streamed transactions: when the chunks of in-progress transactions outgrow
//! their memory budget, a transaction's raw pgoutput messages go to a temporary file of its own,
//! to be read back, in order and incrementally, when it commits.
//!
//! The record format is shared with the in-memory buffer (so moving a transaction's memory to
//! its file is one copy): a 16-byte header — payload length (u32), the message's WAL position
//! (u64) and the xid of the (sub)transaction that made it (u32), all big-endian — then the
//! payload. Files are anonymous temporary files: the operating system removes them when they
//! are dropped, or when the process dies.

use std::fs::File;
use std::io::{BufReader, BufWriter, ErrorKind, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use sluice_api::Lsn;

use crate::error::SourceError;

/// Bytes of a record's header.
pub const RECORD_HEADER_LEN: usize = 16;

/// I/O buffer per spill file, for writing and again for reading back. Large enough that a
/// spilled transaction costs few system calls, small enough that many concurrently spilling
/// transactions stay cheap; it is outside the streaming memory budget.
const IO_BUFFER_BYTES: usize = 64 * 1024;

/// What a record says besides its payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordHeader {
    /// The WAL position of the message (its `XLogData` start).
    pub wal_start: Lsn,
    /// The (sub)transaction that made the change.
    pub xid: u32,
}

/// The encoded size of a record with a payload of `payload_len` bytes.
pub fn record_len(payload_len: usize) -> usize {
    RECORD_HEADER_LEN + payload_len
}

/// Append one encoded record to `out`. Payloads are at most 1 GiB (PostgreSQL's allocation
/// limit), so the length always fits; a longer one is refused.
pub fn encode_record(
    out: &mut Vec<u8>,
    header: RecordHeader,
    payload: &[u8],
) -> Result<(), SourceError> {
    out.extend_from_slice(&encode_header(header, payload.len())?);
    out.extend_from_slice(payload);
    Ok(())
}

fn encode_header(
    header: RecordHeader,
    payload_len: usize,
) -> Result<[u8; RECORD_HEADER_LEN], SourceError> {
    let len = u32::try_from(payload_len)
        .map_err(|_| SourceError::Spill(format!("message of {payload_len} bytes is too large")))?;
    let mut head = [0u8; RECORD_HEADER_LEN];
    head[..4].copy_from_slice(&len.to_be_bytes());
    head[4..12].copy_from_slice(&header.wal_start.0.to_be_bytes());
    head[12..].copy_from_slice(&header.xid.to_be_bytes());
    Ok(head)
}

/// Split the first record off a buffer of encoded records: its header, its payload and the
/// rest. `None` when the buffer does not start with a whole record.
pub fn split_record(buf: &[u8]) -> Option<(RecordHeader, &[u8], &[u8])> {
    let (head, rest) = buf.split_first_chunk::<RECORD_HEADER_LEN>()?;
    let header = parse_header(head);
    let len = usize::try_from(u32::from_be_bytes([head[0], head[1], head[2], head[3]])).ok()?;
    if rest.len() < len {
        return None;
    }
    let (payload, rest) = rest.split_at(len);
    Some((header, payload, rest))
}

fn parse_header(head: &[u8; RECORD_HEADER_LEN]) -> RecordHeader {
    let mut lsn = [0u8; 8];
    lsn.copy_from_slice(&head[4..12]);
    RecordHeader {
        wal_start: Lsn(u64::from_be_bytes(lsn)),
        xid: u32::from_be_bytes([head[12], head[13], head[14], head[15]]),
    }
}

/// Whether a failed write means the spill directory's file system (or the user's quota on it)
/// has no room left: ENOSPC or EDQUOT. Freeing space cures it, so it is worth retrying.
fn is_storage_full(error: &std::io::Error) -> bool {
    matches!(
        error.kind(),
        ErrorKind::StorageFull | ErrorKind::QuotaExceeded
    )
}

/// The error for a failed spill operation in `dir`: [`SourceError::SpillFull`] when the
/// directory ran out of space, [`SourceError::Spill`] otherwise.
fn spill_error(action: &str, dir: &Path, error: std::io::Error) -> SourceError {
    if is_storage_full(&error) {
        SourceError::SpillFull {
            dir: dir.to_path_buf(),
            reason: format!("{action}: {error}"),
        }
    } else {
        SourceError::Spill(format!("{action} in {}: {error}", dir.display()))
    }
}

/// One streamed transaction's records on disk, written sequentially through a buffer.
#[derive(Debug)]
pub struct SpillFile {
    writer: BufWriter<File>,
    /// The directory the file lives in, named by errors.
    dir: PathBuf,
    record_count: u64,
    byte_len: u64,
}

impl SpillFile {
    /// A new, empty spill file in `dir`, or in the system's temporary directory.
    pub fn create(dir: Option<&Path>) -> Result<Self, SourceError> {
        let dir = dir.map_or_else(std::env::temp_dir, Path::to_path_buf);
        let file = tempfile::tempfile_in(&dir)
            .map_err(|e| spill_error("creating a spill file", &dir, e))?;
        Ok(SpillFile {
            writer: BufWriter::with_capacity(IO_BUFFER_BYTES, file),
            dir,
            record_count: 0,
            byte_len: 0,
        })
    }

    /// Append one record.
    pub fn append(&mut self, header: RecordHeader, payload: &[u8]) -> Result<(), SourceError> {
        let head = encode_header(header, payload.len())?;
        self.write(&head)?;
        self.write(payload)?;
        self.record_count += 1;
        Ok(())
    }

    /// Append records already encoded (by [`encode_record`]): `record_count` of them.
    pub fn append_encoded(&mut self, records: &[u8], record_count: u64) -> Result<(), SourceError> {
        self.write(records)?;
        self.record_count += record_count;
        Ok(())
    }

    fn write(&mut self, bytes: &[u8]) -> Result<(), SourceError> {
        self.writer
            .write_all(bytes)
            .map_err(|e| spill_error("writing a spill file", &self.dir, e))?;
        self.byte_len += bytes.len() as u64;
        Ok(())
    }

    /// How many records the file holds.
    pub fn record_count(&self) -> u64 {
        self.record_count
    }

    /// How many bytes the file holds.
    pub fn byte_len(&self) -> u64 {
        self.byte_len
    }

    /// Finish writing and read the records back from the start.
    pub fn into_reader(self) -> Result<SpillReader, SourceError> {
        let dir = self.dir;
        let mut file = self
            .writer
            .into_inner()
            .map_err(|e| spill_error("flushing a spill file", &dir, e.into_error()))?;
        file.seek(SeekFrom::Start(0))
            .map_err(|e| spill_error("rewinding a spill file", &dir, e))?;
        Ok(SpillReader {
            reader: BufReader::with_capacity(IO_BUFFER_BYTES, file),
            remaining: self.record_count,
            dir,
        })
    }
}

/// Reads a spill file's records back in order, one at a time.
#[derive(Debug)]
pub struct SpillReader {
    reader: BufReader<File>,
    remaining: u64,
    dir: PathBuf,
}

impl SpillReader {
    /// The next record: its header, with its payload read into `payload` (reused between
    /// calls, so memory stays at the largest record). `None` after the last record.
    pub fn next_record(
        &mut self,
        payload: &mut Vec<u8>,
    ) -> Result<Option<RecordHeader>, SourceError> {
        if self.remaining == 0 {
            return Ok(None);
        }
        let mut head = [0u8; RECORD_HEADER_LEN];
        self.reader
            .read_exact(&mut head)
            .map_err(|e| spill_error("reading a spill file", &self.dir, e))?;
        let len = u32::from_be_bytes([head[0], head[1], head[2], head[3]]) as usize;
        payload.clear();
        payload.resize(len, 0);
        self.reader
            .read_exact(payload)
            .map_err(|e| spill_error("reading a spill file", &self.dir, e))?;
        self.remaining -= 1;
        Ok(Some(parse_header(&head)))
    }

    /// Records not read yet.
    pub fn remaining(&self) -> u64 {
        self.remaining
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(lsn: u64, xid: u32) -> RecordHeader {
        RecordHeader {
            wal_start: Lsn(lsn),
            xid,
        }
    }

    #[test]
    fn records_read_back_in_the_order_written() {
        let dir = tempfile::tempdir().unwrap();
        let mut file = SpillFile::create(Some(dir.path())).unwrap();
        let mut encoded = Vec::new();
        encode_record(&mut encoded, header(1, 10), b"first").unwrap();
        encode_record(&mut encoded, header(2, 11), b"").unwrap();
        file.append_encoded(&encoded, 2).unwrap();
        file.append(header(3, 10), b"third").unwrap();
        assert_eq!(file.record_count(), 3);
        assert_eq!(file.byte_len(), (record_len(5) * 2 + record_len(0)) as u64);

        let mut reader = file.into_reader().unwrap();
        let mut payload = Vec::new();
        let mut seen = Vec::new();
        while let Some(h) = reader.next_record(&mut payload).unwrap() {
            seen.push((h, payload.clone()));
        }
        assert_eq!(
            seen,
            vec![
                (header(1, 10), b"first".to_vec()),
                (header(2, 11), Vec::new()),
                (header(3, 10), b"third".to_vec()),
            ]
        );
        assert_eq!(reader.remaining(), 0);
    }

    #[test]
    fn spill_files_leave_nothing_behind_in_their_directory() {
        let dir = tempfile::tempdir().unwrap();
        let mut file = SpillFile::create(Some(dir.path())).unwrap();
        file.append(header(1, 1), &[7; 1000]).unwrap();
        drop(file);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn encoded_records_split_back_into_header_and_payload() {
        let mut buf = Vec::new();
        encode_record(&mut buf, header(0x1_0000_0002, 7), b"abc").unwrap();
        encode_record(&mut buf, header(9, 8), b"d").unwrap();
        let (h, payload, rest) = split_record(&buf).unwrap();
        assert_eq!((h, payload), (header(0x1_0000_0002, 7), &b"abc"[..]));
        let (h, payload, rest) = split_record(rest).unwrap();
        assert_eq!((h, payload, rest), (header(9, 8), &b"d"[..], &[][..]));
        assert!(
            split_record(&buf[..RECORD_HEADER_LEN + 2]).is_none(),
            "a partial record"
        );
    }

    #[test]
    fn a_missing_spill_directory_is_a_fatal_spill_error() {
        let err = SpillFile::create(Some(Path::new("/nonexistent/sluice-spill"))).unwrap_err();
        assert!(matches!(err, SourceError::Spill(_)), "{err}");
        assert_eq!(err.class(), sluice_api::ErrorClass::Fatal, "{err}");
        assert!(
            err.to_string().contains("/nonexistent/sluice-spill"),
            "{err}"
        );
    }

    #[test]
    fn no_space_and_no_quota_left_are_transient_errors_naming_the_directory_and_the_fix() {
        let dir = Path::new("/var/spool/sluice");
        let causes = [
            std::io::Error::from(ErrorKind::StorageFull),
            std::io::Error::from(ErrorKind::QuotaExceeded),
            // ENOSPC and EDQUOT as the kernel reports them.
            std::io::Error::from_raw_os_error(28),
            std::io::Error::from_raw_os_error(122),
        ];
        for cause in causes {
            let shown = cause.to_string();
            let err = spill_error("writing a spill file", dir, cause);
            assert!(matches!(err, SourceError::SpillFull { .. }), "{err}");
            assert_eq!(err.class(), sluice_api::ErrorClass::Transient, "{err}");
            let message = err.to_string();
            for part in [
                "spill directory /var/spool/sluice is full",
                "free space",
                "[source] spill_dir",
                &shown,
            ] {
                assert!(message.contains(part), "{message:?} lacks {part:?}");
            }
        }
    }

    #[test]
    fn other_spill_failures_stay_fatal() {
        for kind in [
            ErrorKind::PermissionDenied,
            ErrorKind::UnexpectedEof,
            ErrorKind::Other,
        ] {
            let err = spill_error("reading a spill file", Path::new("/tmp"), kind.into());
            assert!(matches!(err, SourceError::Spill(_)), "{err}");
            assert_eq!(err.class(), sluice_api::ErrorClass::Fatal, "{err}");
        }
    }

    #[test]
    fn a_write_the_kernel_refuses_for_lack_of_space_is_a_spill_full_error() {
        // /dev/full fails every write with ENOSPC: a real full device.
        let device = File::options().write(true).open("/dev/full").unwrap();
        let mut file = SpillFile {
            writer: BufWriter::with_capacity(IO_BUFFER_BYTES, device),
            dir: PathBuf::from("/dev"),
            record_count: 0,
            byte_len: 0,
        };
        // Larger than the write buffer, so the write reaches the device.
        let err = file
            .append(header(1, 1), &[7; 2 * IO_BUFFER_BYTES])
            .unwrap_err();
        assert!(
            matches!(&err, SourceError::SpillFull { dir, .. } if dir == Path::new("/dev")),
            "{err}"
        );
    }
}
