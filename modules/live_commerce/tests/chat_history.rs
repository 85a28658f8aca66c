//! The chat routes (`/api/sessions/:sessionId/chat`): sending over REST reaches the room like
//! `send-message`, history pages by `limit` and `before`, the count, moderator deletes, and every refusal.

use crate::support::{START_MS, User, at, expect, http, join, native_ws, start, stop, token};
use serde_json::json;
use std::time::Duration;

#[tokio::test]
async fn chat_over_rest_history_count_and_moderation() {
    let dir = tempfile::tempdir().unwrap();
    let (server, clock) = start(dir.path()).await;
    let cleo = User::new(&server, "1", "Cleo");
    let session = cleo.session("Lamps", &[]).await;
    let watcher = native_ws(&server, Some(&token("7", "Walt", None))).await;
    join(&watcher, &session).await;
    assert_eq!(expect(&watcher, "viewer-count").await, 1, "the watcher's own arrival");
    let vera = User::new(&server, "5", "Vera");
    let chat = format!("/api/sessions/{session}/chat");

    let mut ids = Vec::new();
    for i in 0..5u64 {
        let answer = vera.call("POST", &chat, Some(json!({"message": format!("  hello {i}  ")}))).await;
        assert_eq!(answer.status, 201, "{answer:?}");
        let data = &answer.body["data"];
        assert_eq!(answer.body["message"], "Message sent successfully");
        assert_eq!(data["message"], format!("hello {i}"), "trimmed");
        assert_eq!((&data["userId"], &data["user"]), (&json!(5), &json!({"id": 5, "name": "Vera"})));
        assert_eq!(
            (data["sessionId"].as_str(), data["createdAt"].as_str()),
            (Some(session.as_str()), Some(at(i * 1000).as_str()))
        );
        let broadcast = expect(&watcher, "new-message").await;
        assert_eq!(broadcast["id"], data["id"], "REST messages reach the room as new-message");
        ids.push(data["id"].as_str().unwrap().to_owned());
        clock.advance(Duration::from_secs(1));
    }

    let page = http(server.http_addr, "GET", &chat, None, None).await;
    assert_eq!(page.status, 200, "{page:?}");
    assert_eq!(page.body["count"], 5);
    let texts = |body: &serde_json::Value| -> Vec<String> {
        body["data"].as_array().unwrap().iter().map(|m| m["message"].as_str().unwrap().to_owned()).collect()
    };
    assert_eq!(texts(&page.body), ["hello 0", "hello 1", "hello 2", "hello 3", "hello 4"], "oldest first");
    let last_two = http(server.http_addr, "GET", &format!("{chat}?limit=2"), None, None).await;
    assert_eq!(texts(&last_two.body), ["hello 3", "hello 4"]);
    let before = page.body["data"][3]["createdAt"].as_str().unwrap().to_owned();
    let older = http(server.http_addr, "GET", &format!("{chat}?limit=2&before={before}"), None, None).await;
    assert_eq!(texts(&older.body), ["hello 1", "hello 2"], "messages sent before the 4th's time");
    let by_ms = http(server.http_addr, "GET", &format!("{chat}?before={}", START_MS + 1_000), None, None).await;
    assert_eq!(texts(&by_ms.body), ["hello 0"]);
    let count = http(server.http_addr, "GET", &format!("{chat}/count"), None, None).await;
    assert_eq!(count.body["data"], json!({"sessionId": session, "count": 5}));

    let target = format!("{chat}/{}", ids[0]);
    let refused = vera.call("DELETE", &target, None).await;
    assert_eq!((refused.status, refused.body["message"].as_str()), (403, Some("Only moderators can delete messages")));
    let moderator = User { token: token("9", "Mo", Some("moderator")), ..User::new(&server, "9", "Mo") };
    let deleted = moderator.call("DELETE", &target, None).await;
    assert_eq!(deleted.status, 200, "{deleted:?}");
    assert_eq!(deleted.body["data"], json!({"sessionId": session, "messageId": ids[0]}));
    assert_eq!(expect(&watcher, "message-deleted").await["messageId"], ids[0].as_str());
    assert_eq!(cleo.call("DELETE", &target, None).await.status, 404, "deleted once");
    let count = http(server.http_addr, "GET", &format!("{chat}/count"), None, None).await;
    assert_eq!(count.body["data"]["count"], 4);

    let long = "x".repeat(501);
    for (body, status, message) in [
        (Some("{\"message\": \"   \"}"), 400, "Message cannot be empty"),
        (Some(&*format!("{{\"message\": \"{long}\"}}")), 400, "Message cannot be longer than 500 characters"),
        (Some("{\"text\": \"hi\"}"), 400, "message is required"),
    ] {
        let answer = http(
            server.http_addr,
            "POST",
            &chat,
            Some(&vera.token),
            body.map(|b| serde_json::from_str(b).unwrap()).as_ref(),
        )
        .await;
        assert_eq!((answer.status, answer.body["message"].as_str()), (status, Some(message)), "{body:?}");
    }
    let anonymous = http(server.http_addr, "POST", &chat, None, Some(&json!({"message": "hi"}))).await;
    assert_eq!(anonymous.status, 401, "{anonymous:?}");
    let unknown = "/api/sessions/00000000-0000-7000-8000-000000000000/chat";
    assert_eq!(vera.call("POST", unknown, Some(json!({"message": "hi"}))).await.status, 404);
    assert_eq!(http(server.http_addr, "GET", unknown, None, None).await.status, 404);
    for query in ["limit=0", "limit=201", "limit=ten", "before=yesterday"] {
        let answer = http(server.http_addr, "GET", &format!("{chat}?{query}"), None, None).await;
        assert_eq!(answer.status, 400, "{query}: {answer:?}");
    }
    stop(server).await;
}
