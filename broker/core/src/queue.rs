//! The per-connection outbound queue and the writer task that drains it.
//!
//! Fan-out pushes already-encoded frames (`Bytes` shared by every subscriber using the same codec and
//! [`Framing`]; for WebSocket connections complete WebSocket frames) and never waits: the queue is bounded in bytes, and a push that would exceed the bound closes the queue with
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
/// writes (a WebSocket writer passes a batch to the kernel in vectored writes of up to 1024 frames; quinn
/// buffers up to about this much), small enough that one batch does not hold much of the queue.
pub const WRITE_BATCH_BYTES: usize = 256 * 1024;

/// Frames' worth of capacity a connection's queue and write batch keep when they shrink. A backlog grows
/// them (to as many frames as the queue's byte bound holds); once a drain leaves them less than a quarter
/// full they give the capacity back, so a burst does not stay in every subscriber's memory (the `soak`
/// scenario's RSS).
const KEEP_FRAMES: usize = 64;

/// Gives back most of `capacity` when `len` uses under a quarter of it.
fn shrunk(len: usize, capacity: usize) -> Option<usize> {
    (capacity > KEEP_FRAMES && len < capacity / 4).then(|| (len * 2).max(KEEP_FRAMES))
}

/// The form frames take in a connection's queue, chosen by its transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// Encoded frames as they are; the transport frames each one itself (QUIC's length prefix,
    /// tungstenite for the Socket.IO gateway).
    Encoded,
    /// Complete WebSocket frames (header and payload): binary for MessagePack, text otherwise. A fan-out
    /// builds each event's frame once and every subscriber's writer hands the same bytes to its socket.
    WebSocket,
}

impl Framing {
    /// Dense index, for per-framing caches.
    pub fn index(self) -> usize {
        match self {
            Self::Encoded => 0,
            Self::WebSocket => 1,
        }
    }

    /// `frame` (encoded for `codec`) in this framing: the bytes themselves, or a WebSocket frame around them.
    pub fn wire(self, codec: Codec, frame: Bytes) -> Bytes {
        match self {
            Self::Encoded => frame,
            Self::WebSocket => crate::ws::data_frame(codec, &frame),
        }
    }

    /// The encoded frame's length inside `wire` bytes of this framing: what the queue's bound counts, so
    /// the bound means the same on every transport.
    pub fn payload_len(self, wire: &[u8]) -> usize {
        match self {
            Self::Encoded => wire.len(),
            Self::WebSocket => wire.len() - crate::ws::header_len(wire),
        }
    }
}

/// The transport's writing half.
pub trait FrameSink: Send + 'static {
    /// The form it takes frames in; the queue holds them that way.
    fn framing(&self) -> Framing {
        Framing::Encoded
    }
    /// Writes frames (in [`FrameSink::framing`]) in order and flushes them.
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
    framing: Framing,
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

    /// A queue for a connection with any encoding, holding encoded frames.
    pub fn with_encoding(encoding: Encoding, max_bytes: usize) -> Self {
        Self::framed(encoding, Framing::Encoded, max_bytes)
    }

    /// A queue for a connection with any encoding whose transport takes frames in `framing`.
    pub fn framed(encoding: Encoding, framing: Framing, max_bytes: usize) -> Self {
        Self {
            encoding,
            framing,
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

    /// The form frames take in this queue.
    pub fn framing(&self) -> Framing {
        self.framing
    }

    /// Queues an encoded frame without waiting, framing it for the transport first.
    pub fn push(&self, frame: Bytes) -> Push {
        self.push_wire(self.framing.wire(self.codec(), frame))
    }

    /// Queues bytes already in this queue's [`Framing`] without waiting: a fan-out's shared frame, or a
    /// transport-level answer (a WebSocket pong). The bound counts the encoded frame inside.
    pub fn push_wire(&self, wire: Bytes) -> Push {
        let cost = self.framing.payload_len(&wire);
        let mut inner = self.inner.lock();
        if inner.close.is_some() {
            return Push::Closed;
        }
        if inner.bytes + cost > self.max_bytes {
            inner.frames.clear();
            inner.bytes = 0;
            self.close_locked(&mut inner, CloseCode::SlowConsumer, "outbound queue full: client reads too slowly");
            return Push::Overflow;
        }
        let was_empty = inner.frames.is_empty();
        inner.bytes += cost;
        inner.frames.push_back(wire);
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
            inner.frames.push_back(self.framing.wire(codec, bytes));
        }
        inner.close = Some((code, reason.to_owned()));
        self.closed.cancel();
        self.ready.notify_one();
    }

    /// The close code, once closed.
    pub fn close_code(&self) -> Option<CloseCode> {
        self.inner.lock().close.as_ref().map(|(c, _)| *c)
    }

    /// Whether the queue is closed.
    pub fn is_closed(&self) -> bool {
        self.closed.is_cancelled()
    }

    /// Resolves when the queue is closed (by overflow, the connection, or shutdown).
    pub async fn closed(&self) {
        self.closed.cancelled().await
    }

    /// Resolves once the queue is closed; when `shutdown` fires first, it closes the queue with
    /// [`CloseCode::GoingAway`] ("server shutting down; reconnect"). A connection's read loop ends on it.
    pub async fn closed_or_shutdown(&self, shutdown: &CancellationToken) {
        tokio::select! {
            biased;
            _ = shutdown.cancelled() => self.close(CloseCode::GoingAway, "server shutting down; reconnect"),
            _ = self.closed() => {}
        }
    }

    /// Waits for frames, moves up to [`WRITE_BATCH_BYTES`] of them into `batch`, and returns the close
    /// reason once the queue is closed and empty. Cancel-safe: frames are taken only when it returns
    /// (long-polling requests that end early rely on it).
    pub(crate) async fn next_batch(&self, batch: &mut Vec<Bytes>) -> Option<(CloseCode, String)> {
        loop {
            {
                let mut inner = self.inner.lock();
                let (mut taken, mut cost) = (0, 0);
                while let Some(frame) = inner.frames.front() {
                    if taken > 0 && taken + frame.len() > WRITE_BATCH_BYTES {
                        break;
                    }
                    taken += frame.len();
                    cost += self.framing.payload_len(frame);
                    if let Some(frame) = inner.frames.pop_front() {
                        batch.push(frame);
                    }
                }
                inner.bytes -= cost.min(inner.bytes);
                if let Some(keep) = shrunk(inner.frames.len(), inner.frames.capacity()) {
                    inner.frames.shrink_to(keep);
                }
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
        if let Some(keep) = shrunk(batch.len(), batch.capacity()) {
            batch.shrink_to(keep);
        }
        batch.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chorus_protocol::codec::decode_server;

    #[test]
    fn capacity_a_backlog_grew_is_given_back_once_drained() {
        assert_eq!(shrunk(0, KEEP_FRAMES), None, "the kept capacity stays");
        assert_eq!(shrunk(30, 100), None, "a quarter or more in use stays");
        assert_eq!(shrunk(10, 40_000), Some(KEEP_FRAMES));
        assert_eq!(shrunk(5_000, 40_000), Some(10_000));
    }

    #[tokio::test]
    async fn a_drained_backlog_does_not_keep_its_capacity() {
        let q = OutQueue::new(Codec::Json, usize::MAX);
        for _ in 0..10_000 {
            assert_eq!(q.push(Bytes::from_static(b"x")), Push::Queued);
        }
        let mut batch = Vec::new();
        while batch.len() < 10_000 {
            assert!(q.next_batch(&mut batch).await.is_none());
        }
        assert!(q.inner.lock().frames.capacity() <= KEEP_FRAMES, "the queue gave its capacity back");
    }

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
    async fn websocket_queues_hold_frames_and_bound_the_encoded_bytes() {
        let q = OutQueue::framed(Encoding::Native(Codec::MsgPack), Framing::WebSocket, 300);
        assert_eq!(q.push(Bytes::from(vec![7u8; 200])), Push::Queued);
        // 200 + 100 encoded bytes fit the bound exactly; the 4-byte and 2-byte headers do not count.
        assert_eq!(q.push_wire(crate::ws::data_frame(Codec::MsgPack, &[1u8; 100])), Push::Queued);
        let mut batch = Vec::new();
        assert!(q.next_batch(&mut batch).await.is_none());
        assert_eq!(&batch[0][..4], &[0x82, 126, 0, 200], "FIN + binary, 16-bit length");
        assert_eq!(&batch[0][4..], &[7u8; 200][..]);
        assert_eq!(&batch[1][..2], &[0x82, 100]);
        // Taking the batch released exactly what was counted: 300 bytes fit again, 301 do not.
        assert_eq!(q.push(Bytes::from(vec![0u8; 300])), Push::Queued);
        assert_eq!(q.push(Bytes::from_static(b"x")), Push::Overflow);
        let json = OutQueue::framed(Encoding::Native(Codec::Json), Framing::WebSocket, 1 << 20);
        json.push(Bytes::from(vec![b'a'; 70_000]));
        batch.clear();
        assert!(json.next_batch(&mut batch).await.is_none());
        assert_eq!(&batch[0][..2], &[0x81, 127], "FIN + text, 64-bit length");
        assert_eq!(u64::from_be_bytes(batch[0][2..10].try_into().unwrap()), 70_000);
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
