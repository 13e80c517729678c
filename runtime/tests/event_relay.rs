//! The outbox relay and durable consumers against the in-process bus: per-actor order,
//! outbox drained, a bus outage survived, the outbox limit, and dead letters.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use emporium_runtime::events::consume::{
    ConsumerSpec, EventHandler, Handled, Incoming, Redriven, dead_letters, redrive, spawn_consumer,
};
use emporium_runtime::events::{
    Envelope, Event, EventBus, EventBusError, EventEnvelope, MemoryEventBus, MemoryEventBusConfig,
    PublishError, RelaySettings, Subscription,
};
use emporium_runtime::store::MemoryStore;
use emporium_runtime::{Runtime, RuntimeError, StateStore, Turn, VirtualActor};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
enum Counted {
    Ticked { n: u64 },
}

impl Event for Counted {
    const SCHEMA: u32 = 1;
    fn subject(&self) -> &'static str {
        "emporium.counter.ticked"
    }
}

/// Each `Tick(k)` raises `k` events numbered on from the last.
struct Counter;

impl VirtualActor for Counter {
    const KIND: &'static str = "counter";
    type State = u64;
    type Command = u64;
    type Reply = u64;

    async fn handle(&self, turn: &mut Turn<Self>, ticks: u64) -> Result<u64, RuntimeError> {
        for _ in 0..ticks {
            *turn.state_mut() += 1;
            let n = *turn.state();
            turn.emit(Counted::Ticked { n })?;
        }
        Ok(*turn.state())
    }
}

/// A bus that can be switched off: publishes then fail as not stored.
struct SwitchableBus {
    inner: MemoryEventBus,
    down: AtomicBool,
}

#[async_trait]
impl EventBus for SwitchableBus {
    async fn publish(&self, batch: &[EventEnvelope]) -> Vec<Result<(), PublishError>> {
        if self.down.load(Ordering::SeqCst) {
            return batch
                .iter()
                .map(|envelope| {
                    Err(PublishError::NotStored {
                        id: envelope.id.clone(),
                        reason: "switched off".to_owned(),
                    })
                })
                .collect();
        }
        self.inner.publish(batch).await
    }

    async fn subscribe(
        &self,
        consumer: &str,
        filter: &str,
    ) -> Result<Box<dyn Subscription>, EventBusError> {
        self.inner.subscribe(consumer, filter).await
    }
}

fn quick_bus() -> MemoryEventBus {
    MemoryEventBus::new(MemoryEventBusConfig {
        ack_wait: Duration::from_millis(200),
        ..MemoryEventBusConfig::default()
    })
}

async fn node(bus: Arc<dyn EventBus>, settings: RelaySettings) -> (Runtime, Arc<MemoryStore>) {
    let store = Arc::new(MemoryStore::new());
    let runtime = Runtime::builder(store.clone())
        .events(bus, settings)
        .register(Counter)
        .build()
        .await
        .expect("runtime");
    (runtime, store)
}

/// Every message on `emporium.counter.>`, read through a fresh durable consumer.
async fn read_all(bus: &dyn EventBus, consumer: &str, expected: usize) -> Vec<Envelope<Counted>> {
    let mut subscription = bus.subscribe(consumer, "emporium.counter.>").await.unwrap();
    let mut seen = Vec::new();
    while seen.len() < expected {
        let delivery = tokio::time::timeout(Duration::from_secs(10), subscription.next())
            .await
            .expect("events arrive")
            .unwrap();
        seen.push(Envelope::<Counted>::decode(&delivery.payload).unwrap());
        delivery.ack().await.unwrap();
    }
    seen
}

async fn drained(store: &MemoryStore) {
    for _ in 0..200 {
        if store.outbox_pending(10).await.unwrap().is_empty() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the outbox did not drain");
}

fn per_actor_in_order(events: &[Envelope<Counted>]) {
    let mut last = std::collections::HashMap::new();
    for envelope in events {
        let Counted::Ticked { n } = envelope.event;
        let previous = last.insert(envelope.source.key.clone(), n).unwrap_or(0);
        assert_eq!(n, previous + 1, "{} out of order", envelope.id);
    }
}

#[tokio::test]
async fn committed_events_are_published_in_per_actor_order_and_leave_the_outbox() {
    let bus = quick_bus();
    let (runtime, store) = node(Arc::new(bus.clone()), RelaySettings::default()).await;
    for round in 0..5 {
        for key in ["a", "b", "c"] {
            runtime
                .actor::<Counter>(key)
                .ask(round % 3 + 1)
                .await
                .unwrap();
        }
    }
    // 3 actors × (1+2+3+1+2) events.
    let events = read_all(&bus, "check", 27).await;
    per_actor_in_order(&events);
    assert_eq!(events[0].source.kind, "counter");
    assert_eq!(events[0].schema, 1);
    drained(&store).await;
    assert_eq!(runtime.outbox_pending(), 0);
}

#[tokio::test]
async fn events_wait_out_a_bus_outage_then_all_arrive_in_order() {
    let bus = Arc::new(SwitchableBus {
        inner: quick_bus(),
        down: AtomicBool::new(true),
    });
    let settings = RelaySettings {
        retry_after: Duration::from_millis(20),
        ..RelaySettings::default()
    };
    let (runtime, store) = node(bus.clone(), settings).await;
    for _ in 0..10 {
        for key in ["a", "b"] {
            runtime.actor::<Counter>(key).ask(2).await.unwrap();
        }
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(store.outbox_pending(1000).await.unwrap().len(), 40);
    assert_eq!(runtime.outbox_pending(), 40);
    bus.down.store(false, Ordering::SeqCst);
    let events = read_all(&bus.inner, "check", 40).await;
    per_actor_in_order(&events);
    drained(&store).await;
}

#[tokio::test]
async fn a_full_outbox_refuses_commits_that_raise_events_then_recovers() {
    let bus = Arc::new(SwitchableBus {
        inner: quick_bus(),
        down: AtomicBool::new(true),
    });
    let settings = RelaySettings {
        outbox_limit: 5,
        retry_after: Duration::from_millis(20),
        ..RelaySettings::default()
    };
    let (runtime, store) = node(bus.clone(), settings).await;
    for _ in 0..5 {
        runtime.actor::<Counter>("a").ask(1).await.unwrap();
    }
    let refused = runtime.actor::<Counter>("a").ask(1).await.unwrap_err();
    assert!(
        matches!(refused, RuntimeError::OutboxFull { limit: 5, .. }),
        "{refused}"
    );
    assert!(refused.is_not_applied());
    // Nothing of the refused turn was written; a read still works.
    assert_eq!(runtime.actor::<Counter>("a").ask(0).await.unwrap(), 5);
    bus.down.store(false, Ordering::SeqCst);
    drained(&store).await;
    assert_eq!(runtime.actor::<Counter>("a").ask(1).await.unwrap(), 6);
    let events = read_all(&bus.inner, "check", 6).await;
    per_actor_in_order(&events);
}

/// Applies each id once; fails the first `flaky` deliveries with Retry; poisons `poison`.
struct Tally {
    applied: std::sync::Mutex<std::collections::BTreeSet<String>>,
    calls: AtomicUsize,
    flaky: usize,
    poison: Option<u64>,
    healed: AtomicBool,
}

#[async_trait]
impl EventHandler for Tally {
    async fn handle(&self, batch: &[Incoming]) -> Vec<Handled> {
        batch
            .iter()
            .map(|incoming| {
                let call = self.calls.fetch_add(1, Ordering::SeqCst);
                let envelope = Envelope::<Counted>::decode(&incoming.payload).unwrap();
                let Counted::Ticked { n } = envelope.event;
                if Some(n) == self.poison && !self.healed.load(Ordering::SeqCst) {
                    return Handled::Retry("cannot apply".to_owned());
                }
                if call < self.flaky {
                    return Handled::Retry("flaky".to_owned());
                }
                self.applied.lock().unwrap().insert(incoming.id.clone());
                Handled::Done
            })
            .collect()
    }
}

#[tokio::test]
async fn consumers_retry_then_dead_letter_and_an_operator_redrives() {
    let bus = quick_bus();
    let (runtime, _store) = node(Arc::new(bus.clone()), RelaySettings::default()).await;
    let tally = Arc::new(Tally {
        applied: Default::default(),
        calls: AtomicUsize::new(0),
        flaky: 2,
        poison: Some(3),
        healed: AtomicBool::new(false),
    });
    let spec = ConsumerSpec {
        max_deliveries: 3,
        ..ConsumerSpec::new("tally", "emporium.counter.>")
    };
    spawn_consumer(&runtime, spec, tally.clone());
    runtime.actor::<Counter>("a").ask(5).await.unwrap();
    let poisoned = "counter:a:1:2";
    let mut letters = Vec::new();
    for _ in 0..100 {
        letters = dead_letters(&runtime, "tally").await.unwrap();
        if !letters.is_empty() && tally.applied.lock().unwrap().len() == 4 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(letters.len(), 1, "{letters:?}");
    assert_eq!(letters[0].event.id, poisoned);
    assert!(
        letters[0].reason.contains("3 deliveries"),
        "{}",
        letters[0].reason
    );
    assert_eq!(tally.applied.lock().unwrap().len(), 4);

    assert_eq!(
        redrive(&runtime, "tally", poisoned).await.unwrap(),
        Redriven::StillFailing("cannot apply".to_owned())
    );
    tally.healed.store(true, Ordering::SeqCst);
    assert_eq!(
        redrive(&runtime, "tally", poisoned).await.unwrap(),
        Redriven::Applied
    );
    assert!(dead_letters(&runtime, "tally").await.unwrap().is_empty());
    assert_eq!(tally.applied.lock().unwrap().len(), 5);
    assert_eq!(
        redrive(&runtime, "tally", poisoned).await.unwrap(),
        Redriven::NotFound
    );
    assert_eq!(
        redrive(&runtime, "nobody", poisoned).await.unwrap(),
        Redriven::UnknownConsumer
    );
}
