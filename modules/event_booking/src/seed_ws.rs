//! The seed-004 WebSocket JSON API as a dialect of the broker's JSON WebSocket host
//! (`chorus_core::dialect`): only vocabulary lives here — paths, message types, field names, close
//! reasons. The host does the connection, the token check, subscriptions (through this module's
//! `authorize` and `snapshot`), timestamps and fan-out.
//!
//! Client messages: `subscribe_event` / `unsubscribe_event` (`eventId`), `ping`, `get_stats`. Server
//! messages: `connection_established`, `subscribed`, `unsubscribed`, `pong`, `stats`, `error`, and the
//! topic events `seat_update`, `booking_created`, `booking_cancelled` forwarded as published.

use crate::requests;
use crate::service::topic;
use chorus_core::dialect::{DialectRequest, DialectStats, JsonDialect};
use chorus_core::protocol::Payload;
use rand::Rng;
use serde_json::{Value, json};

/// Characters of the random part of a client id (base 36, as the seed's `Math.random().toString(36)`).
const CLIENT_ID_RANDOM_CHARS: usize = 6;

/// The seed's dialect.
pub struct SeedDialect;

/// The event id a key names, as the number the seed's messages carry.
fn event_id(key: &Value) -> Result<u64, String> {
    requests::event_id(Some(key)).map_err(|e| e.to_string())
}

/// A key echoed back: the event id as a number when it is one, else as given.
fn echo(key: &Value) -> Value {
    event_id(key).map_or_else(|_| key.clone(), Value::from)
}

impl JsonDialect for SeedDialect {
    fn paths(&self) -> (&'static str, Option<&'static str>) {
        ("/ws", Some("/ws/events/{key}"))
    }

    fn topic(&self, key: &Value) -> Result<String, String> {
        event_id(key).map(topic)
    }

    fn decode(&self, message: &Value) -> Result<DialectRequest, String> {
        let Value::Object(fields) = message else {
            return Err("Invalid message format".into());
        };
        let kind = match fields.get("type") {
            None | Some(Value::Null) => return Err("Message type is required".into()),
            Some(Value::String(kind)) => kind.as_str(),
            Some(_) => return Err("Message type must be a string".into()),
        };
        match kind {
            "subscribe_event" => Ok(DialectRequest::Subscribe(Value::from(event_id_field(fields.get("eventId"))?))),
            "unsubscribe_event" => Ok(DialectRequest::Unsubscribe(Value::from(event_id_field(fields.get("eventId"))?))),
            "ping" => Ok(DialectRequest::Ping),
            "get_stats" => Ok(DialectRequest::Stats),
            other => Err(format!("Unknown message type: {other}")),
        }
    }

    fn connected(&self, client_id: &str, key: Option<&Value>) -> Value {
        match key {
            Some(key) => json!({"type": "connection_established", "clientId": client_id, "eventId": echo(key)}),
            None => json!({"type": "connection_established", "clientId": client_id}),
        }
    }

    fn subscribed(&self, key: &Value) -> Value {
        json!({"type": "subscribed", "eventId": echo(key)})
    }

    fn unsubscribed(&self, key: &Value) -> Value {
        json!({"type": "unsubscribed", "eventId": echo(key)})
    }

    fn pong(&self) -> Value {
        json!({"type": "pong"})
    }

    fn stats(&self, stats: DialectStats) -> Value {
        json!({"type": "stats", "data": {"totalClients": stats.clients, "eventSubscriptions": stats.subscribed_keys}})
    }

    fn error(&self, message: &str) -> Value {
        json!({"type": "error", "message": message})
    }

    fn invalid_json_message(&self) -> &'static str {
        "Invalid message format"
    }

    fn event(&self, _topic: &str, payload: &Payload) -> Option<Value> {
        // Topic events are already the seed's messages (without the timestamp the host adds).
        payload.decode::<Value>().ok().filter(Value::is_object)
    }

    fn missing_token_reason(&self) -> Option<&'static str> {
        Some("Authentication Required")
    }

    fn invalid_token_reason(&self) -> &'static str {
        "Invalid Token"
    }

    fn client_id(&self, conn_id: u64, now_ms: u64) -> String {
        // `ws_<ms>_<random>` like the seed's; the connection id keeps it unique on this node.
        let mut rng = rand::rng();
        let random: String =
            (0..CLIENT_ID_RANDOM_CHARS).map(|_| char::from_digit(rng.random_range(0..36), 36).unwrap_or('0')).collect();
        format!("ws_{now_ms}_{random}{}", base36(conn_id))
    }
}

fn event_id_field(value: Option<&Value>) -> Result<u64, String> {
    requests::event_id(value).map_err(|e| e.to_string())
}

fn base36(mut n: u64) -> String {
    let mut digits = Vec::new();
    loop {
        digits.push(char::from_digit((n % 36) as u32, 36).unwrap_or('0'));
        n /= 36;
        if n == 0 {
            break;
        }
    }
    digits.iter().rev().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_the_seed_client_messages() {
        let d = SeedDialect;
        assert_eq!(
            d.decode(&json!({"type": "subscribe_event", "eventId": 123})),
            Ok(DialectRequest::Subscribe(json!(123)))
        );
        assert_eq!(
            d.decode(&json!({"type": "subscribe_event", "eventId": "123"})),
            Ok(DialectRequest::Subscribe(json!(123)))
        );
        assert_eq!(
            d.decode(&json!({"type": "unsubscribe_event", "eventId": 9})),
            Ok(DialectRequest::Unsubscribe(json!(9)))
        );
        assert_eq!(d.decode(&json!({"type": "ping"})), Ok(DialectRequest::Ping));
        assert_eq!(d.decode(&json!({"type": "get_stats"})), Ok(DialectRequest::Stats));
        assert_eq!(d.decode(&json!({"type": "subscribe_event"})), Err("eventId is required".into()));
        assert_eq!(
            d.decode(&json!({"type": "subscribe_event", "eventId": [1]})),
            Err("eventId must be a positive integer".into())
        );
        assert_eq!(d.decode(&json!({"type": "dance"})), Err("Unknown message type: dance".into()));
        assert_eq!(d.decode(&json!({"eventId": 1})), Err("Message type is required".into()));
        assert_eq!(d.decode(&json!({"type": 5})), Err("Message type must be a string".into()));
        assert_eq!(d.decode(&json!([1])), Err("Invalid message format".into()));
    }

    #[test]
    fn client_ids_look_like_the_seed_and_differ() {
        let d = SeedDialect;
        let id = d.client_id(71, 1_699_123_456_789);
        let rest = id.strip_prefix("ws_1699123456789_").unwrap();
        assert!(rest.len() > CLIENT_ID_RANDOM_CHARS && rest.ends_with("1z"), "{id}");
        assert!(rest.chars().all(|c| c.is_ascii_digit() || c.is_ascii_lowercase()));
        assert_ne!(d.client_id(1, 5), d.client_id(2, 5));
        assert_eq!(base36(0), "0");
    }
}
