//! The node's allocator, and giving the memory of passivated actors back to the OS.
//!
//! Every binary that links this crate (the `emporium` node, the benchmark harness, the
//! tests) allocates with mimalloc. A node's hot paths allocate and free small, short-lived
//! objects from every worker thread (request heads, JSON bodies, futures, messages):
//! glibc's malloc spent about 17% of a node's CPU on a product read (perf, release build);
//! mimalloc's per-thread free lists made the same read 12% faster (wrk, median of runs on
//! this machine) and add-to-cart about 5% faster, with the same resident memory per idle
//! actor.
//!
//! An allocator keeps what a program frees for its next allocations. After a burst of
//! activations that is most of the node's peak (issue 14: 85k carts, RSS still at its peak
//! after all of them had passivated). [`trim_after_passivations`] is the runtime's
//! passivation hook: it counts passivated actors and, once [`TRIM_AFTER`] went since the
//! last time, asks the allocator to return its free pages ([`release_free_memory`]). A
//! collection walks the heap (milliseconds on a large one), so it runs after a burst, never
//! per actor, and on tokio's blocking pool.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use emporium_runtime::PassivationHook;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Passivations since the last collection that make the next sweep collect.
pub const TRIM_AFTER: usize = 1024;

/// The passivation hook that returns free memory after every [`TRIM_AFTER`] passivations.
pub fn trim_after_passivations() -> PassivationHook {
    let since_trim = AtomicUsize::new(0);
    Arc::new(move |passivated| {
        let total = since_trim.fetch_add(passivated, Ordering::Relaxed) + passivated;
        if total >= TRIM_AFTER {
            since_trim.store(0, Ordering::Relaxed);
            tokio::task::spawn_blocking(release_free_memory);
        }
    })
}

/// Give the allocator's free pages back to the kernel.
pub fn release_free_memory() {
    // SAFETY: mi_collect takes no pointer; it frees only pages that hold no live block,
    // under mimalloc's own synchronisation, and may be called from any thread.
    unsafe { libmimalloc_sys::mi_collect(true) }
}
