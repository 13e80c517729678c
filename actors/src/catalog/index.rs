//! The catalog's search port and its in-memory twin.
//!
//! [`SearchIndex`] is what listing and search need: upsert products, run a query with a
//! category filter, an optional text query and paging, and get facet counts by category.
//! The node's index is in-process (the tantivy adapter, crate `emporium-search-tantivy`);
//! the port is async so that an index behind a network service (Meilisearch) fits it too.
//!
//! [`MemoryIndex`] keeps products in SKU order and matches text word by word like the
//! adapters do (see [`words`]); it does no ranking and no accent folding. It is the twin for
//! unit tests, and both pass the one conformance suite (`conformance`, feature
//! `conformance`).

use std::collections::BTreeMap;
use std::sync::{PoisonError, RwLock};

use super::product::Product;
use crate::values::Sku;

/// A listing or search request.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SearchQuery {
    /// Full-text query over name and description. It is cut into [`words`]; a product
    /// matches when every word is a word of its name or of its description (case does not
    /// matter). A text without any word matches nothing. Results are ranked by relevance
    /// where the index can rank (BM25 in tantivy, name matches weigh more than
    /// description matches), equal scores in SKU order.
    pub text: Option<String>,
    /// Only products of this category (exact match).
    pub category: Option<String>,
    pub offset: usize,
    pub limit: usize,
}

/// One page of results. Without a text query, items come in SKU order, so that paging
/// through a listing is stable.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SearchPage {
    pub items: Vec<Product>,
    /// Matches across all pages.
    pub total: usize,
    /// Matches per category for the text query, ignoring the category filter, so a
    /// storefront can show how many results each category would give. Categories without
    /// a match are absent.
    pub facets: BTreeMap<String, usize>,
}

/// Why a search failed.
#[derive(Debug, thiserror::Error)]
#[error("search index failure: {0}")]
pub struct SearchError(pub String);

/// The longest word search keeps, in bytes; longer ones are dropped from texts and queries.
pub const MAX_WORD_BYTES: usize = 64;

/// The words of `text` as search sees them: runs of letters and digits, lower-cased, at
/// most [`MAX_WORD_BYTES`] long. `"USB-C Cable"` has the words `usb`, `c` and `cable`.
pub fn words(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|word| !word.is_empty())
        .map(str::to_lowercase)
        .filter(|word| word.len() <= MAX_WORD_BYTES)
}

/// The search port. Implementations are node-local or shared services; a node's index is
/// rebuilt from the product actors at start.
#[async_trait::async_trait]
pub trait SearchIndex: Send + Sync + 'static {
    /// Add products, replacing any indexed product with the same SKU. The writes are
    /// visible to [`SearchIndex::search`] by the time this returns.
    async fn upsert_many(&self, products: &[Product]) -> Result<(), SearchError>;

    /// Add or replace one product; see [`SearchIndex::upsert_many`].
    async fn upsert(&self, product: &Product) -> Result<(), SearchError> {
        self.upsert_many(std::slice::from_ref(product)).await
    }

    async fn search(&self, query: &SearchQuery) -> Result<SearchPage, SearchError>;

    /// How many products are indexed.
    async fn len(&self) -> Result<usize, SearchError>;

    async fn is_empty(&self) -> Result<bool, SearchError> {
        Ok(self.len().await? == 0)
    }
}

/// Products in a sorted map behind a read-write lock.
#[derive(Default)]
pub struct MemoryIndex {
    products: RwLock<BTreeMap<Sku, Product>>,
}

/// Does `product` hold every one of `needles` as a word of its name or description?
fn matches_words(product: &Product, needles: &[String]) -> bool {
    let haystack: Vec<String> = words(&product.name)
        .chain(words(&product.description))
        .collect();
    needles.iter().all(|needle| haystack.contains(needle))
}

#[async_trait::async_trait]
impl SearchIndex for MemoryIndex {
    async fn upsert_many(&self, products: &[Product]) -> Result<(), SearchError> {
        let mut indexed = self
            .products
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        for product in products {
            indexed.insert(product.sku.clone(), product.clone());
        }
        Ok(())
    }

    async fn search(&self, query: &SearchQuery) -> Result<SearchPage, SearchError> {
        let products = self.products.read().unwrap_or_else(PoisonError::into_inner);
        let needles: Option<Vec<String>> = query.text.as_deref().map(|text| words(text).collect());
        let text_matches = products.values().filter(|product| match &needles {
            None => true,
            Some(needles) => !needles.is_empty() && matches_words(product, needles),
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

    async fn len(&self) -> Result<usize, SearchError> {
        Ok(self
            .products
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_split_on_anything_but_letters_and_digits() {
        let split = |text| words(text).collect::<Vec<_>>();
        assert_eq!(split("USB-C Cable, 2 m"), ["usb", "c", "cable", "2", "m"]);
        assert_eq!(split("  Crème BRÛLÉE!"), ["crème", "brûlée"]);
        assert_eq!(split("--- ..."), Vec::<String>::new());
        assert_eq!(split(&"x".repeat(MAX_WORD_BYTES + 1)), Vec::<String>::new());
    }

    #[tokio::test]
    async fn memory_index_passes_the_conformance_suite() {
        super::super::conformance::suite(&MemoryIndex::default()).await;
    }
}
