//! A [`StateStore`] decorator that counts the durable writes going through it: each
//! successful `save` is one atomic commit (state, outbox entries and reminder changes
//! together), counted per actor kind, with its outbox entries. The benchmark harness wraps a
//! node's store in it (`Node::build_with_store_layer`) and the checkout saga's tests wrap a
//! memory store, to say how many durable writes one checkout makes, whatever the adapter.
//!
//! Only successful saves count: a refused compare-and-set wrote nothing. Cluster rows
//! (members, leases) are not actor writes and are not counted.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

use super::{Lease, MemberRecord, PendingEvent, Reminder, StateStore, StateWrite, Versioned};
use crate::{ActorId, Shard, StoreError};
use async_trait::async_trait;

/// Saves and outbox entries per actor kind.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WriteCounts {
    pub saves: BTreeMap<&'static str, u64>,
    pub outbox_entries: u64,
}

impl WriteCounts {
    pub fn total_saves(&self) -> u64 {
        self.saves.values().sum()
    }

    /// What was counted since `before`.
    pub fn since(&self, before: &WriteCounts) -> WriteCounts {
        let saves = self
            .saves
            .iter()
            .map(|(kind, n)| (*kind, n - before.saves.get(kind).copied().unwrap_or(0)))
            .filter(|(_, n)| *n > 0)
            .collect();
        WriteCounts {
            saves,
            outbox_entries: self.outbox_entries - before.outbox_entries,
        }
    }
}

/// The decorator; clones of [`CountingStore::counts`] read the same tallies.
pub struct CountingStore {
    inner: Arc<dyn StateStore>,
    counts: Arc<Mutex<WriteCounts>>,
}

/// Reads the tallies of a [`CountingStore`] after it was handed to a node.
#[derive(Clone)]
pub struct Counts(Arc<Mutex<WriteCounts>>);

impl Counts {
    pub fn snapshot(&self) -> WriteCounts {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl CountingStore {
    /// Wrap `inner`; the [`Counts`] read what goes through.
    pub fn wrap(inner: Arc<dyn StateStore>) -> (Arc<dyn StateStore>, Counts) {
        let counts = Arc::new(Mutex::new(WriteCounts::default()));
        let store = Arc::new(Self {
            inner,
            counts: Arc::clone(&counts),
        });
        (store, Counts(counts))
    }
}

#[async_trait]
impl StateStore for CountingStore {
    fn adapter(&self) -> &'static str {
        self.inner.adapter()
    }

    async fn load(&self, id: &ActorId) -> Result<Option<Versioned>, StoreError> {
        self.inner.load(id).await
    }

    async fn save(&self, id: &ActorId, write: StateWrite) -> Result<u64, StoreError> {
        let entries = write.outbox.len() as u64;
        let saved = self.inner.save(id, write).await?;
        let mut counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        *counts.saves.entry(id.kind).or_default() += 1;
        counts.outbox_entries += entries;
        Ok(saved)
    }

    async fn delete(&self, id: &ActorId, expected_version: u64) -> Result<(), StoreError> {
        self.inner.delete(id, expected_version).await
    }

    async fn list_keys(
        &self,
        kind: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<String>, StoreError> {
        self.inner.list_keys(kind, after, limit).await
    }

    async fn outbox_pending(&self, limit: usize) -> Result<Vec<PendingEvent>, StoreError> {
        self.inner.outbox_pending(limit).await
    }

    async fn outbox_pending_in(
        &self,
        shard: Shard,
        limit: usize,
    ) -> Result<Vec<PendingEvent>, StoreError> {
        self.inner.outbox_pending_in(shard, limit).await
    }

    async fn outbox_ack(&self, events: &[PendingEvent]) -> Result<(), StoreError> {
        self.inner.outbox_ack(events).await
    }

    async fn list_reminders(&self, shard: Shard) -> Result<Vec<Reminder>, StoreError> {
        self.inner.list_reminders(shard).await
    }

    async fn upsert_member(&self, member: &MemberRecord) -> Result<(), StoreError> {
        self.inner.upsert_member(member).await
    }

    async fn list_members(&self) -> Result<Vec<MemberRecord>, StoreError> {
        self.inner.list_members().await
    }

    async fn remove_member(&self, node_id: &str, incarnation: u64) -> Result<bool, StoreError> {
        self.inner.remove_member(node_id, incarnation).await
    }

    async fn claim_lease(
        &self,
        shard: Shard,
        owner: &str,
        expected_epoch: u64,
    ) -> Result<Lease, StoreError> {
        self.inner.claim_lease(shard, owner, expected_epoch).await
    }

    async fn list_leases(&self) -> Result<Vec<Lease>, StoreError> {
        self.inner.list_leases().await
    }
}

#[cfg(test)]
mod tests {
    use crate::intern_kind;
    use crate::store::{MemoryStore, OutboxEntry};
    use bytes::Bytes;

    use super::*;

    fn write(version: u64, events: usize) -> StateWrite {
        StateWrite {
            expected_version: version,
            state: Bytes::from_static(b"s"),
            outbox: (0..events)
                .map(|i| OutboxEntry {
                    event_id: format!("e{version}-{i}"),
                    topic: "t".to_owned(),
                    payload: Bytes::from_static(b"{}"),
                })
                .collect(),
            reminders: Vec::new(),
        }
    }

    #[tokio::test]
    async fn counts_successful_saves_per_kind_and_their_events() {
        let (store, counts) = CountingStore::wrap(Arc::new(MemoryStore::new()));
        let cart = ActorId::new(intern_kind("cart"), "c1");
        let order = ActorId::new(intern_kind("order"), "o1");
        store.save(&cart, write(0, 0)).await.unwrap();
        store.save(&cart, write(1, 2)).await.unwrap();
        let before = counts.snapshot();
        store.save(&order, write(0, 1)).await.unwrap();
        // A conflict wrote nothing and is not counted.
        assert!(store.save(&order, write(0, 1)).await.is_err());
        let now = counts.snapshot();
        assert_eq!(now.saves.get("cart"), Some(&2));
        assert_eq!(now.total_saves(), 3);
        assert_eq!(now.outbox_entries, 3);
        let delta = now.since(&before);
        assert_eq!(delta.total_saves(), 1);
        assert_eq!(delta.saves.get("order"), Some(&1));
        assert_eq!(delta.outbox_entries, 1);
    }
}
