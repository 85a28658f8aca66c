//! Publishing seat changes in the order they were committed.
//!
//! Bookings of one event race on its seats row; each winning compare-and-set moves the row to the next
//! `version`. The tasks that won then publish their events, and without care a task that committed
//! version 7 could publish before the one that committed version 6 — subscribers would see the count go
//! 44, 45 and end on a stale number. The [`Sequencer`] holds back a committed version's events until every
//! earlier version is published or known to be someone else's.
//!
//! It decides without waiting on time: a task registers an [`Attempt`] for version `v` *before* its
//! compare-and-set, so when a later version has been committed here, an earlier version with no attempt
//! registered can only have been committed elsewhere (another node, whose events reach subscribers
//! through the cluster) and is skipped. This orders publication only; correctness of the seat count never
//! depends on it (that is the store's conditional write), and the lock is held for a few map operations,
//! never across an await.
//!
//! Across nodes this order cannot hold by itself: each node publishes its own versions in order, but the
//! cluster interleaves the nodes' publishes as they arrive. So `seat_update` is published with its version
//! ([`Context::publish_versioned`](chorus_core::module::Context::publish_versioned)): the cluster drops a
//! seat count older than one already published, and watchers never see the count go back or end stale.

use parking_lot::Mutex;
use std::collections::{BTreeMap, HashMap};

/// Publishes one event on an event's topic, with its place in commit order ([`commit_order`]). Passed in by each
/// caller rather than kept, so the sequencer holds no handle on the node.
pub type Publish<'a, E> = &'a (dyn Fn(u64, u64, &E) + Send + Sync);

/// The place of the `index`th event of `version` in commit order: one write may carry several events
/// (a batch of bookings), each after the one before.
pub fn commit_order(version: u64, index: usize) -> u64 {
    (version << 32) | (index as u64 & 0xffff_ffff)
}

/// Orders publication per event (per seats row).
pub struct Sequencer<E> {
    events: Mutex<HashMap<u64, Order<E>>>,
}

impl<E> Default for Sequencer<E> {
    fn default() -> Self {
        Self { events: Mutex::default() }
    }
}

/// The state of one event while changes to it are in flight.
struct Order<E> {
    /// The next version to publish.
    next: u64,
    /// Registered attempts per target version.
    attempts: BTreeMap<u64, usize>,
    /// Versions committed here, with their events, waiting for earlier versions.
    committed: BTreeMap<u64, Vec<E>>,
}

impl<E> Order<E> {
    /// Publishes every version that can go now, in order.
    fn drain(&mut self, event_id: u64, publish: Publish<'_, E>) {
        loop {
            if let Some(events) = self.committed.remove(&self.next) {
                for (i, e) in events.iter().enumerate() {
                    publish(event_id, commit_order(self.next, i), e);
                }
                self.next += 1;
                continue;
            }
            let attempted = self.attempts.contains_key(&self.next);
            let later_committed = self.committed.keys().next().is_some_and(|&v| v > self.next);
            if later_committed && !attempted {
                // Committed (a later version exists) but by no attempt of ours: another node's change.
                self.next += 1;
                continue;
            }
            return;
        }
    }

    fn idle(&self) -> bool {
        self.attempts.is_empty() && self.committed.is_empty()
    }
}

impl<E> Sequencer<E> {
    /// Registers an attempt to commit `version` of `event_id`; call it before the conditional write.
    /// Whatever the attempt's end releases (its own events or others' waiting behind it) goes to `publish`.
    pub fn attempt<'a>(&'a self, event_id: u64, version: u64, publish: Publish<'a, E>) -> Attempt<'a, E> {
        let mut events = self.events.lock();
        let order = events.entry(event_id).or_insert_with(|| Order {
            next: version,
            attempts: BTreeMap::new(),
            committed: BTreeMap::new(),
        });
        *order.attempts.entry(version).or_default() += 1;
        Attempt { sequencer: self, event_id, version, publish, open: true }
    }

    fn finish(&self, event_id: u64, version: u64, events_to_publish: Option<Vec<E>>, publish: Publish<'_, E>) {
        let mut events = self.events.lock();
        let Some(order) = events.get_mut(&event_id) else {
            return;
        };
        if let Some(n) = order.attempts.get_mut(&version) {
            *n -= 1;
            if *n == 0 {
                order.attempts.remove(&version);
            }
        }
        if let Some(list) = events_to_publish {
            if version < order.next {
                // Cannot happen (a version below `next` was committed before this attempt read the row, so
                // its write failed), but a late event is better than a lost one.
                for (i, e) in list.iter().enumerate() {
                    publish(event_id, commit_order(version, i), e);
                }
            } else {
                order.committed.insert(version, list);
            }
        }
        order.drain(event_id, publish);
        if order.idle() {
            events.remove(&event_id);
        }
    }

    /// Events with changes in flight (for tests: the map empties when nothing is in flight).
    #[cfg(test)]
    fn in_flight(&self) -> usize {
        self.events.lock().len()
    }
}

/// A registered attempt. [`Attempt::committed`] when the write applied; dropping it otherwise.
pub struct Attempt<'a, E> {
    sequencer: &'a Sequencer<E>,
    event_id: u64,
    version: u64,
    publish: Publish<'a, E>,
    open: bool,
}

impl<E> Attempt<'_, E> {
    /// The write applied: publish `events` once every earlier version is out.
    pub fn committed(mut self, events: Vec<E>) {
        self.open = false;
        self.sequencer.finish(self.event_id, self.version, Some(events), self.publish);
    }
}

impl<E> Drop for Attempt<'_, E> {
    fn drop(&mut self) {
        if self.open {
            self.sequencer.finish(self.event_id, self.version, None, self.publish);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Seen = Mutex<Vec<u64>>;

    fn recorder(seen: &Seen) -> impl Fn(u64, u64, &u64) + Send + Sync + '_ {
        move |_, _, e| seen.lock().push(*e)
    }

    #[test]
    fn later_commits_wait_for_earlier_attempts() {
        let (seq, seen) = (Sequencer::default(), Seen::default());
        let publish = recorder(&seen);
        let a6 = seq.attempt(1, 6, &publish);
        let a7 = seq.attempt(1, 7, &publish);
        let loser = seq.attempt(1, 7, &publish);
        a7.committed(vec![70, 71]);
        drop(loser);
        assert!(seen.lock().is_empty(), "version 7 waits for version 6");
        a6.committed(vec![60, 61]);
        assert_eq!(*seen.lock(), vec![60, 61, 70, 71]);
        assert_eq!(seq.in_flight(), 0);
    }

    #[test]
    fn versions_committed_elsewhere_are_skipped_once_a_later_one_commits_here() {
        let (seq, seen) = (Sequencer::default(), Seen::default());
        let publish = recorder(&seen);
        let failed = seq.attempt(1, 3, &publish);
        drop(failed);
        let a5 = seq.attempt(1, 5, &publish);
        a5.committed(vec![5]);
        assert_eq!(*seen.lock(), vec![5], "3 and 4 were another node's");
        let a6 = seq.attempt(1, 6, &publish);
        let a8 = seq.attempt(1, 8, &publish);
        a8.committed(vec![8]);
        assert_eq!(*seen.lock(), vec![5], "6 is still attempted here");
        drop(a6);
        assert_eq!(*seen.lock(), vec![5, 8]);
        assert_eq!(seq.in_flight(), 0);
    }

    #[test]
    fn events_are_independent() {
        let (seq, seen) = (Sequencer::default(), Seen::default());
        let publish = recorder(&seen);
        let a = seq.attempt(1, 2, &publish);
        let b = seq.attempt(2, 9, &publish);
        b.committed(vec![9]);
        assert_eq!(*seen.lock(), vec![9]);
        a.committed(vec![2]);
        assert_eq!(*seen.lock(), vec![9, 2]);
    }
}
