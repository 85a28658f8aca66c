//! The connection task: owns the [`Transport`], and `select!`s over the client's commands, inbound frames,
//! room in the event buffer and the keepalive timer.
//!
//! Requests are matched to answers by id in a map of oneshot senders owned by the task alone (no lock).
//! Events go to a bounded channel; while it is full the task holds the one event it could not deliver and
//! stops reading the socket, which is how backpressure reaches the broker (see
//! [`DEFAULT_EVENT_CAPACITY`](crate::options::DEFAULT_EVENT_CAPACITY)). Commands keep flowing meanwhile,
//! but replies queued behind undelivered events wait with them.

use crate::close::CloseInfo;
use crate::error::ClientError;
use crate::event::Event;
use crate::transport::{Inbound, Transport};
use crate::unsolicited::{ErrorLog, ServerError};
use bytes::Bytes;
use chorus_protocol::{CloseCode, Codec, DecodeError, Payload, ServerFrame, decode_server};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::{Interval, MissedTickBehavior};

/// Commands queued from [`Client`](crate::Client) to the task. Each in-flight request holds one slot only
/// until the task takes it, so this bounds frames waiting to be written, not requests awaiting answers.
/// 256 lets many concurrent callers enqueue without waiting while a stalled socket still pushes back on
/// them quickly.
pub const COMMAND_CAPACITY: usize = 256;

/// The pending-request map is swept of abandoned entries (requests that timed out, whose receiver is gone)
/// when it reaches this size, and then whenever it doubles past its size after the last sweep. Abandoned
/// entries are otherwise removed only when their answer arrives, which for a lost answer is never.
const PENDING_SWEEP_MIN: usize = 64;

/// The answer a request waits for.
#[derive(Debug)]
pub(crate) enum Answer {
    /// A `reply` with its result.
    Reply(Payload),
    /// A `pong`.
    Pong,
}

/// Where the task delivers a request's answer.
pub(crate) type Waiter = oneshot::Sender<Result<Answer, ClientError>>;

/// What the client asks of the task.
pub(crate) enum Command {
    /// Write `frame`; when it carries a request id, register the waiter first so the answer cannot race it.
    Send { frame: Bytes, waiter: Option<(u64, Waiter)> },
    /// Close normally and stop.
    Close,
}

/// The task's links to the [`Client`](crate::Client).
pub(crate) struct Links {
    pub(crate) commands: mpsc::Receiver<Command>,
    pub(crate) events: mpsc::Sender<Event>,
    pub(crate) errors: Arc<ErrorLog>,
    pub(crate) closed: watch::Sender<Option<CloseInfo>>,
}

/// Settings the task needs from the options.
pub(crate) struct Settings {
    pub(crate) codec: Codec,
    pub(crate) max_inbound_frame_bytes: usize,
    /// The keepalive period and the pre-encoded `ping` (no id) sent each period.
    pub(crate) keepalive: Option<(Duration, Bytes)>,
    /// A write that makes no progress for this long ends the connection (the server is not reading).
    pub(crate) write_timeout: Duration,
}

struct Task<T> {
    transport: T,
    links: Links,
    settings: Settings,
    pending: HashMap<u64, Waiter>,
    sweep_at: usize,
    /// The event that found the event buffer full; the socket is not read until it is delivered.
    held: Option<Event>,
    /// The server's `disconnect`, if it sent one.
    disconnect: Option<CloseInfo>,
}

/// Runs the connection until it ends, then publishes how it ended and fails whatever still waits.
pub(crate) async fn run<T: Transport>(transport: T, links: Links, settings: Settings) {
    let mut task = Task {
        transport,
        links,
        settings,
        pending: HashMap::new(),
        sweep_at: PENDING_SWEEP_MIN,
        held: None,
        disconnect: None,
    };
    let info = task.serve().await;
    // A server's `disconnect` names the close better than the transport failure or close that follows it.
    let info = match task.disconnect.take() {
        Some(announced) if !info.by_client => announced,
        _ => info,
    };
    task.finish(info).await;
}

/// Resolves when the event buffer has room (true) or the client is gone (false). Yields no permit, so the
/// `select!` output borrows nothing.
async fn room(events: &mpsc::Sender<Event>) -> bool {
    events.reserve().await.is_ok()
}

async fn tick(keepalive: &mut Option<Interval>) {
    match keepalive {
        Some(interval) => {
            interval.tick().await;
        }
        None => std::future::pending().await,
    }
}

impl<T: Transport> Task<T> {
    async fn serve(&mut self) -> CloseInfo {
        let mut keepalive = self.settings.keepalive.as_ref().map(|(period, _)| {
            let mut interval = tokio::time::interval_at(tokio::time::Instant::now() + *period, *period);
            interval.set_missed_tick_behavior(MissedTickBehavior::Delay);
            interval
        });
        loop {
            tokio::select! {
                open = room(&self.links.events), if self.held.is_some() => {
                    match self.held.take() {
                        // The task is the only sender, so the room just seen is still there; `deliver` copes
                        // anyway.
                        Some(event) if open => self.deliver(event),
                        // The client is gone; the event has nobody to go to.
                        _ => {}
                    }
                }
                command = self.links.commands.recv() => match command {
                    None => return CloseInfo::local(CloseCode::Normal, "client dropped"),
                    Some(Command::Close) => return CloseInfo::local(CloseCode::Normal, "closed by client"),
                    Some(Command::Send { frame, waiter }) => {
                        if let Some((id, waiter)) = waiter {
                            self.register(id, waiter);
                        }
                        if let Err(info) = self.write(frame).await {
                            return info;
                        }
                    }
                },
                inbound = self.transport.recv(), if self.held.is_none() => match inbound {
                    Inbound::Frame(bytes) => {
                        if let Err(info) = self.dispatch(&bytes) {
                            return info;
                        }
                    }
                    Inbound::Closed(info) => return info,
                },
                () = tick(&mut keepalive) => {
                    if let Some((_, ping)) = &self.settings.keepalive
                        && let Err(info) = self.write(ping.clone()).await
                    {
                        return info;
                    }
                }
            }
        }
    }

    /// Hands `event` to the client, or holds it (pausing reads) while the buffer is full.
    fn deliver(&mut self, event: Event) {
        match self.links.events.try_send(event) {
            Ok(()) | Err(mpsc::error::TrySendError::Closed(_)) => {}
            Err(mpsc::error::TrySendError::Full(event)) => {
                tracing::trace!("event buffer full; pausing reads");
                self.held = Some(event);
            }
        }
    }

    async fn write(&mut self, frame: Bytes) -> Result<(), CloseInfo> {
        match tokio::time::timeout(self.settings.write_timeout, self.transport.send(frame)).await {
            Ok(result) => result,
            Err(_) => Err(CloseInfo::local(
                CloseCode::GoingAway,
                format!("the server accepted no data for {:?}", self.settings.write_timeout),
            )),
        }
    }

    fn register(&mut self, id: u64, waiter: Waiter) {
        if self.pending.len() >= self.sweep_at {
            self.pending.retain(|_, waiter| !waiter.is_closed());
            self.sweep_at = (self.pending.len() * 2).max(PENDING_SWEEP_MIN);
        }
        self.pending.insert(id, waiter);
    }

    fn answer(&mut self, id: u64, answer: Result<Answer, ClientError>) -> Option<Result<Answer, ClientError>> {
        match self.pending.remove(&id) {
            // A send error means the caller gave up (timeout) just now: nobody to tell.
            Some(waiter) => {
                let _ = waiter.send(answer);
                None
            }
            None => Some(answer),
        }
    }

    /// Handles one inbound frame. An error ends the connection.
    fn dispatch(&mut self, bytes: &Bytes) -> Result<(), CloseInfo> {
        let frame = match decode_server(self.settings.codec, bytes, self.settings.max_inbound_frame_bytes) {
            Ok(frame) => frame,
            Err(DecodeError::UnknownType(ty)) => {
                // A newer server's frame type: skipping it keeps older clients working.
                tracing::debug!(frame_type = %ty, "ignoring unknown frame type");
                return Ok(());
            }
            Err(e) => {
                return Err(CloseInfo::local(
                    CloseCode::ProtocolError,
                    format!("undecodable frame from the server: {e}"),
                ));
            }
        };
        match frame {
            ServerFrame::Event { topic, seq, payload } => {
                self.deliver(Event { topic, seq, payload });
            }
            ServerFrame::Reply { id, result } => {
                if self.answer(id, Ok(Answer::Reply(result))).is_some() {
                    tracing::debug!(id, "reply for a request nobody awaits (timed out)");
                }
            }
            ServerFrame::Pong { id: Some(id) } => {
                if self.answer(id, Ok(Answer::Pong)).is_some() {
                    tracing::debug!(id, "pong for a ping nobody awaits (timed out)");
                }
            }
            ServerFrame::Pong { id: None } => {}
            ServerFrame::Error { id, code, message } => {
                let unanswered = match id {
                    Some(id) => self.answer(id, Err(ClientError::Server { code, message: message.clone() })).is_some(),
                    None => true,
                };
                if unanswered {
                    tracing::warn!(code, message = %message, id, "server error answering no pending request");
                    self.links.errors.push(ServerError { id, code, message });
                }
            }
            ServerFrame::Disconnect { code, reason } => {
                tracing::info!(code, reason = %reason, "server announced disconnect");
                self.disconnect = Some(CloseInfo::remote(Some(code), reason));
            }
            ServerFrame::Welcome(_) => {
                return Err(CloseInfo::local(CloseCode::ProtocolError, "second welcome from the server"));
            }
        }
        Ok(())
    }

    async fn finish(mut self, info: CloseInfo) {
        tracing::debug!(code = info.code, reason = %info.reason, by_client = info.by_client, "connection closed");
        self.transport.shutdown(&info).await;
        // Publish first: a caller that sees its request fail, or the event stream end, finds the reason set.
        self.links.closed.send_replace(Some(info.clone()));
        for (_, waiter) in self.pending.drain() {
            let _ = waiter.send(Err(info.to_error()));
        }
        self.links.commands.close();
        while let Ok(command) = self.links.commands.try_recv() {
            if let Command::Send { waiter: Some((_, waiter)), .. } = command {
                let _ = waiter.send(Err(info.to_error()));
            }
        }
    }
}
