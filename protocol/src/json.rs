//! JSON frame reader and writer. The reader borrows every field as raw JSON first, so payloads stay
//! zero-copy slices of the frame and type errors name the field they concern.

use crate::codec::{Codec, DecodeError, Fields, FrameOut};
use crate::payload::{MAX_DEPTH, Payload, PayloadError};
use bytes::Bytes;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::value::RawValue;

#[derive(Deserialize)]
struct Raw<'a> {
    #[serde(rename = "type", borrow, default)]
    ty: Option<&'a RawValue>,
    #[serde(borrow, default)]
    id: Option<&'a RawValue>,
    #[serde(borrow, default)]
    seq: Option<&'a RawValue>,
    #[serde(borrow, default)]
    code: Option<&'a RawValue>,
    #[serde(borrow, default)]
    conn_id: Option<&'a RawValue>,
    #[serde(borrow, default)]
    token: Option<&'a RawValue>,
    #[serde(borrow, default)]
    topic: Option<&'a RawValue>,
    #[serde(borrow, default)]
    method: Option<&'a RawValue>,
    #[serde(borrow, default)]
    message: Option<&'a RawValue>,
    #[serde(borrow, default)]
    reason: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    since: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    payload: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    args: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    result: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    identity: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    limits: Option<&'a RawValue>,
}

/// Reads a value field, keeping an explicit `null` as a value: plain `Option<&RawValue>` would read it as
/// absent, and then `{"type":"publish","payload":null}` (which the encoder writes) would lack its payload.
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<&'de RawValue>, D::Error> {
    <&RawValue>::deserialize(d).map(Some)
}

fn scalar<T: DeserializeOwned>(
    raw: Option<&RawValue>,
    field: &'static str,
    want: &str,
) -> Result<Option<T>, DecodeError> {
    match raw {
        None => Ok(None),
        Some(raw) => serde_json::from_str::<Option<T>>(raw.get())
            .map_err(|_| DecodeError::InvalidField { field, reason: format!("expected {want}") }),
    }
}

fn value(frame: &Bytes, raw: Option<&RawValue>) -> Result<Option<Payload>, DecodeError> {
    let Some(raw) = raw else { return Ok(None) };
    let bytes = frame.slice_ref(raw.get().as_bytes());
    crate::payload::validate_json(&bytes).map_err(|e| match e {
        PayloadError::Malformed(m) => DecodeError::Malformed(m),
        e => DecodeError::InvalidPayload(e),
    })?;
    Ok(Some(Payload::validated(Codec::Json, bytes)))
}

pub(crate) fn read_fields(frame: &Bytes) -> Result<Fields, DecodeError> {
    // serde would also accept an array as a struct (fields by position), so `["hello"]` would decode.
    if frame.iter().find(|b| !matches!(b, b' ' | b'\t' | b'\n' | b'\r')) != Some(&b'{') {
        return Err(DecodeError::Malformed("a frame must be a JSON object".into()));
    }
    let raw: Raw<'_> = serde_json::from_slice(frame).map_err(|e| {
        if e.is_data() {
            DecodeError::Malformed("a frame must be a JSON object with distinct keys".into())
        } else {
            DecodeError::Malformed(e.to_string())
        }
    })?;
    let text = "a string";
    let uint = "an unsigned integer";
    Ok(Fields {
        ty: scalar(raw.ty, "type", text)?,
        id: scalar(raw.id, "id", uint)?,
        seq: scalar(raw.seq, "seq", uint)?,
        code: scalar(raw.code, "code", uint)?,
        conn_id: scalar(raw.conn_id, "conn_id", uint)?,
        token: scalar(raw.token, "token", text)?,
        topic: scalar(raw.topic, "topic", text)?,
        method: scalar(raw.method, "method", text)?,
        message: scalar(raw.message, "message", text)?,
        reason: scalar(raw.reason, "reason", text)?,
        since: value(frame, raw.since.filter(|r| r.get() != "null"))?,
        payload: value(frame, raw.payload)?,
        args: value(frame, raw.args)?,
        result: value(frame, raw.result)?,
        identity: value(frame, raw.identity)?,
        limits: value(frame, raw.limits)?,
    })
}

/// JSON frame writer.
pub(crate) struct Out {
    buf: Vec<u8>,
}

impl Out {
    pub(crate) fn with_capacity(capacity: usize) -> Self {
        Self { buf: Vec::with_capacity(capacity) }
    }

    pub(crate) fn finish(self) -> Bytes {
        Bytes::from(self.buf)
    }
}

/// Writes `s` as a JSON string literal.
fn put_str(buf: &mut Vec<u8>, s: &str) {
    buf.push(b'"');
    for &b in s.as_bytes() {
        match b {
            b'"' => buf.extend_from_slice(b"\\\""),
            b'\\' => buf.extend_from_slice(b"\\\\"),
            b'\n' => buf.extend_from_slice(b"\\n"),
            b'\r' => buf.extend_from_slice(b"\\r"),
            b'\t' => buf.extend_from_slice(b"\\t"),
            0x00..=0x1f => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                buf.extend_from_slice(b"\\u00");
                buf.push(HEX[usize::from(b >> 4)]);
                buf.push(HEX[usize::from(b & 0xf)]);
            }
            _ => buf.push(b),
        }
    }
    buf.push(b'"');
}

impl FrameOut for Out {
    fn map(&mut self, _len: usize) {
        self.buf.push(b'{');
    }

    fn end_map(&mut self) {
        self.buf.push(b'}');
    }

    fn key(&mut self, key: &str) {
        if self.buf.last() != Some(&b'{') {
            self.buf.push(b',');
        }
        put_str(&mut self.buf, key);
        self.buf.push(b':');
    }

    fn str(&mut self, value: &str) {
        put_str(&mut self.buf, value);
    }

    fn uint(&mut self, value: u64) {
        self.buf.extend_from_slice(itoa::Buffer::new().format(value).as_bytes());
    }

    fn bool(&mut self, value: bool) {
        self.buf.extend_from_slice(if value { b"true" } else { b"false" });
    }

    fn payload(&mut self, payload: &Payload) -> Result<(), PayloadError> {
        self.buf.extend_from_slice(&payload.encoded(Codec::Json)?);
        Ok(())
    }
}

const _: () = assert!(MAX_DEPTH < 128, "serde_json's recursion limit must stay above MAX_DEPTH");
