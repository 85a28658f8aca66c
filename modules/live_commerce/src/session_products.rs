//! The products of a session (the seed's "Session Products Routes"): listed by anyone, linked, unlinked,
//! featured and ordered by the session's owner; and deleting a session, by its owner, once it is not on
//! air.
//!
//! A session's products live inside its row (in display order), so every change is one compare-and-set
//! of that row, made under the session's change lock like status and showcase changes, and the in-memory
//! copy follows. Unlinking the product on show clears the showcase (`showcase-cleared`).

use crate::access::is_owner;
use crate::error::CommerceError;
use crate::events::{self, SHOWCASE_CLEARED};
use crate::model::{ProductRecord, SessionProduct, SessionRecord, Status};
use crate::requests::MAX_SESSION_PRODUCTS;
use crate::service::Commerce;
use crate::tables::{self, ALL, CHAT, CLICK_STATS, CLICKERS, REACTIONS, SESSIONS, VIEWS, id_ck};
use chorus_core::auth::Identity;
use chorus_core::dialect::iso8601;
use chorus_core::module::Context;
use chorus_core::store::{MAX_BATCH_OPS, MAX_SCAN_LIMIT, Scan, WriteOp};
use serde_json::{Value, json};

/// A linked product as the session-products routes show it: the product with its link's fields.
pub fn linked_view(product: &ProductRecord, link: &SessionProduct) -> Value {
    let mut view = product.view();
    view["featured"] = json!(link.featured);
    view["displayOrder"] = json!(link.display_order);
    view["addedAt"] = json!(iso8601(link.added_ms));
    view
}

/// How to link a product: `{ productId, featured?, displayOrder? }`.
pub struct NewLink {
    /// The product.
    pub product_id: String,
    /// Featured at once.
    pub featured: bool,
    /// Position; after the last when `None`.
    pub display_order: Option<u32>,
}

/// Keeps `products` in display order (ties: the earlier link first).
fn sort(products: &mut [SessionProduct]) {
    products.sort_by_key(|p| (p.display_order, p.added_ms));
}

impl Commerce {
    /// Applies `change` to session `id` as `who`, its owner: compare-and-set of the row under the
    /// session's change lock, then the in-memory copy.
    async fn change_session<F>(
        &self,
        ctx: &Context,
        who: &Identity,
        id: &str,
        mut change: F,
    ) -> Result<SessionRecord, CommerceError>
    where
        F: FnMut(&mut SessionRecord) -> Result<(), CommerceError>,
    {
        let live = self.live(ctx, id).await?;
        let _changes = live.changes.lock().await;
        if !is_owner(&live.record.read(), who) {
            return Err(CommerceError::Forbidden("Only the session owner can change its products".into()));
        }
        let now = ctx.clock().now_ms();
        let next =
            tables::update(ctx.store().as_ref(), SESSIONS, ALL, &id_ck(id), "Session", |s: &mut SessionRecord| {
                change(s)?;
                s.updated_ms = now;
                Ok(())
            })
            .await?;
        *live.record.write() = next.clone();
        Ok(next)
    }

    /// The session's products in display order with their link fields; only the featured ones when asked.
    pub async fn session_products(
        &self,
        ctx: &Context,
        id: &str,
        featured_only: bool,
    ) -> Result<Vec<Value>, CommerceError> {
        let session = self.session(ctx, id).await?;
        let mut out = Vec::new();
        for link in session.products.iter().filter(|l| !featured_only || l.featured) {
            match self.product(ctx, &link.product_id).await {
                Ok(product) => out.push(linked_view(&product, link)),
                Err(CommerceError::NotFound(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    /// `PATCH /api/sessions/:id/products` `{ productIds }`: exactly these are featured; returns them.
    pub async fn set_featured(
        &self,
        ctx: &Context,
        who: &Identity,
        id: &str,
        product_ids: &[String],
    ) -> Result<Vec<Value>, CommerceError> {
        self.change_session(ctx, who, id, |s| {
            if let Some(missing) = product_ids.iter().find(|p| !s.has_product(p)) {
                return Err(CommerceError::Invalid(format!("Product {missing} is not in this session's product list")));
            }
            for link in &mut s.products {
                link.featured = product_ids.contains(&link.product_id);
            }
            Ok(())
        })
        .await?;
        let mut featured = Vec::new();
        for product_id in product_ids {
            let product = self.product(ctx, product_id).await?;
            featured.push(json!({
                "id": product.id,
                "name": product.name,
                "price": product.price,
                "imageUrl": product.image_url,
            }));
        }
        Ok(featured)
    }

    /// `POST /api/sessions/:id/products`: links one of the owner's products; returns the link's view.
    pub async fn link_product(
        &self,
        ctx: &Context,
        who: &Identity,
        id: &str,
        link: NewLink,
    ) -> Result<Value, CommerceError> {
        if !is_owner(&self.session(ctx, id).await?, who) {
            return Err(CommerceError::Forbidden("Only the session owner can change its products".into()));
        }
        let product = match self.product(ctx, &link.product_id).await {
            Ok(product) if product.seller_id == who.sub => product,
            Ok(_) | Err(CommerceError::NotFound(_)) => {
                return Err(CommerceError::Invalid(format!("Product {} not found or not yours", link.product_id)));
            }
            Err(e) => return Err(e),
        };
        let now = ctx.clock().now_ms();
        let session = self
            .change_session(ctx, who, id, |s| {
                if s.has_product(&link.product_id) {
                    return Err(CommerceError::Conflict("Product is already in this session".into()));
                }
                if s.products.len() >= MAX_SESSION_PRODUCTS {
                    return Err(CommerceError::Invalid(format!("at most {MAX_SESSION_PRODUCTS} products per session")));
                }
                let last = s.products.iter().map(|p| p.display_order + 1).max().unwrap_or(0);
                s.products.push(SessionProduct {
                    product_id: link.product_id.clone(),
                    display_order: link.display_order.unwrap_or(last),
                    featured: link.featured,
                    added_ms: now,
                });
                sort(&mut s.products);
                Ok(())
            })
            .await?;
        let stored = session.products.iter().find(|p| p.product_id == product.id).expect("just linked");
        Ok(linked_view(&product, stored))
    }

    /// `DELETE /api/sessions/:id/products/:productId`: unlinks it (clearing the showcase if it was on
    /// show).
    pub async fn unlink_product(
        &self,
        ctx: &Context,
        who: &Identity,
        id: &str,
        product_id: &str,
    ) -> Result<(), CommerceError> {
        let mut was_shown = false;
        self.change_session(ctx, who, id, |s| {
            if !s.has_product(product_id) {
                return Err(CommerceError::not_found("Product in this session"));
            }
            s.products.retain(|p| p.product_id != product_id);
            was_shown = s.active_product_id.as_deref() == Some(product_id);
            if was_shown {
                s.active_product_id = None;
            }
            Ok(())
        })
        .await?;
        if was_shown {
            events::publish(ctx, id, SHOWCASE_CLEARED, json!({ "sessionId": id }));
        }
        Ok(())
    }

    /// `PATCH …/:productId/feature` and `…/order`: changes one link; returns its view.
    pub async fn change_link(
        &self,
        ctx: &Context,
        who: &Identity,
        id: &str,
        product_id: &str,
        featured: Option<bool>,
        display_order: Option<u32>,
    ) -> Result<Value, CommerceError> {
        let session = self
            .change_session(ctx, who, id, |s| {
                let link = s
                    .products
                    .iter_mut()
                    .find(|p| p.product_id == product_id)
                    .ok_or_else(|| CommerceError::not_found("Product in this session"))?;
                if let Some(featured) = featured {
                    link.featured = featured;
                }
                if let Some(order) = display_order {
                    link.display_order = order;
                }
                sort(&mut s.products);
                Ok(())
            })
            .await?;
        let link = session.products.iter().find(|p| p.product_id == product_id).expect("changed link");
        Ok(linked_view(&self.product(ctx, product_id).await?, link))
    }

    /// `DELETE /api/sessions/:id`: the owner deletes a session that is not live or paused, with its chat,
    /// views, reactions and clicks.
    pub async fn delete_session(&self, ctx: &Context, who: &Identity, id: &str) -> Result<(), CommerceError> {
        let live = self.live(ctx, id).await?;
        {
            let _changes = live.changes.lock().await;
            let record = live.record.read().clone();
            if !is_owner(&record, who) {
                return Err(CommerceError::Forbidden("Only the session owner can delete it".into()));
            }
            if matches!(record.status, Status::Live | Status::Paused) {
                return Err(CommerceError::Conflict("End the stream before deleting the session".into()));
            }
            ctx.store().delete(SESSIONS, ALL, &id_ck(id)).await?;
        }
        self.retire(ctx, &live);
        let store = ctx.store().as_ref();
        let mut ops = Vec::new();
        for table in [CHAT, VIEWS, REACTIONS, CLICKERS, CLICK_STATS] {
            for row in tables::scan_all(store, table, id, Scan::all(MAX_SCAN_LIMIT)).await? {
                ops.push(WriteOp::Delete { table: table.to_owned(), pk: id.to_owned(), ck: row.ck });
            }
        }
        while !ops.is_empty() {
            let rest = ops.split_off(ops.len().min(MAX_BATCH_OPS));
            store.batch(std::mem::replace(&mut ops, rest)).await?;
        }
        Ok(())
    }
}
