//! A throwaway S3-compatible server for the lake sink's tests and the persistent Kafka broker:
//! moto's server mode (`pip install "moto[server]"`) on a free loopback port, any key and
//! secret, region us-east-1, path-style addressing; ready once it answers over HTTP, killed on
//! drop.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::support::{free_port, wait_until};

/// The credentials the tests use (moto accepts any).
pub const ACCESS_KEY_ID: &str = "sluice-test";
pub const SECRET_ACCESS_KEY: &str = "sluice-test-secret";
pub const REGION: &str = "us-east-1";

/// A running moto server.
pub struct ThrowawayS3 {
    child: Child,
    port: u16,
    log: tempfile::NamedTempFile,
}

impl ThrowawayS3 {
    /// Start a server on a free port and wait until it answers.
    pub async fn start() -> ThrowawayS3 {
        // reqwest is built without a default TLS provider; plain HTTP still builds one.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let port = free_port();
        let log = tempfile::NamedTempFile::new().expect("moto log");
        let out = log.reopen().expect("moto log");
        let child = Command::new("python3")
            .args([
                "-m",
                "moto.server",
                "-H",
                "127.0.0.1",
                "-p",
                &port.to_string(),
            ])
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("moto log"))
            .stderr(out)
            .spawn()
            .expect("start moto (python3 -m pip install \"moto[server]\")");
        let server = ThrowawayS3 { child, port, log };
        let url = server.endpoint();
        let http = reqwest::Client::new();
        wait_until("moto answers", Duration::from_secs(60), || {
            let (http, url) = (http.clone(), url.clone());
            async move { http.get(&url).send().await.is_ok() }
        })
        .await;
        server
    }

    /// The port the server listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:PORT`, for the sink's `s3.endpoint`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Create `bucket` (moto's server mode takes unsigned requests).
    pub async fn create_bucket(&self, bucket: &str) {
        let response = reqwest::Client::new()
            .put(format!("{}/{bucket}", self.endpoint()))
            .send()
            .await
            .expect("create bucket");
        assert!(
            response.status().is_success(),
            "create bucket {bucket}: {}",
            response.status()
        );
    }

    /// The environment Python readers need to reach the server.
    pub fn reader_env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT_URL", self.endpoint()),
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY_ID.into()),
            ("AWS_SECRET_ACCESS_KEY", SECRET_ACCESS_KEY.into()),
            ("AWS_REGION", REGION.into()),
        ]
    }

    /// What the server printed so far, for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log.path()).unwrap_or_default()
    }
}

impl Drop for ThrowawayS3 {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
