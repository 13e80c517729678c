//! Emporium's virtual-actor runtime, domain-free.
//!
//! Actors are addressed by identity (`kind`, `key`), activated on their first message from the
//! state they last committed, run one message at a time, and passivate when idle. Their
//! state lives behind the [`StateStore`] port. The runtime knows nothing about carts or
//! orders: the domain plugs in through the [`VirtualActor`] trait.

mod identity;
mod placement;
pub mod store;

pub use identity::{ActorId, intern_kind};
pub use placement::{SHARD_COUNT, Shard, shard_of, shard_of_id};
pub use store::{StateStore, StoreError};
