//! The domain's durable consumers: each decodes the deliveries of its batch and routes them
//! to the consumer actors that apply them exactly once by event id.
//!
//! - [`ANALYTICS`] (`emporium.>`): counted events grouped by UTC hour, one `Apply` per hour
//!   bucket actor, buckets asked concurrently.
//! - [`NOTIFICATIONS`] (`emporium.>`): events that notify someone, in order per recipient,
//!   recipients concurrently.
//!
//! Every node runs both under the same durable names, so the bus spreads deliveries over the
//! nodes; the actors live wherever their shard is owned. A delivery is acknowledged only after
//! its actor answered, so a node killed mid-batch leaves it to be delivered again, and the
//! actor's applied ids absorb the repeat.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use emporium_runtime::events::consume::{ConsumerSpec, EventHandler, Handled, Incoming};
use emporium_runtime::{Runtime, RuntimeError};
use futures::future::join_all;

use crate::analytics::{Aggregates, AnalyticsActor, AnalyticsCommand, AnalyticsReply, HourBucket};
use crate::events::{DomainEnvelope, DomainEvent};
use crate::notification::{Delivery, Notifications, recipient};

/// The analytics consumer's durable name.
pub const ANALYTICS: &str = "analytics";
/// The notification consumer's durable name.
pub const NOTIFICATIONS: &str = "notifications";

/// Start the domain's consumers on this node.
pub fn start(runtime: &Runtime) {
    use emporium_runtime::events::consume::spawn_consumer;
    spawn_consumer(
        runtime,
        ConsumerSpec::new(ANALYTICS, crate::events::subjects::ALL),
        Arc::new(AnalyticsConsumer {
            runtime: runtime.clone(),
        }),
    );
    spawn_consumer(
        runtime,
        ConsumerSpec::new(NOTIFICATIONS, crate::events::subjects::ALL),
        Arc::new(NotificationConsumer {
            notifications: Notifications::new(runtime.clone()),
        }),
    );
}

/// Decode every delivery; an undecodable one is poison.
fn decode(batch: &[Incoming]) -> (Vec<Handled>, Vec<Option<DomainEnvelope>>) {
    let mut answers = vec![Handled::Done; batch.len()];
    let envelopes = batch
        .iter()
        .enumerate()
        .map(
            |(position, incoming)| match DomainEvent::decode(&incoming.payload) {
                Ok(envelope) => Some(envelope),
                Err(error) => {
                    answers[position] = Handled::Poison(format!("not a domain event: {error}"));
                    None
                }
            },
        )
        .collect();
    (answers, envelopes)
}

fn retry(error: &RuntimeError) -> Handled {
    Handled::Retry(error.to_string())
}

/// Feeds the hour-bucket analytics actors.
pub struct AnalyticsConsumer {
    runtime: Runtime,
}

#[async_trait]
impl EventHandler for AnalyticsConsumer {
    async fn handle(&self, batch: &[Incoming]) -> Vec<Handled> {
        let (mut answers, envelopes) = decode(batch);
        let mut buckets: BTreeMap<HourBucket, (Vec<DomainEnvelope>, Vec<usize>)> = BTreeMap::new();
        for (position, envelope) in envelopes.into_iter().enumerate() {
            let Some(envelope) = envelope.filter(|e| Aggregates::counts(&e.event)) else {
                continue;
            };
            let slot = buckets.entry(HourBucket::of_ms(envelope.time)).or_default();
            slot.0.push(envelope);
            slot.1.push(position);
        }
        let asks = buckets.into_iter().map(|(bucket, (envelopes, positions))| {
            let actor = self.runtime.actor::<AnalyticsActor>(bucket.to_string());
            async move {
                let reply = actor.ask(AnalyticsCommand::Apply(envelopes)).await;
                (reply, positions)
            }
        });
        for (reply, positions) in join_all(asks).await {
            let answer = match reply {
                Ok(AnalyticsReply::Applied(_)) => Handled::Done,
                Ok(AnalyticsReply::Summary(_)) => {
                    Handled::Retry("analytics answered Apply with a summary".to_owned())
                }
                Err(error) => retry(&error),
            };
            for position in positions {
                answers[position] = answer.clone();
            }
        }
        answers
    }
}

/// Feeds the per-recipient notification actors.
pub struct NotificationConsumer {
    notifications: Notifications,
}

#[async_trait]
impl EventHandler for NotificationConsumer {
    async fn handle(&self, batch: &[Incoming]) -> Vec<Handled> {
        let (mut answers, envelopes) = decode(batch);
        // In delivery order per recipient: a shipping mail never overtakes its confirmation.
        let mut by_recipient: BTreeMap<String, Vec<(usize, DomainEnvelope)>> = BTreeMap::new();
        for (position, envelope) in envelopes.into_iter().enumerate() {
            let Some(envelope) = envelope else { continue };
            if let Some(key) = recipient(&envelope.event) {
                by_recipient
                    .entry(key.to_owned())
                    .or_default()
                    .push((position, envelope));
            }
        }
        let runs = by_recipient.into_values().map(|events| async move {
            let mut settled = Vec::with_capacity(events.len());
            for (position, envelope) in events {
                let answer = match self.notifications.deliver(envelope).await {
                    Ok(Some(Delivery::Retry(reason))) => Handled::Retry(reason),
                    Ok(_) => Handled::Done,
                    Err(error) => Handled::Retry(error.to_string()),
                };
                settled.push((position, answer));
            }
            settled
        });
        for (position, answer) in join_all(runs).await.into_iter().flatten() {
            answers[position] = answer;
        }
        answers
    }
}
