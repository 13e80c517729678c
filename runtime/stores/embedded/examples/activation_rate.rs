//! Activations per second from the embedded store: the first message to each of N actors
//! whose record is stored (spawn, load, handle), 64 callers, then the same for N keys with
//! no record. A measuring tool, not a test.
//!
//! Run: `cargo run --release -p emporium-store-embedded --example activation_rate [N]`.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use bytes::Bytes;
use emporium_runtime::store::StateWrite;
use emporium_runtime::{
    ActorId, Runtime, RuntimeConfig, RuntimeError, StateStore, Turn, VirtualActor,
};
use emporium_store_embedded::EmbeddedStore;

const CALLERS: usize = 64;

struct Tiny;

impl VirtualActor for Tiny {
    const KIND: &'static str = "tiny";
    type State = u64;
    type Command = ();
    type Reply = u64;

    fn is_read(_: &()) -> bool {
        true
    }

    async fn handle(&self, turn: &mut Turn<Self>, _: ()) -> Result<u64, RuntimeError> {
        Ok(*turn.state())
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let count: usize = std::env::args()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(100_000);
    let dir = tempfile::tempdir().expect("temp dir");
    let store: Arc<dyn StateStore> =
        Arc::new(EmbeddedStore::open(&dir.path().join("store.redb")).expect("store"));
    prefill(&store, count).await;
    let runtime = Runtime::builder(Arc::clone(&store))
        .config(RuntimeConfig {
            max_active_actors: 10_000_000,
            ..RuntimeConfig::default()
        })
        .register(Tiny)
        .build()
        .await
        .expect("runtime");
    let stored = measure(&runtime, "stored", count).await;
    let absent = measure(&runtime, "absent", count).await;
    println!("activations/s from the embedded store: stored {stored:.0}/s, absent {absent:.0}/s");
}

async fn prefill(store: &Arc<dyn StateStore>, count: usize) {
    let next = Arc::new(AtomicUsize::new(0));
    let tasks: Vec<_> = (0..CALLERS)
        .map(|_| {
            let (store, next) = (Arc::clone(store), Arc::clone(&next));
            tokio::spawn(async move {
                loop {
                    let n = next.fetch_add(1, Ordering::Relaxed);
                    if n >= count {
                        return;
                    }
                    let write = StateWrite {
                        expected_version: 0,
                        state: Bytes::from_static(b"{\"state\":7}"),
                        outbox: Vec::new(),
                        reminders: Vec::new(),
                    };
                    store
                        .save(&ActorId::new("tiny", format!("stored-{n}")), write)
                        .await
                        .expect("save");
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("prefill task");
    }
}

async fn measure(runtime: &Runtime, prefix: &'static str, count: usize) -> f64 {
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let tasks: Vec<_> = (0..CALLERS)
        .map(|_| {
            let (runtime, next) = (runtime.clone(), Arc::clone(&next));
            tokio::spawn(async move {
                loop {
                    let n = next.fetch_add(1, Ordering::Relaxed);
                    if n >= count {
                        return;
                    }
                    let answer = runtime.actor::<Tiny>(format!("{prefix}-{n}")).ask(()).await;
                    assert!(answer.is_ok(), "{answer:?}");
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("caller");
    }
    let secs = started.elapsed().as_secs_f64();
    let rate = count as f64 / secs;
    println!("{prefix}: {count} activations in {secs:.2} s = {rate:.0}/s");
    rate
}
