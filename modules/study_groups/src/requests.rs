//! Reading and checking input — call arguments and REST bodies alike arrive as a JSON object — with the
//! bounds the module enforces. Every refusal is a [`StudyError::Invalid`] (422 / `invalid_argument`).

use crate::error::StudyError;
use crate::model::EventType;
use crate::rounds::RoundStatus;
use serde_json::{Map, Value};

/// Most rounds in a session: a study session runs a handful of questions; the bound keeps one session's
/// record (rewritten on every lifecycle change) small.
pub const MAX_ROUNDS: u32 = 50;
/// Longest id (session, group, user) accepted: ids are store keys, which are bounded.
pub const MAX_ID_BYTES: usize = 128;
/// Longest prompt, in characters: a question, not a document.
pub const MAX_PROMPT_CHARS: usize = 2_000;
/// Longest chat message, in characters (after trimming), as common chat UIs bound a message.
pub const MAX_CHAT_CHARS: usize = 2_000;
/// Largest activity payload (the vote's answer, the explanation), as JSON bytes: an explanation is a few
/// paragraphs; the bound keeps every activity row and the session view small.
pub const MAX_PAYLOAD_BYTES: usize = 8_192;
/// Page size when a client names none.
pub const DEFAULT_PAGE: usize = 50;
/// Largest page a client may ask for: below the store's scan limit, and one answer stays well under 1 MB.
pub const MAX_PAGE: usize = 200;

/// A JSON object from a body or call arguments; an absent body (`null`) is an empty object.
pub fn object(value: Value) -> Result<Map<String, Value>, StudyError> {
    match value {
        Value::Object(map) => Ok(map),
        Value::Null => Ok(Map::new()),
        _ => Err(StudyError::Invalid("the arguments must be a JSON object".into())),
    }
}

/// A JSON object from raw body bytes (empty → empty object).
pub fn body(bytes: &[u8]) -> Result<Map<String, Value>, StudyError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    let value = serde_json::from_slice(bytes).map_err(|e| StudyError::Invalid(format!("malformed JSON body: {e}")))?;
    object(value)
}

/// An id: non-empty, at most [`MAX_ID_BYTES`], ASCII letters, digits, `-` and `_`.
pub fn id_text(what: &str, text: &str) -> Result<String, StudyError> {
    let ok = !text.is_empty()
        && text.len() <= MAX_ID_BYTES
        && text.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(text.to_owned())
    } else {
        Err(StudyError::Invalid(format!("{what} must be 1-{MAX_ID_BYTES} letters, digits, '-' or '_'")))
    }
}

/// A required id field.
pub fn id(args: &Map<String, Value>, field: &str) -> Result<String, StudyError> {
    match args.get(field) {
        Some(Value::String(text)) => id_text(field, text),
        _ => Err(StudyError::Invalid(format!("{field} is required (a string)"))),
    }
}

/// An optional id field.
pub fn optional_id(args: &Map<String, Value>, field: &str) -> Result<Option<String>, StudyError> {
    match args.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(_) => id(args, field).map(Some),
    }
}

/// A round index from a path segment: `1..=MAX_ROUNDS`.
pub fn round_index_text(text: &str) -> Result<u32, StudyError> {
    text.parse::<u32>()
        .ok()
        .filter(|i| (1..=MAX_ROUNDS).contains(i))
        .ok_or_else(|| StudyError::Invalid(format!("roundIndex must be an integer in 1..={MAX_ROUNDS}")))
}

/// A required round index field.
pub fn round_index(args: &Map<String, Value>) -> Result<u32, StudyError> {
    optional_round_index(args)?.ok_or_else(|| StudyError::Invalid("roundIndex is required".into()))
}

/// An optional round index field.
pub fn optional_round_index(args: &Map<String, Value>) -> Result<Option<u32>, StudyError> {
    match args.get("roundIndex") {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_u64()
            .and_then(|i| u32::try_from(i).ok())
            .filter(|i| (1..=MAX_ROUNDS).contains(i))
            .map(Some)
            .ok_or_else(|| StudyError::Invalid(format!("roundIndex must be an integer in 1..={MAX_ROUNDS}"))),
    }
}

/// The number of rounds of a new session (`rounds`, default 1).
pub fn rounds(args: &Map<String, Value>) -> Result<u32, StudyError> {
    match args.get("rounds") {
        None | Some(Value::Null) => Ok(1),
        Some(v) => v
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .filter(|n| (1..=MAX_ROUNDS).contains(n))
            .ok_or_else(|| StudyError::Invalid(format!("rounds must be an integer in 1..={MAX_ROUNDS}"))),
    }
}

/// The optional target status of an advance: when given, it must name a status.
pub fn target_status(args: &Map<String, Value>) -> Result<Option<RoundStatus>, StudyError> {
    match args.get("status") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => {
            RoundStatus::parse(s).map(Some).ok_or_else(|| StudyError::Invalid(format!("unknown round status {s:?}")))
        }
        Some(_) => Err(StudyError::Invalid("status must be a string".into())),
    }
}

/// Trimmed, non-empty text of at most `max` characters.
fn text(args: &Map<String, Value>, field: &str, max: usize) -> Result<String, StudyError> {
    let Some(Value::String(raw)) = args.get(field) else {
        return Err(StudyError::Invalid(format!("{field} is required (a string)")));
    };
    let trimmed = raw.trim();
    if trimmed.is_empty() {
        return Err(StudyError::Invalid(format!("{field} must not be empty")));
    }
    if trimmed.chars().count() > max {
        return Err(StudyError::Invalid(format!("{field} is longer than {max} characters")));
    }
    Ok(trimmed.to_owned())
}

/// A round's prompt.
pub fn prompt(args: &Map<String, Value>) -> Result<String, StudyError> {
    text(args, "prompt", MAX_PROMPT_CHARS)
}

/// A chat message.
pub fn message(args: &Map<String, Value>) -> Result<String, StudyError> {
    text(args, "message", MAX_CHAT_CHARS)
}

/// The activity event type.
pub fn event_type(args: &Map<String, Value>) -> Result<EventType, StudyError> {
    let name = args.get("eventType").and_then(Value::as_str).unwrap_or_default();
    EventType::parse(name).ok_or_else(|| {
        StudyError::Invalid("eventType must be PI_VOTE_SUBMIT, PI_REVOTE_SUBMIT or GROUP_EXPLANATION_SUBMIT".into())
    })
}

/// The activity payload (`payload`, default `null`), bounded by [`MAX_PAYLOAD_BYTES`].
pub fn payload(args: &Map<String, Value>) -> Result<Value, StudyError> {
    let value = args.get("payload").cloned().unwrap_or(Value::Null);
    if value.to_string().len() > MAX_PAYLOAD_BYTES {
        return Err(StudyError::Invalid(format!("payload is larger than {MAX_PAYLOAD_BYTES} bytes")));
    }
    Ok(value)
}

/// A page size (`limit`): `1..=MAX_PAGE`, default [`DEFAULT_PAGE`].
pub fn limit(value: Option<&str>) -> Result<usize, StudyError> {
    match value {
        None => Ok(DEFAULT_PAGE),
        Some(text) => text
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=MAX_PAGE).contains(n))
            .ok_or_else(|| StudyError::Invalid(format!("limit must be an integer in 1..={MAX_PAGE}"))),
    }
}

/// A paging cursor (`before` / `after`): an id the module handed out.
pub fn cursor(what: &str, value: Option<&str>) -> Result<Option<String>, StudyError> {
    value.map(|v| id_text(what, v)).transpose()
}

/// A string-valued field of call arguments, as the REST query would carry it.
pub fn query_field(args: &Map<String, Value>, field: &str) -> Result<Option<String>, StudyError> {
    match args.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(Value::Number(n)) => Ok(Some(n.to_string())),
        Some(_) => Err(StudyError::Invalid(format!("{field} must be a string or a number"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn map(v: Value) -> Map<String, Value> {
        object(v).unwrap()
    }

    #[test]
    fn text_is_trimmed_non_empty_and_bounded() {
        assert_eq!(message(&map(json!({"message": "  hi  "}))).unwrap(), "hi");
        assert!(message(&map(json!({"message": "   "}))).is_err());
        assert!(message(&map(json!({"message": 3}))).is_err());
        let long = "é".repeat(MAX_CHAT_CHARS + 1);
        assert!(message(&map(json!({ "message": long }))).is_err());
        assert!(message(&map(json!({ "message": "é".repeat(MAX_CHAT_CHARS) }))).is_ok());
    }

    #[test]
    fn ids_indexes_and_limits() {
        assert!(id_text("sessionId", "a-b_9").is_ok());
        assert!(id_text("sessionId", "a/b").is_err());
        assert!(id_text("sessionId", "").is_err());
        assert_eq!(round_index_text("3").unwrap(), 3);
        assert!(round_index_text("0").is_err());
        assert!(round_index_text("x").is_err());
        assert_eq!(limit(None).unwrap(), DEFAULT_PAGE);
        assert!(limit(Some("0")).is_err());
        assert!(limit(Some("201")).is_err());
        assert!(object(json!([1])).is_err());
        assert!(body(b"").unwrap().is_empty());
        assert!(body(b"{").is_err());
        assert_eq!(target_status(&map(json!({"status": "REVOTING"}))).unwrap(), Some(RoundStatus::Revoting));
        assert!(target_status(&map(json!({"status": "LATER"}))).is_err());
    }
}
