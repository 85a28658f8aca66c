//! The one error type of the store.
//!
//! The broker turns a [`StoreError`] into a client error code. The split that matters is
//! [`StoreError::is_unavailable`]: `true` means "the store could not serve this right now, try
//! again" (client code `unavailable`, 2010); `false` means "something is wrong with the request or
//! the data" (client code `internal`), which retrying will not fix.

/// Everything a store operation or [`crate::open`] can fail with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The backend cannot be reached or cannot serve the request now: the data directory cannot be
    /// created, the database file is locked by another process, a disk I/O error, no ScyllaDB node
    /// answers, not enough replicas are alive for the consistency level, a node is overloaded, the
    /// Redis connection is down or the server is loading, read-only or out of memory.
    /// Transient from the client's point of view: maps to `unavailable` (2010).
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// The request did not complete in time (`--store-timeout-ms` on the client side, or a
    /// server-side read/write timeout). For a write the outcome is **unknown**: it may have been
    /// applied. Maps to `unavailable` (2010).
    #[error("store request timed out: {0}; a write may or may not have been applied")]
    Timeout(String),
    /// The caller broke the store contract: a table name outside `[a-z0-9_]{1,48}`, an empty or
    /// over-long key, an over-large value, a scan limit out of range, a page token from another
    /// backend, a batch mixing rows and counters. A module bug: maps to `internal`.
    #[error("invalid store argument: {0}")]
    InvalidArgument(String),
    /// The store configuration cannot be used (no ScyllaDB nodes given, a bad keyspace name, no
    /// or a malformed Redis URL, credentials Redis refuses).
    /// Only [`crate::open`] returns it: the broker should exit non-zero with this message.
    #[error("invalid store configuration: {0}")]
    Config(String),
    /// Stored data failed an integrity check (a row shorter than its header, a value of the wrong
    /// CQL type). Retrying will not help: maps to `internal`.
    #[error("store data corrupt: {0}")]
    Corrupt(String),
    /// Any other backend failure: a CQL error such as a missing table (schema not applied), an
    /// unexpected driver response, a Redis script error or a counter add that would overflow on
    /// Redis, a failed background task. Maps to `internal`.
    #[error("store backend error: {0}")]
    Backend(String),
}

impl StoreError {
    /// Whether the failure is transient (the store is unreachable, overloaded or slow), as opposed
    /// to a bug or corrupt data. The broker maps `true` to client code `unavailable` (2010) and
    /// `false` to `internal`.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, StoreError::Unavailable(_) | StoreError::Timeout(_))
    }
}
