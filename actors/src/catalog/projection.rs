//! Every node's search index as a projection of `ProductChanged` events.
//!
//! Each node runs its own durable consumer (`search-<node id>`, filter
//! `emporium.product.changed`), so every node's index sees every product write, wherever it
//! was made. The writing node also indexes its own write at once (read-your-writes through
//! that node); its event then finds that version indexed and is skipped.
//!
//! Order: events of one product arrive in the order they were committed, but a redelivery,
//! or an event that reaches the writing node after it indexed a later write itself, may come
//! after a newer version was indexed. The catalog indexes a product only when it is newer
//! than the version the index holds ([`Catalog::index_newer`]), so such an event is skipped.
//! A node that restarts rebuilds its index from the store before it consumes.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use async_trait::async_trait;
use emporium_runtime::events::consume::{ConsumerSpec, EventHandler, Handled, Incoming};

use super::{Catalog, VersionedProduct};
use crate::events::DomainEvent;

/// The consumer spec of `node_id`'s projection.
pub fn search_consumer(node_id: &str) -> ConsumerSpec {
    ConsumerSpec::new(
        format!("search-{}", consumer_safe(node_id)),
        crate::events::subjects::PRODUCT_CHANGED,
    )
}

/// A durable consumer name holds letters, digits, `-` and `_` only.
fn consumer_safe(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Runs after a batch changed the index.
pub type OnChange = Arc<dyn Fn() -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync>;

/// Applies `ProductChanged` events to one node's index.
pub struct SearchProjection {
    catalog: Catalog,
    on_change: OnChange,
}

impl SearchProjection {
    pub fn new(catalog: Catalog, on_change: OnChange) -> Self {
        Self { catalog, on_change }
    }
}

#[async_trait]
impl EventHandler for SearchProjection {
    async fn handle(&self, batch: &[Incoming]) -> Vec<Handled> {
        let mut answers = vec![Handled::Done; batch.len()];
        // The newest product per SKU in this batch, with the answers that depend on it.
        let mut newest: HashMap<String, (VersionedProduct, Vec<usize>)> = HashMap::new();
        for (position, incoming) in batch.iter().enumerate() {
            let envelope = match DomainEvent::decode(&incoming.payload) {
                Ok(envelope) => envelope,
                Err(error) => {
                    answers[position] = Handled::Poison(format!("undecodable event: {error}"));
                    continue;
                }
            };
            let DomainEvent::ProductChanged { sku, product } = envelope.event else {
                continue;
            };
            let candidate = VersionedProduct {
                product,
                version: envelope.version,
            };
            match newest.entry(sku) {
                Entry::Vacant(slot) => {
                    slot.insert((candidate, vec![position]));
                }
                Entry::Occupied(mut slot) => {
                    let (held, positions) = slot.get_mut();
                    if candidate.version > held.version {
                        *held = candidate;
                    }
                    positions.push(position);
                }
            }
        }
        if newest.is_empty() {
            return answers;
        }
        let (products, positions): (Vec<VersionedProduct>, Vec<Vec<usize>>) =
            newest.into_values().unzip();
        match self.catalog.index_newer(&products).await {
            Ok(0) => {}
            Ok(_) => (self.on_change)().await,
            Err(error) => {
                for position in positions.into_iter().flatten() {
                    answers[position] = Handled::Retry(format!("search index: {error}"));
                }
            }
        }
        answers
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    use async_trait::async_trait;

    use emporium_runtime::StateStore;

    use super::*;
    use crate::catalog::product::tests::product_runtime;
    use crate::catalog::{
        MemoryIndex, Product, ProductDraft, SearchError, SearchIndex, SearchPage, SearchQuery,
    };
    use crate::events::{DomainEnvelope, emitted};
    use crate::values::{Currency, Sku};

    fn named(name: &str) -> ProductDraft {
        ProductDraft {
            name: name.to_owned(),
            description: "A mug".to_owned(),
            price_cents: 1_299,
            currency: Currency::default(),
            category: "kitchen".to_owned(),
            attributes: BTreeMap::new(),
        }
    }

    fn delivered(envelope: &DomainEnvelope) -> Incoming {
        Incoming {
            id: envelope.id.clone(),
            subject: crate::events::subjects::PRODUCT_CHANGED.to_owned(),
            payload: serde_json::to_vec(envelope).unwrap().into(),
            delivery_count: 1,
        }
    }

    /// A catalog over `index`, its product actors on a memory store (returned too).
    async fn catalog_over(index: Arc<dyn SearchIndex>) -> (Arc<dyn StateStore>, Catalog) {
        let (store, runtime) = product_runtime().await;
        (store, Catalog::new(runtime, index))
    }

    async fn listed(catalog: &Catalog) -> Vec<String> {
        let query = SearchQuery {
            text: Some("mug".to_owned()),
            limit: 10,
            ..SearchQuery::default()
        };
        let page = catalog.search(&query).await.unwrap();
        page.items.into_iter().map(|product| product.name).collect()
    }

    #[tokio::test]
    async fn an_event_older_than_the_indexed_version_never_puts_it_back() {
        let (store, catalog) = catalog_over(Arc::new(MemoryIndex::default())).await;
        let changes = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&changes);
        let projection = catalog.projection(Arc::new(move || {
            counted.fetch_add(1, Ordering::SeqCst);
            Box::pin(async {})
        }));
        let sku = Sku::parse("MUG").unwrap();
        catalog.upsert(&sku, named("Ceramic Mug")).await.unwrap();
        catalog.upsert(&sku, named("Redis Mug")).await.unwrap();
        let events = emitted::envelopes(store.as_ref(), "product", "MUG").await;
        assert_eq!(events.len(), 2);

        // The writing node's consumer meets the create after the node indexed the update.
        let answers = projection.handle(&[delivered(&events[0])]).await;
        assert!(matches!(answers[..], [Handled::Done]), "{answers:?}");
        assert_eq!(listed(&catalog).await, ["Redis Mug"]);
        // The update itself is indexed already.
        projection.handle(&[delivered(&events[1])]).await;
        assert_eq!(
            changes.load(Ordering::SeqCst),
            0,
            "nothing changed the index"
        );

        // A later version, written through another node, reaches the index and drops
        // cached listings; a redelivery of an older one in the same batch does not win.
        let mut later = events[1].clone();
        later.version += 1;
        later.event = DomainEvent::ProductChanged {
            sku: "MUG".to_owned(),
            product: Product {
                name: "Stoneware Mug".to_owned(),
                ..catalog.get(&sku).await.unwrap().unwrap()
            },
        };
        let batch = [delivered(&later), delivered(&events[0])];
        let answers = projection.handle(&batch).await;
        assert!(
            matches!(answers[..], [Handled::Done, Handled::Done]),
            "{answers:?}"
        );
        assert_eq!(listed(&catalog).await, ["Stoneware Mug"]);
        assert_eq!(changes.load(Ordering::SeqCst), 1);
    }

    /// A memory index whose writes fail while `refusing`.
    #[derive(Default)]
    struct RefusingIndex {
        inner: MemoryIndex,
        refusing: AtomicBool,
    }

    #[async_trait]
    impl SearchIndex for RefusingIndex {
        async fn upsert_many(&self, products: &[Product]) -> Result<(), SearchError> {
            if self.refusing.load(Ordering::SeqCst) {
                return Err(SearchError("the index is down".to_owned()));
            }
            self.inner.upsert_many(products).await
        }

        async fn search(&self, query: &SearchQuery) -> Result<SearchPage, SearchError> {
            self.inner.search(query).await
        }

        async fn len(&self) -> Result<usize, SearchError> {
            self.inner.len().await
        }
    }

    #[tokio::test]
    async fn a_saved_product_the_index_refused_is_an_applied_upsert_indexed_from_its_event() {
        let index = Arc::new(RefusingIndex::default());
        let (store, catalog) = catalog_over(Arc::clone(&index) as Arc<dyn SearchIndex>).await;
        let projection = catalog.projection(Arc::new(|| Box::pin(async {})));
        let sku = Sku::parse("MUG").unwrap();

        index.refusing.store(true, Ordering::SeqCst);
        let upserted = catalog.upsert(&sku, named("Ceramic Mug")).await;
        let upserted = upserted.expect("the product actor committed: the upsert succeeded");
        assert!(upserted.created);
        assert_eq!(catalog.get(&sku).await.unwrap(), Some(upserted.product));
        assert!(listed(&catalog).await.is_empty(), "not indexed yet");

        // Its event comes back while the index still refuses: retried, then indexed.
        let events = emitted::envelopes(store.as_ref(), "product", "MUG").await;
        let answers = projection.handle(&[delivered(&events[0])]).await;
        assert!(matches!(answers[..], [Handled::Retry(_)]), "{answers:?}");
        index.refusing.store(false, Ordering::SeqCst);
        let answers = projection.handle(&[delivered(&events[0])]).await;
        assert!(matches!(answers[..], [Handled::Done]), "{answers:?}");
        assert_eq!(listed(&catalog).await, ["Ceramic Mug"]);
    }
}
