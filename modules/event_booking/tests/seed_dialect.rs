//! The seed-004 WebSocket JSON API over real sockets: every message shape field by field, the 1008
//! closes, the error cases, privacy of broadcasts, isolation between events and access to private events.

use crate::support::{Rest, SeedWs, assert_message, start, stop, token};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

fn client_id(message: &Value) -> String {
    let id = message["clientId"].as_str().expect("clientId").to_owned();
    let rest = id.strip_prefix("ws_").expect("ws_ prefix");
    let (ms, random) = rest.split_once('_').expect("ws_<ms>_<random>");
    assert!(ms.len() >= 13 && ms.bytes().all(|b| b.is_ascii_digit()), "{id}");
    assert!(!random.is_empty() && random.bytes().all(|b| b.is_ascii_digit() || b.is_ascii_lowercase()), "{id}");
    id
}

#[tokio::test]
async fn every_message_shape_of_the_seed() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path()).await;
    let org = Rest::new(&server, "olga", Some("organizer"));
    let id = org.event("Concert", 100).await;
    let ann = Rest::new(&server, "ann", None);

    // General connection: connection_established with a clientId and no eventId.
    let mut general = SeedWs::connect(&server, &format!("/ws?token={}", token("gil", None))).await;
    let hello = general.next().await;
    let gid = client_id(&hello);
    assert_message(&hello, json!({"type": "connection_established", "clientId": gid}));

    // subscribe_event → subscribed, then the current seats as seat_update.
    let (subscribed, snapshot) = general.subscribe(id).await;
    assert_message(&subscribed, json!({"type": "subscribed", "eventId": id}));
    assert_message(
        &snapshot,
        json!({"type": "seat_update", "eventId": id, "availableSeats": 100, "seatCapacity": 100}),
    );

    // Event path: connection_established with the eventId, then the seats; no separate `subscribed`.
    let mut direct = SeedWs::connect(&server, &format!("/ws/events/{id}?token={}", token("dan", None))).await;
    let hello = direct.next().await;
    let did = client_id(&hello);
    assert_ne!(did, gid, "client ids are unique");
    assert_message(&hello, json!({"type": "connection_established", "clientId": did, "eventId": id}));
    assert_message(
        &direct.next().await,
        json!({"type": "seat_update", "eventId": id, "availableSeats": 100, "seatCapacity": 100}),
    );

    // A booking: booking_created then seat_update, to both, without bookingId or userId.
    let booked = ann.book(id, 2, None).await;
    assert_eq!(booked.status, 201);
    for ws in [&mut general, &mut direct] {
        assert_message(&ws.next().await, json!({"type": "booking_created", "eventId": id, "availableSeats": 98}));
        assert_message(
            &ws.next().await,
            json!({"type": "seat_update", "eventId": id, "availableSeats": 98, "seatCapacity": 100}),
        );
    }
    // A cancellation: booking_cancelled then seat_update.
    assert_eq!(ann.cancel(booked.body["bookingId"].as_str().unwrap()).await.status, 200);
    for ws in [&mut general, &mut direct] {
        assert_message(&ws.next().await, json!({"type": "booking_cancelled", "eventId": id, "availableSeats": 100}));
        assert_message(
            &ws.next().await,
            json!({"type": "seat_update", "eventId": id, "availableSeats": 100, "seatCapacity": 100}),
        );
    }

    // ping → pong; get_stats → stats.
    assert_message(&general.ping().await, json!({"type": "pong"}));
    general.send(json!({"type": "get_stats"})).await;
    assert_message(
        &general.next().await,
        json!({"type": "stats", "data": {"totalClients": 2, "eventSubscriptions": 1}}),
    );

    // unsubscribe_event → unsubscribed; afterwards nothing of the event arrives.
    general.send(json!({"type": "unsubscribe_event", "eventId": id})).await;
    assert_message(&general.next().await, json!({"type": "unsubscribed", "eventId": id}));
    assert_eq!(ann.book(id, 1, None).await.status, 201);
    assert_message(&general.ping().await, json!({"type": "pong"}));
    assert_eq!(direct.next().await["type"], "booking_created", "still subscribed on the event path");
    assert_eq!(direct.next().await["availableSeats"], 99);
    general.send(json!({"type": "get_stats"})).await;
    assert_message(
        &general.next().await,
        json!({"type": "stats", "data": {"totalClients": 2, "eventSubscriptions": 1}}),
    );
    drop(direct);
    stop(server).await;
}

#[tokio::test]
async fn bad_messages_get_an_error_and_the_connection_stays_open() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path()).await;
    let mut ws = SeedWs::general(&server, "gil", None).await;
    let cases: [(&str, &str); 10] = [
        ("{not json", "Invalid message format"),
        ("", "Invalid message format"),
        ("[1,2]", "Invalid message format"),
        ("42", "Invalid message format"),
        (r#"{"eventId":1}"#, "Message type is required"),
        (r#"{"type":7}"#, "Message type must be a string"),
        (r#"{"type":"book_everything"}"#, "Unknown message type: book_everything"),
        (r#"{"type":"subscribe_event"}"#, "eventId is required"),
        (r#"{"type":"subscribe_event","eventId":"abc"}"#, "eventId must be a positive integer"),
        (r#"{"type":"unsubscribe_event","eventId":-3}"#, "eventId must be a positive integer"),
    ];
    for (text, message) in cases {
        ws.send_text(text).await;
        assert_message(&ws.next().await, json!({"type": "error", "message": message}));
    }
    ws.send(json!({"type": "subscribe_event", "eventId": 4242})).await;
    assert_message(&ws.next().await, json!({"type": "error", "message": "event 4242 not found"}));
    assert_message(&ws.ping().await, json!({"type": "pong"}));
    stop(server).await;
}

#[tokio::test]
async fn tokens_are_required_and_checked_with_1008_closes() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path()).await;
    let expired = crate::support::sign(&json!({"sub": "x", "exp": jsonwebtoken::get_current_timestamp() - 600}));
    let wrong_key = jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &json!({"sub": "x", "exp": jsonwebtoken::get_current_timestamp() + 600}),
        &jsonwebtoken::EncodingKey::from_secret(b"someone else"),
    )
    .unwrap();
    let cases = [
        ("/ws".to_owned(), "Authentication Required"),
        ("/ws/events/1".to_owned(), "Authentication Required"),
        ("/ws?token=garbage".to_owned(), "Invalid Token"),
        (format!("/ws?token={expired}"), "Invalid Token"),
        (format!("/ws/events/1?token={wrong_key}"), "Invalid Token"),
    ];
    for (path, reason) in cases {
        let mut ws = SeedWs::connect(&server, &path).await;
        assert_eq!(ws.closed().await, (CloseCode::Policy, reason.to_owned()), "{path}");
    }
    stop(server).await;
}

#[tokio::test]
async fn subscribers_of_one_event_see_nothing_of_another() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path()).await;
    let org = Rest::new(&server, "olga", Some("organizer"));
    let a = org.event("A", 10).await;
    let b = org.event("B", 10).await;
    let ann = Rest::new(&server, "ann", None);
    let mut on_a = SeedWs::general(&server, "sam", None).await;
    on_a.subscribe(a).await;
    let mut on_b = SeedWs::general(&server, "sue", None).await;
    on_b.subscribe(b).await;

    assert_eq!(ann.book(b, 3, None).await.status, 201);
    assert_eq!(ann.book(a, 1, None).await.status, 201);
    // A's subscriber's next messages are A's booking: nothing of B came before it.
    let created = on_a.next().await;
    assert_eq!((created["type"].as_str(), created["eventId"].as_u64()), (Some("booking_created"), Some(a)));
    assert_eq!(created["availableSeats"], 9);
    assert_eq!(on_a.next().await["eventId"], a);
    assert_eq!(on_a.ping().await["type"], "pong");
    // B's subscriber saw B's booking only.
    assert_eq!(
        (on_b.next().await["eventId"].as_u64(), on_b.next().await["availableSeats"].as_u64()),
        (Some(b), Some(7))
    );
    assert_eq!(on_b.ping().await["type"], "pong");
    stop(server).await;
}

#[tokio::test]
async fn private_events_refuse_subscribers_without_access() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path()).await;
    let org = Rest::new(&server, "olga", Some("organizer"));
    let created = org
        .create_event(json!({"title": "Board", "seatCapacity": 3, "private": true, "allowedUsers": ["ann"],
            "allowedRoles": ["vip"]}))
        .await;
    let id = created.body["id"].as_u64().unwrap();
    let refusal = json!({"type": "error", "message": format!("no access to event {id}")});

    let mut bob = SeedWs::general(&server, "bob", Some("member")).await;
    bob.send(json!({"type": "subscribe_event", "eventId": id})).await;
    assert_message(&bob.next().await, refusal.clone());
    let mut bob_direct = SeedWs::connect(&server, &format!("/ws/events/{id}?token={}", token("bob", None))).await;
    assert_eq!(bob_direct.next().await["type"], "connection_established");
    assert_message(&bob_direct.next().await, refusal);

    let mut ann = SeedWs::general(&server, "ann", None).await;
    let (subscribed, snapshot) = ann.subscribe(id).await;
    assert_eq!((subscribed["type"].as_str(), snapshot["availableSeats"].as_u64()), (Some("subscribed"), Some(3)));
    let mut vip = SeedWs::general(&server, "val", Some("vip")).await;
    assert_eq!(vip.subscribe(id).await.0["type"], "subscribed");

    assert_eq!(Rest::new(&server, "ann", None).book(id, 1, None).await.status, 201);
    assert_eq!(ann.next().await["type"], "booking_created");
    assert_eq!(vip.next().await["type"], "booking_created");
    // The refused subscriptions receive nothing.
    assert_eq!(bob.ping().await["type"], "pong");
    assert_eq!(bob_direct.ping().await["type"], "pong");
    stop(server).await;
}
