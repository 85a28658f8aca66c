//! Fifty users voting at once, each twice: every vote is counted exactly once, and exactly fifty
//! `vote.submitted` events go out.

use crate::support::{Rest, call, join, native_ws, next, start, stop};
use serde_json::json;
use std::collections::BTreeSet;

/// Users voting at once (the figure).
const VOTERS: usize = 50;

#[tokio::test]
async fn fifty_users_voting_at_once_are_each_counted_once() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path()).await;
    let fac = Rest::new(&server, "fay");
    let id = fac.session("g1", 1, "fay").await;
    let watcher = native_ws(&server, "wes").await;
    join(&watcher, &id).await;
    assert_eq!(next(&watcher, &id).await.0, "userJoined");
    assert_eq!(fac.start(&id).await.status, 200);
    fac.advance_times(&id, 1, 1).await;
    assert_eq!(next(&watcher, &id).await.0, "session.started");
    assert_eq!(next(&watcher, &id).await.1["status"], "VOTING");

    let mut voters = Vec::new();
    for i in 0..VOTERS {
        voters.push(native_ws(&server, &format!("voter-{i:02}")).await);
    }
    let args = json!({"sessionId": id, "eventType": "PI_VOTE_SUBMIT", "payload": "A"});
    let attempts = voters
        .iter()
        .flat_map(|v| [call(v, "study.submitEvent", args.clone()), call(v, "study.submitEvent", args.clone())]);
    let results = futures_util::future::join_all(attempts).await;
    let accepted = results.iter().filter(|r| r.is_ok()).count();
    let conflicts = results.iter().filter(|r| matches!(r, Err((2008, _)))).count();
    assert_eq!((accepted, conflicts), (VOTERS, VOTERS), "each voter's second vote is a conflict");

    let mut announced = BTreeSet::new();
    for _ in 0..VOTERS {
        let (event, data) = next(&watcher, &id).await;
        assert_eq!(event, "vote.submitted");
        assert!(announced.insert(data["userId"].as_str().unwrap().to_owned()), "one event per voter");
    }
    let expected: BTreeSet<String> = (0..VOTERS).map(|i| format!("voter-{i:02}")).collect();
    assert_eq!(announced, expected);
    let view = fac.view(&id).await.body;
    let voted: BTreeSet<String> =
        view["rounds"][0]["voted"].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_owned()).collect();
    assert_eq!(voted, expected, "the stored votes are the accepted ones");
    let log = fac.send("GET", &format!("/group-sessions/{id}/events?limit=200"), None).await;
    assert_eq!(log.body["events"].as_array().map(Vec::len), Some(VOTERS));
    fac.advance_times(&id, 1, 1).await;
    assert_eq!(next(&watcher, &id).await.1["status"], "DISCUSSING", "no vote event beyond the fifty");
    stop(server).await;
}
