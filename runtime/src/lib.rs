//! Emporium's virtual-actor runtime, domain-free.
//!
//! Actors are addressed by identity (`kind`, `key`), activated on their first message from the
//! state they last committed, run one message at a time, and passivate when idle. Their
//! state lives behind the [`StateStore`] port; domain events leave through the [`EventBus`]
//! port ([`events`]). The runtime knows nothing about carts or orders: the domain plugs in
//! through the [`VirtualActor`] trait.
//!
//! Start at [`Runtime::builder`]; see `ARCHITECTURE.md` at the repository root for the map.

// Without `cluster` the pieces only the cluster module calls are unused; the default build
// (with it) is the one checked for dead code.
#![cfg_attr(not(feature = "cluster"), allow(dead_code))]

mod activation;
mod actor;
mod clock;
#[cfg(feature = "cluster")]
pub mod cluster;
mod directory;
mod error;
pub mod events;
mod identity;
mod journal;
mod leases;
mod lifecycle;
mod majority;
mod membership;
mod operations;
mod outcome;
mod passivation;
mod placement;
mod rates;
mod reminders;
mod routing;
mod runtime;
mod status;
pub mod store;
mod trace;
#[cfg(feature = "cluster")]
mod transport;

pub use actor::{Turn, VirtualActor};
pub use clock::{Clock, ManualClock, SharedClock, SystemClock};
pub use error::{ErrorClass, RuntimeError};
pub use events::{EventBus, EventBusError, EventEnvelope, MemoryEventBus, PublishError};
pub use identity::{ActorId, intern_kind};
pub use journal::ClusterEventFeed;
pub use lifecycle::{DeactivationReason, KindSnapshot};
pub use operations::OperationError;
pub use placement::{Rendezvous, SHARD_COUNT, Shard, owner_of, shard_of, shard_of_id};
pub use rates::{NodeRates, Rates};
pub use runtime::{
    ActorHandle, ForwardedCallError, PassivationHook, Runtime, RuntimeBuilder, RuntimeConfig,
};
pub use status::{
    ActorLocation, ClusterChange, ClusterEvent, ClusterStatus, DrainOutcome, NodeLoad, NodeStatus,
    PassivateOutcome, RATE_WINDOW_SECONDS,
};
pub use store::{StateStore, StoreError};
pub use trace::{NoTrace, TraceContext, TraceHeaders};

/// Lock `mutex`, ignoring poisoning: the runtime's critical sections never panic midway, so
/// a poisoned value is still consistent.
pub(crate) fn lock<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
