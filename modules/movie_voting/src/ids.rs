//! Session ids: six decimal digits, as the seed's clients expect.

use rand::Rng;

/// Smallest id handed out. Ids start at 100000 so none has a leading zero: an app that parses the id as
/// a number and prints it back still gets the same six characters.
const MIN_ID: u32 = 100_000;

/// Largest id handed out.
const MAX_ID: u32 = 999_999;

/// A random candidate id. Uniqueness among live sessions comes from the conditional write that claims it,
/// not from the random draw.
pub(crate) fn candidate() -> String {
    rand::rng().random_range(MIN_ID..=MAX_ID).to_string()
}

/// Whether `id` has the shape of a session id (exactly six ASCII digits). Ids with a leading zero are
/// accepted on lookup: another backend sharing the Redis keys may have created them.
pub(crate) fn is_session_id(id: &str) -> bool {
    id.len() == 6 && id.bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn candidates_are_six_digits_without_leading_zero() {
        for _ in 0..10_000 {
            let id = candidate();
            assert!(is_session_id(&id), "{id}");
            assert_ne!(id.as_bytes()[0], b'0', "{id}");
        }
    }

    #[test]
    fn only_six_ascii_digits_are_ids() {
        assert!(is_session_id("123456"));
        assert!(is_session_id("012345"));
        for bad in ["", "12345", "1234567", "12345a", "１２３４５６", " 12345", "-12345"] {
            assert!(!is_session_id(bad), "{bad:?}");
        }
    }
}
