//! End-to-end tests: the real `chorus` binary over real sockets.
//!
//! One test binary per package keeps the link time and disk footprint of the suite small; each
//! module below is one area.

mod auth;
mod bad_input;
mod cli;
mod cluster;
mod commerce_accounts;
mod config;
mod demos;
mod deploy;
mod faults;
mod jwt_attacks;
mod logs;
mod metrics;
mod modules;
mod overload;
mod plain_errors;
mod prometheus;
mod quickstart;
mod recovery;
mod redis_cluster;
mod roster;
mod shutdown;
mod slow_consumer;
mod socketio;
mod support;
mod transports;
mod websocket_conformance;
