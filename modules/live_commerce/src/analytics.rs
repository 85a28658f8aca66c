//! Session and creator analytics (the seed's "Session Analytics Routes" and "Global Analytics"),
//! computed from the stored view records, reaction totals and click statistics.
//!
//! Definitions (the seed's "Analytics Metrics Explained", made exact):
//! - Only subscriber views count; the creator's own (publisher) views are listed apart.
//! - A view's watch time is its stored `watchDuration`, or for a view still open the whole seconds since
//!   it began.
//! - `unique`: distinct signed-in users among the views; `total`: the views (guests included);
//!   `peak`: the most views open at one instant (a leave and a join at the same millisecond do not
//!   overlap); `avgWatchTime`: the mean watch time, rounded, of views of at least [`SHORT_VIEW_SECS`].
//! - `viewerTimeline`: per UTC hour with activity, the joins and leaves in it.
//! - `retention`: watch times in the seed's ranges (lower bound included), and the nearest-rank
//!   percentiles (the smallest watch time with at least p % of the views at or below it).

use crate::engagement::ConversionReport;
use crate::error::CommerceError;
use crate::model::{ReactionTotals, Role, SessionRecord, Status, ViewRecord};
use crate::service::Commerce;
use crate::tables::{self, CLICKERS, VIEWS};
use chorus_core::dialect::iso8601;
use chorus_core::module::Context;
use chorus_core::store::{MAX_SCAN_LIMIT, Scan};
use std::collections::{BTreeMap, HashSet};

/// Views shorter than this are left out of the average watch time (the seed's "excludes <10s views").
pub const SHORT_VIEW_SECS: u64 = 10;

/// The seed's retention ranges: label and lower bound in seconds (each up to the next one's bound).
pub const RETENTION_RANGES: [(&str, u64); 6] =
    [("0-30s", 0), ("30s-1m", 30), ("1m-5m", 60), ("5m-15m", 300), ("15m-30m", 900), ("30m+", 1800)];

const HOUR_MS: u64 = 3_600_000;

/// The viewer figures of a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ViewerStats {
    /// Distinct signed-in viewers.
    pub unique: usize,
    /// Views, guests included.
    pub total: usize,
    /// Most views open at once.
    pub peak: usize,
    /// Mean watch time of views of at least [`SHORT_VIEW_SECS`], in whole seconds (rounded).
    pub avg_watch_secs: u64,
}

/// Joins and leaves in one UTC hour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HourActivity {
    /// Start of the hour, ms since the epoch.
    pub hour_ms: u64,
    /// Views that began in it.
    pub joins: usize,
    /// Views that ended in it.
    pub leaves: usize,
}

/// How long viewers stayed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retention {
    /// Views per range of [`RETENTION_RANGES`].
    pub ranges: Vec<(&'static str, usize)>,
    /// Median watch time, seconds.
    pub median: u64,
    /// 75th percentile, seconds.
    pub p75: u64,
    /// 90th percentile, seconds.
    pub p90: u64,
}

/// A view's watch time in whole seconds: stored when it ended, else up to `now_ms`.
pub fn watch_secs(view: &ViewRecord, now_ms: u64) -> u64 {
    view.watch_secs.unwrap_or_else(|| now_ms.saturating_sub(view.joined_ms) / 1000)
}

/// The subscriber views of `views`.
pub fn subscribers(views: &[ViewRecord]) -> impl Iterator<Item = &ViewRecord> {
    views.iter().filter(|v| v.role == Role::Subscriber)
}

/// The viewer figures of `views` at `now_ms`.
pub fn viewer_stats(views: &[ViewRecord], now_ms: u64) -> ViewerStats {
    let watched: Vec<&ViewRecord> = subscribers(views).collect();
    let unique = watched.iter().filter_map(|v| v.user_id.as_deref()).collect::<HashSet<_>>().len();
    // Leaves (-1) sort before joins (+1) at the same instant.
    let mut edges: Vec<(u64, i64)> = Vec::with_capacity(watched.len() * 2);
    for view in &watched {
        edges.push((view.joined_ms, 1));
        edges.push((view.left_ms.unwrap_or(u64::MAX), -1));
    }
    edges.sort_unstable();
    let (mut open, mut peak) = (0i64, 0i64);
    for (_, delta) in edges {
        open += delta;
        peak = peak.max(open);
    }
    let long: Vec<u64> = watched.iter().map(|v| watch_secs(v, now_ms)).filter(|s| *s >= SHORT_VIEW_SECS).collect();
    let avg_watch_secs =
        if long.is_empty() { 0 } else { (long.iter().sum::<u64>() as f64 / long.len() as f64).round() as u64 };
    ViewerStats { unique, total: watched.len(), peak: usize::try_from(peak).unwrap_or(0), avg_watch_secs }
}

/// Joins and leaves per UTC hour, oldest hour first; hours without either are left out.
pub fn timeline(views: &[ViewRecord]) -> Vec<HourActivity> {
    let mut hours: BTreeMap<u64, (usize, usize)> = BTreeMap::new();
    for view in subscribers(views) {
        hours.entry(view.joined_ms / HOUR_MS * HOUR_MS).or_default().0 += 1;
        if let Some(left) = view.left_ms {
            hours.entry(left / HOUR_MS * HOUR_MS).or_default().1 += 1;
        }
    }
    hours.into_iter().map(|(hour_ms, (joins, leaves))| HourActivity { hour_ms, joins, leaves }).collect()
}

/// The nearest-rank `p`-th percentile of `sorted` (ascending); 0 when empty.
fn percentile(sorted: &[u64], p: u64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = (p as usize * sorted.len()).div_ceil(100).max(1);
    sorted[rank - 1]
}

/// How long the views of `views` lasted at `now_ms`.
pub fn retention(views: &[ViewRecord], now_ms: u64) -> Retention {
    let mut secs: Vec<u64> = subscribers(views).map(|v| watch_secs(v, now_ms)).collect();
    secs.sort_unstable();
    let ranges = RETENTION_RANGES
        .iter()
        .enumerate()
        .map(|(i, (label, low))| {
            let high = RETENTION_RANGES.get(i + 1).map_or(u64::MAX, |(_, next)| *next);
            (*label, secs.iter().filter(|s| **s >= *low && **s < high).count())
        })
        .collect();
    Retention { ranges, median: percentile(&secs, 50), p75: percentile(&secs, 75), p90: percentile(&secs, 90) }
}

/// `420` → `7m 0s`; `3725` → `1h 2m 5s`.
pub fn format_secs(secs: u64) -> String {
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    if h > 0 { format!("{h}h {m}m {s}s") } else { format!("{m}m {s}s") }
}

/// The start of an hour as the seed's timeline shows it: `2025-11-14T10:00:00` (UTC, no zone suffix).
pub fn hour_label(hour_ms: u64) -> String {
    let iso = iso8601(hour_ms);
    iso.get(..19).unwrap_or(&iso).to_owned()
}

/// A creator's figures over all their sessions (`GET /api/analytics/creator/:creatorId`).
#[derive(Debug, Clone, PartialEq)]
pub struct CreatorReport {
    /// Sessions by status (every status present).
    pub by_status: BTreeMap<&'static str, usize>,
    /// Distinct signed-in viewers over all sessions.
    pub total_unique: usize,
    /// Mean of the sessions' unique viewers, rounded.
    pub average_per_session: u64,
    /// Highest peak of any session.
    pub peak_concurrent: usize,
    /// Reactions by type over all sessions.
    pub reactions: ReactionTotals,
    /// Product clicks over all sessions.
    pub total_clicks: u64,
    /// Distinct clickers over all sessions (as of the sessions' last flush).
    pub unique_clickers: usize,
    /// Mean click-through rate of every product of every session with clicks, one decimal.
    pub average_ctr: f64,
}

impl Commerce {
    /// Session `id` (which must exist) and every view record of it, oldest first.
    pub async fn views(&self, ctx: &Context, id: &str) -> Result<(SessionRecord, Vec<ViewRecord>), CommerceError> {
        let session = self.session(ctx, id).await?;
        Ok((session, tables::load_all(ctx.store().as_ref(), VIEWS, id, "view").await?))
    }

    /// The figures of every session of `creator_id`.
    pub async fn creator_report(&self, ctx: &Context, creator_id: &str) -> Result<CreatorReport, CommerceError> {
        let sessions = self.sessions(ctx, Some(creator_id)).await?;
        let mut by_status: BTreeMap<&'static str, usize> =
            [Status::Live, Status::Ended, Status::Scheduled, Status::Paused].iter().map(|s| (s.as_str(), 0)).collect();
        let (mut viewers, mut clickers) = (HashSet::new(), HashSet::new());
        let (mut unique_sum, mut peak, mut total_clicks) = (0usize, 0usize, 0u64);
        let mut reactions = ReactionTotals::new();
        let mut rates = Vec::new();
        let now = ctx.clock().now_ms();
        for session in &sessions {
            *by_status.entry(session.status.as_str()).or_default() += 1;
            let views: Vec<ViewRecord> = tables::load_all(ctx.store().as_ref(), VIEWS, &session.id, "view").await?;
            let stats = viewer_stats(&views, now);
            unique_sum += stats.unique;
            peak = peak.max(stats.peak);
            viewers.extend(subscribers(&views).filter_map(|v| v.user_id.clone()));
            for (kind, n) in self.reaction_report(ctx, &session.id).await?.counts {
                *reactions.entry(kind).or_default() += n;
            }
            let products: Vec<(u64, f64)> = match self.conversion_report(ctx, &session.id).await? {
                ConversionReport::Live { stats, .. } => {
                    stats.iter().map(|s| (s.total_clicks, s.click_through_rate)).collect()
                }
                ConversionReport::Stored { stats, .. } => {
                    stats.iter().map(|(s, _)| (s.total_clicks, s.click_through_rate)).collect()
                }
            };
            for (clicks, rate) in products {
                total_clicks += clicks;
                rates.push(rate);
            }
            let rows = tables::scan_all(ctx.store().as_ref(), CLICKERS, &session.id, Scan::all(MAX_SCAN_LIMIT)).await?;
            for row in &rows {
                clickers.insert(tables::read_click_ck(&row.ck)?.1);
            }
        }
        let mean = |sum: f64, n: usize| if n == 0 { 0.0 } else { sum / n as f64 };
        Ok(CreatorReport {
            by_status,
            total_unique: viewers.len(),
            average_per_session: mean(unique_sum as f64, sessions.len()).round() as u64,
            peak_concurrent: peak,
            reactions,
            total_clicks,
            unique_clickers: clickers.len(),
            average_ctr: (mean(rates.iter().sum(), rates.len()) * 10.0).round() / 10.0,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: u64 = 1_763_114_400_000; // 2025-11-14T10:00:00Z

    fn view(user: Option<&str>, role: Role, joined_s: u64, left_s: Option<u64>) -> ViewRecord {
        let mut v = ViewRecord {
            id: format!("{joined_s}"),
            session_id: "s".into(),
            user_id: user.map(Into::into),
            role,
            socket_id: "1".into(),
            joined_ms: T0 + joined_s * 1000,
            left_ms: None,
            watch_secs: None,
        };
        if let Some(left) = left_s {
            v.close(T0 + left * 1000);
        }
        v
    }

    #[test]
    fn figures_of_a_scripted_history() {
        let views = vec![
            view(Some("1"), Role::Publisher, 0, None),
            view(Some("a"), Role::Subscriber, 0, Some(5)),
            view(Some("a"), Role::Subscriber, 5, Some(65)),
            view(Some("b"), Role::Subscriber, 10, Some(400)),
            view(None, Role::Subscriber, 20, Some(30)),
            view(Some("c"), Role::Subscriber, 3_590, Some(3_700)),
            view(Some("d"), Role::Subscriber, 3_650, None),
        ];
        let now = T0 + 4_000 * 1000;
        let stats = viewer_stats(&views, now);
        // Durations: 5, 60, 390, 10, 110, 350 (open). Long ones: 60 390 10 110 350 → 920 / 5 = 184.
        assert_eq!(stats, ViewerStats { unique: 4, total: 6, peak: 3, avg_watch_secs: 184 });
        assert_eq!(
            timeline(&views),
            vec![
                HourActivity { hour_ms: T0, joins: 5, leaves: 4 },
                HourActivity { hour_ms: T0 + HOUR_MS, joins: 1, leaves: 1 },
            ]
        );
        let r = retention(&views, now);
        assert_eq!(
            r.ranges,
            vec![("0-30s", 2), ("30s-1m", 0), ("1m-5m", 2), ("5m-15m", 2), ("15m-30m", 0), ("30m+", 0)]
        );
        // Sorted: 5 10 60 110 350 390 → ranks 3, 5, 6.
        assert_eq!((r.median, r.p75, r.p90), (60, 350, 390));
        assert_eq!(format_secs(420), "7m 0s");
        assert_eq!(format_secs(3_725), "1h 2m 5s");
        assert_eq!(hour_label(T0), "2025-11-14T10:00:00");
        assert_eq!(viewer_stats(&[], now), ViewerStats::default());
        assert_eq!(retention(&[], now).median, 0);
    }
}
