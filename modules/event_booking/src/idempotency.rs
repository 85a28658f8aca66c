//! Idempotent booking: a request carrying an `Idempotency-Key` books at most once per (user, key), and a
//! repeat gets the first request's reply.
//!
//! The key is claimed with `insert_if_absent` on the row (user, key) *before* booking, with the booking id
//! the booking will use. The reply is stored in the same row afterwards. A repeat finds the row and:
//! - with a stored reply: answers it (201 with the same body, or the same 409);
//! - without one, while the first request is young: 409 "in progress";
//! - without one, once the first request is stale (it died mid-way): takes the row over with a conditional
//!   write and finishes the booking under the recorded id — found as a booking row, found as a pending
//!   record in the seats row, or not made at all — so even then the key books at most once.

use crate::error::BookingError;
use crate::model::{BookReply, EventRecord};
use crate::recovery::STALE_AFTER_MS;
use crate::service::{Bookings, new_booking_id};
use crate::tables::{IDEMPOTENCY, decode, encode, idempotency_ck, idempotency_ttl};
use chorus_core::module::Context;
use serde::{Deserialize, Serialize};

/// The row of one (user, key).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct IdempotencyRecord {
    /// The request the key was first used for.
    event_id: u64,
    /// Seats asked for by that request.
    seats: u32,
    /// The id its booking uses.
    booking_id: String,
    /// When the request started (or was taken over), milliseconds since the unix epoch.
    at_ms: u64,
    /// Its final answer, once there is one.
    outcome: Option<Outcome>,
}

/// A final answer worth repeating.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum Outcome {
    /// Booked.
    Booked(BookReply),
    /// Refused for lack of seats.
    NotEnoughSeats {
        /// Seats asked for.
        requested: u32,
        /// Seats left then.
        available: u32,
    },
}

impl Outcome {
    fn of(result: &Result<BookReply, BookingError>) -> Option<Self> {
        match result {
            Ok(reply) => Some(Self::Booked(reply.clone())),
            Err(BookingError::NotEnoughSeats { requested, available }) => {
                Some(Self::NotEnoughSeats { requested: *requested, available: *available })
            }
            Err(_) => None,
        }
    }

    fn replay(self) -> Result<BookReply, BookingError> {
        match self {
            Self::Booked(reply) => Ok(reply),
            Self::NotEnoughSeats { requested, available } => Err(BookingError::NotEnoughSeats { requested, available }),
        }
    }
}

impl Bookings {
    /// Books under an idempotency key (see the module doc).
    pub(crate) async fn book_idempotent(
        &self,
        ctx: &Context,
        event: &EventRecord,
        user: &str,
        seats: u32,
        key: &str,
    ) -> Result<BookReply, BookingError> {
        let ck = idempotency_ck(key);
        let mut claim = IdempotencyRecord {
            event_id: event.id,
            seats,
            booking_id: new_booking_id(),
            at_ms: self.clock.now_ms(),
            outcome: None,
        };
        let ttl = Some(idempotency_ttl()?);
        let inserted = self.store.insert_if_absent(IDEMPOTENCY, user, &ck, encode(&claim)?, ttl).await?;
        let resume = if inserted.applied {
            false
        } else {
            let Some(raw) = inserted.current else {
                // The row expired between the insert and its answer; the client may simply retry.
                return Err(BookingError::IdempotencyInProgress);
            };
            let first: IdempotencyRecord = decode("idempotency", &raw)?;
            if (first.event_id, first.seats) != (event.id, seats) {
                return Err(BookingError::IdempotencyMismatch);
            }
            if let Some(outcome) = first.outcome {
                return outcome.replay();
            }
            if self.clock.now_ms().saturating_sub(first.at_ms) < STALE_AFTER_MS {
                return Err(BookingError::IdempotencyInProgress);
            }
            claim = IdempotencyRecord { at_ms: self.clock.now_ms(), ..first };
            let taken = self.store.update_if_equal(IDEMPOTENCY, user, &ck, &raw, encode(&claim)?, ttl).await?;
            if !taken.applied {
                return Err(BookingError::IdempotencyInProgress);
            }
            true
        };
        let result = self.book_with_id(ctx, event, user, seats, claim.booking_id.clone(), resume).await;
        if let Some(outcome) = Outcome::of(&result) {
            let done = IdempotencyRecord { outcome: Some(outcome), ..claim };
            if let Err(e) = self.store.put(IDEMPOTENCY, user, &ck, encode(&done)?, ttl).await {
                // The booking stands; a repeat finds the claim stale later and answers from the booking.
                tracing::warn!(error = %e, "idempotent reply not stored");
            }
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ChangeKind, PendingChange};
    use crate::testing::{Node, who};
    use chorus_core::store::Clock;
    use std::time::Duration;

    /// A claim left by a request that died: plant it (and, in the first case, the seats it took), then
    /// repeat the request — first while it is fresh, then once stale.
    #[tokio::test]
    async fn a_stale_claim_is_finished_under_its_booking_id_never_booked_twice() {
        let node = Node::start().await;
        let (b, ctx) = (&node.bookings, &node.ctx);
        let id = node.event(10).await;
        let ann = who("ann", None);
        let now = node.clock.now_ms();
        let plant = |key: &'static str, booking_id: &'static str| {
            let claim =
                IdempotencyRecord { event_id: id, seats: 2, booking_id: booking_id.into(), at_ms: now, outcome: None };
            async move {
                let ttl = Some(idempotency_ttl().unwrap());
                let row = encode(&claim).unwrap();
                assert!(
                    b.store.insert_if_absent(IDEMPOTENCY, "ann", &idempotency_ck(key), row, ttl).await.unwrap().applied
                );
            }
        };
        // Died after taking the seats.
        plant("took-seats", "bk_taken").await;
        let change = PendingChange {
            kind: ChangeKind::Book,
            booking_id: "bk_taken".into(),
            user: "ann".into(),
            seats: 2,
            at_ms: now,
        };
        b.seats.take(ctx, id, change, false).await.unwrap();
        // Died right after claiming.
        plant("claimed-only", "bk_claimed").await;

        for key in ["took-seats", "claimed-only"] {
            let early = b.book(ctx, &ann, id, 2, Some(key.into())).await;
            assert_eq!(early, Err(BookingError::IdempotencyInProgress));
        }
        node.clock.advance(Duration::from_millis(crate::recovery::STALE_AFTER_MS));

        let resumed = b.book(ctx, &ann, id, 2, Some("took-seats".into())).await.unwrap();
        assert_eq!((resumed.booking_id.as_str(), resumed.seats, resumed.available_seats), ("bk_taken", 2, 8));
        let claimed = b.book(ctx, &ann, id, 2, Some("claimed-only".into())).await.unwrap();
        assert_eq!((claimed.booking_id.as_str(), claimed.available_seats), ("bk_claimed", 6));
        assert_eq!(b.book(ctx, &ann, id, 2, Some("took-seats".into())).await.unwrap(), resumed, "settled");

        assert_eq!(b.seats.read(id).await.unwrap().available, 6, "two bookings of two seats, each once");
        let listed = b.list(&ann).await.unwrap();
        let mut ids: Vec<&str> = listed.bookings.iter().map(|v| v.booking_id.as_str()).collect();
        ids.sort_unstable();
        assert_eq!(ids, vec!["bk_claimed", "bk_taken"], "both booking rows are written");
    }
}
