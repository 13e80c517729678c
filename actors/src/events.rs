//! The domain event catalog: every event the storefront raises, its subject and its payload.
//!
//! Each actor raises events with `turn.emit(DomainEvent::…)`; the runtime commits them with
//! the actor's state (the outbox), wraps them in its [`Envelope`] (id, source, version, time,
//! schema) and the relay publishes them on `subject()`. Consumers decode a delivery with
//! [`DomainEvent::decode`].
//!
//! Compatibility: adding a variant or an optional field is compatible; renaming or removing
//! one is a new [`SCHEMA`](DomainEvent::SCHEMA) version.

use std::collections::BTreeMap;

use emporium_runtime::events::{Envelope, Event};
use serde::{Deserialize, Serialize};

use crate::cart::CartLine;
use crate::catalog::Product;

/// Experiment name → the variant the shopper was assigned (see [`crate::experiments`]);
/// carried by the funnel events so conversion can be broken down per variant.
pub type Variants = BTreeMap<String, String>;

/// One line as events carry it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventLine {
    pub sku: String,
    pub quantity: u32,
    pub unit_price_cents: i64,
}

impl From<&CartLine> for EventLine {
    fn from(line: &CartLine) -> Self {
        Self {
            sku: line.sku.to_string(),
            quantity: line.quantity,
            unit_price_cents: line.unit_price_cents,
        }
    }
}

/// Every domain event. On the wire: `"type": "<Variant>", "data": {…}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum DomainEvent {
    UserRegistered {
        user_id: String,
        email: String,
        name: String,
    },
    UserLoggedIn {
        user_id: String,
    },
    /// A product was created or replaced; `product` is its new value.
    ProductChanged {
        sku: String,
        product: Product,
    },
    CartCreated {
        cart_id: String,
        user_id: Option<String>,
        #[serde(default)]
        variants: Variants,
    },
    CartItemAdded {
        cart_id: String,
        user_id: Option<String>,
        sku: String,
        quantity: u32,
        unit_price_cents: i64,
        currency: String,
    },
    CartItemRemoved {
        cart_id: String,
        user_id: Option<String>,
        sku: String,
        quantity: u32,
    },
    /// A cart with lines saw no change for the configured inactivity.
    CartAbandoned {
        cart_id: String,
        user_id: Option<String>,
        lines: Vec<EventLine>,
        subtotal_cents: i64,
        currency: String,
        #[serde(default)]
        variants: Variants,
    },
    CheckoutStarted {
        checkout_id: String,
        cart_id: String,
        user_id: String,
        #[serde(default)]
        variants: Variants,
    },
    OrderPlaced {
        order_id: String,
        user_id: String,
        lines: Vec<EventLine>,
        subtotal_cents: i64,
        shipping_cents: i64,
        total_cents: i64,
        currency: String,
        #[serde(default)]
        variants: Variants,
    },
    OrderPaid {
        order_id: String,
        user_id: String,
        total_cents: i64,
        currency: String,
        #[serde(default)]
        variants: Variants,
    },
    OrderShipped {
        order_id: String,
        user_id: String,
    },
    OrderDelivered {
        order_id: String,
        user_id: String,
    },
    OrderCancelled {
        order_id: String,
        user_id: String,
        reason: String,
    },
    OrderRefunded {
        order_id: String,
        user_id: String,
        amount_cents: i64,
        currency: String,
    },
    PaymentCaptured {
        order_id: String,
        user_id: String,
        reference: String,
        amount_cents: i64,
        currency: String,
    },
    StockChanged {
        sku: String,
        on_hand: u64,
        available: u64,
    },
    StockLow {
        sku: String,
        available: u64,
        threshold: u64,
    },
}

impl Event for DomainEvent {
    const SCHEMA: u32 = 1;

    fn subject(&self) -> &'static str {
        match self {
            Self::UserRegistered { .. } => "emporium.user.registered",
            Self::UserLoggedIn { .. } => "emporium.user.logged_in",
            Self::ProductChanged { .. } => "emporium.product.changed",
            Self::CartCreated { .. } => "emporium.cart.created",
            Self::CartItemAdded { .. } => "emporium.cart.item_added",
            Self::CartItemRemoved { .. } => "emporium.cart.item_removed",
            Self::CartAbandoned { .. } => "emporium.cart.abandoned",
            Self::CheckoutStarted { .. } => "emporium.checkout.started",
            Self::OrderPlaced { .. } => "emporium.order.placed",
            Self::OrderPaid { .. } => "emporium.order.paid",
            Self::OrderShipped { .. } => "emporium.order.shipped",
            Self::OrderDelivered { .. } => "emporium.order.delivered",
            Self::OrderCancelled { .. } => "emporium.order.cancelled",
            Self::OrderRefunded { .. } => "emporium.order.refunded",
            Self::PaymentCaptured { .. } => "emporium.payment.captured",
            Self::StockChanged { .. } => "emporium.inventory.stock_changed",
            Self::StockLow { .. } => "emporium.inventory.stock_low",
        }
    }
}

/// A decoded delivery.
pub type DomainEnvelope = Envelope<DomainEvent>;

impl DomainEvent {
    /// Decode a delivered payload into its envelope.
    pub fn decode(payload: &[u8]) -> Result<DomainEnvelope, serde_json::Error> {
        Envelope::decode(payload)
    }

    /// The user the event is about, when there is one (notifications go to them).
    pub fn user(&self) -> Option<&str> {
        match self {
            Self::UserRegistered { user_id, .. }
            | Self::UserLoggedIn { user_id }
            | Self::CheckoutStarted { user_id, .. }
            | Self::OrderPlaced { user_id, .. }
            | Self::OrderPaid { user_id, .. }
            | Self::OrderShipped { user_id, .. }
            | Self::OrderDelivered { user_id, .. }
            | Self::OrderCancelled { user_id, .. }
            | Self::OrderRefunded { user_id, .. }
            | Self::PaymentCaptured { user_id, .. } => Some(user_id),
            Self::CartCreated { user_id, .. }
            | Self::CartItemAdded { user_id, .. }
            | Self::CartItemRemoved { user_id, .. }
            | Self::CartAbandoned { user_id, .. } => user_id.as_deref(),
            Self::ProductChanged { .. } | Self::StockChanged { .. } | Self::StockLow { .. } => None,
        }
    }
}

/// The event of a cart, order or SKU subject family, for consumers' filters.
pub mod subjects {
    /// Every domain event.
    pub const ALL: &str = "emporium.>";
    pub const PRODUCT_CHANGED: &str = "emporium.product.changed";
}

/// Test support: what actors left in the outbox, decoded.
#[cfg(test)]
pub(crate) mod emitted {
    use emporium_runtime::StateStore;
    use emporium_runtime::events::Event;

    use super::{DomainEnvelope, DomainEvent};

    /// Every pending outbox envelope of the actor `kind`/`key`, in commit order; checks that
    /// each entry's topic is its event's subject.
    pub(crate) async fn envelopes(
        store: &dyn StateStore,
        kind: &str,
        key: &str,
    ) -> Vec<DomainEnvelope> {
        store
            .outbox_pending(10_000)
            .await
            .unwrap()
            .into_iter()
            .filter(|pending| pending.actor.kind == kind && pending.actor.key == key)
            .map(|pending| {
                let envelope = DomainEvent::decode(&pending.entry.payload).unwrap();
                assert_eq!(pending.entry.topic, envelope.event.subject());
                assert_eq!(pending.entry.event_id, envelope.id);
                envelope
            })
            .collect()
    }

    /// The events alone, see [`envelopes`].
    pub(crate) async fn events(store: &dyn StateStore, kind: &str, key: &str) -> Vec<DomainEvent> {
        envelopes(store, kind, key)
            .await
            .into_iter()
            .map(|envelope| envelope.event)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use emporium_runtime::events::EventSource;

    #[test]
    fn the_envelope_reads_type_and_data_beside_the_metadata() {
        let envelope = Envelope {
            id: "order:o-1:3:0".to_owned(),
            source: EventSource {
                kind: "order".to_owned(),
                key: "o-1".to_owned(),
            },
            version: 3,
            time: 1_765_000_000_000,
            schema: DomainEvent::SCHEMA,
            event: DomainEvent::OrderShipped {
                order_id: "o-1".to_owned(),
                user_id: "u-1".to_owned(),
            },
        };
        let json = serde_json::to_value(&envelope).unwrap();
        assert_eq!(json["type"], "OrderShipped");
        assert_eq!(json["data"]["order_id"], "o-1");
        assert_eq!(json["source"]["kind"], "order");
        let bytes = serde_json::to_vec(&envelope).unwrap();
        assert_eq!(DomainEvent::decode(&bytes).unwrap(), envelope);
    }

    #[test]
    fn subjects_name_kind_then_event() {
        let event = DomainEvent::StockLow {
            sku: "S".to_owned(),
            available: 1,
            threshold: 5,
        };
        assert_eq!(event.subject(), "emporium.inventory.stock_low");
    }
}
