//! The session topic and the events published on it. Every event is an envelope
//! `{ "event": <name>, "data": <payload> }`: native clients receive it as is on `commerce/session/{id}`,
//! and the Socket.IO gateway emits `data` under the event's name, so the seed's clients see exactly the
//! events of its table.

use chorus_core::module::Context;
use serde::Serialize;

/// Prefix of the module's topics; a session's topic is `commerce/session/{id}`.
pub const TOPIC_PREFIX: &str = "commerce/session/";

/// `count: number` — the session's viewer count changed (also the subscribe snapshot).
pub const VIEWER_COUNT: &str = "viewer-count";
/// `{ type, timestamp }` — one reaction (at most 10 per session per 50 ms, see `reaction_feed`).
pub const NEW_REACTION: &str = "new-reaction";
/// `{ sessionId, counts, total }` — reaction totals, after each reaction (at most one per session per 50 ms).
pub const REACTION_STATS: &str = "reaction-stats";
/// `{ id, message, userId, userName, sessionId, createdAt }` — a chat message.
pub const NEW_MESSAGE: &str = "new-message";
/// `{ sessionId, messageId }` — a moderator deleted a chat message.
pub const MESSAGE_DELETED: &str = "message-deleted";
/// `{ sessionId, channelName, status: "live", startedAt }`.
pub const STREAM_STARTED: &str = "stream-started";
/// `{ sessionId, status: "ended", endedAt }`.
pub const STREAM_ENDED: &str = "stream-ended";
/// `{ sessionId, productId, product }`.
pub const PRODUCT_SHOWCASED: &str = "product-showcased";
/// `{ sessionId }`.
pub const SHOWCASE_CLEARED: &str = "showcase-cleared";
/// `{ sessionId, productStats, totalViewers, timestamp }` — every 4 s while live, when clicks changed.
pub const PRODUCT_CLICK_STATS: &str = "product-click-stats";
/// `{ sessionId, products, timestamp }` — the top 5 by unique clicks, with `product-click-stats`.
pub const TRENDING_PRODUCTS: &str = "trending-products";

/// A session's topic.
pub fn topic(session_id: &str) -> String {
    format!("{TOPIC_PREFIX}{session_id}")
}

/// The event envelope.
#[derive(Serialize)]
pub struct Envelope<'a, T: Serialize> {
    /// The event name.
    pub event: &'a str,
    /// Its payload.
    pub data: T,
}

/// Publishes the session's viewer count at the roster's `version`: in a cluster, a count older than one
/// another node published already is dropped, so viewers never see the count go back.
pub fn publish_viewer_count(ctx: &Context, session_id: &str, count: usize, version: u64) {
    match chorus_core::protocol::Payload::from_value(&Envelope { event: VIEWER_COUNT, data: count }) {
        Ok(payload) => {
            ctx.publish_versioned(&topic(session_id), VIEWER_COUNT, version, &payload);
        }
        Err(e) => tracing::error!(session = session_id, error = %e, "viewer count not published"),
    }
}

/// Publishes `event` with `data` on the session's topic. A payload that cannot be encoded is a bug; it
/// is logged, not sent.
pub fn publish<T: Serialize>(ctx: &Context, session_id: &str, event: &str, data: T) {
    if let Err(e) = ctx.publish_value(&topic(session_id), &Envelope { event, data }) {
        tracing::error!(session = session_id, event, error = %e, "event not published");
    }
}
