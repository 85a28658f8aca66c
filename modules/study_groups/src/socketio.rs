//! The seed's Socket.IO face, namespace `/study-groups`: a token is required (`auth.token` or
//! `?token=`); `joinSession { sessionId }` joins the session's topic (its `session.state` snapshot and
//! every event published there reach the socket as emits), `leaveSession { sessionId }` leaves it, and any
//! other event calls `study.<event>` (`socket.emit("submitEvent", { sessionId, eventType }, ack)`).

use crate::envelope::topic;
use crate::requests;
use chorus_core::socketio::Namespace;
use serde_json::Value;

/// The seed's namespace.
pub const NAMESPACE: &str = "/study-groups";
/// The seed's event that joins a session.
pub const JOIN_SESSION: &str = "joinSession";
/// The seed's event that leaves a session.
pub const LEAVE_SESSION: &str = "leaveSession";

/// The `/study-groups` namespace's bindings.
pub fn socketio() -> Namespace {
    Namespace::new(NAMESPACE)
        .require_token()
        .subscribe(JOIN_SESSION, session_topic)
        .unsubscribe(LEAVE_SESSION, session_topic)
        .calls(crate::NAME)
}

/// The topic `{ "sessionId": "…" }` names (a bare id string works too). The namespace is the module's
/// own, so anything else is refused with a message rather than left to another binding.
fn session_topic(args: &Value) -> Option<Result<String, String>> {
    let id = match args {
        Value::String(id) => Some(id.as_str()),
        Value::Object(fields) => fields.get("sessionId").and_then(Value::as_str),
        _ => None,
    };
    Some(match id {
        Some(id) => requests::id_text("sessionId", id).map(|id| topic(&id)).map_err(|e| e.to_string()),
        None => Err("sessionId is required: { sessionId: \"…\" }".to_owned()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_seeds_argument_names_a_session() {
        assert_eq!(session_topic(&json!({"sessionId": "abc-1"})), Some(Ok("study/session/abc-1".to_owned())));
        assert_eq!(session_topic(&json!("abc-1")), Some(Ok("study/session/abc-1".to_owned())));
        assert!(matches!(session_topic(&json!({"sessionID": "abc"})), Some(Err(_))));
        assert!(matches!(session_topic(&json!({"sessionId": "a/b"})), Some(Err(_))));
        assert!(matches!(session_topic(&json!(7)), Some(Err(_))));
    }
}
