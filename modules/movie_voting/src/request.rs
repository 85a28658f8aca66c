//! Reading the arguments of calls and the bodies of REST requests, with the contract's messages. Both
//! arrive as JSON-shaped values, so calls and REST share these readers and refuse the same things the same
//! way.

use chorus_core::auth::Identity;
use chorus_core::module::ModuleError;
use serde_json::Value;

/// Longest movie title, in characters (after trimming).
pub(crate) const MAX_TITLE_CHARS: usize = 200;

/// Longest display name, in characters (after trimming). Names are shown in lists on phones.
pub(crate) const MAX_NAME_CHARS: usize = 64;

/// The seed's 400 message.
pub(crate) const SESSION_ID_REQUIRED: &str = "sessionID is required";

/// `sessionID`: a non-empty string.
pub(crate) fn session_id(args: &Value) -> Result<&str, ModuleError> {
    match args.get("sessionID") {
        Some(Value::String(id)) if !id.is_empty() => Ok(id),
        _ => Err(ModuleError::invalid(SESSION_ID_REQUIRED)),
    }
}

/// `title`: 1 to [`MAX_TITLE_CHARS`] characters after trimming, no control characters.
pub(crate) fn title(args: &Value) -> Result<String, ModuleError> {
    let Some(Value::String(title)) = args.get("title") else {
        return Err(ModuleError::invalid("title is required"));
    };
    let title = title.trim();
    let chars = title.chars().count();
    if chars == 0 || chars > MAX_TITLE_CHARS {
        return Err(ModuleError::invalid(format!("title must be 1 to {MAX_TITLE_CHARS} characters")));
    }
    if title.chars().any(char::is_control) {
        return Err(ModuleError::invalid("title must not contain control characters"));
    }
    Ok(title.to_owned())
}

/// `movieId`: a non-negative integer.
pub(crate) fn movie_id(args: &Value) -> Result<u64, ModuleError> {
    args.get("movieId").and_then(Value::as_u64).ok_or_else(|| ModuleError::invalid("movieId is required"))
}

/// `name`, or else the identity's name, or else its subject: 1 to [`MAX_NAME_CHARS`] characters after
/// trimming, no control characters.
pub(crate) fn name(args: &Value, identity: &Identity) -> Result<String, ModuleError> {
    let given = match args.get("name") {
        None | Some(Value::Null) => None,
        Some(Value::String(name)) => Some(name.as_str()),
        Some(_) => return Err(ModuleError::invalid("name must be a string")),
    };
    let name = given.or(identity.name.as_deref()).unwrap_or(&identity.sub).trim();
    let chars = name.chars().count();
    if chars == 0 || chars > MAX_NAME_CHARS {
        return Err(ModuleError::invalid(format!("name must be 1 to {MAX_NAME_CHARS} characters")));
    }
    if name.chars().any(char::is_control) {
        return Err(ModuleError::invalid("name must not contain control characters"));
    }
    Ok(name.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn user(name: Option<&str>) -> Identity {
        let mut id = Identity::guest(7);
        id.name = name.map(str::to_owned);
        id
    }

    #[test]
    fn session_id_must_be_a_non_empty_string() {
        assert_eq!(session_id(&json!({"sessionID": "123456"})), Ok("123456"));
        for bad in [json!({}), json!({"sessionID": ""}), json!({"sessionID": 123456}), json!(null), json!([1])] {
            assert_eq!(session_id(&bad).unwrap_err().message, SESSION_ID_REQUIRED, "{bad}");
        }
    }

    #[test]
    fn titles_are_trimmed_and_bounded() {
        assert_eq!(title(&json!({"title": "  Heat "})).unwrap(), "Heat");
        assert_eq!(title(&json!({"title": "é".repeat(200)})).unwrap().chars().count(), 200);
        assert!(title(&json!({"title": "é".repeat(201)})).is_err());
        assert!(title(&json!({"title": "   "})).is_err());
        assert!(title(&json!({"title": "a\u{0}b"})).is_err());
        assert_eq!(title(&json!({"title": 5})).unwrap_err().message, "title is required");
    }

    #[test]
    fn movie_ids_are_non_negative_integers() {
        assert_eq!(movie_id(&json!({"movieId": 3})), Ok(3));
        for bad in [json!({"movieId": -1}), json!({"movieId": "3"}), json!({"movieId": 1.5}), json!({})] {
            assert!(movie_id(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn names_fall_back_to_the_identity() {
        assert_eq!(name(&json!({"name": " Ann "}), &user(None)).unwrap(), "Ann");
        assert_eq!(name(&json!({}), &user(Some("Bob"))).unwrap(), "Bob");
        assert_eq!(name(&json!({}), &user(None)).unwrap(), "guest-7");
        assert!(name(&json!({"name": ""}), &user(Some("Bob"))).is_err());
        assert!(name(&json!({"name": 1}), &user(None)).is_err());
        assert!(name(&json!({"name": "x".repeat(65)}), &user(None)).is_err());
    }
}
