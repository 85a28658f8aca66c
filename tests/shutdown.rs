//! SIGTERM: every client is told "going away" (1001), and the process exits 0.

use crate::support::*;
use chorus_client::{Client, Codec, ConnectOptions};
use serde_json::json;
use std::time::Duration;

#[tokio::test]
async fn sigterm_closes_every_client_with_1001_and_exits_zero() {
    let mut broker = Broker::start(&[]).await;
    let ws = Client::connect(ConnectOptions::websocket(broker.ws_url("")).codec(Codec::Json)).await.unwrap();
    let quic = Client::connect(ConnectOptions::quic(broker.quic, "localhost").pin_sha256(broker.fingerprint.clone()))
        .await
        .unwrap();
    ws.subscribe("t").await.unwrap();
    quic.subscribe("t").await.unwrap();
    let mut raw = json_session(&broker, None).await;
    send_json(&mut raw, json!({"type": "subscribe", "id": 1, "topic": "t"})).await;
    assert_eq!(next_json(&mut raw).await["type"], "reply");

    broker.terminate();

    assert_eq!(expect_close(&mut raw).await, Some(1001));
    for (name, c) in [("ws", &ws), ("quic", &quic)] {
        let info = tokio::time::timeout(Duration::from_secs(10), c.closed()).await.expect("closed in time");
        assert_eq!(info.code, Some(1001), "{name}: {info:?}");
        assert!(!info.by_client);
    }
    let status =
        tokio::time::timeout(Duration::from_secs(15), broker.child.wait()).await.expect("exited in time").unwrap();
    assert!(status.success(), "exit status {status}");
}
