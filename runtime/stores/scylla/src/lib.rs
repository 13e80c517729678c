//! The ScyllaDB / Apache Cassandra adapter of the [`StateStore`] port.
//!
//! # Why this shape
//! The port asks for one atomic compare-and-set per actor turn covering state, outbox
//! entries and reminder changes. Cassandra and ScyllaDB give atomicity and isolation only
//! *within one partition*, so the adapter keeps each actor in one partition of the `actors`
//! table (static columns for the record, clustering rows for its outbox entries and
//! reminders; see [`schema`]), and a save is one single-partition conditional batch:
//! `UPDATE … SET version = ?, state = ? … IF version = ?` plus the outbox inserts and
//! reminder upserts/deletes. Such a batch is one lightweight transaction (Paxos): it applies
//! whole or not at all, and `[applied] = false` comes back with the current version, which
//! fills [`StoreError::Conflict::found`]. A delete is the same kind of batch: CQL lets a
//! conditional `DELETE` touch static columns only, so `DELETE version, state, writer … IF
//! version = ?` carries the condition and an unconditional `DELETE` of the partition in the
//! same batch removes the outbox entries and reminders with it. Leases are lightweight
//! transactions too (`IF NOT EXISTS` / `IF epoch = ?`).
//!
//! # Index tables and crashes
//! Listing keys by kind, pending outbox entries and reminders by shard needs index tables
//! that cannot live in the actor's partition, so they are **hints, never the truth**:
//! - An index row is written *before* the compare-and-set that needs it (a key row for a
//!   create, an outbox row when the write raises events, a reminder row when it sets a
//!   reminder). A crash or a conflict in between leaves a dangling index row, which is
//!   harmless: every listing checks the actor partition (the truth) and skips actors with
//!   nothing to list.
//! - Index rows are never deleted by writers. A reader that finds an index row whose actor
//!   has nothing to list deletes it, but only when the row is older than [`INDEX_GRACE`],
//!   and `USING TIMESTAMP` of the write time it read: a concurrent re-insert (a newer
//!   timestamp) survives, and a save whose compare-and-set is still in flight is protected
//!   by the grace period. A save that took longer than [`INDEX_GRACE`]` / 6` from its index
//!   write to its commit writes its index rows again after the commit.
//! - So deletes and acknowledgements leave index rows behind for up to [`INDEX_GRACE`]:
//!   listings pay one partition read per such row until a reader removes it.
//! - Costs: `list_keys` reads the `limit` candidates of [`schema::KEY_BUCKETS`] partitions
//!   (concurrently) and checks each key's record (one point read per key, 32 at a time);
//!   `outbox_pending` and `list_reminders` read one actor partition per index row.
//!   `outbox_pending_in(shard, limit)` reads the one `outbox_shards` partition of `shard`
//!   (the actors of that shard with possibly pending entries, nothing of other shards), then
//!   one actor partition per mark, 32 at a time, until `limit` entries are found: an actor's
//!   partition holds all its entries in commit order, so a cut at `limit` never skips an
//!   older one. A save with outbox entries writes two marks (`outbox_actors` and
//!   `outbox_shards`, concurrently) before its compare-and-set, unless this process wrote
//!   them moments ago (below).
//! - **Marks written moments ago are not written again.** The store remembers, in a bounded
//!   lossy table ([`marks`](crate::marks)), which marks it wrote in the last
//!   `INDEX_GRACE / 12`; a save whose marks are all there goes straight to its
//!   compare-and-set and takes their write time as its marking time (so a commit later than
//!   `INDEX_GRACE / 6` after it refreshes them, as above). Safe because a mark lives at
//!   least [`INDEX_GRACE`] after its write: readers delete only older ones. *What changed and
//!   why (issue 14):* an actor raising events on every turn paid one more round trip and two
//!   more writes per save: saves with one outbox entry ran at 0.56–0.72× the raw LWT rate
//!   of the same node at 8–64 writers, ≥ 1.0× without those writes.
//! - Keyspaces created before `outbox_shards` existed get the table at connect (creation is
//!   `IF NOT EXISTS`, only for missing tables) and, once per keyspace, a copy of every
//!   `outbox_actors` mark into it (recorded in `schema_migrations`). A node of an older
//!   build still running after that writes no `outbox_shards` marks: its entries are listed
//!   by `outbox_pending` but not by `outbox_pending_in` until the actor saves again under
//!   this build. Upgrade every node.
//!
//! # Ambiguous outcomes
//! A lightweight transaction that times out may or may not have applied. Each save carries
//! a random `writer` id; on a timeout the adapter reads the record at `LOCAL_SERIAL` (which
//! completes or supersedes the in-flight Paxos round) and decides: our `writer` at
//! `expected + 1` → applied; still at `expected` → not applied, retried (bounded); another
//! writer at `expected + 1` → [`StoreError::Conflict`]; anything else is
//! [`StoreError::OutcomeUnknown`]. A request still queued on a server when it timed out can
//! apply *after* that serial read, so a retry that loses reports a conflict only when the
//! record is another writer's at `expected + 1`; past that (ours may lie underneath) or
//! when every attempt timed out, the outcome is unknown. Leases do the same with the
//! owner name.
//!
//! # Consistency and routing
//! Prepared statements only (prepared at connect), token-aware DC-aware routing (the
//! driver's default policy, pinned to the configured or discovered datacenter), a
//! per-request timeout, paging for every listing. Outbox acknowledgements delete `USING
//! TIMESTAMP` (entry write time + 1), so a coordinator with a slow clock cannot leave an
//! acknowledged entry behind.
//!
//! Two configured levels apply to every statement ([`ScyllaConfig::consistency`],
//! [`ScyllaConfig::serial_consistency`]; `?consistency=…&serial_consistency=…` in the URL;
//! `EMPORIUM_SCYLLA_CONSISTENCY` / `EMPORIUM_SCYLLA_SERIAL_CONSISTENCY` for a node):
//! - [`ConsistencyLevel`]: reads, unconditional writes and the commit of every lightweight
//!   transaction: `local_quorum` (the default), `quorum`, `each_quorum` (reads at `QUORUM`,
//!   which overlaps every `EACH_QUORUM` write) or `all`. Levels below a quorum are not
//!   offered: a read could miss an acknowledged write.
//! - [`SerialLevel`]: the Paxos phase of lightweight transactions and the serial reads that
//!   resolve ambiguous outcomes: `local_serial` (the default) or `serial`.
//!
//! `LOCAL_QUORUM` and `LOCAL_SERIAL` count only the local datacenter's replicas, so they
//! are linearizable only when every replica is in one datacenter: with a keyspace
//! replicated to two, each datacenter could win the same compare-and-set. So `connect`
//! reads the keyspace's replication from `system_schema.keyspaces` and **refuses to start**
//! ([`StoreError::Other`], naming the keyspace and its datacenters) when it is
//! `NetworkTopologyStrategy` over more than one datacenter (or another strategy on a
//! cluster spanning several) and either level is `LOCAL_*`. Such a keyspace needs
//! `serial_consistency = serial` with `consistency = quorum` or `each_quorum`; every
//! compare-and-set then pays a round trip to the other datacenters. A single-datacenter
//! keyspace (what the adapter creates) keeps the `LOCAL_*` defaults.
//!
//! # Durability
//! `Ok` from a save means the Paxos commit was acknowledged at the configured consistency
//! level (`LOCAL_QUORUM` of the replicas by default). Whether that survives a crash is the
//! cluster's setting: with replication factor 3 a single node may die; a single node (tests,
//! RF 1) needs `commitlog_sync: batch` (what `scripts/cassandra.sh` configures) for an
//! acknowledged write to survive `kill -9` or power loss, since the default periodic sync
//! acknowledges before the fsync.
//!
//! # ScyllaDB-only features
//! None is required. Against ScyllaDB the driver uses the shard-aware port and per-shard
//! connections when the server advertises them; against Cassandra it does without. Tablets
//! (ScyllaDB) need nothing from the adapter: the keyspace is created with
//! `NetworkTopologyStrategy` and the server's default for tablets. Lightweight transactions
//! on tablet keyspaces need a ScyllaDB version that supports them; for older ones set
//! [`ScyllaConfig::tablets`] to `Some(false)` (`?tablets=false`), which Cassandra must not get.

mod config;
mod error;
mod marks;
pub mod schema;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::future::{join_all, try_join_all};
use futures_util::{StreamExt, TryStreamExt};
use scylla::client::execution_profile::{ExecutionProfile, ExecutionProfileHandle};
use scylla::client::session::Session;
use scylla::client::session_builder::SessionBuilder;
use scylla::deserialize::row::DeserializeRow;
use scylla::errors::NewSessionError;
use scylla::policies::load_balancing::DefaultPolicy;
use scylla::response::query_result::QueryResult;
use scylla::serialize::row::SerializeRow;
use scylla::statement::batch::{Batch, BatchType};
use scylla::statement::prepared::PreparedStatement;
use scylla::value::{CqlValue, Row};
use uuid::Uuid;

use emporium_runtime::store::{
    Lease, MemberRecord, MemberStatus, OutboxEntry, PendingEvent, Reminder, ReminderChange,
    StateWrite, Versioned,
};
use emporium_runtime::{ActorId, Shard, StateStore, StoreError, intern_kind, shard_of};

pub use config::{
    ConsistencyLevel, DEFAULT_MAX_WRITE_BYTES, DEFAULT_REPLICATION_FACTOR, DEFAULT_REQUEST_TIMEOUT,
    ScyllaConfig, SerialLevel,
};

use crate::error::{Failure, classify_execution, classify_next_row, classify_pager, corrupt};
use crate::marks::{Mark, RecentMarks};
use crate::schema::{KEY_BUCKETS, OUTBOX_BUCKETS, OUTBOX_SHARDS_BACKFILL, Statements, bucket_of};

/// How old an index row must be before a reader may delete it as stale. Far longer than
/// any save takes from its index write to its commit (bounded attempts of a 2 s timeout).
pub const INDEX_GRACE: Duration = Duration::from_secs(30);

/// Attempts of one compare-and-set whose earlier attempts provably did not apply.
const CAS_ATTEMPTS: usize = 3;

/// Concurrent partition reads within one listing.
const FAN_OUT: usize = 32;

/// Keys fetched per bucket and round in `list_keys`.
const KEYS_ROUND: usize = 2000;

/// A [`StateStore`] on ScyllaDB or Apache Cassandra (CQL protocol v4+).
pub struct ScyllaStore {
    session: Session,
    st: Statements,
    profile: ExecutionProfileHandle,
    keyspace: String,
    datacenter: String,
    request_timeout: Duration,
    consistency: ConsistencyLevel,
    serial_consistency: SerialLevel,
    max_write_bytes: usize,
    /// Where the next `outbox_pending` starts, so no bucket starves behind a busy one.
    outbox_cursor: AtomicU16,
    /// Index rows written moments ago, which a save need not write again.
    recent_marks: RecentMarks,
}

impl std::fmt::Debug for ScyllaStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScyllaStore")
            .field("keyspace", &self.keyspace)
            .field("datacenter", &self.datacenter)
            .field("consistency", &self.consistency)
            .field("serial_consistency", &self.serial_consistency)
            .finish_non_exhaustive()
    }
}

/// What a `LOCAL_SERIAL` read says about an ambiguous compare-and-set.
enum Resolution {
    Applied,
    NotApplied,
    Conflict(u64),
    Unknown,
}

impl ScyllaStore {
    /// Connect, discover the datacenter when not configured, check the consistency levels
    /// against the keyspace's replication (see the crate docs), create the schema when
    /// absent (unless disabled) and prepare every statement.
    pub async fn connect(config: ScyllaConfig) -> Result<Self, StoreError> {
        let mut builder = SessionBuilder::new()
            .known_nodes(&config.nodes)
            .connection_timeout(config.connect_timeout)
            .keyspaces_to_fetch([config.keyspace.clone()]);
        if let Some(user) = &config.user {
            builder = builder.user(user.clone(), config.password.clone().unwrap_or_default());
        }
        if let Some(datacenter) = &config.datacenter {
            builder = builder.prefer_datacenter(datacenter.clone());
        }
        let session = builder.build().await.map_err(connect_error)?;

        let datacenter = match &config.datacenter {
            Some(datacenter) => datacenter.clone(),
            None => discover_datacenter(&session)?,
        };
        config::validate_datacenter(&datacenter)?;

        let policy = DefaultPolicy::builder()
            .prefer_datacenter(datacenter.clone())
            .token_aware(true)
            .permit_dc_failover(false)
            .build();
        let profile = ExecutionProfile::builder()
            .load_balancing_policy(policy)
            .consistency(config.consistency.write())
            .serial_consistency(Some(config.serial_consistency.paxos()))
            .request_timeout(Some(config.request_timeout))
            .build()
            .into_handle();

        // Refuse unsafe levels before creating anything in an existing keyspace; a keyspace
        // created below is checked once it exists (another node may have created it first).
        let existed = check_replication(&session, &config).await?;
        if config.create_schema {
            schema::ensure_schema(
                &session,
                &config.keyspace,
                &datacenter,
                config.replication_factor,
                config.tablets,
            )
            .await?;
        }
        if !existed {
            check_replication(&session, &config).await?;
        }
        let st = Statements::prepare(
            &session,
            &config.keyspace,
            &profile,
            config.request_timeout,
            (config.consistency, config.serial_consistency),
        )
        .await?;
        tracing::info!(
            keyspace = %config.keyspace,
            datacenter = %datacenter,
            consistency = %config.consistency,
            serial_consistency = %config.serial_consistency,
            "scylla store connected"
        );
        let store = Self {
            session,
            st,
            profile,
            keyspace: config.keyspace,
            datacenter,
            request_timeout: config.request_timeout,
            consistency: config.consistency,
            serial_consistency: config.serial_consistency,
            max_write_bytes: config.max_write_bytes,
            outbox_cursor: AtomicU16::new(0),
            recent_marks: RecentMarks::new(),
        };
        store.backfill_outbox_shards().await?;
        Ok(store)
    }

    /// Once per keyspace: give every actor marked in `outbox_actors` its `outbox_shards`
    /// mark, for entries saved before that index existed (see
    /// [`schema::OUTBOX_SHARDS_BACKFILL`]). Reads the 16 `outbox_actors` partitions, which
    /// list only actors with pending entries, and writes one mark per actor.
    async fn backfill_outbox_shards(&self) -> Result<(), StoreError> {
        const OP: &str = "backfill outbox_shards";
        let done: Option<(String,)> = self
            .first_row(OP, &self.st.migration_done, (OUTBOX_SHARDS_BACKFILL,))
            .await?;
        if done.is_some() {
            return Ok(());
        }
        let mut copied = 0;
        for bucket in 0..OUTBOX_BUCKETS {
            let marks: Vec<Marked> = self
                .rows(OP, &self.st.outbox_marks, (i32::from(bucket),))
                .await?;
            for chunk in marks.chunks(FAN_OUT) {
                try_join_all(chunk.iter().map(|(kind, key, _)| {
                    let shard = i32::from(shard_of(kind, key));
                    self.exec(OP, &self.st.mark_outbox_shard, (shard, kind, key))
                }))
                .await?;
                copied += chunk.len();
            }
        }
        let now_ms = now_micros() / 1000;
        self.exec(
            OP,
            &self.st.record_migration,
            (OUTBOX_SHARDS_BACKFILL, now_ms),
        )
        .await?;
        tracing::info!(keyspace = %self.keyspace, actors = copied, "scylla outbox marks copied to outbox_shards");
        Ok(())
    }

    /// The keyspace holding the adapter's tables.
    pub fn keyspace(&self) -> &str {
        &self.keyspace
    }

    /// The local datacenter (configured or discovered).
    pub fn datacenter(&self) -> &str {
        &self.datacenter
    }

    /// The consistency level of reads, writes and commits, and the serial level of Paxos.
    pub fn consistency(&self) -> (ConsistencyLevel, SerialLevel) {
        (self.consistency, self.serial_consistency)
    }

    /// The underlying driver session, for administration (schema, diagnostics).
    pub fn session(&self) -> &Session {
        &self.session
    }

    /// Drop the adapter's keyspace and everything in it. For tests and benches.
    pub async fn drop_keyspace(&self) -> Result<(), StoreError> {
        let statement = format!("DROP KEYSPACE IF EXISTS {}", self.keyspace);
        self.session
            .query_unpaged(statement, &[])
            .await
            .map(|_| ())
            .map_err(|error| classify_execution(&error).into_store_error("drop keyspace"))
    }

    async fn exec(
        &self,
        op: &str,
        statement: &PreparedStatement,
        values: impl SerializeRow,
    ) -> Result<QueryResult, StoreError> {
        self.session
            .execute_unpaged(statement, values)
            .await
            .map_err(|error| classify_execution(&error).into_store_error(op))
    }

    /// Every row of a (paged) read.
    async fn rows<T>(
        &self,
        op: &str,
        statement: &PreparedStatement,
        values: impl SerializeRow,
    ) -> Result<Vec<T>, StoreError>
    where
        T: for<'frame, 'metadata> DeserializeRow<'frame, 'metadata>,
    {
        let pager = self
            .session
            .execute_iter(statement.clone(), values)
            .await
            .map_err(|error| classify_pager(&error).into_store_error(op))?;
        let stream = pager
            .rows_stream::<T>()
            .map_err(|error| corrupt(op, error))?;
        stream
            .map_err(|error| classify_next_row(&error).into_store_error(op))
            .try_collect()
            .await
    }

    /// The first row of an unpaged read, if any.
    async fn first_row<T>(
        &self,
        op: &str,
        statement: &PreparedStatement,
        values: impl SerializeRow,
    ) -> Result<Option<T>, StoreError>
    where
        T: for<'frame, 'metadata> DeserializeRow<'frame, 'metadata>,
    {
        let result = self.exec(op, statement, values).await?;
        let rows = result
            .into_rows_result()
            .map_err(|error| corrupt(op, error))?;
        rows.maybe_first_row::<T>()
            .map_err(|error| corrupt(op, error))
    }

    fn new_batch(&self) -> Batch {
        let mut batch = Batch::new(BatchType::Unlogged);
        batch.set_execution_profile_handle(Some(self.profile.clone()));
        batch.set_consistency(self.consistency.write());
        batch.set_serial_consistency(Some(self.serial_consistency.paxos()));
        batch.set_request_timeout(Some(self.request_timeout));
        batch
    }

    async fn write_marks(&self, id: &ActorId, marks: &[Mark]) -> Result<(), StoreError> {
        let shard = i32::from(shard_of(id.kind, &id.key));
        try_join_all(marks.iter().map(|mark| async move {
            match mark {
                Mark::Key => {
                    let bucket = bucket_of(id.kind, &id.key, KEY_BUCKETS);
                    self.exec("index key", &self.st.insert_key, (id.kind, bucket, &id.key))
                        .await
                }
                Mark::Outbox => {
                    let bucket = bucket_of(id.kind, &id.key, OUTBOX_BUCKETS);
                    let (by_bucket, by_shard) = futures_util::future::join(
                        self.exec(
                            "index outbox",
                            &self.st.mark_outbox,
                            (bucket, id.kind, &id.key),
                        ),
                        self.exec(
                            "index outbox",
                            &self.st.mark_outbox_shard,
                            (shard, id.kind, &id.key),
                        ),
                    )
                    .await;
                    by_bucket?;
                    by_shard
                }
                Mark::Reminders => {
                    self.exec(
                        "index reminders",
                        &self.st.mark_reminders,
                        (shard, id.kind, &id.key),
                    )
                    .await
                }
            }
        }))
        .await
        .map(|_| ())
    }

    /// After a commit that took long enough for a reader to consider its index rows stale,
    /// write them again. Failures are logged: the commit stands either way.
    async fn refresh_marks(&self, id: &ActorId, marks: &[Mark], since: Instant) {
        if marks.is_empty() || since.elapsed() < INDEX_GRACE / 6 {
            return;
        }
        if let Err(error) = self.write_and_remember_marks(id, marks).await {
            tracing::warn!(actor = %id, %error, "scylla store: index refresh after a slow commit failed");
        }
    }

    /// Write `marks` and remember them in [`RecentMarks`] once written.
    async fn write_and_remember_marks(
        &self,
        id: &ActorId,
        marks: &[Mark],
    ) -> Result<(), StoreError> {
        let sent_at = Instant::now();
        self.write_marks(id, marks).await?;
        for mark in marks {
            self.recent_marks.wrote(*mark, id.kind, &id.key, sent_at);
        }
        Ok(())
    }

    /// Make sure every mark of `needed` exists before a compare-and-set (see the crate docs):
    /// write those this process did not write moments ago. Returns the marking time the
    /// save goes by: the oldest write time of the marks it relies on.
    async fn ensure_marks(&self, id: &ActorId, needed: &[Mark]) -> Result<Instant, StoreError> {
        let mut marked_at = Instant::now();
        let mut missing = Vec::with_capacity(needed.len());
        for mark in needed {
            match self.recent_marks.fresh_since(*mark, id.kind, &id.key) {
                Some(written_at) => marked_at = marked_at.min(written_at),
                None => missing.push(*mark),
            }
        }
        self.write_and_remember_marks(id, &missing).await?;
        Ok(marked_at)
    }

    /// Read the record at `LOCAL_SERIAL` to learn what became of an ambiguous save.
    async fn resolve_save(&self, id: &ActorId, expected: u64, writer: Uuid) -> Resolution {
        let row: Result<Option<(Option<i64>, Option<Uuid>)>, _> = self
            .first_row(
                "resolve save",
                &self.st.load_version_serial,
                (id.kind, &id.key),
            )
            .await;
        let Ok(row) = row else {
            return Resolution::Unknown;
        };
        let (version, found_writer) = row.unwrap_or((None, None));
        let version = version.map_or(0, from_db);
        if version == expected {
            Resolution::NotApplied
        } else if version == expected + 1 {
            if found_writer == Some(writer) {
                Resolution::Applied
            } else {
                Resolution::Conflict(version)
            }
        } else {
            Resolution::Unknown
        }
    }

    /// Remove an index row that points at nothing, if it is old enough (see the crate docs).
    async fn drop_stale_mark(
        &self,
        op: &str,
        statement: &PreparedStatement,
        written_at: Option<i64>,
        values: impl SerializeRow,
    ) {
        let Some(written_at) = written_at else {
            return;
        };
        let age_micros = now_micros().saturating_sub(written_at);
        if age_micros < i64::try_from(INDEX_GRACE.as_micros()).unwrap_or(i64::MAX) {
            return;
        }
        if let Err(error) = self.exec(op, statement, values).await {
            tracing::debug!(%error, "scylla store: removing a stale index row failed");
        }
    }

    /// The outbox entries of one actor, in commit order.
    async fn actor_outbox(&self, kind: &str, key: &str) -> Result<Vec<OutboxEntry>, StoreError> {
        type OutboxRow = (
            String,
            Option<i64>,
            Option<i32>,
            Option<String>,
            Option<Bytes>,
        );
        let mut rows: Vec<OutboxRow> = self
            .rows("outbox_pending", &self.st.actor_outbox, (kind, key))
            .await?;
        rows.sort_by_key(|(_, seq, pos, _, _)| (seq.unwrap_or(0), pos.unwrap_or(0)));
        Ok(rows
            .into_iter()
            .map(|(event_id, _, _, topic, payload)| OutboxEntry {
                event_id,
                topic: topic.unwrap_or_default(),
                payload: payload.unwrap_or_default(),
            })
            .collect())
    }

    async fn claim_once(
        &self,
        shard: Shard,
        owner: &str,
        expected: u64,
    ) -> Result<QueryResult, StoreError> {
        let shard_db = i32::from(shard);
        let result = if expected == 0 {
            self.session
                .execute_unpaged(&self.st.create_lease, (shard_db, owner))
                .await
        } else {
            self.session
                .execute_unpaged(
                    &self.st.move_lease,
                    (owner, to_db(expected + 1), shard_db, to_db(expected)),
                )
                .await
        };
        result.map_err(|error| classify_execution(&error).into_store_error("claim_lease"))
    }
}

fn connect_error(error: NewSessionError) -> StoreError {
    let message = format!("connect: {}", error.to_string().to_lowercase());
    match error {
        NewSessionError::EmptyKnownNodesList | NewSessionError::IllegalConfig(_) => {
            StoreError::Other(message)
        }
        _ => StoreError::Unavailable(message),
    }
}

/// Check the configured levels against the keyspace's replication (see the crate docs).
/// `Ok(false)`: the keyspace does not exist (yet), nothing to check.
async fn check_replication(session: &Session, config: &ScyllaConfig) -> Result<bool, StoreError> {
    let Some(replication) = schema::read_replication(session, &config.keyspace).await? else {
        return Ok(false);
    };
    schema::check_levels(
        &config.keyspace,
        &replication,
        &cluster_datacenters(session),
        config.consistency,
        config.serial_consistency,
    )?;
    Ok(true)
}

/// The datacenters of the cluster's nodes, as the driver's metadata shows them, sorted.
fn cluster_datacenters(session: &Session) -> Vec<String> {
    let state = session.get_cluster_state();
    let mut datacenters: Vec<String> = state
        .get_nodes_info()
        .iter()
        .filter_map(|node| node.datacenter.clone())
        .collect();
    datacenters.sort();
    datacenters.dedup();
    datacenters
}

/// The datacenter of the cluster, when the metadata shows exactly one.
fn discover_datacenter(session: &Session) -> Result<String, StoreError> {
    let datacenters = cluster_datacenters(session);
    match datacenters.as_slice() {
        [one] => Ok(one.clone()),
        [] => Err(StoreError::Other(
            "connect: the cluster metadata names no datacenter; configure one".to_owned(),
        )),
        several => Err(StoreError::Other(format!(
            "connect: the cluster has several datacenters ({}); configure the local one",
            several.join(", ")
        ))),
    }
}

/// Versions, epochs and times are `u64` in the port and `bigint` in CQL: stored bit for bit.
fn to_db(value: u64) -> i64 {
    value as i64
}

fn from_db(value: i64) -> u64 {
    value as u64
}

fn now_micros() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| {
            i64::try_from(elapsed.as_micros()).unwrap_or(i64::MAX)
        })
}

/// `[applied]` of a lightweight transaction, and the value of `column` it returned (the
/// current value when not applied; absent when the row does not exist).
fn lwt_outcome(
    op: &str,
    result: QueryResult,
    column: &str,
) -> Result<(bool, Option<i64>), StoreError> {
    let rows = result
        .into_rows_result()
        .map_err(|error| corrupt(op, error))?;
    let specs = rows.column_specs();
    let applied_at = specs
        .get_by_name("[applied]")
        .map(|(index, _)| index)
        .ok_or_else(|| corrupt(op, "no [applied] column"))?;
    let column_at = specs.get_by_name(column).map(|(index, _)| index);
    let mut applied = None;
    let mut found = None;
    for row in rows.rows::<Row>().map_err(|error| corrupt(op, error))? {
        let row = row.map_err(|error| corrupt(op, error))?;
        if applied.is_none() {
            applied = Some(matches!(
                row.columns.get(applied_at),
                Some(Some(CqlValue::Boolean(true)))
            ));
        }
        if found.is_none()
            && let Some(Some(Some(CqlValue::BigInt(value)))) =
                column_at.map(|index| row.columns.get(index))
        {
            found = Some(*value);
        }
    }
    let applied = applied.ok_or_else(|| corrupt(op, "empty lightweight transaction result"))?;
    Ok((applied, found))
}

fn ambiguous(op: &str, failure: &Failure) -> StoreError {
    StoreError::OutcomeUnknown(format!("{op}: {}", failure.message))
}

fn record(op: &'static str, started: Instant, outcome: &Result<(), &StoreError>) {
    let label = match outcome {
        Ok(()) => "ok",
        Err(error) if error.is_conflict() => "conflict",
        Err(error) if error.is_unavailable() => "unavailable",
        Err(_) => "error",
    };
    metrics::counter!("emporium_store_ops_total", "adapter" => "scylla", "op" => op, "outcome" => label)
        .increment(1);
    metrics::histogram!("emporium_store_op_seconds", "adapter" => "scylla", "op" => op)
        .record(started.elapsed().as_secs_f64());
}

fn observed<T>(
    op: &'static str,
    started: Instant,
    result: Result<T, StoreError>,
) -> Result<T, StoreError> {
    record(op, started, &result.as_ref().map(|_| ()));
    result
}

#[async_trait]
impl StateStore for ScyllaStore {
    fn adapter(&self) -> &'static str {
        "scylla"
    }

    async fn load(&self, id: &ActorId) -> Result<Option<Versioned>, StoreError> {
        let started = Instant::now();
        let result = self
            .first_row::<(Option<i64>, Option<Bytes>)>("load", &self.st.load, (id.kind, &id.key))
            .await
            .map(|row| match row {
                Some((Some(version), state)) => Some(Versioned {
                    version: from_db(version),
                    state: state.unwrap_or_default(),
                }),
                _ => None,
            });
        observed("load", started, result)
    }

    async fn save(&self, id: &ActorId, write: StateWrite) -> Result<u64, StoreError> {
        let started = Instant::now();
        let result = self.save_inner(id, write).await;
        observed("save", started, result)
    }

    async fn delete(&self, id: &ActorId, expected_version: u64) -> Result<(), StoreError> {
        let started = Instant::now();
        let result = self.delete_inner(id, expected_version).await;
        observed("delete", started, result)
    }

    async fn list_keys(
        &self,
        kind: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<String>, StoreError> {
        let started = Instant::now();
        let result = self.list_keys_inner(kind, after, limit).await;
        observed("list_keys", started, result)
    }

    async fn outbox_pending(&self, limit: usize) -> Result<Vec<PendingEvent>, StoreError> {
        let started = Instant::now();
        let result = self.outbox_pending_inner(limit).await;
        observed("outbox_pending", started, result)
    }

    async fn outbox_pending_in(
        &self,
        shard: Shard,
        limit: usize,
    ) -> Result<Vec<PendingEvent>, StoreError> {
        let started = Instant::now();
        let result = self.outbox_pending_in_inner(shard, limit).await;
        observed("outbox_pending_in", started, result)
    }

    async fn outbox_ack(&self, events: &[PendingEvent]) -> Result<(), StoreError> {
        let started = Instant::now();
        let result = self.outbox_ack_inner(events).await;
        observed("outbox_ack", started, result)
    }

    async fn list_reminders(&self, shard: Shard) -> Result<Vec<Reminder>, StoreError> {
        let started = Instant::now();
        let result = self.list_reminders_inner(shard).await;
        observed("list_reminders", started, result)
    }

    async fn upsert_member(&self, member: &MemberRecord) -> Result<(), StoreError> {
        let started = Instant::now();
        let result = self
            .exec(
                "upsert_member",
                &self.st.upsert_member,
                (
                    &member.node_id,
                    to_db(member.incarnation),
                    &member.cluster_addr,
                    &member.http_addr,
                    member.status.as_str(),
                    to_db(member.heartbeat_ms),
                ),
            )
            .await
            .map(|_| ());
        observed("upsert_member", started, result)
    }

    async fn list_members(&self) -> Result<Vec<MemberRecord>, StoreError> {
        let started = Instant::now();
        let result = self.list_members_inner().await;
        observed("list_members", started, result)
    }

    async fn remove_member(&self, node_id: &str, incarnation: u64) -> Result<bool, StoreError> {
        let started = Instant::now();
        let result = self.remove_member_inner(node_id, incarnation).await;
        observed("remove_member", started, result)
    }

    async fn claim_lease(
        &self,
        shard: Shard,
        owner: &str,
        expected_epoch: u64,
    ) -> Result<Lease, StoreError> {
        let started = Instant::now();
        let result = self.claim_lease_inner(shard, owner, expected_epoch).await;
        observed("claim_lease", started, result)
    }

    async fn list_leases(&self) -> Result<Vec<Lease>, StoreError> {
        let started = Instant::now();
        let result = self
            .rows::<(i32, Option<String>, Option<i64>)>("list_leases", &self.st.list_leases, ())
            .await
            .and_then(|rows| {
                rows.into_iter()
                    .map(|(shard, owner, epoch)| {
                        let shard = Shard::try_from(shard)
                            .map_err(|_| corrupt("list_leases", format!("shard {shard}")))?;
                        Ok(Lease {
                            shard,
                            owner: owner.unwrap_or_default(),
                            epoch: epoch.map_or(0, from_db),
                        })
                    })
                    .collect()
            });
        observed("list_leases", started, result)
    }
}

type BatchValue = Box<dyn SerializeRow + Send + Sync>;

/// An index row as read: `(kind, key, WRITETIME(live))`.
type Marked = (String, String, Option<i64>);

impl ScyllaStore {
    async fn save_inner(&self, id: &ActorId, write: StateWrite) -> Result<u64, StoreError> {
        let StateWrite {
            expected_version: expected,
            state,
            outbox,
            reminders,
        } = write;
        let size = state.len()
            + outbox
                .iter()
                .map(|entry| entry.event_id.len() + entry.topic.len() + entry.payload.len())
                .sum::<usize>()
            + reminders
                .iter()
                .map(|change| match change {
                    ReminderChange::Set { name, .. } | ReminderChange::Cancel { name } => {
                        name.len()
                    }
                })
                .sum::<usize>();
        if size > self.max_write_bytes {
            return Err(StoreError::TooLarge {
                size,
                limit: self.max_write_bytes,
            });
        }

        // Changes apply in order, so the last change of a name wins. Collapsing them also
        // matters for correctness: all statements of a batch share one timestamp, and a
        // delete wins over an insert of equal timestamp.
        let mut last_change: BTreeMap<String, Option<u64>> = BTreeMap::new();
        for change in reminders {
            match change {
                ReminderChange::Set { name, due_at_ms } => {
                    last_change.insert(name, Some(due_at_ms));
                }
                ReminderChange::Cancel { name } => {
                    last_change.insert(name, None);
                }
            }
        }

        let mut marks = Vec::new();
        if expected == 0 {
            marks.push(Mark::Key);
        }
        if !outbox.is_empty() {
            marks.push(Mark::Outbox);
        }
        if last_change.values().any(Option::is_some) {
            marks.push(Mark::Reminders);
        }
        let marked_at = self.ensure_marks(id, &marks).await?;

        let version = expected + 1;
        let writer = Uuid::new_v4();
        let kind: &'static str = id.kind;
        let key = id.key.clone();
        let condition = (expected != 0).then(|| to_db(expected));

        let mut batch = self.new_batch();
        let mut values: Vec<BatchValue> = Vec::with_capacity(1 + outbox.len() + last_change.len());
        batch.append_statement(self.st.save_state.clone());
        values.push(Box::new((
            to_db(version),
            state,
            writer,
            kind,
            key.clone(),
            condition,
        )));
        for (pos, entry) in outbox.into_iter().enumerate() {
            batch.append_statement(self.st.insert_outbox.clone());
            values.push(Box::new((
                kind,
                key.clone(),
                entry.event_id,
                to_db(version),
                i32::try_from(pos).unwrap_or(i32::MAX),
                entry.topic,
                entry.payload,
            )));
        }
        for (name, due_at_ms) in last_change {
            match due_at_ms {
                Some(due_at_ms) => {
                    batch.append_statement(self.st.set_reminder.clone());
                    values.push(Box::new((kind, key.clone(), name, to_db(due_at_ms))));
                }
                None => {
                    batch.append_statement(self.st.cancel_reminder.clone());
                    values.push(Box::new((kind, key.clone(), name)));
                }
            }
        }

        let mut last_failure = None;
        for attempt in 0..CAS_ATTEMPTS {
            match self.session.batch(&batch, &values).await {
                Ok(result) => {
                    let (applied, found) = lwt_outcome("save", result, "version")?;
                    if applied {
                        self.refresh_marks(id, &marks, marked_at).await;
                        return Ok(version);
                    }
                    let found = found.map_or(0, from_db);
                    // A retry loses to the attempt it retries when that one, still queued
                    // on a server when it timed out, applied after our serial read. Only
                    // another writer's record at `version` proves ours never applied; a
                    // record past `version` may sit on top of ours.
                    if attempt > 0 {
                        let resolution = if found == version {
                            self.resolve_save(id, expected, writer).await
                        } else {
                            Resolution::Unknown
                        };
                        match resolution {
                            Resolution::Applied => {
                                self.refresh_marks(id, &marks, marked_at).await;
                                return Ok(version);
                            }
                            Resolution::Conflict(_) => {}
                            Resolution::NotApplied | Resolution::Unknown => {
                                return Err(StoreError::OutcomeUnknown(format!(
                                    "save: a retry of {id} lost at version {found}; \
                                     an earlier attempt may have applied"
                                )));
                            }
                        }
                    }
                    return Err(StoreError::Conflict {
                        what: id.to_string(),
                        expected,
                        found,
                    });
                }
                Err(error) => {
                    let failure = classify_execution(&error);
                    if !failure.outcome_unknown {
                        return Err(failure.into_store_error("save"));
                    }
                    match self.resolve_save(id, expected, writer).await {
                        Resolution::Applied => {
                            self.refresh_marks(id, &marks, marked_at).await;
                            return Ok(version);
                        }
                        Resolution::NotApplied => {
                            tracing::debug!(actor = %id, error = %failure.message, "scylla store: save did not apply, retrying");
                            last_failure = Some(failure);
                        }
                        Resolution::Conflict(found) => {
                            return Err(StoreError::Conflict {
                                what: id.to_string(),
                                expected,
                                found,
                            });
                        }
                        Resolution::Unknown => return Err(ambiguous("save", &failure)),
                    }
                }
            }
        }
        // Every attempt timed out and read back as not applied, but one still queued on a
        // server may apply later: not a promise of "not applied".
        Err(StoreError::OutcomeUnknown(format!(
            "save: no verdict after {CAS_ATTEMPTS} attempts: {}",
            last_failure.map_or_else(String::new, |failure| failure.message)
        )))
    }

    async fn delete_inner(&self, id: &ActorId, expected: u64) -> Result<(), StoreError> {
        let condition = (expected != 0).then(|| to_db(expected));
        let mut batch = self.new_batch();
        batch.append_statement(self.st.delete_record.clone());
        batch.append_statement(self.st.delete_partition.clone());
        let values: (_, _) = (
            (id.kind, id.key.as_str(), condition),
            (id.kind, id.key.as_str()),
        );
        let mut last_failure = None;
        for attempt in 0..CAS_ATTEMPTS {
            match self.session.batch(&batch, &values).await {
                Ok(result) => {
                    let (applied, found) = lwt_outcome("delete", result, "version")?;
                    // A retry that finds the record gone: the attempt it retries applied
                    // late, or a delete under the same version did; the record is gone.
                    if applied || (attempt > 0 && found.is_none()) {
                        return Ok(());
                    }
                    return Err(StoreError::Conflict {
                        what: id.to_string(),
                        expected,
                        found: found.map_or(0, from_db),
                    });
                }
                Err(error) => {
                    let failure = classify_execution(&error);
                    if !failure.outcome_unknown {
                        return Err(failure.into_store_error("delete"));
                    }
                    let row: Option<(Option<i64>, Option<Uuid>)> = self
                        .first_row(
                            "resolve delete",
                            &self.st.load_version_serial,
                            (id.kind, &id.key),
                        )
                        .await
                        .map_err(|_| ambiguous("delete", &failure))?;
                    match row.and_then(|(version, _)| version).map(from_db) {
                        // Gone: ours applied, or a delete under the same version did.
                        None => return Ok(()),
                        Some(version) if version == expected => last_failure = Some(failure),
                        Some(_) => return Err(ambiguous("delete", &failure)),
                    }
                }
            }
        }
        Err(StoreError::Unavailable(format!(
            "delete: not applied after {CAS_ATTEMPTS} attempts: {}",
            last_failure.map_or_else(String::new, |failure| failure.message)
        )))
    }

    async fn list_keys_inner(
        &self,
        kind: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<String>, StoreError> {
        let mut keys = Vec::new();
        let mut cursor: Option<String> = after.map(str::to_owned);
        while keys.len() < limit {
            let want = (limit - keys.len()).min(KEYS_ROUND);
            let want_db = i32::try_from(want).unwrap_or(i32::MAX);
            // The `want` smallest keys after the cursor of every bucket contain the `want`
            // smallest keys after the cursor overall.
            let per_bucket = try_join_all((0..KEY_BUCKETS).map(|bucket| {
                let cursor = cursor.as_deref();
                async move {
                    let bucket = i32::from(bucket);
                    match cursor {
                        None => {
                            self.rows::<(String, Option<i64>)>(
                                "list_keys",
                                &self.st.keys_first,
                                (kind, bucket, want_db),
                            )
                            .await
                        }
                        Some(cursor) => {
                            self.rows::<(String, Option<i64>)>(
                                "list_keys",
                                &self.st.keys_after,
                                (kind, bucket, cursor, want_db),
                            )
                            .await
                        }
                    }
                }
            }))
            .await?;
            let buckets_drained = per_bucket.iter().all(|rows| rows.len() < want);
            let mut candidates: Vec<(String, Option<i64>)> =
                per_bucket.into_iter().flatten().collect();
            if candidates.is_empty() {
                break;
            }
            candidates.sort_by(|left, right| left.0.as_bytes().cmp(right.0.as_bytes()));
            // Nothing is left after this round when no bucket was cut short and no
            // candidate is dropped here.
            let exhausted = buckets_drained && candidates.len() <= want;
            candidates.truncate(want);
            cursor = candidates.last().map(|(key, _)| key.clone());

            // The index is a hint: keep only keys whose record exists.
            let checks: Vec<_> = candidates
                .iter()
                .map(|(key, written_at)| self.key_exists(kind, key.clone(), *written_at))
                .collect();
            let checks: Vec<Result<bool, StoreError>> = futures_util::stream::iter(checks)
                .buffered(FAN_OUT)
                .collect()
                .await;
            for ((key, _), exists) in candidates.into_iter().zip(checks) {
                if exists? {
                    keys.push(key);
                }
            }
            if exhausted {
                break;
            }
        }
        keys.truncate(limit);
        Ok(keys)
    }

    /// Whether the record of an indexed key exists; removes the index row when it is stale.
    async fn key_exists(
        &self,
        kind: &str,
        key: String,
        written_at: Option<i64>,
    ) -> Result<bool, StoreError> {
        let row: Option<(Option<i64>,)> = self
            .first_row("list_keys", &self.st.load_version, (kind, &key))
            .await?;
        let exists = matches!(row, Some((Some(_),)));
        if !exists {
            let bucket = bucket_of(kind, &key, KEY_BUCKETS);
            self.drop_stale_mark(
                "list_keys",
                &self.st.delete_key,
                written_at,
                (written_at.unwrap_or(0), kind, bucket, &key),
            )
            .await;
        }
        Ok(exists)
    }

    async fn outbox_pending_inner(&self, limit: usize) -> Result<Vec<PendingEvent>, StoreError> {
        let mut pending = Vec::new();
        if limit == 0 {
            return Ok(pending);
        }
        let start = self.outbox_cursor.fetch_add(1, Ordering::Relaxed) % OUTBOX_BUCKETS;
        for step in 0..OUTBOX_BUCKETS {
            let bucket = i32::from((start + step) % OUTBOX_BUCKETS);
            let marks: Vec<Marked> = self
                .rows("outbox_pending", &self.st.outbox_marks, (bucket,))
                .await?;
            let unmark = (&self.st.unmark_outbox, bucket);
            self.collect_outbox("outbox_pending", &marks, unmark, limit, &mut pending)
                .await?;
            if pending.len() >= limit {
                break;
            }
        }
        Ok(pending)
    }

    /// One partition of `outbox_shards` names the actors of the shard that may have pending
    /// entries; each one's partition is read (the truth), as `outbox_pending` does per bucket.
    async fn outbox_pending_in_inner(
        &self,
        shard: Shard,
        limit: usize,
    ) -> Result<Vec<PendingEvent>, StoreError> {
        let mut pending = Vec::new();
        if limit == 0 {
            return Ok(pending);
        }
        let shard_db = i32::from(shard);
        let marks: Vec<Marked> = self
            .rows(
                "outbox_pending_in",
                &self.st.outbox_shard_marks,
                (shard_db,),
            )
            .await?;
        let unmark = (&self.st.unmark_outbox_shard, shard_db);
        self.collect_outbox("outbox_pending_in", &marks, unmark, limit, &mut pending)
            .await?;
        Ok(pending)
    }

    /// Append the pending entries of the marked actors to `pending` until it holds `limit`,
    /// each actor's in commit order (so a cut at `limit` keeps every actor's oldest ones).
    /// A mark whose actor has no entry left is removed once stale, through `unmark`: its
    /// statement and the partition (bucket or shard) of the mark.
    async fn collect_outbox(
        &self,
        op: &str,
        marks: &[Marked],
        (unmark, partition): (&PreparedStatement, i32),
        limit: usize,
        pending: &mut Vec<PendingEvent>,
    ) -> Result<(), StoreError> {
        for chunk in marks.chunks(FAN_OUT) {
            let outboxes = join_all(
                chunk
                    .iter()
                    .map(|(kind, key, _)| self.actor_outbox(kind, key)),
            )
            .await;
            for ((kind, key, written_at), entries) in chunk.iter().zip(outboxes) {
                let entries = entries?;
                if entries.is_empty() {
                    self.drop_stale_mark(
                        op,
                        unmark,
                        *written_at,
                        (written_at.unwrap_or(0), partition, kind, key),
                    )
                    .await;
                    continue;
                }
                let actor = ActorId {
                    kind: intern_kind(kind),
                    key: key.clone(),
                };
                for entry in entries {
                    if pending.len() >= limit {
                        return Ok(());
                    }
                    pending.push(PendingEvent {
                        actor: actor.clone(),
                        entry,
                    });
                }
            }
            if pending.len() >= limit {
                return Ok(());
            }
        }
        Ok(())
    }

    async fn outbox_ack_inner(&self, events: &[PendingEvent]) -> Result<(), StoreError> {
        let mut by_actor: HashMap<(&str, &str), Vec<&str>> = HashMap::new();
        for event in events {
            by_actor
                .entry((event.actor.kind, event.actor.key.as_str()))
                .or_default()
                .push(event.entry.event_id.as_str());
        }
        let actors: Vec<_> = by_actor.into_iter().collect();
        for chunk in actors.chunks(FAN_OUT) {
            try_join_all(chunk.iter().map(|((kind, key), event_ids)| async move {
                // Delete each entry just above its own write time: never shadowed by a
                // coordinator clock that lags the Paxos ballot that wrote it.
                let rows: Vec<(String, Option<i64>)> = self
                    .rows(
                        "outbox_ack",
                        &self.st.actor_outbox_writetimes,
                        (*kind, *key),
                    )
                    .await?;
                let mut batch = self.new_batch();
                let mut values: Vec<BatchValue> = Vec::new();
                for (event_id, written_at) in rows {
                    if !event_ids.contains(&event_id.as_str()) {
                        continue;
                    }
                    let at = written_at.map_or_else(now_micros, |at| at.saturating_add(1));
                    batch.append_statement(self.st.ack_outbox.clone());
                    values.push(Box::new((at, kind.to_string(), key.to_string(), event_id)));
                }
                if values.is_empty() {
                    return Ok(());
                }
                self.session
                    .batch(&batch, &values)
                    .await
                    .map(|_| ())
                    .map_err(|error| classify_execution(&error).into_store_error("outbox_ack"))
            }))
            .await?;
        }
        Ok(())
    }

    async fn list_reminders_inner(&self, shard: Shard) -> Result<Vec<Reminder>, StoreError> {
        let shard_db = i32::from(shard);
        let marks: Vec<(String, String, Option<i64>)> = self
            .rows("list_reminders", &self.st.reminder_marks, (shard_db,))
            .await?;
        let mut reminders = Vec::new();
        for chunk in marks.chunks(FAN_OUT) {
            let per_actor = join_all(chunk.iter().map(|(kind, key, _)| {
                self.rows::<(String, Option<i64>)>(
                    "list_reminders",
                    &self.st.actor_reminders,
                    (kind.as_str(), key.as_str()),
                )
            }))
            .await;
            for ((kind, key, written_at), rows) in chunk.iter().zip(per_actor) {
                let rows = rows?;
                if rows.is_empty() {
                    self.drop_stale_mark(
                        "list_reminders",
                        &self.st.unmark_reminders,
                        *written_at,
                        (written_at.unwrap_or(0), shard_db, kind, key),
                    )
                    .await;
                    continue;
                }
                let actor = ActorId {
                    kind: intern_kind(kind),
                    key: key.clone(),
                };
                for (name, due_at_ms) in rows {
                    reminders.push(Reminder {
                        actor: actor.clone(),
                        name,
                        due_at_ms: due_at_ms.map_or(0, from_db),
                    });
                }
            }
        }
        Ok(reminders)
    }

    async fn list_members_inner(&self) -> Result<Vec<MemberRecord>, StoreError> {
        type MemberRow = (
            String,
            Option<i64>,
            Option<String>,
            Option<String>,
            Option<String>,
            Option<i64>,
        );
        let rows: Vec<MemberRow> = self.rows("list_members", &self.st.list_members, ()).await?;
        // A row that cannot be read (an unknown status, a NULL or negative incarnation or
        // heartbeat — e.g. a partial row written by hand —, an empty node id) is skipped
        // with a warning and counted: one bad row must not hide every member from every
        // node.
        let mut members = Vec::with_capacity(rows.len());
        for (node_id, incarnation, cluster_addr, http_addr, status, heartbeat_ms) in rows {
            let non_negative = |value: Option<i64>, name: &str| match value {
                None => Err(format!("{name} is NULL")),
                Some(value) => {
                    u64::try_from(value).map_err(|_| format!("{name} is negative ({value})"))
                }
            };
            let decoded = (|| {
                if node_id.is_empty() {
                    return Err("empty node_id".to_owned());
                }
                let status_text = status.ok_or_else(|| "status is NULL".to_owned())?;
                Ok(MemberRecord {
                    node_id: node_id.clone(),
                    incarnation: non_negative(incarnation, "incarnation")?,
                    cluster_addr: cluster_addr.unwrap_or_default(),
                    http_addr: http_addr.unwrap_or_default(),
                    status: MemberStatus::parse(&status_text)
                        .ok_or_else(|| format!("unknown member status {status_text:?}"))?,
                    heartbeat_ms: non_negative(heartbeat_ms, "heartbeat_ms")?,
                })
            })();
            match decoded {
                Ok(member) => members.push(member),
                Err(reason) => {
                    metrics::counter!("emporium_store_skipped_member_rows_total", "adapter" => "scylla")
                        .increment(1);
                    static LAST_WARNED_S: std::sync::atomic::AtomicU64 =
                        std::sync::atomic::AtomicU64::new(0);
                    let now_s = now_micros().max(0).unsigned_abs() / 1_000_000;
                    let last_s = LAST_WARNED_S.load(std::sync::atomic::Ordering::Relaxed);
                    if now_s.saturating_sub(last_s) >= 60 {
                        LAST_WARNED_S.store(now_s, std::sync::atomic::Ordering::Relaxed);
                        tracing::warn!(
                            %node_id,
                            %reason,
                            "scylla: skipped a member row that cannot be read (fix or delete it in the members table)"
                        );
                    }
                }
            }
        }
        Ok(members)
    }

    /// One lightweight transaction, not retried: a retry after a lost answer would report
    /// `false` for a row the first attempt removed, and the caller re-lists anyway. A
    /// timeout is [`StoreError::OutcomeUnknown`] (the Paxos round may complete later).
    ///
    /// The condition is checked linearizably, so a newer life's heartbeat that was
    /// acknowledged first keeps its row. Heartbeats are plain writes, though (timestamped
    /// by their coordinator), and the tombstone carries the Paxos round's timestamp: a
    /// heartbeat racing the removal and stamped earlier than it (skew between
    /// coordinators) is hidden until a later heartbeat lands, one interval on. Only a
    /// restart within the very moment its former life's row is pruned can meet that.
    async fn remove_member_inner(
        &self,
        node_id: &str,
        incarnation: u64,
    ) -> Result<bool, StoreError> {
        match self
            .session
            .execute_unpaged(&self.st.remove_member, (node_id, to_db(incarnation)))
            .await
        {
            Ok(result) => {
                lwt_outcome("remove_member", result, "incarnation").map(|(applied, _)| applied)
            }
            Err(error) => {
                let failure = classify_execution(&error);
                if failure.outcome_unknown {
                    Err(ambiguous("remove_member", &failure))
                } else {
                    Err(failure.into_store_error("remove_member"))
                }
            }
        }
    }

    async fn claim_lease_inner(
        &self,
        shard: Shard,
        owner: &str,
        expected: u64,
    ) -> Result<Lease, StoreError> {
        let conflict = |found: u64| StoreError::Conflict {
            what: format!("lease of shard {shard}"),
            expected,
            found,
        };
        let lease = Lease {
            shard,
            owner: owner.to_owned(),
            epoch: expected + 1,
        };
        let mut last_error = None;
        for attempt in 0..CAS_ATTEMPTS {
            match self.claim_once(shard, owner, expected).await {
                Ok(result) => {
                    let (applied, found) = lwt_outcome("claim_lease", result, "epoch")?;
                    if applied {
                        return Ok(lease);
                    }
                    let found = found.map_or(0, from_db);
                    // A retry may lose to the late-applied attempt it retries: check the owner.
                    if attempt > 0 && found == expected + 1 {
                        let row: Option<(Option<String>, Option<i64>)> = self
                            .first_row(
                                "resolve claim_lease",
                                &self.st.load_lease_serial,
                                (i32::from(shard),),
                            )
                            .await?;
                        if let Some((Some(found_owner), Some(epoch))) = row
                            && found_owner == owner
                            && from_db(epoch) == expected + 1
                        {
                            return Ok(lease);
                        }
                    }
                    return Err(conflict(found));
                }
                Err(error) if error.is_unavailable() => {
                    // Ambiguous or refused: learn the current lease linearizably.
                    let row: Option<(Option<String>, Option<i64>)> = self
                        .first_row(
                            "resolve claim_lease",
                            &self.st.load_lease_serial,
                            (i32::from(shard),),
                        )
                        .await
                        .map_err(|_| StoreError::Unavailable(error.to_string()))?;
                    let (found_owner, found_epoch) = row.unwrap_or((None, None));
                    let found_epoch = found_epoch.map_or(0, from_db);
                    if found_epoch == expected {
                        last_error = Some(error);
                    } else if found_epoch == expected + 1 && found_owner.as_deref() == Some(owner) {
                        return Ok(lease);
                    } else if found_epoch == expected + 1 {
                        return Err(conflict(found_epoch));
                    } else {
                        return Err(error);
                    }
                }
                Err(error) => return Err(error),
            }
        }
        Err(last_error.unwrap_or_else(|| {
            StoreError::Unavailable("claim_lease: not applied after retries".to_owned())
        }))
    }
}
