//! Persistence on the embedded store: stop the broker, start it again on the same data directory, and
//! find the session, its rounds, votes, shared cards, chat and event log as they were; a client joining
//! again gets that state in its snapshot, and the rules still hold.

use crate::support::{Rest, join, native_ws, next, start, stop};
use serde_json::json;

#[tokio::test]
async fn session_state_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path()).await;
    let fac = Rest::new(&server, "fay");
    let id = fac.session("g1", 2, "sam").await;
    assert_eq!(fac.start(&id).await.status, 200);
    assert_eq!(fac.prompt(&id, 1, "Why?").await.status, 200);
    fac.advance_times(&id, 1, 1).await;
    assert_eq!(Rest::new(&server, "ann").event(&id, "PI_VOTE_SUBMIT", json!("A")).await.status, 201);
    fac.advance_times(&id, 1, 3).await;
    assert_eq!(Rest::new(&server, "sam").event(&id, "GROUP_EXPLANATION_SUBMIT", json!("B")).await.status, 201);
    assert_eq!(fac.chat("g1", &id, "hello").await.status, 201);
    let before = fac.view(&id).await.body;
    let events_before = fac.send("GET", &format!("/group-sessions/{id}/events"), None).await.body;
    let chat_before = fac.send("GET", &format!("/groups/g1/sessions/{id}/chat"), None).await.body;
    stop(server).await;

    let server = start(dir.path()).await;
    let fac = Rest::new(&server, "fay");
    assert_eq!(fac.view(&id).await.body, before, "the whole state is intact");
    assert_eq!(fac.send("GET", &format!("/group-sessions/{id}/events"), None).await.body, events_before);
    assert_eq!(fac.send("GET", &format!("/groups/g1/sessions/{id}/chat"), None).await.body, chat_before);
    assert_eq!(before["rounds"][0]["status"], "EXPLAINING");

    let client = native_ws(&server, "ann").await;
    let state = join(&client, &id).await;
    assert_eq!(state["rounds"], before["rounds"], "a reconnecting client gets the current state");
    assert_eq!(state["status"], "RUNNING");
    assert_eq!(next(&client, &id).await.0, "userJoined");
    assert_eq!(Rest::new(&server, "ann").event(&id, "PI_VOTE_SUBMIT", json!("A")).await.status, 409);
    assert_eq!(Rest::new(&server, "sam").event(&id, "GROUP_EXPLANATION_SUBMIT", json!("C")).await.status, 409);
    fac.advance_times(&id, 1, 1).await;
    assert_eq!(next(&client, &id).await.1["status"], "DONE");
    stop(server).await;
}
