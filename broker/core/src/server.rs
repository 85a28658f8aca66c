//! Starting and stopping a node: open the store, start modules, bind HTTP/WebSocket and QUIC, and on
//! shutdown stop accepting, tell every client to reconnect elsewhere (close 1001), drain, exit.

use crate::auth::Verifier;
use crate::cluster::{Attachment, Cluster, ClusterOptions, RedisCluster};
use crate::config::Config;
use crate::landing::Listeners;
use crate::module::{Context, Module, ModuleHost};
use crate::node::Node;
use crate::socketio::Namespace;
use crate::{counters, dialect, http, metrics, quic, socketio, tls};
use anyhow::Context as _;
use axum::serve::ListenerExt;
use chorus_store::{Backend, Clock, SystemClock};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio::time::timeout;

/// How often histogram buckets are compacted by the Prometheus recorder and expired topic histories are
/// swept. Histories therefore live up to this much longer than `--history-ttl-secs`.
const METRICS_UPKEEP: Duration = Duration::from_secs(5);

/// A running node.
pub struct Server {
    node: Arc<Node>,
    /// Bound TCP address (HTTP + WebSocket).
    pub http_addr: SocketAddr,
    /// Bound UDP address (QUIC), unless disabled.
    pub quic_addr: Option<SocketAddr>,
    /// SHA-256 fingerprint of the QUIC certificate.
    pub quic_fingerprint: Option<String>,
    http: JoinHandle<()>,
    endpoint: Option<quinn::Endpoint>,
}

/// What a node serves besides its built-ins: the domain modules, and the Socket.IO namespaces their
/// crates bind (the gateway serves `/` even when none is given).
#[derive(Default)]
pub struct Services {
    /// The domain modules.
    pub modules: Vec<Arc<dyn Module>>,
    /// Socket.IO namespaces, each mapping events to the modules' topics and calls.
    pub socketio: Vec<Namespace>,
}

impl From<Vec<Arc<dyn Module>>> for Services {
    fn from(modules: Vec<Arc<dyn Module>>) -> Self {
        Self { modules, socketio: Vec::new() }
    }
}

/// Starts a node with the system clock.
pub async fn start(config: Config, modules: Vec<Arc<dyn Module>>) -> anyhow::Result<Server> {
    start_services(config, modules.into(), Arc::new(SystemClock)).await
}

/// Starts a node with the given wall clock.
pub async fn start_with_clock(
    config: Config,
    modules: Vec<Arc<dyn Module>>,
    clock: Arc<dyn Clock>,
) -> anyhow::Result<Server> {
    start_services(config, modules.into(), clock).await
}

/// Cluster mode: the roster's sweep, and its departures handed to the module owning each book. Both
/// tasks end with the node (the sweep on shutdown, the dispatcher when the sweep drops its sender).
fn spawn_roster(ctx: &Context, node: &Arc<Node>) {
    let (departures, mut gone) = tokio::sync::mpsc::unbounded_channel();
    let refresh = Node::history(&node.config).ttl / 3;
    tokio::spawn(node.roster.clone().run(refresh, departures, node.shutdown.clone()));
    let ctx = ctx.clone();
    let node = node.clone();
    tokio::spawn(async move {
        while let Some(departure) = gone.recv().await {
            match node.modules.owner(&departure.book) {
                Some(module) => module.on_departed(&ctx, departure).await,
                None => tracing::debug!(book = %departure.book, "departure in a book no module owns"),
            }
        }
    });
}

/// Starts a node serving `services` with the given wall clock.
pub async fn start_services(config: Config, services: Services, clock: Arc<dyn Clock>) -> anyhow::Result<Server> {
    let Services { modules, socketio: namespaces } = services;
    let prometheus = metrics::install();
    if config.redis_url.is_some() && config.store.store == Backend::Embedded && !modules.is_empty() {
        anyhow::bail!(
            "cluster mode (a Redis URL is set) needs a store every node shares: set CHORUS_STORE=redis (or \
             scylla). With the embedded store each node would keep its own events and bookings"
        );
    }
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("creating data dir {}", config.data_dir.display()))?;
    let store = chorus_store::open(&config.store, &config.data_dir, clock.clone(), config.redis_url.as_deref())
        .await
        .context("opening the store")?;
    let verifier = Verifier::from_config(&config)?;
    if !verifier.enabled() {
        tracing::warn!("no JWT key configured (CHORUS_JWT_SECRET or --jwt-public-key): accepting guests only");
    }
    let host = ModuleHost::new(modules)?;
    let cluster = match &config.redis_url {
        Some(url) => {
            let options = ClusterOptions {
                node_id: config.node_id.clone().unwrap_or_else(|| format!("{:016x}", rand::random::<u64>())),
                history: Node::history(&config),
                heartbeat: Duration::from_millis(config.cluster_heartbeat_ms.max(10)),
                outbox: config.cluster_outbox,
            };
            let node_id = options.node_id.clone();
            let cluster = RedisCluster::connect(url, options).await.context("joining the cluster through Redis")?;
            tracing::info!(node_id, "cluster mode: sharing topics through Redis");
            Some(cluster as Arc<dyn Cluster>)
        }
        None => None,
    };
    let config = Arc::new(config);
    let node = Node::new(config.clone(), verifier, host, store, clock, cluster.clone());
    if let Some(cluster) = cluster {
        let attachment = Attachment {
            registry: node.registry.clone(),
            metrics: node.metrics.clone(),
            shutdown: node.shutdown.clone(),
        };
        tokio::spawn(cluster.clone().run(attachment));
        let every = Duration::from_millis(config.counter_flush_ms);
        tokio::spawn(counters::flush_shared(node.shared_counters.clone(), every, cluster, node.shutdown.clone()));
    }
    let ctx = Context::new(node.clone());
    spawn_roster(&ctx, &node);
    let mut routes = Vec::new();
    for module in node.modules.all() {
        module.start(&ctx).await.with_context(|| format!("starting module {}", module.name()))?;
        routes.extend(module.routes(&ctx));
        routes.extend(module.dialects().into_iter().map(|d| dialect::host::routes(&node, d)));
    }
    if !config.socketio.disable_socketio {
        routes.push(socketio::routes(&node, namespaces)?);
    }

    let listener = TcpListener::bind(config.listen).await.with_context(|| format!("binding {}", config.listen))?;
    let http_addr = listener.local_addr()?;
    // Realtime frames are small and latency-sensitive: never let Nagle hold one back for an ACK.
    let listener = listener.tap_io(|tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY");
        }
    });
    let (endpoint, quic_addr, quic_fingerprint) = if config.disable_quic {
        (None, None, None)
    } else {
        let cert = tls::load_or_generate(&config)?;
        let endpoint = quic::endpoint(&config, &cert)?;
        let addr = endpoint.local_addr()?;
        tracing::info!(%addr, fingerprint = %cert.fingerprint, "QUIC listening");
        tokio::spawn(quic::accept_loop(node.clone(), endpoint.clone()));
        (Some(endpoint), Some(addr), Some(cert.fingerprint))
    };
    let listeners = Listeners { http: http_addr, quic: quic_addr, quic_fingerprint: quic_fingerprint.clone() };
    let app = http::router(node.clone(), prometheus.clone(), listeners, routes);
    let stop = node.shutdown.clone();
    let http = tokio::spawn(async move {
        let service = app.into_make_service_with_connect_info::<SocketAddr>();
        if let Err(e) = axum::serve(listener, service).with_graceful_shutdown(stop.cancelled_owned()).await {
            tracing::error!(error = %e, "HTTP server failed");
        }
    });

    let stop = node.shutdown.clone();
    let sweeper = node.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(METRICS_UPKEEP);
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tick.tick() => {
                    prometheus.run_upkeep();
                    sweeper.registry.sweep(tokio::time::Instant::now());
                }
            }
        }
    });

    node.set_ready(true);
    tracing::info!(%http_addr, "chorus listening");
    Ok(Server { node, http_addr, quic_addr, quic_fingerprint, http, endpoint })
}

impl Server {
    /// The node's shared state.
    pub fn node(&self) -> &Arc<Node> {
        &self.node
    }

    /// Starts a graceful shutdown (idempotent).
    pub fn shutdown(&self) {
        self.node.shutdown.cancel();
    }

    /// Waits for shutdown to be requested, then drains connections within the configured grace period.
    pub async fn stopped(self) -> anyhow::Result<()> {
        self.node.shutdown.cancelled().await;
        self.node.set_ready(false);
        if let Some(endpoint) = &self.endpoint {
            endpoint.set_server_config(None);
        }
        self.node.tracker.close();
        let grace = Duration::from_secs(self.node.config.shutdown_grace_secs);
        if timeout(grace, self.node.tracker.wait()).await.is_err() {
            tracing::warn!(open = self.node.tracker.len(), "connections still open after the shutdown grace period");
        }
        if timeout(grace, self.http).await.is_err() {
            tracing::warn!("HTTP server did not stop within the grace period");
        }
        if let Some(endpoint) = self.endpoint {
            let _ = timeout(Duration::from_secs(1), endpoint.wait_idle()).await;
        }
        // Release the store (the embedded database file) so the same data dir can be opened at once.
        if let Err(e) = self.node.store.close().await {
            tracing::warn!(error = %e, "closing the store failed");
        }
        tracing::info!("chorus stopped");
        Ok(())
    }
}

/// Runs a node until SIGINT or SIGTERM, printing one `chorus listening ...` line on stdout once bound
/// (scripts and tests read the ports from it, and the runtime's worker threads).
pub async fn run(config: Config, services: Services) -> anyhow::Result<()> {
    let server = start_services(config, services, Arc::new(SystemClock)).await?;
    let quic = server.quic_addr.map_or_else(|| "off".to_owned(), |a| a.to_string());
    let fingerprint = server.quic_fingerprint.clone().unwrap_or_else(|| "none".to_owned());
    // Installed before the listening line: a supervisor (or a test) may signal as soon as it reads it, and
    // a signal without a handler would kill the node without its drain.
    let stop = stop_signal()?;
    let workers = tokio::runtime::Handle::current().metrics().num_workers();
    println!("chorus listening http={} quic={quic} quic_fingerprint={fingerprint} workers={workers}", server.http_addr);
    if server.node.config.dev {
        print_dev_banner(&server);
    }
    let node = server.node.clone();
    tokio::spawn(async move {
        stop.await;
        tracing::info!("shutdown requested");
        node.shutdown.cancel();
    });
    server.stopped().await
}

/// Dev mode's one-time notice on stdout (after the `chorus listening` line scripts read): the landing page,
/// and the generated secret with a command that mints a token for it.
fn print_dev_banner(server: &Server) {
    let port = server.http_addr.port();
    println!("dev mode: NOT for production. Landing page and demos: http://127.0.0.1:{port}/");
    if let (true, Some(secret)) = (server.node.config.generated_jwt_secret, &server.node.config.jwt_secret) {
        println!("dev mode: generated JWT secret (HS256, this run only): {secret}");
        println!(
            "dev mode: mint a token: cargo run --release -p chorus-broker --bin chorus-cli -- mint --secret {secret} --sub alice --name Alice"
        );
    }
}

/// SIGTERM or SIGINT, whichever comes first; both handlers are installed when this returns.
fn stop_signal() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("listening for SIGTERM")?;
    let mut interrupt = signal(SignalKind::interrupt()).context("listening for SIGINT")?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = interrupt.recv() => {}
        }
    })
}
