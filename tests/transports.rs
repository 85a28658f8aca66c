//! A WebSocket-MessagePack, a WebSocket-JSON and a QUIC client on one topic: each one's publish reaches
//! all three, with the same value after transcoding.

use crate::support::*;
use chorus_client::{Client, Codec, ConnectOptions, Payload, TokenPlacement};
use serde_json::json;
use std::collections::BTreeMap;

async fn clients(broker: &Broker) -> Vec<(&'static str, Client)> {
    let t = |sub: &str| token(json!({"sub": sub, "name": sub.to_uppercase(), "role": "member"}));
    let mp = ConnectOptions::websocket(broker.ws_url("")).codec(Codec::MsgPack).token(t("mp"));
    let js = ConnectOptions::websocket(broker.ws_url("")).codec(Codec::Json).token(t("js"));
    let qc = ConnectOptions::quic(broker.quic, "localhost").pin_sha256(broker.fingerprint.clone()).token(t("qc"));
    vec![
        ("mp", Client::connect(mp).await.expect("ws msgpack")),
        ("js", Client::connect(js).await.expect("ws json")),
        ("qc", Client::connect(qc).await.expect("quic")),
    ]
}

#[tokio::test]
async fn every_publish_reaches_every_transport_and_codec() {
    let broker = Broker::start(&[]).await;
    let clients = clients(&broker).await;
    for (name, c) in &clients {
        let id = &c.welcome().identity;
        assert_eq!((id.sub.as_str(), id.guest), (*name, false));
        assert_eq!(id.name.as_deref(), Some(name.to_uppercase().as_str()));
        assert_eq!(c.welcome().limits.max_frame_bytes, 65536);
        c.subscribe("room/1").await.expect("subscribe");
    }
    let value = |from: &str| json!({"from": from, "n": [1, -2, 2.5, "ü", null, true], "nested": {"k": {"deep": []}}});
    for (name, c) in &clients {
        c.publish("room/1", Payload::from_value(&value(name)).unwrap()).await.expect("publish");
    }
    for (name, c) in &clients {
        let mut seen = BTreeMap::new();
        for _ in 0..clients.len() {
            let event = tokio::time::timeout(std::time::Duration::from_secs(10), c.next_event())
                .await
                .expect("event in time")
                .expect("open");
            assert_eq!(event.topic, "room/1");
            let got = event.payload.to_json();
            let from = got["from"].as_str().expect("from").to_owned();
            assert_eq!(got, value(&from), "{name} received {from}'s payload changed");
            seen.insert(event.seq, from);
        }
        assert_eq!(seen.keys().copied().collect::<Vec<_>>(), vec![1, 2, 3], "{name}: sequence numbers");
        assert_eq!(seen.values().cloned().collect::<Vec<_>>(), vec!["mp", "js", "qc"], "{name}: order");
    }
}

#[tokio::test]
async fn rooms_are_isolated() {
    let broker = Broker::start(&[]).await;
    let clients = clients(&broker).await;
    clients[0].1.subscribe("room/a").await.unwrap();
    clients[1].1.subscribe("room/b").await.unwrap();
    clients[2].1.publish("room/b", Payload::from_value(&"for b").unwrap()).await.unwrap();
    clients[2].1.publish("room/a", Payload::from_value(&"for a").unwrap()).await.unwrap();
    let a = clients[0].1.next_event().await.unwrap();
    let b = clients[1].1.next_event().await.unwrap();
    assert_eq!((a.topic.as_str(), a.payload.to_json()), ("room/a", json!("for a")));
    assert_eq!((b.topic.as_str(), b.payload.to_json()), ("room/b", json!("for b")));
    clients[0].1.unsubscribe("room/a").await.unwrap();
    clients[2].1.publish("room/a", Payload::from_value(&"gone").unwrap()).await.unwrap();
    clients[0].1.ping().await.unwrap();
    let pending = tokio::time::timeout(std::time::Duration::from_millis(200), clients[0].1.next_event()).await;
    assert!(pending.is_err(), "no event after unsubscribe: {pending:?}");
}

#[tokio::test]
async fn token_may_come_from_query_header_or_hello() {
    let broker = Broker::start(&[]).await;
    for placement in [TokenPlacement::Hello, TokenPlacement::Query, TokenPlacement::Header] {
        let opts = ConnectOptions::websocket(broker.ws_url(""))
            .codec(Codec::Json)
            .token(token(json!({"sub": "carol"})))
            .token_placement(placement);
        let c = Client::connect(opts).await.unwrap_or_else(|e| panic!("{placement:?}: {e}"));
        assert_eq!(c.welcome().identity.sub, "carol", "{placement:?}");
    }
}

#[tokio::test]
async fn idle_connections_close_with_4002_unless_the_sdk_keeps_them_alive() {
    let broker = Broker::start(&["--idle-timeout-secs", "1"]).await;
    let quiet = Client::connect(ConnectOptions::websocket(broker.ws_url("")).no_keepalive()).await.unwrap();
    let kept = Client::connect(ConnectOptions::websocket(broker.ws_url(""))).await.unwrap();
    let kept_quic =
        Client::connect(ConnectOptions::quic(broker.quic, "localhost").pin_sha256(broker.fingerprint.clone()))
            .await
            .unwrap();
    let info = tokio::time::timeout(std::time::Duration::from_secs(10), quiet.closed()).await.expect("closed in time");
    assert_eq!(info.code, Some(4002), "{info:?}");
    kept.ping().await.expect("the default keepalive kept the WebSocket open");
    kept_quic.ping().await.expect("the default keepalive kept the QUIC connection open");
}
