//! What the module's tests share: a real in-process broker on port 0 with the module, clients on both
//! transports, a minimal HTTP/1.1 client, tokens, and a `redis-server` child process.
#![allow(dead_code)] // Not every test module uses every helper.

use chorus_client::{Client, ClientError, Codec, ConnectOptions, Event};
use chorus_core::config::Config;
use chorus_core::server::{self, Server};
use chorus_core::store::Clock;
use serde_json::Value;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tempfile::TempDir;

pub use chorus_testkit::RedisServer;

pub const SECRET: &str = "movie-voting-test-secret";

/// Event capacity of observing clients: large enough to hold every update of a test, so the SDK never
/// stops reading and the broker never sees a slow consumer.
pub const OBSERVER_EVENTS: usize = 16_384;

/// Request timeout of test clients. The broker serves one connection's calls in order, so the last of 51
/// pipelined votes waits for the 50 durable store writes before it; on a loaded 2-core CI machine that can
/// exceed the SDK's 10 s default.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// A broker with the module, and the directory holding its data.
pub struct Broker {
    pub server: Server,
    pub dir: TempDir,
}

fn config(dir: &TempDir, extra: &[&str]) -> Config {
    let mut args = vec![
        "chorus",
        "--listen",
        "127.0.0.1:0",
        "--quic-listen",
        "127.0.0.1:0",
        "--jwt-secret",
        SECRET,
        "--data-dir",
        dir.path().to_str().expect("utf-8 temp dir"),
    ];
    args.extend_from_slice(extra);
    Config::load_from(args).expect("config")
}

/// Starts a broker with the system clock; `extra` flags are appended.
pub async fn start(extra: &[&str]) -> Broker {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = server::start(config(&dir, extra), vec![chorus_movie_voting::module()]).await.expect("broker starts");
    Broker { server, dir }
}

/// Starts a broker whose wall clock is `clock`.
pub async fn start_with_clock(clock: Arc<dyn Clock>) -> Broker {
    let dir = tempfile::tempdir().expect("temp dir");
    let modules = vec![chorus_movie_voting::module()];
    let server = server::start_with_clock(config(&dir, &[]), modules, clock).await.expect("broker starts");
    Broker { server, dir }
}

impl Broker {
    pub fn addr(&self) -> SocketAddr {
        self.server.http_addr
    }

    /// `POST path` with a JSON body (or none), optionally as `sub`; returns the status and the parsed body.
    pub async fn post(&self, path: &str, body: Option<&str>, as_user: Option<&str>) -> (u16, Value) {
        let auth = as_user.map(|sub| format!("Bearer {}", token(sub)));
        let mut headers = vec![("Content-Type", "application/json")];
        if let Some(auth) = &auth {
            headers.push(("Authorization", auth.as_str()));
        }
        let (status, text) = http_request(self.addr(), "POST", path, &headers, body).await;
        let json = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path} answered non-JSON {text:?}: {e}"));
        (status, json)
    }

    /// Creates a session over REST and returns its id.
    pub async fn create(&self) -> String {
        let (status, body) = self.post("/api/session/create", None, None).await;
        assert_eq!(status, 200, "{body}");
        body["sessionID"].as_str().expect("sessionID").to_owned()
    }

    /// The REST join answer for `id`.
    pub async fn join(&self, id: &str) -> (u16, Value) {
        self.post("/api/session/join", Some(&serde_json::json!({ "sessionID": id }).to_string()), None).await
    }

    /// A WebSocket client (JSON codec) for `sub`.
    pub async fn ws(&self, sub: &str) -> Client {
        let url = format!("ws://{}/v1/ws", self.addr());
        let options = ConnectOptions::websocket(url).codec(Codec::Json).token(token(sub));
        let options = options.event_capacity(OBSERVER_EVENTS).request_timeout(REQUEST_TIMEOUT);
        Client::connect(options).await.expect("WebSocket connect")
    }

    /// A QUIC client (MessagePack) for `sub`.
    pub async fn quic(&self, sub: &str) -> Client {
        let addr = self.server.quic_addr.expect("QUIC enabled");
        let pin = self.server.quic_fingerprint.clone().expect("fingerprint");
        let options = ConnectOptions::quic(addr, "localhost").pin_sha256(pin).token(token(sub));
        let options = options.event_capacity(OBSERVER_EVENTS).request_timeout(REQUEST_TIMEOUT);
        Client::connect(options).await.expect("QUIC connect")
    }
}

/// A token for `sub`, named after it with a capital letter (`ann` → `Ann`).
pub fn token(sub: &str) -> String {
    let mut name = sub.to_owned();
    if let Some(first) = name.get_mut(0..1) {
        first.make_ascii_uppercase();
    }
    let exp = jsonwebtoken::get_current_timestamp() + 3600;
    let claims = serde_json::json!({ "sub": sub, "name": name, "exp": exp });
    let key = jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes());
    jsonwebtoken::encode(&jsonwebtoken::Header::default(), &claims, &key).expect("token")
}

/// Calls `movies.<method>` with JSON `args`.
pub async fn call(client: &Client, method: &str, args: Value) -> Result<Value, ClientError> {
    let args = chorus_client::Payload::from_value(&args).expect("args");
    client.call(&format!("movies.{method}"), args).await.map(|p| p.to_json())
}

/// The code and message of a server error.
pub fn server_error(e: ClientError) -> (u16, String) {
    match e {
        ClientError::Server { code, message } => (code, message),
        other => panic!("expected a server error, got {other}"),
    }
}

/// The next event, as JSON; panics when the connection ends first.
pub async fn next(client: &Client) -> (Event, Value) {
    let event = client.next_event().await.expect("connection open");
    let json = event.payload.to_json();
    (event, json)
}

/// The next event, which must be `session-update`; returns its data.
pub async fn next_update(client: &Client) -> Value {
    let (_, json) = next(client).await;
    assert_eq!(json["event"], "session-update", "{json}");
    json["data"].clone()
}

/// A minimal HTTP/1.1 request (`Connection: close`); returns the status and body.
pub async fn http_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> (u16, String) {
    let answer = chorus_testkit::http::request(addr, method, path, headers, body).await.expect("HTTP request");
    (answer.status, answer.body)
}
