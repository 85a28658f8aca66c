//! Products: created by a signed-in user (their seller), read by anyone, changed and deleted by their
//! seller only. A deleted product disappears from the sessions that listed it (their reads skip it).

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

    /// Changes the fields of `{ name?, description?, price?, imageUrl? }` (at least one) of product `id`,
    /// sold by `who`.
    pub async fn update_product(
        &self,
        ctx: &Context,
        who: &Identity,
        id: &str,
        body: &Map<String, Value>,
    ) -> Result<ProductRecord, CommerceError> {
        const FIELDS: [&str; 4] = ["name", "description", "price", "imageUrl"];
        if !FIELDS.iter().any(|f| body.contains_key(*f)) {
            return Err(CommerceError::Invalid("give at least one of name, description, price, imageUrl".into()));
        }
        let name =
            body.contains_key("name").then(|| requests::required_text(body, "name", MAX_TITLE_CHARS)).transpose()?;
        let description = body
            .contains_key("description")
            .then(|| requests::required_text(body, "description", MAX_DESCRIPTION_CHARS))
            .transpose()?;
        let price = body.contains_key("price").then(|| requests::price(body)).transpose()?;
        let image_url = body
            .contains_key("imageUrl")
            .then(|| requests::optional_text(body, "imageUrl", MAX_SHORT_CHARS))
            .transpose()?;
        self.product(ctx, id).await?;
        let now = ctx.clock().now_ms();
        tables::update(ctx.store().as_ref(), PRODUCTS, ALL, &id_ck(id), "Product", |p: &mut ProductRecord| {
            if p.seller_id != who.sub || who.guest {
                return Err(CommerceError::Forbidden("Only the product's seller can change it".into()));
            }
            if let Some(name) = &name {
                p.name.clone_from(name);
            }
            if let Some(description) = &description {
                p.description.clone_from(description);
            }
            if let Some(price) = price {
                p.price = price;
            }
            if let Some(image_url) = &image_url {
                p.image_url.clone_from(image_url);
            }
            p.updated_ms = now;
            Ok(())
        })
        .await
    }

    /// Deletes product `id`, sold by `who`.
    pub async fn delete_product(&self, ctx: &Context, who: &Identity, id: &str) -> Result<(), CommerceError> {
        let not_found = || CommerceError::not_found("Product");
        if !is_uuid(id) {
            return Err(not_found());
        }
        let ck = id_ck(id);
        let raw = ctx.store().get(PRODUCTS, ALL, &ck).await?.ok_or_else(not_found)?;
        let product: ProductRecord = tables::decode("product", &raw)?;
        if product.seller_id != who.sub || who.guest {
            return Err(CommerceError::Forbidden("Only the product's seller can delete it".into()));
        }
        if !ctx.store().delete_if_equal(PRODUCTS, ALL, &ck, &raw).await?.applied {
            return Err(CommerceError::Conflict("The product changed meanwhile; try again".into()));
        }
        Ok(())
    }
}
