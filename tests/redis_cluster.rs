//! Cluster mode on a real Redis Cluster (three `redis-server --cluster-enabled yes` primaries joined with
//! `redis-cli --cluster create`): topics travel over sharded pub/sub (`SPUBLISH`/`SSUBSCRIBE`), and the
//! Redis store works on the same cluster, so two chorus nodes behave as one broker.

use crate::support::*;
use chorus_client::{Client, ConnectOptions, Payload};
use serde_json::json;
use std::time::Duration;
use tokio::process::Command;

/// Three cluster-enabled Redis primaries covering every slot.
struct RedisCluster {
    nodes: Vec<RedisServer>,
}

/// Runs `redis-cli` with `args`; returns what it printed (stdout, then stderr).
pub(crate) async fn redis_cli(args: &[&str]) -> String {
    let out = Command::new("redis-cli").args(args).output().await.expect("redis-cli (Debian: redis-tools) runs");
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

impl RedisCluster {
    async fn start() -> Self {
        let mut nodes = Vec::new();
        for _ in 0..3 {
            let options = ["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf"];
            nodes.push(RedisServer::start(&options).await.expect("a cluster-enabled redis-server"));
        }
        let mut create = vec!["--cluster".to_string(), "create".to_string()];
        create.extend(nodes.iter().map(|n| format!("127.0.0.1:{}", n.port())));
        create.extend(["--cluster-replicas", "0", "--cluster-yes"].map(String::from));
        let created = redis_cli(&create.iter().map(String::as_str).collect::<Vec<_>>()).await;
        assert!(created.contains("All 16384 slots covered"), "cluster create failed: {created}");
        for node in &nodes {
            let port = node.port().to_string();
            let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
            while !redis_cli(&["-p", &port, "cluster", "info"]).await.contains("cluster_state:ok") {
                assert!(tokio::time::Instant::now() < deadline, "Redis Cluster on {port} never reached state ok");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        Self { nodes }
    }

    fn url(&self) -> String {
        let others: Vec<String> = self.nodes[1..].iter().map(|n| format!("node=127.0.0.1:{}", n.port())).collect();
        format!("redis-cluster://127.0.0.1:{}?{}", self.nodes[0].port(), others.join("&"))
    }
}

async fn connect(broker: &Broker, sub: &str) -> Client {
    let options = ConnectOptions::websocket(broker.ws_url("")).token(token(json!({"sub": sub})));
    Client::connect(options).await.expect("connect")
}

async fn next(client: &Client) -> (u64, serde_json::Value) {
    let event = tokio::time::timeout(Duration::from_secs(10), client.next_event())
        .await
        .expect("an event within 10 s")
        .expect("connection open");
    (event.seq, event.payload.to_json())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_share_topics_history_and_store_over_a_redis_cluster() {
    let redis = RedisCluster::start().await;
    let url = redis.url();
    let args = ["--redis-url", url.as_str(), "--store", "redis"];
    let a = Broker::start(&args).await;
    let b = Broker::start(&args).await;

    // Topics hashing to different slots (so to different primaries), each subscribed on one node and
    // published on the other.
    let topics = ["room/alpha", "room/beta", "room/gamma", "room/delta"];
    let on_b = connect(&b, "watcher").await;
    let on_a = connect(&a, "talker").await;
    for topic in topics {
        assert_eq!(on_b.subscribe(topic).await.expect("subscribe on b").seq, 0);
    }
    for n in 1..=3 {
        for topic in topics {
            let seq = on_a.publish(topic, Payload::from_value(&json!({"t": topic, "n": n})).unwrap()).await.unwrap();
            assert_eq!(seq, n, "one cluster-wide sequence per topic");
        }
    }
    let mut seen = std::collections::HashMap::<String, Vec<u64>>::new();
    for _ in 0..topics.len() * 3 {
        let (seq, payload) = next(&on_b).await;
        seen.entry(payload["t"].as_str().unwrap().to_owned()).or_default().push(seq);
    }
    for topic in topics {
        assert_eq!(seen[topic], vec![1, 2, 3], "{topic} arrived once each, in order, on the other node");
    }

    // The shared history: a subscriber that comes back to the other node with its position.
    let first = on_a.subscribe("room/history").await.unwrap();
    for n in 1..=4 {
        on_b.publish("room/history", Payload::from_value(&n).unwrap()).await.unwrap();
    }
    let back = connect(&b, "returning").await;
    let since = first.position(1).expect("an epoch in the subscribe reply");
    let reply = back.subscribe_since("room/history", since).await.expect("resubscribe");
    assert_eq!(reply.recovered, Some(true));
    for expected in 2..=4u64 {
        assert_eq!(next(&back).await, (expected, json!(expected)));
    }

    let (status, _) = a.get("/ready").await;
    assert_eq!(status, 200, "both Redis connections are up");
}
