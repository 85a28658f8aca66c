//! Seed-000 Redis compatibility against a real `redis-server`: the session lives at `session:{id}` and
//! every change is published on `session:{id}:updates` in the seed's JSON; an existing backend's
//! `updateSessionData` (SET + PUBLISH) reaches chorus subscribers once, without echoes.

use crate::support::{RedisServer, call, next_update, start};
use fred::clients::SubscriberClient;
use fred::prelude::{Builder, Client, ClientLike, Config, EventInterface, Expiration, KeysInterface, PubsubInterface};
use fred::types::Message;
use serde_json::{Value, json};
use tokio::sync::broadcast;

async fn redis_client(url: &str) -> Client {
    let client = Builder::from_config(Config::from_url(url).expect("url")).build().expect("client");
    client.init().await.expect("connect to redis-server");
    client
}

async fn watch(url: &str, channel: &str) -> (SubscriberClient, broadcast::Receiver<Message>) {
    let builder = Builder::from_config(Config::from_url(url).expect("url"));
    let subscriber = builder.build_subscriber_client().expect("subscriber");
    subscriber.init().await.expect("connect to redis-server");
    let messages = subscriber.message_rx();
    subscriber.subscribe(channel).await.expect("SUBSCRIBE");
    (subscriber, messages)
}

/// The next message on the watched channel: its text, which must be the seed's session JSON.
async fn next_message(messages: &mut broadcast::Receiver<Message>) -> String {
    let message = messages.recv().await.expect("message");
    let text = message.value.as_string().expect("string message");
    let parsed: Value = serde_json::from_str(&text).expect("JSON message");
    let keys: Vec<&String> = parsed.as_object().expect("object").keys().collect();
    assert_eq!(keys, ["createdAt", "movies", "participants"], "the seed's shape: {text}");
    text
}

/// The seed's `updateSessionData`: SET with the 24 h TTL, then PUBLISH.
async fn update_session_data(redis: &Client, id: &str, data: &Value) {
    let json = data.to_string();
    let _: () = redis
        .set(format!("session:{id}"), json.as_str(), Some(Expiration::EX(86_400)), None, false)
        .await
        .expect("SET");
    let _: i64 = redis.publish(format!("session:{id}:updates"), json.as_str()).await.expect("PUBLISH");
}

#[tokio::test]
async fn sessions_are_mirrored_and_external_updates_reach_chorus_subscribers_once() {
    let mut redis_server = RedisServer::start(&[]).await.expect("redis-server");
    let url = redis_server.url();
    let broker = start(&["--redis-url", &url, "--store", "redis"]).await;
    let redis = redis_client(&url).await;

    let id = broker.create().await;
    let key = format!("session:{id}");
    let stored: String = redis.get(&key).await.expect("GET");
    let (_, joined) = broker.join(&id).await;
    assert_eq!(serde_json::from_str::<Value>(&stored).expect("JSON"), joined["sessionData"]);
    let ttl: i64 = redis.pttl(&key).await.expect("PTTL");
    assert!((86_390_000..=86_400_000).contains(&ttl), "24 h TTL, got {ttl} ms");

    let (_watcher, mut messages) = watch(&url, &format!("session:{id}:updates")).await;
    let ann = broker.ws("ann").await;
    ann.subscribe(&format!("movies/session/{id}")).await.expect("subscribe");
    let created_at = joined["sessionData"]["createdAt"].clone();

    // Another backend updates the session the seed's way.
    let external = json!({
        "createdAt": created_at,
        "movies": [{ "id": 1, "title": "Movie 1", "votes": 5 }],
        "participants": ["user1", "user2"]
    });
    update_session_data(&redis, &id, &external).await;
    assert_eq!(next_update(&ann).await, external);
    assert_eq!(serde_json::from_str::<Value>(&next_message(&mut messages).await).expect("JSON"), external);

    // A chorus participant joins and votes: chorus subscribers get each change once, and Redis gets the
    // seed's JSON at the key and on the channel.
    let joined = call(&ann, "join", json!({ "sessionID": id })).await.expect("join");
    assert_eq!(joined["sessionData"]["participants"], json!(["user1", "user2", "Ann"]));
    assert_eq!(next_update(&ann).await["participants"], json!(["user1", "user2", "Ann"]));
    call(&ann, "vote", json!({ "sessionID": id, "movieId": 1 })).await.expect("vote");
    let voted = json!({
        "createdAt": created_at,
        "movies": [{ "id": 1, "title": "Movie 1", "votes": 6 }],
        "participants": ["user1", "user2", "Ann"]
    });
    assert_eq!(next_update(&ann).await, voted);
    // The mirror writes the latest state; under a burst it may skip intermediate ones.
    let mut last = next_message(&mut messages).await;
    while serde_json::from_str::<Value>(&last).expect("JSON") != voted {
        last = next_message(&mut messages).await;
    }
    let stored: String = redis.get(&key).await.expect("GET");
    assert_eq!(stored, last, "the key holds what was published");
    let ttl: i64 = redis.pttl(&key).await.expect("PTTL");
    assert!(ttl > 86_000_000 && ttl <= 86_400_000, "the key expires with the session, got {ttl} ms");

    // No echo: the next event is the next change, not chorus's own publish coming back from Redis.
    call(&ann, "addMovie", json!({ "sessionID": id, "title": "Heat" })).await.expect("add");
    let added = next_update(&ann).await;
    assert_eq!(added["movies"][1], json!({ "id": 2, "title": "Heat", "votes": 0 }));
    assert_eq!(serde_json::from_str::<Value>(&next_message(&mut messages).await).expect("JSON"), added);

    // Messages that are not session JSON are ignored; the next valid one still arrives.
    let _: i64 = redis.publish(format!("session:{id}:updates"), "not json").await.expect("PUBLISH");
    next_message_raw(&mut messages).await;
    let later = json!({ "createdAt": created_at, "movies": [], "participants": ["Ann"] });
    update_session_data(&redis, &id, &later).await;
    assert_eq!(next_update(&ann).await, later);

    // A session another backend created in Redis only is found by REST join.
    let theirs = json!({ "createdAt": "2026-01-22T12:00:00.000Z", "movies": [], "participants": ["host"] });
    let _: () =
        redis.set("session:012345", theirs.to_string(), Some(Expiration::EX(3_600)), None, false).await.expect("SET");
    let (status, found) = broker.join("012345").await;
    assert_eq!(status, 200);
    assert_eq!(found["sessionData"], theirs);

    redis_server.kill();
}

/// The next message, whatever it holds.
async fn next_message_raw(messages: &mut broadcast::Receiver<Message>) -> Message {
    messages.recv().await.expect("message")
}

#[tokio::test]
async fn an_unreachable_redis_fails_the_start_with_a_clear_error() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("port").local_addr().expect("addr").port();
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("redis://127.0.0.1:{port}");
    let config = chorus_core::config::Config::load_from([
        "chorus",
        "--listen",
        "127.0.0.1:0",
        "--disable-quic",
        "--data-dir",
        dir.path().to_str().expect("utf-8"),
        "--redis-url",
        &url,
        "--store",
        "redis",
    ])
    .expect("config");
    let Err(error) = chorus_core::server::start(config, vec![chorus_movie_voting::module()]).await else {
        panic!("the broker started without its Redis");
    };
    let text = format!("{error:#}");
    assert!(text.contains("Redis"), "{text}");
}
