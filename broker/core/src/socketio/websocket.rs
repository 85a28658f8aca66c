//! The WebSocket transport: a session opened directly on WebSocket, or a long-polling session upgraded
//! after the `2probe` / `3probe` / `5` exchange. Each Engine.IO packet is one WebSocket message.

use super::Gateway;
use super::http::{EngineRefusal, refuse};
use super::polling::open_packet;
use super::session::{self, Mode, Session};
use crate::conn::CLOSE_FLUSH_TIMEOUT;
use crate::metrics::socketio as metrics;
use crate::queue::{FrameSink, run_writer};
use crate::ws::{self, Socket};
use axum::body::Body;
use axum::http::{Request, Response};
use bytes::Bytes;
use chorus_protocol::CloseCode;
use chorus_protocol::engineio::{self, Packet};
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use std::io;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode as WsCloseCode;
use tokio_tungstenite::tungstenite::{Error as WsError, Message, Utf8Bytes, error::CapacityError};
use tracing::Instrument;

/// How long an upgrading WebSocket may take from the probe to the `upgrade` packet (the reference
/// server's `upgradeTimeout`). The long-polling transport is paused meanwhile.
pub const UPGRADE_TIMEOUT: Duration = Duration::from_secs(10);

/// Validates the upgrade request and, once upgraded, runs the WebSocket for a new session or for the
/// upgrade of `session`.
pub(crate) fn accept(
    gateway: Arc<Gateway>,
    session: Option<Arc<Session>>,
    token: Option<String>,
    mut req: Request<Body>,
) -> Response<Body> {
    if session.as_ref().is_some_and(|s| s.mode() != Mode::Polling) {
        return refuse(EngineRefusal::BadRequest);
    }
    let upgrade = match ws::accept(&mut req, None) {
        Ok(upgrade) => upgrade,
        Err(_) => return refuse(EngineRefusal::BadRequest),
    };
    let node = gateway.node.clone();
    let max = node.config.socketio.socketio_max_http_buffer_bytes;
    node.tracker.spawn(
        async move {
            let socket = match ws::finish(upgrade.on_upgrade, max).await {
                Ok(socket) => socket,
                Err(e) => return tracing::debug!(error = %e, "Socket.IO WebSocket upgrade failed"),
            };
            let (sink, stream) = socket.split();
            match session {
                Some(session) => upgrade_session(gateway, session, sink, stream).await,
                None => {
                    let session = session::open(&gateway, Mode::WebSocket, token);
                    session.send(&open_packet(&gateway, &session.sid, &[]));
                    serve(gateway, session, EngineSink { sink }, stream).await;
                }
            }
        }
        .in_current_span(),
    );
    upgrade.response
}

/// Reads the next inbound packet: `Ok(None)` when the peer closed; `Err` with the close code and reason.
async fn read(stream: &mut SplitStream<Socket>) -> Result<Option<Packet>, (CloseCode, String)> {
    let protocol = |e: String| (CloseCode::ProtocolError, e);
    loop {
        return match stream.next().await {
            Some(Ok(Message::Text(text))) => {
                let packet = Packet::decode_text(Bytes::from(text)).map_err(|e| protocol(e.to_string()))?;
                packet.check_from_client().map_err(|e| protocol(e.to_string()))?;
                Ok(Some(packet))
            }
            Some(Ok(Message::Binary(data))) => Ok(Some(Packet::Binary(data))),
            Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => continue,
            Some(Ok(Message::Close(_))) | None => Ok(None),
            Some(Err(WsError::Capacity(CapacityError::MessageTooLong { .. }))) => {
                Err((CloseCode::MessageTooBig, "message exceeds maxHttpBufferSize".to_owned()))
            }
            Some(Err(WsError::ConnectionClosed | WsError::AlreadyClosed)) => Ok(None),
            Some(Err(e)) => Err((ws::close_code(&e), e.to_string())),
        };
    }
}

async fn upgrade_session(
    gateway: Arc<Gateway>,
    session: Arc<Session>,
    mut sink: SplitSink<Socket, Message>,
    mut stream: SplitStream<Socket>,
) {
    let probe = timeout(UPGRADE_TIMEOUT, async {
        loop {
            match read(&mut stream).await {
                Ok(Some(Packet::Ping(data))) if &data[..] == b"probe" => {
                    if session.mode() != Mode::Polling {
                        return Err("the session is no longer on long-polling".to_owned());
                    }
                    let pong = Packet::Pong(data).encode_text();
                    let pong = Utf8Bytes::try_from(pong).map_err(|e| e.to_string())?;
                    sink.send(Message::Text(pong)).await.map_err(|e| e.to_string())?;
                    session.set_mode(Mode::Upgrading);
                    session.upgrading.notify_waiters();
                }
                Ok(Some(Packet::Upgrade)) if session.mode() == Mode::Upgrading => return Ok(()),
                Ok(Some(other)) => return Err(format!("unexpected packet during upgrade: {other:?}")),
                Ok(None) => return Err("closed during upgrade".to_owned()),
                Err((_, e)) => return Err(e),
            }
        }
    })
    .await;
    match probe {
        Ok(Ok(())) => {
            session.set_mode(Mode::WebSocket);
            metrics::upgrade();
            serve(gateway, session, EngineSink { sink }, stream).await;
        }
        failed => {
            let reason = match failed {
                Ok(Err(e)) => e,
                _ => "upgrade timed out".to_owned(),
            };
            tracing::debug!(sid = session.sid, reason, "Socket.IO upgrade abandoned; staying on long-polling");
            metrics::error("upgrade_failed");
            if session.mode() == Mode::Upgrading {
                session.set_mode(Mode::Polling);
            }
            let frame = CloseFrame { code: WsCloseCode::Protocol, reason: Utf8Bytes::from("upgrade failed") };
            let _ = sink.send(Message::Close(Some(frame))).await;
        }
    }
}

/// Runs the WebSocket of a session: a writer drains the session's queue, this task feeds its inbox.
async fn serve(gateway: Arc<Gateway>, session: Arc<Session>, sink: EngineSink, mut stream: SplitStream<Socket>) {
    let metrics = gateway.node.metrics.clone();
    let mut writer = tokio::spawn(run_writer(session.queue.clone(), sink, metrics, super::TRANSPORT).in_current_span());
    loop {
        tokio::select! {
            _ = session.queue.closed() => break,
            packet = read(&mut stream) => match packet {
                Ok(Some(packet)) => {
                    if session.deliver([packet]).await.is_err() {
                        break;
                    }
                }
                Ok(None) => {
                    session.queue.close(CloseCode::Normal, "transport close");
                    break;
                }
                Err((code, e)) => {
                    session.fail_with(code, "protocol", &e);
                    break;
                }
            }
        }
    }
    if timeout(CLOSE_FLUSH_TIMEOUT, &mut writer).await.is_err() {
        writer.abort();
    }
}

/// The writing half: each queued item (long-polling form) becomes its WebSocket messages.
struct EngineSink {
    sink: SplitSink<Socket, Message>,
}

impl FrameSink for EngineSink {
    async fn send_batch(&mut self, frames: &[Bytes]) -> io::Result<()> {
        for frame in frames {
            let messages =
                engineio::polling_to_messages(frame).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
            for (binary, data) in messages {
                let message = if binary {
                    Message::Binary(data)
                } else {
                    Message::Text(Utf8Bytes::try_from(data).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?)
                };
                self.sink.feed(message).await.map_err(io::Error::other)?;
            }
        }
        self.sink.flush().await.map_err(io::Error::other)
    }

    async fn close(&mut self, code: CloseCode, reason: &str) {
        ws::close(&mut self.sink, code, reason).await;
    }
}
