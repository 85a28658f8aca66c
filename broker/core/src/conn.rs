//! One task per connection. It owns the socket's reading half, decodes frames, authenticates once, and
//! drives the registry and the modules; the writing half belongs to the writer task of its
//! [`OutQueue`](crate::queue::OutQueue). The task `select!`s over inbound frames, the queue closing
//! (slow consumer), node shutdown, and the hello/idle deadline.

use crate::cluster::{Cluster, ClusterError};
use crate::module::{Caller, Context, ModuleError};
use crate::node::Node;
use crate::node::PublishError;
use crate::queue::{Encoding, FrameSink, OutQueue, Push, run_writer};
use crate::rate::TokenBucket;
use crate::topics::{Subscribed, Subscriber};
use crate::transport::{FrameSource, Inbound};
use bytes::Bytes;
use chorus_protocol::topic;
use chorus_protocol::{
    ClientFrame, CloseCode, Codec, ErrorCode, Payload, Position, ServerFrame, Welcome, decode_client,
};
use futures_util::stream::FuturesOrdered;
use futures_util::{FutureExt as _, StreamExt};
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio::time::{Instant, sleep_until, timeout};
use tracing::{Instrument, field};

/// How long the writer may take to flush the goodbye and close after the connection ends. A client that
/// does not read at all cannot hold its task (and socket) longer than this.
pub const CLOSE_FLUSH_TIMEOUT: Duration = Duration::from_secs(2);

/// Cluster-mode publishes one connection may have on their way to the bus at once. They are sent in
/// order without waiting for each other (Redis runs them in that order), and acknowledged in order.
const MAX_PUBLISHES_IN_FLIGHT: usize = 256;

/// Most inbound items a connection (native, or a Socket.IO session) takes in one turn once the first
/// arrived, when they are read already; then timers, shutdown and cluster publishes get their turn again.
pub(crate) const READ_BURST: usize = 32;

/// A publish on its way to the bus: the request id and the outcome.
type InFlight = Pin<Box<dyn Future<Output = (Option<u64>, Result<u64, PublishError>)> + Send>>;

/// What the transport knows about a new connection.
pub struct Accepted {
    /// `ws` or `quic` (metric label).
    pub transport: &'static str,
    /// Negotiated codec.
    pub codec: Codec,
    /// A token presented at the transport level (WebSocket `?token=` or `Authorization`).
    pub token: Option<String>,
    /// Remote address.
    pub peer: SocketAddr,
}

/// Closes the queue for an inbound item that ends the connection (peer close, oversize frame, broken
/// transport). Frames and activity are not ends and leave the queue open.
pub(crate) fn end_of_input(queue: &OutQueue, inbound: Inbound, max_frame_bytes: u32) {
    match inbound {
        Inbound::Frame(_) | Inbound::Activity | Inbound::Answer(_) => {}
        Inbound::Closed => queue.close(CloseCode::Normal, "client closed"),
        Inbound::TooLarge => {
            queue.close(CloseCode::MessageTooBig, &format!("frame exceeds max_frame_bytes ({max_frame_bytes})"))
        }
        Inbound::TextOnBinary => queue.close(
            CloseCode::UnsupportedData,
            "text frame on a MessagePack connection: for JSON connect with ?codec=json or subprotocol chorus.v1.json",
        ),
        Inbound::Broken(code, e) => {
            tracing::debug!(error = %e, "transport error");
            queue.close(code, &e);
        }
    }
}

/// Opens a connection's outbound queue and starts its writer task.
pub(crate) fn open_queue(
    node: &Node,
    encoding: Encoding,
    sink: impl FrameSink,
    transport: &'static str,
) -> (Arc<OutQueue>, JoinHandle<()>) {
    let queue = Arc::new(OutQueue::framed(encoding, sink.framing(), node.config.outbound_queue_bytes));
    // Not in the connection's span: entering it on every wake-up of every subscriber's writer cost 10 % of
    // a fan-out's core (bench `fanout` profile). Its one log line (a failed write, debug) goes without it.
    let writer = tokio::spawn(run_writer(queue.clone(), sink, node.metrics.clone(), transport));
    node.metrics.connection_opened(transport);
    (queue, writer)
}

/// Ends a connection after its read loop: lets the writer flush the goodbye (bounded by
/// [`CLOSE_FLUSH_TIMEOUT`]) and returns the close code.
pub(crate) async fn close_queue(
    node: &Node,
    queue: &OutQueue,
    mut writer: JoinHandle<()>,
    transport: &'static str,
) -> CloseCode {
    tracing::debug!(close = ?queue.close_code(), "connection ended");
    if timeout(CLOSE_FLUSH_TIMEOUT, &mut writer).await.is_err() {
        writer.abort();
    }
    node.metrics.connection_closed(transport);
    queue.close_code().unwrap_or(CloseCode::Normal)
}

/// Subscribes a connection to `topic` through its owning module: authorize, register (replaying the
/// history after `since`), then the module's snapshot. On a refusal or a failed snapshot nothing stays
/// subscribed. Both the native protocol and compat dialects subscribe through this. The caller becomes
/// present in the topic.
pub(crate) async fn join_topic(
    node: &Node,
    ctx: &Context,
    caller: &Caller,
    subscriber: Subscriber,
    topic: &str,
    since: Option<&Position>,
) -> Result<(Subscribed, Option<Payload>), ModuleError> {
    let owner = node.modules.owner(topic).cloned();
    if let Some(m) = &owner {
        m.authorize(ctx, caller, topic).await?;
    }
    let older = match &node.cluster {
        Some(cluster) => watch_topic(node, cluster.as_ref(), topic, since).await?,
        None => Vec::new(),
    };
    let subscribed = node.registry.subscribe(topic, subscriber, since, &older);
    let snapshot = match &owner {
        Some(m) => m.snapshot(ctx, caller, topic).await.inspect_err(|_| {
            node.registry.unsubscribe(topic, caller.conn_id);
            if let Some(cluster) = &node.cluster {
                cluster.unwatch(topic);
            }
        })?,
        None => None,
    };
    let identity = &caller.identity;
    node.presence.join(topic, &identity.sub, identity.name.as_deref(), caller.conn_id);
    share_presence(node, topic, &identity.sub);
    Ok((subscribed, snapshot))
}

/// Cluster mode: makes sure this node receives the topic's events and knows where its sequence stands;
/// with a position, fetches the shared history after it (for [`Registry::subscribe`]'s replay).
///
/// [`Registry::subscribe`]: crate::topics::Registry::subscribe
async fn watch_topic(
    node: &Node,
    cluster: &dyn Cluster,
    topic: &str,
    since: Option<&Position>,
) -> Result<Vec<(u64, Payload)>, ModuleError> {
    let unavailable = |e: ClusterError| ModuleError::new(ErrorCode::Unavailable, e.to_string());
    let synced = node.registry.reserve(topic);
    if let Err(e) = cluster.watch(topic).await {
        node.registry.release(topic);
        return Err(unavailable(e));
    }
    // The head only for a topic new on this node, the history only for a position: one read at most.
    let after = since.map(|pos| pos.offset);
    if synced && after.is_none() {
        return Ok(Vec::new());
    }
    match cluster.missed(topic, after).await {
        Ok(missed) => {
            node.registry.sync(topic, &missed.head.epoch, missed.head.seq);
            Ok(missed.events)
        }
        Err(e) => {
            node.registry.release(topic);
            cluster.unwatch(topic);
            Err(unavailable(e))
        }
    }
}

/// Cluster mode: writes this node's presence of `user` in `topic` to the bus.
fn share_presence(node: &Node, topic: &str, user: &str) {
    if let Some(cluster) = &node.cluster {
        let member = node.presence.member(topic, user);
        let name = member.as_ref().and_then(|m| m.name.as_deref());
        cluster.set_presence(topic, user, name, member.as_ref().map_or(0, |m| m.connections));
    }
}

/// Unsubscribes a connection from `topic` and tells the owning module.
pub(crate) async fn leave_topic(node: &Node, ctx: &Context, caller: &Caller, topic: &str) {
    if node.registry.unsubscribe(topic, caller.conn_id)
        && let Some(cluster) = &node.cluster
    {
        cluster.unwatch(topic);
    }
    node.presence.leave(topic, &caller.identity.sub, caller.conn_id);
    share_presence(node, topic, &caller.identity.sub);
    if let Some(m) = node.modules.owner(topic) {
        m.on_unsubscribe(ctx, caller, topic).await;
    }
}

/// Removes a closed connection from its topics and tells the modules, then clears its presence.
pub(crate) async fn leave_everything(
    node: &Node,
    ctx: &Context,
    caller: &Caller,
    topics: impl IntoIterator<Item = String>,
) {
    for topic in topics {
        leave_topic(node, ctx, caller, &topic).await;
    }
    for module in node.modules.all() {
        module.on_disconnect(ctx, caller).await;
    }
    for (topic, user, _) in node.presence.leave_connection(caller.conn_id) {
        share_presence(node, &topic, &user);
    }
}

/// What a publish on `topic` carries once admitted: the owning module's `on_publish` (which may refuse or
/// rewrite it), or, on a topic no module owns, the payload itself unless guests may not publish.
pub(crate) async fn admit_publish(
    node: &Node,
    ctx: &Context,
    caller: &Caller,
    topic: &str,
    payload: Payload,
) -> Result<Payload, ModuleError> {
    match node.modules.owner(topic).cloned() {
        Some(m) => m.on_publish(ctx, caller, topic, payload).await,
        None if caller.identity.guest && !node.config.guest_publish => {
            Err(ModuleError::forbidden("guests may not publish on this server"))
        }
        None => Ok(payload),
    }
}

/// A call from a connection: the broker's own `chorus.*` methods (on topics `subscribed` says the caller
/// holds) or the owning module's `on_call` — or, when the caller wants no result (`reply` false), its
/// `on_cast`; the result is then `None`.
pub(crate) async fn route_call(
    node: &Node,
    ctx: &Context,
    caller: &Caller,
    method: &str,
    args: Payload,
    subscribed: impl Fn(&str) -> bool,
    reply: bool,
) -> Result<Option<Payload>, ModuleError> {
    if let Some(builtin) = method.strip_prefix("chorus.") {
        let result = builtin_call(node, caller, builtin, args, subscribed).await?;
        return Ok(reply.then_some(result));
    }
    let Some((module, name)) = node.modules.route_call(method) else {
        return Err(ModuleError::new(ErrorCode::UnknownMethod, format!("no module serves {method}")));
    };
    let module = module.clone();
    if reply {
        module.on_call(ctx, caller, name, args).await.map(Some)
    } else {
        module.on_cast(ctx, caller, name, args).await.map(|()| None)
    }
}

/// The broker's own calls (`chorus.*`) on a topic the connection is subscribed to:
/// `chorus.presence {topic}` → who is present (on every node of a cluster);
/// `chorus.counter {topic, add?}` → adds to the topic's shared counter and returns its total.
async fn builtin_call(
    node: &Node,
    caller: &Caller,
    method: &str,
    args: Payload,
    subscribed: impl Fn(&str) -> bool,
) -> Result<Payload, ModuleError> {
    let args: TopicArgs = args.decode().map_err(|e| ModuleError::invalid(format!("{method}: {e}")))?;
    if !subscribed(&args.topic) {
        return Err(ModuleError::new(ErrorCode::NotSubscribed, format!("subscribe to {} first", args.topic)));
    }
    let internal = |e: chorus_protocol::PayloadError| ModuleError::new(ErrorCode::Internal, e.to_string());
    match method {
        "presence" => {
            let members = match &node.cluster {
                Some(cluster) => cluster
                    .presence(&args.topic)
                    .await
                    .map_err(|e| ModuleError::new(ErrorCode::Unavailable, e.to_string()))?,
                None => node.presence.members(&args.topic),
            };
            let members: Vec<MemberView> = members
                .into_iter()
                .map(|m| MemberView { user: m.user, name: m.name, connections: m.connections })
                .collect();
            Payload::from_value(&PresenceResult { count: members.len(), members }).map_err(internal)
        }
        "counter" => {
            if args.add != 0 {
                if let Some(m) = node.modules.owner(&args.topic) {
                    return Err(ModuleError::forbidden(format!("{} is owned by module {}", args.topic, m.name())));
                }
                if caller.identity.guest && !node.config.guest_publish {
                    return Err(ModuleError::forbidden("guests may not count on this server"));
                }
            }
            let counter = node.shared_counters.counter(&args.topic);
            counter.add(args.add);
            Payload::from_value(&CounterResult { value: counter.get() }).map_err(internal)
        }
        other => Err(ModuleError::new(ErrorCode::UnknownMethod, format!("no built-in method chorus.{other}"))),
    }
}

/// Runs a connection to completion; returns the code it closed with.
pub async fn serve(node: Arc<Node>, accepted: Accepted, source: impl FrameSource, sink: impl FrameSink) -> CloseCode {
    let id = node.next_conn_id();
    let span = tracing::info_span!("conn", conn_id = id, transport = accepted.transport, peer = %accepted.peer, user = field::Empty);
    async move {
        let transport = accepted.transport;
        let (queue, writer) = open_queue(&node, Encoding::Native(accepted.codec), sink, transport);
        let rate = node.config.publish_rate;
        let mut conn = Conn {
            ctx: Context::new(node.clone()),
            node,
            id,
            transport,
            queue,
            caller: None,
            http_token: accepted.token,
            subscriptions: HashSet::new(),
            publishes: TokenBucket::new(rate),
            in_flight: FuturesOrdered::new(),
        };
        conn.run(source).await;
        if let Some(caller) = conn.caller.take() {
            leave_everything(&conn.node, &conn.ctx, &caller, std::mem::take(&mut conn.subscriptions)).await;
        }
        close_queue(&conn.node, &conn.queue, writer, transport).await
    }
    .instrument(span)
    .await
}

struct Conn {
    node: Arc<Node>,
    ctx: Context,
    id: u64,
    transport: &'static str,
    queue: Arc<OutQueue>,
    caller: Option<Caller>,
    http_token: Option<String>,
    subscriptions: HashSet<String>,
    publishes: TokenBucket,
    in_flight: FuturesOrdered<InFlight>,
}

#[derive(Serialize)]
struct SubscribeResult<'a> {
    seq: u64,
    epoch: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    snapshot: Option<Payload>,
    #[serde(skip_serializing_if = "Option::is_none")]
    recovered: Option<bool>,
}

#[derive(Serialize)]
struct PublishResult {
    seq: u64,
}

impl Conn {
    async fn run(&mut self, mut source: impl FrameSource) {
        let hello_deadline = Instant::now() + self.node.config.hello_timeout();
        let idle = self.node.config.idle_timeout();
        let mut last_activity = Instant::now();
        let shutdown = self.node.shutdown.clone();
        loop {
            let (deadline, expiry) = match self.caller {
                None => (hello_deadline, (CloseCode::HelloTimeout, "no hello within the hello timeout")),
                Some(_) => (last_activity + idle, (CloseCode::IdleTimeout, "no frame within the idle timeout")),
            };
            tokio::select! {
                biased;
                _ = self.queue.closed_or_shutdown(&shutdown) => return,
                Some((id, outcome)) = self.in_flight.next(), if !self.in_flight.is_empty() => self.published(id, outcome),
                _ = sleep_until(deadline) => {
                    self.queue.close(expiry.0, expiry.1);
                    return;
                }
                inbound = source.recv() => {
                    // What the transport has already read is taken in the same turn, up to READ_BURST
                    // items, under one clock read and one metrics update: the select's futures are set up
                    // once per burst, not once per frame.
                    last_activity = Instant::now();
                    let (mut next, mut taken, mut frames, mut bytes) = (Some(inbound), 0, 0, 0);
                    let mut open = true;
                    while let Some(inbound) = next.take() {
                        if let Inbound::Frame(frame) = &inbound {
                            (frames, bytes) = (frames + 1, bytes + frame.len() as u64);
                        }
                        open = self.take(inbound, last_activity).await;
                        taken += 1;
                        if open && taken < READ_BURST && !self.queue.is_closed() && !shutdown.is_cancelled() {
                            next = source.recv().now_or_never();
                        }
                    }
                    self.node.metrics.frames_in(self.transport, frames, bytes);
                    if !open {
                        return;
                    }
                }
            }
        }
    }

    /// Handles one inbound item received at `now`; false when it ends the connection.
    async fn take(&mut self, inbound: Inbound, now: Instant) -> bool {
        match inbound {
            Inbound::Frame(bytes) => self.handle(bytes, now).await,
            Inbound::Activity => {}
            Inbound::Answer(bytes) => self.answer(bytes),
            end => {
                end_of_input(&self.queue, end, self.node.config.max_frame_bytes);
                return false;
            }
        }
        true
    }

    fn send(&self, frame: &ServerFrame) {
        if self.queue.push_frame(frame) == Push::Overflow {
            self.node.metrics.slow_consumer();
        }
    }

    fn answer(&self, bytes: Bytes) {
        if self.queue.push_wire(bytes) == Push::Overflow {
            self.node.metrics.slow_consumer();
        }
    }

    fn error(&self, id: Option<u64>, code: ErrorCode, message: impl Into<String>) {
        self.node.metrics.client_error(code);
        self.send(&ServerFrame::error(id, code, message));
    }

    fn reply<T: Serialize>(&self, id: Option<u64>, result: &T) {
        let Some(id) = id else { return };
        match Payload::from_value(result) {
            Ok(result) => self.send(&ServerFrame::Reply { id, result }),
            Err(e) => self.error(Some(id), ErrorCode::Internal, e.to_string()),
        }
    }

    async fn handle(&mut self, bytes: Bytes, received: Instant) {
        let frame = match decode_client(self.queue.codec(), &bytes, self.node.config.max_frame_bytes as usize) {
            Ok(frame) => frame,
            Err(e) => return self.error(None, e.code(), e.to_string()),
        };
        let Some(caller) = self.caller.clone() else {
            return match frame {
                ClientFrame::Hello { token } => self.hello(token),
                other => self.error(request_id(&other), ErrorCode::NotAuthenticated, "send hello first"),
            };
        };
        match frame {
            ClientFrame::Hello { .. } => self.error(None, ErrorCode::AlreadyAuthenticated, "already authenticated"),
            ClientFrame::Ping { id } => self.send(&ServerFrame::Pong { id }),
            ClientFrame::Subscribe { id, topic, since } => self.subscribe(&caller, id, topic, since).await,
            ClientFrame::Unsubscribe { id, topic } => self.unsubscribe(&caller, id, topic).await,
            ClientFrame::Publish { id, topic, payload } => self.publish(&caller, id, &topic, payload, received).await,
            ClientFrame::Call { id, method, args } => self.call(&caller, id, &method, args).await,
        }
    }

    fn hello(&mut self, token: Option<String>) {
        let token = token.or_else(|| self.http_token.take());
        match self.node.verifier.identify(token.as_deref(), self.id) {
            Ok(identity) => {
                tracing::Span::current().record("user", identity.sub.as_str());
                let welcome = Welcome { conn_id: self.id, identity: identity.to_wire(), limits: self.node.limits() };
                self.caller = Some(Caller { conn_id: self.id, identity: Arc::new(identity) });
                self.send(&ServerFrame::Welcome(welcome));
            }
            Err(e) => {
                tracing::info!(reason = e.label(), "authentication failed");
                self.node.metrics.auth_failure(e.label());
                self.error(None, e.code(), e.to_string());
                self.queue.close(CloseCode::PolicyViolation, "authentication failed");
            }
        }
    }

    async fn subscribe(&mut self, caller: &Caller, id: Option<u64>, topic: String, since: Option<Position>) {
        if let Err(e) = topic::validate(&topic) {
            return self.error(id, ErrorCode::InvalidTopic, e.to_string());
        }
        if self.subscriptions.contains(&topic) {
            return self.error(id, ErrorCode::AlreadySubscribed, format!("already subscribed to {topic}"));
        }
        if self.subscriptions.len() >= self.node.config.max_subscriptions as usize {
            let max = self.node.config.max_subscriptions;
            return self.error(id, ErrorCode::SubscriptionLimit, format!("at most {max} subscriptions per connection"));
        }
        match join_topic(
            &self.node,
            &self.ctx,
            caller,
            Subscriber::new(self.id, self.queue.clone()),
            &topic,
            since.as_ref(),
        )
        .await
        {
            Err(e) => self.error(id, e.code, e.message),
            Ok((subscribed, snapshot)) => {
                self.subscriptions.insert(topic);
                let epoch = &subscribed.epoch;
                let result = SubscribeResult { seq: subscribed.seq, epoch, snapshot, recovered: subscribed.recovered };
                self.reply(id, &result);
            }
        }
    }

    async fn unsubscribe(&mut self, caller: &Caller, id: Option<u64>, topic: String) {
        if !self.subscriptions.remove(&topic) {
            return self.error(id, ErrorCode::NotSubscribed, format!("not subscribed to {topic}"));
        }
        leave_topic(&self.node, &self.ctx, caller, &topic).await;
        self.reply(id, &());
    }

    async fn publish(&mut self, caller: &Caller, id: Option<u64>, topic: &str, payload: Payload, received: Instant) {
        if let Err(e) = topic::validate(topic) {
            return self.error(id, ErrorCode::InvalidTopic, e.to_string());
        }
        if !self.publishes.take() {
            let rate = self.node.config.publish_rate;
            return self.error(id, ErrorCode::RateLimited, format!("publish rate above {rate}/s; frame dropped"));
        }
        let payload = match admit_publish(&self.node, &self.ctx, caller, topic, payload).await {
            Ok(p) => p,
            Err(e) => return self.error(id, e.code, e.message),
        };
        if self.node.cluster.is_none() {
            let outcome = self.node.publish_and_wait(topic, &payload, received).await;
            return self.published(id, outcome);
        }
        if self.in_flight.len() >= MAX_PUBLISHES_IN_FLIGHT
            && let Some((id, outcome)) = self.in_flight.next().await
        {
            self.published(id, outcome);
        }
        let (node, topic) = (self.node.clone(), topic.to_owned());
        self.in_flight.push_back(Box::pin(async move {
            let outcome = node.publish_and_wait(&topic, &payload, received).await;
            (id, outcome)
        }));
    }

    fn published(&self, id: Option<u64>, outcome: Result<u64, PublishError>) {
        match outcome {
            Ok(seq) => self.reply(id, &PublishResult { seq }),
            Err(e) => self.error(id, e.code, e.message),
        }
    }

    async fn call(&mut self, caller: &Caller, id: Option<u64>, method: &str, args: Payload) {
        let subscriptions = &self.subscriptions;
        match route_call(
            &self.node,
            &self.ctx,
            caller,
            method,
            args,
            |topic| subscriptions.contains(topic),
            id.is_some(),
        )
        .await
        {
            Ok(result) => {
                if let (Some(id), Some(result)) = (id, result) {
                    self.send(&ServerFrame::Reply { id, result });
                }
            }
            Err(e) => self.error(id, e.code, e.message),
        }
    }
}

#[derive(Deserialize)]
struct TopicArgs {
    topic: String,
    #[serde(default)]
    add: i64,
}

#[derive(Serialize)]
struct PresenceResult {
    count: usize,
    members: Vec<MemberView>,
}

#[derive(Serialize)]
struct MemberView {
    user: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    connections: usize,
}

#[derive(Serialize)]
struct CounterResult {
    value: i64,
}

fn request_id(frame: &ClientFrame) -> Option<u64> {
    match frame {
        ClientFrame::Hello { .. } => None,
        ClientFrame::Subscribe { id, .. }
        | ClientFrame::Unsubscribe { id, .. }
        | ClientFrame::Publish { id, .. }
        | ClientFrame::Call { id, .. }
        | ClientFrame::Ping { id } => *id,
    }
}
