//! Agora RTC tokens on a real broker: `start-stream`'s token fields, `stream-token` (viewers),
//! `refresh-token` (owner: publisher, others: subscriber), the session states that get none, and the 503
//! answers without Agora credentials. The token builder itself is checked against Agora's reference
//! vectors in `src/agora.rs`; here each issued token is opened and its fields read back.

use crate::support::{START_MS, User, at, http, start, start_with, stop};
use base64::Engine as _;
use chorus_live_commerce::{AgoraCredentials, Settings};
use serde_json::json;
use std::io::Read;

/// The app id and certificate of Agora's own token builder tests (not a real project).
const APP_ID: &str = "970CA35de60c44645bbae8a215061b33";
const APP_CERTIFICATE: &str = "5CFd2fd1755d40ecb72977518be15d3b";

fn agora() -> Settings {
    Settings { agora: Some(AgoraCredentials::new(APP_ID, APP_CERTIFICATE).unwrap()), ..Settings::default() }
}

/// What an AccessToken2 RTC token says, read back from its bytes.
#[derive(Debug, PartialEq)]
struct Opened {
    app_id: String,
    issued_at: u32,
    lifetime: u32,
    privileges: Vec<(u16, u32)>,
    channel: String,
    uid: String,
}

fn open(token: &str) -> Opened {
    let compressed = base64::engine::general_purpose::STANDARD.decode(token.strip_prefix("007").unwrap()).unwrap();
    let mut bytes = Vec::new();
    flate2::read::ZlibDecoder::new(&compressed[..]).read_to_end(&mut bytes).unwrap();
    let mut at = 0;
    let u16_ = |bytes: &[u8], at: &mut usize| {
        *at += 2;
        u16::from_le_bytes([bytes[*at - 2], bytes[*at - 1]])
    };
    let u32_ = |bytes: &[u8], at: &mut usize| {
        *at += 4;
        u32::from_le_bytes(bytes[*at - 4..*at].try_into().unwrap())
    };
    let string = |bytes: &[u8], at: &mut usize, len: u16| {
        let s = String::from_utf8(bytes[*at..*at + usize::from(len)].to_vec()).unwrap();
        *at += usize::from(len);
        s
    };
    let signature_len = u16_(&bytes, &mut at);
    assert_eq!(signature_len, 32, "an HMAC-SHA256 signature");
    at += 32;
    let len = u16_(&bytes, &mut at);
    let app_id = string(&bytes, &mut at, len);
    let issued_at = u32_(&bytes, &mut at);
    let lifetime = u32_(&bytes, &mut at);
    let _salt = u32_(&bytes, &mut at);
    assert_eq!(u16_(&bytes, &mut at), 1, "one service");
    assert_eq!(u16_(&bytes, &mut at), 1, "the RTC service");
    let count = u16_(&bytes, &mut at);
    let privileges = (0..count).map(|_| (u16_(&bytes, &mut at), u32_(&bytes, &mut at))).collect();
    let len = u16_(&bytes, &mut at);
    let channel = string(&bytes, &mut at, len);
    let len = u16_(&bytes, &mut at);
    let uid = string(&bytes, &mut at, len);
    assert_eq!(at, bytes.len(), "nothing after the uid");
    Opened { app_id, issued_at, lifetime, privileges, channel, uid }
}

fn publisher(channel: &str, uid: &str) -> Opened {
    let issued_at = u32::try_from(START_MS / 1000).unwrap();
    let privileges = vec![(1, 3600), (2, 3600), (3, 3600), (4, 3600)];
    Opened { app_id: APP_ID.into(), issued_at, lifetime: 3600, privileges, channel: channel.into(), uid: uid.into() }
}

fn subscriber(channel: &str) -> Opened {
    Opened { privileges: vec![(1, 3600)], uid: String::new(), ..publisher(channel, "") }
}

#[tokio::test]
async fn start_stream_stream_token_and_refresh_token_issue_rtc_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let (server, clock) = start_with(dir.path(), agora()).await;
    let cleo = User::new(&server, "42", "Cleo");
    let session = cleo.session("Live", &[]).await;
    let path = |route: &str| format!("/api/sessions/{session}/{route}");

    // Before the stream starts there is nothing to watch.
    let early = http(server.http_addr, "GET", &path("stream-token"), None, None).await;
    assert_eq!(
        (early.status, early.body.clone()),
        (400, json!({"success": false, "message": "Stream has not started yet"}))
    );

    let started = cleo.start_stream(&session).await;
    assert_eq!(started.body["message"], json!("Stream started successfully"));
    let data = &started.body["data"];
    let token = data["token"].as_str().unwrap();
    assert_eq!(
        *data,
        json!({
            "sessionId": session, "channelName": session, "token": token, "uid": 42, "appId": APP_ID,
            "expiresAt": "2026-01-22T13:00:00.000Z", "role": "publisher", "status": "live", "startedAt": at(0)
        })
    );
    assert_eq!(open(token), publisher(&session, "42"));

    // A viewer, signed in or not, gets a subscriber token for any uid (0).
    let viewer = User::new(&server, "7", "Vic");
    for bearer in [None, Some(viewer.token.as_str())] {
        let answer = http(server.http_addr, "GET", &path("stream-token"), bearer, None).await;
        assert_eq!(answer.status, 200);
        let token = answer.body["data"]["token"].as_str().unwrap();
        assert_eq!(
            answer.body,
            json!({"success": true, "data": {
                "sessionId": session, "channelName": session, "token": token, "uid": 0, "appId": APP_ID,
                "expiresAt": "2026-01-22T13:00:00.000Z", "role": "subscriber"
            }})
        );
        assert_eq!(open(token), subscriber(&session));
    }

    // Refreshing later: a new hour from now; the owner's is a publisher token, a viewer's a subscriber one.
    clock.advance(std::time::Duration::from_secs(50 * 60));
    let later = u32::try_from(START_MS / 1000).unwrap() + 50 * 60;
    let owner = cleo.call("POST", &path("refresh-token"), None).await;
    assert_eq!((owner.status, owner.body["message"].clone()), (200, json!("Token refreshed successfully")));
    let data = &owner.body["data"];
    assert_eq!(
        (data["role"].clone(), data["uid"].clone(), data["expiresAt"].clone()),
        (json!("publisher"), json!(42), json!("2026-01-22T13:50:00.000Z"))
    );
    assert_eq!(open(data["token"].as_str().unwrap()), Opened { issued_at: later, ..publisher(&session, "42") });
    for bearer in [None, Some(viewer.token.as_str())] {
        let answer = http(server.http_addr, "POST", &path("refresh-token"), bearer, None).await;
        let data = &answer.body["data"];
        assert_eq!((data["role"].clone(), data["uid"].clone()), (json!("subscriber"), json!(0)));
        assert_eq!(open(data["token"].as_str().unwrap()), Opened { issued_at: later, ..subscriber(&session) });
    }
    let forged = http(server.http_addr, "POST", &path("refresh-token"), Some("a.b.c"), None).await;
    assert_eq!((forged.status, forged.body["message"].clone()), (401, json!("Invalid or expired token")));

    // Paused streams still get tokens; ended ones do not; unknown sessions are 404.
    cleo.status(&session, "paused").await;
    assert_eq!(http(server.http_addr, "GET", &path("stream-token"), None, None).await.status, 200);
    cleo.end_stream(&session).await;
    let ended = http(server.http_addr, "GET", &path("stream-token"), None, None).await;
    assert_eq!((ended.status, ended.body["message"].clone()), (409, json!("Session has already ended")));
    let ended = http(server.http_addr, "POST", &path("refresh-token"), Some(&cleo.token), None).await;
    assert_eq!(ended.status, 409);
    let missing = http(server.http_addr, "GET", "/api/sessions/nope/stream-token", None, None).await;
    assert_eq!((missing.status, missing.body["message"].clone()), (404, json!("Session not found")));

    // A creator whose subject is not a 32-bit number publishes as uid 0 (any uid).
    let sso = User { token: crate::support::token("sso|dana", "Dana", None), sub: "sso|dana".into(), ..cleo.clone() };
    let other = sso.session("SSO", &[]).await;
    let started = sso.start_stream(&other).await;
    assert_eq!(started.body["data"]["uid"], json!(0));
    assert_eq!(
        open(started.body["data"]["token"].as_str().unwrap()),
        Opened { issued_at: later, ..publisher(&other, "") }
    );
    stop(server).await;
}

#[tokio::test]
async fn without_agora_credentials_the_token_routes_answer_503() {
    let dir = tempfile::tempdir().unwrap();
    let (server, _clock) = start(dir.path()).await;
    let cleo = User::new(&server, "1", "Cleo");
    let session = cleo.session("Live", &[]).await;
    let started = cleo.start_stream(&session).await;
    let data = &started.body["data"];
    assert_eq!(
        (data["token"].clone(), data["appId"].clone(), data["expiresAt"].clone(), data["uid"].clone()),
        (json!(null), json!(null), json!(null), json!(1)),
        "start-stream works, its token fields are null"
    );
    let message = "Agora is not configured on this server (--agora-app-id and --agora-app-certificate)";
    for (method, route) in [("GET", "stream-token"), ("POST", "refresh-token")] {
        let answer = http(server.http_addr, method, &format!("/api/sessions/{session}/{route}"), None, None).await;
        assert_eq!((answer.status, answer.body), (503, json!({"success": false, "message": message})), "{route}");
    }
    stop(server).await;
}
