//! Persistence on the embedded store: stop the broker, start it again on the same data directory, and
//! find events, seats, bookings and idempotency keys as they were.

use crate::support::{Rest, SeedWs, restart, start, stop};
use serde_json::json;

#[tokio::test]
async fn seats_and_bookings_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path()).await;
    let org = Rest::new(&server, "olga", Some("organizer"));
    let first = org.event("Before", 10).await;
    let private = org.create_event(json!({"title": "Hidden", "seatCapacity": 3, "private": true})).await;
    let private = private.body["id"].as_u64().unwrap();
    let ann = Rest::new(&server, "ann", None);
    let kept = ann.book(first, 3, Some("retry-me")).await;
    assert_eq!(kept.status, 201);
    let dropped = ann.book(first, 2, None).await.body["bookingId"].as_str().unwrap().to_owned();
    assert_eq!(ann.cancel(&dropped).await.status, 200);
    let bookings_before = ann.bookings().await;
    stop(server).await;

    let server = restart(dir.path()).await;
    let org = Rest::new(&server, "olga", Some("organizer"));
    let ann = Rest::new(&server, "ann", None);
    let event = ann.get_event(first).await;
    assert_eq!((event.status, event.body["availableSeats"].as_u64()), (200, Some(7)));
    assert_eq!(event.body["title"], "Before");
    assert_eq!(ann.bookings().await, bookings_before, "bookings intact, cancellation included");
    assert_eq!(ann.book(first, 3, Some("retry-me")).await, kept, "idempotency keys survive too");
    assert_eq!(Rest::new(&server, "bob", None).get_event(private).await.status, 403, "access rules persist");
    assert_eq!(ann.cancel(&dropped).await.status, 409, "still cancelled");

    let mut live = SeedWs::general(&server, "sam", None).await;
    assert_eq!(live.subscribe(first).await.1["availableSeats"], 7, "the snapshot reads the stored seats");
    let next = org.event("After", 5).await;
    assert!(next > private, "event ids are not reused after a restart");
    assert_eq!(ann.book(first, 7, None).await.body["availableSeats"], 0);
    assert_eq!(live.next().await["availableSeats"], 0);
    stop(server).await;
}
