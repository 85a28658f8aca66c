//! The live sessions of this node and their operations.
//!
//! The store is the record; a session in use is also held in memory (loaded once, on first use, from its
//! rows) so reads, checks and publishes never wait for the store. Writes go to the store first, with
//! conditional writes where two requests could race (session ids, titles, joins, votes), and only then
//! change the in-memory state and publish. Vote totals live on the broker's striped counters: one counter
//! per movie, one `+1` / `-1` per vote row actually inserted / deleted, so concurrent votes never contend
//! on a lock and totals stay exact.

use crate::ids;
use crate::redis::Redis;
use crate::rows::{self, Loaded, META_CK, MetaRow, MovieRow, PersonRow, VOTE};
use crate::session::{Movie, MovieData, Participant, Session, SessionData, State, counter_key, title_key};
use bytes::Bytes;
use chorus_core::dialect::iso8601;
use chorus_core::module::{Context, ModuleError};
use chorus_core::protocol::{ErrorCode, Payload};
use chorus_core::store::{MAX_BATCH_OPS, Ttl, WriteOp};
use parking_lot::RwLock;
use serde::Serialize;
use serde_json::value::RawValue;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use tokio::sync::OnceCell;

/// A session lives this long after creation (the seed's Redis TTL).
pub(crate) const SESSION_TTL_SECS: u32 = 86_400;

/// Topic prefix of sessions: a session's topic is `movies/session/{id}`.
pub const TOPIC_PREFIX: &str = "movies/session/";

/// The seed's message for an unknown or expired session (REST 404, subscribe and call errors).
pub(crate) const NOT_FOUND: &str = "Session not found or has expired";

/// Random ids tried before a create gives up. Even with 90 % of the 900,000 ids live, 64 misses in a row
/// happen with probability 0.9^64 ≈ 0.1 %; at realistic occupancy never.
const CREATE_ATTEMPTS: usize = 64;

/// Most movies in a session: keeps one session's JSON (sent in full on every change) around 120 KB.
pub(crate) const MAX_MOVIES: usize = 500;

/// Most participants in a session: a movie night, not a stadium; bounds the JSON as above.
pub(crate) const MAX_PARTICIPANTS: usize = 1000;

/// Longest identity (token `sub`) accepted: it is part of store keys, which are bounded.
const MAX_IDENTITY_BYTES: usize = 256;

/// Event of the subscribe snapshot.
pub const JOINED_SESSION: &str = "joined-session";
/// Event published on every change.
pub const SESSION_UPDATE: &str = "session-update";
/// Event published when the session expires.
pub const SESSION_EXPIRED: &str = "session-expired";

const DUPLICATE_TITLE: &str = "A movie with this title is already in the session";
const NOT_PARTICIPANT: &str = "Join the session first";

/// A session's topic.
pub fn topic(id: &str) -> String {
    format!("{TOPIC_PREFIX}{id}")
}

/// A session slot: filled once with the loaded session.
type Slot = Arc<OnceCell<Arc<Session>>>;

/// The live sessions of this node.
///
/// It does not keep the node's [`Context`]: the node owns the module, so a context kept here would form a
/// reference cycle and the node (and its store) would never be dropped. Every operation takes it instead.
pub(crate) struct Sessions {
    live: RwLock<HashMap<String, Slot>>,
    redis: Option<Arc<Redis>>,
}

/// The answer of most operations: `{ "sessionID", "sessionData" }`.
#[derive(Serialize)]
pub(crate) struct SessionReply<'a> {
    #[serde(rename = "sessionID")]
    pub session_id: &'a str,
    #[serde(rename = "sessionData")]
    pub session_data: &'a RawValue,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub movie: Option<MovieData>,
}

/// An event on a session topic: `{ "event", "data" }`.
#[derive(Serialize)]
struct EventBody<'a, T: Serialize> {
    event: &'a str,
    data: T,
}

/// A session's JSON text, as serialized once per change.
#[derive(Debug)]
pub(crate) struct Snapshot {
    pub id: String,
    pub json: String,
}

impl Snapshot {
    /// `{ "sessionID", "sessionData", "movie"? }` as JSON bytes.
    pub fn reply(&self, movie: Option<MovieData>) -> Result<Vec<u8>, ModuleError> {
        let data = raw(&self.json)?;
        serde_json::to_vec(&SessionReply { session_id: &self.id, session_data: data, movie }).map_err(internal)
    }
}

fn raw(json: &str) -> Result<&RawValue, ModuleError> {
    serde_json::from_str(json).map_err(internal)
}

fn internal(e: impl std::fmt::Display) -> ModuleError {
    ModuleError::new(ErrorCode::Internal, e.to_string())
}

fn not_found() -> ModuleError {
    ModuleError::not_found(NOT_FOUND)
}

/// An event payload in the JSON codec.
fn event<T: Serialize>(event: &str, data: T) -> Result<Payload, ModuleError> {
    let json = serde_json::to_vec(&EventBody { event, data }).map_err(internal)?;
    Payload::from_json(Bytes::from(json)).map_err(internal)
}

impl Sessions {
    /// No sessions yet; `redis` when compatibility is on.
    pub fn new(redis: Option<Arc<Redis>>) -> Self {
        Self { live: RwLock::default(), redis }
    }

    /// Row TTL for a session's writes now, or not found once it has expired.
    fn ttl(&self, ctx: &Context, session: &Session) -> Result<Ttl, ModuleError> {
        let now = ctx.clock().now_ms();
        if session.expired_at(now) {
            return Err(not_found());
        }
        rows::ttl_until(session.expires_ms, now).ok_or_else(not_found)
    }

    /// Creates a session and returns its id. The id is claimed with a conditional write (and, with Redis,
    /// `SET NX` on its key), so it is unique among live sessions.
    pub async fn create(&self, ctx: &Context) -> Result<String, ModuleError> {
        let now = ctx.clock().now_ms();
        let meta = MetaRow { created_at: iso8601(now), expires_ms: now + u64::from(SESSION_TTL_SECS) * 1000 };
        let value = rows::encode(&meta)?;
        let ttl = Ttl::from_secs(SESSION_TTL_SECS)?;
        for _ in 0..CREATE_ATTEMPTS {
            let id = ids::candidate();
            let claimed = ctx.store().insert_if_absent(rows::SESSIONS, &id, META_CK, value.clone(), Some(ttl)).await?;
            if !claimed.applied {
                continue;
            }
            if let Some(redis) = &self.redis {
                let empty = SessionData { created_at: meta.created_at.clone(), movies: vec![], participants: vec![] };
                let json = serde_json::to_string(&empty).map_err(internal)?;
                match redis.claim(&id, &json).await {
                    Ok(true) => {}
                    Ok(false) => {
                        // Another backend's live session holds this id in Redis.
                        ctx.store().delete_if_equal(rows::SESSIONS, &id, META_CK, &value).await?;
                        continue;
                    }
                    Err(e) => {
                        tracing::warn!(session = %id, error = %e, "Redis unreachable: session created without its Redis key");
                    }
                }
            }
            return Ok(id);
        }
        Err(ModuleError::new(ErrorCode::Unavailable, "no free session id; try again"))
    }

    /// The live session `id`, loaded on first use; not found when it does not exist or has expired.
    pub async fn session(&self, ctx: &Context, id: &str) -> Result<Arc<Session>, ModuleError> {
        if !ids::is_session_id(id) {
            return Err(not_found());
        }
        // Twice: a cached session found expired is dropped, and the id may since belong to a new session.
        for _ in 0..2 {
            let slot = self.slot(id);
            match slot.get_or_try_init(|| self.load(ctx, id)).await {
                Ok(session) if session.expired_at(ctx.clock().now_ms()) => self.expire(ctx, session).await,
                Ok(session) => return Ok(session.clone()),
                Err(e) => {
                    self.drop_slot(id, &slot);
                    return Err(e);
                }
            }
        }
        Err(not_found())
    }

    fn slot(&self, id: &str) -> Slot {
        if let Some(slot) = self.live.read().get(id) {
            return slot.clone();
        }
        self.live.write().entry(id.to_owned()).or_default().clone()
    }

    /// Removes `slot` if it is still the one for `id` (a failed load must not leave an entry behind:
    /// clients probing unknown ids would fill the map).
    fn drop_slot(&self, id: &str, slot: &Slot) {
        let mut live = self.live.write();
        if live.get(id).is_some_and(|s| Arc::ptr_eq(s, slot)) {
            live.remove(id);
        }
    }

    async fn load(&self, ctx: &Context, id: &str) -> Result<Arc<Session>, ModuleError> {
        if let Some(loaded) = rows::load(ctx.store().as_ref(), id).await? {
            return Ok(self.build(ctx, id, loaded));
        }
        let Some(redis) = &self.redis else { return Err(not_found()) };
        // A session another backend created in Redis only: adopt it.
        let fetched = redis.fetch(id).await.map_err(|e| {
            tracing::warn!(session = id, error = %e, "Redis lookup failed");
            ModuleError::new(ErrorCode::Unavailable, format!("Redis unavailable: {e}"))
        })?;
        let Some((json, ttl_ms)) = fetched else { return Err(not_found()) };
        let data: SessionData = serde_json::from_str(&json).map_err(|e| {
            tracing::warn!(session = id, error = %e, "Redis key session:{id} is not session JSON");
            not_found()
        })?;
        check_external(&data).map_err(|e| {
            tracing::warn!(session = id, error = %e, "Redis key session:{id} breaks the module's limits");
            not_found()
        })?;
        self.adopt(ctx, id, &data, ttl_ms).await?;
        rows::load(ctx.store().as_ref(), id).await?.map(|loaded| self.build(ctx, id, loaded)).ok_or_else(not_found)
    }

    /// Builds the in-memory session from its rows and sets its vote counters to the rows' counts.
    fn build(&self, ctx: &Context, id: &str, loaded: Loaded) -> Arc<Session> {
        let Loaded { meta, movies, people, votes } = loaded;
        let movies: Vec<Movie> = movies
            .into_iter()
            .map(|(movie, row)| {
                let counter = ctx.counters().counter(&counter_key(id, meta.expires_ms, movie));
                // Only this load touches the counter: the session is not reachable before it returns.
                counter.take();
                counter.add(votes.get(&movie).copied().unwrap_or(0));
                Movie { id: movie, title: row.title, base: row.base, votes: counter }
            })
            .collect();
        let next_movie = movies.iter().map(|m| m.id.saturating_add(1)).max().unwrap_or(1);
        let next_seq = people.iter().map(|(_, p)| p.seq.saturating_add(1)).max().unwrap_or(0);
        let participants = people.into_iter().map(|(who, p)| Participant { who, name: p.name, seq: p.seq }).collect();
        let state = State { created_at: meta.created_at, movies, participants, next_movie, next_seq };
        Arc::new(Session::new(id.to_owned(), meta.expires_ms, state))
    }

    /// Ends an expired session on this node: forgets it, tells its subscribers, deletes its Redis key.
    async fn expire(&self, ctx: &Context, session: &Arc<Session>) {
        if !session.mark_gone() {
            return;
        }
        {
            let mut live = self.live.write();
            if live.get(&session.id).and_then(|s| s.get()).is_some_and(|s| Arc::ptr_eq(s, session)) {
                live.remove(&session.id);
            }
        }
        for movie in &session.state.lock().movies {
            ctx.counters().remove(&session.counter_key(movie.id));
        }
        let data = serde_json::json!({ "sessionID": session.id, "message": NOT_FOUND });
        match event(SESSION_EXPIRED, data) {
            Ok(payload) => {
                ctx.publish(&topic(&session.id), &payload);
            }
            Err(e) => tracing::error!(session = %session.id, error = %e, "expiry event not built"),
        }
        if let Some(redis) = &self.redis
            && let Err(e) = redis.forget(&session.id).await
        {
            tracing::warn!(session = %session.id, error = %e, "Redis key of an expired session not deleted");
        }
        tracing::debug!(session = %session.id, "session expired");
    }

    /// Expires every session in memory whose time has come.
    pub async fn sweep(&self, ctx: &Context) {
        let now = ctx.clock().now_ms();
        let expired: Vec<Arc<Session>> =
            self.live.read().values().filter_map(|slot| slot.get()).filter(|s| s.expired_at(now)).cloned().collect();
        for session in expired {
            self.expire(ctx, &session).await;
        }
    }

    /// The session's JSON now.
    pub async fn snapshot(&self, ctx: &Context, id: &str) -> Result<Snapshot, ModuleError> {
        let session = self.session(ctx, id).await?;
        let json = session.state.lock().to_json();
        Ok(Snapshot { id: session.id.clone(), json })
    }

    /// The subscribe snapshot: `{ "event": "joined-session", "data": { "sessionID", "sessionData" } }`.
    pub async fn joined(&self, ctx: &Context, id: &str) -> Result<Payload, ModuleError> {
        let snapshot = self.snapshot(ctx, id).await?;
        let data = raw(&snapshot.json)?;
        event(JOINED_SESSION, SessionReply { session_id: &snapshot.id, session_data: data, movie: None })
    }

    /// Publishes the session's current data to its subscribers (and, with `mirror`, to Redis). The state
    /// lock is held across building and publishing so subscribers receive updates in the order of the
    /// states they show, and the last update shows every change made before it.
    fn publish(&self, ctx: &Context, session: &Session, mirror: bool) -> Snapshot {
        let state = session.state.lock();
        let json = state.to_json();
        match raw(&json).and_then(|data| event(SESSION_UPDATE, data)) {
            Ok(payload) => {
                ctx.publish(&topic(&session.id), &payload);
            }
            Err(e) => tracing::error!(session = %session.id, error = %e, "session update not built"),
        }
        if mirror && let Some(redis) = &self.redis {
            redis.mirror(&session.id, json.clone(), session.expires_ms);
        }
        drop(state);
        Snapshot { id: session.id.clone(), json }
    }

    /// Adds `who` as a participant named `name`. Joining again changes nothing.
    pub async fn join(&self, ctx: &Context, id: &str, who: &str, name: String) -> Result<Snapshot, ModuleError> {
        check_identity(who)?;
        let session = self.session(ctx, id).await?;
        let _changes = session.changes.lock().await;
        let seq = {
            let state = session.state.lock();
            if state.has_participant(who) {
                return Ok(Snapshot { id: session.id.clone(), json: state.to_json() });
            }
            if state.participants.len() >= MAX_PARTICIPANTS {
                return Err(ModuleError::conflict(format!("session is full ({MAX_PARTICIPANTS} participants)")));
            }
            state.next_seq
        };
        let ttl = self.ttl(ctx, &session)?;
        let row = PersonRow { name, seq };
        let value = rows::encode(&row)?;
        let outcome = ctx.store().insert_if_absent(rows::PEOPLE, id, &rows::person_ck(who), value, Some(ttl)).await?;
        // Not applied: the row exists though this node's memory lacks it (another node wrote it); keep it.
        let row = match outcome.current.filter(|_| !outcome.applied) {
            Some(current) => rmp_serde::from_slice(&current).unwrap_or(row),
            None => row,
        };
        {
            let mut state = session.state.lock();
            state.next_seq = state.next_seq.max(row.seq.saturating_add(1));
            state.participants.push(Participant { who: who.to_owned(), name: row.name, seq: row.seq });
        }
        Ok(self.publish(ctx, &session, true))
    }

    /// Adds a movie; titles are unique per session (compared without case and extra spaces).
    pub async fn add_movie(
        &self,
        ctx: &Context,
        id: &str,
        who: &str,
        title: String,
    ) -> Result<(Snapshot, MovieData), ModuleError> {
        let session = self.session(ctx, id).await?;
        let key = title_key(&title);
        let _changes = session.changes.lock().await;
        let movie = {
            let state = session.state.lock();
            if !state.has_participant(who) {
                return Err(ModuleError::forbidden(NOT_PARTICIPANT));
            }
            if state.has_title(&key) {
                return Err(ModuleError::conflict(DUPLICATE_TITLE));
            }
            if state.movies.len() >= MAX_MOVIES {
                return Err(ModuleError::conflict(format!("session is full ({MAX_MOVIES} movies)")));
            }
            state.next_movie
        };
        let ttl = self.ttl(ctx, &session)?;
        let store = ctx.store();
        let title_ck = rows::title_ck(&key);
        let claimed = store.insert_if_absent(rows::TITLES, id, &title_ck, rows::encode(&movie)?, Some(ttl)).await?;
        if !claimed.applied {
            return Err(ModuleError::conflict(DUPLICATE_TITLE));
        }
        let row = MovieRow { title: title.clone(), base: 0 };
        if let Err(e) = store.put(rows::MOVIES, id, &rows::movie_ck(movie), rows::encode(&row)?, Some(ttl)).await {
            if let Err(undo) = store.delete(rows::TITLES, id, &title_ck).await {
                tracing::warn!(session = id, error = %undo, "title row of a failed add left behind");
            }
            return Err(e.into());
        }
        let counter = ctx.counters().counter(&session.counter_key(movie));
        counter.take();
        {
            let mut state = session.state.lock();
            state.next_movie = movie.saturating_add(1);
            state.movies.push(Movie { id: movie, title: title.clone(), base: 0, votes: counter });
        }
        Ok((self.publish(ctx, &session, true), MovieData { id: movie, title, votes: 0 }))
    }

    /// Casts (`up`) or withdraws `who`'s vote for a movie: at most one vote per participant per movie.
    pub async fn vote(
        &self,
        ctx: &Context,
        id: &str,
        who: &str,
        movie: u64,
        up: bool,
    ) -> Result<Snapshot, ModuleError> {
        let session = self.session(ctx, id).await?;
        let counter = {
            let state = session.state.lock();
            if !state.has_participant(who) {
                return Err(ModuleError::forbidden(NOT_PARTICIPANT));
            }
            state.movie(movie).map(|m| m.votes.clone()).ok_or_else(|| ModuleError::not_found("Movie not found"))?
        };
        let ttl = self.ttl(ctx, &session)?;
        let ck = rows::vote_ck(movie, who);
        if up {
            let outcome =
                ctx.store().insert_if_absent(rows::VOTES, id, &ck, Bytes::from_static(VOTE), Some(ttl)).await?;
            if !outcome.applied {
                return Err(ModuleError::conflict("You already voted for this movie"));
            }
            counter.add(1);
        } else {
            let outcome = ctx.store().delete_if_equal(rows::VOTES, id, &ck, VOTE).await?;
            if !outcome.applied {
                return Err(ModuleError::conflict("You have not voted for this movie"));
            }
            counter.add(-1);
        }
        Ok(self.publish(ctx, &session, true))
    }

    /// Applies a session JSON another backend published on Redis: the session becomes that data (vote
    /// totals included), and chorus subscribers receive it. Unknown sessions are adopted.
    pub async fn apply_external(&self, ctx: &Context, id: &str, data: SessionData) -> Result<(), ModuleError> {
        check_external(&data).map_err(ModuleError::invalid)?;
        let session = match self.session(ctx, id).await {
            Ok(session) => session,
            Err(e) if e.code == ErrorCode::NotFound => {
                let ttl_ms = match &self.redis {
                    Some(redis) => redis
                        .ttl_ms(id)
                        .await
                        .map_err(|e| ModuleError::new(ErrorCode::Unavailable, format!("Redis unavailable: {e}")))?,
                    None => None,
                };
                // Nobody can be subscribed to a session this node did not know: storing it is enough.
                return self.adopt(ctx, id, &data, ttl_ms).await;
            }
            Err(e) => return Err(e),
        };
        let _changes = session.changes.lock().await;
        let ttl = self.ttl(ctx, &session)?;
        let mut ops = Vec::new();
        let put = |table: &str, ck: Bytes, value: Bytes| WriteOp::Put {
            table: table.to_owned(),
            pk: id.to_owned(),
            ck,
            value,
            ttl: Some(ttl),
        };
        let delete = |table: &str, ck: Bytes| WriteOp::Delete { table: table.to_owned(), pk: id.to_owned(), ck };

        // Movies: keep the counters of movies that stay, so vote rows cast through chorus still count and can
        // still be withdrawn; the difference to the external total becomes the movie's base.
        let (old_created, old_movies, old_people) = {
            let state = session.state.lock();
            let movies: Vec<(u64, String, i64, _)> =
                state.movies.iter().map(|m| (m.id, m.title.clone(), m.base, m.votes.clone())).collect();
            let people: Vec<(String, String, u64)> =
                state.participants.iter().map(|p| (p.who.clone(), p.name.clone(), p.seq)).collect();
            (state.created_at.clone(), movies, people)
        };
        if old_created != data.created_at {
            let meta = MetaRow { created_at: data.created_at.clone(), expires_ms: session.expires_ms };
            ops.push(put(rows::SESSIONS, Bytes::from_static(META_CK), rows::encode(&meta)?));
        }
        let mut movies = Vec::new();
        for m in &data.movies {
            let old = old_movies.iter().find(|(id, ..)| *id == m.id);
            let counter = match old {
                Some((.., counter)) => counter.clone(),
                None => {
                    let counter = ctx.counters().counter(&session.counter_key(m.id));
                    counter.take();
                    counter
                }
            };
            let base = i64::try_from(m.votes).unwrap_or(i64::MAX).saturating_sub(counter.get());
            let unchanged = old.is_some_and(|(_, title, old_base, _)| *title == m.title && *old_base == base);
            if !unchanged {
                let row = MovieRow { title: m.title.clone(), base };
                ops.push(put(rows::MOVIES, rows::movie_ck(m.id), rows::encode(&row)?));
            }
            let key = title_key(&m.title);
            match old {
                Some((_, title, ..)) if title_key(title) == key => {}
                _ => {
                    if let Some((_, title, ..)) = old {
                        ops.push(delete(rows::TITLES, rows::title_ck(&title_key(title))));
                    }
                    ops.push(put(rows::TITLES, rows::title_ck(&key), rows::encode(&m.id)?));
                }
            }
            movies.push(Movie { id: m.id, title: m.title.clone(), base, votes: counter });
        }
        let removed: Vec<_> = old_movies.iter().filter(|(id, ..)| !data.movies.iter().any(|m| m.id == *id)).collect();
        for (movie, title, ..) in &removed {
            ops.push(delete(rows::MOVIES, rows::movie_ck(*movie)));
            ops.push(delete(rows::TITLES, rows::title_ck(&title_key(title))));
            for ck in rows::movie_votes(ctx.store().as_ref(), id, *movie).await? {
                ops.push(delete(rows::VOTES, ck));
            }
        }

        // Participants: a name that was already there keeps its identity (and so its votes); new names get
        // an identity of their own.
        let mut used = HashSet::new();
        let mut participants = Vec::new();
        for (seq, name) in (0u64..).zip(&data.participants) {
            let kept = old_people.iter().find(|(who, n, _)| n == name && !used.contains(who.as_str()));
            let who = match kept {
                Some((who, ..)) => who.clone(),
                None => {
                    let mut who = format!("redis:{name}");
                    if used.contains(who.as_str()) || old_people.iter().any(|(w, ..)| *w == who) {
                        who = format!("redis:{name}:{seq}");
                    }
                    who
                }
            };
            if kept.is_none_or(|(_, _, old_seq)| *old_seq != seq) {
                let row = PersonRow { name: name.clone(), seq };
                ops.push(put(rows::PEOPLE, rows::person_ck(&who), rows::encode(&row)?));
            }
            used.insert(who.clone());
            participants.push(Participant { who, name: name.clone(), seq });
        }
        for (who, ..) in old_people.iter().filter(|(who, ..)| !used.contains(who.as_str())) {
            ops.push(delete(rows::PEOPLE, rows::person_ck(who)));
        }

        while !ops.is_empty() {
            let rest = ops.split_off(ops.len().min(MAX_BATCH_OPS));
            ctx.store().batch(std::mem::replace(&mut ops, rest)).await?;
        }
        movies.sort_by_key(|m| m.id);
        {
            let mut state = session.state.lock();
            state.created_at = data.created_at;
            state.next_movie = state.next_movie.max(movies.iter().map(|m| m.id.saturating_add(1)).max().unwrap_or(1));
            state.next_seq = u64::try_from(participants.len()).unwrap_or(u64::MAX);
            state.movies = movies;
            state.participants = participants;
        }
        for (movie, ..) in removed {
            ctx.counters().remove(&session.counter_key(*movie));
        }
        self.publish(ctx, &session, false);
        Ok(())
    }

    /// Stores a session known only from Redis data, expiring in `ttl_ms` (or a full day when Redis has no
    /// expiry for it). Its vote totals become the movies' bases.
    async fn adopt(&self, ctx: &Context, id: &str, data: &SessionData, ttl_ms: Option<u64>) -> Result<(), ModuleError> {
        let now = ctx.clock().now_ms();
        let expires_ms = now + ttl_ms.unwrap_or(u64::from(SESSION_TTL_SECS) * 1000);
        let ttl = rows::ttl_until(expires_ms, now).ok_or_else(not_found)?;
        let meta = MetaRow { created_at: data.created_at.clone(), expires_ms };
        let claimed =
            ctx.store().insert_if_absent(rows::SESSIONS, id, META_CK, rows::encode(&meta)?, Some(ttl)).await?;
        if !claimed.applied {
            return Ok(());
        }
        let mut ops = Vec::new();
        let mut seen = HashSet::new();
        for m in &data.movies {
            let base = i64::try_from(m.votes).unwrap_or(i64::MAX);
            let row = MovieRow { title: m.title.clone(), base };
            ops.push((rows::MOVIES, rows::movie_ck(m.id), rows::encode(&row)?));
            ops.push((rows::TITLES, rows::title_ck(&title_key(&m.title)), rows::encode(&m.id)?));
        }
        for (seq, name) in (0u64..).zip(&data.participants) {
            let mut who = format!("redis:{name}");
            if !seen.insert(who.clone()) {
                who = format!("redis:{name}:{seq}");
            }
            ops.push((rows::PEOPLE, rows::person_ck(&who), rows::encode(&PersonRow { name: name.clone(), seq })?));
        }
        let mut ops: Vec<WriteOp> = ops
            .into_iter()
            .map(|(table, ck, value)| WriteOp::Put {
                table: table.to_owned(),
                pk: id.to_owned(),
                ck,
                value,
                ttl: Some(ttl),
            })
            .collect();
        while !ops.is_empty() {
            let rest = ops.split_off(ops.len().min(MAX_BATCH_OPS));
            ctx.store().batch(std::mem::replace(&mut ops, rest)).await?;
        }
        tracing::info!(session = id, "adopted a session created by another backend in Redis");
        Ok(())
    }
}

/// Refuses identities too long for store keys.
fn check_identity(who: &str) -> Result<(), ModuleError> {
    if who.len() > MAX_IDENTITY_BYTES {
        return Err(ModuleError::invalid(format!("identity longer than {MAX_IDENTITY_BYTES} bytes")));
    }
    Ok(())
}

/// Refuses external session data beyond the module's limits.
fn check_external(data: &SessionData) -> Result<(), String> {
    if data.movies.len() > MAX_MOVIES || data.participants.len() > MAX_PARTICIPANTS {
        return Err(format!("more than {MAX_MOVIES} movies or {MAX_PARTICIPANTS} participants"));
    }
    let mut ids = HashSet::new();
    for m in &data.movies {
        if !ids.insert(m.id) {
            return Err(format!("movie id {} appears twice", m.id));
        }
        if m.title.chars().count() > crate::request::MAX_TITLE_CHARS {
            return Err(format!("a title is longer than {} characters", crate::request::MAX_TITLE_CHARS));
        }
    }
    if data.participants.iter().any(|p| p.len() > MAX_IDENTITY_BYTES) {
        return Err(format!("a participant name is longer than {MAX_IDENTITY_BYTES} bytes"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chorus_core::auth::Identity;
    use chorus_core::config::Config;
    use chorus_core::server;

    /// A node without modules, to drive `Sessions` instances directly: two instances over one node are
    /// this node before and after a restart (same rows, fresh memory).
    async fn node() -> (server::Server, Context, tempfile::TempDir) {
        let dir = tempfile::tempdir().expect("temp dir");
        let config = Config::load_from([
            "chorus",
            "--listen",
            "127.0.0.1:0",
            "--disable-quic",
            "--data-dir",
            dir.path().to_str().expect("utf-8"),
        ])
        .expect("config");
        let server = server::start(config, vec![]).await.expect("node starts");
        let ctx = Context::new(server.node().clone());
        (server, ctx, dir)
    }

    fn data(snapshot: &Snapshot) -> SessionData {
        serde_json::from_str(&snapshot.json).expect("session JSON")
    }

    #[tokio::test]
    async fn a_fresh_instance_rebuilds_sessions_and_exact_totals_from_the_rows() {
        let (server, ctx, _dir) = node().await;
        let before = Sessions::new(None);
        let id = before.create(&ctx).await.expect("create");
        for who in ["ann", "bob", "cid"] {
            before.join(&ctx, &id, who, who.to_uppercase()).await.expect("join");
        }
        before.add_movie(&ctx, &id, "ann", "Heat".into()).await.expect("add");
        before.add_movie(&ctx, &id, "bob", "Alien".into()).await.expect("add");
        for who in ["ann", "bob", "cid"] {
            before.vote(&ctx, &id, who, 1, true).await.expect("vote");
        }
        before.vote(&ctx, &id, "cid", 2, true).await.expect("vote");
        let last = before.vote(&ctx, &id, "bob", 1, false).await.expect("unvote");

        let after = Sessions::new(None);
        let reloaded = after.snapshot(&ctx, &id).await.expect("reload");
        assert_eq!(data(&reloaded), data(&last));
        assert_eq!(data(&reloaded).participants, ["ANN", "BOB", "CID"]);
        assert_eq!(data(&reloaded).movies.iter().map(|m| m.votes).collect::<Vec<_>>(), [2, 1]);

        let refused = after.vote(&ctx, &id, "ann", 1, true).await.expect_err("second vote");
        assert_eq!(refused.code, ErrorCode::Conflict);
        let (snapshot, movie) = after.add_movie(&ctx, &id, "cid", "Up".into()).await.expect("add after reload");
        assert_eq!(movie.id, 3, "ids continue after the highest stored");
        assert_eq!(data(&snapshot).movies.len(), 3);
        let dup = after.add_movie(&ctx, &id, "cid", "heat".into()).await.expect_err("duplicate title");
        assert_eq!(dup.code, ErrorCode::Conflict);
        let rejoin = after.join(&ctx, &id, "ann", "Someone".into()).await.expect("rejoin");
        assert_eq!(data(&rejoin).participants, ["ANN", "BOB", "CID"]);
        server.shutdown();
    }

    #[tokio::test]
    async fn external_data_replaces_the_session_and_keeps_chorus_votes_withdrawable() {
        let (server, ctx, _dir) = node().await;
        let sessions = Sessions::new(None);
        let id = sessions.create(&ctx).await.expect("create");
        sessions.join(&ctx, &id, "ann", "Ann".into()).await.expect("join");
        sessions.add_movie(&ctx, &id, "ann", "Heat".into()).await.expect("add");
        sessions.add_movie(&ctx, &id, "ann", "Alien".into()).await.expect("add");
        sessions.vote(&ctx, &id, "ann", 1, true).await.expect("vote");
        sessions.vote(&ctx, &id, "ann", 2, true).await.expect("vote");

        // An external backend renames movie 1 and sets its total, drops movie 2, adds movie 7 and a
        // participant.
        let external: SessionData = serde_json::from_value(serde_json::json!({
            "createdAt": "2026-01-22T12:00:00.000Z",
            "movies": [{ "id": 1, "title": "Heat (1995)", "votes": 5 }, { "id": 7, "title": "Up", "votes": 2 }],
            "participants": ["Ann", "user2"]
        }))
        .expect("data");
        sessions.apply_external(&ctx, &id, external.clone()).await.expect("apply");
        assert_eq!(data(&sessions.snapshot(&ctx, &id).await.expect("snapshot")), external);

        // Ann's vote on movie 1 is one of the 5 and can be withdrawn; new movies continue after 7.
        let after = sessions.vote(&ctx, &id, "ann", 1, false).await.expect("unvote");
        assert_eq!(data(&after).movies[0].votes, 4);
        let (_, movie) = sessions.add_movie(&ctx, &id, "ann", "Alien".into()).await.expect("title free again");
        assert_eq!(movie.id, 8);
        let dup = sessions.add_movie(&ctx, &id, "ann", "heat (1995)".into()).await.expect_err("renamed title");
        assert_eq!(dup.code, ErrorCode::Conflict);

        // The rows say the same after a restart.
        let expected = data(&sessions.snapshot(&ctx, &id).await.expect("snapshot"));
        let reloaded = Sessions::new(None).snapshot(&ctx, &id).await.expect("reload");
        assert_eq!(data(&reloaded), expected);
        server.shutdown();
    }

    #[tokio::test]
    async fn unknown_sessions_are_adopted_from_external_data() {
        let (server, ctx, _dir) = node().await;
        let sessions = Sessions::new(None);
        let external: SessionData = serde_json::from_value(serde_json::json!({
            "createdAt": "2026-01-22T12:00:00.000Z",
            "movies": [{ "id": 1, "title": "Movie 1", "votes": 5 }],
            "participants": ["user1", "user1"]
        }))
        .expect("data");
        sessions.apply_external(&ctx, "012345", external.clone()).await.expect("adopt");
        let adopted = sessions.snapshot(&ctx, "012345").await.expect("known now");
        assert_eq!(data(&adopted), external);
        let guest = Identity::guest(1);
        let refused = sessions.vote(&ctx, "012345", &guest.sub, 1, true).await.expect_err("not a participant");
        assert_eq!(refused.code, ErrorCode::Forbidden);
        server.shutdown();
    }
}
