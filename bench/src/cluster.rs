//! The `cluster` scenario: fan-out across chorus nodes that share one redis-server, against a single
//! node with the same workload in the same run.
//!
//! For each chorus target, four measurements, each on fresh servers:
//!
//! 1. throughput, one node (no Redis): closed loop, at most `--inflight` messages in flight;
//! 2. throughput, the cluster: redis-server and `--nodes` nodes (`--redis-url … --store redis
//!    --node-id a|b|c…`), the same closed loop;
//! 3. latency, one node: open loop at a fixed rate (`--rate`, by default half the publishes per second
//!    the cluster sustained in 2), latency from each message's intended send time;
//! 4. latency, the cluster, at the same rate.
//!
//! Subscribers are spread evenly over the nodes (subscriber `i` on node `i mod nodes`), all on one
//! topic; publishers are on node A, or `--publishers` on every node (the single node then has them all).
//! A publish on A is sequenced by Redis (one script: counter, stream, `PUBLISH`) and reaches B's and
//! C's subscribers through Redis pub/sub, so the cluster rows pay for the Redis round trip, the channel
//! hop and every node's sequencing. Every server process is pinned to the server core (the generator
//! keeps its own): the cluster's processes share the one core the single node has to itself, so the
//! ratios are per core.

use crate::cli::{ClusterArgs, PublishFrom};
use crate::conn::Dialer;
use crate::harness::{CLOSED_LOOP_LATENCY_EVERY, close_dialer, dialer, portable, pubsub_row};
use crate::measure::{Phases, Sampler};
use crate::pubsub::{self, Load};
use crate::report::{ClusterRow, Phase, Row};
use crate::servers::{Attached, Launcher, Running, ServerKind};
use crate::target::Target;
use anyhow::{anyhow, bail};
use std::rc::Rc;
use std::time::Duration;

/// The latency phase runs, by default, at this fraction of the publishes per second the cluster
/// sustained in the throughput phase: loaded, but below the limit of both setups, so latency is the
/// servers' and not a queue growing for the whole window. Measured with this scenario (3 nodes, 300
/// subscribers, one shared core): the cluster then uses 82–92 % of the core, the single node 69–75 %.
const DEFAULT_RATE_FRACTION: f64 = 0.5;

/// The servers of one measurement: one node, or redis-server and the cluster's nodes.
struct Servers {
    redis: Option<Running>,
    /// Each node with its name (`chorus` alone; `a`, `b`, … in a cluster), node A first.
    nodes: Vec<(String, Running)>,
}

impl Servers {
    /// One chorus node without Redis (or the node of `--attach-http`).
    async fn single(launcher: &Launcher) -> anyhow::Result<Self> {
        let node = launcher.start(ServerKind::Chorus).await?;
        Ok(Self { redis: None, nodes: vec![("chorus".to_owned(), node)] })
    }

    /// redis-server and `count` nodes joined through it (or the nodes of `--attach-nodes`).
    async fn cluster(launcher: &Launcher, count: usize, attach: &[std::net::SocketAddr]) -> anyhow::Result<Self> {
        if !attach.is_empty() {
            let nodes = attach
                .iter()
                .enumerate()
                .map(|(i, &http)| {
                    let a = Attached { http, quic: None, quic_cert: None, pid: None };
                    (node_name(i), Running::attached(&a))
                })
                .collect();
            return Ok(Self { redis: None, nodes });
        }
        let redis = launcher.start_redis().await?;
        let mut nodes = Vec::with_capacity(count);
        for i in 0..count {
            // A node that fails to start drops the ones before it and Redis: each is killed on drop.
            let node = launcher.start_cluster_node(&redis, &node_name(i)).await?;
            nodes.push((node_name(i), node));
        }
        Ok(Self { redis: Some(redis), nodes })
    }

    /// Samples every process whose pid is known: the nodes, then Redis.
    fn sampler(&self) -> Sampler {
        let nodes = self.nodes.iter().filter_map(|(name, n)| {
            n.pid.map(|pid| (if name == "chorus" { name.clone() } else { format!("node-{name}") }, pid))
        });
        let redis = self.redis.iter().filter_map(|r| r.pid.map(|pid| ("redis".to_owned(), pid)));
        Sampler::processes(nodes.chain(redis))
    }

    /// The command lines that started the servers, for the report.
    fn commands(&self) -> String {
        let redis = self.redis.iter().map(|r| portable(&r.command));
        let nodes = self.nodes.iter().map(|(_, n)| portable(&n.command));
        redis.chain(nodes).collect::<Vec<_>>().join(" ; ")
    }

    /// The first server that has exited, with the end of its log.
    fn exited(&mut self) -> Option<String> {
        let redis = self.redis.iter_mut().map(|r| ("redis-server".to_owned(), r));
        let nodes = self.nodes.iter_mut().map(|(name, n)| (format!("node {name}"), n));
        redis.chain(nodes).find_map(|(name, s)| (!s.alive()).then(|| format!("{name} exited: {}", s.log_tail())))
    }

    /// Stops the nodes, then Redis (the nodes leave the cluster while it still answers).
    async fn stop(self) {
        for (_, node) in self.nodes {
            node.stop().await;
        }
        if let Some(redis) = self.redis {
            redis.stop().await;
        }
    }
}

/// Node `i`'s id: `a`, `b`, … `z`, then `n26`, …
fn node_name(i: usize) -> String {
    match u8::try_from(i) {
        Ok(i) if i < 26 => char::from(b'a' + i).to_string(),
        _ => format!("n{i}"),
    }
}

/// The node (in a cluster of `nodes`) of each publisher connection.
fn publisher_nodes(a: &ClusterArgs, nodes: usize) -> Vec<usize> {
    let per_node = a.publishers.max(1);
    match a.publish_from {
        PublishFrom::A => vec![0; per_node],
        PublishFrom::Every => (0..nodes).flat_map(|n| std::iter::repeat_n(n, per_node)).collect(),
    }
}

/// The four rows of one target: throughput and latency, single node and cluster.
pub async fn run_target(a: &ClusterArgs, target: Target, launcher: &Launcher) -> Vec<Row> {
    let nodes = a.node_count();
    let mut rows = Vec::with_capacity(4);
    for cluster in [false, true] {
        rows.push(run_one(a, target, launcher, Phase::Throughput, cluster, None).await);
    }
    let rate = a.rate.map(Ok).unwrap_or_else(|| {
        let cluster = rows.last().filter(|r| r.status.starts_with("ok")).and_then(|r| r.throughput.as_ref());
        cluster
            .map(|t| (t.published_per_sec * DEFAULT_RATE_FRACTION).floor().max(1.0))
            .ok_or_else(|| anyhow!("no --rate, and the cluster's throughput phase measured nothing to derive one from"))
    });
    for cluster in [false, true] {
        rows.push(match &rate {
            Ok(rate) => run_one(a, target, launcher, Phase::Latency, cluster, Some(*rate)).await,
            Err(e) => failed(a, target, Phase::Latency, if cluster { nodes } else { 1 }, None, e),
        });
    }
    rows
}

/// A row's name: the target and the setup.
fn row_name(target: Target, nodes: usize) -> String {
    format!("{} {}", target.name(), if nodes == 1 { "single" } else { "cluster" })
}

/// The `cluster` part of a row.
fn cluster_row(a: &ClusterArgs, target: Target, phase: Phase, nodes: usize, rate: Option<f64>) -> ClusterRow {
    let names = publisher_nodes(a, a.node_count())
        .into_iter()
        .map(|n| if nodes == 1 { "chorus".to_owned() } else { node_name(n) })
        .collect();
    ClusterRow { target: target.name().to_owned(), phase, nodes, publisher_nodes: names, rate, vs_single: None }
}

fn failed(a: &ClusterArgs, target: Target, phase: Phase, nodes: usize, rate: Option<f64>, why: &anyhow::Error) -> Row {
    let mut row = Row::failed(&row_name(target, nodes), why);
    row.cluster = Some(cluster_row(a, target, phase, nodes, rate));
    row
}

/// Starts the servers of one measurement, measures, stops them.
async fn run_one(
    a: &ClusterArgs,
    target: Target,
    launcher: &Launcher,
    phase: Phase,
    cluster: bool,
    rate: Option<f64>,
) -> Row {
    let nodes = if cluster { a.node_count() } else { 1 };
    let name = row_name(target, nodes);
    eprintln!("  {name}, {}", phase.name());
    let started = if cluster {
        Servers::cluster(launcher, nodes, &a.attach_nodes).await
    } else {
        Servers::single(launcher).await
    };
    let mut servers = match started {
        Ok(servers) => servers,
        Err(e) => return failed(a, target, phase, nodes, rate, &e),
    };
    let result = measure(a, target, &servers, phase, rate, &name).await;
    let exited = servers.exited();
    let command = servers.commands();
    servers.stop().await;
    let mut row = match (result, exited) {
        (Ok(mut row), None) => {
            row.server_command = Some(command);
            row
        }
        (Ok(mut row), Some(exited)) => {
            row.status = format!("server exited during the run: {exited}");
            row
        }
        (Err(e), Some(exited)) => Row::failed(&name, &e.context(exited)),
        (Err(e), None) => Row::failed(&name, &e),
    };
    if row.status != "ok" {
        eprintln!("  {name}: {}", row.status);
    }
    row.cluster = Some(cluster_row(a, target, phase, nodes, rate));
    row
}

async fn measure(
    a: &ClusterArgs,
    target: Target,
    servers: &Servers,
    phase: Phase,
    rate: Option<f64>,
    name: &str,
) -> anyhow::Result<Row> {
    let common = &a.common;
    let dialers = servers
        .nodes
        .iter()
        .map(|(_, node)| dialer(target, node, common.payload))
        .collect::<anyhow::Result<Vec<Dialer>>>()?;
    let single = dialers.len() == 1;
    let plan = pubsub::Plan {
        topics: vec![format!("cluster-{}", phase.name())],
        subscriptions: vec![vec![0]; a.subscribers],
        publishers: publisher_nodes(a, a.node_count()).into_iter().map(|n| if single { 0 } else { n }).collect(),
        route: Rc::new(|_| 0),
        load: match (phase, rate) {
            (Phase::Throughput, _) => Load::Closed { inflight: a.inflight },
            (Phase::Latency, Some(rate)) => Load::Open { rate },
            (Phase::Latency, None) => bail!("the latency phase needs a rate"),
        },
        latency_every: if phase == Phase::Throughput { CLOSED_LOOP_LATENCY_EVERY } else { 1 },
        series: None,
    };
    let phases = Phases::new(name, Duration::from_secs_f64(common.warmup), Duration::from_secs_f64(common.duration));
    let outcome = pubsub::run(&plan, &dialers, &phases, &servers.sampler()).await;
    dialers.iter().for_each(close_dialer);
    Ok(pubsub_row(name, outcome?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nodes_are_lettered() {
        assert_eq!(node_name(0), "a");
        assert_eq!(node_name(2), "c");
        assert_eq!(node_name(26), "n26");
    }
}
