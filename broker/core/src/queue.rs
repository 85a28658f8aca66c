//! The per-connection outbound queue and the writer task that drains it.
//!
//! Fan-out pushes already-encoded frames (`Bytes` shared by every subscriber using the same codec) and
//! never waits: the queue is bounded in bytes, and a push that would exceed the bound closes the queue with
//! [`CloseCode::SlowConsumer`] instead. Nothing a slow client does can slow a publisher or other subscribers.
//! The writer task takes everything queued at once and hands it to the transport as one batch, so a burst
//! of small events becomes a few large socket writes.

use crate::metrics::Metrics;
use bytes::Bytes;
use chorus_protocol::{CloseCode, Codec, Payload, ServerFrame, codec::encode_server};
use parking_lot::Mutex;
use std::collections::VecDeque;
use std::future::Future;
use std::io;
use std::sync::Arc;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// Most bytes handed to the transport in one batch. Large enough that a fan-out burst coalesces into a few
/// writes (tungstenite and quinn both buffer up to about this much), small enough that one batch does not
/// hold a large copy of the queue.
pub const WRITE_BATCH_BYTES: usize = 256 * 1024;

/// The transport's writing half.
pub trait FrameSink: Send + 'static {
    /// Writes encoded frames in order and flushes them.
    fn send_batch(&mut self, frames: &[Bytes]) -> impl Future<Output = io::Result<()>> + Send;
    /// Sends the transport-level close with this code and reason.
    fn close(&mut self, code: CloseCode, reason: &str) -> impl Future<Output = ()> + Send;
}

/// Encodes topic events for connections that speak a compat dialect rather than the native protocol.
pub trait EventEncoder: Send + Sync + 'static {
    /// The event (sequence number `seq` in its topic, 0 when unsequenced) as this dialect's frame, or
    /// `None` when the dialect does not carry it.
    fn encode_event(&self, topic: &str, seq: u64, payload: &Payload) -> Option<Bytes>;
}

/// How a connection wants its events encoded. Fan-out encodes once per distinct encoding.
#[derive(Clone)]
pub enum Encoding {
    /// Native `event` frames in a codec.
    Native(Codec),
    /// A compat dialect's own frames (JSON text; Engine.IO packets in long-polling form for Socket.IO).
    Dialect(Arc<dyn EventEncoder>),
}

/// Result of [`OutQueue::push`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Push {
    /// The frame is queued.
    Queued,
    /// The frame did not fit: the queue is now closed as a slow consumer.
    Overflow,
    /// The queue was already closed; the frame was dropped with the connection.
    Closed,
}

struct Inner {
    frames: VecDeque<Bytes>,
    bytes: usize,
    close: Option<(CloseCode, String)>,
}

/// A byte-bounded queue of encoded frames for one connection.
pub struct OutQueue {
    encoding: Encoding,
    max_bytes: usize,
    inner: Mutex<Inner>,
    ready: Notify,
    closed: CancellationToken,
}

impl OutQueue {
    /// A queue for a native connection speaking `codec`, holding at most `max_bytes` of frames.
    pub fn new(codec: Codec, max_bytes: usize) -> Self {
        Self::with_encoding(Encoding::Native(codec), max_bytes)
    }

    /// A queue for a connection with any encoding.
    pub fn with_encoding(encoding: Encoding, max_bytes: usize) -> Self {
        Self {
            encoding,
            max_bytes,
            inner: Mutex::new(Inner { frames: VecDeque::new(), bytes: 0, close: None }),
            ready: Notify::new(),
            closed: CancellationToken::new(),
        }
    }

    /// How events for this connection are encoded.
    pub fn encoding(&self) -> &Encoding {
        &self.encoding
    }

    /// The native codec; dialect connections carry JSON text.
    pub fn codec(&self) -> Codec {
        match self.encoding {
            Encoding::Native(codec) => codec,
            Encoding::Dialect(_) => Codec::Json,
        }
    }

    /// Queues a frame without waiting.
    pub fn push(&self, frame: Bytes) -> Push {
        let mut inner = self.inner.lock();
        if inner.close.is_some() {
            return Push::Closed;
        }
        if inner.bytes + frame.len() > self.max_bytes {
            inner.frames.clear();
            inner.bytes = 0;
            self.close_locked(&mut inner, CloseCode::SlowConsumer, "outbound queue full: client reads too slowly");
            return Push::Overflow;
        }
        let was_empty = inner.frames.is_empty();
        inner.bytes += frame.len();
        inner.frames.push_back(frame);
        drop(inner);
        // The writer only waits on an empty queue, so only the empty → non-empty transition needs a wake-up.
        if was_empty {
            self.ready.notify_one();
        }
        Push::Queued
    }

    /// Encodes and queues a native frame addressed to this connection alone (a reply, error or snapshot).
    pub fn push_frame(&self, frame: &ServerFrame) -> Push {
        match encode_server(self.codec(), frame) {
            Ok(bytes) => self.push(bytes),
            Err(e) => {
                tracing::error!(error = %e, "dropping a frame that cannot be encoded");
                Push::Closed
            }
        }
    }

    /// Closes the queue: frames already queued are still written, then `disconnect` and the transport close.
    /// The first close wins.
    pub fn close(&self, code: CloseCode, reason: &str) {
        let mut inner = self.inner.lock();
        if inner.close.is_none() {
            self.close_locked(&mut inner, code, reason);
        }
    }

    fn close_locked(&self, inner: &mut Inner, code: CloseCode, reason: &str) {
        if let Encoding::Native(codec) = self.encoding
            && let Ok(bytes) = encode_server(codec, &ServerFrame::disconnect(code, reason))
        {
            inner.frames.push_back(bytes);
        }
        inner.close = Some((code, reason.to_owned()));
        self.closed.cancel();
        self.ready.notify_one();
    }

    /// The close code, once closed.
    pub fn close_code(&self) -> Option<CloseCode> {
        self.inner.lock().close.as_ref().map(|(c, _)| *c)
    }

    /// Resolves when the queue is closed (by overflow, the connection, or shutdown).
    pub async fn closed(&self) {
        self.closed.cancelled().await
    }

    /// Waits for frames, moves up to [`WRITE_BATCH_BYTES`] of them into `batch`, and returns the close
    /// reason once the queue is closed and empty. Cancel-safe: frames are taken only when it returns
    /// (long-polling requests that end early rely on it).
    pub(crate) async fn next_batch(&self, batch: &mut Vec<Bytes>) -> Option<(CloseCode, String)> {
        loop {
            {
                let mut inner = self.inner.lock();
                let mut taken = 0;
                while let Some(frame) = inner.frames.front() {
                    if taken > 0 && taken + frame.len() > WRITE_BATCH_BYTES {
                        break;
                    }
                    taken += frame.len();
                    if let Some(frame) = inner.frames.pop_front() {
                        batch.push(frame);
                    }
                }
                inner.bytes -= taken.min(inner.bytes);
                if !batch.is_empty() {
                    return None;
                }
                if let Some(close) = &inner.close {
                    return Some(close.clone());
                }
            }
            self.ready.notified().await;
        }
    }
}

/// Drains `queue` into `sink` until the queue closes, then sends the transport close.
pub async fn run_writer(
    queue: std::sync::Arc<OutQueue>,
    mut sink: impl FrameSink,
    metrics: Metrics,
    transport: &'static str,
) {
    let mut batch = Vec::new();
    loop {
        if let Some((code, reason)) = queue.next_batch(&mut batch).await {
            sink.close(code, &reason).await;
            return;
        }
        let bytes: usize = batch.iter().map(Bytes::len).sum();
        if let Err(e) = sink.send_batch(&batch).await {
            tracing::debug!(error = %e, "write failed; closing");
            queue.close(CloseCode::Normal, "connection lost");
            // Still close the transport: when the write failed because the peer closed first, this sends
            // the close echo the transport has queued (WebSocket, RFC 6455 §5.5.1).
            sink.close(CloseCode::Normal, "connection lost").await;
            return;
        }
        metrics.frames_out(transport, batch.len() as u64, bytes as u64);
        batch.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chorus_protocol::codec::decode_server;

    #[tokio::test]
    async fn overflow_closes_as_slow_consumer_and_keeps_only_the_disconnect() {
        let q = OutQueue::new(Codec::Json, 10);
        assert_eq!(q.push(Bytes::from_static(b"12345")), Push::Queued);
        assert_eq!(q.push(Bytes::from_static(b"12345")), Push::Queued);
        assert_eq!(q.push(Bytes::from_static(b"1")), Push::Overflow);
        assert_eq!(q.push(Bytes::from_static(b"1")), Push::Closed);
        assert_eq!(q.close_code(), Some(CloseCode::SlowConsumer));
        let mut batch = Vec::new();
        assert!(q.next_batch(&mut batch).await.is_none());
        assert_eq!(batch.len(), 1);
        let frame = decode_server(Codec::Json, &batch[0], 1024).unwrap();
        assert!(matches!(frame, ServerFrame::Disconnect { code: 4001, .. }));
        batch.clear();
        assert_eq!(q.next_batch(&mut batch).await.map(|c| c.0), Some(CloseCode::SlowConsumer));
    }

    #[tokio::test]
    async fn close_flushes_queued_frames_first() {
        let q = OutQueue::new(Codec::MsgPack, 1024);
        q.push(Bytes::from_static(b"a"));
        q.close(CloseCode::GoingAway, "bye");
        q.close(CloseCode::SlowConsumer, "ignored: first close wins");
        let mut batch = Vec::new();
        assert!(q.next_batch(&mut batch).await.is_none());
        assert_eq!(batch.len(), 2, "the queued frame then the disconnect frame");
        assert_eq!(&batch[0][..], b"a");
        batch.clear();
        assert_eq!(q.next_batch(&mut batch).await.map(|c| c.0), Some(CloseCode::GoingAway));
    }

    #[tokio::test]
    async fn batches_are_bounded() {
        let q = OutQueue::new(Codec::MsgPack, 4 * WRITE_BATCH_BYTES);
        for _ in 0..3 {
            q.push(Bytes::from(vec![0u8; WRITE_BATCH_BYTES / 2 + 1]));
        }
        let mut batch = Vec::new();
        assert!(q.next_batch(&mut batch).await.is_none());
        assert_eq!(batch.len(), 1);
    }
}
