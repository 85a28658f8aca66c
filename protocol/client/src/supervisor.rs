//! The supervisor task of a [`ResumingClient`](crate::ResumingClient): owns the current [`Client`] and the
//! [`Subscriptions`], forwards events as [`Delivery`]s, and when the connection is lost reconnects with
//! backoff and subscribes every topic again from its position.
//!
//! Like the connection task it `select!`s: over the connection's events, the answers to subscribes in flight
//! (which must be awaited while events keep being read, since the broker may queue a replay ahead of its
//! reply), the application's commands and room in the delivery buffer. Deliveries it could not hand over
//! wait in `staged`, and while any wait it reads no events: backpressure from a slow application reaches
//! the connection, and from there the broker, as with a plain [`Client`].
//!
//! A connection's end is noticed once its buffered events have all been forwarded, so positions include
//! every event received before the loss; an unread delivery buffer therefore also delays the reconnect.

use crate::backoff::Backoff;
use crate::client::Client;
use crate::close::CloseInfo;
use crate::delivery::Delivery;
use crate::error::ClientError;
use crate::options::ConnectOptions;
use crate::reply::SubscribeReply;
use crate::subscriptions::{
    MAX_EARLY_BYTES, Outcome, Overflow, Request, SubscribeWaiter, Subscriptions, not_subscribed,
};
use crate::unsolicited::ErrorLog;
use chorus_protocol::{CloseCode, Position};
use futures_util::StreamExt;
use futures_util::future::BoxFuture;
use futures_util::stream::FuturesUnordered;
use std::collections::VecDeque;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;

/// Commands queued from the [`ResumingClient`](crate::ResumingClient) to the supervisor. Only subscribe,
/// unsubscribe, position queries and close go through it (requests use the connection directly), and the
/// supervisor answers each at once, so a few dozen slots never fill in practice; when they do, callers
/// wait for room.
pub(crate) const COMMAND_CAPACITY: usize = 64;

/// What the [`ResumingClient`](crate::ResumingClient) asks of the supervisor.
pub(crate) enum Command {
    /// Subscribe now, or on the next connection while there is none.
    Subscribe { topic: String, since: Option<Position>, waiter: SubscribeWaiter },
    /// Stop holding the topic (and unsubscribe on the current connection, if any).
    Unsubscribe { topic: String, waiter: oneshot::Sender<Result<(), ClientError>> },
    /// The position the topic would resume from.
    Position { topic: String, waiter: oneshot::Sender<Option<Position>> },
    /// Close the connection and stop.
    Close,
}

/// The state of the connection, published to the [`ResumingClient`](crate::ResumingClient) for its requests.
#[derive(Debug, Clone)]
pub(crate) enum Link {
    /// Connected through this client.
    Up(Arc<Client>),
    /// Lost this way; reconnecting.
    Down(CloseInfo),
    /// Stopped for good.
    Ended(CloseInfo),
}

/// Whether a failed connect makes reconnecting pointless: the server refused the token (which a retry with
/// the same token would not change), or the options are unusable.
pub(crate) fn fatal(error: &ClientError) -> bool {
    matches!(error, ClientError::Rejected { .. } | ClientError::Config(_))
        || error.close_code() == Some(CloseCode::PolicyViolation)
}

/// A failed connect attempt described as a close, for [`Delivery::Disconnected`].
fn failure_info(error: &ClientError) -> CloseInfo {
    match error {
        ClientError::Closed { code, reason } => CloseInfo::remote(*code, reason.clone()),
        ClientError::Rejected { code, message } => {
            CloseInfo::remote(Some(CloseCode::PolicyViolation.as_u16()), format!("{message} (error {code})"))
        }
        other => CloseInfo::remote(None, other.to_string()),
    }
}

/// A subscribe in flight and its answer.
struct Answered {
    topic: String,
    generation: u64,
    result: Result<SubscribeReply, ClientError>,
}

type Inflight = FuturesUnordered<BoxFuture<'static, Answered>>;

fn send_subscribe(client: &Arc<Client>, request: Request) -> BoxFuture<'static, Answered> {
    let client = client.clone();
    Box::pin(async move {
        let Request { topic, generation, since } = request;
        let result = match since {
            Some(since) => client.subscribe_since(&topic, since).await,
            None => client.subscribe(&topic).await,
        };
        Answered { topic, generation, result }
    })
}

/// Resolves when the delivery buffer has room (true) or the application is gone (false). Yields no
/// permit, so the `select!` output borrows nothing.
async fn room(out: &mpsc::Sender<Delivery>) -> bool {
    out.reserve().await.is_ok()
}

/// How one connection ended.
enum End {
    /// Lost: reconnect (unless the close says not to).
    Lost(CloseInfo),
    /// The application closed the client (or dropped it).
    Stop(CloseInfo),
}

/// What an application command means for the loop that received it.
enum Next {
    Continue,
    Stop,
}

/// The task's state; see the module documentation.
pub(crate) struct Supervisor {
    endpoints: Vec<ConnectOptions>,
    /// Index into `endpoints` of the current (or last) connection.
    current: usize,
    backoff: Backoff,
    /// The backoff step of the next attempt. Not reset by a successful connect, only once a connection has
    /// stayed up for the longest backoff delay: a node that accepts connections and closes them at once
    /// must not be hammered at the shortest delay.
    step: u32,
    max_attempts: Option<u32>,
    commands: mpsc::Receiver<Command>,
    out: mpsc::Sender<Delivery>,
    link: watch::Sender<Link>,
    errors: Arc<ErrorLog>,
    subs: Subscriptions,
    /// Deliveries that found the buffer full, oldest first.
    staged: VecDeque<Delivery>,
    /// Subscribes made while disconnected, sent on the next connection.
    parked: Vec<(String, Option<Position>, SubscribeWaiter)>,
}

/// The supervisor's links to the [`ResumingClient`](crate::ResumingClient).
pub(crate) struct Links {
    pub(crate) commands: mpsc::Receiver<Command>,
    pub(crate) out: mpsc::Sender<Delivery>,
    pub(crate) link: watch::Sender<Link>,
    pub(crate) errors: Arc<ErrorLog>,
}

impl Supervisor {
    pub(crate) fn new(
        endpoints: Vec<ConnectOptions>,
        current: usize,
        backoff: Backoff,
        max_attempts: Option<u32>,
        links: Links,
    ) -> Self {
        Self {
            endpoints,
            current,
            backoff,
            step: 0,
            max_attempts,
            commands: links.commands,
            out: links.out,
            link: links.link,
            errors: links.errors,
            subs: Subscriptions::new(MAX_EARLY_BYTES),
            staged: VecDeque::new(),
            parked: Vec::new(),
        }
    }

    /// Serves connections until the application closes the client or the client gives up.
    pub(crate) async fn run(mut self, first: Arc<Client>) {
        let mut client = first;
        let mut connected_at = Instant::now();
        loop {
            let end = self.serve(&client).await;
            if connected_at.elapsed() >= self.backoff.max() {
                self.step = 0;
            }
            for error in client.take_errors() {
                self.errors.push(error);
            }
            let lost = match end {
                End::Stop(info) => return self.finish(info).await,
                End::Lost(info) => info,
            };
            self.subs.connection_lost(&lost);
            if lost.close_code() == Some(CloseCode::PolicyViolation) {
                tracing::warn!(reason = %lost.reason, "connection closed for authentication; not reconnecting");
                self.stage(Delivery::Disconnected { info: lost.clone(), reconnecting: false });
                return self.finish(lost).await;
            }
            let topics = self.subs.len();
            tracing::info!(code = lost.code, reason = %lost.reason, topics, "connection lost; reconnecting");
            self.stage(Delivery::Disconnected { info: lost.clone(), reconnecting: true });
            self.link.send_replace(Link::Down(lost.clone()));
            client = match self.reconnect(lost).await {
                Ok(client) => client,
                Err(info) => return self.finish(info).await,
            };
            connected_at = Instant::now();
            self.link.send_replace(Link::Up(client.clone()));
            self.stage(Delivery::Reconnected(client.welcome().clone()));
        }
    }

    /// Forwards the events of one connection and answers commands until it ends.
    async fn serve(&mut self, client: &Arc<Client>) -> End {
        let mut inflight = Inflight::new();
        for request in self.subs.resume_all() {
            inflight.push(send_subscribe(client, request));
        }
        for (topic, since, waiter) in std::mem::take(&mut self.parked) {
            self.begin(client, &mut inflight, topic, since, waiter);
        }
        loop {
            tokio::select! {
                open = room(&self.out), if !self.staged.is_empty() => self.flush(open),
                event = client.next_event(), if self.staged.is_empty() => match event {
                    Some(event) => match self.subs.on_event(event) {
                        Ok(Some(event)) => self.stage(Delivery::Event(event)),
                        Ok(None) => {}
                        Err(Overflow) => {
                            let reason = format!("over {MAX_EARLY_BYTES} bytes of events before subscribe replies");
                            return abandon(client, reason).await;
                        }
                    },
                    None => return End::Lost(client.close_info().unwrap_or_else(task_gone)),
                },
                Some(Answered { topic, generation, result }) = inflight.next() => {
                    let outcome = self.subs.on_reply(&topic, generation, result, &mut self.staged);
                    self.flush(true);
                    // A connection that already closed is noticed, with its own close, once its events are read.
                    if outcome == Outcome::Abandon && client.close_info().is_none() {
                        return abandon(client, format!("subscribing {topic} again got no answer")).await;
                    }
                }
                command = self.commands.recv() => {
                    if let Next::Stop = self.online(client, &mut inflight, command) {
                        return End::Stop(client.close().await);
                    }
                }
            }
        }
    }

    /// Handles a command while connected.
    fn online(&mut self, client: &Arc<Client>, inflight: &mut Inflight, command: Option<Command>) -> Next {
        match command {
            None | Some(Command::Close) => return Next::Stop,
            // The connection ended and the loop will notice once its events are read: the subscribe waits
            // for the next one rather than failing unsent.
            Some(command @ Command::Subscribe { .. }) if client.close_info().is_some() => {
                return self.offline(Some(command));
            }
            Some(Command::Subscribe { topic, since, waiter }) => self.begin(client, inflight, topic, since, waiter),
            Some(Command::Unsubscribe { topic, waiter }) => {
                if self.subs.remove(&topic) {
                    // Not awaited here: events must keep flowing meanwhile. The events of the topic that are
                    // still on their way are dropped, since the topic is no longer held.
                    let client = client.clone();
                    tokio::spawn(async move {
                        let result = match client.unsubscribe(&topic).await {
                            // The connection is gone, and the subscription with it.
                            Err(ClientError::Closed { .. }) => Ok(()),
                            other => other,
                        };
                        let _ = waiter.send(result);
                    });
                } else {
                    let _ = waiter.send(Err(not_subscribed(&topic)));
                }
            }
            Some(Command::Position { topic, waiter }) => {
                let _ = waiter.send(self.subs.position(&topic));
            }
        }
        Next::Continue
    }

    /// Handles a command while disconnected.
    fn offline(&mut self, command: Option<Command>) -> Next {
        match command {
            None | Some(Command::Close) => return Next::Stop,
            Some(Command::Subscribe { topic, since, waiter }) => {
                self.parked.retain(|(_, _, waiter)| !waiter.is_closed());
                if self.subs.contains(&topic) || self.parked.iter().any(|(t, ..)| *t == topic) {
                    let _ = waiter.send(Err(crate::subscriptions::already_subscribed(&topic)));
                } else {
                    self.parked.push((topic, since, waiter));
                }
            }
            Some(Command::Unsubscribe { topic, waiter }) => {
                let held = self.subs.remove(&topic);
                let parked = self.parked.iter().position(|(t, ..)| *t == topic).map(|i| self.parked.swap_remove(i));
                let found = held || parked.is_some();
                if let Some((_, _, subscriber)) = parked {
                    let _ = subscriber.send(Err(ClientError::Closed {
                        code: None,
                        reason: format!("unsubscribed from {topic} before the subscribe was sent"),
                    }));
                }
                let _ = waiter.send(if found { Ok(()) } else { Err(not_subscribed(&topic)) });
            }
            Some(Command::Position { topic, waiter }) => {
                let _ = waiter.send(self.subs.position(&topic));
            }
        }
        Next::Continue
    }

    fn begin(
        &mut self,
        client: &Arc<Client>,
        inflight: &mut Inflight,
        topic: String,
        since: Option<Position>,
        waiter: SubscribeWaiter,
    ) {
        if waiter.is_closed() {
            // The caller gave up (timed out) while the subscribe waited for a connection.
            return;
        }
        if let Some(request) = self.subs.begin(topic, since, waiter) {
            inflight.push(send_subscribe(client, request));
        }
    }

    /// Connects again, to the next endpoint per attempt, with backoff. Fails with the final close when the
    /// client gives up or the application closes it meanwhile.
    async fn reconnect(&mut self, lost: CloseInfo) -> Result<Arc<Client>, CloseInfo> {
        let mut last = lost;
        let mut attempt: u32 = 0;
        loop {
            if self.max_attempts.is_some_and(|max| attempt >= max) {
                tracing::warn!(attempts = attempt, reason = %last.reason, "giving up reconnecting");
                self.stage(Delivery::Disconnected { info: last.clone(), reconnecting: false });
                return Err(last);
            }
            self.current = (self.current + 1) % self.endpoints.len();
            let options = self.endpoints[self.current].clone();
            let delay = self.backoff.delay(self.step);
            self.step = self.step.saturating_add(1);
            attempt += 1;
            tracing::debug!(attempt, endpoint = self.current, ?delay, "reconnecting");
            let mut connecting = std::pin::pin!(async move {
                tokio::time::sleep(delay).await;
                Client::connect(options).await
            });
            let result = loop {
                tokio::select! {
                    result = &mut connecting => break result,
                    open = room(&self.out), if !self.staged.is_empty() => self.flush(open),
                    command = self.commands.recv() => {
                        if let Next::Stop = self.offline(command) {
                            return Err(CloseInfo::local(CloseCode::Normal, "closed by client"));
                        }
                    }
                }
            };
            match result {
                Ok(client) => {
                    tracing::info!(attempt, endpoint = self.current, conn_id = client.welcome().conn_id, "reconnected");
                    return Ok(Arc::new(client));
                }
                Err(error) if fatal(&error) => {
                    tracing::warn!(error = %error, "reconnect refused; not reconnecting");
                    let info = failure_info(&error);
                    self.stage(Delivery::Disconnected { info: info.clone(), reconnecting: false });
                    return Err(info);
                }
                Err(error) => {
                    tracing::debug!(attempt, error = %error, "reconnect attempt failed");
                    last = failure_info(&error);
                }
            }
        }
    }

    /// Queues `delivery` behind those already waiting and hands over what fits.
    fn stage(&mut self, delivery: Delivery) {
        self.staged.push_back(delivery);
        self.flush(true);
    }

    /// Hands staged deliveries over while the buffer has room; `open` false means the application is gone
    /// (its deliveries have nobody to go to).
    fn flush(&mut self, open: bool) {
        if !open {
            self.staged.clear();
            return;
        }
        while let Some(delivery) = self.staged.pop_front() {
            match self.out.try_send(delivery) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Full(delivery)) => {
                    self.staged.push_front(delivery);
                    return;
                }
                Err(mpsc::error::TrySendError::Closed(_)) => {
                    self.staged.clear();
                    return;
                }
            }
        }
    }

    /// Publishes the end, fails whatever still waits, and hands over the last deliveries. Dropping `out`
    /// afterwards ends the application's stream.
    async fn finish(mut self, info: CloseInfo) {
        tracing::debug!(code = info.code, reason = %info.reason, "resuming client stopped");
        self.subs.connection_lost(&info);
        for (_, _, waiter) in self.parked.drain(..) {
            let _ = waiter.send(Err(info.to_error()));
        }
        self.link.send_replace(Link::Ended(info));
        // Commands still queued are dropped with their waiters; their callers then read the end from `link`.
        self.commands.close();
        while self.commands.try_recv().is_ok() {}
        for delivery in std::mem::take(&mut self.staged) {
            if self.out.send(delivery).await.is_err() {
                break;
            }
        }
    }
}

/// Gives up on a connection that is still open but cannot serve (see [`Outcome::Abandon`] and
/// [`Overflow`]); its topics are subscribed again on the next one, from the positions already delivered.
async fn abandon(client: &Client, reason: String) -> End {
    tracing::warn!(reason = %reason, "abandoning the connection");
    client.close().await;
    End::Lost(CloseInfo { code: None, reason, by_client: true })
}

pub(crate) fn task_gone() -> CloseInfo {
    CloseInfo::remote(None, "connection task ended unexpectedly")
}
