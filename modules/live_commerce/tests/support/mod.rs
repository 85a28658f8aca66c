//! Helpers shared by the live-commerce tests: an in-process broker with the module on port 0, tokens, a
//! minimal HTTP/1.1 client for REST, native clients, and reading session events.
// Each test area uses a different subset of these helpers.
#![allow(dead_code)]

use chorus_client::{Client, ClientError, Codec, ConnectOptions, Payload};
use chorus_core::config::Config;
use chorus_core::server::{self, Server};
use chorus_core::store::ManualClock;
use chorus_live_commerce::Settings;
use jsonwebtoken::{EncodingKey, Header, encode};
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// The HS256 secret of every test broker.
pub const SECRET: &str = "live-commerce-test-secret";

/// How long a test waits for any one message or reply before failing (real time).
pub const WAIT: Duration = Duration::from_secs(20);

/// The wall-clock time test brokers start at: 2026-01-22T12:00:00.000Z.
pub const START_MS: u64 = 1_769_083_200_000;

/// The test configuration: loopback port 0 for HTTP and QUIC, the test secret, `data_dir`.
fn config(data_dir: &Path) -> Config {
    config_keyed(data_dir, &["--jwt-secret", SECRET])
}

/// As [`config`] with the JWT options `key` instead of the test secret (none: guests only).
fn config_keyed(data_dir: &Path, key: &[&str]) -> Config {
    let dir = data_dir.to_str().expect("utf-8 temp path");
    let mut args = vec!["chorus", "--listen", "127.0.0.1:0", "--quic-listen", "127.0.0.1:0", "--data-dir", dir];
    args.extend_from_slice(key);
    Config::load_from(args).expect("config")
}

/// Starts a broker with the module on a manual wall clock at [`START_MS`], storing in `data_dir`.
pub async fn start(data_dir: &Path) -> (Server, Arc<ManualClock>) {
    start_with(data_dir, Settings::default()).await
}

/// As [`start`], with the module's `settings`.
pub async fn start_with(data_dir: &Path, settings: Settings) -> (Server, Arc<ManualClock>) {
    start_keyed(data_dir, &["--jwt-secret", SECRET], settings).await
}

/// As [`start_with`], with the JWT options `key` instead of the test secret.
pub async fn start_keyed(data_dir: &Path, key: &[&str], settings: Settings) -> (Server, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new(START_MS));
    let modules = vec![chorus_live_commerce::module_with(settings)];
    let server =
        server::start_with_clock(config_keyed(data_dir, key), modules, clock.clone()).await.expect("start broker");
    (server, clock)
}

/// As [`start`], serving the module's Socket.IO namespace too.
pub async fn start_socketio(data_dir: &Path) -> (Server, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new(START_MS));
    let services = server::Services {
        modules: vec![chorus_live_commerce::module()],
        socketio: vec![chorus_live_commerce::socketio()],
    };
    let server = server::start_services(config(data_dir), services, clock.clone()).await.expect("start broker");
    (server, clock)
}

/// Stops a broker gracefully and waits until it has (the store is closed after).
pub async fn stop(server: Server) {
    server.shutdown();
    server.stopped().await.expect("stop broker");
}

/// A token for `sub`, named `name`, with `role` (if any), valid for an hour.
pub fn token(sub: &str, name: &str, role: Option<&str>) -> String {
    let mut claims = json!({"sub": sub, "name": name, "exp": jsonwebtoken::get_current_timestamp() + 3600});
    if let Some(role) = role {
        claims["role"] = Value::from(role);
    }
    encode(&Header::default(), &claims, &EncodingKey::from_secret(SECRET.as_bytes())).expect("sign token")
}

/// An HTTP answer: status and JSON body (`Value::Null` when empty).
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    /// Status code.
    pub status: u16,
    /// The body parsed as JSON.
    pub body: Value,
}

/// One HTTP/1.1 request (`Connection: close`) with an optional bearer token and JSON body.
pub async fn http(addr: SocketAddr, method: &str, path: &str, token: Option<&str>, body: Option<&Value>) -> Answer {
    let bearer = token.map(|t| format!("Bearer {t}"));
    let mut headers = vec![("Content-Type", "application/json")];
    if let Some(bearer) = &bearer {
        headers.push(("Authorization", bearer));
    }
    let body = body.map(Value::to_string);
    let answer =
        tokio::time::timeout(WAIT, chorus_testkit::http::request(addr, method, path, &headers, body.as_deref()))
            .await
            .expect("HTTP answer in time")
            .expect("HTTP request");
    Answer { status: answer.status, body: answer.json() }
}

/// One user of the REST API of a broker.
#[derive(Clone)]
pub struct User {
    /// The broker's HTTP address.
    pub addr: SocketAddr,
    /// The user's subject.
    pub sub: String,
    /// The user's token.
    pub token: String,
}

impl User {
    /// User `sub` named `name`.
    pub fn new(server: &Server, sub: &str, name: &str) -> Self {
        Self { addr: server.http_addr, sub: sub.into(), token: token(sub, name, None) }
    }

    /// A request as this user.
    pub async fn call(&self, method: &str, path: &str, body: Option<Value>) -> Answer {
        http(self.addr, method, path, Some(&self.token), body.as_ref()).await
    }

    /// Creates a product and returns its id.
    pub async fn product(&self, name: &str, price: f64) -> String {
        let body = json!({"name": name, "description": format!("{name}, the description"), "price": price});
        let answer = self.call("POST", "/api/products", Some(body)).await;
        assert_eq!(answer.status, 201, "{answer:?}");
        answer.body["data"]["id"].as_str().expect("product id").to_owned()
    }

    /// Creates a session with `products` and returns its id.
    pub async fn session(&self, title: &str, products: &[String]) -> String {
        let answer = self.call("POST", "/api/sessions", Some(json!({"title": title, "productIds": products}))).await;
        assert_eq!(answer.status, 201, "{answer:?}");
        answer.body["data"]["id"].as_str().expect("session id").to_owned()
    }

    /// Sets the session's status and expects success.
    pub async fn status(&self, session: &str, status: &str) -> Answer {
        let answer =
            self.call("PATCH", &format!("/api/sessions/{session}/status"), Some(json!({"status": status}))).await;
        assert_eq!(answer.status, 200, "{answer:?}");
        answer
    }

    /// Starts the session's stream and expects success.
    pub async fn start_stream(&self, session: &str) -> Answer {
        let answer = self.call("POST", &format!("/api/sessions/{session}/start-stream"), None).await;
        assert_eq!(answer.status, 200, "{answer:?}");
        answer
    }

    /// Ends the session's stream and expects success.
    pub async fn end_stream(&self, session: &str) -> Answer {
        let answer = self.call("POST", &format!("/api/sessions/{session}/end-stream"), None).await;
        assert_eq!(answer.status, 200, "{answer:?}");
        answer
    }
}

/// A native client over WebSocket (JSON codec) with `token`, or a guest.
pub async fn native_ws(server: &Server, token: Option<&str>) -> Client {
    let url = format!("ws://{}/v1/ws", server.http_addr);
    let mut options = ConnectOptions::websocket(url).codec(Codec::Json);
    if let Some(token) = token {
        options = options.token(token);
    }
    Client::connect(options).await.expect("native WebSocket client")
}

/// A native client over QUIC (MessagePack) with `token`.
pub async fn native_quic(server: &Server, token: &str) -> Client {
    let addr = server.quic_addr.expect("QUIC enabled");
    let fingerprint = server.quic_fingerprint.clone().expect("QUIC fingerprint");
    Client::connect(ConnectOptions::quic(addr, "localhost").pin_sha256(fingerprint).token(token))
        .await
        .expect("native QUIC client")
}

/// A session's topic.
pub fn topic(session: &str) -> String {
    format!("commerce/session/{session}")
}

/// Joins a session (subscribes to its topic) and returns the snapshot `{ event, data }`.
pub async fn join(client: &Client, session: &str) -> Value {
    let reply = client.subscribe(&topic(session)).await.expect("join session");
    reply.snapshot.map(|s| s.to_json()).expect("a snapshot")
}

/// The next event on any topic as `(event, data)`; fails when none comes within [`WAIT`].
pub async fn next(client: &Client) -> (String, Value) {
    let event = tokio::time::timeout(WAIT, client.next_event()).await.expect("an event in time").expect("open");
    let payload = event.payload.to_json();
    let name = payload["event"].as_str().unwrap_or_else(|| panic!("not an envelope: {payload}")).to_owned();
    (name, payload["data"].clone())
}

/// The data of the next event, which must be `name`.
pub async fn expect(client: &Client, name: &str) -> Value {
    let (event, data) = next(client).await;
    assert_eq!(event, name, "expected {name}, got {event} {data}");
    data
}

/// Skips events until one named `name`; returns its data.
pub async fn until(client: &Client, name: &str) -> Value {
    loop {
        let (event, data) = next(client).await;
        if event == name {
            return data;
        }
    }
}

/// A call; a server error as `(code, message)`.
pub async fn call(client: &Client, method: &str, args: Value) -> Result<Value, (u16, String)> {
    let args = Payload::from_value(&args).expect("args encode");
    client.call(method, args).await.map(|p| p.to_json()).map_err(|e| match e {
        ClientError::Server { code, message } => (code, message),
        other => panic!("expected a server error, got {other}"),
    })
}

/// The wall-clock time `ms` after [`START_MS`], as the module writes it.
pub fn at(ms: u64) -> String {
    // START_MS is 2026-01-22T12:00:00.000Z; tests move the clock by less than an hour.
    assert!(ms < 3_600_000);
    format!("2026-01-22T12:{:02}:{:02}.{:03}Z", ms / 60_000, ms / 1000 % 60, ms % 1000)
}

/// The rows of a partition of one of the module's tables, decoded, in clustering order.
pub async fn rows(server: &Server, table: &str, pk: &str) -> Vec<Value> {
    let scan = chorus_core::store::Scan::all(chorus_core::store::MAX_SCAN_LIMIT);
    let page = server.node().store.scan(table, pk, &scan).await.expect("scan");
    page.rows.iter().map(|row| rmp_serde::from_slice(&row.value).expect("a MessagePack row")).collect()
}
