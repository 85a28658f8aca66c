//! Native calls (`call` frames over WebSocket or QUIC, and the Socket.IO events the gateway maps to
//! them): `study.<method>` with a map of arguments; results have the REST answers' JSON shapes.
//!
//! | method | arguments | REST twin |
//! |---|---|---|
//! | `createSession` | `groupId`, `rounds`?, `scribeId`? | `POST /group-sessions` |
//! | `getSession` | `sessionId` | `GET /group-sessions/:sessionId` |
//! | `startSession` / `endSession` | `sessionId` | `PUT /group-sessions/:sessionId/start` / `end` |
//! | `advanceRound` | `sessionId`, `roundIndex`, `status`? | `POST .../rounds/:roundIndex/advance` |
//! | `updatePrompt` | `sessionId`, `roundIndex`, `prompt` | `PATCH .../rounds/:roundIndex/prompt` |
//! | `submitEvent` | `sessionId`, `eventType`, `roundIndex`?, `payload`? | `POST /group-sessions/:sessionId/events` |
//! | `listEvents` | `sessionId`, `after`?, `limit`? | `GET /group-sessions/:sessionId/events` |
//! | `sendChat` | `groupId`, `sessionId`, `message` | `POST /groups/:groupId/sessions/:sessionId/chat` |
//! | `chatHistory` | `groupId`, `sessionId`, `before`?, `limit`? | `GET /groups/:groupId/sessions/:sessionId/chat` |

use crate::error::StudyError;
use crate::requests;
use crate::service::{NewSession, Study};
use chorus_core::auth::Identity;
use chorus_core::module::{Context, ModuleError};
use chorus_core::protocol::{ErrorCode, Payload};
use serde::Serialize;
use serde_json::{Map, Value};

/// Runs `study.<method>` with `args` for `who`.
pub async fn dispatch(
    study: &Study,
    ctx: &Context,
    who: &Identity,
    method: &str,
    args: Payload,
) -> Result<Payload, ModuleError> {
    let args: Value = args.decode().map_err(|e| ModuleError::invalid(format!("arguments: {e}")))?;
    let args = requests::object(args)?;
    match method {
        "createSession" => {
            let new = new_session(&args)?;
            result(&study.create(ctx, who, new).await?)
        }
        "getSession" => result(&study.view(ctx, who, &requests::id(&args, "sessionId")?).await?),
        "startSession" => result(&study.start(ctx, who, &requests::id(&args, "sessionId")?).await?),
        "endSession" => result(&study.end(ctx, who, &requests::id(&args, "sessionId")?).await?),
        "advanceRound" => {
            let id = requests::id(&args, "sessionId")?;
            let index = requests::round_index(&args)?;
            result(&study.advance(ctx, who, &id, index, requests::target_status(&args)?).await?)
        }
        "updatePrompt" => {
            let id = requests::id(&args, "sessionId")?;
            let index = requests::round_index(&args)?;
            result(&study.update_prompt(ctx, who, &id, index, requests::prompt(&args)?).await?)
        }
        "submitEvent" => {
            let id = requests::id(&args, "sessionId")?;
            let (kind, index, payload) = activity(&args)?;
            result(&study.submit(ctx, who, &id, kind, index, payload).await?)
        }
        "listEvents" => {
            let id = requests::id(&args, "sessionId")?;
            let after = requests::cursor("after", requests::query_field(&args, "after")?.as_deref())?;
            let limit = requests::limit(requests::query_field(&args, "limit")?.as_deref())?;
            result(&study.events(ctx, who, &id, after, limit).await?)
        }
        "sendChat" => {
            let (group, id) = (requests::id(&args, "groupId")?, requests::id(&args, "sessionId")?);
            result(&study.chat(ctx, who, &group, &id, requests::message(&args)?).await?)
        }
        "chatHistory" => {
            let (group, id) = (requests::id(&args, "groupId")?, requests::id(&args, "sessionId")?);
            let before = requests::cursor("before", requests::query_field(&args, "before")?.as_deref())?;
            let limit = requests::limit(requests::query_field(&args, "limit")?.as_deref())?;
            result(&study.chat_history(ctx, who, &group, &id, before, limit).await?)
        }
        other => Err(ModuleError::new(ErrorCode::UnknownMethod, format!("no method {}.{other}", crate::NAME))),
    }
}

/// The fields of a new session (`groupId`, `rounds`?, `scribeId`?).
pub fn new_session(args: &Map<String, Value>) -> Result<NewSession, StudyError> {
    Ok(NewSession {
        group_id: requests::id(args, "groupId")?,
        rounds: requests::rounds(args)?,
        scribe_id: requests::optional_id(args, "scribeId")?,
    })
}

/// The fields of an activity event (`eventType`, `roundIndex`?, `payload`?).
pub fn activity(args: &Map<String, Value>) -> Result<(crate::model::EventType, Option<u32>, Value), StudyError> {
    Ok((requests::event_type(args)?, requests::optional_round_index(args)?, requests::payload(args)?))
}

fn result<T: Serialize>(value: &T) -> Result<Payload, ModuleError> {
    Payload::from_value(value).map_err(|e| ModuleError::new(ErrorCode::Internal, e.to_string()))
}
