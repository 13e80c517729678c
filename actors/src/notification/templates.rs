//! What each notified event says: one template per event kind, plain text.
//!
//! [`render`] is pure (no clock, no lookups): the same event always renders the same
//! message, so a redelivered event sends the same words again. Events without a template
//! render `None` and are not notified.

use serde::{Deserialize, Serialize};

use crate::events::{DomainEvent, EventLine};

/// Which template rendered a notification (kept in the recipient's log).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TemplateKind {
    OrderConfirmation,
    PaymentReceipt,
    Shipping,
    Delivery,
    Cancellation,
    Refund,
    AbandonedCart,
    Welcome,
    LowStock,
}

/// Which preference decides whether the recipient gets it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Topic {
    /// Order, payment, shipping: `order_updates`.
    OrderUpdate,
    /// Abandoned cart reminders: `marketing`.
    Marketing,
    /// Account messages (welcome): always sent on the enabled channels.
    Account,
    /// Stock alerts to the admins: always sent on the enabled channels.
    Stock,
}

/// A rendered notification, before it is addressed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rendered {
    pub kind: TemplateKind,
    pub topic: Topic,
    pub subject: String,
    pub body: String,
}

/// The notification `event` calls for, if any.
pub fn render(event: &DomainEvent) -> Option<Rendered> {
    use DomainEvent as E;
    let rendered = match event {
        E::OrderPlaced {
            order_id,
            lines,
            subtotal_cents,
            shipping_cents,
            total_cents,
            currency,
            ..
        } => order_confirmation(
            order_id,
            lines,
            [*subtotal_cents, *shipping_cents, *total_cents],
            currency,
        ),
        E::PaymentCaptured {
            order_id,
            reference,
            amount_cents,
            currency,
            ..
        } => order_update(
            TemplateKind::PaymentReceipt,
            format!("Payment received for order {order_id}"),
            format!(
                "We received your payment of {} for order {order_id}.\nPayment reference: {reference}.",
                money(*amount_cents, currency)
            ),
        ),
        E::OrderShipped { order_id, .. } => order_update(
            TemplateKind::Shipping,
            format!("Your order {order_id} has shipped"),
            format!("Good news: order {order_id} is on its way."),
        ),
        E::OrderDelivered { order_id, .. } => order_update(
            TemplateKind::Delivery,
            format!("Your order {order_id} was delivered"),
            format!("Order {order_id} was delivered. We hope you enjoy it."),
        ),
        E::OrderCancelled {
            order_id, reason, ..
        } => order_update(
            TemplateKind::Cancellation,
            format!("Your order {order_id} was cancelled"),
            format!("Order {order_id} was cancelled: {reason}."),
        ),
        E::OrderRefunded {
            order_id,
            amount_cents,
            currency,
            ..
        } => order_update(
            TemplateKind::Refund,
            format!("Refund for order {order_id}"),
            format!(
                "We refunded {} for order {order_id}. It may take a few days to appear on your statement.",
                money(*amount_cents, currency)
            ),
        ),
        E::CartAbandoned {
            lines,
            subtotal_cents,
            currency,
            ..
        } => abandoned_cart(lines, *subtotal_cents, currency),
        E::UserRegistered { name, .. } => Rendered {
            kind: TemplateKind::Welcome,
            topic: Topic::Account,
            subject: "Welcome to Emporium".to_owned(),
            body: format!("Hello {name},\n\nyour Emporium account is ready. Happy shopping!"),
        },
        E::StockLow {
            sku,
            available,
            threshold,
        } => Rendered {
            kind: TemplateKind::LowStock,
            topic: Topic::Stock,
            subject: format!("Low stock: {sku}"),
            body: format!(
                "SKU {sku} is down to {available} available unit(s) (alert threshold {threshold})."
            ),
        },
        _ => return None,
    };
    Some(rendered)
}

fn order_update(kind: TemplateKind, subject: String, body: String) -> Rendered {
    Rendered {
        kind,
        topic: Topic::OrderUpdate,
        subject,
        body,
    }
}

fn order_confirmation(
    order_id: &str,
    lines: &[EventLine],
    [subtotal, shipping, total]: [i64; 3],
    currency: &str,
) -> Rendered {
    let body = format!(
        "Thank you for your order {order_id}.\n\n{}\nSubtotal: {}\nShipping: {}\nTotal: {}",
        line_list(lines, currency),
        money(subtotal, currency),
        money(shipping, currency),
        money(total, currency),
    );
    order_update(
        TemplateKind::OrderConfirmation,
        format!("Order {order_id} confirmed"),
        body,
    )
}

fn abandoned_cart(lines: &[EventLine], subtotal: i64, currency: &str) -> Rendered {
    Rendered {
        kind: TemplateKind::AbandonedCart,
        topic: Topic::Marketing,
        subject: "You left something in your cart".to_owned(),
        body: format!(
            "Your cart is waiting for you:\n\n{}\nSubtotal: {}",
            line_list(lines, currency),
            money(subtotal, currency)
        ),
    }
}

fn line_list(lines: &[EventLine], currency: &str) -> String {
    lines
        .iter()
        .map(|line| {
            format!(
                "- {} x {} at {}\n",
                line.quantity,
                line.sku,
                money(line.unit_price_cents, currency)
            )
        })
        .collect()
}

/// `1234, "EUR"` → `12.34 EUR` (every shop currency has two decimals).
fn money(cents: i64, currency: &str) -> String {
    let sign = if cents < 0 { "-" } else { "" };
    let cents = cents.unsigned_abs();
    format!("{sign}{}.{:02} {currency}", cents / 100, cents % 100)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_has_two_decimals_and_a_sign() {
        assert_eq!(money(1234, "EUR"), "12.34 EUR");
        assert_eq!(money(5, "USD"), "0.05 USD");
        assert_eq!(money(-150, "USD"), "-1.50 USD");
    }

    #[test]
    fn an_order_confirmation_lists_lines_and_totals() {
        let rendered = render(&DomainEvent::OrderPlaced {
            order_id: "o-1".to_owned(),
            user_id: "u-1".to_owned(),
            lines: vec![EventLine {
                sku: "MUG".to_owned(),
                quantity: 2,
                unit_price_cents: 1_250,
            }],
            subtotal_cents: 2_500,
            shipping_cents: 500,
            total_cents: 3_000,
            currency: "USD".to_owned(),
            variants: Default::default(),
        })
        .unwrap();
        assert_eq!(rendered.kind, TemplateKind::OrderConfirmation);
        assert_eq!(rendered.topic, Topic::OrderUpdate);
        assert_eq!(rendered.subject, "Order o-1 confirmed");
        assert!(rendered.body.contains("- 2 x MUG at 12.50 USD"));
        assert!(rendered.body.contains("Total: 30.00 USD"));
    }

    #[test]
    fn events_without_a_template_render_nothing() {
        let event = DomainEvent::UserLoggedIn {
            user_id: "u".to_owned(),
        };
        assert_eq!(render(&event), None);
    }
}
