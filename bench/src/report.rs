//! Results: one [`Row`] per target (per setup and phase in `cluster`), the [`Report`] of a scenario
//! (written as JSON), the table printed on stdout, and the ratios against the chorus row (in `cluster`:
//! against the single node).

use crate::measure::{GENERATOR_SATURATED, ProcessSample, Sample};
use hdrhistogram::Histogram;
use serde::Serialize;
use std::fmt::Write as _;
use std::path::Path;

/// Quantiles kept for the latency CDF (percent): every percent, then the tail.
const CDF_TAIL: [f64; 6] = [99.5, 99.9, 99.95, 99.99, 99.999, 100.0];

/// The scenarios.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Scenario {
    /// 1 publisher → N subscribers.
    Fanout,
    /// N own topics plus K hot topics.
    Topics,
    /// Fixed-rate latency.
    Latency,
    /// Connection storm and idle memory.
    Connections,
    /// Request/reply calls.
    Calls,
    /// Fan-out across cluster nodes sharing one Redis, against a single node.
    Cluster,
    /// Live-commerce reactions with their stats fanned out to every viewer.
    Reactions,
    /// The latency workload held for minutes at half of max load: RSS and p99 over time.
    Soak,
}

impl Scenario {
    /// Its name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Fanout => "fanout",
            Self::Topics => "topics",
            Self::Latency => "latency",
            Self::Connections => "connections",
            Self::Calls => "calls",
            Self::Cluster => "cluster",
            Self::Reactions => "reactions",
            Self::Soak => "soak",
        }
    }

    /// The headline metric, its label and unit, and whether higher is better (`cluster`: of its
    /// throughput rows; its latency rows are compared on p99).
    pub fn primary(self) -> (&'static str, bool) {
        match self {
            Self::Fanout | Self::Topics | Self::Cluster => ("deliveries/s", true),
            Self::Latency | Self::Soak => ("p99 latency (µs)", false),
            Self::Connections => ("broker RSS per connection (bytes)", false),
            Self::Calls => ("calls/s", true),
            Self::Reactions => ("reactions/s ingested", true),
        }
    }
}

/// Latency summary.
#[derive(Debug, Clone, Serialize)]
pub struct Latency {
    /// Values recorded.
    pub samples: u64,
    /// Mean, µs.
    pub mean_us: f64,
    /// Median, µs.
    pub p50_us: u64,
    /// 90th percentile, µs.
    pub p90_us: u64,
    /// 99th percentile, µs.
    pub p99_us: u64,
    /// 99.9th percentile, µs.
    pub p999_us: u64,
    /// Maximum, µs.
    pub max_us: u64,
    /// `[latency µs, percent of samples at or below]` points for the CDF chart.
    pub cdf: Vec<[f64; 2]>,
}

impl Latency {
    /// The summary of `h`, or `None` when it is empty.
    pub fn of(h: &Histogram<u64>) -> Option<Self> {
        if h.is_empty() {
            return None;
        }
        let mut cdf: Vec<[f64; 2]> =
            (0..=99).map(|p| [h.value_at_percentile(f64::from(p)) as f64, f64::from(p)]).collect();
        cdf.extend(CDF_TAIL.iter().map(|&p| [h.value_at_percentile(p) as f64, p]));
        Some(Self {
            samples: h.len(),
            mean_us: h.mean(),
            p50_us: h.value_at_percentile(50.0),
            p90_us: h.value_at_percentile(90.0),
            p99_us: h.value_at_percentile(99.0),
            p999_us: h.value_at_percentile(99.9),
            max_us: h.max(),
            cdf,
        })
    }
}

/// Pub/sub throughput.
#[derive(Debug, Clone, Serialize)]
pub struct Throughput {
    /// Deliveries in the window.
    pub delivered: u64,
    /// Deliveries per second.
    pub delivered_per_sec: f64,
    /// Bytes read by subscribers from their sockets (frames with headers), MB/s.
    pub wire_mb_per_sec: f64,
    /// Payload bytes delivered, MB/s.
    pub payload_mb_per_sec: f64,
    /// Messages published in the window.
    pub published: u64,
    /// Publishes per second.
    pub published_per_sec: f64,
    /// Deliveries / deliveries the window's publishes called for (≈1 when the target keeps up; the
    /// window's edges make it approximate).
    pub delivery_ratio: Option<f64>,
    /// Closed loop: deliveries of a message every subscriber already had (duplicates; should be 0).
    pub surplus: u64,
    /// Deliveries not in publish order at their subscriber (duplicates or reorderings; should be 0).
    /// Checked only with one publisher and one topic per subscriber.
    pub out_of_order: Option<u64>,
}

/// What a `cluster` row measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Closed loop, bounded in flight: deliveries/s.
    Throughput,
    /// Open loop at a fixed rate: publish→deliver latency.
    Latency,
}

impl Phase {
    /// Its name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Throughput => "throughput",
            Self::Latency => "latency",
        }
    }
}

/// A `cluster` row's setup, and how it compares with the single node.
#[derive(Debug, Clone, Serialize)]
pub struct ClusterRow {
    /// The transport and codec (`chorus-msgpack`, …): rows of one target are compared.
    pub target: String,
    /// Throughput or latency.
    pub phase: Phase,
    /// chorus nodes serving the row: 1 for the single-node baseline (no Redis).
    pub nodes: usize,
    /// The node (`a`, `b`, …) of each publisher connection.
    pub publisher_nodes: Vec<String>,
    /// Latency phase: publishes per second offered.
    pub rate: Option<f64>,
    /// Cluster rows: this row's numbers ÷ the single node's, same target and phase.
    pub vs_single: Option<VsSingle>,
}

/// Ratios of a cluster row to its single-node row.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct VsSingle {
    /// Deliveries per second (throughput phase: the headline).
    pub delivered_per_sec: Option<f64>,
    /// Median latency (latency phase).
    pub p50: Option<f64>,
    /// 99th percentile latency (latency phase: the headline).
    pub p99: Option<f64>,
}

/// Connection storm results.
#[derive(Debug, Clone, Serialize)]
pub struct Connections {
    /// Connections asked for.
    pub requested: u64,
    /// Connections established.
    pub established: u64,
    /// Attempts that failed.
    pub failed: u64,
    /// Established connections per second of storm.
    pub connect_per_sec: f64,
    /// Held connections the server closed during the hold.
    pub dropped_during_hold: u64,
    /// Server RSS before the storm.
    pub rss_before_bytes: Option<u64>,
    /// Server RSS at the end of the hold.
    pub rss_held_bytes: Option<u64>,
    /// (held − before) / established.
    pub rss_per_connection_bytes: Option<f64>,
    /// Server CPU during the storm, cores.
    pub storm_server_cpu: Option<f64>,
    /// Generator CPU during the storm, cores.
    pub storm_generator_cpu: f64,
}

/// Call results.
#[derive(Debug, Clone, Serialize)]
pub struct Calls {
    /// Successful calls in the window.
    pub ops: u64,
    /// Successful calls per second.
    pub ops_per_sec: f64,
    /// Calls answered with an error.
    pub errors: u64,
}

/// `reactions` results.
#[derive(Debug, Clone, Serialize)]
pub struct Reactions {
    /// Viewers joined to the session.
    pub viewers: u64,
    /// Sender connections.
    pub senders: u64,
    /// Reactions the server counted in the window: the rise of the `total` its `reaction-stats` reported.
    pub ingested: u64,
    /// Ingested reactions per second (the headline).
    pub ingested_per_sec: f64,
    /// Reactions sent in the window.
    pub sent: u64,
    /// Sent per second.
    pub sent_per_sec: f64,
    /// `reaction-stats` delivered to viewers.
    pub stats_delivered: u64,
    /// `reaction-stats` deliveries per second, all viewers together.
    pub stats_per_sec: f64,
    /// `new-reaction` deliveries per second, all viewers together.
    pub new_reaction_per_sec: f64,
    /// Bytes viewers read from their sockets, MB/s.
    pub wire_mb_per_sec: f64,
    /// Viewers that got no `reaction-stats` in the window (should be 0).
    pub viewers_without_stats: u64,
    /// Fewest `reaction-stats` one viewer got in the window.
    pub min_stats_per_viewer: u64,
    /// Longest time one viewer went without `reaction-stats` in the window, ms.
    pub max_stats_gap_ms: f64,
    /// Every viewer received stats, none went longer than the gap limit without.
    pub every_viewer_fed: bool,
}

/// One interval of a `soak` run.
#[derive(Debug, Clone, Serialize)]
pub struct SeriesPoint {
    /// End of the interval, seconds into the measured window.
    pub at_secs: f64,
    /// Server resident memory at that moment.
    pub rss_bytes: Option<u64>,
    /// Deliveries per second over the interval.
    pub delivered_per_sec: f64,
    /// Median latency of the interval's deliveries, µs (none without deliveries).
    pub p50_us: Option<u64>,
    /// 99th percentile latency of the interval's deliveries, µs.
    pub p99_us: Option<u64>,
    /// Largest latency of the interval's deliveries, µs.
    pub max_us: Option<u64>,
}

/// `soak` results: the load, and the server's memory and latency over time.
#[derive(Debug, Clone, Serialize)]
pub struct Soak {
    /// Publishes per second offered (open loop).
    pub rate: f64,
    /// Without `--rate`: the publishes per second the closed-loop probe sustained (the rate is a
    /// fraction of it).
    pub probe_published_per_sec: Option<f64>,
    /// Seconds between samples.
    pub sample_every_secs: f64,
    /// Seconds at each end of the run that `rss_first_bytes` and `rss_last_bytes` average over.
    pub edge_secs: f64,
    /// Mean RSS of the samples in the first `edge_secs`.
    pub rss_first_bytes: Option<u64>,
    /// Mean RSS of the samples in the last `edge_secs`.
    pub rss_last_bytes: Option<u64>,
    /// Largest RSS sampled.
    pub rss_max_bytes: Option<u64>,
    /// `rss_last_bytes / rss_first_bytes − 1` (0.05 = grew by 5 %).
    pub rss_growth: Option<f64>,
    /// Largest interval p99, µs.
    pub p99_max_us: Option<u64>,
    /// Machine load average (1, 5, 15 minutes) when the run started and when it ended: the machine may
    /// be shared.
    pub load_average_start: Option<[f64; 3]>,
    /// See `load_average_start`.
    pub load_average_end: Option<[f64; 3]>,
    /// One point per interval.
    pub series: Vec<SeriesPoint>,
}

/// The load average from `/proc/loadavg` (1, 5, 15 minutes).
pub fn load_average() -> Option<[f64; 3]> {
    let text = std::fs::read_to_string("/proc/loadavg").ok()?;
    let mut fields = text.split_ascii_whitespace().map(|f| f.parse::<f64>().ok());
    Some([fields.next()??, fields.next()??, fields.next()??])
}

/// One target's results.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// Target name.
    pub target: String,
    /// `ok`, or why the numbers are missing or suspect.
    pub status: String,
    /// How the server was started.
    pub server_command: Option<String>,
    /// Length of the measured window, seconds.
    pub seconds: f64,
    /// Pub/sub scenarios.
    pub throughput: Option<Throughput>,
    /// Calls scenario.
    pub calls: Option<Calls>,
    /// Connections scenario.
    pub connections: Option<Connections>,
    /// Reactions scenario.
    pub reactions: Option<Reactions>,
    /// Soak scenario.
    pub soak: Option<Soak>,
    /// Publish→deliver (pub/sub), call (calls) or handshake (connections) latency.
    pub latency: Option<Latency>,
    /// Server CPU over the window, in cores (1.0 = the whole pinned core).
    pub server_cpu: Option<f64>,
    /// Generator CPU over the window, in cores.
    pub generator_cpu: Option<f64>,
    /// The generator was the bottleneck: the numbers are the generator's, not the server's.
    pub generator_saturated: bool,
    /// Server resident memory at the end of the window.
    pub server_rss_bytes: Option<u64>,
    /// Each server process's CPU and memory (`server_cpu` and `server_rss_bytes` are their sums).
    pub processes: Vec<ProcessSample>,
    /// `cluster` scenario: setup, phase and ratios to the single node.
    pub cluster: Option<ClusterRow>,
    /// Error frames seen.
    pub errors: u64,
    /// The first of them.
    pub first_error: Option<String>,
    /// Connections that ended during the run.
    pub disconnects: u64,
    /// Why the first one ended.
    pub first_disconnect: Option<String>,
    /// Headline metric relative to the chorus row (see [`Scenario::primary`]).
    pub ratio_vs_chorus: Option<f64>,
    /// A caveat about this row.
    pub note: Option<String>,
}

impl Row {
    /// A row for `target` with nothing measured yet.
    pub fn new(target: &str) -> Self {
        Self {
            target: target.to_owned(),
            status: "ok".to_owned(),
            server_command: None,
            seconds: 0.0,
            throughput: None,
            calls: None,
            connections: None,
            reactions: None,
            soak: None,
            latency: None,
            server_cpu: None,
            generator_cpu: None,
            generator_saturated: false,
            server_rss_bytes: None,
            processes: Vec::new(),
            cluster: None,
            errors: 0,
            first_error: None,
            disconnects: 0,
            first_disconnect: None,
            ratio_vs_chorus: None,
            note: None,
        }
    }

    /// A row for a target that could not be measured.
    pub fn failed(target: &str, why: &anyhow::Error) -> Self {
        Self { status: format!("failed: {why:#}"), ..Self::new(target) }
    }

    /// Fills the CPU/RSS fields from a sample.
    pub fn set_sample(&mut self, s: &Sample) {
        self.seconds = s.seconds;
        self.server_cpu = s.server_cpu;
        self.generator_cpu = Some(s.generator_cpu);
        self.generator_saturated = s.generator_cpu >= GENERATOR_SATURATED;
        self.server_rss_bytes = s.server_rss;
        self.processes = s.processes.clone();
    }

    /// The error frames and ended connections of the run, each with the first one's text.
    pub fn set_faults(
        &mut self,
        errors: u64,
        first_error: Option<String>,
        disconnects: u64,
        first_disconnect: Option<String>,
    ) {
        self.errors = errors;
        self.first_error = first_error;
        self.disconnects = disconnects;
        self.first_disconnect = first_disconnect;
    }

    /// The phase of a `cluster` row.
    pub fn phase(&self) -> Option<Phase> {
        self.cluster.as_ref().map(|c| c.phase)
    }

    /// The row's name in notes: `cluster` rows add their phase (each setup has a row per phase).
    pub fn label(&self) -> String {
        match self.phase() {
            Some(phase) => format!("{} ({})", self.target, phase.name()),
            None => self.target.clone(),
        }
    }

    /// The scenario's headline metric.
    pub fn primary(&self, scenario: Scenario) -> Option<f64> {
        if !self.status.starts_with("ok") {
            return None;
        }
        match scenario {
            Scenario::Fanout | Scenario::Topics => self.throughput.as_ref().map(|t| t.delivered_per_sec),
            Scenario::Latency | Scenario::Soak => self.latency.as_ref().map(|l| l.p99_us as f64),
            Scenario::Connections => self.connections.as_ref().and_then(|c| c.rss_per_connection_bytes),
            Scenario::Calls => self.calls.as_ref().map(|c| c.ops_per_sec),
            Scenario::Reactions => self.reactions.as_ref().map(|r| r.ingested_per_sec),
            Scenario::Cluster => match self.phase()? {
                Phase::Throughput => self.throughput.as_ref().map(|t| t.delivered_per_sec),
                Phase::Latency => self.latency.as_ref().map(|l| l.p99_us as f64),
            },
        }
    }
}

/// The machine a report was measured on.
#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    /// `/proc/cpuinfo` model name.
    pub cpu_model: String,
    /// Online CPUs.
    pub cores: usize,
    /// Kernel release.
    pub kernel: String,
    /// Whether server and generator were pinned to separate cores.
    pub pinned: bool,
}

impl Machine {
    /// This machine.
    pub fn detect(pinned: bool) -> Self {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu_model = cpuinfo
            .lines()
            .find_map(|l| {
                l.strip_prefix("model name").and_then(|r| r.split_once(':')).map(|(_, m)| m.trim().to_owned())
            })
            .unwrap_or_else(|| "unknown".to_owned());
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default().trim().to_owned();
        Self { cpu_model, cores: crate::affinity::online_cpus(), kernel, pinned }
    }
}

/// A scenario's results over all targets.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Scenario.
    pub scenario: Scenario,
    /// The harness command line.
    pub command: String,
    /// `git rev-parse --short HEAD` (with `+dirty` when the tree has changes).
    pub commit: String,
    /// Unix time the scenario started.
    pub started_unix: u64,
    /// Machine.
    pub machine: Machine,
    /// Scenario parameters.
    pub params: serde_json::Value,
    /// Caveats that apply to every row.
    pub notes: Vec<String>,
    /// One row per target.
    pub rows: Vec<Row>,
}

impl Report {
    /// Sets each row's ratio to the chorus WS-MessagePack row (or the first chorus row measured);
    /// `cluster`: each cluster row's ratios to the single-node row of its target and phase.
    pub fn compute_ratios(&mut self) {
        if self.scenario == Scenario::Cluster {
            self.compute_cluster_ratios();
            return;
        }
        let base = ["chorus-msgpack", "chorus-json", "chorus-quic"]
            .iter()
            .find_map(|name| self.rows.iter().find(|r| r.target == *name).and_then(|r| r.primary(self.scenario)));
        for row in &mut self.rows {
            row.ratio_vs_chorus = match (row.primary(self.scenario), base) {
                (Some(v), Some(b)) if b > 0.0 => Some(v / b),
                _ => None,
            };
        }
    }

    fn compute_cluster_ratios(&mut self) {
        let ratio = |a: Option<f64>, b: Option<f64>| match (a, b) {
            (Some(a), Some(b)) if b > 0.0 => Some(a / b),
            _ => None,
        };
        let rate = |r: &Row| r.throughput.as_ref().map(|t| t.delivered_per_sec);
        let p50 = |r: &Row| r.latency.as_ref().map(|l| l.p50_us as f64);
        let p99 = |r: &Row| r.latency.as_ref().map(|l| l.p99_us as f64);
        let usable = |r: &Row| r.status.starts_with("ok");
        let ratios: Vec<Option<VsSingle>> = self
            .rows
            .iter()
            .map(|row| {
                let c = row.cluster.as_ref().filter(|c| c.nodes > 1 && usable(row))?;
                let single = self.rows.iter().find(|r| {
                    usable(r)
                        && r.cluster
                            .as_ref()
                            .is_some_and(|s| s.nodes == 1 && s.target == c.target && s.phase == c.phase)
                })?;
                Some(VsSingle {
                    delivered_per_sec: ratio(rate(row), rate(single)),
                    p50: (c.phase == Phase::Latency).then(|| ratio(p50(row), p50(single))).flatten(),
                    p99: (c.phase == Phase::Latency).then(|| ratio(p99(row), p99(single))).flatten(),
                })
            })
            .collect();
        for (row, vs) in self.rows.iter_mut().zip(ratios) {
            if let Some(c) = row.cluster.as_mut() {
                c.vs_single = vs;
            }
        }
    }

    /// Writes the report as pretty JSON.
    pub fn write_json(&self, path: &Path) -> anyhow::Result<()> {
        std::fs::write(path, serde_json::to_string_pretty(self)? + "\n")?;
        Ok(())
    }

    /// The results table.
    pub fn table(&self) -> String {
        let (metric, _) = self.scenario.primary();
        let lat = |l: &Option<Latency>| -> Vec<String> {
            match l {
                Some(l) => {
                    [l.p50_us, l.p90_us, l.p99_us, l.p999_us, l.max_us].iter().map(|&v| micros(v as f64)).collect()
                }
                None => vec!["-".into(); 5],
            }
        };
        let pubsub = |r: &Row| -> Vec<String> {
            let mut line = vec![r.target.clone()];
            match &r.throughput {
                Some(t) => line.extend([si(t.delivered_per_sec), format!("{:.1}", t.wire_mb_per_sec)]),
                None => line.extend(["-".into(), "-".into()]),
            }
            line.extend(lat(&r.latency));
            line.extend(common_columns(r));
            line
        };
        const PUBSUB: [&str; 12] =
            ["target", "msg/s", "MB/s", "p50", "p90", "p99", "p99.9", "max", "srv CPU", "gen CPU", "RSS", "vs chorus"];
        let mut out = String::new();
        match self.scenario {
            Scenario::Fanout | Scenario::Topics | Scenario::Latency => {
                out.push_str(&grid(&PUBSUB, self.rows.iter().map(pubsub).collect()));
            }
            Scenario::Soak => {
                out.push_str(&grid(&PUBSUB, self.rows.iter().map(pubsub).collect()));
                for r in &self.rows {
                    if let Some(s) = &r.soak {
                        let _ = writeln!(out, "  {}: {}", r.target, soak_summary(s));
                    }
                }
            }
            Scenario::Cluster => {
                for phase in [Phase::Throughput, Phase::Latency] {
                    let rows: Vec<&Row> = self.rows.iter().filter(|r| r.phase() == Some(phase)).collect();
                    if rows.is_empty() {
                        continue;
                    }
                    let mut header = PUBSUB.to_vec();
                    header.pop();
                    let lines = rows
                        .iter()
                        .map(|r| {
                            let mut line = pubsub(r);
                            line.pop();
                            let vs = r.cluster.as_ref().and_then(|c| c.vs_single);
                            let x = |v: Option<f64>| v.map_or("-".into(), ratio);
                            match phase {
                                Phase::Throughput => line.push(x(vs.and_then(|v| v.delivered_per_sec))),
                                Phase::Latency => {
                                    line.extend([x(vs.and_then(|v| v.p50)), x(vs.and_then(|v| v.p99))]);
                                }
                            }
                            line
                        })
                        .collect();
                    let title = match phase {
                        Phase::Throughput => {
                            header.push("vs single");
                            "throughput (closed loop)".to_owned()
                        }
                        Phase::Latency => {
                            header.extend(["p50 vs single", "p99 vs single"]);
                            let rate = rows.iter().find_map(|r| r.cluster.as_ref().and_then(|c| c.rate));
                            match rate {
                                Some(rate) => format!("latency (open loop, {} publishes/s)", si(rate)),
                                None => "latency (open loop)".to_owned(),
                            }
                        }
                    };
                    let _ = writeln!(out, "{title}");
                    out.push_str(&grid(&header, lines));
                }
            }
            Scenario::Calls => {
                let header = [
                    "target",
                    "calls/s",
                    "p50",
                    "p90",
                    "p99",
                    "p99.9",
                    "max",
                    "srv CPU",
                    "gen CPU",
                    "RSS",
                    "vs chorus",
                ];
                let lines = self
                    .rows
                    .iter()
                    .map(|r| {
                        let mut line = vec![r.target.clone()];
                        line.push(r.calls.as_ref().map_or("-".into(), |c| si(c.ops_per_sec)));
                        line.extend(lat(&r.latency));
                        line.extend(common_columns(r));
                        line
                    })
                    .collect();
                out.push_str(&grid(&header, lines));
            }
            Scenario::Reactions => {
                let header = [
                    "target",
                    "react/s",
                    "sent/s",
                    "stats/s",
                    "new-reaction/s",
                    "MB/s",
                    "p50",
                    "p99",
                    "max gap",
                    "starved",
                    "srv CPU",
                    "gen CPU",
                    "RSS",
                    "vs chorus",
                ];
                let lines = self
                    .rows
                    .iter()
                    .map(|r| {
                        let mut line = vec![r.target.clone()];
                        match &r.reactions {
                            Some(x) => line.extend([
                                si(x.ingested_per_sec),
                                si(x.sent_per_sec),
                                si(x.stats_per_sec),
                                si(x.new_reaction_per_sec),
                                format!("{:.1}", x.wire_mb_per_sec),
                            ]),
                            None => line.extend(vec!["-".into(); 5]),
                        }
                        match &r.latency {
                            Some(l) => line.extend([micros(l.p50_us as f64), micros(l.p99_us as f64)]),
                            None => line.extend(["-".into(), "-".into()]),
                        }
                        match &r.reactions {
                            Some(x) => line.extend([
                                micros(x.max_stats_gap_ms * 1e3),
                                format!("{}/{}", x.viewers_without_stats, x.viewers),
                            ]),
                            None => line.extend(["-".into(), "-".into()]),
                        }
                        line.extend(common_columns(r));
                        line
                    })
                    .collect();
                out.push_str(&grid(&header, lines));
            }
            Scenario::Connections => {
                let header = [
                    "target",
                    "held",
                    "failed",
                    "conn/s",
                    "p50",
                    "p99",
                    "RSS/conn",
                    "RSS",
                    "srv CPU",
                    "gen CPU",
                    "vs chorus",
                ];
                let lines = self
                    .rows
                    .iter()
                    .map(|r| {
                        let mut line = vec![r.target.clone()];
                        match &r.connections {
                            Some(c) => line.extend([
                                (c.established - c.dropped_during_hold).to_string(),
                                c.failed.to_string(),
                                si(c.connect_per_sec),
                                r.latency.as_ref().map_or("-".into(), |l| micros(l.p50_us as f64)),
                                r.latency.as_ref().map_or("-".into(), |l| micros(l.p99_us as f64)),
                                c.rss_per_connection_bytes.map_or("-".into(), bytes),
                                c.rss_held_bytes.map_or("-".into(), |b| bytes(b as f64)),
                                c.storm_server_cpu.map_or("-".into(), |c| format!("{:.0}%", c * 100.0)),
                                gen_cpu(c.storm_generator_cpu),
                            ]),
                            None => line.extend(vec!["-".into(); 9]),
                        }
                        line.push(r.ratio_vs_chorus.map_or("-".into(), |x| format!("{x:.2}x")));
                        line
                    })
                    .collect();
                out.push_str(&grid(&header, lines));
            }
        }
        for r in &self.rows {
            let name = r.label();
            if r.status != "ok" {
                let _ = writeln!(out, "  {name}: {}", r.status);
            }
            if let Some(note) = &r.note {
                let _ = writeln!(out, "  {name}: {note}");
            }
            if r.generator_saturated {
                let _ = writeln!(
                    out,
                    "  {name}: the generator saturated its core (gen CPU marked !): this number is the generator's limit, not the server's",
                );
            }
            if let Some(e) = &r.first_error {
                let _ = writeln!(out, "  {name}: {} error frame(s), first: {e}", r.errors);
            }
            if let Some(d) = &r.first_disconnect {
                let _ = writeln!(out, "  {name}: {} connection(s) ended during the run, first: {d}", r.disconnects);
            }
            if let Some(t) = &r.throughput {
                if t.surplus > 0 {
                    let _ = writeln!(out, "  {name}: {} duplicate deliveries (message already complete)", t.surplus);
                }
                if let Some(n) = t.out_of_order.filter(|&n| n > 0) {
                    let _ = writeln!(out, "  {name}: {n} deliveries out of publish order at their subscriber");
                }
            }
            if r.processes.len() > 1 {
                let each: Vec<String> =
                    r.processes.iter().map(|p| format!("{} {:.0}%", p.name, p.cpu * 100.0)).collect();
                let _ = writeln!(out, "  {name}: server CPU by process: {}", each.join(", "));
            }
        }
        if self.scenario == Scenario::Cluster {
            let _ = writeln!(
                out,
                "  vs single: the cluster row ÷ the single-node row of the same target (msg/s; latency: p50, p99)"
            );
        } else {
            let _ = writeln!(out, "  vs chorus: {metric} relative to the chorus WS-MessagePack row");
        }
        for note in &self.notes {
            let _ = writeln!(out, "  note: {note}");
        }
        out
    }
}

/// A soak row in one line: its load, RSS at both ends and at most, p99 at most.
fn soak_summary(s: &Soak) -> String {
    let size = |b: Option<u64>| b.map_or("-".into(), |b| bytes(b as f64));
    let load = match s.probe_published_per_sec {
        Some(max) => format!("{} publishes/s (half of the probe's {})", si(s.rate), si(max)),
        None => format!("{} publishes/s (given)", si(s.rate)),
    };
    let growth = s.rss_growth.map_or("-".into(), |g| format!("{:+.1}%", g * 100.0));
    format!(
        "{load}; RSS first {:.0} s {}, last {:.0} s {} ({growth}), max {}; interval p99 max {}; {} samples every {} s",
        s.edge_secs,
        size(s.rss_first_bytes),
        s.edge_secs,
        size(s.rss_last_bytes),
        size(s.rss_max_bytes),
        s.p99_max_us.map_or("-".into(), |v| micros(v as f64)),
        s.series.len(),
        s.sample_every_secs,
    )
}

/// Lays out a table: the first column left-aligned, the others right-aligned, each as wide as its
/// widest cell.
fn grid(header: &[&str], lines: Vec<Vec<String>>) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for line in &lines {
        for (w, cell) in widths.iter_mut().zip(line) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let render = |cells: Vec<String>, out: &mut String| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .enumerate()
            .map(|(i, (c, w))| if i == 0 { format!("{c:<w$}") } else { format!("{c:>w$}") })
            .collect();
        let _ = writeln!(out, "{}", padded.join("  ").trim_end());
    };
    render(header.iter().map(|h| h.to_string()).collect(), &mut out);
    for line in lines {
        render(line, &mut out);
    }
    out
}

/// A ratio with two decimals, three below 0.1 (a cluster at 3.5 % of the single node is not "0.03x").
fn ratio(x: f64) -> String {
    if x < 0.1 { format!("{x:.3}x") } else { format!("{x:.2}x") }
}

fn gen_cpu(cores: f64) -> String {
    let mark = if cores >= GENERATOR_SATURATED { "!" } else { "" };
    format!("{:.0}%{mark}", cores * 100.0)
}

fn common_columns(r: &Row) -> Vec<String> {
    vec![
        r.server_cpu.map_or("-".into(), |c| format!("{:.0}%", c * 100.0)),
        r.generator_cpu.map_or("-".into(), gen_cpu),
        r.server_rss_bytes.map_or("-".into(), |b| bytes(b as f64)),
        r.ratio_vs_chorus.map_or("-".into(), |x| format!("{x:.2}x")),
    ]
}

/// A count with an SI suffix: `1.23M`.
pub fn si(v: f64) -> String {
    let (div, suffix) = match v.abs() {
        x if x >= 1e9 => (1e9, "G"),
        x if x >= 1e6 => (1e6, "M"),
        x if x >= 1e3 => (1e3, "k"),
        _ => (1.0, ""),
    };
    let scaled = v / div;
    if suffix.is_empty() {
        format!("{scaled:.0}")
    } else if scaled >= 100.0 {
        format!("{scaled:.0}{suffix}")
    } else {
        format!("{scaled:.2}{suffix}")
    }
}

/// A duration in microseconds, in the unit that reads best.
pub fn micros(us: f64) -> String {
    match us {
        x if x >= 1e6 => format!("{:.2}s", x / 1e6),
        x if x >= 1e3 => format!("{:.2}ms", x / 1e3),
        x => format!("{x:.0}µs"),
    }
}

/// A size in bytes, binary units.
pub fn bytes(b: f64) -> String {
    match b {
        x if x >= (1u64 << 30) as f64 => format!("{:.2}GiB", x / (1u64 << 30) as f64),
        x if x >= (1u64 << 20) as f64 => format!("{:.1}MiB", x / (1u64 << 20) as f64),
        x if x >= 1024.0 => format!("{:.2}KiB", x / 1024.0),
        x => format!("{x:.0}B"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_read_well() {
        assert_eq!(si(3_512_000.0), "3.51M");
        assert_eq!(si(812.0), "812");
        assert_eq!(si(125_000.0), "125k");
        assert_eq!(micros(850.0), "850µs");
        assert_eq!(micros(97_000.0), "97.00ms");
        assert_eq!(bytes(3_900.0), "3.81KiB");
    }

    #[test]
    fn ratios_are_against_the_msgpack_row() {
        let mut report = Report {
            scenario: Scenario::Calls,
            command: String::new(),
            commit: String::new(),
            started_unix: 0,
            machine: Machine::detect(false),
            params: serde_json::Value::Null,
            notes: Vec::new(),
            rows: ["nats", "chorus-msgpack"].iter().map(|t| Row::new(t)).collect(),
        };
        report.rows[0].calls = Some(Calls { ops: 1, ops_per_sec: 50.0, errors: 0 });
        report.rows[1].calls = Some(Calls { ops: 1, ops_per_sec: 100.0, errors: 0 });
        report.compute_ratios();
        assert_eq!(report.rows[0].ratio_vs_chorus, Some(0.5));
        assert!(report.table().contains("0.50x"));
    }

    #[test]
    fn cluster_rows_are_compared_with_the_single_node() {
        let row = |setup: &str, phase: Phase, nodes: usize, rate: f64, p99: u64| {
            let mut r = Row::new(&format!("chorus-msgpack {setup}"));
            r.cluster = Some(ClusterRow {
                target: "chorus-msgpack".to_owned(),
                phase,
                nodes,
                publisher_nodes: vec!["a".to_owned()],
                rate: None,
                vs_single: None,
            });
            r.throughput = Some(Throughput {
                delivered: 1,
                delivered_per_sec: rate,
                wire_mb_per_sec: 0.0,
                payload_mb_per_sec: 0.0,
                published: 1,
                published_per_sec: 1.0,
                delivery_ratio: None,
                surplus: 0,
                out_of_order: None,
            });
            let mut h = crate::pubsub::new_histogram();
            h.record(p99).unwrap();
            r.latency = Latency::of(&h);
            r
        };
        let mut report = Report {
            scenario: Scenario::Cluster,
            command: String::new(),
            commit: String::new(),
            started_unix: 0,
            machine: Machine::detect(false),
            params: serde_json::Value::Null,
            notes: Vec::new(),
            rows: vec![
                row("single", Phase::Throughput, 1, 400.0, 10),
                row("cluster", Phase::Throughput, 3, 100.0, 10),
                row("single", Phase::Latency, 1, 50.0, 1000),
                row("cluster", Phase::Latency, 3, 50.0, 2000),
            ],
        };
        report.compute_ratios();
        let vs = |i: usize| report.rows[i].cluster.as_ref().and_then(|c| c.vs_single);
        assert!(vs(0).is_none() && vs(2).is_none(), "single rows have no ratio");
        assert_eq!(vs(1).and_then(|v| v.delivered_per_sec), Some(0.25));
        assert_eq!(vs(1).and_then(|v| v.p99), None, "throughput rows compare msg/s only");
        assert_eq!(vs(3).and_then(|v| v.p99), Some(2.0));
        assert!(report.rows.iter().all(|r| r.ratio_vs_chorus.is_none()));
        let table = report.table();
        assert!(table.contains("throughput (closed loop)") && table.contains("latency (open loop)"), "{table}");
        assert!(table.contains("0.25x") && table.contains("2.00x"), "{table}");
    }
}
