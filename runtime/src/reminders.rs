//! Durable reminders: timers that survive restarts and passivation.
//!
//! A reminder is part of its actor's stored record (the source of truth) and of the store's
//! reminder index, written together in one commit (see [`crate::actor::Turn::set_reminder`]).
//! This scheduler keeps the in-memory timers: at start it re-arms every stored reminder of
//! the shards this node owns, and each commit arms the reminders it set. When one is due it
//! is delivered to its actor as a message, activating the actor if needed; the actor checks
//! its own record, so a timer for a reminder since moved or cancelled does nothing.
//!
//! Wall time comes from the runtime's clock; the scheduler looks at it at least every
//! [`MAX_SLEEP_MS`], so a test clock that jumps is noticed within that.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Duration;

use tokio::sync::mpsc;

use crate::identity::ActorId;
use crate::placement::SHARD_COUNT;
use crate::runtime::WeakRuntime;
use crate::store::{Reminder, StateStore, StoreError};

/// Delay before a reminder whose delivery failed is tried again.
pub(crate) const RETRY_DELAY_MS: u64 = 5_000;
const MAX_SLEEP_MS: u64 = 1_000;

/// One armed timer, ordered by due time.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Armed {
    due_at_ms: u64,
    actor: ActorId,
    name: String,
}

/// The sending side: arming is a cheap non-blocking send.
pub(crate) struct ReminderScheduler {
    queue: mpsc::UnboundedSender<Armed>,
}

impl ReminderScheduler {
    /// Unbounded on purpose: an arm request comes only from a committed write, which the
    /// store already paced, and dropping one would delay a reminder until the next restart.
    pub(crate) fn new() -> (Self, mpsc::UnboundedReceiver<Armed>) {
        let (queue, receiver) = mpsc::unbounded_channel();
        (Self { queue }, receiver)
    }

    pub(crate) fn arm(&self, actor: ActorId, name: String, due_at_ms: u64) {
        // A closed queue means the runtime is gone; nothing is left to remind.
        let _ = self.queue.send(Armed {
            due_at_ms,
            actor,
            name,
        });
    }
}

/// Every stored reminder of every shard.
pub(crate) async fn load_all(store: &dyn StateStore) -> Result<Vec<Reminder>, StoreError> {
    let mut all = Vec::new();
    for shard in 0..SHARD_COUNT {
        all.extend(store.list_reminders(shard).await?);
    }
    Ok(all)
}

pub(crate) async fn run(runtime: WeakRuntime, mut queue: mpsc::UnboundedReceiver<Armed>) {
    let mut timers: BinaryHeap<Reverse<Armed>> = BinaryHeap::new();
    let Some(first) = runtime.upgrade() else {
        return;
    };
    let mut stopping = first.stopping();
    drop(first);
    loop {
        let Some(runtime) = runtime.upgrade() else {
            return;
        };
        let now_ms = runtime.clock().now_ms();
        while timers
            .peek()
            .is_some_and(|Reverse(next)| next.due_at_ms <= now_ms)
        {
            let Some(Reverse(due)) = timers.pop() else {
                break;
            };
            match runtime.erased_host(due.actor.kind) {
                Some(host) => host.deliver_reminder(&runtime, &due.actor.key, due.name),
                None => tracing::warn!(actor = %due.actor, "reminder for an unregistered kind"),
            }
        }
        let sleep_ms = timers
            .peek()
            .map_or(MAX_SLEEP_MS, |Reverse(next)| next.due_at_ms - now_ms)
            .min(MAX_SLEEP_MS);
        drop(runtime);
        tokio::select! {
            armed = queue.recv() => match armed {
                Some(armed) => timers.push(Reverse(armed)),
                None => return,
            },
            _ = tokio::time::sleep(Duration::from_millis(sleep_ms)) => {}
            _ = stopping.changed() => return,
        }
    }
}
