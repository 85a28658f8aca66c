//! The `chorus` binary serves its domain modules: their REST APIs, the seed-004 dialect and their native
//! topics, all on the one port.

use crate::support::*;
use chorus_client::{Client, ClientError, Codec, ConnectOptions, Payload};
use serde_json::{Value, json};

#[tokio::test]
async fn the_binary_serves_the_movie_and_booking_modules() {
    let broker = Broker::start(&[]).await;

    let (status, body) = http_request(broker.http, "POST", "/api/session/create", &[], None).await.unwrap();
    assert_eq!(status, 200, "{body}");
    let created: Value = serde_json::from_str(&body).unwrap();
    let id = created["sessionID"].as_str().unwrap().to_owned();
    assert!(id.len() == 6 && id.bytes().all(|b| b.is_ascii_digit()), "{id}");
    let join = json!({"sessionID": id}).to_string();
    let (status, _) =
        http_request(broker.http, "POST", "/api/session/join", &[("Content-Type", "application/json")], Some(&join))
            .await
            .unwrap();
    assert_eq!(status, 200);
    let native = Client::connect(ConnectOptions::websocket(broker.ws_url("")).codec(Codec::Json)).await.unwrap();
    let reply = native.subscribe(&format!("movies/session/{id}")).await.unwrap();
    assert_eq!(reply.snapshot.unwrap().to_json()["event"], "joined-session");

    let organizer = token(json!({"sub": "org", "role": "organizer"}));
    let auth = format!("Bearer {organizer}");
    let event = json!({"title": "Launch", "seatCapacity": 3}).to_string();
    let headers = [("Authorization", auth.as_str()), ("Content-Type", "application/json")];
    let (status, body) = http_request(broker.http, "POST", "/api/events", &headers, Some(&event)).await.unwrap();
    assert_eq!(status, 201, "{body}");
    let event_id = serde_json::from_str::<Value>(&body).unwrap()["id"].as_u64().unwrap();

    let mut seed =
        tokio_tungstenite::connect_async(format!("ws://{}/ws/events/{event_id}?token={organizer}", broker.http))
            .await
            .unwrap()
            .0;
    let hello = next_json(&mut seed).await;
    assert_eq!((hello["type"].as_str(), hello["eventId"].as_u64()), (Some("connection_established"), Some(event_id)));
    let seats = next_json(&mut seed).await;
    assert_eq!((seats["type"].as_str(), seats["availableSeats"].as_u64()), (Some("seat_update"), Some(3)));

    let booked =
        native.call("booking.book", Payload::from_value(&json!({"eventId": event_id, "seats": 1})).unwrap()).await;
    assert!(matches!(booked, Err(ClientError::Server { code: 2005, .. })), "guests cannot book: {booked:?}");
    let (status, _) = http_request(
        broker.http,
        "POST",
        &format!("/api/events/{event_id}/bookings"),
        &headers,
        Some(r#"{"seats":2}"#),
    )
    .await
    .unwrap();
    assert_eq!(status, 201);
    assert_eq!(next_json(&mut seed).await["type"], "booking_created");
    assert_eq!(next_json(&mut seed).await["availableSeats"], 1);
}

/// Creates a live-commerce session over REST and starts its stream; returns its id.
async fn live_session(broker: &Broker) -> String {
    let creator = token(json!({"sub": "1", "name": "Cleo"}));
    let auth = format!("Bearer {creator}");
    let headers = [("Authorization", auth.as_str()), ("Content-Type", "application/json")];
    let (status, body) =
        http_request(broker.http, "POST", "/api/sessions", &headers, Some(r#"{"title":"Show"}"#)).await.unwrap();
    assert_eq!(status, 201, "{body}");
    let id = serde_json::from_str::<Value>(&body).unwrap()["data"]["id"].as_str().unwrap().to_owned();
    let (status, _) =
        http_request(broker.http, "POST", &format!("/api/sessions/{id}/start-stream"), &headers, None).await.unwrap();
    assert_eq!(status, 200);
    id
}

#[tokio::test]
async fn the_binary_serves_live_commerce() {
    let broker = Broker::start(&[]).await;
    let id = live_session(&broker).await;
    let viewer = Client::connect(ConnectOptions::websocket(broker.ws_url("")).codec(Codec::Json)).await.unwrap();
    let reply = viewer.subscribe(&format!("commerce/session/{id}")).await.unwrap();
    assert_eq!(reply.snapshot.unwrap().to_json(), json!({"event": "viewer-count", "data": 1}));
    let reacted = viewer
        .call("commerce.send-reaction", Payload::from_value(&json!({"sessionId": id, "type": "heart"})).unwrap())
        .await
        .unwrap();
    assert_eq!(reacted.to_json(), json!({"sessionId": id, "counts": {"heart": 1}, "total": 1}));
}

#[tokio::test]
async fn the_commerce_interaction_rate_is_a_flag() {
    let broker = Broker::start(&["--commerce-interaction-rate", "3"]).await;
    let id = live_session(&broker).await;
    let viewer = Client::connect(ConnectOptions::websocket(broker.ws_url("")).codec(Codec::Json)).await.unwrap();
    let react = || {
        viewer.call("commerce.send-reaction", Payload::from_value(&json!({"sessionId": id, "type": "fire"})).unwrap())
    };
    for n in 1..=3 {
        assert_eq!(react().await.unwrap().to_json()["total"], n, "reaction {n} of a burst of 3 passes");
    }
    match react().await {
        Err(ClientError::Server { code: 2004, message }) => {
            assert!(message.contains("at most 3 per second"), "{message}")
        }
        other => panic!("the 4th reaction of the burst must be rate limited: {other:?}"),
    }
}

#[tokio::test]
async fn a_bad_commerce_interaction_rate_is_refused_at_start() {
    let data_dir = tempfile::tempdir().unwrap();
    let refusals = [(vec!["--commerce-interaction-rate", "0"], None), (vec![], Some("lots"))];
    for (args, env) in refusals {
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_chorus"));
        cmd.args(["--listen", "127.0.0.1:0", "--disable-quic", "--data-dir"]).arg(data_dir.path()).args(&args);
        if let Some(value) = env {
            cmd.env("CHORUS_COMMERCE_INTERACTION_RATE", value);
        }
        let out = tokio::time::timeout(std::time::Duration::from_secs(30), cmd.kill_on_drop(true).output())
            .await
            .expect("chorus exits on a bad value")
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} {env:?} must be refused\n{stderr}");
        let source = match env {
            Some(value) => format!("environment variable CHORUS_COMMERCE_INTERACTION_RATE={value:?}"),
            None => "--commerce-interaction-rate \"0\"".to_owned(),
        };
        assert!(stderr.contains(&format!("{source}: invalid value")), "the message names source and value: {stderr}");
        assert!(
            String::from_utf8_lossy(&out.stdout).is_empty(),
            "nothing listened: {}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
}
