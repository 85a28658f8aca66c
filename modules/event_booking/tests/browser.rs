//! The demo page in a real browser: headless Chromium (`chorus_testkit::chromium`) loads
//! `/demo/booking?eventId=…&token=…`, whose script is the seed's `EventBookingWebSocket` client; bookings
//! made through REST — by the test, then by the page's own button — change the seat count on the page.
//! (The page opened bare, in and out of `--dev` mode, is tested against the real binary in `tests/demos.rs`.)

use crate::support::{Rest, start, stop, token};
use chorus_testkit::chromium::{Chromium, Page};
use serde_json::Value;

/// What the booking page shows: seats, capacity, connection state and the last booking result.
const SHOWN: &str = "({ available: text('available'), capacity: text('capacity'), status: text('status'), result: text('book-result') })";

/// Resolves once the page shows `seats` available on a live connection; returns what it shows.
async fn seats_shown(page: &mut Page, seats: u32) -> Value {
    let condition = format!("text('available') === '{seats}' && text('status') === 'connected'");
    page.until(&condition, SHOWN).await.expect("the page shows the seats")
}

#[tokio::test]
async fn the_demo_page_shows_live_seats_in_chromium() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path()).await;
    let id = Rest::new(&server, "olga", Some("organizer")).event("Browser night", 5).await;
    let url = format!("http://{}/demo/booking?eventId={id}&token={}", server.http_addr, token("viewer", None));

    let chromium = Chromium::launch().await.expect("start chromium");
    let mut page = chromium.open(&url).await.expect("open the demo page");
    let shown = seats_shown(&mut page, 5).await;
    assert_eq!((shown["available"].as_str(), shown["capacity"].as_str()), (Some("5"), Some("5")));

    // A booking through REST by someone else: the page follows.
    assert_eq!(Rest::new(&server, "ann", None).book(id, 2, None).await.status, 201);
    assert_eq!(seats_shown(&mut page, 3).await["available"], "3");

    // The page's own button books through REST with the page's token.
    page.evaluate("document.getElementById('book').click()").await.expect("click");
    assert_eq!(seats_shown(&mut page, 2).await["available"], "2");
    let shown = page.until("(text('book-result') || '').startsWith('booked bk_')", SHOWN).await.expect("booked");
    assert_eq!(shown["available"], "2");
    let rest = Rest::new(&server, "viewer", None);
    let mine = rest.bookings().await.body["bookings"].clone();
    assert_eq!(mine.as_array().map(Vec::len), Some(1), "the page booked as its token's user: {mine}");
    assert_eq!(rest.get_event(id).await.body["availableSeats"], 2);
    drop(chromium);
    stop(server).await;
}
