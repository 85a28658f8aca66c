//! Metrics. Names are stable (dashboards and alerts use them); handles are resolved once so the hot
//! path increments an atomic instead of looking a key up.
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `chorus_connections` | gauge | `transport` |
//! | `chorus_connections_total` | counter | `transport` |
//! | `chorus_frames_in_total`, `chorus_bytes_in_total` | counter | `transport` |
//! | `chorus_frames_out_total`, `chorus_bytes_out_total` | counter | `transport` |
//! | `chorus_fanout_deliveries_total` | counter | |
//! | `chorus_publishes_total` | counter | |
//! | `chorus_slow_consumer_disconnects_total` | counter | |
//! | `chorus_auth_failures_total` | counter | `reason` |
//! | `chorus_client_errors_total` | counter | `code` |
//! | `chorus_publish_enqueue_seconds` | histogram | |
//! | `chorus_cluster_up` | gauge (1/0) | |
//! | `chorus_cluster_redis_seconds` | histogram | `op` |
//! | `chorus_cluster_messages_in_total`, `chorus_cluster_messages_out_total` | counter | |
//! | `chorus_cluster_reconnects_total`, `chorus_cluster_outages_total` | counter | |
//! | `chorus_cluster_gap_events_filled_total`, `chorus_cluster_resync_closes_total` | counter | |
//! | `chorus_cluster_outbox` | gauge | |
//! | `chorus_cluster_presence_entries` | gauge | |
//! | `chorus_socketio_sessions` | gauge | `transport` (`polling`, `websocket`) |
//! | `chorus_socketio_sockets` | gauge | (namespace connections) |
//! | `chorus_socketio_polling_requests_total` | counter | `method` (`GET`, `POST`) |
//! | `chorus_socketio_upgrades_total` | counter | |
//! | `chorus_socketio_connect_refusals_total` | counter | `reason` |
//! | `chorus_socketio_errors_total` | counter | `reason` |
//!
//! Socket.IO sessions also count in `chorus_connections{transport="socketio"}` and its frame counters
//! (Engine.IO packets in and out).

use metrics::{Counter, Gauge, Histogram, counter, gauge, histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::sync::OnceLock;

/// The transports, as metric label values.
pub const TRANSPORTS: [&str; 3] = ["ws", "quic", "socketio"];

/// Histogram buckets for `*_seconds` metrics: 10 µs to 10 s, covering an in-memory enqueue up to a
/// store round trip that hits its timeout.
const SECONDS_BUCKETS: &[f64] = &[
    0.000_01, 0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
    0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Installs the process-wide Prometheus recorder (once; later calls return the same handle).
pub fn install() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), SECONDS_BUCKETS)
                .expect("bucket list is non-empty")
                .build_recorder();
            let handle = recorder.handle();
            if metrics::set_global_recorder(recorder).is_err() {
                tracing::warn!("a metrics recorder was already installed; /metrics will be empty");
            }
            handle
        })
        .clone()
}

#[derive(Clone)]
struct PerTransport {
    connections: Gauge,
    accepted: Counter,
    frames_in: Counter,
    bytes_in: Counter,
    frames_out: Counter,
    bytes_out: Counter,
}

/// Pre-resolved metric handles shared by the broker's tasks.
#[derive(Clone)]
pub struct Metrics {
    transports: [PerTransport; 3],
    deliveries: Counter,
    publishes: Counter,
    slow_consumers: Counter,
    enqueue: Histogram,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Resolves every handle against the installed recorder.
    pub fn new() -> Self {
        let per = |t: &'static str| PerTransport {
            connections: gauge!("chorus_connections", "transport" => t),
            accepted: counter!("chorus_connections_total", "transport" => t),
            frames_in: counter!("chorus_frames_in_total", "transport" => t),
            bytes_in: counter!("chorus_bytes_in_total", "transport" => t),
            frames_out: counter!("chorus_frames_out_total", "transport" => t),
            bytes_out: counter!("chorus_bytes_out_total", "transport" => t),
        };
        Self {
            transports: TRANSPORTS.map(per),
            deliveries: counter!("chorus_fanout_deliveries_total"),
            publishes: counter!("chorus_publishes_total"),
            slow_consumers: counter!("chorus_slow_consumer_disconnects_total"),
            enqueue: histogram!("chorus_publish_enqueue_seconds"),
        }
    }

    fn of(&self, transport: &str) -> &PerTransport {
        let index = match transport {
            "quic" => 1,
            "socketio" => 2,
            _ => 0,
        };
        &self.transports[index]
    }

    /// A connection opened.
    pub fn connection_opened(&self, transport: &str) {
        let t = self.of(transport);
        t.connections.increment(1.0);
        t.accepted.increment(1);
    }

    /// A connection closed.
    pub fn connection_closed(&self, transport: &str) {
        self.of(transport).connections.decrement(1.0);
    }

    /// Inbound frames were read: `frames` of `bytes` bytes in all.
    pub fn frames_in(&self, transport: &str, frames: u64, bytes: u64) {
        let t = self.of(transport);
        t.frames_in.increment(frames);
        t.bytes_in.increment(bytes);
    }

    /// A batch of outbound frames was written.
    pub fn frames_out(&self, transport: &str, frames: u64, bytes: u64) {
        let t = self.of(transport);
        t.frames_out.increment(frames);
        t.bytes_out.increment(bytes);
    }

    /// A publish was fanned out: `delivered` queues received it, `overflowed` subscribers were cut.
    pub fn fanout(&self, delivered: usize, overflowed: usize, enqueue_seconds: f64) {
        self.publishes.increment(1);
        self.deliveries.increment(delivered as u64);
        if overflowed > 0 {
            self.slow_consumers.increment(overflowed as u64);
        }
        self.enqueue.record(enqueue_seconds);
    }

    /// Events that came from another node were delivered (`delivered` queues, `overflowed` cut).
    pub fn delivered(&self, delivered: usize, overflowed: usize) {
        self.deliveries.increment(delivered as u64);
        if overflowed > 0 {
            self.slow_consumers.increment(overflowed as u64);
        }
    }

    /// A subscriber was cut as a slow consumer outside a publish (e.g. a reply overflowed its queue).
    pub fn slow_consumer(&self) {
        self.slow_consumers.increment(1);
    }

    /// An authentication failure.
    pub fn auth_failure(&self, reason: &'static str) {
        counter!("chorus_auth_failures_total", "reason" => reason).increment(1);
    }

    /// An error frame sent to a client.
    pub fn client_error(&self, code: chorus_protocol::ErrorCode) {
        counter!("chorus_client_errors_total", "code" => code.name()).increment(1);
    }
}

/// Cluster-mode metrics (the Redis bus).
pub mod cluster {
    use metrics::{Counter, counter, gauge, histogram};
    use std::sync::OnceLock;
    use std::time::Duration;

    fn cached(cell: &'static OnceLock<Counter>, make: fn() -> Counter) -> &'static Counter {
        cell.get_or_init(make)
    }

    /// Whether Redis is reachable.
    pub fn up(up: bool) {
        gauge!("chorus_cluster_up").set(if up { 1.0 } else { 0.0 });
    }

    /// One Redis round trip of kind `op`.
    pub fn redis_latency(op: &'static str, took: Duration) {
        histogram!("chorus_cluster_redis_seconds", "op" => op).record(took.as_secs_f64());
    }

    /// An event arrived from another node.
    pub fn message_in() {
        static C: OnceLock<Counter> = OnceLock::new();
        cached(&C, || counter!("chorus_cluster_messages_in_total")).increment(1);
    }

    /// An event was sent to the other nodes.
    pub fn message_out() {
        static C: OnceLock<Counter> = OnceLock::new();
        cached(&C, || counter!("chorus_cluster_messages_out_total")).increment(1);
    }

    /// The Redis connection was re-established.
    pub fn reconnect() {
        counter!("chorus_cluster_reconnects_total").increment(1);
    }

    /// Redis became unreachable.
    pub fn outage() {
        counter!("chorus_cluster_outages_total").increment(1);
    }

    /// Events fetched from a stream to fill a gap.
    pub fn gap_filled(events: usize) {
        counter!("chorus_cluster_gap_events_filled_total").increment(events as u64);
    }

    /// Subscribers closed with 4003 because their gap could not be filled.
    pub fn resync(closed: usize) {
        counter!("chorus_cluster_resync_closes_total").increment(closed as u64);
    }

    /// Publishes waiting in the outbox.
    pub fn outbox(len: usize) {
        gauge!("chorus_cluster_outbox").set(len as f64);
    }

    /// Presence entries this node keeps in Redis.
    pub fn presence_entries(n: usize) {
        gauge!("chorus_cluster_presence_entries").set(n as f64);
    }
}

/// Socket.IO gateway metrics.
pub mod socketio {
    use metrics::{counter, gauge};

    /// A session started on `transport` (`polling` or `websocket`), or moved to it (`delta` -1 on the old).
    pub fn session(transport: &'static str, delta: f64) {
        gauge!("chorus_socketio_sessions", "transport" => transport).increment(delta);
    }

    /// A namespace connection opened (`1.0`) or closed (`-1.0`).
    pub fn socket(delta: f64) {
        gauge!("chorus_socketio_sockets").increment(delta);
    }

    /// A long-polling request.
    pub fn polling_request(method: &'static str) {
        counter!("chorus_socketio_polling_requests_total", "method" => method).increment(1);
    }

    /// A session upgraded from long-polling to WebSocket.
    pub fn upgrade() {
        counter!("chorus_socketio_upgrades_total").increment(1);
    }

    /// A namespace connection was refused (`connect_error`).
    pub fn connect_refused(reason: &'static str) {
        counter!("chorus_socketio_connect_refusals_total", "reason" => reason).increment(1);
    }

    /// A request or packet was refused, or a session closed for a protocol reason.
    pub fn error(reason: &'static str) {
        counter!("chorus_socketio_errors_total", "reason" => reason).increment(1);
    }
}
