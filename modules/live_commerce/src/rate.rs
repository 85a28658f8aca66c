//! Per-connection rate limits on what a client sends into a session (reactions and clicks; chat), so one
//! client cannot flood a room: a [`TokenBucket`] per connection and kind, refilled continuously at the
//! configured rate and holding at most one second's worth. A call beyond it is refused with code 2004.

use crate::error::CommerceError;
use crate::settings::Settings;
use chorus_core::rate::TokenBucket;
use parking_lot::Mutex;
use std::collections::HashMap;
use tokio::time::Instant;

/// Shards of the connection map: every reaction passes here, so connections on different cores should
/// rarely share a lock; 64 is what the broker's registry and presence use for the same reason.
const SHARDS: usize = 64;

/// What a call spends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Spend {
    /// A reaction or a product click.
    Interaction,
    /// A chat message.
    Message,
}

struct Limits {
    interactions: TokenBucket,
    messages: TokenBucket,
}

/// The buckets of every connection that sent something; an entry is removed when its connection closes.
pub struct RateLimits {
    settings: Settings,
    shards: Box<[Mutex<HashMap<u64, Limits>>]>,
}

impl RateLimits {
    /// Limits with `settings`' rates.
    pub fn new(settings: Settings) -> Self {
        Self { settings, shards: (0..SHARDS).map(|_| Mutex::default()).collect() }
    }

    fn shard(&self, conn_id: u64) -> &Mutex<HashMap<u64, Limits>> {
        &self.shards[(conn_id as usize) & (SHARDS - 1)]
    }

    /// Spends one token of connection `conn_id`, or refuses.
    pub fn spend(&self, conn_id: u64, spend: Spend) -> Result<(), CommerceError> {
        self.spend_at(conn_id, spend, Instant::now())
    }

    /// [`Self::spend`] at `now`, for a caller that has read the clock already.
    pub fn spend_at(&self, conn_id: u64, spend: Spend, now: Instant) -> Result<(), CommerceError> {
        let Settings { interactions_per_sec, messages_per_sec, .. } = self.settings;
        let mut shard = self.shard(conn_id).lock();
        let limits = shard.entry(conn_id).or_insert_with(|| Limits {
            interactions: TokenBucket::full_at(interactions_per_sec, now),
            messages: TokenBucket::full_at(messages_per_sec, now),
        });
        let (bucket, rate, what) = match spend {
            Spend::Interaction => (&mut limits.interactions, interactions_per_sec, "reactions or clicks"),
            Spend::Message => (&mut limits.messages, messages_per_sec, "chat messages"),
        };
        if bucket.take_at(now) {
            Ok(())
        } else {
            Err(CommerceError::RateLimited(format!("Too many {what}: at most {rate} per second")))
        }
    }

    /// Forgets a closed connection; whether it had sent anything.
    pub fn forget(&self, conn_id: u64) -> bool {
        self.shard(conn_id).lock().remove(&conn_id).is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn a_burst_of_the_rate_passes_then_it_refills() {
        let limits = RateLimits::new(Settings { interactions_per_sec: 3, messages_per_sec: 1, ..Settings::default() });
        for _ in 0..3 {
            limits.spend(7, Spend::Interaction).unwrap();
        }
        let refused = limits.spend(7, Spend::Interaction).unwrap_err();
        assert_eq!(refused, CommerceError::RateLimited("Too many reactions or clicks: at most 3 per second".into()));
        limits.spend(7, Spend::Message).unwrap();
        assert!(limits.spend(7, Spend::Message).is_err());
        limits.spend(8, Spend::Interaction).unwrap();
        tokio::time::advance(Duration::from_millis(334)).await;
        limits.spend(7, Spend::Interaction).unwrap();
        assert!(limits.spend(7, Spend::Interaction).is_err());
        assert!(limits.forget(7));
        assert!(!limits.forget(7));
    }
}
