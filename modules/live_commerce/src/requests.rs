//! Reading and checking input — REST bodies and call arguments alike — with the messages clients see.
//! Every bound the seed states is checked here (title ≤ 255 characters, chat ≤ 500, ...); what the seed
//! leaves open is bounded too, so no input can grow a row or an event without limit.

use crate::error::CommerceError;
use crate::ids::is_uuid;
use crate::model::Status;
use serde_json::{Map, Value};

/// Longest title or product name (the seed: `title` max 255 characters).
pub const MAX_TITLE_CHARS: usize = 255;
/// Longest chat message (the seed: max 500 characters, after trimming).
pub const MAX_MESSAGE_CHARS: usize = 500;
/// Longest description: a few pages of text; keeps a session or product row far below the store's value
/// limit.
pub const MAX_DESCRIPTION_CHARS: usize = 10_000;
/// Longest short text field (category, a tag, a URL, a stream key, a display name).
pub const MAX_SHORT_CHARS: usize = 2048;
/// Most tags on a session: a handful is the norm; bounds the row and every listing that shows it.
pub const MAX_TAGS: usize = 20;
/// Most products linked to one session: the products list travels in full in `GET /api/sessions/:id` and
/// is searched on every showcase and click.
pub const MAX_SESSION_PRODUCTS: usize = 100;
/// Longest reaction type (`like`, `heart`, `fire`, `clap` or a custom word).
pub const MAX_REACTION_TYPE_CHARS: usize = 32;

/// A JSON body that must be an object.
pub fn json_object(body: &[u8]) -> Result<Map<String, Value>, CommerceError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(CommerceError::Invalid("The request body must be a JSON object".into())),
        Err(_) => Err(CommerceError::Invalid("The request body is not valid JSON".into())),
    }
}

/// Call arguments that must be an object.
pub fn arguments(args: Value, event: &str) -> Result<Map<String, Value>, CommerceError> {
    match args {
        Value::Object(map) => Ok(map),
        _ => Err(CommerceError::Invalid(format!("{event} takes an object of arguments"))),
    }
}

/// A required string field, trimmed, non-empty, at most `max` characters.
pub fn required_text(map: &Map<String, Value>, key: &str, max: usize) -> Result<String, CommerceError> {
    match map.get(key) {
        Some(Value::String(s)) if !s.trim().is_empty() => bounded(key, s.trim(), max),
        Some(Value::String(_)) | None | Some(Value::Null) => Err(CommerceError::Invalid(format!("{key} is required"))),
        Some(_) => Err(CommerceError::Invalid(format!("{key} must be a string"))),
    }
}

/// An optional string field (absent or `null` is `None`), trimmed, at most `max` characters.
pub fn optional_text(map: &Map<String, Value>, key: &str, max: usize) -> Result<Option<String>, CommerceError> {
    match map.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => bounded(key, s.trim(), max).map(Some),
        Some(_) => Err(CommerceError::Invalid(format!("{key} must be a string"))),
    }
}

fn bounded(key: &str, text: &str, max: usize) -> Result<String, CommerceError> {
    if text.chars().count() > max {
        return Err(CommerceError::Invalid(format!("{key} must be at most {max} characters")));
    }
    Ok(text.to_owned())
}

/// A required price: a finite number ≥ 0.
pub fn price(map: &Map<String, Value>) -> Result<f64, CommerceError> {
    match map.get("price") {
        None | Some(Value::Null) => Err(CommerceError::Invalid("price is required".into())),
        Some(Value::Number(n)) => match n.as_f64() {
            Some(p) if p.is_finite() && p >= 0.0 => Ok(p),
            _ => Err(CommerceError::Invalid("price must be a number of at least 0".into())),
        },
        Some(_) => Err(CommerceError::Invalid("price must be a number of at least 0".into())),
    }
}

/// Optional tags: an array of strings, each trimmed and bounded.
pub fn tags(map: &Map<String, Value>) -> Result<Vec<String>, CommerceError> {
    let items = match map.get("tags") {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(items)) if items.len() <= MAX_TAGS => items,
        Some(Value::Array(_)) => return Err(CommerceError::Invalid(format!("at most {MAX_TAGS} tags"))),
        Some(_) => return Err(CommerceError::Invalid("tags must be an array of strings".into())),
    };
    items
        .iter()
        .map(|t| match t {
            Value::String(s) => bounded("a tag", s.trim(), MAX_SHORT_CHARS),
            _ => Err(CommerceError::Invalid("tags must be an array of strings".into())),
        })
        .collect()
}

/// Optional `productIds`: distinct product UUIDs, in order.
pub fn product_ids(map: &Map<String, Value>) -> Result<Vec<String>, CommerceError> {
    let items = match map.get("productIds") {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(items)) if items.len() <= MAX_SESSION_PRODUCTS => items,
        Some(Value::Array(_)) => {
            return Err(CommerceError::Invalid(format!("at most {MAX_SESSION_PRODUCTS} products per session")));
        }
        Some(_) => return Err(CommerceError::Invalid("productIds must be an array of product ids".into())),
    };
    let mut ids: Vec<String> = Vec::with_capacity(items.len());
    for item in items {
        let Value::String(id) = item else {
            return Err(CommerceError::Invalid("productIds must be an array of product ids".into()));
        };
        if ids.contains(id) {
            return Err(CommerceError::Invalid(format!("product {id} is listed twice")));
        }
        ids.push(id.clone());
    }
    Ok(ids)
}

/// An optional boolean `key`.
pub fn optional_bool(map: &Map<String, Value>, key: &str) -> Result<Option<bool>, CommerceError> {
    match map.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(_) => Err(CommerceError::Invalid(format!("{key} must be true or false"))),
    }
}

/// An optional display position `key`: a whole number from 0.
pub fn optional_order(map: &Map<String, Value>, key: &str) -> Result<Option<u32>, CommerceError> {
    match map.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .map(Some)
            .ok_or_else(|| CommerceError::Invalid(format!("{key} must be a whole number of at least 0"))),
        Some(_) => Err(CommerceError::Invalid(format!("{key} must be a whole number of at least 0"))),
    }
}

/// A required status, one of the four.
pub fn status(map: &Map<String, Value>) -> Result<Status, CommerceError> {
    let invalid = || CommerceError::Invalid("Invalid status. Must be one of: scheduled, live, paused, ended".into());
    match map.get("status") {
        Some(Value::String(s)) => Status::parse(s).ok_or_else(invalid),
        _ => Err(invalid()),
    }
}

/// The `sessionId` of call arguments: a session that cannot exist is not found.
pub fn session_id(map: &Map<String, Value>) -> Result<String, CommerceError> {
    match map.get("sessionId") {
        Some(Value::String(id)) => checked_session_id(id).map(str::to_owned),
        _ => Err(CommerceError::Invalid("sessionId is required".into())),
    }
}

/// A session id as given: one that is no UUID names no session.
pub fn checked_session_id(id: &str) -> Result<&str, CommerceError> {
    if is_uuid(id) { Ok(id) } else { Err(CommerceError::not_found("Session")) }
}

/// A required product id field (`productId`).
pub fn product_id(map: &Map<String, Value>) -> Result<String, CommerceError> {
    match map.get("productId") {
        Some(Value::String(id)) => Ok(id.clone()),
        _ => Err(CommerceError::Invalid("productId is required".into())),
    }
}

/// The `productId` of a showcase: a product id, or `null` to clear. It must be given.
pub fn showcase_product(map: &Map<String, Value>) -> Result<Option<String>, CommerceError> {
    match map.get("productId") {
        Some(Value::Null) => Ok(None),
        Some(Value::String(id)) => Ok(Some(id.clone())),
        _ => Err(CommerceError::Invalid("productId is required (a product id, or null to clear)".into())),
    }
}

/// A reaction `type`: 1–32 letters, digits, `-` or `_`.
pub fn reaction_type(map: &Map<String, Value>) -> Result<String, CommerceError> {
    match map.get("type") {
        Some(Value::String(t)) => checked_reaction_type(t).map(str::to_owned),
        _ => Err(invalid_reaction_type()),
    }
}

/// A reaction type as given: 1 to [`MAX_REACTION_TYPE_CHARS`] letters, digits, `-` or `_`.
pub fn checked_reaction_type(kind: &str) -> Result<&str, CommerceError> {
    let name = !kind.is_empty()
        && kind.len() <= MAX_REACTION_TYPE_CHARS
        && kind.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if name { Ok(kind) } else { Err(invalid_reaction_type()) }
}

fn invalid_reaction_type() -> CommerceError {
    CommerceError::Invalid(format!(
        "type must be a reaction name of 1 to {MAX_REACTION_TYPE_CHARS} letters, digits, '-' or '_'"
    ))
}

/// A point in time given as milliseconds since the epoch or as an ISO-8601 / RFC 3339 UTC time (the
/// `createdAt` the API hands out); `field` names it in the error.
pub fn instant(text: &str, field: &str) -> Result<u64, CommerceError> {
    if let Ok(ms) = text.parse::<u64>() {
        return Ok(ms);
    }
    humantime::parse_rfc3339_weak(text)
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .and_then(|d| u64::try_from(d.as_millis()).ok())
        .ok_or_else(|| {
            CommerceError::Invalid(format!(
                "{field} must be a time such as 2025-11-14T12:00:00.000Z or milliseconds since 1970"
            ))
        })
}

/// A chat message: trimmed, 1–500 characters.
pub fn chat_message(map: &Map<String, Value>) -> Result<String, CommerceError> {
    match map.get("message") {
        Some(Value::String(m)) => {
            let m = m.trim();
            if m.is_empty() {
                return Err(CommerceError::Invalid("Message cannot be empty".into()));
            }
            if m.chars().count() > MAX_MESSAGE_CHARS {
                return Err(CommerceError::Invalid(format!(
                    "Message cannot be longer than {MAX_MESSAGE_CHARS} characters"
                )));
            }
            Ok(m.to_owned())
        }
        _ => Err(CommerceError::Invalid("message is required".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn map(v: Value) -> Map<String, Value> {
        v.as_object().cloned().expect("object")
    }

    #[test]
    fn chat_messages_are_trimmed_and_bounded() {
        assert_eq!(chat_message(&map(json!({"message": "  hi  "}))).unwrap(), "hi");
        assert!(chat_message(&map(json!({"message": "   "}))).is_err());
        assert!(chat_message(&map(json!({"message": "é".repeat(500)}))).is_ok());
        assert!(chat_message(&map(json!({"message": "é".repeat(501)}))).is_err());
        assert!(chat_message(&map(json!({"message": 5}))).is_err());
    }

    #[test]
    fn reaction_types() {
        assert_eq!(reaction_type(&map(json!({"type": "heart"}))).unwrap(), "heart");
        assert!(reaction_type(&map(json!({"type": "he art"}))).is_err());
        assert!(reaction_type(&map(json!({"type": "x".repeat(33)}))).is_err());
    }

    #[test]
    fn fields() {
        let body = map(json!({"title": " T ", "tags": ["a", " b "], "productIds": ["x", "y"], "price": 1.5}));
        assert_eq!(required_text(&body, "title", MAX_TITLE_CHARS).unwrap(), "T");
        assert!(required_text(&map(json!({"title": "x".repeat(256)})), "title", MAX_TITLE_CHARS).is_err());
        assert_eq!(tags(&body).unwrap(), ["a", "b"]);
        assert_eq!(product_ids(&body).unwrap(), ["x", "y"]);
        assert!(product_ids(&map(json!({"productIds": ["x", "x"]}))).is_err());
        assert_eq!(price(&body).unwrap(), 1.5);
        assert!(price(&map(json!({"price": -1}))).is_err());
        assert_eq!(status(&map(json!({"status": "live"}))).unwrap(), Status::Live);
        assert!(status(&map(json!({"status": "gone"}))).is_err());
        assert_eq!(showcase_product(&map(json!({"productId": null}))).unwrap(), None);
        assert!(showcase_product(&map(json!({}))).is_err());
        assert!(json_object(b"[1]").is_err());
        assert!(json_object(b"{").is_err());
        assert!(json_object(b"").unwrap().is_empty());
    }
}
