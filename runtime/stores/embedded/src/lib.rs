//! The embedded adapter of the [`StateStore`] port: a durable store in one local file, pure
//! Rust, built on [redb](https://docs.rs/redb).
//!
//! It is what a single node (or a test) runs without any external service, and it keeps the
//! port's promises the way a networked store would:
//! - **Durable**: `Ok` from a write (`save`, `delete`, `outbox_ack`, `upsert_member`,
//!   `remove_member`, `claim_lease`) means its transaction was committed with
//!   `Durability::Immediate`, i.e. fsynced: it survives `kill -9` and a power cut (as far as
//!   the disk honours fsync).
//! - **Fast despite that**: writes go through one writer thread that *group-commits* every
//!   request queued while the previous fsync ran (see the `writer` module), so throughput
//!   grows with concurrency instead of stopping at one fsync per write.
//! - **Reads never wait for writes**: they run in redb read transactions, which see the last
//!   committed snapshot. `load` and the listings run on tokio's blocking pool (a load may
//!   read cold pages from disk). The relay's `outbox_pending_in` runs on the caller's thread:
//!   it scans at most `limit` entries that were just committed (hot pages), and handing it
//!   to the blocking pool cost more than the read itself (a thread wake-up per relay round:
//!   about 7% of the CPU of an add-to-cart load; in three paired runs, reading in place
//!   served 11% more adds per second).
//!
//! The layout on disk is described in the `schema` module.
//!
//! **Costs**: the outbox is one table keyed by shard, actor and sequence (see the `schema`
//! module). An event costs its commit one B-tree insert, and its acknowledgement one range
//! scan of its actor's entries; `outbox_pending` reads the first `limit` rows;
//! `outbox_pending_in(shard, limit)` is one range scan of that shard's rows
//! (`O(log n + limit)`), never touching other shards' entries; `list_reminders` is one range
//! scan of its shard. A file of an older layout has its pending outbox entries moved to this
//! table when it is opened, in one pass.
//!
//! **Memory**: redb keeps pages in a cache of its own (read pages, and written pages until
//! they are flushed), 1 GiB by default, which a node would fill with every page it ever
//! wrote. [`EmbeddedOptions::cache_bytes`] bounds it (64 MiB by default; the node's
//! `store_cache_mb` setting).
//!
//! **Invariants**: exactly one thread writes the file; nothing is answered `Ok` before its
//! commit returned; dropping the store stops the writer after it finished the requests already
//! queued, then releases the file so it can be reopened.

mod schema;
mod writer;

use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::{Arc, mpsc};
use std::thread::JoinHandle;

use async_trait::async_trait;
use redb::{Database, ReadableDatabase, ReadableTable};
use tokio::sync::oneshot;

use emporium_runtime::store::{
    Lease, MemberRecord, MemberStatus, OutboxEntry, PendingEvent, Reminder, StateWrite, Versioned,
};
use emporium_runtime::{ActorId, Shard, StateStore, StoreError, intern_kind};

use crate::schema::{
    LEASES, MEMBERS, META, OUTBOX, OutboxKey, OutboxValue, RECORDS, REMINDERS, SCHEMA_VERSION,
    SCHEMA_VERSION_KEY, decode_record, redb_error,
};
use crate::writer::{Counters, Done, Op, Outcome, Request};

/// The embedded store. Open it once per file: redb locks the file against a second open.
pub struct EmbeddedStore {
    db: Arc<Database>,
    writer: Option<Writer>,
    counters: Arc<Counters>,
}

/// The channel to the writer thread, and the thread itself (joined on drop).
struct Writer {
    requests: mpsc::Sender<Request>,
    thread: JoinHandle<()>,
}

/// Settings of [`EmbeddedStore::open_with`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EmbeddedOptions {
    /// Most bytes redb keeps cached in memory (read cache and write buffer together).
    pub cache_bytes: usize,
}

impl EmbeddedOptions {
    /// The default cache: 64 MiB, enough for the hot pages of a node's working set while
    /// keeping the process small (redb's own default is 1 GiB).
    pub const DEFAULT_CACHE_BYTES: usize = 64 * 1024 * 1024;
}

impl Default for EmbeddedOptions {
    fn default() -> Self {
        Self {
            cache_bytes: Self::DEFAULT_CACHE_BYTES,
        }
    }
}

/// How the group commit has batched so far (since the store was opened).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CommitStats {
    /// Write transactions committed.
    pub commits: u64,
    /// Write requests those transactions carried, refused ones (conflicts) included.
    pub requests: u64,
}

impl CommitStats {
    /// Requests per commit, `0.0` before the first commit.
    pub fn mean_batch(&self) -> f64 {
        if self.commits == 0 {
            0.0
        } else {
            self.requests as f64 / self.commits as f64
        }
    }
}

impl EmbeddedStore {
    /// Open the store at `path` with the default [`EmbeddedOptions`], creating the file (and
    /// its parent directories) when absent.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        Self::open_with(path, EmbeddedOptions::default())
    }

    /// Open the store at `path` with `options`, creating the file (and its parent
    /// directories) when absent.
    pub fn open_with(path: &Path, options: EmbeddedOptions) -> Result<Self, StoreError> {
        if let Some(parent) = path
            .parent()
            .filter(|parent| !parent.as_os_str().is_empty())
        {
            std::fs::create_dir_all(parent).map_err(|error| {
                StoreError::Other(format!("cannot create {}: {error}", parent.display()))
            })?;
        }
        let db = Database::builder()
            .set_cache_size(options.cache_bytes)
            .create(path)
            .map_err(|error| {
                StoreError::Other(format!("cannot open {}: {error}", path.display()))
            })?;
        initialize(&db)?;
        let db = Arc::new(db);

        let counters = Arc::new(Counters::default());
        let (requests, receiver) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("emporium-store-writer".to_owned())
            .spawn({
                let db = Arc::clone(&db);
                let counters = Arc::clone(&counters);
                move || writer::run(db, receiver, counters)
            })
            .map_err(|error| StoreError::Other(format!("cannot start the writer: {error}")))?;
        Ok(Self {
            db,
            writer: Some(Writer { requests, thread }),
            counters,
        })
    }

    /// How the group commit has batched so far.
    pub fn commit_stats(&self) -> CommitStats {
        CommitStats {
            commits: self.counters.commits.load(Ordering::Relaxed),
            requests: self.counters.requests.load(Ordering::Relaxed),
        }
    }

    /// Hand `op` to the writer thread and wait for its commit.
    async fn submit(&self, op: Op) -> Outcome {
        let writer = self.writer.as_ref().ok_or_else(writer_stopped)?;
        let (reply, answer) = oneshot::channel();
        writer
            .requests
            .send(Request { op, reply })
            .map_err(|_| writer_stopped())?;
        answer.await.map_err(|_| writer_stopped())?
    }

    /// Run `read` on the blocking pool against a fresh read transaction.
    async fn read<T, F>(&self, read: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&redb::ReadTransaction) -> Result<T, StoreError> + Send + 'static,
    {
        let db = Arc::clone(&self.db);
        tokio::task::spawn_blocking(move || {
            let txn = db.begin_read().map_err(redb_error)?;
            read(&txn)
        })
        .await
        .map_err(|error| StoreError::Other(format!("embedded store read task failed: {error}")))?
    }

    /// Run `read` right here, on the caller's thread, against a fresh read transaction: for a
    /// short read of pages the writer has just written (hot in redb's cache or the OS's),
    /// where handing it to the blocking pool would cost more than the read (a thread
    /// wake-up and two context switches).
    fn read_here<T>(
        &self,
        read: impl FnOnce(&redb::ReadTransaction) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let txn = self.db.begin_read().map_err(redb_error)?;
        read(&txn)
    }
}

impl Drop for EmbeddedStore {
    fn drop(&mut self) {
        if let Some(Writer { requests, thread }) = self.writer.take() {
            // Closing the channel lets the writer finish what is queued, then stop.
            drop(requests);
            if thread.join().is_err() {
                tracing::error!("the embedded store writer panicked");
            }
        }
    }
}

/// The first `limit` outbox rows of `rows`, as the relay reads them.
fn pending_events(
    rows: redb::Range<'_, OutboxKey, OutboxValue>,
    limit: usize,
) -> Result<Vec<PendingEvent>, StoreError> {
    let mut pending = Vec::new();
    for row in rows.take(limit) {
        let (key, value) = row.map_err(redb_error)?;
        pending.push(pending_event(key.value(), value.value()));
    }
    Ok(pending)
}

/// An `outbox_entries` row as the relay reads it.
fn pending_event(
    (_, kind, key, _): (Shard, &str, &str, u64),
    (event_id, topic, payload): (&str, &str, &[u8]),
) -> PendingEvent {
    PendingEvent {
        actor: ActorId::new(intern_kind(kind), key),
        entry: OutboxEntry {
            event_id: event_id.to_owned(),
            topic: topic.to_owned(),
            payload: bytes::Bytes::copy_from_slice(payload),
        },
    }
}

fn writer_stopped() -> StoreError {
    StoreError::Unavailable("the embedded store writer has stopped".to_owned())
}

fn unexpected(done: Done) -> StoreError {
    StoreError::Other(format!("the embedded store writer answered {done:?}"))
}

/// Create every table and check (or record) the schema version, upgrading an older file in
/// the same transaction.
fn initialize(db: &Database) -> Result<(), StoreError> {
    let txn = db.begin_write().map_err(redb_error)?;
    {
        txn.open_table(RECORDS).map_err(redb_error)?;
        txn.open_table(OUTBOX).map_err(redb_error)?;
        txn.open_table(REMINDERS).map_err(redb_error)?;
        txn.open_table(MEMBERS).map_err(redb_error)?;
        txn.open_table(LEASES).map_err(redb_error)?;
        let mut meta = txn.open_table(META).map_err(redb_error)?;
        let stored = meta
            .get(SCHEMA_VERSION_KEY)
            .map_err(redb_error)?
            .map(|value| value.value());
        match stored {
            Some(version) if version == SCHEMA_VERSION => {}
            Some(version) if version < SCHEMA_VERSION => {
                schema::upgrade(&txn, version)?;
                meta.insert(SCHEMA_VERSION_KEY, SCHEMA_VERSION)
                    .map_err(redb_error)?;
                tracing::info!(
                    from = version,
                    to = SCHEMA_VERSION,
                    "embedded store file upgraded"
                );
            }
            Some(version) => {
                return Err(StoreError::Other(format!(
                    "embedded store file has schema version {version}, this build reads up to {SCHEMA_VERSION}"
                )));
            }
            None => {
                meta.insert(SCHEMA_VERSION_KEY, SCHEMA_VERSION)
                    .map_err(redb_error)?;
            }
        }
    }
    txn.commit().map_err(redb_error)
}

#[async_trait]
impl StateStore for EmbeddedStore {
    fn adapter(&self) -> &'static str {
        "embedded"
    }

    async fn load(&self, id: &ActorId) -> Result<Option<Versioned>, StoreError> {
        let id = id.clone();
        self.read(move |txn| {
            let table = txn.open_table(RECORDS).map_err(redb_error)?;
            let Some(value) = table.get((id.kind, id.key.as_str())).map_err(redb_error)? else {
                return Ok(None);
            };
            let (version, state) = decode_record(value.value())?;
            Ok(Some(Versioned { version, state }))
        })
        .await
    }

    async fn save(&self, id: &ActorId, write: StateWrite) -> Result<u64, StoreError> {
        let op = Op::Save {
            id: id.clone(),
            write,
        };
        match self.submit(op).await? {
            Done::Version(version) => Ok(version),
            other => Err(unexpected(other)),
        }
    }

    async fn delete(&self, id: &ActorId, expected_version: u64) -> Result<(), StoreError> {
        let op = Op::Delete {
            id: id.clone(),
            expected_version,
        };
        match self.submit(op).await? {
            Done::Unit => Ok(()),
            other => Err(unexpected(other)),
        }
    }

    async fn list_keys(
        &self,
        kind: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<String>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let kind = kind.to_owned();
        let after = after.map(str::to_owned);
        self.read(move |txn| {
            let table = txn.open_table(RECORDS).map_err(redb_error)?;
            let kind = kind.as_str();
            let lower = match after.as_deref() {
                Some(after) => std::ops::Bound::Excluded((kind, after)),
                None => std::ops::Bound::Included((kind, "")),
            };
            let mut keys = Vec::new();
            for row in table
                .range((lower, std::ops::Bound::Unbounded))
                .map_err(redb_error)?
            {
                let (row_key, _) = row.map_err(redb_error)?;
                let (row_kind, key) = row_key.value();
                if row_kind != kind {
                    break;
                }
                keys.push(key.to_owned());
                if keys.len() == limit {
                    break;
                }
            }
            Ok(keys)
        })
        .await
    }

    async fn outbox_pending(&self, limit: usize) -> Result<Vec<PendingEvent>, StoreError> {
        self.read(move |txn| {
            let table = txn.open_table(OUTBOX).map_err(redb_error)?;
            pending_events(table.iter().map_err(redb_error)?, limit)
        })
        .await
    }

    async fn outbox_pending_in(
        &self,
        shard: Shard,
        limit: usize,
    ) -> Result<Vec<PendingEvent>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        // The relay's read, once per round: a bounded scan of entries just committed.
        self.read_here(|txn| {
            let table = txn.open_table(OUTBOX).map_err(redb_error)?;
            let lower = (shard, "", "", 0);
            let rows = match shard.checked_add(1) {
                Some(next) => table.range(lower..(next, "", "", 0)),
                None => table.range(lower..),
            };
            pending_events(rows.map_err(redb_error)?, limit)
        })
    }

    async fn outbox_ack(&self, events: &[PendingEvent]) -> Result<(), StoreError> {
        if events.is_empty() {
            return Ok(());
        }
        let op = Op::Ack {
            events: events.to_vec(),
        };
        match self.submit(op).await? {
            Done::Unit => Ok(()),
            other => Err(unexpected(other)),
        }
    }

    async fn list_reminders(&self, shard: Shard) -> Result<Vec<Reminder>, StoreError> {
        self.read(move |txn| {
            let table = txn.open_table(REMINDERS).map_err(redb_error)?;
            let mut reminders = Vec::new();
            let lower = (shard, "", "", "");
            let rows = match shard.checked_add(1) {
                Some(next) => table.range(lower..(next, "", "", "")),
                None => table.range(lower..),
            };
            for row in rows.map_err(redb_error)? {
                let (reminder_key, due) = row.map_err(redb_error)?;
                let (_, kind, key, name) = reminder_key.value();
                reminders.push(Reminder {
                    actor: ActorId::new(intern_kind(kind), key),
                    name: name.to_owned(),
                    due_at_ms: due.value(),
                });
            }
            Ok(reminders)
        })
        .await
    }

    async fn upsert_member(&self, member: &MemberRecord) -> Result<(), StoreError> {
        let op = Op::UpsertMember {
            member: member.clone(),
        };
        match self.submit(op).await? {
            Done::Unit => Ok(()),
            other => Err(unexpected(other)),
        }
    }

    async fn list_members(&self) -> Result<Vec<MemberRecord>, StoreError> {
        self.read(|txn| {
            let table = txn.open_table(MEMBERS).map_err(redb_error)?;
            let mut members = Vec::new();
            for row in table.iter().map_err(redb_error)? {
                let (node_id, value) = row.map_err(redb_error)?;
                let (incarnation, cluster_addr, http_addr, status, heartbeat_ms) = value.value();
                let status = MemberStatus::parse(status).ok_or_else(|| {
                    StoreError::Other(format!("corrupt member row: status {status:?}"))
                })?;
                members.push(MemberRecord {
                    node_id: node_id.value().to_owned(),
                    incarnation,
                    cluster_addr: cluster_addr.to_owned(),
                    http_addr: http_addr.to_owned(),
                    status,
                    heartbeat_ms,
                });
            }
            Ok(members)
        })
        .await
    }

    async fn remove_member(&self, node_id: &str, incarnation: u64) -> Result<bool, StoreError> {
        let op = Op::RemoveMember {
            node_id: node_id.to_owned(),
            incarnation,
        };
        match self.submit(op).await? {
            Done::Removed(removed) => Ok(removed),
            other => Err(unexpected(other)),
        }
    }

    async fn claim_lease(
        &self,
        shard: Shard,
        owner: &str,
        expected_epoch: u64,
    ) -> Result<Lease, StoreError> {
        let op = Op::ClaimLease {
            shard,
            owner: owner.to_owned(),
            expected_epoch,
        };
        match self.submit(op).await? {
            Done::Lease(lease) => Ok(lease),
            other => Err(unexpected(other)),
        }
    }

    async fn list_leases(&self) -> Result<Vec<Lease>, StoreError> {
        self.read(|txn| {
            let table = txn.open_table(LEASES).map_err(redb_error)?;
            let mut leases = Vec::new();
            for row in table.iter().map_err(redb_error)? {
                let (shard, value) = row.map_err(redb_error)?;
                let (epoch, owner) = value.value();
                leases.push(Lease {
                    shard: shard.value(),
                    owner: owner.to_owned(),
                    epoch,
                });
            }
            Ok(leases)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use emporium_runtime::store::OutboxEntry;

    use super::*;
    use crate::writer::commit_batch;

    fn save(key: &str, expected_version: u64, state: &'static [u8]) -> Op {
        Op::Save {
            id: ActorId::new("cart", key),
            write: StateWrite {
                expected_version,
                state: Bytes::from_static(state),
                outbox: vec![OutboxEntry {
                    event_id: format!("{key}-{expected_version}-{}", state.len()),
                    topic: "t".to_owned(),
                    payload: Bytes::new(),
                }],
                reminders: Vec::new(),
            },
        }
    }

    /// Two writes of one key in one batch behave as if committed one after the other, and a
    /// refused request in a batch does not stop the others.
    #[tokio::test]
    async fn a_batch_applies_its_requests_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let store = EmbeddedStore::open(&dir.path().join("store.redb")).unwrap();
        let outcomes = commit_batch(
            &store.db,
            &[
                save("a", 0, b"first"),
                save("a", 0, b"second create"),
                save("a", 1, b"update"),
                save("b", 0, b"other"),
                Op::Delete {
                    id: ActorId::new("cart", "b"),
                    expected_version: 7,
                },
                Op::ClaimLease {
                    shard: 3,
                    owner: "n1".to_owned(),
                    expected_epoch: 0,
                },
                Op::ClaimLease {
                    shard: 3,
                    owner: "n2".to_owned(),
                    expected_epoch: 0,
                },
            ],
        )
        .unwrap();
        assert_eq!(outcomes[0].as_ref().unwrap(), &Done::Version(1));
        assert!(outcomes[1].as_ref().unwrap_err().is_conflict());
        assert_eq!(outcomes[2].as_ref().unwrap(), &Done::Version(2));
        assert_eq!(outcomes[3].as_ref().unwrap(), &Done::Version(1));
        assert!(outcomes[4].as_ref().unwrap_err().is_conflict());
        assert!(matches!(
            outcomes[5],
            Ok(Done::Lease(Lease { epoch: 1, .. }))
        ));
        assert!(outcomes[6].as_ref().unwrap_err().is_conflict());

        let a = store
            .load(&ActorId::new("cart", "a"))
            .await
            .unwrap()
            .unwrap();
        assert_eq!((a.version, a.state), (2, Bytes::from_static(b"update")));
        let pending = store.outbox_pending(10).await.unwrap();
        let ids: Vec<_> = pending.iter().map(|e| e.entry.event_id.as_str()).collect();
        assert_eq!(ids, ["a-0-5", "a-1-6", "b-0-5"]);
    }

    /// A conditional removal sees the member writes queued before it in the same batch: a
    /// newer life upserted first keeps its row.
    #[tokio::test]
    async fn a_member_removal_in_a_batch_sees_the_upserts_before_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = EmbeddedStore::open(&dir.path().join("store.redb")).unwrap();
        let life = |incarnation: u64| Op::UpsertMember {
            member: MemberRecord {
                node_id: "b".to_owned(),
                incarnation,
                cluster_addr: "b:7000".to_owned(),
                http_addr: "b:8080".to_owned(),
                status: MemberStatus::Down,
                heartbeat_ms: incarnation,
            },
        };
        let remove = |incarnation: u64| Op::RemoveMember {
            node_id: "b".to_owned(),
            incarnation,
        };
        let outcomes = commit_batch(
            &store.db,
            &[life(7), remove(6), remove(7), life(8), remove(7)],
        )
        .unwrap();
        let removed: Vec<Option<bool>> = outcomes
            .iter()
            .map(|outcome| match outcome {
                Ok(Done::Removed(removed)) => Some(*removed),
                _ => None,
            })
            .collect();
        assert_eq!(removed, [None, Some(false), Some(true), None, Some(false)]);
        let members = store.list_members().await.unwrap();
        assert_eq!(
            members.iter().map(|m| m.incarnation).collect::<Vec<_>>(),
            [8]
        );
    }

    #[tokio::test]
    async fn concurrent_saves_share_commits() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(EmbeddedStore::open(&dir.path().join("store.redb")).unwrap());
        let mut tasks = Vec::new();
        for task in 0..64 {
            let store = Arc::clone(&store);
            tasks.push(tokio::spawn(async move {
                let id = ActorId::new("cart", format!("k{task}"));
                for version in 0..5 {
                    store
                        .save(
                            &id,
                            StateWrite {
                                expected_version: version,
                                ..StateWrite::default()
                            },
                        )
                        .await
                        .unwrap();
                }
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
        let stats = store.commit_stats();
        assert_eq!(stats.requests, 64 * 5);
        assert!(
            stats.commits < stats.requests,
            "no request shared a commit: {stats:?}"
        );
    }

    #[tokio::test]
    async fn oversized_state_is_refused_alone() {
        let dir = tempfile::tempdir().unwrap();
        let store = EmbeddedStore::open(&dir.path().join("nested/dirs/store.redb")).unwrap();
        let id = ActorId::new("cart", "huge");
        let write = StateWrite {
            expected_version: 0,
            state: Bytes::from(vec![0u8; schema::MAX_VALUE_BYTES + 1]),
            ..StateWrite::default()
        };
        let error = store.save(&id, write).await.unwrap_err();
        assert!(matches!(error, StoreError::TooLarge { .. }), "{error:?}");
        assert_eq!(store.load(&id).await.unwrap(), None);
    }
}
