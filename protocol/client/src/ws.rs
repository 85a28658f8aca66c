//! WebSocket transport (tokio-tungstenite): one frame per message, binary for MessagePack and text for
//! JSON, the codec negotiated with the `Sec-WebSocket-Protocol` header.

use crate::close::CloseInfo;
use crate::error::ClientError;
use crate::options::TokenPlacement;
use crate::transport::{CLOSE_GRACE, Inbound, Transport};
use bytes::Bytes;
use chorus_protocol::{CloseCode, Codec, SUBPROTOCOL_JSON, SUBPROTOCOL_MSGPACK};
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Error as WsError, Message, Utf8Bytes};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// An upgraded WebSocket connection.
pub(crate) struct WsTransport {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    codec: Codec,
}

/// The subprotocol that selects `codec`.
fn subprotocol(codec: Codec) -> &'static str {
    match codec {
        Codec::MsgPack => SUBPROTOCOL_MSGPACK,
        Codec::Json => SUBPROTOCOL_JSON,
    }
}

/// Opens the TCP connection and performs the upgrade. The token goes into the URL or a header when
/// `placement` says so (for [`TokenPlacement::Hello`] the caller puts it in `hello`).
pub(crate) async fn connect(
    url: &str,
    codec: Codec,
    token: Option<&str>,
    placement: TokenPlacement,
    max_inbound_frame_bytes: usize,
) -> Result<WsTransport, ClientError> {
    let mut url = url::Url::parse(url).map_err(|e| ClientError::Config(format!("WebSocket URL {url:?}: {e}")))?;
    if let (Some(token), TokenPlacement::Query) = (token, placement) {
        url.query_pairs_mut().append_pair("token", token);
    }
    let mut request = url.as_str().into_client_request().map_err(|e| ClientError::Config(e.to_string()))?;
    let headers = request.headers_mut();
    headers.insert("Sec-WebSocket-Protocol", HeaderValue::from_static(subprotocol(codec)));
    if let (Some(token), TokenPlacement::Header) = (token, placement) {
        let value = HeaderValue::from_str(&format!("Bearer {token}"))
            .map_err(|_| ClientError::Config("token is not a valid HTTP header value".into()))?;
        headers.insert("Authorization", value);
    }
    let config = WebSocketConfig::default()
        .max_message_size(Some(max_inbound_frame_bytes))
        .max_frame_size(Some(max_inbound_frame_bytes));
    // Nagle off: frames are small and latency-sensitive, and each is written with one flush.
    let (ws, _response) =
        tokio_tungstenite::connect_async_with_config(request, Some(config), true).await.map_err(|e| match e {
            WsError::Http(response) => {
                ClientError::Handshake(format!("WebSocket upgrade refused with HTTP {}", response.status()))
            }
            WsError::Protocol(p) => ClientError::Handshake(format!("WebSocket upgrade failed: {p}")),
            WsError::Url(u) => ClientError::Config(format!("WebSocket URL: {u}")),
            other => ClientError::transport(other),
        })?;
    Ok(WsTransport { ws, codec })
}

impl Transport for WsTransport {
    async fn send(&mut self, frame: Bytes) -> Result<(), CloseInfo> {
        let message = match self.codec {
            Codec::MsgPack => Message::Binary(frame),
            Codec::Json => Message::Text(
                Utf8Bytes::try_from(frame)
                    .map_err(|e| CloseInfo::local(CloseCode::InternalError, format!("JSON frame is not UTF-8: {e}")))?,
            ),
        };
        self.ws.send(message).await.map_err(|e| CloseInfo::remote(None, e.to_string()))
    }

    async fn recv(&mut self) -> Inbound {
        loop {
            // Only `next()` is awaited, and it keeps partial reads inside the stream: cancel-safe.
            let message = match self.ws.next().await {
                None => return Inbound::Closed(CloseInfo::remote(None, "connection ended")),
                Some(Ok(message)) => message,
                Some(Err(WsError::Capacity(e))) => {
                    return Inbound::Closed(CloseInfo::local(CloseCode::MessageTooBig, e.to_string()));
                }
                Some(Err(e)) => return Inbound::Closed(CloseInfo::remote(None, e.to_string())),
            };
            match message {
                Message::Binary(bytes) => return Inbound::Frame(bytes),
                Message::Text(text) => return Inbound::Frame(Bytes::from(text)),
                Message::Close(frame) => {
                    let (code, reason) = match frame {
                        Some(f) => (Some(u16::from(f.code)), f.reason.to_string()),
                        None => (None, String::from("closed without a code")),
                    };
                    return Inbound::Closed(CloseInfo::remote(code, reason));
                }
                // tungstenite answers pings itself; raw frames are not produced when reading.
                Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => {}
            }
        }
    }

    async fn shutdown(&mut self, info: &CloseInfo) {
        let frame = info.by_client.then(|| CloseFrame {
            code: info.code.unwrap_or(CloseCode::Normal.as_u16()).into(),
            reason: Utf8Bytes::from(info.reason.as_str()),
        });
        // Send our close (or flush the reply tungstenite queued to the peer's), then read until the peer
        // ends the TCP connection so the close handshake completes.
        let ws = &mut self.ws;
        let _ = tokio::time::timeout(CLOSE_GRACE, async move {
            if ws.close(frame).await.is_ok() {
                while let Some(Ok(_)) = ws.next().await {}
            }
        })
        .await;
    }
}
