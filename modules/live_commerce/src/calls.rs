//! Native calls (`call` frames over WebSocket or QUIC), named after the seed's client → server events so
//! the Socket.IO gateway can forward each emit as `commerce.<event>`:
//!
//! - `commerce.send-reaction` `{ sessionId, type }` → the `reaction-stats` payload (called without `id`,
//!   nothing: the hot path of a live stream)
//! - `commerce.send-message` `{ sessionId, message, userName? }` → the `new-message` payload
//! - `commerce.showcase-product` `{ sessionId, productId | null }` → `{ sessionId, activeProductId }`
//! - `commerce.track-product-click` `{ sessionId, productId, userId? }` → `{ sessionId, productId }`
//! - `commerce.delete-message` `{ sessionId, messageId }` → `{ sessionId, messageId }`
//!
//! Joining and leaving a session are subscribing to and unsubscribing from its topic.

use crate::error::CommerceError;
use crate::live::Live;
use crate::requests;
use crate::service::Commerce;
use chorus_core::module::{Caller, Context, ModuleError};
use chorus_core::protocol::{ErrorCode, Payload};
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

/// Runs the call `method` with `args` for `caller`.
pub async fn dispatch(
    commerce: &Commerce,
    ctx: &Context,
    caller: &Caller,
    method: &str,
    args: Payload,
) -> Result<Payload, ModuleError> {
    if method == "send-reaction" {
        let live = send_reaction(commerce, ctx, caller, &args).await?;
        return reply(&live.reactions.stats());
    }
    // Boxed: the other calls' futures are large, and every reaction's future would otherwise carry them.
    Box::pin(async move {
        let args = decode_value(&args, method)?;
        let result = match method {
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
    })
    .await
}

/// Runs the call `method` with `args` for `caller`, who wants no result: `send-reaction` then skips
/// reading the totals for a reply.
pub async fn cast(
    commerce: &Commerce,
    ctx: &Context,
    caller: &Caller,
    method: &str,
    args: Payload,
) -> Result<(), ModuleError> {
    if method == "send-reaction" {
        return send_reaction(commerce, ctx, caller, &args).await.map(drop);
    }
    dispatch(commerce, ctx, caller, method, args).await.map(drop)
}

/// `send-reaction`, the hot call: its arguments are read in place when they are the usual map of two
/// strings; anything else goes the general way, whose errors name the problem.
async fn send_reaction(
    commerce: &Commerce,
    ctx: &Context,
    caller: &Caller,
    args: &Payload,
) -> Result<Arc<Live>, ModuleError> {
    const METHOD: &str = "send-reaction";
    let (session_id, kind): (Cow<str>, Cow<str>) = match args.decode::<ReactionArgs>() {
        Ok(ReactionArgs { session_id, kind }) => {
            (requests::checked_session_id(session_id)?.into(), requests::checked_reaction_type(kind)?.into())
        }
        Err(_) => {
            let args = requests::arguments(decode_value(args, METHOD)?, METHOD)?;
            (requests::session_id(&args)?.into(), requests::reaction_type(&args)?.into())
        }
    };
    Ok(commerce.react(ctx, caller, &session_id, &kind).await?)
}

fn decode_value(args: &Payload, method: &str) -> Result<Value, ModuleError> {
    args.decode().map_err(|e| ModuleError::invalid(format!("{method}: {e}")))
}

/// `send-reaction`'s arguments as sent: a map with the strings `sessionId` and `type` (other keys are
/// ignored), both borrowed from the payload.
struct ReactionArgs<'a> {
    session_id: &'a str,
    kind: &'a str,
}

impl<'de> Deserialize<'de> for ReactionArgs<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Fields;

        impl<'de> Visitor<'de> for Fields {
            type Value = ReactionArgs<'de>;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a map with the strings sessionId and type")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let (mut session_id, mut kind) = (None, None);
                while let Some(key) = map.next_key::<&str>()? {
                    match key {
                        "sessionId" => session_id = Some(map.next_value()?),
                        "type" => kind = Some(map.next_value()?),
                        _ => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                match (session_id, kind) {
                    (Some(session_id), Some(kind)) => Ok(ReactionArgs { session_id, kind }),
                    _ => Err(de::Error::custom("sessionId and type are required")),
                }
            }
        }

        deserializer.deserialize_map(Fields)
    }
}

fn reply<T: Serialize>(value: &T) -> Result<Payload, ModuleError> {
    Payload::from_value(value).map_err(|e| ModuleError::new(ErrorCode::Internal, e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn args(value: serde_json::Value) -> Payload {
        Payload::from_value(&value).unwrap()
    }

    #[test]
    fn reaction_arguments_are_read_in_place_only_from_a_map_of_two_strings() {
        let sent = args(json!({"type": "heart", "extra": [1, {"a": null}], "sessionId": "s"}));
        let read = sent.decode::<ReactionArgs>().unwrap();
        assert_eq!((read.session_id, read.kind), ("s", "heart"));
        let json = Payload::from_json(Bytes::from_static(br#"{"sessionId":"s","type":"fire"}"#)).unwrap();
        let read = json.decode::<ReactionArgs>().unwrap();
        assert_eq!((read.session_id, read.kind), ("s", "fire"));
        // Each of these takes the general path, whose error names the problem.
        for refused in [
            args(json!(["s", "heart"])),
            args(json!("heart")),
            args(json!({"sessionId": 7, "type": "heart"})),
            args(json!({"sessionId": "s"})),
            args(json!({"type": "heart"})),
            args(json!({"sessionId": "s", "type": null})),
            Payload::from_json(Bytes::from_static(br#"{"sessionId":"s","type":"he\u0061rt"}"#)).unwrap(),
        ] {
            assert!(refused.decode::<ReactionArgs>().is_err(), "{}", refused.to_json());
        }
    }
}
