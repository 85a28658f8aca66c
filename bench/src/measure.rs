//! The timeline of one measured run (warm-up, then the measured window, with a progress bar on runs
//! longer than a few seconds) and the CPU/RSS sampling of the server and the generator over the window.

use crate::procstat::{self, CpuMeter};
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use std::time::{Duration, Instant};

/// Runs shorter than this get no progress bar.
const PROGRESS_MIN: Duration = Duration::from_secs(3);

/// How often the progress bar and early-stop conditions are refreshed.
const TICK: Duration = Duration::from_millis(250);

/// Generator CPU (in cores) from which its numbers are reported as the generator's limit rather than
/// the server's: the generator is pinned to one core, and above 90% of it, it is the bottleneck.
pub const GENERATOR_SATURATED: f64 = 0.9;

/// Warm-up and measured phases of one target, with an optional progress bar.
pub struct Phases {
    warmup: Duration,
    measure: Duration,
    bar: Option<ProgressBar>,
    started: Instant,
}

impl Phases {
    /// Phases for `label` (shown on the bar).
    pub fn new(label: &str, warmup: Duration, measure: Duration) -> Self {
        let total = warmup + measure;
        let bar = (total >= PROGRESS_MIN).then(|| {
            let bar = ProgressBar::new(total.as_millis() as u64);
            if let Ok(style) = ProgressStyle::with_template("{prefix:>16} [{bar:30}] {elapsed:>4}/{duration:4} {msg}") {
                bar.set_style(style.progress_chars("=> "));
            }
            bar.set_prefix(label.to_owned());
            bar
        });
        Self { warmup, measure, bar, started: Instant::now() }
    }

    /// Waits out the warm-up.
    pub async fn warmup(
        &self,
        counter: &dyn Fn() -> u64,
        rate: &dyn Fn(f64) -> String,
        stop: &dyn Fn() -> Option<String>,
    ) {
        self.phase("warm-up", self.warmup, counter, rate, stop).await;
    }

    /// Waits out the measured window.
    pub async fn measure(
        &self,
        counter: &dyn Fn() -> u64,
        rate: &dyn Fn(f64) -> String,
        stop: &dyn Fn() -> Option<String>,
    ) {
        self.phase("measure", self.measure, counter, rate, stop).await;
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }

    async fn phase(
        &self,
        name: &str,
        length: Duration,
        counter: &dyn Fn() -> u64,
        rate: &dyn Fn(f64) -> String,
        stop: &dyn Fn() -> Option<String>,
    ) {
        let end = Instant::now() + length;
        let (mut last_count, mut last_at) = (counter(), Instant::now());
        while Instant::now() < end {
            tokio::time::sleep(TICK.min(end.saturating_duration_since(Instant::now()))).await;
            if let Some(bar) = &self.bar {
                let (count, at) = (counter(), Instant::now());
                let per_sec = (count - last_count) as f64 / at.duration_since(last_at).as_secs_f64().max(1e-9);
                (last_count, last_at) = (count, at);
                bar.set_position(self.started.elapsed().as_millis() as u64);
                bar.set_message(format!("{name}: {}", rate(per_sec)));
            }
            if let Some(why) = stop() {
                if let Some(bar) = &self.bar {
                    bar.set_message(format!("{name}: stopped ({why})"));
                }
                return;
            }
        }
    }
}

/// CPU and memory of one server process over a window.
#[derive(Debug, Clone, Serialize)]
pub struct ProcessSample {
    /// Its role in the run: `chorus`, `node-a`, `redis`, …
    pub name: String,
    /// Its process id.
    pub pid: u32,
    /// CPU used, in cores (1.0 = one core busy the whole window).
    pub cpu: f64,
    /// Resident memory at the end of the window.
    pub rss_bytes: Option<u64>,
}

/// CPU and memory of the server(s) and the generator over a window.
#[derive(Debug, Clone, Default)]
pub struct Sample {
    /// Wall-clock length of the window.
    pub seconds: f64,
    /// Server CPU in cores, summed over the server processes (unknown without a pid).
    pub server_cpu: Option<f64>,
    /// Generator CPU in cores.
    pub generator_cpu: f64,
    /// Server resident memory at the end of the window, summed over the server processes.
    pub server_rss: Option<u64>,
    /// Each server process (one for every scenario but `cluster`).
    pub processes: Vec<ProcessSample>,
}

/// Samples the server processes (those whose pid is known) and this process.
pub struct Sampler {
    servers: Vec<(String, u32)>,
}

/// A window being sampled.
pub struct Open {
    servers: Vec<CpuMeter>,
    generator: CpuMeter,
    at: Instant,
}

impl Sampler {
    /// A sampler for the server with `server_pid`.
    pub fn new(server_pid: Option<u32>) -> Self {
        Self::processes(server_pid.map(|pid| ("server".to_owned(), pid)))
    }

    /// A sampler for several server processes (a cluster's nodes and its Redis), each with its role.
    pub fn processes(servers: impl IntoIterator<Item = (String, u32)>) -> Self {
        Self { servers: servers.into_iter().collect() }
    }

    /// The servers' resident memory now (summed).
    pub fn server_rss(&self) -> Option<u64> {
        let each: Option<Vec<u64>> = self.servers.iter().map(|(_, pid)| procstat::rss_bytes(*pid).ok()).collect();
        each.filter(|e| !e.is_empty()).map(|e| e.iter().sum())
    }

    /// Starts a window.
    pub fn begin(&self) -> anyhow::Result<Open> {
        Ok(Open {
            servers: self.servers.iter().map(|(_, pid)| CpuMeter::start(*pid)).collect::<anyhow::Result<_>>()?,
            generator: CpuMeter::start(std::process::id())?,
            at: Instant::now(),
        })
    }

    /// Ends a window.
    pub fn end(&self, open: Open) -> anyhow::Result<Sample> {
        let mut processes = Vec::with_capacity(self.servers.len());
        for ((name, pid), meter) in self.servers.iter().zip(&open.servers) {
            processes.push(ProcessSample {
                name: name.clone(),
                pid: *pid,
                cpu: meter.cores()?,
                rss_bytes: procstat::rss_bytes(*pid).ok(),
            });
        }
        let known = !processes.is_empty();
        Ok(Sample {
            seconds: open.at.elapsed().as_secs_f64(),
            server_cpu: known.then(|| processes.iter().map(|p| p.cpu).sum()),
            generator_cpu: open.generator.cores()?,
            server_rss: self.server_rss(),
            processes,
        })
    }
}
