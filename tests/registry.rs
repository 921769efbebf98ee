//! The embedded schema registry (`sluice registry serve`) as its own process: Confluent's
//! Python client driving the API unchanged, the wire format round trip, Confluent's error
//! bodies and content type, and schema ids surviving a crash with file and PostgreSQL storage.

use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::{self, SluiceProcess, SUPERUSER};

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/registry_api.py");
const CONTENT_TYPE: &str = "application/vnd.schemaregistry.v1+json";
const STARTUP: Duration = Duration::from_secs(30);

const USER_V1: &str = r#"{"type":"record","name":"User","fields":[{"name":"id","type":"long"}]}"#;
const USER_V2: &str = r#"{"type":"record","name":"User","fields":[{"name":"id","type":"long"},{"name":"email","type":["null","string"],"default":null}]}"#;
const USER_REQUIRED: &str = r#"{"type":"record","name":"User","fields":[{"name":"id","type":"long"},{"name":"email","type":"string"}]}"#;

/// `sluice registry serve` on a free port, ready for requests.
pub(crate) struct Registry {
    pub(crate) process: SluiceProcess,
    port: u16,
}

impl Registry {
    async fn start(storage: Option<&str>) -> Registry {
        Registry::start_on(support::free_port(), storage).await
    }

    /// Serve on `port` (again, after a stop: clients keep their URL).
    pub(crate) async fn start_on(port: u16, storage: Option<&str>) -> Registry {
        let listen = format!("127.0.0.1:{port}");
        let mut args = vec!["registry", "serve", "--listen", listen.as_str()];
        if let Some(storage) = storage {
            args.extend(["--storage", storage]);
        }
        let process = SluiceProcess::spawn(&args, &[("RUST_LOG", "info")]);
        // The port is bound only once the storage is loaded: accepting means ready.
        support::wait_until("the registry accepts connections", STARTUP, || async {
            TcpStream::connect(("127.0.0.1", port)).await.is_ok()
        })
        .await;
        Registry { process, port }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> Reply {
        http(
            self.port,
            method,
            path,
            body.map(|b| b.to_string()),
            CONTENT_TYPE,
        )
        .await
    }

    async fn register(&self, subject: &str, schema: &str) -> u64 {
        let reply = self
            .call(
                "POST",
                &format!("/subjects/{subject}/versions"),
                Some(json!({ "schema": schema })),
            )
            .await;
        assert_eq!(reply.status, 200, "register: {reply:?}");
        reply.body["id"].as_u64().expect("an id")
    }
}

#[derive(Debug)]
struct Reply {
    status: u16,
    content_type: String,
    body: Value,
}

/// One HTTP/1.1 request on a fresh connection (`Connection: close`), the whole response read.
async fn http(
    port: u16,
    method: &str,
    path: &str,
    body: Option<String>,
    content_type: &str,
) -> Reply {
    let mut stream = TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect to the registry");
    let body = body.unwrap_or_default();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\
         Content-Type: {content_type}\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.expect("send");
    let mut raw = Vec::new();
    stream
        .read_to_end(&mut raw)
        .await
        .expect("read the response");
    let text = String::from_utf8(raw).expect("utf-8 response");
    let (head, payload) = text.split_once("\r\n\r\n").expect("a complete response");
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("a status code");
    let content_type = head
        .lines()
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("content-type")
                .then(|| value.trim().to_owned())
        })
        .unwrap_or_default();
    let body = if payload.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(payload).unwrap_or_else(|e| panic!("json body {payload:?}: {e}"))
    };
    Reply {
        status,
        content_type,
        body,
    }
}

/// Fail (never skip) when the third-party clients are missing, saying how to get them.
async fn require_python_clients() {
    let probe = tokio::process::Command::new("python3")
        .args([
            "-c",
            "import confluent_kafka.schema_registry.avro, fastavro",
        ])
        .output()
        .await;
    match probe {
        Ok(output) if output.status.success() => {}
        Ok(output) => panic!(
            "python3 lacks Confluent's client: run `python3 -m pip install \
             'confluent-kafka[avro,schemaregistry]' fastavro` (.ci/run installs them): {}",
            String::from_utf8_lossy(&output.stderr)
        ),
        Err(e) => panic!("python3 is required for the registry tests (.ci/run installs it): {e}"),
    }
}

#[tokio::test]
async fn confluents_python_client_and_serializers_work_against_the_registry_unchanged() {
    require_python_clients().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let storage = dir.path().join("registry.json");
    let registry = Registry::start(Some(storage.to_str().expect("utf-8 path"))).await;

    let output = tokio::time::timeout(
        Duration::from_secs(120),
        tokio::process::Command::new("python3")
            .args([SCRIPT, &registry.url()])
            .output(),
    )
    .await
    .expect("the python checks finish within two minutes")
    .expect("run python3");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.contains("registry api ok"),
        "python checks failed ({}):\n{stdout}\n{}\nregistry log:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr),
        registry.process.stderr()
    );
}

#[tokio::test]
async fn responses_use_confluents_content_type_error_bodies_and_verbose_messages() {
    let registry = Registry::start(None).await;
    let root = registry.call("GET", "/", None).await;
    assert_eq!((root.status, root.body), (200, json!({})));
    assert_eq!(root.content_type, CONTENT_TYPE);

    let id = registry.register("users-value", USER_V1).await;
    let by_id = registry
        .call("GET", &format!("/schemas/ids/{id}"), None)
        .await;
    // schemaType is left out for AVRO, as Confluent does.
    assert_eq!(by_id.body, json!({ "schema": USER_V1 }));
    let raw = registry
        .call("GET", "/subjects/users-value/versions/latest/schema", None)
        .await;
    assert_eq!(raw.body["name"], "User");

    let verbose = registry
        .call(
            "POST",
            "/compatibility/subjects/users-value/versions/latest?verbose=true",
            Some(json!({ "schema": USER_REQUIRED })),
        )
        .await;
    assert_eq!(verbose.body["is_compatible"], false, "{verbose:?}");
    let message = verbose.body["messages"][0].as_str().expect("a message");
    assert!(message.contains("email"), "{message}");
    let compatible = registry
        .call(
            "POST",
            "/compatibility/subjects/users-value/versions/1",
            Some(json!({ "schema": USER_V2 })),
        )
        .await;
    assert_eq!(compatible.body, json!({ "is_compatible": true }));

    let missing = registry
        .call("GET", "/subjects/nobody/versions", None)
        .await;
    assert_eq!(missing.status, 404);
    assert_eq!(missing.body["error_code"], 40401);
    assert_eq!(missing.content_type, CONTENT_TYPE);
    let bad_version = registry
        .call("GET", "/subjects/users-value/versions/zero", None)
        .await;
    assert_eq!(
        (bad_version.status, bad_version.body["error_code"].clone()),
        (422, json!(42202))
    );
    let unconfigured = registry.call("GET", "/config/users-value", None).await;
    assert_eq!(unconfigured.body["error_code"], 40408);
    let defaulted = registry
        .call("GET", "/config/users-value?defaultToGlobal=true", None)
        .await;
    assert_eq!(defaulted.body, json!({ "compatibilityLevel": "BACKWARD" }));

    for accepted in ["application/json", "application/vnd.schemaregistry+json"] {
        let body = json!({ "schema": USER_V1 }).to_string();
        let reply = http(
            registry.port,
            "POST",
            "/subjects/users-value",
            Some(body),
            accepted,
        )
        .await;
        assert_eq!(reply.body["version"], 1, "{accepted}: {reply:?}");
    }
    let refused = http(
        registry.port,
        "POST",
        "/subjects/users-value/versions",
        Some("schema=x".to_owned()),
        "application/x-www-form-urlencoded",
    )
    .await;
    assert_eq!(refused.status, 415, "{refused:?}");

    let mut process = registry.process;
    process.stop_cleanly(Duration::from_secs(10)).await;
}

#[tokio::test]
async fn schema_ids_survive_a_crash_and_restart_with_file_storage() {
    let dir = tempfile::tempdir().expect("tempdir");
    let storage = dir.path().join("registry.json");
    let storage = storage.to_str().expect("utf-8 path");

    let registry = Registry::start(Some(storage)).await;
    let first = registry.register("users-value", USER_V1).await;
    let second = registry.register("users-value", USER_V2).await;
    let reply = registry
        .call(
            "PUT",
            "/config/users-value",
            Some(json!({"compatibility": "FULL"})),
        )
        .await;
    assert_eq!(reply.body, json!({"compatibility": "FULL"}));
    // SIGKILL: nothing is flushed on the way out, so only what was durable when answered counts.
    let mut process = registry.process;
    process.kill();
    process.wait_exit(Duration::from_secs(10)).await;

    let registry = Registry::start(Some(storage)).await;
    assert_eq!(registry.register("users-value", USER_V1).await, first);
    let latest = registry
        .call("GET", "/subjects/users-value/versions/latest", None)
        .await;
    assert_eq!(
        (latest.body["version"].clone(), latest.body["id"].as_u64()),
        (json!(2), Some(second))
    );
    let level = registry.call("GET", "/config/users-value", None).await;
    assert_eq!(level.body, json!({"compatibilityLevel": "FULL"}));
    let third = registry.register("other-value", r#""string""#).await;
    assert!(
        third > second,
        "ids keep increasing after a restart: {third} > {second}"
    );
}

#[tokio::test]
async fn schema_ids_survive_a_restart_with_postgres_storage() {
    let pg = support::start_postgres().await;
    pg.create_database("registry")
        .await
        .expect("create database");
    let url = pg.url(SUPERUSER, "registry");

    let registry = Registry::start(Some(&url)).await;
    let first = registry.register("users-value", USER_V1).await;
    let second = registry.register("users-value", USER_V2).await;
    let deleted = registry
        .call("DELETE", "/subjects/users-value/versions/1", None)
        .await;
    assert_eq!(deleted.body, json!(1));
    let mut process = registry.process;
    process.kill();
    process.wait_exit(Duration::from_secs(10)).await;

    // The state is in plain tables an operator can read.
    let client = pg.client("registry").await.expect("connect");
    let rows = client
        .query(
            "SELECT version, schema_id, deleted FROM sluice_registry_versions \
             WHERE subject = 'users-value' ORDER BY version",
            &[],
        )
        .await
        .expect("query versions");
    let versions: Vec<(i64, i64, bool)> = rows
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    assert_eq!(
        versions,
        [(1, first as i64, true), (2, second as i64, false)]
    );

    let registry = Registry::start(Some(&url)).await;
    let live = registry
        .call("GET", "/subjects/users-value/versions", None)
        .await;
    assert_eq!(live.body, json!([2]));
    let all = registry
        .call("GET", "/subjects/users-value/versions?deleted=true", None)
        .await;
    assert_eq!(all.body, json!([1, 2]));
    assert_eq!(registry.register("copy-value", USER_V2).await, second);
    let third = registry.register("other-value", r#""string""#).await;
    assert!(third > second, "ids keep increasing after a restart");
}
