//! The `chorus` binary's live-commerce account and Agora flags: accounts on by default (a login's token
//! opens a native connection), `--commerce-accounts=false` (and its environment variable), and
//! `--agora-app-id` / `--agora-app-certificate` with their validation.

use crate::support::*;
use chorus_client::{Client, Codec, ConnectOptions};
use serde_json::{Value, json};
use std::process::Stdio;

const JSON: (&str, &str) = ("Content-Type", "application/json");

async fn post(broker: &Broker, path: &str, headers: &[(&str, &str)], body: &Value) -> (u16, Value) {
    let (status, text) = http_request(broker.http, "POST", path, headers, Some(&body.to_string())).await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

#[tokio::test]
async fn the_binary_serves_accounts_whose_tokens_open_connections() {
    let broker = Broker::start(&[]).await;
    let body = json!({"name": "Cleo", "email": "cleo@example.com", "password": "password1", "role": "creator"});
    let (status, registered) = post(&broker, "/api/auth/register", &[JSON], &body).await;
    assert_eq!((status, registered["data"]["user"]["id"].clone()), (201, json!(1)), "{registered}");
    let login = json!({"email": "cleo@example.com", "password": "password1"});
    let (status, logged_in) = post(&broker, "/api/auth/login", &[JSON], &login).await;
    assert_eq!(status, 200);
    let access = logged_in["data"]["accessToken"].as_str().unwrap();

    let client =
        Client::connect(ConnectOptions::websocket(broker.ws_url("")).codec(Codec::Json).token(access)).await.unwrap();
    let identity = &client.welcome().identity;
    assert_eq!((identity.sub.as_str(), identity.name.as_deref(), identity.guest), ("1", Some("Cleo"), false));

    // Without Agora flags start-stream works and has no token; the token routes answer 503.
    let auth = format!("Bearer {access}");
    let (status, created) =
        post(&broker, "/api/sessions", &[JSON, ("Authorization", &auth)], &json!({"title": "Show"})).await;
    assert_eq!(status, 201);
    let id = created["data"]["id"].as_str().unwrap();
    let (status, started) =
        post(&broker, &format!("/api/sessions/{id}/start-stream"), &[("Authorization", &auth)], &json!({})).await;
    assert_eq!(
        (status, started["data"]["token"].clone(), started["data"]["uid"].clone()),
        (200, json!(null), json!(1))
    );
    let (status, _) = broker.get(&format!("/api/sessions/{id}/stream-token")).await;
    assert_eq!(status, 503);
}

#[tokio::test]
async fn accounts_turn_off_by_flag_or_environment() {
    let broker = Broker::start(&["--commerce-accounts=false"]).await;
    let body = json!({"name": "Cleo", "email": "cleo@example.com", "password": "password1"});
    let (status, answer) = post(&broker, "/api/auth/register", &[JSON], &body).await;
    assert_eq!((status, answer["success"].clone()), (404, json!(false)));
    assert!(answer["message"].as_str().unwrap().contains("Accounts are turned off"), "{answer}");
    assert_eq!(broker.get("/api/users/live").await.0, 404);

    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_chorus"))
        .args(["--commerce-accounts", "maybe"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .await
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("--commerce-accounts"));

    let env = [("CHORUS_COMMERCE_ACCOUNTS", "false")];
    let broker = Broker::start_env(tempfile::tempdir().unwrap(), "127.0.0.1:0", &[], &env).await;
    assert_eq!(broker.get("/api/users").await.0, 404);
    let on = Broker::start_env(tempfile::tempdir().unwrap(), "127.0.0.1:0", &["--commerce-accounts=true"], &env).await;
    assert_eq!(on.get("/api/users").await.0, 200, "the flag wins over the environment");
}

#[tokio::test]
async fn agora_flags_give_start_stream_and_viewers_tokens() {
    let app_id = "970CA35de60c44645bbae8a215061b33";
    let certificate = "5CFd2fd1755d40ecb72977518be15d3b";
    let broker = Broker::start(&["--agora-app-id", app_id, "--agora-app-certificate", certificate]).await;
    let auth = format!("Bearer {}", token(json!({"sub": "5", "name": "Cleo"})));
    let (_, created) =
        post(&broker, "/api/sessions", &[JSON, ("Authorization", &auth)], &json!({"title": "Show"})).await;
    let id = created["data"]["id"].as_str().unwrap();
    let (status, started) =
        post(&broker, &format!("/api/sessions/{id}/start-stream"), &[("Authorization", &auth)], &json!({})).await;
    assert_eq!(status, 200);
    assert_eq!((started["data"]["appId"].clone(), started["data"]["uid"].clone()), (json!(app_id), json!(5)));
    assert!(started["data"]["token"].as_str().unwrap().starts_with("007"));
    let (status, body) = broker.get(&format!("/api/sessions/{id}/stream-token")).await;
    let viewer: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        (status, viewer["data"]["role"].clone(), viewer["data"]["appId"].clone()),
        (200, json!("subscriber"), json!(app_id))
    );

    for (flags, message) in [
        (
            vec!["--agora-app-id", "not-hex", "--agora-app-certificate", certificate],
            "the Agora app id must be 32 hexadecimal digits",
        ),
        (vec!["--agora-app-id", app_id], "--agora-app-certificate"),
    ] {
        let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_chorus"))
            .args(&flags)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .output()
            .await
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success() && stderr.contains(message), "{flags:?}: {stderr}");
    }
}
