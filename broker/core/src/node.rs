//! The state one broker node shares between its connection tasks, modules and HTTP handlers.

use crate::auth::{AuthError, Identity, Verifier};
use crate::cluster::Cluster;
use crate::config::Config;
use crate::counters::{Counters, SharedCounters};
use crate::metrics::Metrics;
use crate::module::{ModuleHost, NodeServices};
use crate::presence::Presence;
use crate::roster::Roster;
use crate::topics::{History, Registry, Via};
use chorus_protocol::{ErrorCode, Limits, Payload};
use chorus_store::{Clock, Store};
use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Everything a node's tasks share. Built once by the server; handed out as `Arc<Node>`.
pub struct Node {
    /// The configuration the node started with.
    pub config: Arc<Config>,
    /// Token verification.
    pub verifier: Verifier,
    /// Topic subscriptions and fan-out.
    pub registry: Arc<Registry>,
    /// Named striped counters (this node's).
    pub counters: Arc<Counters>,
    /// Counters every node of a cluster adds to.
    pub shared_counters: Arc<SharedCounters>,
    /// The bus to the other nodes of the cluster; `None` on a single node.
    pub cluster: Option<Arc<dyn Cluster>>,
    /// Presence per topic.
    pub presence: Presence,
    /// Who is in the modules' books, per user, cluster-wide.
    pub roster: Arc<Roster>,
    /// The domain modules.
    pub modules: ModuleHost,
    /// Persistent storage.
    pub store: Arc<dyn Store>,
    /// Wall clock (injectable for tests).
    pub clock: Arc<dyn Clock>,
    /// Metric handles.
    pub metrics: Metrics,
    /// Cancelled when the node shuts down.
    pub shutdown: CancellationToken,
    /// Tracks connection tasks so shutdown can wait for them.
    pub tracker: TaskTracker,
    ready: AtomicBool,
    next_conn: AtomicU64,
    lanes: OnceLock<Lanes>,
    /// The node itself, for the lanes' tasks.
    me: Weak<Node>,
}

/// Ordered queues for module publishes in cluster mode: a module publishes synchronously, the bus needs
/// a round trip, so each publish goes to the lane of its topic and lanes send in order.
struct Lanes {
    senders: Vec<mpsc::UnboundedSender<LanePublish>>,
    hasher: RandomState,
}

/// A module publish waiting in a lane: topic, version (key, number), payload.
type LanePublish = (String, Option<(String, u64)>, Payload);

/// Lanes for module publishes: enough to keep a few round trips in flight.
const LANES: usize = 8;

/// A failed publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishError {
    /// The error code for the client.
    pub code: ErrorCode,
    /// What happened.
    pub message: String,
}

impl Node {
    /// Assembles a node.
    pub fn new(
        config: Arc<Config>,
        verifier: Verifier,
        modules: ModuleHost,
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        cluster: Option<Arc<dyn Cluster>>,
    ) -> Arc<Self> {
        let history = Self::history(&config);
        let registry = Arc::new(if cluster.is_some() { Registry::clustered(history) } else { Registry::new(history) });
        // Connection ids name guests (`guest-<id>`); in a cluster they must not repeat across nodes.
        let first_conn_id = if cluster.is_some() { (u64::from(rand::random::<u32>()) << 24) | 1 } else { 1 };
        Arc::new_cyclic(|me| Self {
            config,
            verifier,
            registry,
            counters: Arc::default(),
            shared_counters: Arc::default(),
            roster: Arc::new(Roster::new(cluster.clone())),
            cluster,
            presence: Presence::default(),
            modules,
            store,
            clock,
            metrics: Metrics::new(),
            shutdown: CancellationToken::new(),
            tracker: TaskTracker::new(),
            ready: AtomicBool::new(false),
            next_conn: AtomicU64::new(first_conn_id),
            lanes: OnceLock::new(),
            me: me.clone(),
        })
    }

    /// The history settings.
    pub fn history(config: &Config) -> History {
        History { size: config.history_size, ttl: Duration::from_secs(config.history_ttl_secs) }
    }

    /// A fresh connection id.
    pub fn next_conn_id(&self) -> u64 {
        self.next_conn.fetch_add(1, Ordering::Relaxed)
    }

    /// Publishes an event for a module, of a topic's state `key` at a version when given (see
    /// [`Context::publish_versioned`](crate::module::Context::publish_versioned)): at once on a single
    /// node (returns its sequence number); in cluster mode through the topic's lane to the bus, in order
    /// per topic (returns 0: the number is not known yet).
    pub fn publish_versioned(
        &self,
        topic: &str,
        version: Option<(&str, u64)>,
        payload: &Payload,
        since: Instant,
    ) -> u64 {
        if self.cluster.is_none() {
            let fanout = self.registry.publish(topic, payload);
            self.metrics.fanout(fanout.delivered, fanout.overflowed, since.elapsed().as_secs_f64());
            return fanout.seq;
        }
        let lanes = self.lanes.get_or_init(|| self.start_lanes());
        let lane = (lanes.hasher.hash_one(topic) as usize) % lanes.senders.len();
        let version = version.map(|(key, n)| (key.to_owned(), n));
        if lanes.senders[lane].send((topic.to_owned(), version, payload.clone())).is_err() {
            tracing::warn!(topic, "node shutting down; module publish not sent");
        }
        0
    }

    fn start_lanes(&self) -> Lanes {
        let senders = (0..LANES)
            .map(|_| {
                let (tx, mut rx) = mpsc::unbounded_channel::<LanePublish>();
                let node = self.me.clone();
                tokio::spawn(async move {
                    while let Some((topic, version, payload)) = rx.recv().await {
                        let Some(node) = node.upgrade() else { return };
                        let version = version.as_ref().map(|(key, n)| (key.as_str(), *n));
                        if let Err(e) = node.publish_sequenced(&topic, version, &payload, Instant::now()).await {
                            tracing::warn!(topic, error = %e.message, "module publish not delivered to the cluster");
                        }
                    }
                });
                tx
            })
            .collect();
        Lanes { senders, hasher: RandomState::new() }
    }

    /// Publishes an event and waits until it is sequenced; returns its sequence number. On a single node
    /// the same as [`Node::publish_versioned`]. In cluster mode: sent through the bus, then delivered here in
    /// order; while the bus is down, delivered to this node's subscribers unsequenced (0) and kept for
    /// the other nodes until the bus is back.
    pub async fn publish_and_wait(&self, topic: &str, payload: &Payload, since: Instant) -> Result<u64, PublishError> {
        self.publish_sequenced(topic, None, payload, since).await
    }

    async fn publish_sequenced(
        &self,
        topic: &str,
        version: Option<(&str, u64)>,
        payload: &Payload,
        since: Instant,
    ) -> Result<u64, PublishError> {
        let Some(cluster) = &self.cluster else {
            let fanout = self.registry.publish(topic, payload);
            self.metrics.fanout(fanout.delivered, fanout.overflowed, since.elapsed().as_secs_f64());
            return Ok(fanout.seq);
        };
        let refused = |e: crate::cluster::ClusterError| PublishError {
            code: ErrorCode::Unavailable,
            message: format!("{e}; the publish was not delivered"),
        };
        if !cluster.healthy() && cluster.defer(topic, payload, version).map_err(refused)? {
            let fanout = self.registry.publish_unsequenced(topic, payload);
            self.metrics.fanout(fanout.delivered, fanout.overflowed, since.elapsed().as_secs_f64());
            return Ok(0);
        }
        // Sent, but no answer (Redis died or stalled mid-command): the script may have run, and then
        // the event is in the history and reaches every subscriber, once. The client must be told so
        // rather than "not delivered", or a retry would publish it twice.
        let in_doubt = |e: crate::cluster::ClusterError| match e {
            crate::cluster::ClusterError::Unavailable(_) => PublishError {
                code: ErrorCode::Unavailable,
                message: format!("{e}; the outcome is unknown: the publish may still be delivered, once"),
            },
            e => refused(e),
        };
        let head = cluster.publish(topic, payload, version, false).await.map_err(in_doubt)?;
        if head.seq == 0 {
            return Ok(0);
        }
        let fanout = self.registry.apply(topic, &head.epoch, head.seq, payload, Via::Reply);
        self.metrics.fanout(fanout.delivered, fanout.overflowed, since.elapsed().as_secs_f64());
        Ok(head.seq)
    }

    /// Whether the cluster bus (if any) is reachable.
    pub fn cluster_healthy(&self) -> bool {
        self.cluster.as_ref().is_none_or(|c| c.healthy())
    }

    /// Whether the node accepts traffic (`/ready`).
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed) && !self.shutdown.is_cancelled() && self.cluster_healthy()
    }

    /// Marks the node ready or not.
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Relaxed);
    }

    /// Limits announced to clients in `welcome`.
    pub fn limits(&self) -> Limits {
        Limits {
            max_frame_bytes: self.config.max_frame_bytes,
            max_subscriptions: self.config.max_subscriptions,
            publish_rate: self.config.publish_rate,
            idle_timeout_ms: self.config.idle_timeout_secs * 1000,
        }
    }
}

impl NodeServices for Node {
    fn config(&self) -> &Config {
        &self.config
    }

    fn node_id(&self) -> Option<&str> {
        self.cluster.as_deref().map(|c| c.node_id())
    }

    fn publish(&self, topic: &str, version: Option<(&str, u64)>, payload: &Payload, since: Instant) -> u64 {
        self.publish_versioned(topic, version, payload, since)
    }

    fn shared_counters(&self) -> &SharedCounters {
        &self.shared_counters
    }

    fn subscriber_count(&self, topic: &str) -> usize {
        self.registry.subscriber_count(topic)
    }

    fn counters(&self) -> &Counters {
        &self.counters
    }

    fn presence(&self) -> &Presence {
        &self.presence
    }

    fn roster(&self) -> &Roster {
        &self.roster
    }

    fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    fn shutdown(&self) -> &CancellationToken {
        &self.shutdown
    }

    fn verify_token(&self, token: &str) -> Result<Identity, AuthError> {
        self.verifier.verify(token)
    }
}
