//! Seed-000 compatibility over Redis, on when `CHORUS_REDIS_URL` is set.
//!
//! - **Mirror.** After every change chorus `SET`s `session:{id}` to the session JSON (expiring with the
//!   session) and `PUBLISH`es the same JSON on `session:{id}:updates`, as the seed's `updateSessionData`
//!   does. Writes go through one task that keeps only the latest JSON per session, so a burst of changes
//!   costs at most one write per session per round and the key never goes back to an older state.
//! - **Listener.** chorus `PSUBSCRIBE`s `session:*:updates`; a message another backend published there is
//!   applied to the session and sent to chorus subscribers (see `Sessions::apply_external`). It is never
//!   written back to Redis, so nothing loops.
//! - **Echoes.** chorus hears its own `PUBLISH`es too. Before publishing it records a digest of the JSON
//!   under the session; a message matching a recorded digest of its session is chorus's own and is dropped,
//!   so nothing is delivered twice. (Redis delivers one connection's publishes in order, so digests recorded
//!   before the matching one belong to echoes that were lost, and are dropped with it.)

use crate::session::SessionData;
use crate::sessions::{SESSION_TTL_SECS, Sessions};
use chorus_core::module::Context;
use chorus_core::store::Clock;
use fred::clients::SubscriberClient;
use fred::prelude::{
    Builder, Client, ClientLike, Config, Error, EventInterface, Expiration, KeysInterface, PubsubInterface,
    ReconnectPolicy, SetOptions,
};
use fred::types::Message;
use parking_lot::Mutex;
use std::collections::{HashMap, VecDeque};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;
use tokio::sync::broadcast::error::RecvError;
use tokio_util::sync::CancellationToken;

/// The pattern chorus listens on: every session's update channel.
pub(crate) const CHANNEL_PATTERN: &str = "session:*:updates";

/// Longest wait for the first connection at start. Redis on the same network answers in milliseconds; a
/// wrong URL should fail the start quickly rather than hang it.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Longest wait for one command. A request that creates a session waits for its `SET NX`, so this bounds
/// how long a Redis outage can stall it.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(2);

/// Pause before the mirror retries after a failed write, so an outage costs one attempt per second rather
/// than a busy loop.
const RETRY_DELAY: Duration = Duration::from_secs(1);

/// Pub/sub messages buffered between the Redis connection and the listener task. Beyond it the oldest are
/// dropped (and counted in a warning): external updates are full snapshots, so a later one repairs a lost
/// one.
const MESSAGE_BUFFER: usize = 1024;

/// Own publishes remembered per session while their echo is awaited. Echoes arrive within milliseconds;
/// the bound only matters if the subscription drops messages, and then stale digests age out.
const ECHO_WINDOW: usize = 64;

/// Messages of the `session:*:updates` subscription.
pub(crate) type Messages = tokio::sync::broadcast::Receiver<Message>;

/// The seed's key of a session.
pub(crate) fn key(id: &str) -> String {
    format!("session:{id}")
}

/// The seed's update channel of a session.
pub(crate) fn channel(id: &str) -> String {
    format!("session:{id}:updates")
}

/// The session id of an update channel.
fn session_of_channel(channel: &str) -> Option<&str> {
    channel.strip_prefix("session:")?.strip_suffix(":updates")
}

fn digest(json: &str) -> u64 {
    let mut h = DefaultHasher::new();
    json.hash(&mut h);
    h.finish()
}

/// A session JSON waiting to be mirrored.
struct Mirror {
    json: String,
    expires_ms: u64,
}

/// The connection to Redis and the state of the mirror.
pub(crate) struct Redis {
    client: Client,
    subscriber: SubscriberClient,
    /// Digests of own publishes whose echo has not arrived yet, per session.
    echoes: Mutex<HashMap<String, VecDeque<u64>>>,
    /// Latest unwritten JSON per session.
    pending: Mutex<HashMap<String, Mirror>>,
    wake: Notify,
}

impl Redis {
    /// Connects (commands and subscriber) and subscribes to every session's channel; returns the
    /// connection and the subscription's messages (for [`Redis::run_listener`]). Fails if Redis does not
    /// answer within [`CONNECT_TIMEOUT`]; once connected, lost connections are re-established in the
    /// background and the subscription restored.
    pub async fn connect(url: &str) -> anyhow::Result<(Arc<Self>, Messages)> {
        let config = Config::from_url(url)?;
        let mut builder = Builder::from_config(config);
        builder
            .with_connection_config(|c| c.connection_timeout = CONNECT_TIMEOUT)
            .with_performance_config(|p| {
                p.default_command_timeout = COMMAND_TIMEOUT;
                p.broadcast_channel_capacity = MESSAGE_BUFFER;
            })
            .set_policy(ReconnectPolicy::new_exponential(0, 100, 5_000, 2));
        let client = builder.build()?;
        let subscriber = builder.build_subscriber_client()?;
        within_connect_timeout(client.init()).await?;
        within_connect_timeout(subscriber.init()).await?;
        // Taken before subscribing, so no message published after the subscription is missed.
        let messages = subscriber.message_rx();
        within_connect_timeout(subscriber.psubscribe(CHANNEL_PATTERN)).await?;
        subscriber.manage_subscriptions();
        Ok((Arc::new(Self::new(client, subscriber)), messages))
    }

    fn new(client: Client, subscriber: SubscriberClient) -> Self {
        Self { client, subscriber, echoes: Mutex::default(), pending: Mutex::default(), wake: Notify::new() }
    }

    /// Claims the key of a new session (`SET key json EX 86400 NX`); false when another backend's session
    /// already holds it.
    pub async fn claim(&self, id: &str, json: &str) -> Result<bool, Error> {
        let ttl = Expiration::EX(i64::from(SESSION_TTL_SECS));
        let reply: Option<String> = self.client.set(key(id), json, Some(ttl), Some(SetOptions::NX), false).await?;
        Ok(reply.is_some())
    }

    /// The session JSON at `session:{id}` and the milliseconds it has left (`None`: no expiry set).
    pub async fn fetch(&self, id: &str) -> Result<Option<(String, Option<u64>)>, Error> {
        let json: Option<String> = self.client.get(key(id)).await?;
        let Some(json) = json else { return Ok(None) };
        let ttl: i64 = self.client.pttl(key(id)).await?;
        Ok(Some((json, u64::try_from(ttl).ok().filter(|ms| *ms > 0))))
    }

    /// Milliseconds `session:{id}` has left (`None`: missing or no expiry).
    pub async fn ttl_ms(&self, id: &str) -> Result<Option<u64>, Error> {
        let ttl: i64 = self.client.pttl(key(id)).await?;
        Ok(u64::try_from(ttl).ok().filter(|ms| *ms > 0))
    }

    /// Deletes `session:{id}` (the session expired in chorus).
    /// Digests of echoes still on their way are kept: an echo arriving after this must still be recognized,
    /// or it would bring the session back as an external update.
    pub async fn forget(&self, id: &str) -> Result<(), Error> {
        self.pending.lock().remove(id);
        self.client.del::<(), _>(key(id)).await
    }

    /// Queues the session's latest JSON for the mirror task. Called in the order of the changes.
    pub fn mirror(&self, id: &str, json: String, expires_ms: u64) {
        self.pending.lock().insert(id.to_owned(), Mirror { json, expires_ms });
        self.wake.notify_one();
    }

    /// Writes queued JSON until `stop`.
    pub async fn run_mirror(self: Arc<Self>, clock: Arc<dyn Clock>, stop: CancellationToken) {
        let mut failing = false;
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = self.wake.notified() => {}
            }
            loop {
                let batch: Vec<(String, Mirror)> = self.pending.lock().drain().collect();
                if batch.is_empty() {
                    break;
                }
                let mut failed = None;
                for (id, mirror) in batch {
                    if let Err(e) = self.write(&id, &mirror, clock.now_ms()).await {
                        // A newer change queued meanwhile supersedes this one.
                        self.pending.lock().entry(id).or_insert(mirror);
                        failed = Some(e);
                    }
                }
                match failed {
                    Some(e) => {
                        if !failing {
                            tracing::warn!(error = %e, "Redis mirror write failed; retrying every second");
                            failing = true;
                        }
                        tokio::select! {
                            _ = stop.cancelled() => return,
                            _ = tokio::time::sleep(RETRY_DELAY) => {}
                        }
                    }
                    None if failing => {
                        tracing::info!("Redis mirror writes succeed again");
                        failing = false;
                    }
                    None => {}
                }
            }
        }
    }

    /// `SET` + `PUBLISH` of one session, the key expiring with the session (rounded down to whole seconds so
    /// it never outlives it).
    async fn write(&self, id: &str, mirror: &Mirror, now_ms: u64) -> Result<(), Error> {
        let Some(secs) = mirror.expires_ms.checked_sub(now_ms).map(|ms| ms / 1000).filter(|s| *s > 0) else {
            return Ok(());
        };
        let ex = Expiration::EX(i64::try_from(secs).unwrap_or(i64::from(SESSION_TTL_SECS)));
        self.client.set::<(), _, _>(key(id), mirror.json.as_str(), Some(ex), None, false).await?;
        let d = digest(&mirror.json);
        self.expect_echo(id, d);
        let published = self.client.publish::<i64, _, _>(channel(id), mirror.json.as_str()).await;
        if published.is_err() {
            self.drop_echo(id, d);
        }
        published.map(drop)
    }

    fn expect_echo(&self, id: &str, d: u64) {
        let mut echoes = self.echoes.lock();
        let queue = echoes.entry(id.to_owned()).or_default();
        if queue.len() == ECHO_WINDOW {
            queue.pop_front();
        }
        queue.push_back(d);
    }

    fn drop_echo(&self, id: &str, d: u64) {
        let mut echoes = self.echoes.lock();
        if let Some(queue) = echoes.get_mut(id)
            && let Some(at) = queue.iter().rposition(|x| *x == d)
        {
            queue.remove(at);
            if queue.is_empty() {
                echoes.remove(id);
            }
        }
    }

    /// Whether a message on the session's channel is the echo of chorus's own publish (and consumes it).
    fn is_echo(&self, id: &str, json: &str) -> bool {
        let mut echoes = self.echoes.lock();
        let Some(queue) = echoes.get_mut(id) else { return false };
        let d = digest(json);
        // Messages of one connection arrive in order, so an own echo is the oldest digest; digests before
        // it belong to publishes whose echo was lost (subscription dropped) and are discarded.
        let Some(at) = queue.iter().position(|x| *x == d) else { return false };
        queue.drain(..=at);
        if queue.is_empty() {
            echoes.remove(id);
        }
        true
    }

    /// Applies external updates from `messages` until `stop`.
    pub async fn run_listener(
        self: Arc<Self>,
        mut messages: Messages,
        sessions: Arc<Sessions>,
        ctx: Context,
        stop: CancellationToken,
    ) {
        loop {
            let message = tokio::select! {
                _ = stop.cancelled() => return,
                m = messages.recv() => m,
            };
            match message {
                Ok(message) => self.handle(&sessions, &ctx, message).await,
                Err(RecvError::Lagged(lost)) => {
                    tracing::warn!(lost, "Redis update messages dropped: the listener fell behind");
                }
                Err(RecvError::Closed) => return,
            }
        }
    }

    async fn handle(&self, sessions: &Sessions, ctx: &Context, message: Message) {
        let Some(id) = session_of_channel(&message.channel) else { return };
        if !crate::ids::is_session_id(id) {
            return;
        }
        let Some(json) = message.value.as_str() else {
            tracing::warn!(channel = %message.channel, "Redis update is not a string; ignored");
            return;
        };
        if self.is_echo(id, &json) {
            return;
        }
        let data: SessionData = match serde_json::from_str(&json) {
            Ok(data) => data,
            Err(e) => {
                tracing::warn!(channel = %message.channel, error = %e, "Redis update is not session JSON; ignored");
                return;
            }
        };
        if let Err(e) = sessions.apply_external(ctx, id, data).await {
            tracing::warn!(session = id, error = %e, "external session update not applied");
        }
    }

    /// Closes both connections.
    pub async fn quit(&self) {
        let _ = self.subscriber.quit().await;
        let _ = self.client.quit().await;
    }
}

/// Waits for a client's first connection, at most [`CONNECT_TIMEOUT`].
async fn within_connect_timeout<T>(init: impl Future<Output = Result<T, Error>>) -> anyhow::Result<()> {
    match tokio::time::timeout(CONNECT_TIMEOUT, init).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(anyhow::anyhow!("connecting to Redis (redis_url): {e}")),
        Err(_) => Err(anyhow::anyhow!("no answer from Redis (redis_url) within {CONNECT_TIMEOUT:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channels_name_their_session() {
        assert_eq!(session_of_channel(&channel("123456")), Some("123456"));
        assert_eq!(key("123456"), "session:123456");
        assert_eq!(session_of_channel("session:123456"), None);
        assert_eq!(session_of_channel("other:123456:updates"), None);
    }

    /// Clients that never connect: enough to exercise the echo bookkeeping.
    fn unconnected() -> Redis {
        let builder = Builder::default_centralized();
        Redis::new(builder.build().expect("client"), builder.build_subscriber_client().expect("subscriber"))
    }

    #[tokio::test]
    async fn own_publishes_are_recognized_once_and_in_order() {
        let redis = unconnected();
        redis.expect_echo("111111", digest("a"));
        redis.expect_echo("111111", digest("b"));
        assert!(!redis.is_echo("222222", "a"), "another session's channel");
        assert!(!redis.is_echo("111111", "c"), "an external message");
        assert!(redis.is_echo("111111", "a"));
        assert!(!redis.is_echo("111111", "a"), "a second copy is someone else's publish");
        assert!(redis.is_echo("111111", "b"));
        assert!(redis.echoes.lock().is_empty());

        // An echo that never came (subscription dropped) is discarded by the next one.
        redis.expect_echo("111111", digest("lost"));
        redis.expect_echo("111111", digest("d"));
        assert!(redis.is_echo("111111", "d"));
        assert!(!redis.is_echo("111111", "lost"));

        // A failed publish expects no echo.
        redis.expect_echo("111111", digest("e"));
        redis.drop_echo("111111", digest("e"));
        assert!(!redis.is_echo("111111", "e"));
    }

    #[tokio::test]
    async fn echoes_are_bounded_per_session() {
        let redis = unconnected();
        for i in 0..ECHO_WINDOW + 10 {
            redis.expect_echo("111111", digest(&i.to_string()));
        }
        assert_eq!(redis.echoes.lock().get("111111").map(VecDeque::len), Some(ECHO_WINDOW));
        assert!(!redis.is_echo("111111", "0"), "the oldest aged out");
        assert!(redis.is_echo("111111", &(ECHO_WINDOW + 9).to_string()));
    }
}
