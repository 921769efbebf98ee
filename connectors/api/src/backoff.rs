//! Exponential backoff with a ceiling and jitter, shared by sink retries and source reconnects.

use std::time::Duration;

/// Exponential backoff: `initial`, doubling per attempt up to `max`, each wait shortened by up
/// to a quarter at random so that many retries do not move in lockstep.
#[derive(Clone, Debug)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    next: Duration,
    attempt: u32,
}

impl Backoff {
    pub fn new(initial: Duration, max: Duration) -> Self {
        Backoff {
            initial,
            max: max.max(initial),
            next: initial,
            attempt: 0,
        }
    }

    /// The wait before the next attempt.
    pub fn next_delay(&mut self) -> Duration {
        let base = self.next;
        self.next = (self.next * 2).min(self.max);
        self.attempt += 1;
        let jitter = base.as_micros() as u64 / 4;
        let cut = if jitter == 0 {
            0
        } else {
            pseudo_random(self.attempt) % jitter
        };
        base - Duration::from_micros(cut)
    }

    /// Attempts since the last reset.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// Back to the initial wait after a success.
    pub fn reset(&mut self) {
        self.next = self.initial;
        self.attempt = 0;
    }
}

/// Cheap jitter source: the clock's nanoseconds mixed with the attempt number. Jitter needs
/// spread, not unpredictability.
fn pseudo_random(attempt: u32) -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos() as u64);
    (nanos ^ (u64::from(attempt) << 17)).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 11
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_up_to_the_ceiling_and_reset() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_millis(350));
        let d: Vec<Duration> = (0..4).map(|_| b.next_delay()).collect();
        let within = |d: Duration, base: u64| {
            d <= Duration::from_millis(base) && d >= Duration::from_millis(base * 3 / 4)
        };
        assert!(within(d[0], 100), "{d:?}");
        assert!(within(d[1], 200), "{d:?}");
        assert!(within(d[2], 350), "{d:?}");
        assert!(within(d[3], 350), "{d:?}");
        assert_eq!(b.attempt(), 4);
        b.reset();
        assert!(within(b.next_delay(), 100));
    }
}
