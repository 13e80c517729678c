//! The catalog's search port and its in-process default.
//!
//! [`SearchIndex`] is what listing and search need: upsert a product, run a query with a
//! category filter, an optional text query and paging, and get facet counts by category.
//! [`MemoryIndex`] keeps products in SKU order and filters them; it matches text by
//! case-insensitive substring and does no ranking beyond SKU order.

use std::collections::BTreeMap;
use std::sync::{PoisonError, RwLock};

use super::product::Product;
use crate::values::Sku;

/// A listing or search request.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SearchQuery {
    pub text: Option<String>,
    pub category: Option<String>,
    pub offset: usize,
    pub limit: usize,
}

/// One page of results.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SearchPage {
    pub items: Vec<Product>,
    /// Matches across all pages.
    pub total: usize,
    /// Matches per category for the text query, ignoring the category filter, so a
    /// storefront can show how many results each category would give.
    pub facets: BTreeMap<String, usize>,
}

/// Why a search failed.
#[derive(Debug, thiserror::Error)]
#[error("search index failure: {0}")]
pub struct SearchError(pub String);

/// The search port. Implementations are node-local and rebuilt from the product actors at
/// start; they must reflect an upsert by the time `upsert` returns.
pub trait SearchIndex: Send + Sync + 'static {
    fn upsert(&self, product: &Product) -> Result<(), SearchError>;
    fn search(&self, query: &SearchQuery) -> Result<SearchPage, SearchError>;
    fn len(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Products in a sorted map behind a read-write lock.
#[derive(Default)]
pub struct MemoryIndex {
    products: RwLock<BTreeMap<Sku, Product>>,
}

impl SearchIndex for MemoryIndex {
    fn upsert(&self, product: &Product) -> Result<(), SearchError> {
        self.products
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(product.sku.clone(), product.clone());
        Ok(())
    }

    fn search(&self, query: &SearchQuery) -> Result<SearchPage, SearchError> {
        let products = self.products.read().unwrap_or_else(PoisonError::into_inner);
        let needle = query.text.as_deref().map(str::to_lowercase);
        let text_matches = products.values().filter(|product| {
            needle.as_deref().is_none_or(|needle| {
                product.name.to_lowercase().contains(needle)
                    || product.description.to_lowercase().contains(needle)
            })
        });
        let mut facets = BTreeMap::new();
        let mut matching = Vec::new();
        for product in text_matches {
            *facets.entry(product.category.clone()).or_insert(0) += 1;
            if query
                .category
                .as_deref()
                .is_none_or(|category| product.category == category)
            {
                matching.push(product);
            }
        }
        Ok(SearchPage {
            total: matching.len(),
            items: matching
                .into_iter()
                .skip(query.offset)
                .take(query.limit)
                .cloned()
                .collect(),
            facets,
        })
    }

    fn len(&self) -> usize {
        self.products
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}
