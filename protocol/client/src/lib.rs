//! Rust client SDK for the chorus realtime broker.
//!
//! A [`Client`] connects over WebSocket (MessagePack or JSON frames) or QUIC (MessagePack, one bidirectional
//! stream), authenticates with `hello` → `welcome`, and then offers requests that await their answers
//! ([`Client::subscribe`], [`Client::publish`], [`Client::call`], [`Client::ping`], …) and a bounded stream
//! of [`Event`]s ([`Client::next_event`]).
//!
//! ```no_run
//! # async fn demo(jwt: String) -> Result<(), chorus_client::ClientError> {
//! use chorus_client::{Client, Codec, ConnectOptions, Payload};
//!
//! let client =
//!     Client::connect(ConnectOptions::websocket("ws://127.0.0.1:7400/v1/ws").codec(Codec::Json).token(jwt)).await?;
//! let reply = client.subscribe("room/1").await?;
//! let seq = client.publish("room/1", Payload::from_value(&serde_json::json!({"text": "hi"}))?).await?;
//! assert!(seq > reply.seq);
//! while let Some(event) = client.next_event().await {
//!     println!("{} #{}: {:?}", event.topic, event.seq, event.payload);
//! }
//! println!("closed: {:?}", client.close_info());
//! # Ok(()) }
//! ```
//!
//! # Resuming after a lost connection
//! A [`ResumingClient`] wraps connections the way an application would: when one is lost (other than by
//! [`close`](ResumingClient::close) or for authentication) it reconnects with backoff and jitter, possibly
//! to another endpoint, subscribes its topics again from the last position it delivered, and reports per
//! topic whether the missed events were replayed ([`Delivery::Resumed`] `{ recovered }`). Events are never
//! handed out twice.
//!
//! ```no_run
//! # async fn demo() -> Result<(), chorus_client::ClientError> {
//! use chorus_client::{ConnectOptions, Delivery, ResumeOptions, ResumingClient};
//!
//! let options = ConnectOptions::websocket("ws://node-1:7400/v1/ws");
//! let resume = ResumeOptions::new().endpoint(ConnectOptions::websocket("ws://node-2:7400/v1/ws"));
//! let client = ResumingClient::connect(options, resume).await?;
//! client.subscribe("room/1").await?;
//! while let Some(delivery) = client.next().await {
//!     match delivery {
//!         Delivery::Event(event) => println!("{} #{}", event.topic, event.seq),
//!         Delivery::Resumed { topic, recovered: false, .. } => println!("{topic}: events lost, reload it"),
//!         other => println!("{other:?}"),
//!     }
//! }
//! # Ok(()) }
//! ```
//!
//! # Layout
//! - [`options`]: [`ConnectOptions`], the transport choice, token placement, trust and the SDK's bounds;
//!   [`ResumeOptions`], the reconnect policy.
//! - `client`: [`Client`], the handshake and the request API.
//! - `connection`: the background task that owns the transport and `select!`s over commands, inbound
//!   frames, event-buffer room and the keepalive timer; requests are matched to answers by id.
//! - `transport`: the small trait the task drives; `ws` (tokio-tungstenite) and `quic` (quinn) implement it.
//! - [`verify`]: QUIC certificate pinning by SHA-256 ([`Fingerprint`]) and CA roots from PEM.
//! - `reply`: typed views of `reply` results ([`SubscribeReply`]).
//! - `event`, `unsolicited`, `close`: [`Event`], server errors that answer no request ([`ServerError`]), and
//!   how a connection ended ([`CloseInfo`]).
//! - `error`: [`ClientError`].
//! - `resume`: [`ResumingClient`], its API over the `supervisor` task, which owns the current [`Client`],
//!   forwards [`Delivery`]s (`delivery`) and reconnects with `backoff`; `subscriptions` tracks each topic's
//!   position and drops events already delivered.
//!
//! # Backpressure and bounds
//! Everything between the application and the socket is bounded: outbound commands
//! ([`COMMAND_CAPACITY`] frames), events ([`ConnectOptions::event_capacity`]) and unsolicited errors
//! ([`UNSOLICITED_ERROR_CAPACITY`]). When the application stops draining events, the SDK stops reading the
//! socket; the broker then sees a slow consumer and eventually closes with 4001, which
//! [`Client::closed`] reports once the buffered events have been read.
//!
//! # Errors without a request
//! An `error` frame whose `id` matches a waiting request fails that request with [`ClientError::Server`].
//! Errors without an `id` (or for a request that already timed out) answer nobody: they are logged and kept
//! in a small bounded log read with [`Client::take_errors`]. They never appear in the event stream.
//!
//! # How a connection ends
//! [`Client::close_info`] / [`Client::closed`] give a [`CloseInfo`]: the code of the server's `disconnect`
//! frame when it sent one, else the WebSocket close code or QUIC application error code, with its reason.
//! Requests in flight at that moment, and any made afterwards, fail with [`ClientError::Closed`].
#![warn(missing_docs)]

mod backoff;
mod client;
mod close;
mod connection;
mod delivery;
mod error;
mod event;
pub mod options;
mod quic;
mod reply;
mod resume;
mod subscriptions;
mod supervisor;
mod transport;
mod unsolicited;
pub mod verify;
mod ws;

pub use chorus_protocol::{CloseCode, Codec, ErrorCode, Identity, Limits, Payload, Position, Welcome};
pub use client::Client;
pub use close::CloseInfo;
pub use connection::COMMAND_CAPACITY;
pub use delivery::Delivery;
pub use error::ClientError;
pub use event::Event;
pub use options::{ConnectOptions, ResumeOptions, TokenPlacement};
pub use reply::SubscribeReply;
pub use resume::ResumingClient;
pub use unsolicited::{ServerError, UNSOLICITED_ERROR_CAPACITY};
pub use verify::Fingerprint;
