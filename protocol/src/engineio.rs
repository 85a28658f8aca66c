//! Engine.IO v4 packets: the transport layer under Socket.IO (HTTP long-polling and WebSocket).
//!
//! A packet is a one-character type followed by its data. On WebSocket each packet is one message: text
//! packets as text messages, binary ones (always `message` packets) as binary messages with no prefix. In a
//! long-polling body packets are joined by [`SEPARATOR`] and a binary packet is `b` + its base64.
//! Specification: the Engine.IO protocol, version 4 (`docs/engine.io-protocol/v4-current.md` in the
//! socket.io repository).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use thiserror::Error;

/// The protocol version this module speaks (the `EIO` query parameter).
pub const VERSION: &str = "4";

/// Separates packets in a long-polling body (the ASCII record separator).
pub const SEPARATOR: u8 = 0x1e;

/// Why inbound Engine.IO data was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum EngineError {
    /// A packet with no type character.
    #[error("empty Engine.IO packet")]
    Empty,
    /// The type character is not one of `0`–`6`.
    #[error("unknown Engine.IO packet type {0:?}")]
    UnknownType(char),
    /// A `b` packet whose data is not base64.
    #[error("binary Engine.IO packet is not valid base64")]
    BadBase64,
    /// Text data that is not UTF-8.
    #[error("Engine.IO text packet is not UTF-8")]
    NotUtf8,
    /// A packet type only the server sends (`open`, `noop`) arrived from a client.
    #[error("Engine.IO packet type {0:?} is not accepted from clients")]
    NotFromClient(char),
}

/// One Engine.IO packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Packet {
    /// `0`: the handshake, with its JSON data.
    Open(Bytes),
    /// `1`: the transport is closed.
    Close,
    /// `2`: heartbeat or upgrade probe, with optional data (`probe`).
    Ping(Bytes),
    /// `3`: answer to a ping, echoing its data.
    Pong(Bytes),
    /// `4`: a text message (a Socket.IO packet).
    Message(Bytes),
    /// A binary message (a Socket.IO binary attachment).
    Binary(Bytes),
    /// `5`: completes an upgrade to WebSocket.
    Upgrade,
    /// `6`: no operation (ends a pending poll during an upgrade).
    Noop,
}

impl Packet {
    /// The packet's size as sent: its type character plus its data (binary packets: their bytes).
    pub fn wire_len(&self) -> usize {
        match self {
            Self::Open(d) | Self::Ping(d) | Self::Pong(d) | Self::Message(d) => 1 + d.len(),
            Self::Binary(d) => d.len(),
            Self::Close | Self::Upgrade | Self::Noop => 1,
        }
    }

    /// Decodes one text packet (a WebSocket text message, or one packet of a polling body without its `b`
    /// binary form). `data` must be UTF-8.
    pub fn decode_text(data: Bytes) -> Result<Self, EngineError> {
        if std::str::from_utf8(&data).is_err() {
            return Err(EngineError::NotUtf8);
        }
        let Some(&kind) = data.first() else { return Err(EngineError::Empty) };
        let rest = data.slice(1..);
        Ok(match kind {
            b'0' => Self::Open(rest),
            b'1' => Self::Close,
            b'2' => Self::Ping(rest),
            b'3' => Self::Pong(rest),
            b'4' => Self::Message(rest),
            b'5' => Self::Upgrade,
            b'6' => Self::Noop,
            other => return Err(EngineError::UnknownType(char::from(other))),
        })
    }

    /// Whether a client may send this packet.
    pub fn check_from_client(&self) -> Result<(), EngineError> {
        match self {
            Self::Open(_) => Err(EngineError::NotFromClient('0')),
            Self::Noop => Err(EngineError::NotFromClient('6')),
            _ => Ok(()),
        }
    }

    /// The packet as one long-polling packet (text, or `b` + base64 for binary).
    pub fn encode_polling(&self) -> Bytes {
        match self {
            Self::Binary(data) => {
                let mut out = String::with_capacity(1 + data.len().div_ceil(3) * 4);
                out.push('b');
                BASE64.encode_string(data, &mut out);
                Bytes::from(out)
            }
            text => text.encode_text(),
        }
    }

    /// The packet as a WebSocket text message (binary packets: their raw bytes).
    pub fn encode_text(&self) -> Bytes {
        let (kind, data): (u8, &[u8]) = match self {
            Self::Open(d) => (b'0', d),
            Self::Close => (b'1', b""),
            Self::Ping(d) => (b'2', d),
            Self::Pong(d) => (b'3', d),
            Self::Message(d) => (b'4', d),
            Self::Upgrade => (b'5', b""),
            Self::Noop => (b'6', b""),
            Self::Binary(d) => return d.clone(),
        };
        let mut out = Vec::with_capacity(1 + data.len());
        out.push(kind);
        out.extend_from_slice(data);
        Bytes::from(out)
    }
}

/// Decodes a long-polling request body: packets separated by [`SEPARATOR`], binary ones as `b` + base64.
/// An empty body holds no packet.
pub fn decode_payload(body: &Bytes) -> Result<Vec<Packet>, EngineError> {
    if body.is_empty() {
        return Ok(Vec::new());
    }
    let mut packets = Vec::new();
    let mut start = 0;
    for end in body.iter().enumerate().filter(|(_, b)| **b == SEPARATOR).map(|(i, _)| i).chain([body.len()]) {
        let part = body.slice(start..end);
        start = end + 1;
        packets.push(match part.first() {
            Some(b'b') => Packet::Binary(Bytes::from(BASE64.decode(&part[1..]).map_err(|_| EngineError::BadBase64)?)),
            _ => Packet::decode_text(part)?,
        });
    }
    Ok(packets)
}

/// Splits an outbound item in polling form (packets joined by [`SEPARATOR`], binary as `b` + base64) into
/// WebSocket messages: `(true, bytes)` for a binary message, `(false, bytes)` for a text one.
pub fn polling_to_messages(item: &Bytes) -> Result<Vec<(bool, Bytes)>, EngineError> {
    if !item.contains(&SEPARATOR) && item.first() != Some(&b'b') {
        return Ok(vec![(false, item.clone())]);
    }
    item.split(|b| *b == SEPARATOR)
        .map(|part| match part.first() {
            Some(b'b') => Ok((true, Bytes::from(BASE64.decode(&part[1..]).map_err(|_| EngineError::BadBase64)?))),
            _ => Ok((false, item.slice_ref(part))),
        })
        .collect()
}

/// The handshake's `open` data (every field the specification requires).
pub fn open_data(sid: &str, upgrades: &[&str], ping_interval_ms: u64, ping_timeout_ms: u64, max_payload: u64) -> Bytes {
    let upgrades = upgrades.iter().map(|u| format!("\"{u}\"")).collect::<Vec<_>>().join(",");
    Bytes::from(format!(
        "{{\"sid\":\"{sid}\",\"upgrades\":[{upgrades}],\"pingInterval\":{ping_interval_ms},\"pingTimeout\":{ping_timeout_ms},\"maxPayload\":{max_payload}}}"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    // Vectors from the Engine.IO v4 specification and its test suite
    // (socket.io repository, docs/engine.io-protocol/v4-current.md and v4-test-suite/test-suite.js).
    #[test]
    fn polling_bodies_from_the_specification() {
        let packets = decode_payload(&Bytes::from_static(b"4hello\x1e2\x1e4world")).unwrap();
        assert_eq!(
            packets,
            vec![
                Packet::Message(Bytes::from_static(b"hello")),
                Packet::Ping(Bytes::new()),
                Packet::Message(Bytes::from_static(b"world"))
            ]
        );
        let packets = decode_payload(&Bytes::from_static(b"4hello\x1ebAQIDBA==")).unwrap();
        assert_eq!(packets[1], Packet::Binary(Bytes::from_static(&[1, 2, 3, 4])));
        assert_eq!(Packet::Binary(Bytes::from_static(&[1, 2, 3, 4])).encode_polling(), "bAQIDBA==");
        assert_eq!(Packet::Message(Bytes::from_static(b"hello")).encode_text(), "4hello");
        assert_eq!(Packet::Ping(Bytes::from_static(b"probe")).encode_text(), "2probe");
    }

    #[test]
    fn bad_packets_are_refused() {
        assert_eq!(decode_payload(&Bytes::from_static(b"abc")), Err(EngineError::UnknownType('a')));
        assert_eq!(decode_payload(&Bytes::from_static(b"4a\x1e")), Err(EngineError::Empty));
        assert_eq!(decode_payload(&Bytes::from_static(b"b!!!")), Err(EngineError::BadBase64));
        assert_eq!(Packet::decode_text(Bytes::from_static(&[b'4', 0xff])), Err(EngineError::NotUtf8));
        assert!(Packet::decode_text(Bytes::from_static(b"0{}")).unwrap().check_from_client().is_err());
        assert_eq!(decode_payload(&Bytes::new()), Ok(Vec::new()));
    }

    #[test]
    fn outbound_items_split_into_websocket_messages() {
        let item = Bytes::from_static(b"451-[\"x\",{\"_placeholder\":true,\"num\":0}]\x1ebAQI=");
        let messages = polling_to_messages(&item).unwrap();
        assert_eq!(messages.len(), 2);
        assert_eq!(messages[0], (false, Bytes::from_static(b"451-[\"x\",{\"_placeholder\":true,\"num\":0}]")));
        assert_eq!(messages[1], (true, Bytes::from_static(&[1, 2])));
        assert_eq!(polling_to_messages(&Bytes::from_static(b"42[\"a\"]")).unwrap().len(), 1);
    }

    #[test]
    fn open_data_has_every_field() {
        let open = open_data("abc", &["websocket"], 25000, 20000, 1_000_000);
        assert_eq!(
            open,
            "{\"sid\":\"abc\",\"upgrades\":[\"websocket\"],\"pingInterval\":25000,\"pingTimeout\":20000,\"maxPayload\":1000000}"
        );
    }
}
