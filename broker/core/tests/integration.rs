//! The core library's integration tests: dialect hosting, the module host, the Socket.IO gateway.
//!
//! One test binary per package keeps the link time and disk footprint of the suite small; each
//! module below is one area.

mod dialect;
mod module_host;
mod socketio;
