//! Fixed-bucket histograms of durations on atomics: one `observe` is a few relaxed adds, cheap
//! enough to record every sink write and every acknowledged batch.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds in seconds of the sink write histogram: from a local fsync (~1 ms) to a
/// remote warehouse round trip under load (tens of seconds).
pub const WRITE_SECONDS_BUCKETS: [f64; 14] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// Upper bounds in seconds of the commit-to-sink latency histogram. Ten bounds per decade
/// from 1 ms to 10 s (neighbours at most a third apart), so a p50 or p99 interpolated inside a
/// bucket is off by well under that; then 30 s and 60 s for a sink that falls behind.
pub const COMMIT_LATENCY_BUCKETS: [f64; 44] = [
    0.0005, 0.001, 0.00125, 0.0015, 0.002, 0.0025, 0.003, 0.004, 0.005, 0.006, 0.008, 0.01, 0.0125,
    0.015, 0.02, 0.025, 0.03, 0.04, 0.05, 0.06, 0.08, 0.1, 0.125, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5,
    0.6, 0.8, 1.0, 1.25, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0, 30.0, 60.0,
];

/// Counts per bucket (not cumulative: rendering sums them), the observation count and their
/// sum in microseconds.
#[derive(Debug)]
pub struct Histogram {
    bounds: &'static [f64],
    buckets: Box<[AtomicU64]>,
    count: AtomicU64,
    sum_us: AtomicU64,
}

/// One reading of a [`Histogram`], with cumulative bucket counts as Prometheus wants them.
#[derive(Clone, Debug, PartialEq)]
pub struct HistogramReading {
    /// `(upper bound in seconds, observations at or below it)`, ascending.
    pub cumulative: Vec<(f64, u64)>,
    pub count: u64,
    pub sum_seconds: f64,
}

impl Histogram {
    /// An empty histogram with the ascending upper `bounds` (seconds); `+Inf` is implied.
    pub fn new(bounds: &'static [f64]) -> Self {
        Histogram {
            bounds,
            buckets: bounds.iter().map(|_| AtomicU64::new(0)).collect(),
            count: AtomicU64::new(0),
            sum_us: AtomicU64::new(0),
        }
    }

    pub fn observe(&self, elapsed: Duration) {
        let seconds = elapsed.as_secs_f64();
        if let Some(index) = self.bounds.iter().position(|&le| seconds <= le) {
            self.buckets[index].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_us
            .fetch_add(elapsed.as_micros() as u64, Ordering::Relaxed);
    }

    pub fn read(&self) -> HistogramReading {
        let mut running = 0;
        let cumulative = self
            .bounds
            .iter()
            .zip(self.buckets.iter())
            .map(|(&le, bucket)| {
                running += bucket.load(Ordering::Relaxed);
                (le, running)
            })
            .collect();
        HistogramReading {
            cumulative,
            count: self.count.load(Ordering::Relaxed),
            sum_seconds: self.sum_us.load(Ordering::Relaxed) as f64 / 1e6,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_cumulative_and_slow_writes_only_count_in_inf() {
        let h = Histogram::new(&WRITE_SECONDS_BUCKETS);
        h.observe(Duration::from_micros(500));
        h.observe(Duration::from_millis(20));
        h.observe(Duration::from_secs(60));
        let r = h.read();
        assert_eq!(r.count, 3);
        assert_eq!(r.cumulative[0], (0.001, 1));
        assert_eq!(r.cumulative[4], (0.025, 2));
        assert_eq!(
            r.cumulative.last().unwrap().1,
            2,
            "60 s is above every bound"
        );
        assert!((r.sum_seconds - 60.0205).abs() < 1e-9);
    }

    #[test]
    fn commit_latency_bounds_ascend_and_neighbours_between_1_ms_and_10_s_are_a_third_apart() {
        for pair in COMMIT_LATENCY_BUCKETS.windows(2) {
            assert!(pair[0] < pair[1], "{pair:?}");
            if pair[0] >= 0.001 && pair[1] <= 10.0 {
                assert!(pair[1] / pair[0] <= 4.0 / 3.0 + 1e-9, "{pair:?}");
            }
        }
        assert!(COMMIT_LATENCY_BUCKETS.contains(&0.001));
        assert!(COMMIT_LATENCY_BUCKETS.contains(&10.0));
    }
}
