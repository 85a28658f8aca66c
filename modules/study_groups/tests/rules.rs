//! The rules: illegal transitions, role refusals and bad input are refused with a coded error (REST
//! status with a JSON `message`, native error code) and publish nothing.

use crate::support::{Answer, Rest, call, http, join, native_ws, next, start, stop};
use serde_json::{Value, json};

fn refused(answer: &Answer, status: u16) {
    assert_eq!(answer.status, status, "{answer:?}");
    assert!(answer.body["message"].as_str().is_some_and(|m| !m.is_empty()), "{answer:?}");
}

#[tokio::test]
async fn illegal_transitions_and_role_refusals_publish_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path()).await;
    let fac = Rest::new(&server, "fay");
    let ann = Rest::new(&server, "ann");
    let id = fac.session("g1", 2, "sam").await;
    let watcher = native_ws(&server, "wes").await;
    join(&watcher, &id).await;
    assert_eq!(next(&watcher, &id).await.0, "userJoined");

    // Before the start: nothing moves, nothing is accepted.
    refused(&fac.advance(&id, 1, None).await, 409);
    refused(&ann.event(&id, "PI_VOTE_SUBMIT", Value::Null).await, 409);
    refused(&fac.end(&id).await, 409);
    refused(&ann.start(&id).await, 403);
    assert_eq!(fac.start(&id).await.status, 200);
    assert_eq!(next(&watcher, &id).await.0, "session.started", "the refusals published nothing");
    refused(&fac.start(&id).await, 409);

    // Rounds move only in the seed's order, one step at a time, and round 2 waits for round 1.
    refused(&fac.advance(&id, 1, Some("DISCUSSING")).await, 409);
    refused(&fac.advance(&id, 2, None).await, 409);
    refused(&fac.advance(&id, 3, None).await, 404);
    refused(&fac.advance(&id, 0, None).await, 422);
    refused(&fac.advance(&id, 1, Some("SOMEDAY")).await, 422);
    refused(&ann.advance(&id, 1, None).await, 403);
    refused(&ann.prompt(&id, 1, "mine?").await, 403);
    refused(&fac.prompt(&id, 1, "   ").await, 422);
    assert_eq!(fac.advance(&id, 1, Some("VOTING")).await.status, 200);
    assert_eq!(next(&watcher, &id).await.1["status"], "VOTING");

    // Activity only in its phase; a vote once; a revote only by voters; the card only by the scribe.
    refused(&ann.event(&id, "PI_REVOTE_SUBMIT", Value::Null).await, 409);
    refused(&ann.event(&id, "GROUP_EXPLANATION_SUBMIT", Value::Null).await, 409);
    refused(&ann.event(&id, "PI_GUESS", Value::Null).await, 422);
    assert_eq!(ann.event(&id, "PI_VOTE_SUBMIT", json!("A")).await.status, 201);
    assert_eq!(next(&watcher, &id).await.0, "vote.submitted");
    refused(&ann.event(&id, "PI_VOTE_SUBMIT", json!("B")).await, 409);
    fac.advance_times(&id, 1, 2).await;
    assert_eq!(next(&watcher, &id).await.1["status"], "DISCUSSING");
    assert_eq!(next(&watcher, &id).await.1["status"], "REVOTING");
    refused(&ann.event(&id, "PI_VOTE_SUBMIT", json!("B")).await, 409);
    refused(&Rest::new(&server, "bob").event(&id, "PI_REVOTE_SUBMIT", json!("B")).await, 403);
    assert_eq!(ann.event(&id, "PI_REVOTE_SUBMIT", json!("B")).await.status, 201);
    assert_eq!(next(&watcher, &id).await.0, "revote.submitted");
    refused(&ann.event(&id, "PI_REVOTE_SUBMIT", json!("C")).await, 409);
    fac.advance_times(&id, 1, 1).await;
    assert_eq!(next(&watcher, &id).await.1["status"], "EXPLAINING");
    refused(&ann.event(&id, "GROUP_EXPLANATION_SUBMIT", json!("x")).await, 403);
    let sam = Rest::new(&server, "sam");
    assert_eq!(sam.event(&id, "GROUP_EXPLANATION_SUBMIT", json!("x")).await.status, 201);
    assert_eq!(next(&watcher, &id).await.0, "sharedCard.created");
    refused(&sam.event(&id, "GROUP_EXPLANATION_SUBMIT", json!("y")).await, 409);
    let big = json!({ "text": "x".repeat(9000) });
    refused(&sam.event(&id, "GROUP_EXPLANATION_SUBMIT", big).await, 422);

    // Chat: trimmed, non-empty, bounded, in the session's own group.
    refused(&ann.chat("g1", &id, " \n ").await, 422);
    refused(&ann.chat("g1", &id, &"x".repeat(2001)).await, 422);
    refused(&ann.chat("other", &id, "hi").await, 404);
    refused(&ann.send("POST", &format!("/groups/g1/sessions/{id}/chat"), Some(json!({"message": 5}))).await, 422);
    refused(&http(server.http_addr, "POST", &format!("/groups/g1/sessions/{id}/chat"), None, Some("{")).await, 401);
    refused(&http(server.http_addr, "GET", &format!("/group-sessions/{id}"), Some("not-a-jwt"), None).await, 401);
    refused(&ann.send("POST", &format!("/groups/g1/sessions/{id}/chat"), None).await, 422);
    let malformed =
        http(server.http_addr, "POST", &format!("/groups/g1/sessions/{id}/chat"), Some(&ann.token), Some("{")).await;
    refused(&malformed, 422);
    refused(&ann.view("no-such-session").await, 404);
    refused(&ann.view("bad%2Fid").await, 422);

    // The same rules over native calls, as codes.
    let code = |r: Result<Value, (u16, String)>| r.expect_err("refused").0;
    assert_eq!(code(call(&watcher, "study.startSession", json!({"sessionId": id})).await), 2005);
    assert_eq!(code(call(&watcher, "study.getSession", json!({"sessionId": "nope"})).await), 2007);
    assert_eq!(code(call(&watcher, "study.sendChat", json!({"groupId": "g1", "sessionId": id})).await), 2009);
    assert_eq!(code(call(&watcher, "study.getSession", json!([1])).await), 2009);
    assert_eq!(code(call(&watcher, "study.fly", json!({})).await), 2006);
    let done_card = json!({"sessionId": id, "eventType": "GROUP_EXPLANATION_SUBMIT"});
    assert_eq!(code(call(&watcher, "study.submitEvent", done_card).await), 2005);
    fac.advance_times(&id, 1, 1).await;
    assert_eq!(next(&watcher, &id).await.1["status"], "DONE");
    refused(&fac.advance(&id, 1, None).await, 409);
    refused(&fac.prompt(&id, 1, "too late").await, 409);
    assert!(watcher.subscribe("study/session/nope").await.is_err(), "an unknown session cannot be joined");

    assert_eq!(fac.end(&id).await.status, 200);
    assert_eq!(next(&watcher, &id).await.0, "session.ended", "every refusal above published nothing");
    refused(&ann.chat("g1", &id, "after the end").await, 409);
    refused(&fac.advance(&id, 2, None).await, 409);
    refused(&fac.end(&id).await, 409);
    stop(server).await;
}
