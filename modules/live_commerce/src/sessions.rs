//! Sessions: created by a signed-in user (their creator) with the products to sell, read and listed by
//! anyone. Status changes and the stream are in `stream`, the showcase in `showcase`.

use crate::access::is_owner;
use crate::error::CommerceError;
use crate::ids::is_uuid;
use crate::model::{ProductRecord, SessionProduct, SessionRecord, Status};
use crate::requests::{self, MAX_DESCRIPTION_CHARS, MAX_SHORT_CHARS, MAX_TITLE_CHARS};
use crate::service::Commerce;
use crate::tables::{self, ALL, SESSIONS, id_ck};
use chorus_core::auth::Identity;
use chorus_core::module::Context;
use chorus_core::store::{MAX_SCAN_LIMIT, Scan};
use serde_json::{Map, Value, json};

impl Commerce {
    /// Creates a session of `who` from `{ title, description?, category?, tags?, streamUrl?, streamKey?,
    /// productIds? }`. Every product must exist and be sold by `who`; they are linked in the order given.
    pub async fn create_session(
        &self,
        ctx: &Context,
        who: &Identity,
        body: &Map<String, Value>,
    ) -> Result<SessionRecord, CommerceError> {
        let title = requests::required_text(body, "title", MAX_TITLE_CHARS)?;
        let description = requests::optional_text(body, "description", MAX_DESCRIPTION_CHARS)?;
        let category = requests::optional_text(body, "category", MAX_SHORT_CHARS)?;
        let tags = requests::tags(body)?;
        let stream_url = requests::optional_text(body, "streamUrl", MAX_SHORT_CHARS)?;
        let stream_key = requests::optional_text(body, "streamKey", MAX_SHORT_CHARS)?;
        let product_ids = requests::product_ids(body)?;
        for id in &product_ids {
            let refused = || CommerceError::Invalid(format!("Product {id} not found or not yours"));
            match self.product(ctx, id).await {
                Ok(product) if product.seller_id == who.sub => {}
                Ok(_) | Err(CommerceError::NotFound(_)) => return Err(refused()),
                Err(e) => return Err(e),
            }
        }
        let now = ctx.clock().now_ms();
        let products = (0u32..)
            .zip(product_ids)
            .map(|(display_order, product_id)| SessionProduct {
                product_id,
                display_order,
                featured: false,
                added_ms: now,
            })
            .collect();
        let session = SessionRecord {
            id: self.ids.next(now),
            title,
            description,
            category,
            tags,
            stream_url,
            stream_key,
            status: Status::Scheduled,
            creator_id: who.sub.clone(),
            active_product_id: None,
            started_ms: None,
            ended_ms: None,
            created_ms: now,
            updated_ms: now,
            products,
        };
        ctx.store().put(SESSIONS, ALL, &id_ck(&session.id), tables::encode(&session)?, None).await?;
        Ok(session)
    }

    /// The session `id`, as stored (every change is written to the store before memory).
    pub async fn session(&self, ctx: &Context, id: &str) -> Result<SessionRecord, CommerceError> {
        let not_found = || CommerceError::not_found("Session");
        if !is_uuid(id) {
            return Err(not_found());
        }
        let raw = ctx.store().get(SESSIONS, ALL, &id_ck(id)).await?.ok_or_else(not_found)?;
        tables::decode("session", &raw)
    }

    /// `GET /api/sessions/:id`: the session with `activeProduct` and its `products` in display order.
    pub async fn session_details(
        &self,
        ctx: &Context,
        who: Option<&Identity>,
        id: &str,
    ) -> Result<Value, CommerceError> {
        let session = self.session(ctx, id).await?;
        let mut products: Vec<ProductRecord> = Vec::with_capacity(session.products.len());
        for link in &session.products {
            match self.product(ctx, &link.product_id).await {
                Ok(product) => products.push(product),
                Err(CommerceError::NotFound(_)) => {}
                Err(e) => return Err(e),
            }
        }
        let active = session.active_product_id.as_ref().and_then(|a| products.iter().find(|p| p.id == *a));
        let mut view = session.view(who.is_some_and(|w| is_owner(&session, w)));
        view["activeProduct"] = active.map_or(Value::Null, ProductRecord::view);
        view["products"] = json!(products.iter().map(ProductRecord::view).collect::<Vec<_>>());
        Ok(view)
    }

    /// Every session, newest first; only `creator_id`'s when given.
    pub async fn sessions(&self, ctx: &Context, creator_id: Option<&str>) -> Result<Vec<SessionRecord>, CommerceError> {
        let rows = tables::scan_all(ctx.store().as_ref(), SESSIONS, ALL, Scan::all(MAX_SCAN_LIMIT).reversed()).await?;
        let mut sessions = Vec::new();
        for row in &rows {
            let session: SessionRecord = tables::decode("session", &row.value)?;
            if creator_id.is_none_or(|c| c == session.creator_id) {
                sessions.push(session);
            }
        }
        Ok(sessions)
    }
}
