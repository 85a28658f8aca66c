//! What people read is in plain words: the broker's error messages for each error code, its close reasons
//! and HTTP error bodies, and `chorus-cli`'s errors for the cases newcomers hit (a token signed with another
//! key or algorithm or `alg: none`, an empty token, a wrong QUIC pin, no broker at the address). The code
//! stays the machine-readable part; no message shows a Rust type name.

use crate::support::*;
use chorus_testkit::plain::assert_plain;
use futures_util::SinkExt;
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use serde_json::{Value, json};
use std::process::Output;
use tokio::process::Command;
use tokio_tungstenite::tungstenite::Message;

/// An unsigned token (`{"alg":"none"}`), as an attacker or a confused tool would send.
const ALG_NONE: &str = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJzdWIiOiJ1IiwiZXhwIjo0MTAyNDQ0ODAwfQ.";

fn signed_with(alg: Algorithm, secret: &str) -> String {
    let claims = json!({"sub": "ann", "exp": now() + 600});
    encode(&Header::new(alg), &claims, &EncodingKey::from_secret(secret.as_bytes())).expect("encode")
}

/// The `error` frame answering the last frame sent; checks its code and that its message is plain.
async fn error_message(ws: &mut RawWs, code: u64, what: &str) -> String {
    let v = next_json(ws).await;
    assert_eq!((v["type"].as_str(), v["code"].as_u64()), (Some("error"), Some(code)), "{what}: {v}");
    let message = v["message"].as_str().unwrap_or_default().to_owned();
    assert!(!message.is_empty(), "{what}: an empty message");
    assert_plain(what, &message);
    message
}

#[tokio::test]
async fn every_error_code_the_broker_sends_has_a_plain_message() {
    let broker = Broker::start(&[]).await;
    let mut ws = raw_ws(&broker, "chorus.v1.json", "").await;
    send_json(&mut ws, json!({"type": "subscribe", "id": 1, "topic": "a"})).await;
    error_message(&mut ws, 1005, "frame before hello").await;
    send_json(&mut ws, json!({"type": "hello"})).await;
    assert_eq!(next_json(&mut ws).await["type"], "welcome");
    let cases: [(Value, u64, &str); 10] = [
        (json!({"type": "dance"}), 1002, "unknown frame type"),
        (json!({"topic": "a"}), 1003, "missing type"),
        (json!({"type": "subscribe", "id": "seven", "topic": "a"}), 1003, "ill-typed id"),
        (json!({"type": "hello"}), 1006, "second hello"),
        (json!({"type": "subscribe", "id": 2, "topic": "a//b"}), 2000, "bad topic"),
        (json!({"type": "unsubscribe", "id": 3, "topic": "never"}), 2003, "not subscribed"),
        (json!({"type": "call", "id": 4, "method": "nobody.home"}), 2006, "unknown method"),
        (json!({"type": "call", "id": 5, "method": "chorus.presence", "args": {}}), 2009, "bad arguments"),
        (json!({"type": "call", "id": 6, "method": "chorus.presence", "args": "x"}), 2009, "ill-typed arguments"),
        (json!({"type": "publish", "id": 7, "topic": "a"}), 1003, "publish without payload"),
    ];
    for (frame, code, what) in cases {
        send_json(&mut ws, frame).await;
        error_message(&mut ws, code, what).await;
    }
    ws.send(Message::text("{not json")).await.unwrap();
    error_message(&mut ws, 1001, "malformed JSON").await;

    let expired = token(json!({"sub": "ann", "exp": now() - 3600}));
    let refusals = [
        (signed_with(Algorithm::HS256, "another-secret"), 3000, "signature does not match"),
        (signed_with(Algorithm::HS384, SECRET), 3000, "signed with HS384; this server accepts only HS256"),
        (ALG_NONE.to_owned(), 3000, "`none`"),
        (String::new(), 3000, "the token is empty"),
        ("garbage".to_owned(), 3000, "not a JWT"),
        (expired, 3001, "expired"),
    ];
    for (bad, code, says) in refusals {
        let mut ws = raw_ws(&broker, "chorus.v1.json", "").await;
        send_json(&mut ws, json!({"type": "hello", "token": bad})).await;
        let message = error_message(&mut ws, code, says).await;
        assert!(message.contains(says), "expected {says:?} in {message:?}");
        assert_eq!(expect_close(&mut ws).await, Some(1008));
    }
}

#[tokio::test]
async fn a_text_message_on_a_messagepack_connection_is_closed_with_a_hint() {
    let broker = Broker::start(&[]).await;
    let (mut ws, _) = tokio_tungstenite::connect_async(broker.ws_url("")).await.expect("connect");
    ws.send(Message::text(json!({"type": "hello"}).to_string())).await.unwrap();
    let reason = loop {
        match next(&mut ws).await {
            Next::Close(code, reason) => {
                assert_eq!(code, Some(1003), "{reason}");
                break reason;
            }
            Next::Binary(_) => continue,
            Next::Json(v) => panic!("a MessagePack connection answered in JSON: {v}"),
        }
    };
    assert!(reason.contains("?codec=json"), "{reason}");
    assert_plain("close reason", &reason);
}

#[tokio::test]
async fn http_errors_have_a_message_body_on_every_router() {
    let broker = Broker::start(&[]).await;
    let cases = [
        ("PUT", "/api/events", 405),
        ("DELETE", "/health", 405),
        ("POST", "/metrics", 405),
        ("GET", "/api/session/create", 405),
        ("DELETE", "/api/products", 405),
        ("PUT", "/group-sessions", 405),
        ("GET", "/no/such/route", 404),
    ];
    for (method, path, status) in cases {
        let (got, body) = http_request(broker.http, method, path, &[], None).await.expect("HTTP");
        assert_eq!(got, status, "{method} {path}: {body}");
        let body: Value = serde_json::from_str(&body).unwrap_or_else(|_| panic!("{method} {path}: {body:?}"));
        let message = body["message"].as_str().unwrap_or_default();
        assert!(message.contains(path), "{method} {path}: {body}");
        assert_plain(path, message);
    }
}

/// Runs `chorus-cli` with `args` and the given environment (and no `CHORUS_*` of the caller's).
async fn cli(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_chorus-cli"));
    for (key, _) in std::env::vars().filter(|(k, _)| k.starts_with("CHORUS_")) {
        cmd.env_remove(key);
    }
    cmd.args(args).envs(env.iter().copied()).kill_on_drop(true);
    tokio::time::timeout(std::time::Duration::from_secs(60), cmd.output())
        .await
        .expect("chorus-cli finished within 60 s")
        .expect("run chorus-cli")
}

/// The CLI's one-line error, after checking it failed with exit code 1 and wrote nothing on stdout.
fn cli_error(out: &Output, what: &str) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "{what}: {stderr}");
    assert!(out.stdout.is_empty(), "{what}: {}", String::from_utf8_lossy(&out.stdout));
    assert_eq!(stderr.lines().count(), 1, "{what}: one line: {stderr}");
    assert!(stderr.starts_with("error: "), "{what}: {stderr}");
    assert_plain(what, &stderr);
    stderr
}

#[tokio::test]
async fn cli_errors_are_one_plain_line() {
    let broker = Broker::start(&[]).await;
    let url = broker.ws_url("");
    let quic = broker.quic.to_string();
    let data_dir = broker.data_dir.path().to_str().expect("UTF-8 path").to_owned();
    let env = [("CHORUS_URL", url.as_str()), ("CHORUS_QUIC_ADDR", quic.as_str()), ("CHORUS_DATA_DIR", &data_dir)];

    let wrong_key = signed_with(Algorithm::HS256, "another-secret");
    let hs384 = signed_with(Algorithm::HS384, SECRET);
    let tokens = [
        (wrong_key.as_str(), "signature does not match"),
        (hs384.as_str(), "HS384"),
        (ALG_NONE, "`none`"),
        ("", "the token is empty"),
    ];
    for (bad, says) in tokens {
        let out = cli(&["publish", "chat/lobby", "1"], &[&env[..], &[("CHORUS_TOKEN", bad)]].concat()).await;
        let error = cli_error(&out, says);
        assert!(error.contains(says), "expected {says:?} in {error}");
    }

    let wrong_pin = "00".repeat(32);
    let out = cli(&["publish", "chat/lobby", "1", "--quic", "--pin", &wrong_pin], &env).await;
    let error = cli_error(&out, "wrong pin");
    assert!(error.contains(&broker.fingerprint) && error.contains(&wrong_pin), "{error}");

    let nobody = format!("ws://127.0.0.1:{}/v1/ws", chorus_testkit::free_port());
    let out = cli(&["ping"], &[("CHORUS_URL", nobody.as_str())]).await;
    let error = cli_error(&out, "no broker");
    assert!(error.contains("cannot reach the broker at") && error.contains("Connection refused"), "{error}");

    // Options after the subcommand, over each transport; `call` without arguments sends `{}`.
    for transport in [&["--json"][..], &["--quic"], &[]] {
        let out = cli(&[&["publish", "chat/lobby", "{\"n\":1}"][..], transport].concat(), &env).await;
        assert!(out.status.success(), "{transport:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
    let out = cli(&["call", "chorus.presence"], &env).await;
    let error = cli_error(&out, "call without arguments");
    assert!(error.contains("missing field `topic`") && error.contains("code 2009"), "{error}");
}
