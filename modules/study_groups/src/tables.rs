//! The module's storage layout: table names, keys, and the MessagePack encoding of rows. Every row the
//! module reads or writes is addressed through here, and `README.md` documents the same layout.

use crate::error::StudyError;
use crate::model::EventType;
use bytes::Bytes;
use chorus_core::store::ClusteringKey;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Sessions: partition = session id, one row [`STATE`] (`SessionRecord`), compare-and-set on every change.
pub const SESSIONS: &str = "study_sessions";
/// Clustering key of a session's record.
pub const STATE: &[u8] = b"state";

/// Accepted votes, revotes and shared cards: partition = session id, clustering key = (round index,
/// event type, user id; the empty string for a shared card, one per round), value `ActivityRecord`.
/// Written with insert-if-absent, so each is accepted once, whatever the concurrency.
pub const ACTIVITY: &str = "study_activity";

/// The activity log in submission order: partition = session id, clustering key = the event's
/// time-ordered id, value `ActivityRecord`.
pub const EVENTS: &str = "study_events";

/// Chat: partition = session id, clustering key = the message's time-ordered id, value `ChatRecord`.
pub const CHAT: &str = "study_chat";

/// The clustering key of an activity row.
pub fn activity_ck(round_index: u32, kind: EventType, user: &str) -> Bytes {
    ClusteringKey::new().u64(u64::from(round_index)).str(kind.as_str()).str(user).build()
}

/// The clustering key of a row keyed by a time-ordered id (events, chat).
pub fn ordered_ck(id: &str) -> Bytes {
    ClusteringKey::new().str(id).build()
}

/// Encodes a row value (MessagePack with field names, so records can gain fields with serde defaults).
pub fn encode<T: Serialize>(value: &T) -> Result<Bytes, StudyError> {
    rmp_serde::to_vec_named(value).map(Bytes::from).map_err(|e| StudyError::Internal(format!("encoding a row: {e}")))
}

/// Decodes a row value written by [`encode`].
pub fn decode<T: DeserializeOwned>(what: &str, raw: &[u8]) -> Result<T, StudyError> {
    rmp_serde::from_slice(raw).map_err(|e| StudyError::Internal(format!("unreadable {what} row: {e}")))
}
