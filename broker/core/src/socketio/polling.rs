//! HTTP long-polling: the handshake, `GET` (wait for outbound packets) and `POST` (inbound packets).
//!
//! One `GET` and one `POST` at a time per session: an overlapping request closes the session, as the
//! specification requires. A `GET` that the client abandons closes it too (the reference server's
//! "poll connection closed prematurely"): packets taken for it could otherwise be lost.

use super::Gateway;
use super::http::{EngineRefusal, refuse};
use super::session::{self, Mode, Session};
use crate::metrics::socketio as metrics;
use axum::body::Body;
use axum::http::{HeaderValue, Request, Response, StatusCode, header};
use axum::response::IntoResponse;
use bytes::{BufMut, Bytes, BytesMut};
use chorus_protocol::engineio::{self, Packet, SEPARATOR};
use std::sync::Arc;
use std::sync::atomic::Ordering;

fn text(body: Bytes) -> Response<Body> {
    let mut response = Response::new(Body::from(body));
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=UTF-8"));
    response
}

/// Starts a long-polling session: the `open` packet is the answer.
pub(crate) fn handshake(gateway: &Arc<Gateway>, token: Option<String>) -> Response<Body> {
    metrics::polling_request("GET");
    let session = session::open(gateway, Mode::Polling, token);
    text(open_packet(gateway, &session.sid, &["websocket"]).encode_text())
}

/// The `open` packet of a new session.
pub(crate) fn open_packet(gateway: &Gateway, sid: &str, upgrades: &[&str]) -> Packet {
    let config = &gateway.ctx.config().socketio;
    Packet::Open(engineio::open_data(
        sid,
        upgrades,
        config.socketio_ping_interval_ms,
        config.socketio_ping_timeout_ms,
        config.socketio_max_http_buffer_bytes as u64,
    ))
}

/// Closes the session if a `GET` ends before it has answered (the client went away).
struct PollGuard<'a> {
    session: &'a Session,
    answered: bool,
}

impl Drop for PollGuard<'_> {
    fn drop(&mut self) {
        self.session.poll_active.store(false, Ordering::Release);
        if !self.answered {
            self.session.fail("poll_abandoned", "poll connection closed prematurely");
        }
    }
}

/// A `GET`: waits for outbound packets and returns them joined; `noop` when an upgrade takes over; the
/// `close` packet once the session has ended.
pub(crate) async fn poll(gateway: &Gateway, session: Arc<Session>) -> Response<Body> {
    metrics::polling_request("GET");
    let upgrading = session.upgrading.notified();
    tokio::pin!(upgrading);
    upgrading.as_mut().enable();
    match session.mode() {
        Mode::Polling => {}
        Mode::Upgrading => return text(Packet::Noop.encode_text()),
        Mode::WebSocket => return refuse(EngineRefusal::BadRequest),
    }
    if session.poll_active.swap(true, Ordering::AcqRel) {
        session.fail("overlapping_poll", "overlapping long-polling GET requests");
        return refuse(EngineRefusal::BadRequest);
    }
    let mut guard = PollGuard { session: &session, answered: false };
    let mut batch = Vec::new();
    let body = tokio::select! {
        closed = session.queue.next_batch(&mut batch) => match closed {
            Some(_) => Packet::Close.encode_text(),
            None => join(&batch),
        },
        _ = &mut upgrading => Packet::Noop.encode_text(),
    };
    guard.answered = true;
    drop(guard);
    gateway.node.metrics.frames_out(super::TRANSPORT, batch.len() as u64, body.len() as u64);
    text(body)
}

fn join(batch: &[Bytes]) -> Bytes {
    if let [one] = batch {
        return one.clone();
    }
    let mut out = BytesMut::with_capacity(batch.iter().map(|b| b.len() + 1).sum());
    for (i, item) in batch.iter().enumerate() {
        if i > 0 {
            out.put_u8(SEPARATOR);
        }
        out.extend_from_slice(item);
    }
    out.freeze()
}

/// Clears the session's `POST` flag when the request ends, however it ends.
struct PostGuard<'a>(&'a Session);

impl Drop for PostGuard<'_> {
    fn drop(&mut self) {
        self.0.post_active.store(false, Ordering::Release);
    }
}

/// A `POST`: decodes the body's packets and hands them to the session; `ok` once they are taken.
pub(crate) async fn post(gateway: &Gateway, session: Arc<Session>, req: Request<Body>) -> Response<Body> {
    metrics::polling_request("POST");
    let max = gateway.ctx.config().socketio.socketio_max_http_buffer_bytes;
    let binary = req.headers().get(header::CONTENT_TYPE).is_some_and(|v| v.as_bytes() == b"application/octet-stream");
    if binary {
        session.fail("protocol", "binary long-polling bodies are not part of Engine.IO v4");
        return refuse(EngineRefusal::BadRequest);
    }
    if session.post_active.swap(true, Ordering::AcqRel) {
        session.fail("overlapping_post", "overlapping long-polling POST requests");
        return refuse(EngineRefusal::BadRequest);
    }
    let _guard = PostGuard(&session);
    let declared = req.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<usize>().ok());
    if declared.is_some_and(|n| n > max) {
        session.fail("payload_too_large", "long-polling body exceeds maxHttpBufferSize");
        return StatusCode::PAYLOAD_TOO_LARGE.into_response();
    }
    let body = match axum::body::to_bytes(req.into_body(), max).await {
        Ok(body) => body,
        Err(_) => {
            session.fail("payload_too_large", "long-polling body exceeds maxHttpBufferSize or was cut off");
            return StatusCode::PAYLOAD_TOO_LARGE.into_response();
        }
    };
    let packets = match engineio::decode_payload(&body) {
        Ok(packets) => packets,
        Err(e) => {
            session.fail("protocol", &e.to_string());
            return refuse(EngineRefusal::BadRequest);
        }
    };
    if let Some(Err(e)) = packets.iter().map(Packet::check_from_client).find(Result::is_err) {
        session.fail("protocol", &e.to_string());
        return refuse(EngineRefusal::BadRequest);
    }
    if session.deliver(packets).await.is_err() {
        return refuse(EngineRefusal::UnknownSid);
    }
    let mut response = Response::new(Body::from("ok"));
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html"));
    response
}
