//! The Engine.IO entry point: checks `EIO`, `transport` and `sid` as the specification requires, answers
//! CORS, and hands the request to the long-polling or WebSocket transport. Refusals are Engine.IO's own:
//! HTTP 400 (403 for forbidden) with `{"code": n, "message": "..."}`. Beside it, the browser client bundle.

use super::session::Mode;
use super::{Gateway, polling, websocket};
use crate::metrics::socketio as metrics;
use crate::ws;
use axum::Router;
use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{HeaderValue, Method, Request, Response, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::{any, get};
use chorus_protocol::engineio::VERSION;
use serde::Deserialize;
use std::sync::Arc;

/// Engine.IO's error codes (`Server.errors` in the reference server).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EngineRefusal {
    /// 0: the `transport` is not `polling` or `websocket`.
    UnknownTransport,
    /// 1: no session has this `sid`.
    UnknownSid,
    /// 2: a handshake must be a `GET`.
    BadHandshakeMethod,
    /// 3: the request does not fit the session (wrong transport, overlapping request, bad body).
    BadRequest,
    /// 5: `EIO` is missing or not 4.
    UnsupportedProtocolVersion,
}

impl EngineRefusal {
    fn code(self) -> u8 {
        match self {
            Self::UnknownTransport => 0,
            Self::UnknownSid => 1,
            Self::BadHandshakeMethod => 2,
            Self::BadRequest => 3,
            Self::UnsupportedProtocolVersion => 5,
        }
    }

    fn message(self) -> &'static str {
        match self {
            Self::UnknownTransport => "Transport unknown",
            Self::UnknownSid => "Session ID unknown",
            Self::BadHandshakeMethod => "Bad handshake method",
            Self::BadRequest => "Bad request",
            Self::UnsupportedProtocolVersion => "Unsupported protocol version",
        }
    }

    fn label(self) -> &'static str {
        match self {
            Self::UnknownTransport => "unknown_transport",
            Self::UnknownSid => "unknown_sid",
            Self::BadHandshakeMethod => "bad_handshake_method",
            Self::BadRequest => "bad_request",
            Self::UnsupportedProtocolVersion => "unsupported_protocol_version",
        }
    }
}

/// The Engine.IO error answer.
pub(crate) fn refuse(refusal: EngineRefusal) -> Response<Body> {
    metrics::error(refusal.label());
    let body = serde_json::json!({ "code": refusal.code(), "message": refusal.message() });
    (StatusCode::BAD_REQUEST, axum::Json(body)).into_response()
}

#[derive(Deserialize)]
struct EngineQuery {
    #[serde(rename = "EIO")]
    eio: Option<String>,
    transport: Option<String>,
    sid: Option<String>,
    token: Option<String>,
}

/// The browser client, `socket.io-client` 4.8.3's `dist/socket.io.min.js` (see `vendor/socket.io-client/`).
const CLIENT_BUNDLE: &str = include_str!("../../vendor/socket.io-client/socket.io.min.js");

/// The gateway's routes at `path` (with and without its trailing slash), and the browser client at
/// `{path}socket.io.min.js` and `{path}socket.io.js`, where the Node server serves it.
pub(crate) fn router(gateway: Arc<Gateway>, path: &str) -> Router {
    let bare = path.trim_end_matches('/');
    Router::new()
        .route(&format!("{path}socket.io.min.js"), get(client_bundle))
        .route(&format!("{path}socket.io.js"), get(client_bundle))
        .route(path, any(entry))
        .route(bare, any(entry))
        .with_state(gateway)
}

async fn client_bundle() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "application/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        CLIENT_BUNDLE,
    )
}

async fn entry(State(gateway): State<Arc<Gateway>>, query: Query<EngineQuery>, req: Request<Body>) -> Response<Body> {
    let origin = req.headers().get(header::ORIGIN).cloned();
    let preflight = req.method() == Method::OPTIONS;
    let mut response = if preflight {
        let mut r = StatusCode::NO_CONTENT.into_response();
        if let Some(asked) = req.headers().get(header::ACCESS_CONTROL_REQUEST_HEADERS) {
            r.headers_mut().insert(header::ACCESS_CONTROL_ALLOW_HEADERS, asked.clone());
        }
        r.headers_mut().insert(header::ACCESS_CONTROL_ALLOW_METHODS, HeaderValue::from_static("GET, POST"));
        r
    } else {
        dispatch(gateway.clone(), query.0, req).await
    };
    if let Some(origin) = origin
        && origin.to_str().is_ok_and(|o| gateway.ctx.config().socketio.allows_origin(o))
    {
        let h = response.headers_mut();
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        h.insert(header::ACCESS_CONTROL_ALLOW_CREDENTIALS, HeaderValue::from_static("true"));
        h.append(header::VARY, HeaderValue::from_static("Origin"));
    }
    response
}

async fn dispatch(gateway: Arc<Gateway>, query: EngineQuery, req: Request<Body>) -> Response<Body> {
    if query.eio.as_deref() != Some(VERSION) {
        return refuse(EngineRefusal::UnsupportedProtocolVersion);
    }
    let websocket = match query.transport.as_deref() {
        Some("polling") => false,
        Some("websocket") => true,
        _ => return refuse(EngineRefusal::UnknownTransport),
    };
    if gateway.node.shutdown.is_cancelled() {
        return crate::http::json_error(StatusCode::SERVICE_UNAVAILABLE, "shutting down");
    }
    let session = match &query.sid {
        None => None,
        Some(sid) => match gateway.sessions.read().get(sid) {
            Some(session) => Some(session.clone()),
            None => return refuse(EngineRefusal::UnknownSid),
        },
    };
    let is_get = req.method() == Method::GET;
    match (websocket, session) {
        (true, session) => {
            if !is_get {
                return refuse(EngineRefusal::BadRequest);
            }
            let token = query.token.or_else(|| ws::bearer(&req));
            websocket::accept(gateway, session, token, req)
        }
        (false, None) if is_get => polling::handshake(&gateway, query.token.or_else(|| ws::bearer(&req))),
        (false, None) => refuse(EngineRefusal::BadHandshakeMethod),
        (false, Some(session)) if session.mode() == Mode::WebSocket => refuse(EngineRefusal::BadRequest),
        (false, Some(session)) if is_get => polling::poll(&gateway, session).await,
        (false, Some(session)) if req.method() == Method::POST => polling::post(&gateway, session, req).await,
        (false, Some(_)) => refuse(EngineRefusal::BadRequest),
    }
}
