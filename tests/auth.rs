//! Authentication outcomes: guest, valid, expired, not yet valid, wrong key, `alg: none`, malformed.

use crate::support::*;
use chorus_client::{Client, ClientError, Codec, ConnectOptions};
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use serde_json::json;

fn bad_tokens() -> Vec<(&'static str, String, u16)> {
    let hs = |key: &str, claims: serde_json::Value| {
        encode(&Header::default(), &claims, &EncodingKey::from_secret(key.as_bytes())).unwrap()
    };
    let hs384 = encode(
        &Header::new(Algorithm::HS384),
        &json!({"sub": "u", "exp": now() + 60}),
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap();
    vec![
        ("expired", token(json!({"sub": "u", "exp": now() - 600})), 3001),
        ("not yet valid", token(json!({"sub": "u", "nbf": now() + 600})), 3002),
        ("wrong key", hs("another-secret", json!({"sub": "u", "exp": now() + 60})), 3000),
        ("other alg", hs384, 3000),
        // {"alg":"none","typ":"JWT"}.{"sub":"u","exp":4102444800}. with no signature
        ("alg none", "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJzdWIiOiJ1IiwiZXhwIjo0MTAyNDQ0ODAwfQ.".into(), 3000),
        ("malformed", "this-is-not-a-jwt".into(), 3000),
        ("no sub", token(json!({"name": "nobody"})), 3000),
    ]
}

#[tokio::test]
async fn guest_and_valid_tokens_are_welcomed() {
    let broker = Broker::start(&[]).await;
    let guest = Client::connect(ConnectOptions::websocket(broker.ws_url(""))).await.unwrap();
    let id = &guest.welcome().identity;
    assert!(id.guest);
    assert_eq!(id.sub, format!("guest-{}", guest.welcome().conn_id));
    let valid = token(json!({"sub": "ann", "name": "Ann", "role": "admin"}));
    let ann = Client::connect(ConnectOptions::websocket(broker.ws_url("")).token(valid)).await.unwrap();
    let id = &ann.welcome().identity;
    assert_eq!(
        (id.sub.as_str(), id.name.as_deref(), id.role.as_deref(), id.guest),
        ("ann", Some("Ann"), Some("admin"), false)
    );
}

#[tokio::test]
async fn bad_tokens_get_their_code_then_close_1008_on_every_transport() {
    let broker = Broker::start(&[]).await;
    let before = broker.metrics().await;
    for (what, bad, code) in bad_tokens() {
        let mut ws = raw_ws(&broker, "chorus.v1.json", &format!("token={bad}")).await;
        send_json(&mut ws, json!({"type": "hello"})).await;
        let err = next_json(&mut ws).await;
        assert_eq!(
            (err["type"].as_str(), err["code"].as_u64()),
            (Some("error"), Some(u64::from(code))),
            "{what}: {err}"
        );
        assert_eq!(expect_close(&mut ws).await, Some(1008), "{what}");

        for opts in [
            ConnectOptions::websocket(broker.ws_url("")).codec(Codec::MsgPack).token(bad.clone()),
            ConnectOptions::quic(broker.quic, "localhost").pin_sha256(broker.fingerprint.clone()).token(bad.clone()),
        ] {
            match Client::connect(opts).await {
                Err(ClientError::Rejected { code: c, .. }) => assert_eq!(c, code, "{what}"),
                Err(e) => panic!("{what}: expected a rejection, got {e}"),
                Ok(_) => panic!("{what}: accepted"),
            }
        }
    }
    let after = broker.metrics().await;
    let failures: f64 =
        after.0.iter().filter(|(k, _)| k.starts_with("chorus_auth_failures_total")).map(|(_, v)| v).sum();
    let earlier: f64 =
        before.0.iter().filter(|(k, _)| k.starts_with("chorus_auth_failures_total")).map(|(_, v)| v).sum();
    assert_eq!(failures - earlier, 3.0 * bad_tokens().len() as f64);
}

#[tokio::test]
async fn a_token_on_a_guests_only_server_is_refused() {
    let broker = Broker::start_without_secret(&[]).await;
    let url = broker.ws_url("");
    let guest = Client::connect(ConnectOptions::websocket(url.clone())).await.unwrap();
    assert!(guest.welcome().identity.guest);
    match Client::connect(ConnectOptions::websocket(url).token(token(json!({"sub": "u"})))).await {
        Err(ClientError::Rejected { code, .. }) => assert_eq!(code, 3000),
        other => panic!("expected rejection, got {:?}", other.map(|c| c.welcome().clone())),
    }
}
