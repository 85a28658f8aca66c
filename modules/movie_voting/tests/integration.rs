//! The movie-voting module against real brokers: REST, realtime, Redis compatibility.
//!
//! One test binary per package keeps the link time and disk footprint of the suite small; each
//! module below is one area.

mod ids;
mod realtime;
mod redis_compat;
mod rest;
mod support;
