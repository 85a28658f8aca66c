//! `GET /demo/live`: a live-shopping session in the browser on the real `socket.io-client` (served by the
//! broker's gateway), root namespace: a viewer's view (viewer count, reactions and their stats, chat, the
//! showcased product and click statistics) and the creator's controls (showcase a product). With
//! `?sessionId=<uuid>&token=<jwt>` it joins that session; opened bare on a `--dev` broker it mints tokens
//! (`POST /demo/token`) and creates products, a session and starts its stream through the module's own
//! REST routes; otherwise it says what to pass.

use axum::Router;
use axum::response::Html;
use axum::routing::get;

/// Where the page is served.
pub const PATH: &str = "/demo/live";

/// The page.
const PAGE: &str = include_str!("demo_live.html");

/// The demo route.
pub fn routes() -> Router {
    Router::new().route(PATH, get(|| async { Html(PAGE) }))
}
