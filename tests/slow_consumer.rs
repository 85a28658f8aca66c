//! A subscriber that stops reading is cut with close code 4001; a normal subscriber on the same topic
//! receives every message; the slow-consumer metric counts it. With many such subscribers the broker's
//! memory stays within their queue bounds.

use crate::support::*;
use chorus_client::{Client, Codec, ConnectOptions, Payload};
use serde_json::json;
use std::time::Duration;
use tokio::net::TcpSocket;

const SLOW_METRIC: &str = "chorus_slow_consumer_disconnects_total";

/// A JSON session subscribed to `topic` with a small receive buffer (so the server's socket fills
/// quickly), which the test then never reads until it checks the close.
async fn never_reading_subscriber(broker: &Broker, topic: &str) -> RawWs {
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut ws = raw_ws_via(broker.http, socket, "chorus.v1.json").await.unwrap();
    send_json(&mut ws, json!({"type": "hello"})).await;
    assert_eq!(next_json(&mut ws).await["type"], "welcome");
    send_json(&mut ws, json!({"type": "subscribe", "id": 1, "topic": topic})).await;
    assert_eq!(next_json(&mut ws).await["type"], "reply");
    ws
}

#[tokio::test]
async fn a_client_that_never_reads_is_cut_and_the_others_get_everything() {
    let broker = Broker::start(&["--outbound-queue-bytes", "65536", "--publish-rate", "1000000"]).await;

    let mut slow = never_reading_subscriber(&broker, "firehose").await;

    let reader = Client::connect(ConnectOptions::websocket(broker.ws_url("")).codec(Codec::MsgPack)).await.unwrap();
    reader.subscribe("firehose").await.unwrap();
    let publisher = Client::connect(ConnectOptions::websocket(broker.ws_url(""))).await.unwrap();
    let mut flood = Flood::new("firehose", publisher, reader);

    // Four 8 KiB events a step: half the queue bound, so only the subscriber that never reads overflows.
    let chunk = "x".repeat(8 * 1024);
    while broker.metrics().await.get(SLOW_METRIC) < 1.0 {
        assert!(flood.published < 10_000, "slow consumer never cut after {} messages", flood.published);
        flood.step(4, &chunk).await;
    }
    flood.step(50, "after").await;

    flood.assert_all_read();
    assert_eq!(expect_close(&mut slow).await, Some(4001), "the slow client learns why once it reads");
    assert_eq!(broker.metrics().await.get(SLOW_METRIC), 1.0);
}

/// A publisher and a subscriber that reads, kept in step: each step publishes some events and then reads
/// them all, so the reading subscriber never has more than one step queued at the broker however this
/// test's tasks are scheduled on a loaded machine. Only the subscribers that never read can overflow.
struct Flood {
    topic: &'static str,
    publisher: Client,
    reader: Client,
    published: u64,
    seqs: Vec<u64>,
}

impl Flood {
    fn new(topic: &'static str, publisher: Client, reader: Client) -> Self {
        Flood { topic, publisher, reader, published: 0, seqs: Vec::new() }
    }

    /// Publishes `count` events carrying `data`, then reads `count` events from the reading subscriber.
    async fn step(&mut self, count: usize, data: &str) {
        for _ in 0..count {
            let payload = Payload::from_value(&json!({ "data": data })).unwrap();
            self.publisher.publish(self.topic, payload).await.unwrap();
            self.published += 1;
        }
        for _ in 0..count {
            let event = tokio::time::timeout(Duration::from_secs(30), self.reader.next_event())
                .await
                .expect("the reading subscriber receives each step within 30 s");
            let Some(event) = event else {
                panic!("the reading subscriber's connection ended: {:?}", self.reader.close_info());
            };
            self.seqs.push(event.seq);
        }
    }

    /// The reading subscriber got every published event, in order.
    fn assert_all_read(&self) {
        assert_eq!(
            self.seqs,
            (1..=self.published).collect::<Vec<_>>(),
            "the reading subscriber got every message, in order"
        );
    }
}

/// Outbound queue bound of the memory test: small, so that the cut comes after a few dozen messages.
const QUEUE_BYTES: u64 = 256 * 1024;

/// Subscribers of the memory test that never read.
const NEVER_READING: u64 = 40;

/// RSS allowed above base + queue bound × connections: per-connection state outside the queue (task,
/// WebSocket codec buffers, subscription entries: 35–140 KiB each, bench `connections`), the publish
/// path's transient buffers and allocator slack in a debug build.
const RSS_SLACK: u64 = 32 << 20;

#[tokio::test]
async fn memory_stays_within_the_queue_bounds_while_many_subscribers_never_read() {
    let (broker, mut flood, base) = flood_setup().await;
    let mut slow = Vec::new();
    for _ in 0..NEVER_READING {
        slow.push(never_reading_subscriber(&broker, "flood").await);
    }

    let max_rss = flood_until_cut(&broker, &mut flood, NEVER_READING, base).await;

    let bound = base + QUEUE_BYTES * NEVER_READING + RSS_SLACK;
    eprintln!("RSS: base {base} B, max {max_rss} B, bound {bound} B after {} messages", flood.published);
    assert!(max_rss <= bound, "RSS {max_rss} B above base {base} B + {NEVER_READING} × {QUEUE_BYTES} B + slack");
    flood.assert_all_read();
    assert_eq!(broker.metrics().await.get(SLOW_METRIC), NEVER_READING as f64, "each one was cut as a slow consumer");
    // Read one at a time, most of them long after their cut: the broker gives a goodbye that is not read
    // CLOSE_FLUSH_TIMEOUT (2 s) and then drops the socket, so those see the end without a close frame.
    for ws in &mut slow {
        let code = expect_close(ws).await;
        assert!(matches!(code, Some(4001) | None), "a never-reading subscriber ends with 4001 or no close: {code:?}");
    }
}

/// QUIC subscribers of the memory test that stop reading.
const NEVER_READING_QUIC: u64 = 10;

#[tokio::test]
async fn quic_subscribers_that_stop_reading_hold_no_more_than_their_queue_bound() {
    // Besides its queue, a stuck QUIC subscriber holds what its writer handed quinn and the peer's flow
    // control has not let out yet: the bound allows a second queue's worth each.
    let (broker, mut flood, base) = flood_setup().await;
    let mut stuck = Vec::new();
    for _ in 0..NEVER_READING_QUIC {
        // Room for one event: once it is full the SDK stops reading the stream, and QUIC flow control
        // stops the node's sends.
        let options = ConnectOptions::quic(broker.quic, "localhost").pin_sha256(broker.fingerprint.clone());
        let client = Client::connect(options.event_capacity(1)).await.unwrap();
        client.subscribe("flood").await.unwrap();
        stuck.push(client);
    }

    let max_rss = flood_until_cut(&broker, &mut flood, NEVER_READING_QUIC, base).await;

    let bound = base + 2 * QUEUE_BYTES * NEVER_READING_QUIC + RSS_SLACK;
    eprintln!("RSS: base {base} B, max {max_rss} B, bound {bound} B after {} messages", flood.published);
    assert!(
        max_rss <= bound,
        "RSS {max_rss} B above base {base} B + {NEVER_READING_QUIC} × 2 × {QUEUE_BYTES} B + slack"
    );
    flood.assert_all_read();
    assert_eq!(broker.metrics().await.get(SLOW_METRIC), NEVER_READING_QUIC as f64, "each one was cut");
}

/// Floods in steps of 25 8 KiB events (under the [`QUEUE_BYTES`] bound) until `cut` subscribers were cut as
/// slow consumers; returns the broker's highest RSS meanwhile (from `base`).
async fn flood_until_cut(broker: &Broker, flood: &mut Flood, cut: u64, base: u64) -> u64 {
    let chunk = "x".repeat(8 * 1024);
    let mut max_rss = base;
    while broker.metrics().await.get(SLOW_METRIC) < cut as f64 {
        assert!(
            flood.published < 20_000,
            "not all {cut} stuck subscribers were cut after {} messages",
            flood.published
        );
        flood.step(25, &chunk).await;
        max_rss = max_rss.max(broker.rss_bytes());
    }
    max_rss
}

/// A broker with [`QUEUE_BYTES`] queues, a flood on topic `flood` with its reading subscriber, and the
/// broker's RSS before any stuck subscriber joins.
async fn flood_setup() -> (Broker, Flood, u64) {
    let queue = QUEUE_BYTES.to_string();
    let broker = Broker::start(&["--outbound-queue-bytes", &queue, "--publish-rate", "1000000"]).await;
    let reader = Client::connect(ConnectOptions::websocket(broker.ws_url("")).codec(Codec::MsgPack)).await.unwrap();
    reader.subscribe("flood").await.unwrap();
    let publisher = Client::connect(ConnectOptions::websocket(broker.ws_url(""))).await.unwrap();
    let base = broker.rss_bytes();
    (broker, Flood::new("flood", publisher, reader), base)
}
