//! The in-memory state of the sessions this node is serving — its record, open views, reaction and click
//! counters, click-broadcast timer — and its life: loaded from the store on first use, flushed back
//! (periodically, when no subscriber is left, at stream end, at shutdown), dropped once the session has
//! ended and is flushed.
//!
//! The store stays the record of every session: state changes are written there (by compare-and-set)
//! before the in-memory record changes. What lives only in memory between flushes is counted reactions and
//! clicks, which a flush moves to the store.

use crate::clicks::Clicks;
use crate::error::CommerceError;
use crate::ids::is_uuid;
use crate::model::{ClickStatsRecord, SessionRecord, Status};
use crate::reaction_feed::ReactionFeed;
use crate::reactions::{Reactions, Stored};
use crate::service::Commerce;
use crate::tables::{self, CLICK_STATS, CLICKERS, REACTIONS, SESSIONS, id_ck};
use crate::viewers::Viewers;
use bytes::Bytes;
use chorus_core::module::Context;
use chorus_core::store::{MAX_BATCH_OPS, MAX_SCAN_LIMIT, Scan, WriteOp};
use parking_lot::{Mutex, RwLock};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::sync::OnceCell;
use tokio_util::sync::CancellationToken;

/// One session's live state on this node.
pub struct Live {
    /// The session id.
    pub id: String,
    /// The session's record as last written.
    pub record: RwLock<SessionRecord>,
    /// Serializes changes of the record (status, showcase): each reads, writes the store, then updates
    /// `record`, and two at once must not interleave.
    pub changes: tokio::sync::Mutex<()>,
    /// Open views on this node.
    pub viewers: Mutex<Viewers>,
    /// The viewer count on every node, as last learnt from the roster.
    pub audience: AtomicU64,
    /// Reaction counts.
    pub reactions: Reactions,
    /// The pacing of what viewers are told about reactions.
    pub feed: ReactionFeed,
    /// Product clicks.
    pub clicks: Clicks,
    /// The click-broadcast timer, while one runs.
    pub ticker: Mutex<Option<CancellationToken>>,
    /// Serializes flushes, so a shutdown flush waits for a periodic one in flight (whose write would
    /// otherwise race the store's closing).
    pub flushing: tokio::sync::Mutex<()>,
}

/// A session slot: filled once with the loaded state.
type Slot = Arc<OnceCell<Arc<Live>>>;

/// The sessions in memory.
#[derive(Default)]
pub struct LiveMap {
    map: RwLock<HashMap<String, Slot>>,
}

impl Live {
    async fn load(ctx: &Context, id: &str) -> Result<Arc<Self>, CommerceError> {
        let store = ctx.store().as_ref();
        let raw = store.get(SESSIONS, tables::ALL, &id_ck(id)).await?;
        let record: SessionRecord =
            tables::decode("session", &raw.ok_or_else(|| CommerceError::not_found("Session"))?)?;
        let own_ck = tables::reactions_ck(ctx.node_id());
        let reactions = Stored::read(store, id, &own_ck).await?;
        let stats: Vec<ClickStatsRecord> = tables::load_all(store, CLICK_STATS, id, "click stats").await?;
        let clickers = tables::scan_all(store, CLICKERS, id, Scan::all(MAX_SCAN_LIMIT))
            .await?
            .iter()
            .map(|row| tables::read_click_ck(&row.ck))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Arc::new(Self {
            id: id.to_owned(),
            record: RwLock::new(record),
            changes: tokio::sync::Mutex::new(()),
            viewers: Mutex::default(),
            audience: AtomicU64::new(0),
            reactions: Reactions::new(ctx, id, own_ck, reactions),
            feed: ReactionFeed::default(),
            clicks: Clicks::new(ctx, id, clickers, stats),
            ticker: Mutex::default(),
            flushing: tokio::sync::Mutex::new(()),
        }))
    }

    /// The viewer count (every node's viewers, as last learnt).
    pub fn viewer_count(&self) -> u64 {
        self.audience.load(Ordering::Acquire)
    }

    /// The session's status now.
    pub fn status(&self) -> Status {
        self.record.read().status
    }

    /// The session's product ids, in display order.
    pub fn product_order(&self) -> Vec<String> {
        self.record.read().products.iter().map(|p| p.product_id.clone()).collect()
    }

    /// Writes counted reactions and clicks to the store; in a cluster, then reads the other nodes'
    /// reaction counts of a started stream (a failed read is logged: the writes are done). On failure the
    /// counts stay in memory for the next flush.
    pub async fn flush(&self, ctx: &Context) -> Result<(), CommerceError> {
        let _one_at_a_time = self.flushing.lock().await;
        let store = ctx.store().as_ref();
        let own_ck = self.reactions.own_ck();
        if let Some(taken) = self.reactions.take() {
            let written = match tables::encode(&taken.totals) {
                Ok(value) => store.put(REACTIONS, &self.id, own_ck, value, None).await.map_err(CommerceError::from),
                Err(e) => Err(e),
            };
            if let Err(e) = written {
                self.reactions.restore(taken);
                return Err(e);
            }
        }
        let viewers = self.viewer_count();
        if let Some(taken) = self.clicks.take(viewers, ctx.clock().now_ms())
            && let Err(e) = self.write_clicks(ctx, &taken).await
        {
            self.clicks.restore(taken);
            return Err(e);
        }
        // Other nodes count reactions only while the stream is on; a paused stream may still have their
        // last flush to come. Sessions that never started, or ended (and are dropped), need no read.
        if ctx.node_id().is_some() && matches!(self.status(), Status::Live | Status::Paused) {
            match Stored::read(store, &self.id, own_ck).await {
                Ok(stored) => self.reactions.set_others(ctx, stored.others),
                Err(e) => tracing::warn!(
                    session = %self.id,
                    error = %e,
                    "reading the other nodes' reaction counts failed; the totals shown keep the last reading"
                ),
            }
        }
        Ok(())
    }

    async fn write_clicks(&self, ctx: &Context, taken: &crate::clicks::TakenClicks) -> Result<(), CommerceError> {
        let mut ops = Vec::new();
        for (product, clickers) in &taken.clickers {
            for clicker in clickers {
                ops.push(WriteOp::Put {
                    table: CLICKERS.to_owned(),
                    pk: self.id.clone(),
                    ck: tables::click_ck(product, clicker),
                    value: Bytes::new(),
                    ttl: None,
                });
            }
        }
        for stat in &taken.stats {
            ops.push(WriteOp::Put {
                table: CLICK_STATS.to_owned(),
                pk: self.id.clone(),
                ck: id_ck(&stat.product_id),
                value: tables::encode(stat)?,
                ttl: None,
            });
        }
        while !ops.is_empty() {
            let rest = ops.split_off(ops.len().min(MAX_BATCH_OPS));
            ctx.store().batch(std::mem::replace(&mut ops, rest)).await?;
        }
        Ok(())
    }

    /// Stops the click-broadcast timer, if one runs.
    pub fn stop_ticker(&self) {
        if let Some(token) = self.ticker.lock().take() {
            token.cancel();
        }
    }
}

impl LiveMap {
    fn slot(&self, id: &str) -> Slot {
        if let Some(slot) = self.map.read().get(id) {
            return slot.clone();
        }
        self.map.write().entry(id.to_owned()).or_default().clone()
    }

    /// Removes `slot` if it is still the one for `id`.
    fn drop_slot(&self, id: &str, slot: &Slot) {
        let mut map = self.map.write();
        if map.get(id).is_some_and(|s| Arc::ptr_eq(s, slot)) {
            map.remove(id);
        }
    }

    /// The state of session `id` if it is in memory.
    pub fn get(&self, id: &str) -> Option<Arc<Live>> {
        self.map.read().get(id).and_then(|slot| slot.get().cloned())
    }

    /// Every session in memory.
    pub fn all(&self) -> Vec<Arc<Live>> {
        self.map.read().values().filter_map(|slot| slot.get().cloned()).collect()
    }

    /// Removes `live` from memory if it is still the state of its session; whether it was.
    fn remove(&self, live: &Arc<Live>) -> bool {
        let mut map = self.map.write();
        if map.get(&live.id).and_then(|s| s.get()).is_some_and(|l| Arc::ptr_eq(l, live)) {
            map.remove(&live.id);
            return true;
        }
        false
    }
}

impl Commerce {
    /// The state of session `id`, loaded on first use; not found when there is no such session.
    pub async fn live(&self, ctx: &Context, id: &str) -> Result<Arc<Live>, CommerceError> {
        if let Some(live) = self.live.get(id) {
            return Ok(live);
        }
        if !is_uuid(id) {
            return Err(CommerceError::not_found("Session"));
        }
        Box::pin(self.load_live(ctx, id)).await
    }

    /// Loads session `id` into memory (once, however many callers wait for it). Boxed by [`Self::live`]:
    /// the load's future is large, and every reaction's call would otherwise carry it.
    async fn load_live(&self, ctx: &Context, id: &str) -> Result<Arc<Live>, CommerceError> {
        let slot = self.live.slot(id);
        match slot.get_or_try_init(|| Live::load(ctx, id)).await {
            Ok(live) => Ok(live.clone()),
            Err(e) => {
                // A failed load leaves nothing behind: clients probing unknown ids must not fill the map.
                self.live.drop_slot(id, &slot);
                Err(e)
            }
        }
    }

    /// Flushes every session in memory (the periodic flush, and the last one at shutdown).
    pub async fn flush_all(&self, ctx: &Context) {
        for live in self.live.all() {
            if let Err(e) = live.flush(ctx).await {
                tracing::warn!(session = %live.id, error = %e, "flushing reactions and clicks failed; kept for the next flush");
            }
        }
    }

    /// The session's last subscriber on this node left: stop its timer and flush it; an ended session's
    /// state is then dropped.
    pub async fn idle(&self, ctx: &Context, live: &Arc<Live>) {
        live.stop_ticker();
        if let Err(e) = live.flush(ctx).await {
            tracing::warn!(session = %live.id, error = %e, "flushing an idle session failed; kept for the next flush");
            return;
        }
        if live.status() == Status::Ended {
            self.retire(ctx, live);
        }
    }

    /// Drops a flushed, ended session's state and its counters.
    pub fn retire(&self, ctx: &Context, live: &Arc<Live>) {
        live.stop_ticker();
        if self.live.remove(live) {
            live.reactions.release(ctx);
            live.clicks.release(ctx);
        }
    }
}
