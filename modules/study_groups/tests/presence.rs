//! Presence is per user: a second tab emits no second `userJoined`; closing one of two tabs emits
//! nothing; the last tab leaving — by unsubscribing or by disconnecting — emits `userLeft`.

use crate::support::{Rest, assert_event, call, join, name, native_quic, native_ws, next, start, stop, topic};
use serde_json::json;

#[tokio::test]
async fn two_tabs_one_user_and_a_disconnect_counts_as_a_leave() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path()).await;
    let fac = Rest::new(&server, "fay");
    let id = fac.session("g1", 1, "fay").await;
    let watcher = native_ws(&server, "wes").await;
    join(&watcher, &id).await;
    assert_eq!(next(&watcher, &id).await.0, "userJoined");

    let joined = json!({"userId": "ann", "userName": name("ann"), "sessionId": id});
    let left = json!({"userId": "ann", "userName": name("ann"), "sessionId": id});
    let tab1 = native_ws(&server, "ann").await;
    let tab2 = native_quic(&server, "ann").await;
    join(&tab1, &id).await;
    assert_event(&next(&watcher, &id).await, "userJoined", joined.clone());
    let state = join(&tab2, &id).await;
    assert_eq!(
        state["presence"],
        json!([{"userId": "ann", "userName": name("ann")}, {"userId": "wes", "userName": name("wes")}]),
        "the second tab sees ann once"
    );

    tab1.unsubscribe(&topic(&id)).await.unwrap();
    // A marker event: had the second join or the first leave emitted anything, it would come first.
    assert_eq!(fac.start(&id).await.status, 200);
    assert_eq!(next(&watcher, &id).await.0, "session.started");
    let present = call(&watcher, "study.getSession", json!({"sessionId": id})).await.unwrap();
    assert_eq!(present["presence"].as_array().map(Vec::len), Some(2), "ann is still present through tab 2");

    tab2.close().await;
    assert_event(&next(&watcher, &id).await, "userLeft", left.clone());
    let present = call(&watcher, "study.getSession", json!({"sessionId": id})).await.unwrap();
    assert_eq!(present["presence"], json!([{"userId": "wes", "userName": name("wes")}]));

    join(&tab1, &id).await;
    assert_event(&next(&watcher, &id).await, "userJoined", joined);
    tab1.unsubscribe(&topic(&id)).await.unwrap();
    assert_event(&next(&watcher, &id).await, "userLeft", left);
    stop(server).await;
}
