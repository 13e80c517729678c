//! Memory per idle active actor, measured apart from every cache: a counting global
//! allocator records the live heap bytes of this test binary, which runs one test only (so
//! nothing else allocates meanwhile) on a current-thread runtime with tokio's clock paused
//! (so passivation is driven by the clock, not by sleeping: the figures are deterministic).
//!
//! The kind is small (a `u64` of state) and only read, so the in-memory store holds
//! nothing: what is counted is the runtime's own cost of keeping an actor active — its
//! directory entry, its activation (task, mailbox) and its loaded turn.
//!
//! Target (issue 14): at most 2 KiB per idle active actor, and passivating them all gives
//! the heap back (the directory's maps shrink with it).

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::Arc;
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::Duration;

use emporium_runtime::store::MemoryStore;
use emporium_runtime::{Runtime, RuntimeConfig, RuntimeError, Turn, VirtualActor};

/// Counts the bytes live on the heap (allocated and not yet freed).
struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: forwards to the system allocator unchanged; only counts sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let pointer = unsafe { System.alloc(layout) };
        if !pointer.is_null() {
            LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        }
        pointer
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let pointer = unsafe { System.alloc_zeroed(layout) };
        if !pointer.is_null() {
            LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        }
        pointer
    }

    unsafe fn dealloc(&self, pointer: *mut u8, layout: Layout) {
        unsafe { System.dealloc(pointer, layout) };
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
    }

    unsafe fn realloc(&self, pointer: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let moved = unsafe { System.realloc(pointer, layout, new_size) };
        if !moved.is_null() {
            LIVE.fetch_add(
                new_size as isize - layout.size() as isize,
                Ordering::Relaxed,
            );
        }
        moved
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn live() -> isize {
    LIVE.load(Ordering::Relaxed)
}

/// The smallest useful kind: one counter, read only.
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

const ACTORS: usize = 20_000;
const WARM_UP: usize = 256;
const IDLE: Duration = Duration::from_secs(60);
/// The target.
const MAX_BYTES_PER_IDLE_ACTOR: isize = 2048;
/// What may stay behind per actor once all are passivated (allocator-independent: live
/// bytes, not RSS).
const MAX_BYTES_LEFT_PER_ACTOR: isize = 16;

async fn activate(runtime: &Runtime, prefix: &str, count: usize) {
    for n in 0..count {
        let key = format!("{prefix}-{n}");
        runtime
            .actor::<Tiny>(key)
            .ask(())
            .await
            .expect("a read of a fresh actor answers");
    }
}

/// Let every activation reach its idle point (answered, task parked) or its end.
async fn settle() {
    for _ in 0..64 {
        tokio::task::yield_now().await;
    }
}

/// Passivate everything by letting the idle timeout pass on tokio's paused clock.
async fn passivate_all(runtime: &Runtime) {
    tokio::time::sleep(IDLE * 2).await;
    while runtime.active_actors() > 0 {
        tokio::time::sleep(IDLE / 4).await;
    }
    settle().await;
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn an_idle_actor_costs_at_most_two_kib_and_passivation_gives_it_back() {
    let runtime = Runtime::builder(Arc::new(MemoryStore::new()))
        .config(RuntimeConfig {
            idle_timeout: IDLE,
            max_active_actors: ACTORS * 2,
            ..RuntimeConfig::default()
        })
        .register(Tiny)
        .build()
        .await
        .expect("runtime starts");
    // Warm up, so lazily built statics and the tracing callsites count in the baseline.
    activate(&runtime, "warm", WARM_UP).await;
    passivate_all(&runtime).await;
    let baseline = live();

    activate(&runtime, "idle", ACTORS).await;
    settle().await;
    assert_eq!(runtime.active_actors(), ACTORS as u64);
    let per_actor = (live() - baseline) / ACTORS as isize;
    println!("live heap per idle active actor: {per_actor} B");

    passivate_all(&runtime).await;
    let left_per_actor = (live() - baseline) / ACTORS as isize;
    println!("live heap left per actor after passivation: {left_per_actor} B");

    assert!(
        per_actor <= MAX_BYTES_PER_IDLE_ACTOR,
        "an idle active actor costs {per_actor} B of heap (target {MAX_BYTES_PER_IDLE_ACTOR} B)"
    );
    assert!(
        left_per_actor <= MAX_BYTES_LEFT_PER_ACTOR,
        "{left_per_actor} B per actor stayed on the heap after passivation"
    );
}
