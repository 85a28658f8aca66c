//! What the module keeps and what it says: the records stored as MessagePack rows, the JSON views that REST
//! and calls answer with, and the events published on an event's topic.

use chorus_core::dialect::iso8601;
use serde::{Deserialize, Serialize};

/// Largest seat capacity of an event, and the most seats one booking may ask for. Far above any venue;
/// small enough that every seat count fits a `u32` and a JavaScript number exactly.
pub const MAX_SEATS: u32 = 1_000_000;

/// An event as stored. Immutable once created: seat availability lives in [`SeatsRow`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventRecord {
    /// Numeric id, allocated from a sequence row.
    pub id: u64,
    /// Display title.
    pub title: String,
    /// Seats in total.
    pub capacity: u32,
    /// Private events are visible only to the users and roles listed (see `access.rs`).
    pub private: bool,
    /// Subjects (`sub` claims) that may see a private event.
    pub allowed_users: Vec<String>,
    /// Roles (`role` claim) that may see a private event.
    pub allowed_roles: Vec<String>,
    /// Subject of the creator.
    pub created_by: String,
    /// Creation time, milliseconds since the unix epoch.
    pub created_ms: u64,
}

/// The row every seat change of an event goes through, by compare-and-set on its exact bytes.
///
/// `pending` makes a change durable at the moment its seats move: a booking's record is added by the same
/// conditional write that takes its seats, and removed only after the booking rows are written; a
/// cancellation's intent is added before the booking is marked cancelled, and removed by the write that
/// returns the seats. A change interrupted by a crash is finished from its record (`recovery.rs`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeatsRow {
    /// Seats in total (a copy of the event's, so a seat update needs one read).
    pub capacity: u32,
    /// Seats not booked.
    pub available: u32,
    /// Incremented by every write that changes `available`; orders the published events.
    pub version: u64,
    /// Changes whose seats have moved (bookings) or are about to (cancellations) but are not finished.
    pub pending: Vec<PendingChange>,
}

/// An unfinished change recorded in [`SeatsRow::pending`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PendingChange {
    /// What is being done.
    pub kind: ChangeKind,
    /// The booking concerned.
    pub booking_id: String,
    /// Its owner.
    pub user: String,
    /// Its seats.
    pub seats: u32,
    /// When the change started, milliseconds since the unix epoch (recovery waits until it is stale).
    pub at_ms: u64,
}

/// The kind of a [`PendingChange`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeKind {
    /// Seats were taken; the booking rows may not be written yet.
    Book,
    /// The booking is being cancelled; its seats are not returned yet.
    Cancel,
}

/// A booking as stored (one row, keyed by booking id).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BookingRecord {
    /// Booking id (`bk_` and 32 hex digits).
    pub id: String,
    /// The event booked.
    pub event_id: u64,
    /// Subject of the booker.
    pub user: String,
    /// Seats booked.
    pub seats: u32,
    /// Confirmed or cancelled.
    pub status: BookingStatus,
    /// Creation time, milliseconds since the unix epoch.
    pub created_ms: u64,
    /// Cancellation time, once cancelled.
    pub cancelled_ms: Option<u64>,
}

/// The state of a booking.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BookingStatus {
    /// Holds its seats.
    Confirmed,
    /// Seats given back.
    Cancelled,
}

/// An event as REST and `booking.get` show it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EventView {
    /// Numeric id.
    pub id: u64,
    /// Title.
    pub title: String,
    /// Seats in total.
    pub seat_capacity: u32,
    /// Seats left.
    pub available_seats: u32,
    /// Whether the event is private.
    pub private: bool,
    /// Subject of the creator.
    pub created_by: String,
    /// ISO-8601 creation time.
    pub created_at: String,
    /// The private event's user list; shown to its creator and admins only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allowed_users: Option<Vec<String>>,
    /// The private event's role list; shown to its creator and admins only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allowed_roles: Option<Vec<String>>,
}

impl EventView {
    /// The view of `event` with `available` seats left; `show_acl` adds the access lists.
    pub fn new(event: &EventRecord, available: u32, show_acl: bool) -> Self {
        Self {
            id: event.id,
            title: event.title.clone(),
            seat_capacity: event.capacity,
            available_seats: available,
            private: event.private,
            created_by: event.created_by.clone(),
            created_at: iso8601(event.created_ms),
            allowed_users: show_acl.then(|| event.allowed_users.clone()),
            allowed_roles: show_acl.then(|| event.allowed_roles.clone()),
        }
    }
}

/// The answer to a successful booking. Stored with an idempotency key, so it is also `Deserialize`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BookReply {
    /// The new booking's id — only the booker ever sees it.
    pub booking_id: String,
    /// The event booked.
    pub event_id: u64,
    /// Seats booked.
    pub seats: u32,
    /// Seats left right after this booking.
    pub available_seats: u32,
}

/// The answer to a successful cancellation.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CancelReply {
    /// The cancelled booking.
    pub booking_id: String,
    /// Its event.
    pub event_id: u64,
    /// Seats given back.
    pub seats: u32,
    /// Always `cancelled`.
    pub status: BookingStatus,
    /// Seats left after the seats were given back.
    pub available_seats: u32,
}

/// A booking as `GET /api/bookings` and `booking.list` show it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BookingView {
    /// Booking id.
    pub booking_id: String,
    /// The event booked.
    pub event_id: u64,
    /// Seats booked.
    pub seats: u32,
    /// `confirmed` or `cancelled`.
    pub status: BookingStatus,
    /// ISO-8601 creation time.
    pub created_at: String,
    /// ISO-8601 cancellation time, once cancelled.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cancelled_at: Option<String>,
}

impl From<&BookingRecord> for BookingView {
    fn from(b: &BookingRecord) -> Self {
        Self {
            booking_id: b.id.clone(),
            event_id: b.event_id,
            seats: b.seats,
            status: b.status,
            created_at: iso8601(b.created_ms),
            cancelled_at: b.cancelled_ms.map(iso8601),
        }
    }
}

/// The events the caller may see, oldest first (`GET /api/events`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EventList {
    /// The events, each as [`EventView`] shows it to the caller.
    pub events: Vec<EventView>,
}

/// The caller's bookings, newest first.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BookingList {
    /// The bookings.
    pub bookings: Vec<BookingView>,
}

/// An event published on `booking/event/{id}`: exactly a seed-004 server message without its `timestamp`
/// (the dialect host adds it). Never carries a booking id or a user id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case", rename_all_fields = "camelCase")]
pub enum TopicEvent {
    /// The seats of an event: sent as the snapshot on subscribe and after every change.
    SeatUpdate {
        /// The event.
        event_id: u64,
        /// Seats left.
        available_seats: u32,
        /// Seats in total.
        seat_capacity: u32,
    },
    /// Someone booked; seats left after it.
    BookingCreated {
        /// The event.
        event_id: u64,
        /// Seats left.
        available_seats: u32,
    },
    /// Someone cancelled; seats left after it.
    BookingCancelled {
        /// The event.
        event_id: u64,
        /// Seats left.
        available_seats: u32,
    },
}

impl TopicEvent {
    /// The seat update for `seats` of `event_id`.
    pub fn seat_update(event_id: u64, seats: &SeatsRow) -> Self {
        Self::SeatUpdate { event_id, available_seats: seats.available, seat_capacity: seats.capacity }
    }
}
