//! One module per resource; each handler parses its input into domain values, asks an
//! actor, and maps the reply to JSON. Each module contributes its routes through its own
//! `router()`; [`all`] merges them.

pub mod admin_cluster;
pub mod admin_events;
pub mod admin_products;
pub mod analytics;
pub mod auth;
pub mod carts;
pub mod checkout;
pub mod console;
pub mod experiments;
pub mod health;
pub mod inventory;
pub mod notifications;
pub mod orders;
pub mod products;
pub mod users;

use axum::Router;

use crate::state::AppState;

/// Every route of the edge.
pub fn all() -> Router<AppState> {
    Router::new()
        .merge(health::router())
        .merge(products::router())
        .merge(admin_products::router())
        .merge(admin_cluster::router())
        .merge(admin_events::router())
        .merge(console::router())
        .merge(notifications::router())
        .merge(carts::router())
        .merge(users::router())
        .merge(auth::router())
        .merge(inventory::router())
        .merge(checkout::router())
        .merge(orders::router())
        .merge(analytics::router())
        .merge(experiments::router())
}
