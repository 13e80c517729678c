//! The wire format: serializable mirrors of domain values. Only this crate knows JSON
//! field names; the domain types carry no HTTP concerns.

use std::collections::BTreeMap;

use emporium_actors::analytics::{Funnel, Summary};
use emporium_actors::inventory::StockView;
use emporium_actors::order::OrderView;
use emporium_actors::payment::PaymentRecord;
use emporium_actors::shipping::ShippingAddress;
use emporium_actors::{CartLine, CartView, Product};
use serde::{Deserialize, Serialize};

#[derive(Serialize)]
pub struct ProductJson<'a> {
    pub sku: &'a str,
    pub name: &'a str,
    pub description: &'a str,
    pub price_cents: i64,
    pub currency: &'a str,
    pub category: &'a str,
    pub attributes: &'a BTreeMap<String, String>,
}

impl<'a> From<&'a Product> for ProductJson<'a> {
    fn from(product: &'a Product) -> Self {
        Self {
            sku: product.sku.as_str(),
            name: &product.name,
            description: &product.description,
            price_cents: product.price_cents,
            currency: product.currency.as_str(),
            category: &product.category,
            attributes: &product.attributes,
        }
    }
}

#[derive(Serialize)]
pub struct ProductListJson<'a> {
    pub items: Vec<ProductJson<'a>>,
    pub total: usize,
    /// Matches per category for the text query, ignoring the category filter.
    pub facets: &'a BTreeMap<String, usize>,
}

/// `PUT /v1/admin/products/{sku}`: the whole product (a replace, not a patch). Unknown
/// fields are ignored; `description` defaults to `""` and `attributes` to `{}`.
#[derive(Deserialize)]
pub struct ProductUpsertRequest {
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub price_cents: i64,
    pub currency: String,
    pub category: String,
    /// Values may be strings, numbers or booleans; the handler turns them into strings.
    #[serde(default)]
    pub attributes: Option<serde_json::Map<String, serde_json::Value>>,
}

#[derive(Serialize)]
pub struct CartLineJson<'a> {
    pub sku: &'a str,
    pub quantity: u32,
    pub unit_price_cents: i64,
}

impl<'a> From<&'a CartLine> for CartLineJson<'a> {
    fn from(line: &'a CartLine) -> Self {
        Self {
            sku: line.sku.as_str(),
            quantity: line.quantity,
            unit_price_cents: line.unit_price_cents,
        }
    }
}

#[derive(Serialize)]
pub struct CartJson<'a> {
    pub id: &'a str,
    pub items: Vec<CartLineJson<'a>>,
    pub subtotal_cents: i64,
    pub currency: &'a str,
}

impl<'a> From<&'a CartView> for CartJson<'a> {
    fn from(cart: &'a CartView) -> Self {
        Self {
            id: &cart.id,
            items: cart.items.iter().map(CartLineJson::from).collect(),
            subtotal_cents: cart.subtotal_cents,
            currency: cart.currency.as_str(),
        }
    }
}

/// `POST /v1/carts/{id}/items`
#[derive(Deserialize)]
pub struct AddItemRequest {
    pub sku: String,
    pub quantity: i64,
}

/// `PUT /v1/carts/{id}/items/{sku}`
#[derive(Deserialize)]
pub struct SetQuantityRequest {
    pub quantity: i64,
}

/// `GET /v1/products` query string.
#[derive(Deserialize)]
pub struct ProductListQuery {
    pub category: Option<String>,
    pub q: Option<String>,
    pub limit: Option<usize>,
    pub offset: Option<usize>,
}

// ---- Inventory, checkout, orders -------------------------------------------------------

/// A wall-clock time (Unix ms) as RFC 3339 UTC with milliseconds.
pub fn rfc3339(at_ms: u64) -> String {
    let at = std::time::UNIX_EPOCH + std::time::Duration::from_millis(at_ms);
    humantime::format_rfc3339_millis(at).to_string()
}

/// `PUT /v1/admin/inventory/{sku}`. Missing fields are `422` naming them.
#[derive(Deserialize)]
pub struct SetStockRequest {
    pub warehouse: Option<String>,
    pub on_hand: Option<i64>,
    pub low_stock_threshold: Option<i64>,
}

#[derive(Serialize)]
pub struct WarehouseStockJson<'a> {
    pub warehouse: &'a str,
    pub on_hand: u64,
    pub reserved: u64,
}

#[derive(Serialize)]
pub struct LowStockAlertJson {
    pub at: String,
    pub available: u64,
}

/// `GET /v1/inventory/{sku}`
#[derive(Serialize)]
pub struct StockJson<'a> {
    pub sku: &'a str,
    pub on_hand: u64,
    pub reserved: u64,
    pub available: u64,
    pub warehouses: Vec<WarehouseStockJson<'a>>,
    pub low_stock_threshold: u64,
    pub low_stock: bool,
    pub alerts: Vec<LowStockAlertJson>,
}

impl<'a> From<&'a StockView> for StockJson<'a> {
    fn from(view: &'a StockView) -> Self {
        Self {
            sku: &view.sku,
            on_hand: view.on_hand,
            reserved: view.reserved,
            available: view.available,
            warehouses: view
                .warehouses
                .iter()
                .map(|(id, stock)| WarehouseStockJson {
                    warehouse: id.as_str(),
                    on_hand: stock.on_hand,
                    reserved: stock.reserved,
                })
                .collect(),
            low_stock_threshold: view.low_stock_threshold,
            low_stock: view.low_stock,
            alerts: view
                .alerts
                .iter()
                .map(|alert| LowStockAlertJson {
                    at: rfc3339(alert.at_ms),
                    available: alert.available,
                })
                .collect(),
        }
    }
}

/// `POST /v1/carts/{id}/checkout`. Every field is optional here so that a missing one is
/// `422` naming it, like a bad one.
#[derive(Deserialize)]
pub struct CheckoutRequestJson {
    pub shipping_address: Option<AddressRequestJson>,
    pub payment: Option<PaymentRequestJson>,
}

#[derive(Deserialize, Default)]
pub struct AddressRequestJson {
    pub name: Option<String>,
    pub line1: Option<String>,
    pub city: Option<String>,
    pub postal_code: Option<String>,
    pub country: Option<String>,
}

#[derive(Deserialize, Default)]
pub struct PaymentRequestJson {
    pub token: Option<String>,
}

#[derive(Serialize)]
pub struct AddressJson<'a> {
    pub name: &'a str,
    pub line1: &'a str,
    pub city: &'a str,
    pub postal_code: &'a str,
    pub country: &'a str,
}

impl<'a> From<&'a ShippingAddress> for AddressJson<'a> {
    fn from(address: &'a ShippingAddress) -> Self {
        Self {
            name: &address.name,
            line1: &address.line1,
            city: &address.city,
            postal_code: &address.postal_code,
            country: address.country.as_str(),
        }
    }
}

#[derive(Serialize)]
pub struct OrderEventJson {
    pub status: &'static str,
    pub at: String,
}

/// An order: `GET /v1/orders/{id}` and the `201` of a checkout.
#[derive(Serialize)]
pub struct OrderJson<'a> {
    pub id: &'a str,
    pub user_id: &'a str,
    pub status: &'static str,
    pub items: Vec<CartLineJson<'a>>,
    pub subtotal_cents: i64,
    pub shipping_cents: i64,
    pub total_cents: i64,
    pub currency: &'a str,
    pub shipping_address: AddressJson<'a>,
    pub payment_reference: &'a str,
    pub history: Vec<OrderEventJson>,
}

impl<'a> From<&'a OrderView> for OrderJson<'a> {
    fn from(order: &'a OrderView) -> Self {
        Self {
            id: &order.id,
            user_id: &order.user_id,
            status: order.status.as_str(),
            items: order.items.iter().map(CartLineJson::from).collect(),
            subtotal_cents: order.subtotal_cents,
            shipping_cents: order.shipping_cents,
            total_cents: order.total_cents,
            currency: order.currency.as_str(),
            shipping_address: AddressJson::from(&order.shipping_address),
            payment_reference: &order.payment_reference,
            history: order
                .history
                .iter()
                .map(|(status, at_ms)| OrderEventJson {
                    status: status.as_str(),
                    at: rfc3339(*at_ms),
                })
                .collect(),
        }
    }
}

/// `GET /v1/users/me/orders`
#[derive(Serialize)]
pub struct OrderListJson<'a> {
    pub items: Vec<OrderJson<'a>>,
    pub total: usize,
}

/// `GET /v1/admin/payments/{reference}`: the gateway's record of a payment.
#[derive(Serialize)]
pub struct PaymentJson<'a> {
    pub reference: &'a str,
    pub status: &'static str,
    pub amount_cents: i64,
    pub currency: &'a str,
    pub captured_cents: i64,
    pub refunded_cents: i64,
    pub operations: Vec<PaymentOperationJson<'a>>,
}

#[derive(Serialize)]
pub struct PaymentOperationJson<'a> {
    pub kind: &'a str,
    pub amount_cents: i64,
    pub at: String,
}

impl<'a> From<&'a PaymentRecord> for PaymentJson<'a> {
    fn from(record: &'a PaymentRecord) -> Self {
        Self {
            reference: &record.reference,
            status: record.status.as_str(),
            amount_cents: record.amount_cents,
            currency: record.currency.as_str(),
            captured_cents: record.captured_cents,
            refunded_cents: record.refunded_cents,
            operations: record
                .operations
                .iter()
                .map(|op| PaymentOperationJson {
                    kind: &op.kind,
                    amount_cents: op.amount_cents,
                    at: rfc3339(op.at_ms),
                })
                .collect(),
        }
    }
}

/// `GET /v1/admin/analytics/summary`.
#[derive(Serialize)]
pub struct AnalyticsSummaryJson<'a> {
    pub window: &'static str,
    pub from_ms: u64,
    pub to_ms: u64,
    pub orders_placed: u64,
    pub revenue_cents: &'a BTreeMap<String, i64>,
    pub average_order_value_cents: &'a BTreeMap<String, i64>,
    pub orders_paid: u64,
    pub orders_cancelled: u64,
    pub orders_refunded: u64,
    pub carts_abandoned: u64,
    pub funnel: FunnelJson,
    /// Experiment → variant → funnel.
    pub variants: BTreeMap<&'a str, BTreeMap<&'a str, FunnelJson>>,
    pub top_products: Vec<TopProductJson<'a>>,
    pub low_stock: Vec<LowStockJson<'a>>,
}

#[derive(Serialize)]
pub struct FunnelJson {
    pub carts_created: u64,
    pub checkouts_started: u64,
    pub orders_paid: u64,
}

#[derive(Serialize)]
pub struct TopProductJson<'a> {
    pub sku: &'a str,
    pub units: u64,
    pub revenue_cents: &'a BTreeMap<String, i64>,
}

#[derive(Serialize)]
pub struct LowStockJson<'a> {
    pub sku: &'a str,
    pub available: u64,
    pub threshold: u64,
    pub at_ms: u64,
}

impl From<&Funnel> for FunnelJson {
    fn from(funnel: &Funnel) -> Self {
        Self {
            carts_created: funnel.carts_created,
            checkouts_started: funnel.checkouts_started,
            orders_paid: funnel.orders_paid,
        }
    }
}

impl<'a> From<&'a Summary> for AnalyticsSummaryJson<'a> {
    fn from(summary: &'a Summary) -> Self {
        let variants = summary
            .variants
            .iter()
            .map(|(experiment, variants)| {
                let funnels = variants
                    .iter()
                    .map(|(variant, funnel)| (variant.as_str(), FunnelJson::from(funnel)))
                    .collect();
                (experiment.as_str(), funnels)
            })
            .collect();
        Self {
            window: summary.window.as_str(),
            from_ms: summary.from_ms,
            to_ms: summary.to_ms,
            orders_placed: summary.orders_placed,
            revenue_cents: &summary.revenue_cents,
            average_order_value_cents: &summary.average_order_value_cents,
            orders_paid: summary.orders_paid,
            orders_cancelled: summary.orders_cancelled,
            orders_refunded: summary.orders_refunded,
            carts_abandoned: summary.carts_abandoned,
            funnel: FunnelJson::from(&summary.funnel),
            variants,
            top_products: summary
                .top_products
                .iter()
                .map(|product| TopProductJson {
                    sku: &product.sku,
                    units: product.units,
                    revenue_cents: &product.revenue_cents,
                })
                .collect(),
            low_stock: summary
                .low_stock
                .iter()
                .map(|(sku, low)| LowStockJson {
                    sku,
                    available: low.available,
                    threshold: low.threshold,
                    at_ms: low.at_ms,
                })
                .collect(),
        }
    }
}

/// `GET /v1/experiments/{name}/assignment`.
#[derive(Serialize)]
pub struct AssignmentJson<'a> {
    pub experiment: &'a str,
    pub variant: &'a str,
    pub key: &'a str,
}
