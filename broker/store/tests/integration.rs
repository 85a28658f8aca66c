//! The store's integration tests: the conformance suite on every backend, durability, failures.
//!
//! One test binary per package keeps the link time and disk footprint of the suite small; each
//! module below is one area.

#[macro_use]
mod conformance;
mod crash;
mod embedded;
mod redis;
mod scylla;
