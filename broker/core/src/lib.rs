//! The chorus broker library. The `chorus` binary (package `chorus-broker`) only parses the config, picks
//! the domain modules and calls [`server::run`]; everything else lives here so modules can depend on the
//! module API without depending on the binary.
//!
//! Data path: a transport adapter ([`ws`], [`quic`]) turns a socket into inbound frame bytes and an
//! outbound byte-bounded [`queue::OutQueue`]; the connection task ([`conn`]) decodes frames, authenticates
//! once ([`auth`]), asks the owning [`module::Module`] (if any) and drives the sharded topic registry
//! ([`topics`]), which encodes each event once per codec and shares the bytes with every subscriber queue.
//!
//! Layout:
//! - [`config`]: the one config struct (CLI flags, `CHORUS_*` env, TOML file).
//! - [`server`]: binds listeners, wires shared state, graceful shutdown.
//! - [`http`]: `/v1/ws` upgrade, `/metrics`, `/health`, `/ready`, module REST routes; [`landing`]: the
//!   page at `/`; [`demo`]: what the modules' demo pages share, and `--dev`'s token minting.
//! - [`ws`], [`quic`], [`tls`]: transports and the QUIC certificate.
//! - [`dialect`]: hosts compat dialects (an existing app's JSON WebSocket API) over topics and modules.
//! - [`socketio`]: the Socket.IO v4 gateway (Engine.IO polling + WebSocket) over the same topics and modules.
//! - [`conn`]: one task per connection; [`queue`]: its outbound queue and writer.
//! - [`auth`]: JWT verification and [`auth::Identity`].
//! - [`topics`]: sharded registry and fan-out; [`counters`]: striped counters; [`presence`]: who is where;
//!   [`roster`]: who is in a module's books, per user, cluster-wide.
//! - [`node`]: the state one broker node shares between its tasks; [`rate`]: token buckets.
//! - [`cluster`]: cluster mode — several nodes share topics, presence, counters and history via Redis.
//! - [`module`]: the module API ([`module::Module`], [`module::Context`]) and the host that routes to it.
//! - [`metrics`]: metric names and the Prometheus recorder.
#![warn(missing_docs)]

pub mod auth;
pub mod cluster;
pub mod config;
pub mod conn;
pub mod counters;
pub mod demo;
pub mod dialect;
pub mod http;
pub mod landing;
pub mod metrics;
pub mod module;
pub mod node;
pub mod presence;
pub mod queue;
pub mod quic;
pub mod rate;
pub mod roster;
pub mod server;
pub mod socketio;
pub mod tls;
pub mod topics;
pub mod transport;
pub mod ws;

pub use chorus_protocol as protocol;
pub use chorus_store as store;
