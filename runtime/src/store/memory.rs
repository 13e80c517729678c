//! The in-memory twin of the [`StateStore`] port: the reference implementation of its
//! contract, used by unit tests and the in-process test cluster. Nothing survives the process.
//!
//! One mutex guards everything, which makes every operation trivially atomic.
//!
//! Costs: `outbox_pending_in` walks an index of `(shard, sequence)` pairs, so it touches only
//! the shard's pending entries (`O(log n + limit)`); `list_reminders` filters every reminder.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Mutex;

use async_trait::async_trait;

use super::{
    Lease, MemberRecord, PendingEvent, Reminder, ReminderChange, StateStore, StateWrite,
    StoreError, Versioned,
};
use crate::identity::{ActorId, intern_kind};
use crate::placement::{Shard, shard_of_id};

/// Keeps records, outbox, reminders, members and leases in maps behind one mutex.
#[derive(Default)]
pub struct MemoryStore {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    /// `(kind, key)` in byte order, so `list_keys` is a range scan.
    records: BTreeMap<(String, String), Versioned>,
    /// Per actor, entries in commit order; `sequence` orders them across actors.
    outbox: BTreeMap<u64, PendingEvent>,
    /// `(shard, sequence)` of every `outbox` entry: a shard's entries in commit order.
    outbox_by_shard: BTreeSet<(Shard, u64)>,
    next_sequence: u64,
    reminders: BTreeMap<(String, String, String), u64>,
    members: HashMap<String, MemberRecord>,
    leases: BTreeMap<Shard, Lease>,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave a half-applied write: every mutation
        // below is checked before it starts. So a poisoned lock is still consistent.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

fn record_key(id: &ActorId) -> (String, String) {
    (id.kind.to_owned(), id.key.clone())
}

fn current_version(inner: &Inner, id: &ActorId) -> u64 {
    inner
        .records
        .get(&record_key(id))
        .map_or(0, |record| record.version)
}

fn conflict(id: &ActorId, expected: u64, found: u64) -> StoreError {
    StoreError::Conflict {
        what: id.to_string(),
        expected,
        found,
    }
}

#[async_trait]
impl StateStore for MemoryStore {
    fn adapter(&self) -> &'static str {
        "memory"
    }

    async fn load(&self, id: &ActorId) -> Result<Option<Versioned>, StoreError> {
        Ok(self.lock().records.get(&record_key(id)).cloned())
    }

    async fn save(&self, id: &ActorId, write: StateWrite) -> Result<u64, StoreError> {
        let mut inner = self.lock();
        let found = current_version(&inner, id);
        if found != write.expected_version {
            return Err(conflict(id, write.expected_version, found));
        }
        let version = found + 1;
        inner.records.insert(
            record_key(id),
            Versioned {
                version,
                state: write.state,
            },
        );
        let shard = shard_of_id(id);
        for entry in write.outbox {
            let sequence = inner.next_sequence;
            inner.next_sequence += 1;
            inner.outbox_by_shard.insert((shard, sequence));
            inner.outbox.insert(
                sequence,
                PendingEvent {
                    actor: id.clone(),
                    entry,
                },
            );
        }
        apply_reminders(&mut inner, id, write.reminders);
        Ok(version)
    }

    async fn delete(&self, id: &ActorId, expected_version: u64) -> Result<(), StoreError> {
        let mut inner = self.lock();
        let found = current_version(&inner, id);
        if found != expected_version {
            return Err(conflict(id, expected_version, found));
        }
        inner.records.remove(&record_key(id));
        remove_outbox_where(&mut inner, |pending| pending.actor == *id);
        inner
            .reminders
            .retain(|(kind, key, _), _| !(kind == id.kind && *key == id.key));
        Ok(())
    }

    async fn list_keys(
        &self,
        kind: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<String>, StoreError> {
        let inner = self.lock();
        Ok(inner
            .records
            .range((kind.to_owned(), String::new())..)
            .take_while(|((record_kind, _), _)| record_kind == kind)
            .map(|((_, key), _)| key)
            .filter(|key| after.is_none_or(|after| key.as_str() > after))
            .take(limit)
            .cloned()
            .collect())
    }

    async fn outbox_pending(&self, limit: usize) -> Result<Vec<PendingEvent>, StoreError> {
        Ok(self.lock().outbox.values().take(limit).cloned().collect())
    }

    async fn outbox_ack(&self, events: &[PendingEvent]) -> Result<(), StoreError> {
        let mut inner = self.lock();
        remove_outbox_where(&mut inner, |pending| {
            events
                .iter()
                .any(|acked| acked.entry.event_id == pending.entry.event_id)
        });
        Ok(())
    }

    async fn outbox_pending_in(
        &self,
        shard: Shard,
        limit: usize,
    ) -> Result<Vec<PendingEvent>, StoreError> {
        let inner = self.lock();
        // Sequence order within the shard is commit order, so every prefix holds each
        // actor's older entries before its newer ones.
        Ok(inner
            .outbox_by_shard
            .range((shard, 0)..=(shard, u64::MAX))
            .filter_map(|(_, sequence)| inner.outbox.get(sequence))
            .take(limit)
            .cloned()
            .collect())
    }

    async fn list_reminders(&self, shard: Shard) -> Result<Vec<Reminder>, StoreError> {
        let inner = self.lock();
        Ok(inner
            .reminders
            .iter()
            .filter_map(|((kind, key, name), due_at_ms)| {
                let actor = ActorId {
                    kind: intern_kind(kind),
                    key: key.clone(),
                };
                (shard_of_id(&actor) == shard).then(|| Reminder {
                    actor,
                    name: name.clone(),
                    due_at_ms: *due_at_ms,
                })
            })
            .collect())
    }

    async fn upsert_member(&self, member: &MemberRecord) -> Result<(), StoreError> {
        self.lock()
            .members
            .insert(member.node_id.clone(), member.clone());
        Ok(())
    }

    async fn list_members(&self) -> Result<Vec<MemberRecord>, StoreError> {
        Ok(self.lock().members.values().cloned().collect())
    }

    async fn remove_member(&self, node_id: &str, incarnation: u64) -> Result<bool, StoreError> {
        let mut inner = self.lock();
        let holds = inner
            .members
            .get(node_id)
            .is_some_and(|member| member.incarnation == incarnation);
        if holds {
            inner.members.remove(node_id);
        }
        Ok(holds)
    }

    async fn claim_lease(
        &self,
        shard: Shard,
        owner: &str,
        expected_epoch: u64,
    ) -> Result<Lease, StoreError> {
        let mut inner = self.lock();
        let found = inner.leases.get(&shard).map_or(0, |lease| lease.epoch);
        if found != expected_epoch {
            return Err(StoreError::Conflict {
                what: format!("lease of shard {shard}"),
                expected: expected_epoch,
                found,
            });
        }
        let lease = Lease {
            shard,
            owner: owner.to_owned(),
            epoch: found + 1,
        };
        inner.leases.insert(shard, lease.clone());
        Ok(lease)
    }

    async fn list_leases(&self) -> Result<Vec<Lease>, StoreError> {
        Ok(self.lock().leases.values().cloned().collect())
    }
}

/// Remove the outbox entries `doomed` picks, with their index rows.
fn remove_outbox_where(inner: &mut Inner, doomed: impl Fn(&PendingEvent) -> bool) {
    let removed: Vec<(Shard, u64)> = inner
        .outbox
        .iter()
        .filter(|(_, pending)| doomed(pending))
        .map(|(sequence, pending)| (shard_of_id(&pending.actor), *sequence))
        .collect();
    for (shard, sequence) in removed {
        inner.outbox.remove(&sequence);
        inner.outbox_by_shard.remove(&(shard, sequence));
    }
}

fn apply_reminders(inner: &mut Inner, id: &ActorId, changes: Vec<ReminderChange>) {
    for change in changes {
        match change {
            ReminderChange::Set { name, due_at_ms } => {
                inner
                    .reminders
                    .insert((id.kind.to_owned(), id.key.clone(), name), due_at_ms);
            }
            ReminderChange::Cancel { name } => {
                inner
                    .reminders
                    .remove(&(id.kind.to_owned(), id.key.clone(), name));
            }
        }
    }
}
