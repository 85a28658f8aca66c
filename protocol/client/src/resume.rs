//! [`ResumingClient`]: a connection that survives losing its connection. It reconnects with backoff
//! (optionally to other endpoints), subscribes its topics again from the last position it delivered, and
//! says per topic whether the gap was filled.

use crate::backoff::Backoff;
use crate::client::Client;
use crate::close::CloseInfo;
use crate::delivery::Delivery;
use crate::error::ClientError;
use crate::options::{ConnectOptions, ResumeOptions};
use crate::reply::SubscribeReply;
use crate::supervisor::{COMMAND_CAPACITY, Command, Link, Links, Supervisor, fatal, task_gone};
use crate::unsolicited::{ErrorLog, ServerError};
use chorus_protocol::{Payload, Position, Welcome};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Mutex, mpsc, oneshot, watch};
use tokio::time::Instant;
use tracing::Instrument;

/// A client that reconnects on its own and resumes its subscriptions.
///
/// Built on [`Client`]: [`connect`](Self::connect) opens the first connection; a background task then
/// forwards events and, when the connection is lost, reconnects with exponential backoff and jitter (see
/// [`ResumeOptions`]), sending `hello` with the endpoint's token again and subscribing every topic with
/// `since` = the position of the last event it delivered (section 8.1 of the protocol).
///
/// # When it reconnects
/// After any loss except two: [`close`](Self::close) (or dropping the client), and an authentication
/// failure (close 1008, or `hello` refused on a reconnect with error 3000–3002: the token is invalid or
/// expired, and the same token would be refused again; connect anew with a fresh one). So it reconnects
/// after a transport failure, 1001 going away, 1011, 4001 slow consumer, 4002 idle timeout, 4003 resync,
/// and any other close. It gives up after [`ResumeOptions::max_attempts`] failed attempts in a row, if set.
///
/// # What the application sees
/// [`next`](Self::next) returns [`Delivery`] items: events, and around each reconnect
/// [`Disconnected`](Delivery::Disconnected), [`Reconnected`](Delivery::Reconnected) and per topic
/// [`Resumed`](Delivery::Resumed) `{ recovered }` or [`SubscriptionLost`](Delivery::SubscriptionLost).
/// `recovered: false` means events were lost for good: reload the topic's state. Events are de-duplicated
/// by `(epoch, seq)`: none is handed out twice. An event with `seq` 0 is unsequenced: it is always handed
/// out and does not move the position.
///
/// A topic's position advances when its event enters the delivery buffer (which survives reconnects, so
/// what is in it still reaches [`next`](Self::next)). The end of a connection is noticed only once the events
/// it received have entered that buffer, so a full buffer (an application not reading) also holds up the
/// reconnect.
///
/// # Requests during a reconnect
/// Requests made while there is no connection ([`publish`](Self::publish), [`call`](Self::call),
/// [`ping`](Self::ping), [`subscribe`](Self::subscribe), …) **wait** for the next connection, within the
/// request timeout of the first endpoint's options as a whole. When it runs out first they fail with
/// [`ClientError::Reconnecting`]: the request was not sent, and retrying it is safe. A request already sent
/// when the connection is lost fails with [`ClientError::Closed`]: it may or may not have taken effect, and
/// is not sent again (publishing and calling are not idempotent). After the client stopped, requests fail
/// with [`ClientError::Closed`] carrying the final close.
#[derive(Debug)]
pub struct ResumingClient {
    commands: mpsc::Sender<Command>,
    deliveries: Mutex<mpsc::Receiver<Delivery>>,
    link: watch::Receiver<Link>,
    errors: Arc<ErrorLog>,
    request_timeout: Duration,
}

impl ResumingClient {
    /// Connects to the first endpoint that accepts: `options`, then those of
    /// [`ResumeOptions::endpoint`] in order, one attempt each and without delay. Fails with the last
    /// endpoint's error, or at once when one refuses the token ([`ClientError::Rejected`]) or an endpoint's
    /// options are invalid ([`ClientError::Config`]).
    ///
    /// `options` also sets the resuming client's own request timeout and delivery buffer size
    /// ([`ConnectOptions::request_timeout`], [`ConnectOptions::event_capacity`]).
    pub async fn connect(options: ConnectOptions, resume: ResumeOptions) -> Result<Self, ClientError> {
        let mut endpoints = vec![options];
        endpoints.extend(resume.endpoints);
        for endpoint in &endpoints {
            endpoint.route()?;
        }
        if resume.max_delay.is_zero() {
            return Err(ClientError::Config("max_delay must be positive".into()));
        }
        let mut last = None;
        for (index, options) in endpoints.iter().enumerate() {
            match Client::connect(options.clone()).await {
                Ok(client) => {
                    let backoff = Backoff::new(resume.min_delay, resume.max_delay);
                    return Ok(Self::start(endpoints, index, client, backoff, resume.max_attempts));
                }
                Err(e) if fatal(&e) => return Err(e),
                Err(e) => {
                    tracing::debug!(endpoint = index, error = %e, "endpoint unavailable");
                    last = Some(e);
                }
            }
        }
        Err(last.unwrap_or_else(|| ClientError::Config("no endpoint".into())))
    }

    fn start(
        endpoints: Vec<ConnectOptions>,
        index: usize,
        client: Client,
        backoff: Backoff,
        max_attempts: Option<u32>,
    ) -> Self {
        let request_timeout = endpoints[0].request_timeout;
        let (commands_tx, commands_rx) = mpsc::channel(COMMAND_CAPACITY);
        let (out_tx, out_rx) = mpsc::channel(endpoints[0].event_capacity);
        let client = Arc::new(client);
        let (link_tx, link_rx) = watch::channel(Link::Up(client.clone()));
        let errors = Arc::new(ErrorLog::default());
        let links = Links { commands: commands_rx, out: out_tx, link: link_tx, errors: errors.clone() };
        let supervisor = Supervisor::new(endpoints, index, backoff, max_attempts, links);
        tokio::spawn(supervisor.run(client).instrument(tracing::info_span!("chorus_resume")));
        Self { commands: commands_tx, deliveries: Mutex::new(out_rx), link: link_rx, errors, request_timeout }
    }

    /// The next [`Delivery`]: an event, or news of the connection or of a topic across a reconnect (see
    /// the type's documentation). `None` once the client has stopped (see [`close_info`](Self::close_info))
    /// and everything before has been returned. Deliveries wait in a bounded buffer; concurrent callers are
    /// served one at a time.
    pub async fn next(&self) -> Option<Delivery> {
        self.deliveries.lock().await.recv().await
    }

    /// Subscribes to `topic`, and to it again after every reconnect. Waits for a connection while there is
    /// none (see the type's documentation). Fails with error 2002 when the topic is already subscribed.
    pub async fn subscribe(&self, topic: &str) -> Result<SubscribeReply, ClientError> {
        self.subscribe_frame(topic, None).await
    }

    /// As [`subscribe`](Self::subscribe), replaying the events after `since` first (for a position the
    /// application kept, for instance across a restart). The reply's `recovered` says whether that worked.
    pub async fn subscribe_since(&self, topic: &str, since: Position) -> Result<SubscribeReply, ClientError> {
        self.subscribe_frame(topic, Some(since)).await
    }

    async fn subscribe_frame(&self, topic: &str, since: Option<Position>) -> Result<SubscribeReply, ClientError> {
        let (waiter, answer) = oneshot::channel();
        self.command(Command::Subscribe { topic: topic.to_owned(), since, waiter }, answer).await
    }

    /// Stops holding `topic`: it is not subscribed again after a reconnect, and its events are no longer
    /// delivered (some may already be in the delivery buffer). Fails with error 2003 when it was not held.
    pub async fn unsubscribe(&self, topic: &str) -> Result<(), ClientError> {
        let (waiter, answer) = oneshot::channel();
        self.command(Command::Unsubscribe { topic: topic.to_owned(), waiter }, answer).await
    }

    /// The position `topic` would resume from: the epoch of its subscription and the `seq` of its last
    /// event delivered (or of the subscribe reply, before any). `None` when the topic is not held, or its
    /// server sends no epoch.
    pub async fn position(&self, topic: &str) -> Option<Position> {
        let (waiter, answer) = oneshot::channel();
        self.commands.send(Command::Position { topic: topic.to_owned(), waiter }).await.ok()?;
        answer.await.ok().flatten()
    }

    /// Publishes and waits for the acknowledgement (see [`Client::publish`]).
    pub async fn publish(&self, topic: &str, payload: Payload) -> Result<u64, ClientError> {
        self.on_connection(|client| async move { client.publish(topic, payload).await }).await
    }

    /// Publishes without an acknowledgement (see [`Client::publish_nowait`]).
    pub async fn publish_nowait(&self, topic: &str, payload: Payload) -> Result<(), ClientError> {
        self.on_connection(|client| async move { client.publish_nowait(topic, payload).await }).await
    }

    /// Calls a module method (see [`Client::call`]).
    pub async fn call(&self, method: &str, args: Payload) -> Result<Payload, ClientError> {
        self.on_connection(|client| async move { client.call(method, args).await }).await
    }

    /// Calls a module method without asking for its result (see [`Client::call_nowait`]).
    pub async fn call_nowait(&self, method: &str, args: Payload) -> Result<(), ClientError> {
        self.on_connection(|client| async move { client.call_nowait(method, args).await }).await
    }

    /// Pings the current connection (see [`Client::ping`]).
    pub async fn ping(&self) -> Result<Duration, ClientError> {
        self.on_connection(|client| async move { client.ping().await }).await
    }

    /// The `welcome` of the current connection; `None` while reconnecting and after the end.
    pub fn welcome(&self) -> Option<Welcome> {
        match &*self.link.borrow() {
            Link::Up(client) if client.close_info().is_none() => Some(client.welcome().clone()),
            _ => None,
        }
    }

    /// Whether a connection is up.
    pub fn is_connected(&self) -> bool {
        self.welcome().is_some()
    }

    /// Takes the server `error` frames that answered no request, of this and of earlier connections (see
    /// [`Client::take_errors`]).
    pub fn take_errors(&self) -> Vec<ServerError> {
        let mut errors = self.errors.take();
        if let Link::Up(client) = &*self.link.borrow() {
            errors.extend(client.take_errors());
        }
        errors
    }

    /// How the client stopped, or `None` while it runs (reconnecting included).
    pub fn close_info(&self) -> Option<CloseInfo> {
        match &*self.link.borrow() {
            Link::Ended(info) => Some(info.clone()),
            _ => None,
        }
    }

    /// Waits until the client has stopped and returns how.
    pub async fn closed(&self) -> CloseInfo {
        let mut link = self.link.clone();
        match link.wait_for(|link| matches!(link, Link::Ended(_))).await {
            Ok(link) => match &*link {
                Link::Ended(info) => info.clone(),
                _ => task_gone(),
            },
            Err(_) => task_gone(),
        }
    }

    /// Closes the connection normally (1000), stops reconnecting, and waits for the end; returns how the
    /// connection ended. Deliveries already buffered can still be read with [`next`](Self::next).
    pub async fn close(&self) -> CloseInfo {
        // A send error means the supervisor is already gone; `closed` then returns at once.
        let _ = self.commands.send(Command::Close).await;
        self.closed().await
    }

    /// The error for a request when the client has stopped.
    fn ended_error(&self) -> ClientError {
        match &*self.link.borrow() {
            Link::Ended(info) => info.to_error(),
            _ => task_gone().to_error(),
        }
    }

    /// The error for a request whose time ran out: [`ClientError::Reconnecting`] when that is because
    /// there was no connection.
    fn timeout_error(&self) -> ClientError {
        let lost = match &*self.link.borrow() {
            Link::Up(client) => client.close_info(),
            Link::Down(info) => Some(info.clone()),
            Link::Ended(info) => return info.to_error(),
        };
        match lost {
            Some(CloseInfo { code, reason, .. }) => ClientError::Reconnecting { code, reason },
            None => ClientError::Timeout,
        }
    }

    /// Sends a command to the supervisor and waits for its answer, within the request timeout.
    async fn command<R>(
        &self,
        command: Command,
        answer: oneshot::Receiver<Result<R, ClientError>>,
    ) -> Result<R, ClientError> {
        let request = async {
            self.commands.send(command).await.map_err(|_| self.ended_error())?;
            answer.await.map_err(|_| self.ended_error())?
        };
        match tokio::time::timeout(self.request_timeout, request).await {
            Ok(result) => result,
            Err(_) => Err(self.timeout_error()),
        }
    }

    /// Waits for a live connection until `deadline`.
    async fn connected(&self, deadline: Instant) -> Result<Arc<Client>, ClientError> {
        let mut link = self.link.clone();
        loop {
            let lost = match &*link.borrow_and_update() {
                Link::Up(client) => match client.close_info() {
                    None => return Ok(client.clone()),
                    // Lost, and the supervisor has not seen it yet.
                    Some(info) => info,
                },
                Link::Down(info) => info.clone(),
                Link::Ended(info) => return Err(info.to_error()),
            };
            match tokio::time::timeout_at(deadline, link.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => return Err(self.ended_error()),
                Err(_) => return Err(ClientError::Reconnecting { code: lost.code, reason: lost.reason }),
            }
        }
    }

    /// Runs a request on the current connection, waiting for one first; all within the request timeout.
    async fn on_connection<R, F>(&self, request: impl FnOnce(Arc<Client>) -> F) -> Result<R, ClientError>
    where
        F: Future<Output = Result<R, ClientError>>,
    {
        let deadline = Instant::now() + self.request_timeout;
        let client = self.connected(deadline).await?;
        match tokio::time::timeout_at(deadline, request(client)).await {
            Ok(result) => result,
            Err(_) => Err(ClientError::Timeout),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn send_sync<T: Send + Sync>(_: &T) {}
    fn send<T: Send>(_: T) {}

    /// A `ResumingClient` can be shared across tasks, and its futures can be spawned.
    #[test]
    fn client_and_its_futures_are_thread_safe() {
        fn check(client: &ResumingClient) {
            send_sync(client);
            send(client.subscribe("t"));
            send(client.unsubscribe("t"));
            send(client.position("t"));
            send(client.publish("t", Payload::null()));
            send(client.call("m.f", Payload::null()));
            send(client.ping());
            send(client.next());
            send(client.close());
        }
        let _ = check;
        send(ResumingClient::connect(ConnectOptions::websocket("ws://127.0.0.1:1/v1/ws"), ResumeOptions::new()));
    }

    #[tokio::test]
    async fn invalid_endpoints_are_refused_before_connecting() {
        let ws = || ConnectOptions::websocket("ws://127.0.0.1:1/v1/ws");
        let bad = ResumeOptions::new().endpoint(ws().event_capacity(0));
        assert!(matches!(ResumingClient::connect(ws(), bad).await, Err(ClientError::Config(_))));
        let zero = ResumeOptions::new().max_delay(Duration::ZERO);
        assert!(matches!(ResumingClient::connect(ws(), zero).await, Err(ClientError::Config(_))));
    }
}
