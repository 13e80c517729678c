//! The analytics actors on the in-memory store with a manual clock.

use std::sync::Arc;

use emporium_runtime::events::{Event, EventSource};
use emporium_runtime::store::MemoryStore;
use emporium_runtime::{ActorId, ManualClock, Runtime, StateStore, VirtualActor};

use super::*;
use crate::events::{DomainEnvelope, DomainEvent, EventLine, Variants};

/// 2026-12-06T20:14:10Z
const NOW: u64 = 1_796_588_050_000;
const MINUTE: u64 = 60_000;
const HOUR: u64 = 60 * MINUTE;

struct Harness {
    runtime: Runtime,
    store: Arc<dyn StateStore>,
}

async fn harness(dedup_capacity: usize) -> Harness {
    let store: Arc<dyn StateStore> = Arc::new(MemoryStore::new());
    let clock = Arc::new(ManualClock::new(NOW));
    let runtime = Runtime::builder(store.clone())
        .clock(clock)
        .register(AnalyticsActor::new(dedup_capacity))
        .build()
        .await
        .unwrap();
    Harness { runtime, store }
}

fn envelope(id: &str, time: u64, event: DomainEvent) -> DomainEnvelope {
    DomainEnvelope {
        id: id.to_owned(),
        source: EventSource {
            kind: "test".to_owned(),
            key: "k".to_owned(),
        },
        version: 1,
        time,
        schema: DomainEvent::SCHEMA,
        event,
    }
}

fn variants(pairs: &[(&str, &str)]) -> Variants {
    pairs
        .iter()
        .map(|(experiment, variant)| ((*experiment).to_owned(), (*variant).to_owned()))
        .collect()
}

fn line(sku: &str, quantity: u32, unit_price_cents: i64) -> EventLine {
    EventLine {
        sku: sku.to_owned(),
        quantity,
        unit_price_cents,
    }
}

fn placed(order: &str, lines: Vec<EventLine>, total_cents: i64, currency: &str) -> DomainEvent {
    let subtotal_cents = lines
        .iter()
        .map(|line| line.unit_price_cents * i64::from(line.quantity))
        .sum();
    DomainEvent::OrderPlaced {
        order_id: order.to_owned(),
        user_id: "u-1".to_owned(),
        lines,
        subtotal_cents,
        shipping_cents: total_cents - subtotal_cents,
        total_cents,
        currency: currency.to_owned(),
        variants: Variants::new(),
    }
}

fn paid(order: &str, variants: Variants) -> DomainEvent {
    DomainEvent::OrderPaid {
        order_id: order.to_owned(),
        user_id: "u-1".to_owned(),
        total_cents: 1_000,
        currency: "EUR".to_owned(),
        variants,
    }
}

fn cart_created(cart: &str, variants: Variants) -> DomainEvent {
    DomainEvent::CartCreated {
        cart_id: cart.to_owned(),
        user_id: None,
        variants,
    }
}

fn checkout_started(cart: &str, variants: Variants) -> DomainEvent {
    DomainEvent::CheckoutStarted {
        checkout_id: format!("{cart}-checkout"),
        cart_id: cart.to_owned(),
        user_id: "u-1".to_owned(),
        variants,
    }
}

fn stock_low(sku: &str, available: u64) -> DomainEvent {
    DomainEvent::StockLow {
        sku: sku.to_owned(),
        available,
        threshold: 5,
    }
}

/// Send each envelope to its bucket, as the dispatcher does; the reports summed.
async fn apply(runtime: &Runtime, envelopes: Vec<DomainEnvelope>) -> ApplyReport {
    let mut total = ApplyReport::default();
    for (bucket, batch) in group_by_bucket(envelopes) {
        let reply = runtime
            .actor::<AnalyticsActor>(bucket.to_string())
            .ask(AnalyticsCommand::Apply(batch))
            .await
            .unwrap();
        let AnalyticsReply::Applied(report) = reply else {
            panic!("not an apply report: {reply:?}");
        };
        total.applied += report.applied;
        total.duplicates += report.duplicates;
        total.ignored += report.ignored;
        total.misrouted += report.misrouted;
    }
    total
}

async fn version(store: &Arc<dyn StateStore>, key: &str) -> u64 {
    store
        .load(&ActorId::new(AnalyticsActor::KIND, key))
        .await
        .unwrap()
        .map_or(0, |stored| stored.version)
}

#[tokio::test]
async fn a_redelivered_event_counts_once_across_batches_and_within_one() {
    let Harness { runtime, store } = harness(DEFAULT_DEDUP_CAPACITY).await;
    let order = envelope(
        "order:o-1:1:0",
        NOW,
        placed("o-1", vec![line("A", 1, 900)], 1_000, "EUR"),
    );
    let report = apply(&runtime, vec![order.clone(), order.clone()]).await;
    assert_eq!(
        report,
        ApplyReport {
            applied: 1,
            duplicates: 1,
            ..ApplyReport::default()
        }
    );
    let key = HourBucket::of_ms(NOW).to_string();
    assert_eq!(version(&store, &key).await, 1, "one commit per batch");

    let again = apply(&runtime, vec![order]).await;
    assert_eq!(again.duplicates, 1);
    assert_eq!(again.applied, 0);
    assert_eq!(
        version(&store, &key).await,
        1,
        "a batch of duplicates commits nothing"
    );

    let summary = summary(&runtime, Window::Hour, NOW).await.unwrap();
    assert_eq!(summary.orders_placed, 1);
    assert_eq!(summary.revenue_cents["EUR"], 1_000);
    assert_eq!(summary.top_products[0].units, 1);
}

#[tokio::test]
async fn the_dedup_bound_is_the_last_n_events_of_the_bucket() {
    let Harness { runtime, .. } = harness(2).await;
    let events: Vec<DomainEnvelope> = (0..3)
        .map(|i| {
            envelope(
                &format!("cart:c-{i}:1:0"),
                NOW,
                cart_created("c", Variants::new()),
            )
        })
        .collect();
    assert_eq!(apply(&runtime, events.clone()).await.applied, 3);
    // The two latest are remembered; the first has been forgotten and counts again.
    assert_eq!(apply(&runtime, events[1..].to_vec()).await.duplicates, 2);
    assert_eq!(apply(&runtime, events[..1].to_vec()).await.applied, 1);
    let summary = summary(&runtime, Window::Hour, NOW).await.unwrap();
    assert_eq!(summary.funnel.carts_created, 4);
}

#[tokio::test]
async fn uncounted_and_misrouted_events_are_reported_not_applied() {
    let Harness { runtime, store } = harness(DEFAULT_DEDUP_CAPACITY).await;
    let key = HourBucket::of_ms(NOW).to_string();
    let login = envelope(
        "user:u-1:2:0",
        NOW,
        DomainEvent::UserLoggedIn {
            user_id: "u-1".to_owned(),
        },
    );
    let next_hour = envelope(
        "cart:c-1:1:0",
        NOW + HOUR,
        cart_created("c-1", Variants::new()),
    );
    let reply = runtime
        .actor::<AnalyticsActor>(key.clone())
        .ask(AnalyticsCommand::Apply(vec![login, next_hour]))
        .await
        .unwrap();
    assert_eq!(
        reply,
        AnalyticsReply::Applied(ApplyReport {
            ignored: 1,
            misrouted: 1,
            ..ApplyReport::default()
        })
    );
    assert_eq!(version(&store, &key).await, 0, "nothing to commit");
}

#[tokio::test]
async fn windows_merge_buckets_and_trim_by_minute() {
    let Harness { runtime, .. } = harness(DEFAULT_DEDUP_CAPACITY).await;
    // Minute 14 of this hour, minute 20 and minute 10 of the previous one, a day ago, and
    // six days ago.
    let times = [
        ("now", NOW),
        ("in-the-hour", NOW - 54 * MINUTE),
        ("just-outside", NOW - 64 * MINUTE),
        ("yesterday", NOW - 23 * HOUR - 30 * MINUTE),
        ("last-week", NOW - 6 * 24 * HOUR),
    ];
    let events = times
        .iter()
        .map(|(name, time)| envelope(name, *time, cart_created(name, Variants::new())))
        .collect();
    assert_eq!(apply(&runtime, events).await.applied, 5);

    let hour = summary(&runtime, Window::Hour, NOW).await.unwrap();
    assert_eq!(hour.funnel.carts_created, 2, "{hour:?}");
    assert_eq!(hour.from_ms, (NOW / MINUTE - 59) * MINUTE);
    assert_eq!(hour.to_ms, NOW);
    let day = summary(&runtime, Window::Day, NOW).await.unwrap();
    assert_eq!(day.funnel.carts_created, 4);
    let week = summary(&runtime, Window::Week, NOW).await.unwrap();
    assert_eq!(week.funnel.carts_created, 5);
    // At 21:13 the last hour still holds the event of 20:14; at 21:14 it no longer does.
    let later = summary(&runtime, Window::Hour, NOW + 59 * MINUTE)
        .await
        .unwrap();
    assert_eq!(later.funnel.carts_created, 1);
    let much_later = summary(&runtime, Window::Hour, NOW + HOUR).await.unwrap();
    assert_eq!(much_later.funnel.carts_created, 0);
}

#[tokio::test]
async fn reading_buckets_never_written_creates_no_rows() {
    let Harness { runtime, .. } = harness(DEFAULT_DEDUP_CAPACITY).await;
    let week = summary(&runtime, Window::Week, NOW).await.unwrap();
    assert_eq!(week.orders_placed, 0);
    assert!(week.top_products.is_empty());
    let rows = runtime
        .list_keys::<AnalyticsActor>(None, 1000)
        .await
        .unwrap();
    assert!(rows.is_empty(), "{rows:?}");
}

#[tokio::test]
async fn the_funnel_is_broken_down_per_experiment_variant() {
    let Harness { runtime, .. } = harness(DEFAULT_DEDUP_CAPACITY).await;
    let green = variants(&[("button", "green"), ("banner", "on")]);
    let control = variants(&[("button", "control"), ("banner", "on")]);
    let events = vec![
        envelope("1", NOW, cart_created("c-1", green.clone())),
        envelope("2", NOW, cart_created("c-2", green.clone())),
        envelope("3", NOW, cart_created("c-3", control.clone())),
        envelope("4", NOW, checkout_started("c-1", green.clone())),
        envelope("5", NOW, checkout_started("c-3", control.clone())),
        envelope("6", NOW, paid("o-1", green.clone())),
        envelope("7", NOW, cart_created("c-4", Variants::new())),
    ];
    apply(&runtime, events).await;
    let summary = summary(&runtime, Window::Day, NOW).await.unwrap();
    assert_eq!(
        summary.funnel,
        Funnel {
            carts_created: 4,
            checkouts_started: 2,
            orders_paid: 1,
        }
    );
    assert_eq!(summary.orders_paid, 1);
    let button = &summary.variants["button"];
    assert_eq!(
        button["green"],
        Funnel {
            carts_created: 2,
            checkouts_started: 1,
            orders_paid: 1,
        }
    );
    assert_eq!(
        button["control"],
        Funnel {
            carts_created: 1,
            checkouts_started: 1,
            orders_paid: 0,
        }
    );
    assert_eq!(summary.variants["banner"]["on"].carts_created, 3);
}

#[tokio::test]
async fn average_order_value_and_top_products_are_derived_per_currency() {
    let Harness { runtime, .. } = harness(DEFAULT_DEDUP_CAPACITY).await;
    let events = vec![
        envelope(
            "1",
            NOW,
            placed(
                "o-1",
                vec![line("MUG", 2, 500), line("TEA", 1, 300)],
                1_800,
                "EUR",
            ),
        ),
        // The previous hour, another bucket.
        envelope(
            "2",
            NOW - 30 * MINUTE,
            placed("o-2", vec![line("TEA", 5, 300)], 1_501, "EUR"),
        ),
        envelope(
            "3",
            NOW,
            placed("o-3", vec![line("MUG", 1, 700)], 1_200, "USD"),
        ),
        envelope(
            "4",
            NOW,
            placed("o-4", vec![line("POT", 2, 2_000)], 4_500, "EUR"),
        ),
    ];
    apply(&runtime, events).await;
    let summary = summary(&runtime, Window::Hour, NOW).await.unwrap();
    assert_eq!(summary.orders_placed, 4);
    assert_eq!(summary.revenue_cents["EUR"], 1_800 + 1_501 + 4_500);
    assert_eq!(summary.revenue_cents["USD"], 1_200);
    // 7801 / 3 = 2600.33 → 2600; 1200 / 1.
    assert_eq!(summary.average_order_value_cents["EUR"], 2_600);
    assert_eq!(summary.average_order_value_cents["USD"], 1_200);
    let ranking: Vec<(&str, u64)> = summary
        .top_products
        .iter()
        .map(|product| (product.sku.as_str(), product.units))
        .collect();
    // TEA 6, MUG 3, POT 2 (ties would go by SKU).
    assert_eq!(ranking, vec![("TEA", 6), ("MUG", 3), ("POT", 2)]);
    let mug = &summary.top_products[1];
    assert_eq!(mug.revenue_cents["EUR"], 1_000);
    assert_eq!(mug.revenue_cents["USD"], 700);
}

#[tokio::test]
async fn low_stock_keeps_the_latest_by_event_time_and_other_counts_add_up() {
    let Harness { runtime, .. } = harness(DEFAULT_DEDUP_CAPACITY).await;
    // Delivered out of order: the later event arrives first, in another batch.
    apply(&runtime, vec![envelope("late", NOW, stock_low("MUG", 1))]).await;
    apply(
        &runtime,
        vec![
            envelope("early", NOW - 20 * MINUTE, stock_low("MUG", 4)),
            envelope("tea", NOW - 5 * MINUTE, stock_low("TEA", 2)),
            envelope(
                "cancel",
                NOW,
                DomainEvent::OrderCancelled {
                    order_id: "o-1".to_owned(),
                    user_id: "u-1".to_owned(),
                    reason: "changed mind".to_owned(),
                },
            ),
            envelope(
                "refund",
                NOW,
                DomainEvent::OrderRefunded {
                    order_id: "o-1".to_owned(),
                    user_id: "u-1".to_owned(),
                    amount_cents: 100,
                    currency: "EUR".to_owned(),
                },
            ),
            envelope(
                "abandon",
                NOW,
                DomainEvent::CartAbandoned {
                    cart_id: "c-1".to_owned(),
                    user_id: None,
                    lines: vec![line("MUG", 1, 500)],
                    subtotal_cents: 500,
                    currency: "EUR".to_owned(),
                    variants: Variants::new(),
                },
            ),
        ],
    )
    .await;
    let summary = summary(&runtime, Window::Hour, NOW).await.unwrap();
    assert_eq!(summary.low_stock["MUG"].available, 1);
    assert_eq!(summary.low_stock["MUG"].at_ms, NOW);
    assert_eq!(summary.low_stock["TEA"].available, 2);
    assert_eq!(summary.orders_cancelled, 1);
    assert_eq!(summary.orders_refunded, 1);
    assert_eq!(summary.carts_abandoned, 1);
}

#[test]
fn merge_is_order_independent() {
    let events = [
        envelope("1", NOW, placed("o-1", vec![line("A", 1, 100)], 100, "EUR")),
        envelope("2", NOW, stock_low("A", 3)),
        envelope("3", NOW, stock_low("A", 2)),
        envelope("4", NOW, cart_created("c", variants(&[("x", "y")]))),
    ];
    let parts: Vec<Aggregates> = events
        .iter()
        .map(|event| {
            let mut part = Aggregates::default();
            part.apply(event);
            part
        })
        .collect();
    let forward = merge(&parts);
    let backward = merge(parts.iter().rev());
    assert_eq!(forward, backward);
    assert_eq!(
        forward.low_stock["A"].available, 2,
        "a tie keeps the lower availability"
    );
    assert!(merge(std::iter::empty()).is_empty());
}
