//! A throwaway ClickHouse server for the clickhouse sink's tests: Debian's `clickhouse-server`
//! (18.16) run from a private copy of its config with data and logs in a temporary directory
//! and free loopback ports, a user `sluice` with password `secret` besides the password-less
//! `default`, ready once `/ping` answers, killed on drop.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::support::{free_port, wait_until};

/// The password-protected user the tests authenticate as.
pub const CLICKHOUSE_USER: &str = "sluice";
pub const CLICKHOUSE_PASSWORD: &str = "secret";

/// A running ClickHouse server.
pub struct ThrowawayClickHouse {
    child: Option<Child>,
    dir: tempfile::TempDir,
    http_port: u16,
    http: reqwest::Client,
}

const CONFIG_DIR: &str = "/etc/clickhouse-server";

impl ThrowawayClickHouse {
    /// Start a server on free ports and wait until it answers over HTTP.
    pub async fn start() -> ThrowawayClickHouse {
        assert!(
            std::path::Path::new(&format!("{CONFIG_DIR}/config.xml")).exists(),
            "clickhouse-server is missing: apt-get install -y clickhouse-server clickhouse-client"
        );
        let dir = tempfile::Builder::new()
            .prefix("sluice-clickhouse-")
            .tempdir()
            .expect("clickhouse dir");
        let http_port = free_port();
        let root = dir.path().display().to_string();
        let config = std::fs::read_to_string(format!("{CONFIG_DIR}/config.xml"))
            .expect("read clickhouse config.xml")
            .replace("/var/lib/clickhouse/", &format!("{root}/data/"))
            .replace("/var/log/clickhouse-server/", &format!("{root}/log/"))
            .replace(
                "<http_port>8123</http_port>",
                &format!("<http_port>{http_port}</http_port><listen_host>127.0.0.1</listen_host>"),
            )
            .replace(
                "<tcp_port>9000</tcp_port>",
                &format!("<tcp_port>{}</tcp_port>", free_port()),
            )
            .replace(
                "<interserver_http_port>9009</interserver_http_port>",
                &format!(
                    "<interserver_http_port>{}</interserver_http_port>",
                    free_port()
                ),
            )
            .replace(
                "<users_config>users.xml</users_config>",
                &format!("<users_config>{root}/users.xml</users_config>"),
            );
        let users = std::fs::read_to_string(format!("{CONFIG_DIR}/users.xml"))
            .expect("read clickhouse users.xml")
            .replacen(
                "<users>",
                &format!(
                    "<users><{CLICKHOUSE_USER}><password>{CLICKHOUSE_PASSWORD}</password>\
                     <networks><ip>127.0.0.1</ip></networks><profile>default</profile>\
                     <quota>default</quota></{CLICKHOUSE_USER}>"
                ),
                1,
            );
        std::fs::create_dir_all(dir.path().join("log")).expect("log dir");
        std::fs::write(dir.path().join("config.xml"), config).expect("write config.xml");
        std::fs::write(dir.path().join("users.xml"), users).expect("write users.xml");
        // reqwest is built without a default TLS provider; plain HTTP still asks for one.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut server = ThrowawayClickHouse {
            child: None,
            dir,
            http_port,
            http: reqwest::Client::new(),
        };
        server.spawn().await;
        server
    }

    async fn spawn(&mut self) {
        let log = std::fs::File::create(self.dir.path().join("stdout.log")).expect("log");
        let child = Command::new("clickhouse-server")
            .arg(format!("--config-file={}", self.config_path().display()))
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start clickhouse-server");
        self.child = Some(child);
        let url = format!("{}/ping", self.url());
        let http = self.http.clone();
        wait_until("clickhouse answers /ping", Duration::from_secs(60), || {
            let (http, url) = (http.clone(), url.clone());
            async move {
                match http.get(&url).send().await {
                    Ok(r) => r.status().is_success(),
                    Err(_) => false,
                }
            }
        })
        .await;
    }

    fn config_path(&self) -> PathBuf {
        self.dir.path().join("config.xml")
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.http_port)
    }

    /// Run `sql` as `default`; the answer's text, or the server's error text.
    pub async fn query(&self, sql: &str) -> Result<String, String> {
        let response = self
            .http
            .post(format!("{}/", self.url()))
            .body(sql.to_owned())
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let ok = response.status().is_success();
        let text = response.text().await.map_err(|e| e.to_string())?;
        if ok {
            Ok(text)
        } else {
            Err(text)
        }
    }

    /// Rows of `sql` (which must end in `FORMAT JSONEachRow`) as JSON objects.
    pub async fn rows(&self, sql: &str) -> Result<Vec<serde_json::Value>, String> {
        let text = self.query(sql).await?;
        text.lines()
            .map(|line| serde_json::from_str(line).map_err(|e| e.to_string()))
            .collect()
    }

    /// What the server logged, for failure messages.
    pub fn log(&self) -> String {
        let path = self.dir.path().join("log/clickhouse-server.err.log");
        std::fs::read_to_string(path).unwrap_or_default()
    }

    /// Kill the server (SIGKILL) and reap it: an outage.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Start it again on the same ports and data after [`stop`](Self::stop).
    pub async fn start_again(&mut self) {
        self.stop();
        self.spawn().await;
    }
}

impl Drop for ThrowawayClickHouse {
    fn drop(&mut self) {
        self.stop();
    }
}
