//! The product showcase: the owner highlights one of the session's products while it is live or paused
//! (`showcase-product`, `POST /api/sessions/:id/showcase`); `null` clears it. The choice is stored as the
//! session's `activeProductId` and published as `product-showcased` (with the product) or
//! `showcase-cleared`.

use crate::access::is_owner;
use crate::error::CommerceError;
use crate::events::{self, PRODUCT_SHOWCASED, SHOWCASE_CLEARED};
use crate::model::{ProductRecord, SessionRecord, Status};
use crate::service::Commerce;
use crate::tables::{self, ALL, SESSIONS, id_ck};
use chorus_core::auth::Identity;
use chorus_core::module::Context;
use serde_json::json;

impl Commerce {
    /// Showcases `product_id` in session `id`, or clears the showcase; returns the product shown.
    pub async fn showcase(
        &self,
        ctx: &Context,
        who: &Identity,
        id: &str,
        product_id: Option<String>,
    ) -> Result<Option<ProductRecord>, CommerceError> {
        let live = self.live(ctx, id).await?;
        let _changes = live.changes.lock().await;
        let current = live.record.read().clone();
        if !is_owner(&current, who) {
            return Err(CommerceError::Forbidden("Only the session owner can showcase products".into()));
        }
        if !matches!(current.status, Status::Live | Status::Paused) {
            return Err(CommerceError::Invalid("Session must be live or paused to showcase products".into()));
        }
        let product = match &product_id {
            Some(p) if !current.has_product(p) => {
                return Err(CommerceError::Invalid("Product is not part of this session".into()));
            }
            Some(p) => Some(self.product(ctx, p).await?),
            None => None,
        };
        let now = ctx.clock().now_ms();
        let next =
            tables::update(ctx.store().as_ref(), SESSIONS, ALL, &id_ck(id), "Session", |s: &mut SessionRecord| {
                if !matches!(s.status, Status::Live | Status::Paused) {
                    return Err(CommerceError::Invalid("Session must be live or paused to showcase products".into()));
                }
                s.active_product_id.clone_from(&product_id);
                s.updated_ms = now;
                Ok(())
            })
            .await?;
        *live.record.write() = next;
        match &product {
            Some(p) => events::publish(
                ctx,
                id,
                PRODUCT_SHOWCASED,
                json!({ "sessionId": id, "productId": p.id, "product": p.view() }),
            ),
            None => events::publish(ctx, id, SHOWCASE_CLEARED, json!({ "sessionId": id })),
        }
        Ok(product)
    }
}
