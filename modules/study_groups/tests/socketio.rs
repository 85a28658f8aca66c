//! The seed's Socket.IO face through the broker's gateway, spoken on the wire (Engine.IO v4 over
//! WebSocket, Socket.IO v5 packets) against namespace `/study-groups`: the token in the `auth` object,
//! `joinSession` / `leaveSession`, the seed's events as emits, calls and their `error` emit, and a refused
//! connection without a token.

use crate::support::{Rest, WAIT, assert_event, join, name, native_ws, next, start_with_socketio, stop, token};
use chorus_core::server::Server;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// The namespace prefix of every packet of ours.
const NS: &str = "/study-groups,";

/// A Socket.IO client speaking the protocol's text packets over one WebSocket.
struct Sio {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

impl Sio {
    /// Opens the Engine.IO session and asks to connect to the namespace with `auth`.
    async fn open(server: &Server, auth: Option<Value>) -> Self {
        let url = format!("ws://{}/socket.io/?EIO=4&transport=websocket", server.http_addr);
        let (ws, _) = tokio_tungstenite::connect_async(url).await.expect("Engine.IO WebSocket");
        let mut sio = Self { ws };
        assert!(sio.packet().await.starts_with("0{"), "Engine.IO open packet first");
        let connect = match auth {
            Some(auth) => format!("40{NS}{auth}"),
            None => format!("40{NS}"),
        };
        sio.send(&connect).await;
        sio
    }

    /// Connected as `sub`.
    async fn connect(server: &Server, sub: &str) -> Self {
        let mut sio = Self::open(server, Some(json!({ "token": token(sub) }))).await;
        let connected = sio.packet().await;
        assert!(connected.starts_with(&format!("40{NS}")), "CONNECT answered: {connected}");
        sio
    }

    async fn send(&mut self, text: &str) {
        self.ws.send(Message::text(text)).await.expect("send packet");
    }

    /// The next packet that is not an Engine.IO ping (pings are answered).
    async fn packet(&mut self) -> String {
        loop {
            let frame = tokio::time::timeout(WAIT, self.ws.next()).await.expect("packet in time");
            match frame.expect("socket open").expect("WebSocket frame") {
                Message::Text(text) if text.as_str() == "2" => self.send("3").await,
                Message::Text(text) => return text.as_str().to_owned(),
                Message::Ping(_) | Message::Pong(_) => {}
                other => panic!("expected a text packet, got {other:?}"),
            }
        }
    }

    /// `socket.emit(event, data)`.
    async fn emit(&mut self, event: &str, data: Value) {
        self.send(&format!("42{NS}{}", json!([event, data]))).await;
    }

    /// The next emit the server sends: `(event, data)`.
    async fn next_emit(&mut self) -> (String, Value) {
        let packet = self.packet().await;
        let body = packet.strip_prefix(&format!("42{NS}")).unwrap_or_else(|| panic!("an EVENT packet: {packet}"));
        let args: Vec<Value> = serde_json::from_str(body).expect("event arguments");
        (args[0].as_str().expect("event name").to_owned(), args.get(1).cloned().unwrap_or(Value::Null))
    }
}

#[tokio::test]
async fn the_seeds_socket_io_client_flow() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_with_socketio(dir.path()).await;
    let fac = Rest::new(&server, "fay");
    let id = fac.session("g1", 1, "fay").await;
    let watcher = native_ws(&server, "wes").await;
    join(&watcher, &id).await;
    assert_eq!(next(&watcher, &id).await.0, "userJoined");

    let mut sio = Sio::connect(&server, "ann").await;
    sio.emit("joinSession", json!({ "sessionId": id })).await;
    let mut first_two = [sio.next_emit().await, sio.next_emit().await];
    first_two.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(first_two[0].0, "session.state");
    assert_eq!(first_two[0].1["sessionId"], id.as_str());
    let joined = json!({"userId": "ann", "userName": name("ann"), "sessionId": id});
    assert_event(&first_two[1], "userJoined", joined.clone());
    assert_event(&next(&watcher, &id).await, "userJoined", joined);

    assert_eq!(fac.start(&id).await.status, 200);
    let started = json!({"sessionId": id, "status": "RUNNING", "startedBy": "fay"});
    assert_event(&sio.next_emit().await, "session.started", started.clone());
    assert_event(&next(&watcher, &id).await, "session.started", started);

    sio.emit("advanceRound", json!({"sessionId": id, "roundIndex": 1})).await;
    let (event, error) = sio.next_emit().await;
    assert_eq!((event.as_str(), &error["code"]), ("error", &json!(2005)), "{error}");
    fac.advance_times(&id, 1, 1).await;
    assert_eq!(sio.next_emit().await.1["status"], "VOTING");
    assert_eq!(next(&watcher, &id).await.1["status"], "VOTING");
    sio.emit("submitEvent", json!({"sessionId": id, "eventType": "PI_VOTE_SUBMIT", "payload": "A"})).await;
    let (event, vote) = sio.next_emit().await;
    assert_eq!(
        (event.as_str(), &vote["userId"], &vote["eventType"]),
        ("vote.submitted", &json!("ann"), &json!("PI_VOTE_SUBMIT"))
    );
    assert_eq!(next(&watcher, &id).await.1["userId"], "ann");

    sio.emit("leaveSession", json!({ "sessionId": id })).await;
    let left = json!({"userId": "ann", "userName": name("ann"), "sessionId": id});
    assert_event(&next(&watcher, &id).await, "userLeft", left);

    let mut refused = Sio::open(&server, None).await;
    let answer = refused.packet().await;
    assert!(answer.starts_with(&format!("44{NS}")), "no token → connect_error: {answer}");
    let mut forged = Sio::open(&server, Some(json!({"token": "not-a-jwt"}))).await;
    assert!(forged.packet().await.starts_with(&format!("44{NS}")), "a bad token → connect_error");
    stop(server).await;
}
