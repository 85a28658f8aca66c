//! The study-groups module against real brokers: seed events over native WebSocket and QUIC, per-user
//! presence, the rules (illegal transitions, role refusals, input bounds), concurrent votes, REST reads
//! and paging, and a restart.
//!
//! One test binary per package keeps the link time and disk footprint of the suite small; each module
//! below is one area.

mod concurrency;
mod events;
mod presence;
mod reconnect;
mod rest;
mod restart;
mod rules;
mod socketio;
mod support;
