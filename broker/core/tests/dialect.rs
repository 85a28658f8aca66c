//! The JSON dialect host with a small test vocabulary: token closes, connect message, keyed paths,
//! subscribe/unsubscribe/ping/stats, errors, module authorization and snapshot, and events encoded for
//! dialect and native subscribers of the same topic.

use async_trait::async_trait;
use chorus_client::{Client, Codec, ConnectOptions, Payload};
use chorus_core::config::Config;
use chorus_core::dialect::{DialectRequest, DialectStats, JsonDialect};
use chorus_core::module::{Caller, Context, Module, ModuleError};
use chorus_core::server::{self, Server};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use std::sync::Arc;
use tokio_tungstenite::tungstenite::Message;

const SECRET: &str = "dialect-test";

struct Rooms;

impl JsonDialect for Rooms {
    fn paths(&self) -> (&'static str, Option<&'static str>) {
        ("/rooms", Some("/rooms/{key}"))
    }
    fn topic(&self, key: &Value) -> Result<String, String> {
        key.as_u64().map(|n| format!("rooms/{n}")).ok_or_else(|| "roomId must be a number".into())
    }
    fn decode(&self, message: &Value) -> Result<DialectRequest, String> {
        let room = || message.get("roomId").cloned().ok_or_else(|| "roomId is required".to_string());
        match message.get("type").and_then(Value::as_str) {
            Some("join") => Ok(DialectRequest::Subscribe(room()?)),
            Some("leave") => Ok(DialectRequest::Unsubscribe(room()?)),
            Some("ping") => Ok(DialectRequest::Ping),
            Some("stats") => Ok(DialectRequest::Stats),
            _ => Err("Unknown message type".into()),
        }
    }
    fn connected(&self, client_id: &str, key: Option<&Value>) -> Value {
        json!({"type": "hello", "clientId": client_id, "roomId": key})
    }
    fn subscribed(&self, key: &Value) -> Value {
        json!({"type": "joined", "roomId": key})
    }
    fn unsubscribed(&self, key: &Value) -> Value {
        json!({"type": "left", "roomId": key})
    }
    fn pong(&self) -> Value {
        json!({"type": "pong"})
    }
    fn stats(&self, stats: DialectStats) -> Value {
        json!({"type": "stats", "clients": stats.clients, "rooms": stats.subscribed_keys})
    }
    fn error(&self, message: &str) -> Value {
        json!({"type": "error", "message": message})
    }
    fn invalid_json_message(&self) -> &'static str {
        "Invalid message format"
    }
    fn event(&self, _topic: &str, payload: &Payload) -> Option<Value> {
        let v = payload.to_json();
        v.get("say").map(|text| json!({"type": "said", "text": text}))
    }
    fn missing_token_reason(&self) -> Option<&'static str> {
        Some("Authentication Required")
    }
    fn invalid_token_reason(&self) -> &'static str {
        "Invalid Token"
    }
    fn client_id(&self, conn_id: u64, now_ms: u64) -> String {
        format!("c_{now_ms}_{conn_id}")
    }
}

/// Owns `rooms/`: room 13 is closed to everyone; the snapshot says hello; clients may publish `say`.
struct RoomModule;

#[async_trait]
impl Module for RoomModule {
    fn name(&self) -> &'static str {
        "rooms"
    }
    fn topic_prefixes(&self) -> Vec<String> {
        vec!["rooms/".into()]
    }
    async fn authorize(&self, _ctx: &Context, _caller: &Caller, topic: &str) -> Result<(), ModuleError> {
        if topic == "rooms/13" { Err(ModuleError::forbidden("room 13 is closed")) } else { Ok(()) }
    }
    async fn snapshot(&self, _ctx: &Context, _c: &Caller, topic: &str) -> Result<Option<Payload>, ModuleError> {
        Ok(Some(
            Payload::from_value(&json!({"say": format!("welcome to {topic}")}))
                .map_err(|e| ModuleError::invalid(e.to_string()))?,
        ))
    }
    async fn on_publish(
        &self,
        _ctx: &Context,
        _c: &Caller,
        _topic: &str,
        payload: Payload,
    ) -> Result<Payload, ModuleError> {
        Ok(payload)
    }
    fn dialects(&self) -> Vec<Arc<dyn JsonDialect>> {
        vec![Arc::new(Rooms)]
    }
}

async fn start() -> (Server, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let config = Config::load_from([
        "chorus",
        "--listen",
        "127.0.0.1:0",
        "--disable-quic",
        "--jwt-secret",
        SECRET,
        "--data-dir",
        dir.path().to_str().unwrap(),
    ])
    .unwrap();
    (server::start(config, vec![Arc::new(RoomModule)]).await.unwrap(), dir)
}

fn token(sub: &str, exp_offset: i64) -> String {
    let exp = jsonwebtoken::get_current_timestamp() as i64 + exp_offset;
    let claims = json!({"sub": sub, "exp": exp});
    jsonwebtoken::encode(&Default::default(), &claims, &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()))
        .unwrap()
}

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn open(server: &Server, path: &str) -> Ws {
    tokio_tungstenite::connect_async(format!("ws://{}{path}", server.http_addr)).await.unwrap().0
}

async fn recv(ws: &mut Ws) -> Value {
    loop {
        match tokio::time::timeout(std::time::Duration::from_secs(10), ws.next()).await.expect("message in time") {
            Some(Ok(Message::Text(t))) => {
                let v: Value = serde_json::from_str(&t).unwrap();
                let stamp = v["timestamp"].as_str().expect("every message is timestamped");
                assert!(stamp.ends_with('Z') && stamp.len() == 24, "{stamp}");
                return v;
            }
            Some(Ok(Message::Close(frame))) => {
                let f = frame.expect("close frame");
                return json!({"close": u16::from(f.code), "reason": f.reason.as_str()});
            }
            Some(Ok(_)) => continue,
            other => panic!("connection ended: {other:?}"),
        }
    }
}

async fn send(ws: &mut Ws, v: Value) {
    ws.send(Message::text(v.to_string())).await.unwrap();
}

#[tokio::test]
async fn tokens_are_required_and_checked() {
    let (server, _dir) = start().await;
    let mut ws = open(&server, "/rooms").await;
    assert_eq!(recv(&mut ws).await, json!({"close": 1008, "reason": "Authentication Required"}));
    let mut ws = open(&server, &format!("/rooms?token={}", token("u", -600))).await;
    assert_eq!(recv(&mut ws).await, json!({"close": 1008, "reason": "Invalid Token"}));
    let mut ws = open(&server, "/rooms/7?token=garbage").await;
    assert_eq!(recv(&mut ws).await, json!({"close": 1008, "reason": "Invalid Token"}));
}

#[tokio::test]
async fn the_dialect_round_trip() {
    let (server, _dir) = start().await;
    let mut a = open(&server, &format!("/rooms?token={}", token("ann", 600))).await;
    let hello = recv(&mut a).await;
    assert_eq!((hello["type"].as_str(), hello["roomId"].is_null()), (Some("hello"), true));
    assert!(hello["clientId"].as_str().unwrap().starts_with("c_"));

    a.send(Message::text("{oops")).await.unwrap();
    assert_eq!(recv(&mut a).await["message"], "Invalid message format");
    send(&mut a, json!({"type": "dance"})).await;
    assert_eq!(recv(&mut a).await["message"], "Unknown message type");
    send(&mut a, json!({"type": "join"})).await;
    assert_eq!(recv(&mut a).await["message"], "roomId is required");
    send(&mut a, json!({"type": "join", "roomId": "x"})).await;
    assert_eq!(recv(&mut a).await["message"], "roomId must be a number");
    send(&mut a, json!({"type": "join", "roomId": 13})).await;
    assert_eq!(recv(&mut a).await["message"], "room 13 is closed");

    send(&mut a, json!({"type": "join", "roomId": 7})).await;
    assert_eq!(recv(&mut a).await["type"], "joined");
    let snapshot = recv(&mut a).await;
    assert_eq!((snapshot["type"].as_str(), snapshot["text"].as_str()), (Some("said"), Some("welcome to rooms/7")));

    let mut b = open(&server, &format!("/rooms/7?token={}", token("bob", 600))).await;
    assert_eq!(recv(&mut b).await["roomId"], 7, "keyed path names the room");
    assert_eq!(recv(&mut b).await["text"], "welcome to rooms/7", "auto-subscribed, snapshot follows");

    let native =
        Client::connect(ConnectOptions::websocket(format!("ws://{}/v1/ws", server.http_addr)).codec(Codec::Json))
            .await
            .unwrap();
    native.subscribe("rooms/7").await.unwrap();
    native.publish("rooms/7", Payload::from_value(&json!({"say": "hi all"})).unwrap()).await.unwrap();
    native.publish("rooms/7", Payload::from_value(&json!({"other": 1})).unwrap()).await.unwrap();
    native.publish("rooms/7", Payload::from_value(&json!({"say": "again"})).unwrap()).await.unwrap();
    for ws in [&mut a, &mut b] {
        assert_eq!(recv(ws).await["text"], "hi all");
        assert_eq!(recv(ws).await["text"], "again", "events the dialect does not carry are skipped");
    }
    assert_eq!(native.next_event().await.unwrap().payload.to_json(), json!({"say": "hi all"}));

    send(&mut a, json!({"type": "stats"})).await;
    let stats = recv(&mut a).await;
    assert_eq!((stats["clients"].as_u64(), stats["rooms"].as_u64()), (Some(2), Some(1)));
    send(&mut a, json!({"type": "ping"})).await;
    assert_eq!(recv(&mut a).await["type"], "pong");
    send(&mut a, json!({"type": "leave", "roomId": 7})).await;
    let left = recv(&mut a).await;
    assert_eq!((left["type"].as_str(), left["roomId"].as_u64()), (Some("left"), Some(7)));
    native.publish("rooms/7", Payload::from_value(&json!({"say": "only bob"})).unwrap()).await.unwrap();
    assert_eq!(recv(&mut b).await["text"], "only bob");
    send(&mut a, json!({"type": "ping"})).await;
    assert_eq!(recv(&mut a).await["type"], "pong", "nothing arrived for ann after leaving");
}
