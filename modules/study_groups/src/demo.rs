//! `GET /demo/study-groups`: a study-group session in the browser on the real `socket.io-client` (served by
//! the broker's gateway), namespace `/study-groups` with `auth.token`: presence (`userJoined` /
//! `userLeft`), round and vote events, and chat. With `?sessionId=<uuid>&groupId=<id>&token=<jwt>` it joins
//! that session; opened bare on a `--dev` broker it mints a token (`POST /demo/token`) and creates and
//! starts a session through the module's own REST routes; otherwise it says what to pass.

use axum::Router;
use axum::response::Html;
use axum::routing::get;

/// Where the page is served.
pub const PATH: &str = "/demo/study-groups";

/// The page.
const PAGE: &str = include_str!("demo_study_groups.html");

/// The demo route.
pub fn routes() -> Router {
    Router::new().route(PATH, get(|| async { Html(PAGE) }))
}
