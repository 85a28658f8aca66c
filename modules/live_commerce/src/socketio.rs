//! The seed's Socket.IO face (root namespace `/`, shared with other modules): `join-session` —
//! `{ sessionId, userId? }` or the bare session id — subscribes the socket to the session's topic, whose
//! `viewer-count` snapshot and every event published there reach the socket as emits; `leave-session`
//! unsubscribes; disconnecting leaves too. The seed's other client → server events call
//! `commerce.<event>`. Who the socket is comes from its token (`auth.token`, `?token=` or
//! `Authorization`), not from the payload's `userId`; without a token it is a guest.

use crate::events::topic;
use crate::ids::is_uuid;
use chorus_core::socketio::Namespace;
use serde_json::Value;

/// The seed's events that call the module, each as `commerce.<event>`.
const CALLS: [&str; 5] = ["send-reaction", "send-message", "showcase-product", "track-product-click", "delete-message"];

/// The root namespace's live-commerce bindings. Each event is bound by name (not by a fallback): the root
/// namespace is shared, and the first module's fallback is the one that stays.
pub fn socketio() -> Namespace {
    let namespace =
        Namespace::new("/").subscribe("join-session", session_topic).unsubscribe("leave-session", session_topic);
    CALLS.iter().fold(namespace, |ns, event| ns.call(event, &format!("{}.{event}", crate::NAME)))
}

/// The topic a `join-session` / `leave-session` argument names: the bare id or `{ sessionId }`. Session ids
/// are UUIDs; anything else is another module's session (the root namespace is shared), so it is left to
/// the next binding.
fn session_topic(args: &Value) -> Option<Result<String, String>> {
    let id = match args {
        Value::String(id) => id.as_str(),
        Value::Object(fields) => fields.get("sessionId")?.as_str()?,
        _ => return None,
    };
    is_uuid(id).then(|| Ok(topic(id)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const ID: &str = "019ae3c1-2f00-7000-8000-000000000001";

    #[test]
    fn the_seeds_two_shapes_name_a_session() {
        let expected = Some(Ok(format!("commerce/session/{ID}")));
        assert_eq!(session_topic(&json!(ID)), expected);
        assert_eq!(session_topic(&json!({ "sessionId": ID, "userId": 1 })), expected);
    }

    #[test]
    fn other_shapes_are_left_to_other_modules() {
        assert_eq!(session_topic(&json!("482913")), None);
        assert_eq!(session_topic(&json!({ "sessionID": ID })), None);
        assert_eq!(session_topic(&json!(5)), None);
    }
}
