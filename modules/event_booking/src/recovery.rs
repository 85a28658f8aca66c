//! Finishing changes that a crash (or a store failure) interrupted.
//!
//! Every change is recorded in the event's seats row *in the same conditional write* that moves its seats
//! (bookings) or before anything else happens (cancellations) — see `model::SeatsRow::pending`. A record
//! still there after [`STALE_AFTER_MS`] belongs to an operation that did not finish; the sweep finishes it:
//! - a booking: write its booking row unless one exists (it may have been cancelled since), write its
//!   index rows, clear the record;
//! - a cancellation: if the booking row says cancelled, return the seats and clear the intent in one
//!   conditional write; otherwise the cancellation never happened, and the intent is cleared.
//!
//! The sweep runs when the module starts and every [`SWEEP_INTERVAL`], on every node; its steps are
//! idempotent conditional writes, so nodes sweeping at once do no harm. Staleness is judged with the
//! node's wall clock against the record's, so nodes' clocks should agree to well within the threshold.

use crate::error::BookingError;
use crate::model::{BookingRecord, BookingStatus, ChangeKind, PendingChange};
use crate::service::Bookings;
use crate::tables::{
    ALL, BOOKINGS, EVENT_BOOKINGS, EVENT_INDEX, RECORD, USER_BOOKINGS, encode, event_booking_ck, event_pk,
    user_booking_ck,
};
use bytes::Bytes;
use chorus_core::module::Context;
use chorus_core::store::{ClusteringKeyReader, MAX_SCAN_LIMIT, Scan, WriteOp};
use std::time::Duration;

/// Age at which a pending change is taken for abandoned. A live operation clears its record within a few
/// store round trips (milliseconds; a ScyllaDB request times out after 2 s by default), so 30 s is never
/// reached by one that is still running, and is short enough that seats held by a crashed request come
/// back quickly.
pub const STALE_AFTER_MS: u64 = 30_000;

/// How often the sweep runs: as often as records become stale.
pub const SWEEP_INTERVAL: Duration = Duration::from_millis(STALE_AFTER_MS);

impl Bookings {
    /// Finishes every stale pending change of every event; returns how many it finished.
    pub async fn sweep(&self, ctx: &Context) -> Result<usize, BookingError> {
        let mut finished = 0;
        let mut after = None;
        loop {
            let page = self.store.scan(EVENT_INDEX, ALL, &Scan::all(MAX_SCAN_LIMIT).after(after)).await?;
            for row in &page.rows {
                let event_id = ClusteringKeyReader::new(&row.ck)
                    .u64()
                    .ok_or_else(|| BookingError::Internal(format!("unreadable key in {EVENT_INDEX}")))?;
                finished += self.recover_event(ctx, event_id).await?;
            }
            match page.next {
                None => return Ok(finished),
                Some(token) => after = Some(token),
            }
        }
    }

    async fn recover_event(&self, ctx: &Context, event_id: u64) -> Result<usize, BookingError> {
        let now = self.clock.now_ms();
        let row = self.seats.read(event_id).await?;
        let stale: Vec<&PendingChange> =
            row.pending.iter().filter(|p| now.saturating_sub(p.at_ms) >= STALE_AFTER_MS).collect();
        for change in &stale {
            tracing::warn!(event_id, booking_id = change.booking_id, kind = ?change.kind, "finishing an interrupted change");
            match change.kind {
                ChangeKind::Book => self.finish_booking(ctx, event_id, change).await?,
                ChangeKind::Cancel => self.finish_cancel(ctx, event_id, change).await?,
            }
        }
        Ok(stale.len())
    }

    async fn finish_booking(&self, ctx: &Context, event_id: u64, change: &PendingChange) -> Result<(), BookingError> {
        let record = BookingRecord {
            id: change.booking_id.clone(),
            event_id,
            user: change.user.clone(),
            seats: change.seats,
            status: BookingStatus::Confirmed,
            created_ms: change.at_ms,
            cancelled_ms: None,
        };
        // Never overwrite: the booking may have been written and cancelled since.
        self.store.insert_if_absent(BOOKINGS, &record.id, RECORD, encode(&record)?, None).await?;
        let put = |table: &str, pk: String, ck: Bytes| WriteOp::Put {
            table: table.into(),
            pk,
            ck,
            value: Bytes::new(),
            ttl: None,
        };
        self.store
            .batch(vec![
                put(USER_BOOKINGS, record.user.clone(), user_booking_ck(record.created_ms, &record.id)),
                put(EVENT_BOOKINGS, event_pk(event_id), event_booking_ck(&record.id)),
            ])
            .await?;
        self.seats.clear(ctx, event_id, ChangeKind::Book, &record.id).await
    }

    async fn finish_cancel(&self, ctx: &Context, event_id: u64, change: &PendingChange) -> Result<(), BookingError> {
        match self.booking(&change.booking_id).await? {
            Some((_, booking)) if booking.status == BookingStatus::Cancelled => {
                self.seats.return_seats(ctx, event_id, &change.booking_id).await.map(|_| ())
            }
            _ => self.seats.clear(ctx, event_id, ChangeKind::Cancel, &change.booking_id).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::model::{BookingStatus, ChangeKind, PendingChange};
    use crate::service::new_booking_id;
    use crate::tables::{BOOKINGS, RECORD, encode};
    use crate::testing::{Node, who};
    use chorus_core::store::Clock;
    use std::time::Duration;

    fn change(kind: ChangeKind, booking_id: &str, user: &str, seats: u32, at_ms: u64) -> PendingChange {
        PendingChange { kind, booking_id: booking_id.into(), user: user.into(), seats, at_ms }
    }

    /// Leaves the three states a crash can leave behind, then sweeps: too early (nothing happens), and once
    /// they are stale (each is finished, once).
    #[tokio::test]
    async fn interrupted_changes_are_finished_once_stale() {
        let node = Node::start().await;
        let (b, ctx) = (&node.bookings, &node.ctx);
        let id = node.event(10).await;
        let event = b.event(id).await.unwrap();
        let now = node.clock.now_ms();

        // Crashed after taking seats, before writing the booking rows.
        let lost = new_booking_id();
        b.seats.take(ctx, id, change(ChangeKind::Book, &lost, "ann", 2, now), false).await.unwrap();
        // Two complete bookings; their records are cleared now rather than by the event's next write.
        let half_cancelled = b.book_with_id(ctx, &event, "bob", 3, new_booking_id(), false).await.unwrap().booking_id;
        let kept = b.book_with_id(ctx, &event, "cy", 1, new_booking_id(), false).await.unwrap().booking_id;
        for done in [&half_cancelled, &kept] {
            b.seats.clear(ctx, id, ChangeKind::Book, done).await.unwrap();
        }
        // Crashed after marking a booking cancelled, before returning its seats.
        b.seats.add_cancel_intent(ctx, id, change(ChangeKind::Cancel, &half_cancelled, "bob", 3, now)).await.unwrap();
        let (raw, record) = b.booking(&half_cancelled).await.unwrap().unwrap();
        let cancelled =
            crate::model::BookingRecord { status: BookingStatus::Cancelled, cancelled_ms: Some(now), ..record };
        let written =
            b.store.update_if_equal(BOOKINGS, &half_cancelled, RECORD, &raw, encode(&cancelled).unwrap(), None);
        assert!(written.await.unwrap().applied);
        // Crashed after recording a cancellation intent, before cancelling.
        b.seats.add_cancel_intent(ctx, id, change(ChangeKind::Cancel, &kept, "cy", 1, now)).await.unwrap();

        let before = b.seats.read(id).await.unwrap();
        assert_eq!((before.available, before.pending.len()), (4, 3));
        assert_eq!(b.sweep(ctx).await.unwrap(), 0, "fresh changes may still be running");
        assert!(b.booking(&lost).await.unwrap().is_none());

        let watcher = chorus_client::Client::connect(chorus_client::ConnectOptions::websocket(format!(
            "ws://{}/v1/ws",
            node.server.http_addr
        )))
        .await
        .unwrap();
        watcher.subscribe(&crate::service::topic(id)).await.unwrap();
        node.clock.advance(Duration::from_millis(super::STALE_AFTER_MS));
        assert_eq!(b.sweep(ctx).await.unwrap(), 3);

        let after = b.seats.read(id).await.unwrap();
        assert_eq!((after.available, after.pending.len()), (7, 0), "the cancelled booking's seats came back");
        let (_, found) = b.booking(&lost).await.unwrap().expect("the lost booking was written");
        assert_eq!((found.user.as_str(), found.seats, found.status), ("ann", 2, BookingStatus::Confirmed));
        let listed = b.list(&who("ann", None)).await.unwrap();
        assert_eq!(listed.bookings.iter().map(|v| v.booking_id.as_str()).collect::<Vec<_>>(), vec![lost.as_str()]);
        assert_eq!(b.booking(&kept).await.unwrap().unwrap().1.status, BookingStatus::Confirmed, "never cancelled");

        let event = watcher.next_event().await.unwrap().payload.to_json();
        assert_eq!(event["type"], "booking_cancelled");
        assert_eq!(event["availableSeats"], 7);
        assert_eq!(watcher.next_event().await.unwrap().payload.to_json()["type"], "seat_update");
        assert_eq!(b.sweep(ctx).await.unwrap(), 0, "finished once");
        assert_eq!(b.seats.read(id).await.unwrap().available, 7);
    }
}
