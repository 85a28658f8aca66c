//! The native protocol on a real broker: participants on WebSocket and QUIC see each other's changes in
//! `session-update`, totals stay exact under 1,000 concurrent votes, and sessions expire after 24 hours
//! of a controlled clock.

use crate::support::{call, next, next_update, server_error, start, start_with_clock};
use chorus_client::{Client, Payload};
use chorus_core::store::ManualClock;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

/// 2026-01-22T12:00:00.000Z, the seed's example `createdAt`.
const SEED_TIME_MS: u64 = 1_769_083_200_000;

fn votes(data: &Value) -> Vec<u64> {
    data["movies"].as_array().expect("movies").iter().map(|m| m["votes"].as_u64().expect("votes")).collect()
}

#[tokio::test]
async fn participants_on_two_transports_share_one_live_session() {
    let broker = start(&[]).await;
    let ann = broker.ws("ann").await;
    let bob = broker.quic("bob").await;

    let created = call(&ann, "create", json!({})).await.expect("create");
    let id = created["sessionID"].as_str().expect("sessionID").to_owned();
    assert_eq!(created["message"], "Session created successfully");
    let topic = format!("movies/session/{id}");

    let missing = server_error(ann.subscribe("movies/session/999999").await.expect_err("unknown session"));
    assert_eq!(missing, (2007, "Session not found or has expired".to_owned()));
    let reply = ann.subscribe(&topic).await.expect("subscribe");
    let snapshot = reply.snapshot.expect("snapshot").to_json();
    assert_eq!(snapshot["event"], "joined-session");
    assert_eq!(snapshot["data"]["sessionID"], json!(id));
    assert_eq!(snapshot["data"]["sessionData"]["movies"], json!([]));
    bob.subscribe(&topic).await.expect("subscribe over QUIC");

    let joined = call(&ann, "join", json!({ "sessionID": id })).await.expect("join");
    assert_eq!(joined["sessionData"]["participants"], json!(["Ann"]));
    assert_eq!(next_update(&bob).await["participants"], json!(["Ann"]));
    assert_eq!(next_update(&ann).await["participants"], json!(["Ann"]));
    call(&bob, "join", json!({ "sessionID": id, "name": "Bobby" })).await.expect("join");
    assert_eq!(next_update(&ann).await["participants"], json!(["Ann", "Bobby"]));
    next_update(&bob).await;

    let added = call(&ann, "addMovie", json!({ "sessionID": id, "title": "Heat" })).await.expect("add");
    assert_eq!(added["movie"], json!({ "id": 1, "title": "Heat", "votes": 0 }));
    assert_eq!(next_update(&bob).await["movies"], json!([{ "id": 1, "title": "Heat", "votes": 0 }]));
    next_update(&ann).await;
    call(&bob, "vote", json!({ "sessionID": id, "movieId": 1 })).await.expect("vote");
    assert_eq!(next_update(&ann).await["movies"], json!([{ "id": 1, "title": "Heat", "votes": 1 }]));
    next_update(&bob).await;

    let dup = call(&bob, "addMovie", json!({ "sessionID": id, "title": " heat" })).await.expect_err("duplicate");
    assert_eq!(server_error(dup), (2008, "A movie with this title is already in the session".to_owned()));
    let twice = call(&bob, "vote", json!({ "sessionID": id, "movieId": 1 })).await.expect_err("second vote");
    assert_eq!(server_error(twice), (2008, "You already voted for this movie".to_owned()));
    let rejoin = call(&ann, "join", json!({ "sessionID": id, "name": "Again" })).await.expect("rejoin");
    assert_eq!(rejoin["sessionData"]["participants"], json!(["Ann", "Bobby"]));
    let refused = ann.publish(&topic, Payload::from_value(&json!({ "movies": [] })).expect("payload")).await;
    assert_eq!(server_error(refused.expect_err("module topic")).0, 2005);
    let unknown = call(&ann, "nothing", json!({})).await.expect_err("unknown method");
    assert_eq!(server_error(unknown).0, 2006);

    // The next event each sees is the unvote: refusals, rejoins and publishes sent nothing.
    call(&bob, "unvote", json!({ "sessionID": id, "movieId": 1 })).await.expect("unvote");
    assert_eq!(votes(&next_update(&ann).await), vec![0]);
    assert_eq!(votes(&next_update(&bob).await), vec![0]);
}

/// Reads updates until every movie shows `expected` votes; checks each update on the way is a state the
/// session really went through (no total above the final one, sequence numbers without gaps).
async fn until_totals(client: &Client, expected: u64, movies: usize) -> Value {
    let mut last_seq = None;
    loop {
        let (event, json) = next(client).await;
        if let Some(seq) = last_seq {
            assert_eq!(event.seq, seq + 1, "no update missed");
        }
        last_seq = Some(event.seq);
        assert_eq!(json["event"], "session-update");
        let totals = votes(&json["data"]);
        assert!(totals.iter().all(|v| *v <= expected), "{totals:?}");
        if totals.len() == movies && totals.iter().all(|v| *v == expected) {
            return json["data"].clone();
        }
    }
}

#[tokio::test]
async fn a_thousand_concurrent_votes_over_websocket_and_quic_are_counted_exactly() {
    const VOTERS_PER_TRANSPORT: usize = 10;
    const MOVIES: u64 = 50;
    let broker = start(&[]).await;
    let mut voters = Vec::new();
    for i in 0..VOTERS_PER_TRANSPORT {
        voters.push(Arc::new(broker.ws(&format!("ws{i}")).await));
        voters.push(Arc::new(broker.quic(&format!("quic{i}")).await));
    }
    let host = voters[0].clone();
    let id = call(&host, "create", json!({})).await.expect("create")["sessionID"].as_str().expect("id").to_owned();
    for voter in &voters {
        call(voter, "join", json!({ "sessionID": id })).await.expect("join");
    }
    for m in 1..=MOVIES {
        call(&host, "addMovie", json!({ "sessionID": id, "title": format!("Movie {m}") })).await.expect("add");
    }
    // One observer per transport, subscribed before the votes.
    let topic = format!("movies/session/{id}");
    let (ws_observer, quic_observer) = (voters[0].clone(), voters[1].clone());
    ws_observer.subscribe(&topic).await.expect("subscribe");
    quic_observer.subscribe(&topic).await.expect("subscribe");
    let expected = u64::try_from(voters.len()).expect("count");
    let watchers = [ws_observer, quic_observer].map(|observer| {
        tokio::spawn(async move { until_totals(&observer, expected, usize::try_from(MOVIES).expect("count")).await })
    });

    // 20 participants × 50 movies = 1,000 votes, all in flight at once, plus a repeated vote each.
    let mut tasks = tokio::task::JoinSet::new();
    for voter in &voters {
        for m in std::iter::once(1).chain(1..=MOVIES) {
            let (voter, id) = (voter.clone(), id.clone());
            tasks.spawn(async move { call(&voter, "vote", json!({ "sessionID": id, "movieId": m })).await });
        }
    }
    let (mut accepted, mut repeats) = (0, 0);
    while let Some(result) = tasks.join_next().await {
        match result.expect("vote task") {
            Ok(_) => accepted += 1,
            Err(e) => {
                assert_eq!(server_error(e), (2008, "You already voted for this movie".to_owned()));
                repeats += 1;
            }
        }
    }
    assert_eq!((accepted, repeats), (1000, 20), "every first vote counted, every repeat refused");

    for watcher in watchers {
        let data = watcher.await.expect("observer");
        assert_eq!(votes(&data), vec![expected; 50]);
    }
    let (_, joined) = broker.join(&id).await;
    assert_eq!(votes(&joined["sessionData"]), vec![expected; 50]);
}

#[tokio::test]
async fn sessions_expire_after_24_hours_for_rest_and_realtime() {
    let clock = Arc::new(ManualClock::new(SEED_TIME_MS));
    let broker = start_with_clock(clock.clone()).await;
    let id = broker.create().await;
    let (status, joined) = broker.join(&id).await;
    assert_eq!(status, 200);
    assert_eq!(joined["sessionData"]["createdAt"], "2026-01-22T12:00:00.000Z");

    let ann = broker.ws("ann").await;
    let topic = format!("movies/session/{id}");
    ann.subscribe(&topic).await.expect("subscribe");
    call(&ann, "join", json!({ "sessionID": id })).await.expect("join");
    next_update(&ann).await;

    clock.advance(Duration::from_secs(86_400) - Duration::from_millis(1));
    assert_eq!(broker.join(&id).await.0, 200, "alive until the last millisecond");
    clock.advance(Duration::from_millis(1));
    // Nobody asks for the session: the expiry sweep notices and tells its subscribers.
    let (_, closing) = next(&ann).await;
    assert_eq!(
        closing,
        json!({ "event": "session-expired", "data": { "sessionID": id, "message": "Session not found or has expired" } })
    );
    let gone = json!({ "message": "Session not found or has expired" });
    assert_eq!(broker.join(&id).await, (404, gone));
    let again = server_error(broker.ws("bob").await.subscribe(&topic).await.expect_err("expired"));
    assert_eq!(again, (2007, "Session not found or has expired".to_owned()));
    let vote = call(&ann, "vote", json!({ "sessionID": id, "movieId": 1 })).await.expect_err("expired");
    assert_eq!(server_error(vote), (2007, "Session not found or has expired".to_owned()));
    let store = broker.server.node().store.clone();
    assert_eq!(store.get("movie_sessions", &id, b"meta").await.expect("get"), None, "the store row expired too");
}
