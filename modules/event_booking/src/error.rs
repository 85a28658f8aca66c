//! [`BookingError`]: every way a booking operation fails, and how each reaches a client — as an HTTP
//! status with `{ "message": ... }` (REST) or as a protocol error code (native calls).

use axum::body::Body;
use axum::http::{Response, StatusCode};
use chorus_core::module::ModuleError;
use chorus_core::protocol::ErrorCode;
use chorus_core::store::StoreError;
use thiserror::Error;

/// Why a booking operation failed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum BookingError {
    /// The request is malformed: bad JSON, a missing or ill-typed field, a value out of range.
    #[error("{0}")]
    Invalid(String),
    /// No (valid) bearer token, or a guest connection tried something that needs an identity.
    #[error("{0}")]
    Unauthenticated(String),
    /// The identity may not do this (create events, see a private event, cancel another user's booking).
    #[error("{0}")]
    Forbidden(String),
    /// No event has this id.
    #[error("event {0} not found")]
    EventNotFound(u64),
    /// No booking has this id.
    #[error("booking {0} not found")]
    BookingNotFound(String),
    /// Fewer seats are left than were asked for.
    #[error("not enough seats: {requested} requested, {available} available")]
    NotEnoughSeats {
        /// Seats asked for.
        requested: u32,
        /// Seats left when the request was decided.
        available: u32,
    },
    /// The booking was cancelled before.
    #[error("booking {0} is already cancelled")]
    AlreadyCancelled(String),
    /// Another request with the same `Idempotency-Key` is being executed right now.
    #[error("a request with this Idempotency-Key is still in progress; retry later")]
    IdempotencyInProgress,
    /// The `Idempotency-Key` was first used for a request with other parameters.
    #[error("this Idempotency-Key was already used for a different request")]
    IdempotencyMismatch,
    /// The store failed (see [`StoreError::is_unavailable`] for whether a retry may help).
    #[error("storage error: {0}")]
    Store(#[from] StoreError),
    /// A stored row could not be read back, or a task failed: a bug, not the client's fault.
    #[error("internal error: {0}")]
    Internal(String),
}

impl BookingError {
    /// The HTTP status of this error.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Invalid(_) => StatusCode::BAD_REQUEST,
            Self::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::EventNotFound(_) | Self::BookingNotFound(_) => StatusCode::NOT_FOUND,
            Self::NotEnoughSeats { .. } | Self::AlreadyCancelled(_) | Self::IdempotencyInProgress => {
                StatusCode::CONFLICT
            }
            Self::IdempotencyMismatch => StatusCode::UNPROCESSABLE_ENTITY,
            Self::Store(e) if e.is_unavailable() => StatusCode::SERVICE_UNAVAILABLE,
            Self::Store(_) | Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The error as an HTTP response: the status and `{ "message": ... }`.
    pub fn into_response(self) -> Response<Body> {
        chorus_core::http::json_error(self.status(), &self.to_string())
    }
}

impl From<BookingError> for ModuleError {
    fn from(e: BookingError) -> Self {
        let code = match &e {
            BookingError::Invalid(_) | BookingError::IdempotencyMismatch => ErrorCode::InvalidArgument,
            BookingError::Unauthenticated(_) | BookingError::Forbidden(_) => ErrorCode::Forbidden,
            BookingError::EventNotFound(_) | BookingError::BookingNotFound(_) => ErrorCode::NotFound,
            BookingError::NotEnoughSeats { .. }
            | BookingError::AlreadyCancelled(_)
            | BookingError::IdempotencyInProgress => ErrorCode::Conflict,
            BookingError::Store(s) => return ModuleError::from(s.clone()),
            BookingError::Internal(_) => ErrorCode::Internal,
        };
        ModuleError::new(code, e.to_string())
    }
}
