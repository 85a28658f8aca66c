//! Runs a scenario against each target in turn (a fresh server per target, so memory and CPU are the
//! target's alone; `cluster` starts its own servers, see [`crate::cluster`]), then prints the table,
//! writes the JSON and draws the charts.

use crate::calls;
use crate::cli::{
    AllArgs, CallsArgs, ClusterArgs, Command, Common, ConnectionsArgs, FanoutArgs, LatencyArgs, PublishFrom,
    ReactionsArgs, SoakArgs, TopicsArgs,
};
use crate::conn::{Dialer, EventView, Proto, quic_endpoint};
use crate::connections;
use crate::measure::{Phases, Sampler};
use crate::pubsub::{self, Load};
use crate::reactions;
use crate::report::{self, Latency, Machine, Report, Row, Scenario, Throughput};
use crate::servers::{Attached, Launcher, Running};
use crate::target::Target;
use anyhow::{Context as _, anyhow, bail};
use std::rc::Rc;
use std::time::Duration;

/// Closed-loop runs record the latency of one delivery in this many: at millions of deliveries per
/// second the generator's time is better spent receiving, and thousands of samples remain.
pub const CLOSED_LOOP_LATENCY_EVERY: u64 = 16;

/// Descriptors kept free for everything but the held connections (listeners, pipes, logs, the server's
/// own files) when the open-file limit caps a TCP connection storm.
const FD_RESERVE: u64 = 512;

/// Seats of the event the calls scenario reads.
const CALLS_EVENT_SEATS: u32 = 1000;

/// One scenario with its options.
enum Spec {
    Fanout(FanoutArgs),
    Topics(TopicsArgs),
    Latency(LatencyArgs),
    Connections(ConnectionsArgs),
    Calls(CallsArgs),
    Cluster(ClusterArgs),
    Reactions(ReactionsArgs),
    Soak(SoakArgs),
}

impl Spec {
    fn scenario(&self) -> Scenario {
        match self {
            Self::Fanout(_) => Scenario::Fanout,
            Self::Topics(_) => Scenario::Topics,
            Self::Latency(_) => Scenario::Latency,
            Self::Connections(_) => Scenario::Connections,
            Self::Calls(_) => Scenario::Calls,
            Self::Cluster(_) => Scenario::Cluster,
            Self::Reactions(_) => Scenario::Reactions,
            Self::Soak(_) => Scenario::Soak,
        }
    }

    fn common(&self) -> &Common {
        match self {
            Self::Fanout(a) => &a.common,
            Self::Topics(a) => &a.common,
            Self::Latency(a) => &a.common,
            Self::Connections(a) => &a.common,
            Self::Calls(a) => &a.common,
            Self::Cluster(a) => &a.common,
            Self::Reactions(a) => &a.common,
            Self::Soak(a) => &a.common,
        }
    }

    fn params(&self) -> anyhow::Result<serde_json::Value> {
        Ok(match self {
            Self::Fanout(a) => serde_json::to_value(a)?,
            Self::Topics(a) => serde_json::to_value(a)?,
            Self::Latency(a) => serde_json::to_value(a)?,
            Self::Connections(a) => serde_json::to_value(a)?,
            Self::Calls(a) => serde_json::to_value(a)?,
            Self::Cluster(a) => serde_json::to_value(a)?,
            Self::Reactions(a) => serde_json::to_value(a)?,
            Self::Soak(a) => serde_json::to_value(a)?,
        })
    }

    fn notes(&self) -> Vec<String> {
        let common = self.common();
        let mut notes = vec![match (common.no_pin, self) {
            (true, _) => "server and generator were not pinned: they shared the machine's cores".to_owned(),
            (false, Self::Cluster(a)) => format!(
                "every server process pinned to CPU 0 (the single node alone; the cluster's redis-server and \
                 {} chorus nodes together), the generator to CPU 1: the cluster shares the one core the single \
                 node has to itself",
                a.node_count()
            ),
            (false, _) if common.server_cpus > 1 => {
                let cpus = common.server_cpus;
                let generator = if usize::from(cpus) < crate::affinity::online_cpus() {
                    format!("the generator to CPU {cpus}")
                } else {
                    "the generator shares them (its share is `gen CPU`)".to_owned()
                };
                format!(
                    "server pinned to CPUs 0-{} (chorus with --workers {cpus}), {generator}; `srv CPU` counts \
                     cores (200% = two)",
                    cpus - 1
                )
            }
            (false, _) => "server pinned to CPU 0, generator to CPU 1: every target gets one core".to_owned(),
        }];
        let closed = |inflight: u64| {
            format!(
                "closed loop: at most {inflight} messages in flight (published, not yet received by every \
                 subscriber); results depend on this bound"
            )
        };
        match self {
            Self::Fanout(a) => notes.push(match a.rate {
                None => closed(a.inflight),
                Some(rate) => format!("open loop: {rate} publishes/s, latency from the intended send time"),
            }),
            Self::Topics(a) => notes.push(match a.rate {
                None => closed(a.inflight),
                Some(rate) => format!("open loop: {rate} publishes/s, latency from the intended send time"),
            }),
            Self::Latency(a) => notes.push(format!(
                "open loop at {} publishes/s × {} subscribers; latency from the intended send time \
                 (coordinated-omission safe)",
                a.rate, a.subscribers
            )),
            Self::Connections(_) => notes.push(
                "RSS/conn = (server RSS after the hold − RSS before the storm) / connections established".to_owned(),
            ),
            Self::Calls(_) => notes.push(
                "peers have no modules: Socket.IO acknowledges from its server script, NATS answers from a \
                 responder connection in the generator (request/reply, two hops), the raw server echoes"
                    .to_owned(),
            ),
            Self::Cluster(a) => {
                notes.push(format!(
                    "{} subscribers on one topic, subscriber i on node i mod {}; publishers: {}",
                    a.subscribers,
                    a.node_count(),
                    match a.publish_from {
                        PublishFrom::A => format!("{} on node A", a.publishers),
                        PublishFrom::Every => format!("{} on every node", a.publishers),
                    }
                ));
                notes.push(closed(a.inflight).replace("closed loop", "throughput: closed loop"));
                notes.push(match a.rate {
                    Some(rate) => format!("latency: open loop at {rate} publishes/s, from the intended send time"),
                    None => "latency: open loop at half the publishes/s the cluster sustained in the throughput \
                             phase, from the intended send time"
                        .to_owned(),
                });
                notes.push(
                    "a fresh redis-server and fresh nodes for each phase; the single node runs without Redis \
                     (embedded store), the cluster nodes with --redis-url and --store redis"
                        .to_owned(),
                );
            }
            Self::Reactions(a) => {
                notes.push(format!(
                    "{} viewers joined to one live session, {} sender connections; new-reaction and \
                     reaction-stats go to every viewer (the Socket.IO peer: both after each reaction, as the seed's \
                     server; chorus: paced per session, stats at most every 50 ms, 10 new-reaction per 50 ms)",
                    a.viewers, a.senders
                ));
                notes.push(format!(
                    "reactions are sent without asking for an answer (native: call without id; Socket.IO: emit \
                     without ack id) but every {}th of a sender and the last of each write; closed loop: at most {} \
                     reactions in flight (sent and not yet covered by an answer to them or to a later reaction of \
                     their sender), and senders pause while the slowest viewer's total misses a reaction sent over \
                     {:?} ago; react/s = the rise of the highest reported total over the window",
                    reactions::ACK_EVERY,
                    a.inflight,
                    reactions::MAX_LAG
                ));
                notes.push(
                    "chorus: a session created over REST and started (start-stream); native viewers subscribe to \
                     commerce/session/{id} and senders call commerce.send-reaction; Socket.IO (chorus's gateway and \
                     the Node peer): the seed's join-session / send-reaction on the root namespace"
                        .to_owned(),
                );
                notes.push(format!(
                    "max gap: the longest a viewer went without reaction-stats in the window (fed: at most {:?}); \
                     starved: viewers with none; latency: reaction written → its total first seen by a viewer",
                    reactions::STATS_GAP_LIMIT
                ));
            }
            Self::Soak(a) => {
                notes.push(match a.rate {
                    Some(rate) => format!("open loop at {rate} publishes/s (given) × {} subscribers", a.subscribers),
                    None => format!(
                        "open loop at {} × the publishes/s a {} s closed-loop probe (at most {} in flight) \
                         sustained first on the same server, × {} subscribers",
                        crate::soak::LOAD_FRACTION,
                        a.probe,
                        a.inflight,
                        a.subscribers
                    ),
                });
                notes.push(format!(
                    "every {} s: server RSS (VmRSS) and the interval's latency percentiles, from the intended send \
                     time; RSS first/last = mean of the samples in the first/last minute (a third of shorter runs)",
                    a.sample_every
                ));
            }
        }
        notes
    }
}

/// Runs `command` (every command but `raw-server`).
pub async fn run(command: Command) -> anyhow::Result<()> {
    let specs = match command {
        Command::Fanout(a) => vec![Spec::Fanout(a)],
        Command::Topics(a) => vec![Spec::Topics(a)],
        Command::Latency(a) => vec![Spec::Latency(a)],
        Command::Connections(a) => vec![Spec::Connections(a)],
        Command::Calls(a) => vec![Spec::Calls(a)],
        Command::Cluster(a) => vec![Spec::Cluster(a)],
        Command::Reactions(a) => vec![Spec::Reactions(a)],
        Command::Soak(a) => vec![Spec::Soak(a)],
        Command::All(a) => all(a),
        Command::RawServer { .. } => bail!("raw-server is not a scenario"),
    };
    for spec in &specs {
        run_spec(spec).await?;
    }
    Ok(())
}

/// The full matrix: each scenario with its defaults and the sizes given to `all`.
fn all(a: AllArgs) -> Vec<Spec> {
    let common = a.common;
    vec![
        Spec::Fanout(FanoutArgs { subscribers: a.subscribers, rate: None, inflight: 1024, common: common.clone() }),
        Spec::Topics(TopicsArgs {
            connections: a.subscribers,
            hot_topics: 10,
            publishers: 10,
            hot_percent: 50,
            rate: None,
            inflight: 1024,
            common: common.clone(),
        }),
        Spec::Latency(LatencyArgs { subscribers: a.subscribers, rate: a.latency_rate, common: common.clone() }),
        Spec::Connections(ConnectionsArgs {
            connections: a.connections,
            connect_rate: 5000.0,
            parallel: 256,
            common: common.clone(),
        }),
        Spec::Calls(CallsArgs {
            callers: a.callers,
            method: "booking.get".to_owned(),
            args: "{\"eventId\":{event}}".to_owned(),
            common: common.clone(),
        }),
        Spec::Reactions(ReactionsArgs { viewers: a.subscribers, senders: 4, inflight: 128, common }),
    ]
}

fn launcher(common: &Common) -> Launcher {
    Launcher {
        chorus_bin: common.chorus_bin.clone(),
        nats_bin: common.nats_bin.clone(),
        node_bin: common.node_bin.clone(),
        redis_bin: common.redis_bin.clone(),
        socketio_dir: common.socketio_dir.clone(),
        jwt_secret: common.jwt_secret.clone(),
        pin: (!common.no_pin).then_some(usize::from(common.server_cpus)),
        attach: common.attach_http.map(|http| Attached {
            http,
            quic: common.attach_quic,
            quic_cert: common.attach_quic_cert.clone(),
            pid: common.attach_pid,
        }),
    }
}

async fn run_spec(spec: &Spec) -> anyhow::Result<Report> {
    let common = spec.common();
    if common.payload < crate::stamp::STAMP_LEN {
        bail!("--payload must be at least {} bytes (the stamp)", crate::stamp::STAMP_LEN);
    }
    if !(common.warmup >= 0.0 && common.duration > 0.0) {
        bail!("--warmup must be ≥ 0 and --duration > 0");
    }
    if let Spec::Cluster(a) = spec
        && a.node_count() == 0
    {
        bail!("--nodes must be at least 1");
    }
    let scenario = spec.scenario();
    let launcher = launcher(common);
    let mut report = Report {
        scenario,
        command: std::env::args().collect::<Vec<_>>().join(" "),
        commit: commit(),
        started_unix: std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs(),
        machine: Machine::detect(!common.no_pin),
        params: spec.params()?,
        notes: spec.notes(),
        rows: Vec::new(),
    };
    let mut targets = common.targets.clone();
    if let Spec::Cluster(_) = spec {
        let skipped: Vec<&str> = targets.iter().filter(|t| !t.is_chorus()).map(|t| t.name()).collect();
        if !skipped.is_empty() {
            eprintln!("cluster: skipping {} (cluster mode is chorus's)", skipped.join(", "));
        }
        targets.retain(|t| t.is_chorus());
    }
    if let Spec::Reactions(_) = spec {
        let skipped: Vec<&str> = targets.iter().filter(|t| !t.speaks_commerce()).map(|t| t.name()).collect();
        if !skipped.is_empty() {
            eprintln!("reactions: skipping {} (no live-commerce dialect)", skipped.join(", "));
        }
        targets.retain(|t| t.speaks_commerce());
    }
    for target in targets {
        eprintln!("{} × {}", scenario.name(), target.name());
        if let Spec::Cluster(a) = spec {
            report.rows.extend(crate::cluster::run_target(a, target, &launcher).await);
            continue;
        }
        let row = match run_target(spec, target, &launcher).await {
            Ok(row) => row,
            Err(e) => Row::failed(target.name(), &e),
        };
        if row.status != "ok" {
            eprintln!("  {}: {}", target.name(), row.status);
        }
        report.rows.push(row);
    }
    report.compute_ratios();
    println!("\n== {} ==", scenario.name());
    print!("{}", report.table());
    std::fs::create_dir_all(&common.out_dir).with_context(|| format!("creating {}", common.out_dir.display()))?;
    let json = common.out_dir.join(format!("{}.json", scenario.name()));
    report.write_json(&json)?;
    eprintln!("wrote {}", json.display());
    if !common.no_charts {
        match crate::charts::render(&report, &common.out_dir) {
            Ok(files) => files.iter().for_each(|f| eprintln!("wrote {}", f.display())),
            Err(e) => eprintln!("charts not drawn: {e:#}"),
        }
    }
    Ok(report)
}

/// A command line as it can be published: paths under the working directory made relative, and
/// temporary directories (which differ per run) shown as `<tmp>`.
pub fn portable(command: &str) -> String {
    let cwd = std::env::current_dir().ok().map(|d| format!("{}/", d.display()));
    let tmp = format!("{}/", std::env::temp_dir().display());
    command
        .split(' ')
        .map(|word| {
            let word = cwd.as_deref().and_then(|c| word.strip_prefix(c)).unwrap_or(word);
            match word.strip_prefix(tmp.as_str()) {
                Some(rest) => format!("<tmp>/{}", rest.split_once('/').map_or("", |(_, tail)| tail)),
                None => word.to_owned(),
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Starts the target's server, measures, stops the server.
async fn run_target(spec: &Spec, target: Target, launcher: &Launcher) -> anyhow::Result<Row> {
    let mut server = launcher.start(target.server()).await?;
    let result = measure(spec, target, &server).await;
    let alive = server.alive();
    let tail = server.log_tail();
    let command = portable(&server.command);
    server.stop().await;
    match result {
        Ok(mut row) => {
            row.server_command = Some(command);
            if !alive {
                row.status = format!("server exited during the run: {tail}");
            }
            Ok(row)
        }
        Err(e) if !alive => Err(e.context(format!("server exited: {tail}"))),
        Err(e) => Err(e),
    }
}

/// How the generator reaches `server` as `target` (a QUIC endpoint of its own for QUIC: it trusts the
/// server's certificate only). Close the endpoint with [`close_dialer`].
pub fn dialer(target: Target, server: &Running, payload_len: usize) -> anyhow::Result<Dialer> {
    let quic = match target.proto() {
        Proto::ChorusQuic => {
            let cert = server.quic_cert.as_ref().ok_or_else(|| anyhow!("no QUIC certificate for {}", target.name()))?;
            Some(quic_endpoint(cert)?)
        }
        _ => None,
    };
    let addr = match &quic {
        Some(_) => server.quic.ok_or_else(|| anyhow!("the server has no QUIC listener"))?,
        None => server.http,
    };
    Ok(Dialer { proto: target.proto(), addr, quic, token: None, payload_len, view: EventView::Stamped })
}

/// Closes the dialer's QUIC endpoint, if it has one.
pub fn close_dialer(dialer: &Dialer) {
    if let Some(endpoint) = &dialer.quic {
        endpoint.close(quinn::VarInt::from_u32(1000), b"bench done");
    }
}

async fn measure(spec: &Spec, target: Target, server: &Running) -> anyhow::Result<Row> {
    let common = spec.common();
    let mut dialer = dialer(target, server, common.payload)?;
    let sampler = Sampler::new(server.pid);
    let warmup = Duration::from_secs_f64(common.warmup);
    let length = Duration::from_secs_f64(common.duration);
    let phases = || Phases::new(target.name(), warmup, length);
    let row = match spec {
        Spec::Fanout(a) => {
            let plan = pubsub::Plan {
                topics: vec!["fanout".to_owned()],
                subscriptions: vec![vec![0]; a.subscribers],
                publishers: vec![0],
                route: Rc::new(|_| 0),
                load: a.rate.map_or(Load::Closed { inflight: a.inflight }, |rate| Load::Open { rate }),
                latency_every: if a.rate.is_some() { 1 } else { CLOSED_LOOP_LATENCY_EVERY },
                series: None,
            };
            pubsub_row(target.name(), pubsub::run(&plan, std::slice::from_ref(&dialer), &phases(), &sampler).await?)
        }
        Spec::Topics(a) => {
            let (n, k) = (a.connections.max(1), a.hot_topics.max(1));
            let mut topics: Vec<String> = (0..n).map(|i| format!("own-{i}")).collect();
            topics.extend((0..k).map(|j| format!("hot-{j}")));
            let hot_percent = a.hot_percent.min(100);
            let plan = pubsub::Plan {
                topics,
                subscriptions: (0..n).map(|i| vec![i, n + i % k]).collect(),
                publishers: vec![0; a.publishers.max(1)],
                route: Rc::new(move |index| {
                    let h = mix(index);
                    if h % 100 < hot_percent {
                        n + ((h / 100) % k as u64) as usize
                    } else {
                        ((h / 100) % n as u64) as usize
                    }
                }),
                load: a.rate.map_or(Load::Closed { inflight: a.inflight }, |rate| Load::Open { rate }),
                latency_every: if a.rate.is_some() { 1 } else { CLOSED_LOOP_LATENCY_EVERY },
                series: None,
            };
            pubsub_row(target.name(), pubsub::run(&plan, std::slice::from_ref(&dialer), &phases(), &sampler).await?)
        }
        Spec::Latency(a) => {
            let plan = pubsub::Plan {
                topics: vec!["latency".to_owned()],
                subscriptions: vec![vec![0]; a.subscribers],
                publishers: vec![0],
                route: Rc::new(|_| 0),
                load: Load::Open { rate: a.rate },
                latency_every: 1,
                series: None,
            };
            pubsub_row(target.name(), pubsub::run(&plan, std::slice::from_ref(&dialer), &phases(), &sampler).await?)
        }
        Spec::Connections(a) => {
            // TCP connections need a descriptor each, in the generator and in the server (which inherits
            // the generator's limit); QUIC connections share one UDP socket.
            let fds = crate::affinity::open_file_limit()?;
            let tcp_cap = usize::try_from(fds.saturating_sub(FD_RESERVE)).unwrap_or(usize::MAX);
            let count = if target.proto() == Proto::ChorusQuic { a.connections } else { a.connections.min(tcp_cap) };
            let plan =
                connections::Plan { count, rate: a.connect_rate.max(1.0), parallel: a.parallel.max(1), hold: length };
            let mut row =
                connections_row(target, count, connections::run(&plan, &dialer, target.name(), &sampler).await?);
            if count < a.connections {
                row.note = Some(format!(
                    "held {count}, not {}: the open-file limit is {fds} and could not be raised (hard limit; \
                     raising it needs CAP_SYS_RESOURCE)",
                    a.connections
                ));
            }
            row
        }
        Spec::Calls(a) => {
            let mut setup_note = None;
            let args = if a.args.contains("{event}") {
                let id = if target.is_chorus() {
                    let organizer = calls::mint_token(&common.jwt_secret, "chorus-bench-organizer", "organizer")?;
                    match calls::create_event(server.http, &organizer, CALLS_EVENT_SEATS).await? {
                        Some(id) => id.to_string(),
                        None => {
                            setup_note = Some("POST /api/events answered 404: this chorus serves no booking module");
                            "1".to_owned()
                        }
                    }
                } else {
                    "1".to_owned()
                };
                a.args.replace("{event}", &id)
            } else {
                a.args.clone()
            };
            serde_json::from_str::<serde_json::Value>(&args).with_context(|| format!("--args is not JSON: {args}"))?;
            if target.is_chorus() {
                dialer.token = Some(calls::mint_token(&common.jwt_secret, "chorus-bench-caller", "member")?);
            }
            let plan = calls::Plan { callers: a.callers.max(1), method: a.method.clone(), args };
            let out = calls::run(&plan, &dialer, &phases(), &sampler).await?;
            let mut row = Row::new(target.name());
            row.set_sample(&out.sample);
            row.calls = Some(report::Calls {
                ops: out.ops,
                ops_per_sec: out.ops as f64 / out.sample.seconds.max(1e-9),
                errors: out.errors,
            });
            row.latency = Latency::of(&out.latency);
            row.errors = out.errors;
            row.first_error = out.first_error;
            row.disconnects = out.disconnects;
            if let Some(unknown) = out.unknown_method {
                row.status = match setup_note {
                    Some(note) => format!("{unknown} ({note})"),
                    None => unknown,
                };
            }
            row
        }
        Spec::Reactions(a) => {
            dialer.view = EventView::Whole;
            let session = if target.is_chorus() {
                reactions::live_session(server.http, &common.jwt_secret).await?
            } else {
                reactions::PEER_SESSION.to_owned()
            };
            let plan = reactions::Plan { session, viewers: a.viewers, senders: a.senders, inflight: a.inflight };
            reactions_row(target, &plan, reactions::run(&plan, &dialer, &phases(), &sampler).await?)
        }
        Spec::Soak(a) => crate::soak::run(a, target.name(), &dialer, &sampler).await?,
        Spec::Cluster(_) => bail!("the cluster scenario starts its own servers"),
    };
    close_dialer(&dialer);
    Ok(row)
}

/// A 64-bit mix (splitmix64's finaliser): spreads consecutive message indices over topics.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// The row of a pub/sub run.
pub fn pubsub_row(name: &str, out: pubsub::Outcome) -> Row {
    let mut row = Row::new(name);
    row.set_sample(&out.sample);
    let secs = out.sample.seconds.max(1e-9);
    row.throughput = Some(Throughput {
        delivered: out.delivered,
        delivered_per_sec: out.delivered as f64 / secs,
        wire_mb_per_sec: out.wire_bytes as f64 / secs / 1e6,
        payload_mb_per_sec: out.payload_bytes as f64 / secs / 1e6,
        published: out.published,
        published_per_sec: out.published as f64 / secs,
        delivery_ratio: (out.expected > 0).then(|| out.delivered as f64 / out.expected as f64),
        surplus: out.surplus,
        out_of_order: out.out_of_order,
    });
    row.latency = Latency::of(&out.latency);
    row.set_faults(out.errors, out.first_error, out.disconnects, out.first_disconnect);
    if out.stalled {
        row.status = format!(
            "stalled: no message completed for {:?} (a subscriber lost messages or was disconnected)",
            pubsub::STALL
        );
    } else if out.delivered == 0 {
        row.status = "nothing delivered".to_owned();
    }
    row
}

fn reactions_row(target: Target, plan: &reactions::Plan, out: reactions::Outcome) -> Row {
    let mut row = Row::new(target.name());
    row.set_sample(&out.sample);
    let secs = out.sample.seconds.max(1e-9);
    let fed = out.starved == 0 && out.max_gap <= reactions::STATS_GAP_LIMIT;
    row.reactions = Some(report::Reactions {
        viewers: plan.viewers as u64,
        senders: plan.senders as u64,
        ingested: out.ingested,
        ingested_per_sec: out.ingested as f64 / secs,
        sent: out.sent,
        sent_per_sec: out.sent as f64 / secs,
        stats_delivered: out.stats_delivered,
        stats_per_sec: out.stats_delivered as f64 / secs,
        new_reaction_per_sec: out.reactions_delivered as f64 / secs,
        wire_mb_per_sec: out.wire_bytes as f64 / secs / 1e6,
        viewers_without_stats: out.starved,
        min_stats_per_viewer: out.min_stats,
        max_stats_gap_ms: out.max_gap.as_secs_f64() * 1e3,
        every_viewer_fed: fed,
    });
    row.latency = Latency::of(&out.latency);
    row.set_faults(out.errors, out.first_error, out.disconnects, out.first_disconnect);
    if out.stalled {
        row.status = format!(
            "stalled: no reaction was acknowledged for {:?} (the server stopped answering its senders)",
            pubsub::STALL
        );
    } else if out.ingested == 0 {
        row.status = "nothing ingested".to_owned();
    } else if out.starved > 0 {
        row.status = format!("{} of {} viewers received no reaction-stats in the window", out.starved, plan.viewers);
    } else if !fed {
        row.note = Some(format!(
            "a viewer went {:.0} ms without reaction-stats (more than {:?})",
            out.max_gap.as_secs_f64() * 1e3,
            reactions::STATS_GAP_LIMIT
        ));
    }
    row
}

fn connections_row(target: Target, requested: usize, out: connections::Outcome) -> Row {
    let mut row = Row::new(target.name());
    row.set_sample(&out.hold);
    let per_conn = match (out.rss_before, out.hold.server_rss) {
        (Some(before), Some(held)) if out.established > 0 => {
            Some((held as f64 - before as f64) / out.established as f64)
        }
        _ => None,
    };
    row.connections = Some(report::Connections {
        requested: requested as u64,
        established: out.established,
        failed: out.failed,
        connect_per_sec: out.established as f64 / out.storm_seconds.max(1e-9),
        dropped_during_hold: out.dropped,
        rss_before_bytes: out.rss_before,
        rss_held_bytes: out.hold.server_rss,
        rss_per_connection_bytes: per_conn,
        storm_server_cpu: out.storm.server_cpu,
        storm_generator_cpu: out.storm.generator_cpu,
    });
    row.generator_saturated = out.storm.generator_cpu >= crate::measure::GENERATOR_SATURATED;
    row.latency = Latency::of(&out.latency);
    row.errors = out.failed;
    row.first_error = out.first_failure;
    row.disconnects = out.dropped;
    if out.established == 0 {
        row.status = "no connection established".to_owned();
    }
    row
}

/// The commit measured: `git rev-parse --short HEAD`, `+dirty` when the work tree has changes.
fn commit() -> String {
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
    };
    match git(&["rev-parse", "--short", "HEAD"]) {
        Some(head) if git(&["status", "--porcelain"]).is_some_and(|s| !s.is_empty()) => format!("{head}+dirty"),
        Some(head) => head,
        None => "unknown".to_owned(),
    }
}
