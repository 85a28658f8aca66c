//! The timeline of one measured run (warm-up, then the measured window, with a progress bar on runs
//! longer than a few seconds) and the CPU/RSS sampling of the server and the generator over the window.

use crate::procstat::{self, CpuMeter};
use indicatif::{ProgressBar, ProgressStyle};
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

/// CPU and memory of the server and the generator over a window.
#[derive(Debug, Clone, Copy, Default)]
pub struct Sample {
    /// Wall-clock length of the window.
    pub seconds: f64,
    /// Server CPU in cores (unknown without a pid).
    pub server_cpu: Option<f64>,
    /// Generator CPU in cores.
    pub generator_cpu: f64,
    /// Server resident memory at the end of the window.
    pub server_rss: Option<u64>,
}

/// Samples the server process (when its pid is known) and this process.
pub struct Sampler {
    server_pid: Option<u32>,
}

/// A window being sampled.
pub struct Open {
    server: Option<CpuMeter>,
    generator: CpuMeter,
    at: Instant,
}

impl Sampler {
    /// A sampler for the server with `server_pid`.
    pub fn new(server_pid: Option<u32>) -> Self {
        Self { server_pid }
    }

    /// The server's resident memory now.
    pub fn server_rss(&self) -> Option<u64> {
        self.server_pid.and_then(|p| procstat::rss_bytes(p).ok())
    }

    /// Starts a window.
    pub fn begin(&self) -> anyhow::Result<Open> {
        Ok(Open {
            server: self.server_pid.map(CpuMeter::start).transpose()?,
            generator: CpuMeter::start(std::process::id())?,
            at: Instant::now(),
        })
    }

    /// Ends a window.
    pub fn end(&self, open: Open) -> anyhow::Result<Sample> {
        Ok(Sample {
            seconds: open.at.elapsed().as_secs_f64(),
            server_cpu: open.server.as_ref().map(CpuMeter::cores).transpose()?,
            generator_cpu: open.generator.cores()?,
            server_rss: self.server_rss(),
        })
    }
}
