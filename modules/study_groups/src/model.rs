//! What the module keeps and what it answers: the records stored as MessagePack rows and the JSON views
//! REST and calls answer with. The events published on a session's topic are built in `envelope.rs`.

use crate::rounds::RoundStatus;
use chorus_core::dialect::iso8601;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Where a session stands: `CREATED → RUNNING → FINISHED`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum SessionStatus {
    /// Created, not started: prompts may be edited, rounds do not move.
    Created,
    /// Started by the facilitator: rounds advance, activity is accepted.
    Running,
    /// Ended by the facilitator: read-only.
    Finished,
}

impl SessionStatus {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Created => "CREATED",
            Self::Running => "RUNNING",
            Self::Finished => "FINISHED",
        }
    }
}

/// The activity event types of `POST /group-sessions/:sessionId/events`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum EventType {
    /// A vote, in `VOTING`, once per user and round.
    #[serde(rename = "PI_VOTE_SUBMIT")]
    Vote,
    /// A revote, in `REVOTING`, once per user and round, by users who voted in the round.
    #[serde(rename = "PI_REVOTE_SUBMIT")]
    Revote,
    /// The group's explanation (a shared card), in `EXPLAINING`, by the scribe, once per round.
    #[serde(rename = "GROUP_EXPLANATION_SUBMIT")]
    Explanation,
}

impl EventType {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Vote => "PI_VOTE_SUBMIT",
            Self::Revote => "PI_REVOTE_SUBMIT",
            Self::Explanation => "GROUP_EXPLANATION_SUBMIT",
        }
    }

    /// Parses a wire name.
    pub fn parse(text: &str) -> Option<Self> {
        [Self::Vote, Self::Revote, Self::Explanation].into_iter().find(|t| t.as_str() == text)
    }

    /// The round status this event is accepted in.
    pub fn phase(self) -> RoundStatus {
        match self {
            Self::Vote => RoundStatus::Voting,
            Self::Revote => RoundStatus::Revoting,
            Self::Explanation => RoundStatus::Explaining,
        }
    }

    /// The topic event announcing it.
    pub fn topic_event(self) -> &'static str {
        match self {
            Self::Vote => "vote.submitted",
            Self::Revote => "revote.submitted",
            Self::Explanation => "sharedCard.created",
        }
    }
}

/// A round as stored (inside its session's record).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoundRecord {
    /// Random UUID.
    pub id: String,
    /// 1-based position in the session.
    pub index: u32,
    /// Where the round stands.
    pub status: RoundStatus,
    /// The round's question, once set.
    pub prompt: Option<String>,
}

/// A session as stored: one row, changed only by compare-and-set (see `service.rs`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionRecord {
    /// Random UUID.
    pub id: String,
    /// The group the session belongs to (the chat routes name it).
    pub group_id: String,
    /// Subject of the creator, who runs the session.
    pub facilitator_id: String,
    /// Subject of the user who writes the shared cards.
    pub scribe_id: String,
    /// Where the session stands.
    pub status: SessionStatus,
    /// The rounds, in order (`rounds[i].index == i + 1`).
    pub rounds: Vec<RoundRecord>,
    /// Creation time, ms since the unix epoch.
    pub created_ms: u64,
    /// Start time.
    pub started_ms: Option<u64>,
    /// End time.
    pub ended_ms: Option<u64>,
}

impl SessionRecord {
    /// The round with 1-based `index`.
    pub fn round(&self, index: u32) -> Option<&RoundRecord> {
        index.checked_sub(1).and_then(|i| self.rounds.get(i as usize))
    }

    /// The current round: the first not `DONE` (the last one once all are).
    pub fn current_round(&self) -> Option<&RoundRecord> {
        self.rounds.iter().find(|r| r.status != RoundStatus::Done).or_else(|| self.rounds.last())
    }
}

/// An accepted activity event (vote, revote, shared card) as stored and as answered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ActivityRecord {
    /// Time-ordered id (`ids::ordered`), the paging cursor of `GET .../events`.
    pub id: String,
    /// The session.
    pub session_id: String,
    /// The round's id.
    pub round_id: String,
    /// The round's index.
    pub round_index: u32,
    /// Who submitted it.
    pub user_id: String,
    /// What it is.
    pub event_type: EventType,
    /// The client's payload (the answer, the explanation), as sent.
    pub payload: Value,
    /// Submission time, ISO-8601.
    pub created_at: String,
}

/// A chat message as stored and as answered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChatRecord {
    /// Time-ordered id (`ids::ordered`), the paging cursor of the chat history.
    pub id: String,
    /// The session.
    pub session_id: String,
    /// The round current when it was sent (or the one named).
    pub round_index: u32,
    /// The text, trimmed.
    pub message: String,
    /// Sender's subject.
    pub user_id: String,
    /// Sender's display name (the subject when the token has no name).
    pub user_name: String,
    /// Sending time, ISO-8601.
    pub timestamp: String,
}

/// A round as `GET /group-sessions/:sessionId` shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RoundView {
    /// Round id.
    pub id: String,
    /// 1-based index.
    pub round_index: u32,
    /// Status.
    pub status: RoundStatus,
    /// Prompt, `null` until set.
    pub prompt: Option<String>,
    /// Users who voted, sorted.
    pub voted: Vec<String>,
    /// Users who revoted, sorted.
    pub revoted: Vec<String>,
}

/// A present user.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PresentUser {
    /// Subject.
    pub user_id: String,
    /// Display name.
    pub user_name: String,
}

/// A session's full state, for a reload: `GET /group-sessions/:sessionId`, `study.getSession`, and the
/// snapshot of a subscribe.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionView {
    /// Session id.
    pub id: String,
    /// Session id again, under the name the seed's events use.
    pub session_id: String,
    /// Group id.
    pub group_id: String,
    /// Status.
    pub status: SessionStatus,
    /// The facilitator's subject.
    pub facilitator_id: String,
    /// The scribe's subject.
    pub scribe_id: String,
    /// Index of the current round.
    pub current_round_index: Option<u32>,
    /// The rounds, in order.
    pub rounds: Vec<RoundView>,
    /// Shared cards, by round.
    pub shared_cards: Vec<ActivityRecord>,
    /// Users present (on this node), sorted by id.
    pub presence: Vec<PresentUser>,
    /// ISO-8601 creation time.
    pub created_at: String,
    /// ISO-8601 start time.
    pub started_at: Option<String>,
    /// ISO-8601 end time.
    pub ended_at: Option<String>,
}

impl SessionView {
    /// The view of `session` with its activity rows and presence.
    pub fn new(session: &SessionRecord, activity: &[ActivityRecord], presence: Vec<PresentUser>) -> Self {
        let users = |index: u32, kind: EventType| {
            let mut users: Vec<String> = activity
                .iter()
                .filter(|a| a.round_index == index && a.event_type == kind)
                .map(|a| a.user_id.clone())
                .collect();
            users.sort();
            users
        };
        Self {
            id: session.id.clone(),
            session_id: session.id.clone(),
            group_id: session.group_id.clone(),
            status: session.status,
            facilitator_id: session.facilitator_id.clone(),
            scribe_id: session.scribe_id.clone(),
            current_round_index: session.current_round().map(|r| r.index),
            rounds: session
                .rounds
                .iter()
                .map(|r| RoundView {
                    id: r.id.clone(),
                    round_index: r.index,
                    status: r.status,
                    prompt: r.prompt.clone(),
                    voted: users(r.index, EventType::Vote),
                    revoted: users(r.index, EventType::Revote),
                })
                .collect(),
            shared_cards: activity.iter().filter(|a| a.event_type == EventType::Explanation).cloned().collect(),
            presence,
            created_at: iso8601(session.created_ms),
            started_at: session.started_ms.map(iso8601),
            ended_at: session.ended_ms.map(iso8601),
        }
    }
}

/// One page of activity events, oldest first.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EventPage {
    /// The events.
    pub events: Vec<ActivityRecord>,
    /// Pass as `after` for the next page; `null` on the last page.
    pub next_after: Option<String>,
}

/// One page of chat history, oldest first within the page.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ChatPage {
    /// The messages.
    pub messages: Vec<ChatRecord>,
    /// Pass as `before` for the previous (older) page; `null` when there is none.
    pub next_before: Option<String>,
}
