//! chorus-bench: drives chorus and its peers (nats-server, Socket.IO, a raw-socket limit) with the same
//! workloads in the same run and reports throughput, latency, CPU and memory per core.
//!
//! Layout:
//! - [`cli`]: the command line; [`harness`]: runs a scenario over the targets and reports.
//! - Scenarios: [`pubsub`] (fanout, topics, latency), [`connections`], [`calls`], [`cluster`] (pub/sub
//!   across chorus nodes sharing one Redis, against a single node), [`reactions`] (live commerce: one
//!   session's reactions and their stats to every viewer), [`soak`] (the latency workload for minutes:
//!   RSS and p99 over time); [`rest`]: the REST requests of their setup.
//! - The generator's client side: [`conn`] (transports and dialects), [`ws`] (WebSocket framing),
//!   [`stamp`] (the timestamped payload).
//! - The servers: [`servers`] (start, pin, stop; redis-server for `cluster`), [`raw_server`] (the raw
//!   limit), [`target`].
//! - Measurement and output: [`measure`], [`procstat`], [`affinity`], [`report`], [`charts`].

mod affinity;
mod calls;
mod charts;
mod cli;
mod cluster;
mod conn;
mod connections;
mod harness;
mod measure;
mod procstat;
mod pubsub;
mod raw_server;
mod reactions;
mod report;
mod rest;
mod servers;
mod soak;
mod stamp;
mod target;
mod ws;

use anyhow::Context as _;
use clap::Parser as _;

/// Open files wanted: 50,000 held connections plus the harness's own, with room to spare; the kernel
/// caps it at `fs.nr_open`.
const WANTED_NOFILE: u64 = 1 << 20;

fn main() -> anyhow::Result<()> {
    let cli = cli::Cli::parse();
    if let cli::Command::RawServer { listen, writev } = cli.command {
        return raw_server::run(listen, writev);
    }
    if let Some(common) = cli.command.common().filter(|c| !c.no_pin) {
        // Before any thread exists, so that the runtime and progress-bar threads inherit it.
        affinity::pin_generator(usize::from(common.server_cpus))?;
    }
    let nofile = affinity::raise_nofile(WANTED_NOFILE).context("raising the open-file limit")?;
    if nofile < WANTED_NOFILE {
        eprintln!(
            "note: open-file limit {nofile} (hard limit; cannot be raised here): TCP connection storms are capped below it"
        );
    }
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let local = tokio::task::LocalSet::new();
    local.block_on(&runtime, async move {
        tokio::select! {
            result = harness::run(cli.command) => result,
            _ = tokio::signal::ctrl_c() => {
                // Dropping the run drops every server handle: each child is killed (kill_on_drop).
                eprintln!("interrupted: stopping the servers");
                Err(anyhow::anyhow!("interrupted"))
            }
        }
    })
}
