//! The catalog: product actors plus the search index that lists them.
//!
//! Writes go to the product actor first (the source of truth, which raises
//! `ProductChanged` in the same commit), then to the node's search index; at start the index
//! is rebuilt from the stored products. Every node's index also follows the `ProductChanged`
//! events ([`SearchProjection`]), so writes made through other nodes (and one that committed
//! but did not reach the index before a crash) reach it as soon as the relay has published
//! them.
//!
//! **Invariant: a node's index only moves forward.** Every product reaches the index with
//! the version its actor committed it as, under its SKU's stripe lock, and only when newer
//! than the version the index holds. So an event that arrives after the writing node
//! indexed a later version of its product (a create, then an update at once) is skipped,
//! never put back.

#[cfg(any(test, feature = "conformance"))]
pub mod conformance;
mod demo;
mod index;
mod product;
pub mod projection;

pub use index::{
    MAX_WORD_BYTES, MemoryIndex, SearchError, SearchIndex, SearchPage, SearchQuery, words,
};
pub use product::{
    MAX_ATTRIBUTES, MAX_CATEGORY_CHARS, MAX_DESCRIPTION_CHARS, MAX_NAME_CHARS, MAX_PRICE_CENTS,
    Product, ProductActor, ProductCommand, ProductDraft, VersionedProduct,
};
pub use projection::{OnChange, SearchProjection, search_consumer};

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::{Arc, PoisonError};

use emporium_runtime::{Runtime, RuntimeError};
use tokio::sync::Mutex;

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

/// How many product keys one store page brings while rebuilding the index; the products of
/// a page go to the index in one batch.
const REBUILD_PAGE: usize = 500;

/// How many times the rebuild asks for one product whose answer was "not applied, retry"
/// (each ask already waits out its own deadline): a node restarted after a crash serves its
/// shards only once its former life can no longer serve, which may outlast one ask.
const REBUILD_ATTEMPTS: u32 = 8;

/// Upserts of SKUs hashing to the same stripe wait for each other.
const UPSERT_STRIPES: usize = 64;

/// What an upsert did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Upserted {
    pub product: Product,
    /// `true` when the SKU had no product before.
    pub created: bool,
}

/// The catalog facade used by the edge.
#[derive(Clone)]
pub struct Catalog {
    runtime: Runtime,
    index: Arc<dyn SearchIndex>,
    /// Serialize the store write and the index write of one SKU, and the projection's index
    /// writes of it, so that the index never goes back to an older version.
    upserts: Arc<[Mutex<()>]>,
    /// SKU → the newest product version the index holds (bounded by the catalog's size).
    indexed: Arc<std::sync::Mutex<HashMap<String, u64>>>,
}

impl Catalog {
    pub fn new(runtime: Runtime, index: Arc<dyn SearchIndex>) -> Self {
        Self {
            runtime,
            index,
            upserts: (0..UPSERT_STRIPES).map(|_| Mutex::new(())).collect(),
            indexed: Arc::default(),
        }
    }

    fn stripe_of(&self, sku: &Sku) -> usize {
        let mut hasher = DefaultHasher::new();
        sku.hash(&mut hasher);
        // The remainder is below UPSERT_STRIPES, so it fits in usize.
        (hasher.finish() % self.upserts.len() as u64) as usize
    }

    fn stripe(&self, sku: &Sku) -> &Mutex<()> {
        &self.upserts[self.stripe_of(sku)]
    }

    /// One product, `None` when the SKU is unknown.
    pub async fn get(&self, sku: &Sku) -> Result<Option<Product>, CatalogError> {
        Ok(self
            .get_versioned(sku)
            .await?
            .map(|versioned| versioned.product))
    }

    async fn get_versioned(&self, sku: &Sku) -> Result<Option<VersionedProduct>, CatalogError> {
        let reply = self
            .runtime
            .actor::<ProductActor>(sku.as_str())
            .ask(ProductCommand::Get)
            .await?;
        Ok(reply?)
    }

    /// Create or replace a product, then index it: when this returns, this node's listings
    /// and search show the new version, and the other nodes' once the relay published its
    /// `ProductChanged` (see [`SearchProjection`]).
    ///
    /// Once the product actor committed, the upsert succeeded: an index that refuses it
    /// then is logged, not answered as a failure (the change was applied), and the node's
    /// projection indexes the product from its event, retrying while the index refuses.
    pub async fn upsert(&self, sku: &Sku, draft: ProductDraft) -> Result<Upserted, CatalogError> {
        draft.validate()?;
        let _serialized = self.stripe(sku).lock().await;
        let created = self.get_versioned(sku).await?.is_none();
        let reply = self
            .runtime
            .actor::<ProductActor>(sku.as_str())
            .ask(ProductCommand::Upsert(draft))
            .await?;
        let upserted = reply?.ok_or_else(|| RuntimeError::Unreachable {
            actor: emporium_runtime::ActorId::new("product", sku.as_str()),
            reason: "upsert answered without the product".to_owned(),
        })?;
        if let Err(error) = self
            .index_newer_locked(std::slice::from_ref(&upserted))
            .await
        {
            tracing::warn!(%sku, %error, "catalog: the product is saved; the index takes it from its event");
        }
        Ok(Upserted {
            product: upserted.product,
            created,
        })
    }

    /// Index those of `products` that are newer than the version the index holds of their
    /// SKU, taking their SKUs' stripe locks first (in stripe order, so two callers cannot
    /// wait for each other). Returns how many it indexed.
    pub(crate) async fn index_newer(
        &self,
        products: &[VersionedProduct],
    ) -> Result<usize, SearchError> {
        let mut stripes: Vec<usize> = products
            .iter()
            .map(|versioned| self.stripe_of(&versioned.product.sku))
            .collect();
        stripes.sort_unstable();
        stripes.dedup();
        let mut _serialized = Vec::with_capacity(stripes.len());
        for stripe in stripes {
            _serialized.push(self.upserts[stripe].lock().await);
        }
        self.index_newer_locked(products).await
    }

    /// [`Catalog::index_newer`] for a caller that holds the stripe locks of `products`.
    async fn index_newer_locked(
        &self,
        products: &[VersionedProduct],
    ) -> Result<usize, SearchError> {
        let newer: Vec<&VersionedProduct> = {
            let indexed = self.indexed.lock().unwrap_or_else(PoisonError::into_inner);
            products
                .iter()
                .filter(|versioned| {
                    indexed
                        .get(versioned.product.sku.as_str())
                        .is_none_or(|held| *held < versioned.version)
                })
                .collect()
        };
        if newer.is_empty() {
            return Ok(0);
        }
        let batch: Vec<Product> = newer
            .iter()
            .map(|versioned| versioned.product.clone())
            .collect();
        self.index.upsert_many(&batch).await?;
        let mut indexed = self.indexed.lock().unwrap_or_else(PoisonError::into_inner);
        for versioned in &newer {
            let held = indexed
                .entry(versioned.product.sku.to_string())
                .or_insert(0);
            *held = (*held).max(versioned.version);
        }
        Ok(newer.len())
    }

    pub async fn search(&self, query: &SearchQuery) -> Result<SearchPage, CatalogError> {
        Ok(self.index.search(query).await?)
    }

    /// [`Catalog::get_versioned`], asked again while the answer is "not applied, retry".
    async fn get_patiently(&self, sku: &Sku) -> Result<Option<VersionedProduct>, CatalogError> {
        let mut attempt = 1;
        loop {
            match self.get_versioned(sku).await {
                Err(CatalogError::Runtime(error))
                    if error.is_not_applied() && attempt < REBUILD_ATTEMPTS =>
                {
                    tracing::info!(%sku, %error, attempt, "catalog rebuild: waiting for the product");
                    attempt += 1;
                    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                }
                other => return other,
            }
        }
    }

    /// This node's search index as a projection of `ProductChanged` events; `on_change`
    /// runs after each batch that changed the index (to drop cached listings).
    pub fn projection(&self, on_change: projection::OnChange) -> SearchProjection {
        SearchProjection::new(self.clone(), on_change)
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
            let mut products = Vec::with_capacity(keys.len());
            for key in &keys {
                let sku = Sku::parse(key)?;
                if let Some(product) = self.get_patiently(&sku).await? {
                    products.push(product);
                }
            }
            self.index_newer(&products).await?;
            indexed += products.len();
            match keys.last() {
                Some(last) if keys.len() == REBUILD_PAGE => after = Some(last.clone()),
                _ => return Ok(indexed),
            }
        }
    }

    /// Seed the demo products when the catalog is empty. Returns how many were added.
    pub async fn seed_demo_if_empty(&self) -> Result<usize, CatalogError> {
        if !self.index.is_empty().await? {
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
