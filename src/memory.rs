//! Giving the memory of passivated actors back to the operating system.
//!
//! glibc's malloc keeps what a program frees in its arenas (one per thread that allocated,
//! up to 8 per core) and returns it to the kernel only from the top of each heap. Actors
//! are allocated and freed all over those heaps, so a burst of activations left the node's
//! RSS at its peak long after every actor was passivated (issue 14: 85k carts, RSS still
//! at its peak after all of them had passivated). `malloc_trim(0)` releases every free
//! page of every arena.
//!
//! [`trim_after_passivations`] is the runtime's passivation hook: it counts passivated
//! actors and trims once [`TRIM_AFTER`] went since the last trim. A trim walks every arena
//! under its lock (milliseconds on a large heap), so it runs after a burst, never per
//! actor, and on tokio's blocking pool. Elsewhere than glibc (musl, macOS) it is a no-op.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use emporium_runtime::PassivationHook;

/// Passivations since the last trim that make the next sweep trim.
pub const TRIM_AFTER: usize = 1024;

/// The passivation hook that trims the allocator after every [`TRIM_AFTER`] passivations.
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

/// Give free heap pages back to the kernel; `true` when some were.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn release_free_memory() -> bool {
    // SAFETY: malloc_trim only walks glibc's own arenas under their locks; it takes no
    // pointer and may be called from any thread at any time.
    unsafe { libc::malloc_trim(0) == 1 }
}

/// Give free heap pages back to the kernel: nothing to do outside glibc.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn release_free_memory() -> bool {
    false
}
