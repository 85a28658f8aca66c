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

use crate::queue::{Encoding, OutQueue, Push};
use bytes::Bytes;
use chorus_protocol::{Payload, Position, ServerFrame, codec::encode_server};
use parking_lot::{Mutex, RwLock};
use std::collections::{HashMap, VecDeque};
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
    /// Where its frames go (and which encoding they need).
    pub queue: Arc<OutQueue>,
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
}

impl TopicState {
    fn new() -> Self {
        Self {
            seq: 0,
            epoch: Arc::from(format!("{:016x}", rand::random::<u64>())),
            subscribers: Vec::new(),
            history: VecDeque::new(),
            idle_since: Some(Instant::now()),
            removed: false,
        }
    }
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
}

impl Default for Registry {
    fn default() -> Self {
        Self::new(History::default())
    }
}

/// Encodes an event for one subscriber's encoding.
fn encode_for(encoding: &Encoding, frame: &ServerFrame, topic: &str, payload: &Payload) -> Option<Bytes> {
    match encoding {
        Encoding::Native(codec) => match encode_server(*codec, frame) {
            Ok(b) => Some(b),
            Err(e) => {
                tracing::error!(topic, error = %e, "event cannot be encoded; not delivered");
                None
            }
        },
        Encoding::Dialect(encoder) => encoder.encode_event(topic, payload),
    }
}

impl Registry {
    /// A registry keeping `history` per topic.
    pub fn new(history: History) -> Self {
        Self { shards: (0..SHARDS).map(|_| Shard::default()).collect(), hasher: RandomState::new(), history }
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
    /// the events after it into the subscriber's queue first, when the history still holds all of them.
    pub fn subscribe(&self, topic: &str, subscriber: Subscriber, since: Option<&Position>) -> Subscribed {
        loop {
            let state = self.state_or_new(topic);
            let mut st = state.lock();
            if st.removed {
                continue;
            }
            st.idle_since = None;
            st.subscribers.retain(|s| s.conn_id != subscriber.conn_id);
            let recovered = since.map(|pos| {
                let covered = st.history.front().map_or(pos.offset == st.seq, |(first, _)| pos.offset + 1 >= *first);
                let ok = *pos.epoch == *st.epoch && pos.offset <= st.seq && covered;
                if ok {
                    for (seq, payload) in st.history.iter().filter(|(seq, _)| *seq > pos.offset) {
                        let frame = ServerFrame::Event { topic: topic.to_owned(), seq: *seq, payload: payload.clone() };
                        if let Some(bytes) = encode_for(subscriber.queue.encoding(), &frame, topic, payload) {
                            subscriber.queue.push(bytes);
                        }
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
            st.subscribers.is_empty() && st.history.is_empty()
        };
        if drop_now {
            self.remove_if_idle(topic, &state, |_| true);
        }
        true
    }

    fn remove_if_idle(&self, topic: &str, state: &Arc<Mutex<TopicState>>, expired: impl Fn(&TopicState) -> bool) {
        let mut map = self.shard(topic).write();
        let mut st = state.lock();
        if st.subscribers.is_empty() && !st.removed && expired(&st) {
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

    /// Fans an event out to every local subscriber of `topic` (and keeps it in the topic's history).
    pub fn publish(&self, topic: &str, payload: &Payload) -> Fanout {
        let state = if self.history.size > 0 { Some(self.state_or_new(topic)) } else { self.state(topic) };
        let Some(state) = state else { return Fanout::default() };
        let mut st = state.lock();
        if st.removed {
            drop(st);
            return self.publish(topic, payload);
        }
        st.seq += 1;
        if self.history.size > 0 {
            if st.history.len() == self.history.size {
                st.history.pop_front();
            }
            let seq = st.seq;
            st.history.push_back((seq, payload.clone()));
        }
        let frame = ServerFrame::Event { topic: topic.to_owned(), seq: st.seq, payload: payload.clone() };
        // Each encoding is computed at most once per publish: `None` not yet, `Some(None)` not carried.
        let mut native: [Option<Option<Bytes>>; 2] = [None, None];
        // Dialect encodings seen in this publish, keyed by encoder identity; a node has a handful at most.
        let mut dialects: Vec<(*const (), Option<Bytes>)> = Vec::new();
        let mut out = Fanout { seq: st.seq, ..Fanout::default() };
        for sub in &st.subscribers {
            let encoding = sub.queue.encoding();
            let bytes = match encoding {
                Encoding::Native(codec) => {
                    native[codec.index()].get_or_insert_with(|| encode_for(encoding, &frame, topic, payload)).clone()
                }
                Encoding::Dialect(encoder) => {
                    let key = Arc::as_ptr(encoder) as *const ();
                    match dialects.iter().find(|(k, _)| *k == key) {
                        Some((_, bytes)) => bytes.clone(),
                        None => {
                            let bytes = encode_for(encoding, &frame, topic, payload);
                            dialects.push((key, bytes.clone()));
                            bytes
                        }
                    }
                }
            };
            let Some(bytes) = bytes else { continue };
            match sub.queue.push(bytes) {
                Push::Queued => out.delivered += 1,
                Push::Overflow => out.overflowed += 1,
                Push::Closed => {}
            }
        }
        out
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
    use chorus_protocol::Codec;
    use chorus_protocol::codec::decode_server;

    fn sub(conn_id: u64, codec: Codec, max: usize) -> Subscriber {
        Subscriber { conn_id, queue: Arc::new(OutQueue::new(codec, max)) }
    }

    #[test]
    fn fanout_reaches_only_the_topic_and_encodes_per_codec() {
        let reg = Registry::default();
        let a = sub(1, Codec::MsgPack, 1 << 20);
        let b = sub(2, Codec::Json, 1 << 20);
        let other = sub(3, Codec::Json, 1 << 20);
        reg.subscribe("room/1", a.clone(), None);
        reg.subscribe("room/1", b.clone(), None);
        reg.subscribe("room/2", other.clone(), None);
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
        reg.subscribe("t", Subscriber { conn_id: 1, queue: q_json.clone() }, None);
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
        let first = reg.subscribe("t", sub(1, Codec::MsgPack, 1 << 20), None);
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
        let again = reg.subscribe("t", back.clone(), Some(&position(&first, 2)));
        assert_eq!((again.seq, again.recovered, &again.epoch), (5, Some(true), &first.epoch));
        reg.publish("t", &p);
        assert_eq!(events(&drain(&back.queue)), vec![3, 4, 5, 6], "missed events first, then live ones, in order");
    }

    #[test]
    fn gaps_that_cannot_be_filled_are_reported() {
        let reg = with_history(3);
        let s = reg.subscribe("t", sub(1, Codec::MsgPack, 1 << 20), None);
        let p = Payload::from_value(&1).unwrap();
        for _ in 0..6 {
            reg.publish("t", &p);
        }
        let trimmed = sub(2, Codec::MsgPack, 1 << 20);
        assert_eq!(reg.subscribe("t", trimmed.clone(), Some(&position(&s, 1))).recovered, Some(false), "trimmed");
        assert_eq!(events(&drain(&trimmed.queue)), Vec::<u64>::new(), "nothing replayed on failure");
        assert_eq!(reg.subscribe("t", sub(3, Codec::MsgPack, 1 << 20), Some(&position(&s, 3))).recovered, Some(true));
        assert_eq!(reg.subscribe("t", sub(4, Codec::MsgPack, 1 << 20), Some(&position(&s, 6))).recovered, Some(true));
        assert_eq!(reg.subscribe("t", sub(5, Codec::MsgPack, 1 << 20), Some(&position(&s, 7))).recovered, Some(false));
        let other_epoch = Position { epoch: "another".into(), offset: 6 };
        assert_eq!(reg.subscribe("t", sub(6, Codec::MsgPack, 1 << 20), Some(&other_epoch)).recovered, Some(false));
    }

    #[test]
    fn idle_histories_expire_and_a_new_epoch_starts() {
        let rt = tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().unwrap();
        rt.block_on(async {
            let reg = with_history(10);
            let s = reg.subscribe("t", sub(1, Codec::MsgPack, 1 << 20), None);
            reg.publish("t", &Payload::null());
            reg.unsubscribe("t", 1);
            assert_eq!(reg.sweep(Instant::now()), 0);
            tokio::time::advance(Duration::from_secs(61)).await;
            assert_eq!(reg.sweep(Instant::now()), 1);
            assert_eq!(reg.topic_count(), 0);
            let fresh = reg.subscribe("t", sub(2, Codec::MsgPack, 1 << 20), Some(&position(&s, 1)));
            assert_ne!(fresh.epoch, s.epoch);
            assert_eq!((fresh.seq, fresh.recovered), (0, Some(false)));
        });
    }

    #[test]
    fn without_history_topics_vanish_with_their_subscribers() {
        let reg = Registry::default();
        assert_eq!(reg.publish("t", &Payload::null()), Fanout::default());
        reg.subscribe("t", sub(1, Codec::MsgPack, 1 << 20), None);
        reg.unsubscribe("t", 1);
        assert_eq!(reg.topic_count(), 0);
    }

    #[test]
    fn a_slow_subscriber_is_cut_and_others_still_receive() {
        let reg = Registry::default();
        let slow = sub(1, Codec::MsgPack, 100);
        let fast = sub(2, Codec::MsgPack, 1 << 20);
        reg.subscribe("t", slow.clone(), None);
        reg.subscribe("t", fast.clone(), None);
        let payload = Payload::from_value(&"x".repeat(40)).unwrap();
        let first = reg.publish("t", &payload);
        assert_eq!(first.delivered, 2);
        let second = reg.publish("t", &payload);
        assert_eq!((second.delivered, second.overflowed), (1, 1));
        assert_eq!(slow.queue.close_code(), Some(chorus_protocol::CloseCode::SlowConsumer));
        assert_eq!(reg.publish("t", &payload).delivered, 1);
        assert_eq!(fast.queue.close_code(), None);
    }
}
