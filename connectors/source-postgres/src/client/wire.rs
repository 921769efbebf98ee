//! The wire under the replication client: the socket (plain or TLS) with its reusable read
//! and write buffers, backend frame decoding (postgres-protocol's codec plus the
//! CopyBothResponse it does not know), and the replication stream's own CopyData payloads:
//! XLogData and keepalives in, standby status updates out.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::{Buf, Bytes, BytesMut};
use postgres_protocol::message::backend::{ErrorResponseBody, Message, NoticeResponseBody};
use postgres_protocol::message::frontend;
use sluice_api::Lsn;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio_postgres::fallible_iterator::FallibleIterator;
use tokio_rustls::client::TlsStream;

use super::ReplicationMessage;
use crate::SourceError;

/// Microseconds from the Unix epoch to PostgreSQL's epoch, 2000-01-01 00:00:00 UTC.
pub const PG_EPOCH_OFFSET_US: i64 = 946_684_800_000_000;
/// The read buffer grows in steps of this size: large enough that a busy stream is read in
/// few system calls, small enough to be irrelevant per connection.
const READ_CHUNK: usize = 64 * 1024;
/// The protocol's length field is a signed 32-bit integer; anything larger is corruption,
/// refused before it turns into a huge allocation.
const MAX_FRAME_LEN: usize = i32::MAX as usize;

/// Encode a standby status update ('r' in CopyData) into `out`. `clock_pg_us` is the client
/// clock in microseconds since 2000-01-01.
pub(crate) fn encode_status(
    write: Lsn,
    flush: Lsn,
    apply: Lsn,
    clock_pg_us: i64,
    reply_requested: bool,
    out: &mut BytesMut,
) {
    let mut payload = [0u8; 34];
    payload[0] = b'r';
    payload[1..9].copy_from_slice(&write.0.to_be_bytes());
    payload[9..17].copy_from_slice(&flush.0.to_be_bytes());
    payload[17..25].copy_from_slice(&apply.0.to_be_bytes());
    payload[25..33].copy_from_slice(&clock_pg_us.to_be_bytes());
    payload[33] = u8::from(reply_requested);
    // A 34-byte payload always fits the length field, so this cannot fail.
    if let Ok(data) = frontend::CopyData::new(&payload[..]) {
        data.write(out);
    }
}

/// Decode the payload of a CopyData message of the replication stream. `data` is a slice of
/// the read buffer; the XLogData payload is a further slice of it, not a copy.
pub(crate) fn parse_copy_data(mut data: Bytes) -> Result<ReplicationMessage, SourceError> {
    let truncated = |what: &str| SourceError::Protocol(format!("truncated {what} message"));
    match data.first().copied() {
        Some(b'w') => {
            if data.len() < 25 {
                return Err(truncated("XLogData"));
            }
            data.advance(1);
            let wal_start = Lsn(data.get_u64());
            let wal_end = Lsn(data.get_u64());
            let server_time_us = unix_us(data.get_i64());
            Ok(ReplicationMessage::XLogData {
                wal_start,
                wal_end,
                server_time_us,
                data,
            })
        }
        Some(b'k') => {
            if data.len() < 18 {
                return Err(truncated("keepalive"));
            }
            data.advance(1);
            let wal_end = Lsn(data.get_u64());
            let server_time_us = unix_us(data.get_i64());
            let reply_requested = data.get_u8() != 0;
            Ok(ReplicationMessage::Keepalive {
                wal_end,
                server_time_us,
                reply_requested,
            })
        }
        Some(tag) => Err(SourceError::Protocol(format!(
            "unknown replication message {:?}",
            char::from(tag)
        ))),
        None => Err(SourceError::Protocol("empty CopyData message".into())),
    }
}

/// PostgreSQL time (µs since 2000-01-01) as µs since the Unix epoch.
fn unix_us(pg_us: i64) -> i64 {
    pg_us.saturating_add(PG_EPOCH_OFFSET_US)
}

/// The current time as PostgreSQL counts it (µs since 2000-01-01).
pub(crate) fn now_pg_us() -> i64 {
    let unix_us = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX));
    unix_us - PG_EPOCH_OFFSET_US
}

/// A backend message: postgres-protocol's, plus CopyBothResponse, which it does not know.
pub(crate) enum Frame {
    Message(Message),
    CopyBothResponse,
}

/// Take one complete frame off the front of `buf`, or `None` (consuming nothing) if the
/// frame is not complete yet.
pub(crate) fn decode_frame(buf: &mut BytesMut) -> Result<Option<Frame>, SourceError> {
    if buf.len() < 5 {
        return Ok(None);
    }
    let len = u32::from_be_bytes([buf[1], buf[2], buf[3], buf[4]]) as usize;
    if !(4..=MAX_FRAME_LEN).contains(&len) {
        return Err(SourceError::Protocol(format!(
            "invalid message length {len}"
        )));
    }
    if buf[0] == b'W' {
        if buf.len() < len + 1 {
            return Ok(None);
        }
        // The response's column formats say nothing a replication client needs.
        buf.advance(len + 1);
        return Ok(Some(Frame::CopyBothResponse));
    }
    Message::parse(buf)
        .map(|m| m.map(Frame::Message))
        .map_err(|e| SourceError::Protocol(format!("malformed message from the server: {e}")))
}

/// The server error in an ErrorResponse: SQLSTATE, message and, when given, the detail.
pub(crate) fn server_error(body: &ErrorResponseBody) -> SourceError {
    let mut code = String::new();
    let mut message = String::new();
    let mut detail = None;
    let mut fields = body.fields();
    while let Ok(Some(field)) = fields.next() {
        let value = String::from_utf8_lossy(field.value_bytes());
        match field.type_() {
            b'C' => code = value.into_owned(),
            b'M' => message = value.into_owned(),
            b'D' => detail = Some(value.into_owned()),
            _ => {}
        }
    }
    if let Some(detail) = detail {
        message = format!("{message} ({detail})");
    }
    SourceError::Server { code, message }
}

/// Log a NoticeResponse at debug level.
pub(crate) fn log_notice(body: &NoticeResponseBody) {
    let mut fields = body.fields();
    let (mut severity, mut message) = (String::new(), String::new());
    while let Ok(Some(field)) = fields.next() {
        match field.type_() {
            b'V' => severity = String::from_utf8_lossy(field.value_bytes()).into_owned(),
            b'M' => message = String::from_utf8_lossy(field.value_bytes()).into_owned(),
            _ => {}
        }
    }
    tracing::debug!(%severity, %message, "server notice");
}

/// The socket, plain or encrypted.
pub(crate) enum Transport {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl AsyncRead for Transport {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Transport::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Transport::Tls(s) => Pin::new(&mut **s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Transport {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Transport::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Transport::Tls(s) => Pin::new(&mut **s).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Transport::Plain(s) => Pin::new(s).poll_flush(cx),
            Transport::Tls(s) => Pin::new(&mut **s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Transport::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Transport::Tls(s) => Pin::new(&mut **s).poll_shutdown(cx),
        }
    }
}

/// The socket with its reusable read and write buffers.
pub(crate) struct Wire {
    io: Transport,
    read: BytesMut,
    write: BytesMut,
}

impl Wire {
    pub(crate) fn new(io: Transport) -> Self {
        Wire {
            io,
            read: BytesMut::with_capacity(READ_CHUNK),
            write: BytesMut::with_capacity(256),
        }
    }

    pub(crate) fn is_tls(&self) -> bool {
        matches!(self.io, Transport::Tls(_))
    }

    /// The write buffer, for encoding the next message(s) to [`Wire::send`].
    pub(crate) fn write_buf(&mut self) -> &mut BytesMut {
        &mut self.write
    }

    /// Write and flush everything encoded, leaving the buffer empty for reuse.
    pub(crate) async fn send(&mut self) -> Result<(), SourceError> {
        let result = async {
            self.io.write_all(&self.write).await?;
            self.io.flush().await
        }
        .await;
        self.write.clear();
        result.map_err(SourceError::Io)
    }

    /// The next complete frame if the buffer holds one; never reads.
    pub(crate) fn try_frame(&mut self) -> Result<Option<Frame>, SourceError> {
        decode_frame(&mut self.read)
    }

    /// Close the socket (TLS close-notify, then TCP shutdown).
    pub(crate) async fn close(&mut self) -> std::io::Result<()> {
        self.io.shutdown().await
    }

    /// The next complete frame, reading as needed.
    pub(crate) async fn next_frame(&mut self) -> Result<Frame, SourceError> {
        loop {
            if let Some(frame) = decode_frame(&mut self.read)? {
                return Ok(frame);
            }
            self.fill().await?;
        }
    }

    /// Read more bytes into the buffer. Cancel-safe: a read either lands whole in the buffer
    /// or does not happen.
    pub(crate) async fn fill(&mut self) -> Result<(), SourceError> {
        if self.read.capacity() - self.read.len() < READ_CHUNK / 4 {
            self.read.reserve(READ_CHUNK);
        }
        if self.io.read_buf(&mut self.read).await? == 0 {
            return Err(SourceError::Io(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "the server closed the connection",
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use bytes::BufMut;

    pub(crate) fn copy_data(payload: &[u8]) -> Vec<u8> {
        let mut frame = vec![b'd'];
        frame.extend_from_slice(&(4 + payload.len() as u32).to_be_bytes());
        frame.extend_from_slice(payload);
        frame
    }

    pub(crate) fn xlog_payload(start: u64, end: u64, pg_time: i64, data: &[u8]) -> Vec<u8> {
        let mut p = vec![b'w'];
        p.extend_from_slice(&start.to_be_bytes());
        p.extend_from_slice(&end.to_be_bytes());
        p.extend_from_slice(&pg_time.to_be_bytes());
        p.extend_from_slice(data);
        p
    }

    pub(crate) fn keepalive_payload(end: u64, pg_time: i64, reply: bool) -> Vec<u8> {
        let mut p = vec![b'k'];
        p.extend_from_slice(&end.to_be_bytes());
        p.extend_from_slice(&pg_time.to_be_bytes());
        p.push(u8::from(reply));
        p
    }

    pub(crate) fn decode_message(buf: &mut BytesMut) -> ReplicationMessage {
        match decode_frame(buf).unwrap() {
            Some(Frame::Message(Message::CopyData(body))) => {
                parse_copy_data(body.into_bytes()).unwrap()
            }
            _ => panic!("expected a CopyData frame"),
        }
    }

    #[test]
    fn xlogdata_is_decoded_only_once_its_frame_is_complete() {
        let frame = copy_data(&xlog_payload(
            0x16_B374_D848,
            0x16_B374_D900,
            1_000_000,
            b"B...",
        ));
        let mut buf = BytesMut::new();
        buf.put_slice(&frame[..20]);
        assert!(decode_frame(&mut buf).unwrap().is_none());
        assert_eq!(buf.len(), 20, "an incomplete frame is left in the buffer");
        buf.put_slice(&frame[20..]);
        let message = decode_message(&mut buf);
        assert_eq!(
            message,
            ReplicationMessage::XLogData {
                wal_start: Lsn(0x16_B374_D848),
                wal_end: Lsn(0x16_B374_D900),
                server_time_us: 946_684_801_000_000,
                data: Bytes::from_static(b"B..."),
            }
        );
        assert!(buf.is_empty());
    }

    #[test]
    fn the_xlogdata_payload_is_a_slice_of_the_read_buffer() {
        let mut buf = BytesMut::with_capacity(1024);
        buf.put_slice(&copy_data(&xlog_payload(1, 2, 3, b"payload")));
        let base = buf.as_ptr() as usize;
        let ReplicationMessage::XLogData { data, .. } = decode_message(&mut buf) else {
            panic!("expected XLogData")
        };
        assert_eq!(data.as_ptr() as usize, base + 5 + 25);
    }

    #[test]
    fn keepalives_carry_wal_end_time_and_the_reply_flag() {
        let mut buf = BytesMut::new();
        buf.put_slice(&copy_data(&keepalive_payload(42, -5, true)));
        buf.put_slice(&copy_data(&keepalive_payload(43, 0, false)));
        assert_eq!(
            decode_message(&mut buf),
            ReplicationMessage::Keepalive {
                wal_end: Lsn(42),
                server_time_us: PG_EPOCH_OFFSET_US - 5,
                reply_requested: true
            }
        );
        assert_eq!(
            decode_message(&mut buf),
            ReplicationMessage::Keepalive {
                wal_end: Lsn(43),
                server_time_us: PG_EPOCH_OFFSET_US,
                reply_requested: false
            }
        );
        assert!(decode_frame(&mut buf).unwrap().is_none());
    }

    #[test]
    fn truncated_or_unknown_copy_data_is_a_protocol_error() {
        for payload in [&b"w\0\0"[..], b"k\0", b"x123", b""] {
            let err = parse_copy_data(Bytes::copy_from_slice(payload)).unwrap_err();
            assert!(
                matches!(err, SourceError::Protocol(_)),
                "{payload:?}: {err}"
            );
        }
    }

    #[test]
    fn extreme_server_times_saturate_instead_of_overflowing() {
        let message = parse_copy_data(Bytes::from(keepalive_payload(1, i64::MAX, false))).unwrap();
        let ReplicationMessage::Keepalive { server_time_us, .. } = message else {
            panic!()
        };
        assert_eq!(server_time_us, i64::MAX);
    }

    #[test]
    fn copy_both_response_is_recognised_and_consumed() {
        let mut buf = BytesMut::new();
        buf.put_slice(b"W\0\0\0\x07\0\0\0");
        buf.put_slice(&copy_data(&keepalive_payload(7, 0, false)));
        assert!(matches!(
            decode_frame(&mut buf).unwrap(),
            Some(Frame::CopyBothResponse)
        ));
        assert!(matches!(
            decode_message(&mut buf),
            ReplicationMessage::Keepalive { .. }
        ));
    }

    #[test]
    fn a_corrupt_length_is_refused_before_allocating() {
        let mut buf = BytesMut::from(&b"d\xff\xff\xff\xffw"[..]);
        assert!(matches!(
            decode_frame(&mut buf),
            Err(SourceError::Protocol(_))
        ));
        let mut buf = BytesMut::from(&b"d\0\0\0\x02"[..]);
        assert!(matches!(
            decode_frame(&mut buf),
            Err(SourceError::Protocol(_))
        ));
    }

    #[test]
    fn an_error_response_becomes_a_server_error_with_sqlstate_and_detail() {
        let fields = b"SERROR\0C42704\0Mreplication slot \"s\" does not exist\0Dsome detail\0\0";
        let mut buf = BytesMut::new();
        buf.put_u8(b'E');
        buf.put_u32(4 + fields.len() as u32);
        buf.put_slice(fields);
        let Some(Frame::Message(Message::ErrorResponse(body))) = decode_frame(&mut buf).unwrap()
        else {
            panic!("expected an ErrorResponse")
        };
        match server_error(&body) {
            SourceError::Server { code, message } => {
                assert_eq!(code, "42704");
                assert_eq!(
                    message,
                    "replication slot \"s\" does not exist (some detail)"
                );
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn a_standby_status_update_is_encoded_as_copy_data_r() {
        let mut out = BytesMut::new();
        encode_status(
            Lsn(0x0102),
            Lsn(0x0304),
            Lsn(0x0506),
            0x0708,
            true,
            &mut out,
        );
        let mut expected = vec![b'd', 0, 0, 0, 38, b'r'];
        for v in [0x0102u64, 0x0304, 0x0506, 0x0708] {
            expected.extend_from_slice(&v.to_be_bytes());
        }
        expected.push(1);
        assert_eq!(&out[..], &expected[..]);
        out.clear();
        encode_status(Lsn(1), Lsn(1), Lsn(1), 0, false, &mut out);
        assert_eq!(out.len(), 39);
        assert_eq!(out[38], 0);
    }

    #[test]
    fn the_client_clock_is_counted_from_2000() {
        let now_unix_us = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_micros() as i64;
        let pg = now_pg_us();
        assert!((pg + PG_EPOCH_OFFSET_US - now_unix_us).abs() < 60_000_000);
    }
}
