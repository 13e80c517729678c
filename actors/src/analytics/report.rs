//! The summary of a window: every bucket of it asked concurrently, merged, and the derived
//! figures (average order value, top products, low-stock list) computed once.

use std::collections::BTreeMap;

use emporium_runtime::{ActorId, Runtime, RuntimeError, VirtualActor};
use futures::stream::{self, StreamExt};

use super::actor::{AnalyticsActor, AnalyticsCommand, AnalyticsReply};
use super::aggregates::{Aggregates, Funnel, LowStock};
use super::bucket::{HourBucket, MinuteRange};
use super::window::Window;

/// How many buckets a summary asks at once: a `7d` summary asks up to 169, and each is an
/// activation (and a store read when inactive); a bound keeps one summary from flooding
/// the store.
const CONCURRENT_BUCKETS: usize = 16;

/// How many products [`Summary::top_products`] lists.
pub const TOP_PRODUCTS: usize = 10;

/// One of the best-selling products.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopProduct {
    pub sku: String,
    pub units: u64,
    /// Per currency, in cents.
    pub revenue_cents: BTreeMap<String, i64>,
}

/// What the storefront did over a window.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Summary {
    pub window: Window,
    /// First millisecond covered.
    pub from_ms: u64,
    /// The instant it was computed for.
    pub to_ms: u64,
    /// Orders placed, all currencies.
    pub orders_placed: u64,
    /// Totals of the orders placed (shipping included), per currency.
    pub revenue_cents: BTreeMap<String, i64>,
    /// Revenue / orders placed, per currency, rounded to the nearest cent.
    pub average_order_value_cents: BTreeMap<String, i64>,
    pub orders_paid: u64,
    pub orders_cancelled: u64,
    pub orders_refunded: u64,
    pub carts_abandoned: u64,
    /// Carts created → checkouts started → orders paid.
    pub funnel: Funnel,
    /// Experiment → variant → funnel.
    pub variants: BTreeMap<String, BTreeMap<String, Funnel>>,
    /// The [`TOP_PRODUCTS`] best sellers: most units first, then by SKU.
    pub top_products: Vec<TopProduct>,
    /// SKU → its latest `StockLow` in the window (whether stock came back since is not
    /// known here).
    pub low_stock: BTreeMap<String, LowStock>,
}

impl Summary {
    /// Derive the summary of `totals`, the merged aggregates of `window`.
    pub fn from_aggregates(window: Window, from_ms: u64, to_ms: u64, totals: Aggregates) -> Self {
        let orders_placed = totals
            .orders_placed
            .values()
            .fold(0u64, |sum, money| sum.saturating_add(money.orders));
        let revenue_cents = totals
            .orders_placed
            .iter()
            .map(|(currency, money)| (currency.clone(), money.cents))
            .collect();
        let average_order_value_cents = totals
            .orders_placed
            .iter()
            .filter(|(_, money)| money.orders > 0)
            .map(|(currency, money)| (currency.clone(), rounded_average(money.cents, money.orders)))
            .collect();
        Self {
            window,
            from_ms,
            to_ms,
            orders_placed,
            revenue_cents,
            average_order_value_cents,
            orders_paid: totals.funnel.orders_paid,
            orders_cancelled: totals.orders_cancelled,
            orders_refunded: totals.orders_refunded,
            carts_abandoned: totals.carts_abandoned,
            funnel: totals.funnel,
            variants: totals.variants,
            top_products: top_products(totals.products),
            low_stock: totals.low_stock,
        }
    }
}

/// The summary of `window` ending at `now_ms`: every bucket of it asked (at most
/// [`CONCURRENT_BUCKETS`] at once, as reads: a bucket never written stays unwritten) and
/// merged. The first bucket that cannot answer fails the whole summary.
pub async fn summary(
    runtime: &Runtime,
    window: Window,
    now_ms: u64,
) -> Result<Summary, RuntimeError> {
    let span = window.span(now_ms);
    let mut answers = stream::iter(span.buckets)
        .map(|(bucket, minutes)| ask_bucket(runtime, bucket, minutes))
        .buffer_unordered(CONCURRENT_BUCKETS);
    let mut totals = Aggregates::default();
    while let Some(answer) = answers.next().await {
        totals.absorb(&answer?);
    }
    Ok(Summary::from_aggregates(
        window,
        span.from_ms,
        span.to_ms,
        totals,
    ))
}

async fn ask_bucket(
    runtime: &Runtime,
    bucket: HourBucket,
    minutes: MinuteRange,
) -> Result<Aggregates, RuntimeError> {
    let key = bucket.to_string();
    match runtime
        .actor::<AnalyticsActor>(key.clone())
        .ask(AnalyticsCommand::Summary(minutes))
        .await?
    {
        AnalyticsReply::Summary(aggregates) => Ok(aggregates),
        AnalyticsReply::Applied(_) => Err(RuntimeError::Unreachable {
            actor: ActorId::new(AnalyticsActor::KIND, key),
            reason: "an analytics bucket answered a summary with an apply report".to_owned(),
        }),
    }
}

/// `cents / orders` rounded half up (`orders` > 0).
fn rounded_average(cents: i64, orders: u64) -> i64 {
    let orders = i128::from(orders);
    let rounded = (i128::from(cents) * 2 + orders).div_euclid(2 * orders);
    i64::try_from(rounded).unwrap_or(i64::MAX)
}

fn top_products(products: BTreeMap<String, super::aggregates::ProductSales>) -> Vec<TopProduct> {
    let mut ranked: Vec<TopProduct> = products
        .into_iter()
        .map(|(sku, sales)| TopProduct {
            sku,
            units: sales.units,
            revenue_cents: sales.revenue_cents,
        })
        .collect();
    // Sorted by SKU already (a BTreeMap); a stable sort keeps that for equal units.
    ranked.sort_by_key(|product| std::cmp::Reverse(product.units));
    ranked.truncate(TOP_PRODUCTS);
    ranked
}
