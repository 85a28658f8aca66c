//! Crash durability of the embedded store: a child process writes rows and prints an ack for
//! each one the store acknowledged; the test kills it with SIGKILL while it is still writing,
//! then reopens the store and reads back every acknowledged row.
//!
//! The child is this test binary run again with `CRASH_CHILD_DIR` set, executing the ignored
//! test `crash_child_writes_until_killed`.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;

use anyhow::{Context, Result, anyhow, ensure};
use bytes::Bytes;
use chorus_store::{StoreConfig, SystemClock};
use clap::{Args, FromArgMatches};
use tokio::task::JoinSet;

/// Tells the child where the store is.
const CHILD_DIR_ENV: &str = "CRASH_CHILD_DIR";
/// Acknowledged rows to see before killing the child.
const ACKS_BEFORE_KILL: usize = 2000;
/// Concurrent writers in the child, so group commits with several jobs are exercised.
const WRITERS: u32 = 8;
const TABLE: &str = "crash";

fn embedded_config() -> Result<StoreConfig> {
    let matches =
        StoreConfig::augment_args(clap::Command::new("test")).try_get_matches_from(["test", "--store", "embedded"])?;
    Ok(StoreConfig::from_arg_matches(&matches)?)
}

/// Kills the child if the test fails before it does.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn acknowledged_writes_survive_sigkill() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let exe = std::env::current_exe()?;
    let child = Command::new(exe)
        .args(["--exact", "crash::crash_child_writes_until_killed", "--ignored", "--nocapture", "--test-threads=1"])
        .env(CHILD_DIR_ENV, dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()?;
    let mut child = KillOnDrop(child);
    let stdout = child.0.stdout.take().context("child has no stdout")?;
    let mut lines = BufReader::new(stdout).lines();

    let mut acked = Vec::new();
    while acked.len() < ACKS_BEFORE_KILL {
        let line = lines.next().context("child exited before acknowledging enough rows")??;
        if let Some(key) = line.strip_prefix("ack ") {
            acked.push(key.to_owned());
        }
    }
    // SIGKILL on Unix: no destructor, no flush, no graceful shutdown.
    child.0.kill()?;
    // Acks the child printed before it died are acknowledged writes too.
    for line in lines {
        if let Some(key) = line?.strip_prefix("ack ") {
            acked.push(key.to_owned());
        }
    }
    let status = child.0.wait()?;
    ensure!(!status.success(), "the child was not killed: {status}");

    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async {
        let store = chorus_store::open(&embedded_config()?, dir.path(), Arc::new(SystemClock), None).await?;
        for key in &acked {
            let (writer, row) = key.split_once('/').context("malformed ack")?;
            let value = store.get(TABLE, writer, row.as_bytes()).await?;
            ensure!(value.as_deref() == Some(key.as_bytes()), "acknowledged row {key} lost after SIGKILL");
        }
        Ok::<_, anyhow::Error>(())
    })?;
    println!("{} acknowledged rows survived SIGKILL", acked.len());
    Ok(())
}

/// The child: writes rows from several tasks forever, printing `ack <writer>/<row>` after each
/// acknowledged put. Does nothing useful unless started by `acknowledged_writes_survive_sigkill`.
#[test]
#[ignore = "child process of acknowledged_writes_survive_sigkill"]
fn crash_child_writes_until_killed() -> Result<()> {
    let dir = std::env::var_os(CHILD_DIR_ENV)
        .ok_or_else(|| anyhow!("{CHILD_DIR_ENV} not set: run acknowledged_writes_survive_sigkill"))?;
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    runtime.block_on(async move {
        let store =
            chorus_store::open(&embedded_config()?, std::path::Path::new(&dir), Arc::new(SystemClock), None).await?;
        let mut writers = JoinSet::new();
        for writer in 0..WRITERS {
            let store = store.clone();
            writers.spawn(async move {
                let pk = format!("w{writer}");
                for row in 0u64.. {
                    let key = format!("{pk}/{row:010}");
                    let ck = format!("{row:010}");
                    store.put(TABLE, &pk, ck.as_bytes(), Bytes::from(key.clone()), None).await?;
                    println!("ack {key}");
                }
                Ok::<_, anyhow::Error>(())
            });
        }
        while let Some(done) = writers.join_next().await {
            done??;
        }
        Ok(())
    })
}
