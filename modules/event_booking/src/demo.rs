//! `GET /demo/booking`: a static page showing an event's live seat count, built on the seed's own browser
//! client class (`EventBookingWebSocket`) over the seed dialect, with a button that books one seat through
//! REST. With `?eventId=<id>&token=<jwt>` it follows that event; opened bare on a `--dev` broker it mints a
//! token (`POST /demo/token`) and creates a demo event through `POST /api/events` itself; otherwise it says
//! what to pass. The page's shared parts (state in words, reconnect backoff) are `/demo/demo.js`.

use axum::Router;
use axum::response::Html;
use axum::routing::get;

/// Where the page is served.
pub const PATH: &str = "/demo/booking";

/// The page.
const PAGE: &str = include_str!("demo_booking.html");

/// The demo route.
pub fn routes() -> Router {
    Router::new().route(PATH, get(|| async { Html(PAGE) }))
}
