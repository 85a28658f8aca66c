//! Typed views of `reply` results.
//!
//! The `result` of a `subscribe` reply is `{"seq": <u64>, "snapshot"?: <value>}` and that of an acknowledged
//! `publish` is `{"seq": <u64>}`. Results are read through their JSON form: that is the common denominator
//! of both codecs (MessagePack `bin` becomes an array of byte values, as it would for a JSON peer), and it
//! lets the snapshot stay a zero-copy slice instead of being rebuilt as a tree.

use chorus_protocol::{Codec, Payload, PayloadError, Position};
use serde::Deserialize;
use serde_json::value::RawValue;

/// The answer to [`Client::subscribe`](crate::Client::subscribe).
#[derive(Debug, Clone, PartialEq)]
pub struct SubscribeReply {
    /// The topic's sequence number at the time of subscribing: the next event on it carries `seq + 1`.
    pub seq: u64,
    /// The epoch of the topic's sequence; with an event's `seq` it forms the [`Position`] to resume from.
    pub epoch: Option<String>,
    /// For [`Client::subscribe_since`](crate::Client::subscribe_since): whether every event after the
    /// position was replayed (they arrive as events, before newer ones). `false`: the gap could not be
    /// filled (another epoch, or history trimmed) and the application should reload its state.
    pub recovered: Option<bool>,
    /// The module's snapshot of the topic's state, when the module that serves the topic provides one.
    pub snapshot: Option<Payload>,
}

#[derive(Deserialize)]
struct SeqResult<'a> {
    seq: u64,
    #[serde(default)]
    epoch: Option<String>,
    #[serde(default)]
    recovered: Option<bool>,
    #[serde(borrow, default)]
    snapshot: Option<&'a RawValue>,
}

fn read_seq_result(result: &Payload) -> Result<SubscribeReply, PayloadError> {
    let json = result.encoded(Codec::Json)?;
    let parsed: SeqResult<'_> =
        serde_json::from_slice(&json).map_err(|e| PayloadError::Shape(format!("expected {{\"seq\": u64}}: {e}")))?;
    let snapshot = parsed.snapshot.map(|raw| Payload::from_json(json.slice_ref(raw.get().as_bytes()))).transpose()?;
    Ok(SubscribeReply { seq: parsed.seq, epoch: parsed.epoch, recovered: parsed.recovered, snapshot })
}

impl SubscribeReply {
    /// Reads a `subscribe` reply's result.
    pub(crate) fn from_result(result: &Payload) -> Result<Self, PayloadError> {
        read_seq_result(result)
    }

    /// The position of the last event with sequence number `offset` on this subscription, for
    /// [`Client::subscribe_since`](crate::Client::subscribe_since) after a reconnect.
    pub fn position(&self, offset: u64) -> Option<Position> {
        self.epoch.clone().map(|epoch| Position { epoch, offset })
    }
}

/// Reads an acknowledged `publish` reply's result: the event's sequence number.
pub(crate) fn publish_seq(result: &Payload) -> Result<u64, PayloadError> {
    read_seq_result(result).map(|reply| reply.seq)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use serde_json::json;

    #[test]
    fn reads_subscribe_results_in_both_codecs() {
        let json = Payload::from_json(Bytes::from_static(br#"{"seq":7,"snapshot":{"seats":[1,2]}}"#)).unwrap();
        let msgpack = Payload::from_msgpack(json.encoded(Codec::MsgPack).unwrap()).unwrap();
        for result in [json, msgpack] {
            let reply = SubscribeReply::from_result(&result).unwrap();
            assert_eq!(reply.seq, 7);
            assert_eq!(reply.snapshot.map(|s| s.to_json()), Some(json!({"seats": [1, 2]})));
        }
    }

    #[test]
    fn absent_or_null_snapshot_is_none() {
        for raw in [&br#"{"seq":0}"#[..], br#"{"seq":3,"snapshot":null}"#] {
            let reply = SubscribeReply::from_result(&Payload::from_json(Bytes::from_static(raw)).unwrap()).unwrap();
            assert_eq!(reply.snapshot, None);
        }
    }

    #[test]
    fn refuses_results_without_seq() {
        assert!(matches!(publish_seq(&Payload::null()), Err(PayloadError::Shape(_))));
        let p = Payload::from_value(&json!({"seq": "x"})).unwrap();
        assert!(matches!(publish_seq(&p), Err(PayloadError::Shape(_))));
        assert_eq!(publish_seq(&Payload::from_value(&json!({"seq": 42})).unwrap()), Ok(42));
    }
}
