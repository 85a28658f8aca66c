//! Native calls (`call` frames over WebSocket or QUIC): `booking.book`, `booking.cancel`, `booking.get`,
//! `booking.list`. Arguments are a map (`booking.list` takes none); results have the same JSON shapes as the REST answers.

use crate::error::BookingError;
use crate::requests;
use crate::service::Bookings;
use chorus_core::module::{Caller, Context, ModuleError};
use chorus_core::protocol::{ErrorCode, Payload};
use serde::Serialize;
use serde_json::{Map, Value};
use std::sync::Arc;

/// Runs the call `method` with `args` for `caller`.
pub async fn dispatch(
    bookings: &Arc<Bookings>,
    ctx: &Context,
    caller: &Caller,
    method: &str,
    args: Payload,
) -> Result<Payload, ModuleError> {
    let who = &caller.identity;
    match method {
        "book" => {
            let args = arguments(method, &args)?;
            let event_id = requests::event_id(args.get("eventId"))?;
            let seats = requests::seat_count(args.get("seats"), "seats")?;
            let key = requests::idempotency_key_arg(&args)?;
            result(&bookings.book(ctx, who, event_id, seats, key).await?)
        }
        "cancel" => {
            let args = arguments(method, &args)?;
            let booking_id = requests::booking_id(args.get("bookingId"))?;
            result(&bookings.cancel(ctx, who, booking_id).await?)
        }
        "get" => {
            let args = arguments(method, &args)?;
            result(&bookings.view_event(who, requests::event_id(args.get("eventId"))?).await?)
        }
        "list" => result(&bookings.list(who).await?),
        other => Err(ModuleError::new(ErrorCode::UnknownMethod, format!("no method booking.{other}"))),
    }
}

/// The arguments as a map.
fn arguments(method: &str, args: &Payload) -> Result<Map<String, Value>, BookingError> {
    match args.decode::<Value>() {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(BookingError::Invalid(format!("booking.{method} takes a map of arguments"))),
    }
}

fn result<T: Serialize>(value: &T) -> Result<Payload, ModuleError> {
    Payload::from_value(value).map_err(|e| ModuleError::new(ErrorCode::Internal, e.to_string()))
}
