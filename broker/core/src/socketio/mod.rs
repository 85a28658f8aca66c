//! The Socket.IO gateway: Socket.IO 4 clients (`socket.io-client`, `python-socketio`, …) connect to the
//! broker's TCP port unchanged, at `/socket.io/` (`--socketio-path`).
//!
//! Layers, bottom up:
//! - [`http`](self) entry: the Engine.IO v4 request rules (`EIO`, `transport`, `sid`, CORS) and its error
//!   answers (`{"code","message"}` with 400/403).
//! - `polling`, `websocket`: the two transports. Long-polling `GET`s drain a session's outbound queue,
//!   `POST`s feed its inbox; a WebSocket (direct, or upgraded from polling after the `probe` exchange)
//!   does both with a writer and a reader.
//! - `session`: one Engine.IO session, its byte-bounded queue, its task and heartbeat.
//! - `socket`: the Socket.IO layer in that task: namespace connections, auth, events, acks, binary
//!   attachments, subscriptions.
//! - [`Namespace`]: what a module crate hands the gateway — which events subscribe, unsubscribe or call.
//! - [`NamespaceEncoder`]: topic events as Socket.IO packets, encoded once per namespace.
//!
//! Why the protocol is written here rather than taken from `socketioxide` (which is well made): chorus'
//! fan-out hands one encoded buffer to every subscriber's byte-bounded queue through the sharded
//! registry, and cluster delivery runs through that same registry. socketioxide brings its own rooms,
//! adapter (broadcast and cluster) and per-socket channels; using it would mean either a second fan-out
//! path beside the registry (per-socket emits, no shared encoding, its queues instead of ours, its own
//! cluster adapter instead of the Redis bus every other transport uses) or driving it through its
//! adapter trait one socket at a time. Engine.IO and Socket.IO v5 are small, documented protocols with a
//! public test suite; here a Socket.IO socket is one more subscriber of the registry, and a publish
//! costs one encoding per namespace whatever the number of Socket.IO clients.

mod binary;
pub(crate) mod config;
mod encoder;
mod http;
mod namespace;
mod polling;
mod session;
mod socket;
mod websocket;

pub use config::SocketIoConfig;
pub use encoder::{NamespaceEncoder, TOPIC_EVENT};
pub use namespace::{Namespace, Route, TopicOf};
pub use socket::{ATTACHMENTS_TIMEOUT, MAX_ATTACHMENTS};

use crate::module::Context;
use crate::node::Node;
use crate::queue::EventEncoder;
use axum::Router;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use parking_lot::RwLock;
use session::Session;
use std::collections::HashMap;
use std::sync::Arc;

/// The metric label of Socket.IO sessions in the per-transport connection metrics.
pub(crate) const TRANSPORT: &str = "socketio";

/// A namespace as served: its bindings and its encoder.
pub(crate) struct NamespaceHost {
    pub spec: Namespace,
    pub encoder: Arc<NamespaceEncoder>,
}

/// The gateway's shared state.
pub(crate) struct Gateway {
    pub node: Arc<Node>,
    pub ctx: Context,
    pub namespaces: HashMap<String, Arc<NamespaceHost>>,
    pub sessions: RwLock<HashMap<String, Arc<Session>>>,
    root: Arc<NamespaceEncoder>,
}

impl Gateway {
    /// The encoding a session's queue is labelled with (events are encoded per namespace by the
    /// subscription, not by the queue).
    pub fn root_encoder(&self) -> Arc<dyn EventEncoder> {
        self.root.clone()
    }
}

/// The gateway's routes for `namespaces` (several with one name are merged; `/` is always served). The
/// `chorus:*` events (subscribe, unsubscribe, publish, call) work on every namespace.
pub(crate) fn routes(node: &Arc<Node>, namespaces: Vec<Namespace>) -> anyhow::Result<Router> {
    let mut merged: Vec<Namespace> = vec![Namespace::new("/")];
    for namespace in namespaces {
        if !namespace::valid_name(&namespace.name) {
            anyhow::bail!(
                "invalid Socket.IO namespace {:?}: it must start with '/' and hold no ',' or control characters",
                namespace.name
            );
        }
        match merged.iter_mut().find(|n| n.name == namespace.name) {
            Some(existing) => existing.merge(namespace),
            None => merged.push(namespace),
        }
    }
    let namespaces = merged
        .into_iter()
        .map(|spec| {
            let encoder = Arc::new(NamespaceEncoder::new(&spec.name));
            (spec.name.clone(), Arc::new(NamespaceHost { spec, encoder }))
        })
        .collect();
    let gateway = Arc::new(Gateway {
        node: node.clone(),
        ctx: Context::new(node.clone()),
        namespaces,
        sessions: RwLock::default(),
        root: Arc::new(NamespaceEncoder::new("/")),
    });
    Ok(http::router(gateway, &node.config.socketio.socketio_path))
}

/// A random id of 20 URL-safe characters (Engine.IO session ids, Socket.IO socket ids).
pub(crate) fn new_id() -> String {
    URL_SAFE_NO_PAD.encode(rand::random::<[u8; 15]>())
}
