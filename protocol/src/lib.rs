//! The chorus wire protocol: frames, their MessagePack and JSON codecs, topic grammar, and the stable
//! error and close codes. This crate does no I/O and knows no runtime; the broker, the client SDK and the
//! fuzz targets all drive the same deterministic functions. `PROTOCOL.md` beside this crate is the spec.
//!
//! Layout:
//! - [`frame`]: the client→server ([`ClientFrame`]) and server→client ([`ServerFrame`]) frame types.
//! - [`codec`]: [`Codec`], the entry points [`decode_client`], [`decode_server`] and the encoders.
//! - [`payload`]: [`Payload`], a self-describing value kept in the codec it arrived in and transcoded
//!   (not rebuilt) when a peer speaks the other codec.
//! - [`topic`]: topic name grammar and its limit.
//! - [`code`]: [`ErrorCode`] (in error frames) and [`CloseCode`] (on close), both stable numbers.
//! - [`delimit`]: length-prefixed framing for byte streams (QUIC streams).
//! - [`engineio`], [`socketio`]: Engine.IO v4 and Socket.IO v5 packets, for the broker's Socket.IO gateway.
//!
//! Decoders take a whole frame (a WebSocket message, or one length-delimited QUIC frame). On a byte stream,
//! [`delimit::split_frame`] returns `Ok(None)` for "not enough bytes yet", which is not an error.
#![warn(missing_docs)]

pub mod code;
pub mod codec;
pub mod delimit;
pub mod engineio;
pub mod frame;
mod json;
mod msgpack;
pub mod payload;
pub mod socketio;
pub mod topic;

pub use code::{CloseCode, ErrorCode};
pub use codec::{Codec, DecodeError, decode_client, decode_server, encode_client, encode_server};
pub use frame::{ClientFrame, Identity, Limits, Position, ServerFrame, Welcome};
pub use payload::{Payload, PayloadError};

/// Version string carried in the WebSocket subprotocols and the QUIC ALPN.
pub const PROTOCOL_VERSION: &str = "v1";
/// WebSocket subprotocol selecting the MessagePack codec.
pub const SUBPROTOCOL_MSGPACK: &str = "chorus.v1.msgpack";
/// WebSocket subprotocol selecting the JSON codec.
pub const SUBPROTOCOL_JSON: &str = "chorus.v1.json";
/// QUIC ALPN identifier. QUIC connections always use MessagePack.
pub const QUIC_ALPN: &[u8] = b"chorus/1";
