//! The Socket.IO gateway of the real binary, driven by the real client libraries: the seeds' own
//! `socket.io-client` snippets (seeds 000 and 001) unchanged, the movie module's calls as acknowledged
//! emits on every transport, `python-socketio`, a room shared with native WebSocket and QUIC clients, and
//! two nodes on one `redis-server`.

use crate::support::*;
use chorus_client::{Client, ConnectOptions, Payload};
use chorus_testkit::socketio::ClientProcess;
use serde_json::{Value, json};
use std::time::Duration;

/// Longest wait for one event a native client expects.
const WAIT: Duration = Duration::from_secs(20);

fn url(broker: &Broker) -> String {
    format!("http://{}", broker.http)
}

async fn scenario(name: &str, options: Value) -> Vec<Value> {
    let client = ClientProcess::node(name, &options).unwrap_or_else(|e| panic!("{e:#}"));
    client.finish().await.unwrap_or_else(|e| panic!("{e:#}"))
}

fn ann() -> String {
    token(json!({ "sub": "ann", "name": "Ann" }))
}

#[tokio::test]
async fn seed_000_client_snippet_joins_and_sees_updates() {
    let broker = Broker::start(&[]).await;
    let lines = scenario("seed-000", json!({ "url": url(&broker), "token": ann() })).await;
    assert_eq!(lines.last(), Some(&json!({ "ok": "seed-000" })));
}

#[tokio::test]
async fn seed_001_client_snippets_join_and_report_errors() {
    let broker = Broker::start(&[]).await;
    let options = json!({ "url": url(&broker), "token": ann() });
    assert_eq!(scenario("seed-001-error", options.clone()).await.last(), Some(&json!({ "ok": "seed-001-error" })));
    assert_eq!(scenario("seed-001-flow", options).await.last(), Some(&json!({ "ok": "seed-001-flow" })));
}

#[tokio::test]
async fn movie_calls_are_acknowledged_emits_on_every_transport() {
    let broker = Broker::start(&[]).await;
    for (transports, expected) in
        [(json!(["polling"]), "polling"), (json!(["websocket"]), "websocket"), (Value::Null, "websocket")]
    {
        let options = json!({ "url": url(&broker), "token": ann(), "name": "Ann", "transports": transports });
        let lines = scenario("movie-calls", options).await;
        assert_eq!(lines.last(), Some(&json!({ "ok": "movie-calls", "transport": expected })));
    }
    let metrics = broker.metrics().await;
    assert!(metrics.get("chorus_socketio_upgrades_total") >= 1.0, "the default transport list upgrades");
}

#[tokio::test]
async fn python_socketio_client_connects_calls_and_receives() {
    let broker = Broker::start(&[]).await;
    let options = json!({ "url": url(&broker), "token": ann(), "name": "Ann", "topic": "py/room" });
    let client = ClientProcess::python(&options).unwrap_or_else(|e| panic!("{e:#}"));
    let lines = client.finish().await.unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!(lines.last().and_then(|l| l.get("ok")), Some(&json!("python")));
}

/// A native client on `broker` over WebSocket or QUIC.
async fn native(broker: &Broker, quic: bool) -> Client {
    let options = if quic {
        ConnectOptions::quic(broker.quic, "localhost").pin_sha256(broker.fingerprint.clone())
    } else {
        ConnectOptions::websocket(broker.ws_url(""))
    };
    Client::connect(options.token(ann()).request_timeout(WAIT)).await.expect("native client connects")
}

async fn next_json(client: &Client) -> Value {
    let event = tokio::time::timeout(WAIT, client.next_event()).await.expect("an event in time").expect("open");
    event.payload.to_json()
}

/// The Socket.IO client sees what native WS and QUIC clients publish, and they see its publish.
async fn shared_topic(socketio: &Broker, natives: &Broker, topic: &str) {
    let ws = native(natives, false).await;
    let quic = native(natives, true).await;
    ws.subscribe(topic).await.expect("ws subscribes");
    quic.subscribe(topic).await.expect("quic subscribes");
    let expect = json!([{ "from": "ws" }, { "from": "quic" }]);
    let options = json!({ "url": url(socketio), "token": ann(), "topic": topic, "expect": expect });
    let mut client = ClientProcess::node("shared-topic", &options).unwrap_or_else(|e| panic!("{e:#}"));
    client.ready().await.unwrap_or_else(|e| panic!("{e:#}"));
    client.go().await.expect("go");
    ws.publish(topic, Payload::from_value(&json!({ "from": "ws" })).unwrap()).await.expect("ws publishes");
    assert_eq!(next_json(&ws).await, json!({ "from": "ws" }));
    assert_eq!(next_json(&quic).await, json!({ "from": "ws" }));
    quic.publish(topic, Payload::from_value(&json!({ "from": "quic" })).unwrap()).await.expect("quic publishes");
    assert_eq!(next_json(&ws).await, json!({ "from": "quic" }));
    assert_eq!(next_json(&quic).await, json!({ "from": "quic" }));
    client.ready().await.unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!(next_json(&ws).await, json!({ "from": "socket.io" }));
    assert_eq!(next_json(&quic).await, json!({ "from": "socket.io" }));
    client.go().await.expect("go");
    let lines = client.finish().await.unwrap_or_else(|e| panic!("{e:#}"));
    let events = &lines.last().expect("a result line")["events"];
    let seqs: Vec<u64> = events.as_array().expect("events").iter().map(|e| e["seq"].as_u64().expect("seq")).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "events in topic order: {seqs:?}");
    assert!(
        tokio::time::timeout(Duration::from_millis(300), ws.next_event()).await.is_err(),
        "each publish arrives once"
    );
}

#[tokio::test]
async fn socketio_ws_and_quic_clients_share_a_topic() {
    let broker = Broker::start(&[]).await;
    shared_topic(&broker, &broker, "mixed/room").await;
}

#[tokio::test]
async fn socketio_client_on_node_b_gets_node_a_publishes_once() {
    let redis = RedisServer::start(&[]).await.expect("redis-server (Debian package redis-server) starts");
    let url = redis.url();
    let mut nodes = Vec::new();
    for name in ["node-a", "node-b"] {
        nodes.push(Broker::start(&["--redis-url", &url, "--store", "redis", "--node-id", name]).await);
    }
    shared_topic(&nodes[1], &nodes[0], "cluster/room").await;
}
