//! PNG charts of a report: the headline metric per target (bars) and the latency CDF (one line per
//! target, log-scale latency). `cluster` gets two bar charts (throughput rows: deliveries/s; latency
//! rows: p99) and the CDF of its latency rows; `soak` one chart of RSS and p99 over time. Text is drawn with DejaVu Sans (Debian `fonts-dejavu-core`), loaded at
//! run time so the binary carries no font.

use crate::report::{Phase, Report, Row, Scenario, SeriesPoint, bytes, micros, si};
use anyhow::{Context as _, anyhow, bail};
use plotters::coord::ranged1d::SegmentValue;
use plotters::prelude::*;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// Where the chart font is looked for.
const FONT_PATHS: [&str; 2] =
    ["/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf", "/usr/share/fonts/dejavu/DejaVuSans.ttf"];

/// Chart size in pixels.
const SIZE: (u32, u32) = (1000, 560);

/// Registers the font once for plotters' `sans-serif` family.
fn font() -> anyhow::Result<()> {
    static LOADED: OnceLock<Result<(), String>> = OnceLock::new();
    LOADED
        .get_or_init(|| {
            let path = FONT_PATHS.iter().find(|p| Path::new(p).exists()).ok_or_else(|| {
                "no DejaVuSans.ttf found: install Debian's fonts-dejavu-core (or pass --no-charts)".to_owned()
            })?;
            let data = std::fs::read(path).map_err(|e| format!("{path}: {e}"))?;
            // plotters keeps fonts for the life of the process.
            let data: &'static [u8] = Box::leak(data.into_boxed_slice());
            plotters::style::register_font("sans-serif", FontStyle::Normal, data)
                .map_err(|_| format!("{path}: not a font"))
        })
        .clone()
        .map_err(|e| anyhow!(e))
}

/// Draws the report's charts into `dir`; returns the files written.
pub fn render(report: &Report, dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    font()?;
    let mut written = Vec::new();
    let name = report.scenario.name();
    let scenario = report.scenario;
    let in_phase = |phase: Phase| move |r: &Row| r.phase() == Some(phase);
    let mut draw = |file: String, drawn: anyhow::Result<bool>| -> anyhow::Result<()> {
        if drawn? {
            written.push(dir.join(file));
        }
        Ok(())
    };
    if scenario == Scenario::Soak {
        let file = format!("{name}.png");
        draw(file.clone(), soak_chart(report, &dir.join(&file)))?;
        return Ok(written);
    }
    if scenario == Scenario::Cluster {
        let bars = |phase: Phase| -> Vec<(&str, f64)> {
            report
                .rows
                .iter()
                .filter(|r| in_phase(phase)(r))
                .filter_map(|r| r.primary(scenario).map(|v| (r.target.as_str(), v)))
                .collect()
        };
        let file = format!("{name}-throughput.png");
        let caption = format!("{name}: deliveries/s (higher is better), all servers on one core");
        draw(file.clone(), bar_chart(&dir.join(&file), &caption, "deliveries/s", &bars(Phase::Throughput), si))?;
        let file = format!("{name}-p99.png");
        let caption = format!("{name}: p99 latency at a fixed rate (lower is better), all servers on one core");
        draw(file.clone(), bar_chart(&dir.join(&file), &caption, "p99 latency (µs)", &bars(Phase::Latency), micros))?;
        let file = format!("{name}-cdf.png");
        draw(file.clone(), cdf_chart(report, &dir.join(&file), &in_phase(Phase::Latency)))?;
        return Ok(written);
    }
    let rows: Vec<(&str, f64)> =
        report.rows.iter().filter_map(|r| r.primary(scenario).map(|v| (r.target.as_str(), v))).collect();
    let (metric, higher_better) = scenario.primary();
    let caption = format!(
        "{name}: {metric} per target ({} is better), one core each",
        if higher_better { "higher" } else { "lower" }
    );
    let file = format!("{name}-{}.png", if scenario == Scenario::Latency { "p99" } else { "throughput" });
    let format = |v: f64| format_metric(scenario, v);
    draw(file.clone(), bar_chart(&dir.join(&file), &caption, metric, &rows, format))?;
    let file = format!("{name}-cdf.png");
    draw(file.clone(), cdf_chart(report, &dir.join(&file), &|_| true))?;
    Ok(written)
}

fn format_metric(scenario: Scenario, v: f64) -> String {
    match scenario {
        Scenario::Latency | Scenario::Soak => micros(v),
        Scenario::Connections => bytes(v),
        _ => si(v),
    }
}

/// One bar per row (`(name, value)`), values written above the bars with `format`.
fn bar_chart(
    path: &Path,
    caption: &str,
    metric: &str,
    rows: &[(&str, f64)],
    format: impl Fn(f64) -> String,
) -> anyhow::Result<bool> {
    if rows.is_empty() {
        return Ok(false);
    }
    let top = rows.iter().map(|r| r.1).fold(0.0, f64::max).max(1.0) * 1.18;
    let root = BitMapBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE)?;
    let n = rows.len() as i32;
    let mut chart = ChartBuilder::on(&root)
        .caption(caption, ("sans-serif", 22))
        .margin(16)
        .x_label_area_size(40)
        .y_label_area_size(90)
        .build_cartesian_2d((0..n).into_segmented(), 0f64..top)?;
    let names: Vec<&str> = rows.iter().map(|r| r.0).collect();
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(rows.len())
        .x_label_formatter(&|v| match v {
            SegmentValue::CenterOf(i) | SegmentValue::Exact(i) => {
                names.get(*i as usize).map_or(String::new(), |s| s.to_string())
            }
            SegmentValue::Last => String::new(),
        })
        .y_label_formatter(&|v| format(*v))
        .y_desc(metric)
        .label_style(("sans-serif", 15))
        .draw()?;
    chart.draw_series(rows.iter().enumerate().map(|(i, (_, v))| {
        let color = Palette99::pick(i).filled();
        let mut bar =
            Rectangle::new([(SegmentValue::Exact(i as i32), 0.0), (SegmentValue::Exact(i as i32 + 1), *v)], color);
        bar.set_margin(0, 0, 18, 18);
        bar
    }))?;
    chart.draw_series(rows.iter().enumerate().map(|(i, (_, v))| {
        Text::new(format(*v), (SegmentValue::CenterOf(i as i32), *v + top * 0.02), ("sans-serif", 16))
    }))?;
    root.present().with_context(|| format!("writing {}", path.display()))?;
    Ok(true)
}

/// Two panels over the soak's time: server RSS (top) and each interval's p99 (bottom), a line per row.
/// The series' legend, in the lower right corner.
fn legend<'a, CT: plotters::coord::CoordTranslate>(
    chart: &mut ChartContext<'a, BitMapBackend<'a>, CT>,
) -> anyhow::Result<()> {
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .label_font(("sans-serif", 15))
        .draw()?;
    Ok(())
}

fn soak_chart(report: &Report, path: &Path) -> anyhow::Result<bool> {
    let rows: Vec<(&str, &[SeriesPoint])> =
        report.rows.iter().filter_map(|r| r.soak.as_ref().map(|s| (r.target.as_str(), s.series.as_slice()))).collect();
    let points = || rows.iter().flat_map(|r| r.1.iter());
    if points().next().is_none() {
        return Ok(false);
    }
    let end = points().map(|p| p.at_secs).fold(0.0, f64::max).max(1.0);
    let mib = |b: u64| b as f64 / f64::from(1u32 << 20);
    let rss_top = points().filter_map(|p| p.rss_bytes).map(mib).fold(0.0, f64::max).max(1.0) * 1.15;
    let p99_top = points().filter_map(|p| p.p99_us).map(|v| v as f64 / 1e3).fold(0.0, f64::max).max(0.001) * 1.15;
    let root = BitMapBackend::new(path, (SIZE.0, SIZE.1 * 3 / 2)).into_drawing_area();
    root.fill(&WHITE)?;
    let root =
        root.titled(&format!("{}: server RSS and p99 latency over time", report.scenario.name()), ("sans-serif", 22))?;
    let panels = root.split_evenly((2, 1));
    let panel = |area: &DrawingArea<BitMapBackend, plotters::coord::Shift>,
                 y_desc: &str,
                 top: f64,
                 value: &dyn Fn(&SeriesPoint) -> Option<f64>|
     -> anyhow::Result<()> {
        let mut chart = ChartBuilder::on(area)
            .margin(16)
            .x_label_area_size(40)
            .y_label_area_size(80)
            .build_cartesian_2d(0f64..end, 0f64..top)?;
        chart.configure_mesh().x_desc("seconds").y_desc(y_desc).label_style(("sans-serif", 15)).draw()?;
        for (i, (name, series)) in rows.iter().enumerate() {
            let color = Palette99::pick(i);
            chart
                .draw_series(LineSeries::new(
                    series.iter().filter_map(|p| value(p).map(|v| (p.at_secs, v))),
                    color.stroke_width(2),
                ))?
                .label(*name)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 24, y)], color.stroke_width(3)));
        }
        legend(&mut chart)
    };
    panel(&panels[0], "server RSS (MiB)", rss_top, &|p| p.rss_bytes.map(mib))?;
    panel(&panels[1], "p99 latency per interval (ms)", p99_top, &|p| p.p99_us.map(|v| v as f64 / 1e3))?;
    root.present().with_context(|| format!("writing {}", path.display()))?;
    Ok(true)
}

/// The latency CDF of the report's rows that `keep` selects, one line each.
fn cdf_chart(report: &Report, path: &Path, keep: &dyn Fn(&Row) -> bool) -> anyhow::Result<bool> {
    let rows: Vec<(&str, &[[f64; 2]])> = report
        .rows
        .iter()
        .filter(|r| r.status.starts_with("ok") && keep(r))
        .filter_map(|r| r.latency.as_ref().map(|l| (r.target.as_str(), l.cdf.as_slice())))
        .filter(|(_, cdf)| !cdf.is_empty())
        .collect();
    if rows.is_empty() {
        return Ok(false);
    }
    let lo = rows.iter().flat_map(|r| r.1.iter().map(|p| p[0])).fold(f64::MAX, f64::min).max(1.0);
    let hi = rows.iter().flat_map(|r| r.1.iter().map(|p| p[0])).fold(0.0, f64::max).max(lo * 10.0);
    if !(lo.is_finite() && hi.is_finite()) {
        bail!("latency values out of range");
    }
    let what = match report.scenario {
        Scenario::Connections => "handshake latency",
        Scenario::Calls => "call latency",
        Scenario::Reactions => "reaction → reaction-stats latency",
        _ => "publish→deliver latency",
    };
    let root = BitMapBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(format!("{}: {what} CDF", report.scenario.name()), ("sans-serif", 22))
        .margin(16)
        .x_label_area_size(45)
        .y_label_area_size(60)
        .build_cartesian_2d((lo / 1.2..hi * 1.2).log_scale(), 0f64..100f64)?;
    chart
        .configure_mesh()
        .x_desc("latency (log scale)")
        .y_desc("% of samples at or below")
        .x_label_formatter(&|v| micros(*v))
        .label_style(("sans-serif", 15))
        .draw()?;
    for (i, (name, cdf)) in rows.iter().enumerate() {
        let color = Palette99::pick(i);
        chart
            .draw_series(LineSeries::new(cdf.iter().map(|p| (p[0].max(lo), p[1])), color.stroke_width(2)))?
            .label(*name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 24, y)], color.stroke_width(3)));
    }
    legend(&mut chart)?;
    root.present().with_context(|| format!("writing {}", path.display()))?;
    Ok(true)
}
