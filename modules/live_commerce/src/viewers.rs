//! Viewer tracking, as the seed's "Viewer Tracking & Role-Based Counting" section has it.
//!
//! Joining is subscribing to the session's topic (`join-session` through the Socket.IO gateway); leaving is
//! unsubscribing or disconnecting. Each join opens a view — a `ViewRecord` stored at once — and closes the
//! viewer's previous open view on this node if there is one (a page reload: the new connection joins
//! before the old one is gone). The viewer is the token subject, which the broker makes unique per
//! connection for guests. The session's creator joins as the publisher: their view is recorded but never
//! counted. Ended sessions track no views.
//!
//! The count is the broker's roster of the session's topic (subscribers only): one per viewer however
//! many connections they have, on however many nodes, so a reload landing on another node counts once
//! too, and a node that dies takes its viewers out of the count. `viewer-count` is published, ordered by
//! the roster's version, whenever the count changes.

use crate::access::{is_owner, viewer_key};
use crate::error::CommerceError;
use crate::events::{self, topic};
use crate::live::Live;
use crate::model::{Role, Status, ViewRecord};
use crate::service::Commerce;
use crate::tables::{self, VIEWS, id_ck};
use chorus_core::module::{Caller, Context};
use chorus_core::roster::Change;
use chorus_core::store::{MAX_BATCH_OPS, WriteOp};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

struct OpenView {
    conn_id: u64,
    record: ViewRecord,
}

/// The open views of a session on this node.
#[derive(Default)]
pub struct Viewers {
    /// Viewer key → their open view.
    open: HashMap<String, OpenView>,
    /// Connection → the viewer key whose open view it holds.
    conns: HashMap<u64, String>,
}

impl Viewers {
    /// Opens `record` for `key` through `conn_id`; returns the viewer's previous open view, closed.
    fn open(&mut self, key: &str, conn_id: u64, record: ViewRecord, now_ms: u64) -> Option<ViewRecord> {
        self.conns.insert(conn_id, key.to_owned());
        let previous = self.open.insert(key.to_owned(), OpenView { conn_id, record })?;
        self.conns.remove(&previous.conn_id);
        let mut closed = previous.record;
        closed.close(now_ms);
        Some(closed)
    }

    /// Closes the open view connection `conn_id` holds, if any.
    fn close_conn(&mut self, conn_id: u64, now_ms: u64) -> Option<ViewRecord> {
        let key = self.conns.remove(&conn_id)?;
        let view = self.open.remove(&key)?;
        let mut closed = view.record;
        closed.close(now_ms);
        Some(closed)
    }

    /// Closes every open view.
    pub fn close_all(&mut self, now_ms: u64) -> Vec<ViewRecord> {
        self.conns.clear();
        self.open
            .drain()
            .map(|(_, view)| {
                let mut closed = view.record;
                closed.close(now_ms);
                closed
            })
            .collect()
    }
}

impl Commerce {
    /// `caller` joined the session (subscribed to its topic): opens their view and, for a viewer, counts
    /// them. Returns the viewer count.
    pub async fn join(&self, ctx: &Context, caller: &Caller, live: &Arc<Live>) -> Result<u64, CommerceError> {
        let (status, publisher) = {
            let record = live.record.read();
            (record.status, is_owner(&record, &caller.identity))
        };
        if status == Status::Ended {
            return Ok(live.viewer_count());
        }
        let now = ctx.clock().now_ms();
        let who = &caller.identity;
        let record = ViewRecord {
            id: self.ids.next(now),
            session_id: live.id.clone(),
            user_id: (!who.guest).then(|| who.sub.clone()),
            role: if publisher { Role::Publisher } else { Role::Subscriber },
            socket_id: caller.conn_id.to_string(),
            joined_ms: now,
            left_ms: None,
            watch_secs: None,
        };
        let mut writes = vec![record.clone()];
        writes.extend(live.viewers.lock().open(viewer_key(who), caller.conn_id, record, now));
        write_views(ctx, &live.id, writes).await?;
        if publisher {
            tracing::debug!(session = %live.id, user = %who.sub, "publisher joined their own session");
            let present = ctx.roster().present(&topic(&live.id)).await as u64;
            live.audience.store(present, Ordering::Release);
            return Ok(present);
        }
        let name = who.name.as_deref().unwrap_or(&who.sub);
        let change = ctx.roster().join(&topic(&live.id), viewer_key(who), name, caller.conn_id).await;
        self.count_changed(ctx, live, &change);
        Ok(change.present as u64)
    }

    /// `caller`'s connection left the session: closes its view if it still holds one, and uncounts it.
    pub async fn leave(&self, ctx: &Context, caller: &Caller, live: &Arc<Live>) {
        let now = ctx.clock().now_ms();
        let closed = live.viewers.lock().close_conn(caller.conn_id, now);
        if let Some(closed) = closed
            && let Err(e) = write_views(ctx, &live.id, vec![closed]).await
        {
            tracing::warn!(session = %live.id, error = %e, "closing a view failed; it stays open in the store");
        }
        let topic = topic(&live.id);
        if let Some(change) = ctx.roster().leave(&topic, viewer_key(&caller.identity), caller.conn_id).await {
            self.count_changed(ctx, live, &change);
        }
    }

    /// The roster changed (a join, a leave, viewers of a dead node gone): publishes the new count.
    pub fn count_changed(&self, ctx: &Context, live: &Live, change: &Change) {
        if !change.changed && change.departed.is_empty() {
            return;
        }
        live.audience.store(change.present as u64, Ordering::Release);
        if live.status() == Status::Ended {
            return;
        }
        events::publish_viewer_count(ctx, &live.id, change.present, change.version);
        live.clicks.touch();
    }
}

/// Stores view records, in batches the store takes.
pub async fn write_views(ctx: &Context, session_id: &str, views: Vec<ViewRecord>) -> Result<(), CommerceError> {
    let mut ops = Vec::with_capacity(views.len());
    for view in views {
        ops.push(WriteOp::Put {
            table: VIEWS.to_owned(),
            pk: session_id.to_owned(),
            ck: id_ck(&view.id),
            value: tables::encode(&view)?,
            ttl: None,
        });
    }
    while !ops.is_empty() {
        let rest = ops.split_off(ops.len().min(MAX_BATCH_OPS));
        ctx.store().batch(std::mem::replace(&mut ops, rest)).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(id: &str, role: Role, joined_ms: u64) -> ViewRecord {
        ViewRecord {
            id: id.into(),
            session_id: "s".into(),
            user_id: None,
            role,
            socket_id: "1".into(),
            joined_ms,
            left_ms: None,
            watch_secs: None,
        }
    }

    #[test]
    fn a_reload_closes_the_previous_view() {
        let mut v = Viewers::default();
        assert!(v.open("ann", 1, view("a", Role::Subscriber, 0), 0).is_none());
        assert!(v.open("pub", 2, view("p", Role::Publisher, 0), 0).is_none());
        let closed = v.open("ann", 3, view("b", Role::Subscriber, 5_000), 12_500).expect("previous view");
        assert_eq!((closed.id.as_str(), closed.left_ms, closed.watch_secs), ("a", Some(12_500), Some(12)));
        assert!(v.close_conn(1, 20_000).is_none(), "the reloaded connection no longer holds a view");
        assert_eq!(v.close_conn(3, 20_000).map(|r| r.id), Some("b".into()));
        assert_eq!(v.close_all(30_000).len(), 1);
    }
}
