//! The REST routes the realtime half needs, in the seed's shapes (`{ success, message?, data }`; errors
//! `{ success: false, message }` with 400/401/403/404/409). Bearer tokens are the broker's JWTs.
//!
//! - `POST /api/products` (signed in) → 201; `GET /api/products`; `GET /api/products/:id`
//! - `GET /api/sessions?creatorId=`; `POST /api/sessions` (signed in) → 201; `GET /api/sessions/:id`
//! - `PATCH /api/sessions/:id/status`, `POST /api/sessions/:id/start-stream`,
//!   `POST /api/sessions/:id/end-stream`, `POST /api/sessions/:id/showcase` (owner)
//! - `GET /api/sessions/:id/reactions`, `GET /api/sessions/:id/conversion-stats`
//!
//! Bodies are parsed here (not by an extractor), so malformed JSON gets the envelope and a 400 like every
//! other input error.

use crate::engagement::ConversionReport;
use crate::envelope::{Reply, respond};
use crate::error::CommerceError;
use crate::model::{ProductRecord, SessionRecord, Status};
use crate::requests;
use crate::service::Commerce;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, Response};
use axum::routing::{get, patch, post};
use chorus_core::auth::{Identity, bearer_token};
use chorus_core::dialect::iso8601;
use chorus_core::module::Context;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;

#[derive(Clone)]
struct Rest {
    commerce: Arc<Commerce>,
    ctx: Context,
}

/// The routes.
pub fn routes(ctx: &Context, commerce: Arc<Commerce>) -> Router {
    Router::new()
        .route("/api/products", get(list_products).post(create_product))
        .route("/api/products/{id}", get(get_product))
        .route("/api/sessions", get(list_sessions).post(create_session))
        .route("/api/sessions/{id}", get(get_session))
        .route("/api/sessions/{id}/status", patch(set_status))
        .route("/api/sessions/{id}/start-stream", post(start_stream))
        .route("/api/sessions/{id}/end-stream", post(end_stream))
        .route("/api/sessions/{id}/showcase", post(showcase))
        .route("/api/sessions/{id}/reactions", get(reactions))
        .route("/api/sessions/{id}/conversion-stats", get(conversion_stats))
        .with_state(Rest { commerce: commerce.clone(), ctx: ctx.clone() })
        .merge(crate::account_rest::routes(ctx, commerce.clone()))
        .merge(crate::agora_rest::routes(ctx, commerce))
}

type RawBody = Result<Bytes, BytesRejection>;

async fn create_product(State(rest): State<Rest>, headers: HeaderMap, body: RawBody) -> Response<Body> {
    respond(
        async {
            let who = rest.identity(&headers)?;
            let body = requests::json_object(&body_bytes(body)?)?;
            let product = rest.commerce.create_product(&rest.ctx, &who, &body).await?;
            Ok(Reply::message("Product created successfully", product.view()).created())
        }
        .await,
    )
}

async fn list_products(State(rest): State<Rest>) -> Response<Body> {
    respond(
        async {
            let products = rest.commerce.products(&rest.ctx).await?;
            let count = products.len();
            Ok(Reply::data(json!(products.iter().map(ProductRecord::view).collect::<Vec<_>>()))
                .with("count", json!(count)))
        }
        .await,
    )
}

async fn get_product(State(rest): State<Rest>, Path(id): Path<String>) -> Response<Body> {
    respond(async { Ok(Reply::data(rest.commerce.product(&rest.ctx, &id).await?.view())) }.await)
}

async fn list_sessions(
    State(rest): State<Rest>,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Response<Body> {
    respond(
        async {
            let Query(query) = query.map_err(|e| CommerceError::Invalid(e.body_text()))?;
            let sessions = rest.commerce.sessions(&rest.ctx, query.get("creatorId").map(String::as_str)).await?;
            let count = sessions.len();
            let views: Vec<Value> = sessions.iter().map(|s| s.view(false)).collect();
            Ok(Reply::data(json!(views)).with("count", json!(count)))
        }
        .await,
    )
}

async fn create_session(State(rest): State<Rest>, headers: HeaderMap, body: RawBody) -> Response<Body> {
    respond(
        async {
            let who = rest.identity(&headers)?;
            let body = requests::json_object(&body_bytes(body)?)?;
            let session = rest.commerce.create_session(&rest.ctx, &who, &body).await?;
            Ok(Reply::message("Session created successfully", session.view(true)).created())
        }
        .await,
    )
}

async fn get_session(State(rest): State<Rest>, headers: HeaderMap, Path(id): Path<String>) -> Response<Body> {
    respond(
        async {
            let who = rest.identity(&headers).ok();
            Ok(Reply::data(rest.commerce.session_details(&rest.ctx, who.as_ref(), &id).await?))
        }
        .await,
    )
}

async fn set_status(
    State(rest): State<Rest>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: RawBody,
) -> Response<Body> {
    respond(
        async {
            let who = rest.identity(&headers)?;
            let status = requests::status(&requests::json_object(&body_bytes(body)?)?)?;
            let session = rest.commerce.set_status(&rest.ctx, &who, &id, status).await?;
            Ok(Reply::message("Session status updated successfully", session.view(true)))
        }
        .await,
    )
}

async fn start_stream(State(rest): State<Rest>, headers: HeaderMap, Path(id): Path<String>) -> Response<Body> {
    respond(
        async {
            let who = rest.identity(&headers)?;
            let session = rest.commerce.set_status(&rest.ctx, &who, &id, Status::Live).await?;
            let mut data = stream_started(&session);
            if let (Value::Object(data), Value::Object(token)) =
                (&mut data, crate::agora_rest::publisher_fields(&rest.commerce, &rest.ctx, &session))
            {
                data.extend(token);
            }
            Ok(Reply::message("Stream started successfully", data))
        }
        .await,
    )
}

/// The start-stream answer without its Agora token fields (`crate::agora_rest`); `uid` is the creator's
/// Agora uid.
fn stream_started(session: &SessionRecord) -> Value {
    json!({
        "sessionId": session.id,
        "channelName": session.id,
        "uid": crate::agora_rest::publisher_uid(session),
        "role": "publisher",
        "status": session.status.as_str(),
        "startedAt": session.started_ms.map(iso8601),
    })
}

async fn end_stream(State(rest): State<Rest>, headers: HeaderMap, Path(id): Path<String>) -> Response<Body> {
    respond(
        async {
            let who = rest.identity(&headers)?;
            let current = rest.commerce.session(&rest.ctx, &id).await?;
            if current.status == Status::Ended {
                return Err(CommerceError::Conflict("Session has already ended".into()));
            }
            let session = rest.commerce.set_status(&rest.ctx, &who, &id, Status::Ended).await?;
            let data = json!({ "sessionId": session.id, "status": "ended", "endedAt": session.ended_ms.map(iso8601) });
            Ok(Reply::message("Stream ended successfully", data))
        }
        .await,
    )
}

async fn showcase(
    State(rest): State<Rest>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: RawBody,
) -> Response<Body> {
    respond(
        async {
            let who = rest.identity(&headers)?;
            let product_id = requests::showcase_product(&requests::json_object(&body_bytes(body)?)?)?;
            let product = rest.commerce.showcase(&rest.ctx, &who, &id, product_id).await?;
            let message =
                if product.is_some() { "Product showcased successfully" } else { "Showcase cleared successfully" };
            let data = json!({
                "sessionId": id,
                "activeProductId": product.as_ref().map(|p| p.id.clone()),
                "product": product.as_ref().map(ProductRecord::view),
            });
            Ok(Reply::message(message, data))
        }
        .await,
    )
}

async fn reactions(State(rest): State<Rest>, Path(id): Path<String>) -> Response<Body> {
    respond(
        async {
            let report = rest.commerce.reaction_report(&rest.ctx, &id).await?;
            let mut sorted: Vec<(&String, &u64)> = report.counts.iter().collect();
            sorted.sort_by(|(a, x), (b, y)| y.cmp(x).then(a.cmp(b)));
            let sorted: Vec<Value> = sorted.into_iter().map(|(t, c)| json!({ "type": t, "count": c })).collect();
            Ok(Reply::data(json!({
                "sessionId": id,
                "sessionStatus": report.status.as_str(),
                "isLive": report.status == Status::Live,
                "reactions": report.counts,
                "sortedReactions": sorted,
                "total": report.total,
            })))
        }
        .await,
    )
}

async fn conversion_stats(State(rest): State<Rest>, Path(id): Path<String>) -> Response<Body> {
    respond(
        async {
            let (status, data) = match rest.commerce.conversion_report(&rest.ctx, &id).await? {
                ConversionReport::Live { viewers, stats } => {
                    (Status::Live, json!({ "totalViewers": viewers, "products": stats }))
                }
                ConversionReport::Stored { status, viewers, stats } => {
                    let products: Vec<Value> = stats
                        .into_iter()
                        .map(|(s, name)| {
                            json!({
                                "productId": s.product_id,
                                "productName": name,
                                "uniqueClicks": s.unique_clicks,
                                "totalClicks": s.total_clicks,
                                "clickThroughRate": s.click_through_rate,
                                "createdAt": iso8601(s.created_ms),
                                "updatedAt": iso8601(s.updated_ms),
                            })
                        })
                        .collect();
                    (status, json!({ "totalViewers": viewers, "products": products }))
                }
            };
            Ok(Reply::fields(json!({ "sessionId": id, "sessionStatus": status.as_str(), "data": data })))
        }
        .await,
    )
}

impl Rest {
    /// The identity of the request's bearer token.
    fn identity(&self, headers: &HeaderMap) -> Result<Identity, CommerceError> {
        bearer_identity(&self.ctx, headers)
    }
}

/// The identity of a request's bearer token: 401 without one or with a bad one.
pub fn bearer_identity(ctx: &Context, headers: &HeaderMap) -> Result<Identity, CommerceError> {
    let missing = || CommerceError::Unauthenticated("Access token required".into());
    let token = bearer_token(headers).ok_or_else(missing)?;
    ctx.verify_token(token).map_err(|_| CommerceError::Unauthenticated("Invalid or expired token".into()))
}

fn body_bytes(body: RawBody) -> Result<Bytes, CommerceError> {
    body.map_err(|e| CommerceError::Invalid(e.body_text()))
}
