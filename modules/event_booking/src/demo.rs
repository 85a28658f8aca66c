//! `GET /demo/booking?eventId=<id>&token=<jwt>`: a static page showing an event's live seat count, built on
//! the seed's own browser client class (`EventBookingWebSocket`) over the seed dialect, with a button that
//! books one seat through REST.

use axum::Router;
use axum::response::Html;
use axum::routing::get;

/// The page; the script reads `eventId` and `token` from the query string.
const PAGE: &str = include_str!("demo_booking.html");

/// The demo route.
pub fn routes() -> Router {
    Router::new().route("/demo/booking", get(|| async { Html(PAGE) }))
}
