//! The [`Transport`] trait: what the connection task needs from WebSocket ([`crate::ws`]) and QUIC
//! ([`crate::quic`]), so that nothing else asks which one it is.

use crate::close::CloseInfo;
use bytes::Bytes;
use std::future::Future;
use std::time::Duration;

/// How long closing may take: sending our close and waiting for the peer's acknowledgement. Bounds
/// [`Client::close`](crate::Client::close) and the task's exit when the peer no longer answers; a live peer
/// on any reasonable network answers well within it.
pub(crate) const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// What [`Transport::recv`] produced.
#[derive(Debug)]
pub(crate) enum Inbound {
    /// One complete frame body (a WebSocket message, or one length-delimited QUIC frame).
    Frame(Bytes),
    /// The connection is over; no more frames will come.
    Closed(CloseInfo),
}

/// One established connection carrying whole frames in both directions.
pub(crate) trait Transport: Send + 'static {
    /// Sends one encoded frame. An error means the connection is over, and says how it ended.
    fn send(&mut self, frame: Bytes) -> impl Future<Output = Result<(), CloseInfo>> + Send;

    /// Receives the next frame. Cancel-safe: dropping the future before it completes loses no data, so the
    /// connection task can `select!` on it.
    fn recv(&mut self) -> impl Future<Output = Inbound> + Send;

    /// Ends the connection. When `info.by_client`, sends `info.code` and `info.reason` to the peer and waits
    /// (at most [`CLOSE_GRACE`]) for it to acknowledge; otherwise completes the peer's close.
    fn shutdown(&mut self, info: &CloseInfo) -> impl Future<Output = ()> + Send;
}
