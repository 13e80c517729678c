//! Runtime benchmark without HTTP: activations per second (first message to a fresh key:
//! spawn, load, handle) and committed writes per second, on the in-memory store (the
//! runtime's own cost) and on the embedded store is measured by the node bench.
//!
//! Run: `cargo bench -p emporium-runtime --bench activations`.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use emporium_runtime::store::MemoryStore;
use emporium_runtime::{Runtime, RuntimeConfig, RuntimeError, Turn, VirtualActor};
use serde::{Deserialize, Serialize};

const CALLERS: usize = 64;
const MAX_OPS: usize = 2_000_000;
const WINDOW: Duration = Duration::from_secs(3);

#[derive(Default, Serialize, Deserialize)]
struct Tally {
    count: u64,
}

struct Counter;

impl VirtualActor for Counter {
    const KIND: &'static str = "bench-counter";
    type State = Tally;
    type Command = bool;
    type Reply = u64;

    async fn handle(&self, turn: &mut Turn<Self>, write: bool) -> Result<u64, RuntimeError> {
        if write {
            turn.state_mut().count += 1;
        }
        Ok(turn.state().count)
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let runtime = Runtime::builder(Arc::new(MemoryStore::new()))
        .config(RuntimeConfig {
            max_active_actors: 10_000_000,
            ..RuntimeConfig::default()
        })
        .register(Counter)
        .build()
        .await
        .expect("runtime");
    let activations = measure(&runtime, "activations (fresh key, read)", |n| {
        (format!("fresh-{n}"), false)
    })
    .await;
    let writes = measure(&runtime, "writes (1024 hot keys)", |n| {
        (format!("hot-{}", n % 1024), true)
    })
    .await;
    println!(
        "runtime: activations {activations:.0}/s, committed writes {writes:.0}/s (memory store)"
    );
}

async fn measure(
    runtime: &Runtime,
    name: &str,
    target: impl Fn(usize) -> (String, bool) + Send + Sync + 'static,
) -> f64 {
    let target = Arc::new(target);
    let issued = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let tasks: Vec<_> = (0..CALLERS)
        .map(|_| {
            let (runtime, target, issued) =
                (runtime.clone(), Arc::clone(&target), Arc::clone(&issued));
            tokio::spawn(async move {
                let mut done = 0usize;
                loop {
                    let n = issued.fetch_add(1, Ordering::Relaxed);
                    if n >= MAX_OPS || started.elapsed() >= WINDOW {
                        return done;
                    }
                    let (key, write) = target(n);
                    if runtime.actor::<Counter>(key).ask(write).await.is_ok() {
                        done += 1;
                    }
                }
            })
        })
        .collect();
    let mut done = 0;
    for task in tasks {
        done += task.await.unwrap_or(0);
    }
    let secs = started.elapsed().as_secs_f64();
    let rate = done as f64 / secs;
    println!("runtime: {name}: {done} in {secs:.2} s = {rate:.0}/s");
    rate
}
