//! [`CloseInfo`]: how and why a connection ended.

use crate::error::ClientError;
use chorus_protocol::CloseCode;

/// How a connection ended. Available from [`Client::closed`](crate::Client::closed) and
/// [`Client::close_info`](crate::Client::close_info) once the connection task has stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloseInfo {
    /// The close code: the server's `disconnect` code when it sent one, else the WebSocket close code or
    /// QUIC application error code. `None` when the transport ended without a code (reset, EOF, I/O error).
    pub code: Option<u16>,
    /// The reason text that accompanied the code, or a description of the transport failure.
    pub reason: String,
    /// True when this side ended the connection ([`Client::close`](crate::Client::close), dropping the client,
    /// or the SDK giving up on an undecodable server frame).
    pub by_client: bool,
}

impl CloseInfo {
    /// A close initiated by the server (or by the network).
    pub(crate) fn remote(code: Option<u16>, reason: impl Into<String>) -> Self {
        Self { code, reason: reason.into(), by_client: false }
    }

    /// A close initiated by this side.
    pub(crate) fn local(code: CloseCode, reason: impl Into<String>) -> Self {
        Self { code: Some(code.as_u16()), reason: reason.into(), by_client: true }
    }

    /// The code as a known [`CloseCode`].
    pub fn close_code(&self) -> Option<CloseCode> {
        self.code.and_then(CloseCode::from_u16)
    }

    /// The [`ClientError::Closed`] that requests fail with after this close.
    pub fn to_error(&self) -> ClientError {
        ClientError::Closed { code: self.code, reason: self.reason.clone() }
    }
}
