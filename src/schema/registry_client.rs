//! The schema registry client: registers (or looks up) each schema once and caches its id so
//! the hot path never waits on HTTP; checks compatibility before a new version is used; retries
//! while the registry is unreachable. Speaks the Confluent REST API, so it works with the
//! embedded registry and with any Confluent-compatible one.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Deserialize;
use sluice_api::{Backoff, ErrorClass, Secret};

/// Confluent's content type for requests and responses.
const CONTENT_TYPE: &str = "application/vnd.schemaregistry.v1+json";

/// How subjects are named (Confluent's `*SubjectNameStrategy`).
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub enum SubjectNameStrategy {
    /// `<topic>-key` / `<topic>-value` (the default).
    #[default]
    TopicName,
    /// The record's full name.
    RecordName,
    /// `<topic>-<record full name>`.
    TopicRecordName,
}

impl SubjectNameStrategy {
    /// From the config spelling (`topic_name`, `record_name`, `topic_record_name`) or the
    /// Confluent class names' short forms.
    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "topic_name" | "TopicNameStrategy" => SubjectNameStrategy::TopicName,
            "record_name" | "RecordNameStrategy" => SubjectNameStrategy::RecordName,
            "topic_record_name" | "TopicRecordNameStrategy" => SubjectNameStrategy::TopicRecordName,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            SubjectNameStrategy::TopicName => "topic_name",
            SubjectNameStrategy::RecordName => "record_name",
            SubjectNameStrategy::TopicRecordName => "topic_record_name",
        }
    }

    /// The subject of a key (`is_key`) or value schema whose record is `record_name`.
    pub fn subject(self, topic: &str, record_name: &str, is_key: bool) -> String {
        match self {
            SubjectNameStrategy::TopicName => {
                format!("{topic}-{}", if is_key { "key" } else { "value" })
            }
            SubjectNameStrategy::RecordName => record_name.to_string(),
            SubjectNameStrategy::TopicRecordName => format!("{topic}-{record_name}"),
        }
    }
}

/// Where the registry is and how to reach it.
#[derive(Clone, Debug)]
pub struct RegistryClientConfig {
    /// Base URL, e.g. `http://127.0.0.1:8081`.
    pub url: String,
    pub username: Option<String>,
    pub password: Option<Secret>,
    /// PEM file of CAs to trust for `https` (besides the public web roots).
    pub ca_file: Option<PathBuf>,
    /// Register schemas that are missing (default). Off: a missing schema is an error.
    pub auto_register: bool,
    pub request_timeout: Duration,
}

/// What went wrong talking to the registry.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// Not reachable, timed out, or a 5xx: worth retrying.
    #[error("schema registry unavailable: {0}")]
    Unavailable(String),
    /// The registry refused the request (Confluent error code and message).
    #[error("schema registry refused {what}: {message} (error code {code})")]
    Refused {
        what: String,
        code: i64,
        message: String,
    },
    /// Auto-registration is off and the schema is not registered.
    #[error("schema for subject {subject:?} is not registered and auto-registration is off")]
    NotRegistered { subject: String },
    /// The client could not be set up (bad CA file, bad URL).
    #[error("schema registry client: {0}")]
    Setup(String),
}

impl RegistryError {
    pub fn class(&self) -> ErrorClass {
        match self {
            RegistryError::Unavailable(_) => ErrorClass::Transient,
            _ => ErrorClass::Fatal,
        }
    }
}

/// The registry's verdict on a new schema version.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Compatibility {
    pub is_compatible: bool,
    /// Why not, as the registry words it.
    pub messages: Vec<String>,
}

#[derive(Deserialize)]
struct IdResponse {
    id: u32,
}

#[derive(Deserialize)]
struct ConfigResponse {
    #[serde(rename = "compatibilityLevel")]
    compatibility_level: String,
}

#[derive(Deserialize)]
struct ErrorResponse {
    error_code: i64,
    message: String,
}

#[derive(Deserialize)]
struct CompatibilityResponse {
    is_compatible: bool,
    #[serde(default)]
    messages: Vec<String>,
}

/// A cached, retrying client of one registry.
#[derive(Clone)]
pub struct RegistryClient {
    http: reqwest::Client,
    base: String,
    config: Arc<RegistryClientConfig>,
    /// (subject, schema text) -> id: every schema is sent at most once per process.
    ids: Arc<Mutex<HashMap<(String, String), u32>>>,
}

impl RegistryClient {
    pub fn new(config: RegistryClientConfig) -> Result<Self, RegistryError> {
        let tls = tls_config(config.ca_file.as_deref())?;
        let http = reqwest::Client::builder()
            .use_preconfigured_tls(tls)
            .timeout(config.request_timeout)
            .build()
            .map_err(|e| RegistryError::Setup(e.to_string()))?;
        let base = config.url.trim_end_matches('/').to_string();
        Ok(RegistryClient {
            http,
            base,
            config: Arc::new(config),
            ids: Arc::default(),
        })
    }

    /// The id of `schema` under `subject`: from the cache, else registered (or looked up when
    /// auto-registration is off).
    pub async fn schema_id(&self, subject: &str, schema: &str) -> Result<u32, RegistryError> {
        let key = (subject.to_string(), schema.to_string());
        if let Some(id) = self.lock_ids().get(&key) {
            return Ok(*id);
        }
        let body = serde_json::json!({ "schema": schema });
        let subject_path = encode_path(subject);
        let id = if self.config.auto_register {
            let url = format!("{}/subjects/{subject_path}/versions", self.base);
            self.post::<IdResponse>(&url, &body, "registering a schema")
                .await?
                .map(|r| r.id)
        } else {
            let url = format!("{}/subjects/{subject_path}", self.base);
            self.post::<IdResponse>(&url, &body, "looking up a schema")
                .await?
                .map(|r| r.id)
        };
        let id = id.ok_or_else(|| RegistryError::NotRegistered {
            subject: subject.to_string(),
        })?;
        self.lock_ids().insert(key, id);
        Ok(id)
    }

    /// Whether `schema` may become the next version of `subject` under the subject's
    /// compatibility level. A subject without versions accepts anything.
    pub async fn check_compatibility(
        &self,
        subject: &str,
        schema: &str,
    ) -> Result<Compatibility, RegistryError> {
        let url = format!(
            "{}/compatibility/subjects/{}/versions/latest?verbose=true",
            self.base,
            encode_path(subject)
        );
        let body = serde_json::json!({ "schema": schema });
        let verdict = self
            .post::<CompatibilityResponse>(&url, &body, "checking compatibility")
            .await?;
        Ok(verdict.map_or(
            Compatibility {
                is_compatible: true,
                messages: Vec::new(),
            },
            |r| Compatibility {
                is_compatible: r.is_compatible,
                messages: r.messages,
            },
        ))
    }

    /// The versions registered under `subject`, oldest first (empty when it has none).
    pub async fn versions(&self, subject: &str) -> Result<Vec<u32>, RegistryError> {
        let url = format!("{}/subjects/{}/versions", self.base, encode_path(subject));
        let versions: Option<Vec<u32>> = self.send(self.http.get(&url), "listing versions").await?;
        Ok(versions.unwrap_or_default())
    }

    /// The compatibility level that applies to `subject` (its own, else the global one).
    pub async fn compatibility_level(&self, subject: &str) -> Result<String, RegistryError> {
        let url = format!(
            "{}/config/{}?defaultToGlobal=true",
            self.base,
            encode_path(subject)
        );
        let request = self.http.get(&url);
        let config: Option<ConfigResponse> = self
            .send(request, "reading the compatibility level")
            .await?;
        Ok(config.map_or_else(|| "BACKWARD".to_string(), |c| c.compatibility_level))
    }

    /// Set `subject`'s own compatibility level (`NONE`, `BACKWARD`, ...).
    pub async fn set_compatibility_level(
        &self,
        subject: &str,
        level: &str,
    ) -> Result<(), RegistryError> {
        let url = format!("{}/config/{}", self.base, encode_path(subject));
        let request = self
            .http
            .put(&url)
            .json(&serde_json::json!({ "compatibility": level }));
        self.send::<serde_json::Value>(request, "setting the compatibility level")
            .await?;
        Ok(())
    }

    /// Run `call` until it succeeds or fails for good, waiting with backoff while the registry
    /// is unavailable; gives up when `deadline` passes.
    pub async fn with_retry<T, F, Fut>(
        &self,
        deadline: Duration,
        mut call: F,
    ) -> Result<T, RegistryError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, RegistryError>>,
    {
        let give_up = tokio::time::Instant::now() + deadline;
        let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(10));
        loop {
            match call().await {
                Err(RegistryError::Unavailable(reason))
                    if tokio::time::Instant::now() < give_up =>
                {
                    let delay = backoff.next_delay();
                    tracing::warn!(%reason, retry_in_ms = delay.as_millis() as u64, "schema registry unavailable, retrying");
                    tokio::time::sleep(delay).await;
                }
                other => return other,
            }
        }
    }

    fn lock_ids(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), u32>> {
        // Inserts are single statements: a poisoned lock still holds a consistent map.
        self.ids.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// POST JSON (see [`RegistryClient::send`]).
    async fn post<T: serde::de::DeserializeOwned>(
        &self,
        url: &str,
        body: &serde_json::Value,
        what: &str,
    ) -> Result<Option<T>, RegistryError> {
        self.send(self.http.post(url).json(body), what).await
    }

    /// Send with the registry's content type and credentials; `Ok(None)` for "subject/schema
    /// not found" (40401, 40403), which callers interpret.
    async fn send<T: serde::de::DeserializeOwned>(
        &self,
        request: reqwest::RequestBuilder,
        what: &str,
    ) -> Result<Option<T>, RegistryError> {
        let mut request = request
            .header(reqwest::header::CONTENT_TYPE, CONTENT_TYPE)
            .header(reqwest::header::ACCEPT, CONTENT_TYPE);
        if let Some(user) = &self.config.username {
            let password = self
                .config
                .password
                .as_ref()
                .map(|p| p.expose().to_string());
            request = request.basic_auth(user, password);
        }
        let response = request
            .send()
            .await
            .map_err(|e| RegistryError::Unavailable(format!("{what}: {}", without_url(&e))))?;
        let status = response.status();
        let text = response
            .text()
            .await
            .map_err(|e| RegistryError::Unavailable(format!("{what}: {}", without_url(&e))))?;
        if status.is_success() {
            return serde_json::from_str(&text)
                .map(Some)
                .map_err(|e| RegistryError::Setup(format!("{what}: unexpected response: {e}")));
        }
        if status.is_server_error() || status == reqwest::StatusCode::TOO_MANY_REQUESTS {
            return Err(RegistryError::Unavailable(format!("{what}: http {status}")));
        }
        let error: ErrorResponse = serde_json::from_str(&text).unwrap_or(ErrorResponse {
            error_code: i64::from(status.as_u16()),
            message: text.chars().take(200).collect(),
        });
        if matches!(error.error_code, 40401 | 40403) {
            return Ok(None);
        }
        Err(RegistryError::Refused {
            what: what.to_string(),
            code: error.error_code,
            message: error.message,
        })
    }
}

/// A reqwest error's text without the request URL (which may carry credentials).
fn without_url(error: &reqwest::Error) -> String {
    let mut error = error.to_string();
    if let Some(start) = error.find(" for url (") {
        error.truncate(start);
    }
    error
}

/// Percent-encode a subject for a URL path segment.
fn encode_path(subject: &str) -> String {
    let mut out = String::with_capacity(subject.len());
    for b in subject.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// rustls on ring with the public web roots plus `ca_file`.
fn tls_config(ca_file: Option<&std::path::Path>) -> Result<rustls::ClientConfig, RegistryError> {
    let mut roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    if let Some(path) = ca_file {
        let file = std::fs::File::open(path)
            .map_err(|e| RegistryError::Setup(format!("cannot read {}: {e}", path.display())))?;
        for cert in rustls_pemfile::certs(&mut std::io::BufReader::new(file)) {
            let cert = cert.map_err(|e| {
                RegistryError::Setup(format!("cannot read {}: {e}", path.display()))
            })?;
            roots.add(cert).map_err(|e| {
                RegistryError::Setup(format!("bad certificate in {}: {e}", path.display()))
            })?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| RegistryError::Setup(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_follow_confluents_strategies() {
        let record = "inv.public.orders.Envelope";
        assert_eq!(
            SubjectNameStrategy::TopicName.subject("inv.public.orders", record, true),
            "inv.public.orders-key"
        );
        assert_eq!(
            SubjectNameStrategy::TopicName.subject("inv.public.orders", record, false),
            "inv.public.orders-value"
        );
        assert_eq!(
            SubjectNameStrategy::RecordName.subject("t", record, false),
            record
        );
        assert_eq!(
            SubjectNameStrategy::TopicRecordName.subject("t", record, false),
            format!("t-{record}")
        );
        assert_eq!(
            SubjectNameStrategy::parse("RecordNameStrategy"),
            Some(SubjectNameStrategy::RecordName)
        );
        assert_eq!(SubjectNameStrategy::parse("nope"), None);
    }

    #[test]
    fn subjects_are_percent_encoded_in_paths() {
        assert_eq!(encode_path("a.b-c_d"), "a.b-c_d");
        assert_eq!(encode_path("a/b c"), "a%2Fb%20c");
    }

    #[tokio::test]
    async fn an_unreachable_registry_is_a_transient_error_without_credentials() {
        // Bind then drop a listener: nothing accepts on that port.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let client = RegistryClient::new(RegistryClientConfig {
            url: format!("http://127.0.0.1:{port}"),
            username: Some("user".into()),
            password: Some(Secret::new("hunter2")),
            ca_file: None,
            auto_register: true,
            request_timeout: Duration::from_secs(2),
        })
        .unwrap();
        let err = client.schema_id("s-value", "\"string\"").await.unwrap_err();
        assert_eq!(err.class(), ErrorClass::Transient, "{err}");
        assert!(!err.to_string().contains("hunter2"));
    }
}
