//! The client SDK against a real broker over each transport.
//!
//! One test binary per package keeps the link time and disk footprint of the suite small; each
//! module below is one area.

mod quic;
mod resume;
mod ws;
