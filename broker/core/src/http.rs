//! The HTTP side of the TCP port: the landing page `/` ([`crate::landing`]), the native WebSocket
//! endpoint `/v1/ws`, `/metrics`, `/health`, `/ready`, the demo pages' shared routes ([`crate::demo`]),
//! and the modules' REST routes. `/ws` is reserved for compat dialects; the Socket.IO gateway
//! ([`crate::socketio`]) adds its own routes at `--socketio-path`.

use crate::conn::{Accepted, serve};
use crate::demo;
use crate::landing::{self, Landing, Listeners};
use crate::node::Node;
use crate::ws;
use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Query, State};
use axum::http::{Request, Response, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use chorus_protocol::{Codec, SUBPROTOCOL_JSON, SUBPROTOCOL_MSGPACK};
use metrics_exporter_prometheus::PrometheusHandle;
use serde::Deserialize;
use std::net::SocketAddr;
use std::sync::Arc;

#[derive(Clone)]
struct App {
    node: Arc<Node>,
    prometheus: PrometheusHandle,
}

/// Builds the router: built-in routes plus each module's routes.
pub fn router(
    node: Arc<Node>,
    prometheus: PrometheusHandle,
    listeners: Listeners,
    module_routes: Vec<Router>,
) -> Router {
    let landing = Landing { node: node.clone(), listeners: Arc::new(listeners) };
    let demo = demo::routes(node.clone());
    let app = App { node, prometheus };
    let mut router = Router::new()
        .route("/v1/ws", get(native_ws))
        .route("/metrics", get(metrics))
        .route("/health", get(|| async { "ok" }))
        .route("/ready", get(ready))
        .with_state(app)
        .route("/", get(landing::page).with_state(landing))
        .merge(demo);
    for routes in module_routes {
        router = router.merge(routes);
    }
    // Every route of the core and of the modules answers an unknown path or a method it does not serve
    // with the documented `{message}` body (axum's own 404/405 have empty bodies).
    router
        .method_not_allowed_fallback(|req: Request<Body>| async move {
            json_error(
                StatusCode::METHOD_NOT_ALLOWED,
                &format!("{} is not allowed on {}", req.method(), req.uri().path()),
            )
        })
        .fallback(|req: Request<Body>| async move {
            json_error(StatusCode::NOT_FOUND, &format!("no route for {} {}", req.method(), req.uri().path()))
        })
}

/// A JSON `{ "message": ... }` error response, the shape every chorus HTTP error has.
pub fn json_error(status: StatusCode, message: &str) -> Response<Body> {
    (status, axum::Json(serde_json::json!({ "message": message }))).into_response()
}

async fn metrics(State(app): State<App>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], app.prometheus.render())
}

async fn ready(State(app): State<App>) -> Response<Body> {
    if app.node.is_ready() { "ready".into_response() } else { json_error(StatusCode::SERVICE_UNAVAILABLE, "not ready") }
}

#[derive(Deserialize)]
struct WsQuery {
    token: Option<String>,
    codec: Option<String>,
}

async fn native_ws(
    State(app): State<App>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Query(query): Query<WsQuery>,
    mut req: Request<Body>,
) -> Response<Body> {
    let offered = ws::offered_protocols(&req);
    let (codec, echo) = if offered.is_empty() {
        match query.codec.as_deref() {
            None | Some("msgpack") => (Codec::MsgPack, None),
            Some("json") => (Codec::Json, None),
            Some(_) => return json_error(StatusCode::BAD_REQUEST, "codec must be json or msgpack"),
        }
    } else if let Some(p) = offered.iter().find(|p| *p == SUBPROTOCOL_MSGPACK || *p == SUBPROTOCOL_JSON) {
        let codec = if p == SUBPROTOCOL_JSON { Codec::Json } else { Codec::MsgPack };
        (codec, Some(p.clone()))
    } else {
        let msg = format!("unsupported subprotocol; offer {SUBPROTOCOL_MSGPACK} or {SUBPROTOCOL_JSON}");
        return json_error(StatusCode::BAD_REQUEST, &msg);
    };
    if app.node.shutdown.is_cancelled() {
        return json_error(StatusCode::SERVICE_UNAVAILABLE, "shutting down");
    }
    let token = query.token.or_else(|| ws::bearer(&req));
    let upgrade = match ws::accept(&mut req, echo.as_deref()) {
        Ok(u) => u,
        Err(reason) => return json_error(StatusCode::BAD_REQUEST, reason),
    };
    let node = app.node.clone();
    app.node.tracker.spawn(async move {
        let max = node.config.max_frame_bytes as usize;
        match ws::open(upgrade.on_upgrade, max, codec).await {
            Ok((source, sink)) => {
                serve(node, Accepted { transport: "ws", codec, token, peer }, source, sink).await;
            }
            Err(e) => tracing::debug!(error = %e, "WebSocket upgrade failed"),
        }
    });
    upgrade.response
}
