//! A node's access to a shared in-memory store that a test can pause: while paused, the
//! calls in the pause's scope wait (as a process's would while frozen or cut off), the
//! others go through. Shared by the cluster test files (`#[path]`-included).

use std::sync::Arc;

use async_trait::async_trait;
use emporium_runtime::store::{
    Lease, MemberRecord, MemoryStore, PendingEvent, Reminder, StateWrite, Versioned,
};
use emporium_runtime::{ActorId, Shard, StateStore, StoreError};
use tokio::sync::watch;

/// Which calls a pause holds up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PauseScope {
    /// Every call: the node's store access is frozen.
    Everything,
    /// Lease listings and claims only: the node's lease table goes stale while its heartbeat
    /// (and so its health) carries on.
    Leases,
}

pub struct PausableStore {
    shared: Arc<MemoryStore>,
    scope: PauseScope,
    paused: watch::Sender<bool>,
}

impl PausableStore {
    pub fn new(shared: Arc<MemoryStore>, scope: PauseScope) -> Self {
        let (paused, _) = watch::channel(false);
        Self {
            shared,
            scope,
            paused,
        }
    }

    pub fn pause(&self) {
        self.paused.send_replace(true);
    }

    pub fn resume(&self) {
        self.paused.send_replace(false);
    }

    /// Wait while paused, if `scope` is held up by this store's pauses.
    async fn gate(&self, scope: PauseScope) {
        if self.scope != PauseScope::Everything && self.scope != scope {
            return;
        }
        let mut paused = self.paused.subscribe();
        while *paused.borrow_and_update() {
            if paused.changed().await.is_err() {
                return;
            }
        }
    }

    async fn gate_all(&self) {
        self.gate(PauseScope::Everything).await;
    }
}

#[async_trait]
impl StateStore for PausableStore {
    fn adapter(&self) -> &'static str {
        "memory"
    }
    async fn load(&self, id: &ActorId) -> Result<Option<Versioned>, StoreError> {
        self.gate_all().await;
        self.shared.load(id).await
    }
    async fn save(&self, id: &ActorId, write: StateWrite) -> Result<u64, StoreError> {
        self.gate_all().await;
        self.shared.save(id, write).await
    }
    async fn delete(&self, id: &ActorId, expected_version: u64) -> Result<(), StoreError> {
        self.gate_all().await;
        self.shared.delete(id, expected_version).await
    }
    async fn list_keys(
        &self,
        kind: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<String>, StoreError> {
        self.gate_all().await;
        self.shared.list_keys(kind, after, limit).await
    }
    async fn outbox_pending(&self, limit: usize) -> Result<Vec<PendingEvent>, StoreError> {
        self.gate_all().await;
        self.shared.outbox_pending(limit).await
    }
    async fn outbox_pending_in(
        &self,
        shard: Shard,
        limit: usize,
    ) -> Result<Vec<PendingEvent>, StoreError> {
        self.gate_all().await;
        self.shared.outbox_pending_in(shard, limit).await
    }
    async fn outbox_ack(&self, events: &[PendingEvent]) -> Result<(), StoreError> {
        self.gate_all().await;
        self.shared.outbox_ack(events).await
    }
    async fn list_reminders(&self, shard: Shard) -> Result<Vec<Reminder>, StoreError> {
        self.gate_all().await;
        self.shared.list_reminders(shard).await
    }
    async fn upsert_member(&self, member: &MemberRecord) -> Result<(), StoreError> {
        self.gate_all().await;
        self.shared.upsert_member(member).await
    }
    async fn list_members(&self) -> Result<Vec<MemberRecord>, StoreError> {
        self.gate_all().await;
        self.shared.list_members().await
    }
    async fn remove_member(&self, node_id: &str, incarnation: u64) -> Result<bool, StoreError> {
        self.gate_all().await;
        self.shared.remove_member(node_id, incarnation).await
    }
    async fn claim_lease(
        &self,
        shard: Shard,
        owner: &str,
        expected_epoch: u64,
    ) -> Result<Lease, StoreError> {
        self.gate(PauseScope::Leases).await;
        self.shared.claim_lease(shard, owner, expected_epoch).await
    }
    async fn list_leases(&self) -> Result<Vec<Lease>, StoreError> {
        self.gate(PauseScope::Leases).await;
        self.shared.list_leases().await
    }
}
