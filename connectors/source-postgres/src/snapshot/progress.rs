//! Snapshot progress figures, shared: counters the snapshot advances and anyone may read (the
//! metrics endpoint, tests, the reporter), and the reporter itself: a progress bar when stderr
//! is a terminal, a log line at an interval otherwise.

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::task::JoinHandle;

/// How often the bar is redrawn on a terminal.
const BAR_INTERVAL: Duration = Duration::from_millis(500);
/// How often a progress line is logged when stderr is not a terminal: often enough to see a
/// long snapshot move, rarely enough not to drown other logs.
const LOG_INTERVAL: Duration = Duration::from_secs(10);
/// Characters of the bar itself.
const BAR_WIDTH: usize = 30;

/// Live snapshot figures. Rows are counted when handed to the pipeline; chunks when every sink
/// acknowledged them.
#[derive(Debug, Default)]
pub struct SnapshotProgress {
    running: AtomicBool,
    rows_done: AtomicU64,
    rows_estimated: AtomicU64,
    chunks_done: AtomicU64,
    chunks_total: AtomicU64,
}

/// One reading of [`SnapshotProgress`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProgressFigures {
    /// A snapshot is being read now.
    pub running: bool,
    pub rows_done: u64,
    /// From `pg_class.reltuples`; 0 when unknown.
    pub rows_estimated: u64,
    pub chunks_done: u64,
    pub chunks_total: u64,
}

impl SnapshotProgress {
    pub fn figures(&self) -> ProgressFigures {
        ProgressFigures {
            running: self.running.load(Ordering::Relaxed),
            rows_done: self.rows_done.load(Ordering::Relaxed),
            rows_estimated: self.rows_estimated.load(Ordering::Relaxed),
            chunks_done: self.chunks_done.load(Ordering::Relaxed),
            chunks_total: self.chunks_total.load(Ordering::Relaxed),
        }
    }

    pub(crate) fn start(&self, rows_estimated: u64, chunks_total: u64, chunks_done: u64) {
        self.rows_done.store(0, Ordering::Relaxed);
        self.rows_estimated.store(rows_estimated, Ordering::Relaxed);
        self.chunks_total.store(chunks_total, Ordering::Relaxed);
        self.chunks_done.store(chunks_done, Ordering::Relaxed);
        self.running.store(true, Ordering::Relaxed);
    }

    pub(crate) fn add_rows(&self, rows: u64) {
        self.rows_done.fetch_add(rows, Ordering::Relaxed);
    }

    pub(crate) fn chunk_done(&self) {
        self.chunks_done.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn finish(&self) {
        self.running.store(false, Ordering::Relaxed);
    }
}

/// Report progress until aborted: a bar on a terminal, log lines otherwise.
pub(crate) fn spawn_reporter(progress: std::sync::Arc<SnapshotProgress>) -> JoinHandle<()> {
    let terminal = std::io::stderr().is_terminal();
    tokio::spawn(async move {
        let started = Instant::now();
        let every = if terminal { BAR_INTERVAL } else { LOG_INTERVAL };
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        loop {
            tick.tick().await;
            let figures = progress.figures();
            if !figures.running {
                continue;
            }
            let elapsed = started.elapsed();
            if terminal {
                let mut err = std::io::stderr().lock();
                let _ = write!(err, "\r{}", bar_line(&figures, elapsed));
                let _ = err.flush();
            } else {
                tracing::info!(
                    rows_done = figures.rows_done,
                    rows_estimated = figures.rows_estimated,
                    chunks_done = figures.chunks_done,
                    chunks_total = figures.chunks_total,
                    rows_per_s = rate(figures.rows_done, elapsed) as u64,
                    eta_s = eta(&figures, elapsed).map(|d| d.as_secs()),
                    "snapshot progress"
                );
            }
        }
    })
}

fn rate(rows: u64, elapsed: Duration) -> f64 {
    rows as f64 / elapsed.as_secs_f64().max(0.001)
}

/// Time left at the rate so far, when the estimate is known and not yet passed.
fn eta(figures: &ProgressFigures, elapsed: Duration) -> Option<Duration> {
    let per_s = rate(figures.rows_done, elapsed);
    let left = figures.rows_estimated.checked_sub(figures.rows_done)?;
    (per_s > 0.0 && figures.rows_estimated > 0)
        .then(|| Duration::from_secs_f64(left as f64 / per_s))
}

/// `[#####.....]  42% 1200000/2857000 rows  350000 rows/s  ETA 4s  chunks 12/29`
pub fn bar_line(figures: &ProgressFigures, elapsed: Duration) -> String {
    let fraction = if figures.rows_estimated > 0 {
        (figures.rows_done as f64 / figures.rows_estimated as f64).min(1.0)
    } else {
        0.0
    };
    let filled = (fraction * BAR_WIDTH as f64) as usize;
    let eta = eta(figures, elapsed).map_or_else(|| "?".to_owned(), |d| format!("{}s", d.as_secs()));
    format!(
        "[{}{}] {:>3.0}% {}/{} rows  {:.0} rows/s  ETA {eta}  chunks {}/{}",
        "#".repeat(filled),
        ".".repeat(BAR_WIDTH - filled),
        fraction * 100.0,
        figures.rows_done,
        figures.rows_estimated,
        rate(figures.rows_done, elapsed),
        figures.chunks_done,
        figures.chunks_total,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bar_shows_share_rate_and_eta() {
        let figures = ProgressFigures {
            running: true,
            rows_done: 500,
            rows_estimated: 1000,
            chunks_done: 1,
            chunks_total: 2,
        };
        let line = bar_line(&figures, Duration::from_secs(5));
        assert!(
            line.starts_with(&format!("[{}{}]", "#".repeat(15), ".".repeat(15))),
            "{line}"
        );
        assert!(
            line.contains(" 50% 500/1000 rows  100 rows/s  ETA 5s  chunks 1/2"),
            "{line}"
        );
    }

    #[test]
    fn an_unknown_estimate_has_no_eta() {
        let figures = ProgressFigures {
            running: true,
            rows_done: 10,
            ..ProgressFigures::default()
        };
        assert!(bar_line(&figures, Duration::from_secs(1)).contains("ETA ?"));
    }
}
