//! The module's storage layout: table names, keys, and the MessagePack encoding of rows. Every row the
//! module reads or writes is addressed through here, and `README.md` documents the same layout.

use crate::error::BookingError;
use bytes::Bytes;
use chorus_core::store::{ClusteringKey, Ttl};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Events: partition = event id (decimal); rows [`META`] (`EventRecord`) and [`SEATS`] (`SeatsRow`).
pub const EVENTS: &str = "booking_events";
/// Clustering key of an event's immutable record.
pub const META: &[u8] = b"meta";
/// Clustering key of an event's seats row, the one row every seat change compare-and-sets.
pub const SEATS: &[u8] = b"seats";

/// Every event id, for the recovery sweep: partition [`ALL`], clustering key = the id as `u64`, empty value.
pub const EVENT_INDEX: &str = "booking_event_index";
/// The one partition of [`EVENT_INDEX`].
pub const ALL: &str = "all";

/// Sequences: partition [`EVENT_ID_SEQUENCE`], row [`LAST`] = the last event id handed out (`u64`).
pub const SEQUENCES: &str = "booking_sequences";
/// The event-id sequence.
pub const EVENT_ID_SEQUENCE: &str = "event_id";
/// Clustering key of a sequence's value.
pub const LAST: &[u8] = b"last";

/// Bookings: partition = booking id, row [`RECORD`] (`BookingRecord`).
pub const BOOKINGS: &str = "booking_bookings";
/// Clustering key of a booking's record.
pub const RECORD: &[u8] = b"record";

/// A user's bookings: partition = user subject, clustering key = (created ms, booking id), empty value.
pub const USER_BOOKINGS: &str = "booking_user_bookings";
/// An event's bookings: partition = event id, clustering key = booking id, empty value.
pub const EVENT_BOOKINGS: &str = "booking_event_bookings";

/// Idempotency keys: partition = user subject, clustering key = the key, value `IdempotencyRecord`.
pub const IDEMPOTENCY: &str = "booking_idempotency";

/// How long an idempotency key is remembered, in seconds: a day, as common payment APIs do — far longer
/// than any client retries a request, short enough that the table does not grow without bound.
pub const IDEMPOTENCY_TTL_SECS: u32 = 86_400;

/// [`IDEMPOTENCY_TTL_SECS`] as a store TTL.
pub fn idempotency_ttl() -> Result<Ttl, BookingError> {
    Ok(Ttl::from_secs(IDEMPOTENCY_TTL_SECS)?)
}

/// The partition key of an event's rows.
pub fn event_pk(event_id: u64) -> String {
    event_id.to_string()
}

/// The clustering key of a booking in its user's partition (newest last, so a reversed scan lists newest
/// first).
pub fn user_booking_ck(created_ms: u64, booking_id: &str) -> Bytes {
    ClusteringKey::new().u64(created_ms).str(booking_id).build()
}

/// The clustering key of a booking in its event's partition.
pub fn event_booking_ck(booking_id: &str) -> Bytes {
    ClusteringKey::new().str(booking_id).build()
}

/// The clustering key of an event in [`EVENT_INDEX`].
pub fn event_index_ck(event_id: u64) -> Bytes {
    ClusteringKey::new().u64(event_id).build()
}

/// The clustering key of an idempotency key.
pub fn idempotency_ck(key: &str) -> Bytes {
    ClusteringKey::new().str(key).build()
}

/// Encodes a row value (MessagePack with field names, so records can gain fields with serde defaults).
pub fn encode<T: Serialize>(value: &T) -> Result<Bytes, BookingError> {
    rmp_serde::to_vec_named(value).map(Bytes::from).map_err(|e| BookingError::Internal(format!("encoding a row: {e}")))
}

/// Decodes a row value written by [`encode`].
pub fn decode<T: DeserializeOwned>(what: &str, raw: &[u8]) -> Result<T, BookingError> {
    rmp_serde::from_slice(raw).map_err(|e| BookingError::Internal(format!("unreadable {what} row: {e}")))
}
