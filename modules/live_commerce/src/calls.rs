//! Native calls (`call` frames over WebSocket or QUIC), named after the seed's client → server events so
//! the Socket.IO gateway can forward each emit as `commerce.<event>`:
//!
//! - `commerce.send-reaction` `{ sessionId, type }` → the `reaction-stats` payload
//! - `commerce.send-message` `{ sessionId, message, userName? }` → the `new-message` payload
//! - `commerce.showcase-product` `{ sessionId, productId | null }` → `{ sessionId, activeProductId }`
//! - `commerce.track-product-click` `{ sessionId, productId, userId? }` → `{ sessionId, productId }`
//! - `commerce.delete-message` `{ sessionId, messageId }` → `{ sessionId, messageId }`
//!
//! Joining and leaving a session are subscribing to and unsubscribing from its topic.

use crate::error::CommerceError;
use crate::requests;
use crate::service::Commerce;
use chorus_core::module::{Caller, Context, ModuleError};
use chorus_core::protocol::{ErrorCode, Payload};
use serde::Serialize;
use serde_json::{Value, json};

/// Runs the call `method` with `args` for `caller`.
pub async fn dispatch(
    commerce: &Commerce,
    ctx: &Context,
    caller: &Caller,
    method: &str,
    args: Payload,
) -> Result<Payload, ModuleError> {
    let args: Value = args.decode().map_err(|e| ModuleError::invalid(format!("{method}: {e}")))?;
    let result = match method {
        "send-reaction" => {
            let args = requests::arguments(args, method)?;
            let session_id = requests::session_id(&args)?;
            let kind = requests::reaction_type(&args)?;
            commerce.react(ctx, caller, &session_id, &kind).await?
        }
        "send-message" => {
            let args = requests::arguments(args, method)?;
            commerce.send_message(ctx, caller, &args).await?.view()
        }
        "showcase-product" => {
            let args = requests::arguments(args, method)?;
            let session_id = requests::session_id(&args)?;
            let product_id = requests::showcase_product(&args)?;
            let shown = commerce.showcase(ctx, &caller.identity, &session_id, product_id).await?;
            json!({ "sessionId": session_id, "activeProductId": shown.map(|p| p.id) })
        }
        "track-product-click" => {
            let args = requests::arguments(args, method)?;
            let session_id = requests::session_id(&args)?;
            let product_id = requests::product_id(&args)?;
            commerce.click(ctx, caller, &session_id, &product_id).await?;
            json!({ "sessionId": session_id, "productId": product_id })
        }
        "delete-message" => {
            let args = requests::arguments(args, method)?;
            let session_id = requests::session_id(&args)?;
            let message_id = match args.get("messageId") {
                Some(Value::String(id)) => id.clone(),
                _ => return Err(CommerceError::Invalid("messageId is required".into()).into()),
            };
            commerce.delete_message(ctx, &caller.identity, &session_id, &message_id).await?
        }
        other => return Err(ModuleError::new(ErrorCode::UnknownMethod, format!("no method commerce.{other}"))),
    };
    reply(&result)
}

fn reply<T: Serialize>(value: &T) -> Result<Payload, ModuleError> {
    Payload::from_value(value).map_err(|e| ModuleError::new(ErrorCode::Internal, e.to_string()))
}
