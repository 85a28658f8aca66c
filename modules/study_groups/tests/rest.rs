//! The REST reads a frontend rebuilds its state from: the session, the activity log and the chat history,
//! paged with the cursors the answers hand out.

use crate::support::{Rest, http, start, stop};
use serde_json::{Value, json};

fn texts(page: &Value) -> Vec<String> {
    page["messages"].as_array().unwrap().iter().map(|m| m["message"].as_str().unwrap().to_owned()).collect()
}

#[tokio::test]
async fn chat_history_and_the_event_log_page_by_cursor() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path()).await;
    let fac = Rest::new(&server, "fay");
    let id = fac.session("g1", 1, "fay").await;
    assert_eq!(fac.view(&id).await.body["groupId"], "g1");
    for i in 0..5 {
        let sent = fac.chat("g1", &id, &format!("m{i}")).await;
        assert_eq!(sent.status, 201, "{sent:?}");
        assert_eq!(sent.body["userName"], "Name Of fay");
        assert!(sent.body["timestamp"].is_string() && sent.body["id"].is_string());
    }
    let path = format!("/groups/g1/sessions/{id}/chat");
    let newest = fac.send("GET", &format!("{path}?limit=2"), None).await;
    assert_eq!((newest.status, texts(&newest.body)), (200, vec!["m3".to_owned(), "m4".to_owned()]));
    let before = newest.body["nextBefore"].as_str().unwrap().to_owned();
    let older = fac.send("GET", &format!("{path}?limit=2&before={before}"), None).await;
    assert_eq!(texts(&older.body), vec!["m1", "m2"]);
    let before = older.body["nextBefore"].as_str().unwrap().to_owned();
    let oldest = fac.send("GET", &format!("{path}?limit=2&before={before}"), None).await;
    assert_eq!(texts(&oldest.body), vec!["m0"]);
    assert_eq!(oldest.body["nextBefore"], Value::Null);
    let all = fac.send("GET", &path, None).await;
    assert_eq!(texts(&all.body), vec!["m0", "m1", "m2", "m3", "m4"]);
    assert_eq!(fac.send("GET", &format!("{path}?limit=0"), None).await.status, 422);
    assert_eq!(fac.send("GET", &format!("/groups/g2/sessions/{id}/chat"), None).await.status, 404);
    assert_eq!(http(server.http_addr, "GET", &path, None, None).await.status, 401);

    assert_eq!(fac.start(&id).await.status, 200);
    fac.advance_times(&id, 1, 1).await;
    for user in ["u1", "u2", "u3"] {
        assert_eq!(Rest::new(&server, user).event(&id, "PI_VOTE_SUBMIT", json!(user)).await.status, 201);
    }
    let events = format!("/group-sessions/{id}/events");
    let first = fac.send("GET", &format!("{events}?limit=2"), None).await;
    let users = |page: &Value| -> Vec<String> {
        page["events"].as_array().unwrap().iter().map(|e| e["userId"].as_str().unwrap().to_owned()).collect()
    };
    assert_eq!(users(&first.body), vec!["u1", "u2"]);
    let after = first.body["nextAfter"].as_str().unwrap().to_owned();
    let rest = fac.send("GET", &format!("{events}?after={after}"), None).await;
    assert_eq!(users(&rest.body), vec!["u3"]);
    assert_eq!(rest.body["events"][0]["eventType"], "PI_VOTE_SUBMIT");
    assert_eq!(rest.body["events"][0]["roundIndex"], 1);
    assert_eq!(fac.send("GET", &format!("{events}?after=a%2Fb"), None).await.status, 422);
    stop(server).await;
}
