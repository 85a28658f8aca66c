//! The seed's "Reconnection": a client that comes back gets the session's current state in its join
//! snapshot and, resuming from its last position, every event it missed, in order.

use crate::support::{Rest, WAIT, native_ws, next, start, stop, topic};

#[tokio::test]
async fn a_returning_client_gets_the_state_and_the_events_it_missed() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path()).await;
    let fac = Rest::new(&server, "fay");
    let id = fac.session("g1", 1, "fay").await;
    let watcher = native_ws(&server, "wes").await;
    watcher.subscribe(&topic(&id)).await.unwrap();
    assert_eq!(next(&watcher, &id).await.0, "userJoined");

    let ann = native_ws(&server, "ann").await;
    let reply = ann.subscribe(&topic(&id)).await.unwrap();
    let joined = tokio::time::timeout(WAIT, ann.next_event()).await.unwrap().unwrap();
    let position = reply.position(joined.seq).expect("a position to resume from");
    ann.close().await;
    assert_eq!(next(&watcher, &id).await.0, "userJoined");
    assert_eq!(next(&watcher, &id).await.0, "userLeft");

    assert_eq!(fac.start(&id).await.status, 200);
    fac.advance_times(&id, 1, 1).await;
    assert_eq!(fac.prompt(&id, 1, "Which one?").await.status, 200);
    for expected in ["session.started", "round.advanced", "prompt.updated"] {
        assert_eq!(next(&watcher, &id).await.0, expected);
    }

    let ann = native_ws(&server, "ann").await;
    let reply = ann.subscribe_since(&topic(&id), position).await.unwrap();
    assert_eq!(reply.recovered, Some(true));
    let state = reply.snapshot.expect("snapshot").to_json();
    assert_eq!(state["event"], "session.state");
    assert_eq!(state["data"]["status"], "RUNNING");
    assert_eq!(state["data"]["rounds"][0]["status"], "VOTING");
    assert_eq!(state["data"]["rounds"][0]["prompt"], "Which one?");
    let mut missed = Vec::new();
    for _ in 0..5 {
        missed.push(next(&ann, &id).await.0);
    }
    assert_eq!(missed, ["userLeft", "session.started", "round.advanced", "prompt.updated", "userJoined"]);
    stop(server).await;
}
