//! The seed's response envelope: `{ "success": true, "message"?: ..., "data": ... }` on success (some
//! routes add fields beside `data`, e.g. `count`, or put theirs at the top level, as the seed shows), and
//! `{ "success": false, "message": ... }` with the error's status on failure — never a stack trace.

use crate::error::CommerceError;
use axum::body::Body;
use axum::http::{Response, StatusCode};
use axum::response::IntoResponse;
use serde_json::{Map, Value, json};

/// A successful answer: a status and the top-level fields of its body (`success: true` is added).
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    status: StatusCode,
    body: Map<String, Value>,
}

impl Reply {
    /// `200 { success, data }`.
    pub fn data(data: Value) -> Self {
        Self::fields(json!({ "data": data }))
    }

    /// `200 { success, message, data }`.
    pub fn message(message: &str, data: Value) -> Self {
        Self::fields(json!({ "message": message, "data": data }))
    }

    /// `200` with these top-level fields (an object) beside `success`.
    pub fn fields(fields: Value) -> Self {
        let body = match fields {
            Value::Object(map) => map,
            other => Map::from_iter([("data".to_owned(), other)]),
        };
        Self { status: StatusCode::OK, body }
    }

    /// Adds a top-level field (e.g. `count`).
    pub fn with(mut self, key: &str, value: Value) -> Self {
        self.body.insert(key.to_owned(), value);
        self
    }

    /// Answers with `201 Created` instead of `200`.
    pub fn created(mut self) -> Self {
        self.status = StatusCode::CREATED;
        self
    }
}

/// The HTTP response of a handler's result.
pub fn respond(result: Result<Reply, CommerceError>) -> Response<Body> {
    match result {
        Ok(Reply { status, body }) => {
            let mut out = Map::with_capacity(body.len() + 1);
            out.insert("success".into(), Value::Bool(true));
            out.extend(body);
            (status, axum::Json(Value::Object(out))).into_response()
        }
        Err(e) => failure(&e),
    }
}

/// The error response: its status and `{ success: false, message }`.
pub fn failure(e: &CommerceError) -> Response<Body> {
    (e.status(), axum::Json(json!({ "success": false, "message": e.public_message() }))).into_response()
}
