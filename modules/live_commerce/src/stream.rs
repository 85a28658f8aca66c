//! Status changes and the stream: `PATCH /api/sessions/:id/status`, `start-stream`, `end-stream` — owner
//! only. Going live (from scheduled or paused) publishes `stream-started`; ending publishes
//! `stream-ended` after flushing the counted reactions and clicks, closing every open view and stopping
//! the session's timer. An ended session stays ended.

use crate::access::is_owner;
use crate::error::CommerceError;
use crate::events::{self, STREAM_ENDED, STREAM_STARTED, VIEWER_COUNT};
use crate::live::Live;
use crate::model::{SessionRecord, Status};
use crate::service::Commerce;
use crate::tables::{self, ALL, SESSIONS, id_ck};
use crate::viewers::write_views;
use chorus_core::auth::Identity;
use chorus_core::dialect::iso8601;
use chorus_core::module::Context;
use serde_json::json;
use std::sync::Arc;

impl Commerce {
    /// Sets the status of session `id` (owner only); returns the session as stored.
    pub async fn set_status(
        &self,
        ctx: &Context,
        who: &Identity,
        id: &str,
        status: Status,
    ) -> Result<SessionRecord, CommerceError> {
        let live = self.live(ctx, id).await?;
        let _changes = live.changes.lock().await;
        let current = live.record.read().clone();
        if !is_owner(&current, who) {
            return Err(CommerceError::Forbidden("Only the session owner can change its status".into()));
        }
        if current.status == status {
            return Ok(current);
        }
        if current.status == Status::Ended {
            return Err(CommerceError::Conflict("Session has already ended".into()));
        }
        let now = ctx.clock().now_ms();
        let next =
            tables::update(ctx.store().as_ref(), SESSIONS, ALL, &id_ck(id), "Session", |s: &mut SessionRecord| {
                if s.status == Status::Ended {
                    return Err(CommerceError::Conflict("Session has already ended".into()));
                }
                s.status = status;
                s.updated_ms = now;
                match status {
                    Status::Live => {
                        s.started_ms.get_or_insert(now);
                    }
                    Status::Ended => s.ended_ms = Some(now),
                    Status::Scheduled | Status::Paused => {}
                }
                Ok(())
            })
            .await?;
        // The write lock waits for reactions and clicks being counted under the read lock.
        *live.record.write() = next.clone();
        if current.status == Status::Live {
            live.stop_ticker();
        }
        match status {
            Status::Live => events::publish(
                ctx,
                id,
                STREAM_STARTED,
                json!({ "sessionId": id, "channelName": id, "status": "live", "startedAt": next.started_ms.map(iso8601) }),
            ),
            Status::Ended => self.finish(ctx, &live, now).await?,
            Status::Scheduled | Status::Paused => {}
        }
        Ok(next)
    }

    /// After the stream ended: persist the counts, close every view, tell the room, drop the state.
    async fn finish(&self, ctx: &Context, live: &Arc<Live>, now: u64) -> Result<(), CommerceError> {
        live.flush(ctx).await?;
        let closed = live.viewers.lock().close_all(now);
        write_views(ctx, &live.id, closed).await?;
        if live.audience.swap(0, std::sync::atomic::Ordering::AcqRel) != 0 {
            events::publish(ctx, &live.id, VIEWER_COUNT, 0);
            live.clicks.touch();
        }
        events::publish(
            ctx,
            &live.id,
            STREAM_ENDED,
            json!({ "sessionId": live.id, "status": "ended", "endedAt": iso8601(now) }),
        );
        self.retire(ctx, live);
        Ok(())
    }
}
