//! What the modules' demo pages share: `GET /demo/demo.css`, their style, and `GET /demo/demo.js`, their
//! common script (connection state in
//! words, reconnect backoff, the guidance shown when a page lacks its parameters, REST and token helpers,
//! loading the Socket.IO client from `--socketio-path`), and, in `--dev` mode only, `POST /demo/token`,
//! which mints a short-lived HS256 token so a page opened bare can create a demo event or session through
//! the module's own REST routes and connect.
//!
//! Outside dev mode `POST /demo/token` answers 404 `{ "message" }`: the broker never signs tokens for
//! anyone in production.

use crate::http::json_error;
use crate::node::Node;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{Response, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Lifetime of a minted demo token: long enough for a demo session, short enough that a copied token is
/// soon worthless. Pages mint a fresh one when they reconnect.
pub const DEV_TOKEN_TTL: Duration = Duration::from_secs(15 * 60);

/// Longest `sub`, `name` or `role` a demo token may carry (the claims are display text on the pages).
const MAX_CLAIM_CHARS: usize = 64;

/// The shared page script, after the config line [`script`] puts before it.
const SCRIPT: &str = include_str!("demo.js");

/// The shared style sheet.
const STYLE: &str = include_str!("demo.css");

/// The demo routes: `GET /demo/demo.js`, `GET /demo/demo.css` and `POST /demo/token`.
pub(crate) fn routes(node: Arc<Node>) -> Router {
    Router::new()
        .route("/demo/demo.js", get(script))
        .route("/demo/demo.css", get(|| async { ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], STYLE) }))
        .route("/demo/token", post(mint))
        .with_state(node)
}

/// The script, opening with what the pages must know about this broker: whether dev mode is on and where
/// the Socket.IO gateway is (`null` when it is off).
async fn script(State(node): State<Arc<Node>>) -> impl IntoResponse {
    let socketio = &node.config.socketio;
    let path = (!socketio.disable_socketio).then(|| socketio.socketio_path.clone());
    let config = json!({ "dev": node.config.dev, "socketioPath": path, "tokenTtlSecs": DEV_TOKEN_TTL.as_secs() });
    let body = format!("const CHORUS_BROKER = {config};\n{SCRIPT}");
    ([(header::CONTENT_TYPE, "application/javascript; charset=utf-8"), (header::CACHE_CONTROL, "no-store")], body)
}

/// `POST /demo/token` with an optional JSON body `{ sub?, name?, role? }` → `{ token, sub, expiresIn }`.
async fn mint(State(node): State<Arc<Node>>, body: Bytes) -> Response<Body> {
    let secret = match (&node.config.jwt_secret, node.config.dev) {
        (Some(secret), true) => secret,
        _ => {
            let message = "demo tokens are minted only in dev mode: start the broker with --dev (or CHORUS_DEV=true)";
            return json_error(StatusCode::NOT_FOUND, message);
        }
    };
    let claims = match requested_claims(&body) {
        Ok(claims) => claims,
        Err(message) => return json_error(StatusCode::UNPROCESSABLE_ENTITY, &message),
    };
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
    let sub = claims.sub.unwrap_or_else(|| format!("dev-{:08x}", rand::random::<u32>()));
    let mut token_claims = json!({ "sub": sub, "name": claims.name.unwrap_or_else(|| sub.clone()),
        "iat": now, "exp": now + DEV_TOKEN_TTL.as_secs() });
    if let Some(role) = claims.role {
        token_claims["role"] = Value::from(role);
    }
    let key = EncodingKey::from_secret(secret.as_bytes());
    match jsonwebtoken::encode(&Header::new(Algorithm::HS256), &token_claims, &key) {
        Ok(token) => {
            axum::Json(json!({ "token": token, "sub": sub, "expiresIn": DEV_TOKEN_TTL.as_secs() })).into_response()
        }
        Err(e) => json_error(StatusCode::INTERNAL_SERVER_ERROR, &format!("signing the token failed: {e}")),
    }
}

/// The claims a caller asked for.
#[derive(Debug, Default, PartialEq, Eq)]
struct Requested {
    sub: Option<String>,
    name: Option<String>,
    role: Option<String>,
}

/// Reads `{ sub?, name?, role? }` (an empty body asks for nothing); the error is the message for a 422.
fn requested_claims(body: &[u8]) -> Result<Requested, String> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Requested::default());
    }
    let value: Value = serde_json::from_slice(body).map_err(|e| format!("the body is not JSON: {e}"))?;
    let Value::Object(fields) = value else { return Err("the body must be a JSON object".to_owned()) };
    if let Some(key) = fields.keys().find(|k| !["sub", "name", "role"].contains(&k.as_str())) {
        return Err(format!("unknown field `{key}`: a demo token takes sub, name and role"));
    }
    let text = |key: &str| -> Result<Option<String>, String> {
        match fields.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if !s.trim().is_empty() && s.chars().count() <= MAX_CLAIM_CHARS => {
                Ok(Some(s.clone()))
            }
            Some(_) => Err(format!("`{key}` must be a non-empty string of at most {MAX_CLAIM_CHARS} characters")),
        }
    };
    Ok(Requested { sub: text("sub")?, name: text("name")?, role: text("role")? })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requested_claims_are_checked() {
        assert_eq!(requested_claims(b""), Ok(Requested::default()));
        assert_eq!(requested_claims(b" \n"), Ok(Requested::default()));
        let asked = requested_claims(br#"{"sub":"ann","role":"organizer","name":null}"#).unwrap();
        assert_eq!(asked, Requested { sub: Some("ann".into()), name: None, role: Some("organizer".into()) });
        assert!(requested_claims(b"{").unwrap_err().contains("not JSON"));
        assert!(requested_claims(b"[1]").unwrap_err().contains("JSON object"));
        assert!(requested_claims(br#"{"admin":true}"#).unwrap_err().contains("unknown field `admin`"));
        assert!(requested_claims(br#"{"sub":7}"#).unwrap_err().contains("`sub`"));
        assert!(requested_claims(br#"{"sub":"  "}"#).unwrap_err().contains("`sub`"));
        let long = format!(r#"{{"name":"{}"}}"#, "x".repeat(MAX_CLAIM_CHARS + 1));
        assert!(requested_claims(long.as_bytes()).unwrap_err().contains("`name`"));
    }
}
