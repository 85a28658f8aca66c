//! Viewer tracking: the publisher is never counted, guests count per connection, a reload closes the
//! previous view and counts once, leaving and disconnecting close views; `viewer-count` on every change;
//! view records persisted.

use crate::support::{START_MS, User, expect, join, native_quic, native_ws, rows, start, stop, token, topic};
use serde_json::{Value, json};
use std::time::Duration;

#[tokio::test]
async fn the_publisher_is_not_counted_and_a_reload_counts_once() {
    let dir = tempfile::tempdir().unwrap();
    let (server, clock) = start(dir.path()).await;
    let creator = User::new(&server, "1", "Cleo");
    let session = creator.session("Live Gaming Session", &[]).await;
    creator.start_stream(&session).await;

    // The creator joins their own session over QUIC: a publisher, count stays 0, no broadcast.
    let publisher = native_quic(&server, &token("1", "Cleo", None)).await;
    assert_eq!(join(&publisher, &session).await, json!({"event": "viewer-count", "data": 0}));

    // A viewer joins over WebSocket: count 1, broadcast to the room (the viewer included).
    let ann = native_ws(&server, Some(&token("2", "Ann", None))).await;
    assert_eq!(join(&ann, &session).await, json!({"event": "viewer-count", "data": 1}));
    assert_eq!(expect(&publisher, "viewer-count").await, json!(1));
    assert_eq!(expect(&ann, "viewer-count").await, json!(1));

    // Ann reloads: a new connection joins before the old one is gone. Still one viewer, no broadcast.
    clock.advance(Duration::from_secs(30));
    let ann_again = native_ws(&server, Some(&token("2", "Ann", None))).await;
    assert_eq!(join(&ann_again, &session).await, json!({"event": "viewer-count", "data": 1}));
    // The old page goes away: its view was already closed, so nothing changes.
    ann.close().await;

    // Two guests count once each (per connection).
    let guest_a = native_ws(&server, None).await;
    assert_eq!(join(&guest_a, &session).await["data"], 2);
    let guest_b = native_ws(&server, None).await;
    assert_eq!(join(&guest_b, &session).await["data"], 3);
    // The first events the publisher sees after Ann's count are exactly the guests' — the reload and the
    // old page's close published nothing.
    assert_eq!(expect(&publisher, "viewer-count").await, json!(2));
    assert_eq!(expect(&publisher, "viewer-count").await, json!(3));

    // Leaving (unsubscribe) and disconnecting both close a view.
    clock.advance(Duration::from_secs(15));
    guest_a.unsubscribe(&topic(&session)).await.unwrap();
    assert_eq!(expect(&publisher, "viewer-count").await, json!(2));
    guest_b.close().await;
    assert_eq!(expect(&publisher, "viewer-count").await, json!(1));

    // The view records: the publisher's, Ann's first view closed by the reload after 30 s, her second
    // (open), the guests'.
    let views = rows(&server, "commerce_views", &session).await;
    assert_eq!(views.len(), 5, "{views:#?}");
    let shape: Vec<(Value, Value, Value, Value)> = views
        .iter()
        .map(|v| (v["user_id"].clone(), v["role"].clone(), v["left_ms"].clone(), v["watch_secs"].clone()))
        .collect();
    assert_eq!(
        shape,
        [
            (json!("1"), json!("publisher"), Value::Null, Value::Null),
            (json!("2"), json!("subscriber"), json!(START_MS + 30_000), json!(30)),
            (json!("2"), json!("subscriber"), Value::Null, Value::Null),
            (Value::Null, json!("subscriber"), json!(START_MS + 45_000), json!(15)),
            (Value::Null, json!("subscriber"), json!(START_MS + 45_000), json!(15)),
        ]
    );
    assert!(views.iter().all(|v| v["session_id"] == session.as_str() && v["socket_id"].is_string()));
    assert_eq!(views[1]["joined_ms"], START_MS);
    assert_eq!(views[2]["joined_ms"], START_MS + 30_000);
    stop(server).await;
}

#[tokio::test]
async fn a_creator_watching_another_creators_stream_is_a_viewer() {
    let dir = tempfile::tempdir().unwrap();
    let (server, _clock) = start(dir.path()).await;
    let a = User::new(&server, "10", "A");
    let b = User::new(&server, "20", "B");
    let session_b = b.session("B's show", &[]).await;
    a.session("A's show", &[]).await;
    let client = native_ws(&server, Some(&a.token)).await;
    assert_eq!(join(&client, &session_b).await["data"], 1);

    // Unknown and malformed sessions are refused at subscribe.
    let refused = client.subscribe(&topic("019ae3c1-2f00-7000-8000-000000000001")).await.unwrap_err();
    assert_eq!(refused.error_code().map(|c| c as u16), Some(2007));
    let refused = client.subscribe(&topic("nope")).await.unwrap_err();
    assert_eq!(refused.error_code().map(|c| c as u16), Some(2007));
    stop(server).await;
}
