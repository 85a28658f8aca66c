//! Binary data across the Socket.IO boundary. Socket.IO carries bytes as attachments: a packet's JSON
//! holds `{"_placeholder": true, "num": n}` where attachment `n` goes, and the attachments follow the
//! packet as binary Engine.IO messages. chorus payloads carry bytes as MessagePack `bin`. Inbound,
//! placeholders become `bin`; outbound, `bin` becomes placeholders and attachments (a `BINARY_EVENT` or
//! `BINARY_ACK`), so a `Buffer` a Node client sends comes back to every Socket.IO client as a `Buffer`.

use super::socket::{internal, invalid};
use crate::module::ModuleError;
use bytes::Bytes;
use chorus_protocol::engineio::{Packet as EnginePacket, SEPARATOR};
use chorus_protocol::socketio::{self, Kind};
use chorus_protocol::{Codec, ErrorCode, Payload};
use rmp::Marker;
use serde_json::Value;

/// A value from a client as a payload; binary placeholders become MessagePack `bin` with their
/// attachment's bytes.
pub(crate) fn payload_of(value: &Value, attachments: &[Bytes]) -> Result<Payload, ModuleError> {
    if attachments.is_empty() {
        let json = serde_json::to_vec(value).map_err(internal)?;
        return Payload::from_json(Bytes::from(json))
            .map_err(|e| ModuleError::new(ErrorCode::InvalidPayload, e.to_string()));
    }
    let mut out = Vec::new();
    write_msgpack(value, attachments, &mut out)?;
    Payload::from_msgpack(Bytes::from(out)).map_err(|e| ModuleError::new(ErrorCode::InvalidPayload, e.to_string()))
}

fn write_msgpack(value: &Value, attachments: &[Bytes], out: &mut Vec<u8>) -> Result<(), ModuleError> {
    use rmp::encode as mp;
    let io = |e: rmp::encode::ValueWriteError| internal(e);
    if let Some(num) = socketio::placeholder(value) {
        let data = usize::try_from(num).ok().and_then(|n| attachments.get(n));
        let data = data.ok_or_else(|| invalid(format!("binary placeholder {num} names no attachment")))?;
        let len = u32::try_from(data.len()).map_err(internal)?;
        mp::write_bin_len(out, len).map_err(io)?;
        out.extend_from_slice(data);
        return Ok(());
    }
    match value {
        Value::Null => mp::write_nil(out).map_err(internal)?,
        Value::Bool(b) => mp::write_bool(out, *b).map_err(internal)?,
        Value::Number(n) => match (n.as_u64(), n.as_i64(), n.as_f64()) {
            (Some(u), _, _) => mp::write_uint(out, u).map(drop).map_err(io)?,
            (_, Some(i), _) => mp::write_sint(out, i).map(drop).map_err(io)?,
            (_, _, Some(f)) => mp::write_f64(out, f).map_err(io)?,
            _ => return Err(invalid("number out of range")),
        },
        Value::String(s) => mp::write_str(out, s).map_err(io)?,
        Value::Array(items) => {
            mp::write_array_len(out, u32::try_from(items.len()).map_err(internal)?).map_err(io)?;
            for item in items {
                write_msgpack(item, attachments, out)?;
            }
        }
        Value::Object(map) => {
            mp::write_map_len(out, u32::try_from(map.len()).map_err(internal)?).map_err(io)?;
            for (k, v) in map {
                mp::write_str(out, k).map_err(io)?;
                write_msgpack(v, attachments, out)?;
            }
        }
    }
    Ok(())
}

/// A payload as Socket.IO JSON text plus the attachments its placeholders number.
#[derive(Default)]
pub(crate) struct Outbound {
    /// The JSON text.
    pub json: String,
    /// The bytes of each `bin`, in placeholder order.
    pub attachments: Vec<Bytes>,
}

impl From<String> for Outbound {
    fn from(json: String) -> Self {
        Self { json, attachments: Vec::new() }
    }
}

/// Converts `payload` for a Socket.IO packet: JSON payloads as they are; MessagePack ones with every
/// `bin` replaced by a placeholder.
pub(crate) fn outbound(payload: &Payload) -> Result<Outbound, String> {
    if payload.codec() == Codec::Json {
        let json = String::from_utf8(payload.raw().to_vec()).map_err(|e| e.to_string())?;
        return Ok(Outbound { json, attachments: Vec::new() });
    }
    let raw = payload.raw();
    let mut reader = Reader { raw, at: 0 };
    let mut out = Outbound { json: String::with_capacity(raw.len() * 2), attachments: Vec::new() };
    reader.value(&mut out)?;
    Ok(out)
}

/// One outbound packet in long-polling form: `kind` (`Event` or `Ack`, turned into its binary twin when
/// there are attachments) with `data` as the packet's JSON array, followed by the attachments.
pub(crate) fn packet(kind: Kind, namespace: &str, id: Option<u64>, data: &str, attachments: &[Bytes]) -> Bytes {
    if attachments.is_empty() {
        return socketio::encode(kind, namespace, id, 0, Some(data));
    }
    let kind = if kind == Kind::Ack { Kind::BinaryAck } else { Kind::BinaryEvent };
    let head = socketio::encode(kind, namespace, id, attachments.len(), Some(data));
    let mut item = Vec::with_capacity(head.len() + attachments.iter().map(|a| 2 + a.len() * 4 / 3 + 4).sum::<usize>());
    item.extend_from_slice(&head);
    for attachment in attachments {
        item.push(SEPARATOR);
        item.extend_from_slice(&EnginePacket::Binary(attachment.clone()).encode_polling());
    }
    Bytes::from(item)
}

/// A MessagePack reader writing JSON. Payloads were validated at the edge (string keys, no extension
/// types, bounded depth), so anything else is reported, not handled.
struct Reader<'a> {
    raw: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], String> {
        let end = self.at.checked_add(n).filter(|end| *end <= self.raw.len()).ok_or("truncated MessagePack")?;
        let bytes = &self.raw[self.at..end];
        self.at = end;
        Ok(bytes)
    }

    fn uint(&mut self, n: usize) -> Result<u64, String> {
        Ok(self.take(n)?.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b)))
    }

    fn value(&mut self, out: &mut Outbound) -> Result<(), String> {
        let marker = Marker::from_u8(self.take(1)?[0]);
        match marker {
            Marker::Null => out.json.push_str("null"),
            Marker::True => out.json.push_str("true"),
            Marker::False => out.json.push_str("false"),
            Marker::FixPos(n) => push(out, n),
            Marker::FixNeg(n) => push(out, n),
            Marker::U8 => push_u(self.uint(1)?, out),
            Marker::U16 => push_u(self.uint(2)?, out),
            Marker::U32 => push_u(self.uint(4)?, out),
            Marker::U64 => push_u(self.uint(8)?, out),
            Marker::I8 => push(out, self.uint(1)? as u8 as i8),
            Marker::I16 => push(out, self.uint(2)? as u16 as i16),
            Marker::I32 => push(out, self.uint(4)? as u32 as i32),
            Marker::I64 => push(out, self.uint(8)? as i64),
            Marker::F32 => push_f(f64::from(f32::from_bits(self.uint(4)? as u32)), out),
            Marker::F64 => push_f(f64::from_bits(self.uint(8)?), out),
            Marker::FixStr(n) => self.string(usize::from(n), out)?,
            Marker::Str8 => self.sized(1, out, Self::string)?,
            Marker::Str16 => self.sized(2, out, Self::string)?,
            Marker::Str32 => self.sized(4, out, Self::string)?,
            Marker::Bin8 => self.sized(1, out, Self::bin)?,
            Marker::Bin16 => self.sized(2, out, Self::bin)?,
            Marker::Bin32 => self.sized(4, out, Self::bin)?,
            Marker::FixArray(n) => self.array(usize::from(n), out)?,
            Marker::Array16 => self.sized(2, out, Self::array)?,
            Marker::Array32 => self.sized(4, out, Self::array)?,
            Marker::FixMap(n) => self.map(usize::from(n), out)?,
            Marker::Map16 => self.sized(2, out, Self::map)?,
            Marker::Map32 => self.sized(4, out, Self::map)?,
            _ => return Err("MessagePack extension types (and the reserved 0xc1 marker) have no JSON form".to_owned()),
        }
        Ok(())
    }

    fn sized(
        &mut self,
        width: usize,
        out: &mut Outbound,
        then: fn(&mut Self, usize, &mut Outbound) -> Result<(), String>,
    ) -> Result<(), String> {
        let n = usize::try_from(self.uint(width)?).map_err(|e| e.to_string())?;
        then(self, n, out)
    }

    fn string(&mut self, n: usize, out: &mut Outbound) -> Result<(), String> {
        let text = std::str::from_utf8(self.take(n)?).map_err(|e| e.to_string())?;
        out.json.push_str(&serde_json::to_string(text).map_err(|e| e.to_string())?);
        Ok(())
    }

    fn bin(&mut self, n: usize, out: &mut Outbound) -> Result<(), String> {
        let start = self.at;
        self.take(n)?;
        let num = out.attachments.len();
        out.attachments.push(Bytes::copy_from_slice(&self.raw[start..start + n]));
        out.json.push_str(&format!("{{\"_placeholder\":true,\"num\":{num}}}"));
        Ok(())
    }

    fn array(&mut self, n: usize, out: &mut Outbound) -> Result<(), String> {
        out.json.push('[');
        for i in 0..n {
            if i > 0 {
                out.json.push(',');
            }
            self.value(out)?;
        }
        out.json.push(']');
        Ok(())
    }

    fn map(&mut self, n: usize, out: &mut Outbound) -> Result<(), String> {
        out.json.push('{');
        for i in 0..n {
            if i > 0 {
                out.json.push(',');
            }
            let key = Marker::from_u8(*self.raw.get(self.at).ok_or("truncated MessagePack")?);
            if !matches!(key, Marker::FixStr(_) | Marker::Str8 | Marker::Str16 | Marker::Str32) {
                return Err("MessagePack map key is not a string".to_owned());
            }
            self.value(out)?;
            out.json.push(':');
            self.value(out)?;
        }
        out.json.push('}');
        Ok(())
    }
}

fn push(out: &mut Outbound, n: impl std::fmt::Display) {
    use std::fmt::Write as _;
    let _ = write!(out.json, "{n}");
}

fn push_u(n: u64, out: &mut Outbound) {
    push(out, n);
}

/// Non-finite floats have no JSON form; they become `null`, as in every other JSON conversion.
fn push_f(f: f64, out: &mut Outbound) {
    match serde_json::Number::from_f64(f) {
        Some(n) => push(out, n),
        None => out.json.push_str("null"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn placeholders_become_bin_and_back() {
        let attachments = [Bytes::from_static(&[0, 1, 255])];
        let value = json!({ "name": "x", "blob": { "_placeholder": true, "num": 0 }, "n": [-3, 2.5, null] });
        let payload = payload_of(&value, &attachments).unwrap();
        assert_eq!(payload.codec(), Codec::MsgPack);
        let back = outbound(&payload).unwrap();
        assert_eq!(back.attachments, attachments);
        let json: Value = serde_json::from_str(&back.json).unwrap();
        assert_eq!(json, value);
    }

    #[test]
    fn json_payloads_pass_through_and_a_bad_placeholder_is_refused() {
        let payload = Payload::from_value(&json!({ "a": 1 })).unwrap();
        let out = outbound(&payload).unwrap();
        assert!(out.attachments.is_empty());
        assert_eq!(serde_json::from_str::<Value>(&out.json).unwrap(), json!({ "a": 1 }));
        let error = payload_of(&json!({ "_placeholder": true, "num": 3 }), &[Bytes::new()]).unwrap_err();
        assert_eq!(error.code, ErrorCode::InvalidArgument);
    }

    #[test]
    fn binary_packets_carry_their_attachments_after_a_separator() {
        let item =
            packet(Kind::Event, "/", None, "[\"x\",{\"_placeholder\":true,\"num\":0}]", &[Bytes::from_static(b"hi")]);
        assert_eq!(&item[..], b"451-[\"x\",{\"_placeholder\":true,\"num\":0}]\x1ebaGk=");
        assert_eq!(&packet(Kind::Ack, "/a", Some(4), "[1]", &[])[..], b"43/a,4[1]");
    }
}
