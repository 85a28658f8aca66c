//! The click-statistics broadcast: while a session is live, every [`CLICK_BROADCAST`] its
//! `product-click-stats` and `trending-products` are published — only if a click (or the viewer count)
//! changed them since the last broadcast. The timer starts with the session's first click, runs on
//! tokio's clock (paused in tests), and stops when the session pauses or ends, when its last subscriber
//! on this node leaves (or at its next tick when it finds none), and at shutdown: no timer outlives what
//! it reports on.

use crate::clicks::trending;
use crate::events::{self, PRODUCT_CLICK_STATS, TRENDING_PRODUCTS};
use crate::live::Live;
use chorus_core::dialect::iso8601;
use chorus_core::module::Context;
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::{Instant, MissedTickBehavior, interval_at};

/// The seed's broadcast period for click statistics.
pub const CLICK_BROADCAST: Duration = Duration::from_secs(4);

/// Starts the session's click broadcast unless it runs.
pub fn ensure(ctx: &Context, live: &Arc<Live>) {
    let token = {
        let mut ticker = live.ticker.lock();
        if ticker.is_some() {
            return;
        }
        let token = ctx.shutdown().child_token();
        *ticker = Some(token.clone());
        token
    };
    let (ctx, live) = (ctx.clone(), live.clone());
    tokio::spawn(async move {
        let mut tick = interval_at(Instant::now() + CLICK_BROADCAST, CLICK_BROADCAST);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = token.cancelled() => return,
                _ = tick.tick() => {
                    // Clicks may come from connections that never joined: with nobody left to tell, the
                    // timer ends (the next click starts another).
                    if ctx.subscriber_count(&events::topic(&live.id)) == 0 {
                        if !token.is_cancelled() {
                            live.stop_ticker();
                        }
                        return;
                    }
                    // Viewers joining other nodes move the count without passing here.
                    let present = ctx.roster().present(&events::topic(&live.id)).await as u64;
                    if live.audience.swap(present, std::sync::atomic::Ordering::AcqRel) != present {
                        live.clicks.touch();
                    }
                    if live.clicks.take_changed() {
                        broadcast(&ctx, &live);
                    }
                }
            }
        }
    });
}

/// Publishes the session's click statistics and trending products now.
pub fn broadcast(ctx: &Context, live: &Live) {
    let viewers = live.viewer_count();
    let stats = live.clicks.stats(&live.product_order(), viewers);
    let timestamp = iso8601(ctx.clock().now_ms());
    let top = trending(&stats);
    events::publish(
        ctx,
        &live.id,
        PRODUCT_CLICK_STATS,
        json!({ "sessionId": live.id, "productStats": stats, "totalViewers": viewers, "timestamp": timestamp }),
    );
    events::publish(
        ctx,
        &live.id,
        TRENDING_PRODUCTS,
        json!({ "sessionId": live.id, "products": top, "timestamp": timestamp }),
    );
}
