//! The state one broker node shares between its connection tasks, modules and HTTP handlers.

use crate::auth::Verifier;
use crate::config::Config;
use crate::counters::Counters;
use crate::metrics::Metrics;
use crate::module::ModuleHost;
use crate::presence::Presence;
use crate::topics::{Fanout, History, Registry};
use chorus_protocol::{Limits, Payload};
use chorus_store::{Clock, Store};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;
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
    pub registry: Registry,
    /// Named striped counters.
    pub counters: Arc<Counters>,
    /// Presence per topic.
    pub presence: Presence,
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
}

impl Node {
    /// Assembles a node.
    pub fn new(
        config: Arc<Config>,
        verifier: Verifier,
        modules: ModuleHost,
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        let history = History { size: config.history_size, ttl: Duration::from_secs(config.history_ttl_secs) };
        Self {
            config,
            verifier,
            registry: Registry::new(history),
            counters: Arc::default(),
            presence: Presence::default(),
            modules,
            store,
            clock,
            metrics: Metrics::new(),
            shutdown: CancellationToken::new(),
            tracker: TaskTracker::new(),
            ready: AtomicBool::new(false),
            next_conn: AtomicU64::new(1),
        }
    }

    /// A fresh connection id.
    pub fn next_conn_id(&self) -> u64 {
        self.next_conn.fetch_add(1, Ordering::Relaxed)
    }

    /// Publishes an event to the topic's subscribers and records the fan-out metrics. `since` is when the
    /// publish entered the broker (for the publish→enqueue latency histogram).
    pub fn publish(&self, topic: &str, payload: &Payload, since: Instant) -> Fanout {
        let fanout = self.registry.publish(topic, payload);
        self.metrics.fanout(fanout.delivered, fanout.overflowed, since.elapsed().as_secs_f64());
        fanout
    }

    /// Whether the node accepts traffic (`/ready`).
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed) && !self.shutdown.is_cancelled()
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
