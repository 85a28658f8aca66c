//! The seeds' Socket.IO face (root namespace): `socket.emit('join-session', sessionID)` joins the session's
//! topic, whose `joined-session` snapshot and `session-update` / `session-expired` events reach the socket
//! as emits; an unknown session answers the seed's `error` event. Every other event calls `movies.<event>`
//! (`socket.emit('vote', { sessionID, movieId }, ack)`).

use crate::sessions::topic;
use chorus_core::socketio::Namespace;
use serde_json::Value;

/// The seeds' event that joins a session.
pub const JOIN_SESSION: &str = "join-session";

/// The root namespace's movie-voting bindings.
pub fn socketio() -> Namespace {
    Namespace::new("/").subscribe(JOIN_SESSION, session_topic).calls(crate::NAME)
}

/// The topic a `join-session` argument names: the seeds send the id as a bare string of digits; an object
/// `{ "sessionID": "…" }` (the REST bodies' shape) works too. Anything else is another module's session
/// (the root namespace is shared), so it is left to the next binding.
fn session_topic(args: &Value) -> Option<Result<String, String>> {
    let id = match args {
        Value::String(id) => id.as_str(),
        Value::Object(fields) => fields.get("sessionID")?.as_str()?,
        _ => return None,
    };
    let digits = !id.is_empty() && id.len() <= 20 && id.bytes().all(|b| b.is_ascii_digit());
    digits.then(|| Ok(topic(id)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_seeds_bare_id_and_the_rest_body_name_a_session() {
        assert_eq!(session_topic(&json!("482913")), Some(Ok("movies/session/482913".to_owned())));
        assert_eq!(session_topic(&json!({ "sessionID": "482913" })), Some(Ok("movies/session/482913".to_owned())));
    }

    #[test]
    fn other_shapes_are_left_to_other_modules() {
        assert_eq!(session_topic(&json!("b3f1c2d4-live")), None);
        assert_eq!(session_topic(&json!({ "sessionId": "482913" })), None);
        assert_eq!(session_topic(&json!(482913)), None);
        assert_eq!(session_topic(&json!("")), None);
    }
}
