//! The REST API on a real broker: the seeds' endpoints with their exact bodies and codes, the operations
//! with bearer tokens, and 1,000 voters racing on one movie.

use crate::support::{Broker, http_request, start};
use serde_json::{Value, json};

fn is_iso_timestamp(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 24
        && b.iter().enumerate().all(|(i, c)| match i {
            4 | 7 => *c == b'-',
            10 => *c == b'T',
            13 | 16 => *c == b':',
            19 => *c == b'.',
            23 => *c == b'Z',
            _ => c.is_ascii_digit(),
        })
}

#[tokio::test]
async fn create_and_join_answer_as_the_seeds_say() {
    let broker = start(&[]).await;
    let (status, created) = broker.post("/api/session/create", None, None).await;
    assert_eq!(status, 200);
    let id = created["sessionID"].as_str().expect("sessionID is a string").to_owned();
    assert!(id.len() == 6 && id.bytes().all(|b| b.is_ascii_digit()) && !id.starts_with('0'), "{id}");
    assert_eq!(created, json!({ "sessionID": id, "message": "Session created successfully" }));

    let (status, joined) = broker.join(&id).await;
    assert_eq!(status, 200);
    let created_at = joined["sessionData"]["createdAt"].as_str().expect("createdAt").to_owned();
    assert!(is_iso_timestamp(&created_at), "{created_at}");
    assert_eq!(
        joined,
        json!({
            "sessionID": id,
            "message": "Session found. You can now connect via WebSocket.",
            "sessionData": { "createdAt": created_at, "movies": [], "participants": [] }
        })
    );
}

#[tokio::test]
async fn join_refuses_bad_requests_with_the_seeds_messages() {
    let broker = start(&[]).await;
    let required = json!({ "message": "sessionID is required" });
    for body in
        [None, Some("{}"), Some(r#"{"sessionID":""}"#), Some(r#"{"sessionID":123456}"#), Some("[]"), Some("null")]
    {
        let answer = broker.post("/api/session/join", body, None).await;
        assert_eq!(answer, (400, required.clone()), "body {body:?}");
    }
    let gone = json!({ "message": "Session not found or has expired" });
    for id in ["999999", "000000", "12345", "abcdef", "1234567"] {
        assert_eq!(broker.join(id).await, (404, gone.clone()), "id {id}");
    }
    for malformed in [r#"{"sessionID":"#, "sessionID=123456", "\u{0}"] {
        let (status, body) = broker.post("/api/session/join", Some(malformed), None).await;
        assert_eq!(status, 400, "{malformed:?}");
        assert!(body["message"].as_str().is_some_and(|m| m.starts_with("Request body is not valid JSON")), "{body}");
    }
}

#[tokio::test]
async fn a_store_failure_on_join_is_a_500() {
    let broker = start(&[]).await;
    let id = broker.create().await;
    // A row the module cannot read: the store answers, but with data that fails its integrity check.
    let store = broker.server.node().store.clone();
    store.put("movie_sessions", &id, b"meta", bytes::Bytes::from_static(b"\xc1"), None).await.expect("put");
    assert_eq!(broker.join(&id).await, (500, json!({ "message": "Failed to join session" })));
}

async fn op(broker: &Broker, path: &str, body: Value, user: &str) -> (u16, Value) {
    broker.post(path, Some(&body.to_string()), Some(user)).await
}

#[tokio::test]
async fn operations_over_rest_identify_the_participant_by_token() {
    let broker = start(&[]).await;
    let id = broker.create().await;
    let sid = json!({ "sessionID": id });

    let (status, body) = broker.post("/api/session/participant", Some(&sid.to_string()), None).await;
    assert_eq!((status, body), (401, json!({ "message": "Authorization: Bearer <token> is required" })));
    let headers = [("Authorization", "Bearer not-a-token")];
    let (status, _) = http_request(broker.addr(), "POST", "/api/session/participant", &headers, Some("{}")).await;
    assert_eq!(status, 401);

    let (status, body) = op(&broker, "/api/session/movie", json!({ "sessionID": id, "title": "Heat" }), "ann").await;
    assert_eq!((status, body), (403, json!({ "message": "Join the session first" })));

    let (status, body) = op(&broker, "/api/session/participant", json!({ "sessionID": id }), "ann").await;
    assert_eq!(status, 200);
    assert_eq!(body["sessionID"], json!(id));
    assert_eq!(body["sessionData"]["participants"], json!(["Ann"]));
    let again = op(&broker, "/api/session/participant", json!({ "sessionID": id, "name": "Other" }), "ann").await;
    assert_eq!(again.1["sessionData"]["participants"], json!(["Ann"]), "one entry per identity");
    let (_, body) = op(&broker, "/api/session/participant", json!({ "sessionID": id, "name": " Bobby " }), "bob").await;
    assert_eq!(body["sessionData"]["participants"], json!(["Ann", "Bobby"]));

    let (status, body) = op(&broker, "/api/session/movie", json!({ "sessionID": id, "title": "  Heat " }), "ann").await;
    assert_eq!(status, 201);
    assert_eq!(body["movie"], json!({ "id": 1, "title": "Heat", "votes": 0 }));
    assert_eq!(body["sessionData"]["movies"], json!([{ "id": 1, "title": "Heat", "votes": 0 }]));
    let dup = op(&broker, "/api/session/movie", json!({ "sessionID": id, "title": "HEAT" }), "bob").await;
    assert_eq!(dup, (409, json!({ "message": "A movie with this title is already in the session" })));
    for (title, message) in [
        (json!(""), "title must be 1 to 200 characters"),
        (json!("x".repeat(201)), "title must be 1 to 200 characters"),
        (json!(7), "title is required"),
    ] {
        let answer = op(&broker, "/api/session/movie", json!({ "sessionID": id, "title": title }), "ann").await;
        assert_eq!(answer, (400, json!({ "message": message })));
    }
    let (status, body) = op(&broker, "/api/session/movie", json!({ "sessionID": id, "title": "Alien" }), "bob").await;
    assert_eq!((status, body["movie"]["id"].clone()), (201, json!(2)));

    let (status, body) = op(&broker, "/api/session/vote", json!({ "sessionID": id, "movieId": 1 }), "ann").await;
    assert_eq!(status, 200);
    assert_eq!(body["sessionData"]["movies"][0]["votes"], 1);
    let twice = op(&broker, "/api/session/vote", json!({ "sessionID": id, "movieId": 1 }), "ann").await;
    assert_eq!(twice, (409, json!({ "message": "You already voted for this movie" })));
    let (_, body) = op(&broker, "/api/session/vote", json!({ "sessionID": id, "movieId": 1 }), "bob").await;
    assert_eq!(body["sessionData"]["movies"][0]["votes"], 2);
    let unknown = op(&broker, "/api/session/vote", json!({ "sessionID": id, "movieId": 9 }), "bob").await;
    assert_eq!(unknown, (404, json!({ "message": "Movie not found" })));
    let no_id = op(&broker, "/api/session/vote", json!({ "sessionID": id, "movieId": "1" }), "bob").await;
    assert_eq!(no_id, (400, json!({ "message": "movieId is required" })));

    let (status, body) = op(&broker, "/api/session/unvote", json!({ "sessionID": id, "movieId": 1 }), "ann").await;
    assert_eq!((status, body["sessionData"]["movies"][0]["votes"].clone()), (200, json!(1)));
    let not_voted = op(&broker, "/api/session/unvote", json!({ "sessionID": id, "movieId": 1 }), "ann").await;
    assert_eq!(not_voted, (409, json!({ "message": "You have not voted for this movie" })));

    let missing = op(&broker, "/api/session/vote", json!({ "sessionID": "999999", "movieId": 1 }), "ann").await;
    assert_eq!(missing, (404, json!({ "message": "Session not found or has expired" })));
    let no_session = op(&broker, "/api/session/vote", json!({ "movieId": 1 }), "ann").await;
    assert_eq!(no_session, (400, json!({ "message": "sessionID is required" })));
    let (status, _) = broker.post("/api/session/vote", Some("{oops"), Some("ann")).await;
    assert_eq!(status, 400);

    let (_, joined) = broker.join(&id).await;
    assert_eq!(
        joined["sessionData"]["movies"],
        json!([{ "id": 1, "title": "Heat", "votes": 1 }, { "id": 2, "title": "Alien", "votes": 0 }])
    );
}

#[tokio::test]
async fn a_thousand_identities_vote_once_each() {
    let broker = start(&[]).await;
    let id = broker.create().await;
    op(&broker, "/api/session/participant", json!({ "sessionID": id }), "host").await;
    op(&broker, "/api/session/movie", json!({ "sessionID": id, "title": "Heat" }), "host").await;
    op(&broker, "/api/session/movie", json!({ "sessionID": id, "title": "Alien" }), "host").await;

    // 1,000 voters on one movie (the host and 999 more; each joins, votes, and races a second vote), 64
    // voters at a time.
    let voters: Vec<String> =
        std::iter::once("host".to_owned()).chain((1..1000).map(|i| format!("voter{i}"))).collect();
    let broker = std::sync::Arc::new(broker);
    for chunk in voters.chunks(64) {
        let mut tasks = tokio::task::JoinSet::new();
        for voter in chunk {
            let (broker, id, voter) = (broker.clone(), id.clone(), voter.clone());
            tasks.spawn(async move {
                let (status, _) = op(&broker, "/api/session/participant", json!({ "sessionID": id }), &voter).await;
                assert_eq!(status, 200);
                let vote = json!({ "sessionID": id, "movieId": 1 });
                let (first, second) = tokio::join!(
                    op(&broker, "/api/session/vote", vote.clone(), &voter),
                    op(&broker, "/api/session/vote", vote.clone(), &voter)
                );
                let mut codes = [first.0, second.0];
                codes.sort();
                assert_eq!(codes, [200, 409], "exactly one of two racing votes counts");
            });
        }
        while let Some(done) = tasks.join_next().await {
            done.expect("voter task");
        }
    }
    let (_, joined) = broker.join(&id).await;
    assert_eq!(joined["sessionData"]["movies"][0]["votes"], 1000);
    assert_eq!(joined["sessionData"]["participants"].as_array().map(Vec::len), Some(1000));
    let full = op(&broker, "/api/session/participant", json!({ "sessionID": id }), "one-too-many").await;
    assert_eq!(full, (409, json!({ "message": "session is full (1000 participants)" })));

    let (_, body) = op(&broker, "/api/session/unvote", json!({ "sessionID": id, "movieId": 1 }), "voter7").await;
    assert_eq!(body["sessionData"]["movies"][0]["votes"], 999);
}
