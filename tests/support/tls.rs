//! TLS material and a TLS front for the tests that check sinks over TLS.
//!
//! [`TestCertificates`] makes, with the `openssl` CLI, a self-signed CA, a server certificate for
//! `127.0.0.1` signed by it, and an unrelated second CA (the wrong one to trust);
//! [`make_self_signed`] makes one self-signed certificate (the PostgreSQL TLS tests use it).
//!
//! [`TlsFront`] is a test fixture that adds TLS in front of a real server that speaks only
//! plain TCP (osmem-server; tansu, whose own TLS cannot be switched on from its command line):
//! it accepts TLS on a free loopback port with the test certificate, and pipes the decrypted
//! bytes to the real server's port and back. Stops on drop.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

/// A CA, a certificate for `127.0.0.1` it signed, and a CA that signed nothing used here; PEM
/// files in a temporary directory deleted on drop.
pub struct TestCertificates {
    dir: tempfile::TempDir,
}

impl TestCertificates {
    /// Make the CAs and the server certificate (RSA 2048, valid one day).
    pub fn new() -> TestCertificates {
        let dir = tempfile::Builder::new()
            .prefix("sluice-certs-")
            .tempdir()
            .expect("certificate dir");
        let certs = TestCertificates { dir };
        certs.make_ca("ca", "sluice test CA");
        certs.make_ca("other-ca", "unrelated test CA");
        let request = certs.path("server.csr");
        openssl(&[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            path_arg(&certs.server_key()),
            "-out",
            path_arg(&request),
        ]);
        openssl(&[
            "x509",
            "-req",
            "-in",
            path_arg(&request),
            "-CA",
            path_arg(&certs.ca()),
            "-CAkey",
            path_arg(&certs.path("ca.key")),
            "-CAcreateserial",
            "-days",
            "1",
            "-copy_extensions",
            "copy",
            "-out",
            path_arg(&certs.server_certificate()),
        ]);
        certs
    }

    /// A self-signed CA certificate `NAME.crt` with its key `NAME.key`.
    fn make_ca(&self, name: &str, common_name: &str) {
        make_self_signed(
            &self.path(&format!("{name}.key")),
            &self.path(&format!("{name}.crt")),
            &format!("/CN={common_name}"),
            &[],
        );
    }

    fn path(&self, file: &str) -> PathBuf {
        self.dir.path().join(file)
    }

    /// The CA that signed the server certificate: what a client must trust.
    pub fn ca(&self) -> PathBuf {
        self.path("ca.crt")
    }

    /// A CA that did not sign the server certificate.
    pub fn other_ca(&self) -> PathBuf {
        self.path("other-ca.crt")
    }

    /// The server certificate for `127.0.0.1` (IP subject alternative name).
    pub fn server_certificate(&self) -> PathBuf {
        self.path("server.crt")
    }

    /// The server certificate's private key, unencrypted.
    pub fn server_key(&self) -> PathBuf {
        self.path("server.key")
    }
}

fn path_arg(path: &Path) -> &str {
    path.to_str().expect("temporary paths are UTF-8")
}

/// A self-signed certificate `certificate` for `subject` (e.g. `/CN=127.0.0.1`) with a new
/// unencrypted key `key` (RSA 2048, valid one day); `extra` adds `openssl req` options such as
/// `-addext subjectAltName=IP:127.0.0.1`.
pub fn make_self_signed(key: &Path, certificate: &Path, subject: &str, extra: &[&str]) {
    let mut args = vec![
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", subject,
    ];
    args.extend_from_slice(extra);
    args.extend(["-keyout", path_arg(key), "-out", path_arg(certificate)]);
    openssl(&args);
}

/// Run `openssl ARGS`; panic with its output when it fails.
fn openssl(args: &[&str]) {
    let output = Command::new("openssl")
        .args(args)
        .output()
        .expect("run openssl");
    assert!(
        output.status.success(),
        "openssl {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A TLS-terminating front for a plain-TCP server on `127.0.0.1:upstream`.
pub struct TlsFront {
    port: u16,
    task: JoinHandle<()>,
}

impl TlsFront {
    /// Listen on a free loopback port with `certificates`' server certificate. The upstream
    /// server need not run yet: each accepted connection dials it afresh.
    pub async fn start(certificates: &TestCertificates, upstream: u16) -> TlsFront {
        let acceptor = TlsAcceptor::from(Arc::new(server_config(certificates)));
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the TLS front");
        let port = listener.local_addr().expect("TLS front address").port();
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                tokio::spawn(relay(acceptor.clone(), client, upstream));
            }
        });
        TlsFront { port, task }
    }

    /// The port clients connect to with TLS.
    pub fn port(&self) -> u16 {
        self.port
    }
}

impl Drop for TlsFront {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// One connection: the TLS handshake (a client that does not trust the certificate ends it
/// here), then bytes both ways until either side closes.
async fn relay(acceptor: TlsAcceptor, client: TcpStream, upstream: u16) {
    let Ok(mut client) = acceptor.accept(client).await else {
        return;
    };
    let Ok(mut server) = TcpStream::connect(("127.0.0.1", upstream)).await else {
        return;
    };
    let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
}

/// rustls (ring) serving the test certificate, no client certificates.
fn server_config(certificates: &TestCertificates) -> rustls::ServerConfig {
    let read = |path: PathBuf| {
        std::io::BufReader::new(
            std::fs::File::open(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())),
        )
    };
    let chain = rustls_pemfile::certs(&mut read(certificates.server_certificate()))
        .collect::<Result<Vec<_>, _>>()
        .expect("server certificate PEM");
    let key = rustls_pemfile::private_key(&mut read(certificates.server_key()))
        .expect("server key PEM")
        .expect("a private key in the key file");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("tls versions")
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .expect("the server certificate matches its key")
}
