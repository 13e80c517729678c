//! Emporium's domain: the e-commerce capabilities as virtual actors.
//!
//! **Architecture invariant**: this crate holds no HTTP and no storage types. It speaks to the
//! world only through the runtime (`emporium-runtime`) and through ports it defines itself
//! (the search index). Replies carry domain rejections as values; `RuntimeError` means the
//! runtime could not get an answer.
//!
//! Start with [`register`], which adds every actor kind to a runtime builder.

pub mod analytics;
pub mod cart;
pub mod catalog;
pub mod checkout;
pub mod consumers;
pub mod events;
pub mod experiments;
pub mod inventory;
pub mod notification;
pub mod order;
pub mod payment;
pub mod shipping;
pub mod user;
pub mod values;

use std::time::Duration;

use emporium_runtime::RuntimeBuilder;

pub use cart::{CartActor, CartCaller, CartCommand, CartLine, CartRejection, CartView};
pub use catalog::{Catalog, CatalogError, Product, ProductActor, ProductDraft};
pub use user::{Email, Password, Role, User, UserActor, UserError, UserName, Users};
pub use values::{CartId, Currency, InvalidValue, Quantity, Sku};

/// What the domain needs from the node besides the runtime: ports and their settings.
#[derive(Clone)]
pub struct DomainPorts {
    pub payments: payment::PaymentProvider,
    pub shipping: shipping::ShippingRates,
    /// How long a checkout's stock reservation holds before it expires.
    pub reservation_ttl: Duration,
    /// Deadline of each payment gateway call.
    pub payment_timeout: Duration,
    /// Inactivity after which a cart with items raises `CartAbandoned`.
    pub cart_abandon_after: Duration,
    /// The A/B experiments shoppers are assigned to.
    pub experiments: experiments::Experiments,
    /// Where notifications go, per channel (a development sink unless configured).
    pub notifications: notification::ChannelRouter,
    /// Who gets the admins' notifications (low stock).
    pub notification_admins: Vec<Email>,
}

impl Default for DomainPorts {
    /// The built-in test gateway, `US=500,DE=900,*=1500`, 15 minutes, 5 seconds, carts
    /// abandoned after 1 hour, no experiments.
    fn default() -> Self {
        Self {
            payments: payment::PaymentProvider::Test,
            shipping: shipping::ShippingRates::parse("US=500,DE=900,*=1500").unwrap_or_default(),
            reservation_ttl: Duration::from_secs(15 * 60),
            payment_timeout: Duration::from_secs(5),
            cart_abandon_after: Duration::from_secs(60 * 60),
            experiments: experiments::Experiments::default(),
            notifications: notification::ChannelRouter::default(),
            notification_admins: Vec::new(),
        }
    }
}

/// Register every domain actor kind with the runtime, with the default ports (the test
/// payment gateway): for tests. A node uses [`register_with`].
pub fn register(builder: RuntimeBuilder) -> RuntimeBuilder {
    register_with(builder, &DomainPorts::default())
}

/// Register every domain actor kind with the runtime, wired to `ports`.
pub fn register_with(builder: RuntimeBuilder, ports: &DomainPorts) -> RuntimeBuilder {
    builder
        .register(analytics::AnalyticsActor::default())
        .register(CartActor::new(
            ports.experiments.clone(),
            ports.cart_abandon_after,
        ))
        .register(ProductActor)
        .register(notification::NotificationActor::new(
            ports.notifications.clone(),
            ports.notification_admins.clone(),
        ))
        .register(user::UserActor)
        .register(user::EmailIndexActor)
        .register(inventory::InventoryActor::new(ports.reservation_ttl))
        .register(payment::PaymentActor)
        .register(order::OrderActor::new(
            ports.payments.clone(),
            ports.payment_timeout,
            ports.experiments.clone(),
        ))
        .register(order::UserOrdersActor)
        .register(checkout::CheckoutActor::new(
            ports.payments.clone(),
            ports.shipping.clone(),
            ports.payment_timeout,
            ports.experiments.clone(),
        ))
}
