//! Order-preserving clustering keys.
//!
//! Rows in a partition are ordered by their clustering key compared bytewise (unsigned,
//! lexicographic — the order of a CQL `blob` clustering column and of redb's `&[u8]` keys). A
//! module that wants rows ordered by a number, a string or a tuple of them encodes that tuple with
//! [`ClusteringKey`]; the encoding sorts exactly like the tuple:
//!
//! - `u64`: 8 bytes big-endian.
//! - `i64`: 8 bytes big-endian with the sign bit flipped, so negatives sort before positives.
//! - strings and byte strings: each `0x00` byte escaped as `0x00 0xFF`, then terminated by
//!   `0x00 0x01`. The terminator sorts below every escaped or plain byte that could follow, so a
//!   string sorts before its extensions whatever component comes next (`"a" < "a\0" < "ab"`).
//!
//! [`ClusteringKeyReader`] decodes the same components in the same order.

use bytes::Bytes;

/// Byte that starts an escape or a terminator inside an encoded string.
const ESCAPE: u8 = 0x00;
/// Follows [`ESCAPE`] for a literal `0x00` byte.
const ESCAPED_ZERO: u8 = 0xFF;
/// Follows [`ESCAPE`] at the end of a string.
const TERMINATOR: u8 = 0x01;

/// Builds an order-preserving clustering key from typed components.
///
/// ```
/// use chorus_store::ClusteringKey;
/// let early = ClusteringKey::new().u64(5).str("b").build();
/// let late = ClusteringKey::new().u64(10).str("a").build();
/// assert!(early < late);
/// ```
#[derive(Debug, Default, Clone)]
pub struct ClusteringKey {
    buf: Vec<u8>,
}

impl ClusteringKey {
    /// An empty key to append components to.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends an unsigned integer.
    pub fn u64(mut self, value: u64) -> Self {
        self.buf.extend_from_slice(&value.to_be_bytes());
        self
    }

    /// Appends a signed integer.
    pub fn i64(mut self, value: i64) -> Self {
        self.buf.extend_from_slice(&((value as u64) ^ (1 << 63)).to_be_bytes());
        self
    }

    /// Appends a string, ordered by its UTF-8 bytes (which is code point order).
    pub fn str(self, value: &str) -> Self {
        self.bytes(value.as_bytes())
    }

    /// Appends a byte string, ordered bytewise.
    pub fn bytes(mut self, value: &[u8]) -> Self {
        for &b in value {
            self.buf.push(b);
            if b == ESCAPE {
                self.buf.push(ESCAPED_ZERO);
            }
        }
        self.buf.extend_from_slice(&[ESCAPE, TERMINATOR]);
        self
    }

    /// The encoded key.
    pub fn build(self) -> Bytes {
        Bytes::from(self.buf)
    }
}

/// Decodes the components of a key built by [`ClusteringKey`], in the order they were appended.
///
/// Every method returns `None` when the remaining bytes do not hold that component.
#[derive(Debug, Clone)]
pub struct ClusteringKeyReader<'a> {
    rest: &'a [u8],
}

impl<'a> ClusteringKeyReader<'a> {
    /// A reader over an encoded key.
    pub fn new(key: &'a [u8]) -> Self {
        Self { rest: key }
    }

    /// Reads an unsigned integer appended with [`ClusteringKey::u64`].
    pub fn u64(&mut self) -> Option<u64> {
        let (head, rest) = self.rest.split_first_chunk::<8>()?;
        self.rest = rest;
        Some(u64::from_be_bytes(*head))
    }

    /// Reads a signed integer appended with [`ClusteringKey::i64`].
    pub fn i64(&mut self) -> Option<i64> {
        self.u64().map(|v| (v ^ (1 << 63)) as i64)
    }

    /// Reads a string appended with [`ClusteringKey::str`].
    pub fn string(&mut self) -> Option<String> {
        let before = self.rest;
        let decoded = self.bytes()?;
        match String::from_utf8(decoded) {
            Ok(s) => Some(s),
            Err(_) => {
                self.rest = before;
                None
            }
        }
    }

    /// Reads a byte string appended with [`ClusteringKey::bytes`].
    pub fn bytes(&mut self) -> Option<Vec<u8>> {
        let mut out = Vec::new();
        let mut i = 0;
        while i < self.rest.len() {
            let b = self.rest[i];
            if b != ESCAPE {
                out.push(b);
                i += 1;
                continue;
            }
            match self.rest.get(i + 1) {
                Some(&ESCAPED_ZERO) => {
                    out.push(ESCAPE);
                    i += 2;
                }
                Some(&TERMINATOR) => {
                    self.rest = &self.rest[i + 2..];
                    return Some(out);
                }
                _ => return None,
            }
        }
        None
    }

    /// Whether every component has been read.
    pub fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn u64_order_is_preserved(a: u64, b: u64) {
            let ka = ClusteringKey::new().u64(a).build();
            let kb = ClusteringKey::new().u64(b).build();
            prop_assert_eq!(a.cmp(&b), ka.cmp(&kb));
        }

        #[test]
        fn i64_order_is_preserved(a: i64, b: i64) {
            let ka = ClusteringKey::new().i64(a).build();
            let kb = ClusteringKey::new().i64(b).build();
            prop_assert_eq!(a.cmp(&b), ka.cmp(&kb));
        }

        #[test]
        fn tuple_order_is_preserved(
            a: (Vec<u8>, u64), b: (Vec<u8>, u64),
        ) {
            let ka = ClusteringKey::new().bytes(&a.0).u64(a.1).build();
            let kb = ClusteringKey::new().bytes(&b.0).u64(b.1).build();
            prop_assert_eq!(a.cmp(&b), ka.cmp(&kb));
        }

        #[test]
        fn components_round_trip(s: String, n: i64, u: u64, raw: Vec<u8>) {
            let key = ClusteringKey::new().str(&s).i64(n).bytes(&raw).u64(u).build();
            let mut r = ClusteringKeyReader::new(&key);
            prop_assert_eq!(r.string(), Some(s));
            prop_assert_eq!(r.i64(), Some(n));
            prop_assert_eq!(r.bytes(), Some(raw));
            prop_assert_eq!(r.u64(), Some(u));
            prop_assert!(r.is_empty());
        }
    }

    #[test]
    fn string_sorts_before_its_extensions() {
        let a = ClusteringKey::new().str("a").u64(u64::MAX).build();
        let a0 = ClusteringKey::new().str("a\0").u64(0).build();
        let ab = ClusteringKey::new().str("ab").u64(0).build();
        assert!(a < a0 && a0 < ab);
    }

    #[test]
    fn truncated_components_read_as_none() {
        assert_eq!(ClusteringKeyReader::new(&[1, 2, 3]).u64(), None);
        assert_eq!(ClusteringKeyReader::new(b"abc").bytes(), None);
        assert_eq!(ClusteringKeyReader::new(&[b'a', 0x00, 0x07]).bytes(), None);
        let bad_utf8 = ClusteringKey::new().bytes(&[0xC3]).build();
        let mut r = ClusteringKeyReader::new(&bad_utf8);
        assert_eq!(r.string(), None);
        assert_eq!(r.bytes(), Some(vec![0xC3]));
    }
}
