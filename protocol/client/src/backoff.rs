//! [`Backoff`]: how long a [`ResumingClient`](crate::ResumingClient) waits before each reconnect attempt.
//!
//! Exponential with "full jitter" above a floor: before attempt `n` the client waits a uniformly random time
//! in `[min, min(max, min · 2^(n+1))]` (how `n` is counted: [`ResumeOptions`](crate::ResumeOptions)). The
//! floor keeps a client from hammering a node that refuses it; the jitter matters most on the first
//! attempt, when a node that shut down (close 1001) sends all its clients away at the same instant and they
//! must not all come back at the same instant too.

use std::time::Duration;

/// Delays between reconnect attempts; see the module documentation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Backoff {
    min: Duration,
    max: Duration,
}

impl Backoff {
    /// `min` is clamped to at most `max`.
    pub(crate) fn new(min: Duration, max: Duration) -> Self {
        Self { min: min.min(max), max }
    }

    /// The longest wait.
    pub(crate) fn max(&self) -> Duration {
        self.max
    }

    /// The wait before attempt `attempt`, for a jitter draw `unit` in `[0, 1]`.
    pub(crate) fn delay_with(&self, attempt: u32, unit: f64) -> Duration {
        // 2^(n+1) saturates long before u32 attempts overflow anything: past 2^31 the ceiling is `max`.
        let factor = 2u32.checked_pow(attempt.saturating_add(1)).unwrap_or(u32::MAX);
        let ceiling = self.min.saturating_mul(factor).min(self.max);
        self.min + (ceiling - self.min).mul_f64(unit.clamp(0.0, 1.0))
    }

    /// The wait before attempt `attempt`, with a fresh random jitter.
    pub(crate) fn delay(&self, attempt: u32) -> Duration {
        self.delay_with(attempt, rand::random::<f64>())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn doubles_from_the_floor_up_to_the_ceiling() {
        let b = Backoff::new(100 * MS, 5000 * MS);
        let highest = |n| b.delay_with(n, 1.0);
        assert_eq!(
            [highest(0), highest(1), highest(2), highest(5), highest(6)],
            [200 * MS, 400 * MS, 800 * MS, 5000 * MS, 5000 * MS]
        );
        for n in [0, 3, 40, u32::MAX] {
            assert_eq!(b.delay_with(n, 0.0), 100 * MS, "the floor holds for attempt {n}");
        }
        assert_eq!(b.delay_with(u32::MAX, 1.0), 5000 * MS, "no overflow");
        assert_eq!(b.delay_with(0, 0.5), 150 * MS);
    }

    #[test]
    fn random_delays_stay_within_bounds() {
        let b = Backoff::new(10 * MS, 50 * MS);
        for n in 0..20 {
            let d = b.delay(n);
            assert!((10 * MS..=50 * MS).contains(&d), "{d:?} for attempt {n}");
        }
    }

    #[test]
    fn a_floor_above_the_ceiling_is_clamped() {
        let b = Backoff::new(10 * MS, 5 * MS);
        assert_eq!((b.delay_with(0, 0.0), b.delay_with(3, 1.0)), (5 * MS, 5 * MS));
    }
}
