//! Self-describing payloads.
//!
//! A [`Payload`] keeps the bytes it arrived in (MessagePack or JSON) and converts to the other codec with a
//! streaming transcode (`serde-transcode`), never through an intermediate tree. Validation at the edge
//! guarantees every payload can be carried to both codecs: MessagePack maps must have string keys, extension
//! types are refused, strings are UTF-8, and nesting is at most [`MAX_DEPTH`]. MessagePack `bin` becomes a
//! JSON array of byte values; non-finite floats become JSON `null`.

use crate::codec::{Codec, FRAME_CAPACITY};
use crate::msgpack;
use bytes::Bytes;
use serde::de::{self, DeserializeSeed as _};
use serde::{Deserialize, Serialize};
use std::cell::Cell;
use std::fmt;
use thiserror::Error;

/// Deepest nesting of arrays and maps accepted in a payload. Deep enough for any document a realtime
/// app sends; shallow enough that recursive transcoding cannot exhaust a task's stack.
pub const MAX_DEPTH: usize = 64;

/// Why a payload was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PayloadError {
    /// Not a single well-formed value in its codec.
    #[error("payload is not well-formed: {0}")]
    Malformed(String),
    /// Well-formed but not representable in every codec.
    #[error("payload cannot be carried to every codec: {0}")]
    Unrepresentable(&'static str),
    /// Nested deeper than [`MAX_DEPTH`].
    #[error("payload nests deeper than {MAX_DEPTH}")]
    TooDeep,
    /// The value does not have the shape the reader asked for.
    #[error("payload has an unexpected shape: {0}")]
    Shape(String),
}

/// A value carried through the broker untouched, in the codec it arrived in.
#[derive(Clone)]
pub struct Payload {
    codec: Codec,
    raw: Bytes,
}

impl Payload {
    /// The MessagePack `nil` value.
    pub fn null() -> Self {
        Self { codec: Codec::MsgPack, raw: Bytes::from_static(&[0xc0]) }
    }

    /// Wraps bytes a codec reader has already validated.
    pub(crate) fn validated(codec: Codec, raw: Bytes) -> Self {
        Self { codec, raw }
    }

    /// Wraps MessagePack bytes after checking they hold exactly one representable value.
    pub fn from_msgpack(raw: Bytes) -> Result<Self, PayloadError> {
        msgpack::validate_value(&raw)?;
        Ok(Self { codec: Codec::MsgPack, raw })
    }

    /// Wraps JSON bytes after checking they hold exactly one value that every codec can carry.
    pub fn from_json(raw: Bytes) -> Result<Self, PayloadError> {
        validate_json(&raw)?;
        Ok(Self { codec: Codec::Json, raw })
    }

    /// Wraps bytes in the given codec, validating them.
    pub fn from_codec(codec: Codec, raw: Bytes) -> Result<Self, PayloadError> {
        match codec {
            Codec::MsgPack => Self::from_msgpack(raw),
            Codec::Json => Self::from_json(raw),
        }
    }

    /// Serializes a Rust value (as MessagePack with named fields).
    pub fn from_value<T: Serialize + ?Sized>(value: &T) -> Result<Self, PayloadError> {
        let mut raw = Vec::with_capacity(FRAME_CAPACITY);
        rmp_serde::encode::write_named(&mut raw, value).map_err(|e| PayloadError::Malformed(e.to_string()))?;
        Self::from_msgpack(Bytes::from(raw))
    }

    /// The codec the bytes are in.
    pub fn codec(&self) -> Codec {
        self.codec
    }

    /// The bytes as they arrived.
    pub fn raw(&self) -> &Bytes {
        &self.raw
    }

    /// The value encoded in `codec`: the original bytes when the codec matches, else a transcode.
    pub fn encoded(&self, codec: Codec) -> Result<Bytes, PayloadError> {
        if codec == self.codec {
            return Ok(self.raw.clone());
        }
        let mut out = Vec::with_capacity(self.raw.len() + self.raw.len() / 2);
        let result = match self.codec {
            Codec::MsgPack => {
                let mut de = rmp_serde::Deserializer::from_read_ref(&self.raw[..]);
                let mut ser = serde_json::Serializer::new(&mut out);
                serde_transcode::transcode(&mut de, &mut ser).map_err(|e| e.to_string())
            }
            Codec::Json => {
                let mut de = serde_json::Deserializer::from_slice(&self.raw);
                let mut ser = rmp_serde::Serializer::new(&mut out);
                serde_transcode::transcode(&mut de, &mut ser).map_err(|e| e.to_string())
            }
        };
        result.map_err(PayloadError::Malformed)?;
        Ok(Bytes::from(out))
    }

    /// Deserializes into a Rust type, which may borrow strings from the payload.
    pub fn decode<'de, T: Deserialize<'de>>(&'de self) -> Result<T, PayloadError> {
        match self.codec {
            Codec::MsgPack => rmp_serde::from_slice(&self.raw).map_err(|e| PayloadError::Shape(plain_shape(&e))),
            Codec::Json => serde_json::from_slice(&self.raw).map_err(|e| PayloadError::Shape(plain_shape(&e))),
        }
    }

    /// The value as a JSON tree (for inspection and tests; the broker's data path never builds trees).
    pub fn to_json(&self) -> serde_json::Value {
        let json = self.encoded(Codec::Json).expect("validated payloads transcode");
        serde_json::from_slice(&json).expect("transcoded JSON parses")
    }
}

/// Serializes the carried value into any serde format by streaming it out of its own codec, so a payload
/// can be embedded in a larger structure (e.g. a reply) without building a tree.
impl Serialize for Payload {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.codec {
            Codec::MsgPack => {
                let mut de = rmp_serde::Deserializer::from_read_ref(&self.raw[..]);
                serde_transcode::Transcoder::new(&mut de).serialize(serializer)
            }
            Codec::Json => {
                let mut de = serde_json::Deserializer::from_slice(&self.raw);
                serde_transcode::Transcoder::new(&mut de).serialize(serializer)
            }
        }
    }
}

/// Two payloads are equal when they carry the same value, whatever their codecs.
impl PartialEq for Payload {
    fn eq(&self, other: &Self) -> bool {
        if self.codec == other.codec && self.raw == other.raw {
            return true;
        }
        self.to_json() == other.to_json()
    }
}

/// A serde error in words for whoever sent the payload: serde names the Rust type it expected
/// (`expected struct TopicArgs`), which means nothing to a client; say what shape it is instead.
fn plain_shape(e: &dyn fmt::Display) -> String {
    let mut text = e.to_string();
    for (rust, plain) in [("struct ", "an object"), ("enum ", "one of the documented values")] {
        for kind in ["expected tuple ", "expected unit ", "expected "] {
            let needle = format!("{kind}{rust}");
            while let Some(at) = text.find(&needle) {
                let name_start = at + needle.len();
                let name_len = text[name_start..]
                    .find(|c: char| !(c.is_alphanumeric() || c == '_'))
                    .unwrap_or(text.len() - name_start);
                text.replace_range(at..name_start + name_len, &format!("expected {plain}"));
            }
        }
    }
    text
}

impl fmt::Debug for Payload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.encoded(Codec::Json) {
            Ok(json) => write!(f, "Payload({})", String::from_utf8_lossy(&json)),
            Err(_) => write!(f, "Payload({:?}, {} bytes)", self.codec, self.raw.len()),
        }
    }
}

/// Checks that `raw` is exactly one JSON value that transcodes: nested at most [`MAX_DEPTH`], every string
/// valid Unicode and every number within `f64` range. Skipping the value (as `IgnoredAny` and `RawValue` do)
/// checks neither: serde_json does not decode escapes or numbers it skips, so `"\ud800"` (a lone surrogate)
/// and `1e400` would pass and then fail when a peer of the other codec needs the payload. One pass, no tree.
pub(crate) fn validate_json(raw: &[u8]) -> Result<(), PayloadError> {
    let too_deep = Cell::new(false);
    let mut de = serde_json::Deserializer::from_slice(raw);
    JsonCheck { depth: 0, too_deep: &too_deep }
        .deserialize(&mut de)
        .and_then(|()| de.end())
        .map_err(|e| if too_deep.get() { PayloadError::TooDeep } else { PayloadError::Malformed(e.to_string()) })
}

/// Visits every JSON value, forcing strings and numbers to be decoded. `depth` counts enclosing containers;
/// the limit is hit long before serde_json's own recursion limit (128).
#[derive(Clone, Copy)]
struct JsonCheck<'a> {
    depth: usize,
    too_deep: &'a Cell<bool>,
}

impl JsonCheck<'_> {
    fn nested<E: de::Error>(self) -> Result<Self, E> {
        if self.depth >= MAX_DEPTH {
            self.too_deep.set(true);
            return Err(E::custom("nesting too deep"));
        }
        Ok(Self { depth: self.depth + 1, ..self })
    }
}

impl<'de> de::DeserializeSeed<'de> for JsonCheck<'_> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> de::Visitor<'de> for JsonCheck<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }

    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }

    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }

    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }

    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }

    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let inner = self.nested()?;
        while seq.next_element_seed(inner)?.is_some() {}
        Ok(())
    }

    fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let inner = self.nested()?;
        while map.next_key_seed(inner)?.is_some() {
            map.next_value_seed(inner)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn shape_errors_name_no_rust_types() {
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        struct TopicArgs {
            topic: String,
        }
        for payload in [
            Payload::from_json(Bytes::from_static(b"\"x\"")).unwrap(),
            Payload::from_msgpack(Payload::from_value(&json!("x")).unwrap().encoded(Codec::MsgPack).unwrap()).unwrap(),
        ] {
            let PayloadError::Shape(text) = payload.decode::<TopicArgs>().unwrap_err() else { panic!() };
            assert!(text.contains("expected an object") && !text.contains("TopicArgs"), "{text}");
        }
    }

    #[test]
    fn transcodes_both_ways() {
        let j = Payload::from_json(Bytes::from_static(br#"{"a":[1,-2,3.5,"x",null,true],"b":{}}"#)).unwrap();
        let m = Payload::from_msgpack(j.encoded(Codec::MsgPack).unwrap()).unwrap();
        assert_eq!(m.to_json(), json!({"a":[1,-2,3.5,"x",null,true],"b":{}}));
        assert_eq!(j, m);
    }

    #[test]
    fn refuses_what_json_cannot_carry() {
        // {1: 2}: an integer map key.
        assert_eq!(
            Payload::from_msgpack(Bytes::from_static(&[0x81, 0x01, 0x02])).unwrap_err(),
            PayloadError::Unrepresentable("map keys must be strings")
        );
        // fixext1
        assert!(matches!(
            Payload::from_msgpack(Bytes::from_static(&[0xd4, 0x01, 0x00])),
            Err(PayloadError::Unrepresentable(_))
        ));
        // trailing bytes
        assert!(matches!(Payload::from_msgpack(Bytes::from_static(&[0xc0, 0xc0])), Err(PayloadError::Malformed(_))));
        assert!(matches!(Payload::from_json(Bytes::from_static(b"{} {}")), Err(PayloadError::Malformed(_))));
    }

    #[test]
    fn refuses_deep_nesting() {
        let deep = format!("{}{}", "[".repeat(MAX_DEPTH + 1), "]".repeat(MAX_DEPTH + 1));
        assert_eq!(Payload::from_json(Bytes::from(deep)).unwrap_err(), PayloadError::TooDeep);
        let ok = format!("{}{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
        let p = Payload::from_json(Bytes::from(ok)).unwrap();
        Payload::from_msgpack(p.encoded(Codec::MsgPack).unwrap()).unwrap();
        let mut mp = vec![0x91; MAX_DEPTH + 1];
        mp.push(0xc0);
        assert_eq!(Payload::from_msgpack(Bytes::from(mp)).unwrap_err(), PayloadError::TooDeep);
    }

    #[test]
    fn embeds_in_a_larger_value() {
        #[derive(Serialize)]
        struct Wrapper {
            seq: u64,
            snapshot: Payload,
        }
        let inner = Payload::from_json(Bytes::from_static(br#"{"k":[1,2]}"#)).unwrap();
        let outer = Payload::from_value(&Wrapper { seq: 7, snapshot: inner }).unwrap();
        assert_eq!(outer.to_json(), json!({"seq": 7, "snapshot": {"k": [1, 2]}}));
    }

    #[test]
    fn bin_becomes_a_byte_array_in_json() {
        let p = Payload::from_msgpack(Bytes::from_static(&[0xc4, 0x02, 0x01, 0xff])).unwrap();
        assert_eq!(p.to_json(), json!([1, 255]));
    }
}
