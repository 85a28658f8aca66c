//! The embedded (redb) backend: the conformance suite, plus what only the embedded store does —
//! purging, start-up failures, metrics.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::conformance::Suite;
use anyhow::{Context, Result, anyhow, ensure};
use bytes::Bytes;
use chorus_store::{Backend, Clock, ManualClock, Store, StoreConfig, StoreError, SystemClock, Ttl};
use clap::{Args, Command, FromArgMatches};

/// 2024-01-01T00:00:00Z: a fixed start for the manual clock.
const START_MS: u64 = 1_704_067_200_000;

fn embedded_config() -> Result<StoreConfig> {
    let matches =
        StoreConfig::augment_args(Command::new("test")).try_get_matches_from(["test", "--store", "embedded"])?;
    let cfg = StoreConfig::from_arg_matches(&matches)?;
    ensure!(cfg.store == Backend::Embedded);
    Ok(cfg)
}

async fn open_temp(clock: Arc<dyn Clock>) -> Result<(Arc<dyn Store>, tempfile::TempDir)> {
    let dir = tempfile::tempdir()?;
    let store = chorus_store::open(&embedded_config()?, dir.path(), clock, None).await?;
    Ok((store, dir))
}

async fn setup() -> Result<Option<Suite>> {
    let clock = Arc::new(ManualClock::new(START_MS));
    let (store, dir) = open_temp(clock.clone()).await?;
    ensure!(store.backend() == "embedded");
    Ok(Some(Suite::new(store, Some(clock), Box::new(dir))))
}

conformance_tests!(setup);

#[tokio::test]
async fn purge_removes_only_expired_rows() -> Result<()> {
    let clock = Arc::new(ManualClock::new(START_MS));
    let (store, _dir) = open_temp(clock.clone()).await?;
    let ttl = Some(Ttl::from_secs(10)?);
    // More than one purge batch (1000 rows), so purge_expired must loop.
    let ops: Vec<u32> = (0..1500).collect();
    for chunk in ops.chunks(chorus_store::MAX_BATCH_OPS) {
        let batch = chunk
            .iter()
            .map(|i| chorus_store::WriteOp::Put {
                table: "t".into(),
                pk: "p".into(),
                ck: Bytes::copy_from_slice(&i.to_be_bytes()),
                value: Bytes::from_static(b"v"),
                ttl,
            })
            .collect();
        store.batch(batch).await?;
    }
    store.put("t", "p", b"keep", Bytes::from_static(b"v"), None).await?;
    store.put("t", "p", b"renewed", Bytes::from_static(b"v"), ttl).await?;
    store.put("t", "p", b"renewed", Bytes::from_static(b"w"), None).await?;

    ensure!(store.purge_expired().await? == 0, "purged live rows");
    clock.advance(Duration::from_secs(10));
    ensure!(store.purge_expired().await? == 1500, "not every expired row purged");
    ensure!(store.purge_expired().await? == 0, "purge is not idempotent");
    ensure!(store.get("t", "p", b"keep").await?.is_some());
    ensure!(store.get("t", "p", b"renewed").await? == Some(Bytes::from_static(b"w")));
    Ok(())
}

#[tokio::test]
async fn data_dir_that_is_a_file_fails_to_open_clearly() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("not-a-dir");
    std::fs::write(&file, b"x")?;
    let err = match chorus_store::open(&embedded_config()?, &file, Arc::new(SystemClock), None).await {
        Ok(_) => return Err(anyhow!("opened a store inside a regular file")),
        Err(err) => err,
    };
    ensure!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    ensure!(err.is_unavailable());
    let msg = err.to_string();
    ensure!(msg.contains("cannot create data dir") && msg.contains("not-a-dir"), "unclear message: {msg}");
    Ok(())
}

#[tokio::test]
async fn a_locked_database_is_refused_clearly() -> Result<()> {
    let (_store, dir) = open_temp(Arc::new(SystemClock)).await?;
    let second = chorus_store::open(&embedded_config()?, dir.path(), Arc::new(SystemClock), None).await;
    match second {
        Err(StoreError::Unavailable(msg)) if msg.contains("already open") => Ok(()),
        Err(other) => Err(anyhow!("unexpected error: {other:?}")),
        Ok(_) => Err(anyhow!("opened one database file twice")),
    }
}

#[tokio::test]
async fn close_releases_the_file_for_an_immediate_reopen() -> Result<()> {
    let (store, dir) = open_temp(Arc::new(SystemClock)).await?;
    store.put("t", "p", b"k", Bytes::from_static(b"v"), None).await?;
    let reading = {
        let store = store.clone();
        tokio::spawn(async move { store.get("t", "p", b"k").await })
    };
    store.close().await?;
    store.close().await?;
    ensure!(matches!(reading.await?, Ok(Some(_)) | Err(StoreError::Unavailable(_))), "a racing read ends cleanly");
    ensure!(matches!(store.get("t", "p", b"k").await, Err(StoreError::Unavailable(_))), "reads fail after close");
    ensure!(
        matches!(store.put("t", "p", b"k", Bytes::new(), None).await, Err(StoreError::Unavailable(_))),
        "writes fail after close"
    );
    let again = chorus_store::open(&embedded_config()?, dir.path(), Arc::new(SystemClock), None).await?;
    ensure!(again.get("t", "p", b"k").await? == Some(Bytes::from_static(b"v")), "acknowledged write kept");
    Ok(())
}

/// Captures metrics recorded on this thread.
#[derive(Default)]
struct Capture {
    counters: Mutex<HashMap<String, Arc<AtomicU64>>>,
    histograms: Mutex<HashMap<String, Arc<Samples>>>,
}

#[derive(Default)]
struct Samples(AtomicU64);

impl metrics::HistogramFn for Samples {
    fn record(&self, _value: f64) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

fn key_string(key: &metrics::Key) -> String {
    let mut labels: Vec<String> = key.labels().map(|l| format!("{}={}", l.key(), l.value())).collect();
    labels.sort();
    format!("{}{{{}}}", key.name(), labels.join(","))
}

impl metrics::Recorder for Capture {
    fn describe_counter(&self, _: metrics::KeyName, _: Option<metrics::Unit>, _: metrics::SharedString) {}
    fn describe_gauge(&self, _: metrics::KeyName, _: Option<metrics::Unit>, _: metrics::SharedString) {}
    fn describe_histogram(&self, _: metrics::KeyName, _: Option<metrics::Unit>, _: metrics::SharedString) {}

    fn register_counter(&self, key: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Counter {
        let mut counters = self.counters.lock().unwrap_or_else(|e| e.into_inner());
        metrics::Counter::from_arc(counters.entry(key_string(key)).or_default().clone())
    }

    fn register_gauge(&self, _: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Gauge {
        metrics::Gauge::noop()
    }

    fn register_histogram(&self, key: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Histogram {
        let mut histograms = self.histograms.lock().unwrap_or_else(|e| e.into_inner());
        metrics::Histogram::from_arc(histograms.entry(key_string(key)).or_default().clone())
    }
}

impl Capture {
    fn counter(&self, key: &str) -> u64 {
        let counters = self.counters.lock().unwrap_or_else(|e| e.into_inner());
        counters.get(key).map_or(0, |c| c.load(Ordering::Relaxed))
    }

    fn samples(&self, key: &str) -> u64 {
        let histograms = self.histograms.lock().unwrap_or_else(|e| e.into_inner());
        histograms.get(key).map_or(0, |h| h.0.load(Ordering::Relaxed))
    }
}

/// An operation error reaches the caller as a coded error and is counted; latency is recorded
/// for every operation, labelled by backend and op.
#[tokio::test(flavor = "current_thread")]
async fn errors_reach_the_caller_and_are_counted() -> Result<()> {
    let capture = Capture::default();
    let _guard = metrics::set_default_local_recorder(&capture);
    let (store, _dir) = open_temp(Arc::new(SystemClock)).await?;

    store.put("t", "p", b"k", Bytes::from_static(b"v"), None).await?;
    let err = store.get("Not-A-Table", "p", b"k").await.err().context("a bad table name was accepted")?;
    ensure!(matches!(err, StoreError::InvalidArgument(_)), "{err:?}");

    let put = "chorus_store_op_seconds{backend=embedded,op=put}";
    let get = "chorus_store_op_seconds{backend=embedded,op=get}";
    ensure!(capture.samples(put) == 1, "put latency not recorded");
    ensure!(capture.samples(get) == 1, "failed get latency not recorded");
    ensure!(capture.counter("chorus_store_errors_total{backend=embedded,op=get}") == 1);
    ensure!(capture.counter("chorus_store_errors_total{backend=embedded,op=put}") == 0);
    Ok(())
}
