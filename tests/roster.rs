//! Module presence across a cluster: two `chorus` processes on one real `redis-server` (`--store redis`),
//! driven by native clients. Study groups announce a user once however many nodes their tabs are on, and
//! the last tab anywhere leaving — or the node holding it being SIGKILLed — announces their departure
//! once; live commerce counts a viewer once across nodes and drops a killed node's viewers, and keeps the
//! reactions counted on every node.

use crate::support::*;
use chorus_client::{Client, ConnectOptions, Payload};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

/// Heartbeat of the test clusters: a dead node is noticed within three of them.
const HEARTBEAT_MS: u64 = 200;

/// Longest wait for one expected event: two debug brokers and Redis share two cores.
const WAIT: Duration = Duration::from_secs(20);

async fn two_nodes(redis: &RedisServer) -> (Broker, Broker) {
    let url = redis.url();
    let heartbeat = HEARTBEAT_MS.to_string();
    let args = |id: &'static str| {
        vec![
            "--redis-url",
            url.as_str(),
            "--store",
            "redis",
            "--node-id",
            id,
            "--cluster-heartbeat-ms",
            heartbeat.as_str(),
        ]
    };
    let (args_a, args_b) = (args("node-a"), args("node-b"));
    let (a, b) = tokio::join!(Broker::start(&args_a), Broker::start(&args_b));
    (a, b)
}

/// A native WebSocket client signed in as `sub` (named `Name <sub>`, with `role` if given).
async fn user(broker: &Broker, sub: &str) -> Client {
    let options = ConnectOptions::websocket(broker.ws_url(""))
        .token(token(json!({"sub": sub, "name": format!("Name {sub}")})))
        .request_timeout(WAIT);
    Client::connect(options).await.unwrap_or_else(|e| panic!("{sub} cannot connect to {}: {e}", broker.http))
}

/// A JSON request to `broker` as `sub`; returns (status, body).
async fn rest(broker: &Broker, sub: &str, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let bearer = format!("Bearer {}", token(json!({"sub": sub, "name": format!("Name {sub}")})));
    let body = body.map(|b| b.to_string());
    let headers = [("authorization", bearer.as_str()), ("content-type", "application/json")];
    let (status, text) = http_request(broker.http, method, path, &headers, body.as_deref()).await.expect("HTTP");
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// The next event's `(event, data)` envelope on any of `client`'s topics.
async fn next(client: &Client, what: &str) -> (String, Value) {
    let event = tokio::time::timeout(WAIT, client.next_event())
        .await
        .unwrap_or_else(|_| panic!("{what}: no event within {WAIT:?}"))
        .unwrap_or_else(|| panic!("{what}: closed ({:?})", client.close_info()));
    let payload = event.payload.to_json();
    (
        payload["event"].as_str().unwrap_or_else(|| panic!("{what}: not an envelope: {payload}")).to_owned(),
        payload["data"].clone(),
    )
}

/// The events reaching `client` before the marker event `marker`.
async fn until_marker(client: &Client, what: &str, marker: &str) -> Vec<(String, Value)> {
    let mut seen = Vec::new();
    loop {
        let (event, data) = next(client, what).await;
        if event == marker {
            return seen;
        }
        seen.push((event, data));
    }
}

/// Reads `client`'s events until a `viewer-count` of `want`.
async fn count_reaches(client: &Client, what: &str, want: u64) {
    loop {
        let (event, data) = next(client, what).await;
        if event == "viewer-count" && data.as_u64() == Some(want) {
            return;
        }
    }
}

fn presence_of(state: &Value) -> Vec<String> {
    state["presence"].as_array().expect("presence").iter().map(|p| p["userId"].as_str().unwrap().to_owned()).collect()
}

#[tokio::test]
async fn study_group_presence_is_per_user_across_nodes_and_a_killed_node_announces_its_users_leaving() {
    let redis = RedisServer::start(&[]).await.expect("redis-server");
    let (a, mut b) = two_nodes(&redis).await;
    let (status, created) =
        rest(&a, "fay", "POST", "/group-sessions", Some(json!({"groupId": "g1", "rounds": 1}))).await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().expect("session id").to_owned();
    let topic = format!("study/session/{id}");

    let watcher = user(&a, "wes").await;
    watcher.subscribe(&topic).await.expect("wes joins");
    assert_eq!(next(&watcher, "wes").await.0, "userJoined", "wes's own arrival");

    let ann_a = user(&a, "ann").await;
    let ann_b = user(&b, "ann").await;
    let bob_b = user(&b, "bob").await;
    ann_a.subscribe(&topic).await.expect("ann on node a");
    let reply = ann_b.subscribe(&topic).await.expect("ann on node b");
    let state = reply.snapshot.expect("snapshot").to_json()["data"].clone();
    assert_eq!(presence_of(&state), ["ann", "wes"], "node b sees who joined on node a: {state}");
    bob_b.subscribe(&topic).await.expect("bob on node b");
    // A marker: every presence event before it came from the joins above.
    let (status, _) = rest(&b, "fay", "PUT", &format!("/group-sessions/{id}/start"), None).await;
    assert_eq!(status, 200);
    let seen = until_marker(&watcher, "wes", "session.started").await;
    let joined: Vec<(&str, &str)> =
        seen.iter().map(|(e, d)| (e.as_str(), d["userId"].as_str().unwrap_or_default())).collect();
    assert_eq!(joined, [("userJoined", "ann"), ("userJoined", "bob")], "ann announced once for two nodes");
    assert_eq!(seen[0].1["userName"], "Name ann");
    assert_eq!(seen[0].1["sessionId"], id.as_str());

    // Node b dies with ann's second tab and bob's only one: bob leaves, ann stays (node a holds her).
    b.kill().await;
    let killed = Instant::now();
    let (event, data) = next(&watcher, "wes after the kill").await;
    assert_eq!((event.as_str(), data["userId"].as_str()), ("userLeft", Some("bob")), "{data}");
    assert_eq!(data["userName"], "Name bob");
    assert!(data["timestamp"].is_string(), "{data}");
    println!("bob's departure announced {:?} after the SIGKILL (heartbeat {HEARTBEAT_MS} ms)", killed.elapsed());
    let state = watcher.call("study.getSession", Payload::from_value(&json!({"sessionId": id})).unwrap()).await;
    assert_eq!(presence_of(&state.expect("state").to_json()), ["ann", "wes"]);

    ann_a.close().await;
    let (event, data) = next(&watcher, "wes after ann's last tab").await;
    assert_eq!((event.as_str(), data["userId"].as_str()), ("userLeft", Some("ann")), "{data}");
}

/// A live-commerce session with one product, created and started over REST on `broker` by `creator`;
/// returns its id.
async fn live_session(broker: &Broker, creator: &str) -> String {
    let product = json!({"name": "Lamp", "description": "A lamp", "price": 10.0});
    let (status, created) = rest(broker, creator, "POST", "/api/products", Some(product)).await;
    assert_eq!(status, 201, "{created}");
    let product_id = created["data"]["id"].as_str().unwrap().to_owned();
    let session = json!({"title": "Lamps", "productIds": [product_id]});
    let (status, created) = rest(broker, creator, "POST", "/api/sessions", Some(session)).await;
    assert_eq!(status, 201, "{created}");
    let id = created["data"]["id"].as_str().unwrap().to_owned();
    let (status, started) = rest(broker, creator, "POST", &format!("/api/sessions/{id}/start-stream"), None).await;
    assert_eq!(status, 200, "{started}");
    id
}

#[tokio::test]
async fn live_commerce_counts_a_viewer_once_across_nodes_and_drops_a_killed_nodes_viewers() {
    let redis = RedisServer::start(&[]).await.expect("redis-server");
    let (a, mut b) = two_nodes(&redis).await;
    let id = live_session(&a, "cleo").await;
    let topic = format!("commerce/session/{id}");

    let creator = user(&a, "cleo").await;
    let reply = creator.subscribe(&topic).await.expect("creator joins");
    assert_eq!(reply.snapshot.expect("snapshot").to_json()["data"], 0, "the creator is not counted");

    let vera_a = user(&a, "vera").await;
    vera_a.subscribe(&topic).await.expect("vera on node a");
    count_reaches(&creator, "creator", 1).await;
    let vera_b = user(&b, "vera").await;
    let reply = vera_b.subscribe(&topic).await.expect("vera on node b");
    assert_eq!(reply.snapshot.expect("snapshot").to_json()["data"], 1, "vera's second connection counts once");
    let walt_b = user(&b, "walt").await;
    let reply = walt_b.subscribe(&topic).await.expect("walt on node b");
    assert_eq!(reply.snapshot.expect("snapshot").to_json()["data"], 2, "walt on node b sees node a's viewer");
    count_reaches(&creator, "creator", 2).await;

    b.kill().await;
    count_reaches(&creator, "creator after the kill", 1).await;
    vera_a.close().await;
    count_reaches(&creator, "creator after vera left", 0).await;
}

/// Sends a reaction of `kind` to session `id` and returns the `reaction-stats` it is answered with.
async fn react(client: &Client, id: &str, kind: &str) -> Value {
    let args = Payload::from_value(&json!({"sessionId": id, "type": kind})).unwrap();
    client.call("commerce.send-reaction", args).await.expect("reaction accepted").to_json()
}

/// Waits until `GET /api/sessions/:id/reactions` on `broker` reports `want` (counts by type). The live
/// commerce module flushes every 5 s, and a node reads the other nodes' counts when it flushes.
async fn reactions_reach(broker: &Broker, id: &str, want: &Value) {
    let started = Instant::now();
    loop {
        let (status, body) = rest(broker, "cleo", "GET", &format!("/api/sessions/{id}/reactions"), None).await;
        assert_eq!(status, 200, "{body}");
        if &body["data"]["reactions"] == want {
            return;
        }
        assert!(started.elapsed() < 2 * WAIT, "reactions on {} stay {body}, not {want}", broker.http);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn live_commerce_keeps_the_reactions_of_every_node_and_each_node_learns_the_others() {
    let redis = RedisServer::start(&[]).await.expect("redis-server");
    let (a, b) = two_nodes(&redis).await;
    let id = live_session(&a, "cleo").await;
    let topic = format!("commerce/session/{id}");
    let (ann, bob) = (user(&a, "ann").await, user(&b, "bob").await);
    ann.subscribe(&topic).await.expect("ann joins on node a");
    bob.subscribe(&topic).await.expect("bob joins on node b");

    for kind in ["heart", "heart", "like"] {
        react(&ann, &id, kind).await;
    }
    for kind in ["heart", "fire"] {
        react(&bob, &id, kind).await;
    }
    let every_node = json!({"fire": 1, "heart": 3, "like": 1});
    reactions_reach(&a, &id, &every_node).await;
    reactions_reach(&b, &id, &every_node).await;
    let stats = react(&bob, &id, "like").await;
    assert_eq!(stats["counts"], json!({"fire": 1, "heart": 3, "like": 2}), "node b counts node a's reactions: {stats}");
    assert_eq!(stats["total"], 6, "{stats}");

    // A node that starts now has nothing in memory: it reads the session's totals from the shared store,
    // where each node keeps its own row, so neither overwrote the other's counts.
    let c = Broker::start(&["--redis-url", &redis.url(), "--store", "redis", "--node-id", "node-c"]).await;
    reactions_reach(&c, &id, &json!({"fire": 1, "heart": 3, "like": 2})).await;
}
