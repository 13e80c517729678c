//! The `StateStore` port: where actor state, outbox entries, reminders, cluster membership
//! and shard leases persist.
//!
//! Every adapter (the in-memory twin, the embedded disk store, PostgreSQL, ScyllaDB) honours
//! the contract written on each method below and passes the one conformance suite in
//! [`conformance`] (feature `conformance`).
//!
//! # The data model
//! - **Actor records**, keyed by [`ActorId`]: opaque state bytes plus a version. Version `0`
//!   means "absent"; the first successful save makes it `1`, and every save adds one.
//! - **Outbox entries** belong to one actor and are written in the *same atomic write* as its
//!   state ([`StateWrite::outbox`]). A relay reads them in commit order and deletes them once
//!   published; the relay of a shard's owner reads only that shard's entries
//!   ([`StateStore::outbox_pending_in`]).
//! - **Reminders** belong to one actor, are changed in the same atomic write as its state
//!   ([`StateWrite::reminders`]) and are listed by shard, so the owner of a shard can re-arm
//!   them after a restart or a failover.
//! - **Members** and **leases** serve the cluster: a member row is a node's heartbeat, a lease
//!   row says which node owns a shard under which epoch. Member rows of nodes long gone are
//!   removed by the survivors (conditionally on the incarnation, see
//!   [`StateStore::remove_member`]); leases are never deleted.
//!
//! # Why compare-and-set everywhere
//! Correctness of single activation comes from the store, not from timing: a stale owner (a
//! paused process, a partitioned node) still holds the version it loaded, so its save fails
//! with [`StoreError::Conflict`] and it deactivates instead of overwriting newer state.

mod counting;
mod memory;

#[cfg(feature = "conformance")]
pub mod conformance;

pub use counting::{CountingStore, Counts, WriteCounts};
pub use memory::MemoryStore;

use async_trait::async_trait;
use bytes::Bytes;

use crate::identity::ActorId;
use crate::placement::Shard;

/// An actor's persisted state and the version it was saved under (always `>= 1`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Versioned {
    pub version: u64,
    pub state: Bytes,
}

/// One compare-and-set write of an actor: its new state plus the outbox entries and reminder
/// changes that must commit atomically with it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StateWrite {
    /// The version the writer loaded; `0` when it found no record. The write applies only if
    /// the stored version still equals it.
    pub expected_version: u64,
    pub state: Bytes,
    /// Events raised by this turn, published later by the outbox relay.
    pub outbox: Vec<OutboxEntry>,
    /// Reminders to set (replacing one of the same name) or to cancel.
    pub reminders: Vec<ReminderChange>,
}

/// An event waiting in the outbox of one actor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutboxEntry {
    /// Globally unique and stable: the relay publishes with it as the deduplication id.
    pub event_id: String,
    /// Where the event goes, e.g. `emporium.orders.placed`.
    pub topic: String,
    pub payload: Bytes,
}

/// An outbox entry as read back by the relay, with the actor that raised it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PendingEvent {
    pub actor: ActorId,
    pub entry: OutboxEntry,
}

/// A change to one named reminder of the written actor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReminderChange {
    /// Create or replace the reminder `name`, due at `due_at_ms` (Unix milliseconds).
    Set { name: String, due_at_ms: u64 },
    /// Remove the reminder `name`; removing an absent reminder is not an error.
    Cancel { name: String },
}

/// A durable reminder as listed for its shard.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reminder {
    pub actor: ActorId,
    pub name: String,
    pub due_at_ms: u64,
}

/// A node's membership row. Written unconditionally by its own node (the heartbeat).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberRecord {
    pub node_id: String,
    /// Grows each time the node process starts: tells a restarted node from its old self.
    pub incarnation: u64,
    /// Where peers reach the node (cluster transport address).
    pub cluster_addr: String,
    /// Where clients reach the node (HTTP edge address).
    pub http_addr: String,
    pub status: MemberStatus,
    pub heartbeat_ms: u64,
}

/// The lifecycle of a member as its own node reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MemberStatus {
    Joining,
    Up,
    Leaving,
    Down,
}

impl MemberStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Joining => "joining",
            Self::Up => "up",
            Self::Leaving => "leaving",
            Self::Down => "down",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "joining" => Self::Joining,
            "up" => Self::Up,
            "leaving" => Self::Leaving,
            "down" => Self::Down,
            _ => return None,
        })
    }
}

/// Who owns a shard, under which epoch. Epochs only grow; each change of owner adds one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lease {
    pub shard: Shard,
    pub owner: String,
    pub epoch: u64,
}

/// Why a store operation failed. Callers decide with the predicates, not by matching.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The compare-and-set condition did not hold: someone else wrote first.
    #[error("version conflict on {what}: expected {expected}, found {found}")]
    Conflict {
        what: String,
        expected: u64,
        found: u64,
    },
    /// The store could not be reached or did not answer in time, and the operation was
    /// **not applied** (a read, or a write that provably never reached its commit point).
    /// Safe to retry.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// A write reached its commit point but no verdict came back (a commit past its
    /// deadline, a lost acknowledgement, a CQL write timeout): it **may or may not have been
    /// applied**. Never retried blindly; the caller must reload to find out.
    #[error("store outcome unknown: {0}")]
    OutcomeUnknown(String),
    /// The value is larger than this adapter accepts.
    #[error("value too large: {size} bytes, limit {limit}")]
    TooLarge { size: usize, limit: usize },
    /// Anything else: a bug, a corrupt file, a schema mismatch.
    #[error("store failure: {0}")]
    Other(String),
}

impl StoreError {
    /// A compare-and-set lost: the caller holds a stale version and must reload.
    pub fn is_conflict(&self) -> bool {
        matches!(self, Self::Conflict { .. })
    }

    /// Transient: the store is down or slow ([`StoreError::Unavailable`] or
    /// [`StoreError::OutcomeUnknown`]). Whether a failed write may have applied is told by
    /// [`StoreError::is_outcome_unknown`].
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Self::Unavailable(_) | Self::OutcomeUnknown(_))
    }

    /// The write may have been applied although it failed: reload before deciding anything.
    pub fn is_outcome_unknown(&self) -> bool {
        matches!(self, Self::OutcomeUnknown(_))
    }
}

/// The port. Every method is cancel-safe in the sense that dropping its future never leaves a
/// half-applied write visible: a write either applied whole or not at all.
#[async_trait]
pub trait StateStore: Send + Sync + 'static {
    /// The short name of the adapter, for logs and metrics (`embedded`, `postgres`, …).
    fn adapter(&self) -> &'static str;

    /// Load an actor's record, `None` when it was never saved or has been deleted.
    async fn load(&self, id: &ActorId) -> Result<Option<Versioned>, StoreError>;

    /// Compare-and-set: apply `write` only if the stored version equals
    /// `write.expected_version` (`0`: no record exists). On success the record holds
    /// `write.state` under version `expected_version + 1`, which is returned, and the outbox
    /// entries and reminder changes are applied in the same atomic step. Otherwise nothing is
    /// applied and the error is [`StoreError::Conflict`].
    ///
    /// Durability: `Ok` means the write survives a crash of the process (and, for a networked
    /// store, is acknowledged at the configured consistency level).
    ///
    /// Outcome: `Conflict` and `Unavailable` promise that nothing was applied; a failure
    /// after the write may have reached its commit point is [`StoreError::OutcomeUnknown`].
    /// The runtime turns these into the answers clients get (retry / `504`), so an adapter
    /// that cannot tell must say unknown, never unavailable.
    async fn save(&self, id: &ActorId, write: StateWrite) -> Result<u64, StoreError>;

    /// Compare-and-set delete of the record, its reminders and its outbox entries: applies
    /// only if the stored version equals `expected_version`. Deleting an absent record with
    /// `expected_version == 0` succeeds.
    async fn delete(&self, id: &ActorId, expected_version: u64) -> Result<(), StoreError>;

    /// Keys of `kind` in ascending byte order, strictly after `after` when given, at most
    /// `limit` of them. Page through all keys by passing the last key of the previous page.
    async fn list_keys(
        &self,
        kind: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<String>, StoreError>;

    /// Up to `limit` outbox entries not yet acknowledged, oldest commit first within one
    /// actor (no order is promised across actors).
    async fn outbox_pending(&self, limit: usize) -> Result<Vec<PendingEvent>, StoreError>;

    /// Up to `limit` outbox entries of actors in `shard` (see
    /// [`shard_of_id`](crate::placement::shard_of_id)) not yet acknowledged, oldest commit
    /// first within one actor (no order is promised across actors). Entries of one actor are
    /// never skipped over: if an actor's entry is returned, every older entry of that actor
    /// is returned before it in the same result (so a relay that publishes the first entry
    /// per actor keeps per-actor order).
    ///
    /// For the relay on the node that owns `shard`: every adapter answers it from an index
    /// by shard, never by scanning the other shards' entries (each adapter's module docs
    /// give the cost).
    async fn outbox_pending_in(
        &self,
        shard: Shard,
        limit: usize,
    ) -> Result<Vec<PendingEvent>, StoreError>;

    /// Remove published entries. Acknowledging an unknown id is not an error (idempotent).
    async fn outbox_ack(&self, events: &[PendingEvent]) -> Result<(), StoreError>;

    /// Every reminder of actors in `shard`.
    async fn list_reminders(&self, shard: Shard) -> Result<Vec<Reminder>, StoreError>;

    /// Insert or replace a member row. Deliberately unconditional: only the node itself
    /// writes its own row, and a heartbeat must never fail on a race.
    async fn upsert_member(&self, member: &MemberRecord) -> Result<(), StoreError>;

    /// Every member row, in no particular order.
    async fn list_members(&self) -> Result<Vec<MemberRecord>, StoreError>;

    /// Remove `node_id`'s member row **only if it still holds `incarnation`**, in one
    /// conditional step (never a read then a delete). Returns whether a row was removed.
    ///
    /// - A row holding another incarnation (a newer life that restarted meanwhile, or any
    ///   other) is left as it is: `Ok(false)`. This is why the removal is conditional while
    ///   [`upsert_member`](Self::upsert_member) is not: a clean-up that races a restart must
    ///   never erase the new life's heartbeat.
    /// - No row for `node_id`: `Ok(false)`, not an error (another node removed it first).
    /// - After `Ok(true)`, no listing shows the row, until its node writes it again.
    ///
    /// Outcome, as for every write: `Unavailable` promises that nothing was removed;
    /// `OutcomeUnknown` says the removal may have applied. Either way the caller learns the
    /// truth from its next [`list_members`](Self::list_members); removing again is harmless.
    async fn remove_member(&self, node_id: &str, incarnation: u64) -> Result<bool, StoreError>;

    /// Compare-and-set on a shard's lease: give `shard` to `owner` if its current epoch equals
    /// `expected_epoch` (`0`: the shard has never been leased). On success the lease holds
    /// `epoch = expected_epoch + 1` and is returned; otherwise [`StoreError::Conflict`].
    async fn claim_lease(
        &self,
        shard: Shard,
        owner: &str,
        expected_epoch: u64,
    ) -> Result<Lease, StoreError>;

    /// Every lease row, in no particular order.
    async fn list_leases(&self) -> Result<Vec<Lease>, StoreError>;
}
