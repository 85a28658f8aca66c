//! `chorus-cli subscribe` keeps printing across a broker restart: it reconnects and resumes the topic
//! (the SDK's `ResumingClient`), and says so on stderr.

use crate::support::*;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

#[tokio::test]
async fn subscribe_resumes_after_a_broker_restart() {
    let listen = format!("127.0.0.1:{}", chorus_testkit::free_port());
    let mut broker = Broker::start_at(tempfile::tempdir().expect("temp dir"), &listen, &[]).await;
    let url = broker.ws_url("");
    let mut subscriber = Command::new(env!("CARGO_BIN_EXE_chorus-cli"))
        .args(["subscribe", "news"])
        .env("CHORUS_URL", &url)
        .env_remove("CHORUS_TOKEN")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn chorus-cli");
    let mut events = BufReader::new(subscriber.stdout.take().expect("stdout")).lines();
    let mut notes = BufReader::new(subscriber.stderr.take().expect("stderr")).lines();
    let mut note_until = async |what: &str| {
        let wait = async {
            while let Some(line) = notes.next_line().await.expect("read") {
                if line.starts_with(what) {
                    return line;
                }
            }
            panic!("chorus-cli ended before printing {what:?}");
        };
        tokio::time::timeout(Duration::from_secs(30), wait).await.expect("within 30 s")
    };
    note_until("subscribed to news").await;
    let publish = async |url: &str, text: &str| {
        let out = Command::new(env!("CARGO_BIN_EXE_chorus-cli"))
            .args(["publish", "news", text])
            .env("CHORUS_URL", url)
            .env_remove("CHORUS_TOKEN")
            .output()
            .await
            .expect("run chorus-cli");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    };
    let mut next_event = async || {
        let line = tokio::time::timeout(Duration::from_secs(30), events.next_line())
            .await
            .expect("an event within 30 s")
            .expect("read")
            .expect("chorus-cli still running");
        serde_json::from_str::<serde_json::Value>(&line).expect("JSON line")
    };
    publish(&url, "\"before\"").await;
    assert_eq!(next_event().await["payload"], "before");

    broker.terminate();
    broker.child.wait().await.expect("broker stopped");
    note_until("connection lost").await;
    let broker = Broker::start_at(tempfile::tempdir().expect("temp dir"), &listen, &[]).await;
    note_until("resumed news").await;
    publish(&broker.ws_url(""), "\"after\"").await;
    assert_eq!(next_event().await["payload"], "after");
}

#[tokio::test]
async fn subscribe_prints_the_modules_snapshot_first() {
    let broker = Broker::start(&[]).await;
    let organizer = format!("Bearer {}", token(serde_json::json!({"sub": "olga", "role": "organizer"})));
    let body = r#"{"title": "Gig", "seatCapacity": 5}"#;
    let (status, created) =
        http_request(broker.http, "POST", "/api/events", &[("Authorization", organizer.as_str())], Some(body))
            .await
            .expect("HTTP");
    assert_eq!(status, 201, "{created}");
    let id = serde_json::from_str::<serde_json::Value>(&created).expect("JSON")["id"].as_u64().expect("id");
    let topic = format!("booking/event/{id}");
    let mut subscriber = Command::new(env!("CARGO_BIN_EXE_chorus-cli"))
        .args(["subscribe", &topic])
        .env("CHORUS_URL", broker.ws_url(""))
        .env_remove("CHORUS_TOKEN")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn chorus-cli");
    let mut lines = BufReader::new(subscriber.stdout.take().expect("stdout")).lines();
    let first = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
        .await
        .expect("a line within 30 s")
        .expect("read")
        .expect("chorus-cli still running");
    let snapshot: serde_json::Value = serde_json::from_str(&first).expect("JSON line");
    assert_eq!(snapshot["topic"], topic.as_str(), "{snapshot}");
    assert_eq!(snapshot["snapshot"]["availableSeats"], 5, "{snapshot}");
}
