//! Module bindings through the Socket.IO gateway, with the real `socket.io-client`: a namespace that
//! requires a token, identities from `auth.token` / `?token=` / `Authorization`, binary data both ways,
//! and a client that reconnects by itself when its node restarts.

use async_trait::async_trait;
use chorus_client::{Client, ConnectOptions, Payload};
use chorus_core::config::Config;
use chorus_core::module::{Caller, Context, Module, ModuleError};
use chorus_core::server::{self, Server, Services};
use chorus_core::socketio::Namespace;
use chorus_store::SystemClock;
use chorus_testkit::socketio::ClientProcess;
use jsonwebtoken::{EncodingKey, Header, encode};
use serde_json::{Value, json};
use std::path::Path;
use std::sync::Arc;

const SECRET: &str = "socketio-test";

/// Owns `room/`; `whoami` answers the caller's identity, `echo` its arguments (bytes stay bytes).
struct Room;

#[async_trait]
impl Module for Room {
    fn name(&self) -> &'static str {
        "room"
    }

    fn topic_prefixes(&self) -> Vec<String> {
        vec!["room/".into()]
    }

    async fn on_call(
        &self,
        _ctx: &Context,
        caller: &Caller,
        method: &str,
        args: Payload,
    ) -> Result<Payload, ModuleError> {
        match method {
            "whoami" => Payload::from_value(&json!({ "sub": caller.identity.sub, "guest": caller.identity.guest }))
                .map_err(|e| ModuleError::invalid(e.to_string())),
            "echo" => Ok(args),
            other => Err(ModuleError::invalid(format!("no {other}"))),
        }
    }
}

fn token(sub: &str) -> String {
    let exp = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() + 3600;
    encode(&Header::default(), &json!({ "sub": sub, "exp": exp }), &EncodingKey::from_secret(SECRET.as_bytes()))
        .unwrap()
}

async fn start_on(dir: &Path, listen: &str) -> Server {
    let config = Config::load_from([
        "chorus",
        "--listen",
        listen,
        "--disable-quic",
        "--jwt-secret",
        SECRET,
        "--data-dir",
        dir.to_str().unwrap(),
    ])
    .unwrap();
    let services = Services {
        modules: vec![Arc::new(Room)],
        socketio: vec![Namespace::new("/").calls("room"), Namespace::new("/private").require_token().calls("room")],
    };
    server::start_services(config, services, Arc::new(SystemClock)).await.unwrap()
}

async fn run(scenario: &str, options: Value) -> Vec<Value> {
    let client = ClientProcess::node(scenario, &options).unwrap_or_else(|e| panic!("{e:#}"));
    client.finish().await.unwrap_or_else(|e| panic!("{e:#}"))
}

#[tokio::test]
async fn a_namespace_requiring_a_token_refuses_with_connect_error() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_on(dir.path(), "127.0.0.1:0").await;
    let options = json!({
        "url": format!("http://{}", server.http_addr),
        "namespace": "/private",
        "token": token("ann"),
        "sub": "ann",
        "badToken": format!("{}x", token("ann")),
    });
    assert_eq!(run("auth", options).await.last(), Some(&json!({ "ok": "auth" })));
}

#[tokio::test]
async fn bytes_travel_as_buffers_both_ways() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_on(dir.path(), "127.0.0.1:0").await;
    for transports in [json!(["polling"]), json!(["websocket"])] {
        let options = json!({
            "url": format!("http://{}", server.http_addr),
            "token": token("bo"),
            "topic": "bytes/room",
            "transports": transports,
        });
        assert_eq!(run("binary", options).await.last(), Some(&json!({ "ok": "binary" })));
    }
}

#[tokio::test]
async fn a_client_reconnects_by_itself_when_its_node_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let first = start_on(dir.path(), "127.0.0.1:0").await;
    let addr = first.http_addr;
    let options = json!({
        "url": format!("http://{addr}"),
        "token": token("cy"),
        "topic": "again/room",
        "expect": { "after": "restart" },
    });
    let mut client = ClientProcess::node("reconnect", &options).unwrap_or_else(|e| panic!("{e:#}"));
    let before = client.ready().await.unwrap_or_else(|e| panic!("{e:#}"));
    first.shutdown();
    first.stopped().await.unwrap();
    let second = start_on(dir.path(), &addr.to_string()).await;
    client.go().await.unwrap();
    let after = client.ready().await.unwrap_or_else(|e| panic!("{e:#}"));
    assert_ne!(before["sid"], after["sid"]);
    let url = format!("ws://{}/v1/ws", second.http_addr);
    let native = Client::connect(ConnectOptions::websocket(url).token(token("dee"))).await.unwrap();
    native.publish("again/room", Payload::from_value(&json!({ "after": "restart" })).unwrap()).await.unwrap();
    client.go().await.unwrap();
    assert_eq!(client.finish().await.unwrap_or_else(|e| panic!("{e:#}")).last(), Some(&json!({ "ok": "reconnect" })));
}
