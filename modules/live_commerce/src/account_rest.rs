//! The accounts routes in the seed's shapes:
//!
//! - `POST /api/auth/register` → 201, `POST /api/auth/login`, `POST /api/auth/refresh-token`: `{ user,
//!   accessToken, refreshToken }`; `POST /api/auth/logout`, `GET /api/auth/currentUser`,
//!   `POST /api/auth/update` (signed in);
//! - `GET /api/users`, `GET /api/users/live`, `GET /api/users/:id`, `POST /api/users` → 201,
//!   `PUT /api/users/:id`, `DELETE /api/users/:id` (the user themself or an admin).
//!
//! With accounts off ([`Settings::accounts`](crate::Settings)) every one of them answers 404 with the
//! envelope: the deployment's identity provider issues the tokens.

use crate::accounts::{UserRecord, signed_in_view};
use crate::envelope::{Reply, respond};
use crate::error::CommerceError;
use crate::model::Status;
use crate::requests;
use crate::rest::bearer_identity;
use crate::service::Commerce;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Response};
use axum::routing::{any, get, post};
use chorus_core::auth::Identity;
use chorus_core::dialect::iso8601;
use chorus_core::module::Context;
use serde_json::{Map, Value, json};
use std::collections::HashSet;
use std::sync::Arc;

#[derive(Clone)]
struct Accounts {
    commerce: Arc<Commerce>,
    ctx: Context,
}

type RawBody = Result<Bytes, BytesRejection>;

/// The accounts routes, or their 404 answers when accounts are off.
pub fn routes(ctx: &Context, commerce: Arc<Commerce>) -> Router {
    if !commerce.settings.accounts {
        return Router::new()
            .route("/api/auth/{*rest}", any(accounts_off))
            .route("/api/users", any(accounts_off))
            .route("/api/users/{*rest}", any(accounts_off));
    }
    Router::new()
        .route("/api/auth/register", post(register))
        .route("/api/auth/login", post(login))
        .route("/api/auth/logout", post(logout))
        .route("/api/auth/currentUser", get(current_user))
        .route("/api/auth/refresh-token", post(refresh_token))
        .route("/api/auth/update", post(update_self))
        .route("/api/users", get(list_users).post(create_user))
        .route("/api/users/live", get(live_users))
        .route("/api/users/{id}", get(get_user).put(update_user).delete(delete_user))
        .with_state(Accounts { commerce, ctx: ctx.clone() })
}

async fn accounts_off() -> Response<Body> {
    respond(Err(CommerceError::NotFound(
        "Accounts are turned off on this server (--commerce-accounts=false): sign in with your identity provider"
            .into(),
    )))
}

async fn register(State(a): State<Accounts>, body: RawBody) -> Response<Body> {
    respond(
        async {
            let body = object(body)?;
            let (user, tokens) = a.commerce.create_user(&a.ctx, &body, None, true).await?;
            let tokens = tokens.ok_or_else(|| CommerceError::Internal("registration issued no tokens".into()))?;
            Ok(Reply::message("User registered successfully", signed_in_view(&user, &tokens)).created())
        }
        .await,
    )
}

async fn login(State(a): State<Accounts>, body: RawBody) -> Response<Body> {
    respond(
        async {
            let (user, tokens) = a.commerce.login(&a.ctx, &object(body)?).await?;
            Ok(Reply::message("Login successful", signed_in_view(&user, &tokens)))
        }
        .await,
    )
}

async fn logout(State(a): State<Accounts>, headers: HeaderMap) -> Response<Body> {
    respond(
        async {
            let who = a.identity(&headers)?;
            a.commerce.logout(&a.ctx, &who).await?;
            Ok(Reply::message("Logout successful", Value::Null))
        }
        .await,
    )
}

async fn current_user(State(a): State<Accounts>, headers: HeaderMap) -> Response<Body> {
    respond(
        async {
            let who = a.identity(&headers)?;
            Ok(Reply::data(a.commerce.signed_in_user(&a.ctx, &who).await?.view()))
        }
        .await,
    )
}

async fn refresh_token(State(a): State<Accounts>, body: RawBody) -> Response<Body> {
    respond(
        async {
            let (user, tokens) = a.commerce.refresh_tokens(&a.ctx, &object(body)?).await?;
            Ok(Reply::message("Token refreshed successfully", signed_in_view(&user, &tokens)))
        }
        .await,
    )
}

async fn update_self(State(a): State<Accounts>, headers: HeaderMap, body: RawBody) -> Response<Body> {
    respond(
        async {
            let who = a.identity(&headers)?;
            let id = a.commerce.signed_in_user(&a.ctx, &who).await?.id;
            let user = a.commerce.update_user(&a.ctx, &who, id, &object(body)?).await?;
            Ok(Reply::message("User updated successfully", user.view()))
        }
        .await,
    )
}

async fn list_users(State(a): State<Accounts>) -> Response<Body> {
    respond(
        async {
            let users = a.commerce.users(&a.ctx).await?;
            let count = users.len();
            Ok(Reply::data(json!(users.iter().map(UserRecord::view).collect::<Vec<_>>())).with("count", json!(count)))
        }
        .await,
    )
}

/// Users with a live session, each with their most recently started one, most recent first.
async fn live_users(State(a): State<Accounts>) -> Response<Body> {
    respond(
        async {
            let mut live: Vec<_> =
                a.commerce.sessions(&a.ctx, None).await?.into_iter().filter(|s| s.status == Status::Live).collect();
            live.sort_by_key(|s| std::cmp::Reverse(s.started_ms));
            let mut seen = HashSet::new();
            let mut out = Vec::new();
            for session in live {
                let Ok(id) = session.creator_id.parse::<u64>() else { continue };
                if !seen.insert(id) {
                    continue;
                }
                // A creator whose token came from elsewhere has no account to show.
                let Some(user) = a.commerce.user(&a.ctx, id).await? else { continue };
                let mut view = user.view();
                view["liveSession"] = json!({
                    "id": session.id,
                    "title": session.title,
                    "description": session.description,
                    "category": session.category,
                    "tags": session.tags,
                    "status": session.status.as_str(),
                    "startedAt": session.started_ms.map(iso8601),
                    "agoraChannelName": session.id,
                });
                out.push(view);
            }
            let count = out.len();
            Ok(Reply::data(Value::Array(out)).with("count", json!(count)))
        }
        .await,
    )
}

async fn get_user(State(a): State<Accounts>, Path(id): Path<String>) -> Response<Body> {
    respond(async { Ok(Reply::data(a.commerce.user_by_path(&a.ctx, &id).await?.view())) }.await)
}

async fn create_user(State(a): State<Accounts>, headers: HeaderMap, body: RawBody) -> Response<Body> {
    respond(
        async {
            // Anyone may create a plain account; an admin's token may give any role.
            let by = a.identity(&headers).ok();
            let (user, _) = a.commerce.create_user(&a.ctx, &object(body)?, by.as_ref(), false).await?;
            Ok(Reply::message("User created successfully", user.view()).created())
        }
        .await,
    )
}

async fn update_user(
    State(a): State<Accounts>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: RawBody,
) -> Response<Body> {
    respond(
        async {
            let who = a.identity(&headers)?;
            let id = a.commerce.user_by_path(&a.ctx, &id).await?.id;
            let user = a.commerce.update_user(&a.ctx, &who, id, &object(body)?).await?;
            Ok(Reply::message("User updated successfully", user.view()))
        }
        .await,
    )
}

async fn delete_user(State(a): State<Accounts>, headers: HeaderMap, Path(id): Path<String>) -> Response<Body> {
    respond(
        async {
            let who = a.identity(&headers)?;
            a.commerce.delete_user(&a.ctx, &who, &id).await?;
            Ok(Reply::message("User deleted successfully", Value::Null))
        }
        .await,
    )
}

impl Accounts {
    /// The identity of the request's bearer token.
    fn identity(&self, headers: &HeaderMap) -> Result<Identity, CommerceError> {
        bearer_identity(&self.ctx, headers)
    }
}

fn object(body: RawBody) -> Result<Map<String, Value>, CommerceError> {
    requests::json_object(&body.map_err(|e| CommerceError::Invalid(e.body_text()))?)
}
