//! Codec selection and the encode/decode entry points.

use crate::code::ErrorCode;
use crate::frame::{ClientFrame, ServerFrame};
use crate::payload::{Payload, PayloadError};
use crate::{json, msgpack};
use bytes::Bytes;
use thiserror::Error;

/// The two frame encodings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Codec {
    /// MessagePack: binary WebSocket messages, and every QUIC frame.
    MsgPack,
    /// JSON: text WebSocket messages.
    Json,
}

impl Codec {
    /// Both codecs, in a fixed order (handy for per-codec arrays).
    pub const ALL: [Codec; 2] = [Codec::MsgPack, Codec::Json];

    /// Index into per-codec arrays.
    pub fn index(self) -> usize {
        match self {
            Codec::MsgPack => 0,
            Codec::Json => 1,
        }
    }

    /// Short name used in logs and metric labels.
    pub fn name(self) -> &'static str {
        match self {
            Codec::MsgPack => "msgpack",
            Codec::Json => "json",
        }
    }
}

/// Why a frame could not be decoded. Each maps to an [`ErrorCode`] via [`DecodeError::code`].
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DecodeError {
    /// Larger than the receiver's limit; nothing of it was parsed.
    #[error("frame of {len} bytes exceeds the limit of {max} bytes")]
    TooLarge {
        /// Frame length.
        len: usize,
        /// The receiver's limit.
        max: usize,
    },
    /// Not well-formed in its codec, or not a map.
    #[error("malformed frame: {0}")]
    Malformed(String),
    /// The `type` names no frame this side accepts.
    #[error("unknown frame type {0:?}")]
    UnknownType(String),
    /// A required field is absent.
    #[error("missing field `{0}`")]
    MissingField(&'static str),
    /// A field has the wrong type or value.
    #[error("invalid field `{field}`: {reason}")]
    InvalidField {
        /// Field name.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// The payload is not carriable to every codec.
    #[error("invalid payload: {0}")]
    InvalidPayload(#[from] PayloadError),
}

impl DecodeError {
    /// The error code reported to the peer.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::TooLarge { .. } | Self::Malformed(_) => ErrorCode::Malformed,
            Self::UnknownType(_) => ErrorCode::UnknownFrame,
            Self::MissingField(_) | Self::InvalidField { .. } => ErrorCode::InvalidField,
            Self::InvalidPayload(_) => ErrorCode::InvalidPayload,
        }
    }
}

/// The union of all frame fields, filled by a codec's reader and turned into a typed frame.
#[derive(Default)]
pub(crate) struct Fields {
    pub ty: Option<String>,
    pub id: Option<u64>,
    pub token: Option<String>,
    pub topic: Option<String>,
    pub method: Option<String>,
    pub message: Option<String>,
    pub reason: Option<String>,
    pub seq: Option<u64>,
    pub code: Option<u64>,
    pub conn_id: Option<u64>,
    pub since: Option<Payload>,
    pub payload: Option<Payload>,
    pub args: Option<Payload>,
    pub result: Option<Payload>,
    pub identity: Option<Payload>,
    pub limits: Option<Payload>,
}

/// A codec's frame writer. Maps announce their length up front (MessagePack needs it; JSON ignores it).
pub(crate) trait FrameOut {
    fn map(&mut self, len: usize);
    fn end_map(&mut self);
    fn key(&mut self, key: &str);
    fn str(&mut self, value: &str);
    fn uint(&mut self, value: u64);
    fn bool(&mut self, value: bool);
    fn payload(&mut self, payload: &Payload) -> Result<(), PayloadError>;

    fn kv_str(&mut self, key: &str, value: &str) {
        self.key(key);
        self.str(value);
    }

    fn kv_uint(&mut self, key: &str, value: u64) {
        self.key(key);
        self.uint(value);
    }
}

fn fields(codec: Codec, frame: &Bytes, max: usize) -> Result<Fields, DecodeError> {
    if frame.len() > max {
        return Err(DecodeError::TooLarge { len: frame.len(), max });
    }
    match codec {
        Codec::MsgPack => msgpack::read_fields(frame),
        Codec::Json => json::read_fields(frame),
    }
}

/// Decodes one client frame of at most `max` bytes. Payloads are zero-copy slices of `frame`.
pub fn decode_client(codec: Codec, frame: &Bytes, max: usize) -> Result<ClientFrame, DecodeError> {
    ClientFrame::from_fields(fields(codec, frame, max)?)
}

/// Decodes one server frame of at most `max` bytes.
pub fn decode_server(codec: Codec, frame: &Bytes, max: usize) -> Result<ServerFrame, DecodeError> {
    ServerFrame::from_fields(fields(codec, frame, max)?)
}

/// Bytes an encoder (and [`crate::Payload::from_value`]) starts with: most frames and values (replies,
/// acks, small events) fit, so they are written without the buffer growing and copying on the way.
pub(crate) const FRAME_CAPACITY: usize = 128;

fn encode_with(
    codec: Codec,
    write: impl FnOnce(&mut dyn FrameOut) -> Result<(), PayloadError>,
) -> Result<Bytes, PayloadError> {
    match codec {
        Codec::MsgPack => {
            let mut out = msgpack::Out::with_capacity(FRAME_CAPACITY);
            write(&mut out)?;
            Ok(out.finish())
        }
        Codec::Json => {
            let mut out = json::Out::with_capacity(FRAME_CAPACITY);
            write(&mut out)?;
            Ok(out.finish())
        }
    }
}

/// Encodes a server frame. Fails only when a payload cannot be transcoded to `codec`, which validated
/// payloads never are.
pub fn encode_server(codec: Codec, frame: &ServerFrame) -> Result<Bytes, PayloadError> {
    encode_with(codec, |out| frame.write(out))
}

/// Encodes a client frame.
pub fn encode_client(codec: Codec, frame: &ClientFrame) -> Result<Bytes, PayloadError> {
    encode_with(codec, |out| frame.write(out))
}
