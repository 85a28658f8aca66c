//! The events published on a session's topic `study/session/{id}`: envelopes `{ "event": E, "data": D }`
//! with the seed's event names and fields, every `data` carrying `timestamp`. The Socket.IO gateway emits
//! an envelope as `emit(E, D)`; native subscribers receive the envelope itself.

use crate::error::StudyError;
use chorus_core::dialect::iso8601;
use chorus_core::module::Context;
use serde_json::{Value, json};

/// A user's first connection joined the session.
pub const USER_JOINED: &str = "userJoined";
/// A user's last connection left the session (unsubscribe or disconnect).
pub const USER_LEFT: &str = "userLeft";
/// The facilitator started the session.
pub const SESSION_STARTED: &str = "session.started";
/// The facilitator ended the session.
pub const SESSION_ENDED: &str = "session.ended";
/// A round moved to its next status.
pub const ROUND_ADVANCED: &str = "round.advanced";
/// A round's prompt changed.
pub const PROMPT_UPDATED: &str = "prompt.updated";
/// A chat message was sent.
pub const CHAT_MESSAGE: &str = "chat.message";
/// The snapshot a joining subscriber gets: the session's whole state (`GET /group-sessions/:id`'s body).
pub const SESSION_STATE: &str = "session.state";

/// The topic of session `id`.
pub fn topic(id: &str) -> String {
    format!("{}{id}", crate::TOPIC_PREFIX)
}

/// `{ "event": event, "data": data + timestamp }` (every caller's `data` is an object).
pub fn envelope(event: &str, mut data: Value, now_ms: u64) -> Value {
    if let Some(fields) = data.as_object_mut() {
        fields.insert("timestamp".into(), Value::String(iso8601(now_ms)));
    }
    json!({ "event": event, "data": data })
}

/// Publishes `event` with `data` (plus `timestamp`) on session `session`'s topic; returns the data as
/// published (with its timestamp), for the answer of the operation that caused it.
pub fn publish(ctx: &Context, session: &str, event: &str, data: Value) -> Result<Value, StudyError> {
    let envelope = envelope(event, data, ctx.clock().now_ms());
    ctx.publish_value(&topic(session), &envelope).map_err(|e| StudyError::Internal(e.message))?;
    Ok(envelope["data"].clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelopes_carry_a_timestamp() {
        let e = envelope(USER_LEFT, json!({"userId": "u"}), 1_766_131_200_000);
        assert_eq!(e, json!({"event": "userLeft", "data": {"userId": "u", "timestamp": "2025-12-19T08:00:00.000Z"}}));
        assert_eq!(topic("s1"), "study/session/s1");
    }
}
