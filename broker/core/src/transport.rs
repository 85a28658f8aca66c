//! The reading half of a transport (WebSocket, QUIC) as a connection sees it; the writing half is
//! [`FrameSink`](crate::queue::FrameSink).

use bytes::Bytes;
use chorus_protocol::CloseCode;

/// What the transport's reading half produced.
#[derive(Debug)]
pub enum Inbound {
    /// One complete frame.
    Frame(Bytes),
    /// Transport-level traffic that is not a frame (WebSocket ping/pong): counts as activity.
    Activity,
    /// Transport-level traffic with an answer to queue for the peer, in the queue's framing (a WebSocket
    /// ping and its pong): counts as activity.
    Answer(Bytes),
    /// The peer closed.
    Closed,
    /// The peer sent a frame larger than `max_frame_bytes`.
    TooLarge,
    /// The peer sent a WebSocket text message on a MessagePack connection (typically a generic tool that
    /// offered no subprotocol and speaks JSON).
    TextOnBinary,
    /// The transport broke (protocol violation, reset): close with this code and reason.
    Broken(CloseCode, String),
}

/// The transport's reading half. `recv` must be cancel-safe: it is polled inside `select!`.
pub trait FrameSource: Send + 'static {
    /// The next inbound item.
    fn recv(&mut self) -> impl Future<Output = Inbound> + Send;
}
