//! Native access with the chorus client SDK over WebSocket and QUIC: the event topic (snapshot, events,
//! privacy, access), the `booking.*` calls and their error codes.

use crate::support::{Rest, native_quic, native_ws, start, stop};
use chorus_client::{Client, ClientError, Payload};
use serde_json::{Value, json};

fn args(value: Value) -> Payload {
    Payload::from_value(&value).unwrap()
}

async fn call(client: &Client, method: &str, value: Value) -> Result<Value, (u16, String)> {
    client.call(method, args(value)).await.map(|p| p.to_json()).map_err(|e| match e {
        ClientError::Server { code, message } => (code, message),
        other => panic!("expected a server error, got {other}"),
    })
}

async fn next_event(client: &Client) -> (String, Value) {
    let event =
        tokio::time::timeout(crate::support::WAIT, client.next_event()).await.expect("event in time").expect("open");
    (event.topic, event.payload.to_json())
}

#[tokio::test]
async fn topics_and_calls_over_websocket_and_quic() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path()).await;
    let id = Rest::new(&server, "olga", Some("organizer")).event("Jazz", 10).await;
    let topic = format!("booking/event/{id}");
    let watcher = native_ws(&server, "wes", None).await;
    let booker = native_quic(&server, "quinn", None).await;

    let reply = watcher.subscribe(&topic).await.unwrap();
    assert_eq!(
        reply.snapshot.map(|s| s.to_json()),
        Some(json!({"type": "seat_update", "eventId": id, "availableSeats": 10, "seatCapacity": 10}))
    );
    let quic_reply = booker.subscribe(&topic).await.unwrap();
    assert_eq!(quic_reply.snapshot.map(|s| s.to_json()["availableSeats"].clone()), Some(json!(10)));

    let booked = call(&booker, "booking.book", json!({"eventId": id, "seats": 4})).await.unwrap();
    let booking_id = booked["bookingId"].as_str().unwrap().to_owned();
    assert_eq!(booked, json!({"bookingId": booking_id, "eventId": id, "seats": 4, "availableSeats": 6}));
    for client in [&watcher, &booker] {
        assert_eq!(
            next_event(client).await,
            (topic.clone(), json!({"type": "booking_created", "eventId": id, "availableSeats": 6}))
        );
        assert_eq!(
            next_event(client).await,
            (topic.clone(), json!({"type": "seat_update", "eventId": id, "availableSeats": 6, "seatCapacity": 10}))
        );
    }

    let event = call(&watcher, "booking.get", json!({"eventId": id})).await.unwrap();
    assert_eq!((event["title"].as_str(), event["availableSeats"].as_u64()), (Some("Jazz"), Some(6)));
    let mine = call(&booker, "booking.list", json!(null)).await.unwrap();
    assert_eq!(mine["bookings"].as_array().map(Vec::len), Some(1));
    assert_eq!(mine["bookings"][0]["bookingId"], booking_id.as_str());
    assert_eq!(call(&watcher, "booking.list", json!({})).await.unwrap(), json!({"bookings": []}));

    assert_eq!(
        call(&watcher, "booking.cancel", json!({"bookingId": booking_id})).await,
        Err((2005, format!("booking {booking_id} belongs to another user")))
    );
    let cancelled = call(&booker, "booking.cancel", json!({"bookingId": booking_id})).await.unwrap();
    assert_eq!(cancelled["availableSeats"], 10);
    assert_eq!(cancelled["status"], "cancelled");
    assert_eq!(next_event(&watcher).await.1, json!({"type": "booking_cancelled", "eventId": id, "availableSeats": 10}));
    assert_eq!(next_event(&watcher).await.1["type"], "seat_update");
    assert_eq!(
        call(&booker, "booking.cancel", json!({"bookingId": booking_id})).await,
        Err((2008, format!("booking {booking_id} is already cancelled")))
    );

    let first = call(&booker, "booking.book", json!({"eventId": id, "seats": 1, "idempotencyKey": "k"})).await;
    let repeat = call(&booker, "booking.book", json!({"eventId": id, "seats": 1, "idempotencyKey": "k"})).await;
    assert_eq!(first, repeat, "idempotent over calls too");
    stop(server).await;
}

#[tokio::test]
async fn call_errors_have_stable_codes() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path()).await;
    let org = Rest::new(&server, "olga", Some("organizer"));
    let id = org.event("Small", 1).await;
    let private = org.create_event(json!({"title": "Secret", "seatCapacity": 5, "private": true})).await;
    let private = private.body["id"].as_u64().unwrap();
    let client = native_ws(&server, "cal", Some("member")).await;

    let cases = [
        ("booking.book", json!({"eventId": id, "seats": 2}), 2008, "not enough seats: 2 requested, 1 available"),
        ("booking.book", json!({"eventId": id}), 2009, "seats is required"),
        ("booking.book", json!({"eventId": "x", "seats": 1}), 2009, "eventId must be a positive integer"),
        ("booking.book", json!([id, 1]), 2009, "booking.book takes a map of arguments"),
        (
            "booking.book",
            json!({"eventId": id, "seats": 1, "idempotencyKey": 5}),
            2009,
            "idempotencyKey must be a string",
        ),
        ("booking.book", json!({"eventId": 777, "seats": 1}), 2007, "event 777 not found"),
        ("booking.book", json!({"eventId": private, "seats": 1}), 2005, "no access to event"),
        ("booking.get", json!({"eventId": private}), 2005, "no access to event"),
        ("booking.cancel", json!({"bookingId": "bk_missing"}), 2007, "booking bk_missing not found"),
        ("booking.cancel", json!({}), 2009, "bookingId is required"),
        ("booking.refund", json!({}), 2006, "no method booking.refund"),
    ];
    for (method, value, code, prefix) in cases {
        let (got_code, message) = call(&client, method, value.clone()).await.expect_err("refused");
        assert_eq!(got_code, code, "{method} {value}: {message}");
        assert!(message.starts_with(prefix), "{method} {value}: {message}");
    }

    let denied = client.subscribe(&format!("booking/event/{private}")).await.expect_err("no access");
    assert_eq!(denied.error_code().map(|c| c as u16), Some(2005));
    let bad = client.subscribe("booking/event/nope").await.expect_err("bad id");
    assert_eq!(bad.error_code().map(|c| c as u16), Some(2009));
    let missing = client.subscribe("booking/event/999").await.expect_err("no such event");
    assert_eq!(missing.error_code().map(|c| c as u16), Some(2007));

    client.subscribe(&format!("booking/event/{id}")).await.unwrap();
    let publish = client.publish(&format!("booking/event/{id}"), args(json!({"type": "seat_update"}))).await;
    assert_eq!(publish.expect_err("module topics carry module events only").error_code().map(|c| c as u16), Some(2005));
    stop(server).await;
}

#[tokio::test]
async fn guests_may_watch_public_events_but_not_book() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path()).await;
    let id = Rest::new(&server, "olga", Some("organizer")).event("Open air", 50).await;
    let url = format!("ws://{}/v1/ws", server.http_addr);
    let guest = Client::connect(chorus_client::ConnectOptions::websocket(url)).await.unwrap();
    let reply = guest.subscribe(&format!("booking/event/{id}")).await.unwrap();
    assert_eq!(reply.snapshot.unwrap().to_json()["availableSeats"], 50);
    assert_eq!(
        call(&guest, "booking.book", json!({"eventId": id, "seats": 1})).await,
        Err((2005, "booking needs a signed-in user (a token)".to_owned()))
    );
    stop(server).await;
}
