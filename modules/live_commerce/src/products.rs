//! Products: created by a signed-in user (their seller), read by anyone.

use crate::error::CommerceError;
use crate::ids::is_uuid;
use crate::model::ProductRecord;
use crate::requests::{self, MAX_DESCRIPTION_CHARS, MAX_SHORT_CHARS, MAX_TITLE_CHARS};
use crate::service::Commerce;
use crate::tables::{self, ALL, PRODUCTS, id_ck};
use chorus_core::auth::Identity;
use chorus_core::module::Context;
use chorus_core::store::Scan;
use serde_json::{Map, Value};

impl Commerce {
    /// Creates a product sold by `who` from a body `{ name, description, price, imageUrl? }`.
    pub async fn create_product(
        &self,
        ctx: &Context,
        who: &Identity,
        body: &Map<String, Value>,
    ) -> Result<ProductRecord, CommerceError> {
        let name = requests::required_text(body, "name", MAX_TITLE_CHARS)?;
        let description = requests::required_text(body, "description", MAX_DESCRIPTION_CHARS)?;
        let price = requests::price(body)?;
        let image_url = requests::optional_text(body, "imageUrl", MAX_SHORT_CHARS)?;
        let now = ctx.clock().now_ms();
        let product = ProductRecord {
            id: self.ids.next(now),
            name,
            description,
            price,
            image_url,
            seller_id: who.sub.clone(),
            created_ms: now,
            updated_ms: now,
        };
        ctx.store().put(PRODUCTS, ALL, &id_ck(&product.id), tables::encode(&product)?, None).await?;
        Ok(product)
    }

    /// The product `id`.
    pub async fn product(&self, ctx: &Context, id: &str) -> Result<ProductRecord, CommerceError> {
        let not_found = || CommerceError::not_found("Product");
        if !is_uuid(id) {
            return Err(not_found());
        }
        let raw = ctx.store().get(PRODUCTS, ALL, &id_ck(id)).await?.ok_or_else(not_found)?;
        tables::decode("product", &raw)
    }

    /// Every product, newest first.
    pub async fn products(&self, ctx: &Context) -> Result<Vec<ProductRecord>, CommerceError> {
        let rows = tables::scan_all(
            ctx.store().as_ref(),
            PRODUCTS,
            ALL,
            Scan::all(chorus_core::store::MAX_SCAN_LIMIT).reversed(),
        )
        .await?;
        rows.iter().map(|row| tables::decode("product", &row.value)).collect()
    }
}
