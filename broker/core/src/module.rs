//! The module API. A domain module owns topic prefixes and method names; the broker asks it before a
//! subscription or publish on its topics and routes `call` frames to it. Modules see identities, topics,
//! payloads and calls — never a socket or a transport — and act on the node through [`Context`].

use crate::auth::{AuthError, Identity};
use crate::config::Config;
use crate::counters::{Counters, SharedCounters};
use crate::dialect::JsonDialect;
use crate::presence::Presence;
use crate::roster::{Departure, Roster};
use async_trait::async_trait;
use chorus_protocol::{ErrorCode, Payload};
use chorus_store::{Clock, Store, StoreError};
use std::sync::Arc;
use thiserror::Error;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Who is calling a module: the connection and its identity.
#[derive(Debug, Clone)]
pub struct Caller {
    /// Connection id (unique per node run).
    pub conn_id: u64,
    /// The identity established at `hello`.
    pub identity: Arc<Identity>,
}

/// A refusal or failure a module reports to the client, with a stable code.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{message}")]
pub struct ModuleError {
    /// The code sent in the `error` frame.
    pub code: ErrorCode,
    /// The message sent in the `error` frame.
    pub message: String,
}

impl ModuleError {
    /// An error with any code.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self { code, message: message.into() }
    }

    /// The caller may not do this.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Forbidden, message)
    }

    /// The addressed thing does not exist.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::NotFound, message)
    }

    /// The request conflicts with the current state.
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Conflict, message)
    }

    /// An argument is invalid.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidArgument, message)
    }
}

/// Store failures reach clients as `unavailable` (retry may help) or `internal`.
impl From<StoreError> for ModuleError {
    fn from(e: StoreError) -> Self {
        let code = if e.is_unavailable() { ErrorCode::Unavailable } else { ErrorCode::Internal };
        Self::new(code, format!("storage error: {e}"))
    }
}

/// How a module presents itself on the broker's landing page (`GET /`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModuleInfo {
    /// A human title, e.g. "Event booking".
    pub title: &'static str,
    /// The module's README, as a path in the repository (e.g. `modules/event_booking/README.md`).
    pub readme: &'static str,
    /// The path of the module's demo page on the broker's port, if it has one.
    pub demo: Option<&'static str>,
}

/// A domain module. Every method has a default so a module implements only what it uses.
#[async_trait]
pub trait Module: Send + Sync + 'static {
    /// Module name; `call` methods are addressed as `<name>.<method>`.
    fn name(&self) -> &'static str;

    /// Topic prefixes this module owns (e.g. `"booking/"`). Topics under no module are plain pub/sub.
    fn topic_prefixes(&self) -> Vec<String> {
        Vec::new()
    }

    /// Called once at start, before listeners open: load state, spawn timers (stop them when
    /// [`Context::shutdown`] fires).
    async fn start(&self, _ctx: &Context) -> anyhow::Result<()> {
        Ok(())
    }

    /// Authorizes a subscription to one of the module's topics. The default allows everyone.
    async fn authorize(&self, _ctx: &Context, _caller: &Caller, _topic: &str) -> Result<(), ModuleError> {
        Ok(())
    }

    /// The state a new subscriber starts from, sent in the subscribe reply. Called after the subscriber
    /// is registered, so no event published after the snapshot is missed.
    async fn snapshot(&self, _ctx: &Context, _caller: &Caller, _topic: &str) -> Result<Option<Payload>, ModuleError> {
        Ok(None)
    }

    /// A client publishes on one of the module's topics: return the payload to fan out (the same or
    /// transformed) or refuse. The default refuses: module topics carry module events only.
    async fn on_publish(
        &self,
        _ctx: &Context,
        _caller: &Caller,
        topic: &str,
        _payload: Payload,
    ) -> Result<Payload, ModuleError> {
        Err(ModuleError::forbidden(format!("clients may not publish on {topic}")))
    }

    /// A `call` to `<name>.<method>`.
    async fn on_call(
        &self,
        _ctx: &Context,
        _caller: &Caller,
        method: &str,
        _args: Payload,
    ) -> Result<Payload, ModuleError> {
        Err(ModuleError::new(ErrorCode::UnknownMethod, format!("no method {}.{method}", self.name())))
    }

    /// A `call` to `<name>.<method>` whose caller wants no result: a native `call` without `id`, a
    /// Socket.IO emit without acknowledgement. Only a refusal reaches the client. The default runs
    /// [`Module::on_call`] and drops its result; a module whose result costs work to build may skip it.
    async fn on_cast(&self, ctx: &Context, caller: &Caller, method: &str, args: Payload) -> Result<(), ModuleError> {
        self.on_call(ctx, caller, method, args).await.map(drop)
    }

    /// A subscriber left one of the module's topics (unsubscribe or disconnect).
    async fn on_unsubscribe(&self, _ctx: &Context, _caller: &Caller, _topic: &str) {}

    /// A connection that had called into or subscribed to this module closed.
    async fn on_disconnect(&self, _ctx: &Context, _caller: &Caller) {}

    /// Users present in one of the module's roster books (see [`Context::roster`]) only through a node
    /// that died are gone: announce it as for a leave. Called on one node of the cluster, once per
    /// departure.
    async fn on_departed(&self, _ctx: &Context, _departure: Departure) {}

    /// HTTP routes the module serves on the broker's port (REST APIs).
    fn routes(&self, _ctx: &Context) -> Option<axum::Router> {
        None
    }

    /// Compat dialects (an existing app's JSON-over-WebSocket API) the node serves on its port for the
    /// module: the module gives the vocabulary, the node does the rest (see [`crate::dialect`]).
    fn dialects(&self) -> Vec<Arc<dyn JsonDialect>> {
        Vec::new()
    }

    /// What the landing page shows about the module. The default: its name only.
    fn info(&self) -> Option<ModuleInfo> {
        None
    }
}

/// The modules of a node, and routing from topics and method names to them.
#[derive(Default)]
pub struct ModuleHost {
    modules: Vec<Arc<dyn Module>>,
    prefixes: Vec<(String, usize)>,
}

impl ModuleHost {
    /// Builds the host; refuses duplicate names and prefixes.
    pub fn new(modules: Vec<Arc<dyn Module>>) -> anyhow::Result<Self> {
        let mut prefixes: Vec<(String, usize)> = Vec::new();
        for (i, m) in modules.iter().enumerate() {
            if modules[..i].iter().any(|o| o.name() == m.name()) {
                anyhow::bail!("two modules are named {}", m.name());
            }
            for p in m.topic_prefixes() {
                if let Some((_, j)) = prefixes.iter().find(|(q, _)| *q == p) {
                    anyhow::bail!("modules {} and {} both claim topic prefix {p}", modules[*j].name(), m.name());
                }
                prefixes.push((p, i));
            }
        }
        prefixes.sort_by_key(|(p, _)| std::cmp::Reverse(p.len()));
        Ok(Self { modules, prefixes })
    }

    /// The module owning `topic` (longest matching prefix), if any.
    pub fn owner(&self, topic: &str) -> Option<&Arc<dyn Module>> {
        self.prefixes.iter().find(|(p, _)| topic.starts_with(p.as_str())).map(|(_, i)| &self.modules[*i])
    }

    /// The module a `<name>.<method>` call goes to, and the method part.
    pub fn route_call<'m>(&self, method: &'m str) -> Option<(&Arc<dyn Module>, &'m str)> {
        let (name, rest) = method.split_once('.')?;
        self.modules.iter().find(|m| m.name() == name).map(|m| (m, rest))
    }

    /// All modules.
    pub fn all(&self) -> &[Arc<dyn Module>] {
        &self.modules
    }
}

/// What a module may ask of its node. The node implements it and owns the modules, so modules see this
/// trait, never the node itself.
pub trait NodeServices: Send + Sync + 'static {
    /// The node's configuration.
    fn config(&self) -> &Config;

    /// This node's id among the nodes of its cluster; `None` on a single node (cluster mode off).
    fn node_id(&self) -> Option<&str>;

    /// Publishes an event to every subscriber of `topic`, of the state `version` names when given (see
    /// [`Context::publish_versioned`]); returns its sequence number as [`Context::publish`] says.
    fn publish(&self, topic: &str, version: Option<(&str, u64)>, payload: &Payload, since: Instant) -> u64;

    /// Counters every node of a cluster adds to.
    fn shared_counters(&self) -> &SharedCounters;

    /// Subscribers of `topic` on this node.
    fn subscriber_count(&self, topic: &str) -> usize;

    /// Named striped counters.
    fn counters(&self) -> &Counters;

    /// Presence per topic.
    fn presence(&self) -> &Presence;

    /// Who is in the modules' books.
    fn roster(&self) -> &Roster;

    /// Persistent storage.
    fn store(&self) -> &Arc<dyn Store>;

    /// The node's wall clock.
    fn clock(&self) -> &Arc<dyn Clock>;

    /// Cancelled when the node shuts down.
    fn shutdown(&self) -> &CancellationToken;

    /// Verifies a bearer token.
    fn verify_token(&self, token: &str) -> Result<Identity, AuthError>;
}

/// A module's handle on the node.
///
/// The node owns its modules, so a module must not keep a `Context` in itself: that cycle would keep the
/// node (and its store) alive after shutdown. Take the context each method is given; hand clones only to
/// tasks that end when [`Context::shutdown`] fires.
#[derive(Clone)]
pub struct Context {
    services: Arc<dyn NodeServices>,
}

impl Context {
    /// A context on the node that `services` are.
    pub fn new(services: Arc<dyn NodeServices>) -> Self {
        Self { services }
    }

    /// The node's configuration.
    pub fn config(&self) -> &Config {
        self.services.config()
    }

    /// Publishes an event to every subscriber of `topic`; returns its sequence number (0 when nobody is
    /// subscribed, and in cluster mode, where the event is sequenced by the bus after this returns; events
    /// a module publishes on one topic keep their order).
    pub fn publish(&self, topic: &str, payload: &Payload) -> u64 {
        self.services.publish(topic, None, payload, Instant::now())
    }

    /// Publishes the state `key` of a topic at `version`: in cluster mode an event older than one already
    /// published for the same key and topic (by any node) is dropped, so subscribers never see state go
    /// back, whichever node's publish reaches the cluster first (returns 0 like [`Context::publish`]). On
    /// one node the module's own order stands and this is [`Context::publish`].
    pub fn publish_versioned(&self, topic: &str, key: &str, version: u64, payload: &Payload) -> u64 {
        self.services.publish(topic, Some((key, version)), payload, Instant::now())
    }

    /// Serializes `value` and publishes it.
    pub fn publish_value<T: serde::Serialize + ?Sized>(&self, topic: &str, value: &T) -> Result<u64, ModuleError> {
        let payload = Payload::from_value(value).map_err(|e| ModuleError::new(ErrorCode::Internal, e.to_string()))?;
        Ok(self.publish(topic, &payload))
    }

    /// This node's id among the nodes of its cluster (`--node-id`, or generated at start); `None` on a
    /// single node. A module that keeps rows per node in a store the nodes share keys them by it.
    pub fn node_id(&self) -> Option<&str> {
        self.services.node_id()
    }

    /// Counters every node of a cluster adds to (on a single node, plain counters).
    pub fn shared_counters(&self) -> &SharedCounters {
        self.services.shared_counters()
    }

    /// Subscribers of `topic` on this node.
    pub fn subscriber_count(&self, topic: &str) -> usize {
        self.services.subscriber_count(topic)
    }

    /// Named striped counters.
    pub fn counters(&self) -> &Counters {
        self.services.counters()
    }

    /// Presence per topic.
    pub fn presence(&self) -> &Presence {
        self.services.presence()
    }

    /// Who is in the module's books, per user and cluster-wide; name a book by one of the module's
    /// topics.
    pub fn roster(&self) -> &Roster {
        self.services.roster()
    }

    /// Persistent storage.
    pub fn store(&self) -> &Arc<dyn Store> {
        self.services.store()
    }

    /// The node's wall clock.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        self.services.clock()
    }

    /// Cancelled when the node shuts down; timers should stop then.
    pub fn shutdown(&self) -> CancellationToken {
        self.services.shutdown().clone()
    }

    /// Verifies a bearer token (for module REST routes).
    pub fn verify_token(&self, token: &str) -> Result<Identity, AuthError> {
        self.services.verify_token(token)
    }
}
