//! What analytics counts, for one minute or any merge of minutes and buckets.
//!
//! [`Aggregates`] are additive: [`Aggregates::absorb`] is commutative and associative, so a
//! window is the [`merge`] of its minutes in any order (the latest `StockLow` of a SKU is
//! chosen by event time, ties by the lower availability). Zero fields are left out of the
//! stored form, which is rewritten on every commit.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::events::{DomainEnvelope, DomainEvent, EventLine, Variants};

/// Orders in one currency.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Money {
    pub orders: u64,
    pub cents: i64,
}

/// The purchase funnel: carts created → checkouts started → orders paid.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Funnel {
    #[serde(default, skip_serializing_if = "is_zero")]
    pub carts_created: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub checkouts_started: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub orders_paid: u64,
}

impl Funnel {
    fn absorb(&mut self, other: &Self) {
        self.carts_created = self.carts_created.saturating_add(other.carts_created);
        self.checkouts_started = self
            .checkouts_started
            .saturating_add(other.checkouts_started);
        self.orders_paid = self.orders_paid.saturating_add(other.orders_paid);
    }

    fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// Units and revenue of one SKU, from the lines of placed orders.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProductSales {
    pub units: u64,
    /// Per currency, in cents.
    pub revenue_cents: BTreeMap<String, i64>,
}

/// The latest `StockLow` of a SKU.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LowStock {
    pub available: u64,
    pub threshold: u64,
    /// The event's time, Unix milliseconds.
    pub at_ms: u64,
}

impl LowStock {
    /// Whether `self` replaces `current`: later wins; at the same time, the lower
    /// availability (so that the choice does not depend on arrival order).
    fn supersedes(&self, current: &Self) -> bool {
        (self.at_ms, std::cmp::Reverse(self.available))
            > (current.at_ms, std::cmp::Reverse(current.available))
    }
}

/// Everything counted over some span of time.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Aggregates {
    /// Orders placed and their totals (shipping included), per currency.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub orders_placed: BTreeMap<String, Money>,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub orders_cancelled: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub orders_refunded: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub carts_abandoned: u64,
    /// Its `orders_paid` is the count of orders paid.
    #[serde(default, skip_serializing_if = "Funnel::is_empty")]
    pub funnel: Funnel,
    /// Experiment → variant → funnel, from the variants the funnel events carry.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub variants: BTreeMap<String, BTreeMap<String, Funnel>>,
    /// SKU → sales.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub products: BTreeMap<String, ProductSales>,
    /// SKU → its latest `StockLow`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub low_stock: BTreeMap<String, LowStock>,
}

/// The merge of any number of aggregates (buckets or minutes): a pure function.
pub fn merge<'a>(parts: impl IntoIterator<Item = &'a Aggregates>) -> Aggregates {
    parts
        .into_iter()
        .fold(Aggregates::default(), |mut total, part| {
            total.absorb(part);
            total
        })
}

impl Aggregates {
    /// Whether analytics counts `event` at all. Events it does not count are neither applied
    /// nor remembered for deduplication.
    pub fn counts(event: &DomainEvent) -> bool {
        matches!(
            event,
            DomainEvent::CartCreated { .. }
                | DomainEvent::CheckoutStarted { .. }
                | DomainEvent::OrderPlaced { .. }
                | DomainEvent::OrderPaid { .. }
                | DomainEvent::CartAbandoned { .. }
                | DomainEvent::OrderCancelled { .. }
                | DomainEvent::OrderRefunded { .. }
                | DomainEvent::StockLow { .. }
        )
    }

    /// Count one event (which the caller has checked is not a duplicate).
    pub fn apply(&mut self, envelope: &DomainEnvelope) {
        match &envelope.event {
            DomainEvent::CartCreated { variants, .. } => {
                self.funnel_step(variants, |funnel| &mut funnel.carts_created);
            }
            DomainEvent::CheckoutStarted { variants, .. } => {
                self.funnel_step(variants, |funnel| &mut funnel.checkouts_started);
            }
            DomainEvent::OrderPaid { variants, .. } => {
                self.funnel_step(variants, |funnel| &mut funnel.orders_paid);
            }
            DomainEvent::OrderPlaced {
                lines,
                total_cents,
                currency,
                ..
            } => self.order_placed(lines, *total_cents, currency),
            DomainEvent::CartAbandoned { .. } => bump(&mut self.carts_abandoned),
            DomainEvent::OrderCancelled { .. } => bump(&mut self.orders_cancelled),
            DomainEvent::OrderRefunded { .. } => bump(&mut self.orders_refunded),
            DomainEvent::StockLow {
                sku,
                available,
                threshold,
                ..
            } => self.stock_low(
                sku,
                LowStock {
                    available: *available,
                    threshold: *threshold,
                    at_ms: envelope.time,
                },
            ),
            _ => {}
        }
    }

    /// Add `other` into `self`.
    pub fn absorb(&mut self, other: &Self) {
        for (currency, money) in &other.orders_placed {
            let total = self.orders_placed.entry(currency.clone()).or_default();
            total.orders = total.orders.saturating_add(money.orders);
            total.cents = total.cents.saturating_add(money.cents);
        }
        self.orders_cancelled = self.orders_cancelled.saturating_add(other.orders_cancelled);
        self.orders_refunded = self.orders_refunded.saturating_add(other.orders_refunded);
        self.carts_abandoned = self.carts_abandoned.saturating_add(other.carts_abandoned);
        self.funnel.absorb(&other.funnel);
        for (experiment, variants) in &other.variants {
            let mine = self.variants.entry(experiment.clone()).or_default();
            for (variant, funnel) in variants {
                mine.entry(variant.clone()).or_default().absorb(funnel);
            }
        }
        for (sku, sales) in &other.products {
            let mine = self.products.entry(sku.clone()).or_default();
            mine.units = mine.units.saturating_add(sales.units);
            for (currency, cents) in &sales.revenue_cents {
                add_cents(&mut mine.revenue_cents, currency, *cents);
            }
        }
        for (sku, low) in &other.low_stock {
            self.stock_low(sku, *low);
        }
    }

    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    /// One funnel step, overall and for each variant the event carries.
    fn funnel_step(&mut self, variants: &Variants, step: impl Fn(&mut Funnel) -> &mut u64) {
        bump(step(&mut self.funnel));
        for (experiment, variant) in variants {
            let funnel = self
                .variants
                .entry(experiment.clone())
                .or_default()
                .entry(variant.clone())
                .or_default();
            bump(step(funnel));
        }
    }

    fn order_placed(&mut self, lines: &[EventLine], total_cents: i64, currency: &str) {
        let money = self.orders_placed.entry(currency.to_owned()).or_default();
        bump(&mut money.orders);
        money.cents = money.cents.saturating_add(total_cents);
        for line in lines {
            let sales = self.products.entry(line.sku.clone()).or_default();
            sales.units = sales.units.saturating_add(u64::from(line.quantity));
            let revenue = line
                .unit_price_cents
                .saturating_mul(i64::from(line.quantity));
            add_cents(&mut sales.revenue_cents, currency, revenue);
        }
    }

    fn stock_low(&mut self, sku: &str, low: LowStock) {
        match self.low_stock.get_mut(sku) {
            Some(current) if low.supersedes(current) => *current = low,
            Some(_) => {}
            None => {
                self.low_stock.insert(sku.to_owned(), low);
            }
        }
    }
}

fn add_cents(by_currency: &mut BTreeMap<String, i64>, currency: &str, cents: i64) {
    let total = by_currency.entry(currency.to_owned()).or_default();
    *total = total.saturating_add(cents);
}

fn bump(count: &mut u64) {
    *count = count.saturating_add(1);
}

fn is_zero(count: &u64) -> bool {
    *count == 0
}
