//! Passivation: the background sweep that deactivates idle actors and, above the cap on
//! active actors, the least recently used ones.
//!
//! The sweep runs every quarter of the idle timeout (between 10 ms and 30 s), and at once
//! when an activation pushes the node over its cap. A candidate is passivated only if it is
//! still unchanged and has nothing in flight when its stripe lock is taken (see
//! [`crate::directory`]), so passivation never races a message.

use std::time::Duration;

use crate::directory::IdleEntry;
use crate::lifecycle::DeactivationReason;
use crate::runtime::{Runtime, WeakRuntime};

const SWEEP_MIN: Duration = Duration::from_millis(10);
const SWEEP_MAX: Duration = Duration::from_secs(30);

pub(crate) async fn run(runtime: WeakRuntime) {
    let Some(first) = runtime.upgrade() else {
        return;
    };
    let interval = (first.config().idle_timeout / 4).clamp(SWEEP_MIN, SWEEP_MAX);
    let mut stopping = first.stopping();
    drop(first);
    loop {
        let Some(runtime) = runtime.upgrade() else {
            return;
        };
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = runtime.capacity_notify().notified() => {}
            _ = stopping.changed() => return,
        }
        sweep(&runtime);
    }
}

/// One sweep: idle actors first, then the LRU ones above the cap. The runtime's
/// passivation hook hears how many went.
pub(crate) fn sweep(runtime: &Runtime) {
    let now_ms = runtime.clock().monotonic_ms();
    let idle_ms = runtime.config().idle_timeout.as_millis() as u64;
    let idle_before_ms = now_ms.saturating_sub(idle_ms);
    let mut passivated = 0;
    for host in runtime.hosts() {
        for candidate in host.idle_entries(idle_before_ms) {
            if host.passivate(&candidate, DeactivationReason::Idle) {
                passivated += 1;
            }
        }
    }
    passivated += evict_over_capacity(runtime);
    if passivated > 0
        && let Some(hook) = runtime.passivation_hook()
    {
        hook(passivated);
    }
}

/// Passivate the least recently used idle actors above the cap; returns how many.
fn evict_over_capacity(runtime: &Runtime) -> usize {
    let cap = runtime.config().max_active_actors as i64;
    let excess = runtime.lifecycle().total_active() - cap;
    if excess <= 0 {
        return 0;
    }
    let mut candidates: Vec<(usize, IdleEntry)> = runtime
        .hosts()
        .enumerate()
        .flat_map(|(index, host)| {
            host.idle_entries(u64::MAX)
                .into_iter()
                .map(move |entry| (index, entry))
        })
        .collect();
    candidates.sort_by_key(|(_, entry)| entry.last_used_ms);
    let hosts: Vec<_> = runtime.hosts().collect();
    let mut evicted = 0;
    for (index, candidate) in &candidates {
        if evicted >= excess {
            break;
        }
        if hosts[*index].passivate(candidate, DeactivationReason::Capacity) {
            evicted += 1;
        }
    }
    evicted as usize
}
