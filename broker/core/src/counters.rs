//! Striped counters. An add touches one cache-line-padded atomic chosen by the calling thread, so many
//! tasks on many cores can count the same thing (votes, reactions, clicks) without bouncing one cache
//! line; a read sums the stripes. [`Counters`] names counters by key and takes periodic snapshots.
//! [`SharedCounters`] are counted by every node of a cluster: local adds are flushed to the bus
//! periodically, and reads return the cluster total as of the last flush plus what is not flushed yet.

use crate::cluster::Cluster;
use crossbeam_utils::CachePadded;
use parking_lot::RwLock;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::time::Duration;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// Stripes per counter. At least the core count of the machines chorus targets, as a power of two, so
/// threads rarely share a stripe; 16 × 128 bytes of padding per counter keeps counters cheap to keep by
/// the thousand.
pub const STRIPES: usize = 16;

fn stripe() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static STRIPE: usize = NEXT.fetch_add(1, Ordering::Relaxed) % STRIPES;
    }
    STRIPE.with(|s| *s)
}

/// One striped counter.
pub struct ShardedCounter {
    stripes: [CachePadded<AtomicI64>; STRIPES],
}

impl Default for ShardedCounter {
    fn default() -> Self {
        Self { stripes: std::array::from_fn(|_| CachePadded::new(AtomicI64::new(0))) }
    }
}

impl ShardedCounter {
    /// Adds `delta` (may be negative).
    pub fn add(&self, delta: i64) {
        self.stripes[stripe()].fetch_add(delta, Ordering::Relaxed);
    }

    /// The current total. Concurrent adds may or may not be included; each add is counted exactly once.
    pub fn get(&self) -> i64 {
        self.stripes.iter().map(|s| s.load(Ordering::Relaxed)).sum()
    }

    /// Returns the total and resets it to zero, losing no concurrent add (each stripe is swapped).
    /// Used to flush deltas elsewhere (e.g. to a shared store).
    pub fn take(&self) -> i64 {
        self.stripes.iter().map(|s| s.swap(0, Ordering::Relaxed)).sum()
    }
}

/// A point-in-time copy of every named counter.
pub type Snapshot = HashMap<String, i64>;

/// Named striped counters.
#[derive(Default)]
pub struct Counters {
    map: RwLock<HashMap<String, Arc<ShardedCounter>>>,
}

impl Counters {
    /// The counter for `key`, created at zero on first use. Keep the `Arc` to add without a map lookup.
    pub fn counter(&self, key: &str) -> Arc<ShardedCounter> {
        if let Some(c) = self.map.read().get(key) {
            return c.clone();
        }
        self.map.write().entry(key.to_owned()).or_default().clone()
    }

    /// Adds to the counter for `key`.
    pub fn add(&self, key: &str, delta: i64) {
        self.counter(key).add(delta);
    }

    /// The counter's total (0 for an unknown key).
    pub fn get(&self, key: &str) -> i64 {
        self.map.read().get(key).map_or(0, |c| c.get())
    }

    /// Forgets a counter (e.g. when the thing it counts expires).
    pub fn remove(&self, key: &str) {
        self.map.write().remove(key);
    }

    /// Totals of every counter.
    pub fn snapshot(&self) -> Snapshot {
        self.map.read().iter().map(|(k, c)| (k.clone(), c.get())).collect()
    }

    /// Publishes a snapshot every `interval` until `stop` is cancelled; readers get the latest one without
    /// touching the stripes.
    pub fn spawn_snapshots(
        self: &Arc<Self>,
        interval: Duration,
        stop: CancellationToken,
    ) -> watch::Receiver<Arc<Snapshot>> {
        let (tx, rx) = watch::channel(Arc::new(self.snapshot()));
        let counters = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(interval);
            loop {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tick.tick() => {
                        if tx.send(Arc::new(counters.snapshot())).is_err() {
                            return;
                        }
                    }
                }
            }
        });
        rx
    }
}

/// A counter every node of a cluster adds to.
#[derive(Default)]
pub struct SharedCounter {
    unflushed: ShardedCounter,
    /// The cluster total as of the last flush, plus deltas being flushed.
    total: AtomicI64,
}

impl SharedCounter {
    /// Adds `delta` (may be negative).
    pub fn add(&self, delta: i64) {
        self.unflushed.add(delta);
    }

    /// The total: on one node exact; in a cluster, every node's adds up to its last flush plus this
    /// node's adds since.
    pub fn get(&self) -> i64 {
        self.total.load(Ordering::Relaxed) + self.unflushed.get()
    }
}

/// Named shared counters.
#[derive(Default)]
pub struct SharedCounters {
    map: RwLock<HashMap<String, Arc<SharedCounter>>>,
}

impl SharedCounters {
    /// The counter for `key`, created at zero on first use.
    pub fn counter(&self, key: &str) -> Arc<SharedCounter> {
        if let Some(c) = self.map.read().get(key) {
            return c.clone();
        }
        self.map.write().entry(key.to_owned()).or_default().clone()
    }

    /// Flushes every counter's local delta to the cluster and takes the totals back (a delta of 0 reads
    /// the others' adds). On failure the deltas are kept for the next flush.
    pub async fn flush(&self, cluster: &dyn Cluster) {
        let counters: Vec<(String, Arc<SharedCounter>)> =
            self.map.read().iter().map(|(k, c)| (k.clone(), c.clone())).collect();
        if counters.is_empty() {
            return;
        }
        let deltas: Vec<(String, i64)> = counters
            .iter()
            .map(|(key, c)| {
                let delta = c.unflushed.take();
                c.total.fetch_add(delta, Ordering::Relaxed);
                (key.clone(), delta)
            })
            .collect();
        match cluster.add_counters(deltas.clone()).await {
            Ok(totals) => {
                for ((_, c), total) in counters.iter().zip(totals) {
                    c.total.store(total, Ordering::Relaxed);
                }
            }
            Err(e) => {
                tracing::debug!(error = %e, "counter flush failed; deltas kept");
                for ((_, c), (_, delta)) in counters.iter().zip(deltas) {
                    c.total.fetch_sub(delta, Ordering::Relaxed);
                    c.unflushed.add(delta);
                }
            }
        }
    }
}

/// Flushes `counters` to the cluster every `every` until `shutdown`, and once more then.
pub(crate) async fn flush_shared(
    counters: Arc<SharedCounters>,
    every: Duration,
    cluster: Arc<dyn Cluster>,
    shutdown: CancellationToken,
) {
    let mut tick = tokio::time::interval(every.max(Duration::from_millis(1)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tick.tick() => counters.flush(cluster.as_ref()).await,
        }
    }
    counters.flush(cluster.as_ref()).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn concurrent_adds_are_exact() {
        let c = Arc::new(ShardedCounter::default());
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let c = c.clone();
                std::thread::spawn(move || {
                    for _ in 0..10_000 {
                        c.add(1);
                    }
                    c.add(-5);
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(c.get(), 8 * 10_000 - 40);
        assert_eq!(c.take(), 8 * 10_000 - 40);
        assert_eq!(c.get(), 0);
    }

    #[test]
    fn named_counters() {
        let cs = Counters::default();
        cs.add("votes/1", 2);
        cs.counter("votes/1").add(3);
        assert_eq!(cs.get("votes/1"), 5);
        assert_eq!(cs.get("missing"), 0);
        assert_eq!(cs.snapshot().get("votes/1"), Some(&5));
        cs.remove("votes/1");
        assert_eq!(cs.get("votes/1"), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn periodic_snapshots() {
        let cs = Arc::new(Counters::default());
        let stop = CancellationToken::new();
        let mut rx = cs.spawn_snapshots(Duration::from_secs(1), stop.clone());
        cs.add("k", 7);
        rx.changed().await.unwrap();
        rx.changed().await.unwrap();
        assert_eq!(rx.borrow().get("k"), Some(&7));
        stop.cancel();
    }
}
