//! The `reactions` scenario (live commerce, seed 003): N viewers of one live session, a few sender
//! connections sending reactions as fast as the server takes them, and every reaction answered by the
//! server with `new-reaction` and `reaction-stats` (`{ sessionId, counts, total }`) to every viewer.
//!
//! - **Ingested** reactions are counted from what the server reports, not from what was sent: the rise of
//!   the highest `total` any viewer saw in a `reaction-stats` over the measured window.
//! - **Reactions go without asking for an answer**, as the seed's client sends them: a native `call`
//!   without id, a Socket.IO emit without acknowledgement id. Each sender asks for one on every
//!   [`ACK_EVERY`]-th reaction and on the last of each write (with an id, [`REACTION_ACK`] on Socket.IO);
//!   a connection's reactions are taken in order, so that answer tells that every earlier reaction of the
//!   sender was taken.
//! - **Closed loop**, two bounds. A reaction is in flight until the server has answered it or a later
//!   reaction of its sender; senders stop at `--inflight` in flight, so the server's input stays bounded. And senders pause while the slowest viewer is more than [`MAX_LAG`] behind: while the
//!   first reaction missing from its highest `total` was sent longer ago than that. So a server that takes
//!   reactions faster than it tells its viewers cannot pile up queues, while one that tells them in fewer,
//!   fuller `reaction-stats` (chorus paces them per session) is not held to one broadcast per reaction.
//! - **Every viewer keeps receiving stats**: per viewer, the `reaction-stats` it got in the window and the
//!   longest time it went without one (window edges included).
//! - **Latency**: from the moment reaction *t* was written to the moment a viewer first saw a total ≥ *t*,
//!   one viewer delivery in [`LATENCY_EVERY`].
//!
//! Dialects: chorus native (WebSocket or QUIC, MessagePack) subscribes viewers to
//! `commerce/session/{id}` and sends `call commerce.send-reaction`; Socket.IO (chorus's gateway and the
//! Node peer alike) speaks the seed's client shape on the root namespace: `join-session` with the session
//! id, `send-reaction { sessionId, type }`, events `new-reaction` / `reaction-stats`.

use crate::conn::{Conn, Dialer, Incoming, Proto};
use crate::measure::{Phases, Sample, Sampler};
use crate::pubsub::{SETUP_PARALLELISM, STALL, connect_all, new_histogram};
use crate::stamp;
use anyhow::{Context as _, anyhow, bail};
use bytes::Bytes;
use chorus_protocol::{ClientFrame, Codec, Payload, ServerFrame};
use hdrhistogram::Histogram;
use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::{Duration, Instant};
use tokio::sync::Notify;
use tokio::task::JoinSet;

/// The seed's reaction types; sender reactions cycle through them.
pub const TYPES: [&str; 4] = ["like", "heart", "fire", "clap"];

/// Most reactions a sender writes with one system call.
const MAX_BATCH: usize = 256;

/// One viewer delivery in this many has its latency recorded.
pub const LATENCY_EVERY: u64 = 16;

/// A viewer "keeps receiving stats" when it went at most this long without one in the window.
pub const STATS_GAP_LIMIT: Duration = Duration::from_secs(1);

/// Senders pause while the slowest viewer's total misses a reaction sent longer ago than this.
pub const MAX_LAG: Duration = Duration::from_millis(250);

/// The Socket.IO acknowledgement id of every reaction that asks for one (the join's is 1).
const REACTION_ACK: u64 = 2;

/// A sender asks for an answer on every this many reactions (and on the last of each write).
pub const ACK_EVERY: u64 = 64;

/// Send times kept for latency: a viewer's total may trail the last acknowledged reaction by up to this
/// many reactions (chorus tells totals at most 50 ms late: 1 M reactions/s leaves room to spare).
const SENT_AT_RING: usize = 1 << 20;

/// Placeholder call id in the native template, patched per reaction (MessagePack `uint 64`: 8 bytes).
const ID_PLACEHOLDER: [u8; 9] = [0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff];

/// The session the Socket.IO peer's viewers join (it keeps no sessions: any id names a room). Shaped
/// like chorus's session ids, so both servers' packets have the same length.
pub const PEER_SESSION: &str = "00000000-0000-7000-8000-00000000be7c";

/// Creates a live-commerce session on the chorus node at `http` and starts its stream, as its creator (a
/// token signed with `secret`); returns the session id.
pub async fn live_session(http: std::net::SocketAddr, secret: &str) -> anyhow::Result<String> {
    let token = crate::calls::mint_token(secret, "chorus-bench-creator", "creator")?;
    let title = serde_json::json!({ "title": "chorus-bench reactions" });
    let id = match crate::rest::request(http, "POST", "/api/sessions", &token, Some(&title)).await? {
        (201, created) => created["data"]["id"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| anyhow!("session without an id: {created}"))?,
        (404, _) => bail!("POST /api/sessions answered 404: this chorus serves no live-commerce module"),
        (status, answer) => bail!("POST /api/sessions answered {status}: {answer}"),
    };
    let path = format!("/api/sessions/{id}/start-stream");
    match crate::rest::request(http, "POST", &path, &token, None).await? {
        (200, _) => Ok(id),
        (status, answer) => bail!("POST {path} answered {status}: {answer}"),
    }
}

/// The workload.
pub struct Plan {
    /// The session's id (a live session on chorus; any string on the peer).
    pub session: String,
    /// Viewer connections.
    pub viewers: usize,
    /// Sender connections.
    pub senders: usize,
    /// Reactions in flight (sent, not yet acknowledged) at most.
    pub inflight: u64,
}

/// What one target did in the measured window.
pub struct Outcome {
    /// Reactions the server counted: the rise of the highest reported `total`.
    pub ingested: u64,
    /// Reactions sent.
    pub sent: u64,
    /// `reaction-stats` delivered to viewers.
    pub stats_delivered: u64,
    /// `new-reaction` delivered to viewers.
    pub reactions_delivered: u64,
    /// Bytes viewers read from their sockets.
    pub wire_bytes: u64,
    /// Viewers that got no `reaction-stats` in the window.
    pub starved: u64,
    /// Fewest `reaction-stats` one viewer got in the window.
    pub min_stats: u64,
    /// Longest time a viewer went without `reaction-stats` in the window.
    pub max_gap: Duration,
    /// Reaction written → its total seen by a viewer, microseconds.
    pub latency: Histogram<u64>,
    /// Errors the server sent (refused reactions).
    pub errors: u64,
    /// The first of them.
    pub first_error: Option<String>,
    /// Connections that ended during the run.
    pub disconnects: u64,
    /// Why the first one ended.
    pub first_disconnect: Option<String>,
    /// The closed loop had stopped making progress by the end of the window.
    pub stalled: bool,
    /// CPU and memory over the window.
    pub sample: Sample,
}

/// A delivered message, as far as the scenario cares.
#[derive(Debug, PartialEq, Eq)]
enum Seen {
    /// `reaction-stats` with its `total`.
    Stats(u64),
    /// `new-reaction`.
    Reaction,
    /// The Socket.IO `error` event (a refused emit without acknowledgement).
    Refused(String),
    /// Anything else (`viewer-count`, ...).
    Other,
}

/// Tells what a delivered message is, on the fast path by its fixed layout, else by decoding it.
struct Classifier {
    /// chorus MessagePack: the bytes every event frame on the session topic starts with, up to the `seq` value.
    native_prefix: Vec<u8>,
}

impl Classifier {
    /// The classifier for events on `topic`: the native prefix is taken from an event the protocol crate
    /// encodes, so a change of layout there shows up as the slow path, not as wrong counts.
    fn new(topic: &str) -> anyhow::Result<Self> {
        let probe = ServerFrame::Event { topic: topic.to_owned(), seq: 0, payload: Payload::from_value(&0)? };
        let bytes = chorus_protocol::encode_server(Codec::MsgPack, &probe)?;
        let seq_key = b"\xa3seq";
        let at = bytes
            .windows(seq_key.len())
            .rposition(|w| w == seq_key)
            .ok_or_else(|| anyhow!("no seq key in an encoded event"))?;
        Ok(Self { native_prefix: bytes[..at + seq_key.len()].to_vec() })
    }

    fn classify(&self, proto: Proto, msg: &[u8]) -> Seen {
        match proto {
            Proto::SocketIo(_) => socketio_seen(msg).unwrap_or_else(|| socketio_slow(msg)),
            _ => self.native_fast(msg).unwrap_or_else(|| native_slow(msg)),
        }
    }

    /// The frame the broker writes: `{type, topic, seq, payload: {event, data}}` in that order.
    fn native_fast(&self, msg: &[u8]) -> Option<Seen> {
        let rest = msg.strip_prefix(self.native_prefix.as_slice())?;
        let seq_len = match *rest.first()? {
            0x00..=0x7f => 1,
            0xcc => 2,
            0xcd => 3,
            0xce => 5,
            0xcf => 9,
            _ => return None,
        };
        let rest = rest.get(seq_len..)?.strip_prefix(b"\xa7payload\x82\xa5event")?;
        if rest.starts_with(b"\xaereaction-stats") {
            return msgpack_total(rest).map(Seen::Stats);
        }
        if rest.starts_with(b"\xacnew-reaction") {
            return Some(Seen::Reaction);
        }
        None
    }
}

/// The `total` at the end of a MessagePack `reaction-stats` data map (`total` is its last key).
fn msgpack_total(frame: &[u8]) -> Option<u64> {
    let tail = &frame[frame.len().saturating_sub(16)..];
    let at = tail.windows(6).rposition(|w| w == b"\xa5total")?;
    let value = &tail[at + 6..];
    let (marker, digits) = value.split_first()?;
    let be = |n: usize| (digits.len() == n).then(|| digits.iter().fold(0u64, |acc, &b| acc << 8 | u64::from(b)));
    match marker {
        0x00..=0x7f if digits.is_empty() => Some(u64::from(*marker)),
        0xcc => be(1),
        0xcd => be(2),
        0xce => be(4),
        0xcf => be(8),
        _ => None,
    }
}

/// Any chorus frame, decoded: events by their envelope, the rest is not ours.
fn native_slow(msg: &[u8]) -> Seen {
    let Ok(ServerFrame::Event { payload, .. }) =
        chorus_protocol::decode_server(Codec::MsgPack, &Bytes::copy_from_slice(msg), crate::ws::MAX_MESSAGE)
    else {
        return Seen::Other;
    };
    match payload.decode::<serde_json::Value>() {
        Ok(envelope) => envelope_seen(&envelope["event"], &envelope["data"]),
        Err(_) => Seen::Other,
    }
}

fn envelope_seen(event: &serde_json::Value, data: &serde_json::Value) -> Seen {
    match event.as_str() {
        Some("reaction-stats") => data["total"].as_u64().map_or(Seen::Other, Seen::Stats),
        Some("new-reaction") => Seen::Reaction,
        Some("error") => Seen::Refused(data.to_string()),
        _ => Seen::Other,
    }
}

/// A Socket.IO event packet by its first bytes; `reaction-stats`' `total` from its end.
fn socketio_seen(msg: &[u8]) -> Option<Seen> {
    if msg.starts_with(b"42[\"reaction-stats\",") {
        let tail = &msg[msg.len().saturating_sub(40)..];
        let at = tail.windows(8).rposition(|w| w == b"\"total\":")?;
        let digits: &[u8] = &tail[at + 8..];
        let end = digits.iter().position(|b| !b.is_ascii_digit())?;
        return std::str::from_utf8(&digits[..end]).ok()?.parse().ok().map(Seen::Stats);
    }
    if msg.starts_with(b"42[\"new-reaction\",") {
        return Some(Seen::Reaction);
    }
    None
}

/// Any Socket.IO event packet, parsed.
fn socketio_slow(msg: &[u8]) -> Seen {
    let Some(Ok(serde_json::Value::Array(items))) = msg.strip_prefix(b"42").map(serde_json::from_slice) else {
        return Seen::Other;
    };
    match items.as_slice() {
        [event, data, ..] => envelope_seen(event, data),
        _ => Seen::Other,
    }
}

/// One viewer's tally.
struct Viewer {
    /// Highest total it saw.
    total: Cell<u64>,
    /// Its last `reaction-stats` in the window (the window's start before the first).
    last_stats: Cell<Instant>,
    /// `reaction-stats` in the window.
    stats: Cell<u64>,
    /// Longest time without one in the window.
    max_gap: Cell<Duration>,
}

/// State shared by every task of one run (one thread: plain cells).
struct Flow {
    measuring: Cell<bool>,
    viewers: Vec<Viewer>,
    /// Reactions sent so far; reaction `t` is the `t`-th (from 1).
    sent: Cell<u64>,
    sent_in_window: Cell<u64>,
    /// Reactions the server acknowledged (or refused) so far.
    acked: Cell<u64>,
    /// Most reactions in flight.
    inflight: u64,
    /// Woken by each acknowledgement and each rise of `min_total`.
    progress: Notify,
    /// The lowest total of any viewer.
    min_total: Cell<u64>,
    last_ack: Cell<Instant>,
    /// Highest total any viewer saw.
    max_total: Cell<u64>,
    /// When reaction `t` was written, at `t & mask`.
    sent_at: RefCell<Vec<u64>>,
    mask: u64,
    stats_delivered: Cell<u64>,
    reactions_delivered: Cell<u64>,
    wire_bytes: Cell<u64>,
    sample_counter: Cell<u64>,
    latency: RefCell<Histogram<u64>>,
    errors: Cell<u64>,
    first_error: RefCell<Option<String>>,
    disconnects: Cell<u64>,
    first_disconnect: RefCell<Option<String>>,
    classifier: Classifier,
}

impl Flow {
    fn error(&self, what: String) {
        self.errors.set(self.errors.get() + 1);
        self.first_error.borrow_mut().get_or_insert(what);
    }

    fn on_disconnect(&self, why: &anyhow::Error) {
        self.disconnects.set(self.disconnects.get() + 1);
        self.first_disconnect.borrow_mut().get_or_insert_with(|| format!("{why:#}"));
    }

    /// Viewer `i` read message `m` at `now` (`now_ns` on the stamp clock).
    fn on_viewer(&self, i: usize, proto: Proto, m: Incoming<'_>, now: Instant, now_ns: u64) {
        let msg = match m {
            Incoming::Event { payload, .. } => payload,
            Incoming::Error { code, message, .. } => return self.error(format!("{code} {message}")),
            _ => return,
        };
        match self.classifier.classify(proto, msg) {
            Seen::Stats(total) => self.on_stats(&self.viewers[i], total, now, now_ns),
            Seen::Reaction if self.measuring.get() => {
                self.reactions_delivered.set(self.reactions_delivered.get() + 1);
            }
            Seen::Refused(what) => self.error(what),
            _ => {}
        }
    }

    fn on_stats(&self, viewer: &Viewer, total: u64, now: Instant, now_ns: u64) {
        let before = viewer.total.get();
        if total > before {
            viewer.total.set(total);
            self.max_total.set(self.max_total.get().max(total));
            if before == self.min_total.get() {
                let lowest = self.viewers.iter().map(|v| v.total.get()).min().unwrap_or(total);
                if lowest > self.min_total.get() {
                    self.min_total.set(lowest);
                    self.progress.notify_waiters();
                }
            }
        }
        if !self.measuring.get() {
            return;
        }
        self.stats_delivered.set(self.stats_delivered.get() + 1);
        viewer.stats.set(viewer.stats.get() + 1);
        viewer.max_gap.set(viewer.max_gap.get().max(now.saturating_duration_since(viewer.last_stats.get())));
        viewer.last_stats.set(now);
        let n = self.sample_counter.get() + 1;
        if n >= LATENCY_EVERY && total > before {
            self.sample_counter.set(0);
            let sent = self.sent_at.borrow()[((before + 1) & self.mask) as usize];
            self.latency.borrow_mut().saturating_record((now_ns.saturating_sub(sent) / 1000).max(1));
        } else {
            self.sample_counter.set(n);
        }
    }

    /// Whether another reaction may be sent at `now_ns`: fewer than `--inflight` unacknowledged, and the
    /// slowest viewer at most [`MAX_LAG`] behind.
    fn has_room(&self, now_ns: u64) -> bool {
        if self.sent.get() - self.acked.get() >= self.inflight {
            return false;
        }
        let missing = self.min_total.get() + 1;
        missing > self.sent.get()
            || now_ns.saturating_sub(self.sent_at.borrow()[(missing & self.mask) as usize]) <= MAX_LAG.as_nanos() as u64
    }

    /// The server answered a reaction, which tells that `taken` reactions were taken.
    fn on_ack(&self, taken: u64) {
        self.acked.set(self.acked.get() + taken);
        self.last_ack.set(Instant::now());
        self.progress.notify_waiters();
    }

    /// Reactions are in flight but none was answered for `after`: a loop that stopped making progress.
    fn stalled(&self, after: Duration) -> bool {
        self.sent.get() > self.acked.get() && self.last_ack.get().elapsed() >= after
    }

    /// Takes the next reaction number and records when it was sent.
    fn next_reaction(&self, now_ns: u64) -> u64 {
        let t = self.sent.get() + 1;
        self.sent.set(t);
        self.sent_at.borrow_mut()[(t & self.mask) as usize] = now_ns;
        if self.measuring.get() {
            self.sent_in_window.set(self.sent_in_window.get() + 1);
        }
        t
    }
}

/// The reaction frames of a connection, one per type, each with and without asking for an answer, and
/// where a native answered one's call id sits.
struct Templates {
    answered: Vec<Vec<u8>>,
    unanswered: Vec<Vec<u8>>,
    id_at: Option<usize>,
}

fn templates(conn: &Conn, session: &str) -> anyhow::Result<Templates> {
    let mut t = Templates { answered: Vec::new(), unanswered: Vec::new(), id_at: None };
    for kind in TYPES {
        let args = serde_json::json!({ "sessionId": session, "type": kind });
        match conn.proto() {
            Proto::SocketIo(_) => {
                for (ack, frames) in [(REACTION_ACK.to_string(), &mut t.answered), (String::new(), &mut t.unanswered)] {
                    let mut out = Vec::new();
                    conn.frame(format!("42{ack}[\"send-reaction\",{args}]").as_bytes(), &mut out);
                    frames.push(out);
                }
            }
            _ => {
                let call = |id| -> anyhow::Result<Vec<u8>> {
                    let method = "commerce.send-reaction".to_owned();
                    conn.encode(&ClientFrame::Call { id, method, args: Payload::from_value(&args)? })
                };
                let answered = call(Some(u64::MAX))?;
                let at = answered
                    .windows(ID_PLACEHOLDER.len())
                    .position(|w| w == ID_PLACEHOLDER)
                    .ok_or_else(|| anyhow!("call id not found in the reaction template"))?;
                // Every type's frame has the same layout up to the id (method before args).
                t.id_at = Some(at + 1);
                t.answered.push(answered);
                t.unanswered.push(call(None)?);
            }
        }
    }
    Ok(t)
}

/// Joins the session: subscribe (native) or the seed's `join-session` with an acknowledgement id.
fn join_frame(conn: &Conn, session: &str, topic: &str) -> anyhow::Result<Vec<u8>> {
    match conn.proto() {
        Proto::SocketIo(_) => {
            let mut out = Vec::new();
            conn.frame(format!("421[\"join-session\",{}]", serde_json::to_string(session)?).as_bytes(), &mut out);
            Ok(out)
        }
        _ => conn.encode(&ClientFrame::Subscribe { id: Some(1), topic: topic.to_owned(), since: None }),
    }
}

/// Connects the viewers and joins each to the session, [`SETUP_PARALLELISM`] joins in flight at a time.
async fn connect_viewers(dialer: &Dialer, plan: &Plan, topic: &str) -> anyhow::Result<Vec<Conn>> {
    let mut viewers = connect_all(dialer, plan.viewers, |_| Vec::new()).await?;
    for chunk in viewers.chunks_mut(SETUP_PARALLELISM) {
        for conn in chunk.iter_mut() {
            let frame = join_frame(conn, &plan.session, topic)?;
            conn.send(&frame).await?;
        }
        for conn in chunk.iter_mut() {
            conn.wait(|m| match m {
                Incoming::Reply { id: 1 } => Some(Ok(())),
                Incoming::Error { code, message, .. } => Some(Err(anyhow!("join refused: {code} {message}"))),
                _ => None,
            })
            .await
            .context("joining the session")?;
        }
    }
    Ok(viewers)
}

/// Runs the scenario against one target: sets up, warms up, measures, tears down.
pub async fn run(plan: &Plan, dialer: &Dialer, phases: &Phases, sampler: &Sampler) -> anyhow::Result<Outcome> {
    if plan.viewers == 0 || plan.senders == 0 {
        bail!("--viewers and --senders must be at least 1");
    }
    let topic = format!("commerce/session/{}", plan.session);
    let viewers = connect_viewers(dialer, plan, &topic).await?;
    let senders = connect_all(dialer, plan.senders, |_| Vec::new()).await?;
    let started = Instant::now();
    let flow = Rc::new(Flow {
        measuring: Cell::new(false),
        viewers: (0..viewers.len())
            .map(|_| Viewer {
                total: Cell::new(0),
                last_stats: Cell::new(started),
                stats: Cell::new(0),
                max_gap: Cell::new(Duration::ZERO),
            })
            .collect(),
        sent: Cell::new(0),
        sent_in_window: Cell::new(0),
        acked: Cell::new(0),
        inflight: plan.inflight.max(1),
        progress: Notify::new(),
        min_total: Cell::new(0),
        last_ack: Cell::new(started),
        max_total: Cell::new(0),
        sent_at: RefCell::new(vec![0; SENT_AT_RING]),
        mask: SENT_AT_RING as u64 - 1,
        stats_delivered: Cell::new(0),
        reactions_delivered: Cell::new(0),
        wire_bytes: Cell::new(0),
        sample_counter: Cell::new(0),
        latency: RefCell::new(new_histogram()),
        errors: Cell::new(0),
        first_error: RefCell::new(None),
        disconnects: Cell::new(0),
        first_disconnect: RefCell::new(None),
        classifier: Classifier::new(&topic)?,
    });
    let mut tasks = JoinSet::new();
    for (i, conn) in viewers.into_iter().enumerate() {
        tasks.spawn_local(viewer(conn, i, flow.clone()));
    }
    for conn in senders {
        let templates = templates(&conn, &plan.session)?;
        tasks.spawn_local(sender(conn, flow.clone(), templates));
    }

    let counter = || flow.max_total.get();
    let rate = |r: f64| format!("{} reactions/s", crate::report::si(r));
    phases.warmup(&counter, &rate, &|| None).await;
    let begin = Instant::now();
    for v in &flow.viewers {
        v.last_stats.set(begin);
    }
    let total_before = flow.max_total.get();
    flow.measuring.set(true);
    let window = sampler.begin()?;
    phases.measure(&counter, &rate, &|| None).await;
    flow.measuring.set(false);
    let sample = sampler.end(window)?;
    let (end, total_after) = (Instant::now(), flow.max_total.get());
    let stalled = flow.stalled(STALL);
    tasks.abort_all();
    while tasks.join_next().await.is_some() {}

    let flow = Rc::try_unwrap(flow).map_err(|_| anyhow!("tasks still hold the run state"))?;
    let gap = |v: &Viewer| v.max_gap.get().max(end.saturating_duration_since(v.last_stats.get()));
    Ok(Outcome {
        ingested: total_after - total_before,
        sent: flow.sent_in_window.get(),
        stats_delivered: flow.stats_delivered.get(),
        reactions_delivered: flow.reactions_delivered.get(),
        wire_bytes: flow.wire_bytes.get(),
        starved: flow.viewers.iter().filter(|v| v.stats.get() == 0).count() as u64,
        min_stats: flow.viewers.iter().map(|v| v.stats.get()).min().unwrap_or(0),
        max_gap: flow.viewers.iter().map(gap).max().unwrap_or_default(),
        latency: flow.latency.into_inner(),
        errors: flow.errors.get(),
        first_error: flow.first_error.into_inner(),
        disconnects: flow.disconnects.get(),
        first_disconnect: flow.first_disconnect.into_inner(),
        stalled,
        sample,
    })
}

/// Reads a viewer's deliveries until the connection ends.
async fn viewer(mut conn: Conn, i: usize, flow: Rc<Flow>) {
    let proto = conn.proto();
    let result = async {
        loop {
            let n = conn.fill().await?;
            let (now, now_ns) = (Instant::now(), stamp::now_nanos());
            if flow.measuring.get() {
                flow.wire_bytes.set(flow.wire_bytes.get() + n as u64);
            }
            conn.drain(&mut |m| flow.on_viewer(i, proto, m, now, now_ns))?;
            conn.flush_outbox().await?;
        }
    }
    .await;
    if let Err::<(), anyhow::Error>(e) = result {
        flow.on_disconnect(&e);
    }
}

/// A sender's reactions that asked for an answer and have none yet: for each, oldest first, how many
/// reactions its answer tells were taken (itself and those sent since the one before it).
type Awaited = std::collections::VecDeque<u64>;

/// Handles what a sender reads: answers to its reactions (acknowledgements, refusals).
fn on_sender(flow: &Flow, proto: Proto, awaited: &mut Awaited, m: Incoming<'_>) {
    let mut answered = || flow.on_ack(awaited.pop_front().unwrap_or(0));
    match m {
        Incoming::Reply { .. } => answered(),
        Incoming::Error { id: Some(_), code, message } => {
            flow.error(format!("{code} {message}"));
            answered();
        }
        Incoming::Error { code, message, .. } => flow.error(format!("{code} {message}")),
        Incoming::Event { payload, .. } => {
            if let Seen::Refused(what) = flow.classifier.classify(proto, payload) {
                flow.error(what);
            }
        }
        _ => {}
    }
}

/// Sends reactions whenever fewer than `--inflight` are unanswered, as many per write as that allows, and
/// reads what the server answers between writes so its queue to the sender never fills.
async fn sender(mut conn: Conn, flow: Rc<Flow>, templates: Templates) {
    let proto = conn.proto();
    let mut batch = Vec::with_capacity(MAX_BATCH * templates.answered[0].len());
    let mut awaited = Awaited::new();
    let mut unanswered = 0u64;
    let result = async {
        loop {
            if flow.has_room(stamp::now_nanos()) {
                // Without waiting: whatever has arrived.
                tokio::select! {
                    biased;
                    read = conn.fill() => {
                        read?;
                        conn.drain(&mut |m| on_sender(&flow, proto, &mut awaited, m))?;
                        conn.take_outbox(&mut batch);
                    }
                    _ = std::future::ready(()) => {}
                }
            } else {
                tokio::select! {
                    _ = flow.progress.notified() => {}
                    read = conn.fill() => {
                        read?;
                        conn.drain(&mut |m| on_sender(&flow, proto, &mut awaited, m))?;
                        conn.take_outbox(&mut batch);
                    }
                }
            }
            let now_ns = stamp::now_nanos();
            let (mut n, mut room) = (0, flow.has_room(now_ns));
            while n < MAX_BATCH && room {
                let t = flow.next_reaction(now_ns);
                (n, unanswered, room) = (n + 1, unanswered + 1, flow.has_room(now_ns));
                let ask = unanswered == ACK_EVERY || n == MAX_BATCH || !room;
                let kind = (t % TYPES.len() as u64) as usize;
                let start = batch.len();
                if !ask {
                    batch.extend_from_slice(&templates.unanswered[kind]);
                    continue;
                }
                batch.extend_from_slice(&templates.answered[kind]);
                if let Some(at) = templates.id_at {
                    batch[start + at..start + at + 8].copy_from_slice(&t.to_be_bytes());
                }
                awaited.push_back(unanswered);
                unanswered = 0;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conn::SocketIoEvents;
    use serde_json::json;

    const SESSION: &str = "019ae3c1-2f00-7000-8000-000000000001";

    /// The module's envelope: `event` first (a struct, as the module writes it).
    #[derive(serde::Serialize)]
    struct Envelope<'a> {
        event: &'a str,
        data: serde_json::Value,
    }

    fn native_event(seq: u64, event: &str, data: serde_json::Value) -> Vec<u8> {
        let frame = ServerFrame::Event {
            topic: format!("commerce/session/{SESSION}"),
            seq,
            payload: Payload::from_value(&Envelope { event, data }).unwrap(),
        };
        chorus_protocol::encode_server(Codec::MsgPack, &frame).unwrap().to_vec()
    }

    #[test]
    fn native_events_are_told_apart_on_the_fast_path() {
        let c = Classifier::new(&format!("commerce/session/{SESSION}")).unwrap();
        for (seq, total) in [(3u64, 7u64), (300, 200), (70_000, 65_536), (5_000_000_000, 5_000_000_000)] {
            let stats = native_event(
                seq,
                "reaction-stats",
                json!({ "sessionId": SESSION, "counts": {"like": total}, "total": total }),
            );
            assert_eq!(c.native_fast(&stats), Some(Seen::Stats(total)), "seq {seq}");
            let reaction = native_event(seq, "new-reaction", json!({ "type": "like", "timestamp": "now" }));
            assert_eq!(c.native_fast(&reaction), Some(Seen::Reaction));
        }
        let count = native_event(1, "viewer-count", json!(4));
        assert_eq!(c.native_fast(&count), None);
        assert_eq!(c.classify(Proto::ChorusWs(Codec::MsgPack), &count), Seen::Other);
    }

    #[test]
    fn other_layouts_fall_back_to_decoding() {
        let other = Classifier::new("commerce/session/elsewhere").unwrap();
        let stats = native_event(9, "reaction-stats", json!({ "total": 12, "counts": {}, "sessionId": SESSION }));
        assert_eq!(other.native_fast(&stats), None);
        assert_eq!(other.classify(Proto::ChorusWs(Codec::MsgPack), &stats), Seen::Stats(12));
    }

    #[test]
    fn socketio_packets_of_both_servers() {
        let c = Classifier::new("unused").unwrap();
        let io = Proto::SocketIo(SocketIoEvents::Peer);
        let peer = br#"42["reaction-stats",{"sessionId":"s","counts":{"like":41,"fire":1},"total":42}]"#;
        assert_eq!(c.classify(io, peer), Seen::Stats(42));
        let gateway = br#"42["reaction-stats",{"counts":{"like":3},"sessionId":"s","total":3}]"#;
        assert_eq!(c.classify(io, gateway), Seen::Stats(3));
        let reordered = br#"42["reaction-stats",{"total":5,"counts":{"like":5},"sessionId":"a-long-session-id-here"}]"#;
        assert_eq!(c.classify(io, reordered), Seen::Stats(5));
        assert_eq!(c.classify(io, br#"42["new-reaction",{"type":"like","timestamp":"t"}]"#), Seen::Reaction);
        assert_eq!(
            c.classify(io, br#"42["error",{"message":"Too many","code":2004}]"#),
            Seen::Refused(r#"{"code":2004,"message":"Too many"}"#.to_owned())
        );
        assert_eq!(c.classify(io, br#"42["viewer-count",3]"#), Seen::Other);
    }
}
