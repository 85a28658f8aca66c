//! The REST API. The seed's endpoints (`create`, `join`) need no token and answer exactly as the seeds say;
//! the operations (`participant`, `movie`, `vote`, `unvote`) identify the participant by
//! `Authorization: Bearer <token>` (the broker's JWT), so one identity votes once whichever way it comes.

use crate::movies::{CREATED, perform};
use crate::request::{self, SESSION_ID_REQUIRED};
use crate::sessions::{NOT_FOUND, Sessions};
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, Response, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::post;
use chorus_core::auth::{Identity, bearer_token};
use chorus_core::http::json_error;
use chorus_core::module::{Context, ModuleError};
use chorus_core::protocol::ErrorCode;
use serde_json::Value;
use std::sync::Arc;

/// The seed's join message.
const JOIN_OK: &str = "Session found. You can now connect via WebSocket.";

#[derive(Clone)]
struct App {
    sessions: Arc<Sessions>,
    ctx: Context,
}

/// The module's routes.
pub(crate) fn router(sessions: Arc<Sessions>, ctx: Context) -> Router {
    Router::new()
        .route("/api/session/create", post(create))
        .route("/api/session/join", post(join))
        .route("/api/session/participant", post(|s: State<App>, h: HeaderMap, b: Bytes| operate(s, h, b, "join")))
        .route("/api/session/movie", post(|s: State<App>, h: HeaderMap, b: Bytes| operate(s, h, b, "addMovie")))
        .route("/api/session/vote", post(|s: State<App>, h: HeaderMap, b: Bytes| operate(s, h, b, "vote")))
        .route("/api/session/unvote", post(|s: State<App>, h: HeaderMap, b: Bytes| operate(s, h, b, "unvote")))
        .with_state(App { sessions, ctx })
}

fn json(status: StatusCode, body: Vec<u8>) -> Response<Body> {
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// The HTTP status of a module error.
fn status(e: &ModuleError) -> StatusCode {
    match e.code {
        ErrorCode::NotFound => StatusCode::NOT_FOUND,
        ErrorCode::Conflict => StatusCode::CONFLICT,
        ErrorCode::Forbidden => StatusCode::FORBIDDEN,
        ErrorCode::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        ErrorCode::InvalidArgument | ErrorCode::InvalidPayload => StatusCode::BAD_REQUEST,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// A JSON body; an empty body reads as `null` (so it fails field checks with their own messages). The
/// error is the 400 message.
fn body_json(body: &[u8]) -> Result<Value, String> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Value::Null);
    }
    serde_json::from_slice(body).map_err(|e| format!("Request body is not valid JSON: {e}"))
}

async fn create(State(app): State<App>) -> Response<Body> {
    match app.sessions.create(&app.ctx).await {
        Ok(id) => {
            let body = serde_json::json!({ "sessionID": id, "message": CREATED });
            (StatusCode::OK, axum::Json(body)).into_response()
        }
        Err(e) => {
            tracing::warn!(error = %e, "session create failed");
            json_error(StatusCode::INTERNAL_SERVER_ERROR, "Failed to create session")
        }
    }
}

async fn join(State(app): State<App>, body: Bytes) -> Response<Body> {
    let args = match body_json(&body) {
        Ok(args) => args,
        Err(message) => return json_error(StatusCode::BAD_REQUEST, &message),
    };
    let Ok(id) = request::session_id(&args) else {
        return json_error(StatusCode::BAD_REQUEST, SESSION_ID_REQUIRED);
    };
    match app.sessions.snapshot(&app.ctx, id).await {
        Ok(snapshot) => {
            let body = format!(
                r#"{{"sessionID":{},"message":{},"sessionData":{}}}"#,
                Value::from(snapshot.id),
                Value::from(JOIN_OK),
                snapshot.json
            );
            json(StatusCode::OK, body.into_bytes())
        }
        Err(e) if e.code == ErrorCode::NotFound => json_error(StatusCode::NOT_FOUND, NOT_FOUND),
        Err(e) => {
            tracing::warn!(session = id, error = %e, "session join failed");
            json_error(StatusCode::INTERNAL_SERVER_ERROR, "Failed to join session")
        }
    }
}

/// The identity of `Authorization: Bearer <token>`. The error is the 401 message.
fn bearer(ctx: &Context, headers: &HeaderMap) -> Result<Identity, String> {
    let token = bearer_token(headers).ok_or_else(|| "Authorization: Bearer <token> is required".to_owned())?;
    ctx.verify_token(token).map_err(|e| e.to_string())
}

async fn operate(State(app): State<App>, headers: HeaderMap, body: Bytes, method: &'static str) -> Response<Body> {
    let identity = match bearer(&app.ctx, &headers) {
        Ok(identity) => identity,
        Err(message) => return json_error(StatusCode::UNAUTHORIZED, &message),
    };
    let args = match body_json(&body) {
        Ok(args) => args,
        Err(message) => return json_error(StatusCode::BAD_REQUEST, &message),
    };
    match perform(&app.ctx, &app.sessions, method, &args, &identity).await {
        Ok(body) => {
            let code = if method == "addMovie" { StatusCode::CREATED } else { StatusCode::OK };
            json(code, body)
        }
        Err(e) => json_error(status(&e), &e.message),
    }
}
