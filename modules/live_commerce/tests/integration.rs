//! The live-commerce module against real brokers: REST, native clients over WebSocket and QUIC, the
//! timers on paused time, and restarts.
//!
//! One test binary per package keeps the link time and disk footprint of the suite small; each module
//! below is one area.

mod accounts;
mod agora;
mod analytics;
mod catalog;
mod chat_history;
mod clicks;
mod engagement;
mod rest;
mod search;
mod socketio;
mod stream;
mod support;
mod viewers;
