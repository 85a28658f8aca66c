//! The ScyllaDB backend.
//!
//! The conformance suite runs only when `CHORUS_SCYLLA_NODES` names a reachable cluster (a local
//! ScyllaDB or Cassandra ≥ 4.0); otherwise each of its tests prints a skip line and passes:
//!
//! ```sh
//! CHORUS_SCYLLA_NODES=127.0.0.1:9042 cargo test -p chorus-store --test integration scylla:: -- --nocapture
//! ```
//!
//! The suite creates the keyspace (`CHORUS_SCYLLA_KEYSPACE`, default `chorus_test`) and schema
//! itself (`--store-migrate`). The start-up failure tests always run: they need no server.

use std::net::TcpListener;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::conformance::Suite;
use anyhow::{Result, anyhow, ensure};
use chorus_store::{Backend, StoreConfig, StoreError, SystemClock};
use clap::{Args, Command, FromArgMatches};

/// Keyspace of the conformance run unless `CHORUS_SCYLLA_KEYSPACE` says otherwise: kept apart
/// from a deployment's `chorus` keyspace.
const TEST_KEYSPACE: &str = "chorus_test";

/// Parses store flags the way the broker does, environment included.
fn config(args: &[&str]) -> Result<StoreConfig> {
    let matches = StoreConfig::augment_args(Command::new("test"))
        .try_get_matches_from(std::iter::once("test").chain(args.iter().copied()))?;
    Ok(StoreConfig::from_arg_matches(&matches)?)
}

async fn setup() -> Result<Option<Suite>> {
    if std::env::var_os("CHORUS_SCYLLA_NODES").is_none() {
        println!("SKIPPED: CHORUS_SCYLLA_NODES is not set, no ScyllaDB to test against");
        return Ok(None);
    }
    let mut args = vec!["--store", "scylla", "--store-migrate"];
    if std::env::var_os("CHORUS_SCYLLA_KEYSPACE").is_none() {
        args.extend(["--scylla-keyspace", TEST_KEYSPACE]);
    }
    let cfg = config(&args)?;
    let scratch = tempfile::tempdir()?;
    let store = chorus_store::open(&cfg, scratch.path(), Arc::new(SystemClock), None).await?;
    ensure!(store.backend() == "scylla");
    Ok(Some(Suite::new(store, None, Box::new(scratch))))
}

conformance_tests!(setup);

/// A port on 127.0.0.1 with nothing listening.
fn closed_port() -> Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

#[tokio::test]
async fn unreachable_cluster_fails_fast_with_a_clear_error() -> Result<()> {
    let node = format!("127.0.0.1:{}", closed_port()?);
    let cfg = config(&["--store", "scylla", "--scylla-nodes", &node])?;
    ensure!(cfg.store == Backend::Scylla);
    let scratch = tempfile::tempdir()?;
    let started = Instant::now();
    let result = chorus_store::open(&cfg, scratch.path(), Arc::new(SystemClock), None).await;
    let took = started.elapsed();
    let err = match result {
        Ok(_) => return Err(anyhow!("connected to a closed port")),
        Err(err) => err,
    };
    ensure!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    ensure!(err.to_string().contains(&node), "message does not name the node: {err}");
    // Bounded by CONNECT_BUDGET (10 s); a refused connection should fail much sooner.
    ensure!(took < Duration::from_secs(12), "took {took:?}");
    println!("open failed as expected after {took:?}: {err}");
    Ok(())
}

#[tokio::test]
async fn scylla_without_nodes_is_a_config_error() -> Result<()> {
    let mut cfg = config(&["--store", "scylla"])?;
    cfg.scylla_nodes.clear();
    let scratch = tempfile::tempdir()?;
    match chorus_store::open(&cfg, scratch.path(), Arc::new(SystemClock), None).await {
        Err(StoreError::Config(msg)) if msg.contains("--scylla-nodes") => Ok(()),
        Err(other) => Err(anyhow!("unexpected error: {other:?}")),
        Ok(_) => Err(anyhow!("opened scylla without nodes")),
    }
}

#[tokio::test]
async fn bad_keyspace_name_is_a_config_error() -> Result<()> {
    let node = format!("127.0.0.1:{}", closed_port()?);
    let cfg = config(&["--store", "scylla", "--scylla-nodes", &node, "--scylla-keyspace", "bad;name"])?;
    let scratch = tempfile::tempdir()?;
    match chorus_store::open(&cfg, scratch.path(), Arc::new(SystemClock), None).await {
        Err(StoreError::Config(msg)) if msg.contains("keyspace") => Ok(()),
        Err(other) => Err(anyhow!("unexpected error: {other:?}")),
        Ok(_) => Err(anyhow!("accepted a bad keyspace name")),
    }
}
