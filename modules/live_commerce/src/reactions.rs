//! Reaction counting. Each reaction type of a session has a striped counter from the broker
//! (`ctx.counters()`): a reaction is one relaxed atomic add on the calling thread's stripe, no lock held
//! exclusively and no store write. A type's total is what this node flushed to the store, plus what other
//! nodes had flushed when this one last read their rows, plus its counter.
//! A flush moves every counter's value into the flushed part (taking the stripes, so no concurrent add
//! is lost) and writes this node's totals row; a failed write gives the values back to the counters.
//! Each node writes only its own row (`tables::reactions_ck`), so a rewrite never loses another node's
//! counts, and a write whose outcome is unknown (a timeout) can be repeated as it is.

use crate::error::CommerceError;
use crate::model::ReactionTotals;
use crate::tables::{self, REACTIONS};
use bytes::Bytes;
use chorus_core::counters::ShardedCounter;
use chorus_core::module::Context;
use chorus_core::store::{MAX_SCAN_LIMIT, Scan, Store};
use parking_lot::RwLock;
use serde::ser::{Serialize, SerializeMap, SerializeStruct, Serializer};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Most distinct reaction types in one session: the seed's four plus room for custom ones; bounds the
/// `reaction-stats` payload sent after every reaction and the counters a client can make the node keep.
/// [`Reactions::add`] makes no type past it. In a cluster, nodes learn each other's types at flushes, so
/// nodes adding different new types at the same moment can take a session past it, by what they added
/// since they last read each other's rows.
pub const MAX_REACTION_TYPES: usize = 32;

struct Count {
    unflushed: Arc<ShardedCounter>,
    flushed: u64,
    /// Other nodes' counts, as of this node's last read of their rows.
    others: u64,
}

impl Count {
    fn total(&self) -> u64 {
        self.flushed.saturating_add(self.others).saturating_add_signed(self.unflushed.get().max(0))
    }
}

/// A session's stored reaction totals, split by writer.
#[derive(Default)]
pub struct Stored {
    /// This node's row.
    pub own: ReactionTotals,
    /// Every other node's row, summed by type.
    pub others: ReactionTotals,
}

impl Stored {
    /// Reads every row of the session's partition; `own_ck` names this node's row.
    pub async fn read(store: &dyn Store, session_id: &str, own_ck: &[u8]) -> Result<Self, CommerceError> {
        let mut stored = Self::default();
        for row in tables::scan_all(store, REACTIONS, session_id, Scan::all(MAX_SCAN_LIMIT)).await? {
            let totals: ReactionTotals = tables::decode("reaction totals", &row.value)?;
            let into = if row.ck == own_ck { &mut stored.own } else { &mut stored.others };
            add_into(into, totals);
        }
        Ok(stored)
    }

    /// The session's totals: every node's counts added up.
    pub fn sum(self) -> ReactionTotals {
        let mut totals = self.own;
        add_into(&mut totals, self.others);
        totals
    }
}

fn add_into(into: &mut ReactionTotals, totals: ReactionTotals) {
    for (kind, n) in totals {
        let sum = into.entry(kind).or_default();
        *sum = sum.saturating_add(n);
    }
}

/// A session's reaction counts.
pub struct Reactions {
    session_id: String,
    /// The clustering key of this node's row.
    own_ck: Bytes,
    types: RwLock<BTreeMap<String, Count>>,
}

/// What a flush took out of the counters: the new totals to write and the deltas to give back if the
/// write fails.
pub struct Taken {
    /// This node's totals by type, flushed part included: the value of its row.
    pub totals: ReactionTotals,
    deltas: Vec<(String, i64)>,
}

impl Reactions {
    /// Counts starting from the `stored` totals; `own_ck` names this node's row.
    pub fn new(ctx: &Context, session_id: &str, own_ck: Bytes, stored: Stored) -> Self {
        let reactions = Self { session_id: session_id.to_owned(), own_ck, types: RwLock::new(BTreeMap::new()) };
        {
            let mut types = reactions.types.write();
            for (kind, flushed) in stored.own {
                reactions.count_of(ctx, &mut types, &kind).flushed = flushed;
            }
        }
        reactions.set_others(ctx, stored.others);
        reactions
    }

    /// The clustering key of this node's row.
    pub fn own_ck(&self) -> &Bytes {
        &self.own_ck
    }

    /// The count of `kind`, made (from zero) if the session has none yet.
    fn count_of<'t>(&self, ctx: &Context, types: &'t mut BTreeMap<String, Count>, kind: &str) -> &'t mut Count {
        types.entry(kind.to_owned()).or_insert_with(|| Count {
            unflushed: Self::fresh_counter(ctx, &self.session_id, kind),
            flushed: 0,
            others: 0,
        })
    }

    /// Takes in the other nodes' counts, as just read from their rows.
    pub fn set_others(&self, ctx: &Context, others: ReactionTotals) {
        let mut types = self.types.write();
        for count in types.values_mut() {
            count.others = 0;
        }
        for (kind, n) in others {
            self.count_of(ctx, &mut types, &kind).others = n;
        }
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
        self.count_of(ctx, &mut types, kind).unflushed.add(1);
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
        let totals = types.iter().filter(|(_, c)| c.flushed > 0).map(|(kind, c)| (kind.clone(), c.flushed)).collect();
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
        let values: Vec<u64> = types.values().map(Count::total).collect();
        let values = &values[..];
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
