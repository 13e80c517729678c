//! The local directory of one actor kind: which instances are active on this node.
//!
//! The directory is striped: a key hashes to one of [`STRIPES`] small maps, each behind its own
//! mutex, held only for a lookup, an insert or a removal (never across an await). That keeps
//! the hot path free of a global lock.
//!
//! **Memory**: an entry is the key and one reference to its [`Activation`] (the cell that
//! holds the loaded state). A stripe's map shrinks when it is mostly empty after removals,
//! so passivating a burst of actors gives their slots back (a `HashMap` never shrinks by
//! itself; issue 14).
//!
//! **Invariants**
//! - At most one activation per key is in the directory at a time; a new one is spawned only
//!   under the stripe lock, after the old one was removed.
//! - An entry is removed for passivation only under the stripe lock and only while nothing is
//!   in flight to it, so no message is ever sent to an activation that is stopping.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use crate::activation::{Activation, ActivationMsg};
use crate::actor::VirtualActor;
use crate::identity::ActorId;
use crate::lifecycle::DeactivationReason;
use crate::runtime::Runtime;

const STRIPES: usize = 64;
/// A stripe's map shrinks when fewer than a quarter of its slots are used (and it has
/// more than this many): to twice its entries, so shrinking is amortised over removals.
const SHRINK_ABOVE: usize = 64;

type Entry<A> = Arc<Activation<A>>;

/// A passivation candidate found by a sweep.
pub(crate) struct IdleEntry {
    pub(crate) key: String,
    pub(crate) generation: u64,
    pub(crate) last_used_ms: u64,
}

/// What asking for one actor's passivation did.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum PassivateResult {
    Passivated,
    Inactive,
    Busy,
}

impl PassivateResult {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Passivated => "passivated",
            Self::Inactive => "inactive",
            Self::Busy => "busy",
        }
    }
}

/// One stripe of the directory: key to activation.
type Stripe<A> = Mutex<HashMap<String, Entry<A>>>;

/// Hosts every local activation of kind `A`.
pub(crate) struct KindHost<A: VirtualActor> {
    pub(crate) actor: A,
    stripes: Box<[Stripe<A>]>,
    hasher: RandomState,
    next_generation: AtomicU64,
}

impl<A: VirtualActor> KindHost<A> {
    pub(crate) fn new(actor: A) -> Self {
        Self {
            actor,
            stripes: (0..STRIPES).map(|_| Mutex::new(HashMap::new())).collect(),
            hasher: RandomState::new(),
            next_generation: AtomicU64::new(1),
        }
    }

    fn stripe(&self, key: &str) -> MutexGuard<'_, HashMap<String, Entry<A>>> {
        let index = (self.hasher.hash_one(key) as usize) % STRIPES;
        // Critical sections below never panic midway, so a poisoned map is still consistent.
        self.stripes[index]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Deliver `message` to the activation of `key`, activating it if needed. Fire and
    /// forget: replies travel in the message. A message that cannot be delivered is dropped,
    /// which closes its reply channel, and the caller sees that as unreachable.
    pub(crate) fn dispatch(
        self: &Arc<Self>,
        runtime: &Runtime,
        key: &str,
        message: ActivationMsg<A>,
    ) {
        let now_ms = runtime.clock().monotonic_ms();
        let mut message = message;
        // Two attempts: the second follows the removal of an activation found dead.
        for _ in 0..2 {
            let mut stripe = self.stripe(key);
            let entry = match stripe.get(key) {
                Some(entry) => entry,
                None => {
                    let entry = self.activate(runtime, key, now_ms);
                    stripe.entry(key.to_owned()).or_insert(entry)
                }
            };
            entry.inflight.fetch_add(1, Ordering::AcqRel);
            entry.last_used_ms.store(now_ms, Ordering::Release);
            let delivered = entry.deliver(message);
            if delivered.is_err() {
                entry.inflight.fetch_sub(1, Ordering::AcqRel);
            }
            match delivered {
                Ok(()) => return,
                Err(returned) => {
                    // The activation ended outside our control: forget it and start afresh.
                    remove(&mut stripe, key);
                    message = returned;
                }
            }
        }
    }

    /// A fresh activation (its state loads with the first message; its runner starts with
    /// it).
    fn activate(self: &Arc<Self>, runtime: &Runtime, key: &str, now_ms: u64) -> Entry<A> {
        let generation = self.next_generation.fetch_add(1, Ordering::Relaxed);
        Arc::new(Activation::new(
            ActorId::new(A::KIND, key),
            Arc::clone(self),
            runtime.clone(),
            generation,
            now_ms,
        ))
    }

    /// Remove `key` from the directory if it still holds activation `generation`; returns
    /// whether it did.
    pub(crate) fn remove_entry(&self, key: &str, generation: u64) -> bool {
        let mut stripe = self.stripe(key);
        let held = stripe
            .get(key)
            .is_some_and(|entry| entry.generation == generation);
        if held {
            remove(&mut stripe, key);
        }
        held
    }

    /// Entries with nothing in flight, used before `idle_before_ms` (all of them when
    /// `idle_before_ms` is `u64::MAX`).
    pub(crate) fn idle_entries(&self, idle_before_ms: u64) -> Vec<IdleEntry> {
        let mut idle = Vec::new();
        for stripe in self.stripes.iter() {
            let stripe = stripe.lock().unwrap_or_else(PoisonError::into_inner);
            for (key, entry) in stripe.iter() {
                let last_used_ms = entry.last_used_ms.load(Ordering::Acquire);
                if entry.inflight.load(Ordering::Acquire) == 0 && last_used_ms < idle_before_ms {
                    idle.push(IdleEntry {
                        key: key.clone(),
                        generation: entry.generation,
                        last_used_ms,
                    });
                }
            }
        }
        idle
    }

    /// Passivate one activation if it is still idle and unchanged since it was found.
    /// Returns whether it was passivated.
    pub(crate) fn passivate(&self, candidate: &IdleEntry, reason: DeactivationReason) -> bool {
        let mut stripe = self.stripe(&candidate.key);
        let still_idle = stripe.get(&candidate.key).is_some_and(|entry| {
            entry.generation == candidate.generation
                && entry.inflight.load(Ordering::Acquire) == 0
                && entry.last_used_ms.load(Ordering::Acquire) == candidate.last_used_ms
        });
        if !still_idle {
            return false;
        }
        match remove(&mut stripe, &candidate.key) {
            Some(entry) => {
                entry.deactivated(reason);
                true
            }
            None => false,
        }
    }

    /// Passivate `key`'s activation on an operator's request, unless it is running a
    /// message (busy activations are left alone: passivating one would retire it midway).
    pub(crate) fn passivate_key(&self, key: &str) -> PassivateResult {
        let mut stripe = self.stripe(key);
        let Some(entry) = stripe.get(key) else {
            return PassivateResult::Inactive;
        };
        if entry.inflight.load(Ordering::Acquire) != 0 {
            return PassivateResult::Busy;
        }
        match remove(&mut stripe, key) {
            Some(entry) => {
                entry.deactivated(DeactivationReason::Requested);
                PassivateResult::Passivated
            }
            None => PassivateResult::Inactive,
        }
    }

    /// Whether `key` has an activation on this node.
    pub(crate) fn is_active(&self, key: &str) -> bool {
        self.stripe(key).contains_key(key)
    }
}

/// Remove `key` from `stripe`, shrinking the map when it is mostly empty (a burst of
/// activations must not pin its peak's slots once passivated).
fn remove<A: VirtualActor>(stripe: &mut HashMap<String, Entry<A>>, key: &str) -> Option<Entry<A>> {
    let removed = stripe.remove(key);
    let capacity = stripe.capacity();
    if capacity > SHRINK_ABOVE && stripe.len() * 4 < capacity {
        stripe.shrink_to(stripe.len() * 2);
    }
    removed
}
