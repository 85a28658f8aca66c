//! Faults under load, against real `chorus` processes and a real `redis-server`: a node SIGKILLed in the
//! middle of a fan-out, Redis SIGKILLed and restarted (with its append-only file, and empty), store writes
//! refused (Redis out of memory, the embedded store's disk full).
//!
//! What every case checks: each acknowledged publish reaches each subscriber exactly once, in topic order
//! (a subscriber of a dead node after resuming elsewhere), or the subscriber is told it lost events (4003,
//! then `recovered: false`); what cannot be served is refused with its coded error (2010 `unavailable`,
//! HTTP 503 with a JSON `message`); no node panics; everything works again once the fault is gone.

use crate::cluster::{NAMES, WAIT, assert_alive, connect, rest, start_nodes, until_all};
use crate::redis_cluster::redis_cli;
use crate::support::*;
use chorus_client::{Client, Payload};
use chorus_protocol::ErrorCode;
use serde_json::{Value, json};
use std::collections::{HashMap, HashSet};
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Time between two publishes of one publisher: ~500 publishes a second each, a steady load that two
/// cores running three debug brokers and Redis keep up with.
const PACE: Duration = Duration::from_millis(2);

/// Events a topic's history keeps in these tests: more than a test publishes, so a resume always finds
/// what it missed.
const HISTORY: &str = "100000";

/// The flags every cluster here runs with: a publish rate far above [`PACE`] (the default would refuse
/// bursts), a history above the test's publishes, and a fast heartbeat so an outage is noticed quickly.
const LOAD_FLAGS: [&str; 6] = ["--publish-rate", "1000000", "--history-size", HISTORY, "--cluster-heartbeat-ms", "200"];

// ---------------------------------------------------------------------------------------------------
// Load: paced publishers that record what became of each publish, and subscribers that record what
// reached them.
// ---------------------------------------------------------------------------------------------------

/// What became of one publisher's publishes (`{"p": publisher, "i": index}`, indexes from 0).
#[derive(Debug, Default, Clone)]
struct Tally {
    /// `(index, seq)` of each acknowledged publish; seq 0: unsequenced (kept in the outbox).
    acked: Vec<(u64, u64)>,
    /// Indexes refused with 2010 `unavailable`, not delivered.
    refused: Vec<u64>,
    /// Indexes answered 2010 with an unknown outcome (the bus did not answer): each may be delivered.
    in_doubt: Vec<u64>,
    /// Any other outcome, which no test expects.
    failed: Vec<String>,
    /// The seq of the end marker published after the last one, once acknowledged.
    end: Option<u64>,
}

impl Tally {
    /// Acknowledged publishes that were not sequenced (kept in the outbox).
    fn unsequenced(&self) -> usize {
        self.acked.iter().filter(|(_, seq)| *seq == 0).count()
    }

    /// Whether the last outcome is a refusal.
    fn last_refused(&self) -> bool {
        match (self.refused.last(), self.acked.last()) {
            (Some(r), Some((a, _))) => r > a,
            (Some(_), None) => true,
            (None, _) => false,
        }
    }
}

/// A running publisher: its tally as it grows, and the task (which returns the client).
struct Publisher {
    tally: watch::Receiver<Tally>,
    task: JoinHandle<Client>,
}

impl Publisher {
    /// Waits until the tally satisfies `ready`; `what` says what for, in the failure.
    async fn until(&mut self, what: &str, ready: impl FnMut(&Tally) -> bool) -> Tally {
        let reached = match tokio::time::timeout(WAIT, self.tally.wait_for(ready)).await {
            Ok(Ok(tally)) => return tally.clone(),
            Ok(Err(_)) => "the publisher stopped",
            Err(_) => "timed out",
        };
        panic!("not {what} within {WAIT:?} ({reached}): {:?}", self.tally.borrow())
    }
}

/// What a 2010 says when the bus did not answer a publish it may have sequenced.
const IN_DOUBT: &str = "the outcome is unknown";

/// Starts publisher `p` on `topic`: one acknowledged publish every [`PACE`] until `stop` turns true, then
/// an end marker `{"p": p, "end": true}` (retried while refused with 2010, so it is sequenced).
fn publish_until(client: Client, p: u64, topic: &'static str, stop: watch::Receiver<bool>) -> Publisher {
    let (tx, tally) = watch::channel(Tally::default());
    let task = tokio::spawn(async move {
        let mut i = 0;
        while !*stop.borrow() {
            let payload = Payload::from_value(&json!({"p": p, "i": i})).expect("payload");
            match client.publish(topic, payload).await {
                Ok(seq) => tx.send_modify(|t| t.acked.push((i, seq))),
                Err(e) if e.error_code() == Some(ErrorCode::Unavailable) && e.to_string().contains(IN_DOUBT) => {
                    tx.send_modify(|t| t.in_doubt.push(i))
                }
                Err(e) if e.error_code() == Some(ErrorCode::Unavailable) => tx.send_modify(|t| t.refused.push(i)),
                Err(e) => tx.send_modify(|t| t.failed.push(format!("#{i}: {e}"))),
            }
            i += 1;
            tokio::time::sleep(PACE).await;
        }
        let end = Payload::from_value(&json!({"p": p, "end": true})).expect("payload");
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            match client.publish(topic, end.clone()).await {
                Ok(seq) if seq > 0 => {
                    tx.send_modify(|t| t.end = Some(seq));
                    break;
                }
                outcome if tokio::time::Instant::now() < deadline => {
                    println!("publisher {p}: end marker not sequenced yet ({outcome:?}); sending it again");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                outcome => {
                    tx.send_modify(|t| t.failed.push(format!("end marker: {outcome:?}")));
                    break;
                }
            }
        }
        client
    });
    Publisher { tally, task }
}

/// What one subscriber received: `(seq, publisher, index)` in arrival order, and the publishers whose end
/// marker arrived.
#[derive(Debug, Default)]
struct Received {
    events: Vec<(u64, u64, u64)>,
    ends: HashSet<u64>,
}

/// Why a subscriber stopped reading.
#[derive(Debug)]
enum Stop {
    /// Every publisher's end marker arrived.
    Ends,
    /// The connection closed (with this close code).
    Closed(Option<u16>),
    /// Nothing arrived for [`WAIT`].
    Quiet,
    /// A payload no publisher here sends.
    Unexpected(String),
}

impl std::fmt::Display for Stop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Ends => write!(f, "every end marker arrived"),
            Self::Closed(code) => write!(f, "the connection closed (code {code:?})"),
            Self::Quiet => write!(f, "nothing arrived for {WAIT:?}"),
            Self::Unexpected(what) => write!(f, "unexpected payload {what}"),
        }
    }
}

/// Reads `client`'s events into `got` until the end markers of `publishers` publishers arrived, the
/// connection closes, or it goes quiet.
async fn read_into(client: &Client, publishers: usize, got: &mut Received) -> Stop {
    while got.ends.len() < publishers {
        let event = match tokio::time::timeout(WAIT, client.next_event()).await {
            Ok(Some(event)) => event,
            Ok(None) => return Stop::Closed(client.close_info().and_then(|c| c.code)),
            Err(_) => return Stop::Quiet,
        };
        let v = event.payload.to_json();
        match (v["p"].as_u64(), v["i"].as_u64(), v["end"].as_bool()) {
            (Some(p), Some(i), None) => got.events.push((event.seq, p, i)),
            (Some(p), None, Some(true)) => {
                got.ends.insert(p);
            }
            _ => return Stop::Unexpected(format!("{v} at seq {}", event.seq)),
        }
    }
    Stop::Ends
}

/// A subscriber reading in the background: its task returns the client, what it received and why it
/// stopped.
type Reader = JoinHandle<(Client, Received, Stop)>;

/// A subscriber reading in the background until every end marker arrives.
fn read_all(client: Client, publishers: usize) -> Reader {
    tokio::spawn(async move {
        let mut got = Received::default();
        let stop = read_into(&client, publishers, &mut got).await;
        (client, got, stop)
    })
}

/// Everything wrong with what one subscriber received, given what the publishers were told: each
/// acknowledged publish exactly once (with the seq its publisher was given, when it was given one), no
/// refused publish, sequenced events in increasing seq order, each publisher's events in its order.
fn delivery_problems(got: &Received, tallies: &[Tally]) -> Vec<String> {
    let mut problems = Vec::new();
    let mut seen: HashMap<(u64, u64), u64> = HashMap::new();
    let duplicates: Vec<(u64, u64)> =
        got.events.iter().filter(|(seq, p, i)| seen.insert((*p, *i), *seq).is_some()).map(|e| (e.1, e.2)).collect();
    if !duplicates.is_empty() {
        problems.push(format!("{} delivered twice, e.g. (publisher, index) {:?}", duplicates.len(), &duplicates[..1]));
    }
    let sequenced: Vec<u64> = got.events.iter().map(|e| e.0).filter(|seq| *seq > 0).collect();
    if let Some(w) = sequenced.windows(2).find(|w| w[1] <= w[0]) {
        problems.push(format!("not in topic order: seq {} arrived after seq {}", w[1], w[0]));
    }
    for (p, tally) in tallies.iter().enumerate() {
        let p = p as u64;
        let missing: Vec<u64> = tally.acked.iter().filter(|(i, _)| !seen.contains_key(&(p, *i))).map(|a| a.0).collect();
        if !missing.is_empty() {
            problems.push(format!(
                "publisher {p}: {} of {} acknowledged publishes missing, e.g. index {}",
                missing.len(),
                tally.acked.len(),
                missing[0]
            ));
        }
        let renumbered: Vec<(u64, u64, u64)> = tally
            .acked
            .iter()
            .filter_map(|(i, seq)| {
                seen.get(&(p, *i)).filter(|got| *seq > 0 && **got != *seq).map(|got| (*i, *seq, *got))
            })
            .collect();
        if let Some((i, acked, delivered)) = renumbered.first() {
            problems
                .push(format!("publisher {p}: index {i} acknowledged as seq {acked}, delivered as seq {delivered}"));
        }
        let ghosts: Vec<u64> = tally.refused.iter().copied().filter(|i| seen.contains_key(&(p, *i))).collect();
        if !ghosts.is_empty() {
            problems.push(format!(
                "publisher {p}: {} publishes refused with 2010 were delivered: {ghosts:?}",
                ghosts.len()
            ));
        }
        // An in-doubt publish that was sequenced reaches the publisher's own node from the history once
        // the bus is back, after that node delivered later publishes unsequenced: outside the order.
        let order: Vec<u64> =
            got.events.iter().filter(|e| e.1 == p && !tally.in_doubt.contains(&e.2)).map(|e| e.2).collect();
        if let Some(w) = order.windows(2).find(|w| w[1] <= w[0]) {
            problems.push(format!("publisher {p}: index {} arrived after index {}", w[1], w[0]));
        }
    }
    problems
}

/// Stops the publishers and returns their final tallies (after their end markers), checking that no
/// publish had an outcome other than an acknowledgement or 2010.
async fn stop_publishers(stop: watch::Sender<bool>, publishers: Vec<Publisher>) -> (Vec<Tally>, Vec<Client>) {
    stop.send_replace(true);
    let mut tallies = Vec::new();
    let mut clients = Vec::new();
    for publisher in publishers {
        clients.push(publisher.task.await.expect("publisher task"));
        let tally = publisher.tally.borrow().clone();
        assert!(tally.failed.is_empty(), "publishes failed other than with 2010: {:?}", tally.failed);
        assert!(tally.end.is_some(), "end marker never sequenced: {tally:?}");
        tallies.push(tally);
    }
    (tallies, clients)
}

/// Waits for the subscribers' readers and checks each got every acknowledged publish once.
async fn check_subscribers(readers: Vec<(String, Reader)>, tallies: &[Tally]) {
    let mut report = Vec::new();
    for (name, reader) in readers {
        let (_client, got, stop) = reader.await.expect("subscriber task");
        if !matches!(stop, Stop::Ends) {
            report.push(format!("{name}: stopped after {} events: {stop}", got.events.len()));
        }
        report.extend(delivery_problems(&got, tallies).into_iter().map(|p| format!("{name}: {p}")));
        println!("{name}: {} events", got.events.len());
    }
    assert!(report.is_empty(), "subscribers:\n  {}", report.join("\n  "));
}

// ---------------------------------------------------------------------------------------------------
// 1. A node SIGKILLed mid-fan-out.
// ---------------------------------------------------------------------------------------------------

/// Acknowledged publishes each publisher makes before the kill, and again after the resumes.
const BEFORE_KILL: usize = 150;

/// Publishers on node-a and node-b publish without pause while node-c, with two subscribers, is SIGKILLed.
/// The publishers never notice; the two subscribers resume on node-a and node-b with their last position
/// (`recovered: true`) and, with what they had before the kill, hold every acknowledged publish exactly
/// once, in topic order, as do the subscribers that stayed on node-a and node-b.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribers_of_a_node_killed_mid_fanout_resume_elsewhere_missing_nothing() {
    let redis = RedisServer::start(&[]).await.expect("redis-server");
    let mut nodes = start_nodes(&redis, &LOAD_FLAGS).await;
    let topic = "faults/kill";
    let mut readers = Vec::new();
    for n in 0..2 {
        let client = connect(&nodes[n], &format!("stays-{n}")).await;
        client.subscribe(topic).await.unwrap_or_else(|e| panic!("subscribe on {}: {e}", NAMES[n]));
        readers.push((format!("subscriber on {}", NAMES[n]), read_all(client, 2)));
    }
    let mut doomed = Vec::new();
    for k in 0..2 {
        let client = connect(&nodes[2], &format!("moves-{k}")).await;
        let reply = client.subscribe(topic).await.expect("subscribe on node-c");
        let epoch = reply.epoch.clone().expect("cluster subscribe replies carry an epoch");
        doomed.push((epoch, read_all(client, 2)));
    }

    let (stop, stopped) = watch::channel(false);
    let mut publishers = Vec::new();
    for (p, node) in nodes.iter().take(2).enumerate() {
        publishers.push(publish_until(connect(node, &format!("pub-{p}")).await, p as u64, topic, stopped.clone()));
    }
    for publisher in &mut publishers {
        publisher.until("publishing before the kill", |t| t.acked.len() >= BEFORE_KILL).await;
    }
    nodes[2].kill().await;

    for (k, (epoch, reader)) in doomed.into_iter().enumerate() {
        let (_, mut got, stop) = reader.await.expect("subscriber task");
        assert!(matches!(stop, Stop::Closed(_)), "moves-{k}: the kill closes its connection, but {stop}");
        let last = got.events.last().map_or(0, |e| e.0);
        let survivor = &nodes[k];
        let client = connect(survivor, &format!("moves-{k}")).await;
        let since = chorus_client::Position { epoch: epoch.clone(), offset: last };
        let reply = client
            .subscribe_since(topic, since)
            .await
            .unwrap_or_else(|e| panic!("moves-{k}: resuming on {}: {e}", NAMES[k]));
        assert_eq!(
            (reply.recovered, reply.epoch.as_deref()),
            (Some(true), Some(epoch.as_str())),
            "moves-{k}: resuming on {} after seq {last} (of {} received on node-c)",
            NAMES[k],
            got.events.len()
        );
        println!("moves-{k}: {} events on node-c, resumed on {} after seq {last}", got.events.len(), NAMES[k]);
        readers.push((
            format!("moves-{k} (node-c, then {})", NAMES[k]),
            tokio::spawn(async move {
                let stop = read_into(&client, 2, &mut got).await;
                (client, got, stop)
            }),
        ));
    }
    for publisher in &mut publishers {
        let after = publisher.tally.borrow().acked.len() + BEFORE_KILL;
        publisher.until("publishing after the resumes", |t| t.acked.len() >= after).await;
    }
    let (tallies, _clients) = stop_publishers(stop, publishers).await;
    for (p, tally) in tallies.iter().enumerate() {
        let refused = (&tally.refused, &tally.in_doubt);
        assert!(
            refused.0.is_empty() && refused.1.is_empty(),
            "pub-{p} on {}: publishes refused: {refused:?}",
            NAMES[p]
        );
        assert!(tally.acked.iter().all(|(_, seq)| *seq > 0), "pub-{p}: every publish sequenced");
    }
    check_subscribers(readers, &tallies).await;
    assert_alive(&mut nodes[..2], "after node-c was killed").await;
}

// ---------------------------------------------------------------------------------------------------
// 2. Redis SIGKILLed and restarted.
// ---------------------------------------------------------------------------------------------------

/// Publishes a node keeps while the bus is down (`--cluster-outbox`): small, so the tests reach the bound.
const OUTBOX: usize = 50;

/// The nodes of the outage tests: [`LOAD_FLAGS`] and an outbox of [`OUTBOX`].
async fn outage_nodes(redis: &RedisServer) -> Vec<Broker> {
    let outbox = OUTBOX.to_string();
    let mut flags = LOAD_FLAGS.to_vec();
    flags.extend(["--cluster-outbox", outbox.as_str()]);
    start_nodes(redis, &flags).await
}

/// Three nodes with one subscriber each, publishers on node-a and node-b: the running load of the outage
/// tests.
struct Load {
    topic: &'static str,
    stop: watch::Sender<bool>,
    publishers: Vec<Publisher>,
    readers: Vec<(String, Reader)>,
    /// The epoch each subscriber's subscribe reply gave, by node.
    epochs: Vec<String>,
}

impl Load {
    async fn start(nodes: &[Broker], topic: &'static str) -> Self {
        let (mut readers, mut epochs) = (Vec::new(), Vec::new());
        for (n, node) in nodes.iter().enumerate() {
            let client = connect(node, &format!("sub-{n}")).await;
            let reply = client.subscribe(topic).await.unwrap_or_else(|e| panic!("subscribe on {}: {e}", NAMES[n]));
            epochs.push(reply.epoch.expect("cluster subscribe replies carry an epoch"));
            readers.push((format!("subscriber on {}", NAMES[n]), read_all(client, 2)));
        }
        let (stop, stopped) = watch::channel(false);
        let mut publishers = Vec::new();
        for (p, node) in nodes.iter().take(2).enumerate() {
            publishers.push(publish_until(connect(node, &format!("pub-{p}")).await, p as u64, topic, stopped.clone()));
        }
        Self { topic, stop, publishers, readers, epochs }
    }

    /// Waits until every publisher has `n` more acknowledged publishes than now.
    async fn acked_more(&mut self, n: usize, what: &str) {
        for publisher in &mut self.publishers {
            let want = publisher.tally.borrow().acked.len() + n;
            publisher.until(what, |t| t.acked.len() >= want).await;
        }
    }

    /// While the bus is down: waits until each publisher's node has filled its outbox and then refused a
    /// publish with 2010; checks that exactly [`OUTBOX`] were acknowledged unsequenced.
    async fn fill_outboxes(&mut self) {
        for (p, publisher) in self.publishers.iter_mut().enumerate() {
            let tally = publisher
                .until("filling the outbox, then refused", |t| t.unsequenced() >= OUTBOX && t.last_refused())
                .await;
            assert_eq!(
                tally.unsequenced(),
                OUTBOX,
                "pub-{p} on {}: publishes acknowledged unsequenced (seq 0) while the bus is down: at most \
                 --cluster-outbox {OUTBOX}",
                NAMES[p]
            );
            println!(
                "pub-{p}: {} acknowledged, {} of them unsequenced, {} refused with 2010, {} in doubt so far",
                tally.acked.len(),
                tally.unsequenced(),
                tally.refused.len(),
                tally.in_doubt.len()
            );
        }
    }

    /// Stops the load and checks every subscriber got every acknowledged publish exactly once.
    async fn finish(self) -> Vec<Tally> {
        let (tallies, _clients) = stop_publishers(self.stop, self.publishers).await;
        check_subscribers(self.readers, &tallies).await;
        tallies
    }

    /// Stops the load; checks that each subscriber either got every acknowledged publish exactly once,
    /// or was closed with 4003 `resync` and, subscribing again on its node with its last position, is told
    /// `recovered: false`. Returns the nodes whose subscriber was resynced.
    async fn finish_or_resync(self, nodes: &[Broker]) -> Vec<usize> {
        let (tallies, _clients) = stop_publishers(self.stop, self.publishers).await;
        let mut report = Vec::new();
        let mut resynced = Vec::new();
        for (n, ((name, reader), epoch)) in self.readers.into_iter().zip(self.epochs).enumerate() {
            let (_client, got, stop) = reader.await.expect("subscriber task");
            match stop {
                Stop::Ends => {
                    report.extend(delivery_problems(&got, &tallies).into_iter().map(|p| format!("{name}: {p}")))
                }
                Stop::Closed(Some(4003)) => {
                    resynced.push(n);
                    let last = got.events.iter().rev().map(|e| e.0).find(|seq| *seq > 0).unwrap_or(0);
                    let again = connect(&nodes[n], &format!("sub-{n}")).await;
                    let since = chorus_client::Position { epoch, offset: last };
                    let reply = again.subscribe_since(self.topic, since).await.expect("subscribing again after 4003");
                    println!("{name}: 4003 after {} events; back after seq {last}: {reply:?}", got.events.len());
                    if reply.recovered != Some(false) {
                        report.push(format!("{name}: after 4003, resuming after seq {last} answered {reply:?}"));
                    }
                }
                stop => report.push(format!("{name}: stopped after {} events: {stop}", got.events.len())),
            }
        }
        assert!(report.is_empty(), "subscribers:\n  {}", report.join("\n  "));
        resynced
    }
}

/// Redis (append-only file, fsynced on every write) is SIGKILLed under load and restarted on the same
/// port. While it is down every node answers `/ready` 503 and keeps serving: a publish is acknowledged
/// unsequenced (seq 0, delivered on its node at once, kept in the outbox) until `--cluster-outbox` are
/// kept, then refused with 2010; a publish in flight when Redis died may be answered 2010 with an unknown
/// outcome (Redis may have sequenced it before dying), and is then delivered at most once. Once Redis is back every node is ready again, the outboxes reach the other
/// nodes, and every subscriber holds every acknowledged publish exactly once. No node panics.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_killed_and_restarted_under_load_loses_no_acknowledged_publish() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut redis = RedisServer::start_persistent(dir.path()).await.expect("redis-server");
    let mut nodes = outage_nodes(&redis).await;
    let mut load = Load::start(&nodes, "faults/redis-restart").await;
    load.acked_more(100, "publishing before the outage").await;

    redis.kill();
    let noticed = until_all(&nodes, "/ready", 503, WAIT, "Redis killed").await;
    println!("every node not ready {noticed:?} after Redis was killed");
    load.fill_outboxes().await;
    assert_alive(&mut nodes, "during the Redis outage").await;

    redis.restart().await.expect("redis-server restarts on its port");
    let back = until_all(&nodes, "/ready", 200, Duration::from_secs(30), "Redis restarted").await;
    println!("every node ready {back:?} after Redis restarted");
    load.acked_more(100, "publishing after the restart").await;
    load.finish().await;

    for (n, node) in nodes.iter().enumerate() {
        let metrics = node.metrics().await;
        assert!(metrics.get("chorus_cluster_outages_total") >= 1.0, "{}: the outage was counted", NAMES[n]);
        assert_eq!(metrics.get("chorus_cluster_outbox"), 0.0, "{}: outbox empty", NAMES[n]);
    }
    assert_alive(&mut nodes, "after the Redis restart").await;
}

/// Redis without persistence is SIGKILLed under load and restarted empty on the same port: the topic's
/// history and epoch are gone. During the outage the nodes behave as with an append-only file; once Redis
/// is back the outboxes are sequenced in a new epoch, and a subscriber whose missed events are no longer
/// in any history is closed with 4003 `resync` and learns `recovered: false` when it subscribes again with
/// its position; a subscriber that is not closed has every acknowledged publish exactly once. Nothing
/// acknowledged vanishes without its subscriber being told. No node panics.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_restarted_empty_under_load_resyncs_the_subscribers_it_cannot_serve() {
    let mut redis = RedisServer::start(&[]).await.expect("redis-server");
    let mut nodes = outage_nodes(&redis).await;
    let mut load = Load::start(&nodes, "faults/redis-empty").await;
    load.acked_more(100, "publishing before the outage").await;

    redis.kill();
    until_all(&nodes, "/ready", 503, WAIT, "Redis killed").await;
    load.fill_outboxes().await;
    redis.restart().await.expect("redis-server restarts on its port, empty");
    until_all(&nodes, "/ready", 200, Duration::from_secs(30), "Redis restarted").await;
    load.acked_more(100, "publishing after the restart").await;
    let resynced = load.finish_or_resync(&nodes).await;
    let names: Vec<&str> = resynced.iter().map(|n| NAMES[*n]).collect();
    println!("subscribers resynced with 4003: on {names:?}");
    // node-c's subscriber missed both outboxes, which are sequenced in the new epoch only.
    assert!(resynced.contains(&2), "the subscriber on node-c missed events no history holds: 4003 expected");
    assert_alive(&mut nodes, "after Redis restarted empty").await;
}

// ---------------------------------------------------------------------------------------------------
// 3. Store writes refused.
// ---------------------------------------------------------------------------------------------------

/// Checks an HTTP answer is 503 with a JSON `{"message": …}` body.
fn assert_unavailable(what: &str, status: u16, body: &Value) {
    assert_eq!(status, 503, "{what}: {body}");
    let message = body["message"].as_str().unwrap_or_default();
    assert!(!message.is_empty(), "{what}: a JSON body with a message, got {body}");
}

/// `redis-cli CONFIG SET name value` on `redis`.
async fn config_set(redis: &RedisServer, name: &str, value: &str) {
    let port = redis.port().to_string();
    let answer = redis_cli(&["-p", &port, "CONFIG", "SET", name, value]).await;
    assert_eq!(answer.trim(), "OK", "CONFIG SET {name} {value}");
}

/// A live-commerce session streaming on `node`, created by `creator`; returns its chat route.
async fn live_stream_chat(node: &Broker, creator: &str) -> String {
    let product = json!({"name": "Lamp", "description": "A lamp", "price": 10.0}).to_string();
    let (status, created) = rest(node, "POST", "/api/products", creator, Some(&product)).await;
    assert_eq!(status, 201, "creating a product: {created}");
    let session = json!({"title": "Lamps", "productIds": [created["data"]["id"]]}).to_string();
    let (status, created) = rest(node, "POST", "/api/sessions", creator, Some(&session)).await;
    assert_eq!(status, 201, "creating a live session: {created}");
    let id = created["data"]["id"].as_str().expect("session id");
    let (status, started) = rest(node, "POST", &format!("/api/sessions/{id}/start-stream"), creator, None).await;
    assert_eq!(status, 200, "starting the stream: {started}");
    format!("/api/sessions/{id}/chat")
}

/// With `--store redis`, Redis refuses every write (`maxmemory` 1 byte, `noeviction`: OOM errors). A seat
/// booking and a live-commerce chat message over REST answer 503 with a JSON message (a movie-voting
/// session: the seeds' documented 500),
/// native booking and session calls get 2010; reads are still served. Redis refusing writes is the cluster bus being down
/// too: nodes answer `/ready` 503 and publishes are acknowledged unsequenced up to the outbox, then refused
/// with 2010, as in an outage; subscribers keep receiving. Once the limit is lifted the same writes
/// succeed and every acknowledged publish reaches every node. No node panics.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_writes_refused_by_redis_get_coded_errors_and_succeed_after() {
    let redis = RedisServer::start(&[]).await.expect("redis-server");
    let mut nodes = outage_nodes(&redis).await;
    let organizer = token(json!({"sub": "olga", "name": "Olga", "role": "organizer"}));
    let booker = token(json!({"sub": "bea", "name": "Bea"}));
    let body = json!({"title": "Full house", "seatCapacity": 100}).to_string();
    let (status, event) = rest(&nodes[0], "POST", "/api/events", &organizer, Some(&body)).await;
    assert_eq!(status, 201, "creating the event: {event}");
    let id = event["id"].as_u64().expect("numeric event id");
    let booking = format!("/api/events/{id}/bookings");
    let seat = json!({"seats": 1}).to_string();
    let native = connect(&nodes[2], "nat").await;
    let chat = live_stream_chat(&nodes[0], &organizer).await;
    let line = json!({"message": "still there?"}).to_string();
    let mut load = Load::start(&nodes, "faults/oom").await;
    load.acked_more(50, "publishing before the writes are refused").await;

    config_set(&redis, "maxmemory-policy", "noeviction").await;
    config_set(&redis, "maxmemory", "1").await;

    let (status, body) = rest(&nodes[1], "POST", &booking, &booker, Some(&seat)).await;
    assert_unavailable("booking a seat while Redis refuses writes", status, &body);
    println!("booking while Redis refuses writes: {status} {body}");
    let (status, body) = rest(&nodes[1], "POST", &chat, &booker, Some(&line)).await;
    assert_unavailable("a live-commerce chat message while Redis refuses writes", status, &body);
    // The seeds' create route answers any store failure with this 500 (the module's README); its native
    // call has the coded error.
    let (status, body) = rest(&nodes[1], "POST", "/api/session/create", &booker, None).await;
    assert_eq!(
        (status, &body),
        (500, &json!({"message": "Failed to create session"})),
        "creating a movie-voting session over REST while Redis refuses writes"
    );
    for (method, args) in [("booking.book", json!({"eventId": id, "seats": 1})), ("movies.create", json!({}))] {
        let refused = native.call(method, Payload::from_value(&args).expect("args")).await;
        let refused = refused.expect_err("a write while Redis refuses writes");
        assert_eq!(
            refused.error_code(),
            Some(ErrorCode::Unavailable),
            "{method} while Redis refuses writes: {refused}"
        );
    }
    let (status, read) = rest(&nodes[1], "GET", &format!("/api/events/{id}"), &booker, None).await;
    assert_eq!((status, read["availableSeats"].as_u64()), (200, Some(100)), "reads are served: {read}");

    until_all(&nodes, "/ready", 503, WAIT, "Redis refusing writes").await;
    load.fill_outboxes().await;
    assert_alive(&mut nodes, "while Redis refuses writes").await;

    config_set(&redis, "maxmemory", "0").await;
    until_all(&nodes, "/ready", 200, WAIT, "the memory limit lifted").await;
    let (status, body) = rest(&nodes[1], "POST", &booking, &booker, Some(&seat)).await;
    assert_eq!(status, 201, "booking a seat after the limit is lifted: {body}");
    let (status, body) = rest(&nodes[1], "POST", &chat, &booker, Some(&line)).await;
    assert_eq!(status, 201, "a live-commerce chat message after the limit is lifted: {body}");
    let (status, body) = rest(&nodes[1], "POST", "/api/session/create", &booker, None).await;
    assert_eq!(status, 200, "creating a movie-voting session after the limit is lifted: {body}");
    for (method, args) in [("booking.book", json!({"eventId": id, "seats": 1})), ("movies.create", json!({}))] {
        let done = native.call(method, Payload::from_value(&args).expect("args")).await;
        done.unwrap_or_else(|e| panic!("{method} after the limit is lifted: {e}"));
    }
    let (status, read) = rest(&nodes[0], "GET", &format!("/api/events/{id}"), &organizer, None).await;
    assert_eq!((status, read["availableSeats"].as_u64()), (200, Some(98)), "the two bookings, once each: {read}");

    load.acked_more(50, "publishing after the limit is lifted").await;
    load.finish().await;
    assert_alive(&mut nodes, "after the limit is lifted").await;
}

/// A tmpfs of a few megabytes mounted for one test (a disk that fills up), unmounted when dropped.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    /// Mounts a tmpfs of `size` (e.g. `16m`); the error says why it cannot (not root, no `mount`, a
    /// container that forbids it).
    fn mount(size: &str) -> Result<Self, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let out = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).trim().to_owned());
        }
        Ok(Self { dir })
    }

    fn path(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// Writes a file of zeros until the file system is full; returns its path and size.
    fn fill(&self) -> (std::path::PathBuf, u64) {
        use std::io::Write;
        let path = self.path().join("filler");
        let mut file = std::fs::File::create(&path).expect("create the filler file");
        let chunk = vec![0u8; 64 * 1024];
        let mut written = 0u64;
        loop {
            match file.write(&chunk) {
                Ok(0) => break,
                Ok(n) => written += n as u64,
                Err(e) if e.raw_os_error() == Some(libc_enospc()) => break,
                Err(e) => panic!("filling the tmpfs: {e}"),
            }
        }
        (path, written)
    }
}

/// `ENOSPC`, "no space left on device" (28 on Linux).
fn libc_enospc() -> i32 {
    std::io::Error::from(std::io::ErrorKind::StorageFull).raw_os_error().unwrap_or(28)
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        // Lazy: the broker may still hold files on it for a moment after being killed.
        let _ = std::process::Command::new("umount").arg("-l").arg(self.dir.path()).status();
    }
}

/// Seats booked (one at a time) while the disk is full. A write that needs a new page fails; after a
/// failure the store reopens its file, and a write that fits in pages it already holds succeeds.
const FULL_DISK_ATTEMPTS: usize = 50;

/// The embedded store (the default) on a tmpfs that is then filled up: each seat booking is answered 201
/// (it fitted in the store's file) or 503 with a JSON message, some of them 503, none with a panic;
/// pub/sub, in memory, is unaffected; once space is freed, booking succeeds again without a restart, and
/// the seats left are exactly the capacity minus the 201s (nothing acknowledged lost, nothing refused
/// applied). Skipped, saying so, where a tmpfs cannot be mounted.
#[tokio::test]
async fn a_full_disk_refuses_embedded_store_writes_with_503_and_they_succeed_once_space_is_back() {
    let fs = match Tmpfs::mount("16m") {
        Ok(fs) => fs,
        Err(why) => {
            println!("skipped: cannot mount a tmpfs for the data dir ({why})");
            return;
        }
    };
    let data_dir = tempfile::tempdir_in(fs.path()).expect("data dir on the tmpfs");
    let mut broker = Broker::start_recording_in(data_dir, &[]).await;
    let organizer = token(json!({"sub": "olga", "name": "Olga", "role": "organizer"}));
    let booker = token(json!({"sub": "bea", "name": "Bea"}));
    const SEATS: u64 = 1_000;
    let body = json!({"title": "Full disk", "seatCapacity": SEATS}).to_string();
    let (status, event) = rest(&broker, "POST", "/api/events", &organizer, Some(&body)).await;
    assert_eq!(status, 201, "creating the event: {event}");
    let id = event["id"].as_u64().expect("numeric event id");
    let booking = format!("/api/events/{id}/bookings");
    let seat = json!({"seats": 1}).to_string();
    let listener = connect(&broker, "lis").await;
    listener.subscribe("faults/disk").await.expect("subscribe");
    let talker = connect(&broker, "tal").await;

    let (filler, size) = fs.fill();
    println!("tmpfs filled with {size} bytes");
    let (mut booked, mut refused) = (0, 0);
    for attempt in 0..FULL_DISK_ATTEMPTS {
        let (status, body) = rest(&broker, "POST", &booking, &booker, Some(&seat)).await;
        match status {
            201 => booked += 1,
            _ => {
                assert_unavailable(&format!("booking #{attempt} on a full disk"), status, &body);
                if refused == 0 {
                    println!("booking #{attempt} on a full disk: {status} {body}");
                }
                refused += 1;
            }
        }
    }
    println!("on the full disk: {booked} bookings fitted in the store's file, {refused} refused");
    assert!(refused > 0, "{FULL_DISK_ATTEMPTS} bookings all succeeded on a full disk");
    for n in 1..=3u64 {
        let seq = talker.publish("faults/disk", Payload::from_value(&json!(n)).expect("payload")).await;
        assert_eq!(seq.expect("a publish on a full disk"), n, "pub/sub does not touch the disk");
        let event = tokio::time::timeout(WAIT, listener.next_event()).await.expect("an event").expect("open");
        assert_eq!((event.seq, event.payload.to_json()), (n, json!(n)), "delivered on a full disk");
    }

    std::fs::remove_file(&filler).expect("remove the filler");
    let (status, body) = rest(&broker, "POST", &booking, &booker, Some(&seat)).await;
    assert_eq!(status, 201, "booking once space is back: {body}");
    let (status, read) = rest(&broker, "GET", &format!("/api/events/{id}"), &organizer, None).await;
    assert_eq!(
        (status, read["availableSeats"].as_u64()),
        (200, Some(SEATS - booked - 1)),
        "every 201 booked once, no refused booking half-applied: {read}"
    );
    assert!(broker.is_running(), "the broker exited: {:?}", broker.child.try_wait());
    let stderr = broker.stderr();
    assert!(!stderr.contains("panicked"), "the broker panicked:\n{stderr}");
}
