//! How products are stored in the Meilisearch index, and the index settings that make its
//! search meet the port's contract.
//!
//! # Documents
//! A document is the product's own JSON (its serde form, as the product actors store it)
//! plus `id`, the primary key: the lower-case hex of the SKU's bytes. A SKU may hold `.`,
//! which Meilisearch refuses in document ids, and Meilisearch sorts strings after
//! lower-casing them, which would not give the SKU order the port promises; hex digits
//! are valid in ids, and their order is the SKU's byte order.
//!
//! # Settings
//! - searchable: `name` then `description`, so that the `attribute` rule ranks a name
//!   match above a description match;
//! - filterable: `category` (the port's filter and facets), `price_cents`, `currency`
//!   (unused by the port today; declared so a price filter needs no settings change);
//! - sortable: `id`, the listing order and the tie-break of equal relevance;
//! - ranking rules: Meilisearch's default ones with `sort` last, so a text query ranks by
//!   relevance and only equal matches fall back to SKU order;
//! - typo tolerance off, no stop words, synonyms or custom separators: a word matches
//!   only itself (see the crate documentation for what remains different);
//! - `maxTotalHits` [`MAX_TOTAL_HITS`] and `maxValuesPerFacet` [`MAX_CATEGORIES`]: the
//!   defaults (1000, 100) would cap totals, paging and facets far below a real catalog.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;

use emporium_actors::Product;
use emporium_actors::values::Sku;
use meilisearch_sdk::settings::{
    FacetingSettings, PaginationSetting, Settings, TypoToleranceSettings,
};
use serde::Serialize;

/// The primary key: the hex of the SKU.
pub const PRIMARY_KEY: &str = "id";

/// The most matches a search counts and pages through: Meilisearch's `maxTotalHits`.
/// Totals are exact up to it; items past it are out of reach of paging.
pub const MAX_TOTAL_HITS: usize = 1_000_000;

/// The most categories a facet count lists: Meilisearch's `maxValuesPerFacet`.
pub const MAX_CATEGORIES: usize = 10_000;

/// The attribute the category filter and the facet counts use.
pub(crate) const CATEGORY: &str = "category";

/// Listings in SKU order, and SKU order between equal matches.
pub(crate) const SKU_ORDER: &[&str] = &["id:asc"];

/// The fields of a hit the adapter reads back: the product, without `id`.
pub(crate) const PRODUCT_FIELDS: &[&str] = &[
    "sku",
    "name",
    "description",
    "price_cents",
    "currency",
    "category",
    "attributes",
];

/// The document id of a SKU.
pub fn document_id(sku: &Sku) -> String {
    let mut id = String::with_capacity(sku.as_str().len() * 2);
    for byte in sku.as_str().bytes() {
        // Writing to a String cannot fail.
        let _ = write!(id, "{byte:02x}");
    }
    id
}

/// A product as a Meilisearch document.
#[derive(Serialize)]
pub(crate) struct Document<'a> {
    id: String,
    #[serde(flatten)]
    product: &'a Product,
}

/// The documents of a batch, one per SKU: the last product of a SKU wins, as in the port's
/// contract (Meilisearch would also keep the last, but it need not be sent twice).
pub(crate) fn documents(products: &[Product]) -> Vec<Document<'_>> {
    let mut last: BTreeMap<&Sku, &Product> = BTreeMap::new();
    for product in products {
        last.insert(&product.sku, product);
    }
    last.into_iter()
        .map(|(sku, product)| Document {
            id: document_id(sku),
            product,
        })
        .collect()
}

/// The index settings (see the module documentation).
pub(crate) fn index_settings() -> Settings {
    Settings::new()
        .with_searchable_attributes(["name", "description"])
        .with_filterable_attributes([CATEGORY, "price_cents", "currency"])
        .with_sortable_attributes([PRIMARY_KEY])
        .with_ranking_rules([
            "words",
            "typo",
            "proximity",
            "attribute",
            "exactness",
            "sort",
        ])
        .with_typo_tolerance(TypoToleranceSettings {
            enabled: Some(false),
            ..TypoToleranceSettings::default()
        })
        .with_stop_words(Vec::<String>::new())
        .with_synonyms(HashMap::<String, Vec<String>>::new())
        .with_separation_tokens(Vec::<String>::new())
        .with_non_separation_tokens(Vec::<String>::new())
        .with_dictionary(Vec::<String>::new())
        .with_pagination(PaginationSetting {
            max_total_hits: MAX_TOTAL_HITS,
        })
        .with_faceting(FacetingSettings {
            max_values_per_facet: MAX_CATEGORIES,
            sort_facet_values_by: None,
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use emporium_actors::catalog::conformance::product;

    fn sku(text: &str) -> Sku {
        Sku::parse(text).unwrap()
    }

    #[test]
    fn document_ids_are_valid_and_keep_sku_order() {
        assert_eq!(document_id(&sku("A-1.b_2")), "412d312e625f32");
        let mut skus = ["b-1", "B-2", "A.1", "a_1", "A-10", "A-1", "Z"].map(sku);
        skus.sort();
        let ids: Vec<String> = skus.iter().map(document_id).collect();
        let mut sorted = ids.clone();
        sorted.sort_by_key(|id| id.to_lowercase());
        assert_eq!(ids, sorted, "id order, even lower-cased, is SKU order");
    }

    #[test]
    fn a_batch_keeps_the_last_product_of_each_sku() {
        let first = product("D-1", "Desk Lamp", "Warm.", "home");
        let second = product("D-1", "Floor Lamp", "Tall.", "home");
        let other = product("C-1", "Chair", "Oak.", "home");
        let json = serde_json::to_value(documents(&[first, other, second])).unwrap();
        assert_eq!(json.as_array().map(Vec::len), Some(2));
        assert_eq!(json[0]["id"], "432d31");
        assert_eq!(json[1]["id"], "442d31");
        assert_eq!(json[1]["name"], "Floor Lamp");
        assert_eq!(json[1]["sku"], "D-1");
        assert_eq!(json[1]["price_cents"], 1_000);
    }
}
