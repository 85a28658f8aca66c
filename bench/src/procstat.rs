//! CPU time and resident memory of a process, read from `/proc`: the server under test (by pid) and the
//! load generator itself.

use anyhow::{Context as _, anyhow};
use std::time::Instant;

/// Clock ticks per second of the `utime`/`stime` fields.
fn clock_ticks() -> f64 {
    // SAFETY: sysconf reads a system constant.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 { t as f64 } else { 100.0 }
}

/// User plus system CPU seconds consumed so far by all threads of `pid`.
pub fn cpu_seconds(pid: u32) -> anyhow::Result<f64> {
    let stat =
        std::fs::read_to_string(format!("/proc/{pid}/stat")).with_context(|| format!("reading /proc/{pid}/stat"))?;
    // The command name (field 2) may contain spaces; fields after it are space separated. utime and
    // stime are fields 14 and 15, i.e. the 12th and 13th after the closing parenthesis.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).ok_or_else(|| anyhow!("malformed /proc/{pid}/stat"))?;
    let mut fields = rest.split_ascii_whitespace().skip(11);
    let mut next = || -> anyhow::Result<u64> {
        fields.next().ok_or_else(|| anyhow!("short /proc/{pid}/stat"))?.parse().context("utime/stime")
    };
    let ticks = next()? + next()?;
    Ok(ticks as f64 / clock_ticks())
}

/// Resident set size of `pid` in bytes (`VmRSS`).
pub fn rss_bytes(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status"))?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).ok_or_else(|| anyhow!("no VmRSS for {pid}"))?;
    let kib: u64 =
        line.trim_start_matches("VmRSS:").trim().trim_end_matches("kB").trim().parse().context("VmRSS value")?;
    Ok(kib * 1024)
}

/// Measures the CPU a process uses over an interval, as a fraction of one core.
pub struct CpuMeter {
    pid: u32,
    cpu: f64,
    at: Instant,
}

impl CpuMeter {
    /// Starts measuring `pid` now.
    pub fn start(pid: u32) -> anyhow::Result<Self> {
        Ok(Self { pid, cpu: cpu_seconds(pid)?, at: Instant::now() })
    }

    /// CPU used since [`CpuMeter::start`], in cores (1.0 = one core busy the whole time).
    pub fn cores(&self) -> anyhow::Result<f64> {
        let wall = self.at.elapsed().as_secs_f64();
        Ok(if wall > 0.0 { (cpu_seconds(self.pid)? - self.cpu) / wall } else { 0.0 })
    }
}
