//! Socket.IO v5 packets (the default parser), carried in Engine.IO `message` packets.
//!
//! Format: `<type>[<attachments>-][<namespace>,][<ack id>][<JSON payload>]`, the namespace only when it is
//! not `/`. Binary data travels as attachments after the packet (one Engine.IO binary message each) and
//! is referred to in the JSON by `{"_placeholder":true,"num":<n>}`. Specification: the Socket.IO
//! protocol, version 5 (`docs/socket.io-protocol/v5-current.md` in the socket.io repository); the decoder
//! follows `socket.io-parser`'s rules for what is valid.

use bytes::Bytes;
use serde_json::Value;
use std::fmt::Write as _;
use thiserror::Error;

/// Event names a peer may not emit: the client library and Node's EventEmitter use them itself
/// (`RESERVED_EVENTS` in `socket.io-parser`).
pub const RESERVED_EVENTS: [&str; 6] =
    ["connect", "connect_error", "disconnect", "disconnecting", "newListener", "removeListener"];

/// Longest namespace name accepted. Namespaces are configured names; anything longer is not one of them.
pub const MAX_NAMESPACE_BYTES: usize = 256;

/// Packet types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `0`: connect to a namespace (client: optional auth object; server: `{sid}`).
    Connect,
    /// `1`: leave a namespace.
    Disconnect,
    /// `2`: an event: `["name", args...]`.
    Event,
    /// `3`: the acknowledgement of an event: `[args...]`.
    Ack,
    /// `4`: the namespace refused the connection: `{message, data?}`.
    ConnectError,
    /// `5`: an event with binary attachments.
    BinaryEvent,
    /// `6`: an acknowledgement with binary attachments.
    BinaryAck,
}

impl Kind {
    fn from_digit(d: u8) -> Option<Self> {
        Some(match d {
            b'0' => Self::Connect,
            b'1' => Self::Disconnect,
            b'2' => Self::Event,
            b'3' => Self::Ack,
            b'4' => Self::ConnectError,
            b'5' => Self::BinaryEvent,
            b'6' => Self::BinaryAck,
            _ => return None,
        })
    }

    fn digit(self) -> char {
        match self {
            Self::Connect => '0',
            Self::Disconnect => '1',
            Self::Event => '2',
            Self::Ack => '3',
            Self::ConnectError => '4',
            Self::BinaryEvent => '5',
            Self::BinaryAck => '6',
        }
    }

    /// Whether packets of this type carry attachments.
    pub fn is_binary(self) -> bool {
        matches!(self, Self::BinaryEvent | Self::BinaryAck)
    }
}

/// Why a Socket.IO packet was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SocketIoError {
    /// An empty packet or one whose type is not `0`–`6`.
    #[error("unknown Socket.IO packet type")]
    UnknownType,
    /// The attachment count is missing, not a number, or not followed by `-`.
    #[error("illegal attachment count")]
    IllegalAttachments,
    /// More attachments than the limit.
    #[error("too many attachments (at most {0})")]
    TooManyAttachments(usize),
    /// The namespace is longer than [`MAX_NAMESPACE_BYTES`] or holds control characters.
    #[error("invalid namespace")]
    InvalidNamespace,
    /// The acknowledgement id does not fit in 64 bits.
    #[error("invalid acknowledgement id")]
    InvalidAckId,
    /// The payload is not JSON, or not the shape this packet type requires.
    #[error("invalid payload")]
    InvalidPayload,
}

/// A decoded packet. The payload is parsed and checked against its type.
#[derive(Debug, Clone, PartialEq)]
pub struct Packet {
    /// The packet type.
    pub kind: Kind,
    /// Binary attachments that follow (binary types only).
    pub attachments: usize,
    /// The namespace (`/` when absent).
    pub namespace: String,
    /// Acknowledgement id, if the sender wants one (events) or answers one (acks).
    pub id: Option<u64>,
    /// The payload, if any.
    pub data: Option<Value>,
}

/// Decodes one Socket.IO packet (the data of an Engine.IO `message` packet).
pub fn decode(text: &str, max_attachments: usize) -> Result<Packet, SocketIoError> {
    let bytes = text.as_bytes();
    let kind = bytes.first().and_then(|d| Kind::from_digit(*d)).ok_or(SocketIoError::UnknownType)?;
    let mut i = 1;
    let mut attachments = 0;
    if kind.is_binary() {
        let digits = bytes[i..].iter().take_while(|b| b.is_ascii_digit()).count();
        if digits == 0 || bytes.get(i + digits) != Some(&b'-') {
            return Err(SocketIoError::IllegalAttachments);
        }
        attachments =
            text[i..i + digits].parse::<usize>().map_err(|_| SocketIoError::TooManyAttachments(max_attachments))?;
        if attachments > max_attachments {
            return Err(SocketIoError::TooManyAttachments(max_attachments));
        }
        i += digits + 1;
    }
    let mut namespace = "/";
    if bytes.get(i) == Some(&b'/') {
        let end = bytes[i..].iter().position(|b| *b == b',').map_or(bytes.len(), |p| i + p);
        namespace = &text[i..end];
        if namespace.len() > MAX_NAMESPACE_BYTES || namespace.chars().any(char::is_control) {
            return Err(SocketIoError::InvalidNamespace);
        }
        i = (end + 1).min(bytes.len());
    }
    let digits = bytes[i..].iter().take_while(|b| b.is_ascii_digit()).count();
    let id = match digits {
        0 => None,
        n => Some(text[i..i + n].parse::<u64>().map_err(|_| SocketIoError::InvalidAckId)?),
    };
    i += digits;
    let data = match &text[i..] {
        "" => None,
        json => Some(serde_json::from_str::<Value>(json).map_err(|_| SocketIoError::InvalidPayload)?),
    };
    if !payload_valid(kind, data.as_ref()) {
        return Err(SocketIoError::InvalidPayload);
    }
    Ok(Packet { kind, attachments, namespace: namespace.to_owned(), id, data })
}

/// `socket.io-parser`'s `isPayloadValid`.
fn payload_valid(kind: Kind, data: Option<&Value>) -> bool {
    match kind {
        Kind::Connect => data.is_none_or(Value::is_object),
        Kind::Disconnect => data.is_none(),
        Kind::ConnectError => data.is_some_and(|d| d.is_string() || d.is_object()),
        Kind::Event | Kind::BinaryEvent => match data.and_then(Value::as_array).and_then(|a| a.first()) {
            Some(Value::String(name)) => !RESERVED_EVENTS.contains(&name.as_str()),
            Some(Value::Number(_)) => true,
            _ => false,
        },
        Kind::Ack | Kind::BinaryAck => data.is_some_and(Value::is_array),
    }
}

/// Encodes a packet as an Engine.IO `message` packet (the leading `4` included), with its payload given
/// as JSON text.
pub fn encode(kind: Kind, namespace: &str, id: Option<u64>, attachments: usize, json: Option<&str>) -> Bytes {
    let mut out = String::with_capacity(8 + namespace.len() + json.map_or(0, str::len));
    out.push('4');
    out.push(kind.digit());
    if kind.is_binary() {
        let _ = write!(out, "{attachments}-");
    }
    if namespace != "/" {
        out.push_str(namespace);
        out.push(',');
    }
    if let Some(id) = id {
        let _ = write!(out, "{id}");
    }
    if let Some(json) = json {
        out.push_str(json);
    }
    Bytes::from(out)
}

/// Whether `value` is a binary placeholder, and its attachment number.
pub fn placeholder(value: &Value) -> Option<u64> {
    let map = value.as_object()?;
    (map.len() == 2 && map.get("_placeholder") == Some(&Value::Bool(true))).then(|| map.get("num")?.as_u64())?
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn packet(kind: Kind, namespace: &str, id: Option<u64>, data: Option<Value>) -> Packet {
        Packet { kind, attachments: 0, namespace: namespace.into(), id, data }
    }

    // Vectors from the Socket.IO v5 specification (docs/socket.io-protocol/v5-current.md, "Examples").
    #[test]
    fn specification_examples_decode() {
        assert_eq!(decode("0", 10).unwrap(), packet(Kind::Connect, "/", None, None));
        assert_eq!(
            decode("0/admin,{\"sid\":\"oSO0OpakMV_3jnilAAAA\"}", 10).unwrap(),
            packet(Kind::Connect, "/admin", None, Some(json!({"sid": "oSO0OpakMV_3jnilAAAA"})))
        );
        assert_eq!(
            decode("4{\"message\":\"Not authorized\"}", 10).unwrap(),
            packet(Kind::ConnectError, "/", None, Some(json!({"message": "Not authorized"})))
        );
        assert_eq!(decode("2[\"foo\"]", 10).unwrap(), packet(Kind::Event, "/", None, Some(json!(["foo"]))));
        assert_eq!(decode("2/admin,[\"bar\"]", 10).unwrap(), packet(Kind::Event, "/admin", None, Some(json!(["bar"]))));
        assert_eq!(decode("212[\"foo\"]", 10).unwrap(), packet(Kind::Event, "/", Some(12), Some(json!(["foo"]))));
        assert_eq!(
            decode("3/admin,13[\"bar\"]", 10).unwrap(),
            packet(Kind::Ack, "/admin", Some(13), Some(json!(["bar"])))
        );
        assert_eq!(decode("1/admin,", 10).unwrap(), packet(Kind::Disconnect, "/admin", None, None));
        let binary =
            decode("52-/admin,[\"baz\",{\"_placeholder\":true,\"num\":0},{\"_placeholder\":true,\"num\":1}]", 10)
                .unwrap();
        assert_eq!((binary.kind, binary.attachments, binary.namespace.as_str()), (Kind::BinaryEvent, 2, "/admin"));
        assert_eq!(placeholder(&binary.data.unwrap()[2]), Some(1));
    }

    #[test]
    fn specification_examples_encode() {
        assert_eq!(encode(Kind::Event, "/", None, 0, Some("[\"foo\"]")), "42[\"foo\"]");
        assert_eq!(encode(Kind::Event, "/admin", Some(13), 0, Some("[\"foo\"]")), "42/admin,13[\"foo\"]");
        assert_eq!(encode(Kind::Ack, "/", Some(12), 0, Some("[]")), "4312[]");
        assert_eq!(encode(Kind::BinaryEvent, "/", None, 1, Some("[\"baz\"]")), "451-[\"baz\"]");
        assert_eq!(encode(Kind::Disconnect, "/admin", None, 0, None), "41/admin,");
    }

    #[test]
    fn invalid_packets_are_refused() {
        assert_eq!(decode("", 10), Err(SocketIoError::UnknownType));
        assert_eq!(decode("9", 10), Err(SocketIoError::UnknownType));
        assert_eq!(decode("5[\"a\"]", 10), Err(SocketIoError::IllegalAttachments));
        assert_eq!(decode("5x-[\"a\"]", 10), Err(SocketIoError::IllegalAttachments));
        assert_eq!(decode("511-[\"a\"]", 10), Err(SocketIoError::TooManyAttachments(10)));
        assert_eq!(decode("2{\"a\":1}", 10), Err(SocketIoError::InvalidPayload));
        assert_eq!(decode("2[]", 10), Err(SocketIoError::InvalidPayload));
        assert_eq!(decode("2[\"connect\"]", 10), Err(SocketIoError::InvalidPayload));
        assert_eq!(decode("2[\"a\"", 10), Err(SocketIoError::InvalidPayload));
        assert_eq!(decode("1/a,{}", 10), Err(SocketIoError::InvalidPayload));
        assert_eq!(decode("0[1]", 10), Err(SocketIoError::InvalidPayload));
        assert_eq!(decode("3/a,5", 10), Err(SocketIoError::InvalidPayload));
        assert_eq!(decode("2/a\u{1},[\"x\"]", 10), Err(SocketIoError::InvalidNamespace));
        assert_eq!(decode("299999999999999999999999[\"x\"]", 10), Err(SocketIoError::InvalidAckId));
    }
}
