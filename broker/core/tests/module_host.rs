//! The module API end to end: a small module on a real server task, driven by real clients.

use async_trait::async_trait;
use chorus_client::{Client, ClientError, Codec, ConnectOptions, Payload};
use chorus_core::config::Config;
use chorus_core::module::{Caller, Context, Module, ModuleError};
use chorus_core::server::{self, Server};
use serde_json::{Value, json};
use std::sync::Arc;

const SECRET: &str = "module-host-test";

/// Owns `echo/`: only admins may subscribe to `echo/secret`; subscribing joins presence and returns a
/// snapshot; publishes are upper-cased or refused; calls add to a counter and list members.
struct Echo;

#[async_trait]
impl Module for Echo {
    fn name(&self) -> &'static str {
        "echo"
    }

    fn topic_prefixes(&self) -> Vec<String> {
        vec!["echo/".into()]
    }

    async fn authorize(&self, _ctx: &Context, caller: &Caller, topic: &str) -> Result<(), ModuleError> {
        if topic == "echo/secret" && caller.identity.role.as_deref() != Some("admin") {
            return Err(ModuleError::forbidden("admins only"));
        }
        Ok(())
    }

    async fn snapshot(&self, ctx: &Context, caller: &Caller, topic: &str) -> Result<Option<Payload>, ModuleError> {
        ctx.presence().join(topic, &caller.identity.sub, caller.identity.name.as_deref(), caller.conn_id);
        let snapshot = json!({"topic": topic, "members": ctx.presence().count(topic)});
        Ok(Some(Payload::from_value(&snapshot).map_err(|e| ModuleError::invalid(e.to_string()))?))
    }

    async fn on_publish(
        &self,
        _ctx: &Context,
        _caller: &Caller,
        _topic: &str,
        payload: Payload,
    ) -> Result<Payload, ModuleError> {
        let v: Value = payload.decode().map_err(|e| ModuleError::invalid(e.to_string()))?;
        let text = v["text"].as_str().ok_or_else(|| ModuleError::invalid("text is required"))?;
        if text.contains("bad") {
            return Err(ModuleError::conflict("no bad words"));
        }
        Payload::from_value(&json!({"text": text.to_uppercase()})).map_err(|e| ModuleError::invalid(e.to_string()))
    }

    async fn on_call(
        &self,
        ctx: &Context,
        caller: &Caller,
        method: &str,
        args: Payload,
    ) -> Result<Payload, ModuleError> {
        let result = match method {
            "add" => {
                let n: i64 = args.decode().map_err(|e| ModuleError::invalid(e.to_string()))?;
                ctx.counters().add("echo/total", n);
                json!(ctx.counters().get("echo/total"))
            }
            "members" => {
                let topic: String = args.decode().map_err(|e| ModuleError::invalid(e.to_string()))?;
                let members: Vec<String> = ctx.presence().members(&topic).into_iter().map(|m| m.user).collect();
                json!(members)
            }
            "whoami" => json!(caller.identity.sub),
            "announce" => {
                let seq = ctx.publish_value("echo/news", &json!({"from": caller.identity.sub}))?;
                json!(seq)
            }
            other => {
                return Err(ModuleError::new(chorus_core::protocol::ErrorCode::UnknownMethod, format!("no {other}")));
            }
        };
        Payload::from_value(&result).map_err(|e| ModuleError::invalid(e.to_string()))
    }

    async fn on_unsubscribe(&self, ctx: &Context, caller: &Caller, topic: &str) {
        ctx.presence().leave(topic, &caller.identity.sub, caller.conn_id);
    }

    async fn on_disconnect(&self, ctx: &Context, caller: &Caller) {
        let _ = ctx.publish_value("echo/news", &json!({"left": caller.identity.sub}));
    }
}

async fn start() -> (Server, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let config = Config::load_from([
        "chorus",
        "--listen",
        "127.0.0.1:0",
        "--quic-listen",
        "127.0.0.1:0",
        "--jwt-secret",
        SECRET,
        "--data-dir",
        dir.path().to_str().unwrap(),
    ])
    .unwrap();
    (server::start(config, vec![Arc::new(Echo)]).await.unwrap(), dir)
}

async fn connect(server: &Server, sub: &str, role: &str) -> Client {
    let claims = json!({"sub": sub, "name": sub, "role": role, "exp": jsonwebtoken::get_current_timestamp() + 600});
    let token =
        jsonwebtoken::encode(&Default::default(), &claims, &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()))
            .unwrap();
    let url = format!("ws://{}/v1/ws", server.http_addr);
    Client::connect(ConnectOptions::websocket(url).codec(Codec::Json).token(token)).await.unwrap()
}

fn server_code(e: ClientError) -> u16 {
    match e {
        ClientError::Server { code, .. } => code,
        other => panic!("expected a server error, got {other}"),
    }
}

#[tokio::test]
async fn authorize_snapshot_publish_and_calls_go_through_the_module() {
    let (server, _dir) = start().await;
    let ann = connect(&server, "ann", "admin").await;
    let bob = connect(&server, "bob", "member").await;

    assert_eq!(server_code(bob.subscribe("echo/secret").await.unwrap_err()), 2005);
    let reply = ann.subscribe("echo/secret").await.unwrap();
    assert_eq!(reply.snapshot.unwrap().to_json(), json!({"topic": "echo/secret", "members": 1}));
    let reply = bob.subscribe("echo/room").await.unwrap();
    assert_eq!(reply.snapshot.unwrap().to_json(), json!({"topic": "echo/room", "members": 1}));
    ann.subscribe("echo/room").await.unwrap();

    ann.publish("echo/room", Payload::from_value(&json!({"text": "hi"})).unwrap()).await.unwrap();
    assert_eq!(bob.next_event().await.unwrap().payload.to_json(), json!({"text": "HI"}));
    assert_eq!(ann.next_event().await.unwrap().payload.to_json(), json!({"text": "HI"}));
    let refused = ann.publish("echo/room", Payload::from_value(&json!({"text": "bad"})).unwrap()).await;
    assert_eq!(server_code(refused.unwrap_err()), 2008);
    let invalid = ann.publish("echo/room", Payload::from_value(&json!(3)).unwrap()).await;
    assert_eq!(server_code(invalid.unwrap_err()), 2009);

    ann.call("echo.add", Payload::from_value(&2).unwrap()).await.unwrap();
    assert_eq!(bob.call("echo.add", Payload::from_value(&3).unwrap()).await.unwrap().to_json(), json!(5));
    let members = ann.call("echo.members", Payload::from_value(&"echo/room").unwrap()).await.unwrap();
    assert_eq!(members.to_json(), json!(["ann", "bob"]));
    assert_eq!(bob.call("echo.whoami", Payload::null()).await.unwrap().to_json(), json!("bob"));
    assert_eq!(server_code(bob.call("echo.nothing", Payload::null()).await.unwrap_err()), 2006);
    assert_eq!(server_code(bob.call("other.thing", Payload::null()).await.unwrap_err()), 2006);

    bob.unsubscribe("echo/room").await.unwrap();
    let members = ann.call("echo.members", Payload::from_value(&"echo/room").unwrap()).await.unwrap();
    assert_eq!(members.to_json(), json!(["ann"]));
    drop(ann);
    server.shutdown();
    server.stopped().await.unwrap();
}

#[tokio::test]
async fn module_events_reach_subscribers_and_disconnect_clears_presence() {
    let (server, _dir) = start().await;
    let ann = connect(&server, "ann", "member").await;
    let bob = connect(&server, "bob", "member").await;
    bob.subscribe("echo/news").await.unwrap();
    let seq = ann.call("echo.announce", Payload::null()).await.unwrap().to_json();
    assert_eq!(seq, json!(1));
    let event = bob.next_event().await.unwrap();
    assert_eq!((event.topic.as_str(), event.payload.to_json()), ("echo/news", json!({"from": "ann"})));
    assert_eq!(server.node().presence.count("echo/news"), 1);
    ann.subscribe("echo/news").await.unwrap();
    bob.close().await;
    let left = ann.next_event().await.unwrap();
    assert_eq!(left.payload.to_json(), json!({"left": "bob"}), "on_disconnect ran");
    let members: Vec<String> = server.node().presence.members("echo/news").into_iter().map(|m| m.user).collect();
    assert_eq!(members, vec!["ann".to_string()], "bob's presence cleared before on_disconnect");
}
