//! Reaction counting. Each reaction type of a session has a striped counter from the broker
//! (`ctx.counters()`): a reaction is one relaxed atomic add on the calling thread's stripe, no lock held
//! exclusively and no store write. A type's total is what was flushed to the store plus its counter.
//! A flush moves every counter's value into the flushed part (taking the stripes, so no concurrent add
//! is lost) and writes the totals row; a failed write gives the values back to the counters.

use crate::error::CommerceError;
use crate::model::ReactionTotals;
use chorus_core::counters::ShardedCounter;
use chorus_core::module::Context;
use parking_lot::RwLock;
use std::collections::BTreeMap;
use std::sync::Arc;

/// Most distinct reaction types in one session: the seed's four plus room for custom ones; bounds the
/// `reaction-stats` payload sent after every reaction and the counters a client can make the node keep.
pub const MAX_REACTION_TYPES: usize = 32;

struct Count {
    unflushed: Arc<ShardedCounter>,
    flushed: u64,
}

/// A session's reaction counts.
pub struct Reactions {
    session_id: String,
    types: RwLock<BTreeMap<String, Count>>,
}

/// What a flush took out of the counters: the new totals to write and the deltas to give back if the
/// write fails.
pub struct Taken {
    /// Totals by type, flushed part included.
    pub totals: ReactionTotals,
    deltas: Vec<(String, i64)>,
}

impl Reactions {
    /// Counts starting from the stored `totals`.
    pub fn new(ctx: &Context, session_id: &str, totals: ReactionTotals) -> Self {
        let types = totals
            .into_iter()
            .map(|(kind, flushed)| {
                let unflushed = Self::fresh_counter(ctx, session_id, &kind);
                (kind, Count { unflushed, flushed })
            })
            .collect();
        Self { session_id: session_id.to_owned(), types: RwLock::new(types) }
    }

    fn counter_key(session_id: &str, kind: &str) -> String {
        format!("commerce/{session_id}/reactions/{kind}")
    }

    /// The broker counter of a type, emptied: only this session's state adds to it, and a counter left
    /// from an earlier load of the session was flushed before that state was dropped.
    fn fresh_counter(ctx: &Context, session_id: &str, kind: &str) -> Arc<ShardedCounter> {
        let counter = ctx.counters().counter(&Self::counter_key(session_id, kind));
        counter.take();
        counter
    }

    /// Counts one reaction of `kind`.
    pub fn add(&self, ctx: &Context, kind: &str) -> Result<(), CommerceError> {
        if let Some(count) = self.types.read().get(kind) {
            count.unflushed.add(1);
            return Ok(());
        }
        let mut types = self.types.write();
        if !types.contains_key(kind) && types.len() >= MAX_REACTION_TYPES {
            return Err(CommerceError::Invalid(format!("A session takes at most {MAX_REACTION_TYPES} reaction types")));
        }
        types
            .entry(kind.to_owned())
            .or_insert_with(|| Count { unflushed: Self::fresh_counter(ctx, &self.session_id, kind), flushed: 0 })
            .unflushed
            .add(1);
        Ok(())
    }

    /// Totals by type and their sum.
    pub fn counts(&self) -> (ReactionTotals, u64) {
        let types = self.types.read();
        let counts: ReactionTotals = types
            .iter()
            .map(|(kind, c)| (kind.clone(), c.flushed.saturating_add_signed(c.unflushed.get().max(0))))
            .collect();
        let total = counts.values().sum();
        (counts, total)
    }

    /// Moves every counter into the flushed totals; `None` when nothing was counted since the last flush.
    pub fn take(&self) -> Option<Taken> {
        let mut types = self.types.write();
        let mut deltas = Vec::new();
        for (kind, count) in types.iter_mut() {
            let delta = count.unflushed.take();
            if delta != 0 {
                count.flushed = count.flushed.saturating_add_signed(delta);
                deltas.push((kind.clone(), delta));
            }
        }
        if deltas.is_empty() {
            return None;
        }
        let totals = types.iter().map(|(kind, c)| (kind.clone(), c.flushed)).collect();
        Some(Taken { totals, deltas })
    }

    /// Gives back what a failed flush took.
    pub fn restore(&self, taken: Taken) {
        let mut types = self.types.write();
        for (kind, delta) in taken.deltas {
            if let Some(count) = types.get_mut(&kind) {
                count.flushed = count.flushed.saturating_add_signed(-delta);
                count.unflushed.add(delta);
            }
        }
    }

    /// Forgets the broker counters (the session's state is being dropped, after a flush).
    pub fn release(&self, ctx: &Context) {
        for kind in self.types.read().keys() {
            ctx.counters().remove(&Self::counter_key(&self.session_id, kind));
        }
    }
}
