//! Bad input on the native WebSocket endpoint gets a coded error or a documented close, never a panic,
//! and the broker keeps serving everyone else.

use crate::support::*;
use futures_util::SinkExt;
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

async fn error_code(ws: &mut RawWs) -> (u64, Option<u64>) {
    let v = next_json(ws).await;
    assert_eq!(v["type"], "error", "{v}");
    assert!(v["message"].as_str().is_some_and(|m| !m.is_empty()), "{v}");
    (v["code"].as_u64().expect("code"), v["id"].as_u64())
}

async fn still_alive(ws: &mut RawWs) {
    send_json(ws, json!({"type": "ping", "id": 99})).await;
    assert_eq!(next_json(ws).await, json!({"type": "pong", "id": 99}));
}

#[tokio::test]
async fn bad_frames_get_coded_errors_and_the_connection_stays_open() {
    let broker = Broker::start(&["--max-subscriptions", "2"]).await;
    let mut bystander = json_session(&broker, None).await;
    send_json(&mut bystander, json!({"type": "subscribe", "id": 1, "topic": "calm/room"})).await;
    assert_eq!(next_json(&mut bystander).await["type"], "reply");

    let mut ws = raw_ws(&broker, "chorus.v1.json", "").await;
    send_json(&mut ws, json!({"type": "subscribe", "id": 1, "topic": "a"})).await;
    assert_eq!(error_code(&mut ws).await, (1005, Some(1)), "frames before hello");
    send_json(&mut ws, json!({"type": "hello"})).await;
    assert_eq!(next_json(&mut ws).await["type"], "welcome");

    ws.send(Message::text("{not json")).await.unwrap();
    assert_eq!(error_code(&mut ws).await, (1001, None), "garbage");
    ws.send(Message::text("[1,2,3]")).await.unwrap();
    assert_eq!(error_code(&mut ws).await, (1001, None), "not an object");
    send_json(&mut ws, json!({"type": "dance", "id": 3})).await;
    assert_eq!(error_code(&mut ws).await.0, 1002, "unknown frame type");
    send_json(&mut ws, json!({"topic": "a"})).await;
    assert_eq!(error_code(&mut ws).await.0, 1003, "missing type");
    send_json(&mut ws, json!({"type": "publish", "topic": "a"})).await;
    assert_eq!(error_code(&mut ws).await.0, 1003, "publish without payload");
    send_json(&mut ws, json!({"type": "subscribe", "id": "seven", "topic": "a"})).await;
    assert_eq!(error_code(&mut ws).await.0, 1003, "ill-typed id");
    send_json(&mut ws, json!({"type": "hello"})).await;
    assert_eq!(error_code(&mut ws).await.0, 1006, "second hello");
    for bad in ["", "a//b", "/a", "a b", "ü", &"x".repeat(201)] {
        send_json(&mut ws, json!({"type": "subscribe", "id": 4, "topic": bad})).await;
        assert_eq!(error_code(&mut ws).await, (2000, Some(4)), "topic {bad:?}");
        send_json(&mut ws, json!({"type": "publish", "id": 5, "topic": bad, "payload": 1})).await;
        assert_eq!(error_code(&mut ws).await, (2000, Some(5)), "topic {bad:?}");
    }
    for (i, topic) in ["one", "two"].into_iter().enumerate() {
        send_json(&mut ws, json!({"type": "subscribe", "id": i, "topic": topic})).await;
        assert_eq!(next_json(&mut ws).await["type"], "reply");
    }
    send_json(&mut ws, json!({"type": "subscribe", "id": 6, "topic": "one"})).await;
    assert_eq!(error_code(&mut ws).await, (2002, Some(6)), "already subscribed");
    send_json(&mut ws, json!({"type": "subscribe", "id": 7, "topic": "three"})).await;
    assert_eq!(error_code(&mut ws).await, (2001, Some(7)), "subscription limit");
    send_json(&mut ws, json!({"type": "unsubscribe", "id": 8, "topic": "nine"})).await;
    assert_eq!(error_code(&mut ws).await, (2003, Some(8)), "not subscribed");
    send_json(&mut ws, json!({"type": "call", "id": 9, "method": "nobody.nothing", "args": {}})).await;
    assert_eq!(error_code(&mut ws).await, (2006, Some(9)), "unknown method");
    send_json(&mut ws, json!({"type": "call", "method": "nobody.nothing"})).await;
    assert_eq!(error_code(&mut ws).await, (2006, None), "unknown method of a call without id");
    send_json(&mut ws, json!({"type": "call", "method": "chorus.counter", "args": {"topic": "one", "add": 2}})).await;
    send_json(&mut ws, json!({"type": "call", "id": 12, "method": "chorus.counter", "args": {"topic": "one"}})).await;
    let counted = json!({"type": "reply", "id": 12, "result": {"value": 2}});
    assert_eq!(next_json(&mut ws).await, counted, "a call without id runs and gets no reply");
    let deep = format!("{}{}", "[".repeat(65), "]".repeat(65));
    ws.send(Message::text(format!(r#"{{"type":"publish","id":10,"topic":"a","payload":{deep}}}"#))).await.unwrap();
    assert_eq!(error_code(&mut ws).await.0, 1007, "payload nested too deep");
    still_alive(&mut ws).await;

    send_json(&mut ws, json!({"type": "publish", "id": 11, "topic": "calm/room", "payload": {"ok": true}})).await;
    assert_eq!(next_json(&mut ws).await, json!({"type": "reply", "id": 11, "result": {"seq": 1}}));
    let event = next_json(&mut bystander).await;
    assert_eq!(event, json!({"type": "event", "topic": "calm/room", "seq": 1, "payload": {"ok": true}}));
}

#[tokio::test]
async fn bad_msgpack_frames() {
    let broker = Broker::start(&[]).await;
    let mut ws = raw_ws(&broker, "chorus.v1.msgpack", "").await;
    // {"type":"hello"}
    ws.send(Message::binary(vec![0x81, 0xa4, b't', b'y', b'p', b'e', 0xa5, b'h', b'e', b'l', b'l', b'o']))
        .await
        .unwrap();
    assert!(matches!(next(&mut ws).await, Next::Binary(_)), "welcome");
    let garbage: [&[u8]; 4] = [
        &[0xc1, 0xff],
        // {"type":"publish","topic":"a","payload": truncated
        &[
            0x83, 0xa4, b't', b'y', b'p', b'e', 0xa7, b'p', b'u', b'b', b'l', b'i', b's', b'h', 0xa5, b't', b'o', b'p',
            b'i', b'c', 0xa1, b'a', 0xa7, b'p', b'a', b'y', b'l', b'o', b'a', b'd', 0x92, 0x01,
        ],
        // a bare integer
        &[0x07],
        // {"type": "publish", "topic": "a", "payload": {1: 2}}: a non-string map key in the payload
        &[
            0x83, 0xa4, b't', b'y', b'p', b'e', 0xa7, b'p', b'u', b'b', b'l', b'i', b's', b'h', 0xa5, b't', b'o', b'p',
            b'i', b'c', 0xa1, b'a', 0xa7, b'p', b'a', b'y', b'l', b'o', b'a', b'd', 0x81, 0x01, 0x02,
        ],
    ];
    let expected = [1001, 1001, 1001, 1007];
    for (bytes, code) in garbage.iter().zip(expected) {
        ws.send(Message::binary(bytes.to_vec())).await.unwrap();
        let Next::Binary(reply) = next(&mut ws).await else { panic!("expected a binary error frame") };
        let frame = chorus_protocol::decode_server(chorus_protocol::Codec::MsgPack, &reply.into(), 1 << 20).unwrap();
        match frame {
            chorus_protocol::ServerFrame::Error { code: c, .. } => assert_eq!(c, code, "{bytes:02x?}"),
            other => panic!("expected error, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn oversize_frame_closes_with_1009_and_others_are_unaffected() {
    let broker = Broker::start(&["--max-frame-bytes", "1024"]).await;
    let mut bystander = json_session(&broker, None).await;
    let mut ws = json_session(&broker, None).await;
    let big = json!({"type": "publish", "topic": "a", "payload": "x".repeat(2000)});
    send_json(&mut ws, big).await;
    assert_eq!(expect_close(&mut ws).await, Some(1009));
    still_alive(&mut bystander).await;
}

#[tokio::test]
async fn frames_larger_than_the_read_buffer_arrive_whole() {
    // The WebSocket read buffer is 2 KiB; frames up to the 64 KiB limit grow it, back to back.
    let broker = Broker::start(&[]).await;
    let mut sub = json_session(&broker, None).await;
    send_json(&mut sub, json!({"type": "subscribe", "id": 1, "topic": "big"})).await;
    assert_eq!(next_json(&mut sub).await["type"], "reply");
    let mut publisher = json_session(&broker, None).await;
    let sizes = [60_000, 3_000, 10, 2_047, 2_048, 2_049, 40_000];
    for (i, n) in sizes.iter().enumerate() {
        let payload = format!("{i}{}", "x".repeat(n - 1));
        send_json(&mut publisher, json!({"type": "publish", "id": i, "topic": "big", "payload": payload})).await;
    }
    for (i, n) in sizes.iter().enumerate() {
        let reply = next_json(&mut publisher).await;
        assert_eq!((reply["type"].as_str(), reply["id"].as_u64()), (Some("reply"), Some(i as u64)), "{reply}");
        let event = next_json(&mut sub).await;
        let payload = event["payload"].as_str().unwrap_or_else(|| panic!("an event: {event}"));
        assert_eq!(payload.len(), *n, "event {i}");
        assert!(payload.starts_with(&i.to_string()), "event {i} in order");
    }
}

#[tokio::test]
async fn publish_rate_limit_reports_every_dropped_frame() {
    let broker = Broker::start(&["--publish-rate", "5"]).await;
    let mut ws = json_session(&broker, None).await;
    for id in 0..20 {
        send_json(&mut ws, json!({"type": "publish", "id": id, "topic": "fast", "payload": id})).await;
    }
    let (mut ok, mut limited) = (0, 0);
    for _ in 0..20 {
        let v = next_json(&mut ws).await;
        match (v["type"].as_str(), v["code"].as_u64()) {
            (Some("reply"), _) => ok += 1,
            (Some("error"), Some(2004)) => limited += 1,
            _ => panic!("unexpected {v}"),
        }
    }
    assert_eq!(ok + limited, 20);
    assert!((5..=7).contains(&ok), "burst of 5 plus refill, got {ok}");
}

#[tokio::test]
async fn hello_timeout_and_unknown_subprotocol() {
    let broker = Broker::start(&["--hello-timeout-secs", "1"]).await;
    let mut ws = raw_ws(&broker, "chorus.v1.json", "").await;
    assert_eq!(expect_close(&mut ws).await, Some(4000));
    let (status, _) = http_request(
        broker.http,
        "GET",
        "/v1/ws",
        &[
            ("Upgrade", "websocket"),
            ("Connection", "Upgrade"),
            ("Sec-WebSocket-Version", "13"),
            ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
            ("Sec-WebSocket-Protocol", "mqtt"),
        ],
        None,
    )
    .await
    .unwrap();
    assert_eq!(status, 400);
    let (status, _) = broker.get("/v1/ws").await;
    assert_eq!(status, 400, "plain GET without upgrade");
}
