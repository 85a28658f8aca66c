//! The movie-voting sessions module (seeds 000 and 001): a host creates a session with a 6-digit id, friends
//! join it, add movies and vote; everyone subscribed to the session sees every change live; the session is
//! gone 24 hours after it was created.
//!
//! The REST API (`POST /api/session/create`, `POST /api/session/join`, …) keeps the seeds' paths, bodies,
//! status codes and messages. Realtime clients subscribe to `movies/session/{id}` and call `movies.*`
//! methods. With `CHORUS_REDIS_URL` set, every session is also mirrored at the seed's Redis key and channel,
//! and updates another backend publishes there reach chorus clients. `README.md` beside this crate is the
//! contract.
//!
//! Layout:
//! - `movies`: [`MovieVoting`], the [`Module`](chorus_core::module::Module) implementation (module name
//!   `movies`): topics, calls, start-up of the background tasks.
//! - `sessions`: the live sessions of this node, their operations, and loading them from the store.
//! - `session`: one session's in-memory state and its JSON (the seed's shape).
//! - `rows`: the store tables and their row encodings.
//! - `request`: reading call arguments and REST bodies, with the contract's messages.
//! - `rest`: the HTTP routes.
//! - `socketio`: the seeds' Socket.IO events, bound for the broker's Socket.IO gateway.
//! - `redis`: the seed-000 Redis mirror and the listener for updates other backends publish.
//! - `ids`: 6-digit session ids (`createdAt` is `chorus_core::dialect::iso8601`, the seed's format).
#![warn(missing_docs)]

mod ids;
mod movies;
mod redis;
mod request;
mod rest;
mod rows;
mod session;
mod sessions;
mod socketio;

pub use movies::{EXPIRY_SWEEP, MovieVoting, NAME};
pub use sessions::{JOINED_SESSION, SESSION_EXPIRED, SESSION_UPDATE, TOPIC_PREFIX, topic};
pub use socketio::{JOIN_SESSION, socketio};

use std::sync::Arc;

/// The module, ready to hand to the broker (`server::start(config, vec![chorus_movie_voting::module()])`).
pub fn module() -> Arc<dyn chorus_core::module::Module> {
    Arc::new(MovieVoting::default())
}
