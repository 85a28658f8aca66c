//! The `soak` scenario: the `latency` workload (one topic, N subscribers, open loop, every delivery
//! timed from its intended send time) held for minutes, with the server's RSS and each interval's
//! latency percentiles sampled every few seconds. A broker that leaks shows a rising RSS; one whose
//! queues or maps grow shows a rising p99.
//!
//! The load is `--rate`, or by default [`LOAD_FRACTION`] of the publishes per second a closed-loop
//! probe (as `fanout`: at most `--inflight` messages in flight) sustained on the same server just
//! before, with its own connections, which are closed before the soak opens its own.

use crate::cli::SoakArgs;
use crate::conn::Dialer;
use crate::harness::pubsub_row;
use crate::measure::{Phases, Sampler};
use crate::pubsub::{self, Load};
use crate::report::{self, Row, SeriesPoint};
use anyhow::bail;
use std::rc::Rc;
use std::time::Duration;

/// The soak runs at this fraction of the probe's maximum: "half of max load" (issue 15), loaded but
/// below the limit, so the latency is the server's and not a queue growing for the whole run.
pub const LOAD_FRACTION: f64 = 0.5;

/// Longest stretch at each end of the run whose RSS samples are averaged for the first/last figures: a
/// minute, or a third of shorter runs.
const EDGE: Duration = Duration::from_secs(60);

/// Runs the probe (without `--rate`), then the soak, against one target.
pub async fn run(a: &SoakArgs, name: &str, dialer: &Dialer, sampler: &Sampler) -> anyhow::Result<Row> {
    if !(a.sample_every > 0.0 && a.probe > 0.0) {
        bail!("--sample-every and --probe must be positive");
    }
    let warmup = Duration::from_secs_f64(a.common.warmup);
    let plan = |load: Load, series: Option<Duration>| pubsub::Plan {
        topics: vec!["soak".to_owned()],
        subscriptions: vec![vec![0]; a.subscribers],
        publishers: vec![0],
        route: Rc::new(|_| 0),
        load,
        latency_every: 1,
        series,
    };
    let (rate, probe_max) = match a.rate {
        Some(rate) => (rate, None),
        None => {
            let phases = Phases::new(&format!("{name} probe"), warmup, Duration::from_secs_f64(a.probe));
            let probe = plan(Load::Closed { inflight: a.inflight }, None);
            let out = pubsub::run(&probe, std::slice::from_ref(dialer), &phases, sampler).await?;
            let max = out.published as f64 / out.sample.seconds.max(1e-9);
            if out.published == 0 || out.stalled {
                bail!("the closed-loop probe published {} messages (stalled: {})", out.published, out.stalled);
            }
            (max * LOAD_FRACTION, Some(max))
        }
    };
    let load_start = report::load_average();
    let every = Duration::from_secs_f64(a.sample_every);
    let phases = Phases::new(name, warmup, Duration::from_secs_f64(a.common.duration));
    let mut out =
        pubsub::run(&plan(Load::Open { rate }, Some(every)), std::slice::from_ref(dialer), &phases, sampler).await?;
    let series = std::mem::take(&mut out.series);
    let mut row = pubsub_row(name, out);
    row.soak = Some(summarise(rate, probe_max, a.sample_every, load_start, series));
    Ok(row)
}

/// The soak's figures from its series.
fn summarise(
    rate: f64,
    probe_max: Option<f64>,
    sample_every: f64,
    load_start: Option<[f64; 3]>,
    series: Vec<SeriesPoint>,
) -> report::Soak {
    let end = series.last().map_or(0.0, |p| p.at_secs);
    let edge = EDGE.as_secs_f64().min(end / 3.0);
    let mean_rss = |keep: &dyn Fn(f64) -> bool| {
        let rss: Vec<u64> = series.iter().filter(|p| keep(p.at_secs)).filter_map(|p| p.rss_bytes).collect();
        (!rss.is_empty()).then(|| rss.iter().sum::<u64>() / rss.len() as u64)
    };
    let first = mean_rss(&|at| at <= edge);
    let last = mean_rss(&|at| at >= end - edge);
    report::Soak {
        rate,
        probe_published_per_sec: probe_max,
        sample_every_secs: sample_every,
        edge_secs: edge,
        rss_first_bytes: first,
        rss_last_bytes: last,
        rss_max_bytes: series.iter().filter_map(|p| p.rss_bytes).max(),
        rss_growth: match (first, last) {
            (Some(f), Some(l)) if f > 0 => Some(l as f64 / f as f64 - 1.0),
            _ => None,
        },
        p99_max_us: series.iter().filter_map(|p| p.p99_us).max(),
        load_average_start: load_start,
        load_average_end: report::load_average(),
        series,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(at_secs: f64, rss: u64) -> SeriesPoint {
        SeriesPoint {
            at_secs,
            rss_bytes: Some(rss),
            delivered_per_sec: 1.0,
            p50_us: Some(10),
            p99_us: Some(rss / 10),
            max_us: Some(rss / 5),
        }
    }

    #[test]
    fn the_first_and_last_minute_are_averaged() {
        // 10 minutes sampled every 5 s: RSS 100 for the first minute, 120 for the last, 200 once between.
        let series: Vec<SeriesPoint> = (1..=120)
            .map(|i| {
                let at = f64::from(i) * 5.0;
                point(
                    at,
                    if at <= 60.0 {
                        100
                    } else if at >= 540.0 {
                        120
                    } else if i == 60 {
                        200
                    } else {
                        110
                    },
                )
            })
            .collect();
        let s = summarise(900.0, Some(1800.0), 5.0, None, series);
        assert_eq!(s.edge_secs, 60.0);
        assert_eq!((s.rss_first_bytes, s.rss_last_bytes, s.rss_max_bytes), (Some(100), Some(120), Some(200)));
        assert!((s.rss_growth.unwrap() - 0.2).abs() < 1e-9);
        assert_eq!(s.p99_max_us, Some(20));
    }

    #[test]
    fn a_short_run_averages_its_thirds() {
        let series: Vec<SeriesPoint> = (1..=6).map(|i| point(f64::from(i) * 0.5, 100 * i as u64)).collect();
        let s = summarise(10.0, None, 0.5, None, series);
        assert_eq!(s.edge_secs, 1.0);
        assert_eq!((s.rss_first_bytes, s.rss_last_bytes), (Some(150), Some(500)));
    }
}
