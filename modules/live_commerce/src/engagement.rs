//! What viewers send while they watch: reactions (`send-reaction`) and product clicks
//! (`track-product-click`). Both are rate-limited per connection, counted on striped broker counters and
//! accepted only while the session is live. A reaction publishes `new-reaction` and `reaction-stats`,
//! paced per session (`reaction_feed`); clicks are reported by the session's 4-second broadcast (`ticker`).

use crate::access::viewer_key;
use crate::clicks::{ProductStat, check_clickable};
use crate::error::CommerceError;
use crate::events::{self, NEW_REACTION, REACTION_STATS};
use crate::live::Live;
use crate::model::{ClickStatsRecord, ReactionTotals, Status};
use crate::rate::Spend;
use crate::reaction_feed::{Held, StatsDue};
use crate::reactions::Stored;
use crate::service::Commerce;
use crate::tables::{self, CLICK_STATS};
use crate::ticker;
use chorus_core::dialect::iso8601;
use chorus_core::module::{Caller, Context};
use serde_json::json;
use std::sync::Arc;
use tokio::time::{Instant, sleep_until};

impl Commerce {
    /// Counts a reaction of `kind` in the session and publishes it; returns the session, whose
    /// `reactions.stats()` are the totals the reaction made (for a caller that wants them).
    pub async fn react(
        &self,
        ctx: &Context,
        caller: &Caller,
        session_id: &str,
        kind: &str,
    ) -> Result<Arc<Live>, CommerceError> {
        let now = Instant::now();
        self.limits.spend_at(caller.conn_id, Spend::Interaction, now)?;
        let live = self.live(ctx, session_id).await?;
        {
            // Counted under the record's read lock: ending the stream takes the write lock before its final
            // flush, so no reaction lands in a counter after it.
            let record = live.record.read();
            if record.status != Status::Live {
                return Err(CommerceError::Invalid("Reactions are accepted only while the session is live".into()));
            }
            live.reactions.add(ctx, kind)?;
        }
        let tell = live.feed.reacted(now, || Held { kind: kind.to_owned(), at_ms: ctx.clock().now_ms() });
        if tell.animate_now {
            publish_animation(ctx, session_id, kind, ctx.clock().now_ms());
        }
        match tell.stats {
            StatsDue::Now => events::publish(ctx, session_id, REACTION_STATS, live.reactions.stats()),
            StatsDue::At(when) => {
                let (ctx, live, shutdown) = (ctx.clone(), live.clone(), ctx.shutdown());
                tokio::spawn(async move {
                    tokio::select! {
                        _ = shutdown.cancelled() => {}
                        _ = sleep_until(when) => {
                            for held in live.feed.sent_later(Instant::now()) {
                                publish_animation(&ctx, &live.id, &held.kind, held.at_ms);
                            }
                            events::publish(&ctx, &live.id, REACTION_STATS, live.reactions.stats());
                        }
                    }
                });
            }
            StatsDue::Scheduled => {}
        }
        Ok(live)
    }

    /// Counts a click of the caller on a product of the session.
    pub async fn click(
        &self,
        ctx: &Context,
        caller: &Caller,
        session_id: &str,
        product_id: &str,
    ) -> Result<(), CommerceError> {
        self.limits.spend(caller.conn_id, Spend::Interaction)?;
        let live = self.live(ctx, session_id).await?;
        let record = live.record.read();
        check_clickable(record.status == Status::Live, record.has_product(product_id))?;
        live.clicks.click(ctx, product_id, viewer_key(&caller.identity));
        ticker::ensure(ctx, &live);
        Ok(())
    }
}

/// Publishes the `new-reaction` of a reaction of `kind` counted at `at_ms`.
fn publish_animation(ctx: &Context, session_id: &str, kind: &str, at_ms: u64) {
    events::publish(ctx, session_id, NEW_REACTION, json!({ "type": kind, "timestamp": iso8601(at_ms) }));
}

/// Reaction totals of a session for `GET /api/sessions/:id/reactions`: live counts while this node
/// serves it, else the stored totals.
pub struct ReactionReport {
    /// The session's status.
    pub status: Status,
    /// Totals by type.
    pub counts: ReactionTotals,
    /// Their sum.
    pub total: u64,
}

/// Click statistics of a session for `GET /api/sessions/:id/conversion-stats`.
pub enum ConversionReport {
    /// While this node serves it live: the in-memory figures.
    Live { viewers: u64, stats: Vec<ProductStat> },
    /// Otherwise: what was persisted, with each product's name.
    Stored { status: Status, viewers: u64, stats: Vec<(ClickStatsRecord, Option<String>)> },
}

impl Commerce {
    /// The session's reaction totals.
    pub async fn reaction_report(&self, ctx: &Context, id: &str) -> Result<ReactionReport, CommerceError> {
        if let Some(live) = self.live.get(id) {
            let (counts, total) = live.reactions.counts();
            return Ok(ReactionReport { status: live.status(), counts, total });
        }
        let session = self.session(ctx, id).await?;
        let own_ck = tables::reactions_ck(ctx.node_id());
        let counts = Stored::read(ctx.store().as_ref(), id, &own_ck).await?.sum();
        let total = counts.values().sum();
        Ok(ReactionReport { status: session.status, counts, total })
    }

    /// The session's product click statistics.
    pub async fn conversion_report(&self, ctx: &Context, id: &str) -> Result<ConversionReport, CommerceError> {
        if let Some(live) = self.live.get(id)
            && live.status() == Status::Live
        {
            let viewers = live.viewer_count();
            return Ok(ConversionReport::Live { viewers, stats: live.clicks.stats(&live.product_order(), viewers) });
        }
        let session = self.session(ctx, id).await?;
        let stored: Vec<ClickStatsRecord> =
            tables::load_all(ctx.store().as_ref(), CLICK_STATS, id, "click stats").await?;
        let order: Vec<&str> = session.products.iter().map(|p| p.product_id.as_str()).collect();
        let mut stats = Vec::with_capacity(stored.len());
        for stat in stored {
            let name = match self.product(ctx, &stat.product_id).await {
                Ok(p) => Some(p.name),
                Err(CommerceError::NotFound(_)) => None,
                Err(e) => return Err(e),
            };
            stats.push((stat, name));
        }
        stats.sort_by_key(|(s, _)| order.iter().position(|o| *o == s.product_id).unwrap_or(usize::MAX));
        let viewers = stats.iter().map(|(s, _)| s.total_viewers).max().unwrap_or(0);
        Ok(ConversionReport::Stored { status: session.status, viewers, stats })
    }
}
