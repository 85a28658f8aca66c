//! WebSocket transport: the HTTP upgrade handshake (shared with the compat dialects) and the
//! [`FrameSource`]/[`FrameSink`] halves over a tokio-tungstenite stream.

use crate::conn::{FrameSource, Inbound};
use crate::queue::FrameSink;
use axum::body::Body;
use axum::http::{HeaderValue, Request, Response, StatusCode, header};
use bytes::Bytes;
use chorus_protocol::{CloseCode, Codec};
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use std::io;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode as WsCloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Error as WsError, Message, Utf8Bytes, error::CapacityError};

/// A WebSocket over an upgraded HTTP connection.
pub type Socket = WebSocketStream<TokioIo<hyper::upgrade::Upgraded>>;

/// Bytes tungstenite buffers before writing to the socket. Matches the writer's batch bound so one batch
/// becomes one `write` syscall in the common case.
const WRITE_BUFFER_BYTES: usize = crate::queue::WRITE_BATCH_BYTES;

/// Bytes tungstenite reads from the socket at a time; it allocates this much per connection up front.
/// Its default (128 KiB) made an idle connection cost ~137 KiB of RSS (bench `connections`); inbound frames
/// are small and capped at `max_frame_bytes`, so a few pages are enough.
const READ_BUFFER_BYTES: usize = 8 * 1024;

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

/// Completes the upgrade into a WebSocket with the broker's frame limit.
pub async fn finish(on_upgrade: OnUpgrade, max_frame_bytes: usize) -> Result<Socket, hyper::Error> {
    let upgraded = on_upgrade.await?;
    let config = WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER_BYTES)
        .max_message_size(Some(max_frame_bytes))
        .max_frame_size(Some(max_frame_bytes))
        .write_buffer_size(WRITE_BUFFER_BYTES)
        .max_write_buffer_size(WRITE_BUFFER_BYTES * 4);
    Ok(WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, Some(config)).await)
}

/// Splits a socket into the broker's transport halves.
pub fn split(socket: Socket, codec: Codec) -> (WsSource, WsSink) {
    let (sink, stream) = socket.split();
    (WsSource { stream, codec }, WsSink { sink, codec })
}

/// Reading half of a WebSocket connection.
pub struct WsSource {
    stream: SplitStream<Socket>,
    codec: Codec,
}

impl FrameSource for WsSource {
    async fn recv(&mut self) -> Inbound {
        match self.stream.next().await {
            Some(Ok(Message::Binary(b))) => Inbound::Frame(b),
            Some(Ok(Message::Text(_))) if self.codec == Codec::MsgPack => Inbound::TextOnBinary,
            Some(Ok(Message::Text(t))) => Inbound::Frame(Bytes::from(t)),
            Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => Inbound::Activity,
            Some(Ok(Message::Close(_))) | None => Inbound::Closed,
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

/// Sends a close frame and closes the sink. After the peer's close, tungstenite has queued its echo
/// (RFC 6455 §5.5.1) and refuses another close frame; closing the sink flushes that echo either way.
pub async fn close(sink: &mut SplitSink<Socket, Message>, code: CloseCode, reason: &str) {
    let frame = CloseFrame { code: WsCloseCode::from(code.as_u16()), reason: Utf8Bytes::from(reason) };
    let _ = sink.send(Message::Close(Some(frame))).await;
    let _ = sink.close().await;
}

/// Writing half of a WebSocket connection: MessagePack frames go as binary messages, JSON as text.
pub struct WsSink {
    sink: SplitSink<Socket, Message>,
    codec: Codec,
}

impl WsSink {
    fn message(&self, frame: &Bytes) -> io::Result<Message> {
        Ok(match self.codec {
            Codec::MsgPack => Message::Binary(frame.clone()),
            Codec::Json => Message::Text(
                Utf8Bytes::try_from(frame.clone()).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?,
            ),
        })
    }
}

fn io_err(e: WsError) -> io::Error {
    io::Error::other(e)
}

impl FrameSink for WsSink {
    async fn send_batch(&mut self, frames: &[Bytes]) -> io::Result<()> {
        for frame in frames {
            let msg = self.message(frame)?;
            self.sink.feed(msg).await.map_err(io_err)?;
        }
        self.sink.flush().await.map_err(io_err)
    }

    async fn close(&mut self, code: CloseCode, reason: &str) {
        close(&mut self.sink, code, reason).await;
    }
}
