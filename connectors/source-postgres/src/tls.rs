//! TLS for both kinds of connection to PostgreSQL, on rustls with the ring provider: the
//! client configuration each `sslmode` calls for, the handshake the replication client runs
//! after the server accepts an SSLRequest, and a [`MakeRustlsConnect`] so ordinary
//! tokio-postgres connections use the very same settings.
//!
//! `prefer` and `require` encrypt without checking the server's certificate, as libpq does;
//! only `verify-full` checks the chain (against `sslrootcert`, or else the public web roots)
//! and the host name.

use std::fs::File;
use std::future::Future;
use std::io::{self, BufReader};
use std::net::{IpAddr, Ipv4Addr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{verify_server_name, WebPkiServerVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::ParsedCertificate;
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use crate::{ConnectionConfig, SourceError, SslMode};

/// The client configuration for `cfg.sslmode`. Built explicitly on ring, so the process-wide
/// default provider (which another crate might set differently) does not matter.
pub(crate) fn client_config(cfg: &ConnectionConfig) -> Result<Arc<ClientConfig>, SourceError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| SourceError::Tls(format!("cannot set up tls: {e}")))?;
    let verifier: Arc<dyn ServerCertVerifier> = match cfg.sslmode {
        SslMode::VerifyFull => {
            let (roots, pinned) = trusted_roots(cfg)?;
            let chain = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| SourceError::Tls(format!("cannot set up certificate checks: {e}")))?;
            Arc::new(VerifyFull { chain, pinned })
        }
        SslMode::Disable | SslMode::Prefer | SslMode::Require => Arc::new(EncryptOnly {
            algorithms: provider.signature_verification_algorithms,
        }),
    };
    Ok(Arc::new(
        builder
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_no_client_auth(),
    ))
}

/// The trusted roots for `verify-full`: every certificate in `sslrootcert` (also returned as
/// a list, see [`VerifyFull`]), or the public web roots when none is configured.
fn trusted_roots(
    cfg: &ConnectionConfig,
) -> Result<(RootCertStore, Vec<CertificateDer<'static>>), SourceError> {
    let Some(path) = &cfg.sslrootcert else {
        let roots = RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        };
        return Ok((roots, Vec::new()));
    };
    let shown = path.display();
    let file = File::open(path)
        .map_err(|e| SourceError::Tls(format!("cannot read sslrootcert {shown}: {e}")))?;
    let certs = rustls_pemfile::certs(&mut BufReader::new(file))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| SourceError::Tls(format!("cannot read sslrootcert {shown}: {e}")))?;
    if certs.is_empty() {
        return Err(SourceError::Tls(format!(
            "sslrootcert {shown} holds no PEM certificate"
        )));
    }
    let mut store = RootCertStore::empty();
    for cert in &certs {
        store
            .add(cert.clone())
            .map_err(|e| SourceError::Tls(format!("sslrootcert {shown}: {e}")))?;
    }
    Ok((store, certs))
}

/// `verify-full`: the chain must lead to a trusted root and the certificate must name the
/// host. A self-signed server certificate listed in `sslrootcert` itself is trusted too, as
/// libpq trusts it: certificate libraries refuse such a certificate as its own leaf (it is
/// usually marked as a CA), yet it is the most common way to set up a private server. Such
/// a pinned certificate is matched byte for byte, and its name is still checked.
#[derive(Debug)]
struct VerifyFull {
    chain: Arc<WebPkiServerVerifier>,
    pinned: Vec<CertificateDer<'static>>,
}

impl ServerCertVerifier for VerifyFull {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self.chain.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        ) {
            Ok(verified) => Ok(verified),
            Err(error) => {
                if !self
                    .pinned
                    .iter()
                    .any(|c| c.as_ref() == end_entity.as_ref())
                {
                    return Err(error);
                }
                let parsed = ParsedCertificate::try_from(end_entity)?;
                verify_server_name(&parsed, server_name)?;
                Ok(ServerCertVerified::assertion())
            }
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.chain.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.chain.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.chain.supported_verify_schemes()
    }
}

/// The name to present (SNI) and, for `verify-full`, to check the certificate against.
/// Without verification any host spelling will do, so an unusual one falls back to an
/// address, which also means no SNI is sent.
fn server_name(host: &str, sslmode: SslMode) -> Result<ServerName<'static>, SourceError> {
    match ServerName::try_from(host.to_owned()) {
        Ok(name) => Ok(name),
        Err(_) if sslmode != SslMode::VerifyFull => Ok(ServerName::IpAddress(
            IpAddr::V4(Ipv4Addr::LOCALHOST).into(),
        )),
        Err(e) => Err(SourceError::Tls(format!(
            "host {host:?} cannot be checked against a certificate: {e}"
        ))),
    }
}

/// Run the TLS handshake over a stream whose server has accepted an SSLRequest.
pub(crate) async fn handshake<S>(
    cfg: &ConnectionConfig,
    config: Arc<ClientConfig>,
    stream: S,
) -> Result<TlsStream<S>, SourceError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let name = server_name(&cfg.host, cfg.sslmode)?;
    TlsConnector::from(config)
        .connect(name, stream)
        .await
        .map_err(|e| {
            // rustls reports certificate and protocol failures as InvalidData; anything else
            // is the connection itself failing, which a reconnect may cure.
            if e.kind() == io::ErrorKind::InvalidData {
                SourceError::Tls(format!("handshake with {} failed: {e}", cfg.host))
            } else {
                SourceError::Io(e)
            }
        })
}

/// Accepts any certificate chain but still checks the handshake signatures, so the peer at
/// least holds the key of the certificate it shows: encryption against passive listeners,
/// which is what `sslmode=require` promises.
#[derive(Debug)]
struct EncryptOnly {
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for EncryptOnly {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// Makes TLS connectors for tokio-postgres from the same settings as the replication client.
/// Channel binding is not offered: SCRAM runs without it (`n` flag), as a client that does not
/// support it, which every server accepts.
#[derive(Clone)]
pub struct MakeRustlsConnect {
    config: Arc<ClientConfig>,
    sslmode: SslMode,
}

impl MakeRustlsConnect {
    /// The connector for `cfg.sslmode`; fails if `sslrootcert` cannot be read.
    pub fn for_config(cfg: &ConnectionConfig) -> Result<Self, SourceError> {
        Ok(MakeRustlsConnect {
            config: client_config(cfg)?,
            sslmode: cfg.sslmode,
        })
    }
}

impl<S> tokio_postgres::tls::MakeTlsConnect<S> for MakeRustlsConnect
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = RustlsStream<S>;
    type TlsConnect = RustlsConnect;
    type Error = SourceError;

    fn make_tls_connect(&mut self, domain: &str) -> Result<RustlsConnect, SourceError> {
        Ok(RustlsConnect {
            connector: TlsConnector::from(self.config.clone()),
            name: server_name(domain, self.sslmode)?,
        })
    }
}

/// One pending TLS handshake for tokio-postgres.
pub struct RustlsConnect {
    connector: TlsConnector,
    name: ServerName<'static>,
}

/// The handshake future handed to tokio-postgres.
type HandshakeFuture<S> = Pin<Box<dyn Future<Output = io::Result<RustlsStream<S>>> + Send>>;

impl<S> tokio_postgres::tls::TlsConnect<S> for RustlsConnect
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = RustlsStream<S>;
    type Error = io::Error;
    type Future = HandshakeFuture<S>;

    fn connect(self, stream: S) -> HandshakeFuture<S> {
        Box::pin(async move {
            let tls = self.connector.connect(self.name, stream).await?;
            Ok(RustlsStream(Box::new(tls)))
        })
    }
}

/// A TLS stream for tokio-postgres.
pub struct RustlsStream<S>(Box<TlsStream<S>>);

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for RustlsStream<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.0).poll_read(cx, buf)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for RustlsStream<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut *self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.0).poll_shutdown(cx)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> tokio_postgres::tls::TlsStream for RustlsStream<S> {
    fn channel_binding(&self) -> tokio_postgres::tls::ChannelBinding {
        tokio_postgres::tls::ChannelBinding::none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(url: &str) -> ConnectionConfig {
        ConnectionConfig::parse(url).unwrap()
    }

    #[test]
    fn verify_full_without_sslrootcert_trusts_the_public_roots() {
        assert!(client_config(&cfg("postgres://u@db.example.com/d?sslmode=verify-full")).is_ok());
    }

    #[test]
    fn an_unreadable_or_empty_sslrootcert_is_a_tls_error_naming_the_file() {
        let missing = cfg("postgres://u@h/d?sslmode=verify-full&sslrootcert=/nonexistent/ca.pem");
        let err = client_config(&missing).unwrap_err().to_string();
        assert!(err.contains("/nonexistent/ca.pem"), "{err}");
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let url = format!(
            "postgres://u@h/d?sslmode=verify-full&sslrootcert={}",
            empty.display()
        );
        let err = client_config(&cfg(&url)).unwrap_err().to_string();
        assert!(err.contains("holds no PEM certificate"), "{err}");
    }

    #[test]
    fn only_verify_full_insists_on_a_checkable_host_name() {
        assert!(server_name("db_1!", SslMode::Require).is_ok());
        assert!(server_name("db_1!", SslMode::VerifyFull).is_err());
        assert!(matches!(
            server_name("10.0.0.1", SslMode::VerifyFull),
            Ok(ServerName::IpAddress(_))
        ));
        assert!(matches!(
            server_name("db.local", SslMode::VerifyFull),
            Ok(ServerName::DnsName(_))
        ));
    }
}
