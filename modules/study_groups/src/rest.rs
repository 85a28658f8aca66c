//! The REST API (JSON, `Authorization: Bearer <jwt>`), the seed's triggers plus what a frontend needs to
//! rebuild its state after a reload; documented in the crate's README:
//!
//! - `POST /group-sessions` — create a session (`groupId`, `rounds`?, `scribeId`?) → 201
//! - `GET /group-sessions/{sessionId}` — the session's state → 200
//! - `PUT /group-sessions/{sessionId}/start`, `PUT /group-sessions/{sessionId}/end` → 200
//! - `POST /group-sessions/{sessionId}/rounds/{roundIndex}/advance` (`status`?) → 200
//! - `PATCH /group-sessions/{sessionId}/rounds/{roundIndex}/prompt` (`prompt`) → 200
//! - `POST /group-sessions/{sessionId}/events` (`eventType`, `roundIndex`?, `payload`?) → 201
//! - `GET /group-sessions/{sessionId}/events?after=&limit=` → 200
//! - `POST /groups/{groupId}/sessions/{sessionId}/chat` (`message`) → 201
//! - `GET /groups/{groupId}/sessions/{sessionId}/chat?before=&limit=` → 200
//!
//! Every error is `{ "message": ... }` with the status of [`StudyError::status`]. Bodies and paths are
//! parsed here (not by extractors that answer on their own), so every bad input gets a 422 with a message.

use crate::calls;
use crate::error::StudyError;
use crate::requests;
use crate::service::Study;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, Response, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, patch, post, put};
use chorus_core::auth::{Identity, bearer_token};
use chorus_core::module::Context;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

#[derive(Clone)]
struct Rest {
    study: Arc<Study>,
    ctx: Context,
}

/// The paging query of the history routes.
#[derive(Deserialize)]
struct Paging {
    after: Option<String>,
    before: Option<String>,
    limit: Option<String>,
}

type RawBody = Result<Bytes, BytesRejection>;

/// The REST routes.
pub fn routes(ctx: &Context, study: Arc<Study>) -> Router {
    Router::new()
        .route("/group-sessions", post(create))
        .route("/group-sessions/{session_id}", get(view))
        .route("/group-sessions/{session_id}/start", put(start))
        .route("/group-sessions/{session_id}/end", put(end))
        .route("/group-sessions/{session_id}/rounds/{round_index}/advance", post(advance))
        .route("/group-sessions/{session_id}/rounds/{round_index}/prompt", patch(prompt))
        .route("/group-sessions/{session_id}/events", post(submit).get(events))
        .route("/groups/{group_id}/sessions/{session_id}/chat", post(chat).get(chat_history))
        .with_state(Rest { study, ctx: ctx.clone() })
}

async fn create(State(rest): State<Rest>, headers: HeaderMap, body: RawBody) -> Response<Body> {
    let result = async {
        let who = rest.identity(&headers)?;
        let new = calls::new_session(&requests::body(&bytes(body)?)?)?;
        rest.study.create(&rest.ctx, &who, new).await
    };
    answer(StatusCode::CREATED, result.await)
}

async fn view(State(rest): State<Rest>, headers: HeaderMap, id: Result<Path<String>, PathRejection>) -> Response<Body> {
    let result = async {
        let who = rest.identity(&headers)?;
        rest.study.view(&rest.ctx, &who, &session(id)?).await
    };
    answer(StatusCode::OK, result.await)
}

async fn start(
    State(rest): State<Rest>,
    headers: HeaderMap,
    id: Result<Path<String>, PathRejection>,
) -> Response<Body> {
    let result = async {
        let who = rest.identity(&headers)?;
        rest.study.start(&rest.ctx, &who, &session(id)?).await
    };
    answer(StatusCode::OK, result.await)
}

async fn end(State(rest): State<Rest>, headers: HeaderMap, id: Result<Path<String>, PathRejection>) -> Response<Body> {
    let result = async {
        let who = rest.identity(&headers)?;
        rest.study.end(&rest.ctx, &who, &session(id)?).await
    };
    answer(StatusCode::OK, result.await)
}

async fn advance(
    State(rest): State<Rest>,
    headers: HeaderMap,
    ids: Result<Path<(String, String)>, PathRejection>,
    body: RawBody,
) -> Response<Body> {
    let result = async {
        let who = rest.identity(&headers)?;
        let (id, index) = round(ids)?;
        let to = requests::target_status(&requests::body(&bytes(body)?)?)?;
        rest.study.advance(&rest.ctx, &who, &id, index, to).await
    };
    answer(StatusCode::OK, result.await)
}

async fn prompt(
    State(rest): State<Rest>,
    headers: HeaderMap,
    ids: Result<Path<(String, String)>, PathRejection>,
    body: RawBody,
) -> Response<Body> {
    let result = async {
        let who = rest.identity(&headers)?;
        let (id, index) = round(ids)?;
        let prompt = requests::prompt(&requests::body(&bytes(body)?)?)?;
        rest.study.update_prompt(&rest.ctx, &who, &id, index, prompt).await
    };
    answer(StatusCode::OK, result.await)
}

async fn submit(
    State(rest): State<Rest>,
    headers: HeaderMap,
    id: Result<Path<String>, PathRejection>,
    body: RawBody,
) -> Response<Body> {
    let result = async {
        let who = rest.identity(&headers)?;
        let id = session(id)?;
        let (kind, index, payload) = calls::activity(&requests::body(&bytes(body)?)?)?;
        rest.study.submit(&rest.ctx, &who, &id, kind, index, payload).await
    };
    answer(StatusCode::CREATED, result.await)
}

async fn events(
    State(rest): State<Rest>,
    headers: HeaderMap,
    id: Result<Path<String>, PathRejection>,
    paging: Result<Query<Paging>, QueryRejection>,
) -> Response<Body> {
    let result = async {
        let who = rest.identity(&headers)?;
        let id = session(id)?;
        let paging = query(paging)?;
        let after = requests::cursor("after", paging.after.as_deref())?;
        rest.study.events(&rest.ctx, &who, &id, after, requests::limit(paging.limit.as_deref())?).await
    };
    answer(StatusCode::OK, result.await)
}

async fn chat(
    State(rest): State<Rest>,
    headers: HeaderMap,
    ids: Result<Path<(String, String)>, PathRejection>,
    body: RawBody,
) -> Response<Body> {
    let result = async {
        let who = rest.identity(&headers)?;
        let (group, id) = group_session(ids)?;
        let message = requests::message(&requests::body(&bytes(body)?)?)?;
        rest.study.chat(&rest.ctx, &who, &group, &id, message).await
    };
    answer(StatusCode::CREATED, result.await)
}

async fn chat_history(
    State(rest): State<Rest>,
    headers: HeaderMap,
    ids: Result<Path<(String, String)>, PathRejection>,
    paging: Result<Query<Paging>, QueryRejection>,
) -> Response<Body> {
    let result = async {
        let who = rest.identity(&headers)?;
        let (group, id) = group_session(ids)?;
        let paging = query(paging)?;
        let before = requests::cursor("before", paging.before.as_deref())?;
        let limit = requests::limit(paging.limit.as_deref())?;
        rest.study.chat_history(&rest.ctx, &who, &group, &id, before, limit).await
    };
    answer(StatusCode::OK, result.await)
}

impl Rest {
    /// The identity of the request's bearer token.
    fn identity(&self, headers: &HeaderMap) -> Result<Identity, StudyError> {
        let missing = || StudyError::Unauthenticated("an Authorization: Bearer <token> header is required".into());
        let token = bearer_token(headers).ok_or_else(missing)?;
        self.ctx.verify_token(token).map_err(|e| StudyError::Unauthenticated(e.to_string()))
    }
}

fn session(id: Result<Path<String>, PathRejection>) -> Result<String, StudyError> {
    let Path(id) = id.map_err(|e| StudyError::Invalid(e.body_text()))?;
    requests::id_text("sessionId", &id)
}

fn round(ids: Result<Path<(String, String)>, PathRejection>) -> Result<(String, u32), StudyError> {
    let Path((id, index)) = ids.map_err(|e| StudyError::Invalid(e.body_text()))?;
    Ok((requests::id_text("sessionId", &id)?, requests::round_index_text(&index)?))
}

fn group_session(ids: Result<Path<(String, String)>, PathRejection>) -> Result<(String, String), StudyError> {
    let Path((group, id)) = ids.map_err(|e| StudyError::Invalid(e.body_text()))?;
    Ok((requests::id_text("groupId", &group)?, requests::id_text("sessionId", &id)?))
}

fn query(paging: Result<Query<Paging>, QueryRejection>) -> Result<Paging, StudyError> {
    paging.map(|Query(p)| p).map_err(|e| StudyError::Invalid(e.body_text()))
}

fn bytes(body: RawBody) -> Result<Bytes, StudyError> {
    body.map_err(|e| StudyError::Invalid(e.body_text()))
}

fn answer<T: Serialize>(status: StatusCode, result: Result<T, StudyError>) -> Response<Body> {
    match result {
        Ok(value) => (status, axum::Json(value)).into_response(),
        Err(e) => e.into_response(),
    }
}
