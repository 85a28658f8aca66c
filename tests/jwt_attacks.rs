//! Hostile tokens on every entry point: native WebSocket (JSON hello, `?token=`, the MessagePack SDK),
//! QUIC, the seed-004 dialect `/ws`, Socket.IO (`auth` and `?token=`) and a module's REST route.
//!
//! Each attack is refused with its code (3000 invalid, 3001 expired, 3002 not yet valid; the dialect closes
//! 1008 "Invalid Token"; REST answers 401 with the reason) and never lets the client in, while the same
//! broker admits a valid token on every entry point, so a refusal is never an entry point that is down.

use crate::support::*;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chorus_client::{Client, ClientError, Codec, ConnectOptions};
use chorus_testkit::socketio::ClientProcess;
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use serde_json::{Value, json};

/// The audience and issuer the attacked broker pins.
const AUDIENCE: &str = "chorus-clients";
const ISSUER: &str = "https://idp.example.test";

/// One hostile token and the code it must be refused with.
struct Attack {
    name: &'static str,
    token: String,
    code: u16,
}

/// Claims a broker pinned to [`AUDIENCE`] and [`ISSUER`] accepts, for `sub`, plus `extra`.
fn claims(sub: &str, extra: Value) -> Value {
    let mut claims = json!({"sub": sub, "aud": AUDIENCE, "iss": ISSUER, "exp": now() + 600});
    claims.as_object_mut().expect("object").extend(extra.as_object().expect("object").clone());
    claims
}

fn signed(header: &Header, claims: &Value, key: &EncodingKey) -> String {
    encode(header, claims, key).expect("encode")
}

fn hs256(secret: &[u8], claims: &Value) -> String {
    signed(&Header::default(), claims, &EncodingKey::from_secret(secret))
}

fn b64(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(value.to_string())
}

/// `token` with its claims replaced by `claims`, header and signature kept.
fn tampered(token: &str, claims: &Value) -> String {
    let mut parts = token.split('.');
    let (header, _, signature) = (parts.next().expect("header"), parts.next(), parts.next().expect("signature"));
    format!("{header}.{}.{signature}", b64(claims))
}

/// An Ed25519 key pair: (private PEM, public PEM).
fn ed25519() -> (String, String) {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).expect("Ed25519 key");
    (key.serialize_pem(), key.public_key_pem())
}

/// An RSA key pair from `openssl` (no pure-Rust generator is fast enough unoptimized): (private, public) PEM.
fn rsa(dir: &std::path::Path) -> (String, String) {
    let private = dir.join("rsa.pem");
    let public = dir.join("rsa.pub.pem");
    let run = |args: &[&std::ffi::OsStr]| {
        let status = std::process::Command::new("openssl")
            .args(args)
            .stderr(std::process::Stdio::null())
            .status()
            .expect("openssl is not installed (Debian package `openssl`; .ci/run installs it)");
        assert!(status.success(), "openssl {args:?}");
    };
    run(&["genpkey".as_ref(), "-algorithm".as_ref(), "RSA".as_ref(), "-out".as_ref(), private.as_os_str()]);
    run(&[
        "pkey".as_ref(),
        "-in".as_ref(),
        private.as_os_str(),
        "-pubout".as_ref(),
        "-out".as_ref(),
        public.as_os_str(),
    ]);
    let read = |p: &std::path::Path| std::fs::read_to_string(p).expect("read PEM");
    (read(&private), read(&public))
}

/// The attacks on an HS256 broker with [`SECRET`], audience and issuer pinned.
fn hs256_attacks() -> Vec<Attack> {
    let valid = hs256(SECRET.as_bytes(), &claims("mallory", json!({})));
    let none_header = b64(&json!({"alg": "none", "typ": "JWT"}));
    let (ed_private, _) = ed25519();
    let ed_key = EncodingKey::from_ed_pem(ed_private.as_bytes()).expect("Ed25519 signing key");
    let mut attacks = vec![
        Attack {
            name: "alg none",
            token: format!("{none_header}.{}.", b64(&claims("mallory", json!({})))),
            code: 3000,
        },
        Attack {
            name: "alg none with the signature of a valid token",
            token: format!("{none_header}.{}", valid.split_once('.').expect("dots").1),
            code: 3000,
        },
        Attack {
            name: "asymmetric alg on an HS256 broker (EdDSA, attacker's key)",
            token: signed(&Header::new(Algorithm::EdDSA), &claims("mallory", json!({})), &ed_key),
            code: 3000,
        },
        Attack {
            name: "another HMAC alg with the right secret (HS512)",
            token: signed(
                &Header::new(Algorithm::HS512),
                &claims("mallory", json!({})),
                &EncodingKey::from_secret(SECRET.as_bytes()),
            ),
            code: 3000,
        },
        Attack {
            name: "expired",
            token: hs256(SECRET.as_bytes(), &claims("mallory", json!({"exp": now() - 600}))),
            code: 3001,
        },
        Attack {
            name: "not yet valid",
            token: hs256(SECRET.as_bytes(), &claims("mallory", json!({"nbf": now() + 600}))),
            code: 3002,
        },
        Attack { name: "wrong key", token: hs256(b"guessed-secret", &claims("mallory", json!({}))), code: 3000 },
        Attack {
            name: "tampered payload (sub and role changed, signature kept)",
            token: tampered(&valid, &claims("admin", json!({"role": "admin"}))),
            code: 3000,
        },
        Attack {
            name: "tampered payload (exp extended on an expired token)",
            token: tampered(
                &hs256(SECRET.as_bytes(), &claims("mallory", json!({"exp": now() - 600}))),
                &claims("mallory", json!({})),
            ),
            code: 3000,
        },
        Attack {
            name: "wrong aud",
            token: hs256(SECRET.as_bytes(), &claims("mallory", json!({"aud": "another-service"}))),
            code: 3000,
        },
        Attack {
            name: "wrong iss",
            token: hs256(SECRET.as_bytes(), &claims("mallory", json!({"iss": "https://evil.example.test"}))),
            code: 3000,
        },
        Attack {
            name: "oversized (correctly signed, 16 KiB of claims)",
            token: hs256(SECRET.as_bytes(), &claims("mallory", json!({"pad": "x".repeat(16 * 1024)}))),
            code: 3000,
        },
        Attack { name: "not a JWT", token: "a.b.c".into(), code: 3000 },
    ];
    let mut missing_aud = claims("mallory", json!({}));
    missing_aud.as_object_mut().expect("object").remove("aud");
    attacks.push(Attack { name: "no aud", token: hs256(SECRET.as_bytes(), &missing_aud), code: 3000 });
    attacks
}

/// Flags pinning [`AUDIENCE`] and [`ISSUER`], then `extra`.
fn broker_args(extra: &[&str]) -> Vec<String> {
    ["--jwt-audience", AUDIENCE, "--jwt-issuer", ISSUER].iter().chain(extra).map(|a| a.to_string()).collect()
}

/// `args` as `Broker::start` takes them.
fn strs(args: &[String]) -> Vec<&str> {
    args.iter().map(String::as_str).collect()
}

/// What the native JSON WebSocket answered a token with: `Ok(sub)` welcomed, `Err(code)` refused.
async fn native_json(broker: &Broker, token: &str, in_query: bool) -> Result<String, u16> {
    let (query, hello) = if in_query {
        (format!("token={token}"), json!({"type": "hello"}))
    } else {
        (String::new(), json!({"type": "hello", "token": token}))
    };
    let mut ws = raw_ws(broker, "chorus.v1.json", &query).await;
    send_json(&mut ws, hello).await;
    let answer = next_json(&mut ws).await;
    if answer["type"] == "welcome" {
        return Ok(answer["identity"]["sub"].as_str().expect("sub").to_owned());
    }
    assert_eq!(answer["type"], "error", "{answer}");
    let code = answer["code"].as_u64().expect("code") as u16;
    assert_eq!(expect_close(&mut ws).await, Some(1008), "refusal then close 1008");
    Err(code)
}

/// The SDK over WebSocket (MessagePack) or QUIC.
async fn sdk(broker: &Broker, token: &str, quic: bool) -> Result<String, u16> {
    let options = if quic {
        ConnectOptions::quic(broker.quic, "localhost").pin_sha256(broker.fingerprint.clone())
    } else {
        ConnectOptions::websocket(broker.ws_url("")).codec(Codec::MsgPack)
    };
    match Client::connect(options.token(token.to_owned())).await {
        Ok(client) => Ok(client.welcome().identity.sub.clone()),
        Err(ClientError::Rejected { code, .. }) => Err(code),
        Err(e) => panic!("expected a welcome or a rejection, got {e}"),
    }
}

/// The seed-004 dialect: `Ok(first message type)` connected, `Err(reason)` closed with 1008.
async fn dialect(broker: &Broker, token: &str) -> Result<String, String> {
    let url = format!("ws://{}/ws?token={token}", broker.http);
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.expect("dialect upgrade");
    match next(&mut ws).await {
        Next::Json(v) => Ok(v["type"].as_str().unwrap_or_default().to_owned()),
        Next::Close(Some(1008), reason) => Err(reason),
        other => panic!("dialect answered {other:?}"),
    }
}

/// A module's REST route (the booking module's `GET /api/bookings`): (status, message).
async fn rest(broker: &Broker, token: &str) -> (u16, String) {
    let auth = format!("Bearer {token}");
    let (status, body) = http_request(broker.http, "GET", "/api/bookings", &[("Authorization", auth.as_str())], None)
        .await
        .expect("GET");
    let message = serde_json::from_str::<Value>(&body).ok().and_then(|v| v["message"].as_str().map(str::to_owned));
    (status, message.unwrap_or(body))
}

/// The message a REST refusal carries for an attack's code.
fn rest_reason(code: u16) -> &'static str {
    match code {
        3001 => "token expired",
        3002 => "token not yet valid",
        _ => "invalid token",
    }
}

/// Runs every attack on every entry point of `broker`, after checking `valid` (for `sub`) gets in on each.
async fn attack_every_entry_point(broker: &Broker, valid: &str, sub: &str, attacks: &[Attack]) {
    assert_eq!(native_json(broker, valid, false).await.as_deref(), Ok(sub), "valid token, JSON hello");
    assert_eq!(native_json(broker, valid, true).await.as_deref(), Ok(sub), "valid token, ?token=");
    assert_eq!(sdk(broker, valid, false).await.as_deref(), Ok(sub), "valid token, MessagePack WebSocket");
    assert_eq!(sdk(broker, valid, true).await.as_deref(), Ok(sub), "valid token, QUIC");
    assert!(dialect(broker, valid).await.is_ok(), "valid token, seed-004 /ws");
    assert_eq!(rest(broker, valid).await.0, 200, "valid token, REST");
    let before = broker.metrics().await;

    for attack in attacks {
        let Attack { name, token, code } = attack;
        let code = *code;
        assert_eq!(native_json(broker, token, false).await, Err(code), "{name}: JSON hello");
        assert_eq!(native_json(broker, token, true).await, Err(code), "{name}: ?token= on /v1/ws");
        assert_eq!(sdk(broker, token, false).await, Err(code), "{name}: MessagePack WebSocket");
        assert_eq!(sdk(broker, token, true).await, Err(code), "{name}: QUIC");
        assert_eq!(dialect(broker, token).await, Err("Invalid Token".to_owned()), "{name}: seed-004 /ws");
        let (status, message) = rest(broker, token).await;
        assert_eq!(status, 401, "{name}: REST answered {message}");
        assert!(message.starts_with(rest_reason(code)), "{name}: REST refusal {message:?}");
    }

    let failures = |m: &Metrics| -> f64 {
        m.0.iter().filter(|(k, _)| k.starts_with("chorus_auth_failures_total")).map(|(_, v)| v).sum()
    };
    let counted = failures(&broker.metrics().await) - failures(&before);
    assert_eq!(counted, 5.0 * attacks.len() as f64, "each refusal on the native entry points and /ws is counted");

    let tokens: Vec<Value> =
        attacks.iter().map(|a| json!({"attack": a.name, "token": a.token, "code": a.code})).collect();
    let options = json!({
        "url": format!("http://{}", broker.http),
        "token": valid,
        "sub": sub,
        "topic": "attacks/presence",
        "tokens": tokens,
    });
    let client = ClientProcess::node("refused-tokens", &options).unwrap_or_else(|e| panic!("{e:#}"));
    let lines = client.finish().await.unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!(lines.last(), Some(&json!({"ok": "refused-tokens", "refused": attacks.len()})), "Socket.IO");
}

#[tokio::test]
async fn hostile_tokens_are_refused_on_every_entry_point() {
    let broker = Broker::start(&strs(&broker_args(&[]))).await;
    let valid = hs256(SECRET.as_bytes(), &claims("alice", json!({})));
    attack_every_entry_point(&broker, &valid, "alice", &hs256_attacks()).await;
}

#[tokio::test]
async fn an_asymmetric_broker_refuses_hmac_tokens_keyed_with_its_public_key() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (rsa_private, rsa_public) = rsa(dir.path());
    let (ed_private, ed_public) = ed25519();
    let cases = [
        ("RS256", Algorithm::RS256, EncodingKey::from_rsa_pem(rsa_private.as_bytes()).expect("RSA key"), rsa_public),
        ("EdDSA", Algorithm::EdDSA, EncodingKey::from_ed_pem(ed_private.as_bytes()).expect("Ed25519 key"), ed_public),
    ];
    for (alg, algorithm, private, public) in cases {
        let public_file = dir.path().join(format!("{alg}.pub.pem"));
        std::fs::write(&public_file, &public).expect("write public key");
        let public_path = public_file.to_str().expect("UTF-8 temp path");
        let args = broker_args(&["--jwt-alg", alg, "--jwt-public-key", public_path]);
        let broker = Broker::start_without_secret(&strs(&args)).await;
        let valid = signed(&Header::new(algorithm), &claims("bob", json!({})), &private);
        let confused = |hmac: Algorithm| {
            signed(&Header::new(hmac), &claims("mallory", json!({})), &EncodingKey::from_secret(public.as_bytes()))
        };
        let mut attacks = vec![
            Attack { name: "HS256 keyed with the broker's public key", token: confused(Algorithm::HS256), code: 3000 },
            Attack { name: "HS384 keyed with the broker's public key", token: confused(Algorithm::HS384), code: 3000 },
            Attack {
                name: "alg none",
                token: format!("{}.{}.", b64(&json!({"alg": "none"})), b64(&claims("mallory", json!({})))),
                code: 3000,
            },
            Attack {
                name: "tampered payload",
                token: tampered(&valid, &claims("admin", json!({"role": "admin"}))),
                code: 3000,
            },
            Attack {
                name: "expired",
                token: signed(&Header::new(algorithm), &claims("bob", json!({"exp": now() - 600})), &private),
                code: 3001,
            },
        ];
        if algorithm == Algorithm::EdDSA {
            let (other_private, _) = ed25519();
            let other = EncodingKey::from_ed_pem(other_private.as_bytes()).expect("Ed25519 key");
            attacks.push(Attack {
                name: "EdDSA with another key",
                token: signed(&Header::new(Algorithm::EdDSA), &claims("mallory", json!({})), &other),
                code: 3000,
            });
        }
        attack_every_entry_point(&broker, &valid, "bob", &attacks).await;
    }
}
