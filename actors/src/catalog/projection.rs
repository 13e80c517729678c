//! Every node's search index as a projection of `ProductChanged` events.
//!
//! Each node runs its own durable consumer (`search-<node id>`, filter
//! `emporium.product.changed`), so every node's index sees every product write, wherever it
//! was made. The writing node also indexes its own write at once (read-your-writes through
//! that node); the event then re-applies the same value, which is harmless.
//!
//! Order: events of one product arrive in the order they were committed; a redelivery may
//! come after a later event, so the projection remembers the newest version it indexed per
//! SKU and skips older ones (bounded by the catalog's size). A node that restarts rebuilds
//! its index from the store before it consumes.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use emporium_runtime::events::consume::{ConsumerSpec, EventHandler, Handled, Incoming};

use super::{Product, SearchIndex};
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
    index: Arc<dyn SearchIndex>,
    on_change: OnChange,
    /// SKU → the product version last indexed from an event.
    indexed: Mutex<HashMap<String, u64>>,
}

impl SearchProjection {
    pub fn new(index: Arc<dyn SearchIndex>, on_change: OnChange) -> Self {
        Self {
            index,
            on_change,
            indexed: Mutex::new(HashMap::new()),
        }
    }

    fn is_newer(&self, sku: &str, version: u64) -> bool {
        let indexed = self.indexed.lock().unwrap_or_else(PoisonError::into_inner);
        indexed.get(sku).is_none_or(|seen| *seen < version)
    }
}

#[async_trait]
impl EventHandler for SearchProjection {
    async fn handle(&self, batch: &[Incoming]) -> Vec<Handled> {
        let mut answers = vec![Handled::Done; batch.len()];
        // The newest product per SKU in this batch, with the answers that depend on it.
        let mut newest: HashMap<String, (u64, Product, Vec<usize>)> = HashMap::new();
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
            if !self.is_newer(&sku, envelope.version) {
                continue;
            }
            let slot = newest
                .entry(sku)
                .or_insert_with(|| (envelope.version, product.clone(), Vec::new()));
            if envelope.version > slot.0 {
                slot.0 = envelope.version;
                slot.1 = product;
            }
            slot.2.push(position);
        }
        if newest.is_empty() {
            return answers;
        }
        let products: Vec<Product> = newest
            .values()
            .map(|(_, product, _)| product.clone())
            .collect();
        match self.index.upsert_many(&products).await {
            Ok(()) => {
                {
                    let mut indexed = self.indexed.lock().unwrap_or_else(PoisonError::into_inner);
                    for (sku, (version, _, _)) in newest {
                        let seen = indexed.entry(sku).or_insert(0);
                        *seen = (*seen).max(version);
                    }
                }
                (self.on_change)().await;
            }
            Err(error) => {
                for (_, _, positions) in newest.values() {
                    for position in positions {
                        answers[*position] = Handled::Retry(format!("search index: {error}"));
                    }
                }
            }
        }
        answers
    }
}
