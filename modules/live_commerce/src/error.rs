//! [`CommerceError`]: every way a live-commerce operation fails, and how each reaches a client — an HTTP
//! status with the seed's `{ "success": false, "message": ... }` (REST) or a protocol error code (calls).

use axum::http::StatusCode;
use chorus_core::module::ModuleError;
use chorus_core::protocol::ErrorCode;
use chorus_core::store::StoreError;
use thiserror::Error;

/// Why a live-commerce operation failed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CommerceError {
    /// The request is malformed: bad JSON, a missing or ill-typed field, a value out of range.
    #[error("{0}")]
    Invalid(String),
    /// No valid bearer token where one is needed.
    #[error("{0}")]
    Unauthenticated(String),
    /// The identity may not do this (not the owner, not a moderator).
    #[error("{0}")]
    Forbidden(String),
    /// The addressed thing does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The request conflicts with the current state (a session that has already ended).
    #[error("{0}")]
    Conflict(String),
    /// The connection sends faster than its limit allows.
    #[error("{0}")]
    RateLimited(String),
    /// A part this request needs is not configured on this server (Agora credentials, a signing key).
    #[error("{0}")]
    Unavailable(String),
    /// The store failed (see [`StoreError::is_unavailable`] for whether a retry may help).
    #[error("storage error: {0}")]
    Store(#[from] StoreError),
    /// A stored row could not be read back: a bug, not the client's fault.
    #[error("internal error: {0}")]
    Internal(String),
}

impl CommerceError {
    /// A missing resource, named: `"Session not found"`.
    pub fn not_found(what: &str) -> Self {
        Self::NotFound(format!("{what} not found"))
    }

    /// The HTTP status of this error.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Invalid(_) => StatusCode::BAD_REQUEST,
            Self::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::RateLimited(_) => StatusCode::TOO_MANY_REQUESTS,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Store(e) if e.is_unavailable() => StatusCode::SERVICE_UNAVAILABLE,
            Self::Store(_) | Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The message a client sees. Internal failures are logged here and reach the client as a generic
    /// sentence: their text may name rows or library internals.
    pub fn public_message(&self) -> String {
        match self {
            Self::Store(_) | Self::Internal(_) => {
                tracing::error!(error = %self, "live-commerce request failed");
                if self.status() == StatusCode::SERVICE_UNAVAILABLE {
                    "Storage is unavailable; try again later".into()
                } else {
                    "Internal server error".into()
                }
            }
            other => other.to_string(),
        }
    }
}

impl From<CommerceError> for ModuleError {
    fn from(e: CommerceError) -> Self {
        let code = match &e {
            CommerceError::Invalid(_) => ErrorCode::InvalidArgument,
            CommerceError::Unauthenticated(_) | CommerceError::Forbidden(_) => ErrorCode::Forbidden,
            CommerceError::NotFound(_) => ErrorCode::NotFound,
            CommerceError::Conflict(_) => ErrorCode::Conflict,
            CommerceError::RateLimited(_) => ErrorCode::RateLimited,
            CommerceError::Unavailable(_) => ErrorCode::Unavailable,
            CommerceError::Store(s) => return ModuleError::from(s.clone()),
            CommerceError::Internal(_) => ErrorCode::Internal,
        };
        ModuleError::new(code, e.to_string())
    }
}
