//! History and recovery on one node: a client that comes back with its last position gets exactly what it
//! missed (`recovered: true`), or learns that the gap cannot be filled (`recovered: false`).

use crate::support::*;
use chorus_client::{Client, Codec, ConnectOptions, Payload, Position};
use serde_json::json;
use std::time::Duration;

async fn next_seqs(client: &Client, n: usize) -> Vec<(u64, serde_json::Value)> {
    let mut out = Vec::new();
    for _ in 0..n {
        let event =
            tokio::time::timeout(Duration::from_secs(10), client.next_event()).await.expect("event").expect("open");
        out.push((event.seq, event.payload.to_json()));
    }
    out
}

#[tokio::test]
async fn a_client_that_reconnects_gets_exactly_what_it_missed() {
    let broker = Broker::start(&[]).await;
    let publisher = Client::connect(ConnectOptions::websocket(broker.ws_url(""))).await.unwrap();
    let first = Client::connect(ConnectOptions::websocket(broker.ws_url("")).codec(Codec::Json)).await.unwrap();
    let reply = first.subscribe("news").await.unwrap();
    let epoch = reply.epoch.clone().expect("epoch");
    for i in 1..=3 {
        publisher.publish("news", Payload::from_value(&json!({"n": i})).unwrap()).await.unwrap();
    }
    let seen = next_seqs(&first, 3).await;
    let last = seen.last().unwrap().0;
    first.close().await;
    for i in 4..=6 {
        publisher.publish("news", Payload::from_value(&json!({"n": i})).unwrap()).await.unwrap();
    }

    let back = Client::connect(ConnectOptions::quic(broker.quic, "localhost").pin_sha256(broker.fingerprint.clone()))
        .await
        .unwrap();
    let resumed = back.subscribe_since("news", reply.position(last).unwrap()).await.unwrap();
    assert_eq!((resumed.recovered, resumed.seq, resumed.epoch.as_deref()), (Some(true), 6, Some(epoch.as_str())));
    publisher.publish("news", Payload::from_value(&json!({"n": 7})).unwrap()).await.unwrap();
    let got = next_seqs(&back, 4).await;
    assert_eq!(got, (4..=7).map(|i| (i, json!({"n": i}))).collect::<Vec<_>>(), "missed events, then live, once each");
}

#[tokio::test]
async fn gaps_beyond_the_history_or_from_another_epoch_are_reported() {
    let broker = Broker::start(&["--history-size", "3"]).await;
    let publisher = Client::connect(ConnectOptions::websocket(broker.ws_url(""))).await.unwrap();
    let reply = publisher.subscribe("feed").await.unwrap();
    for i in 1..=6 {
        publisher.publish("feed", Payload::from_value(&i).unwrap()).await.unwrap();
    }
    let trimmed = Client::connect(ConnectOptions::websocket(broker.ws_url(""))).await.unwrap();
    let r = trimmed.subscribe_since("feed", reply.position(1).unwrap()).await.unwrap();
    assert_eq!(r.recovered, Some(false), "events 2 and 3 are gone");
    let stranger = Client::connect(ConnectOptions::websocket(broker.ws_url(""))).await.unwrap();
    let r = stranger.subscribe_since("feed", Position { epoch: "0000000000000000".into(), offset: 5 }).await.unwrap();
    assert_eq!(r.recovered, Some(false), "another epoch");
    publisher.publish("feed", Payload::from_value(&7).unwrap()).await.unwrap();
    for c in [&trimmed, &stranger] {
        assert_eq!(next_seqs(c, 1).await, vec![(7, json!(7))], "nothing replayed after a failed recovery");
    }
}
