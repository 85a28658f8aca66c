//! The SDK's WebSocket framing against a tiny scripted server (tokio-tungstenite on port 0) that speaks just
//! enough of the protocol. End-to-end tests against the broker live in the workspace's `tests/`.

use bytes::Bytes;
use chorus_client::{Client, ClientError, CloseCode, Codec, ConnectOptions, ErrorCode, Payload, TokenPlacement};
use chorus_protocol::{
    ClientFrame, Identity, Limits, SUBPROTOCOL_JSON, SUBPROTOCOL_MSGPACK, ServerFrame, Welcome, decode_client,
    encode_server,
};
use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;

/// What the scripted server saw of the client's close, if the client closed.
type Server = JoinHandle<Option<u16>>;

/// Accepts one connection and plays the script below; returns the client's close code.
async fn serve_one() -> (SocketAddr, Server) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        let mut codec = Codec::MsgPack;
        let mut transport_token = None;
        #[allow(clippy::result_large_err, reason = "the signature is tungstenite's `Callback`")]
        let negotiate = |req: &Request, mut resp: Response| {
            let asked = req.headers().get("Sec-WebSocket-Protocol").and_then(|v| v.to_str().ok()).unwrap_or("");
            codec = if asked == SUBPROTOCOL_JSON { Codec::Json } else { Codec::MsgPack };
            let chosen = if codec == Codec::Json { SUBPROTOCOL_JSON } else { SUBPROTOCOL_MSGPACK };
            resp.headers_mut().insert("Sec-WebSocket-Protocol", HeaderValue::from_static(chosen));
            let query = req.uri().query().unwrap_or("");
            let header = req.headers().get("Authorization").and_then(|v| v.to_str().ok()).unwrap_or("");
            transport_token =
                query.strip_prefix("token=").or_else(|| header.strip_prefix("Bearer ")).map(str::to_owned);
            Ok(resp)
        };
        let ws = tokio_tungstenite::accept_hdr_async(stream, negotiate).await.unwrap();
        script(ws, codec, transport_token).await
    });
    (addr, server)
}

async fn send(ws: &mut WebSocketStream<TcpStream>, codec: Codec, frame: ServerFrame) {
    let bytes = encode_server(codec, &frame).unwrap();
    let message = match codec {
        Codec::MsgPack => Message::Binary(bytes),
        Codec::Json => Message::Text(bytes.try_into().unwrap()),
    };
    ws.send(message).await.unwrap();
}

fn json_payload(value: serde_json::Value) -> Payload {
    Payload::from_json(Bytes::from(value.to_string())).unwrap()
}

async fn close(ws: &mut WebSocketStream<TcpStream>, code: CloseCode, reason: &str) {
    let frame = CloseFrame { code: code.as_u16().into(), reason: reason.into() };
    ws.close(Some(frame)).await.unwrap();
    while let Some(Ok(_)) = ws.next().await {}
}

/// hello → welcome (or error 3000 + close 1008 for the token "bad"); subscribe → reply + one event;
/// acknowledged publish → seq 7; unacknowledged publish → error without id; call `echo`, `burst` (n events
/// then the reply), `ignore` (no answer), `kick` (disconnect 4001 + close 4001), anything else → error
/// 2006; ping with id → pong; ping without id (keepalive) → an event on topic `keepalive`.
async fn script(mut ws: WebSocketStream<TcpStream>, codec: Codec, transport_token: Option<String>) -> Option<u16> {
    while let Some(message) = ws.next().await {
        let bytes = match message.unwrap() {
            Message::Binary(b) => b,
            Message::Text(t) => Bytes::from(t),
            Message::Close(frame) => return frame.map(|f| u16::from(f.code)),
            _ => continue,
        };
        let reply = |id, value| ServerFrame::Reply { id, result: json_payload(value) };
        match decode_client(codec, &bytes, 1 << 20).unwrap() {
            ClientFrame::Hello { token } => {
                let token = token.or(transport_token.clone());
                if token.as_deref() == Some("bad") {
                    send(&mut ws, codec, ServerFrame::error(None, ErrorCode::TokenInvalid, "bad signature")).await;
                    close(&mut ws, CloseCode::PolicyViolation, "token invalid").await;
                    return None;
                }
                let welcome = Welcome {
                    conn_id: 42,
                    identity: Identity {
                        sub: token.unwrap_or_else(|| "guest-1".into()),
                        name: None,
                        role: None,
                        guest: false,
                    },
                    limits: Limits {
                        max_frame_bytes: 65536,
                        max_subscriptions: 100,
                        publish_rate: 50,
                        idle_timeout_ms: 30_000,
                    },
                };
                send(&mut ws, codec, ServerFrame::Welcome(welcome)).await;
            }
            ClientFrame::Subscribe { id, topic, .. } => {
                send(&mut ws, codec, reply(id.unwrap(), json!({"seq": 5, "snapshot": {"n": 1}}))).await;
                let event =
                    ServerFrame::Event { topic: topic.clone(), seq: 6, payload: json_payload(json!({"hello": topic})) };
                send(&mut ws, codec, event).await;
            }
            ClientFrame::Unsubscribe { id, .. } => send(&mut ws, codec, reply(id.unwrap(), json!(null))).await,
            ClientFrame::Publish { id: Some(id), .. } => send(&mut ws, codec, reply(id, json!({"seq": 7}))).await,
            ClientFrame::Publish { id: None, .. } => {
                send(&mut ws, codec, ServerFrame::error(None, ErrorCode::RateLimited, "slow down")).await;
            }
            ClientFrame::Call { id, method, args } => match method.as_str() {
                "echo" => send(&mut ws, codec, ServerFrame::Reply { id: id.unwrap(), result: args }).await,
                "burst" => {
                    let n: u64 = args.decode().unwrap();
                    for seq in 1..=n {
                        let event = ServerFrame::Event { topic: "burst".into(), seq, payload: Payload::null() };
                        send(&mut ws, codec, event).await;
                    }
                    send(&mut ws, codec, reply(id.unwrap(), json!(n))).await;
                }
                "ignore" => {}
                "kick" => {
                    send(&mut ws, codec, ServerFrame::disconnect(CloseCode::SlowConsumer, "slow consumer")).await;
                    close(&mut ws, CloseCode::SlowConsumer, "slow consumer").await;
                    return None;
                }
                _ => send(&mut ws, codec, ServerFrame::error(id, ErrorCode::UnknownMethod, "no such method")).await,
            },
            ClientFrame::Ping { id: None } => {
                let event = ServerFrame::Event { topic: "keepalive".into(), seq: 1, payload: Payload::null() };
                send(&mut ws, codec, event).await;
            }
            ClientFrame::Ping { id } => send(&mut ws, codec, ServerFrame::Pong { id }).await,
        }
    }
    None
}

fn options(addr: SocketAddr) -> ConnectOptions {
    ConnectOptions::websocket(format!("ws://{addr}/v1/ws")).request_timeout(Duration::from_secs(5))
}

#[tokio::test]
async fn requests_events_and_server_close_in_both_codecs() {
    for codec in Codec::ALL {
        let (addr, server) = serve_one().await;
        let client = Client::connect(options(addr).codec(codec).token("alice")).await.unwrap();
        assert_eq!(client.welcome().conn_id, 42);
        assert_eq!(client.welcome().identity.sub, "alice");
        assert_eq!(client.codec(), codec);

        let sub = client.subscribe("room/1").await.unwrap();
        assert_eq!(sub.seq, 5);
        assert_eq!(sub.snapshot.map(|s| s.to_json()), Some(json!({"n": 1})));
        let event = client.next_event().await.unwrap();
        assert_eq!((event.topic.as_str(), event.seq), ("room/1", 6));
        assert_eq!(event.payload.to_json(), json!({"hello": "room/1"}));

        assert_eq!(client.publish("room/1", Payload::from_value(&json!({"x": 1})).unwrap()).await.unwrap(), 7);
        client.publish_nowait("room/1", Payload::null()).await.unwrap();
        // The server answers in order, so the id-less error has arrived once the pong has.
        client.ping().await.unwrap();
        let errors = client.take_errors();
        assert_eq!(errors.len(), 1);
        assert_eq!((errors[0].id, errors[0].error_code()), (None, Some(ErrorCode::RateLimited)));

        let args = Payload::from_value(&json!({"seats": [1, 2], "bin": null})).unwrap();
        assert_eq!(client.call("echo", args.clone()).await.unwrap(), args);
        let err = client.call("nope", Payload::null()).await.unwrap_err();
        assert!(matches!(err, ClientError::Server { code: 2006, .. }), "{err:?}");
        assert_eq!(err.error_code(), Some(ErrorCode::UnknownMethod));
        client.call_nowait("nope", Payload::null()).await.unwrap();
        client.ping().await.unwrap();
        let errors = client.take_errors();
        assert_eq!(errors.len(), 1);
        assert_eq!((errors[0].id, errors[0].error_code()), (None, Some(ErrorCode::UnknownMethod)));
        client.unsubscribe("room/1").await.unwrap();

        let err = client.call("kick", Payload::null()).await.unwrap_err();
        assert_eq!(err.close_code(), Some(CloseCode::SlowConsumer), "{err:?}");
        let info = client.closed().await;
        assert_eq!(
            (info.close_code(), info.reason.as_str(), info.by_client),
            (Some(CloseCode::SlowConsumer), "slow consumer", false)
        );
        assert_eq!(client.next_event().await, None);
        assert!(matches!(client.ping().await, Err(ClientError::Closed { code: Some(4001), .. })));
        assert_eq!(server.await.unwrap(), None);
    }
}

#[tokio::test]
async fn rejected_hello_reports_the_error_code() {
    let (addr, server) = serve_one().await;
    let err = Client::connect(options(addr).token("bad")).await.unwrap_err();
    assert!(matches!(&err, ClientError::Rejected { code: 3000, message } if message == "bad signature"), "{err:?}");
    assert_eq!(err.error_code(), Some(ErrorCode::TokenInvalid));
    server.await.unwrap();
}

#[tokio::test]
async fn token_travels_in_query_or_header() {
    for placement in [TokenPlacement::Query, TokenPlacement::Header] {
        let (addr, server) = serve_one().await;
        let client = Client::connect(options(addr).token("bob").token_placement(placement)).await.unwrap();
        assert_eq!(client.welcome().identity.sub, "bob", "{placement:?}");
        let info = client.close().await;
        assert_eq!((info.close_code(), info.by_client), (Some(CloseCode::Normal), true));
        assert_eq!(server.await.unwrap(), Some(1000));
    }
}

#[tokio::test]
async fn a_full_event_buffer_pauses_reads_without_losing_or_reordering() {
    let (addr, server) = serve_one().await;
    let client = Client::connect(options(addr).event_capacity(1)).await.unwrap();
    const N: u64 = 200;
    // The reply queues behind N events; it can only arrive because the events are drained concurrently.
    let drain = async {
        for seq in 1..=N {
            assert_eq!(client.next_event().await.map(|e| e.seq), Some(seq));
        }
    };
    let (reply, ()) = tokio::join!(client.call("burst", Payload::from_value(&N).unwrap()), drain);
    assert_eq!(reply.unwrap().decode::<u64>().unwrap(), N);
    drop(client);
    assert_eq!(server.await.unwrap(), Some(1000), "dropping the client closes normally");
}

#[tokio::test]
async fn keepalive_pings_and_unanswered_requests_time_out() {
    let (addr, server) = serve_one().await;
    let options = options(addr).keepalive(Duration::from_millis(20)).request_timeout(Duration::from_millis(200));
    let client = Client::connect(options).await.unwrap();
    let event = client.next_event().await.unwrap();
    assert_eq!(event.topic, "keepalive", "the server saw an id-less ping");

    let err = client.call("ignore", Payload::null()).await.unwrap_err();
    assert!(matches!(err, ClientError::Timeout), "{err:?}");
    client.ping().await.expect("the connection outlives a timed-out request");
    assert_eq!(client.close().await.code, Some(1000));
    assert_eq!(server.await.unwrap(), Some(1000));
}
