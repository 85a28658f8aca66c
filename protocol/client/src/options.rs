//! [`ConnectOptions`]: where to connect, how to authenticate, and the SDK's bounds; [`ResumeOptions`]: how a
//! [`ResumingClient`](crate::ResumingClient) reconnects.

use crate::error::ClientError;
use crate::verify::Fingerprint;
use chorus_protocol::Codec;
use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

/// How long a request (`subscribe`, `publish`, `call`, `ping`, …) waits for its answer, queueing included.
/// Long enough for a module call that touches a backing store under load; short enough that a lost reply
/// surfaces as [`ClientError::Timeout`] while a user is still looking at the screen.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// How long [`Client::connect`](crate::Client::connect) waits for the transport handshake plus `welcome`.
/// The broker closes a connection that sends no `hello` within its own hello timeout, so waiting much longer
/// than the request timeout gains nothing.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Events buffered between the connection task and the application. When the buffer is full the task stops
/// reading the socket, the broker's outbound queue for this connection fills, and the broker eventually
/// disconnects it as a slow consumer (4001): backpressure ends at the application, never in unbounded
/// memory. 1024 absorbs a burst on a busy topic while the application is briefly busy (≈ 1 MiB at 1 KiB
/// events) without hiding a consumer that is persistently too slow.
pub const DEFAULT_EVENT_CAPACITY: usize = 1024;

/// Largest frame accepted from the server. Events carry a published payload plus a small envelope, so this
/// must exceed the broker's `max_frame_bytes` for publishers; 4 MiB leaves room for that and for module
/// snapshots while bounding what a misbehaving server can make the client allocate per frame.
pub const DEFAULT_MAX_INBOUND_FRAME_BYTES: usize = 4 * 1024 * 1024;

/// Where a WebSocket connection sends its token. QUIC always sends it in `hello`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TokenPlacement {
    /// In the `hello` frame (the default; works on every transport and keeps tokens out of URL logs).
    #[default]
    Hello,
    /// As the `token` query parameter of the WebSocket URL (for environments that cannot set headers).
    Query,
    /// As an `Authorization: Bearer` header on the WebSocket upgrade request.
    Header,
}

/// How a QUIC client decides to trust the server's certificate.
#[derive(Clone)]
pub(crate) enum Trust {
    /// SHA-256 fingerprint, as given (parsed at connect time).
    Pin(String),
    /// One or more PEM certificates used as roots.
    CaPem(Vec<u8>),
}

#[derive(Debug, Clone)]
pub(crate) enum Target {
    WebSocket { url: String },
    Quic { addr: SocketAddr, server_name: String },
}

/// Everything [`Client::connect`](crate::Client::connect) needs. Built with [`ConnectOptions::websocket`] or
/// [`ConnectOptions::quic`] and refined with the builder methods; inconsistent combinations (a certificate
/// pin on a WebSocket, JSON over QUIC) are reported by `connect` as [`ClientError::Config`].
#[derive(Clone)]
pub struct ConnectOptions {
    pub(crate) target: Target,
    pub(crate) codec: Codec,
    pub(crate) token: Option<String>,
    pub(crate) token_placement: TokenPlacement,
    pub(crate) trust: Option<Trust>,
    pub(crate) request_timeout: Duration,
    pub(crate) connect_timeout: Duration,
    pub(crate) event_capacity: usize,
    pub(crate) max_inbound_frame_bytes: usize,
    pub(crate) keepalive: Keepalive,
}

/// When the SDK pings on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Keepalive {
    /// Every third of the idle timeout the broker announces in `welcome`.
    Auto,
    /// At this fixed interval.
    Every(Duration),
    /// Never: the application keeps the connection busy itself.
    Off,
}

impl ConnectOptions {
    fn new(target: Target) -> Self {
        Self {
            target,
            codec: Codec::MsgPack,
            token: None,
            token_placement: TokenPlacement::Hello,
            trust: None,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            event_capacity: DEFAULT_EVENT_CAPACITY,
            max_inbound_frame_bytes: DEFAULT_MAX_INBOUND_FRAME_BYTES,
            keepalive: Keepalive::Auto,
        }
    }

    /// A WebSocket connection to `url` (`ws://host:port/v1/ws`), MessagePack unless [`codec`](Self::codec)
    /// says otherwise. `wss://` is not supported: this SDK is built without a WebSocket TLS stack; use QUIC
    /// for an encrypted transport.
    pub fn websocket(url: impl Into<String>) -> Self {
        Self::new(Target::WebSocket { url: url.into() })
    }

    /// A QUIC connection to `addr`, presenting `server_name` as the TLS SNI (and, with
    /// [`ca_pem`](Self::ca_pem), checking the certificate against it). Requires [`pin_sha256`](Self::pin_sha256)
    /// or [`ca_pem`](Self::ca_pem). QUIC always uses MessagePack.
    pub fn quic(addr: SocketAddr, server_name: impl Into<String>) -> Self {
        Self::new(Target::Quic { addr, server_name: server_name.into() })
    }

    /// The frame codec (WebSocket only; selects the `chorus.v1.msgpack` or `chorus.v1.json` subprotocol).
    pub fn codec(mut self, codec: Codec) -> Self {
        self.codec = codec;
        self
    }

    /// The JWT to authenticate with. Without one the connection is a guest.
    pub fn token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }

    /// Where a WebSocket connection carries the token (default [`TokenPlacement::Hello`]).
    pub fn token_placement(mut self, placement: TokenPlacement) -> Self {
        self.token_placement = placement;
        self
    }

    /// QUIC: trust exactly the server certificate whose DER has this SHA-256 digest: 64 hex digits, any
    /// case, colons allowed (see [`Fingerprint`]). Replaces an earlier [`ca_pem`](Self::ca_pem).
    pub fn pin_sha256(mut self, fingerprint: impl Into<String>) -> Self {
        self.trust = Some(Trust::Pin(fingerprint.into()));
        self
    }

    /// QUIC: trust server certificates issued by (or equal to) the certificates in this PEM, for
    /// `server_name`. Replaces an earlier [`pin_sha256`](Self::pin_sha256).
    pub fn ca_pem(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.trust = Some(Trust::CaPem(pem.into()));
        self
    }

    /// How long each request waits for its answer (default [`DEFAULT_REQUEST_TIMEOUT`]). Also bounds a
    /// single write: a server that accepts no data for this long is given up on (closed with 1001).
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// How long `connect` waits for the transport and `welcome` (default [`DEFAULT_CONNECT_TIMEOUT`]).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// How many events are buffered before the SDK stops reading the socket (default
    /// [`DEFAULT_EVENT_CAPACITY`]; at least 1).
    pub fn event_capacity(mut self, capacity: usize) -> Self {
        self.event_capacity = capacity;
        self
    }

    /// Largest frame accepted from the server (default [`DEFAULT_MAX_INBOUND_FRAME_BYTES`]).
    pub fn max_inbound_frame_bytes(mut self, max: usize) -> Self {
        self.max_inbound_frame_bytes = max;
        self
    }

    /// Send a `ping` every `interval`. By default the SDK pings every third of the idle timeout the
    /// broker announces in [`Limits::idle_timeout_ms`](chorus_protocol::Limits::idle_timeout_ms), so a
    /// quiet connection is never closed for idleness.
    pub fn keepalive(mut self, interval: Duration) -> Self {
        self.keepalive = Keepalive::Every(interval);
        self
    }

    /// Never ping on its own (for applications that keep the connection busy themselves, or tests of the
    /// broker's idle timeout).
    pub fn no_keepalive(mut self) -> Self {
        self.keepalive = Keepalive::Off;
        self
    }

    /// Checks the combination and resolves where and how to connect.
    pub(crate) fn route(&self) -> Result<Route<'_>, ClientError> {
        let config = |msg: &str| Err(ClientError::Config(msg.into()));
        if self.event_capacity == 0 {
            return config("event_capacity must be at least 1");
        }
        if self.keepalive == Keepalive::Every(Duration::ZERO) {
            return config("keepalive interval must be positive");
        }
        match (&self.target, &self.trust) {
            (Target::WebSocket { url }, None) => Ok(Route::WebSocket { url }),
            (Target::WebSocket { .. }, Some(_)) => config("certificate pinning and CA roots apply to QUIC only"),
            (Target::Quic { .. }, _) if self.codec != Codec::MsgPack => config("QUIC always uses MessagePack"),
            (Target::Quic { .. }, _) if self.token_placement != TokenPlacement::Hello => {
                config("QUIC carries the token in hello only")
            }
            (Target::Quic { .. }, None) => config("QUIC needs pin_sha256 or ca_pem"),
            (Target::Quic { addr, server_name }, Some(trust)) => Ok(Route::Quic {
                addr: *addr,
                server_name,
                trust: match trust {
                    Trust::Pin(hex) => ResolvedTrust::Pin(hex.parse()?),
                    Trust::CaPem(pem) => ResolvedTrust::CaPem(pem.clone()),
                },
            }),
        }
    }
}

/// The shortest wait before a reconnect attempt (see [`ResumeOptions::min_delay`]). Long enough that a
/// client whose connection is cut again at once does not spin; short enough that a blip (a node restarting
/// behind a load balancer, a dropped NAT mapping) costs the user nothing noticeable.
pub const DEFAULT_MIN_RECONNECT_DELAY: Duration = Duration::from_millis(100);

/// The longest wait before a reconnect attempt (see [`ResumeOptions::max_delay`]). With the doubling of
/// the backoff it is reached after about six failed attempts; a client then retries every few seconds,
/// which keeps the load of many clients waiting for a node that is down modest while still noticing its
/// return quickly.
pub const DEFAULT_MAX_RECONNECT_DELAY: Duration = Duration::from_secs(5);

/// How a [`ResumingClient`](crate::ResumingClient) reconnects: the delays of its backoff, how many attempts
/// it makes, and the further endpoints it may move to.
///
/// Before attempt `n` it waits a uniformly random time in `[min_delay, min(max_delay, min_delay · 2^(n+1))]`:
/// exponential backoff with full jitter, so that the clients of a node that shut down do not all return at
/// the same instant. `n` is 0 for the first attempt after a loss, unless the lost connection had lasted
/// less than `max_delay`: then the backoff continues where the previous reconnect left it, so that a node
/// accepting connections and closing them at once is not hammered.
#[derive(Debug, Clone)]
pub struct ResumeOptions {
    pub(crate) endpoints: Vec<ConnectOptions>,
    pub(crate) min_delay: Duration,
    pub(crate) max_delay: Duration,
    pub(crate) max_attempts: Option<u32>,
}

impl Default for ResumeOptions {
    fn default() -> Self {
        Self {
            endpoints: Vec::new(),
            min_delay: DEFAULT_MIN_RECONNECT_DELAY,
            max_delay: DEFAULT_MAX_RECONNECT_DELAY,
            max_attempts: None,
        }
    }
}

impl ResumeOptions {
    /// The defaults: delays from [`DEFAULT_MIN_RECONNECT_DELAY`] to [`DEFAULT_MAX_RECONNECT_DELAY`], no
    /// limit on attempts, no further endpoints.
    pub fn new() -> Self {
        Self::default()
    }

    /// The shortest wait before a reconnect attempt (default [`DEFAULT_MIN_RECONNECT_DELAY`]); the floor of
    /// every wait, doubling per failed attempt up to [`max_delay`](Self::max_delay).
    pub fn min_delay(mut self, delay: Duration) -> Self {
        self.min_delay = delay;
        self
    }

    /// The longest wait before a reconnect attempt (default [`DEFAULT_MAX_RECONNECT_DELAY`]).
    pub fn max_delay(mut self, delay: Duration) -> Self {
        self.max_delay = delay;
        self
    }

    /// Give up after `attempts` consecutive failed reconnect attempts (default: never give up). The count
    /// starts again after every successful reconnect; 0 means a lost connection is never reconnected.
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = Some(attempts);
        self
    }

    /// Another endpoint (for instance another node of a cluster) to reconnect to. The endpoints form a ring,
    /// the options given to [`ResumingClient::connect`](crate::ResumingClient::connect) first, then these in
    /// the order added; each reconnect attempt goes to the endpoint after the one used last. Each carries its
    /// own transport, trust, token and bounds; the bounds of the first also govern the resuming client
    /// itself (request timeout, event capacity).
    pub fn endpoint(mut self, options: ConnectOptions) -> Self {
        self.endpoints.push(options);
        self
    }
}

/// A checked [`ConnectOptions`] target.
pub(crate) enum Route<'a> {
    WebSocket { url: &'a str },
    Quic { addr: SocketAddr, server_name: &'a str, trust: ResolvedTrust },
}

/// [`Trust`] with the fingerprint parsed.
pub(crate) enum ResolvedTrust {
    Pin(Fingerprint),
    CaPem(Vec<u8>),
}

/// Redacts the token.
impl fmt::Debug for ConnectOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectOptions")
            .field("target", &self.target)
            .field("codec", &self.codec)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("token_placement", &self.token_placement)
            .field(
                "trust",
                &self.trust.as_ref().map(|t| match t {
                    Trust::Pin(hex) => format!("pin {hex}"),
                    Trust::CaPem(pem) => format!("CA PEM of {} bytes", pem.len()),
                }),
            )
            .field("request_timeout", &self.request_timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("event_capacity", &self.event_capacity)
            .field("max_inbound_frame_bytes", &self.max_inbound_frame_bytes)
            .field("keepalive", &self.keepalive)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quic() -> ConnectOptions {
        ConnectOptions::quic("127.0.0.1:7401".parse().unwrap(), "localhost")
    }

    #[test]
    fn refuses_inconsistent_combinations() {
        let pin = "ab".repeat(32);
        let config_err = |o: ConnectOptions| matches!(o.route(), Err(ClientError::Config(_)));
        assert!(config_err(ConnectOptions::websocket("ws://h/v1/ws").pin_sha256(pin.clone())));
        assert!(config_err(quic()));
        assert!(config_err(quic().pin_sha256(pin.clone()).codec(Codec::Json)));
        assert!(config_err(quic().pin_sha256(pin.clone()).token_placement(TokenPlacement::Query)));
        assert!(config_err(quic().pin_sha256("nope")));
        assert!(config_err(ConnectOptions::websocket("ws://h/v1/ws").event_capacity(0)));
        let quic = quic().pin_sha256(pin);
        assert!(matches!(quic.route(), Ok(Route::Quic { server_name: "localhost", trust: ResolvedTrust::Pin(_), .. })));
        let ws = ConnectOptions::websocket("ws://h/v1/ws");
        assert!(matches!(ws.route(), Ok(Route::WebSocket { url: "ws://h/v1/ws" })));
    }

    #[test]
    fn debug_redacts_the_token() {
        let shown = format!("{:?}", ConnectOptions::websocket("ws://h/v1/ws").token("secret.jwt.value"));
        assert!(!shown.contains("secret"), "{shown}");
        assert!(shown.contains("<redacted>"));
    }
}
