//! Accounts: `/api/auth` (register, login, logout, currentUser, refresh-token, update) and `/api/users`
//! (incl. `/live`) on a real broker — argon2 passwords, access tokens that open the realtime connection,
//! refresh tokens that rotate and are revoked by logout, every refusal, and accounts turned off.

use crate::support::{Answer, User, at, http, native_ws, start, start_keyed, start_with, stop, token};
use chorus_core::server::Server;
use chorus_live_commerce::Settings;
use serde_json::{Value, json};
use std::net::SocketAddr;

/// A request without a token.
async fn anon(addr: SocketAddr, method: &str, path: &str, body: Value) -> Answer {
    http(addr, method, path, None, Some(&body)).await
}

/// Registers `{ name, email, password }` and returns the answer's `data`.
async fn register(server: &Server, name: &str, email: &str, password: &str, role: Option<&str>) -> Value {
    let mut body = json!({"name": name, "email": email, "password": password});
    if let Some(role) = role {
        body["role"] = json!(role);
    }
    let answer = anon(server.http_addr, "POST", "/api/auth/register", body).await;
    assert_eq!(answer.status, 201, "{answer:?}");
    answer.body["data"].clone()
}

fn refusal(answer: &Answer) -> (u16, Value, Value) {
    (answer.status, answer.body["success"].clone(), answer.body["message"].clone())
}

fn user_view(id: u64, name: &str, email: &str, role: &str, updated_ms: u64) -> Value {
    json!({
        "id": id, "name": name, "username": name, "email": email, "role": role,
        "createdAt": at(0), "updatedAt": at(updated_ms)
    })
}

#[tokio::test]
async fn register_login_current_user_and_refusals() {
    let dir = tempfile::tempdir().unwrap();
    let (server, _clock) = start(dir.path()).await;
    let addr = server.http_addr;

    let body = json!({"name": "John Doe", "email": "john@example.com", "password": "correct horse"});
    let registered = anon(addr, "POST", "/api/auth/register", body).await;
    assert_eq!(registered.status, 201);
    assert_eq!(registered.body["success"], json!(true));
    assert_eq!(registered.body["message"], json!("User registered successfully"));
    let data = &registered.body["data"];
    let john = user_view(1, "John Doe", "john@example.com", "user", 0);
    assert_eq!(data["user"], john);
    let access = data["accessToken"].as_str().unwrap().to_owned();
    let refresh = data["refreshToken"].as_str().unwrap();
    assert!(refresh.starts_with("1.") && refresh.len() == 2 + 43, "{refresh}");
    assert_eq!(data.as_object().unwrap().len(), 3);

    // The stored password is an argon2 PHC string with the default parameters, never the password.
    let rows = crate::support::rows(&server, "commerce_users", "all").await;
    let hash = rows[0]["password_hash"].as_str().unwrap();
    assert!(hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{hash}");
    assert!(!hash.contains("correct horse"));

    // Numbered users: the second is 2; a creator may register as one.
    let cleo = register(&server, "Cleo", "cleo@example.com", "password2", Some("creator")).await;
    assert_eq!(cleo["user"], user_view(2, "Cleo", "cleo@example.com", "creator", 0));

    let login =
        anon(addr, "POST", "/api/auth/login", json!({"email": "JOHN@example.com", "password": "correct horse"})).await;
    assert_eq!((login.status, login.body["message"].clone()), (200, json!("Login successful")));
    assert_eq!(login.body["data"]["user"], john);
    let login_access = login.body["data"]["accessToken"].as_str().unwrap().to_owned();

    for token in [&access, &login_access] {
        let me = http(addr, "GET", "/api/auth/currentUser", Some(token), None).await;
        assert_eq!((me.status, me.body.clone()), (200, json!({"success": true, "data": john})));
    }

    // Refusals, each with the envelope.
    let wrong =
        anon(addr, "POST", "/api/auth/login", json!({"email": "john@example.com", "password": "wrong horse"})).await;
    assert_eq!(refusal(&wrong), (401, json!(false), json!("Invalid email or password")));
    let unknown =
        anon(addr, "POST", "/api/auth/login", json!({"email": "nobody@example.com", "password": "whatever1"})).await;
    assert_eq!(refusal(&unknown), (401, json!(false), json!("Invalid email or password")));
    let duplicate = anon(
        addr,
        "POST",
        "/api/auth/register",
        json!({"name": "Other John", "email": "John@Example.com", "password": "password3"}),
    )
    .await;
    assert_eq!(refusal(&duplicate), (409, json!(false), json!("User with this email already exists")));
    let cases = [
        (json!({"email": "a@example.com", "password": "password1"}), "name is required"),
        (json!({"name": "A", "password": "password1"}), "email is required"),
        (json!({"name": "A", "email": "not-an-email", "password": "password1"}), "email must be a valid email address"),
        (json!({"name": "A", "email": "a@example.com"}), "password is required"),
        (json!({"name": "A", "email": "a@example.com", "password": "short"}), "password must be 8 to 128 characters"),
        (json!({"name": "A", "email": "a@example.com", "password": 12345678}), "password must be a string"),
        (
            json!({"name": "x".repeat(256), "email": "a@example.com", "password": "password1"}),
            "name must be at most 255 characters",
        ),
        (
            json!({"name": "A", "email": "a@example.com", "password": "password1", "role": "king"}),
            "Invalid role. Must be one of: user, creator, moderator, admin",
        ),
    ];
    for (body, message) in cases {
        let answer = anon(addr, "POST", "/api/auth/register", body.clone()).await;
        assert_eq!(refusal(&answer), (400, json!(false), json!(message)), "{body}");
    }
    let admin = anon(
        addr,
        "POST",
        "/api/auth/register",
        json!({"name": "A", "email": "a@example.com", "password": "password1", "role": "admin"}),
    )
    .await;
    assert_eq!(refusal(&admin), (403, json!(false), json!("Only an admin can give the role admin")));
    let raw = chorus_testkit::http::request(
        addr,
        "POST",
        "/api/auth/login",
        &[("Content-Type", "application/json")],
        Some("{nope"),
    )
    .await
    .unwrap();
    assert_eq!(
        (raw.status, raw.json()),
        (400, json!({"success": false, "message": "The request body is not valid JSON"}))
    );
    let no_password = anon(addr, "POST", "/api/auth/login", json!({"email": "john@example.com"})).await;
    assert_eq!(refusal(&no_password), (400, json!(false), json!("password is required")));

    let none = http(addr, "GET", "/api/auth/currentUser", None, None).await;
    assert_eq!(refusal(&none), (401, json!(false), json!("Access token required")));
    let forged = http(addr, "GET", "/api/auth/currentUser", Some("a.b.c"), None).await;
    assert_eq!(refusal(&forged), (401, json!(false), json!("Invalid or expired token")));
    // A valid broker token whose subject has no account.
    let stranger = token("77", "Stranger", None);
    let missing = http(addr, "GET", "/api/auth/currentUser", Some(&stranger), None).await;
    assert_eq!(refusal(&missing), (404, json!(false), json!("User not found")));
    stop(server).await;
}

#[tokio::test]
async fn concurrent_registrations_get_distinct_ids_and_one_email_one_account() {
    let dir = tempfile::tempdir().unwrap();
    let (server, _clock) = start(dir.path()).await;
    let addr = server.http_addr;
    let same = (0..4).map(|i| {
        let body = json!({"name": format!("Twin {i}"), "email": "twin@example.com", "password": "password1"});
        async move { anon(addr, "POST", "/api/auth/register", body).await.status }
    });
    let mut statuses = futures_util::future::join_all(same).await;
    statuses.sort_unstable();
    assert_eq!(statuses, [201, 409, 409, 409]);
    let distinct = (0..4).map(|i| {
        let body = json!({"name": "N", "email": format!("n{i}@example.com"), "password": "password1"});
        async move { anon(addr, "POST", "/api/auth/register", body).await.body["data"]["user"]["id"].as_u64().unwrap() }
    });
    let mut ids = futures_util::future::join_all(distinct).await;
    ids.sort_unstable();
    assert_eq!(ids, [2, 3, 4, 5]);
    let listed = http(addr, "GET", "/api/users", None, None).await;
    assert_eq!(listed.body["count"], json!(5));
    stop(server).await;
}

#[tokio::test]
async fn a_login_token_opens_the_realtime_connection() {
    let dir = tempfile::tempdir().unwrap();
    let (server, _clock) = start(dir.path()).await;
    register(&server, "Cleo", "cleo@example.com", "password1", Some("creator")).await;
    let login = anon(
        server.http_addr,
        "POST",
        "/api/auth/login",
        json!({"email": "cleo@example.com", "password": "password1"}),
    )
    .await;
    let access = login.body["data"]["accessToken"].as_str().unwrap().to_owned();

    let client = native_ws(&server, Some(&access)).await;
    let identity = &client.welcome().identity;
    assert_eq!(
        (identity.sub.as_str(), identity.name.as_deref(), identity.role.as_deref(), identity.guest),
        ("1", Some("Cleo"), Some("creator"), false)
    );
    // The same token is the creator of sessions over REST and the publisher of their room.
    let cleo = User { addr: server.http_addr, sub: "1".into(), token: access.clone() };
    let mouse = cleo.product("Gaming Mouse", 59.99).await;
    let session = cleo.session("Live", &[mouse]).await;
    let snapshot = crate::support::join(&client, &session).await;
    assert_eq!(snapshot, json!({"event": "viewer-count", "data": 0}), "the creator joins as the publisher");
    client.close().await;
    stop(server).await;
}

#[tokio::test]
async fn refresh_tokens_rotate_and_logout_revokes_them() {
    let dir = tempfile::tempdir().unwrap();
    let (server, clock) = start(dir.path()).await;
    let addr = server.http_addr;
    let first = register(&server, "John", "john@example.com", "password1", None).await;
    let refresh = first["refreshToken"].as_str().unwrap().to_owned();

    let renewed = anon(addr, "POST", "/api/auth/refresh-token", json!({"refreshToken": refresh})).await;
    assert_eq!((renewed.status, renewed.body["message"].clone()), (200, json!("Token refreshed successfully")));
    let data = &renewed.body["data"];
    assert_eq!(data["user"]["id"], json!(1));
    let access = data["accessToken"].as_str().unwrap().to_owned();
    let next = data["refreshToken"].as_str().unwrap().to_owned();
    assert_ne!(next, refresh);
    let me = http(addr, "GET", "/api/auth/currentUser", Some(&access), None).await;
    assert_eq!(me.body["data"]["email"], json!("john@example.com"));

    // Two uses of one token at once: one wins.
    let racing = (0..2).map(|_| {
        let body = json!({"refreshToken": next});
        async move { anon(addr, "POST", "/api/auth/refresh-token", body).await }
    });
    let mut answers = futures_util::future::join_all(racing).await;
    answers.sort_by_key(|a| a.status);
    assert_eq!((answers[0].status, answers[1].status), (200, 401));
    let next = answers[0].body["data"]["refreshToken"].as_str().unwrap().to_owned();

    // Rotation: the used token is spent.
    let reused = anon(addr, "POST", "/api/auth/refresh-token", json!({"refreshToken": refresh})).await;
    assert_eq!(refusal(&reused), (401, json!(false), json!("Invalid or expired refresh token")));
    for bad in [
        "garbage",
        "1.short",
        "x.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "1.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
    ] {
        let answer = anon(addr, "POST", "/api/auth/refresh-token", json!({"refreshToken": bad})).await;
        assert_eq!(refusal(&answer), (401, json!(false), json!("Invalid or expired refresh token")), "{bad}");
    }
    let missing = anon(addr, "POST", "/api/auth/refresh-token", json!({})).await;
    assert_eq!(refusal(&missing), (400, json!(false), json!("refreshToken is required")));

    // A second device logs in; logout revokes every refresh token of the user.
    let other =
        anon(addr, "POST", "/api/auth/login", json!({"email": "john@example.com", "password": "password1"})).await;
    let other_refresh = other.body["data"]["refreshToken"].as_str().unwrap().to_owned();
    let no_token = http(addr, "POST", "/api/auth/logout", None, None).await;
    assert_eq!(refusal(&no_token), (401, json!(false), json!("Access token required")));
    let out = http(addr, "POST", "/api/auth/logout", Some(&access), None).await;
    assert_eq!(
        (out.status, out.body.clone()),
        (200, json!({"success": true, "message": "Logout successful", "data": null}))
    );
    for spent in [&next, &other_refresh] {
        let answer = anon(addr, "POST", "/api/auth/refresh-token", json!({"refreshToken": spent})).await;
        assert_eq!(refusal(&answer), (401, json!(false), json!("Invalid or expired refresh token")));
    }

    // Refresh tokens expire after 30 days (module clock).
    let fresh =
        anon(addr, "POST", "/api/auth/login", json!({"email": "john@example.com", "password": "password1"})).await;
    let fresh = fresh.body["data"]["refreshToken"].as_str().unwrap().to_owned();
    clock.advance(std::time::Duration::from_secs(30 * 24 * 3600));
    let expired = anon(addr, "POST", "/api/auth/refresh-token", json!({"refreshToken": fresh})).await;
    assert_eq!(refusal(&expired), (401, json!(false), json!("Invalid or expired refresh token")));
    stop(server).await;
}

#[tokio::test]
async fn update_and_the_users_routes() {
    let dir = tempfile::tempdir().unwrap();
    let (server, clock) = start(dir.path()).await;
    let addr = server.http_addr;
    let john = register(&server, "John", "john@example.com", "password1", None).await;
    let john_token = john["accessToken"].as_str().unwrap().to_owned();
    register(&server, "Cleo", "cleo@example.com", "password2", Some("creator")).await;

    clock.advance(std::time::Duration::from_millis(1500));
    let changed = http(
        addr,
        "POST",
        "/api/auth/update",
        Some(&john_token),
        Some(&json!({"name": "John Doe", "email": "jd@example.com", "password": "new password", "role": "creator"})),
    )
    .await;
    let john_view = user_view(1, "John Doe", "jd@example.com", "creator", 1500);
    assert_eq!(
        (changed.status, changed.body.clone()),
        (200, json!({"success": true, "message": "User updated successfully", "data": john_view}))
    );
    let old =
        anon(addr, "POST", "/api/auth/login", json!({"email": "john@example.com", "password": "new password"})).await;
    assert_eq!(old.status, 401, "the old email is free again");
    let old_password =
        anon(addr, "POST", "/api/auth/login", json!({"email": "jd@example.com", "password": "password1"})).await;
    assert_eq!(old_password.status, 401);
    let new =
        anon(addr, "POST", "/api/auth/login", json!({"email": "jd@example.com", "password": "new password"})).await;
    assert_eq!(new.status, 200);
    let spent = anon(addr, "POST", "/api/auth/refresh-token", json!({"refreshToken": john["refreshToken"]})).await;
    assert_eq!(spent.status, 401, "a new password revokes the refresh tokens");
    let taken =
        http(addr, "POST", "/api/auth/update", Some(&john_token), Some(&json!({"email": "CLEO@example.com"}))).await;
    assert_eq!(refusal(&taken), (409, json!(false), json!("User with this email already exists")));
    let nothing = http(addr, "POST", "/api/auth/update", Some(&john_token), Some(&json!({}))).await;
    assert_eq!(refusal(&nothing), (400, json!(false), json!("Nothing to update: give name, email, password or role")));
    let promote = http(addr, "POST", "/api/auth/update", Some(&john_token), Some(&json!({"role": "moderator"}))).await;
    assert_eq!(refusal(&promote), (403, json!(false), json!("Only an admin can give the role moderator")));
    let anonymous = http(addr, "POST", "/api/auth/update", None, Some(&json!({"name": "X"}))).await;
    assert_eq!(refusal(&anonymous), (401, json!(false), json!("Access token required")));

    // /api/users: list, one, create, update, delete.
    let cleo_view = user_view(2, "Cleo", "cleo@example.com", "creator", 0);
    let all = http(addr, "GET", "/api/users", None, None).await;
    assert_eq!(all.body, json!({"success": true, "data": [john_view, cleo_view], "count": 2}));
    let one = http(addr, "GET", "/api/users/2", None, None).await;
    assert_eq!(one.body, json!({"success": true, "data": cleo_view}));
    for missing in ["/api/users/9", "/api/users/abc"] {
        let answer = http(addr, "GET", missing, None, None).await;
        assert_eq!(refusal(&answer), (404, json!(false), json!("User not found")));
    }
    let created =
        anon(addr, "POST", "/api/users", json!({"name": "Mo", "email": "mo@example.com", "password": "password3"}))
            .await;
    let mo_view = json!({
        "id": 3, "name": "Mo", "username": "Mo", "email": "mo@example.com", "role": "user",
        "createdAt": at(1500), "updatedAt": at(1500)
    });
    assert_eq!(
        (created.status, created.body.clone()),
        (201, json!({"success": true, "message": "User created successfully", "data": mo_view}))
    );
    let dup =
        anon(addr, "POST", "/api/users", json!({"name": "Mo", "email": "mo@example.com", "password": "password3"}))
            .await;
    assert_eq!(dup.status, 409);
    // Only the user or an admin changes or deletes an account.
    let as_john = http(addr, "PUT", "/api/users/3", Some(&john_token), Some(&json!({"name": "Hacked"}))).await;
    assert_eq!(refusal(&as_john), (403, json!(false), json!("Only the user or an admin can change this account")));
    let unsigned = http(addr, "PUT", "/api/users/3", None, Some(&json!({"name": "Hacked"}))).await;
    assert_eq!(unsigned.status, 401);
    let admin = token("100", "Root", Some("admin"));
    let promoted = http(addr, "PUT", "/api/users/3", Some(&admin), Some(&json!({"role": "moderator"}))).await;
    assert_eq!((promoted.status, promoted.body["data"]["role"].clone()), (200, json!("moderator")));
    let admin_made = http(
        addr,
        "POST",
        "/api/users",
        Some(&admin),
        Some(&json!({"name": "Ada", "email": "ada@example.com", "password": "password4", "role": "admin"})),
    )
    .await;
    assert_eq!((admin_made.status, admin_made.body["data"]["role"].clone()), (201, json!("admin")));
    let delete_other = http(addr, "DELETE", "/api/users/3", Some(&john_token), None).await;
    assert_eq!(refusal(&delete_other), (403, json!(false), json!("Only the user or an admin can delete this account")));
    let deleted = http(addr, "DELETE", "/api/users/1", Some(&john_token), None).await;
    assert_eq!(deleted.body, json!({"success": true, "message": "User deleted successfully", "data": null}));
    assert_eq!(http(addr, "GET", "/api/users/1", None, None).await.status, 404);
    let gone =
        anon(addr, "POST", "/api/auth/login", json!({"email": "jd@example.com", "password": "new password"})).await;
    assert_eq!(gone.status, 401);
    // The email is free again.
    register(&server, "John", "jd@example.com", "password1", None).await;
    stop(server).await;
}

#[tokio::test]
async fn live_users_are_the_creators_of_live_sessions_most_recent_first() {
    let dir = tempfile::tempdir().unwrap();
    let (server, clock) = start(dir.path()).await;
    let addr = server.http_addr;
    let mut creators = Vec::new();
    for (name, email) in [("Cleo", "cleo@example.com"), ("Dan", "dan@example.com"), ("Eve", "eve@example.com")] {
        let data = register(&server, name, email, "password1", Some("creator")).await;
        let id = data["user"]["id"].to_string();
        creators.push(User { addr, sub: id, token: data["accessToken"].as_str().unwrap().to_owned() });
    }
    let empty = http(addr, "GET", "/api/users/live", None, None).await;
    assert_eq!(empty.body, json!({"success": true, "data": [], "count": 0}));

    let body = json!({"title": "Live Gaming Session", "description": "Playing games live!", "category": "gaming", "tags": ["fps", "competitive"]});
    let created = creators[0].call("POST", "/api/sessions", Some(body)).await;
    let cleo_session = created.body["data"]["id"].as_str().unwrap().to_owned();
    creators[0].start_stream(&cleo_session).await;
    clock.advance(std::time::Duration::from_secs(60));
    let dan_session = creators[1].session("Dan live", &[]).await;
    creators[1].start_stream(&dan_session).await;
    // Eve's session is only scheduled: not live.
    creators[2].session("Later", &[]).await;

    let live = http(addr, "GET", "/api/users/live", None, None).await;
    assert_eq!(live.body["count"], json!(2));
    let data = live.body["data"].as_array().unwrap();
    assert_eq!(data[0]["id"], json!(2), "most recently started first");
    assert_eq!(
        data[1],
        json!({
            "id": 1, "name": "Cleo", "username": "Cleo", "email": "cleo@example.com", "role": "creator",
            "createdAt": at(0), "updatedAt": at(0),
            "liveSession": {
                "id": cleo_session, "title": "Live Gaming Session", "description": "Playing games live!",
                "category": "gaming", "tags": ["fps", "competitive"], "status": "live",
                "startedAt": at(0), "agoraChannelName": cleo_session
            }
        })
    );
    assert_eq!(data[0]["liveSession"]["startedAt"], json!(at(60_000)));
    creators[1].end_stream(&dan_session).await;
    let after = http(addr, "GET", "/api/users/live", None, None).await;
    assert_eq!(after.body["count"], json!(1));
    assert_eq!(after.body["data"][0]["id"], json!(1));
    stop(server).await;
}

#[tokio::test]
async fn accounts_turned_off_answer_404() {
    let dir = tempfile::tempdir().unwrap();
    let (server, _clock) = start_with(dir.path(), Settings { accounts: false, ..Settings::default() }).await;
    let message =
        "Accounts are turned off on this server (--commerce-accounts=false): sign in with your identity provider";
    let body = json!({"name": "A", "email": "a@example.com", "password": "password1"});
    for (method, path) in [
        ("POST", "/api/auth/register"),
        ("POST", "/api/auth/login"),
        ("POST", "/api/auth/logout"),
        ("GET", "/api/auth/currentUser"),
        ("POST", "/api/auth/refresh-token"),
        ("POST", "/api/auth/update"),
        ("GET", "/api/users"),
        ("POST", "/api/users"),
        ("GET", "/api/users/live"),
        ("GET", "/api/users/1"),
        ("PUT", "/api/users/1"),
        ("DELETE", "/api/users/1"),
    ] {
        let answer = anon(server.http_addr, method, path, body.clone()).await;
        assert_eq!(refusal(&answer), (404, json!(false), json!(message)), "{method} {path}");
    }
    // The identity provider's tokens still work everywhere else.
    let cleo = User::new(&server, "sso|cleo", "Cleo");
    cleo.product("Mouse", 1.0).await;
    stop(server).await;
}

#[tokio::test]
async fn without_an_hs256_secret_accounts_cannot_sign_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let public = dir.path().join("jwt.pub.pem");
    // An Ed25519 public key (its private half was thrown away): the broker verifies, it cannot sign.
    std::fs::write(
        &public,
        "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEAf0i5m40DV5dVX/phvPtLx2yfCW++6sYVUWNrAMwQsr4=\n-----END PUBLIC KEY-----\n",
    )
    .unwrap();
    let data = dir.path().join("data");
    let key = ["--jwt-public-key", public.to_str().unwrap(), "--jwt-alg", "EdDSA"];
    let (server, _clock) = start_keyed(&data, &key, Settings::default()).await;
    let body = json!({"name": "A", "email": "a@example.com", "password": "password1"});
    let message = "Accounts cannot sign tokens: this server verifies tokens with a public key only (set --jwt-secret to issue them here)";
    for path in ["/api/auth/register", "/api/auth/login", "/api/auth/refresh-token"] {
        let answer = anon(server.http_addr, "POST", path, body.clone()).await;
        assert_eq!(refusal(&answer), (503, json!(false), json!(message)), "{path}");
    }
    assert_eq!(crate::support::rows(&server, "commerce_users", "all").await, Vec::<Value>::new(), "nothing stored");
    stop(server).await;

    let (server, _clock) = start_keyed(&dir.path().join("guests"), &[], Settings::default()).await;
    let answer = anon(server.http_addr, "POST", "/api/auth/register", body).await;
    assert_eq!(
        refusal(&answer),
        (503, json!(false), json!("Accounts cannot sign tokens: this server has no --jwt-secret configured"))
    );
    stop(server).await;
}
