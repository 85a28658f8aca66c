//! The gateway's options (flattened into the broker's [`Config`](crate::config::Config)).

use std::time::Duration;

/// Socket.IO gateway settings. Defaults are Socket.IO 4's own, so clients configured for a Node server
/// behave the same here.
#[derive(Debug, Clone, clap::Args)]
pub struct SocketIoConfig {
    /// Do not serve Socket.IO clients.
    #[arg(long, env = "CHORUS_DISABLE_SOCKETIO")]
    pub disable_socketio: bool,

    /// Path of the Socket.IO endpoint (Engine.IO v4 long-polling and WebSocket), with its trailing slash.
    #[arg(long, env = "CHORUS_SOCKETIO_PATH", default_value = "/socket.io/")]
    pub socketio_path: String,

    /// Milliseconds between the server's heartbeat pings (Socket.IO `pingInterval`).
    #[arg(long, env = "CHORUS_SOCKETIO_PING_INTERVAL_MS", default_value_t = 25_000)]
    pub socketio_ping_interval_ms: u64,

    /// Milliseconds a client has to answer a ping before it is disconnected (Socket.IO `pingTimeout`).
    #[arg(long, env = "CHORUS_SOCKETIO_PING_TIMEOUT_MS", default_value_t = 20_000)]
    pub socketio_ping_timeout_ms: u64,

    /// Largest long-polling request body and WebSocket message in bytes (Socket.IO `maxHttpBufferSize`).
    #[arg(long, env = "CHORUS_SOCKETIO_MAX_HTTP_BUFFER_BYTES", default_value_t = 1_000_000)]
    pub socketio_max_http_buffer_bytes: usize,

    /// Milliseconds a new session has to connect to a namespace before it is closed (Socket.IO
    /// `connectTimeout`).
    #[arg(long, env = "CHORUS_SOCKETIO_CONNECT_TIMEOUT_MS", default_value_t = 45_000)]
    pub socketio_connect_timeout_ms: u64,

    /// Browser origins allowed to reach the endpoint across origins (CORS), comma-separated; `*` allows
    /// any. Empty: same-origin pages only.
    #[arg(long, env = "CHORUS_SOCKETIO_CORS_ORIGINS", value_delimiter = ',')]
    pub socketio_cors_origins: Vec<String>,
}

impl SocketIoConfig {
    /// The heartbeat interval.
    pub fn ping_interval(&self) -> Duration {
        Duration::from_millis(self.socketio_ping_interval_ms)
    }

    /// The heartbeat timeout.
    pub fn ping_timeout(&self) -> Duration {
        Duration::from_millis(self.socketio_ping_timeout_ms)
    }

    /// The namespace-connect timeout.
    pub fn connect_timeout(&self) -> Duration {
        Duration::from_millis(self.socketio_connect_timeout_ms)
    }

    /// Whether a browser page from `origin` may use the endpoint.
    pub fn allows_origin(&self, origin: &str) -> bool {
        self.socketio_cors_origins.iter().any(|o| o == "*" || o == origin)
    }

    /// Checks the values; the error names the option.
    pub fn check(&self) -> anyhow::Result<()> {
        let path = &self.socketio_path;
        if !path.starts_with('/') || !path.ends_with('/') || path.len() < 3 {
            anyhow::bail!("socketio_path must start and end with '/' (e.g. /socket.io/), not {path:?}");
        }
        if self.socketio_ping_interval_ms == 0 || self.socketio_ping_timeout_ms == 0 {
            anyhow::bail!("socketio_ping_interval_ms and socketio_ping_timeout_ms must be positive");
        }
        if self.socketio_max_http_buffer_bytes < 1024 {
            anyhow::bail!("socketio_max_http_buffer_bytes must be at least 1024");
        }
        Ok(())
    }
}
