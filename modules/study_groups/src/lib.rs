//! Study-group sessions for chorus (seed 002): a facilitator runs a session of rounds
//! (`PENDING → VOTING → DISCUSSING → REVOTING → EXPLAINING → DONE`); members vote, revote, the scribe
//! writes a shared card, everyone chats; every change is an event on the session's topic
//! `study/session/{id}`, shaped `{ "event": E, "data": D }` with the seed's names and fields, so native
//! WebSocket/QUIC subscribers and the seed's `socket.io-client` apps (namespace `/study-groups`, through
//! the broker's Socket.IO gateway) get the same events. Presence is per user: a user's first connection
//! emits `userJoined`, their last leaving (or disconnecting) `userLeft`.
//!
//! Everything is persisted through the store (sessions by compare-and-set, activity by insert-if-absent,
//! chat and the event log as time-ordered rows), so a restart loses nothing and a reconnecting client
//! rebuilds its state from the subscribe snapshot (`session.state`) or the REST reads. The crate's
//! README documents the APIs, the rules and the storage layout.
//!
//! Layout:
//! - `service`: the domain operations ([`module`] wires them to the broker);
//! - `rounds`: the rounds state machine; `envelope`: the topic's events; presence is the broker's roster
//!   (per user, cluster-wide), one book per session topic;
//! - `model`: stored records and JSON views; `tables`: the storage layout; `ids`: ids and cursors;
//! - `requests`: reading and checking input; `error`: `StudyError` and how it reaches clients;
//! - `rest`, `calls`, `socketio`, `demo`: the adapters — REST, native calls, the seed's Socket.IO
//!   namespace, the demo page `/demo/study-groups`.
#![warn(missing_docs)]

mod calls;
mod demo;
mod envelope;
mod error;
mod ids;
mod model;
mod requests;
mod rest;
mod rounds;
mod service;
mod socketio;
mod tables;

use async_trait::async_trait;
use chorus_core::module::{Caller, Context, Module, ModuleError, ModuleInfo};
use chorus_core::protocol::{ErrorCode, Payload};
use chorus_core::roster::{Departure, Member};
use serde_json::json;
use service::Study;
use std::sync::{Arc, OnceLock};

pub use envelope::{
    CHAT_MESSAGE, PROMPT_UPDATED, ROUND_ADVANCED, SESSION_ENDED, SESSION_STARTED, SESSION_STATE, USER_JOINED,
    USER_LEFT, topic,
};
pub use socketio::{JOIN_SESSION, LEAVE_SESSION, NAMESPACE, socketio};

/// The module's name: calls are `study.<method>`.
pub const NAME: &str = "study";
/// The prefix of the module's topics; a session's topic is `study/session/{id}`.
pub const TOPIC_PREFIX: &str = "study/session/";

/// The study-groups module, ready to hand to `chorus_core::server::start`.
pub fn module() -> Arc<dyn Module> {
    Arc::new(StudyGroups::default())
}

/// The module: the broker-facing side of [`Study`].
#[derive(Default)]
struct StudyGroups {
    study: OnceLock<Arc<Study>>,
}

impl StudyGroups {
    fn init(&self) -> &Arc<Study> {
        self.study.get_or_init(Arc::default)
    }
}

/// Publishes `userLeft` for each of `users` in session `id`.
fn announce_departures(ctx: &Context, id: &str, users: &[Member]) {
    for user in users {
        let data = json!({ "userId": user.user, "userName": user.name, "sessionId": id });
        if let Err(e) = envelope::publish(ctx, id, USER_LEFT, data) {
            tracing::warn!(session = %id, error = %e, "userLeft not published");
        }
    }
}

/// The session id of a topic of ours.
fn topic_session(topic: &str) -> Result<String, ModuleError> {
    let id = topic.strip_prefix(TOPIC_PREFIX).unwrap_or(topic);
    Ok(requests::id_text("sessionId", id)?)
}

#[async_trait]
impl Module for StudyGroups {
    fn name(&self) -> &'static str {
        NAME
    }

    fn topic_prefixes(&self) -> Vec<String> {
        vec![TOPIC_PREFIX.to_owned()]
    }

    async fn authorize(&self, ctx: &Context, caller: &Caller, topic: &str) -> Result<(), ModuleError> {
        service::require_user(&caller.identity)?;
        self.init().session(ctx, &topic_session(topic)?).await?;
        Ok(())
    }

    /// Joining: the caller becomes present (announcing `userJoined` on a user's first connection in the
    /// cluster) and gets the session's state as a `session.state` envelope.
    async fn snapshot(&self, ctx: &Context, caller: &Caller, topic: &str) -> Result<Option<Payload>, ModuleError> {
        let study = self.init();
        let id = topic_session(topic)?;
        let who = &caller.identity;
        let name = service::display_name(who);
        let joined = ctx.roster().join(topic, &who.sub, &name, caller.conn_id).await;
        announce_departures(ctx, &id, &joined.departed);
        let view = match study.view(ctx, who, &id).await {
            Ok(view) => view,
            Err(e) => {
                if let Some(left) = ctx.roster().leave(topic, &who.sub, caller.conn_id).await {
                    announce_departures(ctx, &id, &left.departed);
                }
                return Err(e.into());
            }
        };
        if joined.changed {
            let data = json!({ "userId": who.sub, "userName": name, "sessionId": id });
            envelope::publish(ctx, &id, USER_JOINED, data)?;
        }
        let state = envelope::envelope(SESSION_STATE, json!(view), ctx.clock().now_ms());
        Payload::from_value(&state).map(Some).map_err(|e| ModuleError::new(ErrorCode::Internal, e.to_string()))
    }

    /// Leaving (unsubscribe, `leaveSession`, or a disconnect): `userLeft` when it was the user's last
    /// connection in the session, on any node.
    async fn on_unsubscribe(&self, ctx: &Context, caller: &Caller, topic: &str) {
        let Ok(id) = topic_session(topic) else { return };
        let who = &caller.identity;
        let Some(left) = ctx.roster().leave(topic, &who.sub, caller.conn_id).await else { return };
        if left.changed {
            announce_departures(ctx, &id, &[Member { user: who.sub.clone(), name: left.name }]);
        }
        announce_departures(ctx, &id, &left.departed);
    }

    /// Users whose node died: `userLeft` for each, as if they had left.
    async fn on_departed(&self, ctx: &Context, departure: Departure) {
        if let Ok(id) = topic_session(&departure.book) {
            announce_departures(ctx, &id, &departure.users);
        }
    }

    async fn on_call(
        &self,
        ctx: &Context,
        caller: &Caller,
        method: &str,
        args: Payload,
    ) -> Result<Payload, ModuleError> {
        calls::dispatch(self.init(), ctx, &caller.identity, method, args).await
    }

    fn routes(&self, ctx: &Context) -> Option<axum::Router> {
        Some(rest::routes(ctx, self.init().clone()).merge(demo::routes()))
    }

    fn info(&self) -> Option<ModuleInfo> {
        Some(ModuleInfo {
            title: "Study groups (seed 002)",
            readme: "modules/study_groups/README.md",
            demo: Some(demo::PATH),
        })
    }
}
