//! A full spill directory: a streamed transaction larger than the disk the daemon spills it to.
//! The daemon says which directory is full and what to do (in its log, and in `/status` and
//! `/metrics` while it waits), confirms nothing past the transaction, retries by itself with its
//! backoff, and once space is freed delivers every row, in order, without repeats, and shows
//! the wait as over.
//!
//! The small disk is a tmpfs mounted for the test, which needs root (or `sudo -n`): without
//! either the test fails saying so, rather than passing without having tried.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use sluice::metrics::names;

use crate::daemon::{read_events, spawn_spilling_daemon, start_streaming_items};
use crate::harness::SLOT;
use crate::support::{self, http, SluiceProcess, DEFAULT_DATABASE};

const WAIT: Duration = Duration::from_secs(180);
/// The spill disk while it is full: far smaller than the transaction's spill file.
const SMALL_DISK: &str = "4m";
/// The spill disk once space is freed.
const LARGE_DISK: &str = "512m";
/// Rows of the big transaction: about 10 MB of pgoutput records once spilled.
const ROWS: i64 = 200_000;

/// A tmpfs mounted on a fresh directory; unmounted on drop.
struct Tmpfs {
    dir: tempfile::TempDir,
}

/// `program args` as root: directly when the test runs as root, else through `sudo -n`.
fn as_root(program: &str, args: &[&str]) -> Result<(), String> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let root = unsafe { libc::geteuid() } == 0;
    let (mut command, shown) = if root {
        (
            Command::new(program),
            format!("{program} {}", args.join(" ")),
        )
    } else {
        let mut sudo = Command::new("sudo");
        sudo.args(["-n", program]);
        (sudo, format!("sudo -n {program} {}", args.join(" ")))
    };
    let output = command
        .args(args)
        .output()
        .map_err(|e| format!("{shown}: {e}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{shown}: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
}

impl Tmpfs {
    fn mount(size: &str) -> Tmpfs {
        let dir = tempfile::Builder::new()
            .prefix("sluice-spill-")
            .tempdir()
            .expect("mount point");
        let path = dir.path().to_str().expect("utf-8 temp path").to_owned();
        let options = format!("size={size}");
        if let Err(error) = as_root("mount", &["-t", "tmpfs", "-o", &options, "tmpfs", &path]) {
            panic!(
                "this test needs root (or passwordless sudo) to mount a small tmpfs as the \
                 spill directory; run the tests as root as CI does. mount failed: {error}"
            );
        }
        Tmpfs { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Grow (or shrink) the file system in place; its files stay.
    fn resize(&self, size: &str) {
        let options = format!("remount,size={size}");
        let path = self.path().to_str().expect("utf-8 temp path");
        as_root("mount", &["-o", &options, path]).expect("resize the tmpfs");
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        // Lazy: a daemon still holding a spill file cannot keep the mount alive.
        let path = self.path().to_str().unwrap_or_default().to_owned();
        if let Err(error) = as_root("umount", &["-l", &path]) {
            eprintln!("unmounting the test tmpfs at {path}: {error}");
        }
    }
}

/// How many times the daemon's log reports the full spill directory.
fn spill_full_reports(daemon: &SluiceProcess) -> usize {
    daemon
        .stderr()
        .lines()
        .filter(|l| l.contains("spill directory full"))
        .count()
}

#[tokio::test]
async fn a_full_spill_directory_is_reported_retried_and_recovers_by_itself_once_space_is_freed() {
    let spill = Tmpfs::mount(SMALL_DISK);
    let pg = start_streaming_items().await;
    let out = tempfile::tempdir().unwrap();
    let events = out.path().join("events.jsonl");
    let (mut daemon, _config, base) =
        spawn_spilling_daemon(&pg, &events, 1 << 20, spill.path()).await;
    let client = pg.client(DEFAULT_DATABASE).await.unwrap();
    let first = "INSERT INTO items VALUES (0, 'before')";
    support::execute_and_wait_confirmed(&client, SLOT, first, "the first row is confirmed", WAIT)
        .await;

    client
        .batch_execute(&format!(
            "INSERT INTO items SELECT g, 'row ' || g FROM generate_series(1, {ROWS}) g"
        ))
        .await
        .unwrap();
    let big = support::current_wal_lsn(&client).await;
    support::wait_until(
        "the daemon reports the full spill directory twice (it retries by itself)",
        WAIT,
        || async { spill_full_reports(&daemon) >= 2 },
    )
    .await;
    let log = daemon.stderr();
    let report = log
        .lines()
        .find(|l| l.contains("spill directory full"))
        .unwrap();
    let dir = spill.path().display().to_string();
    for part in [dir.as_str(), "is full", "free space", "[source] spill_dir"] {
        assert!(report.contains(part), "the report names {part:?}: {report}");
    }
    assert!(!log.contains("panicked"), "no panic:\n{log}");
    assert!(
        daemon.peak_rss_kib().is_some(),
        "the daemon keeps running:\n{log}"
    );
    support::assert_not_confirmed_past(
        &client,
        SLOT,
        big,
        "nothing past the transaction is confirmed while it cannot spill",
    )
    .await;
    let ids: Vec<i64> = read_events(&events).iter().map(|(id, _)| *id).collect();
    assert_eq!(ids, [0], "no row of the transaction is delivered yet");

    // Operators see the wait without reading the log.
    support::wait_until(
        "/status and /metrics show the source waiting for spill space",
        WAIT,
        || async {
            let waiting = http::metric(&base, names::SOURCE_SPILL_FULL, &[]).await == Some(1.0);
            waiting
                && http::status(&base)
                    .await
                    .is_some_and(|status| status["source_spill_full"]["dir"] == dir.as_str())
        },
    )
    .await;
    let retries = http::metric(&base, names::SOURCE_SPILL_FULL_RETRIES_TOTAL, &[]).await;
    assert!(
        retries.is_some_and(|n| n >= 2.0),
        "both reported attempts are counted: {retries:?}"
    );
    let status = http::status(&base).await.expect("/status answers");
    let wait = &status["source_spill_full"];
    assert_eq!(wait["dir"], dir.as_str(), "{status}");
    let reason = wait["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("No space left on device"), "{status}");
    assert!(
        wait["attempt_count"].as_u64().is_some_and(|n| n >= 2),
        "{status}"
    );

    spill.resize(LARGE_DISK);
    support::execute_and_wait_confirmed(
        &client,
        SLOT,
        &format!("INSERT INTO items VALUES ({}, 'after')", ROWS + 1),
        "the daemon recovers by itself and confirms everything once space is freed",
        WAIT,
    )
    .await;
    support::wait_until(
        "/status and /metrics show the wait for spill space is over",
        WAIT,
        || async {
            let over = http::metric(&base, names::SOURCE_SPILL_FULL, &[]).await == Some(0.0);
            over && http::status(&base)
                .await
                .is_some_and(|status| status["source_spill_full"].is_null())
        },
    )
    .await;
    let retries_after = http::metric(&base, names::SOURCE_SPILL_FULL_RETRIES_TOTAL, &[]).await;
    assert!(
        retries_after >= retries,
        "the count of retries stays: {retries_after:?} after {retries:?}"
    );
    daemon.stop_cleanly(Duration::from_secs(60)).await;
    let ids: Vec<i64> = read_events(&events).iter().map(|(id, _)| *id).collect();
    let expected: Vec<i64> = (0..=ROWS + 1).collect();
    assert!(
        ids == expected,
        "every row once, in order: {} rows delivered, first differences at {:?}",
        ids.len(),
        ids.iter()
            .zip(&expected)
            .position(|(a, b)| a != b)
            .map(|i| &ids[i..(i + 3).min(ids.len())])
    );
}
