//! [`TokenBucket`]: the rate limit every per-connection bound uses (publishes, Socket.IO events, module
//! interactions). It refills continuously at its rate and holds at most one second's worth, so a client
//! may burst up to the rate and is then held to it.

use tokio::time::Instant;

/// A token bucket refilled at `rate` tokens per second, holding at most `rate` tokens.
#[derive(Debug, Clone, Copy)]
pub struct TokenBucket {
    rate: f64,
    tokens: f64,
    refilled: Instant,
}

impl TokenBucket {
    /// A full bucket of `rate` tokens per second.
    pub fn new(rate: u32) -> Self {
        Self::full_at(rate, Instant::now())
    }

    /// A full bucket as of `now`.
    pub fn full_at(rate: u32, now: Instant) -> Self {
        let rate = f64::from(rate);
        Self { rate, tokens: rate, refilled: now }
    }

    /// Takes one token now, or says there is none.
    pub fn take(&mut self) -> bool {
        self.take_at(Instant::now())
    }

    /// Takes one token as of `now`, or says there is none.
    pub fn take_at(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.refilled).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(self.rate);
        self.refilled = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_burst_of_the_rate_then_the_rate() {
        let start = Instant::now();
        let mut bucket = TokenBucket::full_at(4, start);
        assert!((0..4).all(|_| bucket.take_at(start)));
        assert!(!bucket.take_at(start));
        assert!(bucket.take_at(start + Duration::from_millis(250)));
        assert!(!bucket.take_at(start + Duration::from_millis(250)));
        let later = start + Duration::from_secs(60);
        assert_eq!((0..10).filter(|_| bucket.take_at(later)).count(), 4, "never more than a second's worth");
    }
}
