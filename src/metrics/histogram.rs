//! A fixed-bucket histogram of durations on atomics: one `observe` is a few relaxed adds, cheap
//! enough to record every sink write.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds in seconds of the sink write histogram: from a local fsync (~1 ms) to a
/// remote warehouse round trip under load (tens of seconds).
pub const WRITE_SECONDS_BUCKETS: [f64; 14] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// Counts per bucket (not cumulative: rendering sums them), the observation count and their
/// sum in microseconds.
#[derive(Debug, Default)]
pub struct Histogram {
    buckets: [AtomicU64; WRITE_SECONDS_BUCKETS.len()],
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
    pub fn observe(&self, elapsed: Duration) {
        let seconds = elapsed.as_secs_f64();
        if let Some(index) = WRITE_SECONDS_BUCKETS.iter().position(|&le| seconds <= le) {
            self.buckets[index].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_us
            .fetch_add(elapsed.as_micros() as u64, Ordering::Relaxed);
    }

    pub fn read(&self) -> HistogramReading {
        let mut running = 0;
        let cumulative = WRITE_SECONDS_BUCKETS
            .iter()
            .zip(&self.buckets)
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
        let h = Histogram::default();
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
}
