//! The runtime's contract, exercised through its public API on the in-memory store:
//! activation, turn-based execution, passivation (idle and LRU), compare-and-set fencing,
//! panic recovery and durable reminders.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use emporium_runtime::store::{MemoryStore, StateWrite};
use emporium_runtime::{
    ActorId, ManualClock, Runtime, RuntimeConfig, RuntimeError, StateStore, Turn, VirtualActor,
};
use serde::{Deserialize, Serialize};

#[derive(Default, Serialize, Deserialize)]
struct Count {
    value: i64,
    reminded: u32,
}

#[derive(Clone, Serialize, Deserialize)]
enum CountCommand {
    Add(i64),
    Get,
    Panic,
    MutateThenFail,
    RemindAt(u64),
}

struct Counter;

impl VirtualActor for Counter {
    const KIND: &'static str = "counter";
    type State = Count;
    type Command = CountCommand;
    type Reply = i64;

    async fn handle(
        &self,
        turn: &mut Turn<Self>,
        command: CountCommand,
    ) -> Result<i64, RuntimeError> {
        match command {
            CountCommand::Add(delta) => turn.state_mut().value += delta,
            CountCommand::Get => {}
            CountCommand::Panic => panic!("deliberate panic in a test actor"),
            CountCommand::MutateThenFail => {
                turn.state_mut().value += 1000;
                return Err(RuntimeError::ShuttingDown);
            }
            CountCommand::RemindAt(due_at_ms) => turn.set_reminder("ping", due_at_ms),
        }
        Ok(turn.state().value)
    }

    async fn on_reminder(&self, turn: &mut Turn<Self>, name: &str) -> Result<(), RuntimeError> {
        assert_eq!(name, "ping");
        turn.state_mut().reminded += 1;
        Ok(())
    }
}

fn config(idle_ms: u64, max_active_actors: usize) -> RuntimeConfig {
    RuntimeConfig {
        idle_timeout: Duration::from_millis(idle_ms),
        max_active_actors,
        ask_timeout: Duration::from_secs(5),
        ..RuntimeConfig::default()
    }
}

async fn start(store: Arc<dyn StateStore>, config: RuntimeConfig) -> Runtime {
    Runtime::builder(store)
        .config(config)
        .register(Counter)
        .build()
        .await
        .expect("runtime starts")
}

fn active(runtime: &Runtime) -> i64 {
    runtime.snapshot()["counter"].active
}

#[tokio::test]
async fn first_message_activates_and_state_persists() {
    let store = Arc::new(MemoryStore::new());
    let runtime = start(store.clone(), config(60_000, 100)).await;
    assert_eq!(active(&runtime), 0);
    let counter = runtime.actor::<Counter>("a");
    assert_eq!(counter.ask(CountCommand::Add(2)).await.unwrap(), 2);
    assert_eq!(counter.ask(CountCommand::Add(3)).await.unwrap(), 5);
    assert_eq!(active(&runtime), 1);
    assert!(runtime.is_active::<Counter>("a"));
    let stored = store
        .load(&ActorId::new("counter", "a"))
        .await
        .unwrap()
        .expect("committed");
    assert_eq!(stored.version, 2, "one write per changing turn");
    // A read-only turn writes nothing.
    counter.ask(CountCommand::Get).await.unwrap();
    let stored = store.load(&ActorId::new("counter", "a")).await.unwrap();
    assert_eq!(stored.unwrap().version, 2);
}

#[tokio::test]
async fn turns_run_one_at_a_time() {
    let runtime = start(Arc::new(MemoryStore::new()), config(60_000, 100)).await;
    let tasks: Vec<_> = (0..200)
        .map(|_| {
            let counter = runtime.actor::<Counter>("shared");
            tokio::spawn(async move { counter.ask(CountCommand::Add(1)).await })
        })
        .collect();
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    let total = runtime.actor::<Counter>("shared");
    assert_eq!(total.ask(CountCommand::Get).await.unwrap(), 200);
}

#[tokio::test(start_paused = true)]
async fn idle_actors_passivate_and_come_back_with_their_state() {
    let runtime = start(Arc::new(MemoryStore::new()), config(1_000, 100)).await;
    for key in ["a", "b", "c"] {
        runtime
            .actor::<Counter>(key)
            .ask(CountCommand::Add(7))
            .await
            .unwrap();
    }
    assert_eq!(active(&runtime), 3);
    tokio::time::sleep(Duration::from_millis(2_000)).await;
    settle().await;
    assert_eq!(active(&runtime), 0, "all passivated after the idle timeout");
    let snapshot = &runtime.snapshot()["counter"];
    assert_eq!(snapshot.deactivations, 3);
    let again = runtime.actor::<Counter>("b").ask(CountCommand::Get).await;
    assert_eq!(again.unwrap(), 7, "reactivated from the store");
    assert_eq!(runtime.snapshot()["counter"].activations, 4);
}

#[tokio::test(start_paused = true)]
async fn the_cap_passivates_least_recently_used_first() {
    let runtime = start(Arc::new(MemoryStore::new()), config(3_600_000, 3)).await;
    for key in ["k1", "k2", "k3", "k4", "k5"] {
        runtime
            .actor::<Counter>(key)
            .ask(CountCommand::Add(1))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    settle().await;
    assert!(active(&runtime) <= 3, "active: {}", active(&runtime));
    assert!(runtime.is_active::<Counter>("k5"), "most recent stays");
    assert!(
        !runtime.is_active::<Counter>("k1"),
        "least recent goes first"
    );
}

#[tokio::test]
async fn a_stale_activation_is_fenced_and_reloads() {
    let store = Arc::new(MemoryStore::new());
    let runtime = start(store.clone(), config(60_000, 100)).await;
    let counter = runtime.actor::<Counter>("fenced");
    counter.ask(CountCommand::Add(1)).await.unwrap();
    // Another owner (a newer activation elsewhere) writes version 2 behind our back.
    let newer = serde_json::json!({"state": {"value": 50, "reminded": 0}, "reminders": {}});
    let write = StateWrite {
        expected_version: 1,
        state: Bytes::from(serde_json::to_vec(&newer).unwrap()),
        ..StateWrite::default()
    };
    store
        .save(&ActorId::new("counter", "fenced"), write)
        .await
        .unwrap();
    let error = counter.ask(CountCommand::Add(1)).await.unwrap_err();
    assert!(error.is_conflict(), "stale write rejected: {error}");
    assert_eq!(
        counter.ask(CountCommand::Add(1)).await.unwrap(),
        51,
        "the next message runs on the newer state, not the stale one"
    );
}

#[tokio::test]
async fn a_panicking_actor_restarts_from_its_last_committed_state() {
    let runtime = start(Arc::new(MemoryStore::new()), config(60_000, 100)).await;
    let counter = runtime.actor::<Counter>("p");
    counter.ask(CountCommand::Add(4)).await.unwrap();
    let error = counter.ask(CountCommand::Panic).await.unwrap_err();
    assert!(matches!(error, RuntimeError::Panicked { .. }), "{error}");
    assert_eq!(counter.ask(CountCommand::Get).await.unwrap(), 4);
    assert_eq!(runtime.snapshot()["counter"].panics, 1);
    // Other actors were never affected.
    let other = runtime.actor::<Counter>("q");
    assert_eq!(other.ask(CountCommand::Add(1)).await.unwrap(), 1);
}

#[tokio::test]
async fn a_failed_turn_discards_its_uncommitted_changes() {
    let runtime = start(Arc::new(MemoryStore::new()), config(60_000, 100)).await;
    let counter = runtime.actor::<Counter>("f");
    counter.ask(CountCommand::Add(1)).await.unwrap();
    assert!(counter.ask(CountCommand::MutateThenFail).await.is_err());
    assert_eq!(counter.ask(CountCommand::Get).await.unwrap(), 1);
}

#[tokio::test]
async fn reminders_fire_and_survive_a_restart() {
    let store: Arc<dyn StateStore> = Arc::new(MemoryStore::new());
    let clock = Arc::new(ManualClock::new(1_000_000));
    let first = Runtime::builder(store.clone())
        .clock(clock.clone())
        .register(Counter)
        .build()
        .await
        .unwrap();
    first
        .actor::<Counter>("r")
        .ask(CountCommand::RemindAt(1_005_000))
        .await
        .unwrap();
    // The node goes away before the reminder is due.
    first.shutdown(Duration::from_secs(1)).await;
    drop(first);

    let second = Runtime::builder(store.clone())
        .clock(clock.clone())
        .register(Counter)
        .build()
        .await
        .unwrap();
    clock.advance_ms(10_000);
    let reminded = wait_until(Duration::from_secs(5), || async {
        let record = store.load(&ActorId::new("counter", "r")).await.unwrap();
        let state: serde_json::Value = serde_json::from_slice(&record.unwrap().state).unwrap();
        state["state"]["reminded"] == 1 && state["reminders"].as_object().unwrap().is_empty()
    })
    .await;
    assert!(reminded, "the reminder fired once on the restarted node");
    assert!(
        store
            .list_reminders(emporium_runtime::shard_of("counter", "r"))
            .await
            .unwrap()
            .is_empty()
    );
    second.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn shutdown_refuses_new_work() {
    let runtime = start(Arc::new(MemoryStore::new()), config(60_000, 100)).await;
    runtime
        .actor::<Counter>("s")
        .ask(CountCommand::Add(1))
        .await
        .unwrap();
    runtime.shutdown(Duration::from_secs(1)).await;
    assert_eq!(active(&runtime), 0);
    let error = runtime
        .actor::<Counter>("s")
        .ask(CountCommand::Get)
        .await
        .unwrap_err();
    assert!(error.is_unavailable());
}

/// Let spawned tasks (stops, sweeps) run.
async fn settle() {
    for _ in 0..50 {
        tokio::task::yield_now().await;
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    for _ in 0..50 {
        tokio::task::yield_now().await;
    }
}

async fn wait_until<F, Fut>(deadline: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = tokio::time::Instant::now();
    while started.elapsed() < deadline {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}
