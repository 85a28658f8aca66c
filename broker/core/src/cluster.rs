//! Cluster mode: several nodes share topics, presence, counters and history through Redis.
//!
//! A node runs single-node (everything in memory, [`Registry`](crate::topics::Registry) numbers events)
//! unless a Redis URL is configured; then it runs with a [`Cluster`] bus, implemented here on Redis
//! ([`RedisCluster`], with fred). What the bus provides:
//!
//! - **Sequencing and fan-out.** A publish runs one Lua script on the topic's keys: it takes the topic's
//!   next sequence number (a counter in the topic's hash, beside its *epoch*), appends the event to the
//!   topic's stream (`XADD … MAXLEN history_size`), and publishes it on the topic's channel (`SPUBLISH`
//!   on Redis Cluster, `PUBLISH` otherwise) — atomically, so every node sees one order per topic. The
//!   publishing node delivers to its own subscribers from the script's reply (its own message on the
//!   channel is then a duplicate); other nodes deliver from the channel. Each node applies a topic's events
//!   strictly in sequence order, each once ([`Registry::apply`](crate::topics::Registry::apply)): an
//!   event that arrives early is held until the gap before it is filled, and a gap still open after
//!   [`GAP_WAIT`] is filled from the stream. So a publish reaches every subscriber exactly once, in the
//!   topic's order (which contains each publisher's order).
//! - **Interest.** A node subscribes on Redis only to the channels of topics it has local subscribers for;
//!   subscribes and unsubscribes are batched (one `SUBSCRIBE` with many channels per round).
//! - **History and recovery.** The stream is the topic's shared history: a client that comes back, to any
//!   node, with its last `(epoch, offset)` gets the events after it from the stream (or `recovered:
//!   false` when the stream no longer reaches back or the epoch changed). The topic's keys expire
//!   `history_ttl` after its last publish or the last time a node held it (nodes refresh the keys of the
//!   topics they have subscribers for every third of it); a later publish starts a new epoch.
//! - **Presence.** Each node keeps, in the topic's presence hash, one field per present user (its local
//!   connection count and display name), and a liveness key refreshed every heartbeat. Reads merge the
//!   fields of live nodes: a node that dies stops counting within [`node_ttl`] of its last heartbeat.
//! - **Rosters.** A module's per-user presence books ([`crate::roster`]) live in one hash per book; a
//!   node asks the bus only when a user's first connection on it joins or their last leaves, and one
//!   Lua script decides atomically whether that changed the cluster's view. Each heartbeat also records
//!   the node in a node set and finds the nodes whose liveness key expired: the next operation on a book
//!   they had users in removes those users and reports the ones present nowhere else, once.
//! - **Counters.** [`SharedCounters`](crate::counters::SharedCounters) add locally and flush deltas with
//!   `INCRBY` in one pipeline per flush interval; reads return the cluster total as of the last flush plus
//!   the local deltas not yet flushed.
//!
//! Failure behaviour: Redis unreachable at start → the node does not start (a cluster node that cannot
//! reach its peers would serve a split view; the supervisor retries). Redis lost while running → the node
//! stays up and marks itself not ready (`/ready` 503) while fred reconnects with backoff; publishes on it
//! are delivered to its own subscribers at once, unsequenced (`seq` 0), and kept in a bounded outbox that
//! is sequenced and sent to the other nodes once Redis is back (beyond the bound, publishes are refused
//! with error 2010). When Redis is back, every topic looks for the events it missed and fills the gap
//! from the stream; where the stream no longer covers it, its subscribers are closed with 4003
//! `resync` so they reconnect and learn from `recovered: false` that they lost events.

use crate::metrics::Metrics;
use crate::metrics::cluster as metrics;
use crate::presence::Member;
use crate::topics::{Gap, History, Registry, Via, new_epoch};
use bytes::Bytes;
use chorus_protocol::{Codec, Payload};
use fred::clients::SubscriberClient;
use fred::prelude::{
    Builder, Client, ClientLike, Config, EventInterface, Expiration, KeysInterface, PubsubInterface, ReconnectPolicy,
    Value,
};
use fred::types::{ClusterHash, CustomCommand, Message};
use futures_util::future::BoxFuture;
use parking_lot::Mutex;
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::{Notify, oneshot};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// How long a topic waits for a missing event on the channel before fetching it from the stream.
pub const GAP_WAIT: Duration = Duration::from_millis(100);

/// How long a gap whose events may still be on the bus (behind a reply that overtook them) is waited
/// for before they are taken as lost.
const GAP_GIVE_UP: Duration = Duration::from_secs(2);

/// Longest wait for the first connection at start.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Longest wait for one Redis command; a publish fails with error 2010 after it.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(2);

/// Channel messages buffered between the Redis connection and the listener. Beyond it messages are
/// dropped by the buffer and the listener resynchronises every topic from the streams.
const MESSAGE_BUFFER: usize = 4_096;

/// How long a node's presence entries outlive its last heartbeat.
pub fn node_ttl(heartbeat: Duration) -> Duration {
    heartbeat * 3
}

/// A bus failure.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// Redis did not answer, or answered with an error.
    #[error("cluster bus unavailable: {0}")]
    Unavailable(String),
    /// Redis answered something the node does not understand.
    #[error("cluster bus answered unexpectedly: {0}")]
    Protocol(String),
    /// The bus is down and the outbox is full.
    #[error("cluster bus unavailable and the outbox is full ({0} publishes waiting)")]
    OutboxFull(usize),
}

impl From<fred::error::Error> for ClusterError {
    fn from(e: fred::error::Error) -> Self {
        Self::Unavailable(e.to_string())
    }
}

/// Where a topic's sequence stands on the bus.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    /// The topic's epoch.
    pub epoch: String,
    /// The last sequence number given out.
    pub seq: u64,
}

/// A topic's shared history after a position.
#[derive(Debug, Clone, PartialEq)]
pub struct Missed {
    /// Where the topic stands.
    pub head: Head,
    /// Events after the asked offset, oldest first, as far as the history holds them.
    pub events: Vec<(u64, Payload)>,
}

/// A roster operation on one book (see [`crate::roster`]), as this node asks the bus for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BookOp {
    /// The user's first connection on this node joined.
    Join {
        /// The user's subject.
        user: String,
        /// Their display name.
        name: String,
    },
    /// The user's last connection on this node left.
    Leave {
        /// The user's subject.
        user: String,
    },
    /// How many are present (and who left through dead nodes).
    Count,
    /// Who is present.
    Members,
    /// Sets this node's users of the book to exactly these `(user, name)` pairs (after an outage).
    Sync(Vec<(String, String)>),
}

/// A present user of a book.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BookMember {
    /// The user's subject.
    pub user: String,
    /// The display name given at their first join.
    pub name: String,
}

/// What the bus answered to a [`BookOp`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BookReply {
    /// A join made the user present in the cluster, or a leave made them absent.
    pub changed: bool,
    /// Users present in the book on every node.
    pub present: usize,
    /// Counts the book's changes; orders `present` figures published by different nodes.
    pub version: u64,
    /// Users who were present only through nodes found dead while running the operation.
    pub departed: Vec<BookMember>,
    /// Who is present, for [`BookOp::Members`].
    pub members: Vec<BookMember>,
}

/// The parts of a node the bus works on: it delivers into the registry, never sees the node itself.
#[derive(Clone)]
pub struct Attachment {
    /// Where events from the bus are applied.
    pub registry: Arc<Registry>,
    /// Delivery metrics.
    pub metrics: Metrics,
    /// Cancelled when the node shuts down; the bus's work ends then.
    pub shutdown: CancellationToken,
}

/// The bus that connects a cluster's nodes. The single-node broker has none.
pub trait Cluster: Send + Sync + 'static {
    /// This node's id on the bus.
    fn node_id(&self) -> &str;

    /// Whether the bus is reachable and this node's view is complete.
    fn healthy(&self) -> bool;

    /// Sequences an event and sends it to every node; returns its epoch and sequence number. With a
    /// `version` (key, number), the event is dropped — sequence number 0 — when the topic already had an
    /// event of that key with a version at least as high. `delivered`: this node gave it to its own
    /// subscribers already (it was kept while the bus was down).
    fn publish<'a>(
        &'a self,
        topic: &'a str,
        payload: &'a Payload,
        version: Option<(&'a str, u64)>,
        delivered: bool,
    ) -> BoxFuture<'a, Result<Head, ClusterError>>;

    /// Keeps a publish made while the bus is down, to sequence and send when it is back; returns false
    /// (keeping nothing) when the bus is up again — then publish it.
    fn defer(&self, topic: &str, payload: &Payload, version: Option<(&str, u64)>) -> Result<bool, ClusterError>;

    /// Starts receiving a topic's events (once per local subscriber; counted); returns once the node
    /// listens. Events are delivered through [`Registry::apply`](crate::topics::Registry::apply).
    fn watch<'a>(&'a self, topic: &'a str) -> BoxFuture<'a, Result<(), ClusterError>>;

    /// Undoes one [`Cluster::watch`].
    fn unwatch(&self, topic: &str);

    /// Where a topic stands and, with `after`, its shared history after that offset (at most the history
    /// size), in one round trip.
    fn missed<'a>(&'a self, topic: &'a str, after: Option<u64>) -> BoxFuture<'a, Result<Missed, ClusterError>>;

    /// Records this node's presence of `user` in `topic`: `connections` 0 removes it.
    fn set_presence(&self, topic: &str, user: &str, name: Option<&str>, connections: usize);

    /// Everyone present in `topic` on any live node.
    fn presence<'a>(&'a self, topic: &'a str) -> BoxFuture<'a, Result<Vec<Member>, ClusterError>>;

    /// Adds counter deltas to the cluster totals (deltas may be 0 to read) and returns the totals.
    fn add_counters(&self, deltas: Vec<(String, i64)>) -> BoxFuture<'_, Result<Vec<i64>, ClusterError>>;

    /// Runs a roster operation on `book`, atomically for the whole cluster; first removes from the book
    /// the users of nodes found dead (reported in [`BookReply::departed`], to exactly one caller).
    fn book<'a>(&'a self, book: &'a str, op: BookOp) -> BoxFuture<'a, Result<BookReply, ClusterError>>;

    /// Grows each time a heartbeat finds a node dead, so the roster knows to look for departures.
    fn deaths(&self) -> u64;

    /// Runs the bus's background work (channel listener, heartbeat, gap filling, outbox) until the node
    /// shuts down.
    fn run(self: Arc<Self>, node: Attachment) -> BoxFuture<'static, ()>;
}

/// Publishes a sequenced event: `KEYS` = topic hash, stream; `ARGV` = payload (MessagePack), stream
/// length, TTL (ms), fresh epoch, channel, publish command, origin node, version key (empty: none),
/// version, flags (`d`: the origin delivered it already). Returns `{epoch, seq}`, seq 0 when a version
/// at least as high was published already.
const LUA_PUBLISH: &str = r#"
local epoch = redis.call('HGET', KEYS[1], 'epoch')
if not epoch then
  epoch = ARGV[4]
  redis.call('DEL', KEYS[2])
  redis.call('HSET', KEYS[1], 'epoch', epoch, 'seq', 0)
end
if ARGV[8] ~= '' then
  local field = 'v:' .. ARGV[8]
  local last = redis.call('HGET', KEYS[1], field)
  if last and tonumber(ARGV[9]) <= tonumber(last) then
    return {epoch, 0}
  end
  redis.call('HSET', KEYS[1], field, ARGV[9])
end
local seq = redis.call('HINCRBY', KEYS[1], 'seq', 1)
local maxlen = tonumber(ARGV[2])
if maxlen > 0 then
  redis.call('XADD', KEYS[2], 'MAXLEN', maxlen, '0-' .. seq, 'p', ARGV[1])
  redis.call('PEXPIRE', KEYS[2], ARGV[3])
end
redis.call('PEXPIRE', KEYS[1], ARGV[3])
redis.call(ARGV[6], ARGV[5], epoch .. '\n' .. seq .. '\n' .. ARGV[7] .. '\n' .. ARGV[10] .. '\n' .. ARGV[1])
return {epoch, seq}
"#;

/// Reads a topic's head and its history after an offset: `KEYS` = topic hash, stream; `ARGV` = offset,
/// count, fresh epoch, TTL (ms). Creates the topic (a new epoch) when it does not exist. Returns `{epoch,
/// seq, id1, payload1, id2, payload2, …}`.
const LUA_READ: &str = r#"
local epoch = redis.call('HGET', KEYS[1], 'epoch')
if not epoch then
  epoch = ARGV[3]
  redis.call('DEL', KEYS[2])
  redis.call('HSET', KEYS[1], 'epoch', epoch, 'seq', 0)
  redis.call('PEXPIRE', KEYS[1], ARGV[4])
end
local out = {epoch, redis.call('HGET', KEYS[1], 'seq')}
local count = tonumber(ARGV[2])
if count > 0 then
  local entries = redis.call('XRANGE', KEYS[2], '0-' .. (tonumber(ARGV[1]) + 1), '+', 'COUNT', count)
  for _, e in ipairs(entries) do
    table.insert(out, e[1])
    table.insert(out, e[2][2])
  end
end
return out
"#;

/// A roster operation on one book: `KEYS` = the book's hash; `ARGV` = operation (`join`, `leave`,
/// `count`, `members`, `sync`), this node, TTL (ms), number of dead nodes, the dead nodes, then the
/// operation's arguments (`join`: user, name; `leave`: user; `sync`: user, name pairs).
///
/// The hash holds `p␟node␟user` (that node has the user), `u␟user` (on how many nodes), `m␟user` (the
/// name), `count` (users present), `version` (bumped on every change) and `nodes` (the nodes that wrote
/// to it, newline-separated). A dead node's entries are removed by whichever operation sees it first, so
/// its users' departures are reported once. Returns `{changed, count, version, n, departed pairs…,
/// member pairs…}`.
const LUA_ROSTER: &str = r#"
local key, op, me = KEYS[1], ARGV[1], ARGV[2]
local ndead = tonumber(ARGV[4])
local at = 5 + ndead
local nodes = {}
for n in string.gmatch(redis.call('HGET', key, 'nodes') or '', '[^\n]+') do nodes[n] = true end
local rewrite, bump, changed = false, false, 0
local departed = {}
local function drop(user)
  if redis.call('HINCRBY', key, 'u\31' .. user, -1) <= 0 then
    local name = redis.call('HGET', key, 'm\31' .. user) or ''
    redis.call('HDEL', key, 'u\31' .. user, 'm\31' .. user)
    redis.call('HINCRBY', key, 'count', -1)
    return name
  end
  return nil
end
local function add(user, name)
  if redis.call('HSETNX', key, 'p\31' .. me .. '\31' .. user, 1) == 1 then
    if redis.call('HINCRBY', key, 'u\31' .. user, 1) == 1 then
      redis.call('HSET', key, 'm\31' .. user, name)
      redis.call('HINCRBY', key, 'count', 1)
      return 1
    end
  end
  return 0
end
local function own(node)
  local prefix = 'p\31' .. node .. '\31'
  local users = {}
  for _, f in ipairs(redis.call('HKEYS', key)) do
    if string.sub(f, 1, #prefix) == prefix then table.insert(users, string.sub(f, #prefix + 1)) end
  end
  return users
end
for i = 5, 4 + ndead do
  local dead = ARGV[i]
  if nodes[dead] then
    nodes[dead] = nil
    rewrite, bump = true, true
    for _, user in ipairs(own(dead)) do
      redis.call('HDEL', key, 'p\31' .. dead .. '\31' .. user)
      local name = drop(user)
      if name then
        table.insert(departed, user)
        table.insert(departed, name)
      end
    end
  end
end
if (op == 'join' or op == 'sync') and not nodes[me] then
  nodes[me] = true
  rewrite = true
end
if op == 'join' then
  changed = add(ARGV[at], ARGV[at + 1])
elseif op == 'leave' then
  if redis.call('HDEL', key, 'p\31' .. me .. '\31' .. ARGV[at]) == 1 and drop(ARGV[at]) then changed = 1 end
elseif op == 'sync' then
  local want = {}
  for i = at, #ARGV, 2 do want[ARGV[i]] = ARGV[i + 1] end
  for _, user in ipairs(own(me)) do
    if want[user] then
      want[user] = nil
    else
      redis.call('HDEL', key, 'p\31' .. me .. '\31' .. user)
      drop(user)
    end
  end
  for user, name in pairs(want) do add(user, name) end
  bump = true
end
if changed == 1 then bump = true end
if rewrite then
  local list = {}
  for n in pairs(nodes) do table.insert(list, n) end
  redis.call('HSET', key, 'nodes', table.concat(list, '\n'))
end
local version = tonumber(redis.call('HGET', key, 'version') or '0')
if bump then version = redis.call('HINCRBY', key, 'version', 1) end
redis.call('PEXPIRE', key, ARGV[3])
local out = {changed, math.max(0, tonumber(redis.call('HGET', key, 'count') or '0')), version, #departed / 2}
for _, v in ipairs(departed) do table.insert(out, v) end
if op == 'members' then
  local all = redis.call('HGETALL', key)
  for i = 1, #all, 2 do
    if string.sub(all[i], 1, 2) == 'm\31' then
      table.insert(out, string.sub(all[i], 3))
      table.insert(out, all[i + 1])
    end
  end
end
return out
"#;

/// A Lua script and the SHA1 Redis knows it by.
struct Script {
    name: &'static str,
    source: &'static str,
    sha: String,
}

impl Script {
    async fn load(client: &Client, name: &'static str, source: &'static str) -> Result<Self, ClusterError> {
        let cmd = CustomCommand::new_static("SCRIPT", ClusterHash::Random, false);
        let sha: String = client.custom(cmd, vec![Value::from("LOAD"), Value::from(source)]).await?;
        Ok(Self { name, source, sha })
    }

    /// Loads the script again (a restarted Redis has an empty script cache), so that publishes sent in a
    /// row run in that order rather than one of them being resent after a `NOSCRIPT`.
    async fn reload(&self, client: &Client) -> Result<(), ClusterError> {
        Self::load(client, self.name, self.source).await.map(|_| ())
    }
}

fn meta_key(topic: &str) -> String {
    format!("chorus:t:{{{topic}}}")
}

fn stream_key(topic: &str) -> String {
    format!("chorus:h:{{{topic}}}")
}

fn channel(topic: &str) -> String {
    format!("chorus:c:{{{topic}}}")
}

fn topic_of_channel(channel: &str) -> Option<&str> {
    channel.strip_prefix("chorus:c:{")?.strip_suffix('}')
}

fn presence_key(topic: &str) -> String {
    format!("chorus:p:{{{topic}}}")
}

fn roster_key(book: &str) -> String {
    format!("chorus:r:{{{book}}}")
}

/// Every node that has been seen on the bus, scored by its last heartbeat (Unix ms, its own clock).
const NODES_KEY: &str = "chorus:nodes";

/// Nodes whose last heartbeat is older than this are forgotten (no longer named dead to the roster).
const FORGET_NODES_AFTER: Duration = Duration::from_secs(3_600);

fn node_key(node: &str) -> String {
    format!("chorus:node:{node}")
}

fn counter_key(key: &str) -> String {
    format!("chorus:k:{key}")
}

/// Field of a presence hash: node id, unit separator, user.
fn presence_field(node: &str, user: &str) -> String {
    format!("{node}\u{1f}{user}")
}

/// A channel message: `epoch \n seq \n origin \n flags \n payload`.
struct Delivery {
    topic: String,
    epoch: String,
    seq: u64,
    origin: String,
    /// The origin delivered it to its own subscribers already (from its outbox).
    delivered: bool,
    payload: Payload,
}

fn parse_message(message: &Message) -> Option<Delivery> {
    let topic = topic_of_channel(&message.channel)?.to_owned();
    let bytes = match &message.value {
        Value::Bytes(b) => b.clone(),
        Value::String(s) => Bytes::copy_from_slice(s.as_bytes()),
        _ => return None,
    };
    let mut at = 0;
    let mut header = [""; 4];
    for field in &mut header {
        let end = at + bytes[at..].iter().position(|b| *b == b'\n')?;
        *field = std::str::from_utf8(&bytes[at..end]).ok()?;
        at = end + 1;
    }
    let [epoch, seq, origin, flags] = header;
    let (epoch, seq, origin, delivered) = (epoch.to_owned(), seq.parse().ok()?, origin.to_owned(), flags.contains('d'));
    let payload = Payload::from_msgpack(bytes.slice(at..)).ok()?;
    Some(Delivery { topic, epoch, seq, origin, delivered, payload })
}

/// Interest in channels: how many local holders each topic has, and which channels are subscribed.
#[derive(Default)]
struct Interest {
    holders: HashMap<String, usize>,
    active: HashSet<String>,
    waiting: HashMap<String, Vec<oneshot::Sender<Result<(), String>>>>,
}

/// This node's presence as written to Redis, and the changes not written yet.
#[derive(Default)]
struct PresenceBook {
    /// Entries per topic (user → value), to rewrite after Redis lost them.
    written: HashMap<String, HashMap<String, String>>,
    /// How many entries `written` holds.
    entries: usize,
    /// Changes waiting for the writer, per topic (user → value, `None` removes): a user who joins and
    /// leaves many times before the writer runs costs one write, and an outage cannot grow a queue.
    dirty: HashMap<String, HashMap<String, Option<String>>>,
}

/// A publish kept while Redis is unreachable.
#[derive(Clone)]
struct Deferred {
    topic: String,
    payload: Payload,
    version: Option<(String, u64)>,
}

/// The Redis implementation of [`Cluster`].
pub struct RedisCluster {
    client: Client,
    subscriber: SubscriberClient,
    node_id: String,
    sharded: bool,
    history: History,
    heartbeat: Duration,
    outbox_limit: usize,
    publish: Script,
    read: Script,
    healthy: AtomicBool,
    interest: Mutex<Interest>,
    interest_changed: Notify,
    outbox: Mutex<VecDeque<Deferred>>,
    presence: Mutex<PresenceBook>,
    presence_changed: Notify,
    roster: Script,
    /// Nodes the last heartbeat found dead.
    dead: Mutex<Vec<String>>,
    deaths: AtomicU64,
}

/// What a cluster node needs to know besides the URL.
#[derive(Debug, Clone)]
pub struct ClusterOptions {
    /// This node's id.
    pub node_id: String,
    /// Events per topic in the shared history (stream `MAXLEN`).
    pub history: History,
    /// Heartbeat interval; presence of a dead node expires after [`node_ttl`] of it.
    pub heartbeat: Duration,
    /// Publishes kept while Redis is unreachable.
    pub outbox: usize,
}

impl RedisCluster {
    /// Connects to Redis (fails if it does not answer within 5 s) and loads the scripts.
    pub async fn connect(url: &str, options: ClusterOptions) -> Result<Arc<Self>, ClusterError> {
        let config = Config::from_url(url).map_err(|e| ClusterError::Unavailable(format!("Redis URL: {e}")))?;
        let sharded = config.server.is_clustered();
        let mut builder = Builder::from_config(config);
        builder
            .with_connection_config(|c| c.connection_timeout = CONNECT_TIMEOUT)
            .with_performance_config(|p| p.default_command_timeout = COMMAND_TIMEOUT)
            .set_policy(ReconnectPolicy::new_exponential(0, 100, 5_000, 2));
        let client = builder.build()?;
        // Only the subscriber's message channel needs room; fred sizes all of a client's event channels
        // alike and allocates them up front.
        builder.with_performance_config(|p| p.broadcast_channel_capacity = MESSAGE_BUFFER);
        let subscriber = builder.build_subscriber_client()?;
        let connect = async {
            client.init().await?;
            subscriber.init().await?;
            Ok::<_, fred::error::Error>(())
        };
        tokio::time::timeout(CONNECT_TIMEOUT, connect)
            .await
            .map_err(|_| ClusterError::Unavailable(format!("no answer within {CONNECT_TIMEOUT:?}")))??;
        subscriber.manage_subscriptions();
        let publish = Script::load(&client, "publish", LUA_PUBLISH).await?;
        let read = Script::load(&client, "read", LUA_READ).await?;
        let roster = Script::load(&client, "roster", LUA_ROSTER).await?;
        let cluster = Arc::new(Self {
            client,
            subscriber,
            node_id: options.node_id,
            sharded,
            history: options.history,
            heartbeat: options.heartbeat,
            outbox_limit: options.outbox,
            publish,
            read,
            healthy: AtomicBool::new(true),
            interest: Mutex::default(),
            interest_changed: Notify::new(),
            outbox: Mutex::default(),
            presence: Mutex::default(),
            presence_changed: Notify::new(),
            roster,
            dead: Mutex::default(),
            deaths: AtomicU64::new(0),
        });
        cluster.beat().await?;
        metrics::up(true);
        Ok(cluster)
    }

    fn ttl_ms(&self) -> i64 {
        i64::try_from(self.history.ttl.as_millis()).unwrap_or(i64::MAX).max(1)
    }

    async fn eval<const N: usize>(
        &self,
        script: &Script,
        keys: [String; N],
        args: Vec<Value>,
    ) -> Result<Value, ClusterError> {
        let started = Instant::now();
        let slot = ClusterHash::Custom(fred::util::redis_keyslot(keys[0].as_bytes()));
        let mut argv = Vec::with_capacity(4 + args.len());
        argv.push(Value::from(script.sha.as_str()));
        argv.push(Value::Integer(N as i64));
        argv.extend(keys.into_iter().map(Value::from));
        argv.extend(args);
        let evalsha = CustomCommand::new_static("EVALSHA", slot.clone(), false);
        let result = match self.client.custom::<Value, Value>(evalsha, argv.clone()).await {
            Err(e) if e.details().starts_with("NOSCRIPT") => {
                tracing::debug!(script = script.name, "Redis lost the script; sending its source");
                argv[0] = Value::from(script.source);
                self.client.custom(CustomCommand::new_static("EVAL", slot, false), argv).await
            }
            result => result,
        };
        metrics::redis_latency(script.name, started.elapsed());
        Ok(result?)
    }

    /// Refreshes this node's liveness key: the heartbeat, and the health probe.
    async fn beat(&self) -> Result<(), ClusterError> {
        let started = Instant::now();
        let ttl = Expiration::PX(i64::try_from(node_ttl(self.heartbeat).as_millis()).unwrap_or(i64::MAX));
        let _: Value = self.client.set(node_key(&self.node_id), 1, Some(ttl), None, false).await?;
        self.census().await?;
        metrics::redis_latency("heartbeat", started.elapsed());
        Ok(())
    }

    /// Records this node in the node set and finds which of the others are dead (their liveness key
    /// expired): the roster removes their users from the books it holds.
    async fn census(&self) -> Result<(), ClusterError> {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        let millis = |d: Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        let score = Value::Integer(millis(now));
        self.command::<i64>("ZADD", NODES_KEY, vec![score, Value::from(self.node_id.as_str())]).await?;
        let forget = Value::Integer(millis(now.saturating_sub(FORGET_NODES_AFTER)));
        self.command::<i64>("ZREMRANGEBYSCORE", NODES_KEY, vec![Value::from("-inf"), forget]).await?;
        let known: Vec<String> = self.command("ZRANGE", NODES_KEY, vec![Value::Integer(0), Value::Integer(-1)]).await?;
        let others: Vec<String> = known.into_iter().filter(|n| *n != self.node_id).collect();
        let pipeline = self.client.pipeline();
        for node in &others {
            let _: Value = pipeline.exists(node_key(node)).await?;
        }
        let alive: Vec<Value> = if others.is_empty() { Vec::new() } else { pipeline.all().await? };
        let dead: Vec<String> = others
            .into_iter()
            .zip(alive)
            .filter(|(_, alive)| alive.as_i64() == Some(0))
            .map(|(node, _)| node)
            .collect();
        let mut known_dead = self.dead.lock();
        if dead.iter().any(|n| !known_dead.contains(n)) {
            self.deaths.fetch_add(1, Ordering::AcqRel);
        }
        *known_dead = dead;
        Ok(())
    }

    /// Sends the pending channel subscribes and unsubscribes, one command each.
    async fn apply_interest(&self) {
        let (subscribe, unsubscribe) = {
            let mut interest = self.interest.lock();
            let Interest { holders, active, .. } = &mut *interest;
            let subscribe: Vec<String> = holders.keys().filter(|t| !active.contains(*t)).cloned().collect();
            let unsubscribe: Vec<String> = active.iter().filter(|t| !holders.contains_key(*t)).cloned().collect();
            (subscribe, unsubscribe)
        };
        if !unsubscribe.is_empty() {
            let channels: Vec<String> = unsubscribe.iter().map(|t| channel(t)).collect();
            let result = if self.sharded {
                self.subscriber.sunsubscribe(channels).await
            } else {
                self.subscriber.unsubscribe(channels).await
            };
            match result {
                Ok(()) => {
                    let mut interest = self.interest.lock();
                    for topic in &unsubscribe {
                        interest.active.remove(topic);
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, topics = unsubscribe.len(), "unsubscribe on Redis failed; retrying")
                }
            }
        }
        if !subscribe.is_empty() {
            let channels: Vec<String> = subscribe.iter().map(|t| channel(t)).collect();
            let started = Instant::now();
            let result = if self.sharded {
                self.subscriber.ssubscribe(channels).await
            } else {
                self.subscriber.subscribe(channels).await
            };
            metrics::redis_latency("subscribe", started.elapsed());
            let mut interest = self.interest.lock();
            for topic in subscribe {
                if result.is_ok() {
                    interest.active.insert(topic.clone());
                }
                for waiter in interest.waiting.remove(&topic).unwrap_or_default() {
                    let _ = waiter.send(result.as_ref().map(|_| ()).map_err(|e| e.to_string()));
                }
            }
        }
    }

    /// Brings one topic up to date from its stream: the events after `after`, or — when the stream no
    /// longer covers them or the epoch changed — a resync of its subscribers.
    async fn fill(&self, node: &Attachment, gap: &Gap) -> Result<(), ClusterError> {
        let missed = self.missed(&gap.topic, Some(gap.after)).await?;
        let covered = missed.events.first().map_or(missed.head.seq <= gap.after, |(seq, _)| *seq == gap.after + 1);
        if missed.head.epoch == *gap.epoch && covered {
            for (seq, payload) in &missed.events {
                let f = node.registry.apply(&gap.topic, &missed.head.epoch, *seq, payload, Via::History);
                node.metrics.delivered(f.delivered, f.overflowed);
            }
            metrics::gap_filled(missed.events.len());
            return Ok(());
        }
        // Not in the history any more. Events that only a reply overtook are still on the bus (it carries
        // each topic in order): give them time; events the bus itself skipped are lost.
        if missed.head.epoch == *gap.epoch && gap.until.is_some() && !gap.lost && gap.open_for < GAP_GIVE_UP {
            return Ok(());
        }
        let to = missed.events.first().map_or(missed.head.seq, |(seq, _)| seq - 1);
        let closed = node.registry.skip_gap(&gap.topic, &missed.head.epoch, to);
        for (seq, payload) in &missed.events {
            node.registry.apply(&gap.topic, &missed.head.epoch, *seq, payload, Via::History);
        }
        metrics::resync(closed);
        Ok(())
    }

    /// Fills the gaps that waited long enough, or with `all`, checks every topic.
    async fn fill_gaps(&self, node: &Attachment, all: bool) -> bool {
        for gap in node.registry.gaps(Instant::now(), GAP_WAIT, all) {
            if let Err(e) = self.fill(node, &gap).await {
                tracing::warn!(topic = %gap.topic, error = %e, "cannot fill a gap yet");
                return false;
            }
        }
        true
    }

    /// Sends the publishes kept during an outage, in order; returns false if Redis failed again.
    async fn drain_outbox(&self, node: &Attachment) -> bool {
        loop {
            let next = {
                let outbox = self.outbox.lock();
                match outbox.front() {
                    Some(item) => item.clone(),
                    None => {
                        self.healthy.store(true, Ordering::Release);
                        metrics::outbox(0);
                        return true;
                    }
                }
            };
            let version = next.version.as_ref().map(|(key, n)| (key.as_str(), *n));
            match self.publish(&next.topic, &next.payload, version, true).await {
                Ok(head) => {
                    self.outbox.lock().pop_front();
                    if head.seq > 0 {
                        node.registry.apply(&next.topic, &head.epoch, head.seq, &next.payload, Via::Outbox);
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "outbox not sent yet");
                    return false;
                }
            }
        }
    }

    /// Rewrites every presence entry of this node (after Redis came back, possibly empty).
    async fn rewrite_presence(&self) -> Result<(), ClusterError> {
        let written = self.presence.lock().written.clone();
        for (topic, users) in written {
            let key = presence_key(&topic);
            let existing: HashMap<String, String> = self.hgetall(&key).await?;
            let prefix = format!("{}\u{1f}", self.node_id);
            let stale: Vec<String> = existing
                .keys()
                .filter(|f| f.starts_with(&prefix) && !users.contains_key(&f[prefix.len()..]))
                .cloned()
                .collect();
            if !stale.is_empty() {
                self.command::<i64>("HDEL", &key, stale.into_iter().map(Value::from).collect()).await?;
            }
            if !users.is_empty() {
                let mut args = Vec::new();
                for (user, value) in users {
                    args.push(Value::from(presence_field(&self.node_id, &user)));
                    args.push(Value::from(value));
                }
                self.command::<i64>("HSET", &key, args).await?;
            }
        }
        Ok(())
    }

    async fn command<R: fred::types::FromValue>(
        &self,
        name: &'static str,
        key: &str,
        args: Vec<Value>,
    ) -> Result<R, ClusterError> {
        let started = Instant::now();
        let cmd =
            CustomCommand::new_static(name, ClusterHash::Custom(fred::util::redis_keyslot(key.as_bytes())), false);
        let mut argv = Vec::with_capacity(1 + args.len());
        argv.push(Value::from(key));
        argv.extend(args);
        let result = self.client.custom(cmd, argv).await;
        metrics::redis_latency("presence", started.elapsed());
        Ok(result?)
    }

    async fn hgetall(&self, key: &str) -> Result<HashMap<String, String>, ClusterError> {
        self.command("HGETALL", key, Vec::new()).await
    }

    /// Writes the pending presence changes, one `HSET` and one `HDEL` per topic, whenever there are
    /// some. A failed batch goes back (behind newer changes) and is retried when Redis is back.
    async fn write_presence(self: Arc<Self>, node: Attachment) {
        loop {
            tokio::select! {
                _ = node.shutdown.cancelled() => return,
                _ = self.presence_changed.notified() => {}
            }
            let batch = std::mem::take(&mut self.presence.lock().dirty);
            for (topic, users) in batch {
                if let Err(e) = self.write_topic_presence(&topic, &users).await {
                    tracing::debug!(error = %e, "presence write failed; retried when Redis is back");
                    self.healthy.store(false, Ordering::Release);
                    let mut book = self.presence.lock();
                    let pending = book.dirty.entry(topic).or_default();
                    for (user, value) in users {
                        pending.entry(user).or_insert(value);
                    }
                }
            }
        }
    }

    async fn write_topic_presence(
        &self,
        topic: &str,
        users: &HashMap<String, Option<String>>,
    ) -> Result<(), ClusterError> {
        let key = presence_key(topic);
        let (mut set, mut gone) = (Vec::new(), Vec::new());
        for (user, value) in users {
            let field = Value::from(presence_field(&self.node_id, user));
            match value {
                Some(value) => set.extend([field, Value::from(value.as_str())]),
                None => gone.push(field),
            }
        }
        if !set.is_empty() {
            self.command::<i64>("HSET", &key, set).await?;
        }
        if !gone.is_empty() {
            self.command::<i64>("HDEL", &key, gone).await?;
        }
        Ok(())
    }

    /// The heartbeat loop: health, liveness, gap filling, recovery after an outage.
    async fn supervise(self: Arc<Self>, node: Attachment) {
        let mut tick = tokio::time::interval(GAP_WAIT);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_beat = Instant::now();
        let mut last_refresh = Instant::now();
        let mut reconnects = self.subscriber.reconnect_rx();
        let mut resync = false;
        loop {
            tokio::select! {
                _ = node.shutdown.cancelled() => return,
                _ = self.interest_changed.notified() => self.apply_interest().await,
                reconnected = reconnects.recv() => {
                    if reconnected.is_ok() {
                        tracing::info!("Redis subscriber reconnected; looking for missed events");
                        metrics::reconnect();
                        resync = true;
                    }
                }
                _ = tick.tick() => {
                    let connected = self.connected();
                    if !connected {
                        self.mark_down(&mut resync);
                    }
                    if last_beat.elapsed() >= self.heartbeat || !self.healthy.load(Ordering::Acquire) {
                        last_beat = Instant::now();
                        let up = connected && self.beat().await.is_ok();
                        metrics::up(up);
                        if !up {
                            self.mark_down(&mut resync);
                            continue;
                        }
                    }
                    let outage_over = !self.healthy.load(Ordering::Acquire);
                    let waiting = !self.outbox.lock().is_empty();
                    if connected && (outage_over || waiting) {
                        let presence = !outage_over
                            || (self.publish.reload(&self.client).await.is_ok()
                                && self.read.reload(&self.client).await.is_ok()
                                && self.roster.reload(&self.client).await.is_ok()
                                && self.rewrite_presence().await.is_ok());
                        self.presence_changed.notify_one();
                        if presence && self.drain_outbox(&node).await && outage_over {
                            tracing::info!("Redis reachable again: cross-node delivery resumed");
                        }
                    }
                    if self.healthy() {
                        self.apply_interest().await;
                        if self.fill_gaps(&node, resync).await {
                            resync = false;
                        }
                        if last_refresh.elapsed() >= self.history.ttl / 3 {
                            last_refresh = Instant::now();
                            self.refresh(node.registry.topics()).await;
                        }
                    }
                }
            }
        }
    }

    /// Keeps the keys of topics this node holds from expiring: a topic with subscribers keeps its epoch
    /// however long it stays quiet (its history expires `history_ttl` after it is last held or published).
    async fn refresh(&self, topics: Vec<String>) {
        if topics.is_empty() {
            return;
        }
        let started = Instant::now();
        let pipeline = self.client.pipeline();
        for topic in &topics {
            for key in [meta_key(topic), stream_key(topic)] {
                if let Err(e) = pipeline.pexpire::<Value, _>(key, self.ttl_ms(), None).await {
                    tracing::debug!(error = %e, "topic refresh not queued");
                }
            }
        }
        if let Err(e) = pipeline.all::<Vec<Value>>().await {
            tracing::warn!(error = %e, topics = topics.len(), "topic keys not refreshed; retrying next round");
        }
        metrics::redis_latency("refresh", started.elapsed());
    }

    /// Whether both Redis connections are up (false while fred reconnects).
    fn connected(&self) -> bool {
        self.client.is_connected() && self.subscriber.is_connected()
    }

    /// Marks the bus down (once per outage): publishes go to the outbox, `/ready` turns false, and every
    /// topic is checked for missed events when it is back.
    fn mark_down(&self, resync: &mut bool) {
        if self.healthy.swap(false, Ordering::AcqRel) {
            tracing::warn!("Redis unreachable: cross-node delivery paused; publishes kept in the outbox");
            metrics::outage();
            metrics::up(false);
        }
        *resync = true;
    }

    /// Delivers channel messages from other nodes.
    async fn listen(self: Arc<Self>, node: Attachment) {
        let mut messages = self.subscriber.message_rx();
        loop {
            let message = tokio::select! {
                _ = node.shutdown.cancelled() => return,
                m = messages.recv() => m,
            };
            match message {
                Ok(message) => {
                    let Some(d) = parse_message(&message) else {
                        tracing::warn!(channel = %message.channel, "unreadable cluster message ignored");
                        continue;
                    };
                    // This node's own events come back too: usually already applied from the publish reply
                    // (then dropped as duplicates), but they also keep the topic's order on the bus.
                    if d.origin != self.node_id {
                        metrics::message_in();
                    }
                    let own_outbox = d.delivered && d.origin == self.node_id;
                    let via = if own_outbox { Via::OutboxOnBus } else { Via::Bus };
                    let f = node.registry.apply(&d.topic, &d.epoch, d.seq, &d.payload, via);
                    node.metrics.delivered(f.delivered, f.overflowed);
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                    tracing::warn!(lost = n, "cluster messages overflowed the buffer; refilling from the streams");
                    for gap in node.registry.gaps(Instant::now(), Duration::ZERO, true) {
                        if let Err(e) = self.fill(&node, &gap).await {
                            tracing::warn!(topic = %gap.topic, error = %e, "cannot refill yet");
                        }
                    }
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            }
        }
    }

    /// A topic's head and up to `count` events of its history after `after` (creating the topic).
    async fn read(&self, topic: &str, after: u64, count: usize) -> Result<Missed, ClusterError> {
        let args = vec![
            Value::Integer(i64::try_from(after).unwrap_or(i64::MAX - 1)),
            Value::Integer(i64::try_from(count).unwrap_or(i64::MAX)),
            Value::from(new_epoch()),
            Value::Integer(self.ttl_ms()),
        ];
        let reply = self.eval(&self.read, [meta_key(topic), stream_key(topic)], args).await?.into_array();
        let head = head_of(&reply)?;
        let mut events = Vec::new();
        for pair in reply[2..].chunks(2) {
            let [id, payload] = pair else { return Err(ClusterError::Protocol("odd history reply".into())) };
            let seq = id
                .as_string()
                .and_then(|id| id.strip_prefix("0-").and_then(|s| s.parse().ok()))
                .ok_or_else(|| ClusterError::Protocol(format!("history id {id:?}")))?;
            let bytes = payload.as_bytes().map(Bytes::copy_from_slice).unwrap_or_default();
            let payload = Payload::from_msgpack(bytes).map_err(|e| ClusterError::Protocol(e.to_string()))?;
            events.push((seq, payload));
        }
        Ok(Missed { head, events })
    }

    async fn flush_counters(&self, deltas: Vec<(String, i64)>) -> Result<Vec<i64>, ClusterError> {
        let started = Instant::now();
        let pipeline = self.client.pipeline();
        // An unchanged counter is only read: `INCRBY 0` would be a write (and an AOF entry) per counter
        // per flush.
        for (key, delta) in &deltas {
            let _: Value = match delta {
                0 => pipeline.get(counter_key(key)).await?,
                _ => pipeline.incr_by(counter_key(key), *delta).await?,
            };
        }
        let totals: Vec<Value> = pipeline.all().await?;
        metrics::redis_latency("counters", started.elapsed());
        totals
            .into_iter()
            .map(|v| match v {
                Value::Null => Ok(0),
                v => v.as_i64().ok_or_else(|| ClusterError::Protocol(format!("counter read answered {v:?}"))),
            })
            .collect()
    }
}

impl RedisCluster {
    async fn run_book(&self, book: &str, op: BookOp) -> Result<BookReply, ClusterError> {
        let dead = self.dead.lock().clone();
        let (name, extra) = match op {
            BookOp::Join { user, name } => ("join", vec![user, name]),
            BookOp::Leave { user } => ("leave", vec![user]),
            BookOp::Count => ("count", Vec::new()),
            BookOp::Members => ("members", Vec::new()),
            BookOp::Sync(users) => ("sync", users.into_iter().flat_map(|(user, name)| [user, name]).collect()),
        };
        let mut args = vec![
            Value::from(name),
            Value::from(self.node_id.as_str()),
            Value::Integer(self.ttl_ms()),
            Value::Integer(dead.len() as i64),
        ];
        args.extend(dead.into_iter().map(Value::from));
        args.extend(extra.into_iter().map(Value::from));
        let reply = self.eval(&self.roster, [roster_key(book)], args).await?.into_array();
        book_reply(&reply)
    }
}

/// Reads the roster script's `{changed, count, version, n, departed pairs…, member pairs…}`.
fn book_reply(reply: &[Value]) -> Result<BookReply, ClusterError> {
    let number = |i: usize| {
        reply.get(i).and_then(Value::as_u64).ok_or_else(|| ClusterError::Protocol(format!("roster reply {reply:?}")))
    };
    let pairs = |values: &[Value]| -> Result<Vec<BookMember>, ClusterError> {
        values
            .chunks(2)
            .map(|pair| match pair {
                [user, name] => Ok(BookMember {
                    user: user.as_string().unwrap_or_default(),
                    name: name.as_string().unwrap_or_default(),
                }),
                _ => Err(ClusterError::Protocol("odd roster reply".into())),
            })
            .collect()
    };
    let departed = usize::try_from(number(3)?).unwrap_or(usize::MAX);
    let members_at = 4usize.saturating_add(departed.saturating_mul(2));
    if members_at > reply.len() {
        return Err(ClusterError::Protocol("short roster reply".into()));
    }
    Ok(BookReply {
        changed: number(0)? == 1,
        present: usize::try_from(number(1)?).unwrap_or(usize::MAX),
        version: number(2)?,
        departed: pairs(&reply[4..members_at])?,
        members: pairs(&reply[members_at..])?,
    })
}

fn head_of(reply: &[Value]) -> Result<Head, ClusterError> {
    let epoch = reply.first().and_then(Value::as_string).ok_or_else(|| ClusterError::Protocol("no epoch".into()))?;
    let seq = reply.get(1).and_then(Value::as_u64).ok_or_else(|| ClusterError::Protocol("no sequence".into()))?;
    Ok(Head { epoch, seq })
}

impl Cluster for RedisCluster {
    fn node_id(&self) -> &str {
        &self.node_id
    }

    fn healthy(&self) -> bool {
        self.healthy.load(Ordering::Acquire) && self.connected()
    }

    fn publish<'a>(
        &'a self,
        topic: &'a str,
        payload: &'a Payload,
        version: Option<(&'a str, u64)>,
        delivered: bool,
    ) -> BoxFuture<'a, Result<Head, ClusterError>> {
        Box::pin(async move {
            let bytes = payload.encoded(Codec::MsgPack).map_err(|e| ClusterError::Protocol(e.to_string()))?;
            let command = if self.sharded { "SPUBLISH" } else { "PUBLISH" };
            let args = vec![
                Value::Bytes(bytes),
                Value::Integer(self.history.size as i64),
                Value::Integer(self.ttl_ms()),
                Value::from(new_epoch()),
                Value::from(channel(topic)),
                Value::from(command),
                Value::from(self.node_id.as_str()),
                Value::from(version.map_or("", |(key, _)| key)),
                Value::Integer(version.map_or(0, |(_, n)| i64::try_from(n).unwrap_or(i64::MAX))),
                Value::from(if delivered { "d" } else { "" }),
            ];
            let reply = self.eval(&self.publish, [meta_key(topic), stream_key(topic)], args).await?;
            let reply = reply.into_array();
            metrics::message_out();
            head_of(&reply)
        })
    }

    fn defer(&self, topic: &str, payload: &Payload, version: Option<(&str, u64)>) -> Result<bool, ClusterError> {
        let mut outbox = self.outbox.lock();
        // Checked under the outbox lock: the outbox is emptied and the bus marked healthy under it too,
        // so nothing is left behind in an outbox nobody drains.
        if self.healthy() {
            return Ok(false);
        }
        if outbox.len() >= self.outbox_limit {
            return Err(ClusterError::OutboxFull(outbox.len()));
        }
        let version = version.map(|(key, n)| (key.to_owned(), n));
        outbox.push_back(Deferred { topic: topic.to_owned(), payload: payload.clone(), version });
        metrics::outbox(outbox.len());
        Ok(true)
    }

    fn watch<'a>(&'a self, topic: &'a str) -> BoxFuture<'a, Result<(), ClusterError>> {
        Box::pin(async move {
            let waiter = {
                let mut interest = self.interest.lock();
                *interest.holders.entry(topic.to_owned()).or_default() += 1;
                if interest.active.contains(topic) {
                    None
                } else {
                    let (tx, rx) = oneshot::channel();
                    interest.waiting.entry(topic.to_owned()).or_default().push(tx);
                    Some(rx)
                }
            };
            if let Some(rx) = waiter {
                self.interest_changed.notify_one();
                let subscribed = tokio::time::timeout(COMMAND_TIMEOUT, rx).await;
                let result = match subscribed {
                    Ok(Ok(Ok(()))) => Ok(()),
                    Ok(Ok(Err(e))) => Err(ClusterError::Unavailable(e)),
                    Ok(Err(_)) | Err(_) => Err(ClusterError::Unavailable("subscribe on Redis timed out".into())),
                };
                if result.is_err() {
                    self.unwatch(topic);
                }
                return result;
            }
            Ok(())
        })
    }

    fn unwatch(&self, topic: &str) {
        let mut interest = self.interest.lock();
        if let Some(n) = interest.holders.get_mut(topic) {
            *n -= 1;
            if *n == 0 {
                interest.holders.remove(topic);
                self.interest_changed.notify_one();
            }
        }
    }

    fn missed<'a>(&'a self, topic: &'a str, after: Option<u64>) -> BoxFuture<'a, Result<Missed, ClusterError>> {
        Box::pin(self.read(topic, after.unwrap_or(0), after.map_or(0, |_| self.history.size)))
    }

    fn set_presence(&self, topic: &str, user: &str, name: Option<&str>, connections: usize) {
        let value = (connections > 0).then(|| format!("{connections}\u{1f}{}", name.unwrap_or_default()));
        {
            let mut book = self.presence.lock();
            let users = book.written.entry(topic.to_owned()).or_default();
            let had = match &value {
                Some(v) => users.insert(user.to_owned(), v.clone()).is_some(),
                None => users.remove(user).is_some(),
            };
            if users.is_empty() {
                book.written.remove(topic);
            }
            match (had, value.is_some()) {
                (false, true) => book.entries += 1,
                (true, false) => book.entries -= 1,
                _ => {}
            }
            metrics::presence_entries(book.entries);
            book.dirty.entry(topic.to_owned()).or_default().insert(user.to_owned(), value);
        }
        self.presence_changed.notify_one();
    }

    fn presence<'a>(&'a self, topic: &'a str) -> BoxFuture<'a, Result<Vec<Member>, ClusterError>> {
        Box::pin(async move {
            let key = presence_key(topic);
            let fields = self.hgetall(&key).await?;
            let nodes: Vec<String> = fields
                .keys()
                .filter_map(|f| f.split_once('\u{1f}').map(|(n, _)| n.to_owned()))
                .collect::<HashSet<_>>()
                .into_iter()
                .collect();
            let mut alive = HashSet::new();
            for node in &nodes {
                if node == &self.node_id || self.client.exists::<i64, _>(node_key(node)).await? > 0 {
                    alive.insert(node.as_str());
                }
            }
            let mut members: HashMap<&str, Member> = HashMap::new();
            let mut dead = Vec::new();
            for (field, value) in &fields {
                let Some((node, user)) = field.split_once('\u{1f}') else { continue };
                if !alive.contains(node) {
                    dead.push(Value::from(field.as_str()));
                    continue;
                }
                let (count, name) = value.split_once('\u{1f}').unwrap_or((value, ""));
                let member = members.entry(user).or_insert_with(|| Member {
                    user: user.to_owned(),
                    name: (!name.is_empty()).then(|| name.to_owned()),
                    connections: 0,
                });
                member.connections += count.parse::<usize>().unwrap_or(1);
            }
            if !dead.is_empty() {
                self.command::<i64>("HDEL", &key, dead).await?;
            }
            let mut members: Vec<Member> = members.into_values().collect();
            members.sort_by(|a, b| a.user.cmp(&b.user));
            Ok(members)
        })
    }

    fn add_counters(&self, deltas: Vec<(String, i64)>) -> BoxFuture<'_, Result<Vec<i64>, ClusterError>> {
        Box::pin(self.flush_counters(deltas))
    }

    fn book<'a>(&'a self, book: &'a str, op: BookOp) -> BoxFuture<'a, Result<BookReply, ClusterError>> {
        Box::pin(self.run_book(book, op))
    }

    fn deaths(&self) -> u64 {
        self.deaths.load(Ordering::Acquire)
    }

    fn run(self: Arc<Self>, node: Attachment) -> BoxFuture<'static, ()> {
        Box::pin(async move {
            tokio::spawn(self.clone().write_presence(node.clone()));
            tokio::spawn(self.clone().listen(node.clone()));
            self.clone().supervise(node).await;
            let _ = self.client.del::<i64, _>(node_key(&self.node_id)).await;
            let _ = self.subscriber.quit().await;
            let _ = self.client.quit().await;
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channel_names_round_trip() {
        assert_eq!(topic_of_channel(&channel("room/a:b")), Some("room/a:b"));
        assert_eq!(topic_of_channel("session:1:updates"), None);
        assert_eq!(meta_key("t"), "chorus:t:{t}");
    }

    #[test]
    fn messages_parse() {
        let payload = Payload::from_value(&serde_json::json!({"n": 1, "s": "a\nb"})).unwrap();
        let mut raw = b"ep0ch\n42\nnode-a\nd\n".to_vec();
        raw.extend_from_slice(&payload.encoded(Codec::MsgPack).unwrap());
        let message = Message {
            channel: channel("room/1").into(),
            value: Value::Bytes(raw.into()),
            kind: fred::types::MessageKind::Message,
            server: fred::types::config::Server::new("localhost", 6379),
        };
        let d = parse_message(&message).unwrap();
        assert_eq!((d.topic.as_str(), d.epoch.as_str(), d.seq, d.origin.as_str()), ("room/1", "ep0ch", 42, "node-a"));
        assert!(d.delivered);
        assert_eq!(d.payload, payload);
    }
}
