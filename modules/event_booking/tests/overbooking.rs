//! No overbooking: 10,000 concurrent one-seat booking attempts from 200 connections (WebSocket and QUIC)
//! on an event with 100 seats. Exactly 100 succeed; watchers (native and seed dialect) see 100
//! `booking_created` + `seat_update` pairs counting down from 99 to 0 in order, never negative; the store
//! holds exactly 100 bookings, all finished.

use crate::support::{Rest, SeedWs, native_ws, start, stop};
use chorus_client::{Client, ClientError, Codec, ConnectOptions, Payload};
use chorus_core::server::Server;
use chorus_core::store::{ClusteringKeyReader, Scan};
use serde_json::{Value, json};
use std::collections::HashSet;
use std::time::Duration;

const SEATS: u32 = 100;
const CONNECTIONS: usize = 200;
/// Every fourth connection uses QUIC, the rest WebSocket.
const QUIC_EVERY: usize = 4;
const ATTEMPTS_PER_CONNECTION: usize = 50;
/// Generous per-call timeout: a call that timed out would leave its outcome unknown and the count
/// unverifiable, and a debug build on a shared 2-core machine can be slow.
const CALL_TIMEOUT: Duration = Duration::from_secs(120);

async fn connect(server: &Server, i: usize) -> Client {
    let token = crate::support::token(&format!("user-{i}"), None);
    let options = if i.is_multiple_of(QUIC_EVERY) {
        let fingerprint = server.quic_fingerprint.clone().expect("QUIC fingerprint");
        ConnectOptions::quic(server.quic_addr.expect("QUIC"), "localhost").pin_sha256(fingerprint)
    } else {
        ConnectOptions::websocket(format!("ws://{}/v1/ws", server.http_addr)).codec(Codec::Json)
    };
    Client::connect(options.token(token).request_timeout(CALL_TIMEOUT)).await.expect("connect")
}

#[derive(Default)]
struct Tally {
    booked: Vec<String>,
    refused: usize,
}

async fn attempts(client: Client, event_id: u64) -> Tally {
    let mut tally = Tally::default();
    let args = Payload::from_value(&json!({"eventId": event_id, "seats": 1})).unwrap();
    for _ in 0..ATTEMPTS_PER_CONNECTION {
        match client.call("booking.book", args.clone()).await {
            Ok(reply) => {
                let reply = reply.to_json();
                let left = reply["availableSeats"].as_u64().expect("availableSeats");
                assert!(left < u64::from(SEATS), "{reply}");
                tally.booked.push(reply["bookingId"].as_str().expect("bookingId").to_owned());
            }
            Err(ClientError::Server { code: 2008, message }) => {
                assert!(message.starts_with("not enough seats: 1 requested, 0 available"), "{message}");
                tally.refused += 1;
            }
            Err(other) => panic!("unexpected booking failure: {other}"),
        }
    }
    tally
}

/// The next `count` seat numbers a native watcher sees, checking the created/update pairing.
async fn countdown_native(watcher: &Client, topic: &str) -> Vec<i64> {
    let mut seen = Vec::new();
    for _ in 0..SEATS {
        let mut pair = Vec::new();
        for expected in ["booking_created", "seat_update"] {
            let event = tokio::time::timeout(crate::support::WAIT, watcher.next_event())
                .await
                .expect("event in time")
                .expect("open");
            assert_eq!(event.topic, topic);
            let payload = event.payload.to_json();
            assert_eq!(payload["type"], expected, "{payload}");
            assert!(payload.get("bookingId").is_none() && payload.get("userId").is_none(), "{payload}");
            pair.push(payload["availableSeats"].as_i64().expect("availableSeats"));
        }
        assert_eq!(pair[0], pair[1], "created and update carry the same count");
        seen.push(pair[0]);
    }
    seen
}

async fn countdown_seed(watcher: &mut SeedWs) -> Vec<i64> {
    let mut seen = Vec::new();
    for _ in 0..SEATS {
        let created = watcher.next().await;
        let update = watcher.next().await;
        assert_eq!((created["type"].as_str(), update["type"].as_str()), (Some("booking_created"), Some("seat_update")));
        assert_eq!(created["availableSeats"], update["availableSeats"]);
        seen.push(update["availableSeats"].as_i64().expect("availableSeats"));
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_concurrent_attempts_book_exactly_the_capacity() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path()).await;
    let org = Rest::new(&server, "olga", Some("organizer"));
    let id = org.event("Hot tickets", SEATS).await;
    let marker_event = org.event("Marker", 1).await;
    let topic = format!("booking/event/{id}");

    let watcher = native_ws(&server, "watcher", None).await;
    watcher.subscribe(&topic).await.unwrap();
    watcher.subscribe(&format!("booking/event/{marker_event}")).await.unwrap();
    let mut seed_watcher = SeedWs::general(&server, "seed-watcher", None).await;
    assert_eq!(seed_watcher.subscribe(id).await.1["availableSeats"], SEATS);

    let mut clients = Vec::with_capacity(CONNECTIONS);
    for i in 0..CONNECTIONS {
        clients.push(connect(&server, i).await);
    }
    let started = std::time::Instant::now();
    let tasks: Vec<_> = clients.into_iter().map(|c| tokio::spawn(attempts(c, id))).collect();
    let mut booked = Vec::new();
    let mut refused = 0;
    for task in tasks {
        let tally = task.await.expect("attempt task");
        booked.extend(tally.booked);
        refused += tally.refused;
    }
    let elapsed = started.elapsed();
    println!("{} attempts in {elapsed:?}", CONNECTIONS * ATTEMPTS_PER_CONNECTION);

    assert_eq!(booked.len(), SEATS as usize, "exactly the capacity is booked");
    assert_eq!(refused, CONNECTIONS * ATTEMPTS_PER_CONNECTION - SEATS as usize);
    assert_eq!(booked.iter().collect::<HashSet<_>>().len(), booked.len(), "booking ids are unique");

    // Every broadcast, in order: 99, 98, ..., 0 — never negative, never out of order.
    let expected: Vec<i64> = (0..i64::from(SEATS)).rev().collect();
    assert_eq!(countdown_native(&watcher, &topic).await, expected);
    assert_eq!(countdown_seed(&mut seed_watcher).await, expected);
    // Nothing after the countdown: the next event the native watcher sees is the marker's.
    assert_eq!(org.book(marker_event, 1, None).await.status, 201);
    let marker = tokio::time::timeout(crate::support::WAIT, watcher.next_event()).await.unwrap().unwrap();
    assert_eq!(marker.topic, format!("booking/event/{marker_event}"));
    assert_eq!(seed_watcher.ping().await["type"], "pong");

    assert_eq!(org.get_event(id).await.body["availableSeats"], 0);

    // The store: exactly 100 bookings of the event, all confirmed, one seat each; nothing pending.
    let store = server.node().store.clone();
    let page = store.scan("booking_event_bookings", &id.to_string(), &Scan::all(1000)).await.unwrap();
    assert!(page.next.is_none());
    let stored: HashSet<String> =
        page.rows.iter().map(|r| ClusteringKeyReader::new(&r.ck).string().expect("booking id key")).collect();
    assert_eq!(stored, booked.iter().cloned().collect::<HashSet<_>>());
    for booking_id in &stored {
        let raw = store.get("booking_bookings", booking_id, b"record").await.unwrap().expect("booking row");
        let record: Value = rmp_serde::from_slice(&raw).unwrap();
        assert_eq!((record["status"].as_str(), record["seats"].as_u64()), (Some("confirmed"), Some(1)), "{record}");
    }
    let raw = store.get("booking_events", &id.to_string(), b"seats").await.unwrap().expect("seats row");
    let seats: Value = rmp_serde::from_slice(&raw).unwrap();
    assert_eq!(seats["available"], 0);
    let version = seats["version"].as_u64().expect("version");
    assert!((1..=u64::from(SEATS)).contains(&version), "one write per batch of bookings: {version}");
    // Records of finished bookings are cleared by the event's next write; any still there is finished.
    for pending in seats["pending"].as_array().expect("pending list") {
        assert!(stored.contains(pending["booking_id"].as_str().expect("booking id")), "unfinished: {pending}");
    }
    stop(server).await;
}
