//! A subscriber that stops reading is cut with close code 4001; a normal subscriber on the same topic
//! receives every message; the slow-consumer metric counts it.

use crate::support::*;
use chorus_client::{Client, Codec, ConnectOptions, Payload};
use serde_json::json;
use std::time::Duration;
use tokio::net::TcpSocket;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

const SLOW_METRIC: &str = "chorus_slow_consumer_disconnects_total";

#[tokio::test]
async fn a_client_that_never_reads_is_cut_and_the_others_get_everything() {
    let broker = Broker::start(&["--outbound-queue-bytes", "65536", "--publish-rate", "1000000"]).await;

    // The slow client: a small receive buffer so the server's socket fills quickly, then it never reads.
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let stream = socket.connect(broker.http).await.unwrap();
    let mut req = broker.ws_url("").into_client_request().unwrap();
    req.headers_mut().insert("Sec-WebSocket-Protocol", "chorus.v1.json".parse().unwrap());
    let (mut slow, _) =
        tokio_tungstenite::client_async(req, tokio_tungstenite::MaybeTlsStream::Plain(stream)).await.unwrap();
    send_json(&mut slow, json!({"type": "hello"})).await;
    assert_eq!(next_json(&mut slow).await["type"], "welcome");
    send_json(&mut slow, json!({"type": "subscribe", "id": 1, "topic": "firehose"})).await;
    assert_eq!(next_json(&mut slow).await["type"], "reply");

    let fast = Client::connect(ConnectOptions::websocket(broker.ws_url("")).codec(Codec::MsgPack)).await.unwrap();
    fast.subscribe("firehose").await.unwrap();
    let publisher = Client::connect(ConnectOptions::websocket(broker.ws_url(""))).await.unwrap();

    let received = tokio::spawn(async move {
        let mut seqs = Vec::new();
        while let Some(event) = fast.next_event().await {
            seqs.push(event.seq);
            if event.payload.to_json()["last"] == true {
                break;
            }
        }
        seqs
    });

    let chunk = "x".repeat(8 * 1024);
    let mut published = 0u64;
    let mut cut = false;
    for round in 0..400 {
        for _ in 0..25 {
            publisher
                .publish("firehose", Payload::from_value(&json!({"data": chunk, "last": false})).unwrap())
                .await
                .unwrap();
            published += 1;
        }
        if broker.metrics().await.get(SLOW_METRIC) >= 1.0 {
            cut = true;
            break;
        }
        assert!(round < 399, "slow consumer never cut after {published} messages");
    }
    assert!(cut);
    for _ in 0..50 {
        publisher
            .publish("firehose", Payload::from_value(&json!({"data": "after", "last": false})).unwrap())
            .await
            .unwrap();
        published += 1;
    }
    publisher.publish("firehose", Payload::from_value(&json!({"last": true})).unwrap()).await.unwrap();
    published += 1;

    let seqs =
        tokio::time::timeout(Duration::from_secs(60), received).await.expect("fast subscriber finished").unwrap();
    assert_eq!(seqs, (1..=published).collect::<Vec<_>>(), "the fast subscriber got every message, in order");
    assert_eq!(expect_close(&mut slow).await, Some(4001), "the slow client learns why once it reads");
    assert_eq!(broker.metrics().await.get(SLOW_METRIC), 1.0);
}
