//! Topic names.
//!
//! Grammar: one or more segments joined by `/`; a segment is one or more of `A-Z a-z 0-9 - _ . : @ = +`.
//! No leading, trailing or doubled `/`. At most [`MAX_TOPIC_LEN`] bytes. Names are case-sensitive and
//! compared byte for byte; there are no wildcards, so a subscriber receives exactly the topic it named.

use thiserror::Error;

/// Longest topic name in bytes. Long enough for `prefix/kind/<uuid>/<sub-id>` shapes with room to spare,
/// short enough that a registry key stays in one or two cache lines.
pub const MAX_TOPIC_LEN: usize = 200;

/// Why a topic name was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum TopicError {
    /// The name is empty.
    #[error("topic is empty")]
    Empty,
    /// The name is longer than [`MAX_TOPIC_LEN`].
    #[error("topic is longer than {MAX_TOPIC_LEN} bytes")]
    TooLong,
    /// A segment is empty (leading, trailing or doubled `/`).
    #[error("topic has an empty segment")]
    EmptySegment,
    /// A byte outside the allowed set.
    #[error("topic contains a character outside [A-Za-z0-9-_.:@=+/]")]
    BadChar,
}

/// Checks a topic name against the grammar.
pub fn validate(topic: &str) -> Result<(), TopicError> {
    if topic.is_empty() {
        return Err(TopicError::Empty);
    }
    if topic.len() > MAX_TOPIC_LEN {
        return Err(TopicError::TooLong);
    }
    let mut prev_slash = true;
    for b in topic.bytes() {
        match b {
            b'/' if prev_slash => return Err(TopicError::EmptySegment),
            b'/' => prev_slash = true,
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b':' | b'@' | b'=' | b'+' => {
                prev_slash = false
            }
            _ => return Err(TopicError::BadChar),
        }
    }
    if prev_slash {
        return Err(TopicError::EmptySegment);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_grammar() {
        for t in ["a", "chat/room-1", "booking/event/42", "x.y:z@w=v+u_t", "A/B/C"] {
            assert_eq!(validate(t), Ok(()), "{t}");
        }
    }

    #[test]
    fn refuses_bad_names() {
        assert_eq!(validate(""), Err(TopicError::Empty));
        assert_eq!(validate("/a"), Err(TopicError::EmptySegment));
        assert_eq!(validate("a/"), Err(TopicError::EmptySegment));
        assert_eq!(validate("a//b"), Err(TopicError::EmptySegment));
        assert_eq!(validate("a b"), Err(TopicError::BadChar));
        assert_eq!(validate("a*"), Err(TopicError::BadChar));
        assert_eq!(validate("é"), Err(TopicError::BadChar));
        assert_eq!(validate(&"a".repeat(MAX_TOPIC_LEN)), Ok(()));
        assert_eq!(validate(&"a".repeat(MAX_TOPIC_LEN + 1)), Err(TopicError::TooLong));
    }
}
