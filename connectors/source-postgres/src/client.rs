//! The replication client: a connection in `replication=database` mode speaking the
//! walsender's commands (`IDENTIFY_SYSTEM`, `CREATE_REPLICATION_SLOT`, `START_REPLICATION`)
//! and then the CopyBoth stream of XLogData and keepalives, answered with standby status
//! updates. Upstream tokio-postgres cannot enter CopyBoth, so this speaks the protocol
//! directly with postgres-protocol's codecs.
//!
//! Reads go through one reusable buffer and only complete frames are consumed, which makes
//! [`ReplicationStream::recv`] cancel-safe; XLogData payloads are slices split off that
//! buffer, not copies. Writes reuse one buffer too.

mod wire;

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use postgres_protocol::message::backend::Message;
use postgres_protocol::message::frontend;
use sluice_api::Lsn;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_postgres::fallible_iterator::FallibleIterator;

pub use wire::PG_EPOCH_OFFSET_US;
use wire::{encode_status, now_pg_us, parse_copy_data, Transport};
pub(crate) use wire::{log_notice, server_error, Frame, Wire};

use crate::auth::{startup, SessionInfo};
use crate::ident::quote_ident;
use crate::{ConnectionConfig, SourceError, SslMode};

/// How long an orderly shutdown waits for the server to acknowledge the end of the stream
/// before closing the socket anyway (older servers answer late while decoding a large
/// transaction).
const SHUTDOWN_DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// What `IDENTIFY_SYSTEM` reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SystemIdentity {
    /// The cluster's unique system identifier.
    pub systemid: u64,
    /// The current timeline.
    pub timeline: u32,
    /// The current WAL flush position.
    pub xlogpos: Lsn,
    /// The database the connection is bound to (always set in `replication=database` mode).
    pub dbname: Option<String>,
}

/// What `CREATE_REPLICATION_SLOT` reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CreatedSlot {
    pub slot_name: String,
    /// The first position the slot will stream; everything before it is in the snapshot.
    pub consistent_point: Lsn,
    /// The exported snapshot (when requested): valid for `SET TRANSACTION SNAPSHOT` on other
    /// connections until the next command on this replication connection, or its close.
    pub snapshot_name: Option<String>,
    pub output_plugin: Option<String>,
}

/// What `START_REPLICATION` asks of pgoutput.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StartOptions {
    pub slot: String,
    pub publication: String,
    /// Stream changes committed after this position (the slot's own position if lower).
    pub start_lsn: Lsn,
    /// pgoutput protocol version: 1 (PostgreSQL 10+), 2 for streaming (14+), ...
    pub proto_version: u32,
    /// Stream in-progress transactions (needs `proto_version >= 2`).
    pub streaming: bool,
    /// Send logical decoding messages (`pg_logical_emit_message`, PostgreSQL 14+).
    pub messages: bool,
}

/// One message of the replication stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReplicationMessage {
    /// WAL data: one pgoutput message in `data`.
    XLogData {
        wal_start: Lsn,
        wal_end: Lsn,
        server_time_us: i64,
        data: Bytes,
    },
    /// The server's keepalive, carrying its current WAL end; `reply_requested` asks for a
    /// status update at once (the server is about to time the client out).
    Keepalive {
        wal_end: Lsn,
        server_time_us: i64,
        reply_requested: bool,
    },
}

/// A replication connection between commands (before `START_REPLICATION`).
pub struct ReplicationClient {
    wire: Wire,
    session: SessionInfo,
}

impl ReplicationClient {
    /// Connect with `replication=database`: TCP (no Nagle delay), TLS as `sslmode` says,
    /// start-up and authentication (trust, password, md5, scram-sha-256), all within
    /// `connect_timeout`.
    pub async fn connect(cfg: &ConnectionConfig) -> Result<Self, SourceError> {
        let connecting = Self::connect_unbounded(cfg);
        match cfg.connect_limit() {
            None => connecting.await,
            Some(limit) => tokio::time::timeout(limit, connecting)
                .await
                .unwrap_or_else(|_| {
                    Err(SourceError::Io(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        format!(
                            "connecting to {}:{} took longer than {} s",
                            cfg.host,
                            cfg.port,
                            limit.as_secs()
                        ),
                    )))
                }),
        }
    }

    async fn connect_unbounded(cfg: &ConnectionConfig) -> Result<Self, SourceError> {
        let mut tcp = TcpStream::connect((cfg.host.as_str(), cfg.port)).await?;
        tcp.set_nodelay(true)?;
        let transport = match cfg.sslmode {
            SslMode::Disable => Transport::Plain(tcp),
            SslMode::Prefer | SslMode::Require | SslMode::VerifyFull => {
                let mut request = BytesMut::new();
                frontend::ssl_request(&mut request);
                tcp.write_all(&request).await?;
                // Exactly one byte: nothing the server sends before the handshake may be
                // mistaken for part of the encrypted session.
                match tcp.read_u8().await? {
                    b'S' => {
                        let config = crate::tls::client_config(cfg)?;
                        Transport::Tls(Box::new(crate::tls::handshake(cfg, config, tcp).await?))
                    }
                    b'N' if cfg.sslmode == SslMode::Prefer => Transport::Plain(tcp),
                    b'N' => {
                        return Err(SourceError::Tls(format!(
                            "the server does not accept TLS connections (sslmode={})",
                            cfg.sslmode.as_str()
                        )))
                    }
                    other => {
                        return Err(SourceError::Protocol(format!(
                            "unexpected answer {other:#04x} to the TLS request"
                        )))
                    }
                }
            }
        };
        let mut wire = Wire::new(transport);
        let session = startup(&mut wire, cfg).await?;
        tracing::debug!(
            target = %cfg.redacted(), server_version = ?session.server_version,
            backend_pid = ?session.backend_pid, tls = wire.is_tls(), "replication connection ready"
        );
        let pass_through = session
            .server_encoding
            .as_deref()
            .and_then(crate::connection::pass_through_encoding);
        let mut client = ReplicationClient { wire, session };
        if let Some(statement) = pass_through {
            client.simple_query(statement).await?;
        }
        Ok(client)
    }

    /// The server's `server_version` as reported at start-up.
    pub fn server_version(&self) -> Option<&str> {
        self.session.server_version.as_deref()
    }

    /// The walsender's process id.
    pub fn backend_pid(&self) -> Option<i32> {
        self.session.backend_pid
    }

    /// Whether the connection is encrypted.
    pub fn is_tls(&self) -> bool {
        self.wire.is_tls()
    }

    /// `IDENTIFY_SYSTEM`: the cluster identity, timeline and current WAL position.
    pub async fn identify_system(&mut self) -> Result<SystemIdentity, SourceError> {
        let rows = self.simple_query("IDENTIFY_SYSTEM").await?;
        let row = single_row(&rows, "IDENTIFY_SYSTEM", 4)?;
        Ok(SystemIdentity {
            systemid: parse_field(row, 0, "systemid", |s| s.parse().ok())?,
            timeline: parse_field(row, 1, "timeline", |s| s.parse().ok())?,
            xlogpos: parse_field(row, 2, "xlogpos", |s| s.parse().ok())?,
            dbname: row[3].clone(),
        })
    }

    /// `CREATE_REPLICATION_SLOT "slot" LOGICAL pgoutput [NO]EXPORT_SNAPSHOT` (a form every
    /// server from 10 to 17 accepts). With `export_snapshot`, use the snapshot before the
    /// next command on this connection.
    pub async fn create_slot(
        &mut self,
        slot: &str,
        export_snapshot: bool,
    ) -> Result<CreatedSlot, SourceError> {
        let snapshot = if export_snapshot {
            "EXPORT_SNAPSHOT"
        } else {
            "NOEXPORT_SNAPSHOT"
        };
        let sql = format!(
            "CREATE_REPLICATION_SLOT {} LOGICAL pgoutput {snapshot}",
            quote_ident(slot)
        );
        let rows = self.simple_query(&sql).await?;
        let row = single_row(&rows, "CREATE_REPLICATION_SLOT", 4)?;
        Ok(CreatedSlot {
            slot_name: parse_field(row, 0, "slot_name", |s| Some(s.to_owned()))?,
            consistent_point: parse_field(row, 1, "consistent_point", |s| s.parse().ok())?,
            snapshot_name: row[2].clone(),
            output_plugin: row[3].clone(),
        })
    }

    /// Run one command with the simple-query protocol and return every row as text
    /// (`None` for NULL). A server error is returned once the server is ready again, so the
    /// connection stays usable. Commands that start a copy are refused.
    pub async fn simple_query(
        &mut self,
        sql: &str,
    ) -> Result<Vec<Vec<Option<String>>>, SourceError> {
        frontend::query(sql, self.wire.write_buf()).map_err(encode_error)?;
        self.wire.send().await?;
        let mut rows = Vec::new();
        let mut error = None;
        loop {
            match self.wire.next_frame().await? {
                Frame::Message(Message::DataRow(body)) => {
                    let mut row = Vec::new();
                    let mut ranges = body.ranges();
                    while let Some(range) = ranges.next().map_err(protocol_error)? {
                        row.push(match range {
                            Some(r) => Some(text(body.buffer().get(r))?),
                            None => None,
                        });
                    }
                    rows.push(row);
                }
                Frame::Message(Message::ErrorResponse(body)) => error = Some(server_error(&body)),
                Frame::Message(Message::ReadyForQuery(_)) => {
                    return error.map_or(Ok(rows), Err);
                }
                Frame::Message(
                    Message::RowDescription(_)
                    | Message::CommandComplete(_)
                    | Message::EmptyQueryResponse,
                ) => {}
                Frame::Message(message) => other_message(message, "a replication command")?,
                Frame::CopyBothResponse => {
                    return Err(SourceError::Protocol(
                        "simple_query cannot run a streaming command; use start_replication".into(),
                    ))
                }
            }
        }
    }

    /// `START_REPLICATION SLOT "slot" LOGICAL <lsn> (proto_version ..., publication_names ...,
    /// streaming ..., messages ...)`; the connection becomes the stream.
    pub async fn start_replication(
        mut self,
        opts: &StartOptions,
    ) -> Result<ReplicationStream, SourceError> {
        let sql = start_replication_command(opts);
        tracing::debug!(command = %sql, "starting replication");
        frontend::query(&sql, self.wire.write_buf()).map_err(encode_error)?;
        self.wire.send().await?;
        loop {
            match self.wire.next_frame().await? {
                Frame::CopyBothResponse => {
                    return Ok(ReplicationStream {
                        wire: self.wire,
                        state: StreamState::Copying,
                    })
                }
                Frame::Message(Message::ErrorResponse(body)) => {
                    let error = server_error(&body);
                    // Wait for ReadyForQuery so nothing is left half-read; the server's error
                    // is what matters even if that fails.
                    while let Ok(frame) = self.wire.next_frame().await {
                        if matches!(frame, Frame::Message(Message::ReadyForQuery(_))) {
                            break;
                        }
                    }
                    return Err(error);
                }
                Frame::Message(message) => other_message(message, "START_REPLICATION")?,
            }
        }
    }
}

/// The `START_REPLICATION` command for `opts`, identifiers and literals quoted.
fn start_replication_command(opts: &StartOptions) -> String {
    let publications = quote_ident(&opts.publication).replace('\'', "''");
    let mut sql = format!(
        "START_REPLICATION SLOT {} LOGICAL {} (proto_version '{}', publication_names '{publications}'",
        quote_ident(&opts.slot),
        opts.start_lsn,
        opts.proto_version
    );
    // Options left out rather than set 'off', so servers that predate them still accept v1.
    if opts.streaming {
        sql.push_str(", streaming 'on'");
    }
    if opts.messages {
        sql.push_str(", messages 'on'");
    }
    sql.push(')');
    sql
}

/// Where the CopyBoth exchange stands.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum StreamState {
    /// Streaming in both directions.
    Copying,
    /// The server sent CopyDone: it waits for ours, then completes the command.
    ServerDone,
    /// The server completed the command (and may have said ReadyForQuery).
    Ended { ready: bool },
}

/// The CopyBoth stream started by [`ReplicationClient::start_replication`].
pub struct ReplicationStream {
    wire: Wire,
    state: StreamState,
}

impl ReplicationStream {
    /// The next XLogData or keepalive; `Ok(None)` once the server has ended the stream.
    /// Cancel-safe: dropping the future loses nothing, as only complete frames are taken
    /// from the read buffer.
    pub async fn recv(&mut self) -> Result<Option<ReplicationMessage>, SourceError> {
        if self.state != StreamState::Copying {
            return Ok(None);
        }
        loop {
            while let Some(frame) = self.wire.try_frame()? {
                match frame {
                    Frame::Message(Message::CopyData(body)) => {
                        return parse_copy_data(body.into_bytes()).map(Some)
                    }
                    Frame::Message(Message::CopyDone) => {
                        self.state = StreamState::ServerDone;
                        return Ok(None);
                    }
                    Frame::Message(Message::CommandComplete(_)) => {
                        self.state = StreamState::Ended { ready: false };
                        return Ok(None);
                    }
                    Frame::Message(Message::ReadyForQuery(_)) => {
                        self.state = StreamState::Ended { ready: true };
                        return Ok(None);
                    }
                    Frame::Message(Message::ErrorResponse(body)) => {
                        return Err(server_error(&body))
                    }
                    Frame::Message(message) => other_message(message, "replication")?,
                    Frame::CopyBothResponse => {
                        return Err(SourceError::Protocol("a second CopyBothResponse".into()))
                    }
                }
            }
            self.wire.fill().await?;
        }
    }

    /// Send a standby status update: positions written, flushed (durable: the server may
    /// recycle WAL before it) and applied, the client clock, and whether the server should
    /// answer with a keepalive at once.
    pub async fn send_status(
        &mut self,
        write: Lsn,
        flush: Lsn,
        apply: Lsn,
        reply_requested: bool,
    ) -> Result<(), SourceError> {
        encode_status(
            write,
            flush,
            apply,
            now_pg_us(),
            reply_requested,
            self.wire.write_buf(),
        );
        self.wire.send().await
    }

    /// Orderly shutdown: end the copy, read what the server still sends up to its
    /// ReadyForQuery (bounded in time), then say goodbye and close the socket.
    pub async fn shutdown(mut self) -> Result<(), SourceError> {
        let mut error = None;
        if !matches!(self.state, StreamState::Ended { ready: true }) {
            if !matches!(self.state, StreamState::Ended { .. }) {
                frontend::copy_done(self.wire.write_buf());
                self.wire.send().await?;
            }
            let drain = async {
                loop {
                    match self.wire.next_frame().await? {
                        Frame::Message(Message::ReadyForQuery(_)) => {
                            return Ok::<(), SourceError>(())
                        }
                        Frame::Message(Message::ErrorResponse(body)) => {
                            error = Some(server_error(&body))
                        }
                        Frame::Message(Message::NoticeResponse(body)) => log_notice(&body),
                        // Data in flight when the server saw our CopyDone, and the end of the
                        // command: nothing to act on any more.
                        _ => {}
                    }
                }
            };
            match tokio::time::timeout(SHUTDOWN_DRAIN_TIMEOUT, drain).await {
                Ok(result) => result?,
                Err(_) => tracing::warn!(
                    timeout_s = SHUTDOWN_DRAIN_TIMEOUT.as_secs(),
                    "the server did not end the replication stream in time; closing the connection"
                ),
            }
        }
        frontend::terminate(self.wire.write_buf());
        // The server may already be gone; closing is all that is left either way.
        let _ = self.wire.send().await;
        let _ = self.wire.close().await;
        error.map_or(Ok(()), Err)
    }
}

/// Messages that may come at any time are logged; anything else is a protocol error.
fn other_message(message: Message, during: &str) -> Result<(), SourceError> {
    match message {
        Message::NoticeResponse(body) => log_notice(&body),
        Message::ParameterStatus(body) => tracing::debug!(
            name = body.name().unwrap_or_default(),
            value = body.value().unwrap_or_default(),
            "server parameter"
        ),
        _ => {
            return Err(SourceError::Protocol(format!(
                "unexpected message from the server during {during}"
            )))
        }
    }
    Ok(())
}

/// Exactly one row of at least `columns` columns.
fn single_row<'a>(
    rows: &'a [Vec<Option<String>>],
    command: &str,
    columns: usize,
) -> Result<&'a [Option<String>], SourceError> {
    match rows {
        [row] if row.len() >= columns => Ok(row),
        _ => Err(SourceError::Protocol(format!(
            "{command} returned {} rows, expected one row of {columns} columns",
            rows.len()
        ))),
    }
}

fn parse_field<T>(
    row: &[Option<String>],
    index: usize,
    name: &str,
    parse: impl FnOnce(&str) -> Option<T>,
) -> Result<T, SourceError> {
    let value = row.get(index).and_then(|v| v.as_deref());
    value.and_then(parse).ok_or_else(|| {
        SourceError::Protocol(format!("unexpected {name} {value:?} from the server"))
    })
}

fn text(bytes: Option<&[u8]>) -> Result<String, SourceError> {
    bytes
        .and_then(|b| std::str::from_utf8(b).ok())
        .map(str::to_owned)
        .ok_or_else(|| SourceError::Protocol("a result value is not UTF-8 text".into()))
}

/// A double-quoted identifier for replication commands.
fn encode_error(e: std::io::Error) -> SourceError {
    SourceError::Protocol(format!("cannot encode a command: {e}"))
}

fn protocol_error(e: std::io::Error) -> SourceError {
    SourceError::Protocol(format!("malformed message from the server: {e}"))
}

#[cfg(test)]
mod tests {
    use super::wire::tests::{copy_data, keepalive_payload, xlog_payload};
    use super::*;
    use tokio::io::AsyncReadExt;

    #[test]
    fn start_replication_quotes_names_and_lists_only_enabled_options() {
        let mut opts = StartOptions {
            slot: "sl\"ot".into(),
            publication: "it's".into(),
            start_lsn: Lsn(0x1_0000_00AB),
            proto_version: 2,
            streaming: true,
            messages: true,
        };
        assert_eq!(
            start_replication_command(&opts),
            "START_REPLICATION SLOT \"sl\"\"ot\" LOGICAL 1/AB (proto_version '2', \
             publication_names '\"it''s\"', streaming 'on', messages 'on')"
        );
        opts.proto_version = 1;
        opts.streaming = false;
        opts.messages = false;
        assert_eq!(
            start_replication_command(&opts),
            "START_REPLICATION SLOT \"sl\"\"ot\" LOGICAL 1/AB (proto_version '1', \
             publication_names '\"it''s\"')"
        );
    }

    /// A stream over a loopback socket whose server side the test writes to.
    async fn loopback_stream() -> (ReplicationStream, TcpStream) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (client, server) = tokio::join!(TcpStream::connect(addr), listener.accept());
        let stream = ReplicationStream {
            wire: Wire::new(Transport::Plain(client.unwrap())),
            state: StreamState::Copying,
        };
        (stream, server.unwrap().0)
    }

    #[tokio::test]
    async fn recv_dropped_mid_frame_loses_nothing() {
        let (mut stream, mut server) = loopback_stream().await;
        let frame = copy_data(&xlog_payload(10, 20, 0, b"hello"));
        server.write_all(&frame[..12]).await.unwrap();
        // Let the first half land in the read buffer, then abandon a recv waiting for more.
        stream.wire.fill().await.unwrap();
        tokio::select! {
            biased;
            _ = stream.recv() => panic!("a half frame must not yield a message"),
            _ = tokio::task::yield_now() => {}
        }
        server.write_all(&frame[12..]).await.unwrap();
        server
            .write_all(&copy_data(&keepalive_payload(21, 0, true)))
            .await
            .unwrap();
        let first = stream.recv().await.unwrap().unwrap();
        assert!(
            matches!(first, ReplicationMessage::XLogData { wal_start: Lsn(10), ref data, .. } if data == "hello")
        );
        let second = stream.recv().await.unwrap().unwrap();
        assert!(matches!(
            second,
            ReplicationMessage::Keepalive {
                reply_requested: true,
                ..
            }
        ));
    }

    #[tokio::test]
    async fn the_stream_ends_on_copy_done_and_a_closed_socket_is_an_io_error() {
        let (mut stream, mut server) = loopback_stream().await;
        server.write_all(b"c\0\0\0\x04").await.unwrap();
        assert_eq!(stream.recv().await.unwrap(), None);
        assert_eq!(stream.recv().await.unwrap(), None);

        let (mut stream, server) = loopback_stream().await;
        drop(server);
        assert!(matches!(stream.recv().await, Err(SourceError::Io(_))));
    }

    #[tokio::test]
    async fn a_status_update_reaches_the_socket() {
        let (mut stream, mut server) = loopback_stream().await;
        stream
            .send_status(Lsn(5), Lsn(4), Lsn(3), false)
            .await
            .unwrap();
        let mut got = [0u8; 39];
        server.read_exact(&mut got).await.unwrap();
        assert_eq!(&got[..6], b"d\0\0\0\x26r");
        assert_eq!(&got[6..14], &5u64.to_be_bytes());
        assert_eq!(&got[14..22], &4u64.to_be_bytes());
        assert_eq!(&got[22..30], &3u64.to_be_bytes());
        assert_eq!(got[38], 0);
    }

    /// Against a real server (`SLUICE_TEST_REPLICATION_URL`, a superuser or replication role on
    /// a `wal_level=logical` cluster): slot creation with an exported snapshot, streaming an
    /// insert and a logical message, status updates, orderly shutdown, slot removal.
    #[tokio::test]
    #[ignore = "needs a PostgreSQL server: set SLUICE_TEST_REPLICATION_URL"]
    async fn a_real_server_streams_an_insert_after_the_slot_is_created() {
        let Ok(url) = std::env::var("SLUICE_TEST_REPLICATION_URL") else {
            return;
        };
        let cfg = ConnectionConfig::parse(&url).unwrap();
        let sql = cfg.connect_sql().await.unwrap();
        sql.batch_execute(
            "DROP TABLE IF EXISTS sluice_client_check; CREATE TABLE sluice_client_check (id int PRIMARY KEY);
             DROP PUBLICATION IF EXISTS sluice_client_check; CREATE PUBLICATION sluice_client_check FOR TABLE sluice_client_check;",
        )
        .await
        .unwrap();
        let mut client = ReplicationClient::connect(&cfg).await.unwrap();
        // A slot left behind by an interrupted run.
        let _ = client
            .simple_query("DROP_REPLICATION_SLOT \"sluice_client_check\"")
            .await;
        let system = client.identify_system().await.unwrap();
        assert_eq!(system.dbname.as_deref(), Some(cfg.dbname.as_str()));
        let slot = client
            .create_slot("sluice_client_check", true)
            .await
            .unwrap();
        assert!(slot.consistent_point >= system.xlogpos);
        let snapshot = slot.snapshot_name.clone().unwrap();
        // Each statement its own transaction, so the stream order is fixed.
        for statement in [
            format!("BEGIN ISOLATION LEVEL REPEATABLE READ; SET TRANSACTION SNAPSHOT '{snapshot}'; COMMIT"),
            "INSERT INTO sluice_client_check VALUES (1)".to_owned(),
            "SELECT pg_logical_emit_message(false, 'sluice_client_check', 'hello')".to_owned(),
        ] {
            sql.batch_execute(&statement).await.unwrap();
        }
        let mut stream = client
            .start_replication(&StartOptions {
                slot: slot.slot_name.clone(),
                publication: "sluice_client_check".into(),
                start_lsn: slot.consistent_point,
                proto_version: 2,
                streaming: true,
                messages: true,
            })
            .await
            .unwrap();
        let mut tags = Vec::new();
        while !tags.contains(&b'M') {
            match stream.recv().await.unwrap().unwrap() {
                ReplicationMessage::XLogData { data, .. } => tags.push(data[0]),
                ReplicationMessage::Keepalive { wal_end, .. } => stream
                    .send_status(wal_end, wal_end, wal_end, false)
                    .await
                    .unwrap(),
            }
        }
        assert_eq!(String::from_utf8_lossy(&tags), "BRICM");
        stream.shutdown().await.unwrap();
        let mut client = ReplicationClient::connect(&cfg).await.unwrap();
        client
            .simple_query("DROP_REPLICATION_SLOT \"sluice_client_check\"")
            .await
            .unwrap();
        let err = client
            .simple_query("DROP_REPLICATION_SLOT \"sluice_client_check\"")
            .await;
        assert!(matches!(err, Err(SourceError::Server { ref code, .. }) if code == "42704"));
        sql.batch_execute("DROP PUBLICATION sluice_client_check; DROP TABLE sluice_client_check")
            .await
            .unwrap();
    }
}
