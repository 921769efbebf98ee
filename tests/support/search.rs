//! A throwaway search server for the search sink's tests: osmem-server (a third-party in-memory
//! server speaking the OpenSearch REST API; `pip install osmem-server` ships its static binary)
//! on a free loopback port, ready once it answers `GET /`, killed on drop. Also the few reads
//! the tests make to compare an index with a table.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value as Json;

use crate::support::{free_port, wait_until};

/// A running osmem-server.
pub struct ThrowawaySearch {
    child: Child,
    port: u16,
    log: tempfile::NamedTempFile,
    http: reqwest::Client,
}

/// Where pip put the osmem-server binary.
fn osmem_binary() -> PathBuf {
    let output = Command::new("python3")
        .args([
            "-c",
            "import osmem_server; print(osmem_server.resolve_binary())",
        ])
        .output()
        .expect("run python3");
    assert!(
        output.status.success(),
        "osmem-server is missing: python3 -m pip install osmem-server ({})",
        String::from_utf8_lossy(&output.stderr)
    );
    PathBuf::from(String::from_utf8_lossy(&output.stdout).trim())
}

/// A plain HTTP client; reqwest is built without a default TLS crypto provider, so one is given.
fn http_client() -> reqwest::Client {
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("tls versions")
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth();
    reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .build()
        .expect("http client")
}

impl ThrowawaySearch {
    /// Start a server on a free port and wait until it answers.
    pub async fn start() -> ThrowawaySearch {
        let port = free_port();
        let log = tempfile::NamedTempFile::new().expect("search server log file");
        let out = log.reopen().expect("search server log");
        let child = Command::new(osmem_binary())
            .args(["-addr", &format!("127.0.0.1:{port}"), "-no-stdin-watch"])
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("search server log"))
            .stderr(out)
            .spawn()
            .expect("start osmem-server");
        let server = ThrowawaySearch {
            child,
            port,
            log,
            http: http_client(),
        };
        let url = server.url();
        let http = server.http.clone();
        wait_until("the search server answers", Duration::from_secs(30), || {
            let (http, url) = (http.clone(), url.clone());
            async move {
                http.get(&url)
                    .send()
                    .await
                    .is_ok_and(|r| r.status().is_success())
            }
        })
        .await;
        server
    }

    /// The port the server listens on (plain HTTP).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:PORT`, for the sink's `url`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Freeze the server (SIGSTOP), as a long pause of a real one does: its connections stay
    /// open, and requests on them go unanswered until [`thaw`](Self::thaw).
    pub fn freeze(&self) {
        self.signal(libc::SIGSTOP);
    }

    /// Let a frozen server go on (SIGCONT): it then answers what it was sent meanwhile.
    pub fn thaw(&self) {
        self.signal(libc::SIGCONT);
    }

    fn signal(&self, signal: libc::c_int) {
        let pid = libc::pid_t::try_from(self.child.id()).expect("pids fit in pid_t");
        // SAFETY: `pid` is this test's own child, not yet reaped (it is killed on drop).
        let sent = unsafe { libc::kill(pid, signal) };
        assert_eq!(sent, 0, "signal {signal} to the search server");
    }

    /// What the server printed so far, for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log.path()).unwrap_or_default()
    }

    async fn get(&self, path: &str) -> (u16, Json) {
        let (status, text) = self.get_text(path).await;
        (status, serde_json::from_str(&text).unwrap_or(Json::Null))
    }

    /// The status and body of a GET, the body as the server sent it.
    async fn get_text(&self, path: &str) -> (u16, String) {
        let response = self
            .http
            .get(format!("{}/{path}", self.url()))
            .send()
            .await
            .expect("search server request");
        let status = response.status().as_u16();
        (status, response.text().await.unwrap_or_default())
    }

    /// Make everything written so far searchable.
    pub async fn refresh(&self, index: &str) {
        self.http
            .post(format!("{}/{index}/_refresh", self.url()))
            .send()
            .await
            .expect("refresh");
    }

    /// The number of documents in `index` after a refresh; None when it does not exist.
    pub async fn count(&self, index: &str) -> Option<u64> {
        self.refresh(index).await;
        let (status, json) = self.get(&format!("{index}/_count")).await;
        (status == 200).then(|| json["count"].as_u64().unwrap_or(0))
    }

    /// Every document of `index` as `(_id, _source, _version)`, sorted by id. Past 10,000
    /// documents the index needs a larger `max_result_window` setting.
    pub async fn documents(&self, index: &str) -> Vec<(String, Json, u64)> {
        let text = self.search_text(index).await;
        let json: Json = serde_json::from_str(&text).expect("search response is JSON");
        let mut docs: Vec<(String, Json, u64)> = json["hits"]["hits"]
            .as_array()
            .expect("hits")
            .iter()
            .map(|hit| {
                (
                    hit["_id"].as_str().expect("_id").to_owned(),
                    hit["_source"].clone(),
                    hit["_version"].as_u64().unwrap_or(0),
                )
            })
            .collect();
        docs.sort_by(|a, b| a.0.cmp(&b.0));
        docs
    }

    /// The `_search` response (with versions) for every document of `index` as the server sent
    /// it, for comparisons that need numbers exactly as written (parsing into [`Json`] may move
    /// a double by its last digit). Past 10,000 documents the index needs a larger
    /// `max_result_window` setting.
    pub async fn search_text(&self, index: &str) -> String {
        let size = self.count(index).await.unwrap_or(0).max(1);
        let (status, text) = self
            .get_text(&format!("{index}/_search?size={size}&version=true"))
            .await;
        assert_eq!(status, 200, "search {index}: {text}");
        text
    }

    /// One document by id: `(_source, _version)`, None when absent.
    pub async fn document(&self, index: &str, id: &str) -> Option<(Json, u64)> {
        let (status, json) = self.get(&format!("{index}/_doc/{id}")).await;
        (status == 200 && json["found"] == true).then(|| {
            (
                json["_source"].clone(),
                json["_version"].as_u64().unwrap_or(0),
            )
        })
    }

    /// The mapping of `index`.
    pub async fn mapping(&self, index: &str) -> Json {
        let (status, json) = self.get(&format!("{index}/_mapping")).await;
        assert_eq!(status, 200, "mapping of {index}: {json}");
        json[index]["mappings"].clone()
    }
}

impl Drop for ThrowawaySearch {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
