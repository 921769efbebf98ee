//! Session start-up for the replication connection: the startup message (with
//! `replication=database`) and the authentication exchange — trust, cleartext password, MD5
//! and SCRAM-SHA-256 — up to the server's first ReadyForQuery.
//!
//! The exchange itself is [`Authenticator`], a state machine without I/O: it answers each
//! authentication request by encoding the reply into a buffer, so it is tested without a
//! server. The password is only ever handed to the hashing functions and the wire.

use bytes::BytesMut;
use postgres_protocol::authentication::md5_hash;
use postgres_protocol::authentication::sasl::{ChannelBinding, ScramSha256, SCRAM_SHA_256};
use postgres_protocol::message::backend::Message;
use postgres_protocol::message::frontend;
use sluice_api::Secret;
use tokio_postgres::fallible_iterator::FallibleIterator;

use crate::client::{log_notice, server_error, Frame, Wire};
use crate::connection::SESSION_SETTINGS;
use crate::{ConnectionConfig, SourceError};

/// What the server told the session during start-up.
#[derive(Debug, Default)]
pub(crate) struct SessionInfo {
    /// The `server_version` parameter, e.g. `15.6 (Debian 15.6-1)`.
    pub server_version: Option<String>,
    /// The walsender's process id, for `pg_stat_replication` and `pg_terminate_backend`.
    pub backend_pid: Option<i32>,
    /// The `server_encoding` parameter (the database's encoding).
    pub server_encoding: Option<String>,
}

/// Send the startup message and authenticate; returns when the server is ready for the
/// first command.
pub(crate) async fn startup(
    wire: &mut Wire,
    cfg: &ConnectionConfig,
) -> Result<SessionInfo, SourceError> {
    let mut params: Vec<(&str, &str)> = vec![
        ("user", &cfg.user),
        ("database", &cfg.dbname),
        ("replication", "database"),
        ("application_name", &cfg.application_name),
    ];
    params.extend_from_slice(SESSION_SETTINGS);
    frontend::startup_message(params, wire.write_buf())
        .map_err(|e| SourceError::Protocol(format!("cannot encode the startup message: {e}")))?;
    wire.send().await?;

    let mut auth = Authenticator::new(&cfg.user, cfg.password.as_ref());
    let mut info = SessionInfo::default();
    loop {
        let message = match wire.next_frame().await? {
            Frame::Message(message) => message,
            Frame::CopyBothResponse => {
                return Err(SourceError::Protocol(
                    "unexpected CopyBothResponse during start-up".into(),
                ))
            }
        };
        match message {
            Message::ErrorResponse(body) => return Err(server_error(&body)),
            Message::NoticeResponse(body) => log_notice(&body),
            Message::ParameterStatus(body) => {
                let name = body.name().unwrap_or_default();
                let value = body.value().unwrap_or_default();
                tracing::debug!(name, value, "server parameter");
                match name {
                    "server_version" => info.server_version = Some(value.to_owned()),
                    "server_encoding" => info.server_encoding = Some(value.to_owned()),
                    _ => {}
                }
            }
            Message::BackendKeyData(body) => info.backend_pid = Some(body.process_id()),
            Message::ReadyForQuery(_) if auth.done => return Ok(info),
            other => match auth.step(&other, wire.write_buf())? {
                AuthStep::Reply => wire.send().await?,
                AuthStep::Wait => {}
            },
        }
    }
}

/// What the caller does after [`Authenticator::step`].
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum AuthStep {
    /// A reply was encoded into the buffer: send it, then read the next message.
    Reply,
    /// Nothing to send: read the next message.
    Wait,
}

/// The client side of PostgreSQL authentication.
pub(crate) struct Authenticator<'a> {
    user: &'a str,
    password: Option<&'a Secret>,
    scram: Option<ScramSha256>,
    /// The server said AuthenticationOk.
    pub done: bool,
}

impl<'a> Authenticator<'a> {
    pub fn new(user: &'a str, password: Option<&'a Secret>) -> Self {
        Authenticator {
            user,
            password,
            scram: None,
            done: false,
        }
    }

    /// Answer one message of the authentication phase, encoding any reply into `out`.
    /// Messages that are not authentication requests are a protocol error here.
    pub fn step(&mut self, message: &Message, out: &mut BytesMut) -> Result<AuthStep, SourceError> {
        match message {
            Message::AuthenticationOk => {
                self.done = true;
                Ok(AuthStep::Wait)
            }
            Message::AuthenticationCleartextPassword => {
                let password = self.password("password")?;
                frontend::password_message(password.as_bytes(), out).map_err(encode_error)?;
                Ok(AuthStep::Reply)
            }
            Message::AuthenticationMd5Password(body) => {
                let password = self.password("md5")?;
                let hash = md5_hash(self.user.as_bytes(), password.as_bytes(), body.salt());
                frontend::password_message(hash.as_bytes(), out).map_err(encode_error)?;
                Ok(AuthStep::Reply)
            }
            Message::AuthenticationSasl(body) => {
                let mut mechanisms = body.mechanisms();
                let mut offered = Vec::new();
                while let Some(mechanism) = mechanisms.next().map_err(protocol_error)? {
                    offered.push(mechanism.to_owned());
                }
                if !offered.iter().any(|m| m == SCRAM_SHA_256) {
                    return Err(SourceError::Auth(format!(
                        "the server offers only the SASL mechanisms {offered:?}; supported: {SCRAM_SHA_256}"
                    )));
                }
                let password = self.password("scram-sha-256")?;
                // Channel binding is not offered ('n' flag): the server accepts this, and
                // with verify-full the certificate check already binds the session.
                let scram = ScramSha256::new(password.as_bytes(), ChannelBinding::unsupported());
                frontend::sasl_initial_response(SCRAM_SHA_256, scram.message(), out)
                    .map_err(encode_error)?;
                self.scram = Some(scram);
                Ok(AuthStep::Reply)
            }
            Message::AuthenticationSaslContinue(body) => {
                let scram = self.scram.as_mut().ok_or_else(|| {
                    SourceError::Protocol("SASL continuation without a SASL start".into())
                })?;
                scram
                    .update(body.data())
                    .map_err(|e| SourceError::Auth(format!("scram exchange failed: {e}")))?;
                frontend::sasl_response(scram.message(), out).map_err(encode_error)?;
                Ok(AuthStep::Reply)
            }
            Message::AuthenticationSaslFinal(body) => {
                let mut scram = self.scram.take().ok_or_else(|| {
                    SourceError::Protocol("SASL final message without a SASL start".into())
                })?;
                // Checks the server's signature: the server, too, knows the password.
                scram.finish(body.data()).map_err(|e| {
                    SourceError::Auth(format!("the server's scram signature is invalid: {e}"))
                })?;
                Ok(AuthStep::Wait)
            }
            Message::AuthenticationKerberosV5
            | Message::AuthenticationScmCredential
            | Message::AuthenticationGss
            | Message::AuthenticationGssContinue(_)
            | Message::AuthenticationSspi => Err(SourceError::Auth(
                "the server asks for an authentication method sluice does not support \
                 (kerberos, gssapi, sspi or scm); use scram-sha-256, md5, password or trust"
                    .into(),
            )),
            _ => Err(SourceError::Protocol(
                "unexpected message during authentication".into(),
            )),
        }
    }

    /// The configured password, or an error naming the method that needs one.
    fn password(&self, method: &str) -> Result<&'a str, SourceError> {
        self.password.map(Secret::expose).ok_or_else(|| {
            SourceError::Auth(format!(
                "the server requires {method} authentication for user {:?} but no password is configured",
                self.user
            ))
        })
    }
}

fn encode_error(e: std::io::Error) -> SourceError {
    SourceError::Protocol(format!("cannot encode an authentication reply: {e}"))
}

fn protocol_error(e: std::io::Error) -> SourceError {
    SourceError::Protocol(format!("malformed authentication request: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BufMut;

    /// A backend authentication request: 'R', length, code, body.
    fn request(code: i32, body: &[u8]) -> Message {
        let mut buf = BytesMut::new();
        buf.put_u8(b'R');
        buf.put_i32(8 + body.len() as i32);
        buf.put_i32(code);
        buf.put_slice(body);
        Message::parse(&mut buf).unwrap().unwrap()
    }

    #[test]
    fn trust_needs_no_reply_and_completes() {
        let mut auth = Authenticator::new("u", None);
        let mut out = BytesMut::new();
        assert_eq!(
            auth.step(&request(0, b""), &mut out).unwrap(),
            AuthStep::Wait
        );
        assert!(auth.done);
        assert!(out.is_empty());
    }

    #[test]
    fn a_cleartext_request_is_answered_with_the_password() {
        let secret = Secret::new("pw");
        let mut auth = Authenticator::new("u", Some(&secret));
        let mut out = BytesMut::new();
        assert_eq!(
            auth.step(&request(3, b""), &mut out).unwrap(),
            AuthStep::Reply
        );
        assert_eq!(&out[..], b"p\0\0\0\x07pw\0");
    }

    #[test]
    fn an_md5_request_is_answered_with_the_salted_hash() {
        let secret = Secret::new("password");
        let mut auth = Authenticator::new("md5_user", Some(&secret));
        let mut out = BytesMut::new();
        auth.step(&request(5, &[0x2a, 0x3d, 0x8f, 0xe0]), &mut out)
            .unwrap();
        let expected = b"md562af4dd09bbb41884907a838a3233294";
        assert_eq!(out[0], b'p');
        assert_eq!(&out[5..out.len() - 1], expected);
    }

    #[test]
    fn scram_starts_with_a_client_first_message_without_channel_binding() {
        let secret = Secret::new("pw");
        let mut auth = Authenticator::new("u", Some(&secret));
        let mut out = BytesMut::new();
        let step = auth.step(
            &request(10, b"SCRAM-SHA-256-PLUS\0SCRAM-SHA-256\0\0"),
            &mut out,
        );
        assert_eq!(step.unwrap(), AuthStep::Reply);
        assert_eq!(out[0], b'p');
        let body = &out[5..];
        assert!(body.starts_with(b"SCRAM-SHA-256\0"));
        let first = &body[b"SCRAM-SHA-256\0".len() + 4..];
        assert!(
            first.starts_with(b"n,,n=,r="),
            "{:?}",
            String::from_utf8_lossy(first)
        );
    }

    #[test]
    fn a_bad_server_scram_message_fails_authentication() {
        let secret = Secret::new("pw");
        let mut auth = Authenticator::new("u", Some(&secret));
        let mut out = BytesMut::new();
        auth.step(&request(10, b"SCRAM-SHA-256\0\0"), &mut out)
            .unwrap();
        let err = auth.step(&request(11, b"r=not-our-nonce,s=c2FsdA==,i=4096"), &mut out);
        assert!(matches!(err, Err(SourceError::Auth(_))));
    }

    #[test]
    fn a_password_request_without_a_password_is_an_auth_error() {
        let mut auth = Authenticator::new("alice", None);
        let err = auth
            .step(&request(5, &[1, 2, 3, 4]), &mut BytesMut::new())
            .unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("md5") && text.contains("no password"),
            "{text}"
        );
    }

    #[test]
    fn unsupported_methods_are_refused_by_name() {
        let secret = Secret::new("pw");
        let mut auth = Authenticator::new("u", Some(&secret));
        let err = auth
            .step(&request(7, b""), &mut BytesMut::new())
            .unwrap_err();
        assert!(matches!(err, SourceError::Auth(_)));
        let err = auth
            .step(&request(10, b"OAUTHBEARER\0\0"), &mut BytesMut::new())
            .unwrap_err();
        assert!(err.to_string().contains("OAUTHBEARER"));
    }

    #[test]
    fn the_password_never_appears_in_errors() {
        let secret = Secret::new("hunter2");
        let mut auth = Authenticator::new("u", Some(&secret));
        let mut out = BytesMut::new();
        auth.step(&request(10, b"SCRAM-SHA-256\0\0"), &mut out)
            .unwrap();
        let err = auth.step(&request(12, b"v=AAAA"), &mut out).unwrap_err();
        assert!(!err.to_string().contains("hunter2"));
    }
}
