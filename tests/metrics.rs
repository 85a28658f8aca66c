//! `/health`, `/ready` and `/metrics`: the text parses as Prometheus exposition and the counters move.

use crate::support::*;
use chorus_client::{Client, Codec, ConnectOptions, Payload};
use serde_json::json;

#[tokio::test]
async fn health_ready_and_counters_move() {
    let broker = Broker::start(&[]).await;
    assert_eq!(broker.get("/health").await, (200, "ok".into()));
    assert_eq!(broker.get("/ready").await.0, 200);
    assert_eq!(broker.get("/no/such/path").await.0, 404);

    let before = broker.metrics().await;
    let sub = Client::connect(ConnectOptions::websocket(broker.ws_url("")).codec(Codec::Json)).await.unwrap();
    let quic = Client::connect(ConnectOptions::quic(broker.quic, "localhost").pin_sha256(broker.fingerprint.clone()))
        .await
        .unwrap();
    sub.subscribe("m").await.unwrap();
    quic.subscribe("m").await.unwrap();
    for i in 0..5 {
        quic.publish("m", Payload::from_value(&json!({"i": i})).unwrap()).await.unwrap();
    }
    for _ in 0..5 {
        sub.next_event().await.unwrap();
    }
    let after = broker.metrics().await;
    let delta = |k: &str| after.get(k) - before.get(k);
    assert_eq!(after.get(r#"chorus_connections{transport="ws"}"#), 1.0);
    assert_eq!(after.get(r#"chorus_connections{transport="quic"}"#), 1.0);
    assert_eq!(delta("chorus_publishes_total"), 5.0);
    assert_eq!(delta("chorus_fanout_deliveries_total"), 10.0);
    assert_eq!(delta("chorus_publish_enqueue_seconds_count"), 5.0);
    assert!(delta(r#"chorus_frames_in_total{transport="quic"}"#) >= 7.0, "hello + subscribe + 5 publishes");
    assert!(delta(r#"chorus_bytes_out_total{transport="ws"}"#) > 0.0);
    assert!(delta(r#"chorus_connections_total{transport="ws"}"#) >= 1.0);
}
