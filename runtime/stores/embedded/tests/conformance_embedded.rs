//! The StateStore conformance suite against the embedded store, one fresh file per case.

use std::sync::Arc;

use async_trait::async_trait;
use emporium_runtime::store::{Lease, MemberRecord, PendingEvent, Reminder, StateWrite, Versioned};
use emporium_runtime::{ActorId, Shard, StateStore, StoreError};
use emporium_store_embedded::EmbeddedStore;
use tempfile::TempDir;

/// A store and the temporary directory holding its file. Fields drop in order: the store
/// (which joins its writer and closes the file) before the directory is removed.
struct TempStore {
    store: EmbeddedStore,
    _dir: TempDir,
}

async fn fresh_embedded_store() -> Option<Arc<dyn StateStore>> {
    let dir = tempfile::tempdir().expect("temporary directory");
    let store = EmbeddedStore::open(&dir.path().join("state.redb")).expect("open embedded store");
    Some(Arc::new(TempStore { store, _dir: dir }))
}

emporium_runtime::state_store_conformance!(fresh_embedded_store);

#[async_trait]
impl StateStore for TempStore {
    fn adapter(&self) -> &'static str {
        self.store.adapter()
    }
    async fn load(&self, id: &ActorId) -> Result<Option<Versioned>, StoreError> {
        self.store.load(id).await
    }
    async fn save(&self, id: &ActorId, write: StateWrite) -> Result<u64, StoreError> {
        self.store.save(id, write).await
    }
    async fn delete(&self, id: &ActorId, expected_version: u64) -> Result<(), StoreError> {
        self.store.delete(id, expected_version).await
    }
    async fn list_keys(
        &self,
        kind: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<String>, StoreError> {
        self.store.list_keys(kind, after, limit).await
    }
    async fn outbox_pending(&self, limit: usize) -> Result<Vec<PendingEvent>, StoreError> {
        self.store.outbox_pending(limit).await
    }
    async fn outbox_ack(&self, events: &[PendingEvent]) -> Result<(), StoreError> {
        self.store.outbox_ack(events).await
    }
    async fn list_reminders(&self, shard: Shard) -> Result<Vec<Reminder>, StoreError> {
        self.store.list_reminders(shard).await
    }
    async fn upsert_member(&self, member: &MemberRecord) -> Result<(), StoreError> {
        self.store.upsert_member(member).await
    }
    async fn list_members(&self) -> Result<Vec<MemberRecord>, StoreError> {
        self.store.list_members().await
    }
    async fn claim_lease(
        &self,
        shard: Shard,
        owner: &str,
        expected_epoch: u64,
    ) -> Result<Lease, StoreError> {
        self.store.claim_lease(shard, owner, expected_epoch).await
    }
    async fn list_leases(&self) -> Result<Vec<Lease>, StoreError> {
        self.store.list_leases().await
    }
}
