//! The wire format: serializable mirrors of domain values. Only this crate knows JSON
//! field names; the domain types carry no HTTP concerns.

use std::collections::BTreeMap;

use emporium_actors::{CartLine, CartView, Product};
use serde::{Deserialize, Serialize};

#[derive(Serialize)]
pub struct ProductJson<'a> {
    pub sku: &'a str,
    pub name: &'a str,
    pub description: &'a str,
    pub price_cents: i64,
    pub currency: &'a str,
    pub category: &'a str,
    pub attributes: &'a BTreeMap<String, String>,
}

impl<'a> From<&'a Product> for ProductJson<'a> {
    fn from(product: &'a Product) -> Self {
        Self {
            sku: product.sku.as_str(),
            name: &product.name,
            description: &product.description,
            price_cents: product.price_cents,
            currency: product.currency.as_str(),
            category: &product.category,
            attributes: &product.attributes,
        }
    }
}

#[derive(Serialize)]
pub struct ProductListJson<'a> {
    pub items: Vec<ProductJson<'a>>,
    pub total: usize,
    /// Matches per category for the text query, ignoring the category filter.
    pub facets: &'a BTreeMap<String, usize>,
}

/// `PUT /v1/admin/products/{sku}`: the whole product (a replace, not a patch). Unknown
/// fields are ignored; `description` defaults to `""` and `attributes` to `{}`.
#[derive(Deserialize)]
pub struct ProductUpsertRequest {
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub price_cents: i64,
    pub currency: String,
    pub category: String,
    /// Values may be strings, numbers or booleans; the handler turns them into strings.
    #[serde(default)]
    pub attributes: Option<serde_json::Map<String, serde_json::Value>>,
}

#[derive(Serialize)]
pub struct CartLineJson<'a> {
    pub sku: &'a str,
    pub quantity: u32,
    pub unit_price_cents: i64,
}

impl<'a> From<&'a CartLine> for CartLineJson<'a> {
    fn from(line: &'a CartLine) -> Self {
        Self {
            sku: line.sku.as_str(),
            quantity: line.quantity,
            unit_price_cents: line.unit_price_cents,
        }
    }
}

#[derive(Serialize)]
pub struct CartJson<'a> {
    pub id: &'a str,
    pub items: Vec<CartLineJson<'a>>,
    pub subtotal_cents: i64,
    pub currency: &'a str,
}

impl<'a> From<&'a CartView> for CartJson<'a> {
    fn from(cart: &'a CartView) -> Self {
        Self {
            id: &cart.id,
            items: cart.items.iter().map(CartLineJson::from).collect(),
            subtotal_cents: cart.subtotal_cents,
            currency: cart.currency.as_str(),
        }
    }
}

/// `POST /v1/carts/{id}/items`
#[derive(Deserialize)]
pub struct AddItemRequest {
    pub sku: String,
    pub quantity: i64,
}

/// `PUT /v1/carts/{id}/items/{sku}`
#[derive(Deserialize)]
pub struct SetQuantityRequest {
    pub quantity: i64,
}

/// `GET /v1/products` query string.
#[derive(Deserialize)]
pub struct ProductListQuery {
    pub category: Option<String>,
    pub q: Option<String>,
    pub limit: Option<usize>,
    pub offset: Option<usize>,
}
