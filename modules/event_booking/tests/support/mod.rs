//! Helpers shared by the event-booking tests: an in-process broker with the module on port 0, tokens,
//! a minimal HTTP/1.1 client for REST, native clients, and raw WebSocket clients for the seed dialect.
// Each test binary uses a different subset of these helpers.
#![allow(dead_code)]

use chorus_client::{Client, Codec, ConnectOptions};
use chorus_core::config::Config;
use chorus_core::server::{self, Server};
use futures_util::{SinkExt, StreamExt};
use jsonwebtoken::{EncodingKey, Header, encode};
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// The HS256 secret of every test broker.
pub const SECRET: &str = "event-booking-test-secret";

/// How long a test waits for any one message or reply before failing.
pub const WAIT: Duration = Duration::from_secs(20);

/// Starts a broker with the booking module on loopback port 0, storing in `data_dir`.
pub async fn start(data_dir: &Path) -> Server {
    server::start(config(data_dir), vec![chorus_event_booking::module()]).await.expect("start broker")
}

/// The test configuration: loopback port 0 for HTTP and QUIC, the test secret, `data_dir`.
fn config(data_dir: &Path) -> Config {
    let data_dir = data_dir.to_str().expect("utf-8 temp path");
    Config::load_from([
        "chorus",
        "--listen",
        "127.0.0.1:0",
        "--quic-listen",
        "127.0.0.1:0",
        "--jwt-secret",
        SECRET,
        "--data-dir",
        data_dir,
    ])
    .expect("config")
}

/// Starts a broker again on the `data_dir` of one just stopped (`Server::stopped` closes the store, so the
/// database file is free at once).
pub async fn restart(data_dir: &Path) -> Server {
    server::start(config(data_dir), vec![chorus_event_booking::module()]).await.expect("restart broker")
}

/// Stops a broker and waits until it has.
pub async fn stop(server: Server) {
    server.shutdown();
    server.stopped().await.expect("stop broker");
}

/// A token for `sub` with `role` (if any), valid for an hour.
pub fn token(sub: &str, role: Option<&str>) -> String {
    let mut claims = json!({"sub": sub, "name": sub, "exp": jsonwebtoken::get_current_timestamp() + 3600});
    if let Some(role) = role {
        claims["role"] = Value::from(role);
    }
    sign(&claims)
}

/// Signs arbitrary claims with the test secret.
pub fn sign(claims: &Value) -> String {
    encode(&Header::default(), claims, &EncodingKey::from_secret(SECRET.as_bytes())).expect("sign token")
}

/// An HTTP answer: status and JSON body (`Value::Null` when empty).
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    /// Status code.
    pub status: u16,
    /// The body parsed as JSON.
    pub body: Value,
}

/// One HTTP/1.1 request (`Connection: close`) with optional bearer token, extra headers and raw body.
pub async fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> Answer {
    let bearer = token.map(|t| format!("Bearer {t}"));
    let mut all: Vec<(&str, &str)> = headers.to_vec();
    if let Some(bearer) = &bearer {
        all.push(("Authorization", bearer));
    }
    all.push(("Content-Type", "application/json"));
    let answer = tokio::time::timeout(WAIT, chorus_testkit::http::request(addr, method, path, &all, body))
        .await
        .expect("HTTP answer in time")
        .expect("HTTP request");
    Answer { status: answer.status, body: answer.json() }
}

/// The REST API of one broker, as one user.
#[derive(Clone)]
pub struct Rest {
    /// The broker's HTTP address.
    pub addr: SocketAddr,
    /// The user's token.
    pub token: String,
}

impl Rest {
    /// As `sub` with `role`.
    pub fn new(server: &Server, sub: &str, role: Option<&str>) -> Self {
        Self { addr: server.http_addr, token: token(sub, role) }
    }

    /// `POST /api/events` with a JSON body.
    pub async fn create_event(&self, body: Value) -> Answer {
        http(self.addr, "POST", "/api/events", Some(&self.token), &[], Some(&body.to_string())).await
    }

    /// Creates a public event with `seats` seats and returns its id.
    pub async fn event(&self, title: &str, seats: u32) -> u64 {
        let answer = self.create_event(json!({"title": title, "seatCapacity": seats})).await;
        assert_eq!(answer.status, 201, "{answer:?}");
        answer.body["id"].as_u64().expect("numeric id")
    }

    /// `GET /api/events/{id}`.
    pub async fn get_event(&self, id: u64) -> Answer {
        http(self.addr, "GET", &format!("/api/events/{id}"), Some(&self.token), &[], None).await
    }

    /// `POST /api/events/{id}/bookings` with `{ seats }` and an optional idempotency key.
    pub async fn book(&self, id: u64, seats: u32, key: Option<&str>) -> Answer {
        let headers: Vec<(&str, &str)> = key.map(|k| ("Idempotency-Key", k)).into_iter().collect();
        let body = json!({ "seats": seats }).to_string();
        http(self.addr, "POST", &format!("/api/events/{id}/bookings"), Some(&self.token), &headers, Some(&body)).await
    }

    /// `DELETE /api/bookings/{booking_id}`.
    pub async fn cancel(&self, booking_id: &str) -> Answer {
        http(self.addr, "DELETE", &format!("/api/bookings/{booking_id}"), Some(&self.token), &[], None).await
    }

    /// `GET /api/bookings`.
    pub async fn bookings(&self) -> Answer {
        http(self.addr, "GET", "/api/bookings", Some(&self.token), &[], None).await
    }
}

/// A native client over WebSocket (JSON codec) as `sub` with `role`.
pub async fn native_ws(server: &Server, sub: &str, role: Option<&str>) -> Client {
    let url = format!("ws://{}/v1/ws", server.http_addr);
    Client::connect(ConnectOptions::websocket(url).codec(Codec::Json).token(token(sub, role)))
        .await
        .expect("native WebSocket client")
}

/// A native client over QUIC (MessagePack) as `sub` with `role`.
pub async fn native_quic(server: &Server, sub: &str, role: Option<&str>) -> Client {
    let addr = server.quic_addr.expect("QUIC enabled");
    let fingerprint = server.quic_fingerprint.clone().expect("QUIC fingerprint");
    Client::connect(ConnectOptions::quic(addr, "localhost").pin_sha256(fingerprint).token(token(sub, role)))
        .await
        .expect("native QUIC client")
}

/// A raw WebSocket client of the seed dialect.
pub struct SeedWs {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

impl SeedWs {
    /// Connects to `path_and_query` (e.g. `/ws?token=...`) on the broker.
    pub async fn connect(server: &Server, path_and_query: &str) -> Self {
        let url = format!("ws://{}{path_and_query}", server.http_addr);
        let (ws, _) = tokio_tungstenite::connect_async(url).await.expect("seed WebSocket upgrade");
        Self { ws }
    }

    /// Connects to `/ws` with a token for `sub` and reads `connection_established`.
    pub async fn general(server: &Server, sub: &str, role: Option<&str>) -> Self {
        let mut ws = Self::connect(server, &format!("/ws?token={}", token(sub, role))).await;
        assert_eq!(ws.next().await["type"], "connection_established");
        ws
    }

    /// Sends a JSON message.
    pub async fn send(&mut self, message: Value) {
        self.send_text(&message.to_string()).await;
    }

    /// Sends a text frame as is.
    pub async fn send_text(&mut self, text: &str) {
        self.ws.send(Message::text(text)).await.expect("send text frame");
    }

    /// The next server message, parsed.
    pub async fn next(&mut self) -> Value {
        loop {
            let frame = tokio::time::timeout(WAIT, self.ws.next())
                .await
                .expect("a server message in time")
                .expect("connection open")
                .expect("WebSocket frame");
            match frame {
                Message::Text(text) => return serde_json::from_str(text.as_str()).expect("server message is JSON"),
                Message::Ping(_) | Message::Pong(_) => {}
                other => panic!("expected a text message, got {other:?}"),
            }
        }
    }

    /// Subscribes to an event and returns `(subscribed, seat_update)`.
    pub async fn subscribe(&mut self, event_id: u64) -> (Value, Value) {
        self.send(json!({"type": "subscribe_event", "eventId": event_id})).await;
        let subscribed = self.next().await;
        let snapshot = self.next().await;
        (subscribed, snapshot)
    }

    /// Sends `ping` and returns the next message (which must be the `pong` if nothing else was queued).
    pub async fn ping(&mut self) -> Value {
        self.send(json!({"type": "ping"})).await;
        self.next().await
    }

    /// The server's close frame (which must come next): its code and reason.
    pub async fn closed(&mut self) -> (CloseCode, String) {
        let frame = tokio::time::timeout(WAIT, self.ws.next()).await.expect("close in time");
        match frame {
            Some(Ok(Message::Close(Some(close)))) => (close.code, close.reason.to_string()),
            other => panic!("expected a close frame with a code, got {other:?}"),
        }
    }
}

/// Checks a seed `timestamp`: ISO-8601 UTC with milliseconds, e.g. `2024-11-11T10:30:00.000Z`.
pub fn assert_timestamp(message: &Value) {
    let ts = message["timestamp"].as_str().unwrap_or_else(|| panic!("no timestamp in {message}"));
    let bytes = ts.as_bytes();
    let shape = "dddd-dd-ddTdd:dd:dd.dddZ";
    assert_eq!(ts.len(), shape.len(), "timestamp {ts}");
    for (b, s) in bytes.iter().zip(shape.bytes()) {
        if s == b'd' {
            assert!(b.is_ascii_digit(), "timestamp {ts}");
        } else {
            assert_eq!(*b, s, "timestamp {ts}");
        }
    }
}

/// Checks a server message: its timestamp, then that the rest is exactly `expected`.
pub fn assert_message(message: &Value, expected: Value) {
    assert_timestamp(message);
    let mut rest = message.clone();
    rest.as_object_mut().expect("message is an object").remove("timestamp");
    assert_eq!(rest, expected);
}
