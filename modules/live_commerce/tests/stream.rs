//! The stream lifecycle: `stream-started` / `stream-ended`, what ending persists and closes, and a
//! graceful restart in the middle of a stream losing no counted reaction.

use crate::support::{START_MS, User, at, call, expect, join, native_ws, rows, start, stop, token};
use serde_json::{Value, json};
use std::time::Duration;

#[tokio::test]
async fn starting_and_ending_the_stream() {
    let dir = tempfile::tempdir().unwrap();
    let (server, clock) = start(dir.path()).await;
    let creator = User::new(&server, "1", "Cleo");
    let session = creator.session("Show", &[]).await;
    let viewer = native_ws(&server, Some(&token("2", "Ann", None))).await;
    join(&viewer, &session).await;
    expect(&viewer, "viewer-count").await;

    // Only the owner starts it.
    let stranger = User::new(&server, "9", "Zed");
    let refused = stranger.call("POST", &format!("/api/sessions/{session}/start-stream"), None).await;
    assert_eq!(
        (refused.status, refused.body.clone()),
        (403, json!({"success": false, "message": "Only the session owner can change its status"}))
    );
    let anonymous =
        crate::support::http(server.http_addr, "POST", &format!("/api/sessions/{session}/start-stream"), None, None)
            .await;
    assert_eq!((anonymous.status, anonymous.body["message"].clone()), (401, json!("Access token required")));

    clock.advance(Duration::from_secs(60));
    let started = creator.start_stream(&session).await;
    assert_eq!(
        started.body,
        json!({"success": true, "message": "Stream started successfully", "data": {
            "sessionId": session, "channelName": session, "uid": 1, "role": "publisher",
            "status": "live", "startedAt": at(60_000), "token": null, "appId": null, "expiresAt": null
        }})
    );
    assert_eq!(
        expect(&viewer, "stream-started").await,
        json!({"sessionId": session, "channelName": session, "status": "live", "startedAt": at(60_000)})
    );
    for kind in ["heart", "heart", "like"] {
        call(&viewer, "commerce.send-reaction", json!({"sessionId": session, "type": kind})).await.unwrap();
    }

    clock.advance(Duration::from_secs(90));
    let ended = creator.end_stream(&session).await;
    assert_eq!(
        ended.body,
        json!({"success": true, "message": "Stream ended successfully", "data": {"sessionId": session, "status": "ended", "endedAt": at(150_000)}})
    );
    // The viewer's view is closed (count 0), then the end is announced.
    let mut rest = Vec::new();
    loop {
        let (event, data) = crate::support::next(&viewer).await;
        if event == "stream-ended" {
            assert_eq!(data, json!({"sessionId": session, "status": "ended", "endedAt": at(150_000)}));
            break;
        }
        rest.push((event, data));
    }
    assert_eq!(rest.last(), Some(&("viewer-count".to_owned(), json!(0))));

    // Persisted: the totals and the closed view (joined at the start, left at the end: 150 s).
    assert_eq!(rows(&server, "commerce_reactions", &session).await, [json!({"heart": 2, "like": 1})]);
    let views = rows(&server, "commerce_views", &session).await;
    assert_eq!((views[0]["left_ms"].clone(), views[0]["watch_secs"].clone()), (json!(START_MS + 150_000), json!(150)));
    let reactions = creator.call("GET", &format!("/api/sessions/{session}/reactions"), None).await;
    assert_eq!(reactions.body["data"]["sessionStatus"], "ended");
    assert_eq!(reactions.body["data"]["isLive"], false);
    assert_eq!(reactions.body["data"]["reactions"], json!({"heart": 2, "like": 1}));
    assert_eq!(reactions.body["data"]["total"], 3);

    // Ended is final: no reactions, no going back, no second end.
    let late = call(&viewer, "commerce.send-reaction", json!({"sessionId": session, "type": "heart"})).await;
    assert_eq!(late.map_err(|(c, _)| c), Err(2009));
    let back = creator.call("PATCH", &format!("/api/sessions/{session}/status"), Some(json!({"status": "live"}))).await;
    assert_eq!((back.status, back.body["message"].clone()), (409, json!("Session has already ended")));
    let again = creator.call("POST", &format!("/api/sessions/{session}/end-stream"), None).await;
    assert_eq!(again.status, 409);
    let session_view = creator.call("GET", &format!("/api/sessions/{session}"), None).await;
    assert_eq!(session_view.body["data"]["status"], "ended");
    assert_eq!(session_view.body["data"]["startedAt"], at(60_000));
    assert_eq!(session_view.body["data"]["endedAt"], at(150_000));
    stop(server).await;
}

#[tokio::test]
async fn a_graceful_restart_mid_stream_loses_no_counted_reaction() {
    let dir = tempfile::tempdir().unwrap();
    let (server, _clock) = start(dir.path()).await;
    let creator = User::new(&server, "1", "Cleo");
    let session = creator.session("Show", &[]).await;
    creator.start_stream(&session).await;
    let viewers = [native_ws(&server, None).await, native_ws(&server, Some(&token("2", "Ann", None))).await];
    join(&viewers[0], &session).await;
    // The second connection reacts without joining: its counts must survive too.
    for i in 0..30 {
        let kind = if i % 3 == 0 { "fire" } else { "heart" };
        call(&viewers[i % 2], "commerce.send-reaction", json!({"sessionId": session, "type": kind})).await.unwrap();
    }
    stop(server).await;

    let (server, _clock) = start(dir.path()).await;
    let creator = User::new(&server, "1", "Cleo");
    let report = creator.call("GET", &format!("/api/sessions/{session}/reactions"), None).await;
    assert_eq!(report.body["data"]["reactions"], json!({"fire": 10, "heart": 20}));
    assert_eq!(report.body["data"]["isLive"], true);
    // Counting goes on from there.
    let viewer = native_ws(&server, None).await;
    join(&viewer, &session).await;
    let stats = call(&viewer, "commerce.send-reaction", json!({"sessionId": session, "type": "fire"})).await.unwrap();
    assert_eq!(stats, json!({"sessionId": session, "counts": {"fire": 11, "heart": 20}, "total": 31}));
    let value: Value = rows(&server, "commerce_reactions", &session).await.remove(0);
    assert_eq!(value, json!({"fire": 10, "heart": 20}));
    stop(server).await;
}
