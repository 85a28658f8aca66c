//! Protocol tests: the spec's examples, round trips, error cases.
//!
//! One test binary per package keeps the link time and disk footprint of the suite small; each
//! module below is one area.

mod errors;
mod fuzz_corpus;
mod roundtrip;
mod spec_examples;
