//! WebSocket transport: the HTTP upgrade handshake (shared with the compat dialects) and the
//! [`FrameSource`]/[`FrameSink`] halves of a connection.
//!
//! Reads go through tungstenite (frame parsing, reassembly, UTF-8 and close-code checks, RFC 6455's
//! answers). Writes bypass it: the queue holds complete WebSocket frames, a fan-out builds each event's
//! frame once for all its subscribers, and the writer hands everything queued to the socket with vectored
//! writes, many frames per system call and no copy. tungstenite's own answers (a pong, the echo of the
//! peer's close) are captured from its reading side and written by the writer in order with the rest.

use crate::queue::{FrameSink, Framing};
use crate::transport::{FrameSource, Inbound};
use axum::body::Body;
use axum::http::{HeaderValue, Request, Response, StatusCode, header};
use bytes::{BufMut as _, Bytes, BytesMut};
use chorus_protocol::{CloseCode, Codec};
use futures_util::stream::SplitSink;
use futures_util::{SinkExt, StreamExt};
use hyper::upgrade::{OnUpgrade, Upgraded};
use hyper_util::rt::TokioIo;
use parking_lot::Mutex;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt as _, ReadBuf, ReadHalf, WriteHalf};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode as WsCloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Error as WsError, Message, Utf8Bytes, error::CapacityError};

/// A WebSocket over an upgraded HTTP connection.
pub type Socket = WebSocketStream<TokioIo<hyper::upgrade::Upgraded>>;

/// Bytes tungstenite buffers before writing to the socket (Socket.IO gateway connections, which write
/// through it). Matches the writer's batch bound so one batch becomes one `write` syscall in the common case.
const WRITE_BUFFER_BYTES: usize = crate::queue::WRITE_BATCH_BYTES;

/// Most buffers one vectored write passes to the kernel (Linux `IOV_MAX`).
const MAX_IOVECS: usize = 1024;

/// Longest close reason that fits a control frame (125 bytes) after the 2-byte code.
const MAX_CLOSE_REASON: usize = 123;

const OP_TEXT: u8 = 0x1;
const OP_BINARY: u8 = 0x2;
const OP_CLOSE: u8 = 0x8;
const FIN: u8 = 0x80;

/// Bytes tungstenite reads from the socket at a time; it allocates (and zero-fills) this much per connection
/// up front, and grows it only for a frame that needs more. Inbound frames are small and capped at
/// `max_frame_bytes`. Chosen with bench `connections` (RSS per idle connection): tungstenite's default,
/// 128 KiB, cost ~137 KiB; 8 KiB, 14.6 KiB; 2 KiB, 8.6 KiB. A publisher's burst then takes a read per
/// ~2 KiB, which the `fanout` and `reactions` runs did not tell apart from noise.
const READ_BUFFER_BYTES: usize = 2 * 1024;

/// A validated upgrade request: send `response`, then await `on_upgrade` for the socket.
pub struct Upgrade {
    /// The `101 Switching Protocols` response.
    pub response: Response<Body>,
    /// Resolves to the upgraded connection once the response is sent.
    pub on_upgrade: OnUpgrade,
}

/// Subprotocols the client offered, in order.
pub fn offered_protocols(req: &Request<Body>) -> Vec<String> {
    req.headers()
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|p| p.trim().to_owned())
        .filter(|p| !p.is_empty())
        .collect()
}

/// The bearer token of an `Authorization` header, if any.
pub fn bearer(req: &Request<Body>) -> Option<String> {
    crate::auth::bearer_token(req.headers()).map(str::to_owned)
}

/// Validates a WebSocket upgrade request (RFC 6455 §4.2.1) and builds the response, echoing `subprotocol`.
/// The error is the reason to answer `400 Bad Request` with.
pub fn accept(req: &mut Request<Body>, subprotocol: Option<&str>) -> Result<Upgrade, &'static str> {
    let headers = req.headers();
    let has_token = |name: header::HeaderName, token: &str| {
        headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|v| v.trim().eq_ignore_ascii_case(token))
    };
    if !has_token(header::CONNECTION, "upgrade") || !has_token(header::UPGRADE, "websocket") {
        return Err("expected a WebSocket upgrade request");
    }
    if headers.get(header::SEC_WEBSOCKET_VERSION).map(HeaderValue::as_bytes) != Some(b"13") {
        return Err("Sec-WebSocket-Version must be 13");
    }
    let Some(key) = headers.get(header::SEC_WEBSOCKET_KEY) else {
        return Err("missing Sec-WebSocket-Key");
    };
    let accept_key = derive_accept_key(key.as_bytes());
    let Some(on_upgrade) = req.extensions_mut().remove::<OnUpgrade>() else {
        return Err("this connection cannot be upgraded");
    };
    let mut response = Response::new(Body::empty());
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = response.headers_mut();
    h.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    if let Ok(v) = HeaderValue::from_str(&accept_key) {
        h.insert(header::SEC_WEBSOCKET_ACCEPT, v);
    }
    if let Some(p) = subprotocol.and_then(|p| HeaderValue::from_str(p).ok()) {
        h.insert(header::SEC_WEBSOCKET_PROTOCOL, p);
    }
    Ok(Upgrade { response, on_upgrade })
}

/// Completes the upgrade into a tungstenite WebSocket with the broker's frame limit (the Socket.IO
/// gateway, which reads and writes through it).
pub async fn finish(on_upgrade: OnUpgrade, max_frame_bytes: usize) -> Result<Socket, hyper::Error> {
    let upgraded = on_upgrade.await?;
    let config = read_config(max_frame_bytes)
        .write_buffer_size(WRITE_BUFFER_BYTES)
        .max_write_buffer_size(WRITE_BUFFER_BYTES * 4);
    Ok(WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, Some(config)).await)
}

fn read_config(max_frame_bytes: usize) -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER_BYTES)
        .max_message_size(Some(max_frame_bytes))
        .max_frame_size(Some(max_frame_bytes))
}

/// Completes the upgrade into the broker's transport halves: frames of `codec` are read through
/// tungstenite, written as pre-built WebSocket frames (see the module docs).
pub async fn open(
    on_upgrade: OnUpgrade,
    max_frame_bytes: usize,
    codec: Codec,
) -> Result<(WsSource, WsSink), hyper::Error> {
    let upgraded = on_upgrade.await?;
    let (rd, wr) = tokio::io::split(TokioIo::new(upgraded));
    // tungstenite writes only its answers here, each flushed at once into `ReadSide::answers`.
    let config = read_config(max_frame_bytes).write_buffer_size(0);
    let reader = ReadSide { rd, answers: Vec::new() };
    let stream = WebSocketStream::from_raw_socket(reader, Role::Server, Some(config)).await;
    let peer_close = Arc::new(Mutex::new(None));
    Ok((WsSource { stream, codec, peer_close: peer_close.clone() }, WsSink { wr, peer_close }))
}

/// A data frame (FIN, unmasked, as a server sends): binary for MessagePack, text for JSON.
pub fn data_frame(codec: Codec, payload: &[u8]) -> Bytes {
    let opcode = match codec {
        Codec::MsgPack => OP_BINARY,
        Codec::Json => OP_TEXT,
    };
    server_frame(opcode, payload)
}

fn server_frame(opcode: u8, payload: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(payload.len() + 10);
    out.put_u8(FIN | opcode);
    match payload.len() {
        n if n < 126 => out.put_u8(n as u8),
        n if n <= usize::from(u16::MAX) => {
            out.put_u8(126);
            out.put_u16(n as u16);
        }
        n => {
            out.put_u8(127);
            out.put_u64(n as u64);
        }
    }
    out.put_slice(payload);
    out.freeze()
}

/// The header length of an unmasked frame that starts `frame` (as [`data_frame`] builds them).
pub fn header_len(frame: &[u8]) -> usize {
    match frame.get(1).map(|b| b & 0x7f) {
        Some(126) => 4,
        Some(127) => 10,
        _ => 2,
    }
}

/// A close frame with `code` and `reason` (cut at a character boundary to fit a control frame).
fn close_frame(code: CloseCode, reason: &str) -> Bytes {
    let mut end = reason.len().min(MAX_CLOSE_REASON);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    let mut payload = Vec::with_capacity(2 + end);
    payload.extend_from_slice(&code.as_u16().to_be_bytes());
    payload.extend_from_slice(&reason.as_bytes()[..end]);
    server_frame(OP_CLOSE, &payload)
}

/// The reading half of the socket as tungstenite sees it: reads pass through, and what tungstenite writes
/// (its pong and close answers) is kept for the writer instead of reaching the socket.
struct ReadSide {
    rd: ReadHalf<TokioIo<Upgraded>>,
    answers: Vec<u8>,
}

impl AsyncRead for ReadSide {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.rd).poll_read(cx, buf)
    }
}

impl AsyncWrite for ReadSide {
    fn poll_write(mut self: Pin<&mut Self>, _: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        self.answers.extend_from_slice(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// Reading half of a WebSocket connection.
pub struct WsSource {
    stream: WebSocketStream<ReadSide>,
    codec: Codec,
    /// tungstenite's echo of the peer's close, once it came: the writer sends it as the last frame.
    peer_close: Arc<Mutex<Option<Bytes>>>,
}

impl WsSource {
    /// Has tungstenite write the answer it queued for the frame just read (it never waits: `ReadSide`
    /// takes every write at once), and returns it.
    async fn answer(&mut self) -> Option<Bytes> {
        // After a close, the flush reports the connection closed; the echo is written all the same.
        let _ = self.stream.flush().await;
        let answers = std::mem::take(&mut self.stream.get_mut().answers);
        (!answers.is_empty()).then(|| Bytes::from(answers))
    }
}

impl FrameSource for WsSource {
    async fn recv(&mut self) -> Inbound {
        match self.stream.next().await {
            Some(Ok(Message::Binary(b))) => Inbound::Frame(b),
            Some(Ok(Message::Text(_))) if self.codec == Codec::MsgPack => Inbound::TextOnBinary,
            Some(Ok(Message::Text(t))) => Inbound::Frame(Bytes::from(t)),
            Some(Ok(Message::Ping(_))) => self.answer().await.map_or(Inbound::Activity, Inbound::Answer),
            Some(Ok(Message::Pong(_) | Message::Frame(_))) => Inbound::Activity,
            Some(Ok(Message::Close(_))) => {
                if let Some(echo) = self.answer().await {
                    *self.peer_close.lock() = Some(echo);
                }
                Inbound::Closed
            }
            None => Inbound::Closed,
            Some(Err(WsError::Capacity(CapacityError::MessageTooLong { .. }))) => Inbound::TooLarge,
            Some(Err(WsError::ConnectionClosed | WsError::AlreadyClosed)) => Inbound::Closed,
            Some(Err(e)) => Inbound::Broken(close_code(&e), e.to_string()),
        }
    }
}

/// The close code for a broken WebSocket (RFC 6455 §7.4.1): 1007 for text that is not UTF-8, 1009 for a
/// message over the limit, 1002 for every other violation.
pub fn close_code(error: &WsError) -> CloseCode {
    match error {
        WsError::Utf8(_) => CloseCode::InvalidText,
        WsError::Capacity(CapacityError::MessageTooLong { .. }) => CloseCode::MessageTooBig,
        _ => CloseCode::ProtocolError,
    }
}

/// Sends a close frame and closes the sink of a tungstenite WebSocket. After the peer's close, tungstenite
/// has queued its echo (RFC 6455 §5.5.1) and refuses another close frame; closing the sink flushes that
/// echo either way.
pub async fn close(sink: &mut SplitSink<Socket, Message>, code: CloseCode, reason: &str) {
    let frame = CloseFrame { code: WsCloseCode::from(code.as_u16()), reason: Utf8Bytes::from(reason) };
    let _ = sink.send(Message::Close(Some(frame))).await;
    let _ = sink.close().await;
}

/// Writing half of a WebSocket connection: writes queued WebSocket frames as they are.
pub struct WsSink {
    wr: WriteHalf<TokioIo<Upgraded>>,
    peer_close: Arc<Mutex<Option<Bytes>>>,
}

impl FrameSink for WsSink {
    fn framing(&self) -> Framing {
        Framing::WebSocket
    }

    async fn send_batch(&mut self, frames: &[Bytes]) -> io::Result<()> {
        // After the peer's close only the echo may follow (RFC 6455 §5.5.1): the writer sends it on close.
        if self.peer_close.lock().is_some() {
            return Err(io::Error::new(io::ErrorKind::ConnectionAborted, "the peer closed the WebSocket"));
        }
        write_all_vectored(&mut self.wr, frames).await
    }

    async fn close(&mut self, code: CloseCode, reason: &str) {
        let frame = self.peer_close.lock().take().unwrap_or_else(|| close_frame(code, reason));
        if self.wr.write_all(&frame).await.is_ok() {
            let _ = self.wr.shutdown().await;
        }
    }
}

/// Writes every frame in order with as few vectored writes as the kernel allows, then flushes.
async fn write_all_vectored<W: AsyncWrite + Unpin>(wr: &mut W, frames: &[Bytes]) -> io::Result<()> {
    // The next byte to write: frame `i`, offset `at` in it.
    let (mut i, mut at) = (0, 0);
    while i < frames.len() {
        let rest = frames[i + 1..].iter().map(|f| &f[..]);
        let slices: Vec<IoSlice<'_>> =
            std::iter::once(&frames[i][at..]).chain(rest).take(MAX_IOVECS).map(IoSlice::new).collect();
        let mut written = wr.write_vectored(&slices).await?;
        if written == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        written += at;
        while i < frames.len() && written >= frames[i].len() {
            written -= frames[i].len();
            i += 1;
        }
        at = written;
    }
    wr.flush().await
}
