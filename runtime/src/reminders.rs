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
//!
//! **Bounded**: the timers hold each reminder once (the latest arming of an actor's
//! reminder wins; superseded heap entries are skipped and compacted away), and forget the
//! reminders of shards this node no longer serves ([`ReminderScheduler::forget`]): their
//! new owner arms them.

use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap, HashMap};
use std::time::Duration;

use tokio::sync::mpsc;

use crate::identity::ActorId;
use crate::placement::{SHARD_COUNT, Shard, shard_of_id};
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

/// What the scheduler is told.
pub(crate) enum Order {
    Arm(Armed),
    /// Drop the timers of these shards (they moved to another node).
    Forget(BTreeSet<Shard>),
}

/// The sending side: arming is a cheap non-blocking send.
pub(crate) struct ReminderScheduler {
    queue: mpsc::UnboundedSender<Order>,
}

impl ReminderScheduler {
    /// Unbounded on purpose: an arm request comes only from a committed write, which the
    /// store already paced, and dropping one would delay a reminder until the next restart.
    pub(crate) fn new() -> (Self, mpsc::UnboundedReceiver<Order>) {
        let (queue, receiver) = mpsc::unbounded_channel();
        (Self { queue }, receiver)
    }

    pub(crate) fn arm(&self, actor: ActorId, name: String, due_at_ms: u64) {
        // A closed queue means the runtime is gone; nothing is left to remind.
        let _ = self.queue.send(Order::Arm(Armed {
            due_at_ms,
            actor,
            name,
        }));
    }

    /// Forget the timers of `shards`: this node no longer serves them.
    pub(crate) fn forget(&self, shards: BTreeSet<Shard>) {
        let _ = self.queue.send(Order::Forget(shards));
    }
}

/// The armed timers: a heap by due time, and the latest due time of each reminder (the
/// heap entries that disagree with it are superseded, skipped when they come up).
#[derive(Default)]
struct Timers {
    heap: BinaryHeap<Reverse<Armed>>,
    latest: HashMap<(ActorId, String), u64>,
}

impl Timers {
    fn arm(&mut self, armed: Armed) {
        let key = (armed.actor.clone(), armed.name.clone());
        if self.latest.insert(key, armed.due_at_ms) == Some(armed.due_at_ms) {
            return; // already armed for that time
        }
        self.heap.push(Reverse(armed));
        if self.heap.len() > 2 * self.latest.len() + 64 {
            self.compact();
        }
    }

    /// The next reminder due at `now_ms`, if any.
    fn pop_due(&mut self, now_ms: u64) -> Option<Armed> {
        while self
            .heap
            .peek()
            .is_some_and(|Reverse(next)| next.due_at_ms <= now_ms)
        {
            let Reverse(due) = self.heap.pop()?;
            let key = (due.actor.clone(), due.name.clone());
            if self.latest.get(&key) == Some(&due.due_at_ms) {
                self.latest.remove(&key);
                return Some(due);
            }
        }
        None
    }

    fn next_due_ms(&self) -> Option<u64> {
        self.heap.peek().map(|Reverse(next)| next.due_at_ms)
    }

    fn forget(&mut self, shards: &BTreeSet<Shard>) {
        self.latest
            .retain(|(actor, _), _| !shards.contains(&shard_of_id(actor)));
        self.compact();
    }

    fn compact(&mut self) {
        let latest = &self.latest;
        self.heap.retain(|Reverse(armed)| {
            latest.get(&(armed.actor.clone(), armed.name.clone())) == Some(&armed.due_at_ms)
        });
    }

    fn len(&self) -> usize {
        self.heap.len()
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

pub(crate) async fn run(runtime: WeakRuntime, mut queue: mpsc::UnboundedReceiver<Order>) {
    let mut timers = Timers::default();
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
        while let Some(due) = timers.pop_due(now_ms) {
            match runtime.erased_host(due.actor.kind) {
                Some(host) => host.deliver_reminder(&runtime, &due.actor.key, due.name),
                None => tracing::warn!(actor = %due.actor, "reminder for an unregistered kind"),
            }
        }
        let sleep_ms = timers
            .next_due_ms()
            .map_or(MAX_SLEEP_MS, |due_at_ms| due_at_ms.saturating_sub(now_ms))
            .min(MAX_SLEEP_MS);
        metrics::gauge!("emporium_reminder_timers").set(timers.len() as f64);
        drop(runtime);
        tokio::select! {
            order = queue.recv() => match order {
                Some(Order::Arm(armed)) => timers.arm(armed),
                Some(Order::Forget(shards)) => timers.forget(&shards),
                None => return,
            },
            _ = tokio::time::sleep(Duration::from_millis(sleep_ms)) => {}
            _ = stopping.changed() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn armed(key: &str, name: &str, due_at_ms: u64) -> Armed {
        Armed {
            due_at_ms,
            actor: ActorId::new("cart", key),
            name: name.to_owned(),
        }
    }

    #[test]
    fn each_reminder_is_held_once_and_the_latest_arming_wins() {
        let mut timers = Timers::default();
        for _ in 0..1_000 {
            timers.arm(armed("c-1", "expire", 50));
        }
        timers.arm(armed("c-1", "expire", 70)); // moved later
        assert!(timers.len() <= 2);
        assert_eq!(
            timers.pop_due(60),
            None,
            "the superseded time does not fire"
        );
        assert_eq!(timers.pop_due(70), Some(armed("c-1", "expire", 70)));
        assert_eq!(timers.pop_due(u64::MAX), None, "fired once");
        for due in 0..1_000 {
            timers.arm(armed("c-2", "expire", due));
        }
        assert!(
            timers.len() <= 2 + 64 + 1,
            "superseded entries are compacted"
        );
    }

    #[test]
    fn the_reminders_of_shards_that_moved_away_are_forgotten() {
        let mut timers = Timers::default();
        timers.arm(armed("c-1", "expire", 10));
        timers.arm(armed("c-2", "expire", 10));
        let moved = BTreeSet::from([shard_of_id(&ActorId::new("cart", "c-1"))]);
        timers.forget(&moved);
        let fired: Vec<_> = std::iter::from_fn(|| timers.pop_due(10)).collect();
        assert_eq!(fired, vec![armed("c-2", "expire", 10)]);
        assert_eq!(timers.len(), 0);
    }
}
