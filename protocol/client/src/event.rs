//! [`Event`]: a publication delivered on a subscribed topic.

use chorus_protocol::Payload;

/// One `event` frame: a value published to a topic this connection is subscribed to.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// The topic it was published to.
    pub topic: String,
    /// Per-topic sequence number assigned by the broker (starts at 1, increases by one per event).
    pub seq: u64,
    /// The published value, in the connection's codec.
    pub payload: Payload,
}
