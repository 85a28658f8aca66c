//! The command line: one subcommand per scenario (plus `all`), each with the options every scenario
//! shares ([`Common`]) and its own.

use crate::target::Target;
use clap::{Args, Parser, Subcommand, ValueEnum};
use serde::Serialize;
use std::net::SocketAddr;
use std::path::PathBuf;

/// chorus-bench: chorus against nats-server, Socket.IO and the raw-socket limit, same workload, same run.
#[derive(Debug, Parser)]
#[command(name = "chorus-bench", version, about)]
pub struct Cli {
    /// The scenario.
    #[command(subcommand)]
    pub command: Command,
}

/// Scenarios.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// 1 publisher → N subscribers on one topic; closed loop (max rate, bounded in flight) or open loop (--rate).
    Fanout(FanoutArgs),
    /// N connections each on its own topic plus K hot shared topics; publishers spread over all of them.
    Topics(TopicsArgs),
    /// Fixed-rate open-loop fan-out; publish→deliver latency percentiles (coordinated-omission safe).
    Latency(LatencyArgs),
    /// Rate-limited connection storm, then the connections held idle: connect rate, failures, RSS per connection.
    Connections(ConnectionsArgs),
    /// Concurrent request/reply calls into a module: calls/s and latency.
    Calls(CallsArgs),
    /// Fan-out across 3 chorus nodes sharing one redis-server, against a single node in the same run.
    Cluster(ClusterArgs),
    /// Live commerce: N viewers of one live session, reactions as fast as the server ingests them,
    /// `reaction-stats` to every viewer.
    Reactions(ReactionsArgs),
    /// The latency workload for minutes (default 10) at half of max load; RSS and p99 over time.
    #[command(mut_arg("duration", |a| a.default_value("600")))]
    Soak(SoakArgs),
    /// Every scenario with its defaults, against every target (the full matrix).
    All(AllArgs),
    /// The raw-limit server (started by the harness itself).
    #[command(hide = true)]
    RawServer {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: SocketAddr,
        /// Share one frame per event among all subscribers and write with `writev` (`raw-writev`).
        #[arg(long)]
        writev: bool,
    },
}

/// Options every scenario takes.
#[derive(Debug, Clone, Args, Serialize)]
pub struct Common {
    /// Targets to run, in order (comma separated).
    #[arg(long, value_enum, value_delimiter = ',', default_values_t = Target::ALL.to_vec())]
    #[serde(skip)]
    pub targets: Vec<Target>,
    /// Seconds of load before measuring.
    #[arg(long, default_value_t = 5.0)]
    pub warmup: f64,
    /// Seconds measured (connections: seconds the connections are held).
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
    /// Payload size in bytes (at least 32: the stamp).
    #[arg(long, default_value_t = 64)]
    pub payload: usize,
    /// Folder for the JSON results and PNG charts.
    #[arg(long, default_value = "bench/results")]
    #[serde(skip)]
    pub out_dir: PathBuf,
    /// Do not draw charts.
    #[arg(long)]
    #[serde(skip)]
    pub no_charts: bool,
    /// Do not pin the server to CPU 0 and the generator to CPU 1.
    #[arg(long, conflicts_with = "server_cpus")]
    pub no_pin: bool,
    /// CPUs the server under test is pinned to (CPUs 0 to N-1; chorus runs `--workers N`). The generator
    /// gets the next CPU, or shares the server's when the machine has no other (the reports' `gen CPU`
    /// then says how much of them it took).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..))]
    pub server_cpus: u16,
    /// The chorus binary (build it with `cargo build --release -p chorus-broker`).
    #[arg(long, default_value = "target/release/chorus")]
    #[serde(skip)]
    pub chorus_bin: PathBuf,
    /// The nats-server binary.
    #[arg(long, default_value = "nats-server")]
    #[serde(skip)]
    pub nats_bin: PathBuf,
    /// The node binary.
    #[arg(long, default_value = "node")]
    #[serde(skip)]
    pub node_bin: PathBuf,
    /// The redis-server binary (cluster scenario).
    #[arg(long, default_value = "redis-server")]
    #[serde(skip)]
    pub redis_bin: PathBuf,
    /// The Socket.IO peer's folder (after `npm ci` in it).
    #[arg(long, default_value = "bench/peers/socketio")]
    #[serde(skip)]
    pub socketio_dir: PathBuf,
    /// HS256 secret chorus is started with (or, attached, runs with); the calls scenario mints tokens with it.
    #[arg(long, default_value = "chorus-bench-secret")]
    #[serde(skip)]
    pub jwt_secret: String,
    /// Use the chorus node already listening here (HTTP/WebSocket address) instead of starting one.
    #[arg(long)]
    #[serde(skip)]
    pub attach_http: Option<SocketAddr>,
    /// Attached node: its QUIC address.
    #[arg(long, requires = "attach_http")]
    #[serde(skip)]
    pub attach_quic: Option<SocketAddr>,
    /// Attached node: its QUIC certificate (PEM, `<data-dir>/quic-cert.pem`).
    #[arg(long, requires = "attach_quic")]
    #[serde(skip)]
    pub attach_quic_cert: Option<PathBuf>,
    /// Attached node: its process id (for CPU and RSS).
    #[arg(long, requires = "attach_http")]
    #[serde(skip)]
    pub attach_pid: Option<u32>,
}

/// `fanout` options.
#[derive(Debug, Clone, Args, Serialize)]
pub struct FanoutArgs {
    /// Subscribers.
    #[arg(long, default_value_t = 1000)]
    pub subscribers: usize,
    /// Open loop at this many publishes per second (deliveries = rate × subscribers); closed loop without.
    #[arg(long)]
    pub rate: Option<f64>,
    /// Closed loop: messages in flight at most (published but not yet received by every subscriber).
    #[arg(long, default_value_t = 1024)]
    pub inflight: u64,
    /// Shared options.
    #[command(flatten)]
    pub common: Common,
}

/// `topics` options.
#[derive(Debug, Clone, Args, Serialize)]
pub struct TopicsArgs {
    /// Subscriber connections, each on its own topic and on one hot topic.
    #[arg(long, default_value_t = 1000)]
    pub connections: usize,
    /// Hot shared topics (connection i is on hot topic i mod K).
    #[arg(long, default_value_t = 10)]
    pub hot_topics: usize,
    /// Publisher connections.
    #[arg(long, default_value_t = 10)]
    pub publishers: usize,
    /// Percent of messages published to hot topics (the rest to own topics).
    #[arg(long, default_value_t = 50)]
    pub hot_percent: u64,
    /// Open loop at this many publishes per second; closed loop without.
    #[arg(long)]
    pub rate: Option<f64>,
    /// Closed loop: messages in flight at most.
    #[arg(long, default_value_t = 1024)]
    pub inflight: u64,
    /// Shared options.
    #[command(flatten)]
    pub common: Common,
}

/// `latency` options.
#[derive(Debug, Clone, Args, Serialize)]
pub struct LatencyArgs {
    /// Subscribers.
    #[arg(long, default_value_t = 1000)]
    pub subscribers: usize,
    /// Publishes per second. The default, 1800 × 1000 subscribers = 1.8 M deliveries/s, is about half of
    /// what nats-server 2.9 delivers on one core here.
    #[arg(long, default_value_t = 1800.0)]
    pub rate: f64,
    /// Shared options.
    #[command(flatten)]
    pub common: Common,
}

/// `connections` options.
#[derive(Debug, Clone, Args, Serialize)]
pub struct ConnectionsArgs {
    /// Connections to open and hold.
    #[arg(long, default_value_t = 50_000)]
    pub connections: usize,
    /// Connection attempts started per second.
    #[arg(long, default_value_t = 5000.0)]
    pub connect_rate: f64,
    /// Handshakes in progress at most.
    #[arg(long, default_value_t = 256)]
    pub parallel: usize,
    /// Shared options.
    #[command(flatten)]
    pub common: Common,
}

/// `calls` options.
#[derive(Debug, Clone, Args, Serialize)]
pub struct CallsArgs {
    /// Concurrent callers (connections), one call in flight each.
    #[arg(long, default_value_t = 64)]
    pub callers: usize,
    /// The method called (`module.method`).
    #[arg(long, default_value = "booking.get")]
    pub method: String,
    /// Arguments (JSON). `{event}` is replaced by the id of an event created with `POST /api/events`
    /// (chorus with the booking module), or by 1 on peers.
    #[arg(long, default_value = "{\"eventId\":{event}}")]
    pub args: String,
    /// Shared options.
    #[command(flatten)]
    pub common: Common,
}

/// Where the `cluster` scenario's publishers connect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PublishFrom {
    /// Every publisher on node A: each delivery on B and C crosses Redis.
    A,
    /// `--publishers` on every node: each node both sends to and receives from the others.
    Every,
}

/// `cluster` options.
#[derive(Debug, Clone, Args, Serialize)]
pub struct ClusterArgs {
    /// Subscribers, spread evenly over the nodes (subscriber i on node i mod nodes), all on one topic.
    #[arg(long, default_value_t = 300)]
    pub subscribers: usize,
    /// chorus nodes sharing the Redis (the baseline is always one node without Redis).
    #[arg(long, default_value_t = 3)]
    pub nodes: usize,
    /// Where publishers connect: `a` (all on the first node) or `every` (--publishers on each node).
    #[arg(long, value_enum, default_value_t = PublishFrom::A)]
    pub publish_from: PublishFrom,
    /// Publishers per publishing node (the single node gets as many in all).
    #[arg(long, default_value_t = 1)]
    pub publishers: usize,
    /// Throughput phase: messages in flight at most (until every subscriber on every node has them).
    #[arg(long, default_value_t = 1024)]
    pub inflight: u64,
    /// Latency phase: publishes per second in all. Default: half the publishes per second the cluster
    /// sustained in the throughput phase of the same target, so both setups run below their limit.
    #[arg(long)]
    pub rate: Option<f64>,
    /// Use the cluster nodes already running here (HTTP/WebSocket addresses, comma separated, the first
    /// is node A) instead of starting Redis and the nodes; the single node is then --attach-http.
    #[arg(long, value_delimiter = ',', requires = "attach_http")]
    #[serde(skip)]
    pub attach_nodes: Vec<SocketAddr>,
    /// Shared options.
    #[command(flatten)]
    pub common: Common,
}

/// `reactions` options.
#[derive(Debug, Clone, Args, Serialize)]
pub struct ReactionsArgs {
    /// Viewers of the session: each joins it and receives every `new-reaction` and `reaction-stats`.
    #[arg(long, default_value_t = 1000)]
    pub viewers: usize,
    /// Connections sending reactions (pipelined; they do not join the session).
    #[arg(long, default_value_t = 8)]
    pub senders: usize,
    /// Reactions in flight at most: sent, and not yet covered by an answer of the server (to them or to a
    /// later reaction of the same sender). A server that answers in
    /// big batches (Node takes a whole read's packets before it writes an ack) answers late with a big window;
    /// with 256, chorus's core idled 10–15 % waiting for the next reactions.
    #[arg(long, default_value_t = 1024)]
    pub inflight: u64,
    /// Shared options (`--payload` does not apply: the module writes the events).
    #[command(flatten)]
    pub common: Common,
}

/// `soak` options (`--duration` defaults to 600 s here).
#[derive(Debug, Clone, Args, Serialize)]
pub struct SoakArgs {
    /// Subscribers, all on one topic (as in `latency`).
    #[arg(long, default_value_t = 1000)]
    pub subscribers: usize,
    /// Publishes per second. Default: half of what a closed-loop probe of the same fan-out sustained on
    /// the same server just before.
    #[arg(long)]
    pub rate: Option<f64>,
    /// Seconds of the closed-loop probe (without --rate).
    #[arg(long, default_value_t = 10.0)]
    pub probe: f64,
    /// Closed-loop probe: messages in flight at most.
    #[arg(long, default_value_t = 1024)]
    pub inflight: u64,
    /// Seconds between samples of the server's RSS and the interval's p99.
    #[arg(long, default_value_t = 5.0)]
    pub sample_every: f64,
    /// Shared options.
    #[command(flatten)]
    pub common: Common,
}

/// `all` options: the shared ones and the main size of each scenario.
#[derive(Debug, Clone, Args, Serialize)]
pub struct AllArgs {
    /// fanout and latency: subscribers; topics: connections; reactions: viewers.
    #[arg(long, default_value_t = 1000)]
    pub subscribers: usize,
    /// latency: publishes per second.
    #[arg(long, default_value_t = 1800.0)]
    pub latency_rate: f64,
    /// connections: connections to hold.
    #[arg(long, default_value_t = 50_000)]
    pub connections: usize,
    /// calls: concurrent callers.
    #[arg(long, default_value_t = 64)]
    pub callers: usize,
    /// Shared options.
    #[command(flatten)]
    pub common: Common,
}

impl ClusterArgs {
    /// Nodes in the cluster: the attached ones, or `--nodes`.
    pub fn node_count(&self) -> usize {
        if self.attach_nodes.is_empty() { self.nodes } else { self.attach_nodes.len() }
    }
}

impl Command {
    /// The shared options, for commands that run scenarios.
    pub fn common(&self) -> Option<&Common> {
        match self {
            Self::Fanout(a) => Some(&a.common),
            Self::Topics(a) => Some(&a.common),
            Self::Latency(a) => Some(&a.common),
            Self::Connections(a) => Some(&a.common),
            Self::Calls(a) => Some(&a.common),
            Self::Cluster(a) => Some(&a.common),
            Self::Reactions(a) => Some(&a.common),
            Self::Soak(a) => Some(&a.common),
            Self::All(a) => Some(&a.common),
            Self::RawServer { .. } => None,
        }
    }
}
