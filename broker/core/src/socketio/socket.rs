//! The Socket.IO layer of one session: its namespace connections ("sockets"), their events, acks and
//! subscriptions. Runs inside the session task, so a session's packets are handled one at a time, in
//! order.
//!
//! Each socket is a connection in the broker's sense: its own connection id and [`Caller`], subscriptions
//! through the registry (encoded with its namespace's encoder), module calls, presence, and
//! `on_unsubscribe` / `on_disconnect` when it goes. Emitted events map to operations as the namespace's
//! bindings say; the `chorus:*` events give every namespace the native protocol's topic operations.

use super::binary::{self, Outbound, payload_of};
use super::encoder::NamespaceEncoder;
use super::namespace::Route;
use super::session::Session;
use super::{Gateway, NamespaceHost};
use crate::conn::{admit_publish, join_topic, leave_everything, leave_topic, route_call};
use crate::metrics::socketio as metrics;
use crate::module::{Caller, Context, ModuleError};
use crate::node::Node;
use crate::queue::Encoding;
use crate::rate::TokenBucket;
use crate::topics::Subscriber;
use bytes::Bytes;
use chorus_protocol::socketio::{self, Kind, Packet};
use chorus_protocol::{Codec, ErrorCode, Payload, Position, topic};
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// Binary attachments one packet may announce (`socket.io-parser`'s `maxAttachments` default).
pub const MAX_ATTACHMENTS: usize = 10;

/// How long the attachments a binary packet announced may take to arrive. They follow the packet in the
/// same request or right behind it on the WebSocket; a client that announces and never sends them is
/// broken, and holding its packet longer only holds memory.
pub const ATTACHMENTS_TIMEOUT: Duration = Duration::from_secs(10);

/// One namespace connection.
struct Socket {
    sid: String,
    host: Arc<NamespaceHost>,
    caller: Caller,
    topics: HashSet<String>,
}

/// A binary packet waiting for its attachments.
struct Pending {
    packet: Packet,
    attachments: Vec<Bytes>,
    deadline: Instant,
}

/// The namespace connections of one session.
pub(crate) struct Sockets {
    gateway: Arc<Gateway>,
    session: Arc<Session>,
    node: Arc<Node>,
    ctx: Context,
    sockets: HashMap<String, Socket>,
    pending: Option<Pending>,
    ever_connected: bool,
    /// Events the session's sockets may still emit now (`--publish-rate` per second).
    events: TokenBucket,
}

/// Arguments of `chorus:subscribe`.
#[derive(Deserialize)]
struct SubscribeArgs {
    topic: String,
    since: Option<Position>,
}

/// Arguments of `chorus:unsubscribe`.
#[derive(Deserialize)]
struct TopicArgs {
    topic: String,
}

/// Arguments of `chorus:publish`.
#[derive(Deserialize)]
struct PublishArgs {
    topic: String,
    #[serde(default)]
    payload: Value,
}

/// Arguments of `chorus:call`.
#[derive(Deserialize)]
struct CallArgs {
    method: String,
    #[serde(default)]
    args: Value,
}

/// An event's arguments: none → `null`, one → itself, several → an array.
fn arguments(mut data: Vec<Value>) -> Value {
    match data.len() {
        0 => Value::Null,
        1 => data.pop().unwrap_or(Value::Null),
        _ => Value::Array(data),
    }
}

pub(super) fn invalid(message: impl Into<String>) -> ModuleError {
    ModuleError::new(ErrorCode::InvalidArgument, message)
}

pub(super) fn internal(e: impl std::fmt::Display) -> ModuleError {
    ModuleError::new(ErrorCode::Internal, e.to_string())
}

/// The JSON text of a payload.
fn json_of(payload: &Payload) -> Result<String, ModuleError> {
    let bytes = payload.encoded(Codec::Json).map_err(internal)?;
    String::from_utf8(bytes.to_vec()).map_err(internal)
}

/// The token from a `CONNECT` packet's `auth` object (`{ token }`, with or without `Bearer `).
fn auth_token(auth: Option<&Value>) -> Option<String> {
    let token = auth?.get("token")?.as_str()?.trim();
    let token = token.strip_prefix("Bearer ").unwrap_or(token).trim();
    (!token.is_empty()).then(|| token.to_owned())
}

impl Sockets {
    /// No namespace connections yet.
    pub fn new(gateway: Arc<Gateway>, session: Arc<Session>) -> Self {
        let (node, ctx) = (gateway.node.clone(), gateway.ctx.clone());
        let rate = node.config.publish_rate;
        Self {
            gateway,
            session,
            node,
            ctx,
            sockets: HashMap::new(),
            pending: None,
            ever_connected: false,
            events: TokenBucket::new(rate),
        }
    }

    /// Whether the session ever connected to a namespace (the connect timeout stops then).
    pub fn ever_connected(&self) -> bool {
        self.ever_connected
    }

    /// When the attachments of a waiting binary packet are due.
    pub fn attachments_deadline(&self) -> Option<Instant> {
        self.pending.as_ref().map(|p| p.deadline)
    }

    /// A text message: one Socket.IO packet.
    pub async fn text(&mut self, text: Bytes) {
        if self.pending.is_some() {
            return self.session.fail("protocol", "a text packet arrived while binary attachments were expected");
        }
        let Ok(text) = std::str::from_utf8(&text) else {
            return self.session.fail("protocol", "Socket.IO packet is not UTF-8");
        };
        let packet = match socketio::decode(text, MAX_ATTACHMENTS) {
            Ok(packet) => packet,
            Err(e) => return self.session.fail("protocol", &format!("parse error: {e}")),
        };
        if packet.kind.is_binary() && packet.attachments > 0 {
            let deadline = Instant::now() + ATTACHMENTS_TIMEOUT;
            self.pending = Some(Pending { packet, attachments: Vec::new(), deadline });
            return;
        }
        self.dispatch(packet, Vec::new()).await;
    }

    /// A binary message: an attachment of the waiting binary packet.
    pub async fn binary(&mut self, data: Bytes) {
        let Some(pending) = self.pending.as_mut() else {
            return self.session.fail("protocol", "a binary message arrived without a binary packet announcing it");
        };
        pending.attachments.push(data);
        if pending.attachments.len() == pending.packet.attachments
            && let Some(Pending { packet, attachments, .. }) = self.pending.take()
        {
            self.dispatch(packet, attachments).await;
        }
    }

    /// Closes every namespace connection (the session ended).
    pub async fn close_all(&mut self) {
        let namespaces: Vec<String> = self.sockets.keys().cloned().collect();
        for namespace in namespaces {
            self.disconnect(&namespace).await;
        }
    }

    async fn dispatch(&mut self, packet: Packet, attachments: Vec<Bytes>) {
        let namespace = packet.namespace.clone();
        match packet.kind {
            Kind::Connect => self.connect(&namespace, packet.data.as_ref()),
            Kind::Disconnect => self.disconnect(&namespace).await,
            Kind::Event | Kind::BinaryEvent => {
                if !self.sockets.contains_key(&namespace) {
                    metrics::error("not_connected");
                    return self.connect_error(&namespace, &format!("not connected to namespace {namespace}"), None);
                }
                let Some(Value::Array(mut data)) = packet.data else { return };
                let name = match data.remove(0) {
                    Value::String(name) => name,
                    other => other.to_string(),
                };
                self.event(&namespace, packet.id, &name, arguments(data), &attachments).await;
            }
            Kind::Ack | Kind::BinaryAck => {
                // The gateway never asks a client for an acknowledgement, so there is nothing to match.
                tracing::debug!(namespace, id = packet.id, "acknowledgement for nothing the server asked");
                metrics::error("unsolicited_ack");
            }
            Kind::ConnectError => self.session.fail("protocol", "CONNECT_ERROR is not accepted from clients"),
        }
    }

    fn push(&self, item: Bytes) {
        self.session.push(item);
    }

    fn connect_error(&self, namespace: &str, message: &str, code: Option<ErrorCode>) {
        let mut body = json!({ "message": message });
        if let Some(code) = code {
            body["data"] = json!({ "code": code.as_u16() });
        }
        self.push(socketio::encode(Kind::ConnectError, namespace, None, 0, Some(&body.to_string())));
    }

    fn connect(&mut self, namespace: &str, auth: Option<&Value>) {
        let Some(host) = self.gateway.namespaces.get(namespace).cloned() else {
            metrics::connect_refused("unknown_namespace");
            return self.connect_error(namespace, "Invalid namespace", None);
        };
        if let Some(socket) = self.sockets.get(namespace) {
            let body = json!({ "sid": socket.sid }).to_string();
            return self.push(socketio::encode(Kind::Connect, namespace, None, 0, Some(&body)));
        }
        let node = &self.node;
        let token = auth_token(auth).or_else(|| self.session.token.clone());
        if token.is_none() && host.spec.require_token {
            metrics::connect_refused("missing_token");
            node.metrics.auth_failure("missing");
            let message = "authentication required: pass a token in auth.token, ?token= or an Authorization header";
            return self.connect_error(namespace, message, Some(ErrorCode::NotAuthenticated));
        }
        let conn_id = node.next_conn_id();
        let identity = match node.verifier.identify(token.as_deref(), conn_id) {
            Ok(identity) => identity,
            Err(e) => {
                metrics::connect_refused("invalid_token");
                node.metrics.auth_failure(e.label());
                return self.connect_error(namespace, &e.to_string(), Some(e.code()));
            }
        };
        tracing::debug!(namespace, conn_id, user = identity.sub, "Socket.IO socket connected");
        let caller = Caller { conn_id, identity: Arc::new(identity) };
        let sid = super::new_id();
        let body = json!({ "sid": sid }).to_string();
        self.sockets.insert(namespace.to_owned(), Socket { sid, host, caller, topics: HashSet::new() });
        self.ever_connected = true;
        metrics::socket(1.0);
        self.push(socketio::encode(Kind::Connect, namespace, None, 0, Some(&body)));
    }

    async fn disconnect(&mut self, namespace: &str) {
        if let Some(socket) = self.sockets.remove(namespace) {
            leave_everything(&self.node, &self.ctx, &socket.caller, socket.topics).await;
            metrics::socket(-1.0);
        }
    }

    /// Answers an event: the acknowledgement when one was asked for; an error as the ack's `{ error }` or,
    /// without an ack, as an `error` event.
    fn answer(&self, namespace: &str, id: Option<u64>, outcome: Result<Outbound, ModuleError>) {
        match (outcome, id) {
            (Ok(reply), Some(id)) => {
                let data = format!("[{}]", reply.json);
                self.push(binary::packet(Kind::Ack, namespace, Some(id), &data, &reply.attachments));
            }
            (Ok(_), None) => {}
            (Err(e), id) => {
                self.node.metrics.client_error(e.code);
                let error = json!({ "code": e.code.as_u16(), "message": e.message });
                match id {
                    Some(id) => {
                        let body = json!([{ "error": error }]).to_string();
                        self.push(socketio::encode(Kind::Ack, namespace, Some(id), 0, Some(&body)));
                    }
                    None => {
                        let body = json!({ "message": e.message, "code": e.code.as_u16() }).to_string();
                        self.push(NamespaceEncoder::new(namespace).emit("error", &body));
                    }
                }
            }
        }
    }

    async fn event(&mut self, namespace: &str, id: Option<u64>, name: &str, args: Value, attachments: &[Bytes]) {
        if !self.events.take() {
            let rate = self.node.config.publish_rate;
            let e = ModuleError::new(ErrorCode::RateLimited, format!("more than {rate} events/s; event dropped"));
            return self.answer(namespace, id, Err(e));
        }
        let outcome = self.route(namespace, name, args, attachments, id.is_some()).await;
        self.answer(namespace, id, outcome);
    }

    async fn route(
        &mut self,
        namespace: &str,
        name: &str,
        args: Value,
        attachments: &[Bytes],
        ack: bool,
    ) -> Result<Outbound, ModuleError> {
        let parse = |e: serde_json::Error| invalid(format!("{name}: {e}"));
        match name {
            "chorus:subscribe" => {
                let a: SubscribeArgs = serde_json::from_value(args).map_err(parse)?;
                return self.subscribe(namespace, &a.topic, a.since, false).await.map(Outbound::from);
            }
            "chorus:unsubscribe" => {
                let a: TopicArgs = serde_json::from_value(args).map_err(parse)?;
                return self.unsubscribe(namespace, &a.topic).await.map(Outbound::from);
            }
            "chorus:publish" => {
                let a: PublishArgs = serde_json::from_value(args).map_err(parse)?;
                let payload = payload_of(&a.payload, attachments)?;
                return self.publish(namespace, &a.topic, payload).await.map(Outbound::from);
            }
            "chorus:call" => {
                let a: CallArgs = serde_json::from_value(args).map_err(parse)?;
                let args = payload_of(&a.args, attachments)?;
                return self.call(namespace, &a.method, args, ack).await;
            }
            _ => {}
        }
        let host = self.sockets.get(namespace).map(|s| s.host.clone()).ok_or_else(|| internal("socket vanished"))?;
        for route in host.spec.routes_of(name) {
            match route {
                Route::Subscribe(topic_of) => match topic_of(&args) {
                    Some(topic) => {
                        return self
                            .subscribe(namespace, &topic.map_err(invalid)?, None, true)
                            .await
                            .map(Outbound::from);
                    }
                    None => continue,
                },
                Route::Unsubscribe(topic_of) => match topic_of(&args) {
                    Some(topic) => {
                        return self.unsubscribe(namespace, &topic.map_err(invalid)?).await.map(Outbound::from);
                    }
                    None => continue,
                },
                Route::Call(method) => return self.call(namespace, method, payload_of(&args, attachments)?, ack).await,
            }
        }
        match &host.spec.fallback {
            Some(module) => {
                self.call(namespace, &format!("{module}.{name}"), payload_of(&args, attachments)?, ack).await
            }
            None => {
                Err(ModuleError::new(ErrorCode::UnknownMethod, format!("no handler for event {name:?} on {namespace}")))
            }
        }
    }

    fn socket(&self, namespace: &str) -> Result<&Socket, ModuleError> {
        self.sockets.get(namespace).ok_or_else(|| internal("socket vanished"))
    }

    /// Subscribes the socket to `topic`; `emit_snapshot`: the module's snapshot is emitted as an event
    /// (a bound event) rather than returned in the acknowledgement (`chorus:subscribe`).
    async fn subscribe(
        &mut self,
        namespace: &str,
        topic: &str,
        since: Option<Position>,
        emit_snapshot: bool,
    ) -> Result<String, ModuleError> {
        topic::validate(topic).map_err(|e| ModuleError::new(ErrorCode::InvalidTopic, e.to_string()))?;
        let node = self.node.clone();
        let socket = self.socket(namespace)?;
        let (caller, host) = (socket.caller.clone(), socket.host.clone());
        let rejoin = socket.topics.contains(topic);
        if !rejoin && socket.topics.len() >= node.config.max_subscriptions as usize {
            let max = node.config.max_subscriptions;
            return Err(ModuleError::new(
                ErrorCode::SubscriptionLimit,
                format!("at most {max} subscriptions per connection"),
            ));
        }
        let (seq, epoch, recovered, snapshot) = if rejoin {
            // Joining a room twice is allowed in Socket.IO: the socket stays subscribed once and gets the
            // current state again.
            let owner = node.modules.owner(topic).cloned();
            let snapshot = match owner {
                Some(m) => {
                    m.authorize(&self.ctx, &caller, topic).await?;
                    m.snapshot(&self.ctx, &caller, topic).await?
                }
                None => None,
            };
            (None, None, None, snapshot)
        } else {
            let encoding = Encoding::Dialect(host.encoder.clone());
            let subscriber = Subscriber { conn_id: caller.conn_id, queue: self.session.queue.clone(), encoding };
            let (subscribed, snapshot) =
                join_topic(&self.node, &self.ctx, &caller, subscriber, topic, since.as_ref()).await?;
            if let Some(socket) = self.sockets.get_mut(namespace) {
                socket.topics.insert(topic.to_owned());
            }
            (Some(subscribed.seq), Some(subscribed.epoch.to_string()), subscribed.recovered, snapshot)
        };
        let mut reply = json!({ "topic": topic });
        if let Some(seq) = seq {
            reply["seq"] = json!(seq);
        }
        if let Some(epoch) = epoch {
            reply["epoch"] = json!(epoch);
        }
        if let Some(recovered) = recovered {
            reply["recovered"] = json!(recovered);
        }
        if let Some(snapshot) = snapshot {
            if emit_snapshot {
                if let Some(item) = host.encoder.event(topic, seq.unwrap_or(0), &snapshot) {
                    self.push(item);
                }
            } else {
                reply["snapshot"] = serde_json::from_str(&json_of(&snapshot)?).map_err(internal)?;
            }
        }
        Ok(reply.to_string())
    }

    async fn unsubscribe(&mut self, namespace: &str, topic: &str) -> Result<String, ModuleError> {
        let socket = self.sockets.get_mut(namespace).ok_or_else(|| internal("socket vanished"))?;
        if socket.topics.remove(topic) {
            let caller = socket.caller.clone();
            leave_topic(&self.node, &self.ctx, &caller, topic).await;
        }
        Ok(json!({ "topic": topic }).to_string())
    }

    async fn publish(&mut self, namespace: &str, topic: &str, payload: Payload) -> Result<String, ModuleError> {
        topic::validate(topic).map_err(|e| ModuleError::new(ErrorCode::InvalidTopic, e.to_string()))?;
        let caller = self.socket(namespace)?.caller.clone();
        let payload = admit_publish(&self.node, &self.ctx, &caller, topic, payload).await?;
        let seq = self
            .node
            .publish_and_wait(topic, &payload, Instant::now())
            .await
            .map_err(|e| ModuleError::new(e.code, e.message))?;
        Ok(json!({ "seq": seq }).to_string())
    }

    /// Calls `method`; for an emit without acknowledgement (`ack` false) the module is told no result is
    /// wanted, and the outbound is empty: nothing is sent on success.
    async fn call(&mut self, namespace: &str, method: &str, args: Payload, ack: bool) -> Result<Outbound, ModuleError> {
        let socket = self.socket(namespace)?;
        let subscribed = |topic: &str| socket.topics.contains(topic);
        match route_call(&self.node, &self.ctx, &socket.caller, method, args, subscribed, ack).await? {
            Some(result) => binary::outbound(&result).map_err(internal),
            None => Ok(Outbound::default()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_follow_the_emit_shape() {
        assert_eq!(arguments(vec![]), Value::Null);
        assert_eq!(arguments(vec![json!("123456")]), json!("123456"));
        assert_eq!(arguments(vec![json!(1), json!(2)]), json!([1, 2]));
    }

    #[test]
    fn auth_tokens_with_or_without_bearer() {
        assert_eq!(auth_token(Some(&json!({"token": "abc"}))).as_deref(), Some("abc"));
        assert_eq!(auth_token(Some(&json!({"token": "Bearer abc"}))).as_deref(), Some("abc"));
        assert_eq!(auth_token(Some(&json!({"token": " "}))), None);
        assert_eq!(auth_token(Some(&json!({"token": 5}))), None);
        assert_eq!(auth_token(None), None);
    }
}
