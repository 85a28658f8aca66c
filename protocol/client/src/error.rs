//! [`ClientError`], the one error type of the SDK.

use chorus_protocol::{CloseCode, DecodeError, ErrorCode, PayloadError};
use thiserror::Error;

/// Why a client operation failed.
#[derive(Debug, Error)]
pub enum ClientError {
    /// The options cannot describe a connection: a malformed URL, fingerprint or PEM, or an option that the
    /// chosen transport does not take.
    #[error("invalid options: {0}")]
    Config(String),
    /// The network or transport layer failed (socket, TLS, QUIC, WebSocket).
    #[error("transport error: {0}")]
    Transport(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The connection was established but did not reach `welcome`: the WebSocket upgrade was refused, the
    /// server's first frame was not `welcome`, or the server's QUIC certificate is not the pinned one.
    #[error("handshake failed: {0}")]
    Handshake(String),
    /// The server refused `hello` with an `error` frame (e.g. 3000 token invalid, 3001 expired).
    #[error("rejected by the server: {message} (code {code})")]
    Rejected {
        /// The error code (see [`ErrorCode`]).
        code: u16,
        /// The server's explanation.
        message: String,
    },
    /// The server answered this request with an `error` frame.
    #[error("server error: {message} (code {code})")]
    Server {
        /// The error code (see [`ErrorCode`]).
        code: u16,
        /// The server's explanation.
        message: String,
    },
    /// The connection is closed (or closed while the request was in flight).
    #[error("connection closed{}: {reason}", code.map(|c| format!(" with code {c}")).unwrap_or_default())]
    Closed {
        /// The close code (WebSocket close code, QUIC application error code, or `disconnect` code), when the
        /// close carried one.
        code: Option<u16>,
        /// The close reason.
        reason: String,
    },
    /// A [`ResumingClient`](crate::ResumingClient) lost its connection (with this code and reason) and had
    /// not reconnected within the request timeout. The request was not sent, so trying it again is safe.
    #[error("not connected (reconnecting after{}: {reason})", code.map(|c| format!(" close {c}")).unwrap_or_default())]
    Reconnecting {
        /// The close code of the lost connection, when its close carried one.
        code: Option<u16>,
        /// The close reason of the lost connection.
        reason: String,
    },
    /// No answer within the request (or connect) timeout.
    #[error("timed out")]
    Timeout,
    /// The server answered with a frame the protocol does not allow there (a `pong` for a `subscribe`, a
    /// `reply` for a `ping`).
    #[error("unexpected frame from the server: {0}")]
    UnexpectedFrame(String),
    /// The server sent a frame this SDK cannot decode.
    #[error("protocol error: {0}")]
    Protocol(#[from] DecodeError),
    /// A payload could not be encoded, or a reply did not have the documented shape.
    #[error("payload error: {0}")]
    Payload(#[from] PayloadError),
}

impl ClientError {
    /// The server error code as a known [`ErrorCode`], for [`ClientError::Rejected`] and
    /// [`ClientError::Server`].
    pub fn error_code(&self) -> Option<ErrorCode> {
        match self {
            Self::Rejected { code, .. } | Self::Server { code, .. } => ErrorCode::from_u16(*code),
            _ => None,
        }
    }

    /// The close code as a known [`CloseCode`], for [`ClientError::Closed`] and
    /// [`ClientError::Reconnecting`].
    pub fn close_code(&self) -> Option<CloseCode> {
        match self {
            Self::Closed { code, .. } | Self::Reconnecting { code, .. } => code.and_then(CloseCode::from_u16),
            _ => None,
        }
    }

    pub(crate) fn transport(e: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::Transport(Box::new(e))
    }
}
