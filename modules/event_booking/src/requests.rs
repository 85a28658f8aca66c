//! Reading requests: JSON bodies (REST), call arguments (native) and client messages (seed dialect) all go
//! through these checks, so a missing or ill-typed field gets the same message everywhere.

use crate::error::BookingError;
use crate::model::MAX_SEATS;
use serde_json::{Map, Value};

/// Longest event title, in characters: a headline, not a document.
const MAX_TITLE_CHARS: usize = 200;
/// Most entries in `allowedUsers` or `allowedRoles`. A private event for more people than this should
/// use a role; the bound keeps the event row (read on every booking) small.
const MAX_ACL_ENTRIES: usize = 1000;
/// Longest user id or role in an access list, and longest booking id accepted: far above any JWT subject,
/// well under the store's 1 KiB key limit.
const MAX_ID_CHARS: usize = 256;
/// Longest `Idempotency-Key`, in bytes (the usual limit of APIs that take one).
const MAX_IDEMPOTENCY_KEY_BYTES: usize = 255;
/// Largest event id: ids must stay exact as JavaScript numbers (2^53 - 1).
const MAX_EVENT_ID: u64 = (1 << 53) - 1;

/// A new event, as asked for.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    /// Title.
    pub title: String,
    /// Seats in total.
    pub capacity: u32,
    /// Private or public.
    pub private: bool,
    /// Subjects that may see it when private.
    pub allowed_users: Vec<String>,
    /// Roles that may see it when private.
    pub allowed_roles: Vec<String>,
}

/// Parses a JSON request body that must be an object.
pub fn json_object(body: &[u8]) -> Result<Map<String, Value>, BookingError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(BookingError::Invalid("request body must be a JSON object".into()));
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(BookingError::Invalid("request body must be a JSON object".into())),
        Err(e) => Err(BookingError::Invalid(format!("request body is not valid JSON: {e}"))),
    }
}

/// Reads `{ title, seatCapacity, private?, allowedUsers?, allowedRoles? }`.
pub fn new_event(body: &Map<String, Value>) -> Result<NewEvent, BookingError> {
    let title = match body.get("title") {
        None | Some(Value::Null) => return Err(invalid("title is required")),
        Some(Value::String(t)) if t.trim().is_empty() => return Err(invalid("title must not be empty")),
        Some(Value::String(t)) if t.chars().count() > MAX_TITLE_CHARS => {
            return Err(invalid(&format!("title must be at most {MAX_TITLE_CHARS} characters")));
        }
        Some(Value::String(t)) => t.trim().to_owned(),
        Some(_) => return Err(invalid("title must be a string")),
    };
    let capacity = seat_count(body.get("seatCapacity"), "seatCapacity")?;
    let private = match body.get("private") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(invalid("private must be a boolean")),
    };
    let allowed_users = id_list(body.get("allowedUsers"), "allowedUsers", true)?;
    let allowed_roles = id_list(body.get("allowedRoles"), "allowedRoles", false)?;
    Ok(NewEvent { title, capacity, private, allowed_users, allowed_roles })
}

/// Reads a seat count field: an integer in `1..=MAX_SEATS`.
pub fn seat_count(value: Option<&Value>, field: &str) -> Result<u32, BookingError> {
    let out_of_range = || invalid(&format!("{field} must be an integer between 1 and {MAX_SEATS}"));
    match value {
        None | Some(Value::Null) => Err(invalid(&format!("{field} is required"))),
        Some(Value::Number(n)) => {
            let n = n.as_u64().ok_or_else(out_of_range)?;
            u32::try_from(n).ok().filter(|n| (1..=MAX_SEATS).contains(n)).ok_or_else(out_of_range)
        }
        Some(_) => Err(out_of_range()),
    }
}

/// Reads an event id: a positive integer, or a string of digits (as in a URL path).
pub fn event_id(value: Option<&Value>) -> Result<u64, BookingError> {
    match value {
        None | Some(Value::Null) => Err(invalid("eventId is required")),
        Some(Value::Number(n)) => n.as_u64().and_then(valid_event_id).ok_or_else(bad_event_id),
        Some(Value::String(s)) => event_id_text(s),
        Some(_) => Err(bad_event_id()),
    }
}

/// Reads an event id from text (a path segment).
pub fn event_id_text(text: &str) -> Result<u64, BookingError> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad_event_id());
    }
    text.parse::<u64>().ok().and_then(valid_event_id).ok_or_else(bad_event_id)
}

/// Reads a booking id: a non-empty string of at most `MAX_ID_CHARS` characters.
pub fn booking_id(value: Option<&Value>) -> Result<String, BookingError> {
    match value {
        None | Some(Value::Null) => Err(invalid("bookingId is required")),
        Some(Value::String(s)) => booking_id_text(s),
        Some(_) => Err(invalid("bookingId must be a string")),
    }
}

/// Checks a booking id given as text (a path segment).
pub fn booking_id_text(text: &str) -> Result<String, BookingError> {
    if text.is_empty() || text.chars().count() > MAX_ID_CHARS {
        return Err(invalid(&format!("bookingId must be 1 to {MAX_ID_CHARS} characters")));
    }
    Ok(text.to_owned())
}

/// Reads an optional idempotency key (`Idempotency-Key` header or `idempotencyKey` argument).
pub fn idempotency_key(value: Option<&str>) -> Result<Option<String>, BookingError> {
    match value {
        None => Ok(None),
        Some(k) if k.is_empty() || k.len() > MAX_IDEMPOTENCY_KEY_BYTES || k.chars().any(char::is_control) => {
            Err(invalid(&format!(
                "Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY_BYTES} bytes without control characters"
            )))
        }
        Some(k) => Ok(Some(k.to_owned())),
    }
}

/// Reads the optional `idempotencyKey` of a call's arguments.
pub fn idempotency_key_arg(args: &Map<String, Value>) -> Result<Option<String>, BookingError> {
    match args.get("idempotencyKey") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(k)) => idempotency_key(Some(k)),
        Some(_) => Err(invalid("idempotencyKey must be a string")),
    }
}

fn valid_event_id(n: u64) -> Option<u64> {
    (1..=MAX_EVENT_ID).contains(&n).then_some(n)
}

fn bad_event_id() -> BookingError {
    invalid("eventId must be a positive integer")
}

fn invalid(message: &str) -> BookingError {
    BookingError::Invalid(message.to_owned())
}

/// Reads an optional list of ids; user ids may be given as numbers (a numeric `userId` claim becomes the
/// subject in decimal).
fn id_list(value: Option<&Value>, field: &str, numbers_too: bool) -> Result<Vec<String>, BookingError> {
    let kind = if numbers_too { "strings or integers" } else { "strings" };
    let bad = || invalid(&format!("{field} must be an array of at most {MAX_ACL_ENTRIES} non-empty {kind}"));
    let items = match value {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(items)) if items.len() <= MAX_ACL_ENTRIES => items,
        Some(_) => return Err(bad()),
    };
    items
        .iter()
        .map(|item| match item {
            Value::String(s) if !s.is_empty() && s.chars().count() <= MAX_ID_CHARS => Ok(s.clone()),
            Value::Number(n) if numbers_too && (n.is_u64() || n.is_i64()) => Ok(n.to_string()),
            _ => Err(bad()),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => unreachable!("test bodies are objects"),
        }
    }

    #[test]
    fn new_events_are_checked_field_by_field() {
        let ok = new_event(&obj(json!({"title": " Gala ", "seatCapacity": 100, "private": true,
            "allowedUsers": ["ann", 42], "allowedRoles": ["vip"]})))
        .unwrap();
        assert_eq!(
            ok,
            NewEvent {
                title: "Gala".into(),
                capacity: 100,
                private: true,
                allowed_users: vec!["ann".into(), "42".into()],
                allowed_roles: vec!["vip".into()]
            }
        );
        let cases = [
            (json!({"seatCapacity": 1}), "title is required"),
            (json!({"title": 3, "seatCapacity": 1}), "title must be a string"),
            (json!({"title": "  ", "seatCapacity": 1}), "title must not be empty"),
            (json!({"title": "t"}), "seatCapacity is required"),
            (json!({"title": "t", "seatCapacity": 0}), "seatCapacity must be an integer between 1 and 1000000"),
            (json!({"title": "t", "seatCapacity": 1.5}), "seatCapacity must be an integer between 1 and 1000000"),
            (json!({"title": "t", "seatCapacity": "9"}), "seatCapacity must be an integer between 1 and 1000000"),
            (json!({"title": "t", "seatCapacity": 1, "private": "yes"}), "private must be a boolean"),
            (
                json!({"title": "t", "seatCapacity": 1, "allowedRoles": [1]}),
                "allowedRoles must be an array of at most 1000 non-empty strings",
            ),
            (
                json!({"title": "t", "seatCapacity": 1, "allowedUsers": "ann"}),
                "allowedUsers must be an array of at most 1000 non-empty strings or integers",
            ),
        ];
        for (body, message) in cases {
            assert_eq!(new_event(&obj(body.clone())), Err(BookingError::Invalid(message.into())), "{body}");
        }
    }

    #[test]
    fn bodies_ids_and_keys() {
        assert!(
            matches!(json_object(b"{"), Err(BookingError::Invalid(m)) if m.starts_with("request body is not valid JSON"))
        );
        assert_eq!(json_object(b"[1]"), Err(BookingError::Invalid("request body must be a JSON object".into())));
        assert_eq!(json_object(b""), Err(BookingError::Invalid("request body must be a JSON object".into())));
        assert_eq!(event_id(Some(&json!(7))), Ok(7));
        assert_eq!(event_id(Some(&json!("7"))), Ok(7));
        for bad in
            [json!(0), json!(-1), json!(1.5), json!("7a"), json!(""), json!(true), json!(9_007_199_254_740_992u64)]
        {
            assert_eq!(event_id(Some(&bad)), Err(bad_event_id()), "{bad}");
        }
        assert_eq!(event_id(None), Err(invalid("eventId is required")));
        assert_eq!(seat_count(Some(&json!(2)), "seats"), Ok(2));
        assert_eq!(seat_count(None, "seats"), Err(invalid("seats is required")));
        assert!(idempotency_key(Some("")).is_err());
        assert!(idempotency_key(Some("a\nb")).is_err());
        assert_eq!(idempotency_key(Some("k-1")), Ok(Some("k-1".into())));
        assert_eq!(booking_id(Some(&json!(5))), Err(invalid("bookingId must be a string")));
    }
}
