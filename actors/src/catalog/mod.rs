//! The catalog: product actors plus the search index that lists them.
//!
//! Writes go to the product actor first (the source of truth) and then to the node's search
//! index; at start the index is rebuilt from the stored products. A product write that
//! committed but did not reach the index (a crash in between) is picked up by that rebuild.

mod demo;
mod index;
mod product;

pub use index::{MemoryIndex, SearchError, SearchIndex, SearchPage, SearchQuery};
pub use product::{
    MAX_ATTRIBUTES, MAX_CATEGORY_CHARS, MAX_DESCRIPTION_CHARS, MAX_NAME_CHARS, MAX_PRICE_CENTS,
    Product, ProductActor, ProductCommand, ProductDraft,
};

use std::sync::Arc;

use emporium_runtime::{Runtime, RuntimeError};

use crate::values::{InvalidValue, Sku};

/// Why a catalog call failed.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error(transparent)]
    Invalid(#[from] InvalidValue),
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    #[error(transparent)]
    Search(#[from] SearchError),
}

/// How many product keys one store page brings while rebuilding the index.
const REBUILD_PAGE: usize = 500;

/// The catalog facade used by the edge.
#[derive(Clone)]
pub struct Catalog {
    runtime: Runtime,
    index: Arc<dyn SearchIndex>,
}

impl Catalog {
    pub fn new(runtime: Runtime, index: Arc<dyn SearchIndex>) -> Self {
        Self { runtime, index }
    }

    /// One product, `None` when the SKU is unknown.
    pub async fn get(&self, sku: &Sku) -> Result<Option<Product>, CatalogError> {
        let reply = self
            .runtime
            .actor::<ProductActor>(sku.as_str())
            .ask(ProductCommand::Get)
            .await?;
        Ok(reply?)
    }

    /// Create or replace a product, then index it.
    pub async fn upsert(&self, sku: &Sku, draft: ProductDraft) -> Result<Product, CatalogError> {
        draft.validate()?;
        let reply = self
            .runtime
            .actor::<ProductActor>(sku.as_str())
            .ask(ProductCommand::Upsert(draft))
            .await?;
        let product = reply?.ok_or_else(|| RuntimeError::Unreachable {
            actor: emporium_runtime::ActorId::new("product", sku.as_str()),
            reason: "upsert answered without the product".to_owned(),
        })?;
        self.index.upsert(&product)?;
        Ok(product)
    }

    pub fn search(&self, query: &SearchQuery) -> Result<SearchPage, CatalogError> {
        Ok(self.index.search(query)?)
    }

    /// Load every stored product into the index. Returns how many were indexed.
    pub async fn rebuild_index(&self) -> Result<usize, CatalogError> {
        let mut after: Option<String> = None;
        let mut indexed = 0;
        loop {
            let keys = self
                .runtime
                .list_keys::<ProductActor>(after.as_deref(), REBUILD_PAGE)
                .await?;
            for key in &keys {
                let sku = Sku::parse(key)?;
                if let Some(product) = self.get(&sku).await? {
                    self.index.upsert(&product)?;
                    indexed += 1;
                }
            }
            match keys.last() {
                Some(last) if keys.len() == REBUILD_PAGE => after = Some(last.clone()),
                _ => return Ok(indexed),
            }
        }
    }

    /// Seed the demo products when the catalog is empty. Returns how many were added.
    pub async fn seed_demo_if_empty(&self) -> Result<usize, CatalogError> {
        if !self.index.is_empty() {
            return Ok(0);
        }
        let products = demo::products();
        let count = products.len();
        for (sku, draft) in products {
            self.upsert(&sku, draft).await?;
        }
        Ok(count)
    }
}
