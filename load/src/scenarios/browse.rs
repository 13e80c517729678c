//! Browse: a visitor lists a page of the catalog, searches a catalog word, opens a product.

use std::sync::Arc;

use goose::prelude::*;

use super::{arrive, pick, step};
use crate::http::{Call, send};
use crate::session::shopper;
use crate::shop::Shop;
use crate::wire;

/// Products per listing page.
const PAGE: usize = 10;

pub fn scenario(shop: &Arc<Shop>) -> Result<Scenario, GooseError> {
    Ok(scenario!("Browse")
        .register_transaction(step!("arrive", arrive, shop).set_on_start())
        .register_transaction(step!("list products", list_products, shop))
        .register_transaction(step!("search the catalog", search_catalog, shop))
        .register_transaction(step!("open a product page", open_product_page, shop)))
}

/// A page of the catalog at a random offset; remembers its SKUs.
pub async fn list_products(user: &mut GooseUser, shop: &Shop) -> TransactionResult {
    let offset = pick(shop.products.len().div_ceil(PAGE)) * PAGE;
    let path = format!("/v1/products?limit={PAGE}&offset={offset}");
    let answer = send(user, Call::get(path, "browse: list")).await?;
    let page = wire::product_listing(answer.body());
    let page = answer.check(user, page)?;
    shopper(user).seen = page.items.into_iter().map(|p| p.sku).collect();
    Ok(())
}

/// A search for one word of the catalog; every hit must have it.
pub async fn search_catalog(user: &mut GooseUser, shop: &Shop) -> TransactionResult {
    let Some(term) = shop.search_terms.get(pick(shop.search_terms.len())) else {
        return Ok(());
    };
    let path = format!("/v1/products?q={term}&limit={PAGE}");
    let answer = send(user, Call::get(path, "browse: search")).await?;
    let hits = wire::search_results(answer.body(), term);
    answer.check(user, hits).map(drop)
}

/// The page of a product seen on the last listing (or any product of the catalog).
pub async fn open_product_page(user: &mut GooseUser, shop: &Shop) -> TransactionResult {
    let seen = &shopper(user).seen;
    let sku = match seen.get(pick(seen.len())) {
        Some(sku) => sku.clone(),
        None => match shop.products.get(pick(shop.products.len())) {
            Some(product) => product.sku.clone(),
            None => return Ok(()),
        },
    };
    let path = format!("/v1/products/{sku}");
    let answer = send(user, Call::get(path, "browse: product page")).await?;
    // Prices do not change during a run: another price than the catalog's is a wrong answer.
    let listed = shop.price_of(&sku);
    let product = wire::product_page(answer.body(), &sku).and_then(|product| match listed {
        Some(price) if price != product.price_cents => Err(wire::Mismatch(
            "a product page with another price than the catalog".into(),
        )),
        _ => Ok(product),
    });
    answer.check(user, product).map(drop)
}
