//! The product actor: one per SKU, holding the product's catalog record.
//!
//! Products are written by admins and read by everyone (carts price their lines with the
//! price found here at add time). Listing and search do not go through these actors: the
//! [`super::Catalog`] keeps a search index fed by every successful upsert.
//!
//! # Events
//! `ProductChanged { sku, product }` in the commit of every upsert that creates or changes
//! the product. Re-upserting an identical product is a no-op: nothing is written, nothing
//! is raised (the reply is the same).

use std::collections::BTreeMap;

use emporium_runtime::{RuntimeError, Turn, VirtualActor};
use serde::{Deserialize, Serialize};

use crate::events::DomainEvent;
use crate::values::{Currency, InvalidValue, Sku};

/// A product as the catalog knows it (also its stored form).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Product {
    pub sku: Sku,
    pub name: String,
    pub description: String,
    pub price_cents: i64,
    pub currency: Currency,
    pub category: String,
    #[serde(default)]
    pub attributes: BTreeMap<String, String>,
}

/// The fields an admin sends to create or replace a product.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProductDraft {
    pub name: String,
    pub description: String,
    pub price_cents: i64,
    pub currency: Currency,
    pub category: String,
    pub attributes: BTreeMap<String, String>,
}

/// Bounds on product fields; a draft outside them is refused with a message naming the field.
pub const MAX_NAME_CHARS: usize = 200;
pub const MAX_DESCRIPTION_CHARS: usize = 5_000;
pub const MAX_CATEGORY_CHARS: usize = 64;
pub const MAX_ATTRIBUTES: usize = 32;
/// One million in any currency unit: a sanity bound, not a business rule.
pub const MAX_PRICE_CENTS: i64 = 100_000_000;

impl ProductDraft {
    /// Check every field; the first problem found is returned.
    pub fn validate(&self) -> Result<(), InvalidValue> {
        let bad = |field, expected: String| Err(InvalidValue { field, expected });
        let name_chars = self.name.trim().chars().count();
        if name_chars == 0 || name_chars > MAX_NAME_CHARS {
            return bad("name", format!("1 to {MAX_NAME_CHARS} characters"));
        }
        if self.description.chars().count() > MAX_DESCRIPTION_CHARS {
            return bad(
                "description",
                format!("at most {MAX_DESCRIPTION_CHARS} characters"),
            );
        }
        if !(1..=MAX_PRICE_CENTS).contains(&self.price_cents) {
            return bad(
                "price_cents",
                format!("a whole number of cents from 1 to {MAX_PRICE_CENTS}"),
            );
        }
        let category = self.category.as_str();
        if category.is_empty()
            || category.len() > MAX_CATEGORY_CHARS
            || !category
                .bytes()
                .all(|byte| byte.is_ascii_lowercase() || byte.is_ascii_digit() || byte == b'-')
        {
            return bad(
                "category",
                format!("1 to {MAX_CATEGORY_CHARS} characters of a-z, 0-9 or '-'"),
            );
        }
        if self.attributes.len() > MAX_ATTRIBUTES
            || self
                .attributes
                .iter()
                .any(|(key, value)| key.is_empty() || key.len() > 64 || value.len() > 256)
        {
            return bad(
                "attributes",
                format!(
                    "at most {MAX_ATTRIBUTES} entries, keys of 1 to 64 bytes, values of at most 256 bytes"
                ),
            );
        }
        Ok(())
    }

    fn into_product(self, sku: Sku) -> Product {
        Product {
            sku,
            name: self.name.trim().to_owned(),
            description: self.description,
            price_cents: self.price_cents,
            currency: self.currency,
            category: self.category,
            attributes: self.attributes,
        }
    }
}

/// A product with the version of its actor's state it was read at or committed as: the
/// search index uses it to move forward only (see [`super::projection`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionedProduct {
    pub product: Product,
    pub version: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ProductCommand {
    Get,
    /// Create or replace. The draft must be valid (see [`ProductDraft::validate`]).
    Upsert(ProductDraft),
}

/// The product actor kind.
pub struct ProductActor;

impl VirtualActor for ProductActor {
    const KIND: &'static str = "product";
    type State = Option<Product>;
    type Command = ProductCommand;
    type Reply = Result<Option<VersionedProduct>, InvalidValue>;

    fn is_read(command: &ProductCommand) -> bool {
        matches!(command, ProductCommand::Get)
    }

    async fn handle(
        &self,
        turn: &mut Turn<Self>,
        command: ProductCommand,
    ) -> Result<Self::Reply, RuntimeError> {
        match command {
            ProductCommand::Get => Ok(Ok(turn.state().clone().map(|product| VersionedProduct {
                product,
                version: turn.version(),
            }))),
            ProductCommand::Upsert(draft) => {
                if let Err(invalid) = draft.validate() {
                    return Ok(Err(invalid));
                }
                let sku = match crate::values::Sku::parse(turn.key()) {
                    Ok(sku) => sku,
                    Err(invalid) => return Ok(Err(invalid)),
                };
                let product = draft.into_product(sku);
                if turn.state().as_ref() == Some(&product) {
                    let version = turn.version();
                    return Ok(Ok(Some(VersionedProduct { product, version })));
                }
                turn.emit(DomainEvent::ProductChanged {
                    sku: product.sku.to_string(),
                    product: product.clone(),
                })?;
                *turn.state_mut() = Some(product.clone());
                // This turn commits the next version (the one its event carries).
                let version = turn.version() + 1;
                Ok(Ok(Some(VersionedProduct { product, version })))
            }
        }
    }
}

#[cfg(test)]
pub(super) mod tests {
    use std::sync::Arc;

    use emporium_runtime::store::MemoryStore;
    use emporium_runtime::{ActorId, Runtime, StateStore};

    use super::*;
    use crate::events::emitted;

    /// A runtime with the product actors, on a memory store (returned too).
    pub(in crate::catalog) async fn product_runtime() -> (Arc<dyn StateStore>, Runtime) {
        let store: Arc<dyn StateStore> = Arc::new(MemoryStore::new());
        let runtime = Runtime::builder(store.clone())
            .register(ProductActor)
            .build()
            .await
            .unwrap();
        (store, runtime)
    }

    fn draft(price_cents: i64) -> ProductDraft {
        ProductDraft {
            name: " Mug ".to_owned(),
            description: "A mug".to_owned(),
            price_cents,
            currency: Currency::default(),
            category: "kitchen".to_owned(),
            attributes: BTreeMap::new(),
        }
    }

    #[tokio::test]
    async fn product_changed_is_raised_by_each_upsert_that_changes_the_product() {
        let (store, runtime) = product_runtime().await;
        let mug = runtime.actor::<ProductActor>("MUG");
        let upsert = |draft| mug.ask(ProductCommand::Upsert(draft));
        let first = upsert(draft(1_200)).await.unwrap().unwrap().unwrap();
        assert_eq!(first.product.name, "Mug");
        let id = ActorId::new("product", "MUG");
        let version = store.load(&id).await.unwrap().unwrap().version;
        assert_eq!(
            first.version, version,
            "the reply names the committed version"
        );
        // The same draft again (the name trims to the same): nothing written or raised.
        assert_eq!(upsert(draft(1_200)).await.unwrap(), Ok(Some(first.clone())));
        let again = store.load(&id).await.unwrap().unwrap().version;
        assert_eq!(again, version, "an identical upsert writes nothing");
        // Invalid: refused, nothing raised.
        assert!(upsert(draft(0)).await.unwrap().is_err());
        let second = upsert(draft(1_500)).await.unwrap().unwrap().unwrap();
        assert_eq!(second.version, version + 1);
        let read = mug.ask(ProductCommand::Get).await.unwrap().unwrap();
        assert_eq!(
            read,
            Some(second.clone()),
            "a read names the version it read"
        );
        let (first, second) = (first.product, second.product);

        let events = emitted::events(store.as_ref(), "product", "MUG").await;
        assert_eq!(
            events,
            [
                DomainEvent::ProductChanged {
                    sku: "MUG".to_owned(),
                    product: first,
                },
                DomainEvent::ProductChanged {
                    sku: "MUG".to_owned(),
                    product: second,
                },
            ]
        );
    }
}
