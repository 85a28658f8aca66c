//! Engine.IO sessions: one per client connection, whichever transport carries it.
//!
//! A session owns one byte-bounded [`OutQueue`] of outbound Engine.IO packets (in long-polling form) and
//! one task that reads inbound packets from a bounded inbox, runs the Socket.IO layer ([`Sockets`]) and
//! the heartbeat. Transports only move packets: a long-polling `GET` drains the queue, a `POST` fills the
//! inbox; on WebSocket a writer task drains the queue and a reader fills the inbox. An upgrade swaps the
//! transport under the same queue and inbox, so nothing queued is lost or reordered.

use super::socket::Sockets;
use super::{Gateway, TRANSPORT};
use crate::conn::READ_BURST;
use crate::metrics::socketio as metrics;
use crate::queue::{Encoding, OutQueue, Push};
use bytes::Bytes;
use chorus_protocol::CloseCode;
use chorus_protocol::engineio::Packet;
use parking_lot::Mutex;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use tokio::sync::{Notify, mpsc};
use tokio::time::{Instant, sleep_until};

/// Inbound packets a session buffers before a transport has to wait. A long-polling body or a burst of
/// WebSocket messages larger than this waits for the session task, which is back-pressure on the client,
/// not a loss.
const INBOX_PACKETS: usize = 64;

/// Which transport carries a session now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// HTTP long-polling.
    Polling,
    /// A WebSocket answered the upgrade probe; long-polling is being wound down.
    Upgrading,
    /// WebSocket.
    WebSocket,
}

impl Mode {
    fn label(self) -> &'static str {
        match self {
            Self::WebSocket => "websocket",
            Self::Polling | Self::Upgrading => "polling",
        }
    }
}

/// What a transport learns when it hands packets to a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Ended;

/// One Engine.IO session.
pub(crate) struct Session {
    /// The session id (`sid`).
    pub sid: String,
    /// Outbound packets.
    pub queue: Arc<OutQueue>,
    /// A token from the handshake request (`?token=` or `Authorization`), for namespaces whose `auth`
    /// carries none.
    pub token: Option<String>,
    inbox: mpsc::Sender<Packet>,
    mode: Mutex<Mode>,
    /// Set while a long-polling `GET` is waiting.
    pub poll_active: AtomicBool,
    /// Set while a long-polling `POST` is being read.
    pub post_active: AtomicBool,
    /// Wakes a waiting `GET` when an upgrade starts (it then answers `noop`).
    pub upgrading: Notify,
}

impl Session {
    /// The transport now.
    pub fn mode(&self) -> Mode {
        *self.mode.lock()
    }

    /// Moves the session to another transport.
    pub fn set_mode(&self, mode: Mode) {
        let mut current = self.mode.lock();
        if current.label() != mode.label() {
            metrics::session(current.label(), -1.0);
            metrics::session(mode.label(), 1.0);
        }
        *current = mode;
    }

    /// Queues an outbound packet; a full queue closes the session as a slow consumer.
    pub fn send(&self, packet: &Packet) {
        self.push(packet.encode_polling());
    }

    /// Queues an already encoded outbound item (long-polling form).
    pub fn push(&self, item: Bytes) {
        if self.queue.push(item) == Push::Overflow {
            metrics::error("slow_consumer");
        }
    }

    /// Hands inbound packets to the session task, in order; waits while its inbox is full.
    pub async fn deliver(&self, packets: impl IntoIterator<Item = Packet>) -> Result<(), Ended> {
        for packet in packets {
            self.inbox.send(packet).await.map_err(|_| Ended)?;
        }
        Ok(())
    }

    /// Ends the session for a protocol violation (the client reconnects).
    pub fn fail(&self, reason: &'static str, message: &str) {
        self.fail_with(CloseCode::ProtocolError, reason, message);
    }

    /// As [`Session::fail`] with a WebSocket close code other than 1002 (1007 bad text, 1009 too big).
    pub fn fail_with(&self, code: CloseCode, reason: &'static str, message: &str) {
        tracing::debug!(sid = self.sid, reason, message, "Socket.IO session closed");
        metrics::error(reason);
        self.queue.close(code, message);
    }
}

/// Opens a session on `mode` and starts its task; the caller sends the `open` packet.
pub(crate) fn open(gateway: &Arc<Gateway>, mode: Mode, token: Option<String>) -> Arc<Session> {
    let node = &gateway.node;
    let (inbox, rx) = mpsc::channel(INBOX_PACKETS);
    let encoding = Encoding::Dialect(gateway.root_encoder());
    let session = Arc::new(Session {
        sid: super::new_id(),
        queue: Arc::new(OutQueue::with_encoding(encoding, node.config.outbound_queue_bytes)),
        token,
        inbox,
        mode: Mutex::new(mode),
        poll_active: AtomicBool::new(false),
        post_active: AtomicBool::new(false),
        upgrading: Notify::new(),
    });
    metrics::session(mode.label(), 1.0);
    node.metrics.connection_opened(TRANSPORT);
    gateway.sessions.write().insert(session.sid.clone(), session.clone());
    let span = tracing::info_span!("socketio", sid = session.sid);
    node.tracker.spawn(tracing::Instrument::instrument(run(gateway.clone(), session.clone(), rx), span));
    session
}

/// The session task: inbound packets, heartbeat, the namespace-connect deadline, shutdown.
async fn run(gateway: Arc<Gateway>, session: Arc<Session>, mut rx: mpsc::Receiver<Packet>) {
    let node = gateway.node.clone();
    let config = &node.config.socketio;
    let mut sockets = Sockets::new(gateway.clone(), session.clone());
    let shutdown = node.shutdown.clone();
    let mut ping = tokio::time::interval_at(Instant::now() + config.ping_interval(), config.ping_interval());
    let mut pong_deadline: Option<Instant> = None;
    let connect_deadline = Instant::now() + config.connect_timeout();
    loop {
        let attachments_deadline = sockets.attachments_deadline();
        tokio::select! {
            biased;
            _ = session.queue.closed_or_shutdown(&shutdown) => break,
            packet = rx.recv() => {
                // Packets already in the inbox are taken in the same turn, up to READ_BURST: the select's
                // futures are set up once per burst, and the metrics updated once.
                let Some(first) = packet else { break };
                let (mut next, mut taken, mut bytes, mut closed) = (Some(first), 0, 0, false);
                while let Some(packet) = next.take() {
                    bytes += packet.wire_len() as u64;
                    taken += 1;
                    match packet {
                        Packet::Pong(_) => {
                            pong_deadline = None;
                            ping.reset();
                        }
                        Packet::Ping(data) => session.send(&Packet::Pong(data)),
                        Packet::Close => {
                            session.queue.close(CloseCode::Normal, "client closed");
                            closed = true;
                            break;
                        }
                        Packet::Message(text) => sockets.text(text).await,
                        Packet::Binary(data) => sockets.binary(data).await,
                        Packet::Upgrade => session.fail("protocol", "upgrade packet outside an upgrade"),
                        Packet::Open(_) | Packet::Noop => session.fail("protocol", "packet type not accepted from clients"),
                    }
                    if taken < READ_BURST && !session.queue.is_closed() && !shutdown.is_cancelled() {
                        next = rx.try_recv().ok();
                    }
                }
                node.metrics.frames_in(TRANSPORT, taken as u64, bytes);
                if closed {
                    break;
                }
            }
            // As in the reference server, one ping is outstanding at a time: the next waits for its pong.
            _ = ping.tick(), if pong_deadline.is_none() => {
                session.send(&Packet::Ping(Bytes::new()));
                pong_deadline = Some(Instant::now() + config.ping_timeout());
            }
            _ = sleep_until(pong_deadline.unwrap_or(connect_deadline)), if pong_deadline.is_some() => {
                metrics::error("ping_timeout");
                session.queue.close(CloseCode::Normal, "ping timeout");
                break;
            }
            _ = sleep_until(connect_deadline), if !sockets.ever_connected() => {
                metrics::error("connect_timeout");
                session.queue.close(CloseCode::PolicyViolation, "no namespace connect within the connect timeout");
                break;
            }
            _ = sleep_until(attachments_deadline.unwrap_or(connect_deadline)), if attachments_deadline.is_some() => {
                session.fail("attachments_timeout", "binary attachments did not arrive");
                break;
            }
        }
    }
    sockets.close_all().await;
    gateway.sessions.write().remove(&session.sid);
    metrics::session(session.mode().label(), -1.0);
    node.metrics.connection_closed(TRANSPORT);
}
