//! The topic registry: which connections are subscribed where, fan-out, and per-topic history.
//!
//! Topics are spread over [`SHARDS`] independently locked maps, so subscribe/unsubscribe on different
//! topics rarely contend. Each topic has its own mutex held during a publish: it makes "assign the next
//! sequence number, remember the event, and enqueue it to every subscriber" atomic, so every subscriber
//! sees one topic's events in sequence order. A publish encodes the event at most once per encoding (each
//! codec, each dialect) and shares the bytes.
//!
//! History: with [`History::size`] > 0 a topic keeps its last events and an *epoch* (a random id of this
//! incarnation of the topic's sequence). A subscriber that names the position it last saw (epoch and
//! offset) gets the events after it replayed, in order, before any newer event — or learns that the gap
//! cannot be filled (another epoch, or the history no longer reaches back that far). A topic without
//! subscribers keeps its history for [`History::ttl`]; [`Registry::sweep`] forgets it after that.
//!
//! Cluster mode ([`Registry::clustered`]): sequence numbers and epochs come from the cluster bus, not from
//! this registry. Events arrive through [`Registry::apply`] in any order and possibly twice (the publish
//! reply and the bus can race); each topic delivers them strictly in sequence order, each once, holding
//! early ones back until the gap before them is filled (from the bus, or from the shared history by
//! [`Registry::gaps`]). A topic lives on a node only while it has local subscribers (or joiners); the
//! shared history lives in the bus, the local one is a cache for recovery.

use crate::queue::{Encoding, Framing, OutQueue, Push};
use bytes::Bytes;
use chorus_protocol::{CloseCode, Codec, Payload, Position, ServerFrame, codec::encode_server};
use parking_lot::{Mutex, RwLock};
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::hash::{BuildHasher, RandomState};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// Number of registry shards. A power of two comfortably above the core count of the machines chorus
/// targets, so two publishers on different topics almost never wait on the same shard lock.
pub const SHARDS: usize = 64;

/// One subscription of one connection.
#[derive(Clone)]
pub struct Subscriber {
    /// Connection id.
    pub conn_id: u64,
    /// Where its frames go.
    pub queue: Arc<OutQueue>,
    /// How its events are encoded: usually the queue's own encoding; a Socket.IO session carries several
    /// namespaces, each its own encoding, on one queue.
    pub encoding: Encoding,
}

impl Subscriber {
    /// A subscriber whose events are encoded as its queue's connection expects.
    pub fn new(conn_id: u64, queue: Arc<OutQueue>) -> Self {
        let encoding = queue.encoding().clone();
        Self { conn_id, queue, encoding }
    }
}

/// How much history topics keep.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct History {
    /// Events kept per topic (0: no history, topics vanish with their last subscriber).
    pub size: usize,
    /// How long a topic without subscribers keeps its history.
    pub ttl: Duration,
}

struct TopicState {
    seq: u64,
    epoch: Arc<str>,
    subscribers: Vec<Subscriber>,
    history: VecDeque<(u64, Payload)>,
    idle_since: Option<Instant>,
    removed: bool,
    /// Cluster mode: connections between [`Registry::reserve`] and their subscribe (or release).
    joining: usize,
    /// Cluster mode: whether `epoch`/`seq` hold the bus's head yet (events before are kept in `pending`).
    synced: bool,
    /// Cluster mode: events that arrived ahead of the next sequence number, with how they came.
    pending: BTreeMap<u64, Held>,
    /// Cluster mode: since when `pending` waits for a missing event.
    gap_since: Option<Instant>,
}

impl TopicState {
    fn new() -> Self {
        Self {
            seq: 0,
            epoch: Arc::from(new_epoch()),
            subscribers: Vec::new(),
            history: VecDeque::new(),
            idle_since: Some(Instant::now()),
            removed: false,
            joining: 0,
            synced: false,
            pending: BTreeMap::new(),
            gap_since: None,
        }
    }

    /// Whether nobody holds the topic on this node any more.
    fn unheld(&self) -> bool {
        self.subscribers.is_empty() && self.joining == 0
    }
}

/// How a clustered event reached this node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    /// The reply to this node's own publish: it may overtake earlier events still on the bus.
    Reply,
    /// The topic's channel, which carries its events in sequence order.
    Bus,
    /// The topic's shared history, read in sequence order.
    History,
    /// The reply to a publish this node delivered to its own subscribers while the bus was down, now
    /// sequenced: it only advances the topic here.
    Outbox,
    /// The same, come back on the topic's channel.
    OutboxOnBus,
}

/// A clustered event waiting for the ones before it.
struct Held {
    payload: Payload,
    delivered: bool,
    /// Whether it came in sequence order (bus or history): then every event before it that has not come
    /// was lost on the way, rather than still travelling.
    ordered: bool,
}

/// A fresh random epoch.
pub fn new_epoch() -> String {
    format!("{:016x}", rand::random::<u64>())
}

/// A gap a clustered topic waits on: events after `after` up to (excluding) `until` are missing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gap {
    /// The topic.
    pub topic: String,
    /// The epoch the missing events belong to.
    pub epoch: Arc<str>,
    /// The last event delivered.
    pub after: u64,
    /// The first event held back (`None`: nothing is held; the gap was found by a resync).
    pub until: Option<u64>,
    /// Whether the missing events are known lost (the first held event came in sequence order), rather
    /// than possibly still on the bus behind a reply that overtook them.
    pub lost: bool,
    /// How long the gap has been open.
    pub open_for: Duration,
}

type Shard = RwLock<HashMap<Arc<str>, Arc<Mutex<TopicState>>>>;

/// What a publish did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Fanout {
    /// The event's sequence number on its topic (0 when the topic had no subscribers and no history:
    /// nothing is kept).
    pub seq: u64,
    /// Subscriber queues the event was placed in.
    pub delivered: usize,
    /// Subscribers cut as slow consumers by this publish.
    pub overflowed: usize,
}

/// What a subscribe found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscribed {
    /// The topic's sequence number: the next event carries `seq + 1`.
    pub seq: u64,
    /// The epoch of the topic's sequence.
    pub epoch: Arc<str>,
    /// For a subscribe with a position: whether every event after it was replayed.
    pub recovered: Option<bool>,
}

/// The sharded topic registry.
pub struct Registry {
    shards: Box<[Shard]>,
    hasher: RandomState,
    history: History,
    clustered: bool,
    /// Cluster mode: topics holding events back for a missing one, so looking for gaps visits them
    /// only, not every topic. Locked after (never while waiting for) a topic's lock.
    gapped: Mutex<HashSet<Arc<str>>>,
}

impl Default for Registry {
    fn default() -> Self {
        Self::new(History::default())
    }
}

/// Encodes an event for one subscriber's encoding.
fn encode_for(encoding: &Encoding, frame: &ServerFrame, topic: &str, seq: u64, payload: &Payload) -> Option<Bytes> {
    match encoding {
        Encoding::Native(codec) => match encode_server(*codec, frame) {
            Ok(b) => Some(b),
            Err(e) => {
                tracing::error!(topic, error = %e, "event cannot be encoded; not delivered");
                None
            }
        },
        Encoding::Dialect(encoder) => encoder.encode_event(topic, seq, payload),
    }
}

/// Gives an event to each subscriber, encoding and framing it at most once per encoding (each codec, each
/// dialect) and queue framing: every subscriber of one kind gets the same bytes.
fn fan_out(subscribers: &[Subscriber], topic: &str, seq: u64, payload: &Payload) -> Fanout {
    let frame = ServerFrame::Event { topic: topic.to_owned(), seq, payload: payload.clone() };
    // By codec and framing; `None` not yet encoded, `Some(None)` not carried by that encoding.
    let mut native: [Option<Option<Bytes>>; 4] = [None, None, None, None];
    // Dialect encodings seen in this publish, keyed by encoder identity and framing; a node has a handful.
    let mut dialects: Vec<(*const (), Framing, Option<Bytes>)> = Vec::new();
    let mut out = Fanout { seq, ..Fanout::default() };
    for sub in subscribers {
        let encoding = &sub.encoding;
        let framing = sub.queue.framing();
        let wire = |codec| encode_for(encoding, &frame, topic, seq, payload).map(|b| framing.wire(codec, b));
        let bytes = match encoding {
            Encoding::Native(codec) => {
                native[codec.index() * 2 + framing.index()].get_or_insert_with(|| wire(*codec)).clone()
            }
            Encoding::Dialect(encoder) => {
                let key = Arc::as_ptr(encoder) as *const ();
                match dialects.iter().find(|(k, f, _)| *k == key && *f == framing) {
                    Some((_, _, bytes)) => bytes.clone(),
                    None => {
                        let bytes = wire(Codec::Json);
                        dialects.push((key, framing, bytes.clone()));
                        bytes
                    }
                }
            }
        };
        let Some(bytes) = bytes else { continue };
        match sub.queue.push_wire(bytes) {
            Push::Queued => out.delivered += 1,
            Push::Overflow => out.overflowed += 1,
            Push::Closed => {}
        }
    }
    out
}

/// Moves a clustered topic to another position (events were lost, or its sequence restarted with a new
/// epoch) and closes its subscribers with [`CloseCode::Resync`]: they reconnect, subscribe with their
/// positions, and learn from `recovered` what they lost. Returns how many were closed.
fn restart(st: &mut TopicState, epoch: &str, seq: u64) -> usize {
    if *st.epoch == *epoch {
        st.pending.retain(|s, _| *s > seq);
    } else {
        st.pending.clear();
    }
    st.epoch = Arc::from(epoch);
    st.seq = seq;
    st.history.clear();
    for sub in &st.subscribers {
        sub.queue.close(CloseCode::Resync, "events of a subscription were lost; resubscribe with your position");
    }
    st.subscribers.len()
}

/// The events after `offset` up to the topic's position, from `older` (fetched from a shared history)
/// and the local history; `None` when they are not all there.
fn missed_events(st: &TopicState, older: &[(u64, Payload)], offset: u64) -> Option<Vec<(u64, Payload)>> {
    let mut next = offset + 1;
    let mut out = Vec::new();
    for (seq, payload) in older.iter().chain(st.history.iter()) {
        if *seq == next && *seq <= st.seq {
            out.push((*seq, payload.clone()));
            next += 1;
        }
    }
    (next == st.seq + 1).then_some(out)
}

impl Registry {
    /// A registry keeping `history` per topic.
    pub fn new(history: History) -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Shard::default()).collect(),
            hasher: RandomState::new(),
            history,
            clustered: false,
            gapped: Mutex::default(),
        }
    }

    /// A registry for cluster mode: sequence numbers come from the bus through [`Registry::apply`], and
    /// `history` is the local cache of each topic's latest events.
    pub fn clustered(history: History) -> Self {
        Self { clustered: true, ..Self::new(history) }
    }

    fn shard(&self, topic: &str) -> &Shard {
        &self.shards[(self.hasher.hash_one(topic) as usize) & (SHARDS - 1)]
    }

    fn state(&self, topic: &str) -> Option<Arc<Mutex<TopicState>>> {
        self.shard(topic).read().get(topic).cloned()
    }

    fn state_or_new(&self, topic: &str) -> Arc<Mutex<TopicState>> {
        match self.state(topic) {
            Some(s) => s,
            None => self
                .shard(topic)
                .write()
                .entry(Arc::from(topic))
                .or_insert_with(|| Arc::new(Mutex::new(TopicState::new())))
                .clone(),
        }
    }

    /// Adds a subscriber (replacing an earlier entry of the same connection). With a position, replays
    /// the events after it into the subscriber's queue first, when the history (`older`: events fetched
    /// from the shared history, then the local one) still holds all of them.
    pub fn subscribe(
        &self,
        topic: &str,
        subscriber: Subscriber,
        since: Option<&Position>,
        older: &[(u64, Payload)],
    ) -> Subscribed {
        loop {
            let state = self.state_or_new(topic);
            let mut st = state.lock();
            if st.removed {
                continue;
            }
            st.idle_since = None;
            if self.clustered {
                st.joining = st.joining.saturating_sub(1);
            }
            st.subscribers.retain(|s| s.conn_id != subscriber.conn_id);
            let recovered = since.map(|pos| {
                let missed = (*pos.epoch == *st.epoch && pos.offset <= st.seq)
                    .then(|| missed_events(&st, older, pos.offset))
                    .flatten();
                let ok = missed.is_some();
                for (seq, payload) in missed.into_iter().flatten() {
                    let frame = ServerFrame::Event { topic: topic.to_owned(), seq, payload: payload.clone() };
                    if let Some(bytes) = encode_for(&subscriber.encoding, &frame, topic, seq, &payload) {
                        subscriber.queue.push(bytes);
                    }
                }
                ok
            });
            st.subscribers.push(subscriber);
            return Subscribed { seq: st.seq, epoch: st.epoch.clone(), recovered };
        }
    }

    /// Removes a connection's subscription; returns whether it existed. A topic left without
    /// subscribers is dropped at once when it has no history, else when [`Registry::sweep`] finds its
    /// history expired.
    pub fn unsubscribe(&self, topic: &str, conn_id: u64) -> bool {
        let Some(state) = self.state(topic) else { return false };
        let drop_now = {
            let mut st = state.lock();
            let before = st.subscribers.len();
            st.subscribers.retain(|s| s.conn_id != conn_id);
            if st.subscribers.len() == before {
                return false;
            }
            if st.subscribers.is_empty() {
                st.idle_since = Some(Instant::now());
            }
            st.unheld() && (st.history.is_empty() || self.clustered)
        };
        if drop_now {
            self.remove_if_idle(topic, &state, |_| true);
        }
        true
    }

    fn remove_if_idle(&self, topic: &str, state: &Arc<Mutex<TopicState>>, expired: impl Fn(&TopicState) -> bool) {
        let mut map = self.shard(topic).write();
        let mut st = state.lock();
        if st.unheld() && !st.removed && expired(&st) {
            st.removed = true;
            map.remove(topic);
        }
    }

    /// Forgets topics that have had no subscriber for longer than the history TTL; returns how many.
    pub fn sweep(&self, now: Instant) -> usize {
        let ttl = self.history.ttl;
        let expired = |st: &TopicState| st.idle_since.is_some_and(|t| now.saturating_duration_since(t) >= ttl);
        let mut removed = 0;
        for shard in self.shards.iter() {
            let candidates: Vec<(Arc<str>, Arc<Mutex<TopicState>>)> =
                shard.read().iter().filter(|(_, s)| expired(&s.lock())).map(|(k, s)| (k.clone(), s.clone())).collect();
            for (topic, state) in candidates {
                self.remove_if_idle(&topic, &state, expired);
                removed += usize::from(state.lock().removed);
            }
        }
        removed
    }

    /// Fans an event out to every local subscriber of `topic` (and keeps it in the topic's history),
    /// numbering it with the topic's next sequence number. Single-node mode only.
    pub fn publish(&self, topic: &str, payload: &Payload) -> Fanout {
        let state = if self.history.size > 0 { Some(self.state_or_new(topic)) } else { self.state(topic) };
        let Some(state) = state else { return Fanout::default() };
        let mut st = state.lock();
        if st.removed {
            drop(st);
            return self.publish(topic, payload);
        }
        st.seq += 1;
        let seq = st.seq;
        self.remember(&mut st, seq, payload);
        fan_out(&st.subscribers, topic, seq, payload)
    }

    /// Delivers `payload` to this node's subscribers without a sequence number (`seq` 0: not in any
    /// history). Cluster mode, while the bus is unreachable.
    pub fn publish_unsequenced(&self, topic: &str, payload: &Payload) -> Fanout {
        match self.state(topic) {
            Some(state) => fan_out(&state.lock().subscribers, topic, 0, payload),
            None => Fanout::default(),
        }
    }

    fn remember(&self, st: &mut TopicState, seq: u64, payload: &Payload) {
        if self.history.size > 0 {
            if st.history.len() == self.history.size {
                st.history.pop_front();
            }
            st.history.push_back((seq, payload.clone()));
        }
    }

    /// Cluster mode: marks a connection as about to subscribe, creating the topic on this node if needed,
    /// so the topic cannot vanish while the bus is asked for its head. Pair with [`Registry::subscribe`]
    /// or [`Registry::release`]. Returns whether the topic already knows its head ([`Registry::sync`]).
    pub fn reserve(&self, topic: &str) -> bool {
        loop {
            let state = self.state_or_new(topic);
            let mut st = state.lock();
            if !st.removed {
                st.joining += 1;
                return st.synced;
            }
        }
    }

    /// Cluster mode: undoes a [`Registry::reserve`] whose subscribe did not happen.
    pub fn release(&self, topic: &str) {
        let Some(state) = self.state(topic) else { return };
        let unheld = {
            let mut st = state.lock();
            st.joining = st.joining.saturating_sub(1);
            st.unheld()
        };
        if unheld {
            self.remove_if_idle(topic, &state, |_| true);
        }
    }

    /// Cluster mode: sets a topic's position from the bus's head (the last event sequenced before this
    /// node started listening), once; events held back beyond it are then delivered.
    pub fn sync(&self, topic: &str, epoch: &str, seq: u64) {
        let Some(state) = self.state(topic) else { return };
        let mut st = state.lock();
        if st.synced {
            return;
        }
        st.synced = true;
        st.epoch = Arc::from(epoch);
        st.seq = seq;
        st.pending.retain(|s, _| *s > seq);
        self.drain(topic, &mut st);
    }

    /// Cluster mode: an event sequenced by the bus. Delivered at once when it is the topic's next one;
    /// held back when an earlier one is missing; dropped when already seen (the same event may come as
    /// a reply and on the bus). Topics without local subscribers ignore events.
    pub fn apply(&self, topic: &str, epoch: &str, seq: u64, payload: &Payload, via: Via) -> Fanout {
        let Some(state) = self.state(topic) else { return Fanout::default() };
        let mut st = state.lock();
        if st.removed {
            return Fanout::default();
        }
        if st.synced && *st.epoch != *epoch {
            tracing::info!(topic, old = %st.epoch, new = epoch, "topic sequence restarted in the cluster");
            restart(&mut st, epoch, seq.saturating_sub(1));
        }
        if st.synced && seq <= st.seq {
            return Fanout::default();
        }
        let ordered = matches!(via, Via::Bus | Via::History | Via::OutboxOnBus);
        let delivered = matches!(via, Via::Outbox | Via::OutboxOnBus);
        st.pending
            .entry(seq)
            .and_modify(|held| {
                held.ordered |= ordered;
                held.delivered |= delivered;
            })
            .or_insert_with(|| Held { payload: payload.clone(), delivered, ordered });
        if st.synced { self.drain(topic, &mut st) } else { Fanout::default() }
    }

    /// Delivers the held-back events that are next in sequence.
    fn drain(&self, topic: &str, st: &mut TopicState) -> Fanout {
        let mut out = Fanout::default();
        while let Some(entry) = st.pending.first_entry() {
            if *entry.key() != st.seq + 1 {
                break;
            }
            let (seq, Held { payload, delivered, .. }) = entry.remove_entry();
            st.seq = seq;
            self.remember(st, seq, &payload);
            if !delivered {
                let f = fan_out(&st.subscribers, topic, seq, &payload);
                out.delivered += f.delivered;
                out.overflowed += f.overflowed;
            }
            out.seq = seq;
        }
        match (st.pending.is_empty(), st.gap_since) {
            (true, Some(_)) => {
                st.gap_since = None;
                self.gapped.lock().remove(topic);
            }
            (false, None) => {
                st.gap_since = Some(Instant::now());
                self.gapped.lock().insert(Arc::from(topic));
            }
            _ => {}
        }
        out
    }

    /// Cluster mode: the gaps that have been waiting at least `wait` (the bus lost or reordered an
    /// event), or with `all`, every topic's position (to look for events missed while the bus was down).
    pub fn gaps(&self, now: Instant, wait: Duration, all: bool) -> Vec<Gap> {
        let topics: Vec<Arc<str>> = if all {
            self.shards.iter().flat_map(|s| s.read().keys().cloned().collect::<Vec<_>>()).collect()
        } else {
            self.gapped.lock().iter().cloned().collect()
        };
        let mut gaps = Vec::new();
        for topic in topics {
            let Some(state) = self.state(&topic) else {
                self.gapped.lock().remove(&topic);
                continue;
            };
            let st = state.lock();
            if st.gap_since.is_none() && !all {
                // A newer incarnation of a topic that was removed with a gap open.
                self.gapped.lock().remove(&topic);
            }
            let open_for = st.gap_since.map_or(Duration::ZERO, |t| now.saturating_duration_since(t));
            if st.synced && ((st.gap_since.is_some() && open_for >= wait) || all) {
                let first = st.pending.iter().next();
                gaps.push(Gap {
                    topic: topic.to_string(),
                    epoch: st.epoch.clone(),
                    after: st.seq,
                    until: first.map(|(seq, _)| *seq),
                    lost: first.is_some_and(|(_, held)| held.ordered),
                    open_for,
                });
            }
        }
        gaps
    }

    /// Cluster mode: a gap could not be filled (the shared history no longer reaches back, or the epoch
    /// changed). The topic skips to its held-back events, and its subscribers — who cannot get what
    /// they missed on this connection — are closed with [`CloseCode::Resync`] so they reconnect and
    /// learn what they lost from `recovered`. Returns how many were closed.
    pub fn skip_gap(&self, topic: &str, epoch: &str, seq: u64) -> usize {
        let Some(state) = self.state(topic) else { return 0 };
        let mut st = state.lock();
        if st.removed || (*st.epoch == *epoch && st.seq >= seq) {
            return 0;
        }
        tracing::warn!(topic, after = st.seq, to = seq, "events lost to the cluster bus; subscribers must resync");
        let closed = restart(&mut st, epoch, seq);
        self.drain(topic, &mut st);
        closed
    }

    /// Cluster mode: topics held on this node.
    pub fn topics(&self) -> Vec<String> {
        self.shards.iter().flat_map(|s| s.read().keys().map(|k| k.to_string()).collect::<Vec<_>>()).collect()
    }

    /// Subscribers of a topic on this node.
    pub fn subscriber_count(&self, topic: &str) -> usize {
        self.state(topic).map_or(0, |s| s.lock().subscribers.len())
    }

    /// Topics this node keeps (with subscribers, or with history not yet expired).
    pub fn topic_count(&self) -> usize {
        self.shards.iter().map(|s| s.read().len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chorus_protocol::codec::decode_server;

    fn sub(conn_id: u64, codec: Codec, max: usize) -> Subscriber {
        Subscriber::new(conn_id, Arc::new(OutQueue::new(codec, max)))
    }

    #[test]
    fn fanout_reaches_only_the_topic_and_encodes_per_codec() {
        let reg = Registry::default();
        let a = sub(1, Codec::MsgPack, 1 << 20);
        let b = sub(2, Codec::Json, 1 << 20);
        let other = sub(3, Codec::Json, 1 << 20);
        reg.subscribe("room/1", a.clone(), None, &[]);
        reg.subscribe("room/1", b.clone(), None, &[]);
        reg.subscribe("room/2", other.clone(), None, &[]);
        let payload = Payload::from_value(&serde_json::json!({"hi": 1})).unwrap();
        let f = reg.publish("room/1", &payload);
        assert_eq!(f, Fanout { seq: 1, delivered: 2, overflowed: 0 });
        assert_eq!(reg.publish("room/1", &payload).seq, 2);
        assert_eq!(reg.publish("nobody/here", &payload), Fanout::default());
        assert_eq!(reg.subscriber_count("room/1"), 2);
        assert_eq!(reg.topic_count(), 2);
        assert!(reg.unsubscribe("room/2", 3));
        assert!(!reg.unsubscribe("room/2", 3));
        assert_eq!(reg.topic_count(), 1);
        let _ = (a, b, other);
    }

    /// Closes a queue and returns the native frames it held (the last one is the `disconnect`).
    fn drain(queue: &Arc<OutQueue>) -> Vec<ServerFrame> {
        struct Sink(Arc<Mutex<Vec<Bytes>>>);
        impl crate::queue::FrameSink for Sink {
            async fn send_batch(&mut self, frames: &[Bytes]) -> std::io::Result<()> {
                self.0.lock().extend_from_slice(frames);
                Ok(())
            }
            async fn close(&mut self, _: chorus_protocol::CloseCode, _: &str) {}
        }
        queue.close(chorus_protocol::CloseCode::Normal, "test");
        let written = Arc::new(Mutex::new(Vec::new()));
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        rt.block_on(crate::queue::run_writer(
            queue.clone(),
            Sink(written.clone()),
            crate::metrics::Metrics::new(),
            "test",
        ));
        let codec = queue.codec();
        written.lock().iter().map(|b| decode_server(codec, b, 1 << 20).unwrap()).collect()
    }

    fn events(frames: &[ServerFrame]) -> Vec<u64> {
        frames.iter().filter_map(|f| if let ServerFrame::Event { seq, .. } = f { Some(*seq) } else { None }).collect()
    }

    #[test]
    fn events_decode_in_each_codec() {
        let reg = Registry::default();
        let q_json = Arc::new(OutQueue::new(Codec::Json, 1 << 20));
        reg.subscribe("t", Subscriber::new(1, q_json.clone()), None, &[]);
        let payload = Payload::from_value(&serde_json::json!([1, "x"])).unwrap();
        reg.publish("t", &payload);
        let frames = drain(&q_json);
        assert_eq!(frames[0], ServerFrame::Event { topic: "t".into(), seq: 1, payload });
    }

    fn with_history(size: usize) -> Registry {
        Registry::new(History { size, ttl: Duration::from_secs(60) })
    }

    fn position(s: &Subscribed, offset: u64) -> Position {
        Position { epoch: s.epoch.to_string(), offset }
    }

    #[test]
    fn a_returning_subscriber_gets_exactly_what_it_missed() {
        let reg = with_history(10);
        let first = reg.subscribe("t", sub(1, Codec::MsgPack, 1 << 20), None, &[]);
        assert_eq!((first.seq, first.recovered), (0, None));
        let p = Payload::from_value(&"x").unwrap();
        reg.publish("t", &p);
        reg.publish("t", &p);
        reg.unsubscribe("t", 1);
        for _ in 0..3 {
            reg.publish("t", &p);
        }
        assert_eq!(reg.topic_count(), 1, "history outlives the last subscriber");
        let back = sub(2, Codec::Json, 1 << 20);
        let again = reg.subscribe("t", back.clone(), Some(&position(&first, 2)), &[]);
        assert_eq!((again.seq, again.recovered, &again.epoch), (5, Some(true), &first.epoch));
        reg.publish("t", &p);
        assert_eq!(events(&drain(&back.queue)), vec![3, 4, 5, 6], "missed events first, then live ones, in order");
    }

    #[test]
    fn gaps_that_cannot_be_filled_are_reported() {
        let reg = with_history(3);
        let s = reg.subscribe("t", sub(1, Codec::MsgPack, 1 << 20), None, &[]);
        let p = Payload::from_value(&1).unwrap();
        for _ in 0..6 {
            reg.publish("t", &p);
        }
        let trimmed = sub(2, Codec::MsgPack, 1 << 20);
        assert_eq!(reg.subscribe("t", trimmed.clone(), Some(&position(&s, 1)), &[]).recovered, Some(false), "trimmed");
        assert_eq!(events(&drain(&trimmed.queue)), Vec::<u64>::new(), "nothing replayed on failure");
        assert_eq!(
            reg.subscribe("t", sub(3, Codec::MsgPack, 1 << 20), Some(&position(&s, 3)), &[]).recovered,
            Some(true)
        );
        assert_eq!(
            reg.subscribe("t", sub(4, Codec::MsgPack, 1 << 20), Some(&position(&s, 6)), &[]).recovered,
            Some(true)
        );
        assert_eq!(
            reg.subscribe("t", sub(5, Codec::MsgPack, 1 << 20), Some(&position(&s, 7)), &[]).recovered,
            Some(false)
        );
        let other_epoch = Position { epoch: "another".into(), offset: 6 };
        assert_eq!(reg.subscribe("t", sub(6, Codec::MsgPack, 1 << 20), Some(&other_epoch), &[]).recovered, Some(false));
    }

    #[test]
    fn idle_histories_expire_and_a_new_epoch_starts() {
        let rt = tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().unwrap();
        rt.block_on(async {
            let reg = with_history(10);
            let s = reg.subscribe("t", sub(1, Codec::MsgPack, 1 << 20), None, &[]);
            reg.publish("t", &Payload::null());
            reg.unsubscribe("t", 1);
            assert_eq!(reg.sweep(Instant::now()), 0);
            tokio::time::advance(Duration::from_secs(61)).await;
            assert_eq!(reg.sweep(Instant::now()), 1);
            assert_eq!(reg.topic_count(), 0);
            let fresh = reg.subscribe("t", sub(2, Codec::MsgPack, 1 << 20), Some(&position(&s, 1)), &[]);
            assert_ne!(fresh.epoch, s.epoch);
            assert_eq!((fresh.seq, fresh.recovered), (0, Some(false)));
        });
    }

    #[test]
    fn without_history_topics_vanish_with_their_subscribers() {
        let reg = Registry::default();
        assert_eq!(reg.publish("t", &Payload::null()), Fanout::default());
        reg.subscribe("t", sub(1, Codec::MsgPack, 1 << 20), None, &[]);
        reg.unsubscribe("t", 1);
        assert_eq!(reg.topic_count(), 0);
    }

    #[test]
    fn a_slow_subscriber_is_cut_and_others_still_receive() {
        let reg = Registry::default();
        let slow = sub(1, Codec::MsgPack, 100);
        let fast = sub(2, Codec::MsgPack, 1 << 20);
        reg.subscribe("t", slow.clone(), None, &[]);
        reg.subscribe("t", fast.clone(), None, &[]);
        let payload = Payload::from_value(&"x".repeat(40)).unwrap();
        let first = reg.publish("t", &payload);
        assert_eq!(first.delivered, 2);
        let second = reg.publish("t", &payload);
        assert_eq!((second.delivered, second.overflowed), (1, 1));
        assert_eq!(slow.queue.close_code(), Some(chorus_protocol::CloseCode::SlowConsumer));
        assert_eq!(reg.publish("t", &payload).delivered, 1);
        assert_eq!(fast.queue.close_code(), None);
    }

    fn clustered() -> Registry {
        Registry::clustered(History { size: 10, ttl: Duration::from_secs(60) })
    }

    fn numbered(n: u64) -> Payload {
        Payload::from_value(&n).unwrap()
    }

    #[test]
    fn clustered_topics_deliver_in_sequence_order_once() {
        let reg = clustered();
        let s = sub(1, Codec::MsgPack, 1 << 20);
        reg.reserve("t");
        assert_eq!(reg.apply("t", "e", 5, &numbered(5), Via::Bus), Fanout::default(), "held until the head is known");
        reg.sync("t", "e", 3);
        let subscribed = reg.subscribe("t", s.clone(), None, &[]);
        assert_eq!((subscribed.seq, &*subscribed.epoch), (3, "e"));
        assert_eq!(reg.apply("t", "e", 6, &numbered(6), Via::Bus).delivered, 0, "6 waits for 4 and 5");
        assert_eq!(reg.apply("t", "e", 4, &numbered(4), Via::Bus).seq, 6, "4 releases 5 and 6");
        assert_eq!(reg.apply("t", "e", 5, &numbered(5), Via::Bus), Fanout::default(), "a duplicate is dropped");
        assert_eq!(reg.apply("t", "e", 7, &numbered(7), Via::Outbox).delivered, 0, "already delivered: only advances");
        assert_eq!(reg.apply("t", "e", 8, &numbered(8), Via::Bus).delivered, 1);
        let lost = |reg: &Registry| -> Vec<bool> {
            reg.gaps(Instant::now(), Duration::ZERO, false).iter().map(|g| g.lost).collect()
        };
        reg.apply("t", "e", 10, &numbered(10), Via::Reply);
        assert_eq!(lost(&reg), vec![false], "a reply may overtake 9 on the bus");
        reg.apply("t", "e", 10, &numbered(10), Via::Bus);
        assert_eq!(lost(&reg), vec![true], "the bus carries the topic in order: 9 is lost");
        assert_eq!(events(&drain(&s.queue)), vec![4, 5, 6, 8]);
    }

    #[test]
    fn clustered_gaps_are_reported_filled_or_skipped() {
        let rt = tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().unwrap();
        let again = rt.block_on(async {
            let reg = clustered();
            let s = sub(1, Codec::MsgPack, 1 << 20);
            reg.reserve("t");
            reg.sync("t", "e", 0);
            reg.subscribe("t", s.clone(), None, &[]);
            reg.apply("t", "e", 1, &numbered(1), Via::Bus);
            reg.apply("t", "e", 3, &numbered(3), Via::Bus);
            assert!(reg.gaps(Instant::now(), Duration::from_millis(100), false).is_empty(), "not waited long enough");
            tokio::time::advance(Duration::from_millis(150)).await;
            let gaps = reg.gaps(Instant::now(), Duration::from_millis(100), false);
            let open_for = Duration::from_millis(150);
            let gap = Gap { topic: "t".into(), epoch: Arc::from("e"), after: 1, until: Some(3), lost: true, open_for };
            assert_eq!(gaps, vec![gap]);
            reg.apply("t", "e", 2, &numbered(2), Via::Bus);
            assert!(reg.gaps(Instant::now(), Duration::ZERO, false).is_empty(), "filled");
            reg.apply("t", "e", 6, &numbered(6), Via::Bus);
            assert_eq!(reg.skip_gap("t", "e", 5), 1, "4 and 5 are lost: the subscriber must resync");
            assert_eq!(s.queue.close_code(), Some(CloseCode::Resync));
            let back = sub(2, Codec::MsgPack, 1 << 20);
            let lost = Position { epoch: "e".into(), offset: 3 };
            assert_eq!(reg.subscribe("t", back.clone(), Some(&lost), &[]).recovered, Some(false));
            let fetched = [(4, numbered(4)), (5, numbered(5))];
            let again = sub(3, Codec::MsgPack, 1 << 20);
            let sub_again = reg.subscribe("t", again.clone(), Some(&lost), &fetched);
            assert_eq!((sub_again.seq, sub_again.recovered), (6, Some(true)), "the shared history fills it");
            again
        });
        assert_eq!(events(&drain(&again.queue)), vec![4, 5, 6]);
    }

    #[test]
    fn clustered_topics_live_while_held_and_restart_with_a_new_epoch() {
        let reg = clustered();
        reg.reserve("t");
        reg.release("t");
        assert_eq!(reg.topic_count(), 0, "a released reservation leaves nothing");
        let s = sub(1, Codec::MsgPack, 1 << 20);
        reg.reserve("t");
        reg.sync("t", "old", 2);
        reg.subscribe("t", s.clone(), None, &[]);
        reg.apply("t", "new", 1, &numbered(1), Via::Bus);
        assert_eq!(s.queue.close_code(), Some(CloseCode::Resync), "positions of the old epoch are void");
        assert_eq!(reg.publish_unsequenced("t", &numbered(0)).seq, 0);
        reg.unsubscribe("t", 1);
        assert_eq!(reg.topic_count(), 0, "history lives in the bus, not on the node");
    }
}
