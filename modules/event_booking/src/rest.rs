//! The REST API (JSON, `Authorization: Bearer <jwt>`), documented in the crate's README:
//!
//! - `POST /api/events` — create an event (role `admin` or `organizer`) → 201
//! - `GET /api/events` — the events the caller may see (no token: the public ones) → 200
//! - `GET /api/events/{id}` — an event with its seats (no token: public events only) → 200
//! - `POST /api/events/{id}/bookings` — book (`Idempotency-Key` optional) → 201
//! - `DELETE /api/bookings/{bookingId}` — cancel one's own booking → 200
//! - `GET /api/bookings` — one's bookings → 200
//!
//! Every error is `{ "message": ... }` with the status of [`BookingError::status`]. Bodies are parsed here
//! (not by an extractor), so malformed JSON gets a 400 with a message like every other input error.

use crate::error::BookingError;
use crate::requests;
use crate::service::Bookings;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Response, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{delete, get, post};
use chorus_core::auth::{Identity, bearer_token};
use chorus_core::module::Context;
use serde::Serialize;
use std::sync::Arc;

/// The header that makes a booking request idempotent.
const IDEMPOTENCY_KEY: &str = "idempotency-key";

#[derive(Clone)]
struct Rest {
    bookings: Arc<Bookings>,
    ctx: Context,
}

/// The REST routes.
pub fn routes(ctx: &Context, bookings: Arc<Bookings>) -> Router {
    Router::new()
        .route("/api/events", post(create_event).get(list_events))
        .route("/api/events/{id}", get(get_event))
        .route("/api/events/{id}/bookings", post(book))
        .route("/api/bookings", get(list_bookings))
        .route("/api/bookings/{booking_id}", delete(cancel))
        .with_state(Rest { bookings, ctx: ctx.clone() })
}

async fn create_event(
    State(rest): State<Rest>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response<Body> {
    let result = async {
        let who = rest.identity(&headers)?;
        let new = requests::new_event(&requests::json_object(&body_bytes(body)?)?)?;
        rest.bookings.create_event(&who, new).await
    };
    answer(StatusCode::CREATED, result.await)
}

async fn list_events(State(rest): State<Rest>, headers: HeaderMap) -> Response<Body> {
    let result = async {
        let who = rest.reader(&headers)?;
        rest.bookings.list_events(&who).await
    };
    answer(StatusCode::OK, result.await)
}

async fn get_event(
    State(rest): State<Rest>,
    headers: HeaderMap,
    id: Result<Path<String>, PathRejection>,
) -> Response<Body> {
    let result = async {
        let who = rest.reader(&headers)?;
        let event_id = requests::event_id_text(&path(id)?)?;
        rest.bookings.view_event(&who, event_id).await
    };
    answer(StatusCode::OK, result.await)
}

async fn book(
    State(rest): State<Rest>,
    headers: HeaderMap,
    id: Result<Path<String>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Response<Body> {
    let result = async {
        let who = rest.identity(&headers)?;
        let event_id = requests::event_id_text(&path(id)?)?;
        let body = requests::json_object(&body_bytes(body)?)?;
        let seats = requests::seat_count(body.get("seats"), "seats")?;
        let key = match headers.get(IDEMPOTENCY_KEY) {
            None => None,
            Some(value) => requests::idempotency_key(Some(
                value.to_str().map_err(|_| BookingError::Invalid("Idempotency-Key must be visible ASCII".into()))?,
            ))?,
        };
        rest.bookings.book(&rest.ctx, &who, event_id, seats, key).await
    };
    answer(StatusCode::CREATED, result.await)
}

async fn cancel(
    State(rest): State<Rest>,
    headers: HeaderMap,
    id: Result<Path<String>, PathRejection>,
) -> Response<Body> {
    let result = async {
        let who = rest.identity(&headers)?;
        let booking_id = requests::booking_id_text(&path(id)?)?;
        rest.bookings.cancel(&rest.ctx, &who, booking_id).await
    };
    answer(StatusCode::OK, result.await)
}

async fn list_bookings(State(rest): State<Rest>, headers: HeaderMap) -> Response<Body> {
    let result = async {
        let who = rest.identity(&headers)?;
        rest.bookings.list(&who).await
    };
    answer(StatusCode::OK, result.await)
}

impl Rest {
    /// Who reads: the bearer token's identity, or a guest without an `Authorization` header (the access
    /// rule lets guests see public events). A token that is present but bad is still refused.
    fn reader(&self, headers: &HeaderMap) -> Result<Identity, BookingError> {
        match bearer_token(headers) {
            Some(token) => self.ctx.verify_token(token).map_err(|e| BookingError::Unauthenticated(e.to_string())),
            None => Ok(Identity::guest(0)),
        }
    }

    /// The identity of the request's bearer token.
    fn identity(&self, headers: &HeaderMap) -> Result<Identity, BookingError> {
        let missing = || BookingError::Unauthenticated("an Authorization: Bearer <token> header is required".into());
        let token = bearer_token(headers).ok_or_else(missing)?;
        self.ctx.verify_token(token).map_err(|e| BookingError::Unauthenticated(e.to_string()))
    }
}

fn path(id: Result<Path<String>, PathRejection>) -> Result<String, BookingError> {
    id.map(|Path(id)| id).map_err(|e| BookingError::Invalid(e.body_text()))
}

fn body_bytes(body: Result<Bytes, BytesRejection>) -> Result<Bytes, BookingError> {
    body.map_err(|e| BookingError::Invalid(e.body_text()))
}

fn answer<T: Serialize>(status: StatusCode, result: Result<T, BookingError>) -> Response<Body> {
    match result {
        Ok(value) => (status, axum::Json(value)).into_response(),
        Err(e) => e.into_response(),
    }
}
