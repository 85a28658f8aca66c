//! Topic events as Socket.IO packets, encoded once per namespace and shared by every socket of it.
//!
//! A payload shaped `{ "event": E, "data": D }` (the envelope modules publish) becomes `emit(E, D)`; any
//! other payload (plain pub/sub) becomes `emit("chorus:event", { topic, seq, payload })`, so a Socket.IO
//! client sees the same events, in the same order, as a native subscriber of the topic.

use crate::queue::EventEncoder;
use bytes::Bytes;
use chorus_protocol::socketio::{self, Kind, RESERVED_EVENTS};
use chorus_protocol::{Codec, Payload};
use serde::Deserialize;
use serde_json::value::RawValue;
use std::borrow::Cow;

/// The event a non-envelope topic event is emitted as.
pub const TOPIC_EVENT: &str = "chorus:event";

/// A module's `{event, data}` envelope, read without copying `data`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Envelope<'a> {
    #[serde(borrow)]
    event: Cow<'a, str>,
    #[serde(borrow)]
    data: &'a RawValue,
}

/// Encodes events for one namespace.
pub struct NamespaceEncoder {
    namespace: String,
}

impl NamespaceEncoder {
    /// An encoder for the namespace `namespace`.
    pub fn new(namespace: &str) -> Self {
        Self { namespace: namespace.to_owned() }
    }

    /// `emit(event, data)` with `data` as JSON text.
    pub fn emit(&self, event: &str, data: &str) -> Bytes {
        let name = serde_json::to_string(event).unwrap_or_else(|_| "\"\"".to_owned());
        socketio::encode(Kind::Event, &self.namespace, None, 0, Some(&format!("[{name},{data}]")))
    }

    /// A topic payload as the Socket.IO event a socket receives.
    pub fn event(&self, topic: &str, seq: u64, payload: &Payload) -> Option<Bytes> {
        let json = match payload.encoded(Codec::Json) {
            Ok(json) => json,
            Err(e) => {
                tracing::error!(topic, error = %e, "event cannot be encoded as JSON; not delivered to Socket.IO");
                return None;
            }
        };
        if let Ok(envelope) = serde_json::from_slice::<Envelope<'_>>(&json)
            && !RESERVED_EVENTS.contains(&envelope.event.as_ref())
        {
            return Some(self.emit(&envelope.event, envelope.data.get()));
        }
        let topic = serde_json::to_string(topic).unwrap_or_else(|_| "\"\"".to_owned());
        let body = String::from_utf8_lossy(&json);
        Some(self.emit(TOPIC_EVENT, &format!("{{\"topic\":{topic},\"seq\":{seq},\"payload\":{body}}}")))
    }
}

impl EventEncoder for NamespaceEncoder {
    fn encode_event(&self, topic: &str, seq: u64, payload: &Payload) -> Option<Bytes> {
        self.event(topic, seq, payload)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn envelopes_become_their_event_and_others_the_topic_event() {
        let root = NamespaceEncoder::new("/");
        let envelope = Payload::from_value(&json!({"event": "session-update", "data": {"movies": []}})).unwrap();
        assert_eq!(root.event("movies/session/1", 3, &envelope).unwrap(), "42[\"session-update\",{\"movies\":[]}]");
        let plain = Payload::from_value(&json!({"text": "hi"})).unwrap();
        assert_eq!(
            NamespaceEncoder::new("/chat").event("chat/lobby", 7, &plain).unwrap(),
            "42/chat,[\"chorus:event\",{\"topic\":\"chat/lobby\",\"seq\":7,\"payload\":{\"text\":\"hi\"}}]"
        );
        let extra = Payload::from_value(&json!({"event": "x", "data": 1, "more": 2})).unwrap();
        assert!(root.event("t", 1, &extra).unwrap().starts_with(b"42[\"chorus:event\""));
        let reserved = Payload::from_value(&json!({"event": "connect", "data": 1})).unwrap();
        assert!(root.event("t", 1, &reserved).unwrap().starts_with(b"42[\"chorus:event\""));
    }
}
