//! Product click tracking of one session: per product, the set of distinct clickers (a user's subject;
//! a guest connection's own subject) and the total on a striped broker counter. Nothing is written per
//! click: new clickers and counted totals are persisted by flushes (periodic, when the session goes
//! idle, at stream end, at shutdown) and read back when the session is loaded again.

use crate::error::CommerceError;
use crate::model::{ClickStatsRecord, click_through_rate};
use chorus_core::counters::ShardedCounter;
use chorus_core::module::Context;
use parking_lot::Mutex;
use serde::Serialize;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// Products in `trending-products`: the seed's top 5.
pub const TRENDING: usize = 5;

struct ProductClicks {
    clickers: HashSet<String>,
    unsaved: Vec<String>,
    total: Arc<ShardedCounter>,
    saved_total: u64,
    created_ms: Option<u64>,
}

/// One product's figures, as `product-click-stats` and `trending-products` show them.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ProductStat {
    /// The product.
    pub product_id: String,
    /// Distinct clickers.
    pub unique_clicks: u64,
    /// All clicks.
    pub total_clicks: u64,
    /// Unique clickers per 100 viewers, one decimal.
    pub click_through_rate: f64,
}

/// What a flush takes out: the rows to write, and what to give back if writing fails.
pub struct TakenClicks {
    /// New clickers, per product.
    pub clickers: Vec<(String, Vec<String>)>,
    /// Every clicked product's statistics after the flush.
    pub stats: Vec<ClickStatsRecord>,
    deltas: Vec<(String, i64)>,
}

/// A session's clicks.
pub struct Clicks {
    session_id: String,
    products: Mutex<HashMap<String, ProductClicks>>,
    changed: AtomicBool,
}

impl Clicks {
    /// Clicks as stored: every persisted clicker and each product's persisted statistics.
    pub fn new(ctx: &Context, session_id: &str, clickers: Vec<(String, String)>, stats: Vec<ClickStatsRecord>) -> Self {
        let mut products: HashMap<String, ProductClicks> = HashMap::new();
        for s in stats {
            let entry = Self::entry(ctx, session_id, &mut products, &s.product_id);
            entry.saved_total = s.total_clicks;
            entry.created_ms = Some(s.created_ms);
        }
        for (product, clicker) in clickers {
            Self::entry(ctx, session_id, &mut products, &product).clickers.insert(clicker);
        }
        Self { session_id: session_id.to_owned(), products: Mutex::new(products), changed: AtomicBool::new(false) }
    }

    fn counter_key(session_id: &str, product: &str) -> String {
        format!("commerce/{session_id}/clicks/{product}")
    }

    fn entry<'m>(
        ctx: &Context,
        session_id: &str,
        products: &'m mut HashMap<String, ProductClicks>,
        product: &str,
    ) -> &'m mut ProductClicks {
        products.entry(product.to_owned()).or_insert_with(|| {
            let total = ctx.counters().counter(&Self::counter_key(session_id, product));
            // Left from an earlier load of the session, which flushed it before being dropped.
            total.take();
            ProductClicks { clickers: HashSet::new(), unsaved: Vec::new(), total, saved_total: 0, created_ms: None }
        })
    }

    /// Counts a click of `clicker` on `product` (a product of the session: the caller checked).
    pub fn click(&self, ctx: &Context, product: &str, clicker: &str) {
        let total = {
            let mut products = self.products.lock();
            let entry = Self::entry(ctx, &self.session_id, &mut products, product);
            if entry.clickers.insert(clicker.to_owned()) {
                entry.unsaved.push(clicker.to_owned());
            }
            entry.total.clone()
        };
        total.add(1);
        self.changed.store(true, Ordering::Release);
    }

    /// Marks the statistics as changed (the viewer count moved, so rates did), if anything was clicked.
    pub fn touch(&self) {
        if !self.products.lock().is_empty() {
            self.changed.store(true, Ordering::Release);
        }
    }

    /// Whether anything changed since the last call.
    pub fn take_changed(&self) -> bool {
        self.changed.swap(false, Ordering::AcqRel)
    }

    /// Every clicked product's figures, in `order` (the session's display order; products no longer in
    /// it last, by id).
    pub fn stats(&self, order: &[String], viewers: u64) -> Vec<ProductStat> {
        let products = self.products.lock();
        let mut stats: Vec<(usize, ProductStat)> = products
            .iter()
            .map(|(id, p)| {
                let unique = p.clickers.len() as u64;
                let stat = ProductStat {
                    product_id: id.clone(),
                    unique_clicks: unique,
                    total_clicks: p.saved_total.saturating_add_signed(p.total.get().max(0)),
                    click_through_rate: click_through_rate(unique, viewers),
                };
                (order.iter().position(|o| o == id).unwrap_or(usize::MAX), stat)
            })
            .collect();
        stats.sort_by(|(a, x), (b, y)| a.cmp(b).then_with(|| x.product_id.cmp(&y.product_id)));
        stats.into_iter().map(|(_, s)| s).collect()
    }

    /// Moves counted clicks and new clickers out for persisting; `None` when nothing is unsaved.
    pub fn take(&self, viewers: u64, now_ms: u64) -> Option<TakenClicks> {
        let mut products = self.products.lock();
        let mut clickers = Vec::new();
        let mut deltas = Vec::new();
        for (id, p) in products.iter_mut() {
            let delta = p.total.take();
            if delta != 0 {
                p.saved_total = p.saved_total.saturating_add_signed(delta);
                deltas.push((id.clone(), delta));
            }
            if !p.unsaved.is_empty() {
                clickers.push((id.clone(), std::mem::take(&mut p.unsaved)));
            }
        }
        if deltas.is_empty() && clickers.is_empty() {
            return None;
        }
        let stats = products
            .iter_mut()
            .map(|(id, p)| {
                let unique = p.clickers.len() as u64;
                let created_ms = *p.created_ms.get_or_insert(now_ms);
                ClickStatsRecord {
                    product_id: id.clone(),
                    unique_clicks: unique,
                    total_clicks: p.saved_total,
                    click_through_rate: click_through_rate(unique, viewers),
                    total_viewers: viewers,
                    created_ms,
                    updated_ms: now_ms,
                }
            })
            .collect();
        Some(TakenClicks { clickers, stats, deltas })
    }

    /// Gives back what a failed flush took.
    pub fn restore(&self, taken: TakenClicks) {
        let mut products = self.products.lock();
        for (id, delta) in taken.deltas {
            if let Some(p) = products.get_mut(&id) {
                p.saved_total = p.saved_total.saturating_add_signed(-delta);
                p.total.add(delta);
            }
        }
        for (id, clickers) in taken.clickers {
            if let Some(p) = products.get_mut(&id) {
                p.unsaved.extend(clickers);
            }
        }
    }

    /// Forgets the broker counters (the session's state is being dropped, after a flush).
    pub fn release(&self, ctx: &Context) {
        for id in self.products.lock().keys() {
            ctx.counters().remove(&Self::counter_key(&self.session_id, id));
        }
    }
}

/// The top [`TRENDING`] of `stats`: most unique clicks first, then most clicks, then display order.
pub fn trending(stats: &[ProductStat]) -> Vec<ProductStat> {
    let mut ranked: Vec<(usize, &ProductStat)> = stats.iter().enumerate().collect();
    ranked.sort_by(|(i, a), (j, b)| {
        b.unique_clicks.cmp(&a.unique_clicks).then(b.total_clicks.cmp(&a.total_clicks)).then(i.cmp(j))
    });
    ranked.into_iter().take(TRENDING).map(|(_, s)| s.clone()).collect()
}

/// Refuses a click the session does not take.
pub fn check_clickable(live: bool, has_product: bool) -> Result<(), CommerceError> {
    if !live {
        return Err(CommerceError::Invalid("Product clicks are tracked only while the session is live".into()));
    }
    if !has_product {
        return Err(CommerceError::Invalid("Product is not part of this session".into()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stat(id: &str, unique: u64, total: u64) -> ProductStat {
        ProductStat { product_id: id.into(), unique_clicks: unique, total_clicks: total, click_through_rate: 0.0 }
    }

    #[test]
    fn trending_is_the_top_five_by_unique_then_total_then_order() {
        let stats =
            [stat("a", 1, 1), stat("b", 3, 3), stat("c", 3, 5), stat("d", 0, 0), stat("e", 2, 2), stat("f", 1, 9)];
        let ids: Vec<String> = trending(&stats).into_iter().map(|s| s.product_id).collect();
        assert_eq!(ids, ["c", "b", "e", "f", "a"]);
    }
}
