//! [`StudyError`]: every way a study-group operation fails, and how each reaches a client — as an HTTP
//! status with `{ "message": ... }` (REST) or as a protocol error code (native calls).

use axum::body::Body;
use axum::http::{Response, StatusCode};
use chorus_core::module::ModuleError;
use chorus_core::protocol::ErrorCode;
use chorus_core::store::StoreError;
use thiserror::Error;

/// Why a study-group operation failed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum StudyError {
    /// The request is malformed: bad JSON, a missing or ill-typed field, a value out of range.
    #[error("{0}")]
    Invalid(String),
    /// No (valid) bearer token, or a guest connection tried something that needs an identity.
    #[error("{0}")]
    Unauthenticated(String),
    /// The identity may not do this (not the facilitator, not the scribe, did not vote).
    #[error("{0}")]
    Forbidden(String),
    /// No session, round or group matches.
    #[error("{0}")]
    NotFound(String),
    /// The request conflicts with the session's state: an illegal transition, a second vote.
    #[error("{0}")]
    Conflict(String),
    /// The store failed (see [`StoreError::is_unavailable`] for whether a retry may help).
    #[error("storage error: {0}")]
    Store(#[from] StoreError),
    /// A stored row could not be read back: a bug, not the client's fault.
    #[error("internal error: {0}")]
    Internal(String),
}

impl StudyError {
    /// The HTTP status of this error.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::Store(e) if e.is_unavailable() => StatusCode::SERVICE_UNAVAILABLE,
            Self::Store(_) | Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The error as an HTTP response: the status and `{ "message": ... }`.
    pub fn into_response(self) -> Response<Body> {
        chorus_core::http::json_error(self.status(), &self.to_string())
    }
}

impl From<StudyError> for ModuleError {
    fn from(e: StudyError) -> Self {
        let code = match &e {
            StudyError::Invalid(_) => ErrorCode::InvalidArgument,
            StudyError::Unauthenticated(_) | StudyError::Forbidden(_) => ErrorCode::Forbidden,
            StudyError::NotFound(_) => ErrorCode::NotFound,
            StudyError::Conflict(_) => ErrorCode::Conflict,
            StudyError::Store(s) => return ModuleError::from(s.clone()),
            StudyError::Internal(_) => ErrorCode::Internal,
        };
        ModuleError::new(code, e.to_string())
    }
}
