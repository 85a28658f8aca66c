//! Helpers shared by the study-groups tests: an in-process broker with the module on port 0, tokens, a
//! minimal HTTP/1.1 client for REST, native clients over WebSocket and QUIC, and seed-event checks.
// Each test area uses a different subset of these helpers.
#![allow(dead_code)]

use chorus_client::{Client, ClientError, Codec, ConnectOptions, Payload};
use chorus_core::config::Config;
use chorus_core::server::{self, Server};
use jsonwebtoken::{EncodingKey, Header, encode};
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

/// The HS256 secret of every test broker.
pub const SECRET: &str = "study-groups-test-secret";

/// How long a test waits for any one message or reply before failing.
pub const WAIT: Duration = Duration::from_secs(20);

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

/// Starts a broker with the study-groups module on loopback port 0, storing in `data_dir` (also after a
/// restart on the same directory).
pub async fn start(data_dir: &Path) -> Server {
    server::start(config(data_dir), vec![chorus_study_groups::module()]).await.expect("start broker")
}

/// Stops a broker and waits until it has (the store is closed, so the directory is free at once).
pub async fn stop(server: Server) {
    server.shutdown();
    server.stopped().await.expect("stop broker");
}

/// A token for `sub` named `Name Of <sub>`, valid for an hour.
pub fn token(sub: &str) -> String {
    let claims = json!({"sub": sub, "name": name(sub), "exp": jsonwebtoken::get_current_timestamp() + 3600});
    encode(&Header::default(), &claims, &EncodingKey::from_secret(SECRET.as_bytes())).expect("sign token")
}

/// The display name [`token`] gives `sub`.
pub fn name(sub: &str) -> String {
    format!("Name Of {sub}")
}

/// An HTTP answer: status and JSON body (`Value::Null` when empty).
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    /// Status code.
    pub status: u16,
    /// The body parsed as JSON.
    pub body: Value,
}

/// One HTTP/1.1 request (`Connection: close`) with an optional bearer token and body.
pub async fn http(addr: SocketAddr, method: &str, path: &str, token: Option<&str>, body: Option<&str>) -> Answer {
    let bearer = token.map(|t| format!("Bearer {t}"));
    let mut headers = vec![("Content-Type", "application/json")];
    if let Some(bearer) = &bearer {
        headers.push(("Authorization", bearer));
    }
    let answer = tokio::time::timeout(WAIT, chorus_testkit::http::request(addr, method, path, &headers, body))
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
    /// As `sub`.
    pub fn new(server: &Server, sub: &str) -> Self {
        Self { addr: server.http_addr, token: token(sub) }
    }

    /// A request with this user's token.
    pub async fn send(&self, method: &str, path: &str, body: Option<Value>) -> Answer {
        let body = body.map(|b| b.to_string());
        http(self.addr, method, path, Some(&self.token), body.as_deref()).await
    }

    /// Creates a session of `group` with `rounds` rounds and `scribe`; returns its id.
    pub async fn session(&self, group: &str, rounds: u32, scribe: &str) -> String {
        let body = json!({"groupId": group, "rounds": rounds, "scribeId": scribe});
        let answer = self.send("POST", "/group-sessions", Some(body)).await;
        assert_eq!(answer.status, 201, "{answer:?}");
        answer.body["id"].as_str().expect("session id").to_owned()
    }

    /// `PUT /group-sessions/{id}/start`.
    pub async fn start(&self, id: &str) -> Answer {
        self.send("PUT", &format!("/group-sessions/{id}/start"), None).await
    }

    /// `PUT /group-sessions/{id}/end`.
    pub async fn end(&self, id: &str) -> Answer {
        self.send("PUT", &format!("/group-sessions/{id}/end"), None).await
    }

    /// `POST /group-sessions/{id}/rounds/{index}/advance` with an optional target status.
    pub async fn advance(&self, id: &str, index: u32, status: Option<&str>) -> Answer {
        let body = status.map(|s| json!({ "status": s }));
        self.send("POST", &format!("/group-sessions/{id}/rounds/{index}/advance"), body).await
    }

    /// `PATCH /group-sessions/{id}/rounds/{index}/prompt`.
    pub async fn prompt(&self, id: &str, index: u32, prompt: &str) -> Answer {
        self.send("PATCH", &format!("/group-sessions/{id}/rounds/{index}/prompt"), Some(json!({ "prompt": prompt })))
            .await
    }

    /// `POST /group-sessions/{id}/events` with `eventType` and a payload.
    pub async fn event(&self, id: &str, event_type: &str, payload: Value) -> Answer {
        let body = json!({"eventType": event_type, "payload": payload});
        self.send("POST", &format!("/group-sessions/{id}/events"), Some(body)).await
    }

    /// `POST /groups/{group}/sessions/{id}/chat`.
    pub async fn chat(&self, group: &str, id: &str, message: &str) -> Answer {
        self.send("POST", &format!("/groups/{group}/sessions/{id}/chat"), Some(json!({ "message": message }))).await
    }

    /// `GET /group-sessions/{id}`.
    pub async fn view(&self, id: &str) -> Answer {
        self.send("GET", &format!("/group-sessions/{id}"), None).await
    }

    /// Advances round `index` `times` times, each answered 200.
    pub async fn advance_times(&self, id: &str, index: u32, times: usize) {
        for _ in 0..times {
            let answer = self.advance(id, index, None).await;
            assert_eq!(answer.status, 200, "{answer:?}");
        }
    }
}

/// A native client over WebSocket (JSON codec) as `sub`.
pub async fn native_ws(server: &Server, sub: &str) -> Client {
    let url = format!("ws://{}/v1/ws", server.http_addr);
    Client::connect(ConnectOptions::websocket(url).codec(Codec::Json).token(token(sub)))
        .await
        .expect("native WebSocket client")
}

/// A native client over QUIC (MessagePack) as `sub`.
pub async fn native_quic(server: &Server, sub: &str) -> Client {
    let addr = server.quic_addr.expect("QUIC enabled");
    let fingerprint = server.quic_fingerprint.clone().expect("QUIC fingerprint");
    Client::connect(ConnectOptions::quic(addr, "localhost").pin_sha256(fingerprint).token(token(sub)))
        .await
        .expect("native QUIC client")
}

/// The topic of session `id`.
pub fn topic(id: &str) -> String {
    chorus_study_groups::topic(id)
}

/// Joins session `id` (subscribes to its topic) and returns the `session.state` snapshot's data.
pub async fn join(client: &Client, id: &str) -> Value {
    let reply = client.subscribe(&topic(id)).await.expect("join session");
    let snapshot = reply.snapshot.expect("a snapshot").to_json();
    assert_eq!(snapshot["event"], "session.state", "{snapshot}");
    snapshot["data"].clone()
}

/// The next event on any topic as `(event name, data)`, after checking its topic is session `id`'s.
pub async fn next(client: &Client, id: &str) -> (String, Value) {
    let event = tokio::time::timeout(WAIT, client.next_event()).await.expect("event in time").expect("open");
    assert_eq!(event.topic, topic(id));
    let envelope = event.payload.to_json();
    (envelope["event"].as_str().expect("event name").to_owned(), envelope["data"].clone())
}

/// A native call; a server error becomes `(code, message)`.
pub async fn call(client: &Client, method: &str, args: Value) -> Result<Value, (u16, String)> {
    client.call(method, Payload::from_value(&args).expect("arguments")).await.map(|p| p.to_json()).map_err(
        |e| match e {
            ClientError::Server { code, message } => (code, message),
            other => panic!("expected a server error, got {other}"),
        },
    )
}

/// Checks a seed `timestamp`: ISO-8601 UTC with milliseconds, e.g. `2025-12-19T08:00:00.000Z`.
pub fn assert_timestamp(data: &Value) {
    let ts = data["timestamp"].as_str().unwrap_or_else(|| panic!("no timestamp in {data}"));
    let shape = "dddd-dd-ddTdd:dd:dd.dddZ";
    assert_eq!(ts.len(), shape.len(), "timestamp {ts}");
    for (b, s) in ts.bytes().zip(shape.bytes()) {
        if s == b'd' {
            assert!(b.is_ascii_digit(), "timestamp {ts}");
        } else {
            assert_eq!(b, s, "timestamp {ts}");
        }
    }
}

/// Checks an event: its name, its timestamp, then that the rest of its data is exactly `expected`.
pub fn assert_event(got: &(String, Value), event: &str, expected: Value) {
    assert_eq!(got.0, event, "{got:?}");
    assert_timestamp(&got.1);
    let mut rest = got.1.clone();
    rest.as_object_mut().expect("data is an object").remove("timestamp");
    assert_eq!(rest, expected, "fields of {event}");
}

/// Starts a broker with the module and its `/study-groups` Socket.IO namespace.
pub async fn start_with_socketio(data_dir: &Path) -> Server {
    let services = server::Services {
        modules: vec![chorus_study_groups::module()],
        socketio: vec![chorus_study_groups::socketio()],
    };
    server::start_services(config(data_dir), services, std::sync::Arc::new(chorus_core::store::SystemClock))
        .await
        .expect("start broker with Socket.IO")
}
