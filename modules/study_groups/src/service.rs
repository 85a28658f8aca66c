//! The domain operations, shared by REST, native calls and Socket.IO events.
//!
//! The store is the record. A session is one row changed only by compare-and-set, under its session's
//! lock on this node (held for writing) so its lifecycle events are published in commit order; activity
//! and chat hold the same lock for reading, so on one node they never interleave with a lifecycle change
//! (no vote lands after its round left `VOTING`) yet run concurrently with each other. Votes, revotes and shared
//! cards are claimed with insert-if-absent on `(round, type, user)`, so each is accepted exactly once
//! whatever the concurrency and whichever node takes it; only an accepted one is logged and published.

use crate::envelope::{self, PROMPT_UPDATED, ROUND_ADVANCED, SESSION_ENDED, SESSION_STARTED};
use crate::error::StudyError;
use crate::ids;
use crate::model::{
    ActivityRecord, ChatPage, ChatRecord, EventPage, EventType, PresentUser, RoundRecord, SessionRecord, SessionStatus,
    SessionView,
};
use crate::rounds::RoundStatus;
use crate::tables::{self, ACTIVITY, CHAT, EVENTS, SESSIONS, STATE};
use bytes::Bytes;
use chorus_core::auth::Identity;
use chorus_core::dialect::iso8601;
use chorus_core::module::Context;
use chorus_core::store::{MAX_SCAN_LIMIT, Scan};
use serde_json::{Value, json};
use std::hash::{BuildHasher, RandomState};
use std::ops::Bound;

/// Compare-and-set attempts of one session change before it gives up with a conflict. On one node the
/// session lock serializes changes, so a retry only happens when another node changed the row between
/// our read and write; eight such races in a row mean something else is wrong.
const CAS_ATTEMPTS: usize = 8;

/// Session locks: a lifecycle change holds its session's lock (for writing) across the store round trip
/// and the publish; 64 stripes keep unrelated sessions from waiting on each other.
const LOCKS: usize = 64;

/// A new session, as `POST /group-sessions` / `study.createSession` ask for it.
pub struct NewSession {
    /// The session's group.
    pub group_id: String,
    /// How many rounds.
    pub rounds: u32,
    /// Who writes the shared cards (default: the facilitator).
    pub scribe_id: Option<String>,
}

/// The study-group sessions of a node.
pub struct Study {
    locks: Box<[tokio::sync::RwLock<()>]>,
    hasher: RandomState,
}

/// The display name of an identity: its `name` claim, else its subject.
pub fn display_name(who: &Identity) -> String {
    who.name.clone().unwrap_or_else(|| who.sub.clone())
}

/// Guests (no token) may do nothing in study groups: identity is the seed's whole model.
pub fn require_user(who: &Identity) -> Result<(), StudyError> {
    if who.guest {
        return Err(StudyError::Unauthenticated("study groups need a token (JWT)".into()));
    }
    Ok(())
}

fn not_found(id: &str) -> StudyError {
    StudyError::NotFound(format!("session {id} not found"))
}

impl Default for Study {
    fn default() -> Self {
        Self { locks: (0..LOCKS).map(|_| tokio::sync::RwLock::new(())).collect(), hasher: RandomState::new() }
    }
}

impl Study {
    fn lock(&self, id: &str) -> &tokio::sync::RwLock<()> {
        &self.locks[(self.hasher.hash_one(id) as usize) % LOCKS]
    }

    /// Creates a session facilitated by `who`.
    pub async fn create(&self, ctx: &Context, who: &Identity, new: NewSession) -> Result<SessionView, StudyError> {
        require_user(who)?;
        let now = ctx.clock().now_ms();
        let id = ids::uuid();
        let record = SessionRecord {
            id: id.clone(),
            group_id: new.group_id,
            facilitator_id: who.sub.clone(),
            scribe_id: new.scribe_id.unwrap_or_else(|| who.sub.clone()),
            status: SessionStatus::Created,
            rounds: (1..=new.rounds)
                .map(|index| RoundRecord { id: ids::uuid(), index, status: RoundStatus::Pending, prompt: None })
                .collect(),
            created_ms: now,
            started_ms: None,
            ended_ms: None,
        };
        let claimed = ctx.store().insert_if_absent(SESSIONS, &id, STATE, tables::encode(&record)?, None).await?;
        if !claimed.applied {
            return Err(StudyError::Internal("a fresh session id was taken".into()));
        }
        Ok(SessionView::new(&record, &[], Vec::new()))
    }

    /// The stored record of session `id` and its raw bytes (for compare-and-set).
    async fn record(&self, ctx: &Context, id: &str) -> Result<(SessionRecord, Bytes), StudyError> {
        let raw = ctx.store().get(SESSIONS, id, STATE).await?.ok_or_else(|| not_found(id))?;
        Ok((tables::decode("session", &raw)?, raw))
    }

    /// Session `id`, which must exist.
    pub async fn session(&self, ctx: &Context, id: &str) -> Result<SessionRecord, StudyError> {
        Ok(self.record(ctx, id).await?.0)
    }

    /// Changes session `id` with `change` (which may refuse) and stores the result by compare-and-set;
    /// the caller holds the session's lock.
    async fn change<T>(
        &self,
        ctx: &Context,
        id: &str,
        mut change: impl FnMut(&mut SessionRecord) -> Result<T, StudyError>,
    ) -> Result<(SessionRecord, T), StudyError> {
        for _ in 0..CAS_ATTEMPTS {
            let (mut record, raw) = self.record(ctx, id).await?;
            let out = change(&mut record)?;
            let outcome =
                ctx.store().update_if_equal(SESSIONS, id, STATE, &raw, tables::encode(&record)?, None).await?;
            if outcome.applied {
                return Ok((record, out));
            }
        }
        Err(StudyError::Conflict(format!("session {id} is changing concurrently; try again")))
    }

    /// The session's whole state: rounds with who voted and revoted, shared cards, presence.
    pub async fn view(&self, ctx: &Context, who: &Identity, id: &str) -> Result<SessionView, StudyError> {
        require_user(who)?;
        let record = self.session(ctx, id).await?;
        let activity = self.activity(ctx, id).await?;
        let presence = ctx
            .roster()
            .members(&envelope::topic(id))
            .await
            .into_iter()
            .map(|m| PresentUser { user_id: m.user, user_name: m.name })
            .collect();
        Ok(SessionView::new(&record, &activity, presence))
    }

    /// Every activity row of a session (bounded by rounds × participants, see `tables.rs`).
    async fn activity(&self, ctx: &Context, id: &str) -> Result<Vec<ActivityRecord>, StudyError> {
        let mut rows = Vec::new();
        let mut scan = Scan::all(MAX_SCAN_LIMIT);
        loop {
            let page = ctx.store().scan(ACTIVITY, id, &scan).await?;
            for row in &page.rows {
                rows.push(tables::decode("activity", &row.value)?);
            }
            match page.next {
                Some(token) => scan = scan.after(Some(token)),
                None => return Ok(rows),
            }
        }
    }

    fn facilitator(record: &SessionRecord, who: &Identity) -> Result<(), StudyError> {
        if record.facilitator_id != who.sub {
            return Err(StudyError::Forbidden("only the session's facilitator may do this".into()));
        }
        Ok(())
    }

    /// `CREATED → RUNNING`, by the facilitator; publishes `session.started`.
    pub async fn start(&self, ctx: &Context, who: &Identity, id: &str) -> Result<Value, StudyError> {
        require_user(who)?;
        let _lock = self.lock(id).write().await;
        let now = ctx.clock().now_ms();
        self.change(ctx, id, |record| {
            Self::facilitator(record, who)?;
            if record.status != SessionStatus::Created {
                return Err(StudyError::Conflict(format!("session is {}, not CREATED", record.status.as_str())));
            }
            record.status = SessionStatus::Running;
            record.started_ms = Some(now);
            Ok(())
        })
        .await?;
        let data = json!({ "sessionId": id, "status": "RUNNING", "startedBy": who.sub });
        envelope::publish(ctx, id, SESSION_STARTED, data)
    }

    /// `RUNNING → FINISHED`, by the facilitator; publishes `session.ended`.
    pub async fn end(&self, ctx: &Context, who: &Identity, id: &str) -> Result<Value, StudyError> {
        require_user(who)?;
        let _lock = self.lock(id).write().await;
        let now = ctx.clock().now_ms();
        self.change(ctx, id, |record| {
            Self::facilitator(record, who)?;
            if record.status != SessionStatus::Running {
                return Err(StudyError::Conflict(format!("session is {}, not RUNNING", record.status.as_str())));
            }
            record.status = SessionStatus::Finished;
            record.ended_ms = Some(now);
            Ok(())
        })
        .await?;
        envelope::publish(ctx, id, SESSION_ENDED, json!({ "sessionId": id, "status": "FINISHED" }))
    }

    /// Moves round `index` to its next status, by the facilitator, in a running session, once every
    /// earlier round is `DONE`; `to`, when given, must be that next status. Publishes `round.advanced`.
    pub async fn advance(
        &self,
        ctx: &Context,
        who: &Identity,
        id: &str,
        index: u32,
        to: Option<RoundStatus>,
    ) -> Result<Value, StudyError> {
        require_user(who)?;
        let _lock = self.lock(id).write().await;
        let (_, (round_id, status)) = self
            .change(ctx, id, |record| {
                Self::facilitator(record, who)?;
                if record.status != SessionStatus::Running {
                    return Err(StudyError::Conflict(format!("session is {}, not RUNNING", record.status.as_str())));
                }
                let i = index.checked_sub(1).map(|i| i as usize).filter(|i| *i < record.rounds.len());
                let i = i.ok_or_else(|| StudyError::NotFound(format!("session {id} has no round {index}")))?;
                if record.rounds[..i].iter().any(|r| r.status != RoundStatus::Done) {
                    return Err(StudyError::Conflict(format!("round {index} waits for the rounds before it")));
                }
                let round = &mut record.rounds[i];
                let next = round
                    .status
                    .next()
                    .ok_or_else(|| StudyError::Conflict(format!("round {index} is DONE; it cannot advance")))?;
                if let Some(to) = to
                    && to != next
                {
                    return Err(StudyError::Conflict(format!(
                        "round {index} is {}: it can only become {}, not {}",
                        round.status.as_str(),
                        next.as_str(),
                        to.as_str()
                    )));
                }
                round.status = next;
                Ok((round.id.clone(), next))
            })
            .await?;
        let data = json!({ "sessionId": id, "roundId": round_id, "roundIndex": index, "status": status.as_str() });
        envelope::publish(ctx, id, ROUND_ADVANCED, data)
    }

    /// Sets round `index`'s prompt, by the facilitator, while the round is not `DONE` and the session not
    /// finished. Publishes `prompt.updated`.
    pub async fn update_prompt(
        &self,
        ctx: &Context,
        who: &Identity,
        id: &str,
        index: u32,
        prompt: String,
    ) -> Result<Value, StudyError> {
        require_user(who)?;
        let _lock = self.lock(id).write().await;
        let (_, round_id) = self
            .change(ctx, id, |record| {
                Self::facilitator(record, who)?;
                if record.status == SessionStatus::Finished {
                    return Err(StudyError::Conflict("session is FINISHED".into()));
                }
                let i = index.checked_sub(1).map(|i| i as usize).filter(|i| *i < record.rounds.len());
                let i = i.ok_or_else(|| StudyError::NotFound(format!("session {id} has no round {index}")))?;
                let round = &mut record.rounds[i];
                if round.status == RoundStatus::Done {
                    return Err(StudyError::Conflict(format!("round {index} is DONE")));
                }
                round.prompt = Some(prompt.clone());
                Ok(round.id.clone())
            })
            .await?;
        let data = json!({ "sessionId": id, "roundId": round_id, "roundIndex": index, "prompt": prompt });
        envelope::publish(ctx, id, PROMPT_UPDATED, data)
    }

    /// An activity event: a vote (in `VOTING`, once per user and round), a revote (in `REVOTING`, once,
    /// only by users who voted in the round), or the group's explanation (in `EXPLAINING`, once per round,
    /// by the scribe). `index` defaults to the current round. Publishes `vote.submitted`,
    /// `revote.submitted` or `sharedCard.created`.
    pub async fn submit(
        &self,
        ctx: &Context,
        who: &Identity,
        id: &str,
        kind: EventType,
        index: Option<u32>,
        payload: Value,
    ) -> Result<ActivityRecord, StudyError> {
        require_user(who)?;
        let _lock = self.lock(id).read().await;
        let record = self.session(ctx, id).await?;
        if record.status != SessionStatus::Running {
            return Err(StudyError::Conflict(format!("session is {}, not RUNNING", record.status.as_str())));
        }
        let round = match index {
            Some(i) => record.round(i).ok_or_else(|| StudyError::NotFound(format!("session {id} has no round {i}")))?,
            None => record.current_round().ok_or_else(|| StudyError::Internal("session without rounds".into()))?,
        };
        if round.status != kind.phase() {
            return Err(StudyError::Conflict(format!(
                "{} is accepted in {} only; round {} is {}",
                kind.as_str(),
                kind.phase().as_str(),
                round.index,
                round.status.as_str()
            )));
        }
        let store = ctx.store();
        let user = match kind {
            EventType::Vote => who.sub.as_str(),
            EventType::Revote => {
                let voted =
                    store.get(ACTIVITY, id, &tables::activity_ck(round.index, EventType::Vote, &who.sub)).await?;
                if voted.is_none() {
                    return Err(StudyError::Forbidden("only users who voted in this round may revote".into()));
                }
                who.sub.as_str()
            }
            EventType::Explanation => {
                if record.scribe_id != who.sub {
                    return Err(StudyError::Forbidden("only the session's scribe may submit the explanation".into()));
                }
                ""
            }
        };
        let now = ctx.clock().now_ms();
        let activity = ActivityRecord {
            id: ids::ordered(now),
            session_id: id.to_owned(),
            round_id: round.id.clone(),
            round_index: round.index,
            user_id: who.sub.clone(),
            event_type: kind,
            payload,
            created_at: iso8601(now),
        };
        let value = tables::encode(&activity)?;
        let ck = tables::activity_ck(round.index, kind, user);
        if !store.insert_if_absent(ACTIVITY, id, &ck, value.clone(), None).await?.applied {
            let what = match kind {
                EventType::Vote => "you already voted in this round",
                EventType::Revote => "you already revoted in this round",
                EventType::Explanation => "this round already has its shared card",
            };
            return Err(StudyError::Conflict(what.into()));
        }
        store.put(EVENTS, id, &tables::ordered_ck(&activity.id), value, None).await?;
        let mut data = json!({
            "sessionId": id,
            "roundId": activity.round_id,
            "roundIndex": activity.round_index,
        });
        if kind != EventType::Explanation {
            data["userId"] = Value::from(who.sub.as_str());
            data["eventType"] = Value::from(kind.as_str());
        }
        envelope::publish(ctx, id, kind.topic_event(), data)?;
        Ok(activity)
    }

    /// A chat message in session `id` of group `group`, by any user, while the session is not finished.
    /// Persisted, then published as `chat.message`.
    pub async fn chat(
        &self,
        ctx: &Context,
        who: &Identity,
        group: &str,
        id: &str,
        message: String,
    ) -> Result<ChatRecord, StudyError> {
        require_user(who)?;
        let _lock = self.lock(id).read().await;
        let record = self.in_group(ctx, group, id).await?;
        if record.status == SessionStatus::Finished {
            return Err(StudyError::Conflict("session is FINISHED".into()));
        }
        let now = ctx.clock().now_ms();
        let chat = ChatRecord {
            id: ids::ordered(now),
            session_id: id.to_owned(),
            round_index: record.current_round().map_or(1, |r| r.index),
            message,
            user_id: who.sub.clone(),
            user_name: display_name(who),
            timestamp: iso8601(now),
        };
        ctx.store().put(CHAT, id, &tables::ordered_ck(&chat.id), tables::encode(&chat)?, None).await?;
        let data = json!({
            "sessionId": id,
            "roundIndex": chat.round_index,
            "message": chat.message,
            "userId": chat.user_id,
            "userName": chat.user_name,
        });
        envelope::publish(ctx, id, envelope::CHAT_MESSAGE, data)?;
        Ok(chat)
    }

    /// Session `id`, which must belong to `group`.
    async fn in_group(&self, ctx: &Context, group: &str, id: &str) -> Result<SessionRecord, StudyError> {
        let record = self.session(ctx, id).await?;
        if record.group_id != group {
            return Err(StudyError::NotFound(format!("group {group} has no session {id}")));
        }
        Ok(record)
    }

    /// Activity events in submission order, after the cursor `after`.
    pub async fn events(
        &self,
        ctx: &Context,
        who: &Identity,
        id: &str,
        after: Option<String>,
        limit: usize,
    ) -> Result<EventPage, StudyError> {
        require_user(who)?;
        self.session(ctx, id).await?;
        let start = after.as_deref().map_or(Bound::Unbounded, |a| Bound::Excluded(tables::ordered_ck(a)));
        let scan = Scan::all(limit).range(start, Bound::Unbounded);
        let page = ctx.store().scan(EVENTS, id, &scan).await?;
        let events: Vec<ActivityRecord> =
            page.rows.iter().map(|r| tables::decode("event", &r.value)).collect::<Result<_, _>>()?;
        let next_after = if page.next.is_some() { events.last().map(|e| e.id.clone()) } else { None };
        Ok(EventPage { events, next_after })
    }

    /// Chat history, newest page first: the `limit` messages before the cursor `before` (the newest
    /// when absent), oldest first within the page.
    pub async fn chat_history(
        &self,
        ctx: &Context,
        who: &Identity,
        group: &str,
        id: &str,
        before: Option<String>,
        limit: usize,
    ) -> Result<ChatPage, StudyError> {
        require_user(who)?;
        self.in_group(ctx, group, id).await?;
        let end = before.as_deref().map_or(Bound::Unbounded, |b| Bound::Excluded(tables::ordered_ck(b)));
        let scan = Scan::all(limit).range(Bound::Unbounded, end).reversed();
        let page = ctx.store().scan(CHAT, id, &scan).await?;
        let mut messages: Vec<ChatRecord> =
            page.rows.iter().map(|r| tables::decode("chat", &r.value)).collect::<Result<_, _>>()?;
        messages.reverse();
        let next_before = if page.next.is_some() { messages.first().map(|m| m.id.clone()) } else { None };
        Ok(ChatPage { messages, next_before })
    }
}
