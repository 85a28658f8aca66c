//! Cluster mode: three `chorus` processes sharing one real `redis-server` (`--redis-url … --store redis`).
//!
//! A publish on any node reaches every node's subscribers exactly once, in topic order; presence and
//! counters are cluster-wide, and a dead node's users drop out within three heartbeats; a client resumes
//! on any node; the nodes ride out a Redis crash and restart; bookings made on different nodes never
//! overbook and every node's watchers see them.

use crate::support::*;
use chorus_client::{Client, ConnectOptions, Event, Payload};
use futures_util::future::join_all;
use serde_json::{Value, json};
use std::collections::HashSet;
use std::time::{Duration, Instant};

/// Nodes per cluster.
pub(crate) const NODES: usize = 3;

/// Node names, by index: what failure messages call them.
pub(crate) const NAMES: [&str; NODES] = ["node-a", "node-b", "node-c"];

/// Longest wait for one expected event or answer: a debug build of three brokers and Redis share two
/// cores, so this is generous; a healthy run waits milliseconds.
pub(crate) const WAIT: Duration = Duration::from_secs(20);

/// Events a test client buffers: more than any test has in flight, so a subscriber that is busy being
/// checked is never cut as a slow consumer.
const EVENTS: usize = 16_384;

/// Starts `NODES` brokers (concurrently) in cluster mode on `redis`, each with `extra` flags and its stderr
/// recorded (see [`assert_alive`]).
pub(crate) async fn start_nodes(redis: &RedisServer, extra: &[&str]) -> Vec<Broker> {
    let url = redis.url();
    let starts = NAMES.iter().map(|name| {
        let mut args = vec!["--redis-url", url.as_str(), "--store", "redis", "--node-id", name];
        args.extend_from_slice(extra);
        async move { Broker::start_recording(&args).await }
    });
    join_all(starts).await
}

/// `ann` → `Ann`: the display name tokens carry.
fn display_name(sub: &str) -> String {
    let mut name = sub.to_owned();
    if let Some(first) = name.get_mut(0..1) {
        first.make_ascii_uppercase();
    }
    name
}

/// A native WebSocket client (MessagePack) signed in as `sub`.
pub(crate) async fn connect(broker: &Broker, sub: &str) -> Client {
    let options = ConnectOptions::websocket(broker.ws_url(""))
        .token(token(json!({"sub": sub, "name": display_name(sub)})))
        .event_capacity(EVENTS)
        .request_timeout(WAIT);
    Client::connect(options).await.unwrap_or_else(|e| panic!("{sub} cannot connect to {}: {e}", broker.http))
}

/// A client as `sub` on `broker`, subscribed to `topic`; returns it with the subscribe reply's `seq`.
async fn subscriber(broker: &Broker, sub: &str, topic: &str) -> (Client, u64) {
    let client = connect(broker, sub).await;
    let reply = client.subscribe(topic).await.unwrap_or_else(|e| panic!("{sub} subscribing to {topic}: {e}"));
    (client, reply.seq)
}

/// Calls `method` with JSON `args` and returns the result as JSON.
pub(crate) async fn call(client: &Client, method: &str, args: Value) -> Value {
    let payload = Payload::from_value(&args).expect("call args");
    client.call(method, payload).await.unwrap_or_else(|e| panic!("{method} {args}: {e}")).to_json()
}

/// The next event, within [`WAIT`]; `what` names the client in the failure.
async fn next_event(client: &Client, what: &str) -> Event {
    tokio::time::timeout(WAIT, client.next_event())
        .await
        .unwrap_or_else(|_| panic!("{what}: no event within {WAIT:?}"))
        .unwrap_or_else(|| panic!("{what}: connection closed ({:?}) while waiting for an event", client.close_info()))
}

/// The next event as `(seq, payload)`.
async fn next_seq(client: &Client, what: &str) -> (u64, Value) {
    let event = next_event(client, what).await;
    (event.seq, event.payload.to_json())
}

async fn publish(client: &Client, topic: &str, value: Value) -> u64 {
    client
        .publish(topic, Payload::from_value(&value).expect("payload"))
        .await
        .unwrap_or_else(|e| panic!("publishing {value} to {topic}: {e}"))
}

// ---------------------------------------------------------------------------------------------------
// 1. Fan-out: every publish on every node, exactly once, in topic order.
// ---------------------------------------------------------------------------------------------------

/// Messages published in the fan-out test, over all publishers.
const FANOUT_TOTAL: usize = 10_000;

/// What one subscriber received: `(seq, publisher, index)` in arrival order, and why it stopped early.
struct Received {
    events: Vec<(u64, u64, u64)>,
    stopped: Option<String>,
}

/// Reads `n` events, or what arrives before the stream goes quiet for [`WAIT`] or closes.
async fn collect(client: Client, n: usize) -> Received {
    let mut events = Vec::with_capacity(n);
    while events.len() < n {
        match tokio::time::timeout(WAIT, client.next_event()).await {
            Ok(Some(e)) => {
                let v = e.payload.to_json();
                let (Some(p), Some(i)) = (v["p"].as_u64(), v["i"].as_u64()) else {
                    return Received { events, stopped: Some(format!("unexpected payload {v} at seq {}", e.seq)) };
                };
                events.push((e.seq, p, i));
            }
            Ok(None) => return Received { events, stopped: Some(format!("closed: {:?}", client.close_info())) },
            Err(_) => return Received { events, stopped: Some(format!("nothing for {WAIT:?}")) },
        }
    }
    Received { events, stopped: None }
}

/// Everything wrong with what one subscriber received (empty: all good).
fn fanout_problems(got: &Received, shares: &[usize]) -> Vec<String> {
    let mut problems = Vec::new();
    let events = &got.events;
    if let Some(why) = &got.stopped {
        problems.push(format!("stopped after {} of {FANOUT_TOTAL} events: {why}", events.len()));
    } else if events.len() != FANOUT_TOTAL {
        problems.push(format!("{} events, expected {FANOUT_TOTAL}", events.len()));
    }
    let mut seen_seq = HashSet::new();
    let dup_seq: Vec<u64> = events.iter().map(|e| e.0).filter(|s| !seen_seq.insert(*s)).take(5).collect();
    if !dup_seq.is_empty() {
        problems.push(format!("duplicate seqs (first few): {dup_seq:?}"));
    }
    let mut seen_msg = HashSet::new();
    let dup_msg: Vec<(u64, u64)> = events.iter().map(|e| (e.1, e.2)).filter(|m| !seen_msg.insert(*m)).take(5).collect();
    if !dup_msg.is_empty() {
        problems.push(format!("duplicate messages (publisher, index), first few: {dup_msg:?}"));
    }
    let missing: Vec<u64> = (1..=FANOUT_TOTAL as u64).filter(|s| !seen_seq.contains(s)).collect();
    if !missing.is_empty() {
        problems.push(format!("{} seqs missing, first few {:?}", missing.len(), &missing[..missing.len().min(5)]));
    }
    if let Some(at) = events.iter().enumerate().position(|(k, e)| e.0 != k as u64 + 1) {
        let around = &events[at.saturating_sub(2)..(at + 3).min(events.len())];
        problems.push(format!("not in topic order: arrival #{at} has seq {} (around: {around:?})", events[at].0));
    }
    for (p, &share) in shares.iter().enumerate() {
        let indexes: Vec<u64> = events.iter().filter(|e| e.1 == p as u64).map(|e| e.2).collect();
        if let Some(w) = indexes.windows(2).position(|w| w[1] <= w[0]) {
            problems.push(format!("publisher {p}: index {} arrived after {}", indexes[w + 1], indexes[w]));
        }
        if indexes.len() != share {
            problems.push(format!("publisher {p}: {} of its {share} messages", indexes.len()));
        }
    }
    problems
}

/// Three publishers, one per node, 10,000 messages in all; one subscriber per node gets each exactly once,
/// numbered 1..=10,000 in arrival order, each publisher's messages in the order it sent them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_publish_reaches_every_node_once_in_topic_order() {
    let redis = RedisServer::start(&[]).await.expect("redis-server");
    // The default rate (1000/s per connection) would drop most of a 3,334-message burst. A node whose
    // listener falls behind the bus (a loaded machine) refills from the topic's stream; the stream must
    // hold the whole burst for that, or the node resyncs its subscribers (4003) as designed.
    let history = FANOUT_TOTAL.to_string();
    let nodes = start_nodes(&redis, &["--publish-rate", "1000000", "--history-size", &history]).await;
    let topic = "fanout/all";
    let shares: Vec<usize> = (0..NODES).map(|p| FANOUT_TOTAL / NODES + usize::from(p < FANOUT_TOTAL % NODES)).collect();

    let mut collectors = Vec::new();
    for (n, node) in nodes.iter().enumerate() {
        let (client, seq) = subscriber(node, &format!("sub-{n}"), topic).await;
        assert_eq!(seq, 0, "{}: a fresh topic starts at seq 0", NAMES[n]);
        collectors.push(tokio::spawn(collect(client, FANOUT_TOTAL)));
    }
    let mut publishers = Vec::new();
    for (p, node) in nodes.iter().enumerate() {
        publishers.push(connect(node, &format!("pub-{p}")).await);
    }

    let started = Instant::now();
    let sends = publishers.into_iter().zip(shares.clone()).enumerate().map(|(p, (client, share))| {
        tokio::spawn(async move {
            let payload = |i: usize| Payload::from_value(&json!({"p": p, "i": i})).expect("payload");
            // Fire-and-forget keeps a pipeline full; the last one is acknowledged, and a connection's frames
            // are served in order, so its reply means every earlier publish has been handled.
            for i in 0..share - 1 {
                client.publish_nowait(topic, payload(i)).await.unwrap_or_else(|e| panic!("pub-{p} #{i}: {e}"));
            }
            let last = client.publish(topic, payload(share - 1)).await;
            let refused = client.take_errors();
            assert!(refused.is_empty(), "pub-{p}: the broker refused publishes: {refused:?}");
            let last = last.unwrap_or_else(|e| panic!("pub-{p}: last publish: {e}"));
            assert!(last > 0, "pub-{p}: a sequenced publish has seq > 0, got {last}");
            client
        })
    });
    let publishers: Vec<Client> = join_all(sends).await.into_iter().map(|r| r.expect("publisher task")).collect();
    let published = started.elapsed();

    let mut orders = Vec::new();
    let mut report = Vec::new();
    for (n, collector) in collectors.into_iter().enumerate() {
        let got = collector.await.expect("collector task");
        for problem in fanout_problems(&got, &shares) {
            report.push(format!("{}: {problem}", NAMES[n]));
        }
        orders.push(got.events);
    }
    println!("{FANOUT_TOTAL} publishes in {published:?}, all delivered after {:?}", started.elapsed());
    assert!(report.is_empty(), "fan-out across {NODES} nodes failed:\n  {}", report.join("\n  "));
    assert!(orders.windows(2).all(|w| w[0] == w[1]), "every node delivers the same sequence");
    drop(publishers);
}

// ---------------------------------------------------------------------------------------------------
// 2. Presence.
// ---------------------------------------------------------------------------------------------------

/// `chorus.presence` on `topic`, with members sorted by user (the order is not part of the contract).
async fn presence(client: &Client, topic: &str) -> Value {
    let mut answer = call(client, "chorus.presence", json!({"topic": topic})).await;
    if let Some(members) = answer["members"].as_array_mut() {
        members.sort_by(|a, b| a["user"].as_str().cmp(&b["user"].as_str()));
    }
    answer
}

fn presence_of(members: &[(&str, u64)]) -> Value {
    let members: Vec<Value> = members
        .iter()
        .map(|(user, connections)| json!({"user": user, "name": display_name(user), "connections": connections}))
        .collect();
    json!({"count": members.len(), "members": members})
}

/// Users on three nodes (one of them on two) are listed alike on every node; after one node is killed,
/// its users are gone from the others' answers within 3 heartbeats.
#[tokio::test]
async fn presence_is_cluster_wide_and_a_killed_nodes_users_expire_within_three_heartbeats() {
    const HEARTBEAT_MS: u64 = 200;
    let redis = RedisServer::start(&[]).await.expect("redis-server");
    let mut nodes = start_nodes(&redis, &["--cluster-heartbeat-ms", &HEARTBEAT_MS.to_string()]).await;
    let topic = "lobby";
    let placement = [(0, "ann"), (0, "bob"), (1, "cat"), (1, "dan"), (2, "eve"), (2, "fay"), (2, "ann")];
    let mut clients: Vec<(usize, Client)> = Vec::new();
    for (n, user) in placement {
        clients.push((n, subscriber(&nodes[n], user, topic).await.0));
    }
    // The first client placed on each node asks that node.
    let asker = |n: usize| &clients.iter().find(|(on, _)| *on == n).expect("a client on every node").1;

    let everyone = presence_of(&[("ann", 2), ("bob", 1), ("cat", 1), ("dan", 1), ("eve", 1), ("fay", 1)]);
    // Presence is written to Redis in the background: wait until each node lists everyone.
    for (n, name) in NAMES.iter().enumerate() {
        let deadline = Instant::now() + WAIT;
        loop {
            let answer = presence(asker(n), topic).await;
            if answer == everyone {
                break;
            }
            assert!(Instant::now() < deadline, "{name}: presence is {answer}, expected {everyone}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    nodes[2].kill().await;
    let killed = Instant::now();
    let bound = Duration::from_millis(3 * HEARTBEAT_MS);
    // Slack for the poll itself (a presence call and a Redis round trip on a loaded machine).
    let deadline = bound + Duration::from_millis(400);
    let survivors = presence_of(&[("ann", 1), ("bob", 1), ("cat", 1), ("dan", 1)]);
    let mut gone_at: [Option<Duration>; 2] = [None, None];
    let mut last = [Value::Null, Value::Null];
    while gone_at.iter().any(Option::is_none) && killed.elapsed() <= deadline {
        for n in 0..2 {
            if gone_at[n].is_none() {
                last[n] = presence(asker(n), topic).await;
                if last[n] == survivors {
                    gone_at[n] = Some(killed.elapsed());
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for n in 0..2 {
        assert!(
            gone_at[n].is_some(),
            "{}: {}'s users still listed {deadline:?} after its SIGKILL (bound: 3 × {HEARTBEAT_MS} ms); last answer \
             {}, expected {survivors}",
            NAMES[n],
            NAMES[2],
            last[n]
        );
    }
    println!("killed node's users gone after {gone_at:?} (bound {bound:?})");
}

// ---------------------------------------------------------------------------------------------------
// 3. Counters.
// ---------------------------------------------------------------------------------------------------

/// A node's reading of the topic's shared counter (adding nothing).
async fn counter(client: &Client, topic: &str) -> Option<i64> {
    call(client, "chorus.counter", json!({"topic": topic})).await["value"].as_i64()
}

/// 100 adds on each of three nodes at once; two flush intervals later every node reads exactly 300.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_counters_add_up_across_nodes_within_two_flush_intervals() {
    const FLUSH_MS: u64 = 250;
    const ADDS: i64 = 100;
    let redis = RedisServer::start(&[]).await.expect("redis-server");
    let nodes = start_nodes(&redis, &["--counter-flush-ms", &FLUSH_MS.to_string()]).await;
    let topic = "likes/post-1";
    let mut clients = Vec::new();
    for (n, node) in nodes.iter().enumerate() {
        clients.push(subscriber(node, &format!("liker-{n}"), topic).await.0);
    }

    let adders = clients.iter().enumerate().map(|(n, client)| async move {
        for k in 0..ADDS {
            let answer = call(client, "chorus.counter", json!({"topic": topic, "add": 1})).await;
            let value = answer["value"].as_i64().unwrap_or_else(|| panic!("{}: counter answered {answer}", NAMES[n]));
            assert!(value > k, "{}: after {} of its own adds the total reads {value}", NAMES[n], k + 1);
        }
    });
    join_all(adders).await;
    let added = Instant::now();

    // The documented bound is a time: each node flushes its deltas within one interval and reads the
    // others' within the next. Waiting it out is the test.
    tokio::time::sleep(Duration::from_millis(2 * FLUSH_MS)).await;
    let expected = Some(ADDS * NODES as i64);
    let values: Vec<Option<i64>> = join_all(clients.iter().map(|c| counter(c, topic))).await;
    if values.iter().any(|v| *v != expected) {
        let at = added.elapsed();
        // Find out whether (and when) they converge, so the failure says which bound is wrong.
        let deadline = Instant::now() + WAIT;
        let mut later = values.clone();
        while later.iter().any(|v| *v != expected) && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
            later = join_all(clients.iter().map(|c| counter(c, topic))).await;
        }
        panic!(
            "{at:?} after the last add (2 × {FLUSH_MS} ms flush) the nodes read {values:?}, expected {expected:?} \
             everywhere; {:?} after the last add they read {later:?}",
            added.elapsed()
        );
    }
}

// ---------------------------------------------------------------------------------------------------
// 4. Recovery on another node.
// ---------------------------------------------------------------------------------------------------

/// A client leaves node A, events are published on B, it comes back on C: exactly the missed events, in
/// order, `recovered: true`. With more missed than the history holds (5): `recovered: false`, nothing
/// replayed.
#[tokio::test]
async fn a_client_resumes_on_another_node() {
    let redis = RedisServer::start(&[]).await.expect("redis-server");
    let nodes = start_nodes(&redis, &["--history-size", "5"]).await;
    let topic = "news/world";
    let publisher = connect(&nodes[1], "desk").await;

    let reader = connect(&nodes[0], "reader").await;
    let reply = reader.subscribe(topic).await.expect("subscribe on node-a");
    assert_eq!(reply.seq, 0);
    let epoch = reply.epoch.clone().expect("cluster subscribe replies carry an epoch");
    for i in 1..=3 {
        assert_eq!(publish(&publisher, topic, json!({"n": i})).await, i, "seq of publish {i} on {}", NAMES[1]);
    }
    let mut seen = Vec::new();
    for _ in 1..=3 {
        seen.push(next_seq(&reader, "reader on node-a").await);
    }
    assert_eq!(seen, (1..=3).map(|i| (i, json!({"n": i}))).collect::<Vec<_>>(), "live events from node-b on node-a");
    reader.close().await;
    for i in 4..=6 {
        publish(&publisher, topic, json!({"n": i})).await;
    }

    // Back on node C with the position of the last event seen.
    let back = connect(&nodes[2], "reader").await;
    let position = reply.position(3).expect("position");
    let resumed = back.subscribe_since(topic, position).await.expect("resume on node-c");
    assert_eq!(
        (resumed.recovered, resumed.seq, resumed.epoch.as_deref()),
        (Some(true), 6, Some(epoch.as_str())),
        "resuming on node-c after 3 of 6 events: recovered, at seq 6, same epoch"
    );
    publish(&publisher, topic, json!({"n": 7})).await;
    let mut got = Vec::new();
    for _ in 4..=7 {
        got.push(next_seq(&back, "reader back on node-c").await);
    }
    assert_eq!(got, (4..=7).map(|i| (i, json!({"n": i}))).collect::<Vec<_>>(), "the 3 missed, then live, once each");
    back.close().await;

    // Seven missed with a history of five: the gap cannot be filled.
    for i in 8..=14 {
        publish(&publisher, topic, json!({"n": i})).await;
    }
    let again = connect(&nodes[0], "reader").await;
    let position = reply.position(7).expect("position");
    let lost = again.subscribe_since(topic, position).await.expect("resume on node-a");
    assert_eq!(
        (lost.recovered, lost.seq),
        (Some(false), 14),
        "7 missed events with --history-size 5: not recoverable, head at 14"
    );
    publish(&publisher, topic, json!({"n": 15})).await;
    assert_eq!(
        next_seq(&again, "reader on node-a after a failed recovery").await,
        (15, json!({"n": 15})),
        "nothing replayed after a failed recovery; live events continue"
    );
}

// ---------------------------------------------------------------------------------------------------
// 5. Redis crash and restart.
// ---------------------------------------------------------------------------------------------------

/// Waits until every node's `path` answers `status`; panics with the statuses seen otherwise.
pub(crate) async fn until_all(nodes: &[Broker], path: &str, status: u16, within: Duration, why: &str) -> Duration {
    let started = Instant::now();
    loop {
        let statuses: Vec<u16> = join_all(nodes.iter().map(|n| n.get(path))).await.into_iter().map(|r| r.0).collect();
        if statuses.iter().all(|s| *s == status) {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < within,
            "{why}: {path} of {NAMES:?} is {statuses:?} after {within:?}, expected {status}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Checks that every node still runs, answers `/health`, and has not logged a panic.
pub(crate) async fn assert_alive(nodes: &mut [Broker], when: &str) {
    for (n, node) in nodes.iter_mut().enumerate() {
        assert!(node.is_running(), "{} exited {when}: {:?}", NAMES[n], node.child.try_wait());
        assert_eq!(node.get("/health").await.0, 200, "{}: /health {when}", NAMES[n]);
        let stderr = node.stderr();
        assert!(!stderr.contains("panicked"), "{} panicked {when}:\n{stderr}", NAMES[n]);
    }
}

/// Redis is SIGKILLed and restarted on the same port (its data in an append-only file): the nodes stay
/// up, report not ready meanwhile, deliver a publish made during the outage locally at once (seq 0) and
/// to the other nodes once Redis is back, and deliver across nodes again afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_ride_out_a_redis_crash_and_restart() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut redis = RedisServer::start_persistent(dir.path()).await.expect("redis-server");
    let mut nodes = start_nodes(&redis, &[]).await;
    let topic = "live/feed";
    let publisher = connect(&nodes[0], "a-pub").await;
    let (local, _) = subscriber(&nodes[0], "a-sub", topic).await;
    let (remote, _) = subscriber(&nodes[1], "b-sub", topic).await;

    assert_eq!(publish(&publisher, topic, json!("before")).await, 1);
    assert_eq!(next_seq(&remote, "b-sub before the outage").await, (1, json!("before")));
    assert_eq!(next_seq(&local, "a-sub before the outage").await, (1, json!("before")));
    until_all(&nodes, "/ready", 200, WAIT, "before the outage").await;

    redis.kill();
    let noticed = until_all(&nodes, "/ready", 503, WAIT, "Redis killed").await;
    println!("all nodes not ready {noticed:?} after Redis died");
    assert_alive(&mut nodes, "during the Redis outage").await;

    // Published during the outage: this node's subscribers get it at once, unsequenced.
    assert_eq!(publish(&publisher, topic, json!("during")).await, 0, "a publish during the outage has seq 0");
    assert_eq!(next_seq(&local, "a-sub during the outage").await, (0, json!("during")));

    redis.restart().await.expect("redis-server restarts");
    let back = until_all(&nodes, "/ready", 200, Duration::from_secs(30), "Redis restarted").await;
    println!("all nodes ready again {back:?} after Redis restarted");
    assert_alive(&mut nodes, "after the Redis restart").await;

    // The outbox reaches the other node, sequenced after the last event before the outage.
    assert_eq!(
        next_seq(&remote, "b-sub after the restart").await,
        (2, json!("during")),
        "node-b gets node-a's outage publish from its outbox once Redis is back"
    );
    assert_eq!(publish(&publisher, topic, json!("after")).await, 3, "seq after the outbox publish");
    assert_eq!(
        next_seq(&remote, "b-sub after the restart").await,
        (3, json!("after")),
        "delivery across nodes resumed"
    );
    assert_eq!(
        next_seq(&local, "a-sub after the restart").await,
        (3, json!("after")),
        "node-a's own subscriber got the outage publish once (at seq 0), then the next"
    );
    let remote_state = remote.close_info();
    assert!(remote_state.is_none(), "b-sub was closed: {remote_state:?}");

    let metrics = nodes[0].metrics().await;
    assert!(metrics.get("chorus_cluster_outages_total") >= 1.0, "node-a counted the outage");
    assert_eq!(metrics.get("chorus_cluster_up"), 1.0, "node-a reports the bus up again");
    assert_eq!(metrics.get("chorus_cluster_outbox"), 0.0, "node-a's outbox is empty");
    assert_alive(&mut nodes, "at the end").await;
}

// ---------------------------------------------------------------------------------------------------
// 6. Booking across nodes on the Redis store.
// ---------------------------------------------------------------------------------------------------

/// One REST request with a bearer token and a JSON body; returns the status and the parsed body.
pub(crate) async fn rest(node: &Broker, method: &str, path: &str, bearer: &str, body: Option<&str>) -> (u16, Value) {
    let auth = format!("Bearer {bearer}");
    let headers = [("Authorization", auth.as_str()), ("Content-Type", "application/json")];
    let (status, text) = tokio::time::timeout(WAIT, http_request(node.http, method, path, &headers, body))
        .await
        .unwrap_or_else(|_| panic!("{method} {path}: no answer within {WAIT:?}"))
        .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

/// The next message of a seed-dialect WebSocket (the watcher on node C), parsed.
async fn seed_next(ws: &mut RawWs) -> Value {
    use futures_util::StreamExt;
    use tokio_tungstenite::tungstenite::Message;
    loop {
        let frame = tokio::time::timeout(WAIT, ws.next())
            .await
            .unwrap_or_else(|_| panic!("seed watcher on node-c: no message within {WAIT:?}"))
            .expect("seed watcher on node-c: connection open")
            .expect("seed watcher on node-c: WebSocket frame");
        match frame {
            Message::Text(text) => return serde_json::from_str(text.as_str()).expect("seed messages are JSON"),
            Message::Ping(_) | Message::Pong(_) => {}
            other => panic!("seed watcher on node-c: expected a text message, got {other:?}"),
        }
    }
}

/// 1,000 concurrent one-seat bookings of a 100-seat event, spread over three nodes sharing the Redis
/// store: exactly 100 succeed. A seed-dialect watcher on node C sees a `seat_update` for each of them,
/// wherever it was booked: every count from 99 to 0 once, never negative, the last one 0 (sold out).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bookings_on_three_nodes_never_overbook_and_reach_every_node() {
    const SEATS: u64 = 100;
    const BOOKERS: usize = 1_000;
    let redis = RedisServer::start(&[]).await.expect("redis-server");
    let nodes = start_nodes(&redis, &[]).await;
    let organizer = token(json!({"sub": "olga", "name": "Olga", "role": "organizer"}));
    let body = json!({"title": "Cluster gig", "seatCapacity": SEATS}).to_string();
    let (status, event) = rest(&nodes[0], "POST", "/api/events", &organizer, Some(&body)).await;
    assert_eq!(status, 201, "creating the event on node-a: {event}");
    let id = event["id"].as_u64().expect("numeric event id");

    let watcher_token = token(json!({"sub": "watcher", "name": "Watcher"}));
    let url = format!("ws://{}/ws/events/{id}?token={watcher_token}", nodes[2].http);
    let (mut watcher, _) = tokio_tungstenite::connect_async(url).await.expect("seed WebSocket on node-c");
    let established = seed_next(&mut watcher).await;
    assert_eq!(
        (established["type"].as_str(), established["eventId"].as_u64()),
        (Some("connection_established"), Some(id))
    );
    let initial = seed_next(&mut watcher).await;
    assert_eq!(
        (initial["type"].as_str(), initial["availableSeats"].as_u64()),
        (Some("seat_update"), Some(SEATS)),
        "the current seats follow connection_established: {initial}"
    );

    let body = json!({"seats": 1}).to_string();
    let path = format!("/api/events/{id}/bookings");
    let tokens: Vec<String> = (0..BOOKERS).map(|i| token(json!({"sub": format!("booker-{i}")}))).collect();
    let started = Instant::now();
    let attempts = tokens.into_iter().enumerate().map(|(i, bearer)| {
        let (addr, path, body) = (nodes[i % NODES].http, path.clone(), body.clone());
        tokio::spawn(async move {
            let auth = format!("Bearer {bearer}");
            let headers = [("Authorization", auth.as_str()), ("Content-Type", "application/json")];
            let answer =
                tokio::time::timeout(Duration::from_secs(60), http_request(addr, "POST", &path, &headers, Some(&body)));
            let (status, text) = answer
                .await
                .unwrap_or_else(|_| panic!("booker-{i}: no answer within 60 s"))
                .unwrap_or_else(|e| panic!("booker-{i}: {e}"));
            (i % NODES, status, text)
        })
    });
    let mut booked = [0usize; NODES];
    let mut refused = 0;
    let mut other = Vec::new();
    for answer in join_all(attempts).await {
        let (n, status, text) = answer.expect("booker task");
        match status {
            201 => booked[n] += 1,
            409 => refused += 1,
            _ => other.push(format!("{}: {status} {text}", NAMES[n])),
        }
    }
    println!("{BOOKERS} bookings in {:?}: booked per node {booked:?}", started.elapsed());
    assert!(
        other.is_empty(),
        "{} bookings answered neither 201 nor 409, e.g. {:?}",
        other.len(),
        &other[..other.len().min(5)]
    );
    assert_eq!(booked.iter().sum::<usize>(), SEATS as usize, "201s (per node {booked:?})");
    assert_eq!(refused, BOOKERS - SEATS as usize, "409s");
    assert!(booked[0] + booked[1] > 0, "no booking succeeded on node-a or node-b, so nothing crossed nodes");

    // The watcher on node C: a `booking_created` for every booking, wherever it was made (news: each one
    // is delivered), and `seat_update`s that never go back (state: the cluster drops a count older than
    // one already published, whichever node's publish arrives first) and end at the sold-out count.
    let (mut created, mut counts) = (Vec::new(), Vec::new());
    while created.len() < SEATS as usize || counts.last() != Some(&0) {
        let message = seed_next(&mut watcher).await;
        let available = message["availableSeats"].as_i64().expect("availableSeats");
        match message["type"].as_str() {
            Some("seat_update") => counts.push(available),
            Some("booking_created") => created.push(available),
            _ => panic!("seed watcher on node-c: unexpected {message} after {} bookings", created.len()),
        }
    }
    created.sort_unstable();
    assert_eq!(created, (0..SEATS as i64).collect::<Vec<_>>(), "every booking seen on node-c, each count once");
    assert!(counts.windows(2).all(|w| w[1] < w[0]), "seat counts seen on node-c went back or repeated: {counts:?}");
    println!(
        "node-c: {} booking_created, {} seat_update (superseded ones dropped): {counts:?}",
        created.len(),
        counts.len()
    );
    let (status, event) = rest(&nodes[2], "GET", &format!("/api/events/{id}"), &organizer, None).await;
    assert_eq!((status, event["availableSeats"].as_u64()), (200, Some(0)), "node-c reads the event sold out: {event}");
}
