//! The seats row of an event and the one way it changes: read it, decide, compare-and-set it against the
//! exact bytes read, and on a lost race decide again from the value that won.
//!
//! This is what prevents overbooking: a decision ("44 seats left, take 1") is only written if the row
//! still holds the bytes it was made from, and the store makes that conditional write linearizable per
//! row on every backend (a redb write transaction on the embedded store, a lightweight transaction on
//! ScyllaDB). No process-local lock is involved, so any number of nodes can book the same event.
//!
//! A popular event's seats row is a hot spot: every write to it is a conditional write that only one
//! contender per commit can win. So bookings of one event on one node are *combined*: requests queue per
//! event, one leader task takes a batch from the queue, decides every request of it in order against the
//! row (take, or refuse for lack of seats), and writes the whole batch with one conditional write. The
//! same write clears the pending records of bookings finished since the last one. Correctness is still
//! the conditional write's alone — two nodes' leaders race like any two writers — combining only makes
//! one write carry many bookings.

use crate::error::BookingError;
use crate::model::{ChangeKind, PendingChange, SeatsRow, TopicEvent};
use crate::sequencer::Sequencer;
use crate::service::topic;
use crate::tables::{EVENTS, SEATS, decode, encode, event_pk};
use bytes::Bytes;
use chorus_core::module::Context;
use chorus_core::protocol::Payload;
use chorus_core::store::Store;
use parking_lot::Mutex;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use tokio::sync::oneshot;

/// What a decision on the current seats row says.
pub enum Decision<T> {
    /// Write this row; publish these events (in order) once it is committed.
    Write {
        /// The new row. A row whose `version` differs from the current one changes the seat count.
        row: SeatsRow,
        /// Events to publish after the write.
        events: Vec<TopicEvent>,
        /// What the change returns.
        out: T,
    },
    /// Write nothing.
    Keep(T),
}

/// Most booking requests decided and written in one conditional write. Bounds the pending records the
/// write adds to the row (about 80 bytes each, so ≈ 10 KiB) and the time one batch takes to decide; 128
/// concurrent bookers of one event on one node already share a single write.
const MAX_BATCH: usize = 128;

/// A booking request waiting for its batch.
struct TakeRequest {
    change: PendingChange,
    resume: bool,
    reply: oneshot::Sender<Result<Taken, BookingError>>,
}

/// The seats a booking took.
#[derive(Debug, Clone, PartialEq)]
pub struct Taken {
    /// The booking's pending record (as found, when resumed).
    pub change: PendingChange,
    /// Seats left right after this booking.
    pub available: u32,
}

/// Work waiting for one event's leader.
#[derive(Default)]
struct Queue {
    waiting: VecDeque<TakeRequest>,
    /// Bookings whose rows are written: their pending records can go.
    finished: Vec<String>,
}

/// The version key of `seat_update` on an event's topic (see [`Context::publish_versioned`]).
const SEATS_VERSION: &str = "seats";

/// The seats rows of all events.
pub struct Seats {
    store: Arc<dyn Store>,
    sequencer: Sequencer<TopicEvent>,
    /// Per event with work queued: the queue. An event is in the map exactly while its leader runs.
    queues: Mutex<HashMap<u64, Queue>>,
}

impl Seats {
    /// Seats rows in `store`.
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self { store, sequencer: Sequencer::default(), queues: Mutex::default() }
    }

    /// Reads an event's seats row.
    pub async fn read(&self, event_id: u64) -> Result<SeatsRow, BookingError> {
        let raw = self.store.get(EVENTS, &event_pk(event_id), SEATS).await?;
        decode("seats", &raw.ok_or(BookingError::EventNotFound(event_id))?)
    }

    /// Applies `decide` to the current row until its write wins (or it keeps the row, or fails). Returns the
    /// row as written (or as kept) and the decision's output. Events are published on `ctx`'s node, in
    /// commit order.
    pub async fn change<T>(
        &self,
        ctx: &Context,
        event_id: u64,
        mut decide: impl FnMut(&SeatsRow) -> Result<Decision<T>, BookingError>,
    ) -> Result<(SeatsRow, T), BookingError> {
        let publish = |event_id: u64, order: u64, event: &TopicEvent| match Payload::from_value(event) {
            // The seat count is state: a newer one supersedes it. Booking and cancellation events are news:
            // every one is delivered.
            Ok(payload) if matches!(event, TopicEvent::SeatUpdate { .. }) => {
                ctx.publish_versioned(&topic(event_id), SEATS_VERSION, order, &payload);
            }
            Ok(payload) => {
                ctx.publish(&topic(event_id), &payload);
            }
            Err(e) => tracing::error!(error = %e, "encoding a seat event"),
        };
        let pk = event_pk(event_id);
        let mut raw: Option<Bytes> = self.store.get(EVENTS, &pk, SEATS).await?;
        loop {
            let current_raw = raw.ok_or(BookingError::EventNotFound(event_id))?;
            let current: SeatsRow = decode("seats", &current_raw)?;
            let (row, events, out) = match decide(&current)? {
                Decision::Keep(out) => return Ok((current, out)),
                Decision::Write { row, events, out } => (row, events, out),
            };
            let attempt =
                (row.version != current.version).then(|| self.sequencer.attempt(event_id, row.version, &publish));
            let outcome = self.store.update_if_equal(EVENTS, &pk, SEATS, &current_raw, encode(&row)?, None).await?;
            if outcome.applied {
                if let Some(attempt) = attempt {
                    attempt.committed(events);
                }
                return Ok((row, out));
            }
            // Lost the race: decide again from the value that won, without another read.
            raw = outcome.current;
        }
    }

    /// Takes `change.seats` seats and records the booking as pending, in the next batch of the event. With
    /// `resume`, a booking already recorded as pending (by an earlier attempt with the same id) is not taken
    /// twice.
    pub async fn take(
        self: &Arc<Self>,
        ctx: &Context,
        event_id: u64,
        change: PendingChange,
        resume: bool,
    ) -> Result<Taken, BookingError> {
        let (reply, answer) = oneshot::channel();
        self.enqueue(ctx, event_id, |queue| queue.waiting.push_back(TakeRequest { change, resume, reply }));
        answer.await.map_err(|_| BookingError::Internal("the booking batch was dropped".into()))?
    }

    /// A booking's rows are written: its pending record is cleared with the event's next write.
    pub fn finished(self: &Arc<Self>, ctx: &Context, event_id: u64, booking_id: String) {
        self.enqueue(ctx, event_id, |queue| queue.finished.push(booking_id));
    }

    /// Queues work for an event and starts its leader unless one runs.
    fn enqueue(self: &Arc<Self>, ctx: &Context, event_id: u64, add: impl FnOnce(&mut Queue)) {
        let start_leader = {
            let mut queues = self.queues.lock();
            let start = !queues.contains_key(&event_id);
            add(queues.entry(event_id).or_default());
            start
        };
        if start_leader {
            let (this, ctx) = (self.clone(), ctx.clone());
            tokio::spawn(async move { this.lead(&ctx, event_id).await });
        }
    }

    /// Writes batches for an event until its queue is empty.
    async fn lead(&self, ctx: &Context, event_id: u64) {
        // If this task ends any other way (a panic, the runtime stopping), the event must not stay marked
        // as led: drop its queue, which fails the waiting requests instead of leaving them hanging.
        struct Abandon<'a> {
            seats: &'a Seats,
            event_id: u64,
            armed: bool,
        }
        impl Drop for Abandon<'_> {
            fn drop(&mut self) {
                if self.armed {
                    self.seats.queues.lock().remove(&self.event_id);
                }
            }
        }
        let mut abandon = Abandon { seats: self, event_id, armed: true };
        loop {
            let (batch, finished) = {
                let mut queues = self.queues.lock();
                let Some(queue) = queues.get_mut(&event_id) else {
                    abandon.armed = false;
                    return;
                };
                if queue.waiting.is_empty() && queue.finished.is_empty() {
                    queues.remove(&event_id);
                    abandon.armed = false;
                    return;
                }
                let n = queue.waiting.len().min(MAX_BATCH);
                let batch: Vec<TakeRequest> = queue.waiting.drain(..n).collect();
                (batch, std::mem::take(&mut queue.finished))
            };
            let requests: Vec<(&PendingChange, bool)> = batch.iter().map(|r| (&r.change, r.resume)).collect();
            let outcome = self.change(ctx, event_id, |row| decide_batch(event_id, row, &requests, &finished)).await;
            match outcome {
                Ok((_, answers)) => {
                    for (request, answer) in batch.into_iter().zip(answers) {
                        let _ = request.reply.send(answer);
                    }
                }
                Err(e) => {
                    if !finished.is_empty() {
                        tracing::warn!(error = %e, event_id, "pending bookings not cleared; the recovery sweep will");
                    }
                    for request in batch {
                        let _ = request.reply.send(Err(e.clone()));
                    }
                }
            }
        }
    }

    /// Records the intent to cancel a booking. Fails with `AlreadyCancelled` when another cancellation of
    /// it is under way (that one finishes the job).
    pub async fn add_cancel_intent(
        &self,
        ctx: &Context,
        event_id: u64,
        intent: PendingChange,
    ) -> Result<(), BookingError> {
        self.change(ctx, event_id, |row| {
            if row.find(ChangeKind::Cancel, &intent.booking_id).is_some() {
                return Err(BookingError::AlreadyCancelled(intent.booking_id.clone()));
            }
            let mut new = row.clone();
            new.pending.push(intent.clone());
            Ok(Decision::Write { row: new, events: Vec::new(), out: () })
        })
        .await
        .map(|_| ())
    }

    /// Gives a cancelled booking's seats back and clears its intent, in one conditional write — only while
    /// the intent is there, so the seats are returned exactly once. Returns the row after it.
    pub async fn return_seats(&self, ctx: &Context, event_id: u64, booking_id: &str) -> Result<SeatsRow, BookingError> {
        self.change(ctx, event_id, |row| {
            let Some(intent) = row.find(ChangeKind::Cancel, booking_id) else {
                return Ok(Decision::Keep(()));
            };
            let mut new = row.clone();
            new.available = row.available.saturating_add(intent.seats).min(row.capacity);
            new.version += 1;
            new.pending.retain(|p| !(p.kind == ChangeKind::Cancel && p.booking_id == booking_id));
            let events = vec![
                TopicEvent::BookingCancelled { event_id, available_seats: new.available },
                TopicEvent::seat_update(event_id, &new),
            ];
            Ok(Decision::Write { row: new, events, out: () })
        })
        .await
        .map(|(row, ())| row)
    }

    /// Clears a finished (or abandoned) pending change without touching the seat count.
    pub async fn clear(
        &self,
        ctx: &Context,
        event_id: u64,
        kind: ChangeKind,
        booking_id: &str,
    ) -> Result<(), BookingError> {
        self.change(ctx, event_id, |row| {
            if row.find(kind, booking_id).is_none() {
                return Ok(Decision::Keep(()));
            }
            let mut new = row.clone();
            new.pending.retain(|p| !(p.kind == kind && p.booking_id == booking_id));
            Ok(Decision::Write { row: new, events: Vec::new(), out: () })
        })
        .await
        .map(|_| ())
    }
}

/// Decides a batch against the current row, in order: each booking takes its seats if enough are left
/// (or is found already pending, when resumed), else is refused; finished bookings' records are dropped.
fn decide_batch(
    event_id: u64,
    row: &SeatsRow,
    requests: &[(&PendingChange, bool)],
    finished: &[String],
) -> Result<Decision<Vec<Result<Taken, BookingError>>>, BookingError> {
    let mut new = row.clone();
    new.pending.retain(|p| !(p.kind == ChangeKind::Book && finished.contains(&p.booking_id)));
    let mut events = Vec::new();
    let answers: Vec<Result<Taken, BookingError>> = requests
        .iter()
        .map(|(change, resume)| {
            if *resume && let Some(found) = row.find(ChangeKind::Book, &change.booking_id) {
                return Ok(Taken { change: found.clone(), available: new.available });
            }
            if new.available < change.seats {
                return Err(BookingError::NotEnoughSeats { requested: change.seats, available: new.available });
            }
            new.available -= change.seats;
            new.pending.push((*change).clone());
            events.push(TopicEvent::BookingCreated { event_id, available_seats: new.available });
            events.push(TopicEvent::seat_update(event_id, &new));
            Ok(Taken { change: (*change).clone(), available: new.available })
        })
        .collect();
    if events.is_empty() && new.pending.len() == row.pending.len() {
        return Ok(Decision::Keep(answers));
    }
    if !events.is_empty() {
        new.version += 1;
    }
    Ok(Decision::Write { row: new, events, out: answers })
}

impl SeatsRow {
    /// The pending change of this kind for this booking.
    pub fn find(&self, kind: ChangeKind, booking_id: &str) -> Option<&PendingChange> {
        self.pending.iter().find(|p| p.kind == kind && p.booking_id == booking_id)
    }
}
