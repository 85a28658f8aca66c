//! The Redis backend: the conformance suite against a `redis-server` that each test starts on a
//! free loopback port (no persistence) and kills when it ends, plus what only Redis does —
//! purging beside native partition expiry, scripts the server lost, all-or-nothing counter
//! batches, and failures at start and while running.
//!
//! `redis-server` must be on `PATH` (Debian/Ubuntu: `apt-get install redis-server`); without it
//! every test fails saying so.
//!
//! ```sh
//! cargo test -p chorus-store --test integration redis::
//! ```

use std::io;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::conformance::Suite;
use anyhow::{Context, Result, anyhow, ensure};
use bytes::Bytes;
use chorus_store::{Backend, MAX_BATCH_OPS, Scan, Store, StoreConfig, StoreError, SystemClock, Ttl, WriteOp};
use chorus_testkit::{RedisServer, free_port};
use clap::{Args, FromArgMatches};
use fred::prelude::{Builder, ClientLike, Config, Value};
use fred::types::{ClusterHash, CustomCommand};

/// `--store-timeout-ms` of the failure tests: short, so they end quickly.
const SHORT_TIMEOUT: Duration = Duration::from_millis(300);

/// TTL of the purge test: long enough to write its rows well before any expires.
const PURGE_TTL_SECS: u32 = 3;

/// Expired rows in the purge test: more than one scan call steps over (10,000), and more than one
/// purge script removes (1000).
const EXPIRED_ROWS: u32 = 10_500;

/// Wait past the purge test's TTL, for the server clock's and the sleep's granularity.
const EXPIRY_MARGIN: Duration = Duration::from_millis(250);

/// Sends a signal to the server (SIGSTOP, SIGCONT).
fn signal(server: &RedisServer, signal: libc::c_int) -> Result<()> {
    let pid = libc::pid_t::try_from(server.pid())?;
    // SAFETY: kill(2) takes no pointers; the pid is the test's own child, not yet reaped.
    let sent = unsafe { libc::kill(pid, signal) };
    ensure!(sent == 0, "kill({pid}, {signal}): {}", io::Error::last_os_error());
    Ok(())
}

/// Parses store flags the way the broker does.
fn config(args: &[&str]) -> Result<StoreConfig> {
    let matches = StoreConfig::augment_args(clap::Command::new("test"))
        .try_get_matches_from(std::iter::once("test").chain(args.iter().copied()))?;
    Ok(StoreConfig::from_arg_matches(&matches)?)
}

/// Opens a Redis store at `url`. The data directory is not used by this backend.
async fn open(url: Option<&str>, timeout: Duration) -> Result<Arc<dyn Store>, StoreError> {
    let timeout_ms = timeout.as_millis().to_string();
    let cfg = config(&["--store", "redis", "--store-timeout-ms", &timeout_ms])
        .map_err(|e| StoreError::Config(e.to_string()))?;
    chorus_store::open(&cfg, Path::new("/nonexistent"), Arc::new(SystemClock), url).await
}

/// The default `--store-timeout-ms`.
fn default_timeout() -> Result<Duration> {
    Ok(Duration::from_millis(config(&[])?.store_timeout_ms))
}

async fn setup() -> Result<Option<Suite>> {
    let server = RedisServer::start(&[]).await?;
    let store = open(Some(&server.url()), default_timeout()?).await?;
    ensure!(store.backend() == "redis");
    Ok(Some(Suite::new(store, None, Box::new(server))))
}

conformance_tests!(setup);

fn put(pk: &str, ck: Bytes, ttl: Option<Ttl>) -> WriteOp {
    WriteOp::Put { table: "t".into(), pk: pk.into(), ck, value: Bytes::from_static(b"v"), ttl }
}

/// Expired rows are purged exactly once; a partition whose rows all expired is dropped by Redis
/// itself (its rows are not counted); rows without TTL stay. Before the purge, a scan steps over
/// the expired rows in several calls.
#[tokio::test]
async fn purge_removes_only_expired_rows() -> Result<()> {
    let server = RedisServer::start(&[]).await?;
    let store = open(Some(&server.url()), default_timeout()?).await?;
    let ttl = Ttl::from_secs(PURGE_TTL_SECS)?;
    let started = Instant::now();
    // Beside rows without TTL, so only a purge removes them. Big-endian keys sort first.
    let rows: Vec<u32> = (0..EXPIRED_ROWS).collect();
    for chunk in rows.chunks(MAX_BATCH_OPS) {
        let ops = chunk.iter().map(|i| put("mixed", Bytes::copy_from_slice(&i.to_be_bytes()), Some(ttl))).collect();
        store.batch(ops).await?;
    }
    store.put("t", "mixed", b"keep", Bytes::from_static(b"v"), None).await?;
    store.put("t", "mixed", b"renewed", Bytes::from_static(b"v"), Some(ttl)).await?;
    store.put("t", "mixed", b"renewed", Bytes::from_static(b"w"), None).await?;
    // Every row with a TTL: Redis expires the partition's keys by itself.
    let ops = (0u8..10).map(|i| put("ephemeral", Bytes::copy_from_slice(&[i]), Some(ttl))).collect();
    store.batch(ops).await?;
    ensure!(store.purge_expired().await? == 0, "purged live rows");
    let written = Instant::now();
    ensure!(written - started < ttl.as_duration(), "writing took {:?}, longer than the TTL", written - started);

    // Server-side TTLs follow the server's clock: waiting is the only way.
    tokio::time::sleep_until((written + ttl.as_duration() + EXPIRY_MARGIN).into()).await;
    let first = store.scan("t", "mixed", &Scan::all(10)).await?;
    ensure!(first.rows.is_empty() && first.next.is_some(), "a scan over 10,000 expired rows did not stop short");
    let rest = store.scan("t", "mixed", &Scan::all(10).after(first.next)).await?;
    let cks: Vec<&[u8]> = rest.rows.iter().map(|r| r.ck.as_ref()).collect();
    ensure!(cks == [&b"keep"[..], b"renewed"] && rest.next.is_none(), "resumed scan: {cks:?}");

    let purged = store.purge_expired().await?;
    ensure!(purged == u64::from(EXPIRED_ROWS), "purged {purged} rows, want the {EXPIRED_ROWS} expired rows");
    ensure!(store.purge_expired().await? == 0, "purge is not idempotent");
    ensure!(store.get("t", "mixed", b"keep").await?.is_some());
    ensure!(store.get("t", "mixed", b"renewed").await? == Some(Bytes::from_static(b"w")));
    let left = store.scan("t", "mixed", &Scan::all(10)).await?;
    ensure!(left.rows.len() == 2 && left.next.is_none(), "{} rows left", left.rows.len());
    ensure!(store.scan("t", "ephemeral", &Scan::all(10)).await?.rows.is_empty());
    Ok(())
}

/// A server that lost the store's scripts (restart, failover, `SCRIPT FLUSH`) gets them again.
#[tokio::test]
async fn scripts_lost_by_the_server_are_sent_again() -> Result<()> {
    let server = RedisServer::start(&[]).await?;
    let store = open(Some(&server.url()), default_timeout()?).await?;
    store.put("t", "p", b"k", Bytes::from_static(b"before"), None).await?;

    let admin = Builder::from_config(Config::from_url(&server.url())?).build()?;
    admin.init().await?;
    let flush = CustomCommand::new_static("SCRIPT", ClusterHash::Random, false);
    admin.custom::<Value, _>(flush, vec!["FLUSH"]).await?;
    admin.quit().await?;

    ensure!(store.get("t", "p", b"k").await? == Some(Bytes::from_static(b"before")));
    store.put("t", "p", b"k", Bytes::from_static(b"after"), None).await?;
    ensure!(store.get("t", "p", b"k").await? == Some(Bytes::from_static(b"after")));
    Ok(())
}

/// Redis refuses a counter add that would overflow; in a batch, the adds before it are undone.
#[tokio::test]
async fn counter_batches_are_all_or_nothing() -> Result<()> {
    let server = RedisServer::start(&[]).await?;
    let store = open(Some(&server.url()), default_timeout()?).await?;
    store.counter_add("t", "p", b"full", i64::MAX).await?;
    let add = |ck: &'static [u8], delta| WriteOp::CounterAdd {
        table: "t".into(),
        pk: "p".into(),
        ck: Bytes::from_static(ck),
        delta,
    };
    let result = store.batch(vec![add(b"a", 5), add(b"new", 1), add(b"a", 2), add(b"full", 1)]).await;
    ensure!(matches!(result, Err(StoreError::Backend(_))), "{result:?}");
    ensure!(store.counter_get("t", "p", b"a").await? == 0, "an add before the failure stayed");
    ensure!(store.counter_get("t", "p", b"new").await? == 0, "a new counter stayed");
    ensure!(store.counter_get("t", "p", b"full").await? == i64::MAX);
    let single = store.counter_add("t", "p", b"full", 1).await;
    ensure!(matches!(single, Err(StoreError::Backend(_))), "{single:?}");
    store.batch(vec![add(b"a", 5), add(b"a", 2)]).await?;
    ensure!(store.counter_get("t", "p", b"a").await? == 7);
    Ok(())
}

#[tokio::test]
async fn unreachable_redis_fails_fast_with_a_clear_error() -> Result<()> {
    let address = format!("127.0.0.1:{}", free_port());
    let url = format!("redis://chorus:hunter2@{address}/0");
    let started = Instant::now();
    let result = open(Some(&url), default_timeout()?).await;
    let took = started.elapsed();
    let err = match result {
        Ok(_) => return Err(anyhow!("connected to a closed port")),
        Err(err) => err,
    };
    ensure!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    let msg = err.to_string();
    ensure!(msg.contains(&address), "message does not name the server: {msg}");
    ensure!(!msg.contains("hunter2"), "message shows the password: {msg}");
    // Bounded by the connect budget (10 s); a refused connection fails much sooner.
    ensure!(took < Duration::from_secs(12), "took {took:?}");
    println!("open failed as expected after {took:?}: {msg}");
    Ok(())
}

#[tokio::test]
async fn redis_without_a_usable_url_is_a_config_error() -> Result<()> {
    for url in [None, Some(""), Some("  ")] {
        match open(url, default_timeout()?).await {
            Err(StoreError::Config(msg)) if msg.contains("--redis-url") => {}
            Err(other) => return Err(anyhow!("{url:?}: unexpected error: {other:?}")),
            Ok(_) => return Err(anyhow!("{url:?}: opened Redis without a URL")),
        }
    }
    for url in ["not a url", "http://127.0.0.1:6379", "rediss://127.0.0.1:6379", "redis://127.0.0.1:99999"] {
        match open(Some(url), default_timeout()?).await {
            Err(StoreError::Config(msg)) if msg.contains("Redis URL") => {}
            Err(other) => return Err(anyhow!("{url}: unexpected error: {other:?}")),
            Ok(_) => return Err(anyhow!("{url}: accepted")),
        }
    }
    let cfg = config(&["--store", "redis"])?;
    ensure!(cfg.store == Backend::Redis);
    Ok(())
}

/// Missing or wrong credentials are a configuration error, and the password is never shown.
#[tokio::test]
async fn credentials_are_checked_at_start() -> Result<()> {
    let server = RedisServer::start(&["--requirepass", "s3cret"]).await?;
    let address = format!("127.0.0.1:{}", server.port());
    for url in [format!("redis://{address}"), format!("redis://:wrong@{address}")] {
        match open(Some(&url), default_timeout()?).await {
            Err(StoreError::Config(msg)) if msg.contains(&address) && !msg.contains("wrong") => {}
            Err(other) => return Err(anyhow!("{url}: unexpected error: {other:?}")),
            Ok(_) => return Err(anyhow!("{url}: opened without the right password")),
        }
    }
    let store = open(Some(&format!("redis://:s3cret@{address}")), default_timeout()?).await?;
    store.put("t", "p", b"k", Bytes::from_static(b"v"), None).await?;
    Ok(())
}

/// A server that may evict keys would drop stored rows silently: refused at start.
#[tokio::test]
async fn a_server_that_evicts_keys_is_refused() -> Result<()> {
    let server = RedisServer::start(&["--maxmemory-policy", "allkeys-lru"]).await?;
    match open(Some(&server.url()), default_timeout()?).await {
        Err(StoreError::Config(msg)) if msg.contains("noeviction") && msg.contains("allkeys-lru") => Ok(()),
        Err(other) => Err(anyhow!("unexpected error: {other:?}")),
        Ok(_) => Err(anyhow!("opened a store on an evicting server")),
    }
}

/// A server that stops answering costs an operation `--store-timeout-ms`, then `Timeout`; once it
/// answers again the same store works.
#[tokio::test]
async fn a_stalled_server_times_out_then_recovers() -> Result<()> {
    let server = RedisServer::start(&[]).await?;
    let store = open(Some(&server.url()), SHORT_TIMEOUT).await?;
    store.put("t", "p", b"k", Bytes::from_static(b"v"), None).await?;

    signal(&server, libc::SIGSTOP)?;
    let started = Instant::now();
    let result = store.get("t", "p", b"k").await;
    let took = started.elapsed();
    signal(&server, libc::SIGCONT)?;
    ensure!(matches!(result, Err(StoreError::Timeout(_))), "{result:?}");
    ensure!(took < SHORT_TIMEOUT * 5, "took {took:?} with a {SHORT_TIMEOUT:?} timeout");

    store.put("t", "p", b"k", Bytes::from_static(b"w"), None).await?;
    ensure!(store.get("t", "p", b"k").await? == Some(Bytes::from_static(b"w")));
    Ok(())
}

/// A server that is gone makes every operation fail as unavailable within the timeout.
#[tokio::test]
async fn a_dead_server_is_unavailable() -> Result<()> {
    let mut server = RedisServer::start(&[]).await?;
    let store = open(Some(&server.url()), SHORT_TIMEOUT).await?;
    store.put("t", "p", b"k", Bytes::from_static(b"v"), None).await?;

    server.kill();
    for _ in 0..3 {
        let started = Instant::now();
        let result = store.put("t", "p", b"k", Bytes::from_static(b"w"), None).await;
        let took = started.elapsed();
        let err = result.err().context("a write to a dead server succeeded")?;
        ensure!(err.is_unavailable(), "{err:?}");
        ensure!(took < SHORT_TIMEOUT * 5, "took {took:?} with a {SHORT_TIMEOUT:?} timeout");
    }
    Ok(())
}
