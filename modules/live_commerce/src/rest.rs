//! The REST routes the realtime half needs, in the seed's shapes (`{ success, message?, data }`; errors
//! `{ success: false, message }` with 400/401/403/404/409). Bearer tokens are the broker's JWTs.
//!
//! - `POST /api/products` (signed in) → 201; `GET /api/products`; `GET /api/products/:id`; `PUT` and
//!   `DELETE /api/products/:id` (the seller)
//! - `DELETE /api/sessions/:id` (owner); `/api/sessions/:id/products` (`GET ?featured`, `PATCH` bulk
//!   featured, `POST` link, `DELETE /:productId`, `PATCH /:productId/feature`, `/order`; see
//!   `session_products.rs`)
//! - `GET /api/sessions?creatorId=`; `POST /api/sessions` (signed in) → 201; `GET /api/sessions/:id`
//! - `PATCH /api/sessions/:id/status`, `POST /api/sessions/:id/start-stream`,
//!   `POST /api/sessions/:id/end-stream`, `POST /api/sessions/:id/showcase` (owner)
//! - `GET /api/sessions/:id/reactions`, `GET /api/sessions/:id/conversion-stats`
//! - `GET /api/sessions/:id/chat?limit&before`, `/chat/count`, `POST /chat` (signed in),
//!   `DELETE /chat/:messageId` (moderators)
//! - `GET /api/sessions/:id/analytics` (and `/live`, `/viewers`), `GET /api/analytics/creator/:creatorId`
//!   (signed in; see `analytics.rs`)
//! - `GET /api/search`, `/api/search/sessions` (and `/live`, `/upcoming`, `/trending`,
//!   `/creator/:creatorId`), `/api/search/products` (see `search.rs`)
//!
//! Bodies are parsed here (not by an extractor), so malformed JSON gets the envelope and a 400 like every
//! other input error.

use crate::analytics::{self, format_secs, hour_label, watch_secs};
use crate::chat;
use crate::engagement::ConversionReport;
use crate::envelope::{Reply, respond};
use crate::error::CommerceError;
use crate::model::{ChatRecord, ProductRecord, Role, SessionRecord, Status, ViewRecord, user_id_value};
use crate::requests;
use crate::search::{self, DEFAULT_GLOBAL_LIMIT, DEFAULT_LIMIT, Page, Params, SessionQuery, SessionSort};
use crate::service::Commerce;
use crate::session_products::NewLink;
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
        .route("/api/products/{id}", get(get_product).put(update_product).delete(delete_product))
        .route("/api/sessions", get(list_sessions).post(create_session))
        .route("/api/sessions/{id}", get(get_session).delete(delete_session))
        .route("/api/sessions/{id}/products", get(session_products).patch(set_featured).post(link_product))
        .route("/api/sessions/{id}/products/{product_id}", axum::routing::delete(unlink_product))
        .route("/api/sessions/{id}/products/{product_id}/feature", patch(feature_product))
        .route("/api/sessions/{id}/products/{product_id}/order", patch(order_product))
        .route("/api/sessions/{id}/status", patch(set_status))
        .route("/api/sessions/{id}/start-stream", post(start_stream))
        .route("/api/sessions/{id}/end-stream", post(end_stream))
        .route("/api/sessions/{id}/showcase", post(showcase))
        .route("/api/sessions/{id}/reactions", get(reactions))
        .route("/api/sessions/{id}/conversion-stats", get(conversion_stats))
        .route("/api/sessions/{id}/chat", get(chat_history).post(post_chat))
        .route("/api/sessions/{id}/chat/count", get(chat_count))
        .route("/api/sessions/{id}/chat/{message_id}", axum::routing::delete(delete_chat))
        .route("/api/sessions/{id}/analytics", get(session_analytics))
        .route("/api/sessions/{id}/analytics/live", get(live_viewers))
        .route("/api/sessions/{id}/analytics/viewers", get(viewer_history))
        .route("/api/analytics/creator/{creator_id}", get(creator_analytics))
        .route("/api/search", get(search_all))
        .route("/api/search/sessions", get(search_sessions))
        .route("/api/search/sessions/live", get(live_sessions))
        .route("/api/search/sessions/upcoming", get(upcoming_sessions))
        .route("/api/search/sessions/trending", get(trending_sessions))
        .route("/api/search/sessions/creator/{creator_id}", get(creator_sessions))
        .route("/api/search/products", get(search_products))
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

/// The chat message's history view: the realtime payload plus `user { id, name }`.
fn history_view(message: &ChatRecord) -> Value {
    let mut view = message.view();
    view["user"] = json!({ "id": view["userId"], "name": message.user_name });
    view
}

/// `GET /api/sessions/:id/chat?limit=50&before=…`: the last `limit` messages (1–200) sent before
/// `before` (an ISO-8601 time or milliseconds since the epoch), oldest first, with their `count`.
async fn chat_history(State(rest): State<Rest>, Path(id): Path<String>, query: RawQuery) -> Response<Body> {
    respond(
        async {
            let query = query_map(query)?;
            let limit = match query.get("limit") {
                None => chat::DEFAULT_HISTORY,
                Some(text) => match text.parse::<usize>() {
                    Ok(n) if (1..=chat::MAX_HISTORY).contains(&n) => n,
                    _ => {
                        return Err(CommerceError::Invalid(format!(
                            "limit must be a whole number from 1 to {}",
                            chat::MAX_HISTORY
                        )));
                    }
                },
            };
            let before = query.get("before").map(|t| requests::instant(t, "before")).transpose()?;
            let messages = rest.commerce.chat_history(&rest.ctx, &id, limit, before).await?;
            let count = messages.len();
            Ok(Reply::data(json!(messages.iter().map(history_view).collect::<Vec<_>>())).with("count", json!(count)))
        }
        .await,
    )
}

async fn chat_count(State(rest): State<Rest>, Path(id): Path<String>) -> Response<Body> {
    respond(
        async {
            let count = rest.commerce.chat_count(&rest.ctx, &id).await?;
            Ok(Reply::data(json!({ "sessionId": id, "count": count })))
        }
        .await,
    )
}

/// `POST /api/sessions/:id/chat` `{ message }` → 201 with the message (also broadcast as `new-message`).
async fn post_chat(
    State(rest): State<Rest>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: RawBody,
) -> Response<Body> {
    respond(
        async {
            let who = rest.identity(&headers)?;
            let message = requests::chat_message(&requests::json_object(&body_bytes(body)?)?)?;
            let record = rest.commerce.post_message(&rest.ctx, &who, id, message, None).await?;
            Ok(Reply::message("Message sent successfully", history_view(&record)).created())
        }
        .await,
    )
}

async fn delete_chat(
    State(rest): State<Rest>,
    headers: HeaderMap,
    Path((id, message_id)): Path<(String, String)>,
) -> Response<Body> {
    respond(
        async {
            let who = rest.identity(&headers)?;
            let data = rest.commerce.delete_message(&rest.ctx, &who, &id, &message_id).await?;
            Ok(Reply::message("Message deleted successfully", data))
        }
        .await,
    )
}

/// `GET /api/sessions/:id/analytics`: viewers, products, reactions, timeline and retention.
async fn session_analytics(State(rest): State<Rest>, headers: HeaderMap, Path(id): Path<String>) -> Response<Body> {
    respond(
        async {
            rest.identity(&headers)?;
            let (session, views) = rest.commerce.views(&rest.ctx, &id).await?;
            let now = rest.ctx.clock().now_ms();
            let stats = analytics::viewer_stats(&views, now);
            let mut products = Vec::with_capacity(session.products.len());
            for linked in &session.products {
                let name = match rest.commerce.product(&rest.ctx, &linked.product_id).await {
                    Ok(product) => Some(product.name),
                    Err(CommerceError::NotFound(_)) => None,
                    Err(e) => return Err(e),
                };
                products.push(json!({
                    "productId": linked.product_id,
                    "name": name,
                    "featured": linked.featured,
                    "displayOrder": linked.display_order,
                    "addedAt": iso8601(linked.added_ms),
                }));
            }
            let reactions = rest.commerce.reaction_report(&rest.ctx, &id).await?;
            let timeline: Vec<Value> = analytics::timeline(&views)
                .into_iter()
                .map(|h| json!({ "timestamp": hour_label(h.hour_ms), "joins": h.joins, "leaves": h.leaves }))
                .collect();
            let retention = analytics::retention(&views, now);
            let ranges: Vec<Value> =
                retention.ranges.iter().map(|(label, count)| json!({ "label": label, "count": count })).collect();
            Ok(Reply::fields(json!({
                "sessionId": id,
                "session": {
                    "title": session.title,
                    "status": session.status.as_str(),
                    "creator": { "id": user_id_value(&session.creator_id) },
                    "createdAt": iso8601(session.created_ms),
                    "updatedAt": iso8601(session.updated_ms),
                },
                "viewers": {
                    "unique": stats.unique,
                    "total": stats.total,
                    "peak": stats.peak,
                    "avgWatchTime": stats.avg_watch_secs,
                    "avgWatchTimeFormatted": format_secs(stats.avg_watch_secs),
                },
                "products": {
                    "total": session.products.len(),
                    "featured": session.products.iter().filter(|p| p.featured).count(),
                    "list": products,
                },
                "reactions": { "total": reactions.total, "breakdown": reactions.counts },
                "engagement": {
                    "viewerTimeline": timeline,
                    "retention": {
                        "ranges": ranges,
                        "median": retention.median,
                        "medianFormatted": format_secs(retention.median),
                        "p75": retention.p75,
                        "p75Formatted": format_secs(retention.p75),
                        "p90": retention.p90,
                        "p90Formatted": format_secs(retention.p90),
                    },
                },
            })))
        }
        .await,
    )
}

/// One view as the viewer lists show it.
fn view_entry(view: &ViewRecord, now_ms: u64) -> Value {
    json!({
        "userId": view.user_id.as_deref().map(user_id_value),
        "role": view.role,
        "socketId": view.socket_id,
        "joinedAt": iso8601(view.joined_ms),
        "leftAt": view.left_ms.map(iso8601),
        "watchDuration": watch_secs(view, now_ms),
    })
}

/// `GET /api/sessions/:id/analytics/live`: the views open now, subscribers and the creator's apart.
async fn live_viewers(State(rest): State<Rest>, headers: HeaderMap, Path(id): Path<String>) -> Response<Body> {
    respond(
        async {
            rest.identity(&headers)?;
            let (_, views) = rest.commerce.views(&rest.ctx, &id).await?;
            let now = rest.ctx.clock().now_ms();
            let open = |role: Role| -> Vec<Value> {
                views.iter().filter(|v| v.role == role && v.left_ms.is_none()).map(|v| view_entry(v, now)).collect()
            };
            let viewers = open(Role::Subscriber);
            Ok(Reply::data(json!({
                "sessionId": id,
                "count": viewers.len(),
                "viewers": viewers,
                "publishers": open(Role::Publisher),
            })))
        }
        .await,
    )
}

/// `GET /api/sessions/:id/analytics/viewers?limit&offset`: every view, newest first, paged; the creator's
/// own views in `publishers`.
async fn viewer_history(
    State(rest): State<Rest>,
    headers: HeaderMap,
    Path(id): Path<String>,
    query: RawQuery,
) -> Response<Body> {
    respond(
        async {
            rest.identity(&headers)?;
            let query = query_map(query)?;
            let (limit, offset) = Params(&query).paging(DEFAULT_LIMIT)?;
            let (_, views) = rest.commerce.views(&rest.ctx, &id).await?;
            let now = rest.ctx.clock().now_ms();
            let (mut watched, mut published): (Vec<&ViewRecord>, Vec<&ViewRecord>) =
                views.iter().partition(|v| v.role == Role::Subscriber);
            watched.reverse();
            published.reverse();
            let page = Page::of(watched, limit, offset);
            Ok(Reply::data(json!({
                "sessionId": id,
                "viewers": page.data.iter().map(|v| view_entry(v, now)).collect::<Vec<_>>(),
                "publishers": published.iter().map(|v| view_entry(v, now)).collect::<Vec<_>>(),
                "total": page.total,
                "limit": page.limit,
                "offset": page.offset,
                "hasMore": page.has_more,
            })))
        }
        .await,
    )
}

/// `GET /api/analytics/creator/:creatorId`: the creator dashboard's figures over all their sessions.
async fn creator_analytics(
    State(rest): State<Rest>,
    headers: HeaderMap,
    Path(creator_id): Path<String>,
) -> Response<Body> {
    respond(
        async {
            rest.identity(&headers)?;
            let report = rest.commerce.creator_report(&rest.ctx, &creator_id).await?;
            let total: usize = report.by_status.values().sum();
            let reactions: u64 = report.reactions.values().sum();
            Ok(Reply::fields(json!({
                "creatorId": user_id_value(&creator_id),
                "data": {
                    "sessions": { "total": total, "byStatus": report.by_status },
                    "viewers": {
                        "totalUnique": report.total_unique,
                        "averagePerSession": report.average_per_session,
                        "peakConcurrent": report.peak_concurrent,
                    },
                    "reactions": { "total": reactions, "breakdown": report.reactions },
                    "products": {
                        "totalClicks": report.total_clicks,
                        "uniqueUsers": report.unique_clickers,
                        "averageCTR": report.average_ctr,
                    },
                },
            })))
        }
        .await,
    )
}

async fn update_product(
    State(rest): State<Rest>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: RawBody,
) -> Response<Body> {
    respond(
        async {
            let who = rest.identity(&headers)?;
            let body = requests::json_object(&body_bytes(body)?)?;
            let product = rest.commerce.update_product(&rest.ctx, &who, &id, &body).await?;
            Ok(Reply::message("Product updated successfully", product.view()))
        }
        .await,
    )
}

async fn delete_product(State(rest): State<Rest>, headers: HeaderMap, Path(id): Path<String>) -> Response<Body> {
    respond(
        async {
            let who = rest.identity(&headers)?;
            rest.commerce.delete_product(&rest.ctx, &who, &id).await?;
            Ok(Reply::fields(json!({ "message": "Product deleted successfully" })))
        }
        .await,
    )
}

async fn delete_session(State(rest): State<Rest>, headers: HeaderMap, Path(id): Path<String>) -> Response<Body> {
    respond(
        async {
            let who = rest.identity(&headers)?;
            rest.commerce.delete_session(&rest.ctx, &who, &id).await?;
            Ok(Reply::fields(json!({ "message": "Session deleted successfully" })))
        }
        .await,
    )
}

/// `GET /api/sessions/:id/products?featured=true`.
async fn session_products(State(rest): State<Rest>, Path(id): Path<String>, query: RawQuery) -> Response<Body> {
    respond(
        async {
            let featured = match query_map(query)?.get("featured").map(String::as_str) {
                None | Some("false") => false,
                Some("true") => true,
                Some(_) => return Err(CommerceError::Invalid("featured must be true or false".into())),
            };
            let products = rest.commerce.session_products(&rest.ctx, &id, featured).await?;
            let count = products.len();
            Ok(Reply::data(json!(products)).with("count", json!(count)))
        }
        .await,
    )
}

async fn set_featured(
    State(rest): State<Rest>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: RawBody,
) -> Response<Body> {
    respond(
        async {
            let who = rest.identity(&headers)?;
            let body = requests::json_object(&body_bytes(body)?)?;
            if !body.contains_key("productIds") {
                return Err(CommerceError::Invalid("productIds is required".into()));
            }
            let ids = requests::product_ids(&body)?;
            let featured = rest.commerce.set_featured(&rest.ctx, &who, &id, &ids).await?;
            Ok(Reply::message("Featured products updated successfully", json!(featured)))
        }
        .await,
    )
}

async fn link_product(
    State(rest): State<Rest>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: RawBody,
) -> Response<Body> {
    respond(
        async {
            let who = rest.identity(&headers)?;
            let body = requests::json_object(&body_bytes(body)?)?;
            let link = NewLink {
                product_id: requests::product_id(&body)?,
                featured: requests::optional_bool(&body, "featured")?.unwrap_or(false),
                display_order: requests::optional_order(&body, "displayOrder")?,
            };
            let view = rest.commerce.link_product(&rest.ctx, &who, &id, link).await?;
            Ok(Reply::message("Product added to session successfully", view).created())
        }
        .await,
    )
}

async fn unlink_product(
    State(rest): State<Rest>,
    headers: HeaderMap,
    Path((id, product_id)): Path<(String, String)>,
) -> Response<Body> {
    respond(
        async {
            let who = rest.identity(&headers)?;
            rest.commerce.unlink_product(&rest.ctx, &who, &id, &product_id).await?;
            Ok(Reply::fields(json!({ "message": "Product removed from session successfully" })))
        }
        .await,
    )
}

/// `PATCH …/products/:productId/feature` `{ featured }`.
async fn feature_product(
    State(rest): State<Rest>,
    headers: HeaderMap,
    Path((id, product_id)): Path<(String, String)>,
    body: RawBody,
) -> Response<Body> {
    let change = |body: &serde_json::Map<String, Value>| {
        let featured = requests::optional_bool(body, "featured")?;
        Ok((Some(featured.ok_or_else(|| CommerceError::Invalid("featured is required".into()))?), None))
    };
    respond(change_link(&rest, &headers, &id, &product_id, body, change, "Featured status updated successfully").await)
}

/// `PATCH …/products/:productId/order` `{ displayOrder }`.
async fn order_product(
    State(rest): State<Rest>,
    headers: HeaderMap,
    Path((id, product_id)): Path<(String, String)>,
    body: RawBody,
) -> Response<Body> {
    let change = |body: &serde_json::Map<String, Value>| {
        let order = requests::optional_order(body, "displayOrder")?;
        Ok((None, Some(order.ok_or_else(|| CommerceError::Invalid("displayOrder is required".into()))?)))
    };
    respond(change_link(&rest, &headers, &id, &product_id, body, change, "Display order updated successfully").await)
}

/// Changes one product link of a session as its owner: `read` takes the (featured, display order) change
/// from the body.
async fn change_link(
    rest: &Rest,
    headers: &HeaderMap,
    id: &str,
    product_id: &str,
    body: RawBody,
    read: impl Fn(&serde_json::Map<String, Value>) -> Result<(Option<bool>, Option<u32>), CommerceError>,
    message: &str,
) -> Result<Reply, CommerceError> {
    let who = rest.identity(headers)?;
    let (featured, order) = read(&requests::json_object(&body_bytes(body)?)?)?;
    let view = rest.commerce.change_link(&rest.ctx, &who, id, product_id, featured, order).await?;
    Ok(Reply::message(message, view))
}

type RawQuery = Result<Query<HashMap<String, String>>, QueryRejection>;

fn query_map(query: RawQuery) -> Result<HashMap<String, String>, CommerceError> {
    query.map(|Query(q)| q).map_err(|e| CommerceError::Invalid(e.body_text()))
}

/// `{ success, data, total, limit, offset, hasMore }`.
fn paged<T>(page: Page<T>, view: impl Fn(&T) -> Value) -> Reply {
    Reply::fields(json!({
        "data": page.data.iter().map(view).collect::<Vec<_>>(),
        "total": page.total,
        "limit": page.limit,
        "offset": page.offset,
        "hasMore": page.has_more,
    }))
}

/// `GET /api/search?q&limit`: the best-matching sessions and products, with the number of matches of each.
async fn search_all(State(rest): State<Rest>, query: RawQuery) -> Response<Body> {
    respond(
        async {
            let query = query_map(query)?;
            let params = Params(&query);
            let text = params.text()?;
            if text.is_empty() {
                return Err(CommerceError::Invalid("q is required".into()));
            }
            let (limit, _) = params.paging(DEFAULT_GLOBAL_LIMIT)?;
            let sessions = SessionQuery {
                text: text.clone(),
                status: None,
                category: None,
                creator_id: None,
                sort: SessionSort::Relevance,
                limit,
                offset: 0,
            };
            let products = search::ProductQuery {
                text,
                min_price: None,
                max_price: None,
                sort: search::ProductSort::Relevance,
                limit,
                offset: 0,
            };
            let sessions = rest.commerce.search_sessions(&rest.ctx, &sessions).await?;
            let products = rest.commerce.search_products(&rest.ctx, &products).await?;
            Ok(Reply::fields(json!({
                "sessions": sessions.data.iter().map(|s| s.view(false)).collect::<Vec<_>>(),
                "products": products.data.iter().map(ProductRecord::view).collect::<Vec<_>>(),
                "counts": { "sessions": sessions.total, "products": products.total },
            })))
        }
        .await,
    )
}

async fn search_sessions(State(rest): State<Rest>, query: RawQuery) -> Response<Body> {
    respond(
        async {
            let query = Params(&query_map(query)?).session_query()?;
            let page = rest.commerce.search_sessions(&rest.ctx, &query).await?;
            Ok(paged(page, |s| s.view(false)))
        }
        .await,
    )
}

/// The sessions in `status` (or one creator's), newest first, paged by `limit` and `offset`.
async fn session_list(
    rest: &Rest,
    query: RawQuery,
    status: Option<Status>,
    creator_id: Option<String>,
) -> Result<Reply, CommerceError> {
    let query = query_map(query)?;
    let (limit, offset) = Params(&query).paging(DEFAULT_LIMIT)?;
    let query = SessionQuery {
        text: String::new(),
        status,
        category: None,
        creator_id,
        sort: SessionSort::Newest,
        limit,
        offset,
    };
    Ok(paged(rest.commerce.search_sessions(&rest.ctx, &query).await?, |s| s.view(false)))
}

async fn live_sessions(State(rest): State<Rest>, query: RawQuery) -> Response<Body> {
    respond(session_list(&rest, query, Some(Status::Live), None).await)
}

async fn upcoming_sessions(State(rest): State<Rest>, query: RawQuery) -> Response<Body> {
    respond(session_list(&rest, query, Some(Status::Scheduled), None).await)
}

async fn creator_sessions(State(rest): State<Rest>, Path(creator_id): Path<String>, query: RawQuery) -> Response<Body> {
    respond(session_list(&rest, query, None, Some(creator_id)).await)
}

/// `GET /api/search/sessions/trending`: live sessions by viewers now, each with its `viewerCount`.
async fn trending_sessions(State(rest): State<Rest>, query: RawQuery) -> Response<Body> {
    respond(
        async {
            let query = query_map(query)?;
            let (limit, offset) = Params(&query).paging(DEFAULT_LIMIT)?;
            let page = rest.commerce.trending_sessions(&rest.ctx, limit, offset).await?;
            Ok(paged(page, |(s, viewers)| {
                let mut view = s.view(false);
                view["viewerCount"] = json!(viewers);
                view
            }))
        }
        .await,
    )
}

async fn search_products(State(rest): State<Rest>, query: RawQuery) -> Response<Body> {
    respond(
        async {
            let query = Params(&query_map(query)?).product_query()?;
            Ok(paged(rest.commerce.search_products(&rest.ctx, &query).await?, ProductRecord::view))
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
