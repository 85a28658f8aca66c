//! Unit-test support: a real in-process node with this module on a manual clock, for tests that need the
//! module's internals (planting the state a crash leaves behind, moving time past staleness).

use crate::EventBooking;
use crate::requests::NewEvent;
use crate::service::Bookings;
use chorus_core::auth::Identity;
use chorus_core::config::Config;
use chorus_core::module::Context;
use chorus_core::server::{self, Server};
use chorus_core::store::ManualClock;
use std::sync::Arc;

/// A running node with the module, its domain and context, on a manual clock.
pub struct Node {
    pub server: Server,
    pub bookings: Arc<Bookings>,
    pub ctx: Context,
    pub clock: Arc<ManualClock>,
    _dir: tempfile::TempDir,
}

/// An identity for `sub` with `role`.
pub fn who(sub: &str, role: Option<&str>) -> Identity {
    Identity { sub: sub.into(), name: None, role: role.map(Into::into), guest: false, claims: Arc::default() }
}

impl Node {
    /// Starts a node on loopback port 0 with QUIC off.
    pub async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let config = Config::load_from([
            "chorus",
            "--listen",
            "127.0.0.1:0",
            "--disable-quic",
            "--jwt-secret",
            "unit",
            "--data-dir",
            dir.path().to_str().unwrap(),
        ])
        .unwrap();
        let clock = Arc::new(ManualClock::new(1_700_000_000_000));
        let module = Arc::new(EventBooking::default());
        let server = server::start_with_clock(config, vec![module.clone()], clock.clone()).await.unwrap();
        let bookings = module.bookings().unwrap().clone();
        let ctx = Context::new(server.node().clone());
        Self { server, bookings, ctx, clock, _dir: dir }
    }

    /// Creates a public event with `seats` seats.
    pub async fn event(&self, seats: u32) -> u64 {
        let new = NewEvent {
            title: "t".into(),
            capacity: seats,
            private: false,
            allowed_users: Vec::new(),
            allowed_roles: Vec::new(),
        };
        self.bookings.create_event(&who("org", Some("organizer")), new).await.unwrap().id
    }
}
