//! Support for the integration tests: throwaway servers, condition polling (the only way a test
//! waits), replication slot probes, temporary config files, the real `sluice` binary as a child
//! process, and its HTTP endpoint ([`http`]).

// Each test module uses a different subset of these helpers and re-exports.
#![allow(dead_code, unused_imports)]

#[cfg(feature = "sink-clickhouse")]
pub mod clickhouse;
pub mod http;
#[cfg(feature = "sink-kafka")]
pub mod kafka;
pub mod proxy;
pub mod s3;
#[cfg(feature = "sink-search")]
pub mod search;
pub mod tls;
pub mod workload;

use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant};

use sluice_api::Lsn;
use tokio_postgres::Client;

pub use sluice::embedded::{
    PasswordEncryption, ThrowawayError, ThrowawayOptions, ThrowawayPostgres, ThrowawayUser,
    DEFAULT_DATABASE, SUPERUSER,
};

/// How often [`wait_until`] re-checks its condition: short enough that tests finish soon after
/// the condition holds, long enough not to load two-core CI machines.
const POLL_INTERVAL: Duration = Duration::from_millis(20);

/// A port nobody listens on right now: bind port 0, note what the kernel chose, release it.
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("local addr").port()
}

/// Start a throwaway cluster with the standard settings.
pub async fn start_postgres() -> ThrowawayPostgres {
    ThrowawayPostgres::start(ThrowawayOptions::default())
        .await
        .expect("start a throwaway postgres")
}

/// Start a throwaway cluster and run `sql` (the test's tables) in it.
pub async fn start_postgres_with(sql: &str) -> ThrowawayPostgres {
    let pg = start_postgres().await;
    pg.execute(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    pg
}

/// Start a throwaway cluster whose server streams a transaction in chunks once it holds more
/// than `work_mem` of decoding memory (`logical_decoding_work_mem`), and run `sql` in it.
pub async fn start_streaming_postgres(work_mem: &str, sql: &str) -> ThrowawayPostgres {
    let options = ThrowawayOptions {
        extra_conf: vec![format!("logical_decoding_work_mem = '{work_mem}'")],
        ..ThrowawayOptions::default()
    };
    let pg = ThrowawayPostgres::start(options)
        .await
        .expect("start a throwaway postgres");
    pg.execute(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    pg
}

/// Run `sql`, then wait until `slot` confirmed everything committed so far; returns that
/// position. Panics naming `what` after `timeout`.
pub async fn execute_and_wait_confirmed(
    client: &Client,
    slot: &str,
    sql: &str,
    what: &str,
    timeout: Duration,
) -> Lsn {
    client
        .batch_execute(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    let end = current_wal_lsn(client).await;
    wait_slot_confirmed(client, slot, end, what, timeout).await;
    end
}

/// Poll `condition` every ~20 ms until it returns true; panic naming `what` after `timeout`.
pub async fn wait_until<F, Fut>(what: &str, timeout: Duration, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if condition().await {
            return;
        }
        if Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting until {what}");
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

/// The slot's `confirmed_flush_lsn`; None if the slot does not exist or has none yet.
pub async fn slot_confirmed_flush_lsn(client: &Client, slot: &str) -> Option<Lsn> {
    let row = client
        .query_opt(
            "SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = $1",
            &[&slot],
        )
        .await
        .expect("query pg_replication_slots")?;
    let text: Option<String> = row.get(0);
    text.map(|t| t.parse().expect("postgres prints valid lsns"))
}

/// Wait until `slot`'s confirmed position moves past where it is now: `daemon` made progress
/// through every sink. After `timeout`, fail naming `what` with the tail of the daemon's log,
/// then `context`.
pub async fn wait_slot_progress(
    client: &Client,
    slot: &str,
    what: &str,
    daemon: &SluiceProcess,
    timeout: Duration,
    context: &str,
) {
    let now = slot_confirmed_flush_lsn(client, slot)
        .await
        .unwrap_or_default();
    let progress = async {
        while slot_confirmed_flush_lsn(client, slot)
            .await
            .is_none_or(|lsn| lsn <= now)
        {
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    };
    if tokio::time::timeout(timeout, progress).await.is_err() {
        let log = daemon.stderr();
        let tail = &log[log.floor_char_boundary(log.len().saturating_sub(6000))..];
        panic!("no {what} within {timeout:?}; daemon log:\n{tail}\n{context}");
    }
}

/// Assert that `slot` has confirmed nothing at or past `lsn` (the end of a change that must not
/// be confirmed yet); panics naming `what` otherwise. Returns the confirmed position.
pub async fn assert_not_confirmed_past(client: &Client, slot: &str, lsn: Lsn, what: &str) -> Lsn {
    let confirmed = slot_confirmed_flush_lsn(client, slot)
        .await
        .expect("the slot exists and has confirmed a position");
    assert!(
        confirmed < lsn,
        "{what}: the slot confirmed {confirmed}, not below {lsn}"
    );
    confirmed
}

/// Wait until `slot` has confirmed at least `lsn`; panic naming `what` after `timeout`.
pub async fn wait_slot_confirmed(
    client: &Client,
    slot: &str,
    lsn: Lsn,
    what: &str,
    timeout: Duration,
) {
    wait_until(what, timeout, || async {
        slot_confirmed_flush_lsn(client, slot)
            .await
            .is_some_and(|confirmed| confirmed >= lsn)
    })
    .await;
}

/// Wait until `slot` has confirmed at least `lsn`, however long a backlog takes to deliver:
/// panic naming `what` only when the confirmed position stops moving for `stall`.
pub async fn wait_slot_confirmed_while_moving(
    client: &Client,
    slot: &str,
    lsn: Lsn,
    what: &str,
    stall: Duration,
) {
    loop {
        let now = slot_confirmed_flush_lsn(client, slot)
            .await
            .unwrap_or_default();
        if now >= lsn {
            return;
        }
        let moving = format!("{what}: the slot (at {now} of {lsn}) moves on");
        wait_until(&moving, stall, || async {
            slot_confirmed_flush_lsn(client, slot)
                .await
                .is_some_and(|confirmed| confirmed > now)
        })
        .await;
    }
}

/// Wait until `slot` exists and no walsender holds it (a killed daemon's connection is gone),
/// so a restarted daemon can take it.
pub async fn wait_slot_released(client: &Client, slot: &str, timeout: Duration) {
    wait_until("the killed daemon's slot is released", timeout, || async {
        client
            .query_opt(
                "SELECT 1 FROM pg_replication_slots WHERE slot_name = $1 AND NOT active",
                &[&slot],
            )
            .await
            .ok()
            .flatten()
            .is_some()
    })
    .await;
}

/// WAL bytes the slot holds back on the server (current WAL position minus `restart_lsn`);
/// None if the slot does not exist.
pub async fn slot_retained_wal_bytes(client: &Client, slot: &str) -> Option<i64> {
    let row = client
        .query_opt(
            "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)::bigint \
               FROM pg_replication_slots WHERE slot_name = $1",
            &[&slot],
        )
        .await
        .expect("query pg_replication_slots")?;
    row.get(0)
}

/// The server's current WAL insert position: the end of everything committed so far. (Not
/// `pg_current_wal_lsn()`, the write position, which lags behind commits made with
/// `synchronous_commit = off` until the WAL writer catches up.)
pub async fn current_wal_lsn(client: &Client) -> Lsn {
    let row = client
        .query_one("SELECT pg_current_wal_insert_lsn()::text", &[])
        .await
        .expect("pg_current_wal_lsn");
    row.get::<_, String>(0)
        .parse()
        .expect("postgres prints valid lsns")
}

/// A TOML config written to a temporary file; deleted on drop.
pub struct ConfigFile {
    file: tempfile::NamedTempFile,
}

impl ConfigFile {
    /// Path to pass as `--config`.
    pub fn path(&self) -> &Path {
        self.file.path()
    }
}

/// Write `toml` to a temporary `.toml` file.
pub fn write_config(toml: &str) -> ConfigFile {
    let file = tempfile::Builder::new()
        .prefix("sluice-")
        .suffix(".toml")
        .tempfile()
        .expect("create config file");
    std::fs::write(file.path(), toml).expect("write config file");
    ConfigFile { file }
}

/// The environment variable that overrides `[http] listen`.
pub const HTTP_LISTEN_VARIABLE: &str = "SLUICE__HTTP__LISTEN";

/// The built `sluice` binary running as a child process, its stdout and stderr captured to
/// files; killed on drop.
pub struct SluiceProcess {
    child: tokio::process::Child,
    pid: u32,
    output_dir: tempfile::TempDir,
}

impl SluiceProcess {
    /// Spawn `sluice ARGS` with extra environment variables. Unless `env` says otherwise, the
    /// HTTP endpoint listens on a port the kernel picks, so daemons of parallel tests never
    /// compete for the default port.
    pub fn spawn(args: &[&str], env: &[(&str, &str)]) -> SluiceProcess {
        let output_dir = tempfile::Builder::new()
            .prefix("sluice-out-")
            .tempdir()
            .expect("output dir");
        let stdout = std::fs::File::create(output_dir.path().join("stdout")).expect("stdout file");
        let stderr = std::fs::File::create(output_dir.path().join("stderr")).expect("stderr file");
        let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_sluice"));
        if !env.iter().any(|(name, _)| *name == HTTP_LISTEN_VARIABLE) {
            command.env(HTTP_LISTEN_VARIABLE, "127.0.0.1:0");
        }
        let child = command
            .args(args)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .kill_on_drop(true)
            .spawn()
            .expect("spawn the sluice binary");
        let pid = child.id().expect("a freshly spawned child has a pid");
        SluiceProcess {
            child,
            pid,
            output_dir,
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Send SIGTERM (graceful shutdown: drain, confirm, exit 0).
    pub fn terminate(&self) {
        self.signal(libc::SIGTERM);
    }

    /// Send SIGKILL (a crash: nothing is drained).
    pub fn kill(&self) {
        self.signal(libc::SIGKILL);
    }

    fn signal(&self, signal: libc::c_int) {
        let pid = libc::pid_t::try_from(self.pid).expect("pids fit in pid_t");
        // SAFETY: kill has no memory preconditions; the pid is our own child, not yet reaped
        // unless wait_exit returned, in which case the call fails harmlessly with ESRCH.
        unsafe {
            libc::kill(pid, signal);
        }
    }

    /// Wait for the process to exit; panic (with its stderr) after `timeout`.
    pub async fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        match tokio::time::timeout(timeout, self.child.wait()).await {
            Ok(status) => status.expect("wait for sluice"),
            Err(_) => panic!(
                "sluice did not exit within {timeout:?}; stderr:\n{}",
                self.stderr()
            ),
        }
    }

    /// Stop gracefully (SIGTERM) and wait up to `timeout` for the exit; panic unless the
    /// process exited with success and logged no panic. Returns its stderr.
    pub async fn stop_cleanly(&mut self, timeout: Duration) -> String {
        self.terminate();
        let status = self.wait_exit(timeout).await;
        let log = self.stderr();
        assert!(status.success(), "sluice stops cleanly:\n{log}");
        assert!(!log.contains("panicked"), "sluice does not panic:\n{log}");
        log
    }

    /// Everything written to stdout so far.
    pub fn stdout(&self) -> String {
        std::fs::read_to_string(self.stdout_path()).unwrap_or_default()
    }

    /// How many warnings the process logged about the sink named `sink`: a failed write it
    /// retries, or documents the search sink sends again after a timeout.
    pub fn warnings_about_sink(&self, sink: &str) -> usize {
        let field = format!("sink={sink} ");
        self.stderr()
            .lines()
            .map(without_colours)
            .filter(|l| l.contains(" WARN ") && l.contains(&field))
            .count()
    }

    /// Everything written to stderr so far.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(self.stderr_path()).unwrap_or_default()
    }

    /// The file capturing stdout.
    pub fn stdout_path(&self) -> PathBuf {
        self.output_dir.path().join("stdout")
    }

    /// The file capturing stderr.
    pub fn stderr_path(&self) -> PathBuf {
        self.output_dir.path().join("stderr")
    }

    /// Peak resident memory so far (VmHWM), in KiB.
    pub fn peak_rss_kib(&self) -> Option<u64> {
        peak_rss_kib(self.pid)
    }
}

/// Peak resident set size (VmHWM) of a live process, in KiB; None once it has exited.
pub fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
}

/// `line` without its terminal colour codes (`ESC [ ... m`).
fn without_colours(line: &str) -> String {
    let mut plain = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            chars.by_ref().find(|&c| c == 'm');
        } else {
            plain.push(c);
        }
    }
    plain
}
