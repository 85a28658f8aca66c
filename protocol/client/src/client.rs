//! [`Client`]: connect, authenticate, and the request/response API over the connection task.

use crate::close::CloseInfo;
use crate::connection::{self, Answer, COMMAND_CAPACITY, Command, Links, Settings};
use crate::error::ClientError;
use crate::event::Event;
use crate::options::{ConnectOptions, Keepalive, Route, TokenPlacement};
use crate::reply::{SubscribeReply, publish_seq};
use crate::transport::{Inbound, Transport};
use crate::unsolicited::{ErrorLog, ServerError};
use crate::{quic, ws};
use chorus_protocol::{ClientFrame, Codec, Payload, Position, ServerFrame, Welcome, decode_server, encode_client};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::{Mutex, mpsc, oneshot, watch};
use tracing::Instrument;

/// A connection to a chorus broker.
///
/// Request methods take `&self`, so one `Client` (behind an `Arc` if need be) serves concurrent callers;
/// each request waits for its own answer, at most the request timeout. Events are read with
/// [`next_event`](Self::next_event). Dropping the client closes the connection normally.
#[derive(Debug)]
pub struct Client {
    commands: mpsc::Sender<Command>,
    events: Mutex<mpsc::Receiver<Event>>,
    closed: watch::Receiver<Option<CloseInfo>>,
    errors: Arc<ErrorLog>,
    welcome: Welcome,
    codec: Codec,
    next_id: AtomicU64,
    request_timeout: Duration,
}

impl Client {
    /// Connects, sends `hello` and waits for `welcome`, all within the connect timeout.
    ///
    /// Fails with [`ClientError::Rejected`] when the server refuses the token (3000 invalid, 3001 expired,
    /// 3002 not yet valid; the server then closes with 1008), [`ClientError::Closed`] when it closes before
    /// answering, [`ClientError::Timeout`], or a transport, handshake or configuration error.
    pub async fn connect(options: ConnectOptions) -> Result<Self, ClientError> {
        let route = options.route()?;
        let connect_timeout = options.connect_timeout;
        let attempt = async {
            match route {
                Route::WebSocket { url } => {
                    let span = tracing::info_span!(
                        "chorus_client",
                        transport = "websocket",
                        codec = options.codec.name(),
                        conn_id = tracing::field::Empty
                    );
                    let transport = ws::connect(
                        url,
                        options.codec,
                        options.token.as_deref(),
                        options.token_placement,
                        options.max_inbound_frame_bytes,
                    )
                    .instrument(span.clone())
                    .await?;
                    establish(transport, &options, span).await
                }
                Route::Quic { addr, server_name, trust } => {
                    let span = tracing::info_span!(
                        "chorus_client",
                        transport = "quic",
                        codec = options.codec.name(),
                        conn_id = tracing::field::Empty
                    );
                    let max = options.max_inbound_frame_bytes;
                    let transport = quic::connect(addr, server_name, trust, max).instrument(span.clone()).await?;
                    establish(transport, &options, span).await
                }
            }
        };
        tokio::time::timeout(connect_timeout, attempt).await.map_err(|_| ClientError::Timeout)?
    }

    /// The server's `welcome`: connection id, identity and limits.
    pub fn welcome(&self) -> &Welcome {
        &self.welcome
    }

    /// The codec frames travel in (always MessagePack on QUIC).
    pub fn codec(&self) -> Codec {
        self.codec
    }

    /// Subscribes to `topic`; events on it then arrive through [`next_event`](Self::next_event).
    pub async fn subscribe(&self, topic: &str) -> Result<SubscribeReply, ClientError> {
        self.subscribe_frame(topic, None).await
    }

    /// Subscribes to `topic`, asking the broker to replay history after `since` first.
    pub async fn subscribe_since(&self, topic: &str, since: Position) -> Result<SubscribeReply, ClientError> {
        self.subscribe_frame(topic, Some(since)).await
    }

    async fn subscribe_frame(&self, topic: &str, since: Option<Position>) -> Result<SubscribeReply, ClientError> {
        let id = self.id();
        let frame = ClientFrame::Subscribe { id: Some(id), topic: topic.to_owned(), since };
        let result = self.reply(id, &frame).await?;
        Ok(SubscribeReply::from_result(&result)?)
    }

    /// Leaves `topic`. Events already buffered for it are still delivered.
    pub async fn unsubscribe(&self, topic: &str) -> Result<(), ClientError> {
        let id = self.id();
        self.reply(id, &ClientFrame::Unsubscribe { id: Some(id), topic: topic.to_owned() }).await.map(drop)
    }

    /// Publishes `payload` to `topic` and waits for the broker's acknowledgement; returns the event's `seq`.
    /// Build payloads with [`Payload::from_value`], [`Payload::from_json`] or [`Payload::from_msgpack`].
    pub async fn publish(&self, topic: &str, payload: Payload) -> Result<u64, ClientError> {
        let id = self.id();
        let result = self.reply(id, &ClientFrame::Publish { id: Some(id), topic: topic.to_owned(), payload }).await?;
        Ok(publish_seq(&result)?)
    }

    /// Publishes without asking for an acknowledgement. Returns once the frame is queued for writing; when
    /// the queue is full this waits for room (the queue is bounded), at most the request timeout. The server
    /// reports a refusal as an `error` without id, which lands in [`take_errors`](Self::take_errors).
    pub async fn publish_nowait(&self, topic: &str, payload: Payload) -> Result<(), ClientError> {
        let frame = encode_client(self.codec, &ClientFrame::Publish { id: None, topic: topic.to_owned(), payload })?;
        self.within_timeout(self.enqueue(Command::Send { frame, waiter: None })).await
    }

    /// Calls a module method (`module.method`) and returns its result.
    pub async fn call(&self, method: &str, args: Payload) -> Result<Payload, ClientError> {
        let id = self.id();
        self.reply(id, &ClientFrame::Call { id: Some(id), method: method.to_owned(), args }).await
    }

    /// Calls a module method without asking for its result (fire-and-forget). Returns once the frame is
    /// queued for writing, waiting for room as [`publish_nowait`](Self::publish_nowait) does. The server
    /// reports a refusal as an `error` without id, which lands in [`take_errors`](Self::take_errors).
    pub async fn call_nowait(&self, method: &str, args: Payload) -> Result<(), ClientError> {
        let frame = encode_client(self.codec, &ClientFrame::Call { id: None, method: method.to_owned(), args })?;
        self.within_timeout(self.enqueue(Command::Send { frame, waiter: None })).await
    }

    /// Sends `ping` and returns the round-trip time until its `pong` (queueing on this side included).
    /// Any frame also resets the broker's idle timer; see also [`ConnectOptions::keepalive`].
    pub async fn ping(&self) -> Result<Duration, ClientError> {
        let id = self.id();
        let started = Instant::now();
        match self.request(id, &ClientFrame::Ping { id: Some(id) }).await? {
            Answer::Pong => Ok(started.elapsed()),
            Answer::Reply(_) => Err(ClientError::UnexpectedFrame(format!("server answered ping {id} with a reply"))),
        }
    }

    /// The next event on a subscribed topic, in arrival order; `None` once the connection has closed and
    /// every event received before the close has been returned ([`close_info`](Self::close_info) is then
    /// set). Events wait in a bounded buffer ([`ConnectOptions::event_capacity`]); while it is full the SDK
    /// stops reading the socket, so a close that follows undrained events is seen only after they are read.
    /// Concurrent callers are served one at a time.
    pub async fn next_event(&self) -> Option<Event> {
        self.events.lock().await.recv().await
    }

    /// Takes the server `error` frames that answered no pending request (most recent
    /// [`UNSOLICITED_ERROR_CAPACITY`](crate::UNSOLICITED_ERROR_CAPACITY) kept), oldest first.
    pub fn take_errors(&self) -> Vec<ServerError> {
        self.errors.take()
    }

    /// How the connection ended, or `None` while it is open.
    pub fn close_info(&self) -> Option<CloseInfo> {
        self.closed.borrow().clone()
    }

    /// Waits until the connection has ended and returns how (see [`next_event`](Self::next_event) for why
    /// undrained events delay this).
    pub async fn closed(&self) -> CloseInfo {
        let mut closed = self.closed.clone();
        match closed.wait_for(Option::is_some).await {
            Ok(info) => info.clone().unwrap_or_else(task_gone),
            Err(_) => task_gone(),
        }
    }

    /// Closes the connection normally (code 1000) and waits for the task to finish; returns how the
    /// connection ended (the server's close, if it closed first).
    pub async fn close(&self) -> CloseInfo {
        // A send error means the task is already gone; `closed` then returns at once.
        let _ = self.commands.send(Command::Close).await;
        self.closed().await
    }

    fn id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    fn closed_error(&self) -> ClientError {
        self.close_info().unwrap_or_else(task_gone).to_error()
    }

    async fn enqueue(&self, command: Command) -> Result<(), ClientError> {
        self.commands.send(command).await.map_err(|_| self.closed_error())
    }

    async fn within_timeout<R>(&self, f: impl Future<Output = Result<R, ClientError>>) -> Result<R, ClientError> {
        tokio::time::timeout(self.request_timeout, f).await.map_err(|_| ClientError::Timeout)?
    }

    /// Sends a request carrying `id` and waits for its answer.
    async fn request(&self, id: u64, frame: &ClientFrame) -> Result<Answer, ClientError> {
        let frame = encode_client(self.codec, frame)?;
        let (tx, rx) = oneshot::channel();
        self.within_timeout(async {
            self.enqueue(Command::Send { frame, waiter: Some((id, tx)) }).await?;
            rx.await.map_err(|_| self.closed_error())?
        })
        .await
    }

    /// A request answered by `reply`.
    async fn reply(&self, id: u64, frame: &ClientFrame) -> Result<Payload, ClientError> {
        match self.request(id, frame).await? {
            Answer::Reply(result) => Ok(result),
            Answer::Pong => Err(ClientError::UnexpectedFrame(format!("server answered request {id} with a pong"))),
        }
    }
}

fn task_gone() -> CloseInfo {
    CloseInfo::remote(None, "connection task ended unexpectedly")
}

/// Sends `hello`, waits for `welcome`, then hands the transport to the connection task.
async fn establish<T: Transport>(
    mut transport: T,
    options: &ConnectOptions,
    span: tracing::Span,
) -> Result<Client, ClientError> {
    let codec = options.codec;
    let token = match options.token_placement {
        TokenPlacement::Hello => options.token.clone(),
        TokenPlacement::Query | TokenPlacement::Header => None,
    };
    let hello = encode_client(codec, &ClientFrame::Hello { token })?;
    transport.send(hello).instrument(span.clone()).await.map_err(|info| info.to_error())?;
    let welcome = match transport.recv().instrument(span.clone()).await {
        Inbound::Closed(info) => return Err(info.to_error()),
        Inbound::Frame(bytes) => match decode_server(codec, &bytes, options.max_inbound_frame_bytes)? {
            ServerFrame::Welcome(welcome) => welcome,
            ServerFrame::Error { code, message, .. } => {
                return Err(ClientError::Rejected { code, message });
            }
            ServerFrame::Disconnect { code, reason } => {
                return Err(ClientError::Closed { code: Some(code), reason });
            }
            other => {
                return Err(ClientError::Handshake(format!("expected welcome, got {other:?}")));
            }
        },
    };
    span.record("conn_id", welcome.conn_id);
    tracing::debug!(parent: &span, sub = %welcome.identity.sub, guest = welcome.identity.guest, "welcomed");

    let period = match options.keepalive {
        Keepalive::Auto => Some(Duration::from_millis(welcome.limits.idle_timeout_ms / 3)).filter(|p| !p.is_zero()),
        Keepalive::Every(period) => Some(period),
        Keepalive::Off => None,
    };
    let keepalive = match period {
        Some(period) => Some((period, encode_client(codec, &ClientFrame::Ping { id: None })?)),
        None => None,
    };
    let (commands_tx, commands_rx) = mpsc::channel(COMMAND_CAPACITY);
    let (events_tx, events_rx) = mpsc::channel(options.event_capacity);
    let (closed_tx, closed_rx) = watch::channel(None);
    let errors = Arc::new(ErrorLog::default());
    let links = Links { commands: commands_rx, events: events_tx, errors: errors.clone(), closed: closed_tx };
    let settings = Settings {
        codec,
        max_inbound_frame_bytes: options.max_inbound_frame_bytes,
        keepalive,
        write_timeout: options.request_timeout,
    };
    tokio::spawn(connection::run(transport, links, settings).instrument(span));
    Ok(Client {
        commands: commands_tx,
        events: Mutex::new(events_rx),
        closed: closed_rx,
        errors,
        welcome,
        codec,
        next_id: AtomicU64::new(1),
        request_timeout: options.request_timeout,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn send_sync<T: Send + Sync>(_: &T) {}
    fn send<T: Send>(_: T) {}

    /// A `Client` can be shared across tasks, and its request futures can be spawned.
    #[test]
    fn client_and_its_futures_are_thread_safe() {
        fn check(client: &Client) {
            send_sync(client);
            send(client.subscribe("t"));
            send(client.publish("t", Payload::null()));
            send(client.call("m.f", Payload::null()));
            send(client.next_event());
            send(client.close());
        }
        let _ = check;
        send(Client::connect(ConnectOptions::websocket("ws://127.0.0.1:1/v1/ws")));
    }
}
