//! Reactions and chat over native clients: every field of `new-reaction`, `reaction-stats` and
//! `new-message`, the refusals, the per-connection rate limit, moderator deletes.

use crate::support::{
    START_MS, User, at, call, expect, join, native_quic, native_ws, next, rows, start, start_with, stop, token,
};
use chorus_core::protocol::Payload;
use chorus_live_commerce::Settings;
use futures_util::future::join_all;
use serde_json::json;
use std::time::Duration;

#[tokio::test]
async fn reactions_publish_each_reaction_and_the_totals() {
    let dir = tempfile::tempdir().unwrap();
    let (server, clock) = start(dir.path()).await;
    let creator = User::new(&server, "1", "Cleo");
    let session = creator.session("Show", &[]).await;
    let viewer = native_ws(&server, Some(&token("2", "Ann", None))).await;
    let other = native_quic(&server, &token("3", "Bob", None)).await;
    join(&viewer, &session).await;
    join(&other, &session).await;
    assert_eq!(expect(&viewer, "viewer-count").await, json!(1));
    assert_eq!(expect(&viewer, "viewer-count").await, json!(2));
    assert_eq!(expect(&other, "viewer-count").await, json!(2));

    // Not live yet: refused with a code, nothing published.
    let refused = call(&viewer, "commerce.send-reaction", json!({"sessionId": session, "type": "heart"})).await;
    assert_eq!(refused, Err((2009, "Reactions are accepted only while the session is live".into())));
    creator.start_stream(&session).await;
    assert_eq!(expect(&viewer, "stream-started").await["status"], "live");
    assert_eq!(expect(&other, "stream-started").await["status"], "live");

    clock.advance(Duration::from_millis(1500));
    let stats = call(&viewer, "commerce.send-reaction", json!({"sessionId": session, "type": "heart"})).await.unwrap();
    let expected = json!({"sessionId": session, "counts": {"heart": 1}, "total": 1});
    assert_eq!(stats, expected);
    for client in [&viewer, &other] {
        assert_eq!(expect(client, "new-reaction").await, json!({"type": "heart", "timestamp": at(1500)}));
        assert_eq!(expect(client, "reaction-stats").await, expected);
    }
    call(&other, "commerce.send-reaction", json!({"sessionId": session, "type": "fire"})).await.unwrap();
    call(&other, "commerce.send-reaction", json!({"sessionId": session, "type": "heart"})).await.unwrap();
    // Reactions less than 50 ms after a `reaction-stats` are in the next one: whether the fire gets its own
    // depends on the machine's speed, the heart's totals come either way, and both are animated.
    let mut animated = Vec::new();
    loop {
        let (event, data) = next(&viewer).await;
        match (event.as_str(), data["total"].as_u64()) {
            ("new-reaction", _) => animated.push(data["type"].clone()),
            ("reaction-stats", Some(2)) => {
                assert_eq!(data, json!({"sessionId": session, "counts": {"fire": 1, "heart": 1}, "total": 2}))
            }
            ("reaction-stats", _) => {
                assert_eq!(data, json!({"sessionId": session, "counts": {"fire": 1, "heart": 2}, "total": 3}));
                break;
            }
            _ => panic!("unexpected {event} {data}"),
        }
    }
    assert_eq!(animated, [json!("fire"), json!("heart")]);

    // Bad input gets a coded error.
    let bad = call(&viewer, "commerce.send-reaction", json!({"sessionId": session, "type": "no spaces"})).await;
    assert_eq!(bad.map_err(|(code, _)| code), Err(2009));
    let bad = call(&viewer, "commerce.send-reaction", json!({"type": "heart"})).await;
    assert_eq!(bad, Err((2009, "sessionId is required".into())));
    let bad = call(&viewer, "commerce.send-reaction", json!("heart")).await;
    assert_eq!(bad, Err((2009, "send-reaction takes an object of arguments".into())));
    let unknown = call(
        &viewer,
        "commerce.send-reaction",
        json!({"sessionId": "019ae3c1-2f00-7000-8000-000000000001", "type": "x"}),
    )
    .await;
    assert_eq!(unknown, Err((2007, "Session not found".into())));
    let unknown = call(&viewer, "commerce.dance", json!({})).await;
    assert_eq!(unknown.map_err(|(code, _)| code), Err(2006));

    // The REST view of the live counts.
    let live = creator.call("GET", &format!("/api/sessions/{session}/reactions"), None).await;
    assert_eq!(
        live.body,
        json!({"success": true, "data": {
            "sessionId": session, "sessionStatus": "live", "isLive": true,
            "reactions": {"fire": 1, "heart": 2},
            "sortedReactions": [{"type": "heart", "count": 2}, {"type": "fire", "count": 1}],
            "total": 3
        }})
    );
    assert!(rows(&server, "commerce_reactions", &session).await.is_empty(), "no store write per reaction");
    stop(server).await;
}

/// Reactions sent without asking for an answer (the seed's client shape; the hot path) are counted and
/// told like the others; a refused one gets an `error` without id, and the connection stays open.
#[tokio::test]
async fn reactions_without_an_answer_are_counted_and_refusals_still_reported() {
    let dir = tempfile::tempdir().unwrap();
    let (server, _clock) = start(dir.path()).await;
    let creator = User::new(&server, "1", "Cleo");
    let session = creator.session("Show", &[]).await;
    creator.start_stream(&session).await;
    let viewer = native_ws(&server, Some(&token("2", "Ann", None))).await;
    join(&viewer, &session).await;
    assert_eq!(expect(&viewer, "viewer-count").await, json!(1));
    let sender = native_quic(&server, &token("3", "Bob", None)).await;

    let cast = |args: serde_json::Value| {
        let args = Payload::from_value(&args).unwrap();
        async { sender.call_nowait("commerce.send-reaction", args).await.unwrap() }
    };
    cast(json!({"sessionId": session, "type": "fire"})).await;
    assert_eq!(expect(&viewer, "new-reaction").await["type"], "fire");
    assert_eq!(
        expect(&viewer, "reaction-stats").await,
        json!({"sessionId": session, "counts": {"fire": 1}, "total": 1})
    );
    cast(json!({"sessionId": session, "type": "no spaces"})).await;
    cast(json!({"type": "heart"})).await;
    cast(json!({"sessionId": session, "type": "like"})).await;
    // Calls of a connection run in order: once this one is answered, the ones before it were taken.
    let stats = call(&sender, "commerce.send-reaction", json!({"sessionId": session, "type": "like"})).await;
    assert_eq!(stats.unwrap(), json!({"sessionId": session, "counts": {"fire": 1, "like": 2}, "total": 3}));
    let errors: Vec<_> = sender.take_errors().into_iter().map(|e| (e.id, e.code, e.message)).collect();
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert_eq!((errors[0].0, errors[0].1), (None, 2009), "{errors:?}");
    assert_eq!(errors[1], (None, 2009, "sessionId is required".to_owned()));
    stop(server).await;
}

/// A burst of reactions is told in paced broadcasts: `reaction-stats` at most once per 50 ms (the last
/// with every reaction counted), `new-reaction` at most 10 per 50 ms; each sender's reply still carries
/// the totals its reaction made.
#[tokio::test]
async fn a_burst_of_reactions_is_told_in_paced_broadcasts() {
    const SENDERS: usize = 4;
    const EACH: u64 = 150;
    let dir = tempfile::tempdir().unwrap();
    let (server, _clock) =
        start_with(dir.path(), Settings { interactions_per_sec: 100_000, ..Settings::default() }).await;
    let creator = User::new(&server, "1", "Cleo");
    let session = creator.session("Show", &[]).await;
    creator.start_stream(&session).await;
    let viewer = native_ws(&server, Some(&token("2", "Ann", None))).await;
    join(&viewer, &session).await;
    assert_eq!(expect(&viewer, "viewer-count").await, json!(1));
    let mut senders = Vec::new();
    for i in 0..SENDERS {
        senders.push(native_ws(&server, Some(&token(&format!("s{i}"), "Sender", None))).await);
    }

    let began = std::time::Instant::now();
    let react = json!({"sessionId": session, "type": "like"});
    let bursts = senders.iter().map(|sender| async {
        let calls = (0..EACH).map(|_| call(sender, "commerce.send-reaction", react.clone()));
        join_all(calls)
            .await
            .into_iter()
            .map(|reply| reply.expect("reaction taken")["total"].as_u64().unwrap())
            .collect::<Vec<_>>()
    });
    let mut totals: Vec<u64> = join_all(bursts).await.into_iter().flatten().collect();
    totals.sort_unstable();
    let all = SENDERS as u64 * EACH;
    assert_eq!(totals, (1..=all).collect::<Vec<_>>(), "each reply has the totals its reaction made");

    let (mut stats, mut animations, mut last) = (0u64, 0u64, 0u64);
    while last < all {
        let (event, data) = next(&viewer).await;
        match event.as_str() {
            "new-reaction" => animations += 1,
            "reaction-stats" => {
                let total = data["total"].as_u64().unwrap();
                assert!(total > last, "totals only grow: {total} after {last}");
                assert_eq!(data["counts"], json!({"like": total}));
                (stats, last) = (stats + 1, total);
            }
            _ => panic!("unexpected {event} {data}"),
        }
    }
    // The server's broadcasts all fall between `began` and now: at most one per 50 ms of that, plus the
    // first and a trailing one.
    let windows = (began.elapsed().as_millis() / 50) as u64 + 2;
    println!("{all} reactions told in {stats} reaction-stats and {animations} new-reaction over {:?}", began.elapsed());
    assert!(stats <= windows, "{stats} reaction-stats in {windows} windows");
    assert!(animations <= windows * 10, "{animations} new-reaction in {windows} windows");
    stop(server).await;
}

#[tokio::test]
async fn one_connection_cannot_flood_a_room() {
    let dir = tempfile::tempdir().unwrap();
    let (server, _clock) =
        start_with(dir.path(), Settings { interactions_per_sec: 5, messages_per_sec: 2, ..Settings::default() }).await;
    let creator = User::new(&server, "1", "Cleo");
    let session = creator.session("Show", &[]).await;
    creator.start_stream(&session).await;
    let flooder = native_ws(&server, None).await;
    let calm = native_ws(&server, None).await;
    let react = json!({"sessionId": session, "type": "like"});
    let mut refused = 0;
    for _ in 0..20 {
        match call(&flooder, "commerce.send-reaction", react.clone()).await {
            Ok(_) => {}
            Err((code, message)) => {
                assert_eq!((code, message.as_str()), (2004, "Too many reactions or clicks: at most 5 per second"));
                refused += 1;
            }
        }
    }
    assert!(refused >= 14, "{refused} of 20 refused");
    // Another connection is not affected.
    assert!(call(&calm, "commerce.send-reaction", react.clone()).await.is_ok());
    let chat = json!({"sessionId": session, "message": "hi"});
    assert!(call(&flooder, "commerce.send-message", chat.clone()).await.is_ok());
    assert!(call(&flooder, "commerce.send-message", chat.clone()).await.is_ok());
    assert_eq!(call(&flooder, "commerce.send-message", chat).await.map_err(|(c, _)| c), Err(2004));
    stop(server).await;
}

#[tokio::test]
async fn chat_messages_are_checked_stored_published_and_moderated() {
    let dir = tempfile::tempdir().unwrap();
    let (server, clock) = start(dir.path()).await;
    let creator = User::new(&server, "1", "Cleo");
    let session = creator.session("Show", &[]).await;
    let ann = native_ws(&server, Some(&token("2", "Ann", None))).await;
    join(&ann, &session).await;
    expect(&ann, "viewer-count").await;
    clock.advance(Duration::from_secs(2));

    // The identity is the token's, whatever the payload claims.
    let args = json!({"sessionId": session, "message": "  Hello everyone!  ", "userId": 99, "userName": "Mallory"});
    let sent = call(&ann, "commerce.send-message", args).await.unwrap();
    let id = sent["id"].as_str().unwrap().to_owned();
    let expected = json!({
        "id": id, "message": "Hello everyone!", "userId": 2, "userName": "Ann",
        "sessionId": session, "createdAt": at(2000)
    });
    assert_eq!(sent, expected);
    assert_eq!(expect(&ann, "new-message").await, expected);
    let stored = rows(&server, "commerce_chat", &session).await;
    assert_eq!(
        stored,
        [
            json!({"id": id, "session_id": session, "message": "Hello everyone!", "user_id": "2", "user_name": "Ann", "created_ms": START_MS + 2000})
        ]
    );

    // A guest chats as `userId: null` under the name it gives.
    let anon = native_ws(&server, None).await;
    let sent =
        call(&anon, "commerce.send-message", json!({"sessionId": session, "message": "hey", "userName": "Visitor"}))
            .await
            .unwrap();
    assert_eq!((sent["userId"].clone(), sent["userName"].clone()), (json!(null), json!("Visitor")));
    assert_eq!(expect(&ann, "new-message").await["userName"], "Visitor");

    let empty = call(&ann, "commerce.send-message", json!({"sessionId": session, "message": "   "})).await;
    assert_eq!(empty, Err((2009, "Message cannot be empty".into())));
    let long = call(&ann, "commerce.send-message", json!({"sessionId": session, "message": "x".repeat(501)})).await;
    assert_eq!(long, Err((2009, "Message cannot be longer than 500 characters".into())));
    assert!(
        call(&ann, "commerce.send-message", json!({"sessionId": session, "message": "y".repeat(500)})).await.is_ok()
    );
    expect(&ann, "new-message").await;

    // Deleting: not for viewers; for moderators and the owner, broadcast to the room.
    let delete = json!({"sessionId": session, "messageId": id});
    assert_eq!(
        call(&ann, "commerce.delete-message", delete.clone()).await,
        Err((2005, "Only moderators can delete messages".into()))
    );
    let moderator = native_ws(&server, Some(&token("7", "Mo", Some("moderator")))).await;
    let deleted = call(&moderator, "commerce.delete-message", delete.clone()).await.unwrap();
    assert_eq!(deleted, json!({"sessionId": session, "messageId": id}));
    assert_eq!(expect(&ann, "message-deleted").await, json!({"sessionId": session, "messageId": id}));
    assert_eq!(call(&moderator, "commerce.delete-message", delete).await, Err((2007, "Message not found".into())));
    assert_eq!(rows(&server, "commerce_chat", &session).await.len(), 2);
    stop(server).await;
}
