//! `MemoryEventBus`: the in-process twin of the JetStream adapter, and the embedded default.
//!
//! One log of the stored messages (a single stream), a map of recently seen ids for the
//! duplicate window, and per durable consumer a cursor into the log plus the deliveries
//! awaiting their ack. Durable for the life of the process only: across restarts the
//! embedded node's events are kept by the outbox, not by this bus.
//!
//! Bounded like a JetStream stream with limits retention: past
//! [`MemoryEventBusConfig::max_messages`] the oldest message is dropped, also for a consumer
//! that has not read it yet (a consumer that far behind loses it, as on JetStream).

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::Notify;
use tokio::time::Instant;

use super::{
    Acknowledge, Delivery, EventBus, EventBusError, EventEnvelope, PublishError, Subscription,
    subject_matches,
};
use crate::lock;

/// Settings of a [`MemoryEventBus`].
#[derive(Debug, Clone, Copy)]
pub struct MemoryEventBusConfig {
    /// How long a delivery may stay unacknowledged before it is delivered again.
    pub ack_wait: Duration,
    /// How long a published id is remembered for deduplication.
    pub duplicate_window: Duration,
    /// Most messages kept; the oldest go first.
    pub max_messages: usize,
}

impl Default for MemoryEventBusConfig {
    /// JetStream's defaults: 30 s ack wait, 2 min duplicate window; 100 000 messages.
    fn default() -> Self {
        Self {
            ack_wait: Duration::from_secs(30),
            duplicate_window: Duration::from_secs(120),
            max_messages: 100_000,
        }
    }
}

/// The in-process [`EventBus`].
#[derive(Clone)]
pub struct MemoryEventBus {
    shared: Arc<Shared>,
}

struct Shared {
    config: MemoryEventBusConfig,
    state: Mutex<State>,
    /// Woken on every publish and every ack, so waiting subscriptions re-check.
    changed: Notify,
}

#[derive(Default)]
struct State {
    /// The kept messages; `log[0]` has the absolute index `first`.
    log: VecDeque<EventEnvelope>,
    first: usize,
    /// The ids stored in the duplicate window.
    seen: HashSet<String>,
    /// The same ids with when they were stored, oldest first: the window is trimmed from
    /// the front, so a publish costs O(1) however many ids the window holds (a scan of
    /// them on every publish took a quarter of an embedded node's CPU at 3k writes/s).
    seen_order: VecDeque<(Instant, String)>,
    consumers: HashMap<String, Consumer>,
}

struct Consumer {
    filter: String,
    /// Absolute index of the next message never delivered to this consumer.
    cursor: usize,
    /// Log index → its delivery awaiting an ack.
    pending: BTreeMap<usize, Pending>,
}

struct Pending {
    redeliver_at: Instant,
    count: u64,
}

/// What a subscription should do next, decided under the lock.
enum Step {
    Deliver(EventEnvelope, usize, u64),
    WaitUntil(Option<Instant>),
}

impl State {
    /// Forget the ids stored `window` or longer before `now`, so the duplicate window stays
    /// bounded by the publish rate.
    fn forget_ids_older_than(&mut self, window: Duration, now: Instant) {
        while let Some((stored_at, _)) = self.seen_order.front() {
            if now.saturating_duration_since(*stored_at) < window {
                break;
            }
            if let Some((_, id)) = self.seen_order.pop_front() {
                self.seen.remove(&id);
            }
        }
    }
}

impl MemoryEventBus {
    /// An empty bus with `config`.
    pub fn new(config: MemoryEventBusConfig) -> Self {
        Self {
            shared: Arc::new(Shared {
                config,
                state: Mutex::new(State::default()),
                changed: Notify::new(),
            }),
        }
    }
}

impl Default for MemoryEventBus {
    fn default() -> Self {
        Self::new(MemoryEventBusConfig::default())
    }
}

impl Shared {
    fn store(&self, envelope: &EventEnvelope, now: Instant) {
        let mut state = lock(&self.state);
        let window = self.config.duplicate_window;
        state.forget_ids_older_than(window, now);
        if !state.seen.insert(envelope.id.clone()) {
            return;
        }
        state.seen_order.push_back((now, envelope.id.clone()));
        state.log.push_back(envelope.clone());
        while state.log.len() > self.config.max_messages.max(1) {
            state.log.pop_front();
            state.first += 1;
        }
        let first = state.first;
        for consumer in state.consumers.values_mut() {
            consumer.cursor = consumer.cursor.max(first);
            if consumer
                .pending
                .keys()
                .next()
                .is_some_and(|index| *index < first)
            {
                consumer.pending = consumer.pending.split_off(&first);
            }
        }
    }

    fn step(&self, name: &str, now: Instant) -> Step {
        let mut guard = lock(&self.state);
        let State {
            log,
            first,
            consumers,
            ..
        } = &mut *guard;
        let first = *first;
        let Some(consumer) = consumers.get_mut(name) else {
            return Step::WaitUntil(None);
        };
        // Redeliveries first, oldest message first.
        let due = consumer
            .pending
            .iter_mut()
            .find(|(_, pending)| pending.redeliver_at <= now);
        if let Some((&index, pending)) = due {
            pending.count += 1;
            pending.redeliver_at = now + self.config.ack_wait;
            return Step::Deliver(log[index - first].clone(), index, pending.count);
        }
        consumer.cursor = consumer.cursor.max(first);
        while consumer.cursor < first + log.len() {
            let index = consumer.cursor;
            consumer.cursor += 1;
            if subject_matches(&consumer.filter, &log[index - first].subject) {
                let redeliver_at = now + self.config.ack_wait;
                consumer.pending.insert(
                    index,
                    Pending {
                        redeliver_at,
                        count: 1,
                    },
                );
                return Step::Deliver(log[index - first].clone(), index, 1);
            }
        }
        Step::WaitUntil(consumer.pending.values().map(|p| p.redeliver_at).min())
    }
}

#[async_trait]
impl EventBus for MemoryEventBus {
    async fn publish(&self, batch: &[EventEnvelope]) -> Vec<Result<(), PublishError>> {
        let now = Instant::now();
        let results = batch
            .iter()
            .map(|envelope| {
                self.shared.store(envelope, now);
                Ok(())
            })
            .collect();
        self.shared.changed.notify_waiters();
        results
    }

    async fn subscribe(
        &self,
        consumer: &str,
        filter: &str,
    ) -> Result<Box<dyn Subscription>, EventBusError> {
        let mut state = lock(&self.shared.state);
        let existing = state
            .consumers
            .entry(consumer.to_owned())
            .or_insert_with(|| Consumer {
                filter: filter.to_owned(),
                cursor: 0,
                pending: BTreeMap::new(),
            });
        if existing.filter != filter {
            return Err(EventBusError::Refused(format!(
                "consumer {consumer} is bound to filter {}, not {filter}",
                existing.filter
            )));
        }
        Ok(Box::new(MemorySubscription {
            shared: Arc::clone(&self.shared),
            consumer: consumer.to_owned(),
        }))
    }
}

struct MemorySubscription {
    shared: Arc<Shared>,
    consumer: String,
}

#[async_trait]
impl Subscription for MemorySubscription {
    async fn next(&mut self) -> Result<Delivery, EventBusError> {
        loop {
            // Registered before the check, so a publish between the check and the wait
            // still wakes us.
            let changed = self.shared.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            match self.shared.step(&self.consumer, Instant::now()) {
                Step::Deliver(envelope, index, count) => {
                    let acker = MemoryAck {
                        shared: Arc::clone(&self.shared),
                        consumer: self.consumer.clone(),
                        index,
                    };
                    return Ok(Delivery::new(envelope, count, Box::new(acker)));
                }
                Step::WaitUntil(Some(deadline)) => {
                    let _ = tokio::time::timeout_at(deadline, changed).await;
                }
                Step::WaitUntil(None) => changed.await,
            }
        }
    }
}

struct MemoryAck {
    shared: Arc<Shared>,
    consumer: String,
    index: usize,
}

#[async_trait]
impl Acknowledge for MemoryAck {
    async fn ack(self: Box<Self>) -> Result<(), EventBusError> {
        let mut state = lock(&self.shared.state);
        if let Some(consumer) = state.consumers.get_mut(&self.consumer) {
            // Acking twice, or after a redelivery was acked, is harmless.
            consumer.pending.remove(&self.index);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use bytes::Bytes;

    use super::{MemoryEventBus, MemoryEventBusConfig};
    use crate::events::{EventBus, EventBusError, EventEnvelope};

    fn envelope(id: &str) -> EventEnvelope {
        EventEnvelope {
            id: id.to_owned(),
            subject: "emporium.test.e".to_owned(),
            payload: Bytes::from_static(b"{}"),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn an_id_is_new_again_after_the_duplicate_window() {
        let bus = MemoryEventBus::new(MemoryEventBusConfig {
            ack_wait: Duration::from_secs(30),
            duplicate_window: Duration::from_secs(60),
            ..MemoryEventBusConfig::default()
        });
        let mut subscription = bus
            .subscribe("reader", "emporium.>")
            .await
            .expect("subscribe");
        bus.publish(&[envelope("a")]).await;
        tokio::time::advance(Duration::from_secs(59)).await;
        bus.publish(&[envelope("a"), envelope("b")]).await;
        tokio::time::advance(Duration::from_secs(2)).await;
        bus.publish(&[envelope("a")]).await;

        let mut ids = Vec::new();
        for _ in 0..3 {
            let delivery = subscription.next().await.expect("delivery");
            ids.push(delivery.id.clone());
            delivery.ack().await.expect("ack");
        }
        assert_eq!(
            ids,
            ["a", "b", "a"],
            "inside the window once, after it again"
        );
    }

    #[tokio::test]
    async fn the_oldest_messages_go_past_the_limit() {
        let bus = MemoryEventBus::new(MemoryEventBusConfig {
            max_messages: 2,
            ..MemoryEventBusConfig::default()
        });
        let mut subscription = bus
            .subscribe("reader", "emporium.>")
            .await
            .expect("subscribe");
        bus.publish(&[envelope("a"), envelope("b"), envelope("c")])
            .await;
        let mut ids = Vec::new();
        for _ in 0..2 {
            let delivery = subscription.next().await.expect("delivery");
            ids.push(delivery.id.clone());
            delivery.ack().await.expect("ack");
        }
        assert_eq!(ids, ["b", "c"]);
    }

    #[tokio::test(start_paused = true)]
    async fn an_unacked_message_dropped_past_the_limit_is_not_redelivered() {
        let bus = MemoryEventBus::new(MemoryEventBusConfig {
            ack_wait: Duration::from_secs(30),
            max_messages: 2,
            ..MemoryEventBusConfig::default()
        });
        let mut subscription = bus
            .subscribe("reader", "emporium.>")
            .await
            .expect("subscribe");
        bus.publish(&[envelope("a")]).await;
        let unacked = subscription.next().await.expect("delivery");
        assert_eq!(unacked.id, "a");
        bus.publish(&[envelope("b"), envelope("c")]).await;
        tokio::time::advance(Duration::from_secs(31)).await;
        let mut ids = Vec::new();
        for _ in 0..2 {
            let delivery = subscription.next().await.expect("delivery");
            ids.push(delivery.id.clone());
            delivery.ack().await.expect("ack");
        }
        assert_eq!(ids, ["b", "c"], "a was dropped before its redelivery");
    }

    #[tokio::test(start_paused = true)]
    async fn ids_leave_the_duplicate_window_oldest_first() {
        let bus = MemoryEventBus::new(MemoryEventBusConfig {
            duplicate_window: Duration::from_secs(10),
            ..MemoryEventBusConfig::default()
        });
        let mut subscription = bus
            .subscribe("reader", "emporium.>")
            .await
            .expect("subscribe");
        bus.publish(&[envelope("a")]).await;
        tokio::time::advance(Duration::from_secs(5)).await;
        bus.publish(&[envelope("b")]).await;
        tokio::time::advance(Duration::from_secs(6)).await;
        // 11 s after a, 6 s after b: a is new again, b is still a duplicate.
        bus.publish(&[envelope("a"), envelope("b")]).await;
        let mut ids = Vec::new();
        for _ in 0..3 {
            let delivery = subscription.next().await.expect("delivery");
            ids.push(delivery.id.clone());
            delivery.ack().await.expect("ack");
        }
        assert_eq!(ids, ["a", "b", "a"]);
    }

    #[tokio::test]
    async fn a_consumer_keeps_its_filter() {
        let bus = MemoryEventBus::default();
        bus.subscribe("reader", "emporium.a.>")
            .await
            .expect("subscribe");
        let refused = bus.subscribe("reader", "emporium.b.>").await.err();
        assert!(matches!(refused, Some(EventBusError::Refused(_))));
    }
}
