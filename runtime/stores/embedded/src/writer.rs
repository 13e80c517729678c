//! The single writer of the embedded store, and its group commit.
//!
//! One dedicated thread owns every write transaction. Callers send [`Request`]s over a
//! channel and await a oneshot reply. The thread blocks for the first request, drains what
//! else is queued (at most [`MAX_BATCH`]), applies the batch in arrival order inside ONE write
//! transaction, commits it once with [`Durability::Immediate`] (one fsync) and only then
//! replies to every request of the batch. Durability therefore costs one fsync per batch, not
//! one per request: under load, requests queue up during an fsync and share the next one.
//!
//! **Invariants**
//! - Every compare-and-set is checked against the state *inside* the batch's transaction, so
//!   two writes of one key in one batch behave exactly as if they were committed one after the
//!   other.
//! - A request is validated (version, sizes) before it changes anything, so a refused request
//!   (conflict, too large) leaves no trace while the rest of its batch commits.
//! - A storage failure while applying or committing aborts the whole transaction; the batch is
//!   then retried one request per transaction, so a request that trips the failure only fails
//!   itself. No reply is sent before its transaction has committed (or failed).
//! - A caller that stopped waiting (its future was dropped) does not un-apply its request: the
//!   write applies whole or not at all, as the port requires.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, TryRecvError};
use std::time::Instant;

use redb::{Database, Durability, ReadableTable, Table, WriteTransaction};
use tokio::sync::oneshot;

use emporium_runtime::store::{
    Lease, MemberRecord, PendingEvent, ReminderChange, StateWrite, StoreError,
};
use emporium_runtime::{ActorId, Shard, shard_of_id};

use crate::schema::{
    LEASES, MAX_VALUE_BYTES, MEMBERS, META, NEXT_OUTBOX_SEQUENCE_KEY, OUTBOX, OutboxKey,
    OutboxValue, RECORDS, REMINDERS, encode_record, record_version, redb_error,
};

/// The most requests one transaction commits.
pub(crate) const MAX_BATCH: usize = 256;

/// One write, as the writer thread applies it.
#[derive(Debug)]
pub(crate) enum Op {
    Save {
        id: ActorId,
        write: StateWrite,
    },
    Delete {
        id: ActorId,
        expected_version: u64,
    },
    Ack {
        events: Vec<PendingEvent>,
    },
    UpsertMember {
        member: MemberRecord,
    },
    RemoveMember {
        node_id: String,
        incarnation: u64,
    },
    ClaimLease {
        shard: Shard,
        owner: String,
        expected_epoch: u64,
    },
}

/// What a successful [`Op`] answers.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Done {
    Version(u64),
    Unit,
    Lease(Lease),
    /// Whether a conditional removal found its row and removed it.
    Removed(bool),
}

pub(crate) type Outcome = Result<Done, StoreError>;

/// An [`Op`] with the channel its outcome goes back on.
pub(crate) struct Request {
    pub(crate) op: Op,
    pub(crate) reply: oneshot::Sender<Outcome>,
}

/// Counters of the group commit, readable while the store runs.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) commits: AtomicU64,
    pub(crate) requests: AtomicU64,
}

/// The writer thread's loop: returns when every sender is gone (the store was dropped).
pub(crate) fn run(db: Arc<Database>, requests: Receiver<Request>, counters: Arc<Counters>) {
    while let Ok(first) = requests.recv() {
        let mut batch = Vec::with_capacity(16);
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match requests.try_recv() {
                Ok(request) => batch.push(request),
                Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
            }
        }
        process(&db, batch, &counters);
    }
    tracing::debug!("embedded store writer stopped");
}

/// Commit one batch and answer every request in it.
fn process(db: &Database, batch: Vec<Request>, counters: &Counters) {
    let (ops, replies): (Vec<Op>, Vec<oneshot::Sender<Outcome>>) = batch
        .into_iter()
        .map(|request| (request.op, request.reply))
        .unzip();
    let started = Instant::now();
    let outcomes = match commit_batch(db, &ops) {
        Ok(outcomes) => {
            record_commit(counters, ops.len(), started);
            outcomes
        }
        Err(error) if ops.len() == 1 => vec![Err(error)],
        Err(error) => {
            tracing::warn!(%error, requests = ops.len(), "batch commit failed; retrying one by one");
            ops.iter()
                .map(|op| {
                    let started = Instant::now();
                    let mut outcome = commit_batch(db, std::slice::from_ref(op))?;
                    record_commit(counters, 1, started);
                    outcome
                        .pop()
                        .ok_or_else(|| StoreError::Other("a commit answered nothing".to_owned()))?
                })
                .collect()
        }
    };
    for (reply, outcome) in replies.into_iter().zip(outcomes) {
        // The caller may have stopped waiting; its write is applied (or not) all the same.
        let _ = reply.send(outcome);
    }
}

fn record_commit(counters: &Counters, requests: usize, started: Instant) {
    counters.commits.fetch_add(1, Ordering::Relaxed);
    counters
        .requests
        .fetch_add(requests as u64, Ordering::Relaxed);
    metrics::histogram!("emporium_store_commit_batch_size", "adapter" => "embedded")
        .record(requests as f64);
    metrics::histogram!("emporium_store_commit_seconds", "adapter" => "embedded")
        .record(started.elapsed().as_secs_f64());
}

/// Apply `ops` in order in one durable transaction. `Err` means nothing was committed; `Ok`
/// holds one outcome per op (a refused op, e.g. a conflict, changed nothing).
pub(crate) fn commit_batch(db: &Database, ops: &[Op]) -> Result<Vec<Outcome>, StoreError> {
    let mut txn = db.begin_write().map_err(redb_error)?;
    txn.set_durability(Durability::Immediate)
        .map_err(redb_error)?;
    let outcomes = {
        let mut tables = Tables::open(&txn)?;
        let mut outcomes = Vec::with_capacity(ops.len());
        for op in ops {
            outcomes.push(tables.apply(op)?);
        }
        tables.finish()?;
        outcomes
    };
    txn.commit().map_err(redb_error)?;
    Ok(outcomes)
}

/// The tables of one write transaction, and the outbox sequence as the batch advances it.
struct Tables<'txn> {
    records: Table<'txn, (&'static str, &'static str), &'static [u8]>,
    outbox: Table<'txn, OutboxKey, OutboxValue>,
    reminders: Table<'txn, (u16, &'static str, &'static str, &'static str), u64>,
    members: Table<'txn, &'static str, (u64, &'static str, &'static str, &'static str, u64)>,
    leases: Table<'txn, u16, (u64, &'static str)>,
    meta: Table<'txn, &'static str, u64>,
    next_sequence: u64,
    stored_next_sequence: u64,
}

/// `Ok(Err(_))`: the op was refused and changed nothing. `Err(_)`: the transaction is broken.
type Applied = Result<Outcome, StoreError>;

impl<'txn> Tables<'txn> {
    fn open(txn: &'txn WriteTransaction) -> Result<Self, StoreError> {
        let meta = txn.open_table(META).map_err(redb_error)?;
        let next_sequence = meta
            .get(NEXT_OUTBOX_SEQUENCE_KEY)
            .map_err(redb_error)?
            .map_or(0, |value| value.value());
        Ok(Self {
            records: txn.open_table(RECORDS).map_err(redb_error)?,
            outbox: txn.open_table(OUTBOX).map_err(redb_error)?,
            reminders: txn.open_table(REMINDERS).map_err(redb_error)?,
            members: txn.open_table(MEMBERS).map_err(redb_error)?,
            leases: txn.open_table(LEASES).map_err(redb_error)?,
            meta,
            next_sequence,
            stored_next_sequence: next_sequence,
        })
    }

    /// Persist what the batch changed outside the tables proper.
    fn finish(&mut self) -> Result<(), StoreError> {
        if self.next_sequence != self.stored_next_sequence {
            self.meta
                .insert(NEXT_OUTBOX_SEQUENCE_KEY, self.next_sequence)
                .map_err(redb_error)?;
            self.stored_next_sequence = self.next_sequence;
        }
        Ok(())
    }

    fn apply(&mut self, op: &Op) -> Applied {
        match op {
            Op::Save { id, write } => self.save(id, write),
            Op::Delete {
                id,
                expected_version,
            } => self.delete(id, *expected_version),
            Op::Ack { events } => self.ack(events),
            Op::UpsertMember { member } => self.upsert_member(member),
            Op::RemoveMember {
                node_id,
                incarnation,
            } => self.remove_member(node_id, *incarnation),
            Op::ClaimLease {
                shard,
                owner,
                expected_epoch,
            } => self.claim_lease(*shard, owner, *expected_epoch),
        }
    }

    fn version_of(&self, id: &ActorId) -> Result<u64, StoreError> {
        match self
            .records
            .get((id.kind, id.key.as_str()))
            .map_err(redb_error)?
        {
            Some(value) => record_version(value.value()),
            None => Ok(0),
        }
    }

    fn save(&mut self, id: &ActorId, write: &StateWrite) -> Applied {
        let found = self.version_of(id)?;
        if found != write.expected_version {
            return Ok(Err(conflict(id, write.expected_version, found)));
        }
        let too_large = std::iter::once(write.state.len())
            .chain(write.outbox.iter().map(|entry| entry.payload.len()))
            .find(|size| *size > MAX_VALUE_BYTES);
        if let Some(size) = too_large {
            return Ok(Err(StoreError::TooLarge {
                size,
                limit: MAX_VALUE_BYTES,
            }));
        }

        let version = found + 1;
        let shard = shard_of_id(id);
        self.records
            .insert(
                (id.kind, id.key.as_str()),
                encode_record(version, &write.state).as_slice(),
            )
            .map_err(redb_error)?;
        for entry in &write.outbox {
            let sequence = self.next_sequence;
            self.next_sequence += 1;
            self.outbox
                .insert(
                    (shard, id.kind, id.key.as_str(), sequence),
                    (
                        entry.event_id.as_str(),
                        entry.topic.as_str(),
                        entry.payload.as_ref(),
                    ),
                )
                .map_err(redb_error)?;
        }
        for change in &write.reminders {
            match change {
                ReminderChange::Set { name, due_at_ms } => {
                    self.reminders
                        .insert((shard, id.kind, id.key.as_str(), name.as_str()), *due_at_ms)
                        .map_err(redb_error)?;
                }
                ReminderChange::Cancel { name } => {
                    self.reminders
                        .remove((shard, id.kind, id.key.as_str(), name.as_str()))
                        .map_err(redb_error)?;
                }
            }
        }
        Ok(Ok(Done::Version(version)))
    }

    fn delete(&mut self, id: &ActorId, expected_version: u64) -> Applied {
        let found = self.version_of(id)?;
        if found != expected_version {
            return Ok(Err(conflict(id, expected_version, found)));
        }
        let key = id.key.as_str();
        self.records.remove((id.kind, key)).map_err(redb_error)?;
        let shard = shard_of_id(id);
        self.outbox
            .retain_in(actor_entries(shard, id.kind, key), |_, _| false)
            .map_err(redb_error)?;

        let mut names = Vec::new();
        for row in self
            .reminders
            .range((shard, id.kind, key, "")..)
            .map_err(redb_error)?
        {
            let (reminder_key, _) = row.map_err(redb_error)?;
            let (row_shard, row_kind, row_key, name) = reminder_key.value();
            if row_shard != shard || row_kind != id.kind || row_key != key {
                break;
            }
            names.push(name.to_owned());
        }
        for name in names {
            self.reminders
                .remove((shard, id.kind, key, name.as_str()))
                .map_err(redb_error)?;
        }
        Ok(Ok(Done::Unit))
    }

    /// Remove the acknowledged entries: one range scan of each acknowledged actor's entries.
    /// Only that actor's: an id reused by another actor (a caller bug the port forbids) must
    /// not make this ack remove its entry.
    fn ack(&mut self, events: &[PendingEvent]) -> Applied {
        let mut by_actor: HashMap<&ActorId, Vec<&str>> = HashMap::new();
        for event in events {
            by_actor
                .entry(&event.actor)
                .or_default()
                .push(event.entry.event_id.as_str());
        }
        for (actor, acknowledged) in by_actor {
            let entries = actor_entries(shard_of_id(actor), actor.kind, actor.key.as_str());
            self.outbox
                .retain_in(entries, |_, (event_id, _, _)| {
                    !acknowledged.contains(&event_id)
                })
                .map_err(redb_error)?;
        }
        Ok(Ok(Done::Unit))
    }

    fn upsert_member(&mut self, member: &MemberRecord) -> Applied {
        self.members
            .insert(
                member.node_id.as_str(),
                (
                    member.incarnation,
                    member.cluster_addr.as_str(),
                    member.http_addr.as_str(),
                    member.status.as_str(),
                    member.heartbeat_ms,
                ),
            )
            .map_err(redb_error)?;
        Ok(Ok(Done::Unit))
    }

    /// Checked and removed inside the batch's transaction, so an upsert of a newer life
    /// queued before it in the same batch is seen and keeps its row.
    fn remove_member(&mut self, node_id: &str, incarnation: u64) -> Applied {
        let holds = self
            .members
            .get(node_id)
            .map_err(redb_error)?
            .is_some_and(|row| row.value().0 == incarnation);
        if holds {
            self.members.remove(node_id).map_err(redb_error)?;
        }
        Ok(Ok(Done::Removed(holds)))
    }

    fn claim_lease(&mut self, shard: Shard, owner: &str, expected_epoch: u64) -> Applied {
        let found = self
            .leases
            .get(shard)
            .map_err(redb_error)?
            .map_or(0, |row| row.value().0);
        if found != expected_epoch {
            return Ok(Err(StoreError::Conflict {
                what: format!("lease of shard {shard}"),
                expected: expected_epoch,
                found,
            }));
        }
        let epoch = found + 1;
        self.leases
            .insert(shard, (epoch, owner))
            .map_err(redb_error)?;
        Ok(Ok(Done::Lease(Lease {
            shard,
            owner: owner.to_owned(),
            epoch,
        })))
    }
}

/// Every `outbox_entries` key of one actor.
fn actor_entries<'a>(
    shard: Shard,
    kind: &'a str,
    key: &'a str,
) -> std::ops::RangeInclusive<(Shard, &'a str, &'a str, u64)> {
    (shard, kind, key, 0)..=(shard, kind, key, u64::MAX)
}

fn conflict(id: &ActorId, expected: u64, found: u64) -> StoreError {
    StoreError::Conflict {
        what: id.to_string(),
        expected,
        found,
    }
}
