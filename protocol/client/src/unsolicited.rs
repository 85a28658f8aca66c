//! Server `error` frames that answer no pending request, kept in a small bounded log.
//!
//! The server sends an `error` without an `id` when it refuses a frame that carried none (a
//! [`publish_nowait`](crate::Client::publish_nowait) that was rate-limited or forbidden, a frame it could not
//! decode). Those errors have no caller waiting for them, so the connection task records them here and logs
//! them at `warn`; the application reads them with [`Client::take_errors`](crate::Client::take_errors).

use chorus_protocol::ErrorCode;
use std::collections::VecDeque;
use std::sync::Mutex;

/// How many unsolicited errors are kept; older ones are dropped first. Such errors are rare (each one is a
/// refused frame), and an application that never looks at them must not grow memory, so the log keeps only
/// enough recent ones to diagnose a burst.
pub const UNSOLICITED_ERROR_CAPACITY: usize = 64;

/// An `error` frame that answered no pending request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerError {
    /// The request id, when the server echoed one that no longer had a waiter (it had timed out).
    pub id: Option<u64>,
    /// The error code (see [`ErrorCode`]).
    pub code: u16,
    /// The server's explanation.
    pub message: String,
}

impl ServerError {
    /// The code as a known [`ErrorCode`].
    pub fn error_code(&self) -> Option<ErrorCode> {
        ErrorCode::from_u16(self.code)
    }
}

/// The bounded log shared by the connection task (writer) and the client (reader). The lock is taken once
/// per unsolicited error and once per [`Client::take_errors`](crate::Client::take_errors), never per event.
#[derive(Debug, Default)]
pub(crate) struct ErrorLog {
    entries: Mutex<VecDeque<ServerError>>,
}

impl ErrorLog {
    pub(crate) fn push(&self, error: ServerError) {
        let mut entries = self.entries.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if entries.len() == UNSOLICITED_ERROR_CAPACITY {
            entries.pop_front();
        }
        entries.push_back(error);
    }

    pub(crate) fn take(&self) -> Vec<ServerError> {
        let mut entries = self.entries.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        entries.drain(..).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_most_recent_errors() {
        let log = ErrorLog::default();
        for n in 0..UNSOLICITED_ERROR_CAPACITY as u64 + 3 {
            log.push(ServerError { id: Some(n), code: 2004, message: "rate limited".into() });
        }
        let taken = log.take();
        assert_eq!(taken.len(), UNSOLICITED_ERROR_CAPACITY);
        assert_eq!(taken[0].id, Some(3));
        assert_eq!(taken[0].error_code(), Some(ErrorCode::RateLimited));
        assert!(log.take().is_empty());
    }
}
