//! The Redis backend. Every Redis command and Lua script the store sends is in this file.
//!
//! # Layout
//!
//! A partition `(table, pk)` is four keys sharing the hash tag `{table:pk}`, so on Redis Cluster
//! they live in one hash slot and every single-partition script is legal there:
//!
//! | key                         | type       | holds |
//! |-----------------------------|------------|-------|
//! | `chorus:store:{table:pk}:k` | sorted set | every stored clustering key, score 0: `ZRANGEBYLEX` is bytewise |
//! | `chorus:store:{table:pk}:v` | hash       | clustering key → value |
//! | `chorus:store:{table:pk}:x` | sorted set | clustering key → expiry (unix ms), rows with a TTL only |
//! | `chorus:store:{table:pk}:c` | hash       | clustering key → counter (`HINCRBY`) |
//!
//! A table name has no `:`, `{` or `}` and every suffix is one character, so a key names exactly
//! one partition, whatever bytes the partition key holds. Clustering keys and values are binary
//! Redis strings.
//!
//! # Mapping
//!
//! | Store operation       | Redis |
//! |-----------------------|-------|
//! | `get`                 | script: `HGET` v, `ZSCORE` x |
//! | `put`, `delete`       | script: `HSET`/`HDEL` v, `ZADD`/`ZREM` k and x, then settle the partition |
//! | `scan`                | script: `ZRANGEBYLEX`/`ZREVRANGEBYLEX` k in chunks, `HMGET` v, `ZSCORE` x |
//! | conditional writes    | script: read the live row, compare the bytes, write |
//! | `counter_add`         | `HINCRBY` c |
//! | `counter_get`         | `HGET` c |
//! | `batch` of rows       | one script applying every op in order |
//! | `batch` of counters   | one script of `HINCRBY`s, undone if one fails |
//! | `purge_expired`       | `SCAN` for `…:x` keys, then a script per partition removing expired rows |
//!
//! Every operation is one command or one Lua script, and Redis runs a script without interleaving
//! anything else, so each operation is atomic and conditional writes are linearizable per row on
//! one Redis primary. Scripts are sent with `EVALSHA` (loaded with `SCRIPT LOAD` at start); a
//! server that answers `NOSCRIPT` (restarted, failed over, `SCRIPT FLUSH`, another Cluster node)
//! gets the script's source once with `EVAL`, which caches it again.
//!
//! # TTL
//!
//! Expiry is judged by the Redis server's clock (`TIME` inside the scripts), like ScyllaDB's
//! server-side TTLs: every broker sharing the Redis agrees when a row expires whatever their own
//! clocks say, and the partition keys can carry native Redis expiry, which only means something
//! in server time. The store's [`crate::Clock`] is therefore unused. A row whose expiry has passed
//! is invisible to every script at once. Its space is reclaimed three ways: a partition whose rows
//! all have a TTL gets `PEXPIREAT` = its last row's expiry on all its row keys, so Redis drops it
//! by itself; every write to a partition removes up to [`TRIM_PER_WRITE`] of its expired rows; and
//! [`Store::purge_expired`] removes the rest on demand.
//!
//! # Timeouts, retries, failures
//!
//! - One connection (commands are pipelined on it). `--store-timeout-ms` bounds each command,
//!   including time queued while the client reconnects (→ [`StoreError::Timeout`]), and each
//!   connect attempt.
//! - Commands are sent at most once (`max_command_attempts = 1`): a script that may have run is
//!   never run again, so a conditional write is never reported lost by its own retry and a counter
//!   is never added twice.
//! - A dropped connection is re-established in the background (exponential backoff up to
//!   [`RECONNECT_MAX_DELAY_MS`]); meanwhile operations fail with `Unavailable` or `Timeout`.
//! - At start there is no retry loop: an unreachable server fails [`crate::open`] with
//!   [`StoreError::Unavailable`] naming the URL (credentials hidden) within [`CONNECT_BUDGET`].

use std::ops::Bound;
use std::pin::Pin;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use fred::prelude::{Builder, Client, ClientLike, Config, ErrorKind, ReconnectPolicy, Value};
use fred::types::scan::{ScanResult, Scanner};
use fred::types::{ClusterHash, ConnectHandle, CustomCommand};
use futures_util::{Stream, StreamExt};

use crate::store::{BatchKind, check_batch, check_key, check_scan, check_value};
use crate::{CasOutcome, MAX_SCAN_LIMIT, Page, PageToken, Row, Scan, Store, StoreConfig, StoreError, Ttl, WriteOp};

/// Prefix of every key the store writes, keeping it apart from the other chorus features that
/// share the Redis named by `--redis-url`.
const KEY_PREFIX: &str = "chorus:store:";

/// Upper bound on connecting and loading the scripts at start. Same budget as the ScyllaDB
/// backend's: long enough for a server across a WAN, short enough that a wrong URL fails a deploy
/// quickly instead of hanging it.
pub(crate) const CONNECT_BUDGET: Duration = Duration::from_secs(10);

/// Expired rows one write removes from the partition it writes to: about 200 commands inside the
/// script, a small addition to a write; a partition written at least once per 64 expiries (any
/// steady writer of TTL rows) is kept free of dead rows without a purge.
const TRIM_PER_WRITE: usize = 64;

/// Expired rows one purge script removes from one partition; `purge_expired` repeats it until a
/// partition is clean. Bounds how long one script holds Redis (which runs one script at a time),
/// like the embedded store's purge transactions of 1000 rows.
const PURGE_BATCH_ROWS: u64 = 1000;

/// Most bytes of row values one scan page carries, as in the embedded store: the order of
/// ScyllaDB's own 1 MiB page cap, and it bounds the reply one script builds in Redis's memory.
const MAX_PAGE_BYTES: usize = 4 * 1024 * 1024;

/// Most clustering keys one scan script steps over, live or expired, before it returns a short
/// page with a token. Bounds the time one scan holds Redis when a partition is full of expired,
/// not yet purged rows; ten full pages' worth, so a clean partition never hits it.
const MAX_SCAN_EXAMINED: usize = 10 * MAX_SCAN_LIMIT;

/// Keys one `SCAN` call of `purge_expired` asks for: few round trips over a large keyspace while
/// each call stays a short stretch of server time.
const SCAN_KEYS_PER_CALL: u32 = 1000;

/// Most commands waiting for the connection. Past it an operation fails at once with
/// `Unavailable` instead of queueing more memory while Redis stalls; 16 times the conformance
/// suite's 1,000-way races, so a healthy server never sees it.
const MAX_QUEUED_COMMANDS: usize = 16_384;

/// First delay before reconnecting after a connection loss, in milliseconds: a restarted server is
/// usually back within a few hundred.
const RECONNECT_MIN_DELAY_MS: u32 = 100;

/// Longest delay between reconnect attempts, in milliseconds. Each attempt costs one TCP connect;
/// waiting longer would only delay recovery after an outage.
const RECONNECT_MAX_DELAY_MS: u32 = 2000;

/// Tag of this backend's page tokens.
const PAGE_TOKEN_TAG: u8 = b'r';

/// Helpers every script starts with. `TRIM` is prepended by [`Script::new`].
///
/// A row is live when its value exists and its expiry, if any, is after now. `settle` runs after
/// every write to a partition: it trims expired rows, then lets the row keys expire natively with
/// the last row when every row has a TTL (`PERSIST` otherwise). `expire_with_last_row` only sets
/// an expiry when no expired entry is left in `x`, so `ZCARD x == ZCARD k` then really means
/// every row in `k` has a TTL.
const LUA_PRELUDE: &str = r#"
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local function ms(n)
  return string.format('%.0f', n)
end

local function expired(x, ck, now)
  local at = redis.call('ZSCORE', x, ck)
  return at and tonumber(at) <= now
end

local function live(v, x, ck, now)
  local val = redis.call('HGET', v, ck)
  if val and not expired(x, ck, now) then
    return val
  end
  return nil
end

local function write(k, v, x, ck, val, ttl_ms, now)
  redis.call('HSET', v, ck, val)
  redis.call('ZADD', k, 0, ck)
  if ttl_ms > 0 then
    redis.call('ZADD', x, ms(now + ttl_ms), ck)
  else
    redis.call('ZREM', x, ck)
  end
end

local function remove(k, v, x, ck)
  redis.call('HDEL', v, ck)
  redis.call('ZREM', k, ck)
  redis.call('ZREM', x, ck)
end

local function trim(k, v, x, now, most)
  local dead = redis.call('ZRANGEBYSCORE', x, '-inf', ms(now), 'LIMIT', 0, most)
  for _, ck in ipairs(dead) do
    remove(k, v, x, ck)
  end
  return #dead
end

local function expire_with_last_row(k, v, x, now)
  local rows = redis.call('ZCARD', k)
  if rows == 0 then
    return
  end
  if redis.call('ZCARD', x) == rows then
    local first = redis.call('ZRANGE', x, 0, 0, 'WITHSCORES')
    if tonumber(first[2]) > now then
      local last = redis.call('ZRANGE', x, -1, -1, 'WITHSCORES')
      local at = ms(tonumber(last[2]))
      redis.call('PEXPIREAT', k, at)
      redis.call('PEXPIREAT', v, at)
      redis.call('PEXPIREAT', x, at)
      return
    end
  end
  redis.call('PERSIST', k)
  redis.call('PERSIST', v)
  redis.call('PERSIST', x)
end

local function settle(k, v, x, now)
  trim(k, v, x, now, TRIM)
  expire_with_last_row(k, v, x, now)
end
"#;

/// KEYS k, v, x; ARGV ck. The live value or nil.
const LUA_GET: &str = r#"
return live(KEYS[2], KEYS[3], ARGV[1], now_ms())
"#;

/// KEYS k, v, x; ARGV ck, value, ttl ms (0 = none).
const LUA_PUT: &str = r#"
local now = now_ms()
write(KEYS[1], KEYS[2], KEYS[3], ARGV[1], ARGV[2], tonumber(ARGV[3]), now)
settle(KEYS[1], KEYS[2], KEYS[3], now)
return 1
"#;

/// KEYS k, v, x; ARGV ck.
const LUA_DELETE: &str = r#"
local now = now_ms()
remove(KEYS[1], KEYS[2], KEYS[3], ARGV[1])
settle(KEYS[1], KEYS[2], KEYS[3], now)
return 1
"#;

/// KEYS k, v, x; ARGV ck, value, ttl ms. `{1}` if written, else `{0, current}`.
const LUA_INSERT_IF_ABSENT: &str = r#"
local now = now_ms()
local current = live(KEYS[2], KEYS[3], ARGV[1], now)
if current then
  return {0, current}
end
write(KEYS[1], KEYS[2], KEYS[3], ARGV[1], ARGV[2], tonumber(ARGV[3]), now)
settle(KEYS[1], KEYS[2], KEYS[3], now)
return {1}
"#;

/// KEYS k, v, x; ARGV ck, expected, new value, ttl ms. `{1}` if written, else `{0}` (no live row)
/// or `{0, current}`.
const LUA_UPDATE_IF_EQUAL: &str = r#"
local now = now_ms()
local current = live(KEYS[2], KEYS[3], ARGV[1], now)
if not current then
  return {0}
end
if current ~= ARGV[2] then
  return {0, current}
end
write(KEYS[1], KEYS[2], KEYS[3], ARGV[1], ARGV[3], tonumber(ARGV[4]), now)
settle(KEYS[1], KEYS[2], KEYS[3], now)
return {1}
"#;

/// KEYS k, v, x; ARGV ck, expected. `{1}` if deleted, else `{0}` or `{0, current}`.
const LUA_DELETE_IF_EQUAL: &str = r#"
local now = now_ms()
local current = live(KEYS[2], KEYS[3], ARGV[1], now)
if not current then
  return {0}
end
if current ~= ARGV[2] then
  return {0, current}
end
remove(KEYS[1], KEYS[2], KEYS[3], ARGV[1])
settle(KEYS[1], KEYS[2], KEYS[3], now)
return {1}
"#;

/// KEYS k, v, x; ARGV lower lex bound, upper lex bound (ascending sense), reverse ('1'), limit,
/// max bytes, max examined. `{more, {ck, value, ck, value, …}, position}`: `more` is 0 when the
/// range is exhausted; otherwise `position` is the last clustering key consumed (returned or
/// skipped), where the next page resumes.
const LUA_SCAN: &str = r#"
local k, v, x = KEYS[1], KEYS[2], KEYS[3]
local lo, hi, reverse = ARGV[1], ARGV[2], ARGV[3] == '1'
local limit, max_bytes, budget = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local now = now_ms()
local rows, count, bytes, examined, pos = {}, 0, 0, 0, nil
while examined < budget do
  local want = math.min(limit + 1, budget - examined)
  local cks
  if reverse then
    cks = redis.call('ZREVRANGEBYLEX', k, hi, lo, 'LIMIT', 0, want)
  else
    cks = redis.call('ZRANGEBYLEX', k, lo, hi, 'LIMIT', 0, want)
  end
  if #cks == 0 then
    return {0, rows}
  end
  local vals = redis.call('HMGET', v, unpack(cks))
  for i, ck in ipairs(cks) do
    local val = vals[i]
    if val and not expired(x, ck, now) then
      if count >= limit or bytes >= max_bytes then
        return {1, rows, pos}
      end
      count = count + 1
      rows[2 * count - 1] = ck
      rows[2 * count] = val
      bytes = bytes + #val
    end
    examined = examined + 1
    pos = ck
  end
  if #cks < want then
    return {0, rows}
  end
  if reverse then
    hi = '(' .. pos
  else
    lo = '(' .. pos
  end
end
return {1, rows, pos}
"#;

/// KEYS k, v, x per op; ARGV kind ('p' put, 'd' delete), ck, value, ttl ms per op. Applies the
/// ops in order, then settles each partition once.
const LUA_BATCH_ROWS: &str = r#"
local now = now_ms()
local seen, partitions = {}, {}
for i = 0, #KEYS / 3 - 1 do
  local k, v, x = KEYS[3 * i + 1], KEYS[3 * i + 2], KEYS[3 * i + 3]
  local ck = ARGV[4 * i + 2]
  if ARGV[4 * i + 1] == 'p' then
    write(k, v, x, ck, ARGV[4 * i + 3], tonumber(ARGV[4 * i + 4]), now)
  else
    remove(k, v, x, ck)
  end
  if not seen[k] then
    seen[k] = true
    partitions[#partitions + 1] = 3 * i
  end
end
for _, j in ipairs(partitions) do
  settle(KEYS[j + 1], KEYS[j + 2], KEYS[j + 3], now)
end
return 1
"#;

/// KEYS c per op; ARGV ck, delta per op. If an add fails (it would overflow an i64), every earlier
/// add is undone by restoring the previous value, and the error is returned: all or nothing.
const LUA_BATCH_COUNTERS: &str = r#"
local undo = {}
for i = 1, #KEYS do
  local c, ck = KEYS[i], ARGV[2 * i - 1]
  local before = redis.call('HGET', c, ck)
  local added = redis.pcall('HINCRBY', c, ck, ARGV[2 * i])
  if type(added) == 'table' and added.err then
    for j = #undo, 1, -1 do
      local u = undo[j]
      if u[3] then
        redis.call('HSET', u[1], u[2], u[3])
      else
        redis.call('HDEL', u[1], u[2])
      end
    end
    return added
  end
  undo[#undo + 1] = {c, ck, before}
end
return 1
"#;

/// KEYS k, v, x; ARGV most rows. Removes up to that many expired rows; returns how many.
const LUA_PURGE: &str = r#"
local now = now_ms()
local purged = trim(KEYS[1], KEYS[2], KEYS[3], now, tonumber(ARGV[1]))
if purged > 0 then
  expire_with_last_row(KEYS[1], KEYS[2], KEYS[3], now)
end
return purged
"#;

/// A Lua script: its full source and the SHA1 the server gave it.
struct Script {
    name: &'static str,
    source: String,
    sha: String,
}

impl Script {
    /// The script's full source: the constants and helpers, then `body`.
    fn source(body: &str) -> String {
        format!("local TRIM = {TRIM_PER_WRITE}\n{LUA_PRELUDE}\n{body}")
    }

    /// Loads the script into the server's script cache.
    async fn load(client: &Client, name: &'static str, body: &str) -> Result<Self, StoreError> {
        let source = Self::source(body);
        let cmd = CustomCommand::new_static("SCRIPT", ClusterHash::Random, false);
        let reply: Value = client
            .custom(cmd, vec![Value::from("LOAD"), Value::from(source.clone())])
            .await
            .map_err(|e| redis_error(&format!("SCRIPT LOAD {name}"), e))?;
        let sha = match reply {
            Value::String(sha) => sha.to_string(),
            other => return Err(unexpected(name, &other)),
        };
        Ok(Self { name, source, sha })
    }
}

/// Every script the store runs.
struct Scripts {
    get: Script,
    put: Script,
    delete: Script,
    insert_if_absent: Script,
    update_if_equal: Script,
    delete_if_equal: Script,
    scan: Script,
    batch_rows: Script,
    batch_counters: Script,
    purge: Script,
}

impl Scripts {
    async fn load(client: &Client) -> Result<Self, StoreError> {
        Ok(Self {
            get: Script::load(client, "get", LUA_GET).await?,
            put: Script::load(client, "put", LUA_PUT).await?,
            delete: Script::load(client, "delete", LUA_DELETE).await?,
            insert_if_absent: Script::load(client, "insert_if_absent", LUA_INSERT_IF_ABSENT).await?,
            update_if_equal: Script::load(client, "update_if_equal", LUA_UPDATE_IF_EQUAL).await?,
            delete_if_equal: Script::load(client, "delete_if_equal", LUA_DELETE_IF_EQUAL).await?,
            scan: Script::load(client, "scan", LUA_SCAN).await?,
            batch_rows: Script::load(client, "batch_rows", LUA_BATCH_ROWS).await?,
            batch_counters: Script::load(client, "batch_counters", LUA_BATCH_COUNTERS).await?,
            purge: Script::load(client, "purge", LUA_PURGE).await?,
        })
    }
}

/// The key of one of a partition's structures (`suffix` is `k`, `v`, `x` or `c`). The caller has
/// validated the table name, so it holds no `:`, `{` or `}`.
fn key(table: &str, pk: &str, suffix: char) -> Bytes {
    Bytes::from(format!("{KEY_PREFIX}{{{table}:{pk}}}:{suffix}"))
}

/// The row keys of a partition, in script order: k, v, x.
fn row_keys(table: &str, pk: &str) -> Vec<Bytes> {
    vec![key(table, pk, 'k'), key(table, pk, 'v'), key(table, pk, 'x')]
}

/// The row keys of the partition whose expiry index is `x_key` (as returned by `SCAN`), or `None`
/// for a key the store did not make.
fn row_keys_of_expiry_index(x_key: &[u8]) -> Option<Vec<Bytes>> {
    let base = x_key.strip_suffix(b"x")?;
    if !x_key.starts_with(KEY_PREFIX.as_bytes()) || !base.ends_with(b"}:") {
        return None;
    }
    let with = |suffix: u8| {
        let mut key = base.to_vec();
        key.push(suffix);
        Bytes::from(key)
    };
    Some(vec![with(b'k'), with(b'v'), with(b'x')])
}

/// The hash slot of a command's key, so Cluster routing never depends on where the key sits in
/// the arguments.
fn slot_of(key: &[u8]) -> ClusterHash {
    ClusterHash::Custom(fred::util::redis_keyslot(key))
}

/// `ZRANGEBYLEX` form of a lower bound.
fn lex_lower(bound: &Bound<Bytes>) -> Bytes {
    lex(bound, b"-")
}

/// `ZRANGEBYLEX` form of an upper bound.
fn lex_upper(bound: &Bound<Bytes>) -> Bytes {
    lex(bound, b"+")
}

fn lex(bound: &Bound<Bytes>, unbounded: &'static [u8]) -> Bytes {
    let (marker, ck) = match bound {
        Bound::Included(ck) => (b'[', ck),
        Bound::Excluded(ck) => (b'(', ck),
        Bound::Unbounded => return Bytes::from_static(unbounded),
    };
    let mut out = Vec::with_capacity(1 + ck.len());
    out.push(marker);
    out.extend_from_slice(ck);
    Bytes::from(out)
}

/// A TTL as the scripts take it: milliseconds, 0 for none.
fn ttl_ms(ttl: Option<Ttl>) -> Value {
    Value::Integer(ttl.map_or(0, |t| i64::from(t.as_secs()) * 1000))
}

fn bin(bytes: &[u8]) -> Value {
    Value::Bytes(Bytes::copy_from_slice(bytes))
}

/// Hides the credentials of a Redis URL (`redis://user:secret@host` → `redis://***@host`), so
/// it can appear in errors and logs.
fn redacted(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{scheme}://***{}", &rest[at..]),
        None => url.to_owned(),
    }
}

/// Refuses a server that may evict keys under memory pressure: evicting one of a partition's keys
/// would silently drop rows or leave the partition half-indexed. With `noeviction` (Redis's
/// default) a full server refuses writes instead, which callers see as `Unavailable`. A server
/// that does not let clients read its configuration (some managed services) is trusted, with a
/// warning.
async fn check_eviction_policy(client: &Client, shown: &str) -> Result<(), StoreError> {
    let cmd = CustomCommand::new_static("CONFIG", ClusterHash::Random, false);
    let reply: Value = match client.custom(cmd, vec!["GET", "maxmemory-policy"]).await {
        Ok(reply) => reply,
        Err(err) if err.kind() == &ErrorKind::Auth => return Err(connect_error(shown, err)),
        Err(err) => match redis_error("CONFIG GET maxmemory-policy", err) {
            err @ (StoreError::Unavailable(_) | StoreError::Timeout(_)) => return Err(err),
            refused => {
                tracing::warn!(
                    url = %shown,
                    error = %refused,
                    "cannot read Redis maxmemory-policy; the store needs noeviction"
                );
                return Ok(());
            }
        },
    };
    let policy = match &reply {
        Value::Array(items) => items.get(1).and_then(Value::as_str),
        _ => None,
    };
    match policy.as_deref() {
        Some("noeviction") => Ok(()),
        Some(policy) => Err(StoreError::Config(format!(
            "Redis at {shown} has maxmemory-policy {policy}: the store needs noeviction, or Redis may evict stored rows"
        ))),
        None => Err(unexpected("CONFIG GET maxmemory-policy", &reply)),
    }
}

/// Accepts the plain-TCP schemes of a single server, a Cluster and Sentinel. TLS schemes are
/// refused with a clear message rather than sent in clear text: the client is built without TLS.
fn check_scheme(url: &str, shown: &str) -> Result<(), StoreError> {
    match url.split_once("://").map(|(scheme, _)| scheme) {
        Some("redis" | "redis-cluster" | "redis-sentinel" | "valkey" | "valkey-cluster" | "valkey-sentinel") => Ok(()),
        Some(scheme) if scheme.starts_with("rediss") || scheme.starts_with("valkeys") => Err(StoreError::Config(
            format!("Redis URL {shown}: TLS ({scheme}://) is not supported, the Redis client is built without TLS"),
        )),
        _ => Err(StoreError::Config(format!(
            "Redis URL {shown} must start with redis://, redis-cluster:// or redis-sentinel://"
        ))),
    }
}

fn unexpected(what: &str, reply: &Value) -> StoreError {
    StoreError::Backend(format!("unexpected Redis reply to {what}: {reply:?}"))
}

/// A bulk-string reply as bytes; `None` for nil.
fn opt_bytes(what: &str, reply: Value) -> Result<Option<Bytes>, StoreError> {
    match reply {
        Value::Null => Ok(None),
        Value::Bytes(bytes) => Ok(Some(bytes)),
        Value::String(s) => Ok(Some(s.into_inner())),
        other => Err(unexpected(what, &other)),
    }
}

fn array(what: &str, reply: Value) -> Result<Vec<Value>, StoreError> {
    match reply {
        Value::Array(items) => Ok(items),
        other => Err(unexpected(what, &other)),
    }
}

/// Reads a conditional script's reply: `{1}`, `{0}` or `{0, current}`.
fn cas_outcome(what: &str, reply: Value, written: Option<Bytes>) -> Result<CasOutcome, StoreError> {
    let mut items = array(what, reply)?.into_iter();
    match (items.next(), items.next(), items.next()) {
        (Some(Value::Integer(1)), None, None) => Ok(CasOutcome { applied: true, current: written }),
        (Some(Value::Integer(0)), current, None) => {
            let current = match current {
                Some(value) => opt_bytes(what, value)?,
                None => None,
            };
            Ok(CasOutcome { applied: false, current })
        }
        (first, second, third) => {
            Err(StoreError::Backend(format!("unexpected Redis reply to {what}: [{first:?}, {second:?}, {third:?}]")))
        }
    }
}

/// Reads the scan script's reply into a page.
fn scan_page(reply: Value) -> Result<Page, StoreError> {
    let mut items = array("scan", reply)?.into_iter();
    let (more, flat, position) = (items.next(), items.next(), items.next());
    let mut flat = match flat {
        Some(flat) => array("scan", flat)?.into_iter(),
        None => return Err(StoreError::Backend("Redis scan reply has no rows".into())),
    };
    let mut rows = Vec::with_capacity(flat.len() / 2);
    while let Some(ck) = flat.next() {
        let value =
            flat.next().ok_or_else(|| StoreError::Backend("Redis scan reply has a key without a value".into()))?;
        match (opt_bytes("scan", ck)?, opt_bytes("scan", value)?) {
            (Some(ck), Some(value)) => rows.push(Row { ck, value }),
            _ => return Err(StoreError::Backend("Redis scan reply has a nil key or value".into())),
        }
    }
    let next = match (more, position) {
        (Some(Value::Integer(0)), None) => None,
        (Some(Value::Integer(1)), Some(position)) => {
            let position = opt_bytes("scan", position)?
                .ok_or_else(|| StoreError::Backend("Redis scan reply has a nil position".into()))?;
            Some(PageToken::tagged(PAGE_TOKEN_TAG, &position))
        }
        (more, position) => {
            return Err(StoreError::Backend(format!(
                "unexpected Redis scan reply: more {more:?}, position {position:?}"
            )));
        }
    };
    Ok(Page { rows, next })
}

/// Maps a failed command: no answer in time is `Timeout`; a connection, routing or server state
/// that cannot serve now is `Unavailable`; anything else (a script error, an overflowing counter,
/// an unexpected reply) is `Backend`.
fn redis_error(what: &str, err: fred::error::Error) -> StoreError {
    const TRANSIENT_REPLIES: [&str; 8] =
        ["LOADING", "BUSY", "MASTERDOWN", "READONLY", "TRYAGAIN", "CLUSTERDOWN", "OOM", "NOREPLICAS"];
    match err.kind() {
        ErrorKind::Timeout => StoreError::Timeout(format!("Redis {what}: {}", err.details())),
        ErrorKind::IO
        | ErrorKind::Canceled
        | ErrorKind::Backpressure
        | ErrorKind::Routing
        | ErrorKind::Cluster
        | ErrorKind::Sentinel
        | ErrorKind::Auth => StoreError::Unavailable(format!("Redis {what}: {err}")),
        _ if TRANSIENT_REPLIES.iter().any(|prefix| err.details().starts_with(prefix)) => {
            StoreError::Unavailable(format!("Redis {what}: {}", err.details()))
        }
        _ => StoreError::Backend(format!("Redis {what}: {err}")),
    }
}

/// Maps a failure to connect or to run the first commands: credentials the server refuses (or
/// lacks) are `Config`, anything else is `Unavailable`.
fn connect_error(shown: &str, err: fred::error::Error) -> StoreError {
    match err.kind() {
        ErrorKind::Auth | ErrorKind::Config | ErrorKind::Url => {
            StoreError::Config(format!("Redis at {shown}: {}", err.details()))
        }
        _ => StoreError::Unavailable(format!("cannot connect to Redis at {shown}: {}", err.details())),
    }
}

/// The [`Store`] on a Redis server.
pub(crate) struct RedisStore {
    client: Client,
    /// The task driving the connection; stopped with the store.
    connection: ConnectHandle,
    scripts: Scripts,
    timeout: Duration,
}

impl RedisStore {
    /// Connects to `url` and loads every script.
    pub(crate) async fn connect(url: &str, cfg: &StoreConfig) -> Result<Self, StoreError> {
        let shown = redacted(url);
        check_scheme(url, &shown)?;
        let config =
            Config::from_url(url).map_err(|e| StoreError::Config(format!("Redis URL {shown}: {}", e.details())))?;
        let timeout = Duration::from_millis(cfg.store_timeout_ms);
        let mut builder = Builder::from_config(config);
        builder
            .with_connection_config(|c| {
                c.connection_timeout = timeout;
                c.internal_command_timeout = timeout;
                c.max_command_attempts = 1;
                c.max_command_buffer_len = MAX_QUEUED_COMMANDS;
            })
            .with_performance_config(|p| p.default_command_timeout = timeout)
            .set_policy(ReconnectPolicy::new_exponential(0, RECONNECT_MIN_DELAY_MS, RECONNECT_MAX_DELAY_MS, 2));
        let client = builder.build().map_err(|e| StoreError::Config(format!("Redis URL {shown}: {}", e.details())))?;

        let deadline = tokio::time::Instant::now() + CONNECT_BUDGET;
        let too_slow = || StoreError::Unavailable(format!("Redis at {shown} did not answer within {CONNECT_BUDGET:?}"));
        let connection = tokio::time::timeout_at(deadline, client.init())
            .await
            .map_err(|_| too_slow())?
            .map_err(|e| connect_error(&shown, e))?;
        let prepared = tokio::time::timeout_at(deadline, async {
            check_eviction_policy(&client, &shown).await?;
            Scripts::load(&client).await
        })
        .await;
        // On failure the store will not exist, so nothing may keep its connection alive.
        let scripts = match prepared {
            Ok(Ok(scripts)) => scripts,
            Ok(Err(err)) => {
                connection.abort();
                return Err(err);
            }
            Err(_) => {
                connection.abort();
                return Err(too_slow());
            }
        };
        tracing::info!(url = %shown, "connected to Redis");
        Ok(Self { client, connection, scripts, timeout })
    }

    /// Runs a script by its SHA1, sending its source once if the server does not have it.
    async fn eval(&self, script: &Script, keys: Vec<Bytes>, args: Vec<Value>) -> Result<Value, StoreError> {
        let slot = keys.first().map_or(ClusterHash::Random, |k| slot_of(k));
        let mut argv = Vec::with_capacity(2 + keys.len() + args.len());
        argv.push(Value::from(script.sha.clone()));
        argv.push(Value::Integer(keys.len() as i64));
        argv.extend(keys.into_iter().map(Value::Bytes));
        argv.extend(args);
        let evalsha = CustomCommand::new_static("EVALSHA", slot.clone(), false);
        match self.client.custom::<Value, Value>(evalsha, argv.clone()).await {
            Err(err) if err.details().starts_with("NOSCRIPT") => {
                tracing::debug!(script = script.name, "Redis lost the script; sending its source");
                argv[0] = Value::from(script.source.clone());
                let eval = CustomCommand::new_static("EVAL", slot, false);
                self.client.custom(eval, argv).await.map_err(|e| redis_error(script.name, e))
            }
            result => result.map_err(|e| redis_error(script.name, e)),
        }
    }

    /// Runs one plain command whose first argument is its key.
    async fn command(&self, name: &'static str, key: Bytes, args: Vec<Value>) -> Result<Value, StoreError> {
        let cmd = CustomCommand::new_static(name, slot_of(&key), false);
        let mut argv = Vec::with_capacity(1 + args.len());
        argv.push(Value::Bytes(key));
        argv.extend(args);
        self.client.custom(cmd, argv).await.map_err(|e| redis_error(name, e))
    }

    /// Purges the expired rows of one partition, a script call per [`PURGE_BATCH_ROWS`].
    async fn purge_partition(&self, keys: Vec<Bytes>) -> Result<u64, StoreError> {
        let mut total = 0;
        loop {
            let reply =
                self.eval(&self.scripts.purge, keys.clone(), vec![Value::from(PURGE_BATCH_ROWS as i64)]).await?;
            let purged = match reply {
                Value::Integer(n) => u64::try_from(n).map_err(|_| unexpected("purge", &reply))?,
                other => return Err(unexpected("purge", &other)),
            };
            total += purged;
            if purged < PURGE_BATCH_ROWS {
                return Ok(total);
            }
        }
    }
}

impl Drop for RedisStore {
    fn drop(&mut self) {
        // The client is not used after this, so its connection task can simply end.
        self.connection.abort();
    }
}

/// Pages of a `SCAN`, on one server or on every Cluster primary.
type ScanPages = Pin<Box<dyn Stream<Item = Result<ScanResult, fred::error::Error>> + Send>>;

#[async_trait]
impl Store for RedisStore {
    fn backend(&self) -> &'static str {
        "redis"
    }

    async fn put(&self, table: &str, pk: &str, ck: &[u8], value: Bytes, ttl: Option<Ttl>) -> Result<(), StoreError> {
        check_key(table, pk, ck)?;
        check_value(&value)?;
        let args = vec![bin(ck), Value::Bytes(value), ttl_ms(ttl)];
        self.eval(&self.scripts.put, row_keys(table, pk), args).await.map(drop)
    }

    async fn get(&self, table: &str, pk: &str, ck: &[u8]) -> Result<Option<Bytes>, StoreError> {
        check_key(table, pk, ck)?;
        let reply = self.eval(&self.scripts.get, row_keys(table, pk), vec![bin(ck)]).await?;
        opt_bytes("get", reply)
    }

    async fn delete(&self, table: &str, pk: &str, ck: &[u8]) -> Result<(), StoreError> {
        check_key(table, pk, ck)?;
        self.eval(&self.scripts.delete, row_keys(table, pk), vec![bin(ck)]).await.map(drop)
    }

    async fn scan(&self, table: &str, pk: &str, scan: &Scan) -> Result<Page, StoreError> {
        check_scan(table, pk, scan)?;
        let scan = scan.resumed_after_key(PAGE_TOKEN_TAG)?;
        if scan.is_empty_range() {
            return Ok(Page::default());
        }
        let args = vec![
            Value::Bytes(lex_lower(&scan.start)),
            Value::Bytes(lex_upper(&scan.end)),
            Value::from(if scan.reverse { "1" } else { "0" }),
            Value::Integer(scan.limit as i64),
            Value::Integer(MAX_PAGE_BYTES as i64),
            Value::Integer(MAX_SCAN_EXAMINED as i64),
        ];
        let reply = self.eval(&self.scripts.scan, row_keys(table, pk), args).await?;
        scan_page(reply)
    }

    async fn insert_if_absent(
        &self,
        table: &str,
        pk: &str,
        ck: &[u8],
        value: Bytes,
        ttl: Option<Ttl>,
    ) -> Result<CasOutcome, StoreError> {
        check_key(table, pk, ck)?;
        check_value(&value)?;
        let args = vec![bin(ck), Value::Bytes(value.clone()), ttl_ms(ttl)];
        let reply = self.eval(&self.scripts.insert_if_absent, row_keys(table, pk), args).await?;
        cas_outcome("insert_if_absent", reply, Some(value))
    }

    async fn update_if_equal(
        &self,
        table: &str,
        pk: &str,
        ck: &[u8],
        expected: &[u8],
        new: Bytes,
        ttl: Option<Ttl>,
    ) -> Result<CasOutcome, StoreError> {
        check_key(table, pk, ck)?;
        check_value(&new)?;
        let args = vec![bin(ck), bin(expected), Value::Bytes(new.clone()), ttl_ms(ttl)];
        let reply = self.eval(&self.scripts.update_if_equal, row_keys(table, pk), args).await?;
        cas_outcome("update_if_equal", reply, Some(new))
    }

    async fn delete_if_equal(
        &self,
        table: &str,
        pk: &str,
        ck: &[u8],
        expected: &[u8],
    ) -> Result<CasOutcome, StoreError> {
        check_key(table, pk, ck)?;
        let args = vec![bin(ck), bin(expected)];
        let reply = self.eval(&self.scripts.delete_if_equal, row_keys(table, pk), args).await?;
        cas_outcome("delete_if_equal", reply, None)
    }

    async fn counter_add(&self, table: &str, pk: &str, ck: &[u8], delta: i64) -> Result<(), StoreError> {
        check_key(table, pk, ck)?;
        self.command("HINCRBY", key(table, pk, 'c'), vec![bin(ck), Value::Integer(delta)]).await.map(drop)
    }

    async fn counter_get(&self, table: &str, pk: &str, ck: &[u8]) -> Result<i64, StoreError> {
        check_key(table, pk, ck)?;
        let reply = self.command("HGET", key(table, pk, 'c'), vec![bin(ck)]).await?;
        match reply {
            Value::Null => Ok(0),
            Value::Integer(n) => Ok(n),
            Value::String(ref s) => {
                s.parse().map_err(|_| StoreError::Corrupt(format!("Redis counter holds {s:?}, not an i64")))
            }
            other => Err(unexpected("counter_get", &other)),
        }
    }

    async fn batch(&self, ops: Vec<WriteOp>) -> Result<(), StoreError> {
        let kind = check_batch(&ops)?;
        let (script, mut keys, mut args) = match kind {
            BatchKind::Empty => return Ok(()),
            BatchKind::Rows => {
                (&self.scripts.batch_rows, Vec::with_capacity(3 * ops.len()), Vec::with_capacity(4 * ops.len()))
            }
            BatchKind::Counters => {
                (&self.scripts.batch_counters, Vec::with_capacity(ops.len()), Vec::with_capacity(2 * ops.len()))
            }
        };
        for op in ops {
            match op {
                WriteOp::Put { table, pk, ck, value, ttl } => {
                    keys.extend(row_keys(&table, &pk));
                    args.extend([Value::from("p"), Value::Bytes(ck), Value::Bytes(value), ttl_ms(ttl)]);
                }
                WriteOp::Delete { table, pk, ck } => {
                    keys.extend(row_keys(&table, &pk));
                    args.extend([Value::from("d"), Value::Bytes(ck), Value::Bytes(Bytes::new()), ttl_ms(None)]);
                }
                WriteOp::CounterAdd { table, pk, ck, delta } => {
                    keys.push(key(&table, &pk, 'c'));
                    args.extend([Value::Bytes(ck), Value::Integer(delta)]);
                }
            }
        }
        self.eval(script, keys, args).await.map(drop)
    }

    async fn purge_expired(&self) -> Result<u64, StoreError> {
        let pattern = format!("{KEY_PREFIX}{{*}}:x");
        let mut pages: ScanPages = if self.client.is_clustered() {
            Box::pin(self.client.scan_cluster(pattern, Some(SCAN_KEYS_PER_CALL), None))
        } else {
            Box::pin(self.client.scan(pattern, Some(SCAN_KEYS_PER_CALL), None))
        };
        let mut total = 0;
        loop {
            let page = tokio::time::timeout(self.timeout, pages.next())
                .await
                .map_err(|_| StoreError::Timeout(format!("Redis SCAN: no answer within {:?}", self.timeout)))?;
            let Some(page) = page else { return Ok(total) };
            let mut page = page.map_err(|e| redis_error("SCAN", e))?;
            let found = page.take_results().unwrap_or_default();
            // Ask for the next page now; it arrives while this one is purged.
            page.next();
            for x_key in found {
                if let Some(keys) = row_keys_of_expiry_index(x_key.as_bytes()) {
                    total += self.purge_partition(keys).await?;
                }
            }
        }
    }

    async fn close(&self) -> Result<(), StoreError> {
        // Every write was acknowledged by Redis before it returned, so there is nothing to flush. A
        // failing QUIT means the connection is already gone, which is what closing wants.
        if self.client.is_connected() && self.client.quit().await.is_err() {
            tracing::debug!("Redis connection was already closed");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_partitions_keys_share_one_slot_and_name_it_alone() {
        for pk in ["p", "a}b", "{x}", "a:b}:k", "", "}"] {
            let keys = [key("t", pk, 'k'), key("t", pk, 'v'), key("t", pk, 'x'), key("t", pk, 'c')];
            let slot = fred::util::redis_keyslot(&keys[0]);
            assert!(keys.iter().all(|k| fred::util::redis_keyslot(k) == slot), "{pk:?}");
        }
        // The suffix has a fixed length, so no other (table, pk, suffix) makes the same key.
        assert_ne!(key("t", "a}:k", 'v'), key("t", "a", 'k'));
        assert_eq!(&key("t", "p", 'x')[..], b"chorus:store:{t:p}:x");
    }

    #[test]
    fn expiry_index_keys_lead_back_to_their_partition() {
        let keys = row_keys_of_expiry_index(&key("t", "a}b", 'x'));
        assert_eq!(keys, Some(row_keys("t", "a}b")));
        assert_eq!(row_keys_of_expiry_index(b"chorus:store:{t:p}:k"), None);
        assert_eq!(row_keys_of_expiry_index(b"other:{t:p}:x"), None);
        assert_eq!(row_keys_of_expiry_index(b"x"), None);
    }

    #[test]
    fn lex_bounds() {
        let ck = || Bytes::from_static(b"\x00\xffk");
        assert_eq!(&lex_lower(&Bound::Unbounded)[..], b"-");
        assert_eq!(&lex_upper(&Bound::Unbounded)[..], b"+");
        assert_eq!(&lex_lower(&Bound::Included(ck()))[..], b"[\x00\xffk");
        assert_eq!(&lex_upper(&Bound::Excluded(ck()))[..], b"(\x00\xffk");
    }

    #[test]
    fn urls_lose_their_credentials() {
        assert_eq!(redacted("redis://user:s3cret@host:6379/0"), "redis://***@host:6379/0");
        assert_eq!(redacted("redis://:p@ss@host"), "redis://***@host");
        assert_eq!(redacted("redis://host:6379/0?x=a@b"), "redis://host:6379/0?x=a@b");
        assert_eq!(redacted("not a url"), "not a url");
    }

    #[test]
    fn url_schemes() {
        for ok in ["redis://h:6379/0", "redis-cluster://h:1?node=g:2", "redis-sentinel://h:26379"] {
            assert_eq!(check_scheme(ok, ok), Ok(()), "{ok}");
        }
        for bad in ["rediss://h", "rediss-cluster://h:1", "http://h", "h:6379", ""] {
            assert!(matches!(check_scheme(bad, bad), Err(StoreError::Config(_))), "{bad}");
        }
    }

    #[test]
    fn cas_replies() -> Result<(), StoreError> {
        let v = |s: &'static str| Value::Bytes(Bytes::from_static(s.as_bytes()));
        let written = Some(Bytes::from_static(b"new"));
        let applied = cas_outcome("t", Value::Array(vec![Value::Integer(1)]), written.clone())?;
        assert_eq!(applied, CasOutcome { applied: true, current: written.clone() });
        let missing = cas_outcome("t", Value::Array(vec![Value::Integer(0)]), written.clone())?;
        assert_eq!(missing, CasOutcome { applied: false, current: None });
        let other = cas_outcome("t", Value::Array(vec![Value::Integer(0), v("old")]), written.clone())?;
        assert_eq!(other, CasOutcome { applied: false, current: Some(Bytes::from_static(b"old")) });
        assert!(cas_outcome("t", Value::Integer(1), None).is_err());
        assert!(cas_outcome("t", Value::Array(vec![Value::Integer(2)]), None).is_err());
        Ok(())
    }

    #[test]
    fn scan_replies() -> Result<(), StoreError> {
        let v = |s: &'static str| Value::Bytes(Bytes::from_static(s.as_bytes()));
        let done = scan_page(Value::Array(vec![Value::Integer(0), Value::Array(vec![v("a"), v("1")])]))?;
        assert_eq!(done.rows, [Row { ck: Bytes::from_static(b"a"), value: Bytes::from_static(b"1") }]);
        assert_eq!(done.next, None);
        let more = scan_page(Value::Array(vec![Value::Integer(1), Value::Array(vec![]), v("z")]))?;
        assert!(more.rows.is_empty());
        assert_eq!(more.next, Some(PageToken::tagged(PAGE_TOKEN_TAG, b"z")));
        assert!(scan_page(Value::Array(vec![Value::Integer(1), Value::Array(vec![])])).is_err());
        assert!(scan_page(Value::Array(vec![Value::Integer(0), Value::Array(vec![v("a")])])).is_err());
        Ok(())
    }

    #[test]
    fn errors_split_into_transient_and_not() {
        use fred::error::Error;
        let timeout = redis_error("get", Error::new(ErrorKind::Timeout, "Request timed out."));
        assert!(matches!(timeout, StoreError::Timeout(_)));
        let io = redis_error("get", Error::new(ErrorKind::IO, "Connection reset"));
        assert!(matches!(io, StoreError::Unavailable(_)));
        let loading = redis_error("get", Error::new(ErrorKind::Unknown, "LOADING Redis is loading the dataset"));
        assert!(matches!(loading, StoreError::Unavailable(_)));
        let overflow = redis_error("counter_add", Error::new(ErrorKind::Unknown, "ERR increment would overflow"));
        assert!(matches!(overflow, StoreError::Backend(_)));
    }
}
