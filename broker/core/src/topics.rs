//! The topic registry: which connections are subscribed where, and fan-out.
//!
//! Topics are spread over [`SHARDS`] independently locked maps, so subscribe/unsubscribe on different
//! topics rarely contend. Each topic has its own mutex held during a publish: it makes "assign the next
//! sequence number and enqueue to every subscriber" atomic, so every subscriber sees one topic's events in
//! sequence order. A publish encodes the event at most once per codec and shares the bytes.

use crate::queue::{Encoding, OutQueue, Push};
use bytes::Bytes;
use chorus_protocol::{Payload, ServerFrame, codec::encode_server};
use parking_lot::{Mutex, RwLock};
use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::Arc;

/// Number of registry shards. A power of two comfortably above the core count of the machines chorus
/// targets, so two publishers on different topics almost never wait on the same shard lock.
pub const SHARDS: usize = 64;

/// One subscription of one connection.
#[derive(Clone)]
pub struct Subscriber {
    /// Connection id.
    pub conn_id: u64,
    /// Where its frames go (and which codec they need).
    pub queue: Arc<OutQueue>,
}

#[derive(Default)]
struct TopicState {
    seq: u64,
    subscribers: Vec<Subscriber>,
    removed: bool,
}

type Shard = RwLock<HashMap<Arc<str>, Arc<Mutex<TopicState>>>>;

/// What a publish did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Fanout {
    /// The event's sequence number on its topic (0 when the topic had no subscribers: nothing is kept).
    pub seq: u64,
    /// Subscriber queues the event was placed in.
    pub delivered: usize,
    /// Subscribers cut as slow consumers by this publish.
    pub overflowed: usize,
}

/// The sharded topic registry.
pub struct Registry {
    shards: Box<[Shard]>,
    hasher: RandomState,
}

impl Default for Registry {
    fn default() -> Self {
        Self { shards: (0..SHARDS).map(|_| Shard::default()).collect(), hasher: RandomState::new() }
    }
}

impl Registry {
    fn shard(&self, topic: &str) -> &Shard {
        &self.shards[(self.hasher.hash_one(topic) as usize) & (SHARDS - 1)]
    }

    /// Adds a subscriber; returns the topic's current sequence number. Subscribing twice replaces the
    /// earlier entry (callers check for duplicates first).
    pub fn subscribe(&self, topic: &str, subscriber: Subscriber) -> u64 {
        let shard = self.shard(topic);
        loop {
            let state = {
                let map = shard.read();
                map.get(topic).cloned()
            };
            let state = match state {
                Some(s) => s,
                None => shard.write().entry(Arc::from(topic)).or_default().clone(),
            };
            let mut st = state.lock();
            if st.removed {
                continue;
            }
            st.subscribers.retain(|s| s.conn_id != subscriber.conn_id);
            st.subscribers.push(subscriber);
            return st.seq;
        }
    }

    /// Removes a connection's subscription; returns whether it existed. Empty topics are dropped.
    pub fn unsubscribe(&self, topic: &str, conn_id: u64) -> bool {
        let shard = self.shard(topic);
        let Some(state) = shard.read().get(topic).cloned() else { return false };
        let now_empty = {
            let mut st = state.lock();
            let before = st.subscribers.len();
            st.subscribers.retain(|s| s.conn_id != conn_id);
            if st.subscribers.len() == before {
                return false;
            }
            st.subscribers.is_empty()
        };
        if now_empty {
            let mut map = shard.write();
            let mut st = state.lock();
            if st.subscribers.is_empty() && !st.removed {
                st.removed = true;
                map.remove(topic);
            }
        }
        true
    }

    /// Fans an event out to every local subscriber of `topic`.
    pub fn publish(&self, topic: &str, payload: &Payload) -> Fanout {
        let Some(state) = self.shard(topic).read().get(topic).cloned() else { return Fanout::default() };
        let mut st = state.lock();
        st.seq += 1;
        let frame = ServerFrame::Event { topic: topic.to_owned(), seq: st.seq, payload: payload.clone() };
        let mut native: [Option<Bytes>; 2] = [None, None];
        // Dialect encodings seen in this publish, keyed by encoder identity; a node has a handful at most.
        let mut dialects: Vec<(*const (), Option<Bytes>)> = Vec::new();
        let mut out = Fanout { seq: st.seq, ..Fanout::default() };
        for sub in &st.subscribers {
            let bytes = match sub.queue.encoding() {
                Encoding::Native(codec) => {
                    let slot = &mut native[codec.index()];
                    match slot {
                        Some(b) => b.clone(),
                        None => match encode_server(*codec, &frame) {
                            Ok(b) => slot.insert(b).clone(),
                            Err(e) => {
                                tracing::error!(topic, error = %e, "event cannot be encoded; not delivered");
                                continue;
                            }
                        },
                    }
                }
                Encoding::Dialect(encoder) => {
                    let key = Arc::as_ptr(encoder) as *const ();
                    let cached = match dialects.iter().find(|(k, _)| *k == key) {
                        Some((_, cached)) => cached.clone(),
                        None => {
                            let encoded = encoder.encode_event(topic, payload);
                            dialects.push((key, encoded.clone()));
                            encoded
                        }
                    };
                    match cached {
                        Some(b) => b,
                        None => continue,
                    }
                }
            };
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
        self.shard(topic).read().get(topic).map_or(0, |s| s.lock().subscribers.len())
    }

    /// Topics with at least one subscriber on this node.
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
        reg.subscribe("room/1", a.clone());
        reg.subscribe("room/1", b.clone());
        reg.subscribe("room/2", other.clone());
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

    #[test]
    fn events_decode_in_each_codec() {
        let reg = Registry::default();
        let q_json = Arc::new(OutQueue::new(Codec::Json, 1 << 20));
        reg.subscribe("t", Subscriber { conn_id: 1, queue: q_json.clone() });
        let payload = Payload::from_value(&serde_json::json!([1, "x"])).unwrap();
        reg.publish("t", &payload);
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        q_json.close(chorus_protocol::CloseCode::Normal, "test");
        let frames = rt.block_on(async {
            let (tx, mut rx) = tokio::sync::mpsc::channel(8);
            struct Sink(tokio::sync::mpsc::Sender<Bytes>);
            impl crate::queue::FrameSink for Sink {
                async fn send_batch(&mut self, frames: &[Bytes]) -> std::io::Result<()> {
                    for f in frames {
                        let _ = self.0.send(f.clone()).await;
                    }
                    Ok(())
                }
                async fn close(&mut self, _: chorus_protocol::CloseCode, _: &str) {}
            }
            crate::queue::run_writer(q_json.clone(), Sink(tx), crate::metrics::Metrics::new(), "test").await;
            let mut v = Vec::new();
            while let Ok(f) = rx.try_recv() {
                v.push(f);
            }
            v
        });
        let event = decode_server(Codec::Json, &frames[0], 1 << 20).unwrap();
        assert_eq!(event, ServerFrame::Event { topic: "t".into(), seq: 1, payload });
    }

    #[test]
    fn a_slow_subscriber_is_cut_and_others_still_receive() {
        let reg = Registry::default();
        let slow = sub(1, Codec::MsgPack, 100);
        let fast = sub(2, Codec::MsgPack, 1 << 20);
        reg.subscribe("t", slow.clone());
        reg.subscribe("t", fast.clone());
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
