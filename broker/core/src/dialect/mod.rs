//! Compat dialects: an existing app's JSON-over-WebSocket API served on the broker's port.
//!
//! A dialect is vocabulary only. The module that owns the domain implements [`JsonDialect`] (message
//! names, field names, how a key such as an event id maps to a topic) and lists it in
//! [`Module::dialects`](crate::module::Module::dialects); the node serves it (`host`) the same way for
//! every dialect: the upgrade, the token check with 1008 closes, client ids, a timestamp on every server
//! message, subscriptions through the registry with the owning module's `authorize` and `snapshot`,
//! per-dialect statistics, and fan-out encoded once per publish for all of the dialect's clients. No
//! domain logic lives here.

pub(crate) mod host;

use chorus_protocol::Payload;
use serde_json::Value;
use std::time::{Duration, UNIX_EPOCH};

/// What a client message asks for.
#[derive(Debug, Clone, PartialEq)]
pub enum DialectRequest {
    /// Subscribe to the topic of this key.
    Subscribe(Value),
    /// Unsubscribe from the topic of this key.
    Unsubscribe(Value),
    /// Keepalive; answered with [`JsonDialect::pong`].
    Ping,
    /// Connection statistics; answered with [`JsonDialect::stats`].
    Stats,
}

/// Statistics of one dialect on this node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DialectStats {
    /// Connected clients of this dialect.
    pub clients: usize,
    /// Distinct keys (topics) with at least one subscribed client of this dialect.
    pub subscribed_keys: usize,
}

/// The vocabulary of a JSON WebSocket API. Every `Value` a method returns must be a JSON object; the
/// host adds the timestamp field to it.
pub trait JsonDialect: Send + Sync + 'static {
    /// The plain path and, optionally, a path with a `{key}` segment whose connections are subscribed to
    /// that key on connect (e.g. `("/ws", Some("/ws/events/{key}"))`).
    fn paths(&self) -> (&'static str, Option<&'static str>);
    /// The topic a key names, or the error message for an invalid key.
    fn topic(&self, key: &Value) -> Result<String, String>;
    /// Decodes a client message; an `Err` is sent back as an error message and the connection stays open.
    fn decode(&self, message: &Value) -> Result<DialectRequest, String>;
    /// The first message of a connection.
    fn connected(&self, client_id: &str, key: Option<&Value>) -> Value;
    /// Confirms a subscription.
    fn subscribed(&self, key: &Value) -> Value;
    /// Confirms an unsubscription.
    fn unsubscribed(&self, key: &Value) -> Value;
    /// Answers a ping.
    fn pong(&self) -> Value;
    /// Answers a statistics request.
    fn stats(&self, stats: DialectStats) -> Value;
    /// An error message.
    fn error(&self, message: &str) -> Value;
    /// The error message for a client message that is not JSON.
    fn invalid_json_message(&self) -> &'static str;
    /// A topic event as this dialect's message, or `None` to not forward it.
    fn event(&self, topic: &str, payload: &Payload) -> Option<Value>;
    /// Close reason (code 1008) when no token is presented, or `None` when guests are allowed.
    fn missing_token_reason(&self) -> Option<&'static str>;
    /// Close reason (code 1008) for an invalid or expired token.
    fn invalid_token_reason(&self) -> &'static str;
    /// The client id announced in [`JsonDialect::connected`].
    fn client_id(&self, conn_id: u64, now_ms: u64) -> String;
    /// The timestamp field added to every server message (ISO-8601 UTC, milliseconds), if any.
    fn timestamp_field(&self) -> Option<&'static str> {
        Some("timestamp")
    }
}

/// ISO-8601 UTC with milliseconds, e.g. `2024-11-11T10:30:00.000Z`.
pub fn iso8601(now_ms: u64) -> String {
    humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_millis(now_ms)).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_iso8601_with_milliseconds() {
        assert_eq!(iso8601(1_731_321_000_000), "2024-11-11T10:30:00.000Z");
        assert_eq!(iso8601(1_731_321_000_123), "2024-11-11T10:30:00.123Z");
        // JavaScript's `toISOString()` on the epoch, leap days and century years.
        assert_eq!(iso8601(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(iso8601(1_769_083_200_000), "2026-01-22T12:00:00.000Z");
        assert_eq!(iso8601(951_782_400_123), "2000-02-29T00:00:00.123Z");
        assert_eq!(iso8601(4_107_542_399_999), "2100-02-28T23:59:59.999Z");
        assert_eq!(iso8601(1_735_689_599_000), "2024-12-31T23:59:59.000Z");
    }
}
