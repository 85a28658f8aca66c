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
use serde::ser::{Serialize, SerializeMap, SerializeStruct, Serializer};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Most distinct reaction types in one session: the seed's four plus room for custom ones; bounds the
/// `reaction-stats` payload sent after every reaction and the counters a client can make the node keep.
/// Only [`Reactions::add`] makes types, so a session (and the totals it flushes) never holds more.
pub const MAX_REACTION_TYPES: usize = 32;

struct Count {
    unflushed: Arc<ShardedCounter>,
    flushed: u64,
}

impl Count {
    fn total(&self) -> u64 {
        self.flushed.saturating_add_signed(self.unflushed.get().max(0))
    }
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
        let counts: ReactionTotals = types.iter().map(|(kind, c)| (kind.clone(), c.total())).collect();
        let total = counts.values().sum();
        (counts, total)
    }

    /// The `reaction-stats` payload, `{ sessionId, counts, total }`, read when it is serialized.
    pub fn stats(&self) -> Stats<'_> {
        Stats(self)
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

/// The `reaction-stats` payload of a session, serialized straight from its counters: it answers every
/// reaction, so no map of copied type names is built on the way. The counts and their `total` come from
/// one read of the counters, so they agree however many reactions land meanwhile.
pub struct Stats<'a>(&'a Reactions);

impl Serialize for Stats<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let types = self.0.types.read();
        let mut values = [0u64; MAX_REACTION_TYPES];
        for (value, count) in values.iter_mut().zip(types.values()) {
            *value = count.total();
        }
        let values = &values[..types.len().min(MAX_REACTION_TYPES)];
        let mut stats = serializer.serialize_struct("ReactionStats", 3)?;
        stats.serialize_field("sessionId", &self.0.session_id)?;
        stats.serialize_field("counts", &Counts { kinds: &types, values })?;
        stats.serialize_field("total", &values.iter().fold(0u64, |sum, v| sum.saturating_add(*v)))?;
        stats.end()
    }
}

struct Counts<'a> {
    kinds: &'a BTreeMap<String, Count>,
    values: &'a [u64],
}

impl Serialize for Counts<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut counts = serializer.serialize_map(Some(self.values.len()))?;
        for (kind, value) in self.kinds.keys().zip(self.values) {
            counts.serialize_entry(kind, value)?;
        }
        counts.end()
    }
}
