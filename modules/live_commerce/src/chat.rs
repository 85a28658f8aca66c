//! Chat: `send-message` stores the trimmed message (1–500 characters) with its id and time and publishes
//! `new-message`; a moderator's delete removes it and publishes `message-deleted`.
//!
//! The sender is the connection's identity: its subject as `userId` and its `name` claim as `userName`
//! (the seed's payload fields are not trusted for who someone is). A guest may chat with `userId: null`
//! under the `userName` they give (or "Guest").

use crate::access::is_moderator;
use crate::error::CommerceError;
use crate::events::{self, MESSAGE_DELETED, NEW_MESSAGE};
use crate::ids::is_uuid;
use crate::model::ChatRecord;
use crate::rate::Spend;
use crate::requests::{self, MAX_TITLE_CHARS};
use crate::service::Commerce;
use crate::tables::{self, CHAT, id_ck};
use chorus_core::auth::Identity;
use chorus_core::module::{Caller, Context};
use chorus_core::store::{MAX_SCAN_LIMIT, Scan};
use serde_json::{Map, Value, json};
use std::ops::Bound;

/// Messages in a history page when no `limit` is given (the seed's example).
pub const DEFAULT_HISTORY: usize = 50;
/// Most messages in one history page.
pub const MAX_HISTORY: usize = 200;

/// The clustering-key bound below every message sent at or after `ms`: the text of a version-7 UUID
/// starts with its millisecond, so this prefix sorts after every earlier message and before the rest.
fn sent_before(ms: u64) -> Bound<bytes::Bytes> {
    let ms = ms & 0xffff_ffff_ffff;
    Bound::Excluded(id_ck(&format!("{:08x}-{:04x}-", ms >> 16, ms & 0xffff)))
}

impl Commerce {
    /// The session's last `limit` messages sent before `before_ms` (all when `None`), oldest first.
    pub async fn chat_history(
        &self,
        ctx: &Context,
        session_id: &str,
        limit: usize,
        before_ms: Option<u64>,
    ) -> Result<Vec<ChatRecord>, CommerceError> {
        self.session(ctx, session_id).await?;
        let end = before_ms.map_or(Bound::Unbounded, sent_before);
        let scan = Scan::all(limit.min(MAX_SCAN_LIMIT)).range(Bound::Unbounded, end).reversed();
        let page = ctx.store().scan(CHAT, session_id, &scan).await?;
        let mut messages = page
            .rows
            .iter()
            .map(|row| tables::decode("chat message", &row.value))
            .collect::<Result<Vec<ChatRecord>, _>>()?;
        messages.reverse();
        Ok(messages)
    }

    /// How many messages the session has.
    pub async fn chat_count(&self, ctx: &Context, session_id: &str) -> Result<usize, CommerceError> {
        self.session(ctx, session_id).await?;
        Ok(tables::scan_all(ctx.store().as_ref(), CHAT, session_id, Scan::all(MAX_SCAN_LIMIT)).await?.len())
    }

    /// Sends a chat message from `{ sessionId, message, userName? }`; returns the stored message.
    pub async fn send_message(
        &self,
        ctx: &Context,
        caller: &Caller,
        args: &Map<String, Value>,
    ) -> Result<ChatRecord, CommerceError> {
        let session_id = requests::session_id(args)?;
        let message = requests::chat_message(args)?;
        self.limits.spend(caller.conn_id, Spend::Message)?;
        let given = requests::optional_text(args, "userName", MAX_TITLE_CHARS)?.filter(|n| !n.is_empty());
        self.post_message(ctx, &caller.identity, session_id, message, given).await
    }

    /// Stores and publishes `message` (checked) from `who` in session `session_id`; `given` is the name a
    /// guest asked for.
    pub async fn post_message(
        &self,
        ctx: &Context,
        who: &Identity,
        session_id: String,
        message: String,
        given: Option<String>,
    ) -> Result<ChatRecord, CommerceError> {
        self.session(ctx, &session_id).await?;
        let (user_id, user_name) = if who.guest {
            (None, given.unwrap_or_else(|| "Guest".to_owned()))
        } else {
            (Some(who.sub.clone()), who.name.clone().or(given).unwrap_or_else(|| who.sub.clone()))
        };
        let now = ctx.clock().now_ms();
        let record = ChatRecord { id: self.ids.next(now), session_id, message, user_id, user_name, created_ms: now };
        ctx.store().put(CHAT, &record.session_id, &id_ck(&record.id), tables::encode(&record)?, None).await?;
        events::publish(ctx, &record.session_id, NEW_MESSAGE, record.view());
        Ok(record)
    }

    /// Deletes a chat message (a moderator only) from `{ sessionId, messageId }`.
    pub async fn delete_message(
        &self,
        ctx: &Context,
        who: &Identity,
        session_id: &str,
        message_id: &str,
    ) -> Result<Value, CommerceError> {
        let session = self.session(ctx, session_id).await?;
        if !is_moderator(&session, who) {
            return Err(CommerceError::Forbidden("Only moderators can delete messages".into()));
        }
        let not_found = || CommerceError::not_found("Message");
        if !is_uuid(message_id) {
            return Err(not_found());
        }
        let ck = id_ck(message_id);
        let raw = ctx.store().get(CHAT, session_id, &ck).await?.ok_or_else(not_found)?;
        let outcome = ctx.store().delete_if_equal(CHAT, session_id, &ck, &raw).await?;
        if !outcome.applied {
            return Err(not_found());
        }
        let data = json!({ "sessionId": session_id, "messageId": message_id });
        events::publish(ctx, session_id, MESSAGE_DELETED, &data);
        Ok(data)
    }
}
