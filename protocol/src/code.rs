//! Stable numeric codes. Error codes travel in `error` frames; close codes end a connection (the WebSocket
//! close code, or the QUIC application error code). Numbers never change meaning once released.

use std::fmt;

/// Why a request failed. Carried in an `error` frame together with a human-readable message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u16)]
pub enum ErrorCode {
    /// The broker failed in a way that is not the client's fault.
    Internal = 1000,
    /// The frame is not valid MessagePack or JSON, or is not a map/object.
    Malformed = 1001,
    /// The frame's `type` is not one this side accepts.
    UnknownFrame = 1002,
    /// A required field is missing or has the wrong type.
    InvalidField = 1003,
    /// A frame other than `hello` arrived before the connection was authenticated.
    NotAuthenticated = 1005,
    /// A second `hello` arrived.
    AlreadyAuthenticated = 1006,
    /// The payload cannot be carried to every codec (non-string map key, extension type, nesting too deep).
    InvalidPayload = 1007,
    /// The topic name breaks the topic grammar or length limit.
    InvalidTopic = 2000,
    /// The connection already holds the maximum number of subscriptions.
    SubscriptionLimit = 2001,
    /// The connection is already subscribed to the topic.
    AlreadySubscribed = 2002,
    /// The connection is not subscribed to the topic.
    NotSubscribed = 2003,
    /// The connection publishes faster than its limit allows.
    RateLimited = 2004,
    /// The identity may not do this (module refusal, guest publish disabled).
    Forbidden = 2005,
    /// No module serves this method.
    UnknownMethod = 2006,
    /// The thing addressed does not exist (or has expired).
    NotFound = 2007,
    /// The request conflicts with current state (e.g. not enough seats, duplicate).
    Conflict = 2008,
    /// An argument is out of range or ill-formed.
    InvalidArgument = 2009,
    /// A backing service (store, cluster) is unavailable; retrying later may succeed.
    Unavailable = 2010,
    /// The token is malformed, forged, signed with another key or algorithm.
    TokenInvalid = 3000,
    /// The token's `exp` has passed.
    TokenExpired = 3001,
    /// The token's `nbf` is in the future.
    TokenNotYetValid = 3002,
}

impl ErrorCode {
    /// Every error code, in table order.
    pub const ALL: [ErrorCode; 21] = [
        Self::Internal,
        Self::Malformed,
        Self::UnknownFrame,
        Self::InvalidField,
        Self::NotAuthenticated,
        Self::AlreadyAuthenticated,
        Self::InvalidPayload,
        Self::InvalidTopic,
        Self::SubscriptionLimit,
        Self::AlreadySubscribed,
        Self::NotSubscribed,
        Self::RateLimited,
        Self::Forbidden,
        Self::UnknownMethod,
        Self::NotFound,
        Self::Conflict,
        Self::InvalidArgument,
        Self::Unavailable,
        Self::TokenInvalid,
        Self::TokenExpired,
        Self::TokenNotYetValid,
    ];

    /// The wire number.
    pub fn as_u16(self) -> u16 {
        self as u16
    }

    /// The code for a wire number, if it is one.
    pub fn from_u16(n: u16) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_u16() == n)
    }

    /// A short stable name (snake_case), used in logs and metric labels.
    pub fn name(self) -> &'static str {
        match self {
            Self::Internal => "internal",
            Self::Malformed => "malformed",
            Self::UnknownFrame => "unknown_frame",
            Self::InvalidField => "invalid_field",
            Self::NotAuthenticated => "not_authenticated",
            Self::AlreadyAuthenticated => "already_authenticated",
            Self::InvalidPayload => "invalid_payload",
            Self::InvalidTopic => "invalid_topic",
            Self::SubscriptionLimit => "subscription_limit",
            Self::AlreadySubscribed => "already_subscribed",
            Self::NotSubscribed => "not_subscribed",
            Self::RateLimited => "rate_limited",
            Self::Forbidden => "forbidden",
            Self::UnknownMethod => "unknown_method",
            Self::NotFound => "not_found",
            Self::Conflict => "conflict",
            Self::InvalidArgument => "invalid_argument",
            Self::Unavailable => "unavailable",
            Self::TokenInvalid => "token_invalid",
            Self::TokenExpired => "token_expired",
            Self::TokenNotYetValid => "token_not_yet_valid",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.name(), self.as_u16())
    }
}

/// Why a connection ended. The same number is the WebSocket close code and the QUIC application error code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u16)]
pub enum CloseCode {
    /// The client or server closed normally.
    Normal = 1000,
    /// The server is shutting down; reconnect (to this or another node).
    GoingAway = 1001,
    /// The peer broke the transport protocol (WebSocket-level).
    ProtocolError = 1002,
    /// The peer sent a kind of WebSocket message the connection's codec does not use (a text message on a
    /// MessagePack connection).
    UnsupportedData = 1003,
    /// A WebSocket text message or close reason was not valid UTF-8 (RFC 6455 §8.1).
    InvalidText = 1007,
    /// Authentication failed: bad, expired or forged token.
    PolicyViolation = 1008,
    /// A frame exceeded the negotiated `max_frame_bytes`.
    MessageTooBig = 1009,
    /// The server hit an internal error for this connection.
    InternalError = 1011,
    /// No `hello` arrived within the hello timeout.
    HelloTimeout = 4000,
    /// The client did not read fast enough; its outbound queue exceeded its byte bound.
    SlowConsumer = 4001,
    /// No frame (not even `ping`) arrived within the idle timeout.
    IdleTimeout = 4002,
    /// The server could not deliver every event of one of the connection's subscriptions (cluster bus
    /// interrupted and the topic's history no longer covers the gap): reconnect and subscribe with your
    /// positions; the replies' `recovered` say which topics lost events.
    Resync = 4003,
}

impl CloseCode {
    /// The wire number.
    pub fn as_u16(self) -> u16 {
        self as u16
    }

    /// The code for a wire number, if it is one.
    pub fn from_u16(n: u16) -> Option<Self> {
        [
            Self::Normal,
            Self::GoingAway,
            Self::ProtocolError,
            Self::UnsupportedData,
            Self::InvalidText,
            Self::PolicyViolation,
            Self::MessageTooBig,
            Self::InternalError,
            Self::HelloTimeout,
            Self::SlowConsumer,
            Self::IdleTimeout,
            Self::Resync,
        ]
        .into_iter()
        .find(|c| c.as_u16() == n)
    }

    /// A short stable name (snake_case), used in logs and metric labels.
    pub fn name(self) -> &'static str {
        match self {
            Self::Normal => "normal",
            Self::GoingAway => "going_away",
            Self::ProtocolError => "protocol_error",
            Self::UnsupportedData => "unsupported_data",
            Self::InvalidText => "invalid_text",
            Self::PolicyViolation => "policy_violation",
            Self::MessageTooBig => "message_too_big",
            Self::InternalError => "internal_error",
            Self::HelloTimeout => "hello_timeout",
            Self::SlowConsumer => "slow_consumer",
            Self::IdleTimeout => "idle_timeout",
            Self::Resync => "resync",
        }
    }
}

impl fmt::Display for CloseCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.name(), self.as_u16())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_codes_round_trip_and_are_unique() {
        let mut seen = std::collections::HashSet::new();
        for code in ErrorCode::ALL {
            assert!(seen.insert(code.as_u16()), "duplicate {code}");
            assert_eq!(ErrorCode::from_u16(code.as_u16()), Some(code));
        }
        assert_eq!(ErrorCode::from_u16(1), None);
    }

    #[test]
    fn close_codes_round_trip() {
        for n in [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1011, 4000, 4001, 4002, 4003] {
            assert_eq!(CloseCode::from_u16(n).map(CloseCode::as_u16), Some(n));
        }
        assert_eq!(CloseCode::from_u16(4999), None);
    }
}
