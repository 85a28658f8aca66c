//! Serves a [`JsonDialect`]: the upgrade, the token check, client ids, timestamps, subscriptions and
//! statistics, the same for every dialect.

use super::{DialectRequest, DialectStats, JsonDialect, iso8601};
use crate::conn::{
    CLOSE_FLUSH_TIMEOUT, close_queue, end_of_input, join_topic, leave_everything, leave_topic, open_queue,
};
use crate::module::{Caller, Context};
use crate::node::Node;
use crate::queue::{Encoding, EventEncoder, FrameSink, OutQueue};
use crate::topics::Subscriber;
use crate::transport::{FrameSource, Inbound};
use crate::ws;
use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{Request, Response, StatusCode};
use axum::routing::get;
use bytes::Bytes;
use chorus_protocol::{CloseCode, Codec, Payload};
use parking_lot::Mutex;
use serde::Deserialize;
use serde_json::Value;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::time::timeout;
use tracing::Instrument;

struct Host {
    node: Arc<Node>,
    ctx: Context,
    dialect: Arc<dyn JsonDialect>,
    encoder: Arc<DialectEncoder>,
    clients: AtomicUsize,
    topics: Mutex<HashMap<String, usize>>,
}

struct DialectEncoder {
    dialect: Arc<dyn JsonDialect>,
    node: Arc<Node>,
}

impl DialectEncoder {
    fn render(&self, mut message: Value) -> Option<Bytes> {
        if let (Some(field), Value::Object(map)) = (self.dialect.timestamp_field(), &mut message) {
            map.insert(field.to_owned(), Value::String(iso8601(self.node.clock.now_ms())));
        }
        serde_json::to_vec(&message).ok().map(Bytes::from)
    }
}

impl EventEncoder for DialectEncoder {
    fn encode_event(&self, topic: &str, _seq: u64, payload: &Payload) -> Option<Bytes> {
        self.render(self.dialect.event(topic, payload)?)
    }
}

/// The routes serving `dialect` (both of its paths) on `node`.
pub(crate) fn routes(node: &Arc<Node>, dialect: Arc<dyn JsonDialect>) -> Router {
    let encoder = Arc::new(DialectEncoder { dialect: dialect.clone(), node: node.clone() });
    let (path, keyed) = dialect.paths();
    let host = Arc::new(Host {
        node: node.clone(),
        ctx: Context::new(node.clone()),
        dialect,
        encoder,
        clients: AtomicUsize::new(0),
        topics: Mutex::default(),
    });
    let mut router = Router::new().route(path, get(plain));
    if let Some(keyed) = keyed {
        router = router.route(keyed, get(keyed_path));
    }
    router.with_state(host)
}

#[derive(Deserialize)]
struct TokenQuery {
    token: Option<String>,
}

async fn plain(
    State(host): State<Arc<Host>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Query(query): Query<TokenQuery>,
    req: Request<Body>,
) -> Response<Body> {
    upgrade(host, peer, query.token, None, req)
}

async fn keyed_path(
    State(host): State<Arc<Host>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(key): Path<String>,
    Query(query): Query<TokenQuery>,
    req: Request<Body>,
) -> Response<Body> {
    let key = match key.parse::<i64>() {
        Ok(n) => Value::from(n),
        Err(_) => Value::String(key),
    };
    upgrade(host, peer, query.token, Some(key), req)
}

fn upgrade(
    host: Arc<Host>,
    peer: SocketAddr,
    token: Option<String>,
    key: Option<Value>,
    mut req: Request<Body>,
) -> Response<Body> {
    let node = host.node.clone();
    if node.shutdown.is_cancelled() {
        return crate::http::json_error(StatusCode::SERVICE_UNAVAILABLE, "shutting down");
    }
    let token = token.or_else(|| ws::bearer(&req));
    let upgrade = match ws::accept(&mut req, None) {
        Ok(u) => u,
        Err(reason) => return crate::http::json_error(StatusCode::BAD_REQUEST, reason),
    };
    let conn_id = node.next_conn_id();
    let span = tracing::info_span!("conn", conn_id, transport = "ws", peer = %peer, user = tracing::field::Empty);
    node.tracker.spawn(
        async move {
            let max = host.node.config.max_frame_bytes as usize;
            match ws::open(upgrade.on_upgrade, max, Codec::Json).await {
                Ok((source, sink)) => serve(host, conn_id, token, key, source, sink).await,
                Err(e) => tracing::debug!(error = %e, "WebSocket upgrade failed"),
            }
        }
        .instrument(span),
    );
    upgrade.response
}

async fn serve(
    host: Arc<Host>,
    conn_id: u64,
    token: Option<String>,
    key: Option<Value>,
    source: impl FrameSource,
    mut sink: impl FrameSink,
) {
    let node = host.node.clone();
    let identity = match (token, host.dialect.missing_token_reason()) {
        (None, Some(reason)) => {
            node.metrics.auth_failure("missing");
            return reject(&mut sink, reason).await;
        }
        (token, _) => match node.verifier.identify(token.as_deref(), conn_id) {
            Ok(identity) => identity,
            Err(e) => {
                node.metrics.auth_failure(e.label());
                return reject(&mut sink, host.dialect.invalid_token_reason()).await;
            }
        },
    };
    tracing::Span::current().record("user", identity.sub.as_str());
    let caller = Caller { conn_id, identity: Arc::new(identity) };
    let (queue, writer) = open_queue(&node, Encoding::Dialect(host.encoder.clone()), sink, "ws");
    host.clients.fetch_add(1, Ordering::Relaxed);
    let mut conn = DialectConn { host: host.clone(), caller, queue, topics: HashMap::new() };
    let now = node.clock.now_ms();
    conn.send(host.dialect.connected(&host.dialect.client_id(conn_id, now), key.as_ref()));
    if let Some(key) = key {
        conn.subscribe(key, false).await;
    }
    conn.run(source).await;
    let topics: Vec<String> = conn.topics.drain().map(|(topic, _)| topic).collect();
    for topic in &topics {
        host.topic_left(topic);
    }
    leave_everything(&node, &host.ctx, &conn.caller, topics).await;
    host.clients.fetch_sub(1, Ordering::Relaxed);
    close_queue(&node, &conn.queue, writer, "ws").await;
}

async fn reject(sink: &mut impl FrameSink, reason: &str) {
    tracing::info!(reason, "dialect connection refused");
    let _ = timeout(CLOSE_FLUSH_TIMEOUT, sink.close(CloseCode::PolicyViolation, reason)).await;
}

impl Host {
    fn topic_joined(&self, topic: &str) {
        *self.topics.lock().entry(topic.to_owned()).or_default() += 1;
    }

    fn topic_left(&self, topic: &str) {
        let mut topics = self.topics.lock();
        if let Some(n) = topics.get_mut(topic) {
            *n -= 1;
            if *n == 0 {
                topics.remove(topic);
            }
        }
    }

    fn stats(&self) -> DialectStats {
        DialectStats { clients: self.clients.load(Ordering::Relaxed), subscribed_keys: self.topics.lock().len() }
    }
}

struct DialectConn {
    host: Arc<Host>,
    caller: Caller,
    queue: Arc<OutQueue>,
    topics: HashMap<String, Value>,
}

impl DialectConn {
    fn send(&self, message: Value) {
        if let Some(bytes) = self.host.encoder.render(message)
            && self.queue.push(bytes) == crate::queue::Push::Overflow
        {
            self.host.node.metrics.slow_consumer();
        }
    }

    fn error(&self, message: &str) {
        self.send(self.host.dialect.error(message));
    }

    async fn run(&mut self, mut source: impl FrameSource) {
        let shutdown = self.host.node.shutdown.clone();
        loop {
            tokio::select! {
                biased;
                _ = self.queue.closed_or_shutdown(&shutdown) => return,
                inbound = source.recv() => match inbound {
                    Inbound::Frame(bytes) => {
                        self.host.node.metrics.frames_in("ws", 1, bytes.len() as u64);
                        self.handle(&bytes).await;
                    }
                    Inbound::Activity => {}
                    Inbound::Answer(bytes) => {
                        if self.queue.push_wire(bytes) == crate::queue::Push::Overflow {
                            self.host.node.metrics.slow_consumer();
                        }
                    }
                    end => return end_of_input(&self.queue, end, self.host.node.config.max_frame_bytes),
                }
            }
        }
    }

    async fn handle(&mut self, bytes: &[u8]) {
        let dialect = self.host.dialect.clone();
        let Ok(message) = serde_json::from_slice::<Value>(bytes) else {
            return self.error(dialect.invalid_json_message());
        };
        match dialect.decode(&message) {
            Err(e) => self.error(&e),
            Ok(DialectRequest::Ping) => self.send(dialect.pong()),
            Ok(DialectRequest::Stats) => self.send(dialect.stats(self.host.stats())),
            Ok(DialectRequest::Subscribe(key)) => self.subscribe(key, true).await,
            Ok(DialectRequest::Unsubscribe(key)) => self.unsubscribe(key).await,
        }
    }

    async fn subscribe(&mut self, key: Value, confirm: bool) {
        let dialect = self.host.dialect.clone();
        let node = self.host.node.clone();
        let topic = match dialect.topic(&key) {
            Ok(topic) => topic,
            Err(e) => return self.error(&e),
        };
        if self.topics.contains_key(&topic) {
            if confirm {
                self.send(dialect.subscribed(&key));
            }
            return;
        }
        if self.topics.len() >= node.config.max_subscriptions as usize {
            return self.error(&format!("at most {} subscriptions per connection", node.config.max_subscriptions));
        }
        match join_topic(
            &self.host.node,
            &self.host.ctx,
            &self.caller,
            Subscriber::new(self.caller.conn_id, self.queue.clone()),
            &topic,
            None,
        )
        .await
        {
            Err(e) => self.error(&e.message),
            Ok((_, snapshot)) => {
                self.host.topic_joined(&topic);
                self.topics.insert(topic.clone(), key.clone());
                if confirm {
                    self.send(dialect.subscribed(&key));
                }
                if let Some(message) = snapshot.and_then(|s| dialect.event(&topic, &s)) {
                    self.send(message);
                }
            }
        }
    }

    async fn unsubscribe(&mut self, key: Value) {
        let dialect = self.host.dialect.clone();
        let topic = match dialect.topic(&key) {
            Ok(topic) => topic,
            Err(e) => return self.error(&e),
        };
        if self.topics.remove(&topic).is_some() {
            self.host.topic_left(&topic);
            leave_topic(&self.host.node, &self.host.ctx, &self.caller, &topic).await;
        }
        self.send(dialect.unsubscribed(&key));
    }
}
