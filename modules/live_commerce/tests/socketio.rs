//! The seed's Socket.IO clients, spoken raw (Engine.IO v4 over WebSocket, Socket.IO v5 packets): joining
//! with `{ sessionId, userId }` or the bare id, events emitted under their names, calls with and without
//! acknowledgements, errors as the `error` event, leaving.

use crate::support::{User, WAIT, start_socketio, stop, token};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// A Socket.IO client on the root namespace.
struct Socket {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

impl Socket {
    /// Connects (with `token` in the CONNECT packet's `auth`, or as a guest) and reads the namespace's
    /// CONNECT answer.
    async fn connect(server: &chorus_core::server::Server, token: Option<&str>) -> Self {
        let url = format!("ws://{}/socket.io/?EIO=4&transport=websocket", server.http_addr);
        let (ws, _) = tokio_tungstenite::connect_async(url).await.expect("Engine.IO WebSocket");
        let mut socket = Self { ws };
        assert!(socket.text().await.starts_with('0'), "Engine.IO open packet");
        let auth = token.map_or(String::new(), |t| json!({"token": t}).to_string());
        socket.send(&format!("40{auth}")).await;
        let connected = socket.text().await;
        assert!(connected.starts_with("40{"), "namespace connect, got {connected}");
        socket
    }

    async fn send(&mut self, text: &str) {
        self.ws.send(Message::text(text)).await.expect("send");
    }

    /// The next Engine.IO text packet, answering pings on the way.
    async fn text(&mut self) -> String {
        loop {
            let frame = tokio::time::timeout(WAIT, self.ws.next())
                .await
                .expect("a packet in time")
                .expect("open")
                .expect("frame");
            if let Message::Text(text) = frame {
                if text.as_str() == "2" {
                    self.send("3").await;
                    continue;
                }
                return text.as_str().to_owned();
            }
        }
    }

    /// Emits `event` with `data`.
    async fn emit(&mut self, event: &str, data: Value) {
        self.send(&format!("42{}", json!([event, data]))).await;
    }

    /// Emits `event` with `data` asking for acknowledgement `id`, and returns the acknowledgement's
    /// arguments.
    async fn emit_ack(&mut self, id: u32, event: &str, data: Value) -> Value {
        self.send(&format!("42{id}{}", json!([event, data]))).await;
        let prefix = format!("43{id}");
        loop {
            let packet = self.text().await;
            if let Some(args) = packet.strip_prefix(&prefix) {
                return serde_json::from_str(args).expect("ack arguments");
            }
        }
    }

    /// The next emitted event as `(name, data)`.
    async fn event(&mut self) -> (String, Value) {
        let packet = self.text().await;
        let args: Value =
            serde_json::from_str(packet.strip_prefix("42").unwrap_or_else(|| panic!("an event, got {packet}")))
                .expect("event JSON");
        (args[0].as_str().expect("event name").to_owned(), args[1].clone())
    }
}

#[tokio::test]
async fn the_seeds_socket_io_flow() {
    let dir = tempfile::tempdir().unwrap();
    let (server, _clock) = start_socketio(dir.path()).await;
    let creator = User::new(&server, "1", "Cleo");
    let mouse = creator.product("Gaming Mouse", 59.99).await;
    let session = creator.session("Show", std::slice::from_ref(&mouse)).await;
    creator.start_stream(&session).await;

    // The creator's dashboard joins with the seed's payload: a publisher, not counted.
    let mut dashboard = Socket::connect(&server, Some(&creator.token)).await;
    dashboard.emit("join-session", json!({"sessionId": session, "userId": 1})).await;
    assert_eq!(dashboard.event().await, ("viewer-count".to_owned(), json!(0)));

    // A viewer joins with the bare id.
    let mut viewer = Socket::connect(&server, Some(&token("2", "Ann", None))).await;
    viewer.emit("join-session", json!(session)).await;
    assert_eq!(dashboard.event().await, ("viewer-count".to_owned(), json!(1)));

    // Fire-and-forget, as the seed's client emits them; everyone in the room gets the events.
    viewer.emit("send-reaction", json!({"sessionId": session, "type": "heart"})).await;
    let (name, data) = dashboard.event().await;
    assert_eq!((name.as_str(), data["type"].clone()), ("new-reaction", json!("heart")));
    assert_eq!(
        dashboard.event().await,
        ("reaction-stats".to_owned(), json!({"sessionId": session, "counts": {"heart": 1}, "total": 1}))
    );
    dashboard.emit("showcase-product", json!({"sessionId": session, "productId": mouse})).await;
    let (name, data) = dashboard.event().await;
    assert_eq!(
        (name.as_str(), data["productId"].clone(), data["product"]["name"].clone()),
        ("product-showcased", json!(mouse), json!("Gaming Mouse"))
    );

    // With an acknowledgement: the call's result, or its error.
    let sent = viewer
        .emit_ack(1, "send-message", json!({"sessionId": session, "message": "hi", "userId": 2, "userName": "Ann"}))
        .await;
    assert_eq!((sent[0]["message"].clone(), sent[0]["userId"].clone()), (json!("hi"), json!(2)));
    let refused = viewer.emit_ack(2, "showcase-product", json!({"sessionId": session, "productId": null})).await;
    assert_eq!(refused, json!([{"error": {"code": 2005, "message": "Only the session owner can showcase products"}}]));
    // Without one, an error is the `error` event.
    viewer.emit("send-message", json!({"sessionId": session, "message": "  "})).await;
    loop {
        let (name, data) = viewer.event().await;
        if name == "error" {
            assert_eq!(data, json!({"message": "Message cannot be empty", "code": 2009}));
            break;
        }
    }
    // A refused reaction without acknowledgement too (the module is not asked for its totals).
    viewer.emit("send-reaction", json!({"type": "heart"})).await;
    loop {
        let (name, data) = viewer.event().await;
        if name == "error" {
            assert_eq!(data, json!({"message": "sessionId is required", "code": 2009}));
            break;
        }
    }

    // Leaving drops the count.
    viewer.emit("leave-session", json!(session)).await;
    loop {
        let (name, data) = dashboard.event().await;
        if name == "viewer-count" {
            assert_eq!(data, json!(0));
            break;
        }
    }
    stop(server).await;
}
