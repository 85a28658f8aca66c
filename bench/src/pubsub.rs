//! The publish/subscribe engine behind `fanout`, `topics`, `latency` and `cluster`: subscriber
//! connections that count and time every delivery, and publishers that either keep a bounded number of
//! messages in flight (closed loop) or send on a fixed schedule (open loop). The target may be several
//! nodes (`cluster`): subscriber `i` connects to node `i mod nodes`, each publisher to the node its plan
//! names.
//!
//! Everything runs on the generator's single thread (a `LocalSet`), so the shared state is plain
//! `Cell`s: no atomics on the per-delivery path.
//!
//! **Closed loop.** A message is *in flight* from its publish until every subscriber of its topic has
//! received it. Publishers stop at [`Load::Closed::inflight`] messages in flight. Each message's index
//! travels in its payload; a ring of per-message remaining-delivery counts tells when it completes.
//!
//! **Open loop.** Publishers send message `i` at `start + i / rate`, stamped with that *intended* time,
//! so a server that stalls the publisher is charged for the wait (no coordinated omission).
//!
//! **Series.** With [`Plan::series`] (`soak`), the measured window is also cut into intervals: each
//! interval's deliveries get a histogram of their own, and its end records the server's RSS.

use crate::conn::{Conn, Dialer, Incoming};
use crate::measure::{Phases, Sampler};
use crate::report::SeriesPoint;
use crate::stamp;
use hdrhistogram::Histogram;
use std::cell::{Cell, RefCell};
use std::net::Ipv4Addr;
use std::rc::Rc;
use std::time::{Duration, Instant};
use tokio::sync::Notify;
use tokio::task::JoinSet;

/// Connections opened concurrently during setup. Enough to set up 1000 subscribers in well under a
/// second; few enough not to overflow the server's accept backlog (chorus, nats-server and Node all
/// use at least 511).
pub const SETUP_PARALLELISM: usize = 64;

/// Most messages a publisher writes with one system call.
const MAX_BATCH: usize = 256;

/// A closed loop that has completed no message for this long at the end of the measured window has
/// stalled (a subscriber was cut, or the server dropped messages) and its row says so. Long, because a
/// slow server can legitimately complete nothing for seconds: Socket.IO handles a whole read of
/// publishes (hundreds of messages × every subscriber) in one event-loop turn before it writes again.
/// The run itself is bounded by its duration, not by this.
pub const STALL: Duration = Duration::from_secs(10);

/// How publishing is paced.
#[derive(Debug, Clone, Copy)]
pub enum Load {
    /// As fast as possible with at most `inflight` messages published but not yet delivered to all.
    Closed {
        /// Bound on messages in flight.
        inflight: u64,
    },
    /// A fixed total rate of publishes per second, spread over the publishers.
    Open {
        /// Messages per second.
        rate: f64,
    },
}

/// The shape of a pub/sub workload.
pub struct Plan {
    /// Topic names.
    pub topics: Vec<String>,
    /// For each subscriber connection, the topics (indices into `topics`) it subscribes to.
    pub subscriptions: Vec<Vec<usize>>,
    /// Publisher connections: the node (index into the dialers given to [`run`]) of each.
    pub publishers: Vec<usize>,
    /// The topic of message `i`.
    pub route: Rc<dyn Fn(u64) -> usize>,
    /// Pacing.
    pub load: Load,
    /// Record the latency of one delivery in this many (1 = every delivery).
    pub latency_every: u64,
    /// Sample the server's RSS and the interval's latency this often during the measured window.
    pub series: Option<Duration>,
}

/// What one target did in the measured window.
#[derive(Debug)]
pub struct Outcome {
    /// Deliveries counted.
    pub delivered: u64,
    /// Payload bytes delivered.
    pub payload_bytes: u64,
    /// Bytes read by subscribers from their sockets.
    pub wire_bytes: u64,
    /// Messages published.
    pub published: u64,
    /// Deliveries the published messages should have caused.
    pub expected: u64,
    /// Publish→deliver latency in microseconds.
    pub latency: Histogram<u64>,
    /// Error frames received (any connection).
    pub errors: u64,
    /// The first error's text.
    pub first_error: Option<String>,
    /// Connections the server closed or broke during the run.
    pub disconnects: u64,
    /// The first disconnect's reason.
    pub first_disconnect: Option<String>,
    /// The closed loop had stopped making progress by the end of the window.
    pub stalled: bool,
    /// Closed loop: deliveries of a message every subscriber of its topic already had (duplicates).
    pub surplus: u64,
    /// Deliveries whose index was not above the subscriber's previous one (a duplicate or a reordering);
    /// counted only with one publisher and one topic per subscriber, where the order is defined.
    pub out_of_order: Option<u64>,
    /// CPU and memory over the window.
    pub sample: crate::measure::Sample,
    /// One point per [`Plan::series`] interval (empty without).
    pub series: Vec<SeriesPoint>,
}

/// Latency histogram bounds: 1 µs to 10 minutes at 3 significant digits.
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 600_000_000, 3).expect("constant histogram bounds are valid")
}

/// In-flight accounting for a closed loop: each message (by index) is open until its last expected
/// delivery (also the `reactions` scenario's, where a reaction is open until every viewer has seen a
/// `reaction-stats` total that counts it).
pub struct Window {
    /// Remaining deliveries of message `i`, at `i & mask`.
    slots: RefCell<Vec<u32>>,
    mask: u64,
    open: Cell<u64>,
    limit: u64,
    wake: Notify,
    last_progress: Cell<Instant>,
}

impl Window {
    /// A window of at most `limit` open messages.
    pub fn new(limit: u64) -> Self {
        // Four times the bound so a slow message rarely blocks the ring slot a new one needs.
        let size = (limit.max(1) * 4).next_power_of_two();
        Self {
            slots: RefCell::new(vec![0; size as usize]),
            mask: size - 1,
            open: Cell::new(0),
            limit: limit.max(1),
            wake: Notify::new(),
            last_progress: Cell::new(Instant::now()),
        }
    }

    /// Whether message `index` may be sent now.
    pub fn has_room(&self, index: u64) -> bool {
        self.open.get() < self.limit && self.slots.borrow()[(index & self.mask) as usize] == 0
    }

    /// Opens message `index`, expecting `deliveries` deliveries.
    pub fn sent(&self, index: u64, deliveries: u32) {
        if deliveries > 0 {
            self.slots.borrow_mut()[(index & self.mask) as usize] = deliveries;
            self.open.set(self.open.get() + 1);
        }
    }

    /// Counts a delivery of message `index`; false when the message was already complete.
    pub fn delivered(&self, index: u64) -> bool {
        let mut slots = self.slots.borrow_mut();
        let slot = &mut slots[(index & self.mask) as usize];
        if *slot == 0 {
            return false;
        }
        *slot -= 1;
        if *slot == 0 {
            self.open.set(self.open.get() - 1);
            self.last_progress.set(Instant::now());
            self.wake.notify_waiters();
        }
        true
    }

    /// Resolves once a message has completed since the call (registered on first poll).
    pub async fn progress(&self) {
        self.wake.notified().await
    }

    /// Whether messages are open but none has completed for `after`: a loop that stopped making progress.
    pub fn stalled(&self, after: Duration) -> bool {
        self.open.get() > 0 && self.last_progress.get().elapsed() > after
    }
}

/// State shared by every task of one run.
struct Flow {
    measuring: Cell<bool>,
    delivered: Cell<u64>,
    all_delivered: Cell<u64>,
    payload_bytes: Cell<u64>,
    wire_bytes: Cell<u64>,
    published: Cell<u64>,
    expected: Cell<u64>,
    next_index: Cell<u64>,
    latency: RefCell<Histogram<u64>>,
    /// The current series interval's latency (only with [`Plan::series`]).
    interval: Option<RefCell<Histogram<u64>>>,
    latency_every: u64,
    sample_counter: Cell<u64>,
    errors: Cell<u64>,
    first_error: RefCell<Option<String>>,
    disconnects: Cell<u64>,
    first_disconnect: RefCell<Option<String>>,
    stalled: Cell<bool>,
    surplus: Cell<u64>,
    out_of_order: Cell<u64>,
    check_order: bool,
    window: Option<Window>,
    fanout: Vec<u32>,
    route: Rc<dyn Fn(u64) -> usize>,
}

impl Flow {
    /// Handles one message read by a connection; `last` is the index of the connection's previous
    /// delivery (for the order check).
    fn on_message(&self, m: Incoming<'_>, now: u64, last: &mut Option<u64>) {
        match m {
            Incoming::Event { payload, .. } => {
                let Some((sent, index)) = stamp::read(payload) else { return };
                let fresh = self.window.as_ref().is_none_or(|w| w.delivered(index));
                let in_order = !self.check_order || last.is_none_or(|l| index > l);
                *last = Some(index);
                self.all_delivered.set(self.all_delivered.get() + 1);
                if self.measuring.get() {
                    if !fresh {
                        self.surplus.set(self.surplus.get() + 1);
                    }
                    if !in_order {
                        self.out_of_order.set(self.out_of_order.get() + 1);
                    }
                    self.delivered.set(self.delivered.get() + 1);
                    self.payload_bytes.set(self.payload_bytes.get() + payload.len() as u64);
                    let n = self.sample_counter.get() + 1;
                    if n >= self.latency_every {
                        self.sample_counter.set(0);
                        let micros = now.saturating_sub(sent) / 1000;
                        self.latency.borrow_mut().saturating_record(micros.max(1));
                        if let Some(interval) = &self.interval {
                            interval.borrow_mut().saturating_record(micros.max(1));
                        }
                    } else {
                        self.sample_counter.set(n);
                    }
                }
            }
            Incoming::Error { code, message, .. } => {
                self.errors.set(self.errors.get() + 1);
                self.first_error.borrow_mut().get_or_insert_with(|| format!("{code} {message}"));
            }
            _ => {}
        }
    }

    fn on_disconnect(&self, why: &anyhow::Error) {
        self.disconnects.set(self.disconnects.get() + 1);
        self.first_disconnect.borrow_mut().get_or_insert_with(|| format!("{why:#}"));
    }

    /// Takes the next message index and its topic, counting it when measuring.
    fn next_message(&self) -> (u64, usize) {
        let index = self.next_index.get();
        self.next_index.set(index + 1);
        let topic = (self.route)(index);
        if self.measuring.get() {
            self.published.set(self.published.get() + 1);
            self.expected.set(self.expected.get() + u64::from(self.fanout[topic]));
        }
        (index, topic)
    }
}

/// Connects `count` clients with at most [`SETUP_PARALLELISM`] handshakes at a time, each then
/// subscribed to `topics(i)`. Fails on the first client that cannot connect or subscribe.
pub async fn connect_all(
    dialer: &Dialer,
    count: usize,
    topics: impl Fn(usize) -> Vec<String>,
) -> anyhow::Result<Vec<Conn>> {
    connect_on(std::slice::from_ref(dialer), |_| 0, count, topics).await
}

/// As [`connect_all`], client `i` connecting to node `node(i)` (an index into `nodes`).
pub async fn connect_on(
    nodes: &[Dialer],
    node: impl Fn(usize) -> usize,
    count: usize,
    topics: impl Fn(usize) -> Vec<String>,
) -> anyhow::Result<Vec<Conn>> {
    let mut conns: Vec<Option<Conn>> = (0..count).map(|_| None).collect();
    let mut pending = JoinSet::new();
    let mut next = 0;
    while next < count || !pending.is_empty() {
        while next < count && pending.len() < SETUP_PARALLELISM {
            let dialer = nodes.get(node(next)).ok_or_else(|| anyhow::anyhow!("no node {}", node(next)))?.clone();
            let (subs, i) = (topics(next), next);
            pending.spawn_local(async move {
                let mut conn = dialer.connect(source_ip(i)).await?;
                if !subs.is_empty() {
                    conn.subscribe(&subs).await?;
                }
                Ok::<_, anyhow::Error>((i, conn))
            });
            next += 1;
        }
        if let Some(done) = pending.join_next().await {
            let (i, conn) = done??;
            conns[i] = Some(conn);
        }
    }
    Ok(conns.into_iter().flatten().collect())
}

/// Connections per loopback source address. One address has ~28,000 ephemeral ports; staying well
/// below leaves room for sockets of earlier runs still in TIME_WAIT.
const CONNS_PER_SOURCE_IP: usize = 20_000;

/// The loopback source address of connection `i`: 127.0.0.1 for the first 20,000, then 127.0.0.2, …
pub fn source_ip(i: usize) -> Option<Ipv4Addr> {
    let n = i / CONNS_PER_SOURCE_IP;
    (n > 0).then(|| Ipv4Addr::new(127, 0, 0, 1 + (n % 250) as u8))
}

/// Runs `plan` against one target, served by one node or several (`nodes`, one dialer each): sets up,
/// warms up, measures, tears down.
pub async fn run(plan: &Plan, nodes: &[Dialer], phases: &Phases, sampler: &Sampler) -> anyhow::Result<Outcome> {
    if nodes.is_empty() {
        anyhow::bail!("no node to connect to");
    }
    let mut fanout = vec![0u32; plan.topics.len()];
    for subs in &plan.subscriptions {
        for &t in subs {
            fanout[t] += 1;
        }
    }
    let subscribers = connect_on(
        nodes,
        |i| i % nodes.len(),
        plan.subscriptions.len(),
        |i| plan.subscriptions[i].iter().map(|&t| plan.topics[t].clone()).collect(),
    )
    .await?;
    let publishers = connect_on(nodes, |j| plan.publishers[j], plan.publishers.len(), |_| Vec::new()).await?;

    let flow = Rc::new(Flow {
        measuring: Cell::new(false),
        delivered: Cell::new(0),
        all_delivered: Cell::new(0),
        payload_bytes: Cell::new(0),
        wire_bytes: Cell::new(0),
        published: Cell::new(0),
        expected: Cell::new(0),
        next_index: Cell::new(0),
        latency: RefCell::new(new_histogram()),
        interval: plan.series.map(|_| RefCell::new(new_histogram())),
        latency_every: plan.latency_every.max(1),
        sample_counter: Cell::new(0),
        errors: Cell::new(0),
        first_error: RefCell::new(None),
        disconnects: Cell::new(0),
        first_disconnect: RefCell::new(None),
        stalled: Cell::new(false),
        surplus: Cell::new(0),
        out_of_order: Cell::new(0),
        check_order: plan.publishers.len() == 1 && plan.subscriptions.iter().all(|s| s.len() == 1),
        window: match plan.load {
            Load::Closed { inflight } => Some(Window::new(inflight)),
            Load::Open { .. } => None,
        },
        fanout,
        route: plan.route.clone(),
    });

    let mut tasks = JoinSet::new();
    for conn in subscribers {
        tasks.spawn_local(subscriber(conn, flow.clone()));
    }
    let per_publisher = publishers.len().max(1) as f64;
    for conn in publishers {
        let templates = plan.topics.iter().map(|t| conn.publish_template(t)).collect::<anyhow::Result<Vec<_>>>()?;
        match plan.load {
            Load::Closed { .. } => tasks.spawn_local(publish_closed(conn, flow.clone(), templates)),
            Load::Open { rate } => tasks.spawn_local(publish_open(conn, flow.clone(), templates, rate / per_publisher)),
        };
    }

    let progress = |rate: f64| format!("{} delivered/s", crate::report::si(rate));
    let counter = || flow.all_delivered.get();
    phases.warmup(&counter, &progress, &|| None).await;
    flow.measuring.set(true);
    let window = sampler.begin()?;
    let series = RefCell::new(Vec::new());
    match plan.series {
        None => phases.measure(&counter, &progress, &|| None).await,
        Some(every) => {
            tokio::select! {
                () = phases.measure(&counter, &progress, &|| None) => {}
                () = sample_series(&flow, sampler, every, &series) => {}
            }
        }
    }
    flow.measuring.set(false);
    let sample = sampler.end(window)?;
    if let Some(w) = &flow.window {
        flow.stalled.set(w.stalled(STALL));
    }
    tasks.abort_all();
    while tasks.join_next().await.is_some() {}

    let flow = Rc::try_unwrap(flow).map_err(|_| anyhow::anyhow!("tasks still hold the run state"))?;
    Ok(Outcome {
        delivered: flow.delivered.get(),
        payload_bytes: flow.payload_bytes.get(),
        wire_bytes: flow.wire_bytes.get(),
        published: flow.published.get(),
        expected: flow.expected.get(),
        latency: flow.latency.into_inner(),
        errors: flow.errors.get(),
        first_error: flow.first_error.into_inner(),
        disconnects: flow.disconnects.get(),
        first_disconnect: flow.first_disconnect.into_inner(),
        stalled: flow.stalled.get(),
        surplus: flow.surplus.get(),
        out_of_order: flow.check_order.then(|| flow.out_of_order.get()),
        sample,
        series: series.into_inner(),
    })
}

/// Every `every`: the interval's delivery rate and latency percentiles, and the server's RSS. Runs
/// until the measured window ends (the caller drops it then).
async fn sample_series(flow: &Flow, sampler: &Sampler, every: Duration, points: &RefCell<Vec<SeriesPoint>>) {
    let start = Instant::now();
    let mut ticks = tokio::time::interval_at((start + every).into(), every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let (mut last_count, mut last_at) = (flow.delivered.get(), start);
    loop {
        ticks.tick().await;
        let now = Instant::now();
        let latency = flow.interval.as_ref().map(|h| h.replace(new_histogram())).filter(|h| !h.is_empty());
        let count = flow.delivered.get();
        let seconds = now.duration_since(last_at).as_secs_f64().max(1e-9);
        points.borrow_mut().push(SeriesPoint {
            at_secs: now.duration_since(start).as_secs_f64(),
            rss_bytes: sampler.server_rss(),
            delivered_per_sec: (count - last_count) as f64 / seconds,
            p50_us: latency.as_ref().map(|h| h.value_at_percentile(50.0)),
            p99_us: latency.as_ref().map(|h| h.value_at_percentile(99.0)),
            max_us: latency.as_ref().map(|h| h.max()),
        });
        (last_count, last_at) = (count, now);
    }
}

/// Reads deliveries until the connection ends.
async fn subscriber(mut conn: Conn, flow: Rc<Flow>) {
    let mut last = None;
    let result = async {
        loop {
            let n = conn.fill().await?;
            let now = stamp::now_nanos();
            if flow.measuring.get() {
                flow.wire_bytes.set(flow.wire_bytes.get() + n as u64);
            }
            conn.drain(&mut |m| flow.on_message(m, now, &mut last))?;
            conn.flush_outbox().await?;
        }
    }
    .await;
    if let Err::<(), anyhow::Error>(e) = result {
        flow.on_disconnect(&e);
    }
}

/// Stamps the payload of `template` and appends it to `batch`.
fn append(batch: &mut Vec<u8>, template: &(Vec<u8>, usize), sent_nanos: u64, index: u64) {
    let (bytes, at) = template;
    let start = batch.len();
    batch.extend_from_slice(bytes);
    stamp::write(&mut batch[start + at..start + at + stamp::STAMP_LEN], sent_nanos, index);
}

/// Closed loop: publish whenever the window has room, as many messages per write as it allows.
async fn publish_closed(mut conn: Conn, flow: Rc<Flow>, templates: Vec<(Vec<u8>, usize)>) {
    let Some(window) = flow.window.as_ref() else { return };
    let mut batch = Vec::with_capacity(MAX_BATCH * templates.first().map_or(128, |t| t.0.len()));
    let result = async {
        loop {
            if !window.has_room(flow.next_index.get()) {
                // Single-threaded: no completion can slip in between the check above and the
                // registration of this waiter on its first poll.
                tokio::select! {
                    _ = window.progress() => {}
                    read = conn.fill() => {
                        read?;
                        let now = stamp::now_nanos();
                        conn.drain(&mut |m| flow.on_message(m, now, &mut None))?;
                        conn.take_outbox(&mut batch);
                    }
                }
            }
            let now = stamp::now_nanos();
            let mut n = 0;
            while n < MAX_BATCH && window.has_room(flow.next_index.get()) {
                let (index, topic) = flow.next_message();
                append(&mut batch, &templates[topic], now, index);
                window.sent(index, flow.fanout[topic]);
                n += 1;
            }
            if !batch.is_empty() {
                conn.send(&batch).await?;
                batch.clear();
            }
        }
    }
    .await;
    if let Err::<(), anyhow::Error>(e) = result {
        flow.on_disconnect(&e);
    }
}

/// Open loop: message `i` of this publisher is due at `start + i / rate` and carries that time.
async fn publish_open(mut conn: Conn, flow: Rc<Flow>, templates: Vec<(Vec<u8>, usize)>, rate: f64) {
    let start = Instant::now();
    let mut sent = 0u64;
    let mut batch = Vec::with_capacity(MAX_BATCH * templates.first().map_or(128, |t| t.0.len()));
    let due_at = |i: u64| start + Duration::from_secs_f64(i as f64 / rate);
    let result = async {
        loop {
            let now = Instant::now();
            let mut n = 0;
            while n < MAX_BATCH && due_at(sent) <= now {
                let (index, topic) = flow.next_message();
                append(&mut batch, &templates[topic], stamp::nanos_at(due_at(sent)), index);
                sent += 1;
                n += 1;
            }
            if !batch.is_empty() {
                conn.send(&batch).await?;
                batch.clear();
            }
            if due_at(sent) > Instant::now() {
                tokio::select! {
                    _ = tokio::time::sleep_until(due_at(sent).into()) => {}
                    read = conn.fill() => {
                        read?;
                        let now = stamp::now_nanos();
                        conn.drain(&mut |m| flow.on_message(m, now, &mut None))?;
                        conn.take_outbox(&mut batch);
                    }
                }
            }
        }
    }
    .await;
    if let Err::<(), anyhow::Error>(e) = result {
        flow.on_disconnect(&e);
    }
}
