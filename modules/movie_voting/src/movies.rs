//! The [`Module`] implementation: name `movies`, topics `movies/session/{id}`, calls `movies.*`, the
//! expiry sweep and the Redis tasks.

use crate::redis::Redis;
use crate::request;
use crate::rest;
use crate::sessions::Sessions;
use anyhow::Context as _;
use async_trait::async_trait;
use bytes::Bytes;
use chorus_core::auth::Identity;
use chorus_core::module::{Caller, Context, Module, ModuleError, ModuleInfo};
use chorus_core::protocol::{ErrorCode, Payload};
use serde_json::Value;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use crate::sessions::TOPIC_PREFIX;

/// The module's name: calls are `movies.<method>`.
pub const NAME: &str = "movies";

/// How often sessions held in memory are checked for expiry, so subscribers hear `session-expired` at most
/// this long after the 24 hours are up. One pass compares two integers per live session.
pub const EXPIRY_SWEEP: Duration = Duration::from_secs(1);

/// The seed's create message.
pub(crate) const CREATED: &str = "Session created successfully";

/// The movie-voting module. Build it with [`module()`](crate::module()).
#[derive(Default)]
pub struct MovieVoting {
    sessions: OnceLock<Arc<Sessions>>,
}

impl MovieVoting {
    fn sessions(&self) -> Result<&Arc<Sessions>, ModuleError> {
        self.sessions.get().ok_or_else(|| ModuleError::new(ErrorCode::Unavailable, "movie voting is not started"))
    }
}

/// The session id of a session topic.
fn session_of_topic(topic: &str) -> &str {
    topic.strip_prefix(TOPIC_PREFIX).unwrap_or_default()
}

/// Runs a session operation for `identity` and returns the JSON answer. Shared by calls and REST.
pub(crate) async fn perform(
    ctx: &Context,
    sessions: &Sessions,
    method: &str,
    args: &Value,
    identity: &Identity,
) -> Result<Vec<u8>, ModuleError> {
    let who = identity.sub.as_str();
    match method {
        "create" => {
            let id = sessions.create(ctx).await?;
            let reply = serde_json::json!({ "sessionID": id, "message": CREATED });
            serde_json::to_vec(&reply).map_err(|e| ModuleError::new(ErrorCode::Internal, e.to_string()))
        }
        "join" => {
            let id = request::session_id(args)?;
            let name = request::name(args, identity)?;
            sessions.join(ctx, id, who, name).await?.reply(None)
        }
        "addMovie" => {
            let id = request::session_id(args)?;
            let title = request::title(args)?;
            let (snapshot, movie) = sessions.add_movie(ctx, id, who, title).await?;
            snapshot.reply(Some(movie))
        }
        "vote" | "unvote" => {
            let id = request::session_id(args)?;
            let movie = request::movie_id(args)?;
            sessions.vote(ctx, id, who, movie, method == "vote").await?.reply(None)
        }
        other => Err(ModuleError::new(ErrorCode::UnknownMethod, format!("no method {NAME}.{other}"))),
    }
}

#[async_trait]
impl Module for MovieVoting {
    fn name(&self) -> &'static str {
        NAME
    }

    fn topic_prefixes(&self) -> Vec<String> {
        vec![TOPIC_PREFIX.to_owned()]
    }

    async fn start(&self, ctx: &Context) -> anyhow::Result<()> {
        let redis = match &ctx.config().redis_url {
            Some(url) => Some(Redis::connect(url).await.context("movie voting: Redis compatibility")?),
            None => None,
        };
        let sessions = Arc::new(Sessions::new(redis.as_ref().map(|(redis, _)| redis.clone())));
        self.sessions.set(sessions.clone()).map_err(|_| anyhow::anyhow!("movie voting started twice"))?;
        let stop = ctx.shutdown();
        let (sweeper, sweep_ctx, sweep_stop) = (sessions.clone(), ctx.clone(), stop.clone());
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(EXPIRY_SWEEP);
            loop {
                tokio::select! {
                    _ = sweep_stop.cancelled() => return,
                    _ = tick.tick() => sweeper.sweep(&sweep_ctx).await,
                }
            }
        });
        if let Some((redis, messages)) = redis {
            tokio::spawn(redis.clone().run_mirror(ctx.clock().clone(), stop.clone()));
            tokio::spawn(redis.clone().run_listener(messages, sessions, ctx.clone(), stop.clone()));
            tokio::spawn(async move {
                stop.cancelled().await;
                redis.quit().await;
            });
        }
        Ok(())
    }

    async fn authorize(&self, ctx: &Context, _caller: &Caller, topic: &str) -> Result<(), ModuleError> {
        self.sessions()?.session(ctx, session_of_topic(topic)).await.map(drop)
    }

    async fn snapshot(&self, ctx: &Context, _caller: &Caller, topic: &str) -> Result<Option<Payload>, ModuleError> {
        self.sessions()?.joined(ctx, session_of_topic(topic)).await.map(Some)
    }

    async fn on_call(
        &self,
        ctx: &Context,
        caller: &Caller,
        method: &str,
        args: Payload,
    ) -> Result<Payload, ModuleError> {
        let args: Value = args.decode().map_err(|e| ModuleError::invalid(e.to_string()))?;
        let reply = perform(ctx, self.sessions()?, method, &args, &caller.identity).await?;
        Payload::from_json(Bytes::from(reply)).map_err(|e| ModuleError::new(ErrorCode::Internal, e.to_string()))
    }

    fn routes(&self, ctx: &Context) -> Option<axum::Router> {
        match self.sessions.get() {
            Some(sessions) => Some(rest::router(sessions.clone(), ctx.clone())),
            None => {
                tracing::error!("movie voting routes requested before start; REST API not served");
                None
            }
        }
    }

    fn info(&self) -> Option<ModuleInfo> {
        Some(ModuleInfo {
            title: "Movie-voting sessions (seeds 000, 001)",
            readme: "modules/movie_voting/README.md",
            demo: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sessions::topic;

    #[test]
    fn topics_name_their_session() {
        assert_eq!(session_of_topic(&topic("123456")), "123456");
        assert_eq!(session_of_topic("movies/session/"), "");
    }
}
