//! Checks that a message meant for people (an error frame's `message`, a CLI error, a close reason, a
//! spec table's text) is in plain words: no Rust type or variant names such as `InvalidSignature`,
//! `Json(Error(…))` or `PinMismatch { seen: … }`, and no cause repeated down a chain.

/// Product and protocol names that are written in CamelCase on purpose.
const ALLOWED: [&str; 5] = ["MessagePack", "WebSocket", "EdDSA", "ScyllaDB", "JavaScript"];

/// The Rust-looking names in `text`: CamelCase words with an inner capital (`InvalidToken`), and
/// capitalised words directly followed by `(` or ` {` (`Json(`, `Other(`, `Fingerprint(`, `Foo {`).
pub fn rust_names(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        if !chars[i].is_alphanumeric() {
            i += 1;
            continue;
        }
        let start = i;
        while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
            i += 1;
        }
        let word: String = chars[start..i].iter().collect();
        let capitalised = word.starts_with(|c: char| c.is_ascii_uppercase());
        let camel = capitalised
            && word.chars().skip(1).any(|c| c.is_ascii_lowercase())
            && word.chars().skip(1).any(|c| c.is_ascii_uppercase());
        let call_like = capitalised
            && (chars.get(i) == Some(&'(') || (chars.get(i) == Some(&' ') && chars.get(i + 1) == Some(&'{')));
        if (camel || call_like) && !ALLOWED.contains(&word.as_str()) {
            found.push(word);
        }
    }
    found
}

/// Panics unless `text` is in plain words: no [`rust_names`], and `Connection refused` at most once.
pub fn assert_plain(what: &str, text: &str) {
    let names = rust_names(text);
    assert!(names.is_empty(), "{what} shows Rust names {names:?}: {text}");
    assert!(text.matches("Connection refused").count() <= 1, "{what} repeats its cause: {text}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_names_newcomers_saw() {
        assert_eq!(rust_names("invalid token: InvalidSignature"), ["InvalidSignature"]);
        assert_eq!(rust_names("Json(Error(\"unknown variant `none`\"))"), ["Json", "Error"]);
        assert_eq!(rust_names("Other(OtherError(PinMismatch { seen: Fingerprint(ab) }))").len(), 4);
        assert!(rust_names("the token is signed with HS384; this server accepts only HS256 (code 3000)").is_empty());
        assert!(rust_names("a text message on a MessagePack WebSocket (code 1003)").is_empty());
    }
}
