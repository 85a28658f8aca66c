//! Live commerce for chorus (seed 003), realtime half: viewers, reactions, chat, product showcase, click
//! tracking and the stream lifecycle of live-shopping sessions, on one topic per session,
//! `commerce/session/{id}` — with the REST routes those need (products, sessions, status, stream,
//! showcase, reaction and conversion figures).
//!
//! Every event on a session topic is an envelope `{ "event", "data" }` named as in the seed's WebSocket
//! table, so native clients (WebSocket/QUIC) and the seed's Socket.IO clients (through the broker's
//! gateway, which emits `data` under `event`) see the same events. Joining a session is subscribing to
//! its topic; the seed's client → server events are calls `commerce.<event>`.
//!
//! The hot path, a reaction, is a token-bucket check, a striped-counter add and two publishes encoded once
//! for every subscriber — no store write. Counted reactions and clicks are flushed to the store
//! periodically, when a session's last subscriber leaves, at stream end and at shutdown.
//!
//! Layout:
//! - `service`: [`Commerce`](service::Commerce), the state; its operations, one file per concept:
//!   `products`, `sessions`, `stream` (status, start, end), `showcase`, `viewers`, `engagement`
//!   (reactions, clicks), `chat`;
//! - `live`: a session's in-memory state, its loading, flushing and dropping; `reactions`, `clicks`:
//!   the counters; `ticker`: the 4-second click broadcast; `rate`: per-connection rate limits;
//! - `access`: who may do what; `requests`: reading input; `model`: records and views; `tables`: the
//!   storage layout; `events`: the topic and event names; `ids`: ids (timestamps: `chorus_core::dialect::iso8601`);
//! - `rest`, `calls`, `socketio`, `envelope`, `error`: the adapters and their answers; `demo`: the demo
//!   page `/demo/live`; `settings`: the limits;
//! - `accounts` (users, passwords, tokens) and `account_rest`; `agora` (RTC token builder) and
//!   `agora_rest`.
#![warn(missing_docs)]

mod access;
mod account_rest;
mod accounts;
mod agora;
mod agora_rest;
mod analytics;
mod calls;
mod chat;
mod clicks;
mod demo;
mod engagement;
mod envelope;
mod error;
mod events;
mod ids;
mod live;
mod model;
mod products;
mod rate;
mod reaction_feed;
mod reactions;
mod requests;
mod rest;
mod search;
mod service;
mod session_products;
mod sessions;
mod settings;
mod showcase;
mod socketio;
mod stream;
mod tables;
mod ticker;
mod viewers;

pub use agora::AgoraCredentials;
pub use events::{
    MESSAGE_DELETED, NEW_MESSAGE, NEW_REACTION, PRODUCT_CLICK_STATS, PRODUCT_SHOWCASED, REACTION_STATS,
    SHOWCASE_CLEARED, STREAM_ENDED, STREAM_STARTED, TOPIC_PREFIX, TRENDING_PRODUCTS, VIEWER_COUNT, topic,
};
pub use settings::Settings;
pub use socketio::socketio;
pub use ticker::CLICK_BROADCAST;

use async_trait::async_trait;
use chorus_core::module::{Caller, Context, Module, ModuleError, ModuleInfo};
use chorus_core::protocol::{ErrorCode, Payload};
use chorus_core::roster::{Change, Departure};
use events::Envelope;
use service::Commerce;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// The module's name: calls are `commerce.send-reaction`, `commerce.send-message`, ...
pub const NAME: &str = "commerce";

/// How often counted reactions and clicks of every session in memory are written to the store. A crash
/// loses at most this much counting (a graceful stop loses none: it flushes).
pub const FLUSH_INTERVAL: Duration = Duration::from_secs(5);

/// The module with default settings, ready to hand to `chorus_core::server::start`.
pub fn module() -> Arc<dyn Module> {
    module_with(Settings::default())
}

/// The module with `settings`.
pub fn module_with(settings: Settings) -> Arc<dyn Module> {
    Arc::new(LiveCommerce { settings, commerce: OnceLock::new() })
}

/// The module: the broker-facing side of [`Commerce`].
struct LiveCommerce {
    settings: Settings,
    commerce: OnceLock<Arc<Commerce>>,
}

impl LiveCommerce {
    fn init(&self) -> &Arc<Commerce> {
        self.commerce.get_or_init(|| Arc::new(Commerce::new(self.settings.clone())))
    }
}

/// The session id of a topic of ours.
fn topic_session(topic: &str) -> &str {
    topic.strip_prefix(TOPIC_PREFIX).unwrap_or(topic)
}

#[async_trait]
impl Module for LiveCommerce {
    fn name(&self) -> &'static str {
        NAME
    }

    fn topic_prefixes(&self) -> Vec<String> {
        vec![TOPIC_PREFIX.to_owned()]
    }

    async fn start(&self, ctx: &Context) -> anyhow::Result<()> {
        let commerce = self.init().clone();
        let (ctx, shutdown) = (ctx.clone(), ctx.shutdown());
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(FLUSH_INTERVAL);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tick.tick() => commerce.flush_all(&ctx).await,
                }
            }
        });
        Ok(())
    }

    async fn authorize(&self, ctx: &Context, _caller: &Caller, topic: &str) -> Result<(), ModuleError> {
        self.init().live(ctx, topic_session(topic)).await?;
        Ok(())
    }

    async fn snapshot(&self, ctx: &Context, caller: &Caller, topic: &str) -> Result<Option<Payload>, ModuleError> {
        let commerce = self.init();
        let live = commerce.live(ctx, topic_session(topic)).await?;
        let count = commerce.join(ctx, caller, &live).await?;
        Payload::from_value(&Envelope { event: VIEWER_COUNT, data: count })
            .map(Some)
            .map_err(|e| ModuleError::new(ErrorCode::Internal, e.to_string()))
    }

    async fn on_call(
        &self,
        ctx: &Context,
        caller: &Caller,
        method: &str,
        args: Payload,
    ) -> Result<Payload, ModuleError> {
        calls::dispatch(self.init(), ctx, caller, method, args).await
    }

    async fn on_cast(&self, ctx: &Context, caller: &Caller, method: &str, args: Payload) -> Result<(), ModuleError> {
        calls::cast(self.init(), ctx, caller, method, args).await
    }

    /// Viewers of a node that died leave the count.
    async fn on_departed(&self, ctx: &Context, departure: Departure) {
        let commerce = self.init();
        let Some(live) = commerce.live.get(topic_session(&departure.book)) else { return };
        let change = Change {
            changed: false,
            name: String::new(),
            present: departure.present,
            version: departure.version,
            departed: departure.users,
        };
        commerce.count_changed(ctx, &live, &change);
    }

    async fn on_unsubscribe(&self, ctx: &Context, caller: &Caller, topic: &str) {
        let commerce = self.init();
        let Some(live) = commerce.live.get(topic_session(topic)) else { return };
        commerce.leave(ctx, caller, &live).await;
        if ctx.subscriber_count(topic) == 0 {
            commerce.idle(ctx, &live).await;
        }
    }

    async fn on_disconnect(&self, ctx: &Context, caller: &Caller) {
        let commerce = self.init();
        let sent = commerce.limits.forget(caller.conn_id);
        // At shutdown every connection's close runs here before the store is closed: flushing now is what
        // makes a graceful stop lose no counted reaction. A connection that sent reactions or clicks
        // without being subscribed leaves no subscriber to flush on leaving, so it flushes on closing.
        if ctx.shutdown().is_cancelled() || sent {
            commerce.flush_all(ctx).await;
        }
    }

    fn routes(&self, ctx: &Context) -> Option<axum::Router> {
        Some(rest::routes(ctx, self.init().clone()).merge(demo::routes()))
    }

    fn info(&self) -> Option<ModuleInfo> {
        Some(ModuleInfo {
            title: "Live commerce (seed 003)",
            readme: "modules/live_commerce/README.md",
            demo: Some(demo::PATH),
        })
    }
}
