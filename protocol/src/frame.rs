//! Frame types. Field names here are the wire names (see `PROTOCOL.md`); every frame is a map with a
//! `type` string. Unknown fields are ignored so that newer peers can add fields.

use crate::code::{CloseCode, ErrorCode};
use crate::codec::{DecodeError, Fields, FrameOut};
use crate::payload::{Payload, PayloadError};
use serde::{Deserialize, Serialize};

/// A position in a topic's history: the history's epoch and the offset (the `seq` of the last event seen).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Position {
    /// Identifies one incarnation of a topic's history; a new epoch means older offsets are meaningless.
    pub epoch: String,
    /// The last sequence number the client received.
    pub offset: u64,
}

/// Who a connection is, as the broker established it at `hello`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    /// Subject (`sub` claim), or a generated `guest-<n>` for guests.
    pub sub: String,
    /// Display name (`name` claim), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Role (`role` claim), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// True when the connection presented no token.
    pub guest: bool,
}

/// Limits the server enforces on this connection, announced in `welcome`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    /// Largest frame, in bytes, the server accepts.
    pub max_frame_bytes: u32,
    /// Most topics one connection may be subscribed to at once.
    pub max_subscriptions: u32,
    /// Publishes per second allowed (sustained; bursts up to the same number).
    pub publish_rate: u32,
    /// The server closes a connection that sends nothing for this long; send `ping` more often.
    pub idle_timeout_ms: u64,
}

/// The server's first frame: the connection is authenticated.
#[derive(Debug, Clone, PartialEq)]
pub struct Welcome {
    /// Server-assigned connection id, unique per node run.
    pub conn_id: u64,
    /// The established identity.
    pub identity: Identity,
    /// Limits for this connection.
    pub limits: Limits,
}

/// A frame sent by a client.
#[derive(Debug, Clone, PartialEq)]
pub enum ClientFrame {
    /// Must be the first frame; carries the token unless the transport already did.
    Hello {
        /// A JWT, or none for a guest.
        token: Option<String>,
    },
    /// Subscribe to a topic. The `reply` result is `{"seq": <topic seq>, "snapshot"?: <module snapshot>}`.
    Subscribe {
        /// Request id; when present the server answers with `reply` or `error` carrying it.
        id: Option<u64>,
        /// Topic name.
        topic: String,
        /// Resume after this position (history recovery).
        since: Option<Position>,
    },
    /// Leave a topic.
    Unsubscribe {
        /// Request id, as for `subscribe`.
        id: Option<u64>,
        /// Topic name.
        topic: String,
    },
    /// Publish a payload to a topic.
    Publish {
        /// When present, the server acknowledges with `reply` (`result` `{"seq": n}`) once the event is fanned out.
        id: Option<u64>,
        /// Topic name.
        topic: String,
        /// The value to deliver.
        payload: Payload,
    },
    /// Call a module method.
    Call {
        /// Request id, echoed in `reply` or `error`; without one the call's result is not sent (and the module
        /// may skip building it), a refusal comes as an `error` without id.
        id: Option<u64>,
        /// `module.method` name.
        method: String,
        /// Arguments.
        args: Payload,
    },
    /// Keepalive; answered by `pong`.
    Ping {
        /// Echoed in `pong` when present.
        id: Option<u64>,
    },
}

/// A frame sent by the server.
#[derive(Debug, Clone, PartialEq)]
pub enum ServerFrame {
    /// Authentication succeeded.
    Welcome(Welcome),
    /// Success answer to a request carrying `id`.
    Reply {
        /// The request's id.
        id: u64,
        /// Result value (`null` when there is nothing to return).
        result: Payload,
    },
    /// A request failed, or input could not be processed.
    Error {
        /// The request's id when the failing frame carried one.
        id: Option<u64>,
        /// Stable code, see [`ErrorCode`]. Kept numeric so that newer codes still decode.
        code: u16,
        /// Human-readable explanation.
        message: String,
    },
    /// A published event on a subscribed topic.
    Event {
        /// Topic name.
        topic: String,
        /// Per-topic sequence number, starting at 1, increasing by one per event on this node.
        seq: u64,
        /// The published value.
        payload: Payload,
    },
    /// Answer to `ping`.
    Pong {
        /// The ping's id, if it had one.
        id: Option<u64>,
    },
    /// The server is about to close the connection.
    Disconnect {
        /// Close code, see [`CloseCode`].
        code: u16,
        /// Human-readable reason.
        reason: String,
    },
}

impl ServerFrame {
    /// An `error` frame.
    pub fn error(id: Option<u64>, code: ErrorCode, message: impl Into<String>) -> Self {
        Self::Error { id, code: code.as_u16(), message: message.into() }
    }

    /// A `disconnect` frame.
    pub fn disconnect(code: CloseCode, reason: impl Into<String>) -> Self {
        Self::Disconnect { code: code.as_u16(), reason: reason.into() }
    }

    pub(crate) fn write(&self, out: &mut dyn FrameOut) -> Result<(), PayloadError> {
        match self {
            Self::Welcome(w) => {
                out.map(4);
                out.kv_str("type", "welcome");
                out.kv_uint("conn_id", w.conn_id);
                out.key("identity");
                let id = &w.identity;
                out.map(2 + usize::from(id.name.is_some()) + usize::from(id.role.is_some()));
                out.kv_str("sub", &id.sub);
                if let Some(name) = &id.name {
                    out.kv_str("name", name);
                }
                if let Some(role) = &id.role {
                    out.kv_str("role", role);
                }
                out.key("guest");
                out.bool(id.guest);
                out.end_map();
                out.key("limits");
                let l = &w.limits;
                out.map(4);
                out.kv_uint("max_frame_bytes", l.max_frame_bytes.into());
                out.kv_uint("max_subscriptions", l.max_subscriptions.into());
                out.kv_uint("publish_rate", l.publish_rate.into());
                out.kv_uint("idle_timeout_ms", l.idle_timeout_ms);
                out.end_map();
            }
            Self::Reply { id, result } => {
                out.map(3);
                out.kv_str("type", "reply");
                out.kv_uint("id", *id);
                out.key("result");
                out.payload(result)?;
            }
            Self::Error { id, code, message } => {
                out.map(3 + usize::from(id.is_some()));
                out.kv_str("type", "error");
                if let Some(id) = id {
                    out.kv_uint("id", *id);
                }
                out.kv_uint("code", (*code).into());
                out.kv_str("message", message);
            }
            Self::Event { topic, seq, payload } => {
                out.map(4);
                out.kv_str("type", "event");
                out.kv_str("topic", topic);
                out.kv_uint("seq", *seq);
                out.key("payload");
                out.payload(payload)?;
            }
            Self::Pong { id } => {
                out.map(1 + usize::from(id.is_some()));
                out.kv_str("type", "pong");
                if let Some(id) = id {
                    out.kv_uint("id", *id);
                }
            }
            Self::Disconnect { code, reason } => {
                out.map(3);
                out.kv_str("type", "disconnect");
                out.kv_uint("code", (*code).into());
                out.kv_str("reason", reason);
            }
        }
        out.end_map();
        Ok(())
    }

    pub(crate) fn from_fields(f: Fields) -> Result<Self, DecodeError> {
        let ty = f.ty.as_deref().ok_or(DecodeError::MissingField("type"))?;
        Ok(match ty {
            "welcome" => Self::Welcome(Welcome {
                conn_id: f.conn_id.ok_or(DecodeError::MissingField("conn_id"))?,
                identity: decode_nested(f.identity, "identity")?,
                limits: decode_nested(f.limits, "limits")?,
            }),
            "reply" => Self::Reply {
                id: f.id.ok_or(DecodeError::MissingField("id"))?,
                result: f.result.unwrap_or_else(Payload::null),
            },
            "error" => Self::Error { id: f.id, code: code_field(f.code)?, message: f.message.unwrap_or_default() },
            "event" => Self::Event {
                topic: f.topic.ok_or(DecodeError::MissingField("topic"))?,
                seq: f.seq.ok_or(DecodeError::MissingField("seq"))?,
                payload: f.payload.unwrap_or_else(Payload::null),
            },
            "pong" => Self::Pong { id: f.id },
            "disconnect" => Self::Disconnect { code: code_field(f.code)?, reason: f.reason.unwrap_or_default() },
            other => return Err(DecodeError::UnknownType(other.to_owned())),
        })
    }
}

impl ClientFrame {
    pub(crate) fn write(&self, out: &mut dyn FrameOut) -> Result<(), PayloadError> {
        match self {
            Self::Hello { token } => {
                out.map(1 + usize::from(token.is_some()));
                out.kv_str("type", "hello");
                if let Some(token) = token {
                    out.kv_str("token", token);
                }
            }
            Self::Subscribe { id, topic, since } => {
                out.map(2 + usize::from(id.is_some()) + usize::from(since.is_some()));
                out.kv_str("type", "subscribe");
                if let Some(id) = id {
                    out.kv_uint("id", *id);
                }
                out.kv_str("topic", topic);
                if let Some(pos) = since {
                    out.key("since");
                    out.map(2);
                    out.kv_str("epoch", &pos.epoch);
                    out.kv_uint("offset", pos.offset);
                    out.end_map();
                }
            }
            Self::Unsubscribe { id, topic } => {
                out.map(2 + usize::from(id.is_some()));
                out.kv_str("type", "unsubscribe");
                if let Some(id) = id {
                    out.kv_uint("id", *id);
                }
                out.kv_str("topic", topic);
            }
            Self::Publish { id, topic, payload } => {
                out.map(3 + usize::from(id.is_some()));
                out.kv_str("type", "publish");
                if let Some(id) = id {
                    out.kv_uint("id", *id);
                }
                out.kv_str("topic", topic);
                out.key("payload");
                out.payload(payload)?;
            }
            Self::Call { id, method, args } => {
                out.map(3 + usize::from(id.is_some()));
                out.kv_str("type", "call");
                if let Some(id) = id {
                    out.kv_uint("id", *id);
                }
                out.kv_str("method", method);
                out.key("args");
                out.payload(args)?;
            }
            Self::Ping { id } => {
                out.map(1 + usize::from(id.is_some()));
                out.kv_str("type", "ping");
                if let Some(id) = id {
                    out.kv_uint("id", *id);
                }
            }
        }
        out.end_map();
        Ok(())
    }

    pub(crate) fn from_fields(f: Fields) -> Result<Self, DecodeError> {
        let ty = f.ty.as_deref().ok_or(DecodeError::MissingField("type"))?;
        Ok(match ty {
            "hello" => Self::Hello { token: f.token },
            "subscribe" => Self::Subscribe {
                id: f.id,
                topic: f.topic.ok_or(DecodeError::MissingField("topic"))?,
                since: f.since.map(|p| decode_nested(Some(p), "since")).transpose()?,
            },
            "unsubscribe" => Self::Unsubscribe { id: f.id, topic: f.topic.ok_or(DecodeError::MissingField("topic"))? },
            "publish" => Self::Publish {
                id: f.id,
                topic: f.topic.ok_or(DecodeError::MissingField("topic"))?,
                payload: f.payload.ok_or(DecodeError::MissingField("payload"))?,
            },
            "call" => Self::Call {
                id: f.id,
                method: f.method.ok_or(DecodeError::MissingField("method"))?,
                args: f.args.unwrap_or_else(Payload::null),
            },
            "ping" => Self::Ping { id: f.id },
            other => return Err(DecodeError::UnknownType(other.to_owned())),
        })
    }
}

fn decode_nested<T: serde::de::DeserializeOwned>(p: Option<Payload>, field: &'static str) -> Result<T, DecodeError> {
    p.ok_or(DecodeError::MissingField(field))?
        .decode()
        .map_err(|e| DecodeError::InvalidField { field, reason: e.to_string() })
}

fn code_field(code: Option<u64>) -> Result<u16, DecodeError> {
    let code = code.ok_or(DecodeError::MissingField("code"))?;
    u16::try_from(code).map_err(|_| DecodeError::InvalidField { field: "code", reason: "out of range".into() })
}
