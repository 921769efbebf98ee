//! Whether the source waits for room in a full spill directory, shared like the snapshot
//! progress: the source loop marks the wait when a streamed transaction could not be spilled,
//! and ends it once a streamed transaction arrives whole; the metrics endpoint and `/status`
//! read it.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;

/// The spill-full state of one source: the current wait, if any, and how many attempts so far
/// failed for lack of spill space.
#[derive(Debug, Default)]
pub struct SpillFullState {
    /// Mirrors `wait.is_some()`, so the stream loop checks it without taking the lock.
    waiting: AtomicBool,
    wait: Mutex<Option<SpillFullWait>>,
    retry_count: AtomicU64,
}

/// One wait for space: the source streams the transaction again after a backoff, and again,
/// until the directory has room for it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpillFullWait {
    /// The full directory (`[source] spill_dir`, or the system's temporary directory).
    pub dir: PathBuf,
    /// What failed, in the operating system's words (`No space left on device`).
    pub reason: String,
    /// Attempts in this wait that failed for lack of space.
    pub attempt_count: u64,
}

impl SpillFullState {
    /// The current wait; `None` while the source is not waiting for spill space.
    pub fn wait(&self) -> Option<SpillFullWait> {
        self.lock().clone()
    }

    /// True while the source waits for spill space.
    pub fn is_waiting(&self) -> bool {
        self.waiting.load(Ordering::Relaxed)
    }

    /// Attempts that failed for lack of spill space (each is retried), since the start.
    pub fn retry_count(&self) -> u64 {
        self.retry_count.load(Ordering::Relaxed)
    }

    /// An attempt failed because `dir` has no space (or quota) left: the source is waiting.
    pub fn failed(&self, dir: &Path, reason: &str) {
        let mut wait = self.lock();
        let attempt_count = wait.as_ref().map_or(0, |w| w.attempt_count) + 1;
        *wait = Some(SpillFullWait {
            dir: dir.to_path_buf(),
            reason: reason.to_owned(),
            attempt_count,
        });
        self.waiting.store(true, Ordering::Relaxed);
        self.retry_count.fetch_add(1, Ordering::Relaxed);
    }

    /// A streamed transaction arrived whole, so the spill directory had room for it: the wait,
    /// if any, is over. Cheap when there is none.
    pub fn streamed_through(&self) {
        if !self.is_waiting() {
            return;
        }
        let mut wait = self.lock();
        if let Some(ended) = wait.take() {
            tracing::info!(
                dir = %ended.dir.display(), attempts = ended.attempt_count,
                "the spill directory has room again; streaming continues"
            );
        }
        self.waiting.store(false, Ordering::Relaxed);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<SpillFullWait>> {
        self.wait.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wait_counts_its_attempts_until_a_streamed_transaction_goes_through() {
        let state = SpillFullState::default();
        assert_eq!(state.wait(), None);
        state.streamed_through();
        assert!(!state.is_waiting(), "nothing to end");

        let dir = Path::new("/var/spill");
        state.failed(dir, "writing a spill file: No space left on device");
        state.failed(dir, "writing a spill file: Disk quota exceeded");
        assert_eq!(
            state.wait(),
            Some(SpillFullWait {
                dir: dir.to_path_buf(),
                reason: "writing a spill file: Disk quota exceeded".into(),
                attempt_count: 2,
            }),
            "the latest reason, and both attempts"
        );
        assert!(state.is_waiting());
        assert_eq!(state.retry_count(), 2);

        state.streamed_through();
        assert_eq!(state.wait(), None);
        assert!(!state.is_waiting());
        assert_eq!(state.retry_count(), 2, "the count of retries stays");

        state.failed(dir, "creating a spill file: No space left on device");
        assert_eq!(state.wait().map(|w| w.attempt_count), Some(1), "a new wait");
        assert_eq!(state.retry_count(), 3);
    }
}
