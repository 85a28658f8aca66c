//! The booking module against real brokers: REST, seed dialect, native topics, a browser.
//!
//! One test binary per package keeps the link time and disk footprint of the suite small; each
//! module below is one area.

mod browser;
mod native;
mod overbooking;
mod rest;
mod restart;
mod seed_dialect;
mod support;
