//! [`Bookings`]: the domain operations — create and read events, book, cancel, list — on top of the store.
//! REST (`rest.rs`) and native calls (`calls.rs`) are thin adapters over it.
//!
//! A booking, step by step (a crash between any two steps is finished by `recovery.rs`):
//! 1. one conditional write on the event's seats row takes the seats and records the booking as pending
//!    (the commit point: from here the booking exists), and its events are published in commit order;
//! 2. one batch writes the booking row and its two index rows;
//! 3. the pending record is cleared by the event's next write (bookings of one event are combined into
//!    batches, one conditional write each: `seats.rs`).
//!
//! A cancellation: record the intent in the seats row; mark the booking cancelled with a conditional write
//! on its row (only one cancellation can win); return the seats and clear the intent in one conditional
//! write on the seats row.
//!
//! Mutating operations run in their own task, so a caller that disconnects mid-way never leaves one
//! half done.

use crate::access;
use crate::error::BookingError;
use crate::model::{
    BookReply, BookingList, BookingRecord, BookingStatus, BookingView, CancelReply, ChangeKind, EventList, EventRecord,
    EventView, PendingChange, SeatsRow, TopicEvent,
};
use crate::requests::NewEvent;
use crate::seats::{Seats, Taken};
use crate::tables::{
    ALL, BOOKINGS, EVENT_BOOKINGS, EVENT_ID_SEQUENCE, EVENT_INDEX, EVENTS, LAST, META, RECORD, SEATS, SEQUENCES,
    USER_BOOKINGS, decode, encode, event_booking_ck, event_index_ck, event_pk, user_booking_ck,
};
use bytes::Bytes;
use chorus_core::auth::Identity;
use chorus_core::module::Context;
use chorus_core::store::{Clock, ClusteringKeyReader, Scan, Store, WriteOp};
use futures_util::StreamExt;
use parking_lot::RwLock;
use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;

/// Most bookings `GET /api/bookings` returns (the newest): one store page.
pub const MAX_LISTED: usize = 1000;
/// Booking rows read at once while listing: enough to hide read latency, few enough not to crowd out
/// other requests' reads.
const LIST_READ_CONCURRENCY: usize = 32;

/// Event records kept in memory. A record never changes once created, so a cached one is never stale;
/// caching saves a store read on every booking attempt. When full the cache starts over: a miss costs one
/// read, and 10,000 events is far more than are on sale at once.
const EVENT_CACHE_CAPACITY: usize = 10_000;

/// The topic of an event's seat updates.
pub fn topic(event_id: u64) -> String {
    format!("{}{event_id}", crate::TOPIC_PREFIX)
}

/// The booking domain of one node.
pub struct Bookings {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) seats: Arc<Seats>,
    events: RwLock<HashMap<u64, Arc<EventRecord>>>,
}

impl Bookings {
    /// The domain on the store and clock of `ctx`'s node. It keeps no handle on the node itself (the node
    /// owns the module, which owns this): operations that publish take the context as an argument.
    pub fn new(ctx: &Context) -> Self {
        let store = ctx.store().clone();
        Self {
            store: store.clone(),
            clock: ctx.clock().clone(),
            seats: Arc::new(Seats::new(store)),
            events: RwLock::default(),
        }
    }

    /// Creates an event (admins and organizers).
    pub async fn create_event(&self, who: &Identity, new: NewEvent) -> Result<EventView, BookingError> {
        if !access::can_create(who) {
            return Err(BookingError::Forbidden("creating events needs the role admin or organizer".into()));
        }
        let id = self.next_event_id().await?;
        let event = EventRecord {
            id,
            title: new.title,
            capacity: new.capacity,
            private: new.private,
            allowed_users: new.allowed_users,
            allowed_roles: new.allowed_roles,
            created_by: who.sub.clone(),
            created_ms: self.clock.now_ms(),
        };
        let seats = SeatsRow { capacity: event.capacity, available: event.capacity, version: 0, pending: Vec::new() };
        let pk = event_pk(id);
        let put = |table: &str, pk: &str, ck: &[u8], value: Bytes| WriteOp::Put {
            table: table.into(),
            pk: pk.into(),
            ck: Bytes::copy_from_slice(ck),
            value,
            ttl: None,
        };
        self.store
            .batch(vec![
                put(EVENTS, &pk, META, encode(&event)?),
                put(EVENTS, &pk, SEATS, encode(&seats)?),
                put(EVENT_INDEX, ALL, &event_index_ck(id), Bytes::new()),
            ])
            .await?;
        Ok(EventView::new(&event, event.capacity, true))
    }

    /// Hands out the next event id: a compare-and-set loop on the sequence row, so two nodes never hand out
    /// the same id.
    async fn next_event_id(&self) -> Result<u64, BookingError> {
        let mut current = self.store.get(SEQUENCES, EVENT_ID_SEQUENCE, LAST).await?;
        loop {
            let (next, outcome) = match &current {
                None => {
                    (1, self.store.insert_if_absent(SEQUENCES, EVENT_ID_SEQUENCE, LAST, encode(&1u64)?, None).await?)
                }
                Some(raw) => {
                    let next = decode::<u64>("sequence", raw)? + 1;
                    (
                        next,
                        self.store
                            .update_if_equal(SEQUENCES, EVENT_ID_SEQUENCE, LAST, raw, encode(&next)?, None)
                            .await?,
                    )
                }
            };
            if outcome.applied {
                return Ok(next);
            }
            current = outcome.current;
        }
    }

    /// An event's record.
    pub async fn event(&self, event_id: u64) -> Result<Arc<EventRecord>, BookingError> {
        if let Some(event) = self.events.read().get(&event_id) {
            return Ok(event.clone());
        }
        let raw = self.store.get(EVENTS, &event_pk(event_id), META).await?;
        let event: Arc<EventRecord> = Arc::new(decode("event", &raw.ok_or(BookingError::EventNotFound(event_id))?)?);
        let mut cache = self.events.write();
        if cache.len() >= EVENT_CACHE_CAPACITY {
            cache.clear();
        }
        cache.insert(event_id, event.clone());
        Ok(event)
    }

    /// An event's record, if `who` may see it (403 otherwise).
    pub async fn visible_event(&self, who: &Identity, event_id: u64) -> Result<Arc<EventRecord>, BookingError> {
        let event = self.event(event_id).await?;
        if !access::can_view(&event, who) {
            return Err(BookingError::Forbidden(format!("no access to event {event_id}")));
        }
        Ok(event)
    }

    /// An event as `who` sees it, with its seats.
    pub async fn view_event(&self, who: &Identity, event_id: u64) -> Result<EventView, BookingError> {
        let event = self.visible_event(who, event_id).await?;
        let seats = self.seats.read(event_id).await?;
        Ok(EventView::new(&event, seats.available, access::can_see_acl(&event, who)))
    }

    /// The events `who` may see (public ones for a guest), oldest first, at most [`MAX_LISTED`], each with
    /// its current seats.
    pub async fn list_events(&self, who: &Identity) -> Result<EventList, BookingError> {
        let page = self.store.scan(EVENT_INDEX, ALL, &Scan::all(MAX_LISTED)).await?;
        let ids: Vec<u64> = page
            .rows
            .iter()
            .map(|row| {
                ClusteringKeyReader::new(&row.ck)
                    .u64()
                    .ok_or_else(|| BookingError::Internal(format!("unreadable key in {EVENT_INDEX}")))
            })
            .collect::<Result<_, _>>()?;
        let views: Vec<Result<Option<EventView>, BookingError>> =
            futures_util::stream::iter(ids.into_iter().map(|id| async move {
                let event = self.event(id).await?;
                if !access::can_view(&event, who) {
                    return Ok(None);
                }
                let seats = self.seats.read(id).await?;
                Ok(Some(EventView::new(&event, seats.available, access::can_see_acl(&event, who))))
            }))
            .buffered(LIST_READ_CONCURRENCY)
            .collect()
            .await;
        Ok(EventList { events: views.into_iter().filter_map(Result::transpose).collect::<Result<_, _>>()? })
    }

    /// The seat update a new subscriber starts from.
    pub async fn snapshot(&self, event_id: u64) -> Result<TopicEvent, BookingError> {
        Ok(TopicEvent::seat_update(event_id, &self.seats.read(event_id).await?))
    }

    /// Books `seats` seats of an event for `who`; with an idempotency key, a repeated request gets the first
    /// one's reply instead of a second booking.
    pub async fn book(
        self: &Arc<Self>,
        ctx: &Context,
        who: &Identity,
        event_id: u64,
        seats: u32,
        idempotency_key: Option<String>,
    ) -> Result<BookReply, BookingError> {
        let user = signed_in(who, "booking")?;
        let event = self.visible_event(who, event_id).await?;
        let (this, ctx) = (self.clone(), ctx.clone());
        run_to_completion(async move {
            match idempotency_key {
                None => this.book_with_id(&ctx, &event, &user, seats, new_booking_id(), false).await,
                Some(key) => this.book_idempotent(&ctx, &event, &user, seats, &key).await,
            }
        })
        .await
    }

    /// Books with a given booking id. With `resume`, the id may have been used by an earlier attempt that
    /// did not finish: that attempt's booking is finished and answered instead of booking again.
    pub(crate) async fn book_with_id(
        &self,
        ctx: &Context,
        event: &EventRecord,
        user: &str,
        seats: u32,
        booking_id: String,
        resume: bool,
    ) -> Result<BookReply, BookingError> {
        if resume && let Some((_, booking)) = self.booking(&booking_id).await? {
            let now = self.seats.read(event.id).await?;
            return Ok(BookReply {
                booking_id,
                event_id: event.id,
                seats: booking.seats,
                available_seats: now.available,
            });
        }
        let change = PendingChange {
            kind: ChangeKind::Book,
            booking_id: booking_id.clone(),
            user: user.to_owned(),
            seats,
            at_ms: self.clock.now_ms(),
        };
        let Taken { change, available } = self.seats.take(ctx, event.id, change, resume).await?;
        let record = BookingRecord {
            id: booking_id.clone(),
            event_id: event.id,
            user: change.user,
            seats: change.seats,
            status: BookingStatus::Confirmed,
            created_ms: change.at_ms,
            cancelled_ms: None,
        };
        // The seats are taken and the booking is recorded in the seats row: it exists. A failure from here
        // on leaves the pending record for the recovery sweep, which writes the rows.
        match self.write_booking_rows(&record).await {
            Ok(()) => self.seats.finished(ctx, event.id, booking_id.clone()),
            Err(e) => tracing::warn!(error = %e, booking_id, "booking rows not written; the recovery sweep will"),
        }
        Ok(BookReply { booking_id, event_id: event.id, seats: record.seats, available_seats: available })
    }

    /// Writes a booking's row and its user and event index rows, all or nothing.
    async fn write_booking_rows(&self, b: &BookingRecord) -> Result<(), BookingError> {
        let put = |table: &str, pk: String, ck: Bytes, value: Bytes| WriteOp::Put {
            table: table.into(),
            pk,
            ck,
            value,
            ttl: None,
        };
        self.store
            .batch(vec![
                put(BOOKINGS, b.id.clone(), Bytes::from_static(RECORD), encode(b)?),
                put(USER_BOOKINGS, b.user.clone(), user_booking_ck(b.created_ms, &b.id), Bytes::new()),
                put(EVENT_BOOKINGS, event_pk(b.event_id), event_booking_ck(&b.id), Bytes::new()),
            ])
            .await?;
        Ok(())
    }

    /// A booking's row, raw and decoded.
    pub(crate) async fn booking(&self, booking_id: &str) -> Result<Option<(Bytes, BookingRecord)>, BookingError> {
        match self.store.get(BOOKINGS, booking_id, RECORD).await? {
            None => Ok(None),
            Some(raw) => {
                let record = decode("booking", &raw)?;
                Ok(Some((raw, record)))
            }
        }
    }

    /// Cancels one of `who`'s bookings and gives its seats back.
    pub async fn cancel(
        self: &Arc<Self>,
        ctx: &Context,
        who: &Identity,
        booking_id: String,
    ) -> Result<CancelReply, BookingError> {
        let user = signed_in(who, "cancelling")?;
        let (this, ctx) = (self.clone(), ctx.clone());
        run_to_completion(async move { this.cancel_owned(&ctx, &user, booking_id).await }).await
    }

    async fn cancel_owned(&self, ctx: &Context, user: &str, booking_id: String) -> Result<CancelReply, BookingError> {
        let (raw, booking) =
            self.booking(&booking_id).await?.ok_or_else(|| BookingError::BookingNotFound(booking_id.clone()))?;
        if booking.user != user {
            return Err(BookingError::Forbidden(format!("booking {booking_id} belongs to another user")));
        }
        if booking.status == BookingStatus::Cancelled {
            return Err(BookingError::AlreadyCancelled(booking_id));
        }
        let now = self.clock.now_ms();
        let intent = PendingChange {
            kind: ChangeKind::Cancel,
            booking_id: booking_id.clone(),
            user: user.to_owned(),
            seats: booking.seats,
            at_ms: now,
        };
        self.seats.add_cancel_intent(ctx, booking.event_id, intent).await?;
        let cancelled = BookingRecord { status: BookingStatus::Cancelled, cancelled_ms: Some(now), ..booking.clone() };
        // Only one cancellation can move the row from exactly these bytes: seats are returned once. A store
        // error here leaves the outcome unknown; the intent stays for the recovery sweep to settle.
        let outcome =
            self.store.update_if_equal(BOOKINGS, &booking_id, RECORD, &raw, encode(&cancelled)?, None).await?;
        if !outcome.applied {
            self.seats.clear(ctx, booking.event_id, ChangeKind::Cancel, &booking_id).await?;
            return Err(BookingError::AlreadyCancelled(booking_id));
        }
        let row = self.seats.return_seats(ctx, booking.event_id, &booking_id).await?;
        Ok(CancelReply {
            booking_id,
            event_id: booking.event_id,
            seats: booking.seats,
            status: BookingStatus::Cancelled,
            available_seats: row.available,
        })
    }

    /// `who`'s bookings, newest first (at most [`MAX_LISTED`]).
    pub async fn list(&self, who: &Identity) -> Result<BookingList, BookingError> {
        let user = signed_in(who, "listing bookings")?;
        let page = self.store.scan(USER_BOOKINGS, &user, &Scan::all(MAX_LISTED).reversed()).await?;
        let ids: Vec<String> = page
            .rows
            .iter()
            .map(|row| {
                let mut key = ClusteringKeyReader::new(&row.ck);
                key.u64()
                    .and_then(|_| key.string())
                    .ok_or_else(|| BookingError::Internal(format!("unreadable key in {USER_BOOKINGS} for user {user}")))
            })
            .collect::<Result<_, _>>()?;
        let records: Vec<Result<Option<(Bytes, BookingRecord)>, BookingError>> =
            futures_util::stream::iter(ids.into_iter().map(|id| async move { self.booking(&id).await }))
                .buffered(LIST_READ_CONCURRENCY)
                .collect()
                .await;
        let mut bookings = Vec::with_capacity(records.len());
        for record in records {
            if let Some((_, b)) = record? {
                bookings.push(BookingView::from(&b));
            }
        }
        Ok(BookingList { bookings })
    }
}

/// The subject of a signed-in identity; guests are refused.
fn signed_in(who: &Identity, doing: &str) -> Result<String, BookingError> {
    if who.guest {
        return Err(BookingError::Unauthenticated(format!("{doing} needs a signed-in user (a token)")));
    }
    Ok(who.sub.clone())
}

/// A fresh booking id: `bk_` and 128 random bits in hex, unguessable so ids can be shown in URLs.
pub fn new_booking_id() -> String {
    format!("bk_{:032x}", rand::random::<u128>())
}

/// Runs a mutating operation in its own task, so it finishes even if the caller's request is dropped.
async fn run_to_completion<T: Send + 'static>(
    work: impl Future<Output = Result<T, BookingError>> + Send + 'static,
) -> Result<T, BookingError> {
    tokio::spawn(work).await.map_err(|e| BookingError::Internal(format!("booking task failed: {e}")))?
}
