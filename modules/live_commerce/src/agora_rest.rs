//! The Agora token routes: `GET /api/sessions/:id/stream-token` (a viewer's subscriber token) and
//! `POST /api/sessions/:id/refresh-token` (a new token before the old one's hour is up: the owner's is a
//! publisher token, anyone else's a subscriber one), and the token fields of `start-stream`'s answer.
//!
//! Tokens are issued only for a session that is live or paused, on channel = the session id. Without
//! Agora credentials ([`Settings::agora`](crate::Settings)) both routes answer 503, and `start-stream`
//! answers `token`, `appId` and `expiresAt` as `null`.

use crate::access::is_owner;
use crate::agora::{RtcRole, TOKEN_LIFETIME_SECS, rtc_token};
use crate::envelope::{Reply, respond};
use crate::error::CommerceError;
use crate::model::{SessionRecord, Status};
use crate::rest::bearer_identity;
use crate::service::Commerce;
use axum::Router;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Response};
use axum::routing::{get, post};
use chorus_core::dialect::iso8601;
use chorus_core::module::Context;
use serde_json::{Value, json};
use std::sync::Arc;

#[derive(Clone)]
struct Tokens {
    commerce: Arc<Commerce>,
    ctx: Context,
}

/// The routes.
pub fn routes(ctx: &Context, commerce: Arc<Commerce>) -> Router {
    Router::new()
        .route("/api/sessions/{id}/stream-token", get(stream_token))
        .route("/api/sessions/{id}/refresh-token", post(refresh_token))
        .with_state(Tokens { commerce, ctx: ctx.clone() })
}

async fn stream_token(State(t): State<Tokens>, Path(id): Path<String>) -> Response<Body> {
    respond(
        async {
            let session = t.streaming(&id).await?;
            Ok(Reply::data(t.grant(&session, RtcRole::Subscriber)?))
        }
        .await,
    )
}

async fn refresh_token(State(t): State<Tokens>, headers: HeaderMap, Path(id): Path<String>) -> Response<Body> {
    respond(
        async {
            // Optional sign-in: a bad token is refused rather than silently treated as a guest.
            let who = match chorus_core::auth::bearer_token(&headers) {
                Some(_) => Some(bearer_identity(&t.ctx, &headers)?),
                None => None,
            };
            let session = t.streaming(&id).await?;
            let role = match &who {
                Some(who) if is_owner(&session, who) => RtcRole::Publisher,
                _ => RtcRole::Subscriber,
            };
            Ok(Reply::message("Token refreshed successfully", t.grant(&session, role)?))
        }
        .await,
    )
}

impl Tokens {
    /// Session `id`, if Agora is configured and the session is live or paused.
    async fn streaming(&self, id: &str) -> Result<SessionRecord, CommerceError> {
        if self.commerce.settings.agora.is_none() {
            return Err(not_configured());
        }
        let session = self.commerce.session(&self.ctx, id).await?;
        match session.status {
            Status::Live | Status::Paused => Ok(session),
            Status::Ended => Err(CommerceError::Conflict("Session has already ended".into())),
            Status::Scheduled => Err(CommerceError::Invalid("Stream has not started yet".into())),
        }
    }

    /// `{ sessionId, channelName, token, uid, appId, expiresAt, role }`.
    fn grant(&self, session: &SessionRecord, role: RtcRole) -> Result<Value, CommerceError> {
        let uid = match role {
            RtcRole::Publisher => publisher_uid(session),
            RtcRole::Subscriber => 0,
        };
        let fields = token_fields(&self.commerce, &self.ctx, session, uid, role).ok_or_else(not_configured)?;
        let mut data = json!({ "sessionId": session.id, "channelName": session.id, "uid": uid, "role": role.as_str() });
        if let (Value::Object(data), Value::Object(fields)) = (&mut data, fields) {
            data.extend(fields);
        }
        Ok(data)
    }
}

fn not_configured() -> CommerceError {
    CommerceError::Unavailable(
        "Agora is not configured on this server (--agora-app-id and --agora-app-certificate)".into(),
    )
}

/// The creator's Agora uid: their numeric id, or 0 (any uid) when it is not a number that fits Agora's
/// 32-bit uids.
pub fn publisher_uid(session: &SessionRecord) -> u32 {
    session.creator_id.parse::<u32>().unwrap_or(0)
}

/// `{ token, appId, expiresAt }` for `uid` as `role` in the session's channel, issued now for
/// [`TOKEN_LIFETIME_SECS`]; `None` without Agora credentials.
pub fn token_fields(
    commerce: &Commerce,
    ctx: &Context,
    session: &SessionRecord,
    uid: u32,
    role: RtcRole,
) -> Option<Value> {
    let credentials = commerce.settings.agora.as_ref()?;
    // Agora's timestamps are 32-bit seconds (they run out in 2106).
    let issued_at = u32::try_from(ctx.clock().now_ms() / 1000).unwrap_or(u32::MAX - TOKEN_LIFETIME_SECS);
    let salt = rand::random_range(1..=99_999_999);
    let token = rtc_token(credentials, &session.id, uid, role, issued_at, salt, TOKEN_LIFETIME_SECS);
    let expires_ms = (u64::from(issued_at) + u64::from(TOKEN_LIFETIME_SECS)) * 1000;
    Some(json!({ "token": token, "appId": credentials.app_id(), "expiresAt": iso8601(expires_ms) }))
}

/// The start-stream token fields: the publisher's, or all `null` without Agora credentials.
pub fn publisher_fields(commerce: &Commerce, ctx: &Context, session: &SessionRecord) -> Value {
    token_fields(commerce, ctx, session, publisher_uid(session), RtcRole::Publisher)
        .unwrap_or_else(|| json!({ "token": null, "appId": null, "expiresAt": null }))
}
