//! The `connections` scenario: a rate-limited connection storm, then the connections held idle while the
//! server's resident memory is read. Reports connect rate and latency, failures, and RSS per connection.

use crate::conn::{Dialer, Incoming};
use crate::measure::{Phases, Sample, Sampler};
use crate::pubsub::{new_histogram, source_ip};
use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressStyle};
use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::{Duration, Instant};
use tokio::task::JoinSet;

/// Read size of a held connection: idle connections only ever receive keepalives.
const IDLE_READ_CHUNK: usize = 2048;

/// Storms with at least this many connections show a progress bar.
const PROGRESS_MIN_CONNECTIONS: usize = 2000;

/// The storm and the hold.
pub struct Plan {
    /// Connections to open.
    pub count: usize,
    /// Connection attempts started per second.
    pub rate: f64,
    /// Handshakes in progress at most.
    pub parallel: usize,
    /// How long the connections are held idle before memory is read.
    pub hold: Duration,
}

/// What one target did.
pub struct Outcome {
    /// Connections that completed their handshake.
    pub established: u64,
    /// Attempts that failed.
    pub failed: u64,
    /// The first failure.
    pub first_failure: Option<String>,
    /// Length of the storm.
    pub storm_seconds: f64,
    /// Handshake time (TCP/QUIC connect to session established), microseconds.
    pub latency: Histogram<u64>,
    /// Held connections the server closed during the hold.
    pub dropped: u64,
    /// Server RSS before the storm.
    pub rss_before: Option<u64>,
    /// CPU during the storm.
    pub storm: Sample,
    /// CPU during the hold, and RSS at its end.
    pub hold: Sample,
}

/// Runs the storm and the hold against one target.
pub async fn run(plan: &Plan, dialer: &Dialer, label: &str, sampler: &Sampler) -> anyhow::Result<Outcome> {
    let rss_before = sampler.server_rss();
    let storm_window = sampler.begin()?;
    let bar = (plan.count >= PROGRESS_MIN_CONNECTIONS).then(|| {
        let bar = ProgressBar::new(plan.count as u64);
        if let Ok(style) = ProgressStyle::with_template("{prefix:>16} [{bar:30}] {pos}/{len} connections {msg}") {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_prefix(label.to_owned());
        bar
    });
    let mut latency = new_histogram();
    let (mut failed, mut first_failure) = (0u64, None);
    let mut held = Vec::with_capacity(plan.count);
    let mut pending = JoinSet::new();
    let start = Instant::now();
    let mut record = |done: Result<(anyhow::Result<crate::conn::Conn>, Duration), tokio::task::JoinError>| match done {
        Ok((Ok(conn), took)) => {
            latency.saturating_record((took.as_micros() as u64).max(1));
            held.push(conn);
        }
        Ok((Err(e), _)) => {
            failed += 1;
            first_failure.get_or_insert_with(|| format!("{e:#}"));
        }
        Err(e) => {
            failed += 1;
            first_failure.get_or_insert_with(|| e.to_string());
        }
    };
    for i in 0..plan.count {
        let due = start + Duration::from_secs_f64(i as f64 / plan.rate);
        while pending.len() >= plan.parallel.max(1) {
            if let Some(done) = pending.join_next().await {
                record(done);
            }
        }
        while let Some(done) = pending.try_join_next() {
            record(done);
        }
        tokio::time::sleep_until(due.into()).await;
        let dialer = dialer.clone();
        pending.spawn_local(async move {
            let t0 = Instant::now();
            let conn = dialer.connect(source_ip(i)).await;
            (conn, t0.elapsed())
        });
        if let Some(bar) = &bar
            && i % 256 == 0
        {
            bar.set_position(i as u64);
        }
    }
    while let Some(done) = pending.join_next().await {
        record(done);
    }
    let storm_seconds = start.elapsed().as_secs_f64();
    let storm = sampler.end(storm_window)?;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }

    let established = held.len() as u64;
    let dropped = Rc::new(Cell::new(0u64));
    let last_drop = Rc::new(RefCell::new(None::<String>));
    let mut idle = JoinSet::new();
    for mut conn in held {
        conn.set_read_chunk(IDLE_READ_CHUNK);
        let (dropped, last_drop) = (dropped.clone(), last_drop.clone());
        idle.spawn_local(async move {
            // Answer keepalives (engine.io and NATS pings) so the server keeps the connection.
            let result = async {
                loop {
                    conn.fill().await?;
                    conn.drain(&mut |_: Incoming<'_>| {})?;
                    conn.flush_outbox().await?;
                }
            };
            if let Err::<(), anyhow::Error>(e) = result.await {
                dropped.set(dropped.get() + 1);
                last_drop.borrow_mut().get_or_insert_with(|| format!("{e:#}"));
            }
        });
    }
    let phases = Phases::new(label, Duration::ZERO, plan.hold);
    let hold_window = sampler.begin()?;
    let held_count = || established - dropped.get();
    phases.measure(&held_count, &|_| format!("holding {} connections", held_count()), &|| None).await;
    let hold = sampler.end(hold_window)?;
    idle.abort_all();
    while idle.join_next().await.is_some() {}
    if first_failure.is_none() {
        first_failure = last_drop.borrow_mut().take();
    }
    Ok(Outcome {
        established,
        failed,
        first_failure,
        storm_seconds,
        latency,
        dropped: dropped.get(),
        rss_before,
        storm,
        hold,
    })
}
